//! The command line, as clap parses it. Data only: [`crate::settings`] turns it into checked
//! settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCandidates;

use crate::commands::completions::{entry_candidates, tag_candidates};

/// Keep server secrets and their SOPS+age encrypted copies in git in step.
#[derive(Debug, Parser)]
#[command(name = "envsync", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The manifest (default: secrets.toml in this folder or the nearest one above).
    #[arg(long, global = true, env = "ENVSYNC_MANIFEST", value_name = "PATH")]
    pub manifest: Option<PathBuf>,
    /// An age identity file or unencrypted SSH private key (repeatable); merged with
    /// server.identity, SOPS_AGE_KEY_FILE and SOPS_AGE_KEY.
    #[arg(long, short = 'i', global = true, value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only warnings and errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// When to colour output (honours NO_COLOR).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// Which entries a command works on.
#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
    /// Entries by repo path, server path or glob (default: all).
    #[arg(value_name = "FILE", add = ArgValueCandidates::new(entry_candidates))]
    pub files: Vec<String>,
    /// Only entries with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG", add = ArgValueCandidates::new(tag_candidates))]
    pub tags: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decrypt repo .enc files onto the server (repo → server).
    Decrypt {
        #[command(flatten)]
        selection: Selection,
        /// Print what would be written, write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Overwrite server files edited since the last sync (server-changed, conflict, new,
        /// rolled-back).
        #[arg(long)]
        force: bool,
        /// Run no `on_change` command.
        #[arg(long)]
        no_hooks: bool,
    },
    /// Point a `releases` entry's `current` back at the previous release (or --to STAMP),
    /// then run its `on_change`.
    Rollback {
        #[command(flatten)]
        selection: Selection,
        /// The release to go back to (its folder name under releases/).
        #[arg(long, value_name = "STAMP")]
        to: Option<String>,
        /// Print what would change, change nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Run no `on_change` command.
        #[arg(long)]
        no_hooks: bool,
    },
    /// Encrypt server files into the repo (server → repo).
    Encrypt {
        #[command(flatten)]
        selection: Selection,
        /// Print what would be written, write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Overwrite .enc files changed in the repo since the last sync (repo-changed,
        /// conflict, new).
        #[arg(long)]
        force: bool,
        /// Encrypt a server file even when it is empty.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Register a server file: a [[file]] entry appended to secrets.toml (comments and order
    /// kept), the plaintext added to .gitignore when it is inside the repo, its first encrypt
    /// and sync record; all or nothing.
    Add {
        /// The server file: absolute, or relative to the working folder when that is inside
        /// server.root, else relative to server.root (as in secrets.toml).
        #[arg(value_name = "SERVER_PATH")]
        server: String,
        /// The .enc path in the repo, relative to the manifest's folder (default: the server
        /// path relative to server.root, plus .enc).
        #[arg(long, value_name = "PATH")]
        repo: Option<String>,
        /// The .enc format (default: from the server file's name).
        #[arg(long, value_name = "FORMAT", value_parser = ["dotenv", "binary", "age"])]
        format: Option<String>,
        /// A tag for the new entry (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Print the entry, the .gitignore line and the encrypt it would do; write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Encrypt the server file even when it is empty.
        #[arg(long)]
        allow_empty: bool,
    },
    /// One line per entry: its sync state and what to run next; exit 1 unless all in sync.
    Status {
        #[command(flatten)]
        selection: Selection,
        /// Report every entry that can be read, then the errors of the others (exit 2).
        #[arg(short = 'k', long)]
        keep_going: bool,
    },
    /// CI gate and pre-commit hook, no private key needed: missing and orphan .enc files,
    /// .enc files not really encrypted, recipients vs .sops.yaml, plaintext targets tracked,
    /// staged or not ignored, keys vs each entry's example; exit 1 on any problem.
    Check {
        #[command(flatten)]
        selection: Selection,
        /// Only entries whose .enc or plaintext is staged, and staged orphan .enc files.
        #[arg(long)]
        staged: bool,
    },
    /// Re-wrap data keys for today's recipients (values and MAC unchanged), as `sops
    /// updatekeys`; `--rotate` makes a new data key.
    Rekey {
        #[command(flatten)]
        selection: Selection,
        /// Print the recipients added and removed per file, write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Make a new data key and re-encrypt every value.
        #[arg(long)]
        rotate: bool,
    },
    /// Make a new age identity (0600, never overwriting) and print its public key.
    Keygen {
        /// Write the identity to FILE (default: stdout).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write a starter secrets.toml (and .sops.yaml), importing a Makefile's SECRET_FILES
    /// and INFRA_FILES lists; never overwrites.
    Init {
        /// Import the repo:server lists of this Makefile (read, never run).
        #[arg(long, value_name = "FILE")]
        from_makefile: Option<PathBuf>,
        /// The server root (default: from the Makefile, else /opt/docker).
        #[arg(long, value_name = "DIR")]
        root: Option<String>,
        /// Print what would be written, write nothing.
        #[arg(long, short = 'n')]
        dry_run: bool,
    },
    /// Print an .enc with every value masked as its length and a keyed fingerprint (git
    /// textconv), or in clear with --reveal.
    Show {
        /// An entry's repo or server path, or any .enc file.
        #[arg(value_name = "FILE", add = ArgValueCandidates::new(entry_candidates))]
        file: String,
        /// Print the decrypted file in clear.
        #[arg(long)]
        reveal: bool,
    },
    /// Run CMD with the keys of the named dotenv entries in its environment (decrypted from
    /// the repo .enc in memory; later FILEs win); CMD's exit status is envsync's.
    Exec {
        /// Entries by repo path, server path or glob, in the order they apply.
        #[arg(value_name = "FILE", required_unless_present = "tags", add = ArgValueCandidates::new(entry_candidates))]
        files: Vec<String>,
        /// Only entries with this tag (repeatable); with no FILE, every entry with it.
        #[arg(long = "tag", value_name = "TAG", add = ArgValueCandidates::new(tag_candidates))]
        tags: Vec<String>,
        /// Start CMD with the entries' keys only, none of envsync's environment.
        #[arg(long)]
        clear_env: bool,
        /// The command and its arguments, after `--` (run directly, no shell).
        #[arg(value_name = "CMD", last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Edit a secret as `sops edit` does, safely: decrypted into a private 0600 file on a
    /// memory file system, opened in $SOPS_EDITOR, $VISUAL, $EDITOR or vi, re-encrypted
    /// minimally into the .enc (nothing written when nothing changed); the temp is removed on
    /// every way out.
    Edit {
        /// The entry: its repo path, server path, or a glob matching exactly one entry.
        #[arg(value_name = "FILE", add = ArgValueCandidates::new(entry_candidates))]
        file: String,
        /// Then decrypt the entry onto the server, as `envsync decrypt FILE`.
        #[arg(long)]
        apply: bool,
    },
    /// Show drift between repo and server, values masked; exit 1 on drift.
    Diff {
        #[command(flatten)]
        selection: Selection,
        /// Report every entry that can be read, then the errors of the others (exit 2).
        #[arg(short = 'k', long)]
        keep_going: bool,
    },
    /// Print a shell's completion script (it completes commands, options, the manifest's
    /// entries and tags): `envsync completions bash > /etc/bash_completion.d/envsync`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page (roff): `envsync man > envsync.1; man -l envsync.1`.
    Man,
}

/// The shells `envsync completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// When to colour output (`--color`; `auto` honours `NO_COLOR` and a terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
