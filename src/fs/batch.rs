//! The apply protocol, the same at every batch size: stage every file and make it durable,
//! check every target against the plan, apply them all, then make the result durable and
//! only then drop the previous versions.
//!
//! Until [`Batch::finish`] every applied step can be undone: a replaced file's previous
//! version stays in its folder under a temp name (a copy staged with the new file, or a
//! second name), so that putting it back is one rename; an in-place rewrite keeps
//! the old content in memory and in a durable private backup, a mode fix remembers the old
//! mode and owner. A failure anywhere, in this call or a later one of the same batch, puts
//! every target back as it was and removes every temp; so does dropping an unfinished batch
//! (an error path, or a panic). An error says exactly which files, if any, could not be put
//! back.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;

use super::writer::{check_unchanged, discard, sync_file_systems, Staged};
use super::{open_parent, AtomicWriter, FsError, Job, Perms, Stamp};

/// Batches larger than this are made durable with one `syncfs` for each file system
/// instead of one fsync a file and a folder: with hundreds of files the per-file flushes
/// dominate a run. The protocol is the same either way.
const BATCH_FSYNC_LIMIT: usize = 8;

/// A file's mode, owner and group, as they were before a batch changed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// One step of a batch.
// An in-place step carries two jobs; a batch holds a handful of short-lived ops, so their
// size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Replace (or create) a file through a temp beside it and a rename.
    Write(Job<'a>),
    /// Rewrite an existing file's content in place, keeping its inode (a file bind-mounted
    /// alone into a container). `old` is its content now, also kept at `backup` (a private,
    /// durable copy in the state folder) until the batch is finished or undone.
    InPlace {
        job: Job<'a>,
        old: &'a [u8],
        before: Owner,
        backup: Job<'a>,
    },
    /// Set an existing file's owner, group and mode without touching its content.
    Perms {
        base: &'a Path,
        relative: &'a str,
        perms: Perms,
        expect: Stamp,
        before: Owner,
    },
    /// Remove an existing file (a key dropped from an `as = "files"` entry). Until the batch
    /// is finished the file stays in its folder under a temp name, so the undo is a rename.
    Remove {
        base: &'a Path,
        relative: &'a str,
        expect: Stamp,
    },
    /// Change nothing, but stop the batch (before its first step) unless `relative` is still
    /// as the plan saw it: a file the plan read and keeps, whose content the result depends
    /// on (a key file of a files entry that is not rewritten).
    Check {
        base: &'a Path,
        relative: &'a str,
        expect: Stamp,
    },
    /// Rename `from` to `to` in the same folder, never over anything (a staged release
    /// folder going live under its final name).
    Rename {
        base: &'a Path,
        from: &'a str,
        to: &'a str,
    },
    /// Point the symlink `relative` at `target` (a release's `current`): a new link is made
    /// under a temp name and renamed over the old one, so a reader resolves the old target
    /// or the new one, never nothing. `before` is the target the plan saw (`None`: no link).
    Link {
        base: &'a Path,
        relative: &'a str,
        target: &'a str,
        before: Option<&'a str>,
        folders: super::Folders,
    },
}

impl<'a> Op<'a> {
    fn target(&self) -> (&'a Path, &'a str) {
        match *self {
            Self::Write(job) | Self::InPlace { job, .. } => (job.base, job.relative),
            Self::Perms { base, relative, .. }
            | Self::Remove { base, relative, .. }
            | Self::Check { base, relative, .. }
            | Self::Link { base, relative, .. } => (base, relative),
            Self::Rename { base, to, .. } => (base, to),
        }
    }

    fn check(&self) -> Result<(), FsError> {
        match *self {
            Self::Write(job) | Self::InPlace { job, .. } => check_unchanged(&job),
            Self::Rename { base, from, to } => {
                let (from_there, to_free) = (super::stamp(base, from)?, super::stamp(base, to)?);
                if from_there.is_some() && to_free.is_none() {
                    Ok(())
                } else {
                    Err(FsError::Changed {
                        path: base.join(to),
                    })
                }
            }
            Self::Link {
                base,
                relative,
                before,
                ..
            } => {
                if read_link(base, relative)?.as_deref() == before {
                    Ok(())
                } else {
                    Err(FsError::Changed {
                        path: base.join(relative),
                    })
                }
            }
            Self::Perms {
                base,
                relative,
                expect,
                ..
            }
            | Self::Remove {
                base,
                relative,
                expect,
            }
            | Self::Check {
                base,
                relative,
                expect,
            } => check_unchanged(&Job {
                base,
                relative,
                head: &[],
                contents: &[],
                perms: Perms::PRIVATE,
                expect: super::Expect::Stamp(expect),
                previous: None,
            }),
        }
    }
}

