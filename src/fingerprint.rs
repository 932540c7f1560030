//! Keyed fingerprints for masked views (`show` and the git textconv): a value is shown as
//! its length and a short HMAC-SHA256 under a key derived (HKDF-SHA256) from the file's
//! data key. Two versions of one file then show which values changed (minimal encrypt keeps
//! the data key), while nobody without the data key can test a guess against a fingerprint,
//! as they could against a plain hash. The key name is part of what is hashed, so two keys
//! holding the same value do not show it.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::secret::DataKey;

/// What the derived key is for: a fingerprint key is never the data key itself.
const INFO: &[u8] = b"envsync masked-view fingerprint v1";

/// Hex digits shown: enough to tell a changed value at a glance, too few to be an oracle.
const SHOWN: usize = 8;

/// Fingerprints the values of one file.
pub(crate) struct Fingerprinter(Zeroizing<[u8; 32]>);

impl Fingerprinter {
    pub(crate) fn new(data_key: &DataKey) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit: expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, data_key.expose()).expand(INFO, key.as_mut());
        Self(key)
    }

    /// `<len N · 1a2b3c4d>` for the value `value` of `name`.
    pub(crate) fn masked(&self, name: &str, value: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_ref()) else {
            return format!("<len {}>", value.len());
        };
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("<len {} · {}>", value.len(), &hex[..SHOWN])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_key_name_and_value_only() {
        let key = DataKey::from_slice(&[7u8; 32]).unwrap();
        let other = DataKey::from_slice(&[8u8; 32]).unwrap();
        let f = Fingerprinter::new(&key);
        let a = f.masked("A", b"secret");
        assert_eq!(a, Fingerprinter::new(&key).masked("A", b"secret"));
        assert!(
            a.starts_with("<len 6 · ") && a.len() == "<len 6 · 12345678>".len(),
            "{a}"
        );
        assert_ne!(a, f.masked("A", b"secreT"));
        assert_ne!(a, f.masked("B", b"secret"), "the key name is hashed too");
        assert_ne!(a, Fingerprinter::new(&other).masked("A", b"secret"));
        assert!(!a.contains("secret"));
    }
}
