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
            Ok(()) => looked.push(format!("{} ({label})", path.display())),
            Err(_) if need == Need::Implicit => {
                looked.push(format!("{} ({label}, not a usable key)", path.display()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(key) = &config.env_key {
        identities.add(&IdentitySource {
            origin: "SOPS_AGE_KEY".into(),
            contents: key.clone(),
        })?;
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
        crate::fs::hostile_above(path, [0, euid]).map_err(read_error)?
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
}
