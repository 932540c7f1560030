//! AES-256-GCM decryption in pieces, for a value too large to hold in memory whole.
//!
//! The construction is the one `aes-gcm` implements (NIST SP 800-38D, any IV length), split
//! so that a ciphertext can flow through it chunk by chunk: each chunk is hashed (GHASH over
//! the ciphertext) and then deciphered (CTR). The plaintext handed back is **not
//! authenticated** until [`GcmDecryptor::finish`] accepts the tag: a caller keeps it in
//! memory, and writes nothing of it, until then.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes256;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use zeroize::Zeroizing;

use super::cipher::CipherError;
use crate::secret::DataKey;

/// GCM's limit on one message: 2^32 - 2 blocks of keystream.
const MAX_LEN: u64 = (1 << 36) - 32;

/// Decrypts one AES-256-GCM value piece by piece.
pub(crate) struct GcmDecryptor {
    auth: GcmAuth,
    keystream: Keystream,
}

/// The authenticating half: GHASH over the ciphertext, and the tag check.
struct GcmAuth {
    ghash: GHash,
    /// `E(K, J0)`: what the GHASH result is masked with to give the tag.
    tag_mask: Zeroizing<[u8; 16]>,
    /// A ciphertext block begun in one chunk and ended in the next.
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    len: u64,
}

/// The deciphering half: the CTR keystream, from the counter block after `J0`.
struct Keystream(ctr::Ctr32BE<Aes256>);

impl GcmDecryptor {
    /// Starts a value with this key, IV (any length but empty) and additional data.
    pub(crate) fn new(key: &DataKey, iv: &[u8], aad: &[u8]) -> Result<Self, CipherError> {
        if iv.is_empty() {
            return Err(CipherError::IvLength(0));
        }
        let key: &aes::cipher::Key<Aes256> = key.expose().into();
        let cipher = Aes256::new(key);
        // H and J0 live in zeroized arrays; the cipher crates see them through views.
        let mut h = Zeroizing::new([0u8; 16]);
        cipher.encrypt_block(GenericArray::from_mut_slice(h.as_mut()));
        let ghash = GHash::new(GenericArray::from_slice(h.as_ref()));
        let mut j0 = Zeroizing::new([0u8; 16]);
        if iv.len() == 12 {
            j0[..12].copy_from_slice(iv);
            j0[15] = 1;
        } else {
            let mut iv_hash = ghash.clone();
            iv_hash.update_padded(iv);
            let mut lengths = ghash::Block::default();
            lengths[8..].copy_from_slice(&(iv.len() as u64 * 8).to_be_bytes());
            iv_hash.update(&[lengths]);
            j0.copy_from_slice(&iv_hash.finalize());
        }
        // The first counter block masks the tag; the keystream starts at the next one.
        let mut ctr = ctr::Ctr32BE::<Aes256>::new(key, GenericArray::from_slice(j0.as_ref()));
        let mut tag_mask = Zeroizing::new([0u8; 16]);
        ctr.apply_keystream(tag_mask.as_mut());
        let mut auth = GcmAuth {
            ghash,
            tag_mask,
            partial: [0; 16],
            partial_len: 0,
            aad_len: aad.len() as u64,
            len: 0,
        };
        auth.ghash.update_padded(aad);
        Ok(Self {
            auth,
            keystream: Keystream(ctr),
        })
    }

    /// Deciphers the next chunk in place (unauthenticated until [`Self::finish`]).
    pub(crate) fn decrypt(&mut self, chunk: &mut [u8]) {
        self.auth.absorb(chunk);
        self.keystream.apply(chunk);
    }

    /// Checks the tag over everything deciphered; only then is the plaintext authentic.
    pub(crate) fn finish(self, tag: &[u8; 16]) -> Result<(), CipherError> {
        self.auth.finish(tag)
    }
}

impl GcmAuth {
    /// Hashes the next chunk of ciphertext.
    fn absorb(&mut self, mut data: &[u8]) {
        self.len = self.len.saturating_add(data.len() as u64);
        if self.len > MAX_LEN {
            // Past GCM's limit the keystream would run out: `finish` refuses the value.
            return;
        }
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[ghash::Block::from(self.partial)]);
            self.partial_len = 0;
        }
        // The whole blocks in one call (POLYVAL works on several at a time); a whole number
        // of blocks gets no padding.
        let (blocks, tail) = data.split_at(data.len() / 16 * 16);
        self.ghash.update_padded(blocks);
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
    }

    /// Checks the tag over everything absorbed.
    fn finish(mut self, tag: &[u8; 16]) -> Result<(), CipherError> {
        if self.len > MAX_LEN {
            return Err(CipherError::Authentication);
        }
        self.close();
        let mut expected = ghash::Block::from(*tag);
        for (e, m) in expected.iter_mut().zip(self.tag_mask.iter()) {
            *e ^= m;
        }
        // Constant-time comparison of GHASH with the unmasked tag.
        self.ghash
            .verify(&expected)
            .map_err(|_| CipherError::Authentication)
    }

    /// Ends the GHASH input: the last partial block, then the lengths block.
    fn close(&mut self) {
        if self.partial_len > 0 {
            self.ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update(&[lengths]);
    }
}

