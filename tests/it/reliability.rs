//! Issue 11, "never half-done, never readable", end to end on the real binary: the folders
//! envsync creates (`dir_mode`, owner, group), SIGINT/SIGTERM/SIGHUP (130/143, the batch put
//! back, no temp), failure paths (no temp, the batch undone, an honest exit 2), inherited
//! default ACLs, hostile folders, the run lock in the state folder, and durable sync records.
//!
//! Each check is the one an operator would make: the exit status, no `.envsync.*.tmp` under
//! the server root, every target all OLD or all NEW by its SHA-256, `getfacl`, and reads as
//! another user (`runuser -u nobody|daemon -- cat`). Decrypt runs use `--force` where the
//! server holds OLD on purpose (the sync states are tested in tests/it/safety.rs). The signal
//! sweeps at injected syscalls live in tests/it/writer.rs, beside the SIGKILL sweep.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use sha2::{Digest, Sha256};

use crate::common::{self, Fixture};
use crate::writer::{
    clean_env, envsync_command, mode, parse_strace, run_checked, strace, system_id, temps_under,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// How long any wait in this module may take before the test fails (a hung run is a failure,
/// never a hung suite).
const PATIENCE: Duration = Duration::from_secs(60);

/// `syncfs` and the rename family, as `/proc/PID/syscall` numbers them.
#[cfg(target_arch = "x86_64")]
const SYS_SYNCFS: u32 = 306;
#[cfg(target_arch = "x86_64")]
const SYS_RENAMES: [u32; 3] = [82, 264, 316];
#[cfg(target_arch = "aarch64")]
const SYS_SYNCFS: u32 = 267;
#[cfg(target_arch = "aarch64")]
const SYS_RENAMES: [u32; 3] = [u32::MAX, 38, 276];

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn set_mode(path: &Path, m: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(m))
        .unwrap_or_else(|e| panic!("chmod {m:o} {}: {e}", path.display()));
}

/// Lets other users walk from `/` to the fixture (a temp dir is created 0700), so that a read
/// as `nobody` or `daemon` is denied or allowed by the file and its folder alone.
fn open_to_others(fx: &Fixture) {
    for dir in [fx.dir.path(), &fx.repo, &fx.server] {
        if dir.exists() {
            set_mode(dir, 0o755);
        }
    }
}

/// Polls `cond` every few milliseconds until it holds; fails the test after [`PATIENCE`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `flock -n -E 75 PATH true`: whether someone holds a lock on `path` (exit 75 = it is held).
fn lock_held(path: &Path) -> bool {
    let status = Command::new(common::tool("flock"))
        .args(["-n", "-E", "75"])
        .arg(path)
        .arg("true")
        .status()
        .expect("run flock");
    assert!(
        matches!(status.code(), Some(0 | 75)),
        "flock -n {} failed: {status:?}",
        path.display()
    );
    status.code() == Some(75)
}

/// `runuser -u USER -- cat PATH`: (success, stdout).
fn cat_as(user: &str, path: &Path) -> (bool, Vec<u8>) {
    let out = Command::new(common::tool("runuser"))
        .args(["-u", user, "--", "cat"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run runuser");
    (out.status.success(), out.stdout)
}

/// `getfacl -c -p PATH`: the ACL entries, one a line, no comments.
fn getfacl(path: &Path) -> Vec<String> {
    let out = Command::new(common::tool("getfacl"))
        .args(["-c", "-p"])
        .arg(path)
        .output()
        .expect("run getfacl");
    assert!(
        out.status.success(),
        "getfacl {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn setfacl(args: &[&str], path: &Path) {
    let status = Command::new(common::tool("setfacl"))
        .args(args)
        .arg(path)
        .status()
        .expect("run setfacl");
    assert!(status.success(), "setfacl {args:?} {}", path.display());
}

/// Asserts that `path` has no ACL beyond its mode: only `user::`, `group::` and `other::`,
/// no named entry, no mask, no default.
#[track_caller]
fn assert_no_acl(path: &Path, context: &str) {
    let acl = getfacl(path);
    assert!(
        acl.iter().all(|l| {
            l.starts_with("user::") || l.starts_with("group::") || l.starts_with("other::")
        }),
        "{context}: {} carries an ACL beyond its mode: {acl:?}",
        path.display()
    );
    assert!(
        !acl.iter().any(|l| l.contains("nobody")),
        "{context}: {} has an entry for nobody: {acl:?}",
        path.display()
    );
}

/// Every path under `root` with its kind, mode, owner and group: a refused run must leave it
/// exactly as it was (no folder, no state folder, no lock, no temp).
fn tree(root: &Path) -> Vec<(PathBuf, bool, u32, u32, u32, Vec<u8>)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.expect("walk");
            let meta = fs::symlink_metadata(e.path()).expect("stat");
            let bytes = if meta.is_file() {
                fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            (
                e.path().to_path_buf(),
                meta.is_dir(),
                mode(&meta),
                meta.uid(),
                meta.gid(),
                bytes,
            )
        })
        .collect()
}

/// Sends `signal` to `pid`.
fn kill(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(pid).expect("pid")).expect("pid");
    rustix::process::kill_process(pid, signal).expect("send signal");
}

/// The signals a run is stopped by, their names and the exit status each must give.
const SIGNALS: [(Signal, &str, i32); 3] = [
    (Signal::INT, "SIGINT", 130),
    (Signal::TERM, "SIGTERM", 143),
    (Signal::HUP, "SIGHUP", 143),
];

/// The envsync process strace started: the child of `tracer` named `envsync`, found by a scan
/// of /proc (`pgrep -f envsync` would match strace's own command line too).
fn traced_envsync(tracer: u32) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "envsync" && ppid == Some(tracer) {
            return Some(pid);
        }
    }
    None
}

/// Whether a thread of `pid` is stopped in one of the syscalls `numbers`
/// (`/proc/PID/task/TID/syscall`: strace holds a delayed call there).
fn in_syscall(pid: u32, numbers: &[u32]) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        fs::read_to_string(task.path().join("syscall")).is_ok_and(|text| {
            text.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| numbers.contains(&n))
        })
    })
}

