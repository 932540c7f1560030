//! The SOPS YAML store: go-yaml v3's reading ([`parse`]) and writing ([`emit`]) of a
//! [`Tree`](crate::sops::tree::Tree), as sops 3.11 does them.

pub(crate) mod emit;
pub(crate) mod parse;
