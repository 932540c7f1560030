//! `envsync check` on the team's real eleven-file layout (server root = the repo's work tree,
//! plaintext targets ignored), run as CI runs it: HOME an empty folder, no `SOPS_*` variable,
//! no identity in the manifest. A clean repo passes silently; each way the repo can go wrong
//! (orphan, deleted, clear value, committed plaintext, unignored plaintext, recipient not yet
//! rekeyed) is one line naming the file and the cause, exit 1, in text and in `--json`, and
//! no output ever holds a secret.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::process::Command;

use crate::common::{self, git, Fixture, Run, AGE1, AGE3};
use crate::team::{enc, gitignore, team_fixture, with_key, Server, TeamFile};

/// `envsync check <args>` with no key anywhere: HOME empty, every `SOPS_*` variable of the
/// caller removed, no identity in the manifest. Its output is checked for leaks.
fn check(fx: &Fixture, args: &[&str]) -> Run {
    assert!(
        common::names_in(&fx.home).is_empty(),
        "HOME is not empty: a key could be found there"
    );
    let manifest = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    assert!(!manifest.contains("identity"), "the manifest names a key");
    let mut cmd = common::envsync_command(fx, &["check"]);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SOPS_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    common::assert_no_leak(&run.stdout, "stdout of envsync check");
    common::assert_no_leak(&run.stderr, "stderr of envsync check");
    run
}

/// Asserts exit 1 and exactly one problem line, `<file>: <cause>...`.
#[track_caller]
fn assert_one_problem(run: &Run, file: &str, cause: &str) {
    run.expect(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one problem expected:\n{}", run.stdout);
    let want = format!("{file}: {cause}");
    assert!(
        lines[0].starts_with(&want),
        "expected a line starting `{want}`:\n{}",
        run.stdout
    );
}

/// The team fixture with its server root inside the repo, and check passing on it.
fn clean() -> (Fixture, Vec<TeamFile>) {
    let (fx, files) = team_fixture(Server::InRepo);
    let run = check(&fx, &[]);
    run.expect(0);
    assert_eq!(run.stdout, "", "check of a clean repo printed something");
    (fx, files)
}

/// Adds a committed `.enc` that no entry maps.
fn add_orphan(fx: &Fixture) -> &'static str {
    let orphan = "envs/retired/.env.prod.enc";
    let value = common::canary("orphan");
    fx.sops_encrypt(orphan, format!("OLD_TOKEN={value}\n").as_bytes(), "dotenv");
    git(fx, &["add", orphan]);
    git(fx, &["commit", "-qm", "orphan"]);
    orphan
}

/// Deletes (and commits the deletion of) one entry's `.enc`.
fn delete_enc(fx: &Fixture) -> String {
    let gone = enc("monitoring/.env");
    git(fx, &["rm", "-q", &gone]);
    git(fx, &["commit", "-qm", "delete"]);
    gone
}

/// Replaces the `ENC[...]` of SMTP_PASSWORD by a clear value, sops metadata kept.
fn clear_one_value(fx: &Fixture) -> String {
    let file = enc("envs/helios/.env.staging");
    let path = fx.repo_path(&file);
    let before = fs::read_to_string(&path).unwrap();
    let clear = common::canary("clear-smtp");
    let after: String = before
        .lines()
        .map(|l| match l.strip_prefix("SMTP_PASSWORD=") {
            Some(v) => {
                assert!(v.starts_with("ENC[AES256_GCM,"), "{l}");
                format!("SMTP_PASSWORD={clear}\n")
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(after, before);
    assert!(after.contains("\nsops_mac=ENC[") && after.contains("\nsops_age__list_0__map_enc="));
    fs::write(&path, after).unwrap();
    file
}

/// Writes a server plaintext inside the repo and commits it with `git add -f`.
fn commit_plaintext(fx: &Fixture, files: &[TeamFile]) -> &'static str {
    let target = "shared/.env";
    let f = files.iter().find(|f| f.path == target).unwrap();
    fx.write_server(target, f.plain.as_bytes());
    git(fx, &["add", "-f", target]);
    git(fx, &["commit", "-qm", "oops"]);
    target
}

/// Removes one plaintext target's line from `.gitignore`.
fn unignore(fx: &Fixture, files: &[TeamFile]) -> &'static str {
    let target = "umami/.env";
    let text = gitignore(files);
    let without = text.replace(&format!("/{target}\n"), "");
    assert_ne!(without, text);
    fs::write(fx.repo.join(".gitignore"), without).unwrap();
    target
}

/// Appends AGE3 to `.sops.yaml`'s recipients.
fn add_recipient(fx: &Fixture) {
    let path = fx.repo.join(".sops.yaml");
    let config = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("{},{AGE3}\n", config.trim_end())).unwrap();
}

