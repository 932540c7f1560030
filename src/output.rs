//! The one printer: stdout carries data (diffs, JSON), stderr carries talk (progress, notes,
//! errors). It alone decides colour, quietness and JSON, and it cleans names taken from files
//! before they reach a terminal.
//!
//! No write here panics. A failed write to stderr is ignored: talk that cannot be shown must
//! not change what the run did or its exit status (`envsync decrypt 2>/dev/full` still
//! decrypts). The first failed write to stdout is kept and later ones are skipped; when the
//! run ends, [`finish_stdout`] reports it, unless it was a closed pipe (`envsync diff | head`),
//! which ends the output quietly, as ripgrep does.

use std::io::{self, IsTerminal, StdoutLock, Write};
use std::sync::Mutex;

use crate::cli::ColorChoice;

pub(crate) mod json;

/// How much talk goes to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Colours used on a terminal.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Style {
    Added,
    Removed,
    Changed,
    Header,
    Plain,
}

impl Style {
    /// The style of a change line by its leading sign (`+`, `-`, `~`).
    pub(crate) fn for_line(line: &str) -> Self {
        match line.trim_start().chars().next() {
            Some('+') => Self::Added,
            Some('-') => Self::Removed,
            Some('~') => Self::Changed,
            _ => Self::Plain,
        }
    }
}

/// The printer of one run.
#[derive(Debug, Clone)]
pub(crate) struct Printer {
    pub(crate) verbosity: Verbosity,
    pub(crate) json: bool,
    color_stdout: bool,
    color_stderr: bool,
}

impl Printer {
    pub(crate) fn new(verbosity: Verbosity, json: bool, color: ColorChoice) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |is_tty: bool| match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_tty && !no_color,
        };
        Self {
            verbosity,
            json,
            color_stdout: !json && decide(std::io::stdout().is_terminal()),
            color_stderr: decide(std::io::stderr().is_terminal()),
        }
    }

    /// Whether `--quiet` was given.
    pub(crate) fn quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    /// A line of data on stdout.
    pub(crate) fn data(&self, style: Style, line: &str) {
        let line = paint(self.color_stdout, style, line);
        write_stdout(|out| writeln!(out, "{line}"));
    }

    /// Secret bytes the user asked for on stdout (a new key from `keygen` without `-o`).
    pub(crate) fn secret_data(&self, bytes: &[u8]) {
        write_stdout(|out| {
            out.write_all(bytes)?;
            out.flush()
        });
    }

    /// Bytes on stdout as they are (a completion script, a man page).
    pub(crate) fn raw(&self, bytes: &[u8]) {
        write_stdout(|out| out.write_all(bytes));
    }

    /// A command's JSON report (a typed body): kept until the run ends, then printed once
    /// in the contract's envelope (see [`json`]), with the error if the run failed.
    pub(crate) fn json(&self, body: &impl serde::Serialize) {
        json::keep(body);
    }

    /// Progress and results on stderr, unless --quiet.
    pub(crate) fn info(&self, style: Style, line: &str) {
        if self.verbosity >= Verbosity::Normal {
            write_stderr(&paint(self.color_stderr, style, line));
        }
    }

    /// A warning on stderr, `--quiet` too (as its help says: only warnings and errors; a
    /// timer's journal must show a stale checkout being applied): `warning: ` and the text.
    pub(crate) fn warn(&self, text: &str) {
        let label = paint(self.color_stderr, Style::Changed, "warning:");
        write_stderr(&format!("{label} {text}"));
    }

    /// Detail on stderr with --verbose.
    pub(crate) fn verbose(&self, line: &str) {
        if self.verbosity >= Verbosity::Verbose {
            write_stderr(line);
        }
    }

    /// The final error report on stderr.
    pub(crate) fn error(&self, report: &str) {
        for line in report.lines() {
            let line = match line.strip_prefix("error:") {
                Some(rest) => format!(
                    "{}{rest}",
                    paint(self.color_stderr, Style::Removed, "error:")
                ),
                None => line.to_string(),
            };
            write_stderr(&format!("envsync: {line}"));
        }
    }
}

/// Prints the JSON document of a command line that could not be parsed.
pub(crate) fn print_usage_document(command: &str, message: String) {
    if let Some(document) = json::usage_document(command, message) {
        write_stdout(|out| {
            serde_json::to_writer_pretty(&mut *out, &document)?;
            writeln!(out)
        });
    }
    let _ = finish_stdout();
}

/// Prints the run's one JSON document on stdout (see [`json::document`]).
pub(crate) fn print_document(command: &str, failure: Option<&crate::error::Error>) {
    if let Some(document) = json::document(command, failure) {
        write_stdout(|out| {
            serde_json::to_writer_pretty(&mut *out, &document)?;
            writeln!(out)
        });
    }
}

/// The first error a write to stdout met; once set, nothing more is written there.
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

fn stdout_error() -> std::sync::MutexGuard<'static, Option<io::Error>> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes to stdout unless an earlier write failed; a failure is kept for [`finish_stdout`].
fn write_stdout(write: impl FnOnce(&mut StdoutLock<'static>) -> io::Result<()>) {
    let mut failed = stdout_error();
    if failed.is_none() {
        if let Err(e) = write(&mut io::stdout().lock()) {
            *failed = Some(e);
        }
    }
}

/// One line on stderr. A failure is ignored: see the module doc.
pub(crate) fn write_stderr(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Flushes stdout at the end of a run and returns the first write to it that failed, if any.
/// A closed pipe is not returned: the reader chose to stop reading, so the output ends
/// quietly and the run's own exit status stands.
pub(crate) fn finish_stdout() -> Result<(), io::Error> {
    write_stdout(|out| out.flush());
    match stdout_error().take() {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

fn paint(enabled: bool, style: Style, text: &str) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match style {
        Style::Added => "32",
        Style::Removed => "31",
        Style::Changed => "33",
        Style::Header => "1",
        Style::Plain => return text.to_string(),
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Makes a name from an untrusted file safe to print: control characters (terminal escapes,
/// newlines) are shown escaped.
pub(crate) fn sanitize(name: &str) -> String {
    if name.chars().any(char::is_control) {
        name.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_terminal_codes() {
        assert_eq!(sanitize("KEY\x1b[31m"), "KEY\\u{1b}[31m");
        assert_eq!(sanitize("PLAIN_KEY"), "PLAIN_KEY");
    }
}