/// What an applied step changed, and how to put it back.
// An in-place step carries its backup job; the undo log is short-lived, so size is no matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Applied<'a> {
    /// A file that did not exist: undone by removing it.
    Created {
        base: &'a Path,
        relative: &'a str,
        dir: Option<OwnedFd>,
    },
    /// A file replaced; its previous version is `old`, a copy or a second name in the same
    /// folder.
    Replaced {
        base: &'a Path,
        relative: &'a str,
        old: String,
        dir: Option<OwnedFd>,
    },
    /// A file replaced whose previous version could not be kept (the file system refused a
    /// hard link): it cannot be put back.
    Overwritten {
        base: &'a Path,
        relative: &'a str,
        dir: Option<OwnedFd>,
    },
    /// A file rewritten in place; `old` and `before` are what it held, `now` the
    /// permissions the rewrite gave it.
    InPlace {
        base: &'a Path,
        relative: &'a str,
        old: &'a [u8],
        before: Owner,
        now: Perms,
        backup: Job<'a>,
    },
    /// A file whose mode and owner were set.
    Perms {
        base: &'a Path,
        relative: &'a str,
        before: Owner,
    },
    /// A folder renamed within its folder: undone by renaming it back.
    Renamed {
        base: &'a Path,
        from: &'a str,
        to: &'a str,
    },
    /// A symlink pointed at a new target; `old` is the target it had (`None`: it did not
    /// exist).
    Linked {
        base: &'a Path,
        relative: &'a str,
        old: Option<String>,
    },
}

impl Applied<'_> {
    fn target(&self) -> PathBuf {
        match self {
            Self::Created { base, relative, .. }
            | Self::Replaced { base, relative, .. }
            | Self::Overwritten { base, relative, .. }
            | Self::InPlace { base, relative, .. }
            | Self::Perms { base, relative, .. }
            | Self::Linked { base, relative, .. } => base.join(relative),
            Self::Renamed { base, to, .. } => base.join(to),
        }
    }

    /// The folder it changed, when still open.
    fn dir(&self) -> Option<&OwnedFd> {
        match self {
            Self::Created { dir, .. }
            | Self::Replaced { dir, .. }
            | Self::Overwritten { dir, .. } => dir.as_ref(),
            Self::InPlace { .. }
            | Self::Perms { .. }
            | Self::Linked { .. }
            | Self::Renamed { .. } => None,
        }
    }

    /// Puts the target back as it was before the step.
    fn undo(&self) -> Result<(), FsError> {
        match self {
            Self::Created { base, relative, .. } => {
                let (dir, name) = parent(base, relative)?;
                match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(FsError::io(&base.join(relative), "remove", e)),
                }
            }
            Self::Replaced {
                base,
                relative,
                old,
                ..
            } => {
                let (dir, name) = parent(base, relative)?;
                rfs::renameat(&dir, old.as_str(), &dir, name.as_str())
                    .map_err(|e| FsError::io(&base.join(relative), "put back", e))
            }
            Self::Overwritten { base, relative, .. } => Err(FsError::io(
                &base.join(relative),
                "put back",
                std::io::ErrorKind::Unsupported,
            )),
            Self::InPlace {
                base,
                relative,
                old,
                before,
                now,
                ..
            } => {
                // The old content under the permissions the new one has (never the new secret
                // under the old, maybe wider, mode), then the old permissions.
                super::write_in_place(base, relative, old, old, *now)?;
                super::set_perms(base, relative, before.perms()).map(|_| ())
            }
            Self::Perms {
                base,
                relative,
                before,
            } => super::set_perms(base, relative, before.perms()).map(|_| ()),
            Self::Renamed { base, from, to } => {
                let dir = rename_within(base, to, from)?;
                settle_entry(&dir, base, from).map(|_| ())
            }
            Self::Linked {
                base,
                relative,
                old,
            } => match old {
                Some(old) => {
                    let dir = switch_link(base, relative, old, None)?;
                    settle_entry(&dir, base, relative).map(|_| ())
                }
                None => {
                    let (dir, name) = parent(base, relative)?;
                    match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => Ok(()),
                        Err(e) => Err(FsError::io(&base.join(relative), "remove", e)),
                    }
                }
            },
        }
    }

    /// Drops what was kept for an undo, once the batch is durable.
    fn forget(&self) {
        match self {
            Self::Replaced {
                base,
                relative,
                old,
                dir,
            } => {
                let reopened = dir.is_none().then(|| parent(base, relative).ok()).flatten();
                if let Some(dir) = dir.as_ref().or(reopened.as_ref().map(|(d, _)| d)) {
                    let _ = rfs::unlinkat(dir, old.as_str(), AtFlags::empty());
                }
            }
            Self::InPlace { backup, .. } => {
                let _ = super::remove(backup.base, backup.relative);
            }
            Self::Created { .. }
            | Self::Overwritten { .. }
            | Self::Perms { .. }
            | Self::Linked { .. }
            | Self::Renamed { .. } => {}
        }
    }
}

