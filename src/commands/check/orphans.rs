//! Orphan `.enc` files: those no entry maps, leaving out the ones a nested manifest claims.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use crate::commands::relative;

/// Folders under the repo root that hold their own envsync manifest (one a host, in one
/// repo), asked about one path at a time and remembered, so that a repo of thousands of
/// `.enc` files reads each folder's manifest once. A file there is claimed only when that
/// manifest maps it: a `secrets.toml` that is not an envsync manifest (an app's own config
/// file of that name) claims nothing.
pub(super) struct NestedManifests<'r> {
    root: &'r Path,
    /// Per folder: the repo paths (from the outer root) its manifest maps, if it has one.
    known: std::collections::HashMap<String, Option<HashSet<String>>>,
}

impl<'r> NestedManifests<'r> {
    pub(super) fn new(root: &'r Path) -> Self {
        Self {
            root,
            known: std::collections::HashMap::new(),
        }
    }

    /// Whether a manifest in a folder between the root and `path` maps it.
    pub(super) fn claims(&mut self, path: &str) -> bool {
        let mut folder = path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            let root = self.root;
            let mapped = self.known.entry(parent.to_string()).or_insert_with(|| {
                let file = root.join(parent).join(crate::manifest::FILE_NAME);
                let manifest = crate::manifest::Manifest::load(&file).ok()?;
                Some(
                    manifest
                        .entries
                        .iter()
                        .filter_map(|e| relative(root, &e.repo_path))
                        .collect(),
                )
            });
            if mapped.as_ref().is_some_and(|m| m.contains(path)) {
                return true;
            }
            folder = parent;
        }
        false
    }
}

/// The `.enc` files among `files` that no entry maps, sorted.
pub(super) fn orphans(
    files: impl IntoIterator<Item = String>,
    mapped: &HashSet<String>,
) -> Vec<String> {
    let mut out: Vec<String> = files
        .into_iter()
        .filter(|f| f.ends_with(".enc") && !mapped.contains(f))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every `*.enc` file under `root` (`.git` skipped), repo-relative: the orphan candidates
/// when the repo is not a git repo.
pub(super) fn enc_files_under(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| relative(root, e.path()))
        .filter(|p| p.ends_with(".enc"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_unmapped_enc_files() {
        let mapped: HashSet<String> = ["envs/a.enc".to_string()].into_iter().collect();
        let files = [
            "envs/a.enc",
            "envs/b.enc",
            "README.md",
            "envs/b.enc",
            "x.enc.bak",
        ]
        .map(String::from);
        assert_eq!(orphans(files, &mapped), vec!["envs/b.enc".to_string()]);
    }
}
