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
//!
//! This file holds the shared fixture helpers (the [`Batch`] of N entries with the repo NEW
//! and the server OLD, [`Background`] runs, `getfacl`/`chattr`/`runuser` wrappers); the tests
//! live in its submodules, one concern each: [`folders`] (`dir_mode`, default ACLs, hostile
//! folders), [`signals`] (signals during a batch), [`failures`] (failed batches and exit 2),
//! [`lock`] (the run lock), [`records`] (durable sync records) and [`releases`] (a release
//! entry killed or signalled while its release is verified or its on_change runs).

mod failures;
mod folders;
mod lock;
mod records;
mod releases;
mod signals;

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

use crate::common::clean_env;
use crate::common::{self, Fixture};
use crate::writer::{mode, parse_strace, run_checked, strace, temps_under};

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
