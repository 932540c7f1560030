//! Key paths into a SOPS tree: `database.password`, `hosts[2].token`, `["a.b"].c`.
//!
//! One syntax for the manifest's `key` (extraction) and for the names `diff`, `status` and
//! `show` give values. A map key is written bare when it holds none of `.`, `[`, `]` or `"`
//! and is not empty, else as `["…"]` with `\\` and `\"` escaped. A list index counts the
//! list's values (comments are not items). Only the first document of a multi-document YAML
//! file is addressed by `key`; other documents are named `doc[N]` in diffs.

use super::tree::{Branch, ListItem, MapItem, Scalar, Tree, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// A parsed key path (at least one step, the first a map key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPath(Vec<Step>);

impl KeyPath {
    /// Parses `a.b[2]["c.d"]`; the message says what is wrong, never echoes more than the
    /// path itself (which is not secret).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut expect_key = true;
        while i < bytes.len() {
            match bytes[i] {
                b'[' if bytes.get(i + 1) == Some(&b'"') => {
                    let (key, next) = quoted(text, i + 2)?;
                    steps.push(Step::Key(key));
                    i = next;
                    expect_key = false;
                }
                b'[' => {
                    let end = text[i..]
                        .find(']')
                        .map(|e| i + e)
                        .ok_or_else(|| format!("`{text}`: an unclosed `[`"))?;
                    let index = text[i + 1..end].parse().map_err(|_| {
                        format!("`{text}`: `[…]` holds a list index or a quoted key")
                    })?;
                    if steps.is_empty() {
                        return Err(format!(
                            "`{text}` starts with a list index; a file's top level is a map"
                        ));
                    }
                    steps.push(Step::Index(index));
                    i = end + 1;
                    expect_key = false;
                }
                b'.' if !expect_key => {
                    i += 1;
                    expect_key = true;
                    if i == bytes.len() {
                        return Err(format!("`{text}` ends with `.`"));
                    }
                }
                _ if expect_key => {
                    let end = text[i..].find(['.', '[']).map_or(text.len(), |e| i + e);
                    let key = &text[i..end];
                    if key.is_empty() || key.contains([']', '"']) {
                        return Err(format!("`{text}`: write the key `{key}` as [\"…\"]"));
                    }
                    steps.push(Step::Key(key.to_string()));
                    i = end;
                    expect_key = false;
                }
                _ => {
                    return Err(format!(
                        "`{text}`: expected `.` or `[` at character {}",
                        i + 1
                    ))
                }
            }
        }
        if steps.is_empty() {
            return Err("an empty key path".into());
        }
        Ok(Self(steps))
    }

    pub(crate) fn steps(&self) -> &[Step] {
        &self.0
    }

    /// The value at this path in the first document.
    pub(crate) fn get<'a>(&self, tree: &'a Tree) -> Option<&'a Value> {
        let mut steps = self.0.iter();
        let Some(Step::Key(first)) = steps.next() else {
            return None;
        };
        let mut value = super::tree::get(tree.first()?, first)?;
        for step in steps {
            value = match (step, value) {
                (Step::Key(k), Value::Map(branch)) => super::tree::get(branch, k)?,
                (Step::Index(n), Value::List(items)) => list_values(items).nth(*n)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// The value at this path in the first document, to replace it.
    pub(crate) fn get_mut<'a>(&self, tree: &'a mut Tree) -> Option<&'a mut Value> {
        let mut steps = self.0.iter();
        let Some(Step::Key(first)) = steps.next() else {
            return None;
        };
        let mut value = get_in_mut(tree.first_mut()?, first)?;
        for step in steps {
            value = match (step, value) {
                (Step::Key(k), Value::Map(branch)) => get_in_mut(branch, k)?,
                (Step::Index(n), Value::List(items)) => items
                    .iter_mut()
                    .filter_map(|i| match i {
                        ListItem::Value(v) => Some(v),
                        ListItem::Comment(_) => None,
                    })
                    .nth(*n)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) => push_key(f, k, i == 0)?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn push_key(f: &mut impl std::fmt::Write, key: &str, first: bool) -> std::fmt::Result {
    if key.is_empty() || key.contains(['.', '[', ']', '"']) {
        f.write_str("[\"")?;
        for c in key.chars() {
            if matches!(c, '"' | '\\') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_str("\"]")
    } else {
        if !first {
            f.write_char('.')?;
        }
        f.write_str(key)
    }
}

/// A `["…"]` key whose text starts at `start`; returns it and the index after `]`.
fn quoted(text: &str, start: usize) -> Result<(String, usize), String> {
    let mut key = String::new();
    let mut chars = text[start..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => key.push(e),
                None => break,
            },
            '"' => {
                let close = start + offset + 1;
                return if text[close..].starts_with(']') {
                    Ok((key, close + 1))
                } else {
                    Err(format!("`{text}`: expected `]` after a quoted key"))
                };
            }
            c => key.push(c),
        }
    }
    Err(format!("`{text}`: an unclosed quoted key"))
}

fn list_values(items: &[ListItem]) -> impl Iterator<Item = &Value> {
    items.iter().filter_map(|i| match i {
        ListItem::Value(v) => Some(v),
        ListItem::Comment(_) => None,
    })
}

fn get_in_mut<'a>(branch: &'a mut Branch, key: &str) -> Option<&'a mut Value> {
    branch.iter_mut().find_map(|item| match item {
        MapItem::Pair(k, v) if k == key => Some(v),
        _ => None,
    })
}

