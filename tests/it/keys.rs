//! Key management against the real tools: recipients from `.sops.yaml` (age, ssh-ed25519,
//! ssh-rsa, Shamir key groups), identities from every source sops reads (flags, manifest,
//! environment, default files, passphrase-protected files), `rekey` and `rekey --rotate`
//! checked byte for byte and read back by real `sops`, `keygen`, and the messages of every
//! refusal. Every key here is a throwaway made for the test or a shipped test vector.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{canary, key_file, vectors, Fixture, AGE1, AGE2, AGE3};

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

/// Writes `secrets.toml` with `identity` (or none) as `server.identity`; returns its text.
fn manifest(fx: &Fixture, identity: Option<&Path>, files: &[String]) -> String {
    let mut text = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n",
        fx.server.display()
    );
    if let Some(identity) = identity {
        text.push_str(&format!("identity = \"{}\"\n", identity.display()));
    }
    for f in files {
        text.push_str("\n[[file]]\n");
        text.push_str(f);
        if !f.ends_with('\n') {
            text.push('\n');
        }
    }
    fs::write(fx.repo.join("secrets.toml"), &text).unwrap();
    text
}

/// Writes the repo's `.sops.yaml`.
fn sops_yaml(fx: &Fixture, text: &str) {
    fs::write(fx.repo.join(".sops.yaml"), text).unwrap();
}

