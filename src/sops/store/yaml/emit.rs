//! Writes a SOPS tree as YAML text, byte for byte as sops 3.11 does (go-yaml v3's encoder).
#![allow(dead_code)] // until the store glue lands