/// Every leaf of a tree with its path, in file order: what `diff` compares. Nulls and
/// empty containers are leaves too, so that adding or emptying one shows.
pub(crate) fn leaves(tree: &Tree) -> Vec<(String, LeafValue<'_>)> {
    let mut out = Vec::new();
    for (doc, branch) in tree.iter().enumerate() {
        let prefix = if doc == 0 {
            String::new()
        } else {
            format!("doc[{doc}]")
        };
        walk_branch(branch, &prefix, &mut out);
    }
    out
}

/// A leaf as `diff` sees it.
#[derive(Debug, PartialEq)]
pub(crate) enum LeafValue<'a> {
    Scalar(&'a Scalar),
    EmptyMap,
    EmptyList,
}

fn walk_branch<'a>(branch: &'a Branch, prefix: &str, out: &mut Vec<(String, LeafValue<'a>)>) {
    for item in branch {
        if let MapItem::Pair(key, value) = item {
            let mut path = prefix.to_string();
            // A document prefix is followed by a dot like any other step.
            let _ = push_key(&mut path, key, prefix.is_empty());
            walk_value(value, path, out);
        }
    }
}

fn walk_value<'a>(value: &'a Value, path: String, out: &mut Vec<(String, LeafValue<'a>)>) {
    match value {
        Value::Map(branch) if !branch.iter().any(|i| matches!(i, MapItem::Pair(..))) => {
            out.push((path, LeafValue::EmptyMap));
        }
        Value::Map(branch) => walk_branch(branch, &path, out),
        Value::List(items) => {
            let mut any = false;
            for (n, v) in list_values(items).enumerate() {
                any = true;
                walk_value(v, format!("{path}[{n}]"), out);
            }
            if !any {
                out.push((path, LeafValue::EmptyList));
            }
        }
        Value::Scalar(s) => out.push((path, LeafValue::Scalar(s))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        for (text, steps) in [
            (
                "database.password",
                vec![Step::Key("database".into()), Step::Key("password".into())],
            ),
            (
                "hosts[2].token",
                vec![
                    Step::Key("hosts".into()),
                    Step::Index(2),
                    Step::Key("token".into()),
                ],
            ),
            (
                "[\"a.b\"].c",
                vec![Step::Key("a.b".into()), Step::Key("c".into())],
            ),
            (
                "x[\"q\\\"\"]",
                vec![Step::Key("x".into()), Step::Key("q\"".into())],
            ),
        ] {
            let path = KeyPath::parse(text).unwrap();
            assert_eq!(path.steps(), steps.as_slice(), "{text}");
            assert_eq!(path.to_string(), text);
        }
        for bad in ["", "a.", ".a", "[0]", "a[x]", "a[\"b\"", "a..b", "a]b"] {
            assert!(KeyPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn get_skips_comments_in_lists_and_leaves_name_every_value() {
        use zeroize::Zeroizing;
        let tree: Tree = vec![vec![MapItem::Pair(
            "hosts".into(),
            Value::List(vec![
                ListItem::Comment(Zeroizing::new(" first".into())),
                ListItem::Value(Value::str("a")),
                ListItem::Value(Value::Map(vec![MapItem::Pair(
                    "token".into(),
                    Value::str("t"),
                )])),
                ListItem::Value(Value::List(vec![])),
            ]),
        )]];
        let path = KeyPath::parse("hosts[1].token").unwrap();
        assert_eq!(path.get(&tree), Some(&Value::str("t")));
        let names: Vec<_> = leaves(&tree).into_iter().map(|(p, _)| p).collect();
        assert_eq!(names, ["hosts[0]", "hosts[1].token", "hosts[2]"]);
    }
}
