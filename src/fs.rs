//! The one atomic writer, the apply protocol built on it, and the reads that go with them.
//!
//! Every file envsync writes goes through [`AtomicWriter`]: a temp file in the target's own
//! folder, created 0600 with `O_EXCL|O_NOFOLLOW`, given its owner, group and mode on the open
//! descriptor (so no umask and no moment of wider access), fsynced, renamed over the target,
//! and the folder fsynced. A run's writes go as one batch (`batch.rs`): all staged, all
//! checked, all applied, undone together on failure. Folders are walked from a trusted base
//! one component at a time without following symlinks, so a planted link cannot redirect a
//! write; missing ones are created, and unsafe ones refused, as `folders.rs` says. A symlink
//! at the target is refused. Temps left by a killed run are
//! removed the next time that folder is written.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, CWD};

use crate::secret::SecretBytes;

mod batch;
mod folders;
mod writer;
pub(crate) use batch::{read_link, Op, Owner};
pub(crate) use folders::{hostile, user_name, Folders};
pub(crate) use writer::Previous;
pub(crate) use writer::{AtomicWriter, Expect, Job};

/// Prefix of every temp file; the sweep removes `.envsync.*.tmp` in folders it writes.
pub(crate) const TEMP_PREFIX: &str = ".envsync.";

/// A file-system error with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("{}: is a symlink; envsync does not write through symlinks (replace it with a regular file, or point the manifest at the real path)", path.display())]
    Symlink { path: PathBuf },
    #[error("{}: already exists; envsync never overwrites it (choose another path, or move the old file away first)", path.display())]
    Exists { path: PathBuf },
    #[error("{}: is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: is not a symlink; envsync points it at the current release and replaces only a symlink (move it away first)", path.display())]
    NotALink { path: PathBuf },
    #[error("{}: changed while envsync was working, so nothing was written; run envsync status and try again", path.display())]
    Changed { path: PathBuf },
    #[error("{}: a folder on the way is a symlink or not a folder; envsync does not follow it", path.display())]
    BadFolder { path: PathBuf },
    #[error("{}: {reason}, so someone other than root or the file's owner could swap the files envsync writes under it; nothing was written (fix it with `{fix}`)", path.display())]
    Hostile {
        path: PathBuf,
        reason: String,
        fix: String,
    },
    #[error("interrupted by {}", signal.name())]
    Interrupted { signal: crate::signals::Signal },
    /// A batch failed before its first step was applied: nothing was written.
    #[error("{source}; nothing was written")]
    NotWritten { source: Box<FsError> },
    /// A batch failed part way and was undone: `kept` lists the files that could not be
    /// put back (empty: nothing was written).
    #[error("{source}; {}", undone_note(kept))]
    Undone {
        source: Box<FsError>,
        kept: Vec<PathBuf>,
    },
}

fn undone_note(kept: &[PathBuf]) -> String {
    if kept.is_empty() {
        "nothing was written (the files already replaced were put back)".into()
    } else {
        let list: Vec<String> = kept.iter().map(|p| p.display().to_string()).collect();
        format!(
            "these files hold new content and could not be put back: {}",
            list.join(", ")
        )
    }
}

impl FsError {
    /// The error at the root of an undone batch when the undo was complete (the batch then
    /// counts as never written); otherwise this error.
    pub(crate) fn cause(&self) -> &Self {
        match self {
            Self::Undone { source, kept } if kept.is_empty() => source.cause(),
            Self::NotWritten { source } => source.cause(),
            other => other,
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: impl Into<io::Error>) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            action,
            source: source.into(),
        }
    }
}

/// Final permissions of a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Perms {
    pub(crate) mode: u32,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    /// How folders on the way are created and checked.
    pub(crate) folders: Folders,
    /// fsync the file and its folder (every file a run writes, sync records included; only
    /// the undo copies a batch keeps and then drops skip it).
    pub(crate) durable: bool,
}

impl Perms {
    /// A private file (0600, owner unchanged), not flushed.
    pub(crate) const PRIVATE: Self = Self {
        mode: 0o600,
        uid: None,
        gid: None,
        folders: Folders::PRIVATE,
        durable: false,
    };
}

/// What a read found at a path.
#[derive(Debug)]
pub(crate) struct Existing {
    /// The content: a server file's is plaintext, so every read lands in a zeroizing buffer.
    pub(crate) bytes: SecretBytes,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) stamp: Stamp,
}

