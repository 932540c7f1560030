//! No secret ever leaves envsync except into the server file it belongs in.
//!
//! One long walk through success and failure paths with canary values in dotenv and binary
//! files gathers every byte envsync prints; none of it may hold a canary in any encoding, nor
//! an age secret key. Plaintext never lands in the repo, temp files never stay behind, and a
//! server file is written 0600 whatever umask the caller had.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{Fixture, Run};
use base64::Engine;

const ENV_ENC: &str = "app/.env.enc";
const ENV_SERVER: &str = "app/.env";
const HTPASSWD_ENC: &str = "web/.htpasswd.enc";
const HTPASSWD_SERVER: &str = "web/.htpasswd";
const BLOB_ENC: &str = "data/blob.bin.enc";
const BLOB_SERVER: &str = "data/blob.bin";

/// Every printable form a value could leak in: raw, hex (both cases), and base64 (standard,
/// URL-safe) at each of the three byte alignments it could have inside a longer encoded
/// stream. The base64 forms drop the chars that depend on neighbouring bytes.
fn leak_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut forms = vec![secret.to_string(), hex.to_uppercase(), hex];
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for shift in 0..3 {
            let encoded = engine.encode(&bytes[shift..]);
            // The last group may mix in the byte that follows the secret.
            let keep = encoded.len().saturating_sub(3);
            forms.push(encoded[..keep].to_string());
        }
    }
    forms
}

/// Where, if anywhere, `haystack` holds one of `secrets` in any form.
fn find_leak(haystack: &[u8], secrets: &[String]) -> Option<String> {
    let text = String::from_utf8_lossy(haystack);
    for secret in secrets {
        for form in leak_forms(secret) {
            if text.contains(form.as_str()) {
                return Some(format!("`{secret}` as `{form}`"));
            }
        }
    }
    None
}

/// Every output gathered so far, with a header naming each run.
#[derive(Default)]
struct Transcript {
    text: String,
    runs: usize,
}

impl Transcript {
    fn add(&mut self, label: &str, run: &Run) {
        self.runs += 1;
        self.text.push_str(&format!(
            "=== {label} (exit {})\n--- stdout\n{}\n--- stderr\n{}\n",
            run.code, run.stdout, run.stderr
        ));
    }

    /// Runs envsync, checks its exit code, and records its output.
    #[track_caller]
    fn run(&mut self, fx: &Fixture, args: &[&str], code: i32) -> Run {
        self.run_with(fx, args, &[], code)
    }

    #[track_caller]
    fn run_with(&mut self, fx: &Fixture, args: &[&str], env: &[(&str, &str)], code: i32) -> Run {
        let run = fx.envsync_with(args, env);
        self.add(&format!("envsync {}", args.join(" ")), &run);
        assert_eq!(
            run.code, code,
            "envsync {args:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        run
    }
}

/// Every file under `root` (not folders), as absolute paths.
fn files_under(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[track_caller]
fn assert_no_temp_files(fx: &Fixture, after: &str) {
    for root in [&fx.repo, &fx.server] {
        let temps: Vec<_> = files_under(root)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".envsync.") && n.ends_with(".tmp"))
            })
            .collect();
        assert!(temps.is_empty(), "temp files left after {after}: {temps:?}");
    }
}

/// No file under the repo holds a canary in any form: plaintext never lands in git.
#[track_caller]
fn assert_repo_clean(fx: &Fixture, canaries: &[String], after: &str) {
    for path in files_under(&fx.repo) {
        let bytes = fs::read(&path).expect("read a repo file");
        if let Some(found) = find_leak(&bytes, canaries) {
            panic!("after {after}: {} holds {found}", path.display());
        }
    }
    for enc in [ENV_ENC, HTPASSWD_ENC, BLOB_ENC] {
        let bytes = fs::read(fx.repo_path(enc)).expect("read an .enc");
        let text = String::from_utf8_lossy(&bytes);
        for canary in canaries {
            assert!(!text.contains(canary.as_str()), "{enc} holds a raw canary");
        }
    }
}

/// Files under the server root other than the targets (sync records, stray copies) hold
/// ciphertext only.
#[track_caller]
fn assert_server_extras_clean(fx: &Fixture, canaries: &[String], after: &str) {
    let targets = [ENV_SERVER, HTPASSWD_SERVER, BLOB_SERVER].map(|t| fx.server_path(t));
    for path in files_under(&fx.server) {
        if targets.contains(&path) {
            continue;
        }
        let bytes = fs::read(&path).expect("read a server-side file");
        if let Some(found) = find_leak(&bytes, canaries) {
            panic!(
                "after {after}: {} (not a target) holds {found}",
                path.display()
            );
        }
    }
}

