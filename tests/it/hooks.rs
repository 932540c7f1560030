//! `on_change`: run once per distinct argv after a run changed an entry's server content
//! (create, update, key file removed, new release, rollback); never for a no-op, a mode-only
//! fix or an encrypt. No shell, cwd = server root, `ENVSYNC_CHANGED`, no `SOPS_AGE_KEY`, no
//! secret in argv or env, its output on envsync's stderr. A failing hook is exit 4 with
//! everything written; `--no-hooks` and `--dry-run` run nothing.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{self, Fixture};

/// A hook that counts its runs in `<dir>/count` and records its cwd and `ENVSYNC_CHANGED`
/// (one block per run, ended by `--`).
fn counting_hook(dir: &Path) -> String {
    let script = format!(
        "echo run >> {d}/count; pwd >> {d}/cwd; printf '%s\\n--\\n' \"$ENVSYNC_CHANGED\" >> {d}/changed",
        d = dir.display()
    );
    serde_json::to_string(&["sh", "-c", &script]).unwrap()
}

fn runs(dir: &Path) -> usize {
    fs::read_to_string(dir.join("count")).map_or(0, |t| t.lines().count())
}

/// The `ENVSYNC_CHANGED` of the last run, as a sorted list of paths.
fn last_changed(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(dir.join("changed")).unwrap();
    let blocks: Vec<&str> = text.split("--\n").filter(|b| !b.is_empty()).collect();
    let mut paths: Vec<PathBuf> = blocks.last().unwrap().lines().map(PathBuf::from).collect();
    paths.sort();
    paths
}

fn abs(fx: &Fixture, rel: &str) -> PathBuf {
    fx.server.canonicalize().unwrap().join(rel)
}

fn hook_dir(fx: &Fixture) -> PathBuf {
    let dir = fx.dir.path().join("hook");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn on_change_runs_once_per_distinct_argv_and_only_for_content_changes() {
    let fx = Fixture::new();
    let dir = hook_dir(&fx);
    let hook = format!("on_change = {}\n", counting_hook(&dir));
    fx.sops_encrypt("app/.env.enc", b"A=1\nB=2\n", "dotenv");
    fx.sops_encrypt("web/.env.enc", b"W=1\n", "dotenv");
    fx.sops_encrypt("quiet/.env.enc", b"Q=1\n", "dotenv");
    fx.manifest(&[
        format!(
            "{}as = \"files\"\n{hook}",
            Fixture::entry("app/.env.enc", "app/secrets")
        ),
        format!("{}{hook}", Fixture::entry("web/.env.enc", "web/.env")),
        Fixture::entry("quiet/.env.enc", "quiet/.env"),
    ]);
    let both = vec![abs(&fx, "app/secrets"), abs(&fx, "web/.env")];
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 1, "two entries, one argv: one run");
    assert_eq!(last_changed(&dir), both);
    let cwd = fs::read_to_string(dir.join("cwd")).unwrap();
    assert_eq!(
        cwd.trim_end(),
        fx.server.canonicalize().unwrap().to_str().unwrap()
    );

    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 1, "a no-op decrypt ran the hook");

    chmod(&fx.server_path("web/.env"), 0o644);
    chmod(&fx.server_path("app/secrets/A"), 0o644);
    fx.envsync(["status"]).expect(1);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(common::mode_of(&fx.server_path("web/.env")), 0o600);
    assert_eq!(common::mode_of(&fx.server_path("app/secrets/A")), 0o600);
    assert_eq!(runs(&dir), 1, "a mode-only fix ran the hook");

    common::sops_set(&fx.repo_path("web/.env.enc"), "W", "2");
    common::sops_set(&fx.repo_path("quiet/.env.enc"), "Q", "2");
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 2);
    assert_eq!(last_changed(&dir), [abs(&fx, "web/.env")]);

    common::sops_unset(&fx.repo_path("app/.env.enc"), "B");
    fx.envsync(["decrypt"]).expect(0);
    assert!(!fx.server_path("app/secrets/B").exists());
    assert_eq!(runs(&dir), 3, "a removed key file is a change");
    assert_eq!(last_changed(&dir), [abs(&fx, "app/secrets")]);

    common::sops_set(&fx.repo_path("web/.env.enc"), "W", "3");
    common::sops_set(&fx.repo_path("app/.env.enc"), "A", "3");
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 4, "both changed, one argv: one run");
    assert_eq!(last_changed(&dir), both);

    fs::write(fx.server_path("web/.env"), "W=edited\n").unwrap();
    fs::write(fx.server_path("app/secrets/A"), "edited").unwrap();
    fx.envsync(["encrypt"]).expect(0);
    fx.envsync(["status"]).expect(0);
    assert_eq!(runs(&dir), 4, "encrypt ran the hook");
}

