//! Guards around a run: identity files owned or placed where someone else could swap them,
//! output streams that cannot be written, an `.enc` rolled back to before its last sync, and
//! no sync-record churn on a run that changes nothing. Each test runs the real binary and
//! checks the exit status, the message, the files, and that no temp file is left behind.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, canary, git, key_file, Fixture};

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
    let out = common::envsync_command(fx, args)
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

/// Proves: a decrypt that fails (no matching key) with stderr on /dev/full still exits 2,
/// through its own error (offered to fd 2 and refused there), not a panic, and leaves the
/// server as it was.
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

    // The panic hook exits 2 as well: what envsync tried to write to fd 2 tells them apart.
    // It must be the error itself (refused by /dev/full), never "internal error".
    let (code, _, trace) = strace_run(&fx, &["decrypt"], "trace=write", dev_full());
    assert_eq!(code, 2, "under strace:\n{}", trace.join("\n"));
    let to_stderr: Vec<&String> = trace.iter().filter(|l| l.contains("write(2<")).collect();
    let shown = trace.join("\n");
    common::assert_no_leak(&shown, "writes under strace");
    assert!(
        to_stderr
            .iter()
            .any(|l| l.contains("\"envsync: ") && l.contains("ENOSPC")),
        "the error was not offered to stderr:\n{shown}"
    );
    assert!(
        !shown.contains("internal error") && !shown.contains("panicked"),
        "envsync panicked:\n{shown}"
    );
    assert_eq!(common::snapshot(&fx.server), before, "the server changed");
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
    let mut child = common::envsync_command(&fx, &["status", "--json"])
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
// 3. An `.enc` older than its sync record
// ---------------------------------------------------------------------------------------------

/// The sops `lastmodified` of a repo file, as written in it (dotenv line or JSON field).
fn lastmodified(fx: &Fixture, repo: &str) -> String {
    let text = String::from_utf8_lossy(&fs::read(fx.repo_path(repo)).unwrap()).into_owned();
    let value = match text.find("sops_lastmodified=") {
        Some(at) => text[at + "sops_lastmodified=".len()..]
            .lines()
            .next()
            .unwrap(),
        None => {
            let at = text.rfind("\"lastmodified\": \"").unwrap() + "\"lastmodified\": \"".len();
            text[at..].split('"').next().unwrap()
        }
    };
    value.trim().to_string()
}

/// Encrypts `v1`, commits, encrypts `v2` a second later (sops dates have 1 s resolution),
/// commits, then checks out the first `.enc` again. Returns both dates.
fn synced_then_rolled_back(
    fx: &Fixture,
    repo: &str,
    server: &str,
    v1: &[u8],
    v2: &[u8],
) -> (String, String) {
    fx.write_server(server, v1);
    fx.envsync(["encrypt"]).expect(0);
    git(fx, &["add", "-A"]);
    git(fx, &["commit", "-q", "-m", "v1"]);
    let first = lastmodified(fx, repo);
    let enc_v1 = fs::read(fx.repo_path(repo)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fx.write_server(server, v2);
    fx.envsync(["encrypt"]).expect(0);
    git(fx, &["commit", "-q", "-am", "v2"]);
    let second = lastmodified(fx, repo);
    assert!(first < second, "{first} is not before {second}");
    git(fx, &["checkout", "HEAD~1", "--", repo]);
    assert_eq!(fs::read(fx.repo_path(repo)).unwrap(), enc_v1);
    (first, second)
}

/// Checks status (text and JSON) and decrypt of a rolled-back entry: the state says the
/// `.enc` is older, decrypt warns with both dates and applies it.
fn check_rollback(fx: &Fixture, repo: &str, server: &str, v1: &[u8], dates: &(String, String)) {
    let run = fx.envsync(["status"]);
    run.expect(1);
    assert!(
        run.stdout
            .contains("repo-changed (older than the last sync)"),
        "status does not say the .enc is older:\n{}",
        run.stdout
    );
    let run = fx.envsync(["status", "--json"]);
    run.expect(1);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let entry = &json["entries"][0];
    assert_eq!(entry["state"], "repo-changed", "{}", run.stdout);
    assert_eq!(entry["older_than_last_sync"], true, "{}", run.stdout);
    assert_eq!(
        entry["repo_lastmodified"],
        dates.0.as_str(),
        "{}",
        run.stdout
    );
    assert_eq!(
        entry["synced_lastmodified"],
        dates.1.as_str(),
        "{}",
        run.stdout
    );

    let warning = format!(
        "warning: {repo} is older than its last sync (lastmodified {}, last synced {}); ",
        dates.0, dates.1
    );
    let run = fx.envsync(["decrypt", "--dry-run"]);
    run.expect(0);
    assert!(
        run.stderr
            .contains(&format!("{warning}a decrypt would apply it")),
        "dry run:\n{}",
        run.stderr
    );
    assert_ne!(
        fs::read(fx.server_path(server)).unwrap(),
        v1,
        "a dry run wrote"
    );
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert!(
        run.stderr.contains(&format!(
            "{warning}applying it anyway (a git revert is a legitimate rollback)"
        )),
        "decrypt does not warn with both dates:\n{}",
        run.stderr
    );
    assert_eq!(fs::read(fx.server_path(server)).unwrap(), v1);
    // Applied and recorded: in sync, no longer older than anything.
    let run = fx.envsync(["status", "--json"]);
    run.expect(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let entry = &json["entries"][0];
    assert_eq!(entry["older_than_last_sync"], false, "{}", run.stdout);
    assert!(entry["repo_lastmodified"].is_null(), "{}", run.stdout);
    assert!(entry["synced_lastmodified"].is_null(), "{}", run.stdout);
    assert_no_temps(&fx.server);
}

/// Proves: after `git checkout HEAD~1 -- app/.env.enc` undoes a synced rotation, status shows
/// `repo-changed (older than the last sync)` (exit 1) and `"older_than_last_sync": true`, and
/// decrypt warns naming both dates, applies the older values and exits 0.
#[test]
fn guards_enc_older_than_its_record_warns_and_applies() {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry(ENC, SERVER)]);
    let (v1, v2) = (dotenv("rollback-v1"), dotenv("rollback-v2"));
    let dates = synced_then_rolled_back(&fx, ENC, SERVER, v1.as_bytes(), v2.as_bytes());
    check_rollback(&fx, ENC, SERVER, v1.as_bytes(), &dates);
}

