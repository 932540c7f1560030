//! Where keys come from: identities for decrypting ([`identities`]), recipients for
//! encrypting ([`recipients`]).

pub(crate) mod identities;
pub(crate) mod layout;
pub(crate) mod recipients;

use std::path::PathBuf;

pub(crate) use identities::{
    default_identity_file, home_ssh_keys, load_identities, IdentityConfig,
};
pub(crate) use recipients::Recipients;

use crate::crypto::CryptoError;

/// Why keys could not be found or parsed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("{}: cannot read the identity file: {source}", path.display())]
    ReadIdentity {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: permissions {mode:04o} are too open for a private key (readable by others or writable by the group); fix it with `{fix}`", path.display())]
    OpenPermissions {
        path: PathBuf,
        mode: u32,
        fix: String,
    },
    #[error("{}: is owned by {owner}, neither root nor the user running envsync, so that user could change the key; fix it with `{fix}`", path.display())]
    Owner {
        path: PathBuf,
        owner: String,
        fix: String,
    },
    #[error("{}: the folder {} {reason}, so someone else could replace the key in it; fix it with `{fix}`, or keep the key in a folder only root or you can write to", path.display(), folder.display())]
    KeyFolder {
        path: PathBuf,
        folder: PathBuf,
        reason: String,
        fix: String,
    },
    #[error("{}: is passphrase-protected and there is no terminal to ask for the passphrase", path.display())]
    NoTerminal { path: PathBuf },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("no usable age identity found (looked in: {})", .looked.join(", "))]
    NoIdentity { looked: Vec<String> },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{repo}: no recipients to encrypt to")]
    NoRecipients { repo: String },
}