#[test]
fn a_failing_hook_exits_4_after_everything_is_written() {
    let fx = Fixture::new();
    let dir = hook_dir(&fx);
    for name in ["a", "b", "c"] {
        fx.sops_encrypt(
            &format!("{name}/.env.enc"),
            format!("{name}=1\n").as_bytes(),
            "dotenv",
        );
    }
    // It also records what it finds: every file and sync record of the run is there.
    let script = format!(
        "cat a/.env c/secrets/c > {d}/seen; ls .envsync/records > {d}/records; \
         echo hook-said-$((6*7)) >&2; exit 7",
        d = dir.display()
    );
    let failing = format!(
        "on_change = {}\n",
        serde_json::to_string(&["sh", "-c", &script]).unwrap()
    );
    fx.manifest(&[
        format!("{}{failing}", Fixture::entry("a/.env.enc", "a/.env")),
        format!(
            "{}on_change = [\"/nonexistent/envsync-hook\"]\n",
            Fixture::entry("b/.env.enc", "b/.env")
        ),
        format!(
            "{}as = \"files\"\non_change = {}\n",
            Fixture::entry("c/.env.enc", "c/secrets"),
            counting_hook(&dir)
        ),
    ]);
    let run = fx.envsync(["decrypt"]);
    run.expect(4);
    assert!(
        run.stderr.contains("hook-said-42"),
        "the hook's output:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("status 7"), "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/envsync-hook"),
        "{}",
        run.stderr
    );
    assert_eq!(runs(&dir), 1, "the hooks after a failed one still run");
    assert_eq!(fs::read_to_string(dir.join("seen")).unwrap(), "a=1\n1");
    let records = fs::read_to_string(dir.join("records")).unwrap();
    assert_eq!(
        records.lines().count(),
        3,
        "records when the hook ran:\n{records}"
    );
    assert_eq!(fs::read(fx.server_path("a/.env")).unwrap(), b"a=1\n");
    assert_eq!(fs::read(fx.server_path("b/.env")).unwrap(), b"b=1\n");
    assert_eq!(fs::read(fx.server_path("c/secrets/c")).unwrap(), b"1");
    let status = fx.envsync(["status"]);
    status.expect(0);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 1);
}

#[test]
fn no_hooks_and_dry_run_run_nothing() {
    let fx = Fixture::new();
    let dir = hook_dir(&fx);
    fx.sops_encrypt("app/.env.enc", b"A=1\n", "dotenv");
    fx.manifest(&[format!(
        "{}as = \"files\"\non_change = {}\n",
        Fixture::entry("app/.env.enc", "app/secrets"),
        counting_hook(&dir)
    )]);
    fx.envsync(["decrypt", "--no-hooks"]).expect(0);
    assert_eq!(fs::read(fx.server_path("app/secrets/A")).unwrap(), b"1");
    assert_eq!(runs(&dir), 0, "--no-hooks ran the hook");
    fx.envsync(["status"]).expect(0);

    common::sops_set(&fx.repo_path("app/.env.enc"), "A", "2");
    let before = common::snapshot(&fx.server);
    let dry = fx.envsync(["decrypt", "--dry-run"]);
    dry.expect(0);
    let output = format!("{}{}", dry.stdout, dry.stderr);
    assert!(
        output.contains("would run on_change: sh -c 'echo run >> "),
        "{output}"
    );
    assert_eq!(common::snapshot(&fx.server), before, "--dry-run wrote");
    assert_eq!(runs(&dir), 0, "--dry-run ran the hook");
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(runs(&dir), 1);
}

