//! git's textconv through `envsync show` on the team's real eleven-file layout, set up as the
//! README shows (`*.enc diff=envsync`, `diff.envsync.textconv`), with the binary under test.
//! One password rotated on the server and encrypted back shows in `git diff` as that key's
//! line alone, masked as `<len N · fingerprint>` with a new fingerprint; no value appears
//! unless `--reveal` is asked for; a teammate without the key still gets a working `git diff`
//! that lists the keys as `<no key>`.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::process::Command;

use crate::common::{self, git, Fixture};
use crate::team::{enc, team_fixture, value_of, with_key, Server};

/// The dotenv file whose one key is rotated.
const ROTATED: &str = "envs/helios/.env.prod";
const KEY: &str = "SMTP_PASSWORD";

/// `git <args>` in the repo with the harness's clean environment plus `env`; it must exit 0.
fn git_env(fx: &Fixture, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("git");
    cmd.args(args);
    common::clean_env(&mut cmd, fx);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} exited {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "the textconv panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The textconv command line for the binary under test.
fn textconv(args: &str) -> String {
    format!("'{}' {args}", common::envsync_bin().display())
}

/// The team fixture with `.gitattributes` and the textconv configured and committed, the
/// server decrypted, and KEY of ROTATED rotated on the server and encrypted back (with the
/// AGE1 key, by `SOPS_AGE_KEY_FILE`). Returns the fixture and the old and new values.
fn rotated() -> (Fixture, String, String) {
    let (fx, _files) = team_fixture(Server::Outside);
    fs::write(fx.repo.join(".gitattributes"), "*.enc diff=envsync\n").unwrap();
    git(&fx, &["add", ".gitattributes"]);
    git(&fx, &["commit", "-qm", "textconv"]);
    git(&fx, &["config", "diff.envsync.textconv", &textconv("show")]);
    let key = with_key();
    let keyed = [("SOPS_AGE_KEY_FILE", key.as_str())];
    fx.envsync_with(["decrypt"], &keyed).expect(0);
    // Nothing changed yet: git diff is empty.
    assert_eq!(git_env(&fx, &["diff"], &keyed), "");

    let current = fs::read_to_string(fx.server_path(ROTATED)).unwrap();
    let old = value_of(&current, KEY).to_string();
    let new = common::canary("rotated-smtp-helios-prod");
    assert_ne!(old.len(), new.len());
    let updated = current.replace(&format!("{KEY}={old}\n"), &format!("{KEY}={new}\n"));
    assert_ne!(updated, current);
    fx.write_server(ROTATED, updated.as_bytes());
    fx.envsync_with(["encrypt"], &keyed).expect(0);
    (fx, old, new)
}

/// The changed lines of a diff (`+`/`-`, file headers left out).
fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect()
}

/// Splits `<len N · xxxxxxxx>` into N and the fingerprint (8 hex digits).
fn masked(value: &str) -> (usize, &str) {
    let inner = value
        .strip_prefix("<len ")
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or_else(|| panic!("not a masked value: {value}"));
    let (len, fingerprint) = inner
        .split_once(" · ")
        .unwrap_or_else(|| panic!("no fingerprint: {value}"));
    assert!(
        fingerprint.len() == 8 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "fingerprint is not 8 hex digits: {value}"
    );
    (len.parse().unwrap(), fingerprint)
}

