//! Several entries written into one `.enc` (`key` entries, and at most one whole-file entry
//! beside them): their changes are merged into one file, written once, and refused when two
//! of them changed the same value.

use std::collections::HashMap;
use std::sync::Arc;

use super::encrypt_options;
use crate::commands::Step;
use crate::diff::KeyChange;
use crate::error::{Error, FileError, Refusal};
use crate::format;
use crate::keys::{KeyError, Recipients};
use crate::sops::tree::Tree;
use crate::sync::extract;

/// Merges every group of writing steps that share a `.enc`.
pub(super) fn merge(steps: &mut [Step<'_, '_>], recipients: &Recipients) -> Result<(), Error> {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        if step.decision.writes() {
            groups
                .entry(step.sides.entry.repo.as_str())
                .or_default()
                .push(i);
        }
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    for group in groups {
        let merged = merged_file(steps, &group, recipients)?;
        for &i in &group {
            steps[i].shared = Some(Arc::clone(&merged));
        }
    }
    Ok(())
}

/// The one `.enc` that holds every change of the group.
fn merged_file(
    steps: &[Step<'_, '_>],
    group: &[usize],
    recipients: &Recipients,
) -> Result<Arc<Vec<u8>>, Error> {
    let first = &steps[group[0]];
    let entry = first.sides.entry;
    let format = first.sides.codec.format();
    let file_error = |source: FileError| Error::File {
        path: entry.repo_path.clone(),
        source,
    };
    let Some((format, codec)) = format.and_then(|f| Some((f, f.codec()?))) else {
        return Err(file_error(FileError::KeyNeedsTree(
            first.sides.codec.name(),
        )));
    };
    let parse = |bytes: &[u8]| codec.parse(bytes).map_err(|e| file_error(e.into()));
    // The file as it is now, opened by whichever step opened it.
    let opened = group.iter().find_map(|&i| steps[i].analysis.repo.as_ref());
    let old = match opened {
        Some(o) => parse(o.whole.as_ref().unwrap_or(&o.plaintext).expose())?,
        None if first.sides.repo.is_none() => Tree::new(),
        None => {
            return Err(file_error(FileError::Extract {
                key: String::new(),
                reason: "and the other entries of this file can be written together only with a key that opens it (pass --identity)".into(),
            }))
        }
    };
    // Who changed what: the whole-file entry first, then each value.
    let mut owners: HashMap<String, String> = HashMap::new();
    let mut conflicts = Vec::new();
    let mut merged = old.clone();
    let describe = |step: &Step<'_, '_>| {
        let e = step.sides.entry;
        match &e.key {
            Some(k) => format!("{} ({} key {k})", e.server, e.repo),
            None => format!("{} ({})", e.server, e.repo),
        }
    };
    for &i in group
        .iter()
        .filter(|&&i| steps[i].sides.entry.key.is_none())
    {
        let server = steps[i].analysis.server.clone().unwrap_or_default();
        let new = parse(server.expose())?;
        for path in changed_paths(&old, &new) {
            owners.insert(path, describe(&steps[i]));
        }
        merged = new;
    }
    for &i in group.iter() {
        let step = &steps[i];
        let Some(key) = &step.sides.entry.key else {
            continue;
        };
        let path = key.to_string();
        if let Some(other) = owners.get(&path) {
            conflicts.push(Refusal {
                entry: describe(step),
                repo: step.sides.entry.repo.clone(),
                server: step.sides.entry.server.clone(),
                meaning: format!("changed `{path}`, which {other} changed too"),
                state: "conflict".into(),
                resolve: "keep one of the two server edits, then run envsync encrypt again".into(),
            });
            continue;
        }
        owners.insert(path, describe(step));
        let server = step.analysis.server.clone().unwrap_or_default();
        extract::set(&mut merged, key, server.expose()).map_err(|source| Error::File {
            path: step.sides.entry.server_path.clone(),
            source,
        })?;
    }
    if !conflicts.is_empty() {
        return Err(Error::Refused(conflicts));
    }
    let options = encrypt_options(first.sides, recipients)?.ok_or_else(|| {
        Error::from(KeyError::NoRecipients {
            repo: entry.repo.clone(),
        })
    })?;
    let reusable = opened
        .filter(|o| {
            o.sops
                .as_ref()
                .is_some_and(|d| crate::sops::same_keys(&d.metadata, &options))
        })
        .zip(first.sides.repo.as_ref())
        .map(|(o, r)| (o, r.bytes.expose()));
    let plain = crate::secret::SecretBytes::new(codec.emit(&merged));
    let bytes = format::encrypt(format, plain.expose(), &options, reusable)
        .map_err(|e| file_error(e.into()))?;
    Ok(Arc::new(bytes))
}

/// The key paths whose value differs between two trees (added and removed ones too), as
/// `diff` names them.
fn changed_paths(old: &Tree, new: &Tree) -> Vec<String> {
    crate::diff::tree(old, new)
        .into_iter()
        .filter_map(|change| match change {
            KeyChange::Added { key, .. }
            | KeyChange::Removed { key, .. }
            | KeyChange::Changed { key, .. } => Some(key),
            KeyChange::Comments { .. } | KeyChange::Order => None,
        })
        .collect()
}