impl Existing {
    /// Its mode, owner and group, as a batch puts them back.
    pub(crate) fn owner(&self) -> Owner {
        Owner {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
        }
    }

    /// What a batch keeps to put this file back.
    pub(crate) fn previous(&self) -> Previous<'_> {
        Previous {
            bytes: self.bytes.expose(),
            owner: self.owner(),
        }
    }
}

/// Which file version a path holds: device, inode, size, modification and change times.
/// Any write, rename over or chmod changes it (ctime cannot be set from user space), so an
/// equal stamp means an unchanged file without reading it, as git's index relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(st: &rfs::Stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: (st.st_mtime, i64::try_from(st.st_mtime_nsec).unwrap_or(0)),
            ctime: (st.st_ctime, i64::try_from(st.st_ctime_nsec).unwrap_or(0)),
        }
    }

    pub(crate) fn of_file(file: &File, target: &Path) -> Result<Self, FsError> {
        rfs::fstat(file)
            .map(|st| Self::of(&st))
            .map_err(|e| FsError::io(target, "inspect", e))
    }

    /// `dev:ino:size:mtime:ctime`, for the sync record.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}.{}:{}.{}",
            self.dev, self.ino, self.size, self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1
        )
    }

    pub(crate) fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let mut num = || parts.next()?.parse::<u64>().ok();
        let (dev, ino, size) = (num()?, num()?, num()?);
        let mut time = || {
            let (s, ns) = parts.next()?.split_once('.')?;
            Some((s.parse().ok()?, ns.parse().ok()?))
        };
        let (mtime, ctime) = (time()?, time()?);
        Some(Self {
            dev,
            ino,
            size,
            mtime,
            ctime,
        })
    }
}

/// Sets owner, group and mode of an existing file without touching its content, on a
/// descriptor opened without following symlinks.
pub(crate) fn set_perms(base: &Path, relative: &str, perms: Perms) -> Result<Stamp, FsError> {
    let target = base.join(relative);
    let file = open_existing(base, relative, OFlags::RDONLY)?;
    apply_perms(&file, &target, perms)?;
    Stamp::of_file(&file, &target)
}

/// Owner and group, then mode (chown clears set-id bits), on an open descriptor.
fn apply_perms(file: &File, target: &Path, perms: Perms) -> Result<(), FsError> {
    if perms.uid.is_some() || perms.gid.is_some() {
        std::os::unix::fs::fchown(file, perms.uid, perms.gid)
            .map_err(|e| FsError::io(target, "change the owner of", e))?;
    }
    // The entry's mode is all the access there is: an ACL on the file would widen it.
    folders::strip_acl(file, false)
        .map_err(|e| FsError::io(target, "remove the ACL (it would widen the mode) of", e))?;
    rfs::fchmod(file.as_fd(), Mode::from_raw_mode(perms.mode))
        .map_err(|e| FsError::io(target, "change the mode of", e))
}

/// Rewrites an existing file's content in place, keeping its inode (a file bind-mounted
/// alone into a container keeps seeing the old inode after a rename). The caller has kept a
/// copy of `old`; if the write fails, `old` is written back.
pub(crate) fn write_in_place(
    base: &Path,
    relative: &str,
    old: &[u8],
    contents: &[u8],
    perms: Perms,
) -> Result<Stamp, FsError> {
    let file = open_for_rewrite(base, relative)?;
    rewrite_in_place(&file, &base.join(relative), old, contents, perms)
}

/// Opens an existing file to rewrite it in place. Nothing is changed yet: a file that cannot
/// be opened for writing (immutable, append-only) fails here, untouched.
pub(crate) fn open_for_rewrite(base: &Path, relative: &str) -> Result<File, FsError> {
    open_existing(base, relative, OFlags::WRONLY)
}

