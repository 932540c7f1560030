//! Where keys come from: identities for decrypting ([`identities`]), recipients for
//! encrypting ([`recipients`]).

pub(crate) mod identities;
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
    #[error("{}: permissions {mode:04o} are too open for a private key (readable by others or writable by the group)", path.display())]
    OpenPermissions { path: PathBuf, mode: u32 },
    #[error("{}: is passphrase-protected and there is no terminal to ask for the passphrase", path.display())]
    NoTerminal { path: PathBuf },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("no age identity found (looked in: {})", .looked.join(", "))]
    NoIdentity { looked: Vec<String> },
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error("{repo}: no recipients to encrypt to")]
    NoRecipients { repo: String },
}
