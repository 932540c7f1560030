//! The commands a manifest asks envsync to run: `verify` (a gate a new release must pass
//! before `current` switches to it) and `on_change` (after a run changed an entry's server
//! content, e.g. `docker compose up -d --force-recreate api`).
//!
//! No shell: the argv runs as written, in the server root. The environment is envsync's own
//! minus every variable that can hold a key (`SOPS_AGE_KEY`), plus the paths the command is
//! about; no secret value is ever put in its argv or environment. Its output is streamed to
//! envsync's stderr, stdout included, so that envsync's stdout stays data (`--json`).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::Mode;
use rustix::process::umask;

use crate::manifest::Entry;

/// The umask envsync was started with (envsync itself runs under 0o077). A command runs
/// with the caller's: `docker compose` should create files as it would from the shell.
static CALLER_UMASK: AtomicU32 = AtomicU32::new(0o022);

pub(crate) fn remember_umask(mask: u32) {
    CALLER_UMASK.store(mask, Ordering::Relaxed);
}

/// The umask envsync was started with, for a command that should run as the caller would.
pub(crate) fn caller_umask() -> Mode {
    Mode::from_raw_mode(CALLER_UMASK.load(Ordering::Relaxed))
}

/// Variables that hold key material: never passed on.
pub(crate) const SECRET_VARIABLES: &[&str] = &["SOPS_AGE_KEY"];

/// A command that did not succeed: its argv as shown, and how it ended.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) command: String,
    pub(crate) how: String,
}

/// An argv as a shell would quote it, for messages.
pub(crate) fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` in `cwd` with `extra` added to the cleaned environment, and waits for it.
pub(crate) fn run(argv: &[String], cwd: &Path, extra: &[(&str, OsString)]) -> Result<(), Failed> {
    let failed = |how: String| Failed {
        command: shown(argv),
        how,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| failed("is empty".into()))?;
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    command.stdout(Stdio::from(std::io::stderr()));
    for (name, value) in extra {
        command.env(name, value);
    }
    let status = spawn(&mut command)
        .and_then(|mut child| child.wait())
        .map_err(|e| failed(format!("could not be started ({e})")))?;
    if status.success() {
        return Ok(());
    }
    Err(failed(match (status.code(), status_signal(&status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "failed".into(),
    }))
}

/// Starts `command` with every key variable removed from its environment and the caller's
/// umask (envsync's own, 0o077, is kept for everything else).
pub(crate) fn spawn(command: &mut Command) -> std::io::Result<Child> {
    for name in SECRET_VARIABLES {
        command.env_remove(name);
    }
    // The child takes the umask at fork: the caller's is set around the spawn only. No
    // file is created meanwhile (every write of the run is done, or staged with an explicit
    // mode, before a command runs).
    let own = umask(caller_umask());
    let child = command.spawn();
    umask(own);
    child
}

pub(crate) fn status_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// The distinct `on_change` commands of the `changed` entries, in manifest order, each with
/// the server paths of the entries that call it.
pub(crate) fn on_change_plan<'e>(changed: &[&'e Entry]) -> Vec<(&'e [String], Vec<&'e Path>)> {
    let mut sorted = changed.to_vec();
    sorted.sort_by_key(|e| e.line);
    let mut plan: Vec<(&[String], Vec<&Path>)> = Vec::new();
    for entry in sorted {
        let Some(argv) = entry.on_change.as_deref() else {
            continue;
        };
        match plan.iter_mut().find(|(a, _)| *a == argv) {
            Some((_, paths)) => paths.push(&entry.server_path),
            None => plan.push((argv, vec![&entry.server_path])),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_quotes_like_a_shell() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shown(&argv(&["docker", "compose", "up", "-d"])),
            "docker compose up -d"
        );
        assert_eq!(
            shown(&argv(&["sh", "-c", "echo it's"])),
            r"sh -c 'echo it'\''s'"
        );
        assert_eq!(shown(&argv(&["a", ""])), "a ''");
    }

    #[test]
    fn commands_get_the_paths_and_report_how_they_ended() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("env > '{}'", out.display()),
        ];
        run(&argv, dir.path(), &[("ENVSYNC_CHANGED", "/x".into())]).unwrap();
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("ENVSYNC_CHANGED=/x"), "{env}");
        let failed = run(&["false".to_string()], dir.path(), &[]).unwrap_err();
        assert_eq!(failed.how, "exited with status 1");
        let failed = run(&["/nonexistent/x".to_string()], dir.path(), &[]).unwrap_err();
        assert!(
            failed.how.starts_with("could not be started"),
            "{}",
            failed.how
        );
    }
}
