//! The SOPS dotenv store: key names in clear, each value encrypted, metadata as sorted
//! `sops_…` lines.
//!
//! Plaintext parsing follows sops exactly: lines split on `\n`, empty lines dropped, `#`
//! starts a comment, the key is everything before the first `=` and the value everything
//! after it, verbatim, except that the two characters `\n` become a line feed.

use crate::crypto::Identities;
use crate::secret::{DataKey, SecretBytes};
use crate::sops::cipher::{EncValue, ValueType};
use crate::sops::mac::{self, MacHasher};
use crate::sops::metadata::{flatten, unflatten, Metadata};
use crate::sops::{new_metadata, unlock_data_key, Decrypted, EncryptOptions, SopsError, Unlocked};

/// One line of a dotenv file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// The text after `#`.
    Comment(SecretBytes),
    Pair {
        key: String,
        value: SecretBytes,
    },
}

/// Parses a plaintext dotenv file. Errors name the line, never its content.
pub(crate) fn parse(plain: &[u8]) -> Result<Vec<Item>, SopsError> {
    let mut items = Vec::new();
    for (index, line) in plain.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix(b"#") {
            items.push(Item::Comment(SecretBytes::from(comment)));
            continue;
        }
        let syntax = |reason: &str| SopsError::Syntax {
            line: index + 1,
            reason: reason.to_string(),
        };
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| syntax("the line has no `=` (expected KEY=value)"))?;
        let key = std::str::from_utf8(&line[..eq])
            .map_err(|_| syntax("the key name is not UTF-8"))?
            .to_string();
        if key.is_empty() {
            return Err(syntax("the key name is empty"));
        }
        items.push(Item::Pair {
            key,
            value: unescape(&line[eq + 1..]),
        });
    }
    Ok(items)
}

/// Writes items back as sops prints them: `KEY=value` with line feeds as `\n`, `#comment`.
pub(crate) fn emit(items: &[Item]) -> SecretBytes {
    let size: usize = items
        .iter()
        .map(|i| match i {
            Item::Comment(c) => c.len() + 2,
            Item::Pair { key, value } => key.len() + value.len() * 2 + 2,
        })
        .sum();
    let mut out = SecretBytes::with_capacity(size);
    for item in items {
        match item {
            Item::Comment(text) => {
                out.push(b'#');
                out.extend_from_slice(text.expose());
            }
            Item::Pair { key, value } => {
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                escape_into(value.expose(), |piece| out.extend_from_slice(piece));
            }
        }
        out.push(b'\n');
    }
    out
}

fn unescape(raw: &[u8]) -> SecretBytes {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    SecretBytes::new(out)
}

/// Hands `value` to `put` piece by piece, each line feed written as the two characters `\n`
/// (into a secret buffer or a plain one).
fn escape_into(value: &[u8], mut put: impl FnMut(&[u8])) {
    let mut lines = value.split(|&b| b == b'\n');
    if let Some(first) = lines.next() {
        put(first);
    }
    for line in lines {
        put(b"\\n");
        put(line);
    }
}

/// Whether bytes look like a SOPS dotenv file (any `sops_` key line).
pub(crate) fn looks_encrypted(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"sops_mac=") || l.starts_with(b"sops_version="))
}

fn aad(key: &str) -> Vec<u8> {
    format!("{key}:").into_bytes()
}

/// The `sops` metadata of a SOPS dotenv file, read without decrypting anything.
pub(crate) fn metadata(file: &[u8]) -> Result<Metadata, SopsError> {
    split(file).map(|(metadata, _)| metadata)
}

