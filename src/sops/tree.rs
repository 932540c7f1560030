//! The SOPS tree shared by the YAML, JSON and INI stores, as sops holds it in memory
//! (`sops.TreeBranches`): documents of ordered maps, lists and typed scalars, with comments
//! kept as items in place.
//!
//! A store's codec turns its text into a [`Tree`] and back; the walk that encrypts and
//! decrypts values, checks the MAC and reuses unchanged ciphertext works on the tree alone,
//! so every tree store shares it.
//!
//! Strings and comments are held in zeroizing buffers: a decrypted tree is secret.

use zeroize::Zeroizing;

/// A string that is wiped when dropped.
pub(crate) type Text = Zeroizing<String>;

/// The documents of a file: one for JSON and INI, one or more for YAML. Each is a map.
pub(crate) type Tree = Vec<Branch>;

/// An ordered map: pairs and comments in file order (sops's `TreeBranch`).
pub(crate) type Branch = Vec<MapItem>;

/// One item of a map.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MapItem {
    /// A comment line: its text after the marker (`#`, or `;` in INI), leading space kept.
    Comment(Text),
    /// A key and its value. Keys are strings: sops refuses any other key type.
    Pair(String, Value),
}

/// One item of a list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListItem {
    Comment(Text),
    Value(Value),
}

/// A value in the tree.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Map(Branch),
    List(Vec<ListItem>),
    Scalar(Scalar),
}

/// A leaf, with the type sops records for it (`type:str|int|float|bool|time`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    /// `null`, `~` or an empty YAML scalar: never encrypted, not in the MAC.
    Null,
    Str(Text),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A YAML timestamp, held as Go's `time.RFC3339Nano` prints it (`2024-01-02T00:00:00Z`,
    /// `2001-12-14T21:59:43.1-05:00`): what sops encrypts and what it prints back.
    Time(String),
}

impl Scalar {
    /// A string scalar.
    pub(crate) fn str(text: impl Into<String>) -> Self {
        Self::Str(Zeroizing::new(text.into()))
    }
}

impl Value {
    /// A string leaf.
    pub(crate) fn str(text: impl Into<String>) -> Self {
        Self::Scalar(Scalar::str(text))
    }

    /// The value under `key` in a map.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Map(branch) => get(branch, key),
            _ => None,
        }
    }
}

/// The value under `key` in a branch (the first, should a file repeat a key).
pub(crate) fn get<'a>(branch: &'a Branch, key: &str) -> Option<&'a Value> {
    branch.iter().find_map(|item| match item {
        MapItem::Pair(k, v) if k == key => Some(v),
        _ => None,
    })
}

/// Converts a metadata JSON tree (serde_json, key order kept) into a tree value.
pub(crate) fn from_json(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Scalar(Scalar::Null),
        J::Bool(b) => Value::Scalar(Scalar::Bool(*b)),
        J::Number(n) => Value::Scalar(match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        }),
        J::String(s) => Value::str(s.clone()),
        J::Array(items) => Value::List(
            items
                .iter()
                .map(|v| ListItem::Value(from_json(v)))
                .collect(),
        ),
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| MapItem::Pair(k.clone(), from_json(v)))
                .collect(),
        ),
    }
}

/// Converts a tree value into a JSON tree (comments dropped): how the `sops` metadata block
/// of a tree store is handed to [`crate::sops::Metadata::from_tree`].
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Map(branch) => J::Object(
            branch
                .iter()
                .filter_map(|item| match item {
                    MapItem::Pair(k, v) => Some((k.clone(), to_json(v))),
                    MapItem::Comment(_) => None,
                })
                .collect(),
        ),
        Value::List(items) => J::Array(
            items
                .iter()
                .filter_map(|item| match item {
                    ListItem::Value(v) => Some(to_json(v)),
                    ListItem::Comment(_) => None,
                })
                .collect(),
        ),
        Value::Scalar(s) => match s {
            Scalar::Null => J::Null,
            Scalar::Str(t) => J::String(t.to_string()),
            Scalar::Int(i) => J::from(*i),
            Scalar::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Scalar::Bool(b) => J::Bool(*b),
            Scalar::Time(t) => J::String(t.clone()),
        },
    }
}
