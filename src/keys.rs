//! Where keys come from: identities for decrypting, recipients for encrypting.
//!
//! Identities are merged from every source sops reads (the `--identity` flags, the manifest's
//! `server.identity`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, the default
//! `~/.config/sops/age/keys.txt`) and parsed once a run. Recipients come from the entry's own
//! `recipients`, else from the first `.sops.yaml` creation rule whose `path_regex` matches the
//! repo path, as sops chooses them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::crypto::{CryptoError, Identities, IdentitySource, Recipient};
use crate::manifest::Entry;
use crate::secret::SecretBytes;
use crate::sops::{CryptRule, EncryptOptions, KeyPlan};

/// Why keys could not be found or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read the identity file: {source}", path.display())]
    ReadIdentity {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("no age identity found (looked in: {})", .looked.join(", "))]
    NoIdentity { looked: Vec<String> },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{repo}: no recipients to encrypt to")]
    NoRecipients { repo: String },
}

/// Identity sources as the settings resolved them.
#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    /// `--identity` files: each must exist.
    pub explicit: Vec<PathBuf>,
    /// `server.identity` from the manifest.
    pub manifest: Option<PathBuf>,
    pub env_key_file: Option<PathBuf>,
    pub env_key: Option<SecretBytes>,
    pub default_file: Option<PathBuf>,
}

/// Loads and parses every identity that is available.
pub fn load_identities(config: &IdentityConfig) -> Result<Identities, KeyError> {
    let mut sources = Vec::new();
    let mut looked = Vec::new();
    for path in &config.explicit {
        let contents = std::fs::read(path).map_err(|source| KeyError::ReadIdentity {
            path: path.clone(),
            source,
        })?;
        sources.push(IdentitySource {
            origin: path.display().to_string(),
            contents: SecretBytes::new(contents),
        });
    }
    let optional_files = [
        (config.manifest.as_ref(), "server.identity"),
        (config.env_key_file.as_ref(), "SOPS_AGE_KEY_FILE"),
        (config.default_file.as_ref(), "default"),
    ];
    for (path, label) in optional_files {
        let Some(path) = path else { continue };
        match std::fs::read(path) {
            Ok(contents) => sources.push(IdentitySource {
                origin: path.display().to_string(),
                contents: SecretBytes::new(contents),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(format!("{} ({label}, missing)", path.display()));
            }
            Err(source) => {
                return Err(KeyError::ReadIdentity {
                    path: path.clone(),
                    source,
                })
            }
        }
    }
    if let Some(key) = &config.env_key {
        sources.push(IdentitySource {
            origin: "SOPS_AGE_KEY".into(),
            contents: key.clone(),
        });
    }
    if sources.is_empty() {
        looked.push("--identity (not given)".into());
        if config.env_key.is_none() {
            looked.push("SOPS_AGE_KEY (unset)".into());
        }
        return Err(KeyError::NoIdentity { looked });
    }
    Ok(Identities::parse(&sources)?)
}

/// The default identity file sops reads: `$XDG_CONFIG_HOME/sops/age/keys.txt`, or under
/// `~/.config`.
pub fn default_identity_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("sops").join("age").join("keys.txt"))
}

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

/// The parsed `.sops.yaml` beside the manifest, if there is one.
#[derive(Debug)]
pub struct Recipients {
    config_path: PathBuf,
    rules: Vec<CreationRule>,
}

impl Recipients {
    /// Reads `.sops.yaml` in `repo_root` (none is fine: entries may list recipients).
    pub fn load(repo_root: &Path) -> Result<Self, KeyError> {
        let config_path = repo_root.join(".sops.yaml");
        let rules = match std::fs::read_to_string(&config_path) {
            Ok(text) => {
                let parsed: SopsConfig =
                    serde_yaml_ng::from_str(&text).map_err(|e| KeyError::Config {
                        path: config_path.clone(),
                        message: format!("is not a valid sops config ({e})"),
                    })?;
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
        Ok(Self { config_path, rules })
    }

    /// How to encrypt `entry`: its recipients, Shamir threshold and encryption rule.
    pub fn options_for(&self, entry: &Entry) -> Result<EncryptOptions, KeyError> {
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
        let parse_all = |items: Vec<String>| -> Result<Vec<Recipient>, KeyError> {
            items
                .iter()
                .map(|r| Recipient::parse(r).map_err(KeyError::from))
                .collect()
        };
        let mut options = EncryptOptions {
            keys: KeyPlan::single(Vec::new()),
            rule: CryptRule::default(),
            mac_only_encrypted: false,
        };
        if let Some(rule) = rule_found {
            options.keys = match &rule.key_groups {
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
            options.keys = KeyPlan::single(parse_all(own.clone())?);
        }
        if options.keys.groups.iter().all(Vec::is_empty) {
            return Err(KeyError::NoRecipients {
                repo: entry.repo.clone(),
            });
        }
        Ok(options)
    }
}
