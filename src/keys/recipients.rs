//! Recipients for encrypting: the entry's own `recipients`, else the first `.sops.yaml`
//! creation rule whose `path_regex` matches the repo path, as sops chooses them (`age:` as a
//! comma list or a YAML list, or `key_groups` with `shamir_threshold`), with the rule that
//! selects which values are encrypted.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::KeyError;
use crate::crypto::Recipient;
use crate::manifest::Entry;
use crate::sops::{CryptRule, EncryptOptions, KeyPlan};

#[derive(Debug, Deserialize)]
struct SopsConfig {
    #[serde(default)]
    creation_rules: Vec<CreationRule>,
}

#[derive(Debug, Deserialize)]
struct CreationRule {
    #[serde(default)]
    path_regex: Option<String>,
    #[serde(default)]
    age: Option<StringOrList>,
    #[serde(default)]
    key_groups: Option<Vec<KeyGroup>>,
    #[serde(default)]
    shamir_threshold: Option<usize>,
    #[serde(default)]
    unencrypted_suffix: Option<String>,
    #[serde(default)]
    encrypted_suffix: Option<String>,
    #[serde(default)]
    unencrypted_regex: Option<String>,
    #[serde(default)]
    encrypted_regex: Option<String>,
    #[serde(default)]
    unencrypted_comment_regex: Option<String>,
    #[serde(default)]
    encrypted_comment_regex: Option<String>,
    #[serde(default)]
    mac_only_encrypted: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct KeyGroup {
    #[serde(default)]
    age: Option<StringOrList>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    /// sops splits a string on commas and trims each item.
    fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            Self::One(s) => s.split(',').collect(),
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// `.sops.yaml`'s `stores:` block, read on its own: a `.sops.yaml` whose rules are broken
/// still lays out files as sops would.
#[derive(Debug, Default, Deserialize)]
struct StoresOnly {
    #[serde(default)]
    stores: Stores,
}

#[derive(Debug, Default, Deserialize)]
struct Stores {
    #[serde(default)]
    yaml: Option<StoreIndent>,
    #[serde(default)]
    json: Option<StoreIndent>,
}

#[derive(Debug, Default, Deserialize)]
struct StoreIndent {
    #[serde(default)]
    indent: Option<i64>,
}

/// The `stores:` indentation of the `.sops.yaml` in `repo_root` (sops's defaults when there
/// is none, or it does not parse).
pub(crate) fn store_layout(repo_root: &Path) -> crate::sops::store::StoreLayout {
    let parsed: StoresOnly = std::fs::read_to_string(repo_root.join(".sops.yaml"))
        .ok()
        .and_then(|text| serde_yaml_ng::from_str(&text).ok())
        .unwrap_or_default();
    let indent = |store: &Option<StoreIndent>| {
        store
            .as_ref()
            .and_then(|s| s.indent)
            .and_then(|n| usize::try_from(n).ok())
    };
    crate::sops::store::StoreLayout {
        // sops: 0 means its default.
        yaml_indent: indent(&parsed.stores.yaml).filter(|&n| n > 0),
        json_indent: indent(&parsed.stores.json),
    }
}

/// The parsed `.sops.yaml` beside the manifest, if there is one.
#[derive(Debug)]
pub(crate) struct Recipients {
    config_path: PathBuf,
    /// The text of `.sops.yaml`, to name the line of a recipient that does not parse.
    config_text: String,
    manifest_path: PathBuf,
    rules: Vec<CreationRule>,
}

impl Recipients {
    /// Reads `.sops.yaml` in `repo_root` (none is fine: entries may list recipients).
    pub(crate) fn load(repo_root: &Path, manifest_path: &Path) -> Result<Self, KeyError> {
        let config_path = repo_root.join(".sops.yaml");
        let mut config_text = String::new();
        let rules = match std::fs::read_to_string(&config_path) {
            Ok(text) => {
                let parsed: SopsConfig =
                    serde_yaml_ng::from_str(&text).map_err(|e| KeyError::Config {
                        path: config_path.clone(),
                        message: format!("is not a valid sops config ({e})"),
                    })?;
                config_text = text;
                parsed.creation_rules
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(KeyError::Config {
                    path: config_path,
                    message: format!("cannot be read ({e})"),
                })
            }
        };
        Ok(Self {
            config_path,
            config_text,
            manifest_path: manifest_path.to_path_buf(),
            rules,
        })
    }

    /// How to encrypt `entry`: its recipients, Shamir threshold and encryption rule.
    pub(crate) fn options_for(&self, entry: &Entry) -> Result<EncryptOptions, KeyError> {
        let config_error = |message: String| KeyError::Config {
            path: self.config_path.clone(),
            message,
        };
        let mut rule_found = None;
        for rule in &self.rules {
            let matches = match &rule.path_regex {
                None => true,
                Some(pattern) if pattern.is_empty() => true,
                Some(pattern) => regex::Regex::new(pattern)
                    .map_err(|_| {
                        config_error(format!("path_regex `{pattern}` is not a valid regex"))
                    })?
                    .is_match(&entry.repo),
            };
            if matches {
                rule_found = Some(rule);
                break;
            }
        }
        // A recipient that does not parse is named with the line it is on.
        let parse_all = |items: Vec<String>| -> Result<Vec<Recipient>, KeyError> {
            items
                .iter()
                .map(|r| {
                    Recipient::parse(r).map_err(|e| {
                        let line = self
                            .config_text
                            .lines()
                            .position(|l| l.contains(r.as_str()))
                            .map_or(String::new(), |i| format!("line {}: ", i + 1));
                        config_error(format!("{line}{e}"))
                    })
                })
                .collect()
        };
        let mut options = EncryptOptions {
            keys: KeyPlan::single(Vec::new()),
            rule: CryptRule::default(),
            mac_only_encrypted: false,
        };
        if let Some(rule) = rule_found {
            // An entry's own recipients replace the rule's keys, as sops' --age flag does.
            options.keys = match &rule.key_groups {
                _ if entry.recipients.is_some() => KeyPlan::single(Vec::new()),
                Some(groups) if !groups.is_empty() => KeyPlan {
                    groups: groups
                        .iter()
                        .map(|g| {
                            parse_all(g.age.as_ref().map(StringOrList::items).unwrap_or_default())
                        })
                        .collect::<Result<_, _>>()?,
                    threshold: rule.shamir_threshold,
                },
                _ => KeyPlan::single(parse_all(
                    rule.age
                        .as_ref()
                        .map(StringOrList::items)
                        .unwrap_or_default(),
                )?),
            };
            let rules = [
                ("unencrypted_suffix", &rule.unencrypted_suffix),
                ("encrypted_suffix", &rule.encrypted_suffix),
                ("unencrypted_regex", &rule.unencrypted_regex),
                ("encrypted_regex", &rule.encrypted_regex),
                ("unencrypted_comment_regex", &rule.unencrypted_comment_regex),
                ("encrypted_comment_regex", &rule.encrypted_comment_regex),
            ];
            let mut set = rules
                .iter()
                .filter_map(|(field, value)| value.as_ref().map(|v| (*field, v.clone())));
            if let Some((field, value)) = set.next() {
                options.rule = CryptRule::from_field(field, value).unwrap_or_default();
            }
            if set.next().is_some() {
                return Err(config_error(
                    "a creation rule sets more than one of the *_suffix / *_regex options".into(),
                ));
            }
            options.mac_only_encrypted = rule.mac_only_encrypted.unwrap_or(false);
        }
        if let Some(own) = &entry.recipients {
            let parsed = own
                .iter()
                .map(|r| {
                    Recipient::parse(r).map_err(|e| KeyError::Config {
                        path: self.manifest_path.clone(),
                        message: format!("the entry on line {}: {e}", entry.line),
                    })
                })
                .collect::<Result<_, _>>()?;
            options.keys = KeyPlan::single(parsed);
        }
        if options.keys.groups.iter().all(Vec::is_empty) {
            return Err(KeyError::NoRecipients {
                repo: entry.repo.clone(),
            });
        }
        // A key group without age recipients (pgp or kms only) would throw its share away
        // and could leave a file nobody can decrypt.
        if options.keys.groups.iter().any(Vec::is_empty) {
            return Err(config_error(format!(
                "a key group of the rule for {} has no age recipients (only age keys are supported)",
                entry.repo
            )));
        }
        Ok(options)
    }
}
