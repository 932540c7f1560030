//! Identities for decrypting, merged from every source sops reads: the `--identity` flags,
//! the manifest's `server.identity`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`,
//! `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, the default `~/.config/sops/age/keys.txt`, and
//! `~/.ssh/id_ed25519` / `~/.ssh/id_rsa`. They are parsed once a run.
//!
//! A key file readable by others or writable by its group is refused, as ssh refuses it
//! (group-read is fine: teams keep the key 0640 root:<group>); so is one owned by neither
//! root nor the user running envsync, and one in a folder (or below a folder) that someone
//! else could write to: any of them could swap the key for their own. A passphrase-protected
//! age identity file is unlocked with a passphrase read from the terminal.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::KeyError;
use crate::crypto::{self, Identities, IdentitySource};
use crate::secret::SecretBytes;

/// Identity sources as the settings resolved them.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdentityConfig {
    /// `--identity` files: each must exist.
    pub(crate) explicit: Vec<PathBuf>,
    /// `server.identity` from the manifest.
    pub(crate) manifest: Option<PathBuf>,
    pub(crate) env_key_file: Option<PathBuf>,
    pub(crate) env_key: Option<SecretBytes>,
    pub(crate) env_ssh_key_file: Option<PathBuf>,
    /// `~/.config/sops/age/keys.txt`, read when it exists.
    pub(crate) default_file: Option<PathBuf>,
    /// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`, read when they exist and parse.
    pub(crate) home_ssh: Vec<PathBuf>,
}

/// How much a source matters: a named file must exist; an implicit one is skipped when it
/// is missing or unusable, as sops skips it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
    Implicit,
}