fn replace_in(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    fs::write(path, text.replace(from, to)).expect("write");
}

/// Flips the first base64 char of the `data:` field of the `sops_mac=` line.
fn flip_mac(text: &str) -> String {
    let start = text
        .find("\nsops_mac=ENC[AES256_GCM,data:")
        .expect("a sops_mac line")
        + "\nsops_mac=ENC[AES256_GCM,data:".len();
    let new = if text.as_bytes()[start] == b'A' {
        "B"
    } else {
        "A"
    };
    let mut out = text.to_string();
    out.replace_range(start..start + 1, new);
    out
}

#[test]
fn no_secret_in_any_output() {
    let fx = Fixture::new();
    let token = common::canary("token");
    let db = common::canary("db");
    let comment = common::canary("comment");
    let multi = common::canary("multiline");
    let htpasswd = common::canary("htpasswd");
    let blob = common::canary("blob");
    let env_plain = format!(
        "# rotated by ops {comment}\nA=1\nTOKEN={token}\nDB_PASSWORD={db}\nMULTI=first\\n{multi}\n"
    );
    let htpasswd_plain = format!("admin:{htpasswd}\nother:$apr1$x$y\n");
    let mut blob_plain = vec![0xff, 0xfe, 0x00];
    blob_plain.extend_from_slice(blob.as_bytes());
    blob_plain.extend_from_slice(&[0x00, 0x80, b'\n']);
    fx.sops_encrypt(ENV_ENC, env_plain.as_bytes(), "dotenv");
    fx.sops_encrypt(HTPASSWD_ENC, htpasswd_plain.as_bytes(), "binary");
    fx.sops_encrypt(BLOB_ENC, &blob_plain, "binary");
    fx.manifest(&[
        Fixture::entry(ENV_ENC, ENV_SERVER),
        Fixture::entry(HTPASSWD_ENC, HTPASSWD_SERVER),
        format!("{}mode = \"0640\"\n", Fixture::entry(BLOB_ENC, BLOB_SERVER)),
    ]);
    let mut canaries = vec![
        token.clone(),
        db.clone(),
        comment.clone(),
        multi.clone(),
        htpasswd.clone(),
        blob.clone(),
    ];
    let mut out = Transcript::default();

    // Success: decrypt, then every quiet, verbose and JSON view of an in-sync tree.
    out.run(&fx, &["decrypt"], 0);
    assert_no_temp_files(&fx, "decrypt");
    assert_eq!(
        fs::read(fx.server_path(ENV_SERVER)).expect("read"),
        fx.sops_decrypt(ENV_ENC, "dotenv")
    );
    assert_eq!(
        fs::read(fx.server_path(BLOB_SERVER)).expect("read"),
        blob_plain
    );
    for args in [
        &["decrypt", "-v"][..],
        &["decrypt", "--json"],
        &["decrypt", "-n", "-v"],
        &["diff"],
        &["diff", "-v"],
        &["diff", "--json"],
        &["diff", "--json", "-v"],
        &["encrypt", "-v"],
        &["encrypt", "--json"],
        &["encrypt", "-n", "-v"],
    ] {
        out.run(&fx, args, 0);
    }
    assert_no_temp_files(&fx, "in-sync runs");
    assert_repo_clean(&fx, &canaries, "in-sync runs");

    // Drift where each canary became another canary: diff shows keys and lengths only.
    let token2 = common::canary("token-rotated");
    let htpasswd2 = common::canary("htpasswd-rotated");
    let blob2 = common::canary("blob-rotated");
    let comment2 = common::canary("comment-rotated");
    let added = common::canary("added-key");
    canaries.extend([
        token2.clone(),
        htpasswd2.clone(),
        blob2.clone(),
        comment2.clone(),
        added.clone(),
    ]);
    replace_in(&fx.server_path(ENV_SERVER), &token, &token2);
    replace_in(&fx.server_path(ENV_SERVER), &comment, &comment2);
    replace_in(
        &fx.server_path(ENV_SERVER),
        &format!("DB_PASSWORD={db}\n"),
        &format!("NEW_KEY={added}\n"),
    );
    replace_in(&fx.server_path(HTPASSWD_SERVER), &htpasswd, &htpasswd2);
    let blob_new: Vec<u8> = {
        let mut b = vec![0xff, 0xfe, 0x00];
        b.extend_from_slice(blob2.as_bytes());
        b.extend_from_slice(&[0x00, 0x80, b'\n']);
        b
    };
    fs::write(fx.server_path(BLOB_SERVER), &blob_new).expect("write");
    let text = out.run(&fx, &["diff"], 1);
    for key in ["TOKEN", "NEW_KEY", "DB_PASSWORD"] {
        assert!(
            text.stdout.contains(key),
            "diff does not name {key}:\n{}",
            text.stdout
        );
    }
    out.run(&fx, &["diff", "-v"], 1);
    let json = out.run(&fx, &["diff", "--json"], 1);
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("diff --json prints one JSON document");
    assert_eq!(parsed["drift"], serde_json::Value::Bool(true), "{parsed}");
    out.run(&fx, &["diff", "--json", "-v"], 1);
    out.run(&fx, &["diff", HTPASSWD_SERVER], 1);
    out.run(&fx, &["diff", BLOB_ENC], 1);

    // Encrypt the rotation; real sops reads the result; the tree is in sync again.
    out.run(&fx, &["encrypt", "-v"], 0);
    assert_no_temp_files(&fx, "encrypt");
    let reread = fx.sops_decrypt(ENV_ENC, "dotenv");
    assert!(String::from_utf8_lossy(&reread).contains(token2.as_str()));
    assert_eq!(fx.sops_decrypt(BLOB_ENC, "binary"), blob_new);
    out.run(&fx, &["diff", "-v"], 0);
    out.run(&fx, &["encrypt", "--json", "-v"], 0);
    out.run(&fx, &["decrypt", "-v"], 0);
    assert_no_temp_files(&fx, "encrypt and decrypt");
    assert_repo_clean(&fx, &canaries, "encrypt");

    // A server dotenv whose bad line (no `=`) is a canary.
    let bad_line = common::canary("bad-line");
    canaries.push(bad_line.clone());
    let server_env = fx.server_path(ENV_SERVER);
    let good_env = fs::read(&server_env).expect("read");
    let mut broken = good_env.clone();
    broken.extend_from_slice(format!("{bad_line}\n").as_bytes());
    fs::write(&server_env, &broken).expect("write");
    for args in [
        &["encrypt"][..],
        &["encrypt", "-v"],
        &["encrypt", "--json"],
        &["diff"],
        &["diff", "--json", "-v"],
    ] {
        out.run(&fx, args, 2);
    }
    fs::write(&server_env, &good_env).expect("restore");

    // A corrupted MAC.
    let enc_path = fx.repo_path(ENV_ENC);
    let good_enc = fs::read_to_string(&enc_path).expect("read");
    fs::write(&enc_path, flip_mac(&good_enc)).expect("tamper");
    for args in [
        &["decrypt"][..],
        &["decrypt", "-v"],
        &["decrypt", "--json"],
        &["diff"],
        &["diff", "--json", "-v"],
        &["encrypt", "-v"],
    ] {
        out.run(&fx, args, 2);
    }
    fs::write(&enc_path, &good_enc).expect("restore");

    // The wrong key, given every way a key can be given.
    let manifest = fx.repo_path("secrets.toml");
    let good_manifest = fs::read_to_string(&manifest).expect("read");
    let key1 = common::key_file(1).display().to_string();
    let key3 = common::key_file(3).display().to_string();
    replace_in(&manifest, &key1, &key3);
    for args in [
        &["decrypt"][..],
        &["decrypt", "-v"],
        &["diff"],
        &["diff", "--json", "-v"],
    ] {
        out.run(&fx, args, 2);
    }
    let no_identity: String = good_manifest
        .lines()
        .filter(|l| !l.starts_with("identity ="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&manifest, &no_identity).expect("write");
    let key3_text = fs::read_to_string(common::key_file(3)).expect("read key");
    out.run_with(&fx, &["decrypt", "-v"], &[("SOPS_AGE_KEY", &key3_text)], 2);
    out.run_with(&fx, &["diff", "--json"], &[("SOPS_AGE_KEY_FILE", &key3)], 2);
    fs::write(&manifest, &good_manifest).expect("restore");
    out.run(&fx, &["diff"], 0);

    // Everything gathered: no canary in any form, no secret key, no panic.
    assert!(out.runs >= 30, "only {} runs", out.runs);
    if let Some(found) = find_leak(out.text.as_bytes(), &canaries) {
        panic!("the output holds {found}:\n{}", out.text);
    }
    assert!(
        !out.text.to_ascii_lowercase().contains("canary"),
        "a canary fragment leaked:\n{}",
        out.text
    );
    assert!(
        !out.text.contains("AGE-SECRET-KEY"),
        "a secret key leaked:\n{}",
        out.text
    );
    assert!(!out.text.contains("panicked"), "{}", out.text);
    assert_no_temp_files(&fx, "the whole walk");
    assert_repo_clean(&fx, &canaries, "the whole walk");
    assert_server_extras_clean(&fx, &canaries, "the whole walk");
}

/// A key file (or SOPS_AGE_KEY) holding garbage is reported without quoting its content, and
/// without printing anything that looks like an age secret key.
#[test]
fn garbage_identity_is_not_quoted() {
    let fx = Fixture::new();
    let token = common::canary("garbage-key-token");
    fx.sops_encrypt(ENV_ENC, format!("TOKEN={token}\n").as_bytes(), "dotenv");
    fx.manifest(&[Fixture::entry(ENV_ENC, ENV_SERVER)]);
    // The junk is the only identity source: no server.identity, no default key file.
    let manifest = fx.repo_path("secrets.toml");
    let text = fs::read_to_string(&manifest).expect("read");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("identity ="))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&manifest, without).expect("write");
    let junk = common::canary("junk-key");
    let junk_key = fx.home.join("junk-key.txt");
    fs::write(&junk_key, format!("AGE-SECRET-KEY-1{junk}\n")).expect("write");
    let junk_arg = junk_key.display().to_string();
    let canaries = [token, junk.clone()];
    let mut out = Transcript::default();
    // Each run is checked by the harness as it ends; the transcript is checked again whole.
    let env_key = format!("{junk}\n");
    let runs = [
        out.run(&fx, &["decrypt", "-v", "--identity", &junk_arg], 2),
        out.run_with(&fx, &["diff"], &[("SOPS_AGE_KEY", &env_key)], 2),
        out.run_with(
            &fx,
            &["diff", "--json"],
            &[("SOPS_AGE_KEY_FILE", &junk_arg)],
            2,
        ),
    ];
    for run in &runs {
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    }
    if let Some(found) = find_leak(out.text.as_bytes(), &canaries) {
        panic!("the output holds {found}:\n{}", out.text);
    }
    assert!(!out.text.contains("AGE-SECRET-KEY"), "{}", out.text);
    assert!(!fx.server_path(ENV_SERVER).exists());
}

