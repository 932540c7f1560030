//! `as = "files"`: a dotenv `.enc` (made by real sops) kept on the server as a folder of one
//! file per key (Docker secrets, `*_FILE` variables). Exact bytes per key, names, modes,
//! groups read by a real other user (`runuser -u daemon`), keys removed with `sops unset`,
//! files envsync does not own, minimal encrypt from the folder, masked diff.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{self, Fixture};

const ENC: &str = "app/.env.enc";
const SERVER: &str = "app/secrets";

/// The plaintext of the app `.enc` and the bytes each key's file must hold. The dotenv text
/// escapes the newline as sops does (`\n`); the file holds a real LF and no newline is added.
struct Plain {
    text: String,
    files: BTreeMap<&'static str, Vec<u8>>,
}

fn plain() -> Plain {
    let password = format!("{}=with=equals", common::canary("db"));
    let token = common::canary("token");
    let cert = common::canary("cert");
    let text = format!(
        "# database settings, kept in the .enc only\nDB_PASSWORD={password}\n\
         MULTI=first {cert}\\nsecond line\nUNICODE=héllo wörld ✓ 日本\nEMPTY=\nAPI_TOKEN={token}\n"
    );
    let files = BTreeMap::from([
        ("DB_PASSWORD", password.into_bytes()),
        ("MULTI", format!("first {cert}\nsecond line").into_bytes()),
        ("UNICODE", "héllo wörld ✓ 日本".as_bytes().to_vec()),
        ("EMPTY", Vec::new()),
        ("API_TOKEN", token.into_bytes()),
    ]);
    Plain { text, files }
}

fn files_entry(repo: &str, server: &str, extra: &str) -> String {
    format!("{}as = \"files\"\n{extra}", Fixture::entry(repo, server))
}

/// A fixture whose app `.enc` (real sops) is decrypted once into `app/secrets/`.
fn synced() -> (Fixture, Plain) {
    let fx = Fixture::new();
    let p = plain();
    fx.sops_encrypt(ENC, p.text.as_bytes(), "dotenv");
    fx.manifest(&[files_entry(ENC, SERVER, "")]);
    fx.envsync(["decrypt"]).expect(0);
    (fx, p)
}

fn folder(fx: &Fixture) -> std::path::PathBuf {
    fx.server_path(SERVER)
}