/// Loads and parses every identity that is available.
pub(crate) fn load_identities(config: &IdentityConfig) -> Result<Identities, KeyError> {
    let mut identities = Identities::parse(&[])?;
    let mut looked = Vec::new();
    let mut files: Vec<(&Path, &str, Need)> = config
        .explicit
        .iter()
        .map(|p| (p.as_path(), "--identity", Need::Required))
        .collect();
    let optional = [
        (config.manifest.as_deref(), "server.identity"),
        (config.env_key_file.as_deref(), "SOPS_AGE_KEY_FILE"),
        (
            config.env_ssh_key_file.as_deref(),
            "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        ),
    ];
    files.extend(
        optional
            .into_iter()
            .filter_map(|(p, label)| p.map(|p| (p, label, Need::Optional))),
    );
    files.extend(
        config
            .default_file
            .iter()
            .chain(&config.home_ssh)
            .map(|p| (p.as_path(), "default", Need::Implicit)),
    );
    for (path, label, need) in files {
        let contents = match read_private(path) {
            Ok(Some(contents)) => contents,
            Ok(None) if need == Need::Required => {
                return Err(KeyError::ReadIdentity {
                    path: path.to_path_buf(),
                    source: std::io::ErrorKind::NotFound.into(),
                })
            }
            Ok(None) => {
                looked.push(format!("{} ({label}, missing)", path.display()));
                continue;
            }
            Err(_) if need == Need::Implicit => {
                looked.push(format!("{} ({label}, unusable)", path.display()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let contents = unlock(path, contents)?;
        let source = IdentitySource {
            origin: path.display().to_string(),
            contents,
        };
        match identities.add(&source) {
            Ok(added) if added.keys == 0 => looked.push(format!(
                "{} ({label}, only post-quantum identities: {})",
                path.display(),
                crypto::PQ_UNSUPPORTED
            )),
            Ok(_) => looked.push(format!("{} ({label})", path.display())),
            Err(_) if need == Need::Implicit => {
                looked.push(format!("{} ({label}, not a usable key)", path.display()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(key) = &config.env_key {
        let added = identities.add(&IdentitySource {
            origin: "SOPS_AGE_KEY".into(),
            contents: key.clone(),
        })?;
        if added.keys == 0 {
            looked.push(format!(
                "SOPS_AGE_KEY (only post-quantum identities: {})",
                crypto::PQ_UNSUPPORTED
            ));
        }
    }
    if identities.is_empty() {
        if config.explicit.is_empty() {
            looked.push("--identity (not given)".into());
        }
        if config.env_key.is_none() {
            looked.push("SOPS_AGE_KEY (unset)".into());
        }
        return Err(KeyError::NoIdentity { looked });
    }
    Ok(identities)
}

/// Reads a private key file after checking, on the opened descriptor, that it is a regular
/// file owned by root or the running user that nobody but its owner (and group, for reading)
/// can read or change, in folders nobody else can write to. `None` if missing.
fn read_private(path: &Path) -> Result<Option<SecretBytes>, KeyError> {
    let read_error = |source| KeyError::ReadIdentity {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(read_error(std::io::Error::other("not a regular file")));
    }
    // `metadata` is an fstat of the descriptor: these checks are of the file that is read.
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        let me = if euid == 0 {
            "root".to_string()
        } else {
            uzers::get_user_by_uid(euid).map_or_else(
                || euid.to_string(),
                |u| u.name().to_string_lossy().into_owned(),
            )
        };
        return Err(KeyError::Owner {
            path: path.to_path_buf(),
            owner: crate::fs::user_name(meta.uid()),
            fix: format!("chown {me} {}", path.display()),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(KeyError::OpenPermissions {
            path: path.to_path_buf(),
            mode,
            fix: format!("chmod {} {}", chmod_fix(mode), path.display()),
        });
    }
    if let Some((folder, reason, fix)) =
        hostile_folder_above(path, [0, euid]).map_err(read_error)?
    {
        return Err(KeyError::KeyFolder {
            path: path.to_path_buf(),
            folder,
            reason,
            fix,
        });
    }
    let mut contents = SecretBytes::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    contents.read_to_end(&mut file).map_err(read_error)?;
    Ok(Some(contents))
}

/// The first folder above the key `file` that [`crate::fs::hostile`] refuses (owned by
/// someone else, or writable by others without the sticky bit): its path, why, and the
/// command that fixes it. Both chains are walked up to `/`: the path it resolves to (where
/// the file really is, named without `..` or links) first, then the path as written, since
/// a folder holding a symlink on the way could swap the link.
fn hostile_folder_above(
    file: &Path,
    owners: [u32; 2],
) -> std::io::Result<Option<(PathBuf, String, String)>> {
    let written = std::path::absolute(file)?;
    let real = std::fs::canonicalize(file)?;
    let folders = (real.parent().into_iter().flat_map(Path::ancestors))
        .chain(written.parent().into_iter().flat_map(Path::ancestors));
    for folder in folders {
        // Followed: a symlinked folder on the way is judged by the folder it leads to, and
        // the folder holding the link is the next one up in the same chain.
        let st = rustix::fs::stat(folder)?;
        if let Some((reason, fix)) = crate::fs::hostile(&st, owners) {
            let fix = fix.replace("<folder>", &folder.display().to_string());
            return Ok(Some((folder.to_path_buf(), reason, fix)));
        }
    }
    Ok(None)
}

/// The symbolic `chmod` argument that takes away exactly the bits a key must not have:
/// group write and all access by others (group read stays, for `0640 root:<group>`).
fn chmod_fix(mode: u32) -> String {
    let mut parts = Vec::new();
    if mode & 0o020 != 0 {
        parts.push("g-w");
    }
    if mode & 0o007 != 0 {
        parts.push("o-rwx");
    }
    parts.join(",")
}

/// Unlocks a passphrase-protected age identity file with a passphrase from the terminal;
/// any other content is returned as it is.
fn unlock(path: &Path, contents: SecretBytes) -> Result<SecretBytes, KeyError> {
    if !crypto::is_age_file(contents.expose()) {
        return Ok(contents);
    }
    let prompt = format!("Passphrase for {}: ", path.display());
    let passphrase = rpassword::prompt_password(prompt).map_err(|_| KeyError::NoTerminal {
        path: path.to_path_buf(),
    })?;
    let identity =
        crypto::decrypt_with_passphrase(contents.expose(), SecretString::from(passphrase))
            .map_err(|e| match e {
                crypto::CryptoError::Corrupt(reason) => crypto::CryptoError::BadIdentity {
                    origin: path.display().to_string(),
                    reason: format!("cannot unlock it: {reason}"),
                },
                other => other,
            })?;
    Ok(identity)
}

/// The default identity file sops reads: `$XDG_CONFIG_HOME/sops/age/keys.txt`, or under
/// `~/.config`.
pub(crate) fn default_identity_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("sops").join("age").join("keys.txt"))
}

/// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa`, which sops also tries.
pub(crate) fn home_ssh_keys() -> Vec<PathBuf> {
    std::env::var_os("HOME")
        .map(|home| {
            let ssh = PathBuf::from(home).join(".ssh");
            vec![ssh.join("id_ed25519"), ssh.join("id_rsa")]
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_fix_removes_only_the_bits_that_are_refused() {
        assert_eq!(chmod_fix(0o644), "o-rwx");
        assert_eq!(chmod_fix(0o660), "g-w");
        assert_eq!(chmod_fix(0o666), "g-w,o-rwx");
        assert_eq!(chmod_fix(0o602), "o-rwx");
    }

    /// A key reached through a symlink is judged by the folders of the link and of the file.
    #[test]
    fn hostile_folder_above_follows_links_and_sees_both_chains() {
        let owners = [0, rustix::process::geteuid().as_raw()];
        let base = tempfile::tempdir().unwrap();
        let (safe, open) = (base.path().join("safe"), base.path().join("open"));
        for dir in [&safe, &open] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(safe.join("key"), "k").unwrap();
        std::fs::write(open.join("key"), "k").unwrap();
        assert_eq!(
            hostile_folder_above(&safe.join("key"), owners).unwrap(),
            None
        );
        // A link in a safe folder to a key in an open one: the real folder is refused.
        std::os::unix::fs::symlink(open.join("key"), safe.join("to-open")).unwrap();
        let found = hostile_folder_above(&safe.join("to-open"), owners)
            .unwrap()
            .unwrap();
        assert_eq!(found.0, open);
        assert_eq!(found.2, format!("chmod o-w {}", open.display()));
        // A link in an open folder to a key in a safe one: the link's folder is refused.
        std::os::unix::fs::symlink(safe.join("key"), open.join("to-safe")).unwrap();
        let found = hostile_folder_above(&open.join("to-safe"), owners)
            .unwrap()
            .unwrap();
        assert_eq!(found.0, open);
    }
}
