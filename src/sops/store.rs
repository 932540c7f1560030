//! The SOPS stores: how each file format lays out its values and its `sops` metadata. One
//! file a store, behind [`Store`]; a new store (YAML, JSON, INI) is a variant here and a file
//! beside these, built on the same primitives.

pub(crate) mod binary;
pub(crate) mod dotenv;
pub(crate) mod ini;
pub(crate) mod yaml;

use super::{Decrypted, EncryptOptions, Metadata, SopsError, Unlocked};
use crate::crypto::Identities;

/// A SOPS store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    /// `KEY=ENC[…]` lines, then `sops_*` lines.
    Dotenv,
    /// `{"data": "ENC[…]", "sops": {…}}`: a whole file as one value.
    Binary,
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
        }
    }

    /// The file's `sops` metadata, read without decrypting anything (not authenticated: the
    /// MAC is checked only by a decrypt).
    pub(crate) fn metadata(self, file: &[u8]) -> Result<Metadata, SopsError> {
        match self {
            Self::Dotenv => dotenv::metadata(file),
            Self::Binary => binary::metadata(file),
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
        }
    }
}
