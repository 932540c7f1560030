//! Where `envsync edit` puts the plaintext while the editor has it: a private folder (0700,
//! random name) on a memory file system, `$XDG_RUNTIME_DIR` when it is a folder the user
//! owns, else `/dev/shm`; never the repo, never `/tmp` on disk. The folder is a guard: on
//! drop (every way out of `edit`, a signal included) its file is overwritten with zeros and
//! the folder removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The memory file system used when `$XDG_RUNTIME_DIR` is not usable.
const SHM: &str = "/dev/shm";

/// What is known of a candidate base folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) is_dir: bool,
    pub(super) owned: bool,
}

/// Which base to use: `$XDG_RUNTIME_DIR` when it is a folder the user owns, else `/dev/shm`
/// when it is a folder, else none (pure, for a table test).
pub(super) fn pick(xdg: Option<Candidate>, shm: Candidate) -> Option<Which> {
    match (xdg, shm) {
        (
            Some(Candidate {
                is_dir: true,
                owned: true,
            }),
            _,
        ) => Some(Which::Runtime),
        (_, Candidate { is_dir: true, .. }) => Some(Which::Shm),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Which {
    Runtime,
    Shm,
}

fn candidate(path: &Path) -> Candidate {
    // Followed links: a runtime folder may be reached through one; ownership is what counts.
    match std::fs::metadata(path) {
        Ok(meta) => Candidate {
            is_dir: meta.is_dir(),
            owned: meta.uid() == rustix::process::geteuid().as_raw(),
        },
        Err(_) => Candidate {
            is_dir: false,
            owned: false,
        },
    }
}

/// The base folder for the scratch folder, or why there is none.
pub(super) fn base() -> Result<PathBuf, String> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let shm = PathBuf::from(SHM);
    match pick(xdg.as_deref().map(candidate), candidate(&shm)) {
        Some(Which::Runtime) => Ok(xdg.unwrap_or(shm)),
        Some(Which::Shm) => Ok(shm),
        None => Err(format!(
            "no memory-backed folder for the plaintext: $XDG_RUNTIME_DIR is {} and {SHM} does not exist; \
             envsync never puts a decrypted secret on disk (set XDG_RUNTIME_DIR to a tmpfs folder you own)",
            match &xdg {
                Some(p) => format!("{} (not a folder you own)", p.display()),
                None => "not set".into(),
            }
        )),
    }
}

/// The private folder and the plaintext file in it; removed on drop.
#[derive(Debug)]
pub(super) struct Scratch {
    dir: Option<tempfile::TempDir>,
    file: PathBuf,
}

impl Scratch {
    /// Makes a 0700 folder with a random name in `base` and writes `contents` into a new
    /// 0600 file named `name` there (`O_EXCL`).
    pub(super) fn create(base: &Path, name: &str, contents: &[u8]) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(".envsync-edit-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        // The folder's mode is set whatever the umask was.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let file = dir.path().join(name);
        let scratch = Self {
            dir: Some(dir),
            file,
        };
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&scratch.file)?;
        out.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        out.write_all(contents)?;
        out.sync_all()?;
        Ok(scratch)
    }

    /// The plaintext file the editor opens.
    pub(super) fn file(&self) -> &Path {
        &self.file
    }

    /// Overwrites every file in the folder with zeros (an editor may have left a backup or
    /// swap file beside it), so the plaintext does not linger in freed memory pages.
    fn clear(&self) {
        let Some(dir) = &self.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if let Ok(mut file) = OpenOptions::new().write(true).open(&path) {
                let _ = zero(&mut file, meta.len());
            }
        }
    }
}

fn zero(file: &mut File, len: u64) -> std::io::Result<()> {
    let block = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.clear();
        // TempDir's own drop removes the folder and everything in it.
        drop(self.dir.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_folder_is_used_only_when_the_user_owns_it() {
        let c = |is_dir, owned| Candidate { is_dir, owned };
        let table = [
            (Some(c(true, true)), c(true, true), Some(Which::Runtime)),
            (Some(c(true, false)), c(true, false), Some(Which::Shm)),
            (Some(c(false, false)), c(true, false), Some(Which::Shm)),
            (None, c(true, false), Some(Which::Shm)),
            (Some(c(true, true)), c(false, false), Some(Which::Runtime)),
            (Some(c(true, false)), c(false, false), None),
            (None, c(false, false), None),
        ];
        for (xdg, shm, want) in table {
            assert_eq!(pick(xdg, shm), want, "{xdg:?} {shm:?}");
        }
    }

    #[test]
    fn the_scratch_folder_is_private_and_removed_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let scratch = Scratch::create(base.path(), ".env", b"A=1\n").unwrap();
        let file = scratch.file().to_path_buf();
        let folder = file.parent().unwrap().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"A=1\n");
        drop(scratch);
        assert!(!folder.exists());
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
