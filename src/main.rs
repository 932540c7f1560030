//! The `envsync` binary: parse, run, print the error once, exit with the contract's code.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `COMPLETE=bash envsync …`: a shell asking for completions (see `envsync completions`);
    // answered before anything else, and the process exits.
    clap_complete::CompleteEnv::with_factory(<envsync::cli::Cli as clap::CommandFactory>::command)
        .completer("envsync")
        .complete();
    envsync::harden_process();
    // A panic message could quote data; print where it happened, never the payload.
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // Not eprintln!: it panics when stderr cannot be written (`2>/dev/full`).
        let _ = writeln!(
            std::io::stderr().lock(),
            "envsync: internal error{place}; please report it (no data was written after this point)"
        );
        // An internal error is an error: exit 2, as the contract numbers it, not Rust's 101.
        std::process::exit(2);
    }));
    let cli = match envsync::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // args_os: a non-UTF-8 argument must not panic here.
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            envsync::print_usage_error(&error, &args);
            error.exit()
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    match envsync::run(&cli, cwd) {
        Ok(status) => status.into(),
        Err(failure) => {
            failure.print();
            failure.exit_status().into()
        }
    }
}
