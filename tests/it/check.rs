//! `envsync check`: the keyless CI gate, on real git repos with files encrypted by real sops.
//! Every run has HOME empty, no SOPS_* variables and no identity in the manifest.
#![allow(clippy::unwrap_used)]

use std::fs;

use crate::common::{git, Fixture, AGE3};

/// Writes `secrets.toml` without `identity`: check must never need a key.
fn keyless_manifest(fx: &Fixture, root: &std::path::Path, files: &[String]) {
    let mut text = format!("version = 1\n\n[server]\nroot = \"{}\"\n", root.display());
    for f in files {
        text.push_str("\n[[file]]\n");
        text.push_str(f);
    }
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
}

/// A committed repo with two dotenv entries whose plaintext targets live in `app/` inside
/// the repo (ignored), so every rule has something to look at.
fn clean_repo() -> Fixture {
    let fx = Fixture::new();
    fx.sops_encrypt(
        "envs/api.env.enc",
        b"DB_PASSWORD=s3cr3t-api\nPORT=80\n",
        "dotenv",
    );
    fx.sops_encrypt("envs/web.env.enc", b"TOKEN=s3cr3t-web\n", "dotenv");
    keyless_manifest(
        &fx,
        &fx.repo,
        &[
            Fixture::entry("envs/api.env.enc", "app/api.env"),
            Fixture::entry("envs/web.env.enc", "app/web.env"),
        ],
    );
    fs::write(fx.repo.join(".gitignore"), "/app/\n").unwrap();
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "init"]);
    fx
}

#[test]
fn a_clean_repo_passes_without_any_key() {
    let fx = clean_repo();
    let run = fx.envsync(["check"]);
    run.expect(0);
    assert_eq!(run.stdout, "");
    let json = fx.envsync(["check", "--json"]);
    json.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["command"], "check");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn an_identity_that_does_not_exist_is_never_read() {
    let fx = clean_repo();
    let text = fs::read_to_string(fx.repo.join("secrets.toml"))
        .unwrap()
        .replace(
            "[server]\n",
            "[server]\nidentity = \"/nonexistent/age.key\"\n",
        );
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
    fx.envsync(["check"]).expect(0);
}