/// Inode and mtime of every file under the server root: a rewrite with the same bytes shows.
fn inodes(fx: &Fixture) -> Vec<(std::path::PathBuf, u64, i64, i64)> {
    walkdir::WalkDir::new(&fx.server)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && !e.path().ends_with(".envsync/lock"))
        .map(|e| {
            let m = e.metadata().unwrap();
            (e.path().to_path_buf(), m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

/// A decrypt with nothing to do writes nothing: same bytes, modes, inodes and times.
fn assert_second_decrypt_is_a_no_op(fx: &Fixture) {
    let (before, times) = (common::snapshot(&fx.server), inodes(fx));
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        common::snapshot(&fx.server),
        before,
        "a no-op decrypt wrote"
    );
    assert_eq!(inodes(fx), times, "a no-op decrypt replaced a file");
}

#[test]
fn a_dotenv_enc_becomes_one_file_per_key_with_exact_bytes() {
    let fx = Fixture::new();
    let p = plain();
    fx.sops_encrypt(ENC, p.text.as_bytes(), "dotenv");
    fx.sops_encrypt("worker/.env.enc", p.text.as_bytes(), "dotenv");
    // What real sops holds: the comment, the escaped newline, `=` inside a value.
    assert_eq!(fx.sops_decrypt(ENC, "dotenv"), p.text.as_bytes());
    fx.manifest(&[
        files_entry(ENC, SERVER, "names = \"lower\"\nmode = \"0600\"\n"),
        files_entry("worker/.env.enc", "worker/secrets", "mode = \"0640\"\n"),
    ]);
    fx.envsync(["decrypt"]).expect(0);

    let lower: Vec<String> = p.files.keys().map(|k| k.to_lowercase()).collect();
    let mut sorted = lower.clone();
    sorted.sort();
    assert_eq!(
        common::names_in(&folder(&fx)),
        sorted,
        "one file a key, no comment file"
    );
    for ((key, bytes), name) in p.files.iter().zip(&lower) {
        let path = folder(&fx).join(name);
        assert_eq!(&fs::read(&path).unwrap(), bytes, "{key} (names = lower)");
        assert_eq!(common::mode_of(&path), 0o600, "{key}");
    }
    let worker = fx.server_path("worker/secrets");
    let keys: Vec<&str> = p.files.keys().copied().collect();
    assert_eq!(common::names_in(&worker), keys, "names as-is");
    for (key, bytes) in &p.files {
        assert_eq!(&fs::read(worker.join(key)).unwrap(), bytes, "worker {key}");
        assert_eq!(common::mode_of(&worker.join(key)), 0o640, "worker {key}");
    }
    assert_eq!(common::mode_of(&worker), 0o755, "default dir_mode");
    status(&fx, 0, &["in-sync"]);
    assert_second_decrypt_is_a_no_op(&fx);
}

/// `runuser -u USER -- cat PATH`: (success, stdout).
fn cat_as(user: &str, path: &Path) -> (bool, Vec<u8>) {
    let out = Command::new(common::tool("runuser"))
        .args(["-u", user, "--", "cat"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), out.stdout)
}

#[test]
fn group_daemon_reads_its_files_on_a_fresh_server() {
    let fx = Fixture::new();
    // A temp dir is 0700: let other users walk to the server root.
    for dir in [fx.dir.path(), &fx.server] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let p = plain();
    fx.sops_encrypt(ENC, p.text.as_bytes(), "dotenv");
    let group = "group = \"daemon\"\nmode = \"0640\"\n";
    fx.manifest(&[
        files_entry(
            ENC,
            "svc/deep/secrets",
            &format!("{group}dir_mode = \"0750\"\n"),
        ),
        files_entry("web/.env.enc", "web/secrets", group),
    ]);
    fx.sops_encrypt("web/.env.enc", p.text.as_bytes(), "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    let daemon = common::daemon_gid();
    let created: [(&[&str], u32); 2] = [
        (&["svc", "svc/deep", "svc/deep/secrets"], 0o750),
        (&["web", "web/secrets"], 0o755),
    ];
    for (dirs, dir_mode) in created {
        for d in dirs {
            let meta = fs::metadata(fx.server_path(d)).unwrap();
            assert_eq!(meta.mode() & 0o7777, dir_mode, "folder {d}");
            assert_eq!(
                (meta.uid(), meta.gid()),
                (0, daemon),
                "folder {d}: root:daemon"
            );
        }
        let secrets = fx.server_path(dirs[dirs.len() - 1]);
        for (key, bytes) in &p.files {
            let file = secrets.join(key);
            let meta = fs::metadata(&file).unwrap();
            assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o640, daemon), "{key}");
            assert_eq!(
                cat_as("daemon", &file),
                (true, bytes.clone()),
                "daemon reads {key}"
            );
            let (ok, out) = cat_as("nobody", &file);
            assert!(!ok && out.is_empty(), "nobody read {}", file.display());
        }
    }
}

/// `envsync status` exits `code` and its text holds every one of `words`.
fn status(fx: &Fixture, code: i32, words: &[&str]) {
    let run = fx.envsync(["status"]);
    run.expect(code);
    for word in words {
        assert!(run.stdout.contains(word), "no {word}:\n{}", run.stdout);
    }
}

/// `envsync status --json` exits 0 with this `state` and these `unmanaged` files.
fn status_json(fx: &Fixture, state: &str, unmanaged: &[&str]) {
    let run = fx.envsync(["status", "--json"]);
    run.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["entries"][0]["state"], state, "{doc}");
    assert_eq!(doc["entries"][0]["unmanaged"], serde_json::json!(unmanaged));
}

