//! Guards around a run: identity files owned or placed where someone else could swap them,
//! output streams that cannot be written, an `.enc` rolled back to before its last sync, and
//! no sync-record churn on a run that changes nothing. Each test runs the real binary and
//! checks the exit status, the message, the files, and that no temp file is left behind.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, canary, key_file, Fixture};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const ENC: &str = "app/.env.enc";
const SERVER: &str = "app/.env";

/// Writes `secrets.toml` whose `server.identity` is `identity`, with `files` as entries.
fn manifest_with_identity(fx: &Fixture, identity: &Path, files: &[String]) {
    let mut text = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\nidentity = \"{}\"\n",
        fx.server.display(),
        identity.display()
    );
    for f in files {
        text.push_str("\n[[file]]\n");
        text.push_str(f);
    }
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
}

/// A dotenv plaintext holding one fresh canary.
fn dotenv(label: &str) -> String {
    format!("APP_ENV=prod\nDB_PASSWORD={}\n", canary(label))
}

/// A fixture whose one dotenv entry is encrypted (by envsync) and whose server file is then
/// removed, so a decrypt has one file to create. Returns the plaintext.
fn encrypted_fixture(label: &str) -> (Fixture, String) {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry(ENC, SERVER)]);
    let plain = dotenv(label);
    fx.write_server(SERVER, plain.as_bytes());
    fx.envsync(["encrypt"]).expect(0);
    fs::remove_file(fx.server_path(SERVER)).unwrap();
    (fx, plain)
}

/// A copy of the AGE1 key at `path`, with `mode`.
fn copy_key(path: &Path, mode: u32) {
    common::write_file(path, &fs::read(key_file(1)).unwrap());
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn uid_of(name: &str) -> u32 {
    uzers::get_user_by_name(name)
        .unwrap_or_else(|| panic!("no user {name} on this machine"))
        .uid()
}

fn gid_of(name: &str) -> u32 {
    uzers::get_group_by_name(name)
        .unwrap_or_else(|| panic!("no group {name} on this machine"))
        .gid()
}

/// Asserts that no `.envsync.*.tmp` is left anywhere under `root`.
#[track_caller]
fn assert_no_temps(root: &Path) {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        assert!(
            !(name.starts_with(".envsync.") && name.ends_with(".tmp")),
            "temp file left behind: {}",
            entry.path().display()
        );
    }
}

/// A run of envsync with its streams as given, in the fixture's clean environment; what was
/// captured of stdout and stderr (empty for a stream not piped).
struct RawRun {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_raw(fx: &Fixture, args: &[&str], stdout: Stdio, stderr: Stdio) -> RawRun {
    let out = Command::new(common::envsync_bin())
        .args(args)
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .unwrap();
    let run = RawRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    common::assert_no_leak(&run.stdout, "stdout");
    common::assert_no_leak(&run.stderr, "stderr");
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("internal error"),
        "envsync panicked:\n{}",
        run.stderr
    );
    run
}

/// `/dev/full`, opened for writing: every write to it fails with ENOSPC.
fn dev_full() -> Stdio {
    Stdio::from(
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Identity owner and folders
// ---------------------------------------------------------------------------------------------

/// Proves: a 0600 key file owned by `nobody` (neither root nor the running user) is refused,
/// exit 2, with the path and the `chown` that fixes it; nothing is written on the server.
#[test]
fn guards_key_owned_by_another_user_is_refused() {
    let (fx, _) = encrypted_fixture("owner");
    let key = fx.dir.path().join("keys/key.txt");
    copy_key(&key, 0o600);
    std::os::unix::fs::chown(&key, Some(uid_of("nobody")), None).unwrap();
    manifest_with_identity(&fx, &key, &[Fixture::entry(ENC, SERVER)]);
    let before = common::snapshot(&fx.server);

    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    let path = key.display().to_string();
    assert!(
        run.stderr.contains(&path)
            && run.stderr.contains("nobody")
            && run.stderr.contains(&format!("chown root {path}")),
        "the message does not name the path, the owner and the chown:\n{}",
        run.stderr
    );
    assert_eq!(common::snapshot(&fx.server), before, "the server changed");
    assert!(!fx.server_path(SERVER).exists());
    assert_no_temps(&fx.server);
}

/// Proves: a 0640 root:daemon key (the documented team setup) is accepted, and a key whose
/// mode is too open is refused with the `chmod` that fixes it.
#[test]
fn guards_key_root_group_readable_is_accepted_and_open_mode_names_chmod() {
    let (fx, plain) = encrypted_fixture("group");
    let key = fx.dir.path().join("keys/key.txt");
    copy_key(&key, 0o644);
    manifest_with_identity(&fx, &key, &[Fixture::entry(ENC, SERVER)]);
    let path = key.display().to_string();

    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&path)
            && run.stderr.contains("0644")
            && run.stderr.contains(&format!("chmod o-rwx {path}")),
        "the message does not name the path, mode and chmod:\n{}",
        run.stderr
    );
    assert!(!fx.server_path(SERVER).exists());

    std::os::unix::fs::chown(&key, Some(0), Some(gid_of("daemon"))).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(fs::read_to_string(fx.server_path(SERVER)).unwrap(), plain);
    assert_no_temps(&fx.server);
}

