//! `as = "files"` entries against what happens around a run: a key file edited while the run
//! waits for its lock (plain folder and releases), a stray file or folder in `releases/`, a
//! key renamed in case under `names = "lower"`, another entry inside a files folder, and a
//! failure to make the `current` switch durable (fsync fails, injected with strace).
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use crate::common::{self, envsync_command, sops_set, Fixture};

const ENC: &str = "app/.env.enc";

fn files_entry(fx: &Fixture, extra: &str) {
    fx.manifest(&[format!(
        "{}as = \"files\"\n{extra}",
        Fixture::entry(ENC, "app/secrets")
    )]);
}

/// Runs `envsync decrypt` while another process holds the run's lock, calls `meanwhile`
/// once envsync has planned and waits, then releases the lock; returns envsync's exit code
/// and stderr.
fn decrypt_while_locked(fx: &Fixture, meanwhile: impl FnOnce()) -> (i32, String) {
    let lock = fx.server_path(".envsync/lock");
    assert!(lock.exists(), "a first run made the lock file");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    sleep(Duration::from_millis(400));
    let run = envsync_command(fx, &["decrypt"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for envsync to read, decrypt and plan, then wait for the lock.
    sleep(Duration::from_millis(1200));
    meanwhile();
    holder.wait().unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("waiting for another envsync run"),
        "the run waited for the lock:\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn an_edit_made_while_the_run_waits_is_refused_not_recorded() {
    let fx = Fixture::new();
    files_entry(&fx, "");
    fx.sops_encrypt(ENC, b"A=1\nB=1\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    sops_set(&fx.repo_path(ENC), "A", "2");
    let b = fx.server_path("app/secrets/B");
    let (code, stderr) = decrypt_while_locked(&fx, || fs::write(&b, "EDITED").unwrap());
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("changed while envsync was working"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(fx.server_path("app/secrets/A")).unwrap(),
        "1"
    );
    assert_eq!(fs::read_to_string(&b).unwrap(), "EDITED");
    // Never recorded as in sync: the edit is a conflict with the pulled rotation.
    let status = fx.envsync(["status"]);
    status.expect(1);
    assert!(status.stdout.contains("conflict"), "{}", status.stdout);
}

#[test]
fn an_edit_to_the_current_release_made_while_the_run_waits_is_refused() {
    let fx = Fixture::new();
    files_entry(&fx, "releases = 1\n");
    fx.sops_encrypt(ENC, b"A=1\nB=1\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    let before = fs::read_link(fx.server_path("app/secrets/current")).unwrap();
    sleep(Duration::from_millis(1100));
    sops_set(&fx.repo_path(ENC), "A", "2");
    let b = fx.server_path("app/secrets/current/B");
    let (code, stderr) = decrypt_while_locked(&fx, || fs::write(&b, "EDITED").unwrap());
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(
        fs::read_link(fx.server_path("app/secrets/current")).unwrap(),
        before
    );
    assert_eq!(fs::read_to_string(&b).unwrap(), "EDITED", "not pruned");
    let releases = common::names_in(&fx.server_path("app/secrets/releases"));
    assert_eq!(releases.len(), 1, "no new release, no temp: {releases:?}");
}

#[test]
fn strays_in_releases_are_never_releases() {
    let fx = Fixture::new();
    files_entry(&fx, "releases = 1\n");
    fx.sops_encrypt(ENC, b"A=1\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    let releases = fx.server_path("app/secrets/releases");
    fs::write(releases.join("notes.txt"), "mine").unwrap();
    fs::create_dir(releases.join("0-keep-me")).unwrap();
    fs::write(releases.join("0-keep-me/notes"), "mine too").unwrap();
    for value in ["2", "3"] {
        sleep(Duration::from_millis(1100));
        sops_set(&fx.repo_path(ENC), "A", value);
        fx.envsync(["decrypt"]).expect(0);
        let current = fs::read_link(fx.server_path("app/secrets/current")).unwrap();
        let name = current.to_string_lossy().into_owned();
        assert!(
            name.starts_with("releases/20") && !name.contains("notes"),
            "{name}"
        );
    }
    assert_eq!(
        fs::read_to_string(releases.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(
        fs::read_to_string(releases.join("0-keep-me/notes")).unwrap(),
        "mine too"
    );
    // releases = 1: one release left, and nothing to roll back to (the strays do not count).
    let names = common::names_in(&releases);
    assert_eq!(names.len(), 3, "{names:?}");
    let run = fx.envsync(["rollback", ENC]);
    run.expect(2);
    assert!(run.stderr.contains("no release before"), "{}", run.stderr);
}

#[test]
fn a_key_renamed_in_case_under_lower_names_moves_its_file() {
    let fx = Fixture::new();
    files_entry(&fx, "names = \"lower\"\n");
    fx.sops_encrypt(ENC, b"Api_Key=1\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    fx.sops_encrypt(ENC, b"API_KEY=2\n", "dotenv");
    fx.envsync(["status"]).expect(1);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        fs::read_to_string(fx.server_path("app/secrets/api_key")).unwrap(),
        "2"
    );
    fx.envsync(["status"]).expect(0);
}

#[test]
fn no_entry_may_sit_inside_a_files_folder() {
    let fx = Fixture::new();
    fx.manifest(&[
        format!("{}as = \"files\"\n", Fixture::entry(ENC, "app/secrets")),
        Fixture::entry("other.enc", "app/secrets/API"),
    ]);
    fx.sops_encrypt(ENC, b"API=1\n", "dotenv");
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(
        run.stderr
            .contains("is inside the folder of the `as = \"files\"` entry"),
        "{}",
        run.stderr
    );
    assert!(!fx.server_path("app").exists(), "nothing was written");
}

/// The folder fsync after `current` is switched fails (EIO, injected by strace at each fsync
/// of the run in turn): whatever the step, `current` names a complete release afterwards and
/// no run leaves a release that never went live.
#[test]
fn a_failed_switch_never_leaves_current_dangling() {
    let strace = crate::writer::strace();
    let fx = Fixture::new();
    files_entry(&fx, "releases = 2\n");
    fx.sops_encrypt(ENC, b"A=1\nB=1\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    let mut failed = 0;
    for when in 1..=12 {
        sleep(Duration::from_millis(1100));
        sops_set(&fx.repo_path(ENC), "A", &format!("v{when}"));
        let mut cmd = Command::new(&strace);
        cmd.args(["-f", "-o", "/dev/null", "-e", "trace=fsync"])
            .arg("-e")
            .arg(format!("inject=fsync:error=EIO:when={when}"))
            .arg(common::envsync_bin())
            .arg("decrypt");
        common::clean_env(&mut cmd, &fx);
        let out = cmd.output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let current = fx.server_path("app/secrets/current");
        let target = fs::read_link(&current).unwrap();
        assert!(
            current.join("A").is_file() && current.join("B").is_file(),
            "fsync {when} failed (exit {code}): current -> {target:?} is not a complete release\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == 0 {
            continue;
        }
        failed += 1;
        assert_eq!(code, 2, "{}", String::from_utf8_lossy(&out.stderr));
        // The run that failed left its value nowhere live, and no release folder of its own.
        assert_ne!(
            fs::read_to_string(current.join("A")).unwrap(),
            format!("v{when}")
        );
        let names = common::names_in(&fx.server_path("app/secrets/releases"));
        assert!(names.len() <= 2, "fsync {when}: {names:?}");
        assert!(
            names.iter().all(|n| !n.starts_with(".envsync.")),
            "{names:?}"
        );
        // The next run completes it.
        fx.envsync(["decrypt"]).expect(0);
    }
    assert!(
        failed > 0,
        "some injected fsync failure must have failed a run"
    );
}