impl Owner {
    fn perms(self) -> Perms {
        Perms {
            mode: self.mode,
            uid: Some(self.uid),
            gid: Some(self.gid),
            folders: super::Folders::PRIVATE,
            durable: true,
        }
    }
}

/// A set of writes applied all or nothing. Dropped before [`Batch::finish`], it undoes
/// everything it applied.
#[derive(Debug)]
pub(crate) struct Batch<'w, 'a> {
    writer: &'w AtomicWriter,
    applied: Vec<Applied<'a>>,
    /// A file in each folder that the batch changed (made durable at the end).
    touched: Vec<(&'a Path, &'a str)>,
    /// Some call was a large batch: flushed with `syncfs`.
    large: bool,
    finished: bool,
}

impl AtomicWriter {
    /// Starts a batch.
    pub(crate) fn batch<'a>(&self) -> Batch<'_, 'a> {
        super::folders::keep_created();
        Batch {
            writer: self,
            applied: Vec::new(),
            touched: Vec::new(),
            large: false,
            finished: false,
        }
    }
}

impl<'a> Batch<'_, 'a> {
    /// Applies `ops`: every temp (and in-place backup) is written and made durable, every
    /// target is checked against what the plan saw, then each step is applied in order.
    /// Stamps come back in op order. On failure everything this batch applied (in this
    /// call and earlier ones) is undone, and the error says so.
    pub(crate) fn apply(&mut self, ops: &[Op<'a>]) -> Result<Vec<Stamp>, FsError> {
        self.large |= ops.len() > BATCH_FSYNC_LIMIT;
        // A signal is checked before each step (`signals.rs`): the batch stops there and is
        // undone, so an interrupted run leaves every target as it was and no temp behind.
        let mut staged = match crate::signals::check().and_then(|()| self.stage_all(ops)) {
            Ok(staged) => staged,
            Err(e) => return Err(self.undo_after(e)),
        };
        let mut stamps = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let applied_before = self.applied.len();
            let result = if i == 0 {
                // Every target is checked before the first step is applied.
                ops.iter().try_for_each(Op::check)
            } else {
                Ok(())
            }
            .and_then(|()| crate::signals::check())
            .and_then(|()| self.apply_one(op, staged[i].take()));
            match result {
                Ok(stamp) => {
                    // A check changed nothing: no folder of its to make durable (and `touched`
                    // stays in step with `applied`, whose open folders it uses).
                    if !matches!(op, Op::Check { .. }) {
                        self.touched.push(op.target());
                    }
                    stamps.push(stamp);
                }
                Err(e) => {
                    // Temps and in-place backups of the steps not applied. A step recorded as
                    // applied before it failed keeps its backup: its undo needs it.
                    let first = if self.applied.len() > applied_before {
                        self.touched.push(op.target());
                        i + 1
                    } else {
                        i
                    };
                    discard_all(&ops[first..], &staged[first..]);
                    return Err(self.undo_after(e));
                }
            }
        }
        Ok(stamps)
    }

    /// Writes every temp and in-place backup, and makes them durable.
    fn stage_all(&mut self, ops: &[Op<'a>]) -> Result<Vec<Option<Staged>>, FsError> {
        let large = ops.len() > BATCH_FSYNC_LIMIT;
        let writer = self.writer;
        let stage_one = |op: &Op<'a>| match crate::signals::check().map(|()| op)? {
            Op::Write(job) => writer.stage(job, !large).map(Some),
            Op::InPlace { backup, .. } => {
                let perms = Perms {
                    durable: true,
                    ..backup.perms
                };
                let contents = backup.contents;
                writer.write(backup.base, backup.relative, contents, perms)?;
                Ok(None)
            }
            Op::Perms { .. }
            | Op::Remove { .. }
            | Op::Link { .. }
            | Op::Rename { .. }
            | Op::Check { .. } => Ok(None),
        };
        // A small batch is staged on this thread: each file's temp, rename and folder fsync
        // then go through one open folder, in order.
        let results: Vec<Result<Option<Staged>, FsError>> = if large {
            ops.par_iter().map(stage_one).collect()
        } else {
            ops.iter().map(stage_one).collect()
        };
        let mut staged = Vec::with_capacity(ops.len());
        let mut first_error = None;
        for result in results {
            match result {
                Ok(s) => staged.push(s),
                Err(e) => {
                    first_error.get_or_insert(e);
                    staged.push(None);
                }
            }
        }
        if let Some(e) = first_error {
            discard_all(ops, &staged);
            return Err(e);
        }
        if large {
            let jobs: Vec<Job<'_>> = ops
                .iter()
                .filter_map(|op| match op {
                    Op::Write(job) => Some(*job),
                    _ => None,
                })
                .collect();
            if let Err(e) = sync_file_systems(&jobs) {
                discard_all(ops, &staged);
                return Err(e);
            }
        }
        // The flush can take seconds on a busy disk: a signal that came meanwhile stops here.
        if let Err(e) = crate::signals::check() {
            discard_all(ops, &staged);
            return Err(e);
        }
        Ok(staged)
    }

    fn apply_one(&mut self, op: &Op<'a>, staged: Option<Staged>) -> Result<Stamp, FsError> {
        match *op {
            Op::Write(job) => {
                let staged = staged.ok_or_else(|| FsError::BadFolder {
                    path: job.base.join(job.relative),
                })?;
                let (applied, stamp) = commit(&job, staged)?;
                self.applied.push(applied);
                stamp
            }
            Op::InPlace {
                job,
                old,
                before,
                backup,
            } => {
                // Opened first: a file that cannot be opened for writing is left untouched and
                // not to be undone. Then recorded: a rewrite that fails part way (new owner and
                // mode set, or content half written) is put back by the batch's undo too.
                let file = super::open_for_rewrite(job.base, job.relative)?;
                self.applied.push(Applied::InPlace {
                    base: job.base,
                    relative: job.relative,
                    old,
                    before,
                    now: job.perms,
                    backup,
                });
                let target = job.base.join(job.relative);
                super::rewrite_in_place(&file, &target, old, job.contents, job.perms)
            }
            Op::Perms {
                base,
                relative,
                perms,
                before,
                ..
            } => {
                // Recorded first: an owner set before the mode failed is put back too.
                self.applied.push(Applied::Perms {
                    base,
                    relative,
                    before,
                });
                super::set_perms(base, relative, perms)
            }
            Op::Remove { base, relative, .. } => {
                // Renamed aside, not unlinked: the undo renames it back, `finish` unlinks it.
                let (dir, name) = parent(base, relative)?;
                let old = super::writer::temp_name(&name);
                let target = base.join(relative);
                let st = rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| FsError::io(&target, "inspect", e))?;
                rfs::renameat(&dir, name.as_str(), &dir, old.as_str())
                    .map_err(|e| FsError::io(&target, "remove", e))?;
                self.applied.push(Applied::Replaced {
                    base,
                    relative,
                    old,
                    dir: None,
                });
                Ok(Stamp::of(&st))
            }
            Op::Check { expect, .. } => Ok(expect),
            Op::Rename { base, from, to } => {
                // Recorded as soon as it is done: a failure to make it durable is undone too.
                let dir = rename_within(base, from, to)?;
                self.applied.push(Applied::Renamed { base, from, to });
                settle_entry(&dir, base, to)
            }
            Op::Link {
                base,
                relative,
                target,
                before,
                folders,
            } => {
                let dir = switch_link(base, relative, target, Some(folders))?;
                self.applied.push(Applied::Linked {
                    base,
                    relative,
                    old: before.map(str::to_string),
                });
                settle_entry(&dir, base, relative)
            }
        }
    }

    /// Makes everything applied durable, then drops the previous versions kept for undo.
    /// A failure to make it durable undoes the batch.
    pub(crate) fn finish(mut self) -> Result<(), FsError> {
        if let Err(e) = crate::signals::check().and_then(|()| self.make_durable()) {
            return Err(self.undo_after(e));
        }
        self.finished = true;
        super::folders::keep_created();
        for applied in &self.applied {
            applied.forget();
        }
        Ok(())
    }

    fn make_durable(&self) -> Result<(), FsError> {
        if self.large {
            let jobs: Vec<Job<'_>> = (self.touched.iter())
                .map(|(base, relative)| Job {
                    base,
                    relative,
                    head: &[],
                    contents: &[],
                    perms: Perms {
                        durable: true,
                        ..Perms::PRIVATE
                    },
                    expect: super::Expect::Any,
                    previous: None,
                })
                .collect();
            return sync_file_systems(&jobs);
        }
        let mut synced = std::collections::HashSet::new();
        let open: Vec<Option<&OwnedFd>> = self.applied.iter().map(Applied::dir).collect();
        for (i, (base, relative)) in self.touched.iter().enumerate() {
            let target = base.join(relative);
            let reopened;
            let dir = match open.get(i).copied().flatten() {
                Some(dir) => dir,
                None => {
                    reopened = parent(base, relative)?.0;
                    &reopened
                }
            };
            let st =
                rfs::fstat(dir).map_err(|e| FsError::io(&target, "inspect the folder of", e))?;
            if synced.insert((st.st_dev, st.st_ino)) {
                rfs::fsync(dir)
                    .map_err(|e| FsError::io(&target, "make durable the folder of", e))?;
            }
        }
        Ok(())
    }

    /// Undoes every applied step, newest first, and wraps `cause` with the outcome.
    fn undo_after(&mut self, cause: FsError) -> FsError {
        if self.applied.is_empty() {
            // Nothing was applied yet: the batch is simply not written.
            self.finished = true;
            super::folders::remove_created();
            return match cause {
                // These already say that nothing was written.
                already @ (FsError::NotWritten { .. }
                | FsError::Undone { .. }
                | FsError::Changed { .. }
                | FsError::Hostile { .. }) => already,
                cause => FsError::NotWritten {
                    source: Box::new(cause),
                },
            };
        }
        let kept = self.undo();
        FsError::Undone {
            source: Box::new(cause),
            kept,
        }
    }

    /// Puts every target back; returns the ones that still hold new content.
    fn undo(&mut self) -> Vec<PathBuf> {
        let mut kept = Vec::new();
        for applied in self.applied.iter().rev() {
            if applied.undo().is_ok() {
                if let Applied::InPlace { backup, .. } = applied {
                    let _ = super::remove(backup.base, backup.relative);
                }
            } else {
                kept.push(applied.target());
            }
        }
        kept.reverse();
        // Applied steps are now either undone or reported; none is to be undone again.
        self.applied.clear();
        self.finished = true;
        super::folders::remove_created();
        kept
    }
}

