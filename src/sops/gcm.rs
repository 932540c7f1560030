//! AES-256-GCM decryption in pieces, for a value too large to hold in memory whole.
//!
//! The construction is the one `aes-gcm` implements (NIST SP 800-38D, any IV length), split
//! so that a ciphertext can flow through it chunk by chunk: each chunk is hashed (GHASH over
//! the ciphertext) and then deciphered (CTR). The plaintext handed back is **not
//! authenticated** until [`GcmDecryptor::finish`] accepts the tag: a caller may only put it
//! where it can be thrown away (a private temp file) until then.

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes256;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

use super::cipher::CipherError;
use crate::secret::DataKey;

/// GCM's limit on one message: 2^32 - 2 blocks of keystream.
const MAX_LEN: u64 = (1 << 36) - 32;

/// Decrypts one AES-256-GCM value piece by piece.
pub struct GcmDecryptor {
    ctr: ctr::Ctr32BE<Aes256>,
    ghash: GHash,
    /// `E(K, J0)`: what the GHASH result is masked with to give the tag.
    tag_mask: ghash::Block,
    /// A ciphertext block begun in one chunk and ended in the next.
    partial: [u8; 16],
    partial_len: usize,
    aad_len: u64,
    len: u64,
}

impl GcmDecryptor {
    /// Starts a value with this key, IV (any length but empty) and additional data.
    pub fn new(key: &DataKey, iv: &[u8], aad: &[u8]) -> Result<Self, CipherError> {
        if iv.is_empty() {
            return Err(CipherError::IvLength(0));
        }
        let key: &aes::cipher::Key<Aes256> = key.expose().into();
        let cipher = Aes256::new(key);
        let mut h = ghash::Block::default();
        cipher.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        let j0 = if iv.len() == 12 {
            let mut block = ghash::Block::default();
            block[..12].copy_from_slice(iv);
            block[15] = 1;
            block
        } else {
            let mut iv_hash = ghash.clone();
            iv_hash.update_padded(iv);
            let mut lengths = ghash::Block::default();
            lengths[8..].copy_from_slice(&(iv.len() as u64 * 8).to_be_bytes());
            iv_hash.update(&[lengths]);
            iv_hash.finalize()
        };
        // The first counter block masks the tag; the keystream starts at the next one.
        let mut ctr = ctr::Ctr32BE::<Aes256>::new(key, &j0);
        let mut tag_mask = ghash::Block::default();
        ctr.apply_keystream(&mut tag_mask);
        let mut decryptor = Self {
            ctr,
            ghash,
            tag_mask,
            partial: [0; 16],
            partial_len: 0,
            aad_len: aad.len() as u64,
            len: 0,
        };
        decryptor.ghash.update_padded(aad);
        Ok(decryptor)
    }

    /// Deciphers the next chunk in place (unauthenticated until [`Self::finish`]).
    pub fn decrypt(&mut self, chunk: &mut [u8]) {
        self.len = self.len.saturating_add(chunk.len() as u64);
        if self.len > MAX_LEN {
            // Past GCM's limit the counter would wrap: `finish` refuses the value.
            return;
        }
        self.hash(chunk);
        self.ctr.apply_keystream(chunk);
    }

    /// Checks the tag over everything deciphered; only then is the plaintext authentic.
    pub fn finish(mut self, tag: &[u8; 16]) -> Result<(), CipherError> {
        if self.len > MAX_LEN {
            return Err(CipherError::Authentication);
        }
        if self.partial_len > 0 {
            self.ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(self.aad_len * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        self.ghash.update(&[lengths]);
        let mut expected = ghash::Block::from(*tag);
        for (e, m) in expected.iter_mut().zip(self.tag_mask.iter()) {
            *e ^= m;
        }
        // Constant-time comparison of GHASH with the unmasked tag.
        self.ghash
            .verify(&expected)
            .map_err(|_| CipherError::Authentication)
    }

    /// GHASH over ciphertext, carrying a partial block between chunks.
    fn hash(&mut self, mut data: &[u8]) {
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
        let (blocks, tail) = ghash::Block::slice_as_chunks(data);
        self.ghash.update(blocks);
        self.partial[..tail.len()].copy_from_slice(tail);
        self.partial_len = tail.len();
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
        use aes_gcm::aead::{consts::U12, AeadInOut, KeyInit as _};
        let cipher = aes_gcm::AesGcm::<Aes256, U12>::new(key.expose().into());
        let iv = [9u8; 12];
        let mut data = b"value of twelve".to_vec();
        let tag = cipher
            .encrypt_inout_detached(&iv.into(), b"K:", data.as_mut_slice().into())
            .unwrap();
        enc.data = data;
        enc.iv = iv.to_vec();
        enc.tag = tag.into();
        let got = decrypt_in_chunks(&key, &enc, b"K:", &[5]).unwrap();
        assert_eq!(got, b"value of twelve");
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
