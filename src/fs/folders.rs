//! The folders around a target: how envsync creates the ones it needs, and which existing ones
//! it refuses to write through.
//!
//! A folder envsync creates gets the entry's `dir_mode` (owner the running user, group the
//! entry's group) and no ACL, so a `0640 root:debian` file in it is readable by its group and
//! by nobody else. An existing folder is never changed; one that someone other than root or
//! the target's owner can write to (owned by another user, or group or world writable without
//! the sticky bit) is refused: its owner could swap the files envsync writes there. An ACL that
//! lets a named user or group write shows in the group bits (they are the ACL's mask), so the
//! mode check covers it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{self as rfs, Mode, OFlags};
use rustix::io::Errno;

use super::FsError;

/// The extended attributes that hold a POSIX ACL: the one that grants access, and the default
/// a folder hands down to the files created in it.
const ACL_ACCESS: &str = "system.posix_acl_access";
const ACL_DEFAULT: &str = "system.posix_acl_default";

/// How the folders on the way to a file are made and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Folders {
    /// Mode of the folders created on the way.
    pub(crate) mode: u32,
    /// Their group (`None`: the running user's).
    pub(crate) gid: Option<u32>,
    /// Refuse an existing folder on the way (up to `/`) that someone other than root or the
    /// file's owner can write to. Server files and the state folder are guarded; the repo,
    /// which holds ciphertext and may belong to a deploy user, is not.
    pub(crate) guarded: bool,
}

impl Folders {
    /// Private folders, unchecked (the repo side, keys, tests).
    pub(crate) const PRIVATE: Self = Self {
        mode: 0o700,
        gid: None,
        guarded: false,
    };
}

/// The folders this process created, oldest first: a batch that is undone removes the ones
/// it made (when still empty), so a failed run leaves no trace of them. One list for the
/// process, as the folders are created deep inside the walk of `open_parent`, and a process
/// runs one command.
static CREATED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn created() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    CREATED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets the folders created so far (a batch starts, or is finished: they stay).
pub(super) fn keep_created() {
    created().clear();
}

/// Removes the folders created since [`keep_created`], deepest first (parallel staging can
/// record a parent after its child), as long as they are empty.
pub(super) fn remove_created() {
    let mut list = created();
    list.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
    for path in list.drain(..) {
        let _ = std::fs::remove_dir(&path);
    }
}

/// Creates folder `name` in `parent` (or finds it, when a parallel write created it first),
/// then gives it `folders`' group, no ACL and `folders`' mode, in that order (chown can clear
/// the set-gid bit). Made 0700 first, so it is never wider than asked, not even for a moment.
pub(super) fn make_folder(
    parent: &OwnedFd,
    name: &str,
    path: &Path,
    folders: Folders,
) -> Result<OwnedFd, FsError> {
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let made = match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(FsError::io(path, "create the folder", e)),
    };
    let fd =
        rfs::openat(parent, name, dir_flags, Mode::empty()).map_err(|_| FsError::BadFolder {
            path: path.to_path_buf(),
        })?;
    if made {
        if folders.gid.is_some() {
            std::os::unix::fs::fchown(&fd, None, folders.gid)
                .map_err(|e| FsError::io(path, "set the group of", e))?;
        }
        strip_acl(&fd, true).map_err(|e| FsError::io(path, "remove the inherited ACL from", e))?;
        rfs::fchmod(&fd, Mode::from_raw_mode(folders.mode))
            .map_err(|e| FsError::io(path, "set the mode of", e))?;
        // The new folder's name is durable before any file is renamed into it.
        rfs::fsync(parent).map_err(|e| FsError::io(path, "make durable the creation of", e))?;
        created().push(path.to_path_buf());
    }
    Ok(fd)
}

/// Creates `base` and the folders above it that are missing, as [`make_folder`] does.
pub(super) fn make_base(base: &Path, folders: Folders) -> Result<(), FsError> {
    let missing: Vec<&Path> = base.ancestors().take_while(|p| !p.exists()).collect();
    for path in missing.into_iter().rev() {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let parent_fd = rfs::openat(rfs::CWD, parent, dir_flags, Mode::empty())
            .map_err(|e| FsError::io(parent, "open the folder", e))?;
        make_folder(&parent_fd, &name.to_string_lossy(), path, folders)?;
    }
    Ok(())
}