/// [`write_in_place`] on a file already opened with [`open_for_rewrite`].
pub(crate) fn rewrite_in_place(
    file: &File,
    target: &Path,
    old: &[u8],
    contents: &[u8],
    perms: Perms,
) -> Result<Stamp, FsError> {
    use std::os::unix::fs::FileExt;
    let target = target.to_path_buf();
    // Owner, group and mode first, on this descriptor: the new secret is never readable by
    // more than the entry allows, not even for a moment.
    apply_perms(file, &target, perms)?;
    let rewrite = |bytes: &[u8]| -> io::Result<()> {
        file.write_all_at(bytes, 0)?;
        file.set_len(u64::try_from(bytes.len()).unwrap_or(u64::MAX))?;
        file.sync_all()
    };
    if let Err(e) = rewrite(contents) {
        return Err(match rewrite(old) {
            Ok(()) => FsError::io(&target, "rewrite in place (the previous content was restored)", e),
            Err(_) => FsError::io(
                &target,
                "rewrite in place, nor restore it (its previous content is in the state folder's backup)",
                e,
            ),
        });
    }
    Stamp::of_file(file, &target)
}

fn open_existing(base: &Path, relative: &str, access: OFlags) -> Result<File, FsError> {
    let target = base.join(relative);
    let (dir, name) = open_parent(base, relative, None)?.ok_or_else(|| FsError::Io {
        path: target.clone(),
        action: "open",
        source: io::ErrorKind::NotFound.into(),
    })?;
    let fd = rfs::openat(
        &dir,
        name.as_str(),
        access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => FsError::Symlink {
            path: target.clone(),
        },
        e => FsError::io(&target, "open", e),
    })?;
    let st = rfs::fstat(&fd).map_err(|e| FsError::io(&target, "inspect", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(FsError::NotAFile { path: target });
    }
    Ok(File::from(fd))
}

/// Removes `base/relative` if it exists (a backup that is no longer needed).
pub(crate) fn remove(base: &Path, relative: &str) -> Result<(), FsError> {
    let target = base.join(relative);
    let Some((dir, name)) = open_parent(base, relative, None)? else {
        return Ok(());
    };
    match rfs::unlinkat(&dir, name.as_str(), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(FsError::io(&target, "remove", e)),
    }
}

/// The run's lock: an exclusive `flock` on `lock` in the state folder, held while a run
/// writes, so two runs on one server root (one manifest or two) take turns instead of
/// sweeping each other's temps. The state folder is private to its owner, so no other user can
/// open the lock file and hold it to block a run. Released on drop.
#[derive(Debug)]
pub(crate) struct RunLock(#[allow(dead_code)] File);

/// Creates `folder` (and the folders above it) when missing, as [`Folders`] says.
pub(crate) fn create_folder(folder: &Path, folders: Folders) -> Result<(), FsError> {
    folders::make_base(folder, folders)
}

/// The lock file's name inside the state folder.
pub(crate) const LOCK_FILE: &str = "lock";

impl RunLock {
    /// Takes the lock, waiting for another run to release it: `waiting` is called once, with
    /// the lock's path, before the wait. A signal stops the wait. The state folder is made as
    /// `folders` says when missing.
    pub(crate) fn acquire(
        writer: &AtomicWriter,
        state_dir: &Path,
        folders: Folders,
        waiting: impl FnOnce(&Path),
    ) -> Result<Self, FsError> {
        let path = state_dir.join(LOCK_FILE);
        let (dir, name) = open_parent(state_dir, LOCK_FILE, Some(folders))?
            .ok_or_else(|| FsError::BadFolder { path: path.clone() })?;
        writer.check_folder(state_dir, rustix::process::geteuid().as_raw())?;
        // Read-only (flock needs no more), and created only when missing: a run with
        // nothing to do opens nothing for writing.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rfs::openat(&dir, name.as_str(), flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) => rfs::openat(
                &dir,
                name.as_str(),
                flags | OFlags::CREATE,
                Mode::from_raw_mode(0o600),
            ),
            other => other,
        }
        .map_err(|e| match e {
            rustix::io::Errno::LOOP => FsError::Symlink { path: path.clone() },
            e => FsError::io(&path, "open", e),
        })?;
        let file = File::from(fd);
        let try_lock = || rfs::flock(&file, rfs::FlockOperation::NonBlockingLockExclusive);
        match try_lock() {
            Ok(()) => return Ok(Self(file)),
            Err(rustix::io::Errno::WOULDBLOCK) => waiting(&path),
            Err(e) => return Err(FsError::io(&path, "lock", e)),
        }
        loop {
            crate::signals::check()?;
            std::thread::sleep(std::time::Duration::from_millis(50));
            match try_lock() {
                Ok(()) => return Ok(Self(file)),
                Err(rustix::io::Errno::WOULDBLOCK) => {}
                Err(e) => return Err(FsError::io(&path, "lock", e)),
            }
        }
    }
}

