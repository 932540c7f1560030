//! The `sops` metadata block: recipients and their wrapped data keys, `lastmodified`, the MAC,
//! the rule that selects encrypted values, and `version`.
//!
//! Stores differ only in how they spell it (a JSON object for binary, flattened `sops_` lines
//! for dotenv), so the block is read from and written to a generic JSON tree here, and the
//! dotenv store flattens that tree.

use serde_json::{Map, Value};

use super::SopsError;

/// The version envsync writes: the sops release whose format it produces.
pub(crate) const SOPS_VERSION: &str = "3.11.0";

/// One recipient's copy of the data key (or of its Shamir share).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgeKey {
    pub(crate) recipient: String,
    /// The armored age file that holds the key.
    pub(crate) enc: String,
}

/// Which values are encrypted; sops allows exactly one rule a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CryptRule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(String),
    EncryptedRegex(String),
    UnencryptedCommentRegex(String),
    EncryptedCommentRegex(String),
}

impl Default for CryptRule {
    fn default() -> Self {
        Self::UnencryptedSuffix("_unencrypted".into())
    }
}

const RULE_FIELDS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

impl CryptRule {
    pub(crate) fn from_field(field: &str, value: String) -> Option<Self> {
        Some(match field {
            "unencrypted_suffix" => Self::UnencryptedSuffix(value),
            "encrypted_suffix" => Self::EncryptedSuffix(value),
            "unencrypted_regex" => Self::UnencryptedRegex(value),
            "encrypted_regex" => Self::EncryptedRegex(value),
            "unencrypted_comment_regex" => Self::UnencryptedCommentRegex(value),
            "encrypted_comment_regex" => Self::EncryptedCommentRegex(value),
            _ => return None,
        })
    }

    fn field(&self) -> (&'static str, &str) {
        match self {
            Self::UnencryptedSuffix(v) => ("unencrypted_suffix", v),
            Self::EncryptedSuffix(v) => ("encrypted_suffix", v),
            Self::UnencryptedRegex(v) => ("unencrypted_regex", v),
            Self::EncryptedRegex(v) => ("encrypted_regex", v),
            Self::UnencryptedCommentRegex(v) => ("unencrypted_comment_regex", v),
            Self::EncryptedCommentRegex(v) => ("encrypted_comment_regex", v),
        }
    }

    /// Whether a value at `path` (map keys from the root) is encrypted. Comments are judged
    /// by their parent path, so a top-level comment passes the empty path.
    pub(crate) fn encrypts(&self, path: &[&str]) -> Result<bool, SopsError> {
        let regex = |pattern: &str| {
            regex::Regex::new(pattern)
                .map_err(|_| SopsError::Metadata(format!("the rule regex `{pattern}` is invalid")))
        };
        Ok(match self {
            Self::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Self::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Self::UnencryptedRegex(r) => {
                let re = regex(r)?;
                !path.iter().any(|p| re.is_match(p))
            }
            Self::EncryptedRegex(r) => {
                let re = regex(r)?;
                path.iter().any(|p| re.is_match(p))
            }
            // The comment rules select values by the comments before them; envsync does not
            // implement them, and guessing would break the MAC or leave values in clear.
            Self::UnencryptedCommentRegex(_) | Self::EncryptedCommentRegex(_) => {
                return Err(SopsError::Metadata(
                    "it uses unencrypted_comment_regex or encrypted_comment_regex, which envsync does not support yet".into(),
                ))
            }
        })
    }
}

/// The parsed metadata block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// One group normally; several with Shamir sharing.
    pub(crate) key_groups: Vec<Vec<AgeKey>>,
    pub(crate) shamir_threshold: Option<usize>,
    pub(crate) lastmodified: String,
    /// The encrypted MAC, `ENC[...]`.
    pub(crate) mac: String,
    /// `None` for the binary store, which writes no rule.
    pub(crate) rule: Option<CryptRule>,
    pub(crate) mac_only_encrypted: bool,
    pub(crate) version: String,
}

impl Metadata {
    /// All recipient strings, for messages.
    pub(crate) fn recipients(&self) -> Vec<String> {
        self.key_groups
            .iter()
            .flatten()
            .map(|k| k.recipient.clone())
            .collect()
    }