/// A `.sops.yaml` with one rule listing `recipients` as a YAML list.
fn sops_yaml_list(recipients: &[&str]) -> String {
    let mut text = String::from("creation_rules:\n  - age:\n");
    for r in recipients {
        text.push_str(&format!("      - {r}\n"));
    }
    text
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Removes the server root (plaintexts and sync records): the next decrypt starts fresh.
fn clear_server(fx: &Fixture) {
    if fx.server.exists() {
        fs::remove_dir_all(&fx.server).unwrap();
    }
}

/// Writes a private (0600, or `mode`) key file.
fn write_key(path: &Path, contents: &[u8], mode: u32) {
    if path.exists() {
        fs::remove_file(path).unwrap();
    }
    common::write_file(path, contents);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The `AGE-SECRET-KEY-1…` line of a vector key file.
fn secret_line(n: u8) -> String {
    fs::read_to_string(key_file(n))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string()
}

/// An empty folder to use as HOME for a tool, so no key of the caller is reachable.
fn empty_home(fx: &Fixture, name: &str) -> PathBuf {
    let home = fx.dir.path().join(name);
    fs::create_dir_all(&home).unwrap();
    home
}

/// Real `sops decrypt` with only the given environment for keys (HOME is an empty folder,
/// every other SOPS_AGE_* variable removed).
fn sops_decrypt_env(path: &Path, kind: &str, home: &Path, env: &[(&str, &OsStr)]) -> Output {
    let mut cmd = Command::new(common::sops());
    cmd.args(["decrypt", "--input-type", kind, "--output-type", kind])
        .arg(path)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env_remove("XDG_CONFIG_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// `sops_decrypt_env` that must succeed and print `want`.
#[track_caller]
fn assert_sops_opens(
    path: &Path,
    kind: &str,
    home: &Path,
    env: &[(&str, &OsStr)],
    want: &[u8],
    what: &str,
) {
    let out = sops_decrypt_env(path, kind, home, env);
    assert!(
        out.status.success(),
        "{what}: sops decrypt {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == want,
        "{what}: sops decrypt {} printed {:?}, want {:?}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(want)
    );
}

/// `sops_decrypt_env` that must fail.
#[track_caller]
fn assert_sops_refuses(path: &Path, kind: &str, home: &Path, env: &[(&str, &OsStr)], what: &str) {
    let out = sops_decrypt_env(path, kind, home, env);
    assert!(
        !out.status.success(),
        "{what}: sops decrypted {} but should not have:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A tool's output, checked for success.
#[track_caller]
fn run_tool(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `age -d -i key` of `input`.
fn age_decrypt(input: &[u8], key: &Path) -> Vec<u8> {
    let mut child = Command::new(common::tool("age"))
        .arg("-d")
        .arg("-i")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "age -d -i {} failed: {}",
        key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh SSH key pair made by `ssh-keygen` (`extra` are extra flags): (private key path,
/// public key line).
fn ssh_keygen(dir: &Path, name: &str, extra: &[&str]) -> (PathBuf, String) {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    run_tool(
        Command::new(common::tool("ssh-keygen"))
            .args(["-q", "-N", "", "-C", &format!("{name}@envsync-test")])
            .args(extra)
            .arg("-f")
            .arg(&path),
        "ssh-keygen",
    );
    let public = fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    (path, public)
}

/// The value of the dotenv line `key=…` of a file.
fn dotenv_field<'a>(file: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    file.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// The armored `enc` of age key `n` of a dotenv SOPS file.
fn dotenv_enc(file: &str, n: usize) -> String {
    dotenv_field(file, &format!("sops_age__list_{n}__map_enc"))
        .unwrap_or_else(|| panic!("no age key {n} in:\n{file}"))
        .replace("\\n", "\n")
}

/// Every `sops_age__list_N__map_recipient` of a dotenv SOPS file.
fn dotenv_recipients(file: &str) -> Vec<String> {
    file.lines()
        .filter(|l| l.starts_with("sops_age__list_"))
        .filter_map(|l| l.split_once("__map_recipient="))
        .map(|(_, r)| r.to_string())
        .collect()
}

/// `(key, data, iv)` of every `ENC[…]` value of a dotenv SOPS file (values and the MAC).
fn enc_values(file: &str) -> Vec<(String, String, String)> {
    file.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once('=')?;
            let body = value.strip_prefix("ENC[AES256_GCM,")?.strip_suffix(']')?;
            let field = |name: &str| {
                body.split(',')
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap()
                    .to_string()
            };
            Some((key.to_string(), field("data:"), field("iv:")))
        })
        .collect()
}

/// Bytes, inode and mtime of a file, to prove a run did not rewrite it.
fn fingerprint(path: &Path) -> (Vec<u8>, u64, i64, i64) {
    let meta = fs::metadata(path).unwrap();
    (
        fs::read(path).unwrap(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// The result of an envsync run outside a fixture.
struct Plain {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs envsync in `cwd` with a clean environment (HOME = `home`).
fn envsync_in(cwd: &Path, home: &Path, args: &[&str]) -> Plain {
    let out = Command::new(common::envsync_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Plain {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "envsync {args:?} panicked:\n{}",
        run.stderr
    );
    run
}

#[track_caller]
fn expect_plain(run: &Plain, code: i32, what: &str) {
    assert_eq!(
        run.code, code,
        "{what}: expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    );
}

/// A dotenv plaintext of unmistakable values (each long enough that two encryptions never
/// share a ciphertext by chance).
fn dotenv_plain(label: &str) -> String {
    format!(
        "DB_PASSWORD={}\nAPI_TOKEN={}\nPUBLIC_unencrypted=visible-{label}\n",
        canary(&format!("{label}-db")),
        canary(&format!("{label}-api"))
    )
}

/// A binary plaintext with NUL and invalid UTF-8 around a canary.
fn binary_plain(label: &str) -> Vec<u8> {
    let mut bytes = b"bin\0ary\xff\xfe ".to_vec();
    bytes.extend_from_slice(canary(&format!("{label}-bin")).as_bytes());
    bytes.push(b'\n');
    bytes
}

/// Runs `envsync decrypt` with the given extra arguments into a fresh server root and checks
/// that every `(server path, plaintext)` was written.
#[track_caller]
fn assert_envsync_opens(fx: &Fixture, args: &[&str], env: &[(&str, &str)], want: &[(&str, &[u8])]) {
    clear_server(fx);
    let mut all = vec!["decrypt"];
    all.extend_from_slice(args);
    fx.envsync_with(&all, env).expect(0);
    for (server, plain) in want {
        assert!(
            fs::read(fx.server_path(server)).unwrap() == *plain,
            "envsync {all:?} wrote the wrong plaintext to {server}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. SSH recipients
// ---------------------------------------------------------------------------------------------

/// Proves: an age and an ssh-ed25519 recipient from `.sops.yaml` can each open a dotenv and a
/// binary file envsync wrote: real sops with either key alone, envsync with either as
/// `--identity`, and envsync with the ssh key found at `~/.ssh/id_ed25519`.
#[test]
fn age_and_ssh_ed25519_recipients_each_open_the_files() {
    let fx = Fixture::new();
    let ssh_dir = fx.dir.path().join("ssh");
    let (ed_key, ed_pub) = ssh_keygen(&ssh_dir, "id_ed25519", &["-t", "ed25519"]);
    assert!(ed_pub.starts_with("ssh-ed25519 AAAA") && ed_pub.ends_with("@envsync-test"));
    sops_yaml(&fx, &sops_yaml_list(&[AGE1, &ed_pub]));
    manifest(
        &fx,
        None,
        &[
            Fixture::entry("app.env.enc", "app/.env"),
            Fixture::entry("blob.enc", "blob.bin"),
        ],
    );
    let dotenv = dotenv_plain("ssh-ed");
    let binary = binary_plain("ssh-ed");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.write_server("blob.bin", &binary);
    fx.envsync(["encrypt"]).expect(0);

    let enc = fs::read_to_string(fx.repo_path("app.env.enc")).unwrap();
    assert_eq!(
        dotenv_recipients(&enc),
        [AGE1.to_string(), ed_pub.clone()],
        "the ssh recipient is stored as the full authorized_keys line"
    );

    let home = empty_home(&fx, "sops-home");
    let missing = fx.dir.path().join("no-such-key.txt");
    let age_key = key_file(1);
    let files: [(&str, &str, &[u8]); 2] = [
        ("app.env.enc", "dotenv", dotenv.as_bytes()),
        ("blob.enc", "binary", &binary),
    ];
    for (rel, kind, want) in files {
        let path = fx.repo_path(rel);
        assert_sops_opens(
            &path,
            kind,
            &home,
            &[("SOPS_AGE_KEY_FILE", age_key.as_os_str())],
            want,
            "age key alone",
        );
        assert_sops_opens(
            &path,
            kind,
            &home,
            &[("SOPS_AGE_SSH_PRIVATE_KEY_FILE", ed_key.as_os_str())],
            want,
            "ssh key alone (SOPS_AGE_KEY_FILE unset)",
        );
        assert_sops_opens(
            &path,
            kind,
            &home,
            &[
                ("SOPS_AGE_KEY_FILE", missing.as_os_str()),
                ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", ed_key.as_os_str()),
            ],
            want,
            "ssh key alone (SOPS_AGE_KEY_FILE missing)",
        );
        // The control: a key that is not a recipient opens nothing, so nothing else was used.
        assert_sops_refuses(
            &path,
            kind,
            &home,
            &[("SOPS_AGE_KEY_FILE", key_file(3).as_os_str())],
            "a non-recipient key",
        );
    }

    let want: [(&str, &[u8]); 2] = [("app/.env", dotenv.as_bytes()), ("blob.bin", &binary)];
    assert_envsync_opens(&fx, &["--identity", s(&age_key)], &[], &want);
    assert_envsync_opens(&fx, &["--identity", s(&ed_key)], &[], &want);
    assert_envsync_opens(
        &fx,
        &[],
        &[("SOPS_AGE_SSH_PRIVATE_KEY_FILE", s(&ed_key))],
        &want,
    );
    // sops also tries ~/.ssh/id_ed25519; so does envsync.
    let home_ssh = fx.home.join(".ssh/id_ed25519");
    write_key(&home_ssh, &fs::read(&ed_key).unwrap(), 0o600);
    assert_envsync_opens(&fx, &[], &[], &want);
    fs::remove_file(&home_ssh).unwrap();
    clear_server(&fx);
    fx.envsync(["decrypt"]).expect(2);
}

/// Proves: ssh-rsa recipients work for keys in PEM (`-m PEM`) and in the default OpenSSH
/// format: real sops opens the file with either private key, and so does envsync.
#[test]
fn ssh_rsa_recipients_pem_and_openssh() {
    let fx = Fixture::new();
    let ssh_dir = fx.dir.path().join("ssh");
    let (pem_key, pem_pub) = ssh_keygen(
        &ssh_dir,
        "rsa_pem",
        &["-t", "rsa", "-b", "2048", "-m", "PEM"],
    );
    let (ossh_key, ossh_pub) = ssh_keygen(&ssh_dir, "rsa_openssh", &["-t", "rsa", "-b", "2048"]);
    assert!(fs::read_to_string(&pem_key)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(fs::read_to_string(&ossh_key)
        .unwrap()
        .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    assert!(pem_pub.starts_with("ssh-rsa AAAA") && ossh_pub.starts_with("ssh-rsa AAAA"));
    // The comma form, as `sops --age` takes it.
    sops_yaml(
        &fx,
        &format!("creation_rules:\n  - age: \"{pem_pub},{ossh_pub}\"\n"),
    );
    manifest(&fx, None, &[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("ssh-rsa");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    let enc = fs::read_to_string(fx.repo_path("app.env.enc")).unwrap();
    assert_eq!(dotenv_recipients(&enc), [pem_pub, ossh_pub]);

    let home = empty_home(&fx, "sops-home");
    for key in [&pem_key, &ossh_key] {
        assert_sops_opens(
            &fx.repo_path("app.env.enc"),
            "dotenv",
            &home,
            &[("SOPS_AGE_SSH_PRIVATE_KEY_FILE", key.as_os_str())],
            dotenv.as_bytes(),
            &format!("sops with {}", key.display()),
        );
        assert_envsync_opens(
            &fx,
            &["--identity", s(key)],
            &[],
            &[("app/.env", dotenv.as_bytes())],
        );
    }
    assert_sops_refuses(
        &fx.repo_path("app.env.enc"),
        "dotenv",
        &home,
        &[("SOPS_AGE_KEY_FILE", key_file(1).as_os_str())],
        "a non-recipient key",
    );
}

// ---------------------------------------------------------------------------------------------
// 2. rekey
// ---------------------------------------------------------------------------------------------

/// Proves: `rekey` after a recipient is added wraps the data key for it (real sops opens the
/// file with the new key alone) and keeps every value, the MAC, `lastmodified` and the rest
/// byte for byte; a second `rekey` writes nothing; `rekey -n` after a removal lists
/// `- recipient` and writes nothing; `rekey` then drops it (its key no longer opens the file);
/// `status` stays in sync throughout.
#[test]
fn rekey_adds_and_removes_recipients_without_touching_values() {
    let fx = Fixture::new();
    sops_yaml(&fx, &format!("creation_rules:\n  - age: {AGE1}\n"));
    manifest(
        &fx,
        Some(&key_file(1)),
        &[
            Fixture::entry("app.env.enc", "app/.env"),
            Fixture::entry("blob.enc", "blob.bin"),
        ],
    );
    let dotenv = dotenv_plain("rekey");
    let binary = binary_plain("rekey");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.write_server("blob.bin", &binary);
    fx.envsync(["encrypt"]).expect(0);
    fx.envsync(["decrypt"]).expect(0);
    fx.envsync(["status"]).expect(0);

    let app = fx.repo_path("app.env.enc");
    let blob = fx.repo_path("blob.enc");
    let home = empty_home(&fx, "sops-home");
    let k = |n: u8| key_file(n).into_os_string();
    assert_sops_refuses(
        &app,
        "dotenv",
        &home,
        &[("SOPS_AGE_KEY_FILE", &k(2))],
        "AGE2 before rekey",
    );

    let before_env = fs::read_to_string(&app).unwrap();
    let before_bin: serde_json::Value = serde_json::from_slice(&fs::read(&blob).unwrap()).unwrap();
    assert_eq!(dotenv_recipients(&before_env), [AGE1]);

    // Add AGE2 (YAML list form).
    sops_yaml(&fx, &sops_yaml_list(&[AGE1, AGE2]));
    let run = fx.envsync(["rekey"]);
    run.expect(0);
    assert_eq!(
        run.stdout.matches(&format!("+ {AGE2}")).count()
            + run.stderr.matches(&format!("+ {AGE2}")).count(),
        2,
        "rekey does not report `+ {AGE2}` for each file:\n{}{}",
        run.stdout,
        run.stderr
    );
    let after_env = fs::read_to_string(&app).unwrap();
    assert_eq!(dotenv_recipients(&after_env), [AGE1, AGE2]);
    let not_age = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("sops_age"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        not_age(&after_env),
        not_age(&before_env),
        "rekey changed a line other than the sops_age ones"
    );
    for field in [
        "sops_mac",
        "sops_lastmodified",
        "sops_version",
        "sops_unencrypted_suffix",
    ] {
        assert!(
            dotenv_field(&after_env, field).is_some(),
            "{field} missing after rekey"
        );
    }
    // The data key is the same: AGE1's enc still unwraps to what AGE2's does.
    assert_eq!(
        age_decrypt(dotenv_enc(&before_env, 0).as_bytes(), &key_file(1)),
        age_decrypt(dotenv_enc(&after_env, 1).as_bytes(), &key_file(2)),
        "rekey changed the data key"
    );
    let after_bin: serde_json::Value = serde_json::from_slice(&fs::read(&blob).unwrap()).unwrap();
    for (what, pointer) in [
        ("data", "/data"),
        ("lastmodified", "/sops/lastmodified"),
        ("mac", "/sops/mac"),
        ("version", "/sops/version"),
    ] {
        assert!(
            before_bin.pointer(pointer).is_some(),
            "binary file has no {what}"
        );
        assert_eq!(
            before_bin.pointer(pointer),
            after_bin.pointer(pointer),
            "rekey changed the binary file's {what}"
        );
    }
    let bin_recipients: Vec<&str> = after_bin["sops"]["age"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(bin_recipients, [AGE1, AGE2]);
    for key in [1, 2] {
        assert_sops_opens(
            &app,
            "dotenv",
            &home,
            &[("SOPS_AGE_KEY_FILE", &k(key))],
            dotenv.as_bytes(),
            &format!("age{key} after rekey"),
        );
        assert_sops_opens(
            &blob,
            "binary",
            &home,
            &[("SOPS_AGE_KEY_FILE", &k(key))],
            &binary,
            &format!("age{key} after rekey"),
        );
    }
    fx.envsync(["status"]).expect(0);

    // Nothing to do: nothing written, not even the same bytes again.
    let (app_print, blob_print) = (fingerprint(&app), fingerprint(&blob));
    fx.envsync(["rekey"]).expect(0);
    assert!(
        fingerprint(&app) == app_print,
        "a second rekey rewrote app.env.enc"
    );
    assert!(
        fingerprint(&blob) == blob_print,
        "a second rekey rewrote blob.enc"
    );

    // Remove AGE1: the dry run lists it and writes nothing.
    sops_yaml(&fx, &sops_yaml_list(&[AGE2]));
    let repo_before = common::snapshot(&fx.repo);
    let server_before = common::snapshot(&fx.server);
    let run = fx.envsync(["rekey", "-n"]);
    run.expect(0);
    for rel in ["app.env.enc", "blob.enc"] {
        assert!(
            run.stdout.contains(rel),
            "rekey -n does not name {rel}:\n{}",
            run.stdout
        );
    }
    assert_eq!(
        run.stdout.matches(&format!("- {AGE1}")).count(),
        2,
        "rekey -n does not list `- {AGE1}` for each file:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains(&format!("+ {AGE2}")) && !run.stdout.contains(&format!("- {AGE2}")),
        "rekey -n lists the kept recipient:\n{}",
        run.stdout
    );
    assert!(
        common::snapshot(&fx.repo) == repo_before,
        "rekey -n changed the repo"
    );
    assert!(
        common::snapshot(&fx.server) == server_before,
        "rekey -n changed the server"
    );
    assert!(fingerprint(&app) == app_print && fingerprint(&blob) == blob_print);

    fx.envsync(["rekey"]).expect(0);
    let removed_env = fs::read_to_string(&app).unwrap();
    assert_eq!(dotenv_recipients(&removed_env), [AGE2]);
    assert_eq!(not_age(&removed_env), not_age(&before_env));
    for (path, kind, want) in [
        (&app, "dotenv", dotenv.as_bytes()),
        (&blob, "binary", &binary[..]),
    ] {
        assert_sops_refuses(
            path,
            kind,
            &home,
            &[("SOPS_AGE_KEY_FILE", &k(1))],
            "the removed key",
        );
        assert_sops_opens(
            path,
            kind,
            &home,
            &[("SOPS_AGE_KEY_FILE", &k(2))],
            want,
            "the kept key",
        );
    }
    fx.envsync(["status", "--identity", s(&key_file(2))])
        .expect(0);
}

// ---------------------------------------------------------------------------------------------
// 3. rekey --rotate
// ---------------------------------------------------------------------------------------------

/// Proves: `rekey --rotate` makes a new data key and re-encrypts every value with a new IV,
/// and real sops still reads the same plaintext.
#[test]
fn rotate_makes_a_new_data_key_and_new_ciphertexts() {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("rotate");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    fx.envsync(["decrypt"]).expect(0);
    fx.envsync(["status"]).expect(0);
    let app = fx.repo_path("app.env.enc");
    let before = fs::read_to_string(&app).unwrap();
    fx.envsync(["rekey", "--rotate"]).expect(0);
    let after = fs::read_to_string(&app).unwrap();

    let home = empty_home(&fx, "sops-home");
    for key in [1, 2] {
        assert_sops_opens(
            &app,
            "dotenv",
            &home,
            &[("SOPS_AGE_KEY_FILE", key_file(key).as_os_str())],
            dotenv.as_bytes(),
            &format!("age{key} after rotate"),
        );
    }
    let (old, new) = (enc_values(&before), enc_values(&after));
    let keys = |v: &[(String, String, String)]| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&old), ["DB_PASSWORD", "API_TOKEN", "sops_mac"]);
    assert_eq!(keys(&old), keys(&new));
    for ((key, data0, iv0), (_, data1, iv1)) in old.iter().zip(&new) {
        assert_ne!(data0, data1, "rotate kept the ciphertext of {key}");
        assert_ne!(iv0, iv1, "rotate kept the IV of {key}");
    }
    assert_eq!(
        dotenv_field(&before, "PUBLIC_unencrypted"),
        dotenv_field(&after, "PUBLIC_unencrypted")
    );
    let (k0, k1) = (
        age_decrypt(dotenv_enc(&before, 0).as_bytes(), &key_file(1)),
        age_decrypt(dotenv_enc(&after, 0).as_bytes(), &key_file(1)),
    );
    assert_eq!((k0.len(), k1.len()), (32, 32));
    assert_ne!(k0, k1, "rotate kept the data key");
    assert_eq!(
        age_decrypt(dotenv_enc(&after, 1).as_bytes(), &key_file(2)),
        k1,
        "the recipients hold different data keys"
    );
    fx.envsync(["status"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// 4. Shamir
// ---------------------------------------------------------------------------------------------

/// Proves: the 2-of-3 sops vector opens with any two of its keys as `--identity` and not with
/// one (exit 2, nothing written).
#[test]
fn shamir_vector_opens_with_two_keys_not_one() {
    let name = "dotenv_shamir_2of3.enc.env";
    let want = fs::read(vectors().join("expected").join(format!("{name}.decrypted"))).unwrap();
    let fx = Fixture::new();
    common::write_file(
        &fx.repo_path(name),
        &fs::read(vectors().join(name)).unwrap(),
    );
    manifest(&fx, None, &[Fixture::entry(name, "shamir.env")]);
    for (a, b) in [(1, 2), (1, 3), (2, 3), (3, 1)] {
        assert_envsync_opens(
            &fx,
            &["--identity", s(&key_file(a)), "--identity", s(&key_file(b))],
            &[],
            &[("shamir.env", &want)],
        );
    }
    for a in 1..=3 {
        clear_server(&fx);
        let run = fx.envsync(["decrypt", "--identity", s(&key_file(a))]);
        run.expect(2);
        assert!(run.stderr.contains(name), "{}", run.stderr);
        assert!(
            !fx.server_path("shamir.env").exists(),
            "key {a} alone wrote a file"
        );
    }
}

/// Proves: envsync writes Shamir files from `.sops.yaml` `key_groups` + `shamir_threshold`
/// that real sops opens with any two of the three keys and not with one.
#[test]
fn shamir_key_groups_are_written() {
    let fx = Fixture::new();
    sops_yaml(
        &fx,
        &format!(
            "creation_rules:\n\
             \x20 - shamir_threshold: 2\n\
             \x20   key_groups:\n\
             \x20     - age:\n\
             \x20         - {AGE1}\n\
             \x20     - age: [{AGE2}]\n\
             \x20     - age: {AGE3}\n"
        ),
    );
    manifest(&fx, None, &[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("shamir");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    let app = fx.repo_path("app.env.enc");
    let text = fs::read_to_string(&app).unwrap();
    assert_eq!(
        dotenv_field(&text, "sops_shamir_threshold"),
        Some("2"),
        "{text}"
    );
    for g in 0..3 {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("sops_key_groups__list_{g}__"))),
            "no key group {g}:\n{text}"
        );
    }
    assert!(
        !text.lines().any(|l| l.starts_with("sops_age__")),
        "a Shamir file also lists top-level age keys:\n{text}"
    );

    let home = empty_home(&fx, "sops-home");
    let secret = |n: u8| fs::read_to_string(key_file(n)).unwrap();
    for (a, b) in [(1, 2), (1, 3), (2, 3)] {
        let pair = fx.dir.path().join(format!("pair{a}{b}.txt"));
        write_key(
            &pair,
            format!("{}{}", secret(a), secret(b)).as_bytes(),
            0o600,
        );
        assert_sops_opens(
            &app,
            "dotenv",
            &home,
            &[("SOPS_AGE_KEY_FILE", pair.as_os_str())],
            dotenv.as_bytes(),
            &format!("keys {a}+{b}"),
        );
        assert_envsync_opens(
            &fx,
            &["--identity", s(&key_file(a)), "--identity", s(&key_file(b))],
            &[],
            &[("app/.env", dotenv.as_bytes())],
        );
    }
    for a in 1..=3 {
        assert_sops_refuses(
            &app,
            "dotenv",
            &home,
            &[("SOPS_AGE_KEY_FILE", key_file(a).as_os_str())],
            &format!("key {a} alone"),
        );
    }
    // The same groups and threshold: rekey has nothing to do.
    let print = fingerprint(&app);
    fx.envsync([
        "rekey",
        "--identity",
        s(&key_file(1)),
        "--identity",
        s(&key_file(3)),
    ])
    .expect(0);
    assert!(
        fingerprint(&app) == print,
        "rekey rewrote an up-to-date Shamir file"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. No matching identity
// ---------------------------------------------------------------------------------------------

/// Proves: a key that is not a recipient gives exit 2 with the file's recipients and the
/// identity tried, never a secret key, and writes nothing (decrypt and rekey alike).
#[test]
fn wrong_key_names_recipients_and_identities_tried() {
    let fx = Fixture::new();
    manifest(&fx, None, &[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("wrong-key");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    clear_server(&fx);
    let wrong = key_file(3);
    for args in [
        &["decrypt"][..],
        &["rekey"],
        &["rekey", "--rotate"],
        &["diff"],
    ] {
        let repo_before = common::snapshot(&fx.repo);
        let mut all = args.to_vec();
        all.extend(["--identity", s(&wrong)]);
        let run = fx.envsync(&all);
        run.expect(2);
        for needle in [AGE1, AGE2, s(&wrong), "app.env.enc"] {
            assert!(
                run.stderr.contains(needle),
                "envsync {all:?}: stderr does not name {needle}:\n{}",
                run.stderr
            );
        }
        assert!(!run.stderr.contains("AGE-SECRET-KEY") && !run.stdout.contains("AGE-SECRET-KEY"));
        assert!(
            !fx.server_path("app/.env").exists(),
            "envsync {all:?} wrote a plaintext"
        );
        assert!(
            common::snapshot(&fx.repo) == repo_before,
            "envsync {all:?} changed the repo"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Identity file permissions
// ---------------------------------------------------------------------------------------------

/// Proves: an identity file readable by others or writable by its group is refused (exit 2,
/// path and mode named, nothing written) whether it comes from `--identity`,
/// `server.identity` or `SOPS_AGE_KEY_FILE`; 0640, 0600 and 0400 are accepted.
#[test]
fn identity_file_permissions() {
    let fx = Fixture::new();
    let entry = Fixture::entry("app.env.enc", "app/.env");
    manifest(&fx, None, std::slice::from_ref(&entry));
    let dotenv = dotenv_plain("perms");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    let key = fx.dir.path().join("keys/identity.txt");
    let key_text = fs::read(key_file(1)).unwrap();

    for via in ["--identity", "server.identity", "SOPS_AGE_KEY_FILE"] {
        manifest(
            &fx,
            (via == "server.identity").then_some(key.as_path()),
            std::slice::from_ref(&entry),
        );
        let args: Vec<&str> = if via == "--identity" {
            vec!["decrypt", "--identity", s(&key)]
        } else {
            vec!["decrypt"]
        };
        let env: Vec<(&str, &str)> = if via == "SOPS_AGE_KEY_FILE" {
            vec![("SOPS_AGE_KEY_FILE", s(&key))]
        } else {
            Vec::new()
        };
        for mode in [0o644, 0o604, 0o660, 0o606, 0o620] {
            write_key(&key, &key_text, mode);
            clear_server(&fx);
            let run = fx.envsync_with(&args, &env);
            run.expect(2);
            let shown = format!("{mode:04o}");
            assert!(
                run.stderr.contains(s(&key)) && run.stderr.contains(&shown),
                "{via} {shown}: the message does not name the path and mode:\n{}",
                run.stderr
            );
            assert!(
                !fx.server_path("app/.env").exists(),
                "{via} {shown}: a refused key still decrypted"
            );
        }
        for mode in [0o640, 0o600, 0o400] {
            write_key(&key, &key_text, mode);
            let what = format!("{via} {mode:04o}");
            clear_server(&fx);
            let run = fx.envsync_with(&args, &env);
            assert_eq!(run.code, 0, "{what} refused:\n{}", run.stderr);
            assert_eq!(
                fs::read(fx.server_path("app/.env")).unwrap(),
                dotenv.as_bytes(),
                "{what}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Identity file formats and sources
// ---------------------------------------------------------------------------------------------

/// Proves: identity files with several keys, comments, blank lines and CRLF work; so do
/// `SOPS_AGE_KEY`, `~/.config/sops/age/keys.txt` and `$XDG_CONFIG_HOME/sops/age/keys.txt`.
#[test]
fn identity_formats_and_default_locations() {
    let fx = Fixture::new();
    manifest(&fx, None, &[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("formats");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    let want: [(&str, &[u8]); 1] = [("app/.env", dotenv.as_bytes())];

    // No identity anywhere: refused, so every success below came from the source under test.
    clear_server(&fx);
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(!fx.server_path("app/.env").exists());

    // Several keys (the first matches no recipient), comments, blank lines, CRLF.
    let messy = format!(
        "# created: 2024-01-01T00:00:00Z\r\n# public key: {AGE3}\r\n{}\r\n\r\n\r\n\
         # the team key\r\n# public key: {AGE2}\r\n{}\r\n",
        secret_line(3),
        secret_line(2)
    );
    let messy_path = fx.dir.path().join("keys/messy.txt");
    write_key(&messy_path, messy.as_bytes(), 0o600);
    assert_envsync_opens(&fx, &["--identity", s(&messy_path)], &[], &want);
    assert_envsync_opens(&fx, &[], &[("SOPS_AGE_KEY_FILE", s(&messy_path))], &want);
    // A file whose only key matches nothing is not enough (the control).
    let only3 = fx.dir.path().join("keys/only3.txt");
    write_key(&only3, format!("{}\r\n", secret_line(3)).as_bytes(), 0o600);
    clear_server(&fx);
    fx.envsync(["decrypt", "--identity", s(&only3)]).expect(2);

    // SOPS_AGE_KEY: the key text itself (several keys and a comment).
    let env_text = format!("# comment\n{}\n{}\n", secret_line(3), secret_line(1));
    assert_envsync_opens(&fx, &[], &[("SOPS_AGE_KEY", &env_text)], &want);
    assert_envsync_opens(&fx, &[], &[("SOPS_AGE_KEY", &secret_line(2))], &want);

    // ~/.config/sops/age/keys.txt (HOME is the fixture's home).
    let default = fx.home.join(".config/sops/age/keys.txt");
    write_key(&default, fs::read(key_file(2)).unwrap().as_slice(), 0o600);
    assert_envsync_opens(&fx, &[], &[], &want);
    fs::remove_file(&default).unwrap();

    // $XDG_CONFIG_HOME/sops/age/keys.txt.
    let xdg = fx.dir.path().join("xdg");
    write_key(
        &xdg.join("sops/age/keys.txt"),
        fs::read(key_file(1)).unwrap().as_slice(),
        0o600,
    );
    assert_envsync_opens(&fx, &[], &[("XDG_CONFIG_HOME", s(&xdg))], &want);
    // Without XDG_CONFIG_HOME that file is not read.
    clear_server(&fx);
    fx.envsync(["decrypt"]).expect(2);
}

// ---------------------------------------------------------------------------------------------
// 8. Passphrase-protected identity
// ---------------------------------------------------------------------------------------------

const PASSPHRASE: &str = "correct-horse-envsync-7Qp";

/// Quotes a path for `sh -c`.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Runs `command` under `script` (a pseudo-terminal) with `input` typed on it.
fn in_terminal(command: &str, input: &str, cwd: &Path, home: &Path) -> Output {
    let mut child = Command::new(common::tool("script"))
        .args(["-qec", command, "/dev/null"])
        .current_dir(cwd)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Proves: a passphrase-protected (`age -p -a`) identity file is refused with exit 2 and a
/// clear message when there is no terminal, and opens with the passphrase typed on a
/// terminal. (Unlocking runs scrypt at age's work factor: about 20 s in a debug build, so
/// only one unlock is made.)
#[test]
fn passphrase_protected_identity() {
    let fx = Fixture::new();
    manifest(&fx, None, &[Fixture::entry("app.env.enc", "app/.env")]);
    let dotenv = dotenv_plain("passphrase");
    fx.write_server("app/.env", dotenv.as_bytes());
    fx.envsync(["encrypt"]).expect(0);

    // Made by real `age -p -a`, which reads the passphrase (twice) from its terminal.
    let locked = fx.dir.path().join("keys/key.age");
    fs::create_dir_all(locked.parent().unwrap()).unwrap();
    let command = format!(
        "{} -p -a -o {} {}",
        sh_quote(s(&common::tool("age"))),
        sh_quote(s(&locked)),
        sh_quote(s(&key_file(1)))
    );
    let out = in_terminal(
        &command,
        &format!("{PASSPHRASE}\n{PASSPHRASE}\n"),
        fx.dir.path(),
        &fx.home,
    );
    assert!(
        out.status.success() && locked.exists(),
        "age -p under script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o600)).unwrap();
    let armored = fs::read_to_string(&locked).unwrap();
    assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!armored.contains("AGE-SECRET-KEY"));

    // (a) No terminal: setsid detaches from any controlling terminal; stdin is null.
    clear_server(&fx);
    let out = Command::new(common::tool("setsid"))
        .arg("-w")
        .arg(common::envsync_bin())
        .args(["decrypt", "--identity"])
        .arg(&locked)
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "no terminal: {stderr}");
    assert!(
        stderr.contains(s(&locked))
            && stderr.contains("passphrase-protected")
            && stderr.contains("no terminal"),
        "no terminal: unclear message:\n{stderr}"
    );
    common::assert_no_leak(&stderr, "no-terminal stderr");
    assert!(!fx.server_path("app/.env").exists());

    // (b) A terminal with the right passphrase typed.
    let command = format!(
        "{} decrypt --identity {}",
        sh_quote(s(&common::envsync_bin())),
        sh_quote(s(&locked))
    );
    let out = in_terminal(&command, &format!("{PASSPHRASE}\n"), &fx.repo, &fx.home);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "with a terminal:\n{transcript}");
    assert!(
        transcript.contains("Passphrase for"),
        "no prompt:\n{transcript}"
    );
    assert!(!transcript.contains("AGE-SECRET-KEY") && !transcript.contains("CANARY-"));
    assert_eq!(
        fs::read(fx.server_path("app/.env")).unwrap(),
        dotenv.as_bytes()
    );
}

// ---------------------------------------------------------------------------------------------
// 9. keygen
// ---------------------------------------------------------------------------------------------

/// `age-keygen -y FILE`.
fn age_keygen_y(path: &Path) -> String {
    let out = run_tool(
        Command::new(common::tool("age-keygen")).arg("-y").arg(path),
        "age-keygen -y",
    );
    String::from_utf8(out).unwrap().trim().to_string()
}

/// Proves: `keygen -o` writes one identity 0600 (whatever the umask) and prints its
/// recipient, never overwrites; `keygen` alone prints the identity and `Public key: …` on
/// stderr; it works outside any repo.
#[test]
fn keygen_writes_private_keys_and_never_overwrites() {
    let dir = tempfile::Builder::new()
        .prefix("envsync-keygen")
        .tempdir()
        .unwrap();
    let cwd = dir.path().join("work");
    let home = dir.path().join("home");
    fs::create_dir_all(&cwd).unwrap();
    fs::create_dir_all(&home).unwrap();
    // No manifest here nor above: keygen does not need one.
    assert!(cwd.ancestors().all(|d| !d.join("secrets.toml").exists()));

    let run = envsync_in(&cwd, &home, &["keygen", "-o", "key.txt"]);
    expect_plain(&run, 0, "keygen -o");
    let key = cwd.join("key.txt");
    assert_eq!(common::mode_of(&key), 0o600);
    let text = fs::read_to_string(&key).unwrap();
    let secrets: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .collect();
    assert_eq!(secrets.len(), 1, "keygen -o wrote {} keys", secrets.len());
    let recipient = run.stdout.trim();
    assert!(
        recipient.starts_with("age1") && !recipient.contains('\n'),
        "stdout is not one recipient:\n{}",
        run.stdout
    );
    assert_eq!(age_keygen_y(&key), recipient);
    common::assert_no_leak(&run.stdout, "keygen -o stdout");
    common::assert_no_leak(&run.stderr, "keygen -o stderr");

    // Never overwritten.
    let before = fingerprint(&key);
    let again = envsync_in(&cwd, &home, &["keygen", "-o", "key.txt"]);
    expect_plain(&again, 2, "keygen -o over an existing key");
    assert!(again.stderr.contains("key.txt"), "{}", again.stderr);
    assert!(
        fingerprint(&key) == before,
        "keygen overwrote an existing key"
    );
    assert_eq!(common::mode_of(&key), 0o600);

    // umask 000 still gives 0600 (and a private folder).
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" keygen -o sub/dir/key.txt")
        .arg(common::envsync_bin())
        .current_dir(&cwd)
        .env("HOME", &home)
        .env_remove("ENVSYNC_MANIFEST")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sub_key = cwd.join("sub/dir/key.txt");
    assert_eq!(common::mode_of(&sub_key), 0o600, "keygen under umask 000");
    assert_eq!(common::mode_of(&cwd.join("sub/dir")) & 0o077, 0);
    assert_eq!(
        age_keygen_y(&sub_key),
        String::from_utf8_lossy(&out.stdout).trim()
    );

    // No -o: the identity on stdout, the public key on stderr, no file.
    let listing = |d: &Path| {
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files_before = listing(&cwd);
    let run = envsync_in(&cwd, &home, &["keygen"]);
    expect_plain(&run, 0, "keygen");
    assert_eq!(
        listing(&cwd),
        files_before,
        "keygen without -o wrote a file"
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .count(),
        1,
        "keygen stdout does not hold one identity"
    );
    assert!(!run.stderr.contains("AGE-SECRET-KEY"));
    let public = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Public key: "))
        .unwrap_or_else(|| panic!("no `Public key:` on stderr:\n{}", run.stderr))
        .trim()
        .to_string();
    assert!(public.starts_with("age1"));
    let printed = dir.path().join("printed.txt");
    write_key(&printed, run.stdout.as_bytes(), 0o600);
    assert_eq!(age_keygen_y(&printed), public);
    assert_ne!(public, recipient, "two keygens made the same key");
}

// ---------------------------------------------------------------------------------------------
// 10. Bad recipients
// ---------------------------------------------------------------------------------------------

/// Proves: a `.sops.yaml` recipient that does not parse is named with its line, and a bad
/// entry `recipients` with the manifest and the entry's line; nothing is written.
#[test]
fn bad_recipients_are_named_with_their_line() {
    let fx = Fixture::new();
    let entry = Fixture::entry("app.env.enc", "app/.env");
    manifest(&fx, None, std::slice::from_ref(&entry));
    fx.write_server("app/.env", dotenv_plain("bad-recipient").as_bytes());

    for (yaml, line) in [
        (
            format!("creation_rules:\n  - age:\n      - age1notakey\n      - {AGE1}\n"),
            3,
        ),
        (
            format!(
                "# team keys\ncreation_rules:\n  - path_regex: ^app\n    age: {AGE1},age1notakey\n"
            ),
            4,
        ),
    ] {
        sops_yaml(&fx, &yaml);
        let run = fx.envsync(["encrypt"]);
        run.expect(2);
        assert!(
            run.stderr.contains(".sops.yaml")
                && run.stderr.contains(&format!("line {line}"))
                && run.stderr.contains("age1notakey"),
            "the message does not name .sops.yaml line {line}:\n{}",
            run.stderr
        );
        assert!(!fx.repo_path("app.env.enc").exists(), "a .enc was written");
    }

    sops_yaml(&fx, &format!("creation_rules:\n  - age: {AGE1}\n"));
    let text = manifest(
        &fx,
        None,
        &[
            Fixture::entry("other.env.enc", "other/.env") + "optional = true\n",
            format!("{entry}recipients = [\"nope\"]\n"),
        ],
    );
    let repo_line = text
        .lines()
        .position(|l| l == "repo = \"app.env.enc\"")
        .unwrap()
        + 1;
    let run = fx.envsync(["encrypt"]);
    run.expect(2);
    assert!(
        run.stderr.contains("secrets.toml")
            && run.stderr.contains(&format!("line {repo_line}"))
            && run.stderr.contains("nope"),
        "the message does not name secrets.toml line {repo_line}:\n{}",
        run.stderr
    );
    assert!(!fx.repo_path("app.env.enc").exists(), "a .enc was written");
}

// ---------------------------------------------------------------------------------------------
// 11. The multi-host example
// ---------------------------------------------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Proves: in the multi-host example each host's key opens its own files by tag and not the
/// other host's, and the admin key opens everything, exactly as sops reads it.
#[test]
fn multi_host_example() {
    let dir = tempfile::Builder::new()
        .prefix("envsync-multihost")
        .tempdir()
        .unwrap();
    let root = dir.path().join("multi-host");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/multi-host"),
        &root,
    );
    for key in ["admin", "web", "db"] {
        fs::set_permissions(
            root.join(format!("keys/{key}.txt")),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let server = root.join("server");
    let web_files = ["server/web/app/.env", "server/web/nginx/.htpasswd"];
    let db_file = "server/db/postgres/.env";

    let run = envsync_in(
        &root,
        &home,
        &["decrypt", "--tag", "web", "--identity", "keys/web.txt"],
    );
    expect_plain(&run, 0, "web host");
    for f in web_files {
        assert!(root.join(f).is_file(), "web host did not write {f}");
    }
    assert!(!root.join("server/db").exists(), "web host wrote db files");

    let run = envsync_in(
        &root,
        &home,
        &["decrypt", "--tag", "db", "--identity", "keys/web.txt"],
    );
    expect_plain(&run, 2, "db files with the web key");
    assert!(
        run.stderr.contains("db/postgres.env.enc"),
        "the message does not name the db file:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("AGE-SECRET-KEY"));
    assert!(
        !root.join("server/db").exists(),
        "the web key wrote db files"
    );

    let run = envsync_in(
        &root,
        &home,
        &["decrypt", "--tag", "db", "--identity", "keys/db.txt"],
    );
    expect_plain(&run, 0, "db host");
    assert!(root.join(db_file).is_file());

    fs::remove_dir_all(&server).unwrap();
    let run = envsync_in(&root, &home, &["decrypt", "--identity", "keys/admin.txt"]);
    expect_plain(&run, 0, "admin");
    let sops_home = dir.path().join("sops-home");
    fs::create_dir_all(&sops_home).unwrap();
    for (enc, plain, kind) in [
        ("web/app.env.enc", web_files[0], "dotenv"),
        ("web/htpasswd.enc", web_files[1], "binary"),
        ("db/postgres.env.enc", db_file, "dotenv"),
    ] {
        let want = fs::read(root.join(plain)).unwrap();
        assert_sops_opens(
            &root.join(enc),
            kind,
            &sops_home,
            &[("SOPS_AGE_KEY_FILE", root.join("keys/admin.txt").as_os_str())],
            &want,
            &format!("admin key, {enc}"),
        );
    }
    // The web key opens no db file with sops either.
    assert_sops_refuses(
        &root.join("db/postgres.env.enc"),
        "dotenv",
        &sops_home,
        &[("SOPS_AGE_KEY_FILE", root.join("keys/web.txt").as_os_str())],
        "web key on the db file",
    );
}
