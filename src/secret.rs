//! Secret buffers: plaintext that must never reach a log, an error or a core dump.
//!
//! Every decrypted value and every data key lives in one of these types. They zero their
//! memory on drop, print as `[REDACTED]` under `Debug`, have no `Display`, and hand out
//! their bytes only through [`SecretBytes::expose`], which is easy to grep for.

use std::fmt;
use std::io::{self, Read};

use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

/// Secret bytes (a plaintext file, a value, a key), zeroed on drop.
///
/// The bytes never leave their buffer except through [`Self::expose`]: mutable access is a
/// slice ([`Self::expose_mut`]), so no caller can grow the vector behind the type's back and
/// leave a copy in a freed allocation. Growth goes through [`Self::reserve`], which zeroes
/// the old allocation before freeing it.
#[derive(Clone, Default, Eq)]
pub(crate) struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Secrets are compared in constant time: a length mismatch is simply unequal, then every
/// byte counts, without an early exit.
impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

/// Constant-time equality of equal-length byte strings, through `subtle` one 64-byte block at
/// a time: a block's difference is folded with XOR and OR (no branch), and `subtle` takes it
/// from there. `subtle`'s byte-by-byte slice comparison took 130 to 160 ms for two 64 MiB
/// plaintexts on this project's (loaded) machine, this 13 to 14 ms.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut equal = Choice::from(1);
    for (x, y) in a.chunks(64).zip(b.chunks(64)) {
        let diff = x.iter().zip(y).fold(0u8, |acc, (p, q)| acc | (p ^ q));
        equal &= diff.ct_eq(&0);
    }
    equal.into()
}

/// Zeroes a buffer's whole allocation, spare capacity included, with zeroize's volatile
/// writes: afterwards it holds `capacity()` zero bytes, ready to be freed.
fn wipe(bytes: &mut Vec<u8>) {
    bytes.resize(bytes.capacity(), 0);
    zero(bytes);
}

/// zeroize's volatile writes go a byte at a time: 15 to 38 ms for a 64 MiB secret on one
/// core of this project's (loaded) machine, 6 to 11 ms in 8 MiB pieces on both, so a large
/// buffer is wiped in pieces on every core.
fn zero(bytes: &mut [u8]) {
    // Bytes a piece when a wipe is spread over threads.
    const PIECE: usize = 8 << 20;
    if bytes.len() > PIECE {
        use rayon::prelude::*;
        bytes
            .par_chunks_mut(PIECE)
            .for_each(|piece| piece.zeroize());
    } else {
        bytes.zeroize();
    }
}

/// How much spare capacity [`SecretBytes::read_to_end`] zero-fills and offers a read at once.
const READ_WINDOW: usize = 64 << 10;