/// Decrypts a SOPS dotenv file and checks its MAC.
pub(crate) fn decrypt(file: &[u8], identities: &Identities) -> Result<Decrypted, SopsError> {
    let (metadata, body) = split(file)?;
    let data_key = unlock_data_key(&metadata, identities)?;
    let rule = metadata.rule.clone().unwrap_or_default();
    let comments_encrypted = rule.encrypts(&[])?;
    let mut hasher = MacHasher::new(metadata.mac_only_encrypted);
    let mut plain_items = Vec::with_capacity(body.len());
    for item in body {
        plain_items.push(match item {
            Item::Comment(text) => {
                // A comment that does not decrypt is kept as written, as sops does.
                let decrypted = std::str::from_utf8(text.expose())
                    .ok()
                    .filter(|_| comments_encrypted)
                    .and_then(|t| EncValue::parse(t).ok())
                    .and_then(|enc| enc.decrypt(&data_key, b":").ok());
                Item::Comment(decrypted.unwrap_or(text))
            }
            Item::Pair { key, value } => {
                let encrypted = rule.encrypts(&[&key])? && !value.is_empty();
                let plain = if encrypted {
                    let text = std::str::from_utf8(value.expose())
                        .ok()
                        .filter(|t| EncValue::is_enc(t))
                        .ok_or_else(|| SopsError::NotEncrypted { key: key.clone() })?;
                    let enc = EncValue::parse(text).map_err(|source| SopsError::Value {
                        key: key.clone(),
                        source,
                    })?;
                    let plain =
                        enc.decrypt(&data_key, &aad(&key))
                            .map_err(|source| SopsError::Value {
                                key: key.clone(),
                                source,
                            })?;
                    mac::canonical(enc.ty, &plain).ok_or_else(|| SopsError::Value {
                        key: key.clone(),
                        source: crate::sops::CipherError::UnknownType,
                    })?
                } else {
                    value
                };
                hasher.add(plain.expose(), encrypted);
                Item::Pair { key, value: plain }
            }
        });
    }
    mac::verify(
        &metadata.mac,
        &metadata.lastmodified,
        &data_key,
        &hasher.finish(),
    )?;
    Ok(Decrypted {
        plaintext: emit(&plain_items),
        keys: Unlocked { metadata, data_key },
    })
}

/// A SOPS dotenv file's metadata (its `sops_*` lines) and its other lines, still encrypted.
fn split(file: &[u8]) -> Result<(Metadata, Vec<Item>), SopsError> {
    let items = parse(file)?;
    let mut meta_pairs = Vec::new();
    let mut body = Vec::new();
    for item in items {
        match item {
            Item::Pair { key, value } if key.starts_with("sops_") => {
                let value = String::from_utf8(value.expose().to_vec())
                    .map_err(|_| SopsError::Metadata(format!("{key} is not UTF-8")))?;
                meta_pairs.push((key["sops_".len()..].to_string(), value));
            }
            other => body.push(other),
        }
    }
    if meta_pairs.is_empty() {
        return Err(SopsError::NotSops("it has no sops_ metadata lines".into()));
    }
    Ok((Metadata::from_tree(&unflatten(&meta_pairs)?)?, body))
}