#[test]
fn hooks_get_no_secret_and_their_output_goes_to_stderr() {
    let fx = Fixture::new();
    let dir = hook_dir(&fx);
    let (password, token) = (common::canary("hook-pw"), common::canary("hook-token"));
    fx.sops_encrypt(
        "app/.env.enc",
        format!("PASSWORD={password}\n").as_bytes(),
        "dotenv",
    );
    fx.sops_encrypt(
        "web/.env.enc",
        format!("TOKEN={token}\n").as_bytes(),
        "dotenv",
    );
    let script = format!(
        "env > {d}/env; cat /proc/self/cmdline > {d}/cat-cmdline; cat /proc/$$/cmdline > {d}/sh-cmdline",
        d = dir.display()
    );
    // No `identity`: the run can only decrypt with SOPS_AGE_KEY.
    let manifest = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n\n[[file]]\n{}as = \"files\"\non_change = {}\n\n[[file]]\n{}on_change = [\"env\"]\n",
        fx.server.display(),
        Fixture::entry("app/.env.enc", "app/secrets"),
        serde_json::to_string(&["sh", "-c", &script]).unwrap(),
        Fixture::entry("web/.env.enc", "web/.env"),
    );
    fs::write(fx.repo_path("secrets.toml"), manifest).unwrap();
    let key = fs::read_to_string(common::key_file(1)).unwrap();
    assert!(key.contains("AGE-SECRET-KEY-1"));
    let run = fx.envsync_with(["decrypt", "--json"], &[("SOPS_AGE_KEY", &key)]);
    run.expect(0);
    assert_eq!(
        fs::read_to_string(fx.server_path("app/secrets/PASSWORD")).unwrap(),
        password
    );
    assert!(fs::read_to_string(fx.server_path("web/.env"))
        .unwrap()
        .contains(&token));

    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(doc["entries"].as_array().map(Vec::len), Some(2), "{doc}");
    assert!(
        !run.stdout.contains("ENVSYNC_CHANGED"),
        "hook output on stdout"
    );
    let changed = format!("ENVSYNC_CHANGED={}", abs(&fx, "web/.env").display());
    assert!(
        run.stderr.contains(&changed),
        "`env`'s output is on stderr:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("SOPS_AGE_KEY"), "{}", run.stderr);
    // stdout and stderr were scanned for the canaries and the key by `envsync_with`.
    for name in ["env", "cat-cmdline", "sh-cmdline"] {
        let bytes = fs::read(dir.join(name)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        common::assert_no_leak(&text, name);
        assert!(!text.contains("SOPS_AGE_KEY"), "{name}: {text}");
    }
    let env = fs::read_to_string(dir.join("env")).unwrap();
    assert!(env.contains("ENVSYNC_CHANGED="), "{env}");
    assert!(fs::read(dir.join("cat-cmdline"))
        .unwrap()
        .starts_with(b"cat\0"));
}

#[test]
fn rollback_runs_on_change() {
    let fx = Fixture::new();
    let dir = hook_dir(&fx);
    let enc = "app/.env.enc";
    fx.sops_encrypt(enc, b"A=0\n", "dotenv");
    fx.manifest(&[format!(
        "{}as = \"files\"\nreleases = 3\non_change = {}\n",
        Fixture::entry(enc, "app/secrets"),
        counting_hook(&dir)
    )]);
    fx.envsync(["decrypt"]).expect(0);
    let stamp = || {
        let link = fs::read_link(fx.server_path("app/secrets/current")).unwrap();
        link.to_str()
            .unwrap()
            .trim_start_matches("releases/")
            .to_string()
    };
    let mut stamps = vec![stamp()];
    for n in 1..=2 {
        common::sops_set(&fx.repo_path(enc), "A", &n.to_string());
        fx.envsync(["decrypt"]).expect(0);
        stamps.push(stamp());
    }
    assert_eq!(runs(&dir), 3);
    // A mode-only fix chmods the current release: no new release, no hook.
    let a = fx.server_path(&format!("app/secrets/releases/{}/A", stamps[2]));
    chmod(&a, 0o644);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!((common::mode_of(&a), stamp()), (0o600, stamps[2].clone()));
    assert_eq!(
        common::names_in(&fx.server_path("app/secrets/releases")),
        stamps
    );
    assert_eq!(runs(&dir), 3, "a mode-only fix ran on_change");
    // encrypt reads the folder through `current`, and never runs on_change.
    fs::write(fx.server_path("app/secrets/current/A"), "edited").unwrap();
    fx.envsync(["encrypt"]).expect(0);
    assert_eq!(fx.sops_decrypt(enc, "dotenv"), b"A=edited\n");
    assert_eq!(
        common::names_in(&fx.server_path("app/secrets/releases")),
        stamps
    );
    fx.envsync(["status"]).expect(0);
    assert_eq!(runs(&dir), 3, "encrypt ran on_change");

    fx.envsync(["rollback", enc]).expect(0);
    assert_eq!(stamp(), stamps[1]);
    assert_eq!(
        fs::read(fx.server_path("app/secrets/current/A")).unwrap(),
        b"1"
    );
    assert_eq!(runs(&dir), 4, "rollback ran no on_change");
    assert_eq!(last_changed(&dir), [abs(&fx, "app/secrets")]);

    // By server path this time.
    let to_first = ["rollback", "app/secrets", "--to", &stamps[0], "--no-hooks"];
    fx.envsync(to_first).expect(0);
    assert_eq!(stamp(), stamps[0]);
    assert_eq!(runs(&dir), 4, "rollback --no-hooks ran on_change");

    let dry = fx.envsync(["rollback", enc, "--to", &stamps[2], "--dry-run"]);
    dry.expect(0);
    assert!(
        format!("{}{}", dry.stdout, dry.stderr).contains("would run on_change: sh -c"),
        "{dry:?}"
    );
    assert_eq!(stamp(), stamps[0]);
    assert_eq!(runs(&dir), 4, "rollback --dry-run ran on_change");
}
