//! envsync keeps server secrets and their SOPS+age encrypted copies in git in step.
//!
//! A manifest (`secrets.toml`) maps repo `.enc` files to plaintext files under a server
//! root. `decrypt` writes repo → server, `encrypt` server → repo, `diff` shows drift with
//! values masked. Files stay readable by real `sops`. The binary (`main.rs`) parses the
//! command line and calls [`run`]; everything else lives here, one module a concern.

pub mod cli;
mod commands;
mod crypto;
mod diff;
mod error;
mod exit;
mod fingerprint;
mod format;
mod fs;
mod git;
mod hooks;
mod keys;
mod manifest;
mod output;
mod secret;
mod settings;
mod signals;
mod sops;
mod sync;

use std::path::PathBuf;

pub use exit::ExitStatus;

use commands::Context;
use error::Error;
use output::Printer;
use settings::Settings;

/// A failed run: the error, and the printer the run chose to report it with.
#[derive(Debug)]
pub struct Failure {
    error: Box<Error>,
    printer: Printer,
    /// The command's name, for the JSON document.
    command: &'static str,
}

impl Failure {
    /// Prints the error once, on stderr, as the run's options say (`--json`, colour; with
    /// `--quiet` a refusal is one line).
    pub fn print(&self) {
        if self.printer.json {
            output::print_document(self.command, Some(&self.error));
            let _ = output::finish_stdout();
        }
        let report = if self.printer.quiet() {
            self.error.quiet_report()
        } else {
            self.error.report()
        };
        self.printer.error(&report);
    }

    /// The exit status the contract gives this error; 130 or 143 for any failure after a
    /// signal arrived.
    pub fn exit_status(&self) -> ExitStatus {
        match signals::received() {
            Some(signal) => signal.exit_status(),
            None => self.error.exit_status(),
        }
    }
}

/// Runs a parsed command line and returns the exit status; errors are returned, not
/// printed, so the caller prints them once. With `--json`, stdout gets one document on
/// success and on failure alike (see `output::json`).
pub fn run(cli: &cli::Cli, cwd: PathBuf) -> Result<ExitStatus, Failure> {
    let command = command_name(&cli.command);
    let (result, printer) = run_command(cli, cwd);
    let fail = |error| Failure {
        error: Box::new(error),
        printer: printer.clone(),
        command,
    };
    let status = result.map_err(fail)?;
    // A signal that came after the last safe point: the run is whole, yet it was interrupted.
    if let Some(signal) = signals::received() {
        return Err(fail(Error::LateSignal { signal }));
    }
    if printer.json {
        output::print_document(command, None);
    }
    // Data that could not be written is an error (exit 2), even after a run that succeeded.
    output::finish_stdout().map_err(|source| fail(Error::Stdout { source }))?;
    Ok(status)
}

/// A command line clap refused: with `--json` among `args`, its JSON document on stdout (clap
/// then prints its own message on stderr and exits 2). Help and version requests are not
/// errors and print nothing here.
pub fn print_usage_error(error: &clap::Error, args: &[String]) {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) || !args.iter().any(|a| a == "--json")
    {
        return;
    }
    let command = <cli::Cli as clap::CommandFactory>::command();
    let name = args
        .iter()
        .skip(1)
        .find_map(|a| command.find_subcommand(a).map(|c| c.get_name().to_string()))
        .unwrap_or_else(|| "envsync".into());
    let rendered = error.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    output::print_usage_document(&name, message);
}

/// The command's name, as the JSON document gives it.
fn command_name(command: &cli::Command) -> &'static str {
    use cli::Command as C;
    match command {
        C::Decrypt { .. } => "decrypt",
        C::Rollback { .. } => "rollback",
        C::Encrypt { .. } => "encrypt",
        C::Add { .. } => "add",
        C::Status { .. } => "status",
        C::Check { .. } => "check",
        C::Rekey { .. } => "rekey",
        C::Keygen { .. } => "keygen",
        C::Init { .. } => "init",
        C::Show { .. } => "show",
        C::Exec { .. } => "exec",
        C::Edit { .. } => "edit",
        C::Diff { .. } => "diff",
        C::Completions { .. } => "completions",
        C::Man => "man",
    }
}

/// Runs the command; returns its result and the printer it chose.
fn run_command(cli: &cli::Cli, cwd: PathBuf) -> (Result<ExitStatus, Error>, Printer) {
    let fallback = settings::printer(&cli.global);
    // Completions and the man page come from the command line's definition alone.
    match &cli.command {
        cli::Command::Completions { shell } => {
            return (
                commands::completions::completions(&fallback, *shell),
                fallback,
            );
        }
        cli::Command::Man => return (commands::completions::man(&fallback), fallback),
        _ => {}
    }
    // keygen needs no manifest: it is how a new host starts.
    if let cli::Command::Keygen { output } = &cli.command {
        let result = commands::keygen::run(&fallback, output.as_deref(), &cwd);
        return (result, fallback);
    }
    // init writes the manifest, so it cannot need one.
    if let cli::Command::Init {
        from_makefile,
        root,
        dry_run,
    } = &cli.command
    {
        let args = commands::init::Args {
            from_makefile: from_makefile.as_deref(),
            root: root.as_deref(),
            dry_run: *dry_run,
            manifest: cli.global.manifest.as_deref(),
            identity: &cli.global.identity,
        };
        let result = commands::init::run(&fallback, &args, &cwd);
        return (result, fallback);
    }
    let settings = match (Settings::from_args(&cli.global, cwd.clone()), &cli.command) {
        // show (git's textconv) reads any `.enc`: it must work in a clone without a manifest.
        (Err(Error::NoManifest { .. }), cli::Command::Show { file, reveal }) => {
            let identities = settings::identity_config(&cli.global, &cwd, None);
            let path = cwd.join(file);
            let result =
                commands::show::run_without_manifest(&fallback, &identities, &path, *reveal);
            return (result, fallback);
        }
        (Ok(settings), _) => settings,
        (Err(error), _) => return (Err(error), fallback),
    };
    sops::store::structured::configure(keys::recipients::store_layout(
        &settings.manifest.repo_root,
    ));
    let printer = settings.printer.clone();
    let mut ctx = Context::new(settings, cwd);
    (commands::dispatch(&mut ctx, &cli.command), printer)
}

/// Hardens the process before any secret is read: no core dumps, no ptrace by same-uid
/// processes, files created private whatever umask the caller had, and SIGINT, SIGTERM and
/// SIGHUP caught so that a run stops at a safe point (see `signals`).
pub fn harden_process() {
    let _ = signals::install();
    use rustix::process::{setrlimit, umask, Resource, Rlimit};
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let caller = umask(rustix::fs::Mode::from_raw_mode(0o077));
    hooks::remember_umask(caller.bits());
}