#[test]
fn an_orphan_enc_is_named() {
    let fx = clean_repo();
    fx.sops_encrypt("envs/old.env.enc", b"X=s3cr3t-old\n", "dotenv");
    // Untracked orphans are not the repo's: only tracked ones count.
    fx.envsync(["check"]).expect(0);
    git(&fx, &["add", "envs/old.env.enc"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/old.env.enc: "),
        "{}",
        run.stdout
    );
    let json = fx.envsync(["check", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["ok"], true, "the check ran; it found problems");
    assert_eq!(doc["clean"], false);
    assert_eq!(doc["problems"][0]["kind"], "orphan");
    assert_eq!(doc["problems"][0]["file"], "envs/old.env.enc");
}

#[test]
fn outside_git_every_enc_file_counts() {
    let fx = clean_repo();
    fs::remove_dir_all(fx.repo.join(".git")).unwrap();
    fx.envsync(["check"]).expect(0);
    fx.sops_encrypt("envs/old.env.enc", b"X=s3cr3t-old\n", "dotenv");
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(run.stdout.contains("envs/old.env.enc: "), "{}", run.stdout);
}

#[test]
fn a_deleted_enc_is_named_unless_optional() {
    let fx = clean_repo();
    fs::remove_file(fx.repo.join("envs/web.env.enc")).unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/web.env.enc: is missing")
            && run.stdout.contains("envsync encrypt envs/web.env.enc"),
        "{}",
        run.stdout
    );
    keyless_manifest(
        &fx,
        &fx.repo,
        &[
            Fixture::entry("envs/api.env.enc", "app/api.env"),
            Fixture::entry("envs/web.env.enc", "app/web.env") + "optional = true\n",
        ],
    );
    fx.envsync(["check"]).expect(0);
}

#[test]
fn a_plaintext_file_named_enc_is_refused_without_quoting_it() {
    let fx = clean_repo();
    let secret = crate::common::canary("plain-enc");
    fs::write(
        fx.repo.join("envs/web.env.enc"),
        format!("TOKEN={secret}\n"),
    )
    .unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/web.env.enc: is not encrypted"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_dotenv_enc_without_its_mac_is_named() {
    let fx = clean_repo();
    let path = fx.repo.join("envs/web.env.enc");
    let text: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("sops_mac="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&path, text).unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout
            .contains("envs/web.env.enc: has no valid sops metadata"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_dotenv_value_in_clear_is_named_by_its_key() {
    let fx = clean_repo();
    let path = fx.repo.join("envs/api.env.enc");
    let secret = crate::common::canary("clear");
    let text: String = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("DB_PASSWORD=") {
                format!("DB_PASSWORD={secret}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&path, text).unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.contains("values in clear") && run.stdout.contains("DB_PASSWORD"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_committed_plaintext_target_is_named() {
    let fx = clean_repo();
    let secret = crate::common::canary("committed");
    crate::common::write_file(
        &fx.repo.join("app/web.env"),
        format!("TOKEN={secret}\n").as_bytes(),
    );
    git(&fx, &["add", "-f", "app/web.env"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout
            .starts_with("app/web.env: is a plaintext secret staged")
            && run.stdout.contains("git rm --cached app/web.env"),
        "{}",
        run.stdout
    );
    git(&fx, &["commit", "-qm", "oops"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout
            .starts_with("app/web.env: is a plaintext secret tracked"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_plaintext_target_not_ignored_is_named() {
    let fx = clean_repo();
    fs::write(fx.repo.join(".gitignore"), "/app/api.env\n").unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert_eq!(
        run.stdout,
        "app/web.env: is a plaintext secret inside the repo that git does not ignore; add `/app/web.env` to .gitignore\n"
    );
}

#[test]
fn a_recipient_added_to_sops_yaml_asks_for_rekey() {
    let fx = clean_repo();
    let config = fs::read_to_string(fx.repo.join(".sops.yaml")).unwrap();
    fs::write(
        fx.repo.join(".sops.yaml"),
        config.trim_end().to_string() + &format!(",{AGE3}\n"),
    )
    .unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    for file in ["envs/api.env.enc", "envs/web.env.enc"] {
        assert!(
            run.stdout.contains(&format!(
                "{file}: its recipients differ from .sops.yaml (not yet encrypted to {AGE3})"
            )) && run.stdout.contains(&format!("`envsync rekey {file}`")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn staged_checks_only_what_is_staged() {
    let fx = clean_repo();
    fs::remove_file(fx.repo.join("envs/web.env.enc")).unwrap();
    // The deletion is not staged: a pre-commit run has nothing to say.
    fx.envsync(["check", "--staged"]).expect(0);
    fx.envsync(["check"]).expect(1);
    git(&fx, &["rm", "-q", "--cached", "envs/web.env.enc"]);
    let run = fx.envsync(["check", "--staged"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/web.env.enc: is missing"),
        "{}",
        run.stdout
    );
    // A staged orphan.
    git(&fx, &["reset", "-q"]);
    fx.sops_encrypt("envs/new.env.enc", b"X=s3cr3t-new\n", "dotenv");
    git(&fx, &["add", "envs/new.env.enc"]);
    let run = fx.envsync(["check", "--staged"]);
    run.expect(1);
    assert!(
        run.stdout.contains("envs/new.env.enc: no entry"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_manifest_is_exit_2() {
    let fx = clean_repo();
    fs::write(fx.repo.join("secrets.toml"), "version = 1\n[server]\n").unwrap();
    fx.envsync(["check"]).expect(2);
}

/// The clean repo with `example = "envs/api.env.example"` on the api entry, committed.
fn repo_with_example(example: &str) -> Fixture {
    let fx = clean_repo();
    let manifest = fs::read_to_string(fx.repo.join("secrets.toml"))
        .unwrap()
        .replacen(
            "repo = \"envs/api.env.enc\"\n",
            "repo = \"envs/api.env.enc\"\nexample = \"envs/api.env.example\"\n",
            1,
        );
    assert!(manifest.contains("example = "), "{manifest}");
    fs::write(fx.repo.join("secrets.toml"), manifest).unwrap();
    fs::write(fx.repo.join("envs/api.env.example"), example).unwrap();
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "example"]);
    fx
}

#[test]
fn keys_are_compared_with_the_example_both_ways() {
    let fx = repo_with_example("# the api\nDB_PASSWORD=\nexport PORT=8080\n");
    fx.envsync(["check"]).expect(0);

    // A key added to the secret (by real sops) but not to the example: undocumented.
    crate::common::sops_set(&fx.repo_path("envs/api.env.enc"), "NEW_TOKEN", "s3cr3t-new");
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/api.env.enc: has keys its example envs/api.env.example does not document: NEW_TOKEN;"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(!run.stdout.contains("s3cr3t"), "{}", run.stdout);

    // Documented, plus a key the secret lacks: missing.
    fs::write(
        fx.repo.join("envs/api.env.example"),
        "DB_PASSWORD=\nPORT=\nNEW_TOKEN=\nSMTP_PASSWORD=changeme\n",
    )
    .unwrap();
    let run = fx.envsync(["check", "--json"]);
    run.expect(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let problems = doc["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{}", run.stdout);
    assert_eq!(problems[0]["kind"], "missing-keys");
    assert_eq!(problems[0]["file"], "envs/api.env.enc");
    let message = problems[0]["message"].as_str().unwrap();
    assert!(message.ends_with("documents: SMTP_PASSWORD"), "{message}");
    assert!(!run.stdout.contains("changeme"), "{}", run.stdout);

    // --staged picks the entry up when only its example is staged.
    git(&fx, &["add", "envs/api.env.example"]);
    let run = fx.envsync(["check", "--staged"]);
    run.expect(1);
    assert!(run.stdout.contains("SMTP_PASSWORD"), "{}", run.stdout);
}

#[test]
fn a_missing_or_broken_example_is_named() {
    let fx = repo_with_example("DB_PASSWORD=\nPORT=\n");
    fs::remove_file(fx.repo.join("envs/api.env.example")).unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout
            .starts_with("envs/api.env.enc: its example envs/api.env.example is missing;"),
        "{}",
        run.stdout
    );
    fs::write(
        fx.repo.join("envs/api.env.example"),
        "DB_PASSWORD=\njust words\n",
    )
    .unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.contains("line 2 is not a KEY=value line"),
        "{}",
        run.stdout
    );
}

/// The state folder is envsync's: its records (named like the `.enc` they record) are never
/// orphans, even when a server root inside the repo lets git track them.
#[test]
fn records_in_the_state_folder_are_not_orphans() {
    let fx = clean_repo();
    let records = fx.repo.join(".envsync/records");
    fs::create_dir_all(&records).unwrap();
    fs::write(records.join("envs%2Fapi.env.enc"), "record\n").unwrap();
    git(&fx, &["add", "-f", ".envsync"]);
    fx.envsync(["check"]).expect(0);
    // The same file outside the state folder is one.
    fs::write(fx.repo.join("envs/stray.enc"), "record\n").unwrap();
    git(&fx, &["add", "envs/stray.enc"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("envs/stray.enc: no entry"),
        "{}",
        run.stdout
    );
}

/// A file real sops encrypted with a narrower `--encrypted-regex` than `.sops.yaml` (which
/// says: encrypt every value) is sound by its own rule, yet holds values in clear that the
/// team's rule says to encrypt: those keys are named, as rule drift (not as a leak).
#[test]
fn a_narrower_rule_than_sops_yaml_is_caught() {
    let fx = clean_repo();
    let recipients = format!("{},{}", crate::common::AGE1, crate::common::AGE2);
    let enc = crate::common::sops_encrypt_dotenv(
        &fx.home,
        "DB_PASSWORD=s3cr3t-narrow\nDB_HOST=db.internal\n",
        &["--encrypted-regex", "PASSWORD", "--age", &recipients],
    );
    fs::write(fx.repo.join("envs/web.env.enc"), enc).unwrap();
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with(
            "envs/web.env.enc: was encrypted under a narrower rule than .sops.yaml's, which would encrypt: DB_HOST;"
        ),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("DB_PASSWORD"), "{}", run.stdout);

    // With the same rule in .sops.yaml, the file is as the team wants it.
    let rules = fs::read_to_string(fx.repo.join(".sops.yaml")).unwrap();
    fs::write(
        fx.repo.join(".sops.yaml"),
        rules.replace("  - age:", "  - encrypted_regex: PASSWORD\n    age:"),
    )
    .unwrap();
    fx.envsync(["check"]).expect(0);
}

/// Shamir key groups count as the layout they are: a file real sops split 2-of-3 over three
/// groups passes against the same `.sops.yaml`; a new threshold is named, and `rekey` (with
/// two of the three keys) puts it right.
#[test]
fn shamir_key_groups_are_compared_as_groups() {
    use crate::common::{key_file, AGE1, AGE2};
    let fx = clean_repo();
    let groups = |threshold: usize| {
        format!(
            "creation_rules:\n  - shamir_threshold: {threshold}\n    key_groups:\n      - age: [{AGE1}]\n      - age: [{AGE2}]\n      - age: [{AGE3}]\n"
        )
    };
    fs::write(fx.repo.join(".sops.yaml"), groups(2)).unwrap();
    // Real sops reads the same .sops.yaml (the file is in the repo).
    fs::write(fx.repo.join("envs/web.env.enc"), "TOKEN=s3cr3t-shamir\n").unwrap();
    let out = std::process::Command::new(crate::common::sops())
        .args([
            "encrypt",
            "--in-place",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .arg("envs/web.env.enc")
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = fx.envsync(["check", "envs/web.env.enc"]);
    run.expect(0);

    fs::write(fx.repo.join(".sops.yaml"), groups(3)).unwrap();
    let run = fx.envsync(["check", "envs/web.env.enc"]);
    run.expect(1);
    assert!(
        run.stdout
            .contains("(key groups: 3 with threshold 2, want 3 with threshold 3)"),
        "{}",
        run.stdout
    );
    let (k1, k2) = (key_file(1), key_file(2));
    fx.envsync([
        "rekey",
        "-i",
        k1.to_str().unwrap(),
        "-i",
        k2.to_str().unwrap(),
        "envs/web.env.enc",
    ])
    .expect(0);
    fx.envsync(["check", "envs/web.env.enc"]).expect(0);
}

/// A folder with its own envsync manifest (one a host, in one repo) maps its own files:
/// those `.enc` files are not orphans of the outer manifest; others under it still are.
#[test]
fn a_nested_manifest_owns_its_files() {
    let fx = clean_repo();
    fx.sops_encrypt("hosts/web/app.env.enc", b"X=s3cr3t-host\n", "dotenv");
    git(&fx, &["add", "hosts"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("hosts/web/app.env.enc: no entry"),
        "{}",
        run.stdout
    );
    // A secrets.toml that is not an envsync manifest (an app's config) claims nothing.
    fs::write(
        fx.repo.join("hosts/secrets.toml"),
        "[connections]\nurl = \"x\"\n",
    )
    .unwrap();
    fx.envsync(["check"]).expect(1);
    fs::write(
        fx.repo.join("hosts/secrets.toml"),
        "version = 1\n[server]\nroot = \"/srv\"\n[[file]]\nrepo = \"web/app.env.enc\"\nserver = \"app.env\"\n",
    )
    .unwrap();
    fx.envsync(["check"]).expect(0);
    // What the nested manifest does not map is still an orphan.
    fx.sops_encrypt("hosts/db/old.env.enc", b"X=s3cr3t-old\n", "dotenv");
    git(&fx, &["add", "hosts"]);
    let run = fx.envsync(["check"]);
    run.expect(1);
    assert!(
        run.stdout.starts_with("hosts/db/old.env.enc: no entry"),
        "{}",
        run.stdout
    );
}
