//! The SOPS MAC: SHA-512 over every value's canonical plaintext, in file order.
//!
//! The digest is upper-case hex, stored encrypted under the data key with the file's
//! `lastmodified` (re-formatted as RFC 3339) as additional data. Only values are hashed, never
//! key names: renames are caught by each value's AAD instead.

use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cipher::{CipherError, EncValue, ValueType};
use super::SopsError;
use crate::secret::{DataKey, SecretBytes};

/// Accumulates values in file order.
pub(crate) struct MacHasher {
    /// SHA-512 from `sha2`, the one age uses: for a 64 MiB secret the MAC is the one job
    /// that cannot be split (see `sync::large::stream`).
    hasher: Sha512,
    only_encrypted: bool,
}

impl MacHasher {
    pub(crate) fn new(mac_only_encrypted: bool) -> Self {
        let mut hasher = Sha512::new();
        if mac_only_encrypted {
            hasher.update(Sha256::digest(b"sops"));
        }
        Self {
            hasher,
            only_encrypted: mac_only_encrypted,
        }
    }

    /// Feeds one value's canonical bytes; `encrypted` says whether it is stored encrypted.
    pub(crate) fn add(&mut self, canonical: &[u8], encrypted: bool) {
        if encrypted || !self.only_encrypted {
            self.hasher.update(canonical);
        }
    }

    /// The digest as sops stores it: 128 upper-case hex characters.
    pub(crate) fn finish(self) -> String {
        self.hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
}

/// Parses `lastmodified` and re-formats it the way sops does before using it as AAD:
/// RFC 3339, fractions dropped, offset kept (`Z` for UTC).
pub(crate) fn lastmodified_aad(lastmodified: &str) -> Result<String, SopsError> {
    let parsed = OffsetDateTime::parse(lastmodified, &Rfc3339)
        .map_err(|_| SopsError::Metadata("lastmodified is not an RFC 3339 time".into()))?;
    let whole = parsed
        .replace_nanosecond(0)
        .map_err(|_| SopsError::Metadata("lastmodified is out of range".into()))?;
    whole
        .format(&Rfc3339)
        .map_err(|_| SopsError::Metadata("lastmodified is out of range".into()))
}

/// `lastmodified` for a file written now.
pub(crate) fn now_lastmodified() -> String {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    now.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Checks the stored (encrypted) MAC against the digest computed from the values.
pub(crate) fn verify(
    stored: &str,
    lastmodified: &str,
    key: &DataKey,
    computed: &str,
) -> Result<(), SopsError> {
    let aad = lastmodified_aad(lastmodified)?;
    let enc = EncValue::parse(stored).map_err(|_| SopsError::MacMismatch)?;
    let plain = enc.decrypt(key, aad.as_bytes()).map_err(|e| match e {
        CipherError::Authentication => SopsError::MacMismatch,
        other => SopsError::Value {
            key: "sops_mac".into(),
            source: other,
        },
    })?;
    // Constant time (a length mismatch is simply unequal).
    if bool::from(plain.expose().ct_eq(computed.as_bytes())) {
        Ok(())
    } else {
        Err(SopsError::MacMismatch)
    }
}

/// Encrypts a MAC digest for storage.
pub(crate) fn seal(digest: &str, lastmodified: &str, key: &DataKey) -> Result<String, SopsError> {
    let aad = lastmodified_aad(lastmodified)?;
    Ok(EncValue::encrypt(key, digest.as_bytes(), aad.as_bytes(), ValueType::Str).format())
}

/// The canonical MAC bytes of a decrypted value of type `ty` (sops' `ToBytes` after parsing
/// by type): `true` hashes as `True`, `007` as `7`.
pub(crate) fn canonical(ty: ValueType, plain: &SecretBytes) -> Option<SecretBytes> {
    let text = || std::str::from_utf8(plain.expose()).ok();
    Some(match ty {
        ValueType::Str | ValueType::Comment => plain.clone(),
        ValueType::Int => {
            let n: i64 = text()?.trim().parse().ok()?;
            SecretBytes::new(n.to_string().into_bytes())
        }
        ValueType::Bool => {
            let b = match text()? {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                _ => return None,
            };
            SecretBytes::new(if b {
                b"True".to_vec()
            } else {
                b"False".to_vec()
            })
        }
        ValueType::Float => {
            let f: f64 = text()?.trim().parse().ok()?;
            SecretBytes::new(go_format_float(f).into_bytes())
        }
        ValueType::Time => {
            let t = OffsetDateTime::parse(text()?, &Rfc3339).ok()?;
            SecretBytes::new(go_rfc3339_nano(t).into_bytes())
        }
    })
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits, no exponent.
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's Display for f64 is also shortest-round-trip without an exponent.
        format!("{f}")
    }
}

/// Go's `time.RFC3339Nano`: trailing zeros of the fraction removed.
fn go_rfc3339_nano(t: OffsetDateTime) -> String {
    let mut s = t.format(&Rfc3339).unwrap_or_default();
    if t.nanosecond() != 0 {
        // The time crate writes all nine digits; Go trims trailing zeros.
        if let Some(dot) = s.find('.') {
            let end = s[dot..]
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .map_or(s.len(), |i| dot + i);
            let digits = s[dot + 1..end].trim_end_matches('0').to_string();
            s.replace_range(dot + 1..end, &digits);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_of_two_values() {
        let mut h = MacHasher::new(false);
        h.add(b"alpha", true);
        h.add(b"beta", true);
        assert!(h.finish().starts_with("DDFD0957797B9979"));
    }

    #[test]
    fn verify_accepts_only_the_same_digest() {
        let key = DataKey::generate();
        let mut h = MacHasher::new(false);
        h.add(b"alpha", true);
        let digest = h.finish();
        let when = "2025-01-01T00:00:00Z";
        let stored = seal(&digest, when, &key).unwrap();
        assert!(verify(&stored, when, &key, &digest).is_ok());
        let mut other = digest.clone();
        other.replace_range(127.., if digest.ends_with('0') { "1" } else { "0" });
        for computed in [&other[..], &digest[..127], ""] {
            assert!(matches!(
                verify(&stored, when, &key, computed),
                Err(SopsError::MacMismatch)
            ));
        }
        assert!(matches!(
            verify(&stored, "2025-01-01T00:00:01Z", &key, &digest),
            Err(SopsError::MacMismatch)
        ));
    }

    #[test]
    fn lastmodified_reformat() {
        assert_eq!(
            lastmodified_aad("2025-01-01T00:00:00.123Z").unwrap(),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            lastmodified_aad("2025-01-01T02:00:00+02:00").unwrap(),
            "2025-01-01T02:00:00+02:00"
        );
    }

    #[test]
    fn canonical_types() {
        let c = |t, s: &str| canonical(t, &SecretBytes::from(s.as_bytes())).unwrap();
        assert_eq!(c(ValueType::Bool, "true").expose(), b"True");
        assert_eq!(c(ValueType::Int, "007").expose(), b"7");
        assert_eq!(c(ValueType::Float, "1000").expose(), b"1000");
        assert_eq!(c(ValueType::Float, "0.5").expose(), b"0.5");
    }
}
