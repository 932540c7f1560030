//! `envsync show` and the git textconv: values masked as keyed fingerprints (length and a
//! short HMAC), so a one-key rotation shows in `git diff` as that key's line alone; `<no key>`
//! for a teammate without the key; `--reveal` only when asked. Real sops, a real git repo.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;

use crate::common::{self, assert_no_leak, canary, git, sops_set, Fixture};

const ENC: &str = "app/.env.enc";

/// A committed dotenv `.enc` (A, B) with `.gitattributes` sending `*.enc` through `envsync
/// show`; returns the two values.
fn committed(fx: &Fixture) -> (String, String) {
    fx.manifest(&[Fixture::entry(ENC, "app/.env")]);
    let (a, b) = (canary("show-a"), canary("show-b"));
    fx.sops_encrypt(ENC, format!("# note\nA={a}\nB={b}\n").as_bytes(), "dotenv");
    fs::write(fx.repo.join(".gitattributes"), "*.enc diff=envsync\n").unwrap();
    git(fx, &["add", "-A"]);
    git(
        fx,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "first",
        ],
    );
    (a, b)
}

/// `git diff` of the work tree with `textconv` as the envsync command.
fn textconv_diff(fx: &Fixture, textconv: &str) -> String {
    let config = format!(
        "diff.envsync.textconv={} {textconv}",
        common::envsync_bin().display()
    );
    git(fx, &["-c", &config, "diff", "--", ENC])
}

#[test]
fn masked_view_shows_keys_and_fingerprints_only() {
    let fx = Fixture::new();
    let (a, b) = committed(&fx);
    let run = fx.envsync(["show", ENC]);
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("# <len 5 · "), "{}", run.stdout);
    assert!(
        lines[1].starts_with(&format!("A=<len {} · ", a.len())),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with(&format!("B=<len {} · ", b.len())),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(&a) && !run.stdout.contains(&b));
    // The same file by its server path, and the same fingerprints every time.
    let again = fx.envsync(["show", "app/.env"]);
    assert_eq!(again.stdout, run.stdout);
    // --reveal prints the plaintext as sops does (asked for: the harness's leak check is
    // not run on it).
    let reveal = common::envsync_command(&fx, &["show", "--reveal", ENC])
        .output()
        .unwrap();
    assert!(reveal.status.success());
    assert_eq!(reveal.stdout, fx.sops_decrypt(ENC, "dotenv"));
}

#[test]
fn git_diff_of_a_one_key_rotation_shows_that_key_alone() {
    let fx = Fixture::new();
    let (a, b) = committed(&fx);
    let new_b = canary("show-b2");
    sops_set(&fx.repo_path(ENC), "B", &new_b);
    let diff = textconv_diff(&fx, "show");
    assert_no_leak(&diff, "git diff through envsync show");
    for secret in [&a, &b, &new_b] {
        assert!(!diff.contains(secret.as_str()), "a value leaked:\n{diff}");
    }
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(changed.len(), 2, "only B's line changes:\n{diff}");
    assert!(
        changed[0].starts_with("-B=<len ") && changed[1].starts_with("+B=<len "),
        "{diff}"
    );
    assert!(
        diff.contains(" A=<len "),
        "A is context, unchanged:\n{diff}"
    );
    // In clear only when asked.
    let revealed = textconv_diff(&fx, "show --reveal");
    assert!(revealed.contains(&format!("+B={new_b}")), "{revealed}");
    assert!(revealed.contains(&format!("-B={b}")), "{revealed}");
}

#[test]
fn without_the_key_show_lists_the_keys() {
    let fx = Fixture::new();
    let (a, b) = committed(&fx);
    // A teammate's checkout: the manifest names no identity, none is found.
    let manifest = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let without: String = manifest
        .lines()
        .filter(|l| !l.starts_with("identity"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(fx.repo.join("secrets.toml"), without).unwrap();
    let run = fx.envsync(["show", ENC]);
    run.expect(0);
    assert_eq!(run.stdout, "A=<no key>\nB=<no key>\n");
    sops_set(&fx.repo_path(ENC), "B", "rotated-value");
    let diff = textconv_diff(&fx, "show");
    assert!(!diff.contains(&a) && !diff.contains(&b));
    // The keys did not change, so the textconv output is the same on both sides.
    assert!(!diff.contains("+A=") && !diff.contains("+B="), "{diff}");
    let reveal = fx.envsync(["show", "--reveal", ENC]);
    reveal.expect(2);
    assert!(
        reveal.stderr.contains("no identity here opens it"),
        "{}",
        reveal.stderr
    );
}

/// A clone without `secrets.toml` (or textconv run outside the repo) still shows any `.enc`:
/// masked with the key from `SOPS_AGE_KEY_FILE`, `<no key>` without one, never an error.
#[test]
fn show_works_without_a_manifest() {
    let fx = Fixture::new();
    let (a, b) = committed(&fx);
    fs::remove_file(fx.repo.join("secrets.toml")).unwrap();
    let key = crate::common::key_file(1);
    let run = fx.envsync_with(
        ["show", ENC],
        &[("SOPS_AGE_KEY_FILE", key.to_str().unwrap())],
    );
    run.expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    // The file's comment, then its two keys.
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("# <len "), "{}", run.stdout);
    assert!(
        lines[1].starts_with(&format!("A=<len {} · ", a.len())),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with(&format!("B=<len {} · ", b.len())),
        "{}",
        run.stdout
    );
    let run = fx.envsync(["show", ENC]);
    run.expect(0);
    assert_eq!(run.stdout, "A=<no key>\nB=<no key>\n");
    // Any other command still needs the manifest.
    fx.envsync(["status"]).expect(2);
}