/// Proves: the same for an `.enc` over 1 MiB, whose record holds only a digest: the record's
/// header keeps the synced `lastmodified`.
#[test]
fn guards_large_enc_older_than_its_digest_record_warns_and_applies() {
    let fx = Fixture::new();
    let (repo, server) = ("data/blob.bin.enc", "data/blob.bin");
    fx.manifest(&[Fixture::entry(repo, server)]);
    let v1: Vec<u8> = (0..900_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut v2 = v1.clone();
    v2[1000] ^= 0xff;
    let dates = synced_then_rolled_back(&fx, repo, server, &v1, &v2);
    let record = fs::read(record_file(&fx, repo)).unwrap();
    let header = String::from_utf8_lossy(&record[..record.len().min(300)]).into_owned();
    assert!(
        header.contains(&format!(" lastmodified={}\n", dates.1)) && record.len() < 300,
        "the digest record does not keep the synced date: {header}"
    );
    check_rollback(&fx, repo, server, &v1, &dates);
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
    let (code, stderr, trace) = strace_run(
        fx,
        args,
        "trace=openat,renameat,renameat2,unlinkat",
        Stdio::piped(),
    );
    assert_eq!(code, 0, "{args:?} under strace:\n{stderr}");
    trace
}

/// Runs envsync under `strace -f -y -s 400 -e <filter>` with stderr as given: its exit
/// code, what was captured of its stderr, and the trace's lines.
fn strace_run(
    fx: &Fixture,
    args: &[&str],
    filter: &str,
    stderr: Stdio,
) -> (i32, String, Vec<String>) {
    let log = fx.dir.path().join("trace.log");
    let mut cmd = Command::new(common::tool("strace"));
    cmd.args(["-f", "-y", "-s", "400", "-e", filter, "-o"])
        .arg(&log)
        .arg(common::envsync_bin())
        .args(args);
    let out = common::clean_env(&mut cmd, fx)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    common::assert_no_leak(&stderr, "stderr under strace");
    let trace: Vec<String> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), stderr, trace)
}

/// The traced calls that create, open for writing or replace a file (the run lock too: an
/// existing lock is opened read-only, which is all `flock` needs).
fn writes_in(trace: &[String]) -> Vec<String> {
    let opens_to_write = |l: &str| {
        ["O_CREAT", "O_WRONLY", "O_RDWR"]
            .iter()
            .any(|f| l.contains(f))
    };
    trace
        .iter()
        .filter(|l| opens_to_write(l) || l.contains("rename"))
        .cloned()
        .collect()
}

/// Proves: a decrypt (and an encrypt) of an in-sync manifest with a `plain = true` entry and
/// a dotenv entry writes nothing: no file created or opened for writing (the run lock is opened
/// read-only), no
/// rename, and both sync records keep their inode and mtime. (The server's dotenv file starts
/// 0644: the first decrypt fixes its mode, and the record must follow its new stamp then, not
/// one run later.)
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
        let lock = format!("{}>, \"lock\"", state.display());
        assert!(
            trace.iter().any(|l| l.contains(&lock)),
            "{command}: the trace holds no open of the lock; is strace logging?\n{}",
            trace.join("\n")
        );
        let writes = writes_in(&trace);
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