impl SecretBytes {
    /// Wraps bytes; the caller's vector is moved, not copied.
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// An empty secret with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    /// The secret bytes. Keep the borrow short and never format it.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Mutable access to the bytes, for building or deciphering a secret in place.
    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Shortens the secret to `len` bytes. The bytes cut off stay in the allocation, which
    /// is wiped whole when it is freed (on drop or growth).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// Makes room for `additional` more bytes. When the allocation must grow, the bytes are
    /// copied into a new one and the old one is zeroed before it is freed.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.0.len().saturating_add(additional);
        if needed <= self.0.capacity() {
            return;
        }
        // Doubling, as `Vec` does, so that appends stay amortised O(1).
        let capacity = needed.max(self.0.capacity().saturating_mul(2)).max(64);
        let mut grown = Vec::with_capacity(capacity);
        grown.extend_from_slice(&self.0);
        let mut old = std::mem::replace(&mut self.0, grown);
        wipe(&mut old);
    }

    /// Appends bytes (growing as [`Self::reserve`] does).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        self.0.extend_from_slice(bytes);
    }

    /// Appends one byte (growing as [`Self::reserve`] does).
    pub(crate) fn push(&mut self, byte: u8) {
        self.reserve(1);
        self.0.push(byte);
    }

    /// Reads `reader` to its end onto the secret, as [`Read::read_to_end`] does into a
    /// vector, but growing only through [`Self::reserve`]. Returns the bytes read.
    pub(crate) fn read_to_end(&mut self, reader: &mut impl Read) -> io::Result<usize> {
        let start = self.0.len();
        loop {
            if self.0.len() == self.0.capacity() {
                self.reserve(READ_WINDOW);
            }
            let len = self.0.len();
            // Within the capacity: no reallocation, only zeroes for the read to overwrite.
            self.0.resize(self.0.capacity().min(len + READ_WINDOW), 0);
            let read = reader.read(&mut self.0[len..]);
            self.0.truncate(len + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Ok(len - start),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Character count when the bytes are UTF-8 (what an operator calls a value's length),
    /// byte count otherwise.
    pub(crate) fn display_len(&self) -> usize {
        display_len(&self.0)
    }
}

/// Character count of `bytes` when they are UTF-8, byte count otherwise (a value's length as
/// diffs and plans report it).
pub(crate) fn display_len(bytes: &[u8]) -> usize {
    std::str::from_utf8(bytes).map_or(bytes.len(), |s| s.chars().count())
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

/// A 32-byte SOPS data key.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub(crate) fn generate() -> Self {
        use rand::RngCore;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Takes a key from decrypted bytes; `None` unless exactly 32 bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(Self(key))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_zeroes_the_whole_allocation() {
        let mut buf = Vec::with_capacity(100);
        buf.extend_from_slice(&[0xAA; 60]);
        let capacity = buf.capacity();
        wipe(&mut buf);
        assert_eq!(buf.len(), capacity, "spare capacity too");
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn growth_keeps_the_content() {
        let mut secret = SecretBytes::with_capacity(4);
        secret.extend_from_slice(b"abc");
        let mut expected = b"abc".to_vec();
        for i in 0..5000u32 {
            let piece = i.to_le_bytes();
            secret.extend_from_slice(&piece);
            secret.push(b'|');
            expected.extend_from_slice(&piece);
            expected.push(b'|');
        }
        assert_eq!(secret.expose(), &expected[..]);
        assert!(secret.0.capacity() >= expected.len());
        secret.reserve(1 << 16);
        assert!(secret.0.capacity() >= expected.len() + (1 << 16));
        assert_eq!(secret.expose(), &expected[..]);
        secret.truncate(3);
        assert_eq!(secret.expose(), b"abc");
    }

    #[test]
    fn read_to_end_reads_everything_in_small_and_large_reads() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        // A reader that hands out at most 1000 bytes a call.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(1000).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        for capacity in [0, 10, data.len(), data.len() + 7] {
            let mut secret = SecretBytes::with_capacity(capacity);
            secret.extend_from_slice(b"head:");
            let n = secret.read_to_end(&mut Trickle(&data)).unwrap();
            assert_eq!(n, data.len());
            assert_eq!(&secret.expose()[..5], b"head:");
            assert_eq!(&secret.expose()[5..], &data[..]);
            let mut whole = SecretBytes::with_capacity(capacity);
            whole.read_to_end(&mut &data[..]).unwrap();
            assert_eq!(whole.expose(), &data[..]);
        }
    }

    #[test]
    fn equality_is_by_content() {
        let a = SecretBytes::from(&b"secret"[..]);
        assert_eq!(a, SecretBytes::new(b"secret".to_vec()));
        assert_ne!(a, SecretBytes::from(&b"secreT"[..]));
        assert_ne!(a, SecretBytes::from(&b"secret!"[..]));
        assert_ne!(a, SecretBytes::default());
        assert_eq!(SecretBytes::default(), SecretBytes::default());
        // Every byte of a multi-block string counts, in a full block or the last short one.
        let long: Vec<u8> = (0..1000u32).map(|i| (i % 253) as u8).collect();
        assert!(ct_eq(&long, &long.clone()));
        for at in [0, 63, 64, 500, 959, 960, 999] {
            let mut other = long.clone();
            other[at] ^= 0x10;
            assert!(!ct_eq(&long, &other), "byte {at}");
        }
    }

    #[test]
    fn zero_clears_a_large_buffer_wiped_in_pieces() {
        let mut buf = vec![0x5Au8; (9 << 20) + 3];
        zero(&mut buf[1..(9 << 20) + 2]);
        assert_eq!(buf[0], 0x5A);
        assert_eq!(buf[(9 << 20) + 2], 0x5A);
        assert!(buf[1..(9 << 20) + 2].iter().all(|&b| b == 0));
    }

    #[test]
    fn zero_clears_every_byte_at_any_alignment() {
        let mut buf = vec![0xA5u8; 1027];
        for start in 0..9 {
            buf.fill(0xA5);
            zero(&mut buf[start..start + 1013]);
            assert!(buf[start..start + 1013].iter().all(|&b| b == 0));
            assert!(
                buf[..start].iter().all(|&b| b == 0xA5),
                "wrote before the slice"
            );
            assert!(
                buf[start + 1013..].iter().all(|&b| b == 0xA5),
                "wrote past it"
            );
        }
    }
}
