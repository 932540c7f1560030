//! envsync's integration tests, one binary (`cargo test --test it`): real `envsync`, real
//! `sops` and real `age` against real files in temp folders. One binary links once and runs
//! every test in one pool of threads; run one module with `cargo test --test it safety::`.

mod common;

mod add;
mod ansible;
mod bad_input;
mod batch;
mod check;
mod cli;
mod completions;
mod edit;
mod examples;
mod exec;
mod fast_paths;
mod files;
mod files_guards;
mod guards;
mod hooks;
mod init;
mod interop;
mod json_contract;
mod keys;
mod large_files;
mod leaks;
mod lost_key;
mod pq_identity;
mod precommit;
mod releases;
mod reliability;
mod safety;
mod show;
mod systemd;
mod team;
mod team_check;
mod team_repo;
mod team_textconv;
mod tree_formats;
mod writer;
