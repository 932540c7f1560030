//! The SOPS INI store: go-ini's reading and writing of a SOPS tree, as sops 3.11 does them.
#![allow(dead_code)] // until the store glue lands

use crate::sops::tree::Tree;
use crate::sops::SopsError;

/// Placeholder until the codec lands.
pub(crate) fn parse(_text: &[u8]) -> Result<Tree, SopsError> {
    Err(SopsError::NotSops("INI is not read yet".into()))
}

/// Placeholder until the codec lands.
pub(crate) fn emit(_tree: &Tree) -> Vec<u8> {
    Vec::new()
}
