//! What an `.enc` is, judged without any key: age, sops (with its metadata), plaintext or
//! damaged; values in clear against a rule.

use crate::format::Format;
use crate::sops::cipher::EncValue;
use crate::sops::store::dotenv::{self, Item};
use crate::sops::walk;
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
    match crate::format::metadata(format, bytes) {
        Ok(m) if m.mac.trim().is_empty() => Encryption::NoMetadata("the MAC is empty".into()),
        Ok(m) => Encryption::Sops(Box::new(m)),
        Err(why) => Encryption::NoMetadata(why),
    }
}

/// The keys of a sops file whose value is in clear although `rule` says to encrypt it. Values are only tested for the `ENC[` form, never shown.
pub(super) fn clear_keys(file: &[u8], rule: &CryptRule) -> Vec<String> {
    // A YAML, JSON or INI file: every value under the same rules sops applies.
    if let Some(codec) = Format::detect(file).and_then(Format::codec) {
        let Ok(tree) = codec.parse_data(file) else {
            return Vec::new();
        };
        return walk::clear_values(tree, rule).unwrap_or_default();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