#[test]
fn a_key_removed_with_sops_unset_loses_its_file_and_other_files_survive() {
    let (fx, p) = synced();
    let dir = folder(&fx);
    common::write_file(&dir.join("README"), b"not a secret\n");
    common::write_file(&dir.join("extra.txt"), b"kept\n");
    // Files no key maps to are listed, and are not drift.
    status(&fx, 0, &["; unmanaged: README, extra.txt"]);
    status_json(&fx, "in-sync", &["README", "extra.txt"]);
    fx.envsync(["diff"]).expect(0);
    // Editing one of them is still no drift, and encrypt does not take it into the .enc.
    common::write_file(&dir.join("extra.txt"), b"kept, edited\n");
    status(&fx, 0, &[]);
    let enc = fs::read(fx.repo_path(ENC)).unwrap();
    fx.envsync(["encrypt"]).expect(0);
    assert_eq!(
        fs::read(fx.repo_path(ENC)).unwrap(),
        enc,
        "encrypt touched the .enc"
    );

    common::sops_unset(&fx.repo_path(ENC), "API_TOKEN");
    status(&fx, 1, &["repo-changed"]);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        common::names_in(&dir),
        [
            "DB_PASSWORD",
            "EMPTY",
            "MULTI",
            "README",
            "UNICODE",
            "extra.txt"
        ],
        "API_TOKEN's file is gone, the others stay"
    );
    for (key, bytes) in p.files.iter().filter(|(k, _)| **k != "API_TOKEN") {
        assert_eq!(&fs::read(dir.join(key)).unwrap(), bytes, "{key}");
    }
    assert_eq!(fs::read(dir.join("README")).unwrap(), b"not a secret\n");
    assert_eq!(fs::read(dir.join("extra.txt")).unwrap(), b"kept, edited\n");
    status(&fx, 0, &["in-sync", "; unmanaged: README, extra.txt"]);
    status_json(&fx, "in-sync", &["README", "extra.txt"]);
    assert_second_decrypt_is_a_no_op(&fx);
}

/// The key of a dotenv line: the text before its first `=`.
fn key_of(line: &str) -> &str {
    line.split('=').next().unwrap()
}

#[test]
fn editing_one_file_then_encrypt_changes_exactly_that_keys_line() {
    let (fx, p) = synced();
    let dir = folder(&fx);
    let before = fs::read_to_string(fx.repo_path(ENC)).unwrap();
    let rotated = common::canary("rotated-password");
    fs::write(dir.join("DB_PASSWORD"), &rotated).unwrap();
    common::write_file(&dir.join("unrelated"), b"NOT_A_KEY=1\n");

    let diff = fx.envsync(["diff"]);
    diff.expect(1);
    let old_len = p.files["DB_PASSWORD"].len();
    let expected = format!("DB_PASSWORD: changed (len {old_len} → {})", rotated.len());
    assert!(diff.stdout.contains(&expected), "{}", diff.stdout);
    for key in ["MULTI", "UNICODE", "EMPTY", "API_TOKEN", "unrelated"] {
        assert!(
            !diff.stdout.contains(key),
            "diff names {key}:\n{}",
            diff.stdout
        );
    }
    status(&fx, 1, &["server-changed"]);

    // sops_lastmodified has a one-second resolution: make sure it moves.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fx.envsync(["encrypt"]).expect(0);
    let after = fs::read_to_string(fx.repo_path(ENC)).unwrap();
    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    assert_eq!(old.len(), new.len(), "lines added or removed:\n{after}");
    let changed: Vec<&str> = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| {
            assert_eq!(key_of(a), key_of(b), "a line moved:\n{a}\n{b}");
            key_of(a)
        })
        .collect();
    assert_eq!(
        changed,
        ["DB_PASSWORD", "sops_lastmodified", "sops_mac"],
        "{after}"
    );
    assert!(
        !after.contains("unrelated") && !after.contains("NOT_A_KEY"),
        "{after}"
    );

    let expected = p.text.replace(
        std::str::from_utf8(&p.files["DB_PASSWORD"]).unwrap(),
        &rotated,
    );
    assert_eq!(
        fx.sops_decrypt(ENC, "dotenv"),
        expected.as_bytes(),
        "sops -d reads it"
    );
    fx.envsync(["status"]).expect(0);
    assert_second_decrypt_is_a_no_op(&fx);
}

