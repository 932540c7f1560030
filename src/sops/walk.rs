//! The value walk of the tree stores (YAML, JSON, INI): which values and comments are
//! encrypted, their additional data (the key path), the MAC, and the reuse of unchanged
//! ciphertext, as sops 3.11's `Tree.Encrypt` / `Tree.Decrypt` do them.
//!
//! A leaf's path is the map keys from the document root; list indices are not part of it.
//! Comments are judged on their parent's path (and, with the comment rules, on the comments
//! before them), are never in the MAC, and one that does not decrypt is kept as written.
//! Nulls are left alone and not hashed.

use std::collections::HashMap;

use regex::Regex;
use zeroize::Zeroizing;

use super::cipher::{CipherError, EncValue, ValueType};
use super::mac::{self, MacHasher};
use super::metadata::CryptRule;
use super::tree::{Branch, ListItem, MapItem, Scalar, Text, Tree, Value};
use super::SopsError;
use crate::secret::{DataKey, SecretBytes};

/// The file's rule, compiled once.
#[derive(Debug)]
enum Selector {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedComment(Regex),
    EncryptedComment(Regex),
}

impl Selector {
    fn new(rule: &CryptRule) -> Result<Self, SopsError> {
        let regex = |pattern: &str| {
            Regex::new(pattern)
                .map_err(|_| SopsError::Metadata(format!("the rule regex `{pattern}` is invalid")))
        };
        Ok(match rule {
            CryptRule::UnencryptedSuffix(s) => Self::UnencryptedSuffix(s.clone()),
            CryptRule::EncryptedSuffix(s) => Self::EncryptedSuffix(s.clone()),
            CryptRule::UnencryptedRegex(r) => Self::UnencryptedRegex(regex(r)?),
            CryptRule::EncryptedRegex(r) => Self::EncryptedRegex(regex(r)?),
            CryptRule::UnencryptedCommentRegex(r) => Self::UnencryptedComment(regex(r)?),
            CryptRule::EncryptedCommentRegex(r) => Self::EncryptedComment(regex(r)?),
        })
    }

    /// sops's `shouldBeEncrypted`: `comments` holds, for each open map or list, the comments
    /// seen since its last value (the innermost last).
    fn encrypts(&self, path: &[String], comments: &[Vec<Text>], is_comment: bool) -> bool {
        match self {
            Self::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Self::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Self::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Self::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
            Self::UnencryptedComment(r) => !comments.iter().flatten().any(|c| r.is_match(c)),
            Self::EncryptedComment(r) => {
                let last = comments.len().saturating_sub(1);
                comments.iter().enumerate().any(|(i, level)| {
                    level.iter().enumerate().any(|(j, c)| {
                        // The comment that matches is itself left in clear.
                        let itself = is_comment && i == last && j + 1 == level.len();
                        !itself && r.is_match(c)
                    })
                })
            }
        }
    }
}

/// What a walk does at each leaf.
trait Visit {
    /// Whether the walk encrypts (its comments in lists come back as `ENC[…]` strings).
    const ENCRYPTS: bool = false;

    /// A value (not null); returns the value to keep.
    fn value(
        &mut self,
        scalar: Scalar,
        aad: &str,
        encrypted: bool,
        path: &[String],
    ) -> Result<Scalar, SopsError>;
    /// A comment; returns the text to keep.
    fn comment(&mut self, text: Text, aad: &str, encrypted: bool) -> Result<Text, SopsError>;
}

/// The walk itself: path and comment stack, in file order.
struct Walker<'a, V> {
    selector: &'a Selector,
    visit: V,
    path: Vec<String>,
    comments: Vec<Vec<Text>>,
}

