//! Drift between a repo plaintext and a server plaintext, with every value masked (but for
//! `plain = true` entries, whose text diff is in clear).
//!
//! dotenv files are compared as entries (keys, values, comments, order), so a blank line is
//! not drift; YAML, JSON and INI files value by value under their key paths; other files get a unified diff in which every line is replaced by its length.
//! Nothing here does I/O, and nothing returned holds a value.

use std::collections::HashMap;

use serde::Serialize;
use similar::TextDiff;

use crate::output::sanitize;
use crate::secret::SecretBytes;
use crate::sops::store::dotenv::Item;
use crate::sops::tree::{Branch, ListItem, MapItem, Tree, Value};

/// One difference in a dotenv file; `repo` is the old side, `server` the new.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum KeyChange {
    /// On the server, not in the repo.
    Added { key: String, len: usize },
    /// In the repo, not on the server.
    Removed { key: String, len: usize },
    Changed {
        key: String,
        old_len: usize,
        new_len: usize,
    },
    /// Comments differ (count on each side).
    Comments { old: usize, new: usize },
    /// Same keys and values in another order.
    Order,
}

/// Compares two dotenv files entry by entry.
pub(crate) fn dotenv(repo: &[Item], server: &[Item]) -> Vec<KeyChange> {
    let pairs = |items: &[Item]| -> Vec<(String, SecretBytes)> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Pair { key, value } => Some((key.clone(), value.clone())),
                Item::Comment(_) => None,
            })
            .collect()
    };
    let comments = |items: &[Item]| -> Vec<SecretBytes> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Comment(c) => Some(c.clone()),
                Item::Pair { .. } => None,
            })
            .collect()
    };
    let (old, new) = (pairs(repo), pairs(server));
    // A key given twice counts with its last value, as most dotenv readers take it.
    let old_map: HashMap<&str, &SecretBytes> = old.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let new_map: HashMap<&str, &SecretBytes> = new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut changes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (key, _) in &old {
        if !seen.insert(key.as_str()) {
            continue;
        }
        let old_value = old_map[key.as_str()];
        match new_map.get(key.as_str()) {
            None => changes.push(KeyChange::Removed {
                key: key.clone(),
                len: old_value.display_len(),
            }),
            Some(new_value) if *new_value != old_value => changes.push(KeyChange::Changed {
                key: key.clone(),
                old_len: old_value.display_len(),
                new_len: new_value.display_len(),
            }),
            Some(_) => {}
        }
    }
    let mut seen_new = std::collections::HashSet::new();
    for (key, _) in &new {
        if seen_new.insert(key.as_str()) && !old_map.contains_key(key.as_str()) {
            changes.push(KeyChange::Added {
                key: key.clone(),
                len: new_map[key.as_str()].display_len(),
            });
        }
    }
    let (old_comments, new_comments) = (comments(repo), comments(server));
    if old_comments != new_comments {
        changes.push(KeyChange::Comments {
            old: old_comments.len(),
            new: new_comments.len(),
        });
    }
    if changes.is_empty() {
        let order =
            |p: &[(String, SecretBytes)]| p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        if order(&old) != order(&new) || repo.len() != server.len() || !same_layout(repo, server) {
            changes.push(KeyChange::Order);
        }
    }
    changes
}

/// Compares two trees (YAML, JSON, INI) value by value, each named by its key path
/// (`database.password`, `hosts[2].token`). A value whose type changed (`8080` → `"8080"`)
/// is changed; comments are counted, not shown.
pub(crate) fn tree(repo: &Tree, server: &Tree) -> Vec<KeyChange> {
    use crate::sops::keypath::{leaves, LeafValue};
    let len = |leaf: &LeafValue<'_>| match leaf {
        LeafValue::Scalar(s) => {
            crate::sops::walk::scalar_bytes(s).map_or(0, |(b, _)| b.display_len())
        }
        LeafValue::EmptyMap | LeafValue::EmptyList => 0,
    };
    let (old, new) = (leaves(repo), leaves(server));
    let new_map: HashMap<&str, &LeafValue<'_>> = new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let old_map: HashMap<&str, &LeafValue<'_>> = old.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut changes = Vec::new();
    for (key, old_value) in &old {
        match new_map.get(key.as_str()) {
            None => changes.push(KeyChange::Removed {
                key: key.clone(),
                len: len(old_value),
            }),
            Some(new_value) if *new_value != old_value => changes.push(KeyChange::Changed {
                key: key.clone(),
                old_len: len(old_value),
                new_len: len(new_value),
            }),
            Some(_) => {}
        }
    }
    for (key, new_value) in &new {
        if !old_map.contains_key(key.as_str()) {
            changes.push(KeyChange::Added {
                key: key.clone(),
                len: len(new_value),
            });
        }
    }
    let (old_comments, new_comments) = (comments_of(repo), comments_of(server));
    if old_comments != new_comments {
        changes.push(KeyChange::Comments {
            old: old_comments.len(),
            new: new_comments.len(),
        });
    }
    if changes.is_empty() && repo != server {
        changes.push(KeyChange::Order);
    }
    changes
}

/// Every comment of a tree, in file order.
fn comments_of(tree: &Tree) -> Vec<&str> {
    fn value<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Map(b) => branch(b, out),
            Value::List(items) => {
                for item in items {
                    match item {
                        ListItem::Comment(c) => out.push(c),
                        ListItem::Value(v) => value(v, out),
                    }
                }
            }
            Value::Scalar(_) => {}
        }
    }
    fn branch<'a>(b: &'a Branch, out: &mut Vec<&'a str>) {
        for item in b {
            match item {
                MapItem::Comment(c) => out.push(c),
                MapItem::Pair(_, v) => value(v, out),
            }
        }
    }
    let mut out = Vec::new();
    for b in tree {
        branch(b, &mut out);
    }
    out
}