impl Drop for Batch<'_, '_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.undo();
        }
    }
}

/// Removes the temps of a batch that will not be applied.
fn discard_all(ops: &[Op<'_>], staged: &[Option<Staged>]) {
    for (op, staged) in ops.iter().zip(staged) {
        match (op, staged) {
            (Op::Write(job), Some(s)) => discard(job, s),
            (Op::InPlace { backup, .. }, _) => {
                let _ = super::remove(backup.base, backup.relative);
            }
            _ => {}
        }
    }
}

fn parent(base: &Path, relative: &str) -> Result<(std::os::fd::OwnedFd, String), FsError> {
    open_parent(base, relative, None)?.ok_or_else(|| FsError::BadFolder {
        path: base.join(relative),
    })
}

/// Renames a staged temp over its target (a plain `renameat`, as every file envsync
/// writes). The previous version of a target that exists survives until the batch is
/// finished, so that an undo is one rename back: as the copy staged beside it when the plan
/// read the target, else as a second name (a hard link) made just before the rename. (A
/// target the plan checks is never linked: a leftover link from a killed run would share its
/// inode, and sweeping it would change the target under the next run's plan.)
fn commit<'a>(
    job: &Job<'a>,
    staged: Staged,
) -> Result<(Applied<'a>, Result<Stamp, FsError>), FsError> {
    let Staged {
        target,
        temp,
        kept,
        dir,
    } = staged;
    // A large batch reopens the folder here and closes it again after the step: holding one
    // open folder a file would exceed the descriptor limit.
    let keep_dir = dir.is_some();
    let (dir, name) = match dir {
        Some(dir) => (dir, target_name(job.relative)),
        None => parent(job.base, job.relative)?,
    };
    let kept = match kept {
        // A copy made when the temp was staged (the plan read the target).
        Some(copy) => Some(copy),
        // Not read by the plan (a sync record): a second name keeps the previous version.
        None => {
            let old = super::writer::temp_name(&name);
            match rfs::linkat(&dir, name.as_str(), &dir, old.as_str(), AtFlags::empty()) {
                Ok(()) => Some(old),
                Err(Errno::NOENT) => None,
                // A file system without hard links (or one that refuses this one): the
                // previous version cannot be kept, and the step cannot be undone.
                Err(_) => Some(String::new()),
            }
        }
    };
    if let Err(e) = rfs::renameat(&dir, temp.as_str(), &dir, name.as_str()) {
        if let Some(old) = kept.as_deref().filter(|o| !o.is_empty()) {
            let _ = rfs::unlinkat(&dir, old, AtFlags::empty());
        }
        let _ = rfs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        return Err(FsError::io(&target, "rename a temp file over", e));
    }
    let stamp = rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| Stamp::of(&st))
        .map_err(|e| FsError::io(&target, "inspect", e));
    let (base, relative, dir) = (job.base, job.relative, keep_dir.then_some(dir));
    let applied = match kept {
        None => Applied::Created {
            base,
            relative,
            dir,
        },
        Some(old) if old.is_empty() => Applied::Overwritten {
            base,
            relative,
            dir,
        },
        Some(old) => Applied::Replaced {
            base,
            relative,
            old,
            dir,
        },
    };
    // A failed stat still hands the step back: the batch's undo puts it back (or reports it).
    Ok((applied, stamp))
}

