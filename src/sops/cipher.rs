//! The SOPS value cipher: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
//!
//! AES-256-GCM under the file's data key, with the key path as additional data. sops writes
//! 32-byte IVs (GCM hashes any IV length into its counter block) and accepts any length on
//! read, so decryption dispatches on the IV length it finds.

use aes_gcm::aead::consts::{U12, U16, U24, U32, U48, U64, U8};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;

use crate::secret::{DataKey, SecretBytes};

/// The IV length sops writes.
pub(crate) const IV_LEN: usize = 32;

/// The `type:` of an encrypted value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    Str,
    Int,
    Float,
    Bool,
    Time,
    Comment,
}

impl ValueType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "str" => Self::Str,
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "time" => Self::Time,
            "comment" => Self::Comment,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Str => "str",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Time => "time",
            Self::Comment => "comment",
        }
    }
}

/// Why a value did not decrypt. Carries no plaintext and no ciphertext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CipherError {
    #[error("is not a valid ENC[AES256_GCM,…] value")]
    Syntax,
    #[error("has an unsupported type")]
    UnknownType,
    #[error("has an unsupported IV length of {0} bytes")]
    IvLength(usize),
    #[error(
        "failed authentication (wrong data key, or the value, IV, tag or key name was altered)"
    )]
    Authentication,
}

/// A parsed `ENC[...]` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EncValue {
    pub(crate) data: Vec<u8>,
    pub(crate) iv: Vec<u8>,
    pub(crate) tag: [u8; 16],
    pub(crate) ty: ValueType,
}

impl EncValue {
    /// Parses the sops syntax; `None`-like errors never include the text.
    pub(crate) fn parse(text: &str) -> Result<Self, CipherError> {
        let body = text
            .strip_prefix("ENC[AES256_GCM,data:")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(CipherError::Syntax)?;
        // Split from the end: the data (base64, no commas) may be megabytes long.
        let (rest, ty) = body.rsplit_once(",type:").ok_or(CipherError::Syntax)?;
        let (rest, tag) = rest.rsplit_once(",tag:").ok_or(CipherError::Syntax)?;
        let (data, iv) = rest.rsplit_once(",iv:").ok_or(CipherError::Syntax)?;
        if data.is_empty() || iv.is_empty() || tag.is_empty() {
            return Err(CipherError::Syntax);
        }
        let decode = |s: &str| decode_base64(s).ok_or(CipherError::Syntax);
        let tag: [u8; 16] = decode(tag)?.try_into().map_err(|_| CipherError::Syntax)?;
        Ok(Self {
            data: decode(data)?,
            iv: decode(iv)?,
            tag,
            ty: ValueType::parse(ty).ok_or(CipherError::UnknownType)?,
        })
    }

    /// Whether `text` looks like an encrypted value (used to tell ciphertext from clear text).
    pub(crate) fn is_enc(text: &str) -> bool {
        text.starts_with("ENC[AES256_GCM,")
    }

    /// The sops text form.
    pub(crate) fn format(&self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            B64.encode(&self.data),
            B64.encode(&self.iv),
            B64.encode(self.tag),
            self.ty.as_str()
        )
    }

    /// Decrypts under `key` with `aad` (the key path, e.g. `DB_PASSWORD:`).
    pub(crate) fn decrypt(&self, key: &DataKey, aad: &[u8]) -> Result<SecretBytes, CipherError> {
        self.clone().open(key, aad)
    }

    /// Decrypts in place, consuming the value: no copy of a large ciphertext.
    pub(crate) fn open(self, key: &DataKey, aad: &[u8]) -> Result<SecretBytes, CipherError> {
        let mut buf = SecretBytes::new(self.data);
        macro_rules! open {
            ($n:ty) => {{
                let cipher = AesGcm::<Aes256, $n>::new(key.expose().into());
                // The arm is chosen by the IV's length, so the slice is always this long.
                let nonce = Nonce::<$n>::from_slice(&self.iv);
                cipher
                    .decrypt_in_place_detached(nonce, aad, buf.expose_mut(), &Tag::from(self.tag))
                    .map_err(|_| CipherError::Authentication)
            }};
        }
        match self.iv.len() {
            8 => open!(U8),
            12 => open!(U12),
            16 => open!(U16),
            24 => open!(U24),
            32 => open!(U32),
            48 => open!(U48),
            64 => open!(U64),
            // Any other length, as sops accepts: the same construction, by the piece.
            _ => {
                let mut gcm = super::gcm::GcmDecryptor::new(key, &self.iv, aad)?;
                gcm.decrypt(buf.expose_mut());
                gcm.finish(&self.tag)
            }
        }?;
        Ok(buf)
    }

    /// Encrypts `plaintext` with a fresh 32-byte IV.
    pub(crate) fn encrypt(key: &DataKey, plaintext: &[u8], aad: &[u8], ty: ValueType) -> Self {
        let mut iv = [0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        Self::encrypt_with_iv(key, plaintext, aad, ty, iv)
    }

    /// Encrypts with a given IV: sops reuses the IV of an unchanged value so that the
    /// ciphertext stays byte-identical (never call this with an IV used for other data).
    pub(crate) fn encrypt_with_iv(
        key: &DataKey,
        plaintext: &[u8],
        aad: &[u8],
        ty: ValueType,
        iv: [u8; IV_LEN],
    ) -> Self {
        let cipher = AesGcm::<Aes256, U32>::new(key.expose().into());
        let mut data = plaintext.to_vec();
        // Encryption in place cannot fail for inputs below GCM's 64 GiB limit.
        let tag = cipher
            .encrypt_in_place_detached(&Nonce::<U32>::from(iv), aad, &mut data)
            .unwrap_or_else(|_| unreachable!("AES-GCM input too large"));
        Self {
            data,
            iv: iv.to_vec(),
            tag: tag.into(),
            ty,
        }
    }
}

/// Strict padded base64; a large input (a big binary secret) is decoded in two halves on
/// two threads, straight into one buffer.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const PARALLEL_FROM: usize = 1 << 20;
    if text.len() < PARALLEL_FROM || text.len() % 4 != 0 {
        return B64.decode(text).ok();
    }
    // The first half ends on a 4-character group and holds no padding.
    let split = text.len() / 8 * 4;
    let (first, second) = text.split_at(split);
    let first_len = first.len() / 4 * 3;
    let mut out = vec![0u8; first_len + second.len() / 4 * 3];
    let (head, tail) = out.split_at_mut(first_len);
    let (a, b) = rayon::join(
        || B64.decode_slice(first, head),
        || B64.decode_slice(second, tail),
    );
    let (a, b) = (a.ok()?, b.ok()?);
    if a != first_len {
        return None;
    }
    out.truncate(first_len + b);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_base64_matches() {
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 251) as u8).collect();
        let text = B64.encode(&data);
        assert_eq!(decode_base64(&text).unwrap(), data);
        let mut bad = text.clone();
        bad.replace_range(10..11, "*");
        assert!(decode_base64(&bad).is_none());
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = DataKey::generate();
        let enc = EncValue::encrypt(&key, b"hunter2", b"DB:", ValueType::Str);
        let text = enc.format();
        let parsed = EncValue::parse(&text).unwrap();
        assert_eq!(parsed.decrypt(&key, b"DB:").unwrap().expose(), b"hunter2");
        assert_eq!(
            parsed.decrypt(&key, b"OTHER:"),
            Err(CipherError::Authentication)
        );
        assert_eq!(
            EncValue::parse("ENC[AES256_GCM,data:,iv:a,tag:b,type:str]"),
            Err(CipherError::Syntax)
        );
    }
}
