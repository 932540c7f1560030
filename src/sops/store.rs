//! The SOPS stores: how each file format lays out its values and its `sops` metadata. One
//! file a store, behind [`Store`]. The tree stores (YAML, JSON, INI) share [`structured`]:
//! each adds only its text form.

pub(crate) mod binary;
pub(crate) mod dotenv;
pub(crate) mod ini;
pub(crate) mod json;
pub(crate) mod structured;
pub(crate) mod yaml;

use super::{Decrypted, EncryptOptions, Metadata, SopsError, Unlocked};
use crate::crypto::Identities;
pub(crate) use structured::{Codec, StoreLayout};

/// A SOPS store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    /// `KEY=ENC[…]` lines, then `sops_*` lines.
    Dotenv,
    /// `{"data": "ENC[…]", "sops": {…}}`: a whole file as one value.
    Binary,
    /// A tree of values: YAML, JSON or INI.
    Tree(Codec),
}

impl Store {
    /// Decrypts a file and checks every value and the MAC.
    pub(crate) fn decrypt(
        self,
        file: &[u8],
        identities: &Identities,
    ) -> Result<Decrypted, SopsError> {
        match self {
            Self::Dotenv => dotenv::decrypt(file, identities),
            Self::Binary => binary::decrypt(file, identities),
            Self::Tree(codec) => structured::decrypt(codec, file, identities),
        }
    }

    /// The file's `sops` metadata, read without decrypting anything (not authenticated: the
    /// MAC is checked only by a decrypt).
    pub(crate) fn metadata(self, file: &[u8]) -> Result<Metadata, SopsError> {
        match self {
            Self::Dotenv => dotenv::metadata(file),
            Self::Binary => binary::metadata(file),
            Self::Tree(codec) => structured::metadata(codec, file),
        }
    }

    /// Encrypts `plain`. `previous` is the file being replaced, opened: a store that can keeps
    /// its data key and the ciphertext of every unchanged value.
    pub(crate) fn encrypt(
        self,
        plain: &[u8],
        options: &EncryptOptions,
        previous: Option<(&Unlocked, &[u8])>,
    ) -> Result<Vec<u8>, SopsError> {
        match self {
            Self::Dotenv => dotenv::encrypt(plain, options, previous),
            Self::Binary => binary::encrypt(plain, options),
            Self::Tree(codec) => structured::encrypt(codec, plain, options, previous),
        }
    }

    /// The same file with another metadata block (values, MAC and `lastmodified` kept).
    pub(crate) fn replace_metadata(
        self,
        file: &[u8],
        metadata: &Metadata,
    ) -> Result<Vec<u8>, SopsError> {
        match self {
            Self::Dotenv => Ok(dotenv::replace_metadata(file, metadata)),
            Self::Binary => binary::replace_metadata(file, metadata),
            Self::Tree(codec) => structured::replace_metadata(codec, file, metadata),
        }
    }
}