impl<V: Visit> Walker<'_, V> {
    fn aad(&self) -> String {
        let mut aad = self.path.join(":");
        aad.push(':');
        aad
    }

    fn comment(&mut self, text: Text) -> Result<Text, SopsError> {
        if let Some(level) = self.comments.last_mut() {
            level.push(text.clone());
        }
        let encrypted = self.selector.encrypts(&self.path, &self.comments, true);
        let aad = self.aad();
        self.visit.comment(text, &aad, encrypted)
    }

    fn branch(&mut self, branch: Branch) -> Result<Branch, SopsError> {
        self.comments.push(Vec::new());
        let mut out = Vec::with_capacity(branch.len());
        for item in branch {
            out.push(match item {
                MapItem::Comment(text) => MapItem::Comment(self.comment(text)?),
                MapItem::Pair(key, value) => {
                    self.path.push(key);
                    let value = self.value(value);
                    let key = self.path.pop().unwrap_or_default();
                    if let Some(level) = self.comments.last_mut() {
                        level.clear();
                    }
                    MapItem::Pair(key, value?)
                }
            });
        }
        self.comments.pop();
        Ok(out)
    }

    fn list(&mut self, items: Vec<ListItem>) -> Result<Vec<ListItem>, SopsError> {
        self.comments.push(Vec::new());
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(match item {
                // sops writes an encrypted comment in a list as a list item (its walk does
                // not turn it back into a comment there), and reads such an item back as
                // the comment it is: neither is hashed.
                ListItem::Comment(text) => {
                    let text = self.comment(text)?;
                    if V::ENCRYPTS && EncValue::is_enc(&text) {
                        ListItem::Value(Value::Scalar(Scalar::Str(text)))
                    } else {
                        ListItem::Comment(text)
                    }
                }
                ListItem::Value(Value::Scalar(Scalar::Str(text))) if is_enc_comment(&text) => {
                    let encrypted = self.selector.encrypts(&self.path, &self.comments, false);
                    let aad = self.aad();
                    let text = self.visit.comment(text, &aad, encrypted)?;
                    if let Some(level) = self.comments.last_mut() {
                        level.clear();
                    }
                    if EncValue::is_enc(&text) {
                        ListItem::Value(Value::Scalar(Scalar::Str(text)))
                    } else {
                        ListItem::Comment(text)
                    }
                }
                ListItem::Value(value) => {
                    let value = self.value(value)?;
                    if let Some(level) = self.comments.last_mut() {
                        level.clear();
                    }
                    ListItem::Value(value)
                }
            });
        }
        self.comments.pop();
        Ok(out)
    }

    fn value(&mut self, value: Value) -> Result<Value, SopsError> {
        Ok(match value {
            Value::Map(branch) => Value::Map(self.branch(branch)?),
            Value::List(items) => Value::List(self.list(items)?),
            Value::Scalar(Scalar::Null) => Value::Scalar(Scalar::Null),
            Value::Scalar(scalar) => {
                let encrypted = self.selector.encrypts(&self.path, &self.comments, false);
                let aad = self.aad();
                Value::Scalar(self.visit.value(scalar, &aad, encrypted, &self.path)?)
            }
        })
    }
}

/// An `ENC[…]` value of type comment: how sops stores a comment that was in a list.
fn is_enc_comment(text: &str) -> bool {
    EncValue::is_enc(text) && text.ends_with(",type:comment]")
}

fn walk<V: Visit>(tree: Tree, rule: &CryptRule, visit: V) -> Result<(Tree, V), SopsError> {
    let selector = Selector::new(rule)?;
    let mut walker = Walker {
        selector: &selector,
        visit,
        path: Vec::new(),
        comments: Vec::new(),
    };
    let tree = tree
        .into_iter()
        .map(|branch| walker.branch(branch))
        .collect::<Result<_, _>>()?;
    Ok((tree, walker.visit))
}

/// The canonical bytes of a value (sops's `ToBytes`), its encrypted type, for the MAC and
/// for encryption. `None` for null.
pub(crate) fn scalar_bytes(scalar: &Scalar) -> Option<(SecretBytes, ValueType)> {
    Some(match scalar {
        Scalar::Null => return None,
        Scalar::Str(s) => (SecretBytes::from(s.as_bytes()), ValueType::Str),
        Scalar::Int(i) => (SecretBytes::new(i.to_string().into_bytes()), ValueType::Int),
        Scalar::Float(f) => (
            SecretBytes::new(mac::go_format_float(*f).into_bytes()),
            ValueType::Float,
        ),
        Scalar::Bool(b) => (
            SecretBytes::from(if *b { &b"True"[..] } else { &b"False"[..] }),
            ValueType::Bool,
        ),
        Scalar::Time(t) => (SecretBytes::from(t.as_bytes()), ValueType::Time),
    })
}