/// Reads `base/relative` without following symlinks; `None` when it does not exist. The
/// bytes go straight into a zeroizing buffer of the size the file had when it was opened
/// (never grown, so no copy is left behind); a file that changes size while it is read is
/// reported as changed.
pub(crate) fn read(base: &Path, relative: &str) -> Result<Option<Existing>, FsError> {
    let Some((mut file, existing)) = open(base, relative)? else {
        return Ok(None);
    };
    let target = || base.join(relative);
    let size = usize::try_from(existing.stamp.size)
        .map_err(|_| FsError::io(&target(), "read", io::ErrorKind::OutOfMemory))?;
    let mut bytes = SecretBytes::new(vec![0u8; size]);
    let changed = || FsError::Changed { path: target() };
    match file.read_exact(&mut bytes.expose_mut()[..]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(changed()),
        Err(e) => return Err(FsError::io(&target(), "read", e)),
    }
    let mut probe = zeroize::Zeroizing::new([0u8; 1]);
    match file.read(probe.as_mut()) {
        Ok(0) => Ok(Some(Existing { bytes, ..existing })),
        Ok(_) => Err(changed()),
        Err(e) => Err(FsError::io(&target(), "read", e)),
    }
}

/// Opens a regular file for reading, without following a symlink at any level; what it
/// found is returned with no bytes read yet.
pub(crate) fn open(base: &Path, relative: &str) -> Result<Option<(File, Existing)>, FsError> {
    let target = base.join(relative);
    let Some((dir, name)) = open_parent(base, relative, None)? else {
        return Ok(None);
    };
    let fd = match rfs::openat(
        &dir,
        name.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(FsError::Symlink { path: target }),
        Err(e) => return Err(FsError::io(&target, "open", e)),
    };
    let st = rfs::fstat(&fd).map_err(|e| FsError::io(&target, "inspect", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(FsError::NotAFile { path: target });
    }
    Ok(Some((
        File::from(fd),
        Existing {
            bytes: SecretBytes::default(),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            stamp: Stamp::of(&st),
        },
    )))
}

/// The stamp of what is at `base/relative` (not following a symlink there), if anything.
pub(crate) fn stamp(base: &Path, relative: &str) -> Result<Option<Stamp>, FsError> {
    let Some((dir, name)) = open_parent(base, relative, None)? else {
        return Ok(None);
    };
    match rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(Stamp::of(&st))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(FsError::io(&base.join(relative), "inspect", e)),
    }
}

/// Opens the folder that holds `base/relative`, one component at a time with `O_NOFOLLOW`.
/// With `create`, missing folders (the base too) are made as [`Folders`] says; without, a
/// missing one gives `None`.
pub(crate) fn open_parent(
    base: &Path,
    relative: &str,
    create: Option<Folders>,
) -> Result<Option<(OwnedFd, String)>, FsError> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    let name = parts
        .pop()
        .ok_or_else(|| FsError::NotAFile {
            path: base.to_path_buf(),
        })?
        .to_string();
    if let Some(folders) = create.filter(|_| !base.exists()) {
        folders::make_base(base, folders)?;
    }
    // The base (server root or repo root) is trusted and may itself be a symlink.
    let mut dir = match rfs::openat(CWD, base, dir_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) if create.is_none() => return Ok(None),
        Err(e) => return Err(FsError::io(base, "open the folder", e)),
    };
    // One openat2 that refuses every symlink on the way; when a folder is missing (or the
    // kernel predates openat2) the walk below creates or reports it component by component.
    if !parts.is_empty() {
        let how = rfs::ResolveFlags::NO_SYMLINKS | rfs::ResolveFlags::BENEATH;
        if let Ok(fd) = rfs::openat2(&dir, parts.join("/"), dir_flags, Mode::empty(), how) {
            return Ok(Some((fd, name)));
        }
    }
    let mut path = base.to_path_buf();
    for part in parts {
        path.push(part);
        let next = match rfs::openat(&dir, part, dir_flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => match create {
                Some(folders) => folders::make_folder(&dir, part, &path, folders)?,
                None => return Ok(None),
            },
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err(FsError::BadFolder { path })
            }
            Err(e) => return Err(FsError::io(&path, "open the folder", e)),
        };
        dir = next;
    }
    Ok(Some((dir, name)))
}
