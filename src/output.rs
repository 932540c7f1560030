//! The one printer: stdout carries data (diffs, JSON), stderr carries talk (progress, notes,
//! errors). It alone decides colour, quietness and JSON, and it cleans names taken from files
//! before they reach a terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};

use crate::cli::ColorChoice;

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

    /// A line of data on stdout.
    pub(crate) fn data(&self, style: Style, line: &str) {
        let line = paint(self.color_stdout, style, line);
        let mut out = std::io::stdout().lock();
        // A closed pipe (`envsync diff | head`) is not an error worth a message.
        let _ = writeln!(out, "{line}");
    }

    /// Secret bytes the user asked for on stdout (a new key from `keygen` without `-o`).
    pub(crate) fn secret_data(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// A JSON document on stdout.
    pub(crate) fn json(&self, value: &serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, value);
        let _ = writeln!(out);
    }

    /// Progress and results on stderr, unless --quiet.
    pub(crate) fn info(&self, style: Style, line: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{}", paint(self.color_stderr, style, line));
        }
    }

    /// Detail on stderr with --verbose.
    pub(crate) fn verbose(&self, line: &str) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{line}");
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
            eprintln!("envsync: {line}");
        }
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