/// A process started for a test, in its own process group; dropping it kills the group (the
/// process and whatever it started) and reaps it.
struct Background {
    child: Option<Child>,
    what: String,
    /// stderr lines as they come, when piped.
    lines: Option<mpsc::Receiver<String>>,
    stderr: String,
}

/// What a background run ended with.
struct Ended {
    code: i32,
    stderr: String,
}

impl Background {
    /// Starts `cmd` (in a new process group). With `watch`, its stderr is read line by line as
    /// it comes ([`Background::wait_for_line`]); its stdout is kept for the end.
    fn spawn(cmd: &mut Command, what: &str, watch: bool) -> Self {
        cmd.process_group(0).stdout(Stdio::piped());
        cmd.stderr(if watch { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let lines = child.stderr.take().map(|stderr| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Self {
            child: Some(child),
            what: what.to_string(),
            lines,
            stderr: String::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("running");
        child.try_wait().expect("try_wait").is_none()
    }

    /// Waits for a stderr line that holds every one of `needles`; returns it.
    fn wait_for_line(&mut self, needles: &[&str]) -> String {
        let rx = self.lines.as_ref().expect("stderr is watched");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push_str(&line);
                    self.stderr.push('\n');
                    if needles.iter().all(|n| line.contains(n)) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no stderr line with {needles:?} within {PATIENCE:?}; stderr so far:\n{}",
                    self.what, self.stderr
                ),
            }
        }
    }

    /// Waits for the process to end (at most [`PATIENCE`]) and checks its output for leaks and
    /// panics.
    fn wait(self) -> Ended {
        self.wait_within(PATIENCE)
    }

    /// As [`Background::wait`], failing the test when the process runs longer than `limit`.
    fn wait_within(mut self, limit: Duration) -> Ended {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = rustix::process::kill_process_group(Pid::from_child(&child), Signal::KILL);
                let _ = child.wait();
                panic!("{} did not end within {limit:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut stdout = String::new();
        if let Some(mut out) = child.stdout.take() {
            out.read_to_string(&mut stdout).expect("read stdout");
        }
        if let Some(rx) = self.lines.take() {
            // The reader thread ends at EOF, once the process (and its children) closed stderr.
            while let Ok(line) = rx.recv_timeout(PATIENCE) {
                self.stderr.push_str(&line);
                self.stderr.push('\n');
            }
        }
        let stderr = std::mem::take(&mut self.stderr);
        common::assert_no_leak(&stdout, &format!("stdout of {}", self.what));
        common::assert_no_leak(&stderr, &format!("stderr of {}", self.what));
        assert!(
            !stderr.contains("panicked") && !stderr.contains("internal error"),
            "{} panicked:\n{stderr}",
            self.what
        );
        Ended {
            code: status.code().unwrap_or(-1),
            stderr,
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = rustix::process::kill_process_group(Pid::from_child(&child), Signal::KILL);
            let _ = child.wait();
        }
    }
}

/// `chattr FLAG PATH`, undone (`chattr -i -a`) when the guard is dropped, so the fixture can
/// be removed whatever the test did.
struct Chattr(PathBuf);

impl Chattr {
    fn set(flag: &str, path: &Path) -> Self {
        let status = Command::new(common::tool("chattr"))
            .arg(flag)
            .arg(path)
            .status()
            .expect("run chattr (run scripts/setup: Debian package e2fsprogs)");
        assert!(status.success(), "chattr {flag} {}", path.display());
        Self(path.to_path_buf())
    }
}

impl Drop for Chattr {
    fn drop(&mut self) {
        let _ = Command::new(common::tool("chattr"))
            .args(["-i", "-a"])
            .arg(&self.0)
            .status();
    }
}

/// A `secrets.toml` in `repo` for `root`, with a `[defaults]` body and `[[file]]` bodies.
fn write_manifest(repo: &Path, root: &Path, defaults: &str, files: &[String]) {
    let mut text = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\nidentity = \"{}\"\n",
        root.display(),
        common::key_file(1).display()
    );
    if !defaults.is_empty() {
        text.push_str("\n[defaults]\n");
        text.push_str(defaults);
        text.push('\n');
    }
    for f in files {
        text.push_str("\n[[file]]\n");
        text.push_str(f);
        if !f.ends_with('\n') {
            text.push('\n');
        }
    }
    fs::write(repo.join("secrets.toml"), text).expect("write manifest");
}

// ---------------------------------------------------------------------------------------------
// The batch fixture: N entries, the repo NEW, the server OLD
// ---------------------------------------------------------------------------------------------

/// One server file with its two acceptable contents.
struct Target {
    server: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Old,
    New,
}

/// `n` dotenv entries (mode 0640) in three folders, one of them nested: the repo holds NEW
/// (encrypted by `envsync encrypt`), the server OLD.
struct Batch {
    fx: Fixture,
    targets: Vec<Target>,
}

const MODE: u32 = 0o640;

impl Batch {
    fn new(n: usize) -> Self {
        let fx = Fixture::new();
        let mut entries = Vec::new();
        let mut targets = Vec::new();
        for i in 0..n {
            let folder = ["api", "db/conf", "web"][i % 3];
            let server = format!("{folder}/app{i:02}.env");
            let repo = format!("enc/app{i:02}.env.enc");
            entries.push(format!(
                "{}mode = \"{MODE:04o}\"\n",
                Fixture::entry(&repo, &server)
            ));
            let value = common::secret(&format!("new-secret-{i:02}-{}", "x".repeat(i)));
            targets.push(Target {
                server,
                old: format!("OLD_{i}=old value {i}\n").into_bytes(),
                new: format!("NEW_{i}={value}\nSHARED=x\n").into_bytes(),
            });
        }
        fx.manifest(&entries);
        for t in &targets {
            fx.write_server(&t.server, &t.new);
        }
        fx.envsync(["encrypt"]).expect(0);
        let batch = Self { fx, targets };
        batch.put_old();
        batch
    }

    fn path(&self, i: usize) -> PathBuf {
        self.fx.server_path(&self.targets[i].server)
    }

    /// Puts OLD (mode 0640) back on every target.
    fn put_old(&self) {
        for i in 0..self.targets.len() {
            let path = self.path(i);
            fs::write(&path, &self.targets[i].old).expect("write OLD");
            set_mode(&path, MODE);
        }
    }