/// Proves: a key in a folder every user can write to (0777, no sticky bit) is refused, exit 2,
/// naming the key, the folder and the `chmod` that fixes it; with the sticky bit (as `/tmp`)
/// the key is accepted.
#[test]
fn guards_key_in_world_writable_folder_is_refused() {
    let (fx, plain) = encrypted_fixture("folder");
    let folder = fx.dir.path().join("shared");
    let key = folder.join("key.txt");
    copy_key(&key, 0o600);
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o777)).unwrap();
    manifest_with_identity(&fx, &key, &[Fixture::entry(ENC, SERVER)]);
    let before = common::snapshot(&fx.server);

    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    let shown = folder.display().to_string();
    assert!(
        run.stderr.contains(&key.display().to_string())
            && run.stderr.contains(&format!("the folder {shown} "))
            && run.stderr.contains(&format!("chmod o-w {shown}")),
        "the message does not name the key, the folder and the fix:\n{}",
        run.stderr
    );
    assert_eq!(common::snapshot(&fx.server), before, "the server changed");
    assert_no_temps(&fx.server);

    // A folder above the key counts too.
    let nested = folder.join("inner/key.txt");
    copy_key(&nested, 0o600);
    manifest_with_identity(&fx, &nested, &[Fixture::entry(ENC, SERVER)]);
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&format!("chmod o-w {shown}")),
        "{}",
        run.stderr
    );

    fs::set_permissions(&folder, fs::Permissions::from_mode(0o1777)).unwrap();
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(fs::read_to_string(fx.server_path(SERVER)).unwrap(), plain);
    assert_no_temps(&fx.server);
}

// ---------------------------------------------------------------------------------------------
// 2. Streams that cannot be written
// ---------------------------------------------------------------------------------------------

/// Proves: with stderr on /dev/full a decrypt still succeeds (exit 0) and writes the server
/// file; the talk it could not print changes nothing.
#[test]
fn guards_decrypt_with_stderr_full_succeeds() {
    let (fx, plain) = encrypted_fixture("stderr-full");
    let run = run_raw(&fx, &["decrypt", "-v"], Stdio::piped(), dev_full());
    assert_eq!(run.code, 0, "stdout:\n{}", run.stdout);
    assert_eq!(fs::read_to_string(fx.server_path(SERVER)).unwrap(), plain);
    assert_no_temps(&fx.server);
}

/// Proves: a decrypt that fails (no matching key) with stderr on /dev/full still exits 2 and
/// leaves the server as it was.
#[test]
fn guards_failing_decrypt_with_stderr_full_exits_2() {
    let (fx, _) = encrypted_fixture("stderr-full-fail");
    let old = dotenv("stderr-full-old");
    fx.write_server(SERVER, old.as_bytes());
    manifest_with_identity(&fx, &key_file(3), &[Fixture::entry(ENC, SERVER)]);
    let before = common::snapshot(&fx.server);
    let run = run_raw(&fx, &["decrypt"], Stdio::piped(), dev_full());
    assert_eq!(run.code, 2, "stdout:\n{}", run.stdout);
    assert_eq!(common::snapshot(&fx.server), before, "the server changed");
    assert_eq!(fs::read_to_string(fx.server_path(SERVER)).unwrap(), old);
    assert_no_temps(&fx.server);
}

