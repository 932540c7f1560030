//! What a decrypt does to a files entry's folder: the key files it writes, removes and
//! fixes, or, with releases, the new release it writes and the `current` switch; as batch
//! steps ([`crate::fs::Op`]), so the folder changes with the rest of the run, all or nothing.

use super::{
    current_link, drifts, new_release_name, pairs, releases_dir, rollback_mark, staging_name,
    KeyFile,
};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::fs::{Existing, Expect, Job, Op, Perms, Stamp};
use crate::manifest::{Entry, Manifest};
use crate::secret::SecretBytes;
use crate::sync::decision::Decision;
use crate::sync::Sides;

/// The staged (temp-named) folders of a run's new releases, and the folders above them that
/// did not exist before the run: removed when dropped before [`StagedReleases::done`], on
/// any way out of a run that did not complete (the staging batch is finished before the main
/// one starts, so its own undo no longer reaches them).
pub(crate) struct StagedReleases {
    staged: Vec<PathBuf>,
    new_folders: Vec<PathBuf>,
    done: bool,
}

impl StagedReleases {
    pub(crate) fn new(manifest: &Manifest, plans: &[Option<FolderPlan<'_>>]) -> Self {
        let mut staged = Vec::new();
        let mut new_folders = Vec::new();
        for plan in plans.iter().flatten() {
            let Some(release) = &plan.release else {
                continue;
            };
            staged.push(manifest.server_root.join(&release.staging));
            // `releases/`, then the entry's folder: deepest first.
            let releases = manifest.server_root.join(releases_dir(plan.entry));
            for folder in [releases, plan.entry.server_path.clone()] {
                if std::fs::symlink_metadata(&folder).is_err() {
                    new_folders.push(folder);
                }
            }
        }
        Self {
            staged,
            new_folders,
            done: false,
        }
    }

    /// The run completed: every staged release is live, and the folders stay.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for StagedReleases {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for folder in &self.staged {
            // Never follows a symlink inside what it removes.
            let _ = std::fs::remove_dir_all(folder);
        }
        for folder in &self.new_folders {
            // Only when empty: never anything that was put there meanwhile.
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// A key file to write: its path under the server root and name, content, and the file
/// there now.
struct KeyWrite<'s> {
    relative: String,
    name: String,
    contents: SecretBytes,
    existing: Option<&'s Existing>,
}

/// A key file kept as it is: its path and name, and its stamp as the plan read it.
struct Kept {
    relative: String,
    name: String,
    stamp: Stamp,
}

/// A release a decrypt writes: staged under a temp name (`verify` runs on it there), then
/// renamed into place and made `current`. A run killed part way leaves only a temp folder,
/// which no listing counts as a release and the next run removes.
#[derive(Debug)]
pub(crate) struct NewRelease {
    /// Its name (the UTC stamp) and its folder under the server root.
    pub(crate) name: String,
    pub(crate) dir: String,
    /// Where it is written first, in the same folder.
    pub(crate) staging: String,
    link_target: String,
    link_path: String,
}

/// What one decrypt does to one files entry.
pub(crate) struct FolderPlan<'s> {
    pub(crate) entry: &'s Entry,
    writes: Vec<KeyWrite<'s>>,
    removes: Vec<(String, Stamp)>,
    fixes: Vec<(String, String, &'s Existing)>,
    /// Key files read and kept: checked before the first step (an edit made while the run
    /// waited stops it), and part of the record's stamp.
    kept: Vec<Kept>,
    /// With releases, when content changes.
    pub(crate) release: Option<NewRelease>,
    /// `current` as the plan saw it.
    link_before: Option<&'s str>,
    /// The rollback mark to clear (its path in the state folder and stamp).
    pub(crate) clear_mark: Option<(String, Stamp)>,
    /// The folder the key files are in after the run.
    pub(crate) dir: String,
    /// Whether the run changes what the folder holds (not a mode fix alone).
    pub(crate) changes_content: bool,
}

impl<'s> FolderPlan<'s> {
    /// The plan for `sides` (a files entry) under `decision`, writing `plaintext` (the
    /// decrypted `.enc`); `None` when the entry is not a files entry or nothing is done.
    /// A rollback mark goes when the entry is written, or found in sync (rolled forward).
    pub(crate) fn new(
        sides: &'s Sides<'_>,
        decision: Decision,
        in_sync: bool,
        plaintext: Option<&SecretBytes>,
    ) -> Result<Option<Self>, Error> {
        let entry = sides.entry;
        let (Some(layout), Some(folder)) = (&entry.files, &sides.folder) else {
            return Ok(None);
        };
        let current = folder.dir.clone().unwrap_or_else(|| entry.server.clone());
        let mut plan = FolderPlan {
            entry,
            writes: Vec::new(),
            removes: Vec::new(),
            fixes: Vec::new(),
            kept: Vec::new(),
            release: None,
            link_before: folder.link.as_deref(),
            clear_mark: None,
            dir: current.clone(),
            changes_content: false,
        };
        let path = |f: &KeyFile| format!("{current}/{}", f.name);
        let keep = |f: &KeyFile| Kept {
            relative: path(f),
            name: f.name.clone(),
            stamp: f.file.stamp,
        };
        let mark = (folder.rolled_back.as_ref()).map(|(_, stamp)| (rollback_mark(entry), *stamp));
        if in_sync {
            plan.clear_mark.clone_from(&mark);
        }
        if decision == Decision::FixPerms {
            for f in &folder.files {
                if drifts(entry, &f.file) {
                    plan.fixes.push((path(f), f.name.clone(), &f.file));
                } else {
                    plan.kept.push(keep(f));
                }
            }
            return Ok(Some(plan));
        }
        let plaintext = plaintext.filter(|_| decision.writes());
        let Some(plaintext) = plaintext else {
            plan.kept = folder.files.iter().map(keep).collect();
            return Ok(plan.clear_mark.is_some().then_some(plan));
        };
        let pairs = pairs(entry, layout, plaintext.expose())?;
        plan.changes_content = true;
        plan.clear_mark = mark;
        if layout.releases.is_some() {
            let name = new_release_name(&folder.releases);
            let dir = format!("{}/{name}", releases_dir(entry));
            let staging = format!("{}/{}", releases_dir(entry), staging_name(&name));
            for (_, file, contents) in pairs {
                plan.writes.push(KeyWrite {
                    relative: format!("{staging}/{file}"),
                    name: file,
                    contents,
                    existing: None,
                });
            }
            // The release being replaced: an edit made to it while the run waited is refused,
            // not silently left behind.
            plan.kept = folder.files.iter().map(keep).collect();
            plan.dir.clone_from(&dir);
            plan.release = Some(NewRelease {
                link_target: format!("releases/{name}"),
                link_path: current_link(entry),
                name,
                dir,
                staging,
            });
            return Ok(Some(plan));
        }
        for (_, name, contents) in &pairs {
            let existing = folder.files.iter().find(|f| f.name == *name);
            match existing {
                Some(f) if f.file.bytes == *contents => {
                    if drifts(entry, &f.file) {
                        plan.fixes.push((path(f), f.name.clone(), &f.file));
                    } else {
                        plan.kept.push(keep(f));
                    }
                }
                _ => plan.writes.push(KeyWrite {
                    relative: format!("{current}/{name}"),
                    name: name.clone(),
                    contents: contents.clone(),
                    existing: existing.map(|f| &f.file),
                }),
            }
        }
        // The files of keys the `.enc` no longer has.
        for f in &folder.files {
            if !pairs.iter().any(|(_, name, _)| *name == f.name) {
                plan.removes.push((path(f), f.file.stamp));
            }
        }
        Ok(Some(plan))
    }