    /// What target `i` holds, by SHA-256 (`None`: nothing there); fails on anything else and
    /// on a mode other than the entry's.
    fn side(&self, i: usize, context: &str) -> Option<Side> {
        let t = &self.targets[i];
        let path = self.path(i);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{context}: cannot stat {}: {e}", t.server),
        };
        assert!(meta.is_file(), "{context}: {} is not a file", t.server);
        assert_eq!(
            mode(&meta),
            MODE,
            "{context}: {} has mode {:04o}",
            t.server,
            mode(&meta)
        );
        let digest = sha256(&fs::read(&path).expect("read target"));
        if digest == sha256(&t.new) {
            Some(Side::New)
        } else if digest == sha256(&t.old) {
            Some(Side::Old)
        } else {
            panic!("{context}: {} is neither OLD nor NEW", t.server)
        }
    }

    /// What each target holds; also fails on any `.envsync.*.tmp` under the server root (the
    /// state folder included).
    fn sides(&self, context: &str) -> Vec<Option<Side>> {
        let temps = temps_under(&self.fx.server);
        assert!(
            temps.is_empty(),
            "{context}: temps left under the server root: {temps:?}"
        );
        (0..self.targets.len())
            .map(|i| self.side(i, context))
            .collect()
    }

    #[track_caller]
    fn assert_all(&self, side: Side, context: &str) {
        let sides = self.sides(context);
        assert!(
            sides.iter().all(|s| *s == Some(side)),
            "{context}: expected every target {side:?}, got {sides:?}"
        );
    }

    /// `strace -f -o LOG <strace_args> envsync decrypt --force`, in the clean environment.
    fn strace_decrypt(&self, log: &Path, strace_args: &[&str]) -> Command {
        let mut cmd = Command::new(strace());
        cmd.arg("-f")
            .arg("-o")
            .arg(log)
            .args(strace_args)
            .arg(common::envsync_bin())
            .args(["decrypt", "--force"]);
        clean_env(&mut cmd, &self.fx);
        cmd
    }

    /// Runs `strace … envsync decrypt --force` to its end: (exit code, stderr).
    fn run_strace(&self, strace_args: &[&str], context: &str) -> (i32, String) {
        let mut cmd = self.strace_decrypt(Path::new("/dev/null"), strace_args);
        let (code, _, stderr) = run_checked(&mut cmd, context);
        (code, stderr)
    }

    /// How often each syscall of `trace` ran in a full decrypt, on the busiest thread (strace
    /// counts `when=N` per thread), and which rename syscall envsync uses. Leaves OLD behind.
    fn profile(&self, trace: &str) -> BTreeMap<String, usize> {
        let log = self.fx.dir.path().join("profile.strace");
        let mut cmd = self.strace_decrypt(&log, &["-e", &format!("trace={trace}")]);
        let (code, _, stderr) = run_checked(&mut cmd, "profile run under strace");
        assert_eq!(code, 0, "decrypt under strace failed:\n{stderr}");
        self.assert_all(Side::New, "profile run");
        self.put_old();
        let mut per_thread: BTreeMap<(u32, String), usize> = BTreeMap::new();
        for call in parse_strace(&fs::read_to_string(&log).expect("read strace log")) {
            *per_thread.entry((call.pid, call.name)).or_default() += 1;
        }
        let mut most: BTreeMap<String, usize> = BTreeMap::new();
        for ((_, name), n) in per_thread {
            let m = most.entry(name).or_default();
            *m = (*m).max(n);
        }
        most
    }