    /// Reads the block from its JSON-tree form.
    pub(crate) fn from_tree(tree: &Value) -> Result<Self, SopsError> {
        let map = tree
            .as_object()
            .ok_or_else(|| SopsError::Metadata("the sops block is not a map".into()))?;
        let text = |field: &str| -> Option<String> {
            match map.get(field)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let key_groups = if let Some(groups) = map.get("key_groups").filter(|g| !g.is_null()) {
            let groups = groups
                .as_array()
                .ok_or_else(|| SopsError::Metadata("key_groups is not a list".into()))?;
            groups
                .iter()
                .map(|g| age_keys(g.get("age")))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            vec![age_keys(map.get("age"))?]
        };
        if key_groups.iter().all(Vec::is_empty) {
            return Err(SopsError::Metadata(
                "it has no age recipients (keys of other kinds, such as PGP or KMS, are not supported)"
                    .into(),
            ));
        }
        let shamir_threshold = match text("shamir_threshold") {
            Some(t) => Some(
                t.parse()
                    .map_err(|_| SopsError::Metadata("shamir_threshold is not a number".into()))?,
            ),
            None => None,
        };
        let mut rules = RULE_FIELDS
            .iter()
            .filter_map(|f| text(f).map(|v| CryptRule::from_field(f, v)))
            .flatten();
        let rule = rules.next();
        if rules.next().is_some() {
            return Err(SopsError::Metadata(
                "it sets more than one encryption rule".into(),
            ));
        }
        let version = text("version").unwrap_or_default();
        if !is_semver(&version) {
            return Err(SopsError::Metadata(
                "its version is missing or not a semantic version".into(),
            ));
        }
        Ok(Self {
            key_groups,
            shamir_threshold,
            lastmodified: text("lastmodified")
                .ok_or_else(|| SopsError::Metadata("lastmodified is missing".into()))?,
            mac: text("mac").ok_or_else(|| SopsError::Metadata("mac is missing".into()))?,
            rule,
            mac_only_encrypted: text("mac_only_encrypted").is_some_and(|v| v == "true"),
            version,
        })
    }

    /// The block as a JSON tree, fields in the order sops 3.11 writes them.
    pub(crate) fn to_tree(&self) -> Value {
        let mut map = Map::new();
        let keys = |group: &[AgeKey]| {
            Value::Array(
                group
                    .iter()
                    .map(|k| {
                        let mut m = Map::new();
                        m.insert("recipient".into(), Value::String(k.recipient.clone()));
                        m.insert("enc".into(), Value::String(k.enc.clone()));
                        Value::Object(m)
                    })
                    .collect(),
            )
        };
        if self.key_groups.len() > 1 {
            if let Some(t) = self.shamir_threshold {
                map.insert("shamir_threshold".into(), Value::from(t));
            }
            let groups = self
                .key_groups
                .iter()
                .map(|g| {
                    let mut m = Map::new();
                    m.insert("hc_vault".into(), Value::Null);
                    m.insert("age".into(), keys(g));
                    Value::Object(m)
                })
                .collect();
            map.insert("key_groups".into(), Value::Array(groups));
        } else if let Some(group) = self.key_groups.first() {
            map.insert("age".into(), keys(group));
        }
        map.insert(
            "lastmodified".into(),
            Value::String(self.lastmodified.clone()),
        );
        map.insert("mac".into(), Value::String(self.mac.clone()));
        if let Some(rule) = &self.rule {
            let (field, value) = rule.field();
            map.insert(field.into(), Value::String(value.to_string()));
        }
        if self.mac_only_encrypted {
            map.insert("mac_only_encrypted".into(), Value::Bool(true));
        }
        map.insert("version".into(), Value::String(self.version.clone()));
        Value::Object(map)
    }
}

fn age_keys(list: Option<&Value>) -> Result<Vec<AgeKey>, SopsError> {
    let Some(list) = list.filter(|l| !l.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| SopsError::Metadata("age is not a list".into()))?;
    list.iter()
        .map(|entry| {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| SopsError::Metadata(format!("an age entry has no {name}")))
            };
            Ok(AgeKey {
                recipient: field("recipient")?,
                enc: field("enc")?,
            })
        })
        .collect()
}

