//! envsync keeps server secrets and their SOPS+age encrypted copies in git in step.
//!
//! A manifest (`secrets.toml`) maps repo `.enc` files to plaintext files under a server
//! root. `decrypt` writes repo → server, `encrypt` server → repo, `diff` shows drift with
//! values masked. Files stay readable by real `sops`. The binary (`main.rs`) parses the
//! command line and calls [`run`]; everything else lives here, one module a concern.

pub mod cli;
pub mod commands;
pub mod crypto;
pub mod diff;
pub mod error;
pub mod exit;
pub mod format;
pub mod fs;
pub mod keys;
pub mod manifest;
pub mod output;
pub mod secret;
pub mod settings;
pub mod sops;
pub mod sync;

use std::path::PathBuf;

pub use error::Error;
pub use exit::ExitStatus;

use commands::Context;
use settings::Settings;

/// Runs a parsed command line and returns the exit status; errors are returned, not
/// printed, so the caller prints them once.
pub fn run(cli: &cli::Cli, cwd: PathBuf) -> Result<ExitStatus, (Error, output::Printer)> {
    let fallback = settings::printer(&cli.global);
    // keygen needs no manifest: it is how a new host starts.
    if let cli::Command::Keygen { output } = &cli.command {
        return commands::keygen::run(&fallback, output.as_deref(), &cwd)
            .map_err(|e| (e, fallback));
    }
    let settings = Settings::from_args(&cli.global, cwd.clone()).map_err(|e| (e, fallback))?;
    let printer = settings.printer.clone();
    let ctx = Context::new(settings, cwd);
    commands::dispatch(&ctx, &cli.command).map_err(|e| (e, printer))
}

/// Hardens the process before any secret is read: no core dumps, no ptrace by same-uid
/// processes, and files created private whatever umask the caller had.
pub fn harden_process() {
    use rustix::process::{setrlimit, umask, Resource, Rlimit};
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    umask(rustix::fs::Mode::from_raw_mode(0o077));
}
