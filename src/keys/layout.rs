//! Who can open a file, as a comparable layout: its key groups (one, or several with Shamir
//! sharing), each a set of recipients, and how many groups it takes. `check` and `status`
//! compare a file's layout (from its metadata, no key needed) with today's rules; `encrypt`
//! keeps a file's own layout when no rule gives recipients, as `sops edit` does.

use std::collections::BTreeSet;

use super::KeyError;
use crate::crypto::Recipient;
use crate::sops::{EncryptOptions, KeyPlan, Metadata};

/// Who can open a file: its key groups (one, or several with Shamir sharing), each a set
/// of recipients, and how many groups it takes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    /// Sorted, so that the order of groups does not count.
    groups: Vec<BTreeSet<String>>,
    threshold: usize,
}

impl KeyLayout {
    pub(crate) fn new(mut groups: Vec<BTreeSet<String>>, threshold: Option<usize>) -> Self {
        groups.sort();
        // sops: no threshold (or 0) means every group is needed.
        let threshold = threshold.filter(|&t| t > 0).unwrap_or(groups.len());
        Self { groups, threshold }
    }

    /// How this layout differs from `want`, for the message; None when they are the same.
    /// Recipients added or removed are named; otherwise a different grouping or threshold.
    pub(crate) fn drift_from(&self, want: &Self) -> Option<String> {
        let flat = |l: &Self| -> BTreeSet<String> { l.groups.iter().flatten().cloned().collect() };
        if let Some(drift) = recipient_drift(&flat(self), &flat(want)) {
            return Some(drift);
        }
        (self != want).then(|| {
            format!(
                "key groups: {} with threshold {}, want {} with threshold {}",
                self.groups.len(),
                self.threshold,
                want.groups.len(),
                want.threshold
            )
        })
    }
}

/// How a file's recipients differ from the wanted ones, for the message; None when equal.
fn recipient_drift(have: &BTreeSet<String>, want: &BTreeSet<String>) -> Option<String> {
    let add: Vec<&str> = want.difference(have).map(String::as_str).collect();
    let remove: Vec<&str> = have.difference(want).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !add.is_empty() {
        parts.push(format!("not yet encrypted to {}", add.join(", ")));
    }
    if !remove.is_empty() {
        parts.push(format!("still encrypted to {}", remove.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

impl KeyLayout {
    /// The layout a file has, from its sops metadata.
    pub(crate) fn of_metadata(metadata: &Metadata) -> Self {
        Self::new(
            metadata
                .key_groups
                .iter()
                .map(|g| g.iter().map(|k| k.recipient.clone()).collect())
                .collect(),
            metadata.shamir_threshold,
        )
    }

    /// The layout a key plan makes.
    pub(crate) fn of_plan(plan: &KeyPlan) -> Self {
        Self::new(
            plan.groups
                .iter()
                .map(|g| g.iter().map(|r| r.text.clone()).collect())
                .collect(),
            plan.threshold,
        )
    }
}

/// The options that re-encrypt a file for the recipients, groups, threshold and rule it has
/// now: what `encrypt` uses when no rule anywhere gives recipients.
pub(crate) fn own_options(metadata: &Metadata) -> Result<EncryptOptions, KeyError> {
    let groups = metadata
        .key_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|k| Recipient::parse(&k.recipient).map_err(KeyError::Crypto))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EncryptOptions {
        keys: KeyPlan {
            groups,
            threshold: metadata.shamir_threshold,
        },
        rule: metadata.rule.clone().unwrap_or_default(),
        mac_only_encrypted: metadata.mac_only_encrypted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recipient_drift_names_both_sides() {
        let table = [
            (set(&["a", "b"]), set(&["b", "a"]), None),
            (
                set(&["a"]),
                set(&["a", "b"]),
                Some("not yet encrypted to b"),
            ),
            (set(&["a", "b"]), set(&["a"]), Some("still encrypted to b")),
            (
                set(&["a"]),
                set(&["c"]),
                Some("not yet encrypted to c; still encrypted to a"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                recipient_drift(&have, &want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }

    #[test]
    fn key_group_layouts_are_compared() {
        let layout = |groups: &[&[&str]], t: Option<usize>| {
            KeyLayout::new(groups.iter().map(|g| set(g)).collect(), t)
        };
        let table = [
            // One group: the threshold does not count.
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["b", "a"]], Some(1)),
                None,
            ),
            // Group order does not count.
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["b"], &["a"]], None),
                None,
            ),
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["a"], &["b"]], Some(1)),
                Some("key groups: 1 with threshold 1, want 2 with threshold 1"),
            ),
            (
                layout(&[&["a"], &["b"], &["c"]], Some(2)),
                layout(&[&["a"], &["b"], &["c"]], Some(3)),
                Some("key groups: 3 with threshold 2, want 3 with threshold 3"),
            ),
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["a"], &["c"]], Some(2)),
                Some("not yet encrypted to c; still encrypted to b"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                have.drift_from(&want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }
}
