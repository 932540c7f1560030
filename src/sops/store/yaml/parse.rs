//! Reads YAML text into a SOPS tree as sops 3.11 does (go-yaml v3's node API).
#![allow(dead_code)] // until the store glue lands