/// A decrypted plaintext read back as the typed value its `type` names, from the plaintext
/// and its canonical form (`mac::canonical`).
fn typed(ty: ValueType, plain: &SecretBytes, canonical: &SecretBytes) -> Option<Scalar> {
    let text = || std::str::from_utf8(canonical.expose()).ok();
    Some(match ty {
        ValueType::Str | ValueType::Comment => Scalar::Str(Zeroizing::new(
            String::from_utf8_lossy(plain.expose()).into_owned(),
        )),
        ValueType::Int => Scalar::Int(text()?.parse().ok()?),
        ValueType::Float => Scalar::Float(text()?.parse().ok().or_else(|| match text()? {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => None,
        })?),
        ValueType::Bool => Scalar::Bool(canonical.expose() == b"True"),
        ValueType::Time => Scalar::Time(text()?.to_string()),
    })
}

/// The dotted name of a value for messages (`database.password`), never its content.
fn key_name(path: &[String]) -> String {
    if path.is_empty() {
        "(top level)".into()
    } else {
        path.join(".")
    }
}

/// Decryption: every value the rule selects must be `ENC[…]` and authenticate.
struct Decrypting<'a> {
    key: &'a DataKey,
    hasher: MacHasher,
    stash: Option<Stash>,
}

impl Visit for Decrypting<'_> {
    fn value(
        &mut self,
        scalar: Scalar,
        aad: &str,
        encrypted: bool,
        path: &[String],
    ) -> Result<Scalar, SopsError> {
        let plain = match (&scalar, encrypted) {
            // An empty string is never encrypted.
            (Scalar::Str(s), true) if s.is_empty() => scalar,
            (Scalar::Str(s), true) => {
                let error = |source| SopsError::Value {
                    key: key_name(path),
                    source,
                };
                if !EncValue::is_enc(s) {
                    return Err(SopsError::NotEncrypted {
                        key: key_name(path),
                    });
                }
                let enc = EncValue::parse(s).map_err(error)?;
                let plain = enc.decrypt(self.key, aad.as_bytes()).map_err(error)?;
                // The MAC is over the decrypted bytes as sops reads them (a string that is
                // not UTF-8 included), not over their text form.
                let canonical =
                    mac::canonical(enc.ty, &plain).ok_or(error(CipherError::UnknownType))?;
                let value =
                    typed(enc.ty, &plain, &canonical).ok_or(error(CipherError::UnknownType))?;
                self.hasher.add(canonical.expose(), true);
                if let Some(stash) = &mut self.stash {
                    stash.put(aad, enc, &value);
                }
                return Ok(value);
            }
            (_, true) => {
                return Err(SopsError::NotEncrypted {
                    key: key_name(path),
                })
            }
            (_, false) => scalar,
        };
        if let Some((bytes, _)) = scalar_bytes(&plain) {
            self.hasher.add(bytes.expose(), encrypted);
        }
        Ok(plain)
    }

    fn comment(&mut self, text: Text, aad: &str, encrypted: bool) -> Result<Text, SopsError> {
        if !encrypted {
            return Ok(text);
        }
        // A comment that does not decrypt was written in clear (by hand, or an old sops).
        let Some(enc) = EncValue::parse(&text).ok() else {
            return Ok(text);
        };
        match enc.decrypt(self.key, aad.as_bytes()) {
            Ok(plain) => {
                let plain = Zeroizing::new(String::from_utf8_lossy(plain.expose()).into_owned());
                if let Some(stash) = &mut self.stash {
                    stash.put(aad, enc, &Scalar::Str(plain.clone()));
                }
                Ok(plain)
            }
            Err(_) => Ok(text),
        }
    }
}

/// Decrypts every document in place and checks the MAC; returns the plaintext tree.
pub(crate) fn decrypt(
    tree: Tree,
    rule: &CryptRule,
    mac_only_encrypted: bool,
    stored_mac: &str,
    lastmodified: &str,
    key: &DataKey,
) -> Result<Tree, SopsError> {
    let (tree, visit) = walk(
        tree,
        rule,
        Decrypting {
            key,
            hasher: MacHasher::new(mac_only_encrypted),
            stash: None,
        },
    )?;
    mac::verify(stored_mac, lastmodified, key, &visit.hasher.finish())?;
    Ok(tree)
}

/// The ciphertexts of a file's values, by additional data and plaintext: a value encrypted
/// again under the same key, path and type keeps its IV, hence its exact ciphertext (sops's
/// IV stash), so a rotated value changes one line of the `.enc`.
#[derive(Default)]
pub(crate) struct Stash {
    by_aad: HashMap<String, Vec<(SecretBytes, EncValue)>>,
}

