//! The binary store, streamed: a large `.enc` decrypted chunk by chunk from its file straight
//! into its destination, never held in memory whole (a 64 MiB secret costs a few MiB).
//!
//! sops writes `{"data": "ENC[AES256_GCM,data:<base64>,iv:…,tag:…,type:str]", "sops": {…}}`:
//! the ciphertext first, then its IV, its tag and the metadata. [`LargeBinary::find`] reads
//! the head and the tail of the file, finds where the base64 runs, and parses everything else
//! as [`super::binary`] would. [`LargeBinary::decrypt_into`] then streams the base64 through
//! two threads:
//!
//! ```text
//! worker: read ─ digest of the file ─ base64 ─ GCM (GHASH, CTR) ─ output ─┐ plaintext chunks
//! caller:                                               MAC (SHA-512) ◀───┘
//! ```
//!
//! (SHA-512 over the plaintext is the longest single job, about 75 ms for 64 MiB here, so it
//! has a thread to itself.)
//!
//! The output is authenticated only when `decrypt_into` returns `Ok` (the GCM tag and the MAC
//! are checked last): the caller writes it to a private temp file and throws that away on any
//! error. If every byte of the range is base64 the file is the JSON document the in-memory
//! store parses; a byte that is not (say a JSON escape, which sops never writes) stops the
//! stream, and [`StreamError::Layout`] sends the caller back to the in-memory store.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use zeroize::Zeroizing;

use super::cipher::{CipherError, EncValue};
use super::gcm::GcmDecryptor;
use super::mac::{self, MacHasher};
use super::metadata::Metadata;
use super::{binary, unlock_data_key, SopsError};
use crate::crypto::Identities;
use crate::secret::DataKey;

/// Where the ciphertext starts: what sops writes before it (whitespace may vary).
const DATA_OPENING: &[u8] = b"\"ENC[AES256_GCM,data:";
/// How much of the file's end is read to find the ciphertext's end and the metadata.
const TAIL_WINDOW: u64 = 256 << 10;
/// Base64 characters a chunk: a multiple of 64, so every chunk but the last decodes to whole
/// 16-byte GCM blocks.
const CHUNK_CHARS: usize = 1 << 20;
/// Plaintext chunks in flight between the two threads.
const IN_FLIGHT: usize = 3;

/// A binary-store file laid out as sops writes it, with everything but the ciphertext parsed.
#[derive(Debug)]
pub struct LargeBinary {
    /// Byte offsets of the base64 ciphertext in the file.
    start: u64,
    end: u64,
    size: u64,
    iv: Vec<u8>,
    tag: [u8; 16],
    pub metadata: Metadata,
}

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The file is not laid out as sops writes it: read it whole instead.
    #[error("the data string is not plain base64")]
    Layout,
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error("cannot read it: {0}")]
    Read(io::Error),
    #[error("cannot write the plaintext: {0}")]
    Write(io::Error),
}

impl LargeBinary {
    /// Reads the head and the tail of a binary-store file. `None` when the layout is not the
    /// plain one sops writes (the caller reads the file whole); `Err` when the metadata is bad.
    pub fn find(file: &File) -> Result<Option<Self>, StreamError> {
        let size = file.metadata().map_err(StreamError::Read)?.len();
        let head = read_at(file, 0, size.min(256))?;
        let Some(start) = data_start(&head) else {
            return Ok(None);
        };
        let window_at = size.saturating_sub(TAIL_WINDOW).max(start as u64);
        let tail = read_at(file, window_at, size - window_at)?;
        // The base64 ends at the first byte that cannot be base64; the window must begin
        // inside it, which the parse below confirms (JSON would not balance otherwise).
        let Some(cut) = tail.iter().position(|&b| !is_base64(b)) else {
            return Ok(None);
        };
        let end = window_at + cut as u64;
        // What ends the base64 in a sops file; anything else (a JSON escape, say) sends the
        // file to the in-memory store.
        if end <= start as u64 || !tail[cut..].starts_with(b",iv:") {
            return Ok(None);
        }
        // The document with a stand-in for the ciphertext: its metadata, IV and tag.
        let mut stand_in = head[..start].to_vec();
        stand_in.extend_from_slice(b"AAAA");
        stand_in.extend_from_slice(&tail[cut..]);
        let Ok((data, sops)) = binary::parse_parts(&stand_in) else {
            return Ok(None);
        };
        let Ok(enc) = EncValue::parse(&data) else {
            return Ok(None);
        };
        let metadata = Metadata::from_tree(&sops)?;
        Ok(Some(Self {
            start: start as u64,
            end,
            size,
            iv: enc.iv,
            tag: enc.tag,
            metadata,
        }))
    }

    /// The data key, from the first identity that opens it.
    pub fn unlock(&self, identities: &Identities) -> Result<DataKey, SopsError> {
        unlock_data_key(&self.metadata, identities)
    }