/// sops parses `version` as semver (an optional leading `v`) and refuses the file otherwise.
fn is_semver(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Flattens a tree into `key__map_child__list_0` pairs (dotenv and INI metadata).
pub(crate) fn flatten(tree: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}__map_{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}__list_{i}"), v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            Value::Bool(b) => out.push((prefix.to_string(), b.to_string())),
            Value::Number(n) => out.push((prefix.to_string(), n.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

/// Rebuilds a tree from flattened pairs; values stay strings.
pub(crate) fn unflatten(pairs: &[(String, String)]) -> Result<Value, SopsError> {
    let bad = || SopsError::Metadata("a sops_ key is malformed".into());
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        // Split `a__list_0__map_b` into ["a", list 0, map "b"].
        let mut node = &mut root;
        let mut rest = key.as_str();
        let first_end = next_marker(rest).unwrap_or(rest.len());
        let mut step = Step::Map(&rest[..first_end]);
        rest = &rest[first_end..];
        loop {
            let (next, tail) = if rest.is_empty() {
                (None, rest)
            } else if let Some(r) = rest.strip_prefix("__map_") {
                let end = next_marker(r).unwrap_or(r.len());
                (Some(Step::Map(&r[..end])), &r[end..])
            } else if let Some(r) = rest.strip_prefix("__list_") {
                let end = next_marker(r).unwrap_or(r.len());
                let index: usize = r[..end].parse().map_err(|_| bad())?;
                // Indices come from the file: no more than a few thousand recipients.
                if index > 4096 {
                    return Err(bad());
                }
                (Some(Step::List(index)), &r[end..])
            } else {
                return Err(bad());
            };
            let child_default = match next {
                None => Value::String(value.clone()),
                Some(Step::Map(_)) => Value::Object(Map::new()),
                Some(Step::List(_)) => Value::Array(Vec::new()),
            };
            node = match step {
                Step::Map(name) => {
                    let map = node.as_object_mut().ok_or_else(bad)?;
                    map.entry(name.to_string()).or_insert(child_default)
                }
                Step::List(index) => {
                    let list = node.as_array_mut().ok_or_else(bad)?;
                    if list.len() <= index {
                        list.resize(index + 1, Value::Null);
                    }
                    if list[index].is_null() {
                        list[index] = child_default;
                    }
                    &mut list[index]
                }
            };
            match next {
                None => break,
                Some(s) => {
                    step = s;
                    rest = tail;
                }
            }
        }
    }
    Ok(root)
}

enum Step<'a> {
    Map(&'a str),
    List(usize),
}

fn next_marker(s: &str) -> Option<usize> {
    [s.find("__map_"), s.find("__list_")]
        .into_iter()
        .flatten()
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_round_trip() {
        let pairs = vec![
            ("age__list_0__map_enc".to_string(), "E0".to_string()),
            ("age__list_0__map_recipient".to_string(), "R0".to_string()),
            ("age__list_1__map_enc".to_string(), "E1".to_string()),
            ("age__list_1__map_recipient".to_string(), "R1".to_string()),
            (
                "lastmodified".to_string(),
                "2026-01-01T00:00:00Z".to_string(),
            ),
        ];
        let tree = unflatten(&pairs).unwrap();
        assert_eq!(tree["age"][1]["recipient"], "R1");
        let mut back = flatten(&tree);
        back.sort();
        assert_eq!(back, pairs);
    }

    #[test]
    fn huge_list_index_is_an_error_not_a_crash() {
        for index in ["18446744073709551615", "100000000000", "4097"] {
            let pairs = vec![(format!("age__list_{index}__map_enc"), "x".to_string())];
            assert!(unflatten(&pairs).is_err(), "{index}");
        }
    }

    #[test]
    fn semver() {
        assert!(is_semver("3.11.0"));
        assert!(is_semver("v3.9.0"));
        assert!(is_semver("3.11.0+envsync"));
        assert!(!is_semver("3.11"));
        assert!(!is_semver(""));
    }
}
