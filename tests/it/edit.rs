//! `envsync edit`: real sops, the real binary, and an editor that is a small shell script.
//! A one-value edit changes exactly that value's line plus `sops_lastmodified` and
//! `sops_mac`; no edit, a failed editor, a broken line or a signal writes nothing; the
//! editor sees a 0600 file in a 0700 folder under `$XDG_RUNTIME_DIR`, and that folder is
//! empty again after every run.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, assert_no_leak, canary, names_in, Fixture};

const ENC: &str = "app/.env.enc";

/// A fixture with one dotenv entry (A, B) encrypted by real sops, a private runtime folder
/// and a file the editor scripts report into.
struct Edit {
    fx: Fixture,
    a: String,
    b: String,
    runtime: PathBuf,
    side: PathBuf,
}

impl Edit {
    fn new() -> Self {
        let fx = Fixture::new();
        fx.manifest(&[Fixture::entry(ENC, "app/.env")]);
        let (a, b) = (canary("edit-a"), canary("edit-b"));
        fx.sops_encrypt(ENC, format!("A={a}\nB={b}\n").as_bytes(), "dotenv");
        let runtime = fx.dir.path().join("runtime");
        fs::create_dir(&runtime).unwrap();
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
        let side = fx.dir.path().join("side");
        Self {
            fx,
            a,
            b,
            runtime,
            side,
        }
    }

    /// An editor script: `body` runs with the file as `$1`, after the file's mode, its
    /// folder's mode and its path are written to the side file.
    fn script(&self, body: &str) -> String {
        let path = self.fx.dir.path().join("editor.sh");
        let side = self.side.display();
        let text = format!(
            "#!/bin/sh\nstat -c %a \"$1\" > '{side}'\nstat -c %a \"$(dirname \"$1\")\" >> '{side}'\n\
             echo \"$1\" >> '{side}'\n{body}\n"
        );
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn env<'a>(&'a self, editor: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("EDITOR", editor),
            // The caller's own editor variables must not win over EDITOR.
            ("SOPS_EDITOR", ""),
            ("VISUAL", ""),
            ("XDG_RUNTIME_DIR", self.runtime.to_str().unwrap()),
        ]
    }

    fn edit(&self, editor: &str, extra: &[&str]) -> common::Run {
        let mut args = vec!["edit", ENC];
        args.extend_from_slice(extra);
        self.fx.envsync_with(args, &self.env(editor))
    }

    fn enc(&self) -> Vec<u8> {
        fs::read(self.fx.repo_path(ENC)).unwrap()
    }

    /// What the editor saw: the file's mode, its folder's mode and its path.
    fn seen(&self) -> (String, String, PathBuf) {
        let text = fs::read_to_string(&self.side).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        (
            lines[0].to_string(),
            lines[1].to_string(),
            PathBuf::from(lines[2]),
        )
    }

    /// The editor had a private file under the runtime folder, and nothing is left there.
    #[track_caller]
    fn assert_private_and_gone(&self) {
        let (file_mode, dir_mode, path) = self.seen();
        assert_eq!(file_mode, "600");
        assert_eq!(dir_mode, "700");
        assert!(path.starts_with(&self.runtime), "{}", path.display());
        assert!(
            path.to_str().unwrap().ends_with("/.env"),
            "{}",
            path.display()
        );
        assert!(!path.exists());
        assert_eq!(names_in(&self.runtime), Vec::<String>::new());
    }
}

/// The lines of `new` that differ from `old`'s, position by position (same line count).
fn changed_lines(old: &[u8], new: &[u8]) -> Vec<String> {
    let old: Vec<&str> = std::str::from_utf8(old).unwrap().lines().collect();
    let new: Vec<&str> = std::str::from_utf8(new).unwrap().lines().collect();
    assert_eq!(old.len(), new.len());
    old.iter()
        .zip(&new)
        .filter(|(o, n)| o != n)
        .map(|(_, n)| n.split('=').next().unwrap().to_string())
        .collect()
}

#[test]
fn one_changed_value_changes_its_line_the_mac_and_the_stamp() {
    let t = Edit::new();
    let before = t.enc();
    let server_before = common::snapshot(&t.fx.server);
    let new = canary("edit-new");
    let editor = t.script(&format!("sed -i 's/^B=.*/B={new}/' \"$1\""));
    // sops_lastmodified counts seconds: a new second, so that the stamp line changes too.
    std::thread::sleep(Duration::from_millis(1100));
    let run = t.edit(&editor, &[]);
    run.expect(0);
    assert!(run.stderr.contains("updated"), "{}", run.stderr);
    let after = t.enc();
    assert_eq!(
        changed_lines(&before, &after),
        ["B", "sops_lastmodified", "sops_mac"]
    );
    let plain = t.fx.sops_decrypt(ENC, "dotenv");
    assert_eq!(plain, format!("A={}\nB={new}\n", t.a).into_bytes());
    t.assert_private_and_gone();
    // Only the repo side changed: no server file, no sync record.
    assert_eq!(common::snapshot(&t.fx.server), server_before);
}

