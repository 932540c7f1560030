//! Entries that are a part of a YAML, JSON or INI `.enc`, not all of it.
//!
//! `key = "database.password"`: the server file holds that value's raw bytes (no newline
//! added), as sops-nix writes it. Reading takes the value out of the decrypted tree; writing
//! puts the server file's bytes back in its place, keeping the value's type when the new
//! text still is one (`8080` stays an int), so that the `.enc` changes only there.
//!
//! `as = "files"` on a tree: one file per top-level scalar key. The folder machinery works
//! on a dotenv view of those keys ([`files_view`]); encrypt merges the view back into the
//! tree ([`merge_files_view`]), leaving nested maps, lists and comments as they are.

use zeroize::Zeroizing;

use crate::error::FileError;
use crate::format::Format;
use crate::secret::SecretBytes;
use crate::sops::keypath::{KeyPath, Step};
use crate::sops::store::dotenv::{self, Item};
use crate::sops::store::Codec;
use crate::sops::tree::{Branch, MapItem, Scalar, Tree, Value};

/// The server bytes of `key` in a decrypted file (`whole`, as `sops -d` prints it).
pub(crate) fn value(codec: Codec, whole: &[u8], key: &KeyPath) -> Result<SecretBytes, FileError> {
    let tree = codec.parse(whole)?;
    let value = key
        .get(&tree)
        .ok_or_else(|| extract_error(key, "is not in the file"))?;
    match value {
        Value::Scalar(scalar) => file_bytes(scalar).ok_or_else(|| extract_error(key, "is null")),
        Value::Map(_) | Value::List(_) => Err(extract_error(
            key,
            "is a map or a list; `key` names one value (a string, number or bool)",
        )),
    }
}

/// Sets `key` in a decrypted tree to `server` (the server file's bytes). A key that is not
/// there yet is added to its map (maps on the way are created).
pub(crate) fn set(tree: &mut Tree, key: &KeyPath, server: &[u8]) -> Result<(), FileError> {
    let text = std::str::from_utf8(server).map_err(|_| {
        extract_error(
            key,
            "cannot take the server file's bytes: they are not UTF-8",
        )
    })?;
    if let Some(slot) = key.get_mut(tree) {
        let new = match slot {
            Value::Scalar(old) => typed_like(old, text),
            Value::Map(_) | Value::List(_) => {
                return Err(extract_error(key, "is a map or a list in the file"))
            }
        };
        *slot = Value::Scalar(new);
        return Ok(());
    }
    insert(tree, key, Value::str(text))
}

/// The new text as the old value's type when it reads back as exactly that text (`8081` stays
/// an int), else a string: `2.50` or `+8081` would be re-spelled, and the server file would
/// never again match what the `.enc` holds.
fn typed_like(old: &Scalar, text: &str) -> Scalar {
    let exact = match old {
        Scalar::Int(_) => text
            .parse::<i64>()
            .ok()
            .filter(|i| i.to_string() == text)
            .map(Scalar::Int),
        Scalar::Float(_) => text
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && crate::sops::mac::go_format_float(*f) == text)
            .map(Scalar::Float),
        Scalar::Bool(_) => match text {
            "true" => Some(Scalar::Bool(true)),
            "false" => Some(Scalar::Bool(false)),
            _ => None,
        },
        Scalar::Str(_) | Scalar::Null | Scalar::Time(_) => None,
    };
    exact.unwrap_or_else(|| Scalar::Str(Zeroizing::new(text.to_string())))
}

fn insert(tree: &mut Tree, key: &KeyPath, value: Value) -> Result<(), FileError> {
    if tree.is_empty() {
        tree.push(Vec::new());
    }
    let steps = key.steps();
    let mut branch = &mut tree[0];
    for (i, step) in steps.iter().enumerate() {
        let Step::Key(name) = step else {
            return Err(extract_error(
                key,
                "is not in the file (a list item cannot be added)",
            ));
        };
        let last = i + 1 == steps.len();
        let at = branch
            .iter()
            .position(|item| matches!(item, MapItem::Pair(k, _) if k == name));
        let at = match at {
            Some(at) => at,
            None => {
                let new = if last {
                    value.clone()
                } else {
                    Value::Map(Vec::new())
                };
                branch.push(MapItem::Pair(name.clone(), new));
                branch.len() - 1
            }
        };
        if last {
            return Ok(());
        }
        let MapItem::Pair(_, Value::Map(next)) = &mut branch[at] else {
            return Err(extract_error(key, "goes through a value that is not a map"));
        };
        branch = next;
    }
    Ok(())
}

/// The top-level scalars of a decrypted tree as a dotenv text (`KEY=value`, in file order):
/// what an `as = "files"` entry's folder holds.
pub(crate) fn files_view(codec: Codec, whole: &[u8]) -> Result<SecretBytes, FileError> {
    let tree = codec.parse(whole)?;
    Ok(dotenv::emit(&scalar_items(tree.first())))
}