/// What the symlink `base/relative` points at; `None` when nothing is there. Anything other
/// than a symlink there is an error.
pub(crate) fn read_link(base: &Path, relative: &str) -> Result<Option<String>, FsError> {
    let Some((dir, name)) = open_parent(base, relative, None)? else {
        return Ok(None);
    };
    match rfs::readlinkat(&dir, name.as_str(), Vec::new()) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::INVAL) => Err(FsError::NotALink {
            path: base.join(relative),
        }),
        Err(e) => Err(FsError::io(&base.join(relative), "read the symlink", e)),
    }
}

/// Renames `base/from` to `base/to` (both in one folder) without replacing anything; the
/// folder that holds them comes back, to be made durable once the step is recorded.
fn rename_within(base: &Path, from: &str, to: &str) -> Result<OwnedFd, FsError> {
    let path = base.join(to);
    let (dir, from_name) = parent(base, from)?;
    let to_name = target_name(to);
    rfs::renameat_with(
        &dir,
        from_name.as_str(),
        &dir,
        to_name.as_str(),
        rfs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| FsError::io(&path, "rename into place", e))?;
    Ok(dir)
}

/// Points the symlink `base/relative` at `target`: a link made under a temp name in the same
/// folder, renamed over the old one. With `create`, missing folders on the way are made as it
/// says. The folder comes back, to be made durable once the step is recorded.
fn switch_link(
    base: &Path,
    relative: &str,
    target: &str,
    create: Option<super::Folders>,
) -> Result<OwnedFd, FsError> {
    let path = base.join(relative);
    let (dir, name) = open_parent(base, relative, create)?
        .ok_or_else(|| FsError::BadFolder { path: path.clone() })?;
    let temp = super::writer::temp_name(&name);
    rfs::symlinkat(target, &dir, temp.as_str())
        .map_err(|e| FsError::io(&path, "make the symlink", e))?;
    if let Err(e) = rfs::renameat(&dir, temp.as_str(), &dir, name.as_str()) {
        let _ = rfs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        return Err(FsError::io(&path, "switch the symlink", e));
    }
    Ok(dir)
}

