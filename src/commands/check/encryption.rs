//! What an `.enc` is, judged without any key: age, sops (with its metadata), plaintext or
//! damaged; values in clear against a rule; recipients and key groups against the wanted ones.

use std::collections::BTreeSet;

use crate::format::Format;
use crate::sops::cipher::EncValue;
use crate::sops::store::dotenv::{self, Item};
use crate::sops::{CryptRule, Metadata};

/// What an `.enc`'s bytes are, judged without any key.
#[derive(Debug)]
pub(super) enum Encryption {
    /// A plain age file: no sops metadata to check.
    Age,
    Sops(Box<Metadata>),
    /// Neither sops nor age.
    Plaintext,
    /// It looks like sops but its metadata or MAC is missing or broken (why).
    NoMetadata(String),
}

pub(super) fn classify(bytes: &[u8]) -> Encryption {
    let format = match Format::detect(bytes) {
        Some(Format::Age) => return Encryption::Age,
        Some(format) => format,
        // Encrypted values with the metadata cut off are damage, not plaintext.
        None if memchr::memmem::find(bytes, b"ENC[AES256_GCM,").is_some() => {
            return Encryption::NoMetadata("encrypted values but no sops metadata".into())
        }
        None => return Encryption::Plaintext,
    };
    match sops_metadata(format, bytes) {
        Ok(m) if m.mac.trim().is_empty() => Encryption::NoMetadata("the MAC is empty".into()),
        Ok(m) => Encryption::Sops(Box::new(m)),
        Err(why) => Encryption::NoMetadata(why),
    }
}

/// The `sops` metadata of a file in `format`, read without decrypting (also `init`'s
/// source of recipients).
pub(crate) fn sops_metadata(format: Format, bytes: &[u8]) -> Result<Metadata, String> {
    if let Some(store) = format.store() {
        return store.metadata(bytes).map_err(|e| e.to_string());
    }
    // YAML and JSON: this build does not decrypt them, but their metadata is one object.
    let tree: serde_json::Value = match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|_| "it is not valid JSON")?,
        _ => serde_yaml_ng::from_slice(bytes).map_err(|_| "it is not valid YAML")?,
    };
    let block = tree.get("sops").ok_or("it has no sops block")?;
    Metadata::from_tree(block).map_err(|e| e.to_string())
}

/// The keys of a sops dotenv file whose value is in clear although `rule` says to encrypt
/// it. Values are only tested for the `ENC[` form, never shown.
pub(super) fn clear_keys(file: &[u8], rule: &CryptRule) -> Vec<String> {
    let Ok(items) = dotenv::parse(file) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Item::Pair { key, value } if !key.starts_with("sops_") => Some((key, value)),
            _ => None,
        })
        .filter(|(key, value)| {
            let encrypted = std::str::from_utf8(value.expose()).is_ok_and(EncValue::is_enc);
            // sops leaves empty values as they are.
            !value.expose().is_empty()
                && !encrypted
                && rule.encrypts(&[key.as_str()]).unwrap_or(true)
        })
        .map(|(key, _)| key)
        .collect()
}

/// Who can open a file: its key groups (one, or several with Shamir sharing), each a set
/// of recipients, and how many groups it takes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Layout {
    /// Sorted, so that the order of groups does not count.
    groups: Vec<BTreeSet<String>>,
    threshold: usize,
}

impl Layout {
    pub(super) fn new(mut groups: Vec<BTreeSet<String>>, threshold: Option<usize>) -> Self {
        groups.sort();
        // sops: no threshold (or 0) means every group is needed.
        let threshold = threshold.filter(|&t| t > 0).unwrap_or(groups.len());
        Self { groups, threshold }
    }

    /// How this layout differs from `want`, for the message; None when they are the same.
    /// Recipients added or removed are named; otherwise a different grouping or threshold.
    pub(super) fn drift_from(&self, want: &Self) -> Option<String> {
        let flat = |l: &Self| -> BTreeSet<String> { l.groups.iter().flatten().cloned().collect() };
        if let Some(drift) = recipient_drift(&flat(self), &flat(want)) {
            return Some(drift);
        }
        (self != want).then(|| {
            format!(
                "key groups: {} with threshold {}, want {} with threshold {}",
                self.groups.len(),
                self.threshold,
                want.groups.len(),
                want.threshold
            )
        })
    }
}