/// Proves: `status --json` with stdout on /dev/full exits 2 and says on stderr that the
/// output could not be written (one line, no internal error).
#[test]
fn guards_status_json_with_stdout_full_exits_2() {
    let (fx, _) = encrypted_fixture("stdout-full");
    fx.envsync(["decrypt"]).expect(0);
    let run = run_raw(&fx, &["status", "--json"], dev_full(), Stdio::piped());
    assert_eq!(run.code, 2, "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("the output could not be written"),
        "stderr does not say the output was lost:\n{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_no_temps(&fx.server);
}

/// Proves: a reader that closes the pipe early ends the output quietly: no message, and the
/// run's own exit status (status of an in-sync entry: 0).
#[test]
fn guards_closed_pipe_on_stdout_is_quiet() {
    let (fx, _) = encrypted_fixture("pipe");
    fx.envsync(["decrypt"]).expect(0);
    let mut child = Command::new(common::envsync_bin())
        .args(["status", "--json"])
        .current_dir(&fx.repo)
        .env("HOME", &fx.home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.is_empty(), "a closed pipe was reported:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 4. No record churn
// ---------------------------------------------------------------------------------------------

/// The sync record file of the entry whose repo path is `repo`.
fn record_file(fx: &Fixture, repo: &str) -> PathBuf {
    fx.server
        .join(".envsync/records")
        .join(repo.replace('%', "%25").replace('/', "%2F"))
}

/// Inode and modification time: a rewrite (temp and rename) changes both.
fn inode_and_mtime(path: &Path) -> (u64, i64, i64) {
    let meta = fs::metadata(path).unwrap();
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

/// Runs envsync under `strace -f -y` tracing opens, renames and unlinks; the log's lines.
fn traced(fx: &Fixture, args: &[&str]) -> Vec<String> {
    let log = fx.dir.path().join("trace.log");
    let out = Command::new(common::tool("strace"))
        .args([
            "-f",
            "-y",
            "-e",
            "trace=openat,renameat,renameat2,unlinkat",
            "-o",
        ])
        .arg(&log)
        .arg(common::envsync_bin())
        .args(args)
        .current_dir(&fx.repo)
        .env("HOME", &fx.home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} under strace:\n{stderr}"
    );
    common::assert_no_leak(&stderr, "stderr under strace");
    fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The traced calls that create or replace a file, the run lock aside.
fn writes_in(trace: &[String], state: &Path) -> Vec<String> {
    let lock = format!("{}>, \"lock\"", state.display());
    trace
        .iter()
        .filter(|l| (l.contains("O_CREAT") && !l.contains(&lock)) || l.contains("rename"))
        .cloned()
        .collect()
}

/// Proves: a decrypt (and an encrypt) of an in-sync manifest with a `plain = true` entry and
/// a dotenv entry writes nothing: no file created but the run lock, no rename, and both sync
/// records keep their inode and mtime.
#[test]
fn guards_no_op_runs_do_not_rewrite_records() {
    let fx = Fixture::new();
    let conf = "nginx/app.conf";
    fx.manifest(&[
        Fixture::entry(ENC, SERVER),
        format!(
            "{}plain = true\nmode = \"0644\"\n",
            Fixture::entry(conf, conf)
        ),
    ]);
    fx.write_server(SERVER, dotenv("churn").as_bytes());
    fx.write_server(conf, b"server { listen 80; }\n");
    fs::set_permissions(fx.server_path(conf), fs::Permissions::from_mode(0o644)).unwrap();
    fx.envsync(["encrypt"]).expect(0);
    fx.envsync(["decrypt"]).expect(0);
    let records = [record_file(&fx, ENC), record_file(&fx, conf)];
    let before: Vec<_> = records.iter().map(|r| inode_and_mtime(r)).collect();
    let state = fx.server.join(".envsync");

    for command in ["decrypt", "encrypt"] {
        let trace = traced(&fx, &[command]);
        assert!(
            trace.iter().any(|l| l.contains("O_CREAT")),
            "{command}: the trace holds no open of the lock; is strace logging?\n{}",
            trace.join("\n")
        );
        let writes = writes_in(&trace, &state);
        assert!(
            writes.is_empty(),
            "{command} of an in-sync manifest wrote:\n{}",
            writes.join("\n")
        );
        let after: Vec<_> = records.iter().map(|r| inode_and_mtime(r)).collect();
        assert_eq!(after, before, "{command}: a sync record was rewritten");
    }
    fx.envsync(["status"]).expect(0);
    assert_no_temps(&fx.server);
}