/// Encrypts a plaintext dotenv file into a new SOPS file.
///
/// `previous`, when given, is the decrypted file this one replaces: its data key is kept and
/// every value whose plaintext is unchanged keeps its exact ciphertext, as `sops edit` does.
pub(crate) fn encrypt(
    plain: &[u8],
    options: &EncryptOptions,
    previous: Option<(&Unlocked, &[u8])>,
) -> Result<Vec<u8>, SopsError> {
    let items = parse(plain)?;
    if items
        .iter()
        .any(|i| matches!(i, Item::Pair { key, .. } if key.starts_with("sops_")))
    {
        return Err(SopsError::AlreadyEncrypted);
    }
    let data_key = match previous {
        Some((p, _)) => p.data_key.clone(),
        None => DataKey::generate(),
    };
    let mut metadata = new_metadata(&data_key, options, Some(options.rule.clone()))?;
    if let Some((p, _)) = previous {
        metadata.key_groups.clone_from(&p.metadata.key_groups);
        metadata.shamir_threshold = p.metadata.shamir_threshold;
    }
    let stash = previous.map(|(_, file)| stash(file)).unwrap_or_default();
    let comments_encrypted = options.rule.encrypts(&[])?;
    let mut hasher = MacHasher::new(options.mac_only_encrypted);
    let mut out = Vec::with_capacity(plain.len() * 3 + 2048);
    let seal = |value: &[u8], aad: &[u8], ty: ValueType| -> String {
        stash
            .iter()
            .filter(|(a, enc)| a.as_slice() == aad && enc.ty == ty)
            .find_map(|(_, enc)| {
                let old = enc.decrypt(&data_key, aad).ok()?;
                (old.expose() == value).then(|| enc.format())
            })
            .unwrap_or_else(|| EncValue::encrypt(&data_key, value, aad, ty).format())
    };
    for item in &items {
        match item {
            Item::Comment(text) => {
                out.push(b'#');
                if comments_encrypted && !text.is_empty() {
                    out.extend_from_slice(seal(text.expose(), b":", ValueType::Comment).as_bytes());
                } else {
                    out.extend_from_slice(text.expose());
                }
            }
            Item::Pair { key, value } => {
                let encrypted = options.rule.encrypts(&[key])? && !value.is_empty();
                hasher.add(value.expose(), encrypted);
                out.extend_from_slice(key.as_bytes());
                out.push(b'=');
                if encrypted {
                    out.extend_from_slice(
                        seal(value.expose(), &aad(key), ValueType::Str).as_bytes(),
                    );
                } else {
                    escape_into(value.expose(), |piece| out.extend_from_slice(piece));
                }
            }
        }
        out.push(b'\n');
    }
    metadata.mac = mac::seal(&hasher.finish(), &metadata.lastmodified, &data_key)?;
    emit_metadata(&metadata, &mut out);
    Ok(out)
}

/// Replaces the `sops_` lines of an existing file (new recipients for the same data key);
/// every other line is kept byte for byte.
pub(crate) fn replace_metadata(file: &[u8], metadata: &Metadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + 1024);
    for line in file.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if !line.starts_with(b"sops_") {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    emit_metadata(metadata, &mut out);
    out
}

/// Appends the metadata as sorted `sops_` lines.
fn emit_metadata(metadata: &Metadata, out: &mut Vec<u8>) {
    let mut meta_lines = flatten(&metadata.to_tree());
    meta_lines.sort();
    for (key, value) in meta_lines {
        out.extend_from_slice(b"sops_");
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        escape_into(value.as_bytes(), |piece| out.extend_from_slice(piece));
        out.push(b'\n');
    }
}

/// The encrypted values of an existing file by AAD, for reusing unchanged ciphertexts.
fn stash(file: &[u8]) -> Vec<(Vec<u8>, EncValue)> {
    parse(file)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| {
            let (aad, text) = match item {
                Item::Comment(t) => (b":".to_vec(), t),
                Item::Pair { key, value } if !key.starts_with("sops_") => (aad(&key), value),
                Item::Pair { .. } => return None,
            };
            let enc = EncValue::parse(std::str::from_utf8(text.expose()).ok()?).ok()?;
            Some((aad, enc))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_verbatim() {
        let items = parse(b"# c\nA=b=c\n\nSPACES =  x  \nM=l1\\nl2\n").unwrap();
        assert_eq!(items.len(), 4);
        match &items[2] {
            Item::Pair { key, value } => {
                assert_eq!(key, "SPACES ");
                assert_eq!(value.expose(), b"  x  ");
            }
            Item::Comment(_) => panic!("expected a pair"),
        }
        assert_eq!(
            emit(&items).expose(),
            b"# c\nA=b=c\nSPACES =  x  \nM=l1\\nl2\n"
        );
    }

    #[test]
    fn line_without_equals_names_line_only() {
        let err = parse(b"A=1\nsecretvalue\n").unwrap_err().to_string();
        assert!(err.contains("line 2"));
        assert!(!err.contains("secretvalue"));
    }
}