/// How a file's recipients differ from the wanted ones, for the message; None when equal.
fn recipient_drift(have: &BTreeSet<String>, want: &BTreeSet<String>) -> Option<String> {
    let add: Vec<&str> = want.difference(have).map(String::as_str).collect();
    let remove: Vec<&str> = have.difference(want).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !add.is_empty() {
        parts.push(format!("not yet encrypted to {}", add.join(", ")));
    }
    if !remove.is_empty() {
        parts.push(format!("still encrypted to {}", remove.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn enc_contents_are_classified_without_a_key() {
        let dotenv_ok = "A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nx\\n-----END AGE ENCRYPTED FILE-----\\n\n\
            sops_age__list_0__map_recipient=age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\n\
            sops_lastmodified=2024-01-01T00:00:00Z\n\
            sops_mac=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            sops_unencrypted_suffix=_unencrypted\n\
            sops_version=3.11.0\n";
        let no_mac = dotenv_ok.replace(
            "sops_mac=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n",
            "",
        );
        let cut = "A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n";
        let json_no_mac = r#"{"a": "ENC[AES256_GCM,data:x,iv:x,tag:x,type:str]", "sops": {"age": [{"recipient": "age1x", "enc": "x"}], "lastmodified": "2024-01-01T00:00:00Z", "version": "3.11.0"}}"#;
        let table: [(&str, &[u8], &str); 7] = [
            ("plain dotenv", b"PASSWORD=hunter2\n", "plaintext"),
            ("empty", b"", "plaintext"),
            ("sops dotenv", dotenv_ok.as_bytes(), "sops"),
            ("dotenv without MAC", no_mac.as_bytes(), "no-metadata"),
            ("values, metadata cut", cut.as_bytes(), "no-metadata"),
            ("json without mac", json_no_mac.as_bytes(), "no-metadata"),
            (
                "age",
                b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
                "age",
            ),
        ];
        for (name, bytes, want) in table {
            let got = match classify(bytes) {
                Encryption::Age => "age",
                Encryption::Sops(_) => "sops",
                Encryption::Plaintext => "plaintext",
                Encryption::NoMetadata(_) => "no-metadata",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn clear_values_are_named_by_key_only() {
        let file = b"A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            B=hunter2\nC_unencrypted=public\nD=\nsops_version=3.11.0\n";
        let rule = CryptRule::default();
        assert_eq!(clear_keys(file, &rule), vec!["B".to_string()]);
        let only_pass = CryptRule::EncryptedRegex("^PASS".into());
        assert!(clear_keys(file, &only_pass).is_empty());
    }

    #[test]
    fn recipient_drift_names_both_sides() {
        let table = [
            (set(&["a", "b"]), set(&["b", "a"]), None),
            (
                set(&["a"]),
                set(&["a", "b"]),
                Some("not yet encrypted to b"),
            ),
            (set(&["a", "b"]), set(&["a"]), Some("still encrypted to b")),
            (
                set(&["a"]),
                set(&["c"]),
                Some("not yet encrypted to c; still encrypted to a"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                recipient_drift(&have, &want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }

    #[test]
    fn key_group_layouts_are_compared() {
        let layout = |groups: &[&[&str]], t: Option<usize>| {
            Layout::new(groups.iter().map(|g| set(g)).collect(), t)
        };
        let table = [
            // One group: the threshold does not count.
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["b", "a"]], Some(1)),
                None,
            ),
            // Group order does not count.
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["b"], &["a"]], None),
                None,
            ),
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["a"], &["b"]], Some(1)),
                Some("key groups: 1 with threshold 1, want 2 with threshold 1"),
            ),
            (
                layout(&[&["a"], &["b"], &["c"]], Some(2)),
                layout(&[&["a"], &["b"], &["c"]], Some(3)),
                Some("key groups: 3 with threshold 2, want 3 with threshold 3"),
            ),
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["a"], &["c"]], Some(2)),
                Some("not yet encrypted to c; still encrypted to b"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                have.drift_from(&want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }
}