/// How changes are worded: drift between two places, or what a write will do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wording {
    pub(crate) added: &'static str,
    pub(crate) removed: &'static str,
    pub(crate) old_side: &'static str,
    pub(crate) new_side: &'static str,
    /// A plan says what a permission becomes (`mode 0644 → 0600`); drift what it should be
    /// (`mode 0644 (want 0600)`).
    pub(crate) plan: bool,
}

/// `diff` and `status`: the server compared with the repo.
pub(crate) const DRIFT: Wording = Wording {
    added: "only on the server",
    removed: "only in the repo",
    old_side: "in the repo",
    new_side: "on the server",
    plan: false,
};

/// A plan: what the write adds to, removes from and changes in its target.
pub(crate) const PLAN: Wording = Wording {
    added: "added",
    removed: "removed",
    old_side: "now",
    new_side: "after",
    plan: true,
};

impl KeyChange {
    /// One line, starting with `+`, `-` or `~`; names and lengths only.
    pub(crate) fn describe(&self, words: Wording) -> String {
        match self {
            Self::Added { key, len } => format!("+ {}: {} (len {len})", sanitize(key), words.added),
            Self::Removed { key, len } => {
                format!("- {}: {} (len {len})", sanitize(key), words.removed)
            }
            Self::Changed {
                key,
                old_len,
                new_len,
            } => format!("~ {}: changed (len {old_len} → {new_len})", sanitize(key)),
            Self::Comments { old, new } => format!(
                "~ comments differ ({old} {}, {new} {})",
                words.old_side, words.new_side
            ),
            Self::Order => "~ same keys and values, another order".into(),
        }
    }
}

/// Whether comments and pairs interleave the same way.
fn same_layout(a: &[Item], b: &[Item]) -> bool {
    a.iter().zip(b).all(|(x, y)| {
        matches!(
            (x, y),
            (Item::Comment(_), Item::Comment(_)) | (Item::Pair { .. }, Item::Pair { .. })
        )
    })
}

/// A unified diff of two texts in which every line shows only its length; `None` when equal.
/// Binary content (not UTF-8) gives a one-line summary.
pub(crate) fn masked_text(repo: &[u8], server: &[u8]) -> Option<Vec<String>> {
    unified(repo, server, |line| {
        mask(line.trim_end_matches(['\n', '\r']).chars().count())
    })
}

/// A unified diff of two texts in clear (a `plain = true` entry: config, not secrets), each
/// line made safe for a terminal; `None` when equal.
pub(crate) fn clear_text(repo: &[u8], server: &[u8]) -> Option<Vec<String>> {
    unified(repo, server, |line| {
        sanitize(line.trim_end_matches(['\n', '\r']))
    })
}

/// A unified diff of two texts, each line shown by `show` after its sign.
fn unified(repo: &[u8], server: &[u8], show: impl Fn(&str) -> String) -> Option<Vec<String>> {
    if repo == server {
        return None;
    }
    let (Ok(old), Ok(new)) = (std::str::from_utf8(repo), std::str::from_utf8(server)) else {
        return Some(vec![format!(
            "binary content differs ({} → {} bytes)",
            repo.len(),
            server.len()
        )]);
    };
    let diff = TextDiff::from_lines(old, new);
    let mut out = Vec::new();
    for group in diff.grouped_ops(1) {
        let (first, last) = (&group[0], &group[group.len() - 1]);
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        out.push(format!(
            "@@ -{},{} +{},{} @@",
            old_range.start + 1,
            old_range.len(),
            new_range.start + 1,
            new_range.len()
        ));
        for op in &group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    similar::ChangeTag::Equal => ' ',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                };
                out.push(format!("{sign}{}", show(change.value())));
            }
        }
    }
    Some(out)
}

/// A masked line: its length, never its content.
fn mask(len: usize) -> String {
    format!("•••••••• ({len} chars)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::store::dotenv::parse;

    #[test]
    fn keys_added_removed_changed() {
        let repo = parse(b"A=1\nB=secret-old\nC=3\n").unwrap();
        let server = parse(b"A=1\nB=secret-newer\nD=4\n\n").unwrap();
        let changes = dotenv(&repo, &server);
        assert_eq!(
            changes,
            vec![
                KeyChange::Changed {
                    key: "B".into(),
                    old_len: 10,
                    new_len: 12
                },
                KeyChange::Removed {
                    key: "C".into(),
                    len: 1
                },
                KeyChange::Added {
                    key: "D".into(),
                    len: 1
                },
            ]
        );
        let printed = format!("{changes:?}");
        assert!(!printed.contains("secret"));
    }

    #[test]
    fn blank_lines_are_not_drift() {
        let repo = parse(b"A=1\nB=2\n").unwrap();
        let server = parse(b"A=1\n\n\nB=2").unwrap();
        assert!(dotenv(&repo, &server).is_empty());
    }

    #[test]
    fn masked_text_hides_lines() {
        let lines = masked_text(b"user:hash1\nother\n", b"user:hash2\nother\n").unwrap();
        assert!(lines.iter().all(|l| !l.contains("hash")));
        assert!(lines.iter().any(|l| l.starts_with('-')));
        assert!(lines.iter().any(|l| l.starts_with('+')));
    }
}