    /// The batch steps that write the new release's files (applied, then verified, before
    /// anything else of the run).
    pub(crate) fn release_ops<'a>(&'a self, manifest: &'a Manifest) -> Vec<Op<'a>> {
        if self.release.is_none() {
            return Vec::new();
        }
        self.write_ops(manifest)
    }

    fn write_ops<'a>(&'a self, manifest: &'a Manifest) -> Vec<Op<'a>> {
        let perms = Sides::perms_for(self.entry);
        self.writes
            .iter()
            .map(|w| {
                Op::Write(Job {
                    base: &manifest.server_root,
                    relative: &w.relative,
                    head: &[],
                    contents: w.contents.expose(),
                    perms,
                    expect: w
                        .existing
                        .map_or(Expect::Absent, |e| Expect::Stamp(e.stamp)),
                    previous: w.existing.map(Existing::previous),
                })
            })
            .collect()
    }

    /// Every other step: key files written, removed and fixed, `current` switched, and the
    /// rollback mark cleared.
    pub(crate) fn ops<'a>(&'a self, manifest: &'a Manifest) -> Vec<Op<'a>> {
        let root = &manifest.server_root;
        let perms: Perms = Sides::perms_for(self.entry);
        let mut ops = if self.release.is_none() {
            self.write_ops(manifest)
        } else {
            Vec::new()
        };
        ops.extend(self.removes.iter().map(|(relative, stamp)| Op::Remove {
            base: root,
            relative,
            expect: *stamp,
        }));
        ops.extend(self.fixes.iter().map(|(relative, _, file)| Op::Perms {
            base: root,
            relative,
            perms,
            expect: file.stamp,
            before: file.owner(),
        }));
        ops.extend(self.kept.iter().map(|k| Op::Check {
            base: root,
            relative: &k.relative,
            expect: k.stamp,
        }));
        if let Some(release) = &self.release {
            ops.push(Op::Rename {
                base: root,
                from: &release.staging,
                to: &release.dir,
            });
            ops.push(Op::Link {
                base: root,
                relative: &release.link_path,
                target: &release.link_target,
                before: self.link_before,
                folders: perms.folders,
            });
        }
        if let Some((relative, stamp)) = &self.clear_mark {
            ops.push(Op::Remove {
                base: &manifest.state_dir,
                relative,
                expect: *stamp,
            });
        }
        ops
    }