/// With the key, `git diff` of the rotation changes exactly KEY's line of the one rotated
/// file (old and new length, different fingerprints), every other key is unchanged context,
/// and no value is in the output; with `show --reveal` as textconv the values are in clear.
#[test]
fn a_rotation_shows_as_that_key_alone() {
    let (fx, old, new) = rotated();
    let key = with_key();
    let keyed = [("SOPS_AGE_KEY_FILE", key.as_str())];
    let diff = git_env(&fx, &["diff"], &keyed);
    common::assert_no_leak(&diff, "git diff through envsync show");
    for value in [&old, &new] {
        assert!(!diff.contains(value.as_str()), "a value leaked:\n{diff}");
    }
    let headers: Vec<&str> = diff
        .lines()
        .filter(|l| l.starts_with("diff --git"))
        .collect();
    let rotated_enc = enc(ROTATED);
    assert_eq!(
        headers,
        [format!("diff --git a/{rotated_enc} b/{rotated_enc}")],
        "only the rotated file changes:\n{diff}"
    );

    let changed = changed_lines(&diff);
    assert_eq!(changed.len(), 2, "only {KEY}'s line changes:\n{diff}");
    let before = changed[0]
        .strip_prefix(&format!("-{KEY}="))
        .unwrap_or_else(|| panic!("first change is not -{KEY}=:\n{diff}"));
    let after = changed[1]
        .strip_prefix(&format!("+{KEY}="))
        .unwrap_or_else(|| panic!("second change is not +{KEY}=:\n{diff}"));
    let (old_len, old_fp) = masked(before);
    let (new_len, new_fp) = masked(after);
    assert_eq!((old_len, new_len), (old.len(), new.len()), "{diff}");
    assert_ne!(old_fp, new_fp, "the fingerprint did not change:\n{diff}");
    // The other keys are there, unchanged, as masked context.
    for other in ["SMTP_USER", "SMTP_FROM", "SMTP_PORT"] {
        assert!(
            diff.lines()
                .any(|l| l.starts_with(&format!(" {other}=<len "))),
            "{other} is not unchanged context:\n{diff}"
        );
    }

    // In clear only when asked.
    let config = format!("diff.envsync.textconv={}", textconv("show --reveal"));
    let revealed = git_env(&fx, &["-c", &config, "diff"], &keyed);
    let changed = changed_lines(&revealed);
    assert_eq!(
        changed,
        [format!("-{KEY}={old}"), format!("+{KEY}={new}")],
        "--reveal diff:\n{revealed}"
    );
}

/// Without any key (no identity in the manifest or env, HOME empty), `git diff` still exits
/// 0 without a value in its output; the file seen whole lists every key as `<no key>`.
#[test]
fn a_teammate_without_the_key_sees_key_names() {
    let (fx, old, new) = rotated();
    assert!(common::names_in(&fx.home).is_empty());
    let diff = git_env(&fx, &["diff"], &[]);
    common::assert_no_leak(&diff, "keyless git diff");
    for value in [&old, &new] {
        assert!(!diff.contains(value.as_str()), "a value leaked:\n{diff}");
    }
    assert!(
        changed_lines(&diff).is_empty(),
        "without the key no value line can show as changed:\n{diff}"
    );

    // The rotated file against the empty tree: every key, masked as `<no key>`.
    let empty_tree = git(&fx, &["hash-object", "-t", "tree", "/dev/null"]);
    let whole = git_env(&fx, &["diff", empty_tree.trim(), "--", &enc(ROTATED)], &[]);
    common::assert_no_leak(&whole, "keyless git diff of the whole file");
    let added: Vec<&str> = changed_lines(&whole);
    let plain = fs::read_to_string(fx.server_path(ROTATED)).unwrap();
    let want: Vec<String> = plain
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| format!("+{k}=<no key>")))
        .collect();
    assert_eq!(want.len(), 14, "{plain}");
    assert_eq!(added, want, "keyless view of {}:\n{whole}", enc(ROTATED));
}

/// The manifest in a subfolder of the git work tree (the team repo under `repo/`, git at the
/// top): git runs textconv at the top of the work tree, where `envsync show` finds no
/// `secrets.toml`: show reads the temp file git hands it without one, so `git diff` of a
/// rotated `.enc` still shows the one key's line.
#[test]
fn textconv_works_with_the_manifest_in_a_subfolder() {
    let (fx, _files) = team_fixture(Server::Outside);
    fs::remove_dir_all(fx.repo.join(".git")).unwrap();
    let top = fx.dir.path();
    fs::write(top.join(".gitattributes"), "*.enc diff=envsync\n").unwrap();
    fs::write(top.join(".gitignore"), "/server/\n/home/\n").unwrap();
    git(&fx, &["init", "-q", top.to_str().unwrap()]);
    git(
        &fx,
        &["add", "-A", ".", "../.gitattributes", "../.gitignore"],
    );
    git(&fx, &["commit", "-qm", "team secrets under repo/"]);
    git(&fx, &["config", "diff.envsync.textconv", &textconv("show")]);
    common::sops_set(&fx.repo_path(&enc(ROTATED)), KEY, &common::canary("sub"));
    let key = with_key();
    let diff = git_env(&fx, &["diff"], &[("SOPS_AGE_KEY_FILE", key.as_str())]);
    let changed = changed_lines(&diff);
    assert_eq!(changed.len(), 2, "{diff}");
    assert!(changed[0].starts_with(&format!("-{KEY}=<len ")), "{diff}");
}