    /// Decrypts the file into `out` and returns the digest ([`enc_digest`]) of the whole
    /// `.enc` as read. `out` holds authentic plaintext only if this returns `Ok`.
    ///
    /// [`enc_digest`]: crate::sync::enc_digest
    pub fn decrypt_into(
        &self,
        file: &File,
        key: &DataKey,
        out: &mut (impl Write + Send),
    ) -> Result<[u8; 32], StreamError> {
        let gcm = GcmDecryptor::new(key, &self.iv, binary::AAD).map_err(value_error)?;
        let (full_tx, full_rx) = sync_channel::<Zeroizing<Vec<u8>>>(IN_FLIGHT);
        let (free_tx, free_rx) = sync_channel::<Zeroizing<Vec<u8>>>(IN_FLIGHT + 1);
        let mut hasher = MacHasher::new(self.metadata.mac_only_encrypted);
        // Each side owns its ends of the channels, so either one stopping releases the other.
        let deciphered = std::thread::scope(|scope| {
            let worker =
                scope.spawn(move || self.decipher_chunks(file, gcm, out, full_tx, free_rx));
            mac_chunks(full_rx, free_tx, &mut hasher);
            worker
                .join()
                .unwrap_or_else(|_| Err(StreamError::Read(io::Error::other("reader panicked"))))
        });
        let (digest, gcm) = deciphered?;
        gcm.finish(&self.tag).map_err(value_error)?;
        mac::verify(
            &self.metadata.mac,
            &self.metadata.lastmodified,
            key,
            &hasher.finish(),
        )?;
        Ok(digest)
    }

    /// The worker thread: digests the whole file, decodes and deciphers the ciphertext,
    /// writes the plaintext and hands it on for the MAC.
    fn decipher_chunks(
        &self,
        file: &File,
        mut gcm: GcmDecryptor,
        out: &mut impl Write,
        full: SyncSender<Zeroizing<Vec<u8>>>,
        free: Receiver<Zeroizing<Vec<u8>>>,
    ) -> Result<([u8; 32], GcmDecryptor), StreamError> {
        let mut digest = blake3::Hasher::new();
        digest.update(&read_at(file, 0, self.start)?);
        let mut raw = vec![0u8; CHUNK_CHARS];
        let mut at = self.start;
        while at < self.end {
            let len = (self.end - at).min(CHUNK_CHARS as u64) as usize;
            let raw = &mut raw[..len];
            file.read_exact_at(raw, at).map_err(StreamError::Read)?;
            digest.update(raw);
            at += len as u64;
            if raw.contains(&b'\\') {
                return Err(StreamError::Layout);
            }
            let mut plain = free.recv().unwrap_or_else(|_| Zeroizing::new(Vec::new()));
            plain.resize(len / 4 * 3, 0);
            let n = base64_simd::STANDARD
                .decode(raw, base64_simd::Out::from_slice(plain.as_mut_slice()))
                .map_err(|_| value_error(CipherError::Syntax))?
                .len();
            plain.truncate(n);
            gcm.decrypt(&mut plain);
            out.write_all(&plain).map_err(StreamError::Write)?;
            // The MAC side never stops first: a failed send cannot happen.
            let _ = full.send(plain);
        }
        digest.update(&read_at(file, self.end, self.size - self.end)?);
        Ok((*digest.finalize().as_bytes(), gcm))
    }
}

/// The calling thread's side: the MAC over the plaintext, chunk by chunk, in order.
fn mac_chunks(
    full: Receiver<Zeroizing<Vec<u8>>>,
    free: SyncSender<Zeroizing<Vec<u8>>>,
    hasher: &mut MacHasher,
) {
    for _ in 0..=IN_FLIGHT {
        let _ = free.send(Zeroizing::new(Vec::with_capacity(CHUNK_CHARS / 4 * 3)));
    }
    for plain in full {
        hasher.add(&plain, true);
        // The buffer is reused; a worker that finished no longer takes it.
        let _ = free.try_send(plain);
    }
}

/// Offset just after `"data": "ENC[AES256_GCM,data:` at the start of `head`.
fn data_start(head: &[u8]) -> Option<usize> {
    let skip = |at: usize| {
        at + head[at..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count()
    };
    let mut at = skip(0);
    for token in [&b"{"[..], b"\"data\"", b":"] {
        at = skip(at + head.get(at..)?.starts_with(token).then_some(token.len())?);
    }
    head.get(at..)?
        .starts_with(DATA_OPENING)
        .then_some(at + DATA_OPENING.len())
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn read_at(file: &File, at: u64, len: u64) -> Result<Vec<u8>, StreamError> {
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| StreamError::Layout)?];
    file.read_exact_at(&mut buf, at)
        .map_err(StreamError::Read)?;
    Ok(buf)
}

fn value_error(source: CipherError) -> StreamError {
    StreamError::Sops(SopsError::Value {
        key: "data".into(),
        source,
    })
}