/// The key names of a tree `.enc`'s top-level scalars, read without a key (they are in
/// clear); `None` when `bytes` is not a tree file.
pub(crate) fn top_level_keys(bytes: &[u8]) -> Option<Vec<String>> {
    let codec = Format::detect(bytes)?.codec()?;
    let tree = codec.parse_data(bytes).ok()?;
    let items = scalar_items(tree.first());
    Some(
        items
            .into_iter()
            .filter_map(|i| match i {
                Item::Pair { key, .. } => Some(key),
                Item::Comment(_) => None,
            })
            .collect(),
    )
}

fn scalar_items(branch: Option<&Branch>) -> Vec<Item> {
    branch
        .into_iter()
        .flatten()
        .filter_map(|item| match item {
            MapItem::Pair(key, Value::Scalar(scalar)) => Some(Item::Pair {
                key: key.clone(),
                value: file_bytes(scalar)?,
            }),
            _ => None,
        })
        .collect()
}

/// A scalar as its server file holds it: a string's bytes, a number or bool as text
/// (`8080`, `true`); `None` for null, which has no file.
fn file_bytes(scalar: &Scalar) -> Option<SecretBytes> {
    Some(match scalar {
        Scalar::Null => return None,
        Scalar::Str(s) => SecretBytes::from(s.as_bytes()),
        Scalar::Int(i) => SecretBytes::new(i.to_string().into_bytes()),
        Scalar::Float(f) => SecretBytes::new(crate::sops::mac::go_format_float(*f).into_bytes()),
        Scalar::Bool(b) => SecretBytes::from(b.to_string().as_bytes()),
        Scalar::Time(t) => SecretBytes::from(t.as_bytes()),
    })
}

/// Puts a files view (dotenv text of the folder) back into a decrypted tree: its keys'
/// values set (types kept where they still fit), top-level scalars it no longer has
/// removed, new keys appended. Nested values and comments stay.
pub(crate) fn merge_files_view(tree: &mut Tree, view: &[u8]) -> Result<(), FileError> {
    let items = dotenv::parse(view)?;
    let mut values: Vec<(String, SecretBytes)> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Pair { key, value } => Some((key, value)),
            Item::Comment(_) => None,
        })
        .collect();
    if tree.is_empty() {
        tree.push(Vec::new());
    }
    let branch = &mut tree[0];
    let mut error = None;
    branch.retain_mut(|item| {
        let MapItem::Pair(key, Value::Scalar(old)) = item else {
            return true;
        };
        if *old == Scalar::Null {
            return true;
        }
        let Some(at) = values.iter().position(|(k, _)| k == key) else {
            return false;
        };
        let (_, new) = values.remove(at);
        match std::str::from_utf8(new.expose()) {
            Ok(text) => *old = typed_like(old, text),
            Err(_) => error = Some(key.clone()),
        }
        true
    });
    if let Some(key) = error {
        return Err(not_utf8(&key));
    }
    for (key, value) in values {
        let text = std::str::from_utf8(value.expose()).map_err(|_| not_utf8(&key))?;
        branch.push(MapItem::Pair(key, Value::str(text)));
    }
    Ok(())
}

fn not_utf8(key: &str) -> FileError {
    FileError::Extract {
        key: key.to_string(),
        reason: "cannot go into a YAML, JSON or INI file: the file's bytes are not UTF-8".into(),
    }
}

fn extract_error(key: &KeyPath, reason: &str) -> FileError {
    FileError::Extract {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_keeping_their_type() {
        let whole = br#"{"db": {"password": "old", "port": 5432}, "list": [1]}"#;
        let codec = Codec::Json;
        let pw = KeyPath::parse("db.password").unwrap();
        let port = KeyPath::parse("db.port").unwrap();
        assert_eq!(value(codec, whole, &pw).unwrap().expose(), b"old");
        assert_eq!(value(codec, whole, &port).unwrap().expose(), b"5432");
        assert!(value(codec, whole, &KeyPath::parse("list").unwrap()).is_err());
        let mut tree = codec.parse(whole).unwrap();
        set(&mut tree, &port, b"6543").unwrap();
        set(&mut tree, &pw, b"new\n").unwrap();
        set(&mut tree, &KeyPath::parse("db.extra.token").unwrap(), b"t").unwrap();
        assert!(set(&mut tree, &KeyPath::parse("list[3]").unwrap(), b"x").is_err());
        let text = String::from_utf8(codec.emit(&tree)).unwrap();
        assert_eq!(
            text,
            "{\n\t\"db\": {\n\t\t\"password\": \"new\\n\",\n\t\t\"port\": 6543,\n\t\t\"extra\": {\n\t\t\t\"token\": \"t\"\n\t\t}\n\t},\n\t\"list\": [\n\t\t1\n\t]\n}\n"
        );
    }
}