impl Stash {
    /// Opens every value of an encrypted tree with its data key (the tree is the file being
    /// replaced, its metadata removed). Values that do not open are simply not stashed.
    pub(crate) fn from_tree(tree: Tree, rule: &CryptRule, key: &DataKey) -> Self {
        let visit = Decrypting {
            key,
            hasher: MacHasher::new(false),
            stash: Some(Self::default()),
        };
        walk(tree, rule, visit)
            .ok()
            .and_then(|(_, v)| v.stash)
            .unwrap_or_default()
    }

    fn put(&mut self, aad: &str, enc: EncValue, value: &Scalar) {
        if let Some((bytes, _)) = scalar_bytes(value) {
            self.by_aad
                .entry(aad.to_string())
                .or_default()
                .push((bytes, enc));
        }
    }

    fn get(&self, aad: &str, ty: ValueType, bytes: &SecretBytes) -> Option<&EncValue> {
        self.by_aad
            .get(aad)?
            .iter()
            .find(|(b, enc)| enc.ty == ty && b == bytes)
            .map(|(_, enc)| enc)
    }
}

/// Encryption: values the rule selects become `ENC[…]`, reusing the stash.
struct Encrypting<'a> {
    key: &'a DataKey,
    hasher: MacHasher,
    stash: &'a Stash,
}

impl Encrypting<'_> {
    fn seal(&self, bytes: &SecretBytes, aad: &str, ty: ValueType) -> String {
        if let Some(old) = self.stash.get(aad, ty, bytes) {
            return old.format();
        }
        EncValue::encrypt(self.key, bytes.expose(), aad.as_bytes(), ty).format()
    }
}

impl Visit for Encrypting<'_> {
    const ENCRYPTS: bool = true;

    fn value(
        &mut self,
        scalar: Scalar,
        aad: &str,
        encrypted: bool,
        _path: &[String],
    ) -> Result<Scalar, SopsError> {
        let Some((bytes, ty)) = scalar_bytes(&scalar) else {
            return Ok(scalar);
        };
        self.hasher.add(bytes.expose(), encrypted);
        if !encrypted || bytes.is_empty() && ty == ValueType::Str {
            return Ok(scalar);
        }
        Ok(Scalar::str(self.seal(&bytes, aad, ty)))
    }

    fn comment(&mut self, text: Text, aad: &str, encrypted: bool) -> Result<Text, SopsError> {
        if !encrypted || text.is_empty() {
            return Ok(text);
        }
        let bytes = SecretBytes::from(text.as_bytes());
        Ok(Zeroizing::new(self.seal(&bytes, aad, ValueType::Comment)))
    }
}

/// Encrypts a plaintext tree; returns it and the MAC digest (hex, not yet sealed).
pub(crate) fn encrypt(
    tree: Tree,
    rule: &CryptRule,
    mac_only_encrypted: bool,
    key: &DataKey,
    stash: &Stash,
) -> Result<(Tree, String), SopsError> {
    let (tree, visit) = walk(
        tree,
        rule,
        Encrypting {
            key,
            hasher: MacHasher::new(mac_only_encrypted),
            stash,
        },
    )?;
    Ok((tree, visit.hasher.finish()))
}

/// Finds the values the rule says to encrypt that are stored in clear (`check`, no key
/// needed): their key paths (list items named by the list's key), never their values.
struct Auditing {
    clear: Vec<String>,
}

impl Visit for Auditing {
    fn value(
        &mut self,
        scalar: Scalar,
        _aad: &str,
        encrypted: bool,
        path: &[String],
    ) -> Result<Scalar, SopsError> {
        let in_clear = match &scalar {
            Scalar::Str(s) => !s.is_empty() && !EncValue::is_enc(s),
            Scalar::Null => false,
            _ => true,
        };
        if encrypted && in_clear {
            self.clear.push(key_name(path));
        }
        Ok(scalar)
    }

    fn comment(&mut self, text: Text, _aad: &str, _encrypted: bool) -> Result<Text, SopsError> {
        Ok(text)
    }
}