/// The clean layout: exit 0, nothing on stdout, `--json` ok with no problem.
#[test]
fn clean_team_repo_passes_without_any_key() {
    let (fx, _files) = clean();
    let json = check(&fx, &["--json"]);
    json.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{}", json.stdout);
    assert_eq!(doc["problems"].as_array().unwrap().len(), 0);
}

/// A committed `.enc` no entry maps is named as an orphan.
#[test]
fn an_orphan_enc_is_named() {
    let (fx, _files) = clean();
    let orphan = add_orphan(&fx);
    let run = check(&fx, &[]);
    assert_one_problem(&run, orphan, "no entry of secrets.toml maps this .enc");
}

/// A deleted `.enc` is named as missing, with the server file it mirrors.
#[test]
fn a_deleted_enc_is_named() {
    let (fx, _files) = clean();
    let gone = delete_enc(&fx);
    let run = check(&fx, &[]);
    assert_one_problem(&run, &gone, "is missing (the repo copy of monitoring/.env)");
}

/// A value edited to clear text in a dotenv `.enc` is named by its key, never quoted.
#[test]
fn a_value_in_clear_is_named_by_its_key() {
    let (fx, _files) = clean();
    let file = clear_one_value(&fx);
    let run = check(&fx, &[]);
    assert_one_problem(&run, &file, "holds values in clear");
    assert!(
        run.stdout
            .lines()
            .next()
            .unwrap()
            .contains("encrypt: SMTP_PASSWORD;"),
        "{}",
        run.stdout
    );
}

/// A plaintext target committed with `git add -f` is named as tracked; once its removal is
/// staged with the `git rm --cached` the fix gives, check (and `--staged`, the hook) passes.
#[test]
fn a_committed_plaintext_is_named_until_removed() {
    let (fx, files) = clean();
    let target = commit_plaintext(&fx, &files);
    let run = check(&fx, &[]);
    assert_one_problem(&run, target, "is a plaintext secret tracked by git");
    assert!(
        run.stdout
            .contains(&format!("run `git rm --cached {target}`")),
        "{}",
        run.stdout
    );
    git(&fx, &["rm", "-q", "--cached", target]);
    for args in [&[][..], &["--staged"][..]] {
        let run = check(&fx, args);
        run.expect(0);
        assert_eq!(run.stdout, "", "check {args:?} after the fix");
    }
    git(&fx, &["commit", "-qm", "untrack the plaintext"]);
    check(&fx, &[]).expect(0);
}

/// A plaintext target whose `.gitignore` line is gone is named, with the line to add.
#[test]
fn a_plaintext_not_ignored_is_named() {
    let (fx, files) = clean();
    let target = unignore(&fx, &files);
    let run = check(&fx, &[]);
    assert_one_problem(
        &run,
        target,
        "is a plaintext secret inside the repo that git does not ignore; add `/umami/.env` to .gitignore",
    );
}

/// A recipient added to `.sops.yaml` names all eleven files until `envsync rekey` (with the
/// AGE1 key) re-encrypts them; then check passes again and AGE3 opens the files.
#[test]
fn a_new_recipient_asks_for_rekey_until_rekeyed() {
    let (fx, files) = clean();
    add_recipient(&fx);
    git(&fx, &["commit", "-qam", "add AGE3"]);
    let run = check(&fx, &[]);
    run.expect(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), files.len(), "{}", run.stdout);
    for f in &files {
        let want = format!(
            "{}: its recipients differ from .sops.yaml (not yet encrypted to {AGE3}); run `envsync rekey {}`",
            enc(&f.path),
            enc(&f.path)
        );
        assert!(
            lines.contains(&want.as_str()),
            "no `{want}`:\n{}",
            run.stdout
        );
    }
    // What sops reads with the old key (sops drops a dotenv's blank lines).
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| fx.sops_decrypt(&enc(&f.path), f.kind))
        .collect();
    fx.envsync_with(["rekey"], &[("SOPS_AGE_KEY_FILE", &with_key())])
        .expect(0);
    let run = check(&fx, &[]);
    run.expect(0);
    assert_eq!(run.stdout, "");
    for (f, before) in files.iter().zip(&before) {
        let plain =
            common::sops_decrypt(&fx.repo_path(&enc(&f.path)), f.kind, &common::key_file(3));
        assert!(&plain == before, "{}: AGE3 does not read the same", f.path);
    }
}