/// `sh -c 'umask 000; exec envsync …'` in the fixture repo, with the harness's environment.
fn envsync_under_umask_000(fx: &Fixture, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(common::envsync_bin())
        .args(args)
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "full")
        .stdin(Stdio::null())
        .output()
        .expect("spawn sh");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    common::assert_no_leak(&run.stdout, "stdout under umask 000");
    common::assert_no_leak(&run.stderr, "stderr under umask 000");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

#[test]
fn decrypt_under_umask_000_writes_private_files() {
    let fx = Fixture::new();
    let token = common::canary("umask-token");
    let hash = common::canary("umask-hash");
    fx.sops_encrypt(ENV_ENC, format!("TOKEN={token}\n").as_bytes(), "dotenv");
    fx.sops_encrypt(HTPASSWD_ENC, format!("admin:{hash}\n").as_bytes(), "binary");
    fx.manifest(&[
        Fixture::entry(ENV_ENC, "deep/er/app/.env"),
        format!(
            "{}mode = \"0640\"\n",
            Fixture::entry(HTPASSWD_ENC, HTPASSWD_SERVER)
        ),
    ]);
    // The check is only meaningful if the shell really hands envsync a zero umask.
    let probe = Command::new("sh")
        .args(["-c", "umask 000; umask"])
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "0000");

    let run = envsync_under_umask_000(&fx, &["decrypt"]);
    run.expect(0);
    let env = fx.server_path("deep/er/app/.env");
    assert_eq!(
        fs::read(&env).expect("read"),
        fx.sops_decrypt(ENV_ENC, "dotenv")
    );
    assert_eq!(common::mode_of(&env), 0o600, "{}", env.display());
    assert_eq!(
        common::mode_of(&fx.server_path(HTPASSWD_SERVER)),
        0o640,
        "an explicit mode is exact, not widened by the umask"
    );
    // Folders envsync created are not writable by others (no swapping the file out).
    for dir in ["deep", "deep/er", "deep/er/app", "web"] {
        let mode = fs::metadata(fx.server_path(dir))
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o022, 0, "{dir} is mode {:o}", mode & 0o7777);
    }
    assert_no_temp_files(&fx, "decrypt under umask 000");

    // A pulled rotation (a newer `.enc`) rewrites the file under umask 000: still exact.
    let rotated = common::canary("umask-token-rotated");
    fx.sops_encrypt(ENV_ENC, format!("TOKEN={rotated}\n").as_bytes(), "dotenv");
    let run = envsync_under_umask_000(&fx, &["decrypt"]);
    run.expect(0);
    assert_eq!(
        fs::read(&env).expect("read"),
        fx.sops_decrypt(ENV_ENC, "dotenv")
    );
    assert_eq!(common::mode_of(&env), 0o600);
    assert_eq!(common::mode_of(&fx.server_path(HTPASSWD_SERVER)), 0o640);
    assert_no_temp_files(&fx, "update under umask 000");
}