/// Removes the ACL a file or folder inherited (and, for a folder, the default it would hand
/// down), so that its mode alone says who can read it. A file system without ACLs has none.
pub(super) fn strip_acl(fd: impl AsFd, folder: bool) -> std::io::Result<()> {
    let names: &[&str] = if folder {
        &[ACL_ACCESS, ACL_DEFAULT]
    } else {
        &[ACL_ACCESS]
    };
    for name in names {
        match rfs::fremovexattr(&fd, *name) {
            Ok(()) | Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why a folder is not safe to write through, and the command that fixes it; `None` when it
/// is. `owners` are the users who may own it: root and the target's owner.
pub(crate) fn hostile(st: &rfs::Stat, owners: [u32; 2]) -> Option<(String, String)> {
    let mode = st.st_mode & 0o7777;
    if !owners.contains(&st.st_uid) {
        return Some((
            format!("is owned by {}", user_name(st.st_uid)),
            "chown root <folder>".into(),
        ));
    }
    // The sticky bit lets only a file's owner rename or remove it (`/tmp`).
    if mode & 0o1000 != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some((
            format!("is writable by every user (mode {mode:04o})"),
            "chmod o-w <folder>".into(),
        ));
    }
    if mode & 0o020 != 0 {
        return Some((
            format!(
                "is writable by its group (gid {}) or a user its ACL names (mode {mode:04o})",
                st.st_gid
            ),
            "chmod g-w <folder>".into(),
        ));
    }
    None
}

/// `nobody (uid 65534)`, or the uid alone when it has no name.
pub(crate) fn user_name(uid: u32) -> String {
    match uzers::get_user_by_uid(uid) {
        Some(user) => format!("{} (uid {uid})", user.name().to_string_lossy()),
        None => format!("uid {uid}"),
    }
}

/// Checks `folder` and every folder above it, up to `/`, with [`hostile`]. `trusted` holds the
/// folders already checked this run (thousands of entries share a few folders).
pub(super) fn check_chain(
    folder: &Path,
    owner: u32,
    trusted: &std::sync::Mutex<std::collections::HashSet<PathBuf>>,
) -> Result<(), FsError> {
    let lock = || {
        trusted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if lock().contains(folder) {
        return Ok(());
    }
    let real = std::fs::canonicalize(folder).map_err(|e| FsError::io(folder, "resolve", e))?;
    let owners = [0, owner];
    for path in real.ancestors() {
        if lock().contains(path) {
            break;
        }
        let st = rfs::lstat(path).map_err(|e| FsError::io(path, "inspect the folder", e))?;
        if let Some((reason, fix)) = hostile(&st, owners) {
            return Err(FsError::Hostile {
                path: path.to_path_buf(),
                reason,
                fix: fix.replace("<folder>", &path.display().to_string()),
            });
        }
        lock().insert(path.to_path_buf());
    }
    lock().insert(folder.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, uid: u32, gid: u32) -> rfs::Stat {
        let mut st = rfs::stat("/").unwrap();
        st.st_mode = 0o040_000 | mode;
        st.st_uid = uid;
        st.st_gid = gid;
        st
    }

    /// Which folders a target may sit in: root's or the owner's, not writable by others
    /// unless sticky.
    #[test]
    fn hostile_folders_table() {
        let owners = [0, 1000];
        let cases = [
            // (mode, uid, gid, refused)
            (0o755, 0, 0, false),
            (0o700, 1000, 1000, false),
            (0o750, 0, 5, false),
            (0o755, 65534, 0, true),
            (0o777, 0, 0, true),
            (0o1777, 0, 0, false),
            (0o775, 0, 5, true),
            (0o775, 0, 0, true),
            (0o1775, 0, 5, false),
            (0o757, 1000, 0, true),
            (0o2755, 0, 5, false),
            (0o1777, 65534, 0, true),
        ];
        for (mode, uid, gid, refused) in cases {
            let got = hostile(&stat(mode, uid, gid), owners);
            assert_eq!(
                got.is_some(),
                refused,
                "mode {mode:o} uid {uid} gid {gid}: {got:?}"
            );
        }
    }
}
