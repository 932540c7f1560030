//! The editor `envsync edit` opens: which one (`$SOPS_EDITOR`, `$VISUAL`, `$EDITOR`, `vi`),
//! its command line split into words as a shell would (quotes and backslashes, no expansion,
//! no shell run), and waiting for it while still answering SIGINT, SIGTERM and SIGHUP.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::signals::{self, Signal};

/// The variables that name an editor, first set and non-blank wins.
const VARIABLES: [&str; 3] = ["SOPS_EDITOR", "VISUAL", "EDITOR"];
/// The editor when none is named.
const DEFAULT: &str = "vi";
/// How often the wait looks at the editor and at the signal flag.
const POLL: Duration = Duration::from_millis(50);
/// How long an editor sent envsync's signal has to exit before it is killed.
const GRACE: Duration = Duration::from_secs(3);

/// The editor's command line: the first variable set (and not blank), else `vi`.
pub(super) fn command_line(lookup: impl Fn(&str) -> Option<String>) -> (String, &'static str) {
    VARIABLES
        .iter()
        .find_map(|name| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, *name))
        })
        .unwrap_or_else(|| (DEFAULT.to_string(), "the default"))
}

/// Splits a command line into words as a POSIX shell does, without expanding anything:
/// blanks separate words, `'…'` is literal, `"…"` keeps blanks and lets `\` escape
/// `$ \` " \` and a line feed, a `\` outside quotes escapes the next character (a `\` before
/// a line feed joins lines). An unclosed quote or a trailing `\` is an error.
pub(super) fn split(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started: `''` is an empty word, blanks are none.
    let mut started = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed"),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('$' | '`' | '"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote is not closed"),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed"),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    started = true;
                    word.push(c);
                }
                None => return Err("it ends with a backslash"),
            },
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        words.push(word);
    }
    if words.is_empty() {
        return Err("it is empty");
    }
    Ok(words)
}

/// How the editor ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// It exited (with this status).
    Exited(ExitStatus),
    /// envsync received a signal: the editor was sent it too and has ended.
    Interrupted(Signal),
}

/// Starts `argv` with `file` as its last argument, the terminal inherited, no key variable
/// and the caller's umask, and waits for it.
pub(super) fn run(argv: &[String], file: &Path) -> std::io::Result<Ended> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("the editor command is empty"))?;
    let mut command = Command::new(program);
    command.args(args).arg(file);
    let mut child = crate::hooks::spawn(&mut command)?;
    wait(&mut child)
}

/// Waits for the editor, looking every [`POLL`] for a signal envsync received; on one, the
/// editor is sent the same signal (and killed if it is still running after [`GRACE`]).
fn wait(child: &mut Child) -> std::io::Result<Ended> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended::Exited(status));
        }
        if let Some(signal) = signals::received() {
            stop(child, signal)?;
            return Ok(Ended::Interrupted(signal));
        }
        std::thread::sleep(POLL);
    }
}

fn stop(child: &mut Child, signal: Signal) -> std::io::Result<()> {
    use rustix::process::{kill_process, Pid, Signal as Sig};
    let pid = Pid::from_child(child);
    let sig = match signal {
        Signal::Interrupt => Sig::INT,
        Signal::Terminate => Sig::TERM,
        Signal::HangUp => Sig::HUP,
    };
    let _ = kill_process(pid, sig);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    // An editor that ignores the signal (vi ignores SIGINT) must not keep the temp alive.
    let _ = child.kill();
    child.wait().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_split_as_a_shell_splits_them() {
        let table: &[(&str, Result<&[&str], &str>)] = &[
            ("vi", Ok(&["vi"])),
            ("  code   --wait ", Ok(&["code", "--wait"])),
            (
                r#""sh" -c 'echo "$1"' --"#,
                Ok(&["sh", "-c", r#"echo "$1""#, "--"]),
            ),
            (r#"a"b c"d"#, Ok(&["ab cd"])),
            (r#""a \" \$ \\ \x""#, Ok(&[r#"a " $ \ \x"#])),
            (r"a\ b \'c", Ok(&["a b", "'c"])),
            ("'' x", Ok(&["", "x"])),
            ("a\\\nb", Ok(&["ab"])),
            ("'$HOME' ~ *", Ok(&["$HOME", "~", "*"])),
            ("'open", Err("a single quote is not closed")),
            ("\"open", Err("a double quote is not closed")),
            ("x\\", Err("it ends with a backslash")),
            ("   ", Err("it is empty")),
        ];
        for (line, want) in table {
            let want = want.map(|w| w.iter().map(ToString::to_string).collect::<Vec<_>>());
            assert_eq!(split(line), want, "{line}");
        }
    }

    #[test]
    fn the_first_editor_variable_set_wins() {
        let table: &[(&[(&str, &str)], &str)] = &[
            (&[], "vi"),
            (&[("EDITOR", "nano")], "nano"),
            (&[("EDITOR", "nano"), ("VISUAL", "vim")], "vim"),
            (&[("VISUAL", "vim"), ("SOPS_EDITOR", "code -w")], "code -w"),
            (&[("SOPS_EDITOR", " "), ("EDITOR", "nano")], "nano"),
        ];
        for (vars, want) in table {
            let lookup = |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_string())
            };
            assert_eq!(command_line(lookup).0, *want, "{vars:?}");
        }
    }
}