/// Makes a folder's new entry `relative` durable and returns its stamp.
fn settle_entry(dir: &OwnedFd, base: &Path, relative: &str) -> Result<Stamp, FsError> {
    let path = base.join(relative);
    rfs::fsync(dir).map_err(|e| FsError::io(&path, "make durable the folder of", e))?;
    rfs::statat(
        dir,
        target_name(relative).as_str(),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map(|st| Stamp::of(&st))
    .map_err(|e| FsError::io(&path, "inspect", e))
}

/// The last component of a relative path.
fn target_name(relative: &str) -> String {
    relative
        .rsplit('/')
        .find(|p| !p.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Expect;

    fn job<'a>(base: &'a Path, relative: &'a str, contents: &'a [u8], expect: Expect) -> Job<'a> {
        Job {
            base,
            relative,
            head: &[],
            contents,
            perms: Perms {
                durable: true,
                ..Perms::PRIVATE
            },
            expect,
            previous: None,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// A step that fails after others were applied puts every earlier one back: replaced
    /// files hold their old content, created ones are gone, no temp is left.
    #[test]
    fn a_failed_step_undoes_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("a"), b"old a").unwrap();
        std::fs::write(base.join("c"), b"old c").unwrap();
        let stamp = |name: &str| crate::fs::stamp(base, name).unwrap().unwrap();
        let (a, c) = (stamp("a"), stamp("c"));
        let writer = AtomicWriter::new();
        let mut batch = writer.batch();
        batch
            .apply(&[
                Op::Write(job(base, "a", b"new a", Expect::Stamp(a))),
                Op::Write(job(base, "b", b"new b", Expect::Absent)),
            ])
            .unwrap();
        // `c` changes after the plan saw it: the record-like second call fails its check.
        std::fs::write(base.join("c"), b"edited c").unwrap();
        let err = batch
            .apply(&[Op::Write(job(base, "c", b"new c", Expect::Stamp(c)))])
            .unwrap_err();
        assert!(
            matches!(&err, FsError::Undone { kept, .. } if kept.is_empty()),
            "{err}"
        );
        drop(batch);
        assert_eq!(std::fs::read(base.join("a")).unwrap(), b"old a");
        assert_eq!(std::fs::read(base.join("c")).unwrap(), b"edited c");
        assert_eq!(names(base), ["a", "c"]);
    }

    /// A finished batch keeps its writes and removes the previous versions.
    #[test]
    fn a_finished_batch_keeps_its_writes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("a"), b"old").unwrap();
        let a = crate::fs::stamp(base, "a").unwrap().unwrap();
        let writer = AtomicWriter::new();
        let mut batch = writer.batch();
        batch
            .apply(&[
                Op::Write(job(base, "a", b"new", Expect::Stamp(a))),
                Op::Write(job(base, "sub/b", b"b", Expect::Absent)),
            ])
            .unwrap();
        batch.finish().unwrap();
        assert_eq!(std::fs::read(base.join("a")).unwrap(), b"new");
        assert_eq!(std::fs::read(base.join("sub/b")).unwrap(), b"b");
        assert_eq!(names(base), ["a", "sub"]);
    }

    /// Dropping an unfinished batch (an error path elsewhere, a panic) undoes it.
    #[test]
    fn dropping_an_unfinished_batch_undoes_it() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::write(base.join("a"), b"old").unwrap();
        let a = crate::fs::stamp(base, "a").unwrap().unwrap();
        let writer = AtomicWriter::new();
        let mut batch = writer.batch();
        batch
            .apply(&[Op::Write(job(base, "a", b"new", Expect::Stamp(a)))])
            .unwrap();
        drop(batch);
        assert_eq!(std::fs::read(base.join("a")).unwrap(), b"old");
        assert_eq!(names(base), ["a"]);
    }
}