/// Encrypts `plain` with real sops to AGE1 alone (AGE2 of `.sops.yaml` left out).
fn encrypt_to_age1_only(fx: &Fixture, rel: &str, plain: &[u8], kind: &str) {
    let scratch = fx.dir.path().join("scratch.plain");
    fs::write(&scratch, plain).unwrap();
    let out = Command::new(common::sops())
        .args(["encrypt", "--input-type", kind, "--output-type", kind])
        .args(["--age", AGE1])
        .arg(&scratch)
        .current_dir(fx.dir.path())
        .output()
        .unwrap();
    fs::remove_file(&scratch).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(fx.repo_path(rel), out.stdout).unwrap();
}

/// All six causes at once: text has one line per cause, `--json` is valid JSON with `ok`
/// false and exactly one problem per cause, each with its `file` and `kind`.
#[test]
fn every_cause_at_once_in_text_and_json() {
    let (fx, files) = clean();
    let orphan = add_orphan(&fx);
    let gone = delete_enc(&fx);
    let clear = clear_one_value(&fx);
    let tracked = commit_plaintext(&fx, &files);
    let unignored = unignore(&fx, &files);
    let htpasswd = files.iter().find(|f| f.path == "nginx/.htpasswd").unwrap();
    let rekey = enc(&htpasswd.path);
    encrypt_to_age1_only(&fx, &rekey, htpasswd.plain.as_bytes(), htpasswd.kind);
    let mut want = vec![
        (orphan.to_string(), "orphan"),
        (gone, "missing"),
        (clear, "clear-value"),
        (tracked.to_string(), "plaintext-tracked"),
        (unignored.to_string(), "plaintext-not-ignored"),
        (rekey, "recipients"),
    ];
    want.sort();

    let run = check(&fx, &[]);
    run.expect(1);
    let mut named: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.split_once(": ").unwrap().0.to_string())
        .collect();
    named.sort();
    let want_files: Vec<String> = want.iter().map(|(f, _)| f.clone()).collect();
    assert_eq!(named, want_files, "{}", run.stdout);

    let json = check(&fx, &["--json"]);
    json.expect(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("check --json is not JSON ({e}):\n{}", json.stdout));
    assert_eq!(doc["command"], "check");
    assert_eq!(doc["clean"], false);
    let mut got: Vec<(String, &str)> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(!p["message"].as_str().unwrap().is_empty(), "{p}");
            assert!(!p["fix"].as_str().unwrap().is_empty(), "{p}");
            (
                p["file"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "{}", json.stdout);
}

/// The team's `.env.example` discipline, on the layout: every app's prod entry names an
/// example with its keys. A key added to the env file (and encrypted) but not to the example
/// is named as undocumented; a key documented but missing from the secret is named as
/// missing; values are never shown.
#[test]
fn keys_against_the_example_on_the_team_layout() {
    let (fx, files) = clean();
    let prod = "envs/aletheia/.env.prod";
    let example = "envs/aletheia/.env.example";
    let plain = &files.iter().find(|f| f.path == prod).unwrap().plain;
    // The example: the prod keys with empty values (what teams commit), and comments.
    let documented: String = plain
        .lines()
        .map(|l| match l.split_once('=') {
            Some((key, _)) if !l.starts_with('#') => format!("{key}=\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    fs::write(fx.repo.join(example), &documented).unwrap();
    let manifest = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let entry = format!("repo = \"{}\"\n", enc(prod));
    fs::write(
        fx.repo.join("secrets.toml"),
        manifest.replacen(&entry, &format!("{entry}example = \"{example}\"\n"), 1),
    )
    .unwrap();
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "example"]);
    check(&fx, &[]).expect(0);

    // A key added to the env file on the server, encrypted into the repo (public keys only).
    let token = common::canary("sentry-dsn");
    // No sync record yet on this server: --force takes the server's side.
    fx.write_server(prod, format!("{plain}SENTRY_DSN={token}\n").as_bytes());
    fx.envsync_with(
        ["encrypt", "--force", prod],
        &[("SOPS_AGE_KEY_FILE", with_key().as_str())],
    )
    .expect(0);
    let run = check(&fx, &[]);
    assert_one_problem(
        &run,
        &enc(prod),
        &format!("has keys its example {example} does not document: SENTRY_DSN;"),
    );

    // The reverse: documented (and the new key documented too), but not in the secret.
    fs::write(
        fx.repo.join(example),
        format!("{documented}SENTRY_DSN=\nSTRIPE_SECRET_KEY=\n"),
    )
    .unwrap();
    let run = check(&fx, &[]);
    assert_one_problem(
        &run,
        &enc(prod),
        &format!("lacks keys its example {example} documents: STRIPE_SECRET_KEY;"),
    );
    let json = check(&fx, &["--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        doc["problems"][0]["kind"], "missing-keys",
        "{}",
        json.stdout
    );
    assert!(!json.stdout.contains(&token));
}