    /// The stamp the sync record stores for this entry after the run: over the key files as
    /// the run left them, from the stamps the batch gave back (`release`: of
    /// [`Self::release_ops`], `main`: of [`Self::ops`]) and those the plan checked, never
    /// from a fresh read that an edit made meanwhile could slip into.
    pub(crate) fn record_stamp(
        &self,
        root: &Path,
        release: &[Stamp],
        main: &[Stamp],
    ) -> Result<Stamp, Error> {
        let folder = super::folder_stat(root, &self.dir)?.ok_or_else(|| {
            Error::Fs(crate::fs::FsError::BadFolder {
                path: root.join(&self.dir),
            })
        })?;
        let mut files: Vec<(&str, Stamp)> = Vec::new();
        if self.release.is_some() {
            files.extend(
                self.writes
                    .iter()
                    .map(|w| w.name.as_str())
                    .zip(release.iter().copied()),
            );
        } else {
            let (written, rest) = main.split_at(self.writes.len().min(main.len()));
            let fixed = rest.get(self.removes.len()..).unwrap_or_default();
            files.extend(
                self.writes
                    .iter()
                    .map(|w| w.name.as_str())
                    .zip(written.iter().copied()),
            );
            files.extend(
                self.fixes
                    .iter()
                    .map(|(_, name, _)| name.as_str())
                    .zip(fixed.iter().copied()),
            );
            files.extend(self.kept.iter().map(|k| (k.name.as_str(), k.stamp)));
        }
        Ok(super::combined_stamp(&folder, files))
    }
}
