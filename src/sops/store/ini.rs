//! The SOPS INI store: go-ini's reading and writing of a SOPS tree, as sops 3.11 does them.
#![allow(dead_code)] // until the store glue lands