    /// The one rename syscall envsync uses (renameat or renameat2), seen by strace.
    fn rename_syscall(&self) -> String {
        let seen = self.profile("?rename,renameat,renameat2");
        assert_eq!(seen.len(), 1, "expected one rename syscall, saw {seen:?}");
        seen.into_keys().next().expect("one")
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Folders envsync creates
// ---------------------------------------------------------------------------------------------

/// (mode, uid, gid) of a folder.
fn folder_owner(path: &Path) -> (u32, u32, u32) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    assert!(meta.is_dir(), "{} is not a folder", path.display());
    (mode(&meta), meta.uid(), meta.gid())
}

/// A fresh server (no root yet) and two entries in new nested folders, both 0640 group
/// daemon: the root is made 0755 (the default `dir_mode`) and the state folder 0700; the first
/// entry's folders are 0755 root:daemon, the second's (`dir_mode = "0750"`) 0750 root:daemon.
/// daemon reads both files, nobody neither.
#[test]
fn folders_made_on_a_fresh_server_get_dir_mode_owner_and_group() {
    let fx = Fixture::new();
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    let daemon = system_id("group", "daemon");
    open_to_others(&fx);
    // The server root and the folder above it do not exist yet.
    fs::remove_dir(&fx.server).expect("remove the server root");
    let root = fx.server.join("docker");
    write_manifest(
        &fx.repo,
        &root,
        "",
        &[
            format!(
                "{}mode = \"0640\"\ngroup = \"daemon\"\n",
                Fixture::entry("enc/api.env.enc", "apps/api/envs/.env")
            ),
            format!(
                "{}mode = \"0640\"\ngroup = \"daemon\"\ndir_mode = \"0750\"\n",
                Fixture::entry("enc/db.env.enc", "private/db/.env")
            ),
        ],
    );
    let api = common::secret("api-token-9f8e7d6c5b4a");
    let db = common::secret("db-password-0a1b2c3d4e5f");
    let plains = [
        (
            "enc/api.env.enc",
            "apps/api/envs/.env",
            format!("API_TOKEN={api}\n"),
        ),
        (
            "enc/db.env.enc",
            "private/db/.env",
            format!("DB_PASSWORD={db}\n"),
        ),
    ];
    for (repo, _, plain) in &plains {
        fx.sops_encrypt(repo, plain.as_bytes(), "dotenv");
    }
    fx.envsync(["decrypt"]).expect(0);

    // The missing root and the folder above it: the default dir_mode, the running user.
    for made in [&fx.server, &root] {
        assert_eq!(
            folder_owner(made),
            (0o755, me, my_gid),
            "{}: a missing server root is made 0755, owned by the running user",
            made.display()
        );
        assert_no_acl(made, "the server root");
    }
    assert_eq!(
        folder_owner(&root.join(".envsync")).0,
        0o700,
        "the state folder must be private"
    );
    for rel in ["apps", "apps/api", "apps/api/envs"] {
        assert_eq!(
            folder_owner(&root.join(rel)),
            (0o755, me, daemon),
            "{rel}: expected 0755, owned by the running user, group daemon (the entry's)"
        );
    }
    for rel in ["private", "private/db"] {
        assert_eq!(
            folder_owner(&root.join(rel)),
            (0o750, me, daemon),
            "{rel}: expected dir_mode 0750, owned by the running user, group daemon"
        );
    }
    for (_, rel, plain) in &plains {
        let path = root.join(rel);
        let meta = fs::metadata(&path).expect("stat file");
        assert_eq!((mode(&meta), meta.uid(), meta.gid()), (0o640, me, daemon));
        let (ok, bytes) = cat_as("daemon", &path);
        assert!(ok, "daemon (group daemon) cannot read {rel}");
        assert_eq!(sha256(&bytes), sha256(plain.as_bytes()), "{rel} as daemon");
        let (ok, _) = cat_as("nobody", &path);
        assert!(!ok, "nobody can read {rel} (0640 root:daemon)");
    }
    assert!(temps_under(&fx.server).is_empty());
}

/// `[defaults] dir_mode = "0750"`: a missing server root is made 0750, an entry without its
/// own `dir_mode` gets 0750, one with `dir_mode = "0755"` gets 0755; a folder without `group`
/// gets the running user's group. An existing folder on the way (0711) and an existing root
/// are never changed.
#[test]
fn defaults_dir_mode_applies_to_the_root_and_existing_folders_stay() {
    let fx = Fixture::new();
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    let daemon = system_id("group", "daemon");
    let legacy = fx.server.join("legacy");
    fs::create_dir(&legacy).expect("mkdir legacy");
    set_mode(&legacy, 0o711);
    set_mode(&fx.server, 0o751);
    let entries = [
        format!(
            "{}group = \"daemon\"\n",
            Fixture::entry("enc/legacy.env.enc", "legacy/sub/.env")
        ),
        format!(
            "{}dir_mode = \"0755\"\n",
            Fixture::entry("enc/open.env.enc", "open/deep/.env")
        ),
    ];
    for (i, repo) in ["enc/legacy.env.enc", "enc/open.env.enc"]
        .iter()
        .enumerate()
    {
        fx.sops_encrypt(repo, format!("VALUE_{i}=v\n").as_bytes(), "dotenv");
    }
    write_manifest(&fx.repo, &fx.server, "dir_mode = \"0750\"", &entries);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        folder_owner(&fx.server).0,
        0o751,
        "an existing root was changed"
    );
    assert_eq!(
        folder_owner(&legacy),
        (0o711, me, my_gid),
        "an existing folder was changed"
    );
    assert_eq!(folder_owner(&legacy.join("sub")), (0o750, me, daemon));
    for rel in ["open", "open/deep"] {
        assert_eq!(
            folder_owner(&fx.server.join(rel)),
            (0o755, me, my_gid),
            "{rel}"
        );
    }