impl Keystream {
    /// Deciphers the next chunk in place. Past GCM's limit it leaves the chunk as it is (the
    /// tag check then fails) rather than panic.
    fn apply(&mut self, chunk: &mut [u8]) {
        let _ = self.0.try_apply_keystream(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::cipher::{EncValue, ValueType, IV_LEN};

    /// Decrypts `enc` in chunks of the given sizes (cycled).
    fn decrypt_in_chunks(
        key: &DataKey,
        enc: &EncValue,
        aad: &[u8],
        sizes: &[usize],
    ) -> Result<Vec<u8>, CipherError> {
        let mut gcm = GcmDecryptor::new(key, &enc.iv, aad)?;
        let mut data = enc.data.clone();
        let mut rest = data.as_mut_slice();
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at_mut((*size).min(rest.len()));
            gcm.decrypt(chunk);
            rest = tail;
        }
        gcm.finish(&enc.tag)?;
        Ok(data)
    }

    #[test]
    fn matches_aes_gcm_for_any_chunking() {
        let key = DataKey::generate();
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 15, 16, 17, 4096, 10_000] {
            let enc = EncValue::encrypt(&key, &plain[..len], b"data:", ValueType::Str);
            assert_eq!(enc.iv.len(), IV_LEN);
            for sizes in [&[len.max(1)][..], &[1], &[7, 16, 33], &[48, 1000]] {
                let got = decrypt_in_chunks(&key, &enc, b"data:", sizes).unwrap();
                assert_eq!(got, &plain[..len], "len {len} chunks {sizes:?}");
            }
        }
    }

    #[test]
    fn twelve_byte_ivs_match_too() {
        let key = DataKey::generate();
        let mut enc = EncValue::encrypt(&key, b"value", b"K:", ValueType::Str);
        // Re-encrypt with a 12-byte IV through aes-gcm's one-shot path.
        use aes_gcm::aead::{consts::U12, AeadInPlace, KeyInit as _};
        let cipher = aes_gcm::AesGcm::<Aes256, U12>::new(key.expose().into());
        let iv = [9u8; 12];
        let mut data = b"value of twelve".to_vec();
        let tag = cipher
            .encrypt_in_place_detached(&iv.into(), b"K:", &mut data)
            .unwrap();
        enc.data = data;
        enc.iv = iv.to_vec();
        enc.tag = tag.into();
        let got = decrypt_in_chunks(&key, &enc, b"K:", &[5]).unwrap();
        assert_eq!(got, b"value of twelve");
    }

    #[test]
    fn every_iv_length_matches_aes_gcm() {
        use aes_gcm::aead::consts::{U16, U64, U8};
        use aes_gcm::aead::{AeadInPlace, KeyInit as _};
        let key = DataKey::generate();
        let plain: Vec<u8> = (0..777u32).map(|i| (i % 253) as u8).collect();
        macro_rules! check {
            ($n:ty, $len:expr) => {{
                let cipher = aes_gcm::AesGcm::<Aes256, $n>::new(key.expose().into());
                let iv = [0x5Au8; $len];
                let mut data = plain.clone();
                let tag = cipher
                    .encrypt_in_place_detached(GenericArray::from_slice(&iv), b"A:", &mut data)
                    .unwrap();
                let enc = EncValue {
                    data,
                    iv: iv.to_vec(),
                    tag: tag.into(),
                    ty: ValueType::Str,
                };
                let got = decrypt_in_chunks(&key, &enc, b"A:", &[100]).unwrap();
                assert_eq!(got, plain, "IV of {} bytes", $len);
            }};
        }
        check!(U8, 8);
        check!(U16, 16);
        check!(U64, 64);
    }

    /// A 20-byte IV (no aes-gcm instance of that size here) still opens through `EncValue`,
    /// and a wrong tag still fails.
    #[test]
    fn odd_iv_lengths_open_through_the_value_cipher() {
        let key = DataKey::generate();
        let mut enc = EncValue::encrypt(&key, b"x", b"K:", ValueType::Str);
        enc.iv = vec![3u8; 20];
        // Encrypted by hand: CTR is its own inverse, and the tag is GHASH of the ciphertext.
        let mut data = b"twenty-byte iv value".to_vec();
        let GcmDecryptor {
            mut auth,
            mut keystream,
        } = GcmDecryptor::new(&key, &enc.iv, b"K:").unwrap();
        keystream.apply(&mut data);
        auth.absorb(&data);
        enc.data = data;
        enc.tag = tag_of(auth);
        assert_eq!(
            enc.decrypt(&key, b"K:").unwrap().expose(),
            b"twenty-byte iv value"
        );
        enc.tag[3] ^= 1;
        assert_eq!(enc.decrypt(&key, b"K:"), Err(CipherError::Authentication));
    }

    /// The tag `finish` expects, for building test values.
    fn tag_of(mut auth: GcmAuth) -> [u8; 16] {
        auth.close();
        let mut tag: [u8; 16] = auth.ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(auth.tag_mask.iter()) {
            *t ^= m;
        }
        tag
    }

    #[test]
    fn any_change_fails_the_tag() {
        let key = DataKey::generate();
        let enc = EncValue::encrypt(&key, &[7u8; 100], b"data:", ValueType::Str);
        let fails = |key: &DataKey, enc: &EncValue, aad: &[u8]| {
            decrypt_in_chunks(key, enc, aad, &[32]) == Err(CipherError::Authentication)
        };
        assert!(fails(&DataKey::generate(), &enc, b"data:"));
        assert!(fails(&key, &enc, b"other:"));
        let mut flipped = enc.clone();
        flipped.data[50] ^= 1;
        assert!(fails(&key, &flipped, b"data:"));
        let mut short = enc.clone();
        short.data.pop();
        assert!(fails(&key, &short, b"data:"));
        let mut tag = enc.clone();
        tag.tag[0] ^= 0x80;
        assert!(fails(&key, &tag, b"data:"));
    }
}