#[test]
fn an_editor_that_changes_nothing_writes_nothing() {
    let t = Edit::new();
    let before = t.enc();
    let mtime = fs::metadata(t.fx.repo_path(ENC))
        .unwrap()
        .modified()
        .unwrap();
    let editor = t.script("true");
    let run = t.edit(&editor, &[]);
    run.expect(0);
    assert!(run.stderr.contains("no change"), "{}", run.stderr);
    assert_eq!(t.enc(), before);
    let after = fs::metadata(t.fx.repo_path(ENC))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(after, mtime);
    t.assert_private_and_gone();
}

#[test]
fn a_failed_editor_writes_nothing() {
    let t = Edit::new();
    let before = t.enc();
    let new = canary("edit-lost");
    let editor = t.script(&format!("sed -i 's/^B=.*/B={new}/' \"$1\"\nexit 1"));
    let run = t.edit(&editor, &[]);
    run.expect(2);
    assert!(
        run.stderr
            .contains("the editor exited with status 1; nothing was written"),
        "{}",
        run.stderr
    );
    assert_eq!(t.enc(), before);
    t.assert_private_and_gone();
}

#[test]
fn a_broken_line_without_a_terminal_writes_nothing() {
    let t = Edit::new();
    let before = t.enc();
    let editor = t.script("printf 'no equals sign here\\n' >> \"$1\"");
    let run = t.edit(&editor, &[]);
    run.expect(2);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    assert!(!run.stderr.contains("no equals sign"), "{}", run.stderr);
    assert_eq!(t.enc(), before);
    t.assert_private_and_gone();
}

#[test]
fn sigterm_while_the_editor_runs_stops_it_and_removes_the_temp() {
    let t = Edit::new();
    let before = t.enc();
    let new = canary("edit-killed");
    let started = t.fx.dir.path().join("started");
    let editor = t.script(&format!(
        "sed -i 's/^B=.*/B={new}/' \"$1\"\ntouch '{}'\nexec sleep 30",
        started.display()
    ));
    let mut cmd = common::envsync_command(&t.fx, &["edit", ENC]);
    for (k, v) in t.env(&editor) {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let begun = Instant::now();
    while !started.exists() {
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the editor never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "the editor was not stopped"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_leak(&String::from_utf8_lossy(&out.stdout), "stdout of edit");
    assert_no_leak(&stderr, "stderr of edit");
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(t.enc(), before);
    t.assert_private_and_gone();
}

#[test]
fn a_quoted_editor_command_is_split_as_a_shell_would() {
    let t = Edit::new();
    let new = canary("edit-quoted");
    let side = t.side.display();
    let editor =
        format!("\"sh\" -c 'stat -c %a \"$1\" > {side}; sed -i \"s/^A=.*/A={new}/\" \"$1\"' --");
    let run = t.edit(&editor, &[]);
    run.expect(0);
    assert_eq!(fs::read_to_string(&t.side).unwrap().trim(), "600");
    let plain = t.fx.sops_decrypt(ENC, "dotenv");
    assert_eq!(plain, format!("A={new}\nB={}\n", t.b).into_bytes());
    assert_eq!(names_in(&t.runtime), Vec::<String>::new());
}

#[test]
fn apply_decrypts_the_edit_onto_the_server() {
    let t = Edit::new();
    t.fx.envsync(["decrypt"]).expect(0);
    let new = canary("edit-applied");
    let editor = t.script(&format!("sed -i 's/^A=.*/A={new}/' \"$1\""));
    t.edit(&editor, &["--apply"]).expect(0);
    let server = fs::read(t.fx.server_path("app/.env")).unwrap();
    assert_eq!(server, format!("A={new}\nB={}\n", t.b).into_bytes());
    t.fx.envsync(["status"]).expect(0);
    t.assert_private_and_gone();
}

#[test]
fn plain_entries_and_missing_keys_are_refused() {
    let t = Edit::new();
    let editor = t.script("true");
    // No identity at all.
    let manifest = t.fx.repo_path("secrets.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("identity"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&manifest, without).unwrap();
    t.edit(&editor, &[]).expect(2);
    assert!(!t.side.exists(), "the editor ran without a key");
    // A plain entry.
    t.fx.manifest(&[format!(
        "{}plain = true\n",
        Fixture::entry("nginx/app.conf", "nginx/app.conf")
    )]);
    common::write_file(&t.fx.repo_path("nginx/app.conf"), b"server {}\n");
    let run =
        t.fx.envsync_with(["edit", "nginx/app.conf"], &t.env(&editor));
    run.expect(2);
    assert!(
        run.stderr.contains("edit the file itself"),
        "{}",
        run.stderr
    );
    assert!(!t.side.exists());
    assert_eq!(names_in(&t.runtime), Vec::<String>::new());
}

#[test]
fn without_configured_recipients_the_file_keeps_its_own() {
    let t = Edit::new();
    fs::remove_file(t.fx.repo_path(".sops.yaml")).unwrap();
    let new = canary("edit-own");
    let editor = t.script(&format!("sed -i 's/^A=.*/A={new}/' \"$1\""));
    t.edit(&editor, &[]).expect(0);
    // Both of the file's recipients still open it.
    let want = format!("A={new}\nB={}\n", t.b).into_bytes();
    assert_eq!(t.fx.sops_decrypt(ENC, "dotenv"), want);
    let path = t.fx.repo_path(ENC);
    assert_eq!(
        common::sops_decrypt(&path, "dotenv", &common::key_file(2)),
        want
    );
    t.assert_private_and_gone();
}