#[test]
fn a_deleted_key_file_is_dropped_from_the_enc_by_encrypt() {
    let (fx, p) = synced();
    fs::remove_file(folder(&fx).join("UNICODE")).unwrap();
    let diff = fx.envsync(["diff"]);
    diff.expect(1);
    assert!(diff.stdout.contains("UNICODE"), "{}", diff.stdout);
    fx.envsync(["encrypt"]).expect(0);
    let expected = p.text.replace("UNICODE=héllo wörld ✓ 日本\n", "");
    assert_eq!(fx.sops_decrypt(ENC, "dotenv"), expected.as_bytes());
    fx.envsync(["status"]).expect(0);
}

/// All files of a run are one batch, removals included: a key file that cannot be removed
/// (`chattr +i`) undoes the run's other key file and the other entry's file.
#[test]
fn a_removal_that_fails_undoes_the_whole_run() {
    let fx = Fixture::new();
    fx.sops_encrypt(ENC, plain().text.as_bytes(), "dotenv");
    fx.sops_encrypt("web/.env.enc", b"W=old\n", "dotenv");
    let web = Fixture::entry("web/.env.enc", "web/.env");
    fx.manifest(&[files_entry(ENC, SERVER, ""), web]);
    fx.envsync(["decrypt"]).expect(0);
    common::sops_unset(&fx.repo_path(ENC), "API_TOKEN");
    common::sops_set(&fx.repo_path(ENC), "UNICODE", "new unicode");
    common::sops_set(&fx.repo_path("web/.env.enc"), "W", "new");
    let before = common::snapshot(&fx.server);
    let token = folder(&fx).join("API_TOKEN");
    let chattr = |flag: &str| {
        let status = Command::new(common::tool("chattr"))
            .arg(flag)
            .arg(&token)
            .status();
        assert!(status.unwrap().success(), "chattr {flag}");
    };
    chattr("+i");
    let run = fx.envsync(["decrypt"]);
    chattr("-i");
    run.expect(2);
    assert!(run.stderr.contains("API_TOKEN"), "{}", run.stderr);
    assert_eq!(
        common::snapshot(&fx.server),
        before,
        "a part of the run stayed"
    );
    fx.envsync(["decrypt"]).expect(0);
    assert!(!token.exists());
    assert_eq!(
        fs::read(folder(&fx).join("UNICODE")).unwrap(),
        b"new unicode"
    );
    assert_eq!(fs::read(fx.server_path("web/.env")).unwrap(), b"W=new\n");
}

#[test]
fn bad_files_entries_are_refused_and_write_nothing() {
    // (the entry's extra line, with `as = "files"`, what the message must name)
    let cases = [
        ("plain = true", true, "plain = true"),
        ("write = \"in-place\"", true, "in-place"),
        ("as = \"dir\"", false, "`as`"),
        ("names = \"lower\"", false, "`names`"),
        ("names = \"upper\"", true, "`names`"),
        ("releases = 0", true, "`releases`"),
        ("releases = 2", false, "`releases`"),
        ("verify = [\"true\"]", true, "`verify`"),
    ];
    let entry = |(extra, files, named): (&str, bool, &'static str)| {
        let base = Fixture::entry(ENC, SERVER) + if files { "as = \"files\"\n" } else { "" };
        (extra.to_string(), format!("{base}{extra}\n"), named)
    };
    let binary = (
        "binary .enc".into(),
        files_entry("app/blob.enc", SERVER, ""),
        "blob.enc",
    );
    let cases = cases.into_iter().map(entry).chain([binary]);
    for (what, entry, named) in cases {
        let fx = Fixture::new();
        fx.sops_encrypt(ENC, plain().text.as_bytes(), "dotenv");
        fx.sops_encrypt("app/blob.enc", b"A=1\n", "binary");
        fx.manifest(&[entry]);
        let before = common::snapshot(&fx.server);
        let run = fx.envsync(["decrypt"]);
        assert_eq!(run.code, 2, "{what}: {run:?}");
        assert!(run.stderr.contains(named), "{what}: {}", run.stderr);
        assert_eq!(
            common::snapshot(&fx.server),
            before,
            "{what}: something was written"
        );
    }
}
