//! Key recovery as the contract says, on the team's eleven files: when the old key is lost
//! and a new one replaces it in `.sops.yaml`, `status` names every `.enc` as `recipients
//! differ`, `encrypt --force` re-encrypts each from its server plaintext to the new key alone
//! (real sops reads them with it, and no longer with the old one), and `status` is clean
//! again. And an `encrypt` with no recipients configured anywhere keeps a file's own.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::process::Command;

use crate::common::{self, Fixture, AGE1, AGE2, AGE3};
use crate::team::{enc, team_fixture, Server};

/// `sops -d` of `file` with `key`: the plaintext, or None when sops cannot open it.
fn sops_open(file: &std::path::Path, kind: &str, key: &std::path::Path) -> Option<Vec<u8>> {
    let out = Command::new(common::sops())
        .args(["decrypt", "--input-type", kind, "--output-type", kind])
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// Proves the three-command runbook: new key in `.sops.yaml` and the old key file gone;
/// `status` exits 1 naming all 11 files as `recipients differ`; `encrypt --force` makes all
/// 11 readable by real sops with the new key alone and not by the old one, each holding the
/// server content; `status` is then clean (exit 0).
#[test]
fn a_lost_key_is_replaced_in_three_commands() {
    let (fx, files) = team_fixture(Server::Outside);
    // The old key, as the server had it: a copy, so that it can be lost.
    let old_key = fx.home.join("old-age-key.txt");
    fs::copy(common::key_file(1), &old_key).unwrap();
    let old = old_key.display().to_string();
    fx.envsync_with(["decrypt"], &[("SOPS_AGE_KEY_FILE", old.as_str())])
        .expect(0);

    // 1. A new key replaces the old in .sops.yaml; the old key file is deleted.
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {AGE3}\n"),
    )
    .unwrap();
    fs::remove_file(&old_key).unwrap();
    let new_key = common::key_file(3);
    let new = [("SOPS_AGE_KEY_FILE", new_key.to_str().unwrap())];

    // 2. status names all eleven.
    let run = fx.envsync_with(["status"], &new);
    run.expect(1);
    for f in &files {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(&format!(" {} ", enc(&f.path))))
            .unwrap_or_else(|| panic!("status does not name {}:\n{}", f.path, run.stdout));
        assert!(
            line.contains(&format!(
                "recipients differ: envsync rekey {}",
                enc(&f.path)
            )),
            "{line}"
        );
    }
    let json = fx.envsync_with(["status", "--json"], &new);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 11);
    for e in entries {
        let differ = e["recipients_differ"].as_str().unwrap_or_default();
        assert!(
            differ.contains(AGE3) && differ.contains(AGE1) && differ.contains(AGE2),
            "{e}"
        );
    }

    // 3. encrypt --force: every file re-encrypted from the server to the new key alone.
    let run = fx.envsync_with(["encrypt", "--force"], &new);
    run.expect(0);
    for f in &files {
        let path = fx.repo_path(&enc(&f.path));
        let plain = sops_open(&path, f.kind, &new_key)
            .unwrap_or_else(|| panic!("sops cannot open {} with the new key", f.path));
        assert_eq!(
            plain,
            fs::read(fx.server_path(&f.path)).unwrap(),
            "{}",
            f.path
        );
        assert!(
            sops_open(&path, f.kind, &common::key_file(1)).is_none(),
            "{} still opens with the old key",
            f.path
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(AGE3) && !text.contains(AGE1), "{}", f.path);
    }

    // 4. status is clean.
    let run = fx.envsync_with(["status"], &new);
    run.expect(0);
}

/// A sops-made `.enc` with two recipients and no `.sops.yaml` anywhere: `encrypt` of a
/// server edit keeps both recipients (both keys open the result), as `sops edit` does,
/// instead of failing with "no recipients".
#[test]
fn encrypt_without_configured_recipients_keeps_the_files_own() {
    let fx = Fixture::new();
    fx.sops_encrypt("app/.env.enc", b"A=1\nB=2\n", "dotenv");
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    fx.envsync(["decrypt"]).expect(0);
    fx.write_server("app/.env", b"A=1\nB=3\n");
    fx.envsync(["encrypt"]).expect(0);
    let path = fx.repo_path("app/.env.enc");
    for n in [1, 2] {
        assert_eq!(
            sops_open(&path, "dotenv", &common::key_file(n)).as_deref(),
            Some(&b"A=1\nB=3\n"[..]),
            "key {n}"
        );
    }
    fx.envsync(["status"]).expect(0);
}

/// A teammate's rotation this host cannot open (sops re-encrypted to AGE2 alone, the host
/// has AGE1) is not taken for a lost key: `status` stays an error naming the missing key,
/// never a hint to `encrypt --force` over the rotation.
#[test]
fn a_pulled_rotation_no_key_here_opens_is_not_a_lost_key() {
    let fx = Fixture::new();
    fx.sops_encrypt("app/.env.enc", b"A=1\nB=2\n", "dotenv");
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    fx.envsync(["decrypt"]).expect(0);
    let enc = common::sops_encrypt_dotenv(&fx.home, "A=1\nB=ROTATED\n", &["--age", AGE2]);
    fs::write(fx.repo_path("app/.env.enc"), enc).unwrap();
    let run = fx.envsync(["status"]);
    run.expect(2);
    assert!(run.stderr.contains("no identity matches"), "{}", run.stderr);
    assert!(!run.stdout.contains("encrypt --force"), "{}", run.stdout);
}

/// The runbook also holds for a Shamir file whose groups no key here opens: `status` names
/// it `recipients differ`, `encrypt --force` re-encrypts it for the new key. (A plain age
/// file names no recipients, so its lost key stays an error naming the keys tried.)
#[test]
fn a_lost_key_on_a_shamir_file() {
    let fx = Fixture::new();
    let old_key = fx.home.join("old.txt");
    let keys: String = [1, 2]
        .iter()
        .map(|n| fs::read_to_string(common::key_file(*n)).unwrap())
        .collect();
    fs::write(&old_key, keys).unwrap();
    fs::set_permissions(
        &old_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{AGE1}]\n      - age: [{AGE2}]\n"),
    )
    .unwrap();
    let manifest = |identity: &std::path::Path| {
        fs::write(
            fx.repo.join("secrets.toml"),
            format!(
                "version = 1\n[server]\nroot = \"{}\"\nidentity = \"{}\"\n[[file]]\nrepo = \"c.enc.yaml\"\nserver = \"c.yaml\"\n",
                fx.server.display(),
                identity.display()
            ),
        )
        .unwrap();
    };
    manifest(&old_key);
    fx.write_server("c.yaml", b"db:\n    password: s3cret\n");
    fx.envsync(["encrypt"]).expect(0);
    // The old keys are lost; AGE3 replaces them.
    fs::remove_file(&old_key).unwrap();
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {AGE3}\n"),
    )
    .unwrap();
    manifest(&common::key_file(3));
    let run = fx.envsync(["status"]);
    run.expect(1);
    assert_eq!(
        run.stdout.matches("recipients differ").count(),
        1,
        "{}",
        run.stdout
    );
    fx.envsync(["encrypt", "--force"]).expect(0);
    // The mode drift of the hand-made server file is fixed by a decrypt.
    fx.envsync(["decrypt"]).expect(0);
    fx.envsync(["status"]).expect(0);
    let yaml = sops_open(&fx.repo_path("c.enc.yaml"), "yaml", &common::key_file(3)).unwrap();
    assert_eq!(yaml, b"db:\n    password: s3cret\n");
}