/// The key paths of values stored in clear that `rule` says to encrypt.
pub(crate) fn clear_values(tree: Tree, rule: &CryptRule) -> Result<Vec<String>, SopsError> {
    let (_, audit) = walk(tree, rule, Auditing { clear: Vec::new() })?;
    Ok(audit.clear)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pair(k: &str, v: Value) -> MapItem {
        MapItem::Pair(k.into(), v)
    }

    fn comment(t: &str) -> MapItem {
        MapItem::Comment(Zeroizing::new(t.into()))
    }

    fn sample() -> Tree {
        vec![vec![
            comment(" top"),
            pair(
                "app",
                Value::Map(vec![
                    pair("name", Value::str("demo")),
                    pair("port", Value::Scalar(Scalar::Int(8080))),
                    pair("ratio", Value::Scalar(Scalar::Float(0.5))),
                    pair("on", Value::Scalar(Scalar::Bool(true))),
                    pair("none", Value::Scalar(Scalar::Null)),
                    pair("empty", Value::str("")),
                ]),
            ),
            pair(
                "list",
                Value::List(vec![
                    ListItem::Value(Value::str("a")),
                    ListItem::Value(Value::List(vec![ListItem::Value(Value::str("b"))])),
                ]),
            ),
            pair(
                "public_unencrypted",
                Value::Map(vec![pair("host", Value::str("x"))]),
            ),
        ]]
    }

    fn leaf<'a>(tree: &'a Tree, path: &[&str]) -> &'a Value {
        let mut value = super::super::tree::get(&tree[0], path[0]).unwrap();
        for key in &path[1..] {
            value = value.get(key).unwrap();
        }
        value
    }

    #[test]
    fn round_trip_with_types_paths_and_mac() {
        let key = DataKey::generate();
        let rule = CryptRule::default();
        let (enc, digest) = encrypt(sample(), &rule, false, &key, &Stash::default()).unwrap();
        // The MAC covers every non-null value, clear ones included, in file order.
        let mut h = MacHasher::new(false);
        for v in ["demo", "8080", "0.5", "True", "", "a", "b", "x"] {
            h.add(v.as_bytes(), true);
        }
        assert_eq!(digest, h.finish());
        let Value::Scalar(Scalar::Str(port)) = leaf(&enc, &["app", "port"]) else {
            panic!("port not encrypted")
        };
        let port = EncValue::parse(port).unwrap();
        assert_eq!(port.ty, ValueType::Int);
        assert_eq!(port.decrypt(&key, b"app:port:").unwrap().expose(), b"8080");
        assert_eq!(leaf(&enc, &["app", "empty"]), &Value::str(""));
        assert_eq!(
            leaf(&enc, &["public_unencrypted", "host"]),
            &Value::str("x")
        );
        let lm = "2026-01-01T00:00:00Z";
        let sealed = mac::seal(&digest, lm, &key).unwrap();
        let plain = decrypt(enc.clone(), &rule, false, &sealed, lm, &key).unwrap();
        assert_eq!(plain, sample());
        // A list item's AAD is its owner's path: moving it elsewhere fails.
        let mut moved = enc;
        let MapItem::Pair(_, Value::Map(app)) = &mut moved[0][1] else {
            panic!()
        };
        app.swap(0, 1);
        assert!(decrypt(moved, &rule, false, &sealed, lm, &key).is_err());
    }

    #[test]
    fn stash_keeps_unchanged_ciphertext() {
        let key = DataKey::generate();
        let rule = CryptRule::default();
        let (enc, _) = encrypt(sample(), &rule, false, &key, &Stash::default()).unwrap();
        let stash = Stash::from_tree(enc.clone(), &rule, &key);
        let mut changed = sample();
        let MapItem::Pair(_, Value::Map(app)) = &mut changed[0][1] else {
            panic!()
        };
        app[0] = pair("name", Value::str("other"));
        let (again, _) = encrypt(changed, &rule, false, &key, &stash).unwrap();
        assert_eq!(leaf(&again, &["app", "port"]), leaf(&enc, &["app", "port"]));
        assert_eq!(again[0][0], enc[0][0], "the comment keeps its ciphertext");
        assert_ne!(leaf(&again, &["app", "name"]), leaf(&enc, &["app", "name"]));
    }

    #[test]
    fn encrypted_comment_regex_selects_the_values_after_a_marker() {
        let rule = CryptRule::EncryptedCommentRegex("sops:enc".into());
        let selector = Selector::new(&rule).unwrap();
        let marker = vec![vec![Zeroizing::new(" sops:enc".to_string())]];
        assert!(selector.encrypts(&[], &marker, false));
        assert!(
            !selector.encrypts(&[], &marker, true),
            "the marker stays clear"
        );
        assert!(!selector.encrypts(&[], &[vec![]], false));
    }
}