    // The same manifest on a server root that does not exist yet.
    let fresh = fx.dir.path().join("fresh-root");
    write_manifest(&fx.repo, &fresh, "dir_mode = \"0750\"", &entries);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        folder_owner(&fresh),
        (0o750, me, my_gid),
        "a missing server root is made with [defaults] dir_mode"
    );
    assert_eq!(folder_owner(&fresh.join(".envsync")).0, 0o700);
    assert_eq!(folder_owner(&fresh.join("legacy")), (0o750, me, daemon));
    assert_eq!(folder_owner(&fresh.join("open")), (0o755, me, my_gid));
    assert!(temps_under(&fx.server).is_empty() && temps_under(&fresh).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 2. Signals
// ---------------------------------------------------------------------------------------------

/// A signal sent while strace holds envsync in the first `syncfs` of an 11-entry batch (every
/// temp staged, nothing renamed yet): 130 or 143, no temp, every target OLD, a message that
/// says nothing was written; the next run writes everything.
fn signal_during_the_flush(signal: Signal, name: &str, code: i32) {
    let b = Batch::new(11);
    let mut cmd = b.strace_decrypt(
        Path::new("/dev/null"),
        &[
            "-e",
            "trace=syncfs",
            "-e",
            "inject=syncfs:delay_enter=2000000:when=1",
        ],
    );
    let what = format!("decrypt sent {name} in its first syncfs");
    let mut run = Background::spawn(&mut cmd, &what, true);
    let tracer = run.pid();
    let mut envsync = None;
    wait_until("envsync to be held in its first syncfs", || {
        assert!(run.running(), "{what}: ended before its first syncfs");
        envsync = envsync.or_else(|| traced_envsync(tracer));
        envsync.is_some_and(|pid| in_syscall(pid, &[SYS_SYNCFS]))
    });
    let staged = temps_under(&b.fx.server);
    assert!(
        staged.len() >= b.targets.len(),
        "{what}: the flush comes after every temp is staged, yet only {staged:?}"
    );
    kill(envsync.expect("envsync found"), signal);
    let end = run.wait();
    assert_eq!(
        end.code, code,
        "{what}: expected exit {code}\nstderr:\n{}",
        end.stderr
    );
    assert!(
        end.stderr.contains(&format!("interrupted by {name}"))
            && end.stderr.contains("nothing was written"),
        "{what}: the message must name the signal and say nothing was written:\n{}",
        end.stderr
    );
    b.assert_all(Side::Old, &what);
    b.fx.envsync(["decrypt", "--force"]).expect(0);
    b.assert_all(Side::New, "the run after the interrupted one");
}

#[test]
fn sigint_during_the_flush_exits_130_and_writes_nothing() {
    let (signal, name, code) = SIGNALS[0];
    signal_during_the_flush(signal, name, code);
}

#[test]
fn sigterm_during_the_flush_exits_143_and_writes_nothing() {
    let (signal, name, code) = SIGNALS[1];
    signal_during_the_flush(signal, name, code);
}

#[test]
fn sighup_during_the_flush_exits_143_and_writes_nothing() {
    let (signal, name, code) = SIGNALS[2];
    signal_during_the_flush(signal, name, code);
}

/// A signal injected at the third rename of an 11-entry batch (two targets already replaced,
/// the third being replaced): the batch is put back, all OLD, no temp, 130 or 143.
#[test]
fn a_signal_between_renames_puts_the_batch_back() {
    let b = Batch::new(11);
    let rename = b.rename_syscall();
    for (_, name, code) in SIGNALS {
        let context = format!("{name} injected at {rename} #3");
        let (got, stderr) = b.run_strace(
            &[
                "-e",
                &format!("trace={rename}"),
                "-e",
                &format!("inject={rename}:signal={name}:when=3"),
            ],
            &context,
        );
        assert_eq!(
            got, code,
            "{context}: expected exit {code}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("interrupted by {name}"))
                && stderr.contains("nothing was written"),
            "{context}: the message must name the signal and say nothing was written:\n{stderr}"
        );
        b.assert_all(Side::Old, &context);
    }
}

/// A signal that lands in the last step of the run (the final `syncfs`, after every rename and
/// the last safe point): every target NEW and durable, no temp, and the exit status still says
/// the run was interrupted, without claiming that nothing was written.
#[test]
fn a_signal_after_the_last_step_leaves_all_new_and_still_exits_130_or_143() {
    let b = Batch::new(11);
    let syncfs = b.profile("syncfs").get("syncfs").copied().unwrap_or(0);
    assert!(
        syncfs >= 2,
        "an 11-entry batch flushes with syncfs: {syncfs}"
    );
    for (_, name, code) in SIGNALS {
        let context = format!("{name} injected at the last syncfs (#{syncfs})");
        let (got, stderr) = b.run_strace(
            &[
                "-e",
                "trace=syncfs",
                "-e",
                &format!("inject=syncfs:signal={name}:when={syncfs}"),
            ],
            &context,
        );
        assert_eq!(
            got, code,
            "{context}: expected exit {code}\nstderr:\n{stderr}"
        );
        assert!(
            stderr.contains(&format!("interrupted by {name}"))
                && !stderr.contains("nothing was written"),
            "{context}: the message must name the signal and not claim nothing was written:\n{stderr}"
        );
        b.assert_all(Side::New, &context);
        b.put_old();
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Failures leave no temp; 4. exit 2 means nothing was written
// ---------------------------------------------------------------------------------------------

/// Checks a failed decrypt: exit 2, every target OLD, no temp; then that its message says
/// nothing was written. A message that does not is returned (so a test reports every such case
/// after checking all of them), not asserted here.
#[track_caller]
fn assert_failed_and_undone(b: &Batch, code: i32, stderr: &str, context: &str) -> Option<String> {
    assert_eq!(code, 2, "{context}: expected exit 2\nstderr:\n{stderr}");
    b.assert_all(Side::Old, context);
    (!stderr.contains("nothing was written")).then(|| format!("{context}: {}", stderr.trim()))
}

/// Fails when any exit 2 did not say that nothing was written.
#[track_caller]
fn assert_all_said_nothing_was_written(silent: &[String]) {
    assert!(
        silent.is_empty(),
        "exit 2 must say that nothing was written; these runs did not:\n{}",
        silent.join("\n")
    );
}

/// Injected I/O faults in an 11-entry batch: EIO from the flush before the first rename, and
/// EXDEV from the first rename, one in the middle, the last target's, the first sync record's
/// (every target is NEW by then) and the last record's. Each: exit 2, all OLD, no temp.
#[test]
fn injected_faults_leave_no_temp_and_every_target_old() {
    let b = Batch::new(11);
    let rename = b.rename_syscall();
    let n = b.targets.len();
    let mut faults = vec![("syncfs".to_string(), "EIO", 1)];
    for when in [1, 6, n, n + 1, 2 * n] {
        faults.push((rename.clone(), "EXDEV", when));
    }
    let mut silent = Vec::new();
    for (syscall, error, when) in faults {
        let context = format!("{error} injected at {syscall} #{when}");
        let (code, stderr) = b.run_strace(
            &[
                "-e",
                &format!("trace={syscall}"),
                "-e",
                &format!("inject={syscall}:error={error}:when={when}"),
            ],
            &context,
        );
        silent.extend(assert_failed_and_undone(&b, code, &stderr, &context));
    }
    b.fx.envsync(["decrypt", "--force"]).expect(0);
    b.assert_all(Side::New, "the run after the faults");
    assert_all_said_nothing_was_written(&silent);
}

/// An immutable first target and an append-only last target of an 11-entry batch: the rename
/// over each is refused (EPERM); exit 2, all OLD, no temp.
#[test]
fn immutable_and_append_only_targets_leave_no_temp_and_every_target_old() {
    let b = Batch::new(11);
    let mut silent = Vec::new();
    for (flag, i) in [("+i", 0), ("+a", 10)] {
        let context = format!("chattr {flag} on target #{}", i + 1);
        let guard = Chattr::set(flag, &b.path(i));
        let run = b.fx.envsync(["decrypt", "--force"]);
        assert!(
            run.stderr.contains(&b.path(i).display().to_string()),
            "{context}: the message must name the target:\n{}",
            run.stderr
        );
        silent.extend(assert_failed_and_undone(
            &b,
            run.code,
            &run.stderr,
            &context,
        ));
        drop(guard);
    }
    b.fx.envsync(["decrypt", "--force"]).expect(0);
    b.assert_all(Side::New, "the run after chattr -i -a");
    assert_all_said_nothing_was_written(&silent);
}

/// `chattr +i` on the 5th target: its rename fails after four targets were replaced. Exit 2,
/// the message names it and says nothing was written, every target OLD, no temp.
fn immutable_fifth_target(n: usize) {
    let b = Batch::new(n);
    let fifth = b.path(4);
    let guard = Chattr::set("+i", &fifth);
    let run = b.fx.envsync(["decrypt", "--force"]);
    let context = format!("immutable 5th target of {n}");
    assert!(
        run.stderr.contains(&fifth.display().to_string()),
        "{context}: the message must name {}:\n{}",
        fifth.display(),
        run.stderr
    );
    let silent = assert_failed_and_undone(&b, run.code, &run.stderr, &context);
    drop(guard);
    b.fx.envsync(["decrypt", "--force"]).expect(0);
    b.assert_all(Side::New, "the run after chattr -i");
    assert_all_said_nothing_was_written(&Vec::from_iter(silent));
}

#[test]
fn exit_2_means_nothing_was_written_in_a_large_batch() {
    immutable_fifth_target(11);
}

#[test]
fn exit_2_means_nothing_was_written_in_a_small_batch() {
    immutable_fifth_target(6);
}

/// A batch that creates folders (the `db/conf` targets are missing, their folders too) and then
/// fails at the last `web` target (immutable): the created files and folders are removed again,
/// every other target OLD, no temp. Small and large batches.
#[test]
fn an_undone_batch_removes_the_folders_it_created() {
    for n in [6, 11] {
        let b = Batch::new(n);
        fs::remove_dir_all(b.fx.server_path("db")).expect("remove db");
        let last_web = (0..n).rev().find(|i| i % 3 == 2).expect("a web target");
        let guard = Chattr::set("+i", &b.path(last_web));
        let run = b.fx.envsync(["decrypt", "--force"]);
        let context = format!(
            "{n} entries, new folders db/conf, immutable target #{}",
            last_web + 1
        );
        assert_eq!(run.code, 2, "{context}:\n{}", run.stderr);
        assert!(
            run.stderr.contains("nothing was written"),
            "{context}:\n{}",
            run.stderr
        );
        assert!(
            !b.fx.server_path("db").exists(),
            "{context}: the folders the failed run created are still there"
        );
        let sides = b.sides(&context);
        for (i, side) in sides.iter().enumerate() {
            let expected = if i % 3 == 1 { None } else { Some(Side::Old) };
            assert_eq!(*side, expected, "{context}: target #{}", i + 1);
        }
        drop(guard);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Inherited default ACLs
// ---------------------------------------------------------------------------------------------

/// A folder with `setfacl -m u:nobody:rx` and a default ACL `u:nobody:r`: a file created there
/// the ordinary way is readable by nobody (the control); the files envsync writes there (mode
/// 0640, replacing files that carried the inherited ACL, and one in new folders under it) have
/// no ACL at all and nobody cannot read them; the folders it creates have no ACL and no
/// default; the existing folder keeps its ACL.
fn inherited_default_acl_is_stripped(n: usize) {
    let fx = Fixture::new();
    open_to_others(&fx);
    let shared = fx.server.join("shared");
    fs::create_dir(&shared).expect("mkdir shared");
    set_mode(&shared, 0o755);
    setfacl(&["-m", "u:nobody:rx"], &shared);
    setfacl(&["-d", "-m", "u:nobody:r"], &shared);
    let control = shared.join("control.txt");
    fs::write(&control, b"control\n").expect("write control");
    assert!(
        cat_as("nobody", &control).0,
        "the control file must be readable by nobody through the default ACL, else this test proves nothing"
    );

    let mut entries = Vec::new();
    let mut targets = Vec::new();
    for i in 0..n {
        let server = if i == n - 1 {
            "shared/new/sub/app.env".to_string()
        } else {
            format!("shared/app{i}.env")
        };
        entries.push(format!(
            "{}mode = \"0640\"\n",
            Fixture::entry(&format!("enc/app{i}.env.enc"), &server)
        ));
        let value = common::secret(&format!("acl-secret-{i}-{}", "y".repeat(i + 1)));
        targets.push((server, format!("ACL_{i}={value}\n")));
    }
    fx.manifest(&entries);
    for (server, plain) in &targets {
        fx.write_server(server, plain.as_bytes());
    }
    fx.envsync(["encrypt"]).expect(0);
    // The server holds OLD files that inherited the ACL; the new folders are gone again.
    for (server, _) in &targets {
        fs::write(fx.server_path(server), b"OLD=1\n").expect("write OLD");
    }
    fs::remove_dir_all(shared.join("new")).expect("remove new");
    assert!(
        getfacl(&fx.server_path(&targets[0].0))
            .iter()
            .any(|l| l.starts_with("user:nobody:")),
        "the OLD file must carry the inherited ACL"
    );

    fx.envsync(["decrypt", "--force"]).expect(0);
    for (server, plain) in &targets {
        let path = fx.server_path(server);
        let context = format!("{server} ({n} entries)");
        assert_eq!(
            sha256(&fs::read(&path).expect("read")),
            sha256(plain.as_bytes()),
            "{context}: content"
        );
        assert_eq!(common::mode_of(&path), 0o640, "{context}: mode");
        assert_no_acl(&path, &context);
        assert!(
            !cat_as("nobody", &path).0,
            "{context}: nobody can read a 0640 root:root file"
        );
    }
    for folder in [shared.join("new"), shared.join("new/sub")] {
        assert_eq!(common::mode_of(&folder), 0o755, "{}", folder.display());
        assert_no_acl(&folder, "a folder envsync created");
    }
    let kept = getfacl(&shared);
    assert!(
        kept.iter().any(|l| l.starts_with("user:nobody:r-x"))
            && kept
                .iter()
                .any(|l| l.starts_with("default:user:nobody:r--")),
        "an existing folder's ACL was changed: {kept:?}"
    );
    assert!(cat_as("nobody", &control).0);
    assert!(temps_under(&fx.server).is_empty());
}

#[test]
fn inherited_default_acl_is_stripped_in_a_small_batch() {
    inherited_default_acl_is_stripped(3);
}

#[test]
fn inherited_default_acl_is_stripped_in_a_large_batch() {
    inherited_default_acl_is_stripped(10);
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile folders
// ---------------------------------------------------------------------------------------------

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(system_id("user", "nobody")), None)
        .unwrap_or_else(|e| panic!("chown nobody {}: {e}", path.display()));
}

/// A fixture with two entries, `server` and `fresh/sub/.env` (its folders missing), both
/// encrypted in the repo; the server root is empty and has no state folder yet.
fn two_entries(server: &str, extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.manifest(&[
        format!(
            "{}mode = \"0640\"\n{extra}",
            Fixture::entry("enc/app.env.enc", server)
        ),
        Fixture::entry("enc/fresh.env.enc", "fresh/sub/.env"),
    ]);
    let app = common::secret("hostile-app-secret-5d4c3b");
    fx.sops_encrypt(
        "enc/app.env.enc",
        format!("APP={app}\n").as_bytes(),
        "dotenv",
    );
    fx.sops_encrypt("enc/fresh.env.enc", b"FRESH=1\n", "dotenv");
    fx
}

type Setup = fn(&Fixture) -> PathBuf;

fn nobody_owns_app(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    chown_nobody(&d);
    d
}

fn nobody_owns_outer(fx: &Fixture) -> PathBuf {
    fs::create_dir_all(fx.server.join("outer/app")).expect("mkdir");
    let d = fx.server.join("outer");
    chown_nobody(&d);
    d
}

fn app_0777(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o777);
    d
}

fn app_0775(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o775);
    d
}

fn open_0777(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("open");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o777);
    d
}

fn above_root_0775(fx: &Fixture) -> PathBuf {
    set_mode(fx.dir.path(), 0o775);
    fx.dir.path().to_path_buf()
}

/// A folder at or above a target that someone other than root or the target's owner can write
/// to: refused with exit 2 before anything is written or created (no file, no folder, no state
/// folder, no lock, no temp); the message names the folder and the `chown`/`chmod` that fixes
/// it.
#[test]
fn hostile_folders_are_refused_before_anything_is_written() {
    let cases: [(&str, &str, Setup, &str); 6] = [
        (
            "target folder owned by nobody",
            "app/.env",
            nobody_owns_app,
            "chown",
        ),
        (
            "folder two above owned by nobody",
            "outer/app/.env",
            nobody_owns_outer,
            "chown",
        ),
        ("target folder 0777", "app/.env", app_0777, "chmod"),
        ("target folder 0775", "app/.env", app_0775, "chmod"),
        (
            "missing target folder under a 0777 one",
            "open/missing/.env",
            open_0777,
            "chmod",
        ),
        (
            "a folder above the server root 0775",
            "app/.env",
            above_root_0775,
            "chmod",
        ),
    ];
    for (label, server, setup, fix) in cases {
        let fx = two_entries(server, "");
        let folder = setup(&fx);
        let before = tree(&fx.server);
        let attrs = folder_owner(&folder);
        let run = fx.envsync(["decrypt", "--force"]);
        assert_eq!(
            run.code, 2,
            "{label}: expected exit 2\nstderr:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("{}:", folder.display())) && run.stderr.contains(fix),
            "{label}: the message must name {} and contain `{fix}`:\n{}",
            folder.display(),
            run.stderr
        );
        assert_eq!(
            tree(&fx.server),
            before,
            "{label}: a refused run created or changed something under the server root"
        );
        assert!(
            !fx.server.join(".envsync").exists(),
            "{label}: the state folder was created"
        );
        assert_eq!(
            folder_owner(&folder),
            attrs,
            "{label}: the folder was changed"
        );
    }
}

/// Not hostile: a sticky world-writable folder (1777, as /tmp), and a folder owned by the
/// target's own owner. Both are written.
#[test]
fn sticky_folders_and_folders_of_the_targets_owner_are_accepted() {
    let fx = two_entries("sticky/app.env", "");
    let sticky = fx.server.join("sticky");
    fs::create_dir(&sticky).expect("mkdir");
    set_mode(&sticky, 0o1777);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(common::mode_of(&sticky.join("app.env")), 0o640);
    assert_eq!(common::mode_of(&sticky), 0o1777);
    assert!(temps_under(&fx.server).is_empty());

    let fx = two_entries("owned/app.env", "owner = \"nobody\"\n");
    let owned = fx.server.join("owned");
    fs::create_dir(&owned).expect("mkdir");
    chown_nobody(&owned);
    fx.envsync(["decrypt"]).expect(0);
    let meta = fs::metadata(owned.join("app.env")).expect("stat");
    assert_eq!(
        (meta.uid(), mode(&meta)),
        (system_id("user", "nobody"), 0o640)
    );
    assert!(temps_under(&fx.server).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. The run lock
// ---------------------------------------------------------------------------------------------

/// `flock PATH sleep 600` in the background (as `user` when given), returned once the lock is
/// held; dropping it ends the holder.
fn hold_lock(path: &Path, user: Option<&str>) -> Background {
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new(common::tool("runuser"));
            cmd.args(["-u", user, "--"]).arg(common::tool("flock"));
            cmd
        }
        None => Command::new(common::tool("flock")),
    };
    cmd.arg(path).args(["sleep", "600"]).stdin(Stdio::null());
    let what = format!(
        "flock {} held by {}",
        path.display(),
        user.unwrap_or("root")
    );
    let mut holder = Background::spawn(&mut cmd, &what, false);
    wait_until(&what, || {
        assert!(holder.running(), "{what}: the holder ended");
        lock_held(path)
    });
    holder
}

/// Another user holding a lock on `secrets.toml` (readable by all) does not block a run: the
/// run's lock is `<state>/lock`, in the private state folder.
#[test]
fn another_users_lock_on_the_manifest_does_not_block_a_run() {
    let b = Batch::new(2);
    open_to_others(&b.fx);
    let manifest = b.fx.repo.join("secrets.toml");
    set_mode(&manifest, 0o644);
    let _holder = hold_lock(&manifest, Some("nobody"));
    let mut cmd = envsync_command(&b.fx, &["decrypt", "--force"]);
    let run = Background::spawn(&mut cmd, "decrypt while nobody locks secrets.toml", true);
    let end = run.wait_within(Duration::from_secs(20));
    assert_eq!(end.code, 0, "stderr:\n{}", end.stderr);
    assert!(
        !end.stderr.contains("waiting"),
        "the run waited for a lock another user holds:\n{}",
        end.stderr
    );
    b.assert_all(Side::New, "decrypt beside nobody's lock");
    let state = b.fx.server.join(".envsync");
    assert_eq!(common::mode_of(&state), 0o700);
    assert_eq!(common::mode_of(&state.join("lock")), 0o600);
}

/// While root holds `<state>/lock`, a run says on stderr that it is waiting and names the lock,
/// writes nothing, and finishes once the lock is released.
#[test]
fn a_run_waits_for_the_state_lock_and_says_so() {
    let b = Batch::new(2);
    let lock = b.fx.server.join(".envsync/lock");
    assert!(lock.is_file(), "the lock lives at {}", lock.display());
    let holder = hold_lock(&lock, None);
    let mut cmd = envsync_command(&b.fx, &["decrypt", "--force"]);
    let mut run = Background::spawn(&mut cmd, "decrypt behind a held lock", true);
    run.wait_for_line(&["waiting", &lock.display().to_string()]);
    assert!(run.running(), "the run ended while the lock was held");
    b.assert_all(Side::Old, "while waiting for the lock");
    drop(holder);
    let end = run.wait();
    assert_eq!(end.code, 0, "stderr:\n{}", end.stderr);
    b.assert_all(Side::New, "after the lock was released");
}

/// SIGINT (SIGTERM, SIGHUP) while a run waits for the lock: 130 (143), nothing written.
#[test]
fn a_signal_while_waiting_for_the_lock_ends_the_run() {
    let b = Batch::new(2);
    let lock = b.fx.server.join(".envsync/lock");
    let _holder = hold_lock(&lock, None);
    for (signal, name, code) in SIGNALS {
        let mut cmd = envsync_command(&b.fx, &["decrypt", "--force"]);
        let what = format!("decrypt sent {name} while waiting for the lock");
        let mut run = Background::spawn(&mut cmd, &what, true);
        run.wait_for_line(&["waiting", &lock.display().to_string()]);
        kill(run.pid(), signal);
        let end = run.wait();
        assert_eq!(end.code, code, "{what}:\n{}", end.stderr);
        assert!(
            end.stderr.contains(&format!("interrupted by {name}")),
            "{what}:\n{}",
            end.stderr
        );
        b.assert_all(Side::Old, &what);
    }
}

/// Two manifests (two repos) with one server root share one lock: while the first run is held
/// by strace in its first rename, the second says it is waiting for `<root>/.envsync/lock` and
/// does not finish before the first.
#[test]
fn two_manifests_on_one_server_root_take_turns() {
    let a = Batch::new(2);
    let repo_b = a.fx.dir.path().join("repo-b");
    let b_value = common::secret("second-manifest-secret-77aa");
    a.fx.sops_encrypt(
        "../repo-b/enc/b.env.enc",
        format!("B={b_value}\n").as_bytes(),
        "dotenv",
    );
    write_manifest(
        &repo_b,
        &a.fx.server,
        "",
        &[Fixture::entry("enc/b.env.enc", "b/.env")],
    );
    let lock = a.fx.server.join(".envsync/lock");
    let rename = a.rename_syscall();
    let mut cmd_a = a.strace_decrypt(
        Path::new("/dev/null"),
        &[
            "-e",
            &format!("trace={rename}"),
            "-e",
            &format!("inject={rename}:delay_enter=3000000:when=1"),
        ],
    );
    let mut run_a = Background::spawn(&mut cmd_a, "manifest A, held in its first rename", true);
    let tracer = run_a.pid();
    let mut pid_a = None;
    wait_until("run A to be held in its first rename", || {
        assert!(run_a.running(), "run A ended early");
        pid_a = pid_a.or_else(|| traced_envsync(tracer));
        pid_a.is_some_and(|pid| in_syscall(pid, &SYS_RENAMES))
    });
    let mut cmd_b = envsync_command(&a.fx, &["decrypt"]);
    cmd_b.current_dir(&repo_b);
    let mut run_b = Background::spawn(&mut cmd_b, "manifest B, same server root", true);
    run_b.wait_for_line(&["waiting", &lock.display().to_string()]);
    while run_a.running() {
        assert!(run_b.running(), "run B finished while run A held the lock");
        std::thread::sleep(Duration::from_millis(5));
    }
    let end_a = run_a.wait();
    assert_eq!(end_a.code, 0, "run A:\n{}", end_a.stderr);
    let end_b = run_b.wait();
    assert_eq!(end_b.code, 0, "run B:\n{}", end_b.stderr);
    a.assert_all(Side::New, "after both runs");
    assert_eq!(
        sha256(&fs::read(a.fx.server_path("b/.env")).expect("read b")),
        sha256(format!("B={b_value}\n").as_bytes())
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Durable sync records
// ---------------------------------------------------------------------------------------------

/// Every rename into `<state>/records/` is followed, before the run exits, by an fsync of that
/// folder or a `syncfs` (`strace -f -y`, which shows the path behind each descriptor).
fn records_are_durable_before_exit(n: usize) {
    let b = Batch::new(n);
    let log = b.fx.dir.path().join("records.strace");
    let mut cmd = b.strace_decrypt(&log, &["-y", "-e", "trace=renameat,renameat2,fsync,syncfs"]);
    let (code, _, stderr) = run_checked(&mut cmd, "decrypt under strace -y");
    assert_eq!(code, 0, "stderr:\n{stderr}");
    b.assert_all(Side::New, "decrypt under strace");
    let records = fs::canonicalize(b.fx.server.join(".envsync/records")).expect("records");
    let records = format!("<{}>", records.display());
    let text = fs::read_to_string(&log).expect("read log");
    let calls = parse_strace(&text);
    let renames: Vec<usize> = (0..calls.len())
        .filter(|&i| {
            calls[i].name.starts_with("rename")
                && calls[i].arg(2).ends_with(&records)
                && calls[i].ret == "0"
        })
        .collect();
    assert_eq!(
        renames.len(),
        n,
        "expected one record rename an entry ({n}):\n{text}"
    );
    for &i in &renames {
        let flushed = calls[i + 1..].iter().any(|c| {
            c.ret == "0"
                && (c.name == "syncfs" || (c.name == "fsync" && c.arg(0).ends_with(&records)))
        });
        assert!(
            flushed,
            "{n} entries: no fsync of the records folder nor syncfs after {:?}:\n{text}",
            calls[i]
        );
    }
}

#[test]
fn records_are_durable_before_exit_one_entry() {
    records_are_durable_before_exit(1);
}

#[test]
fn records_are_durable_before_exit_eleven_entries() {
    records_are_durable_before_exit(11);
}
