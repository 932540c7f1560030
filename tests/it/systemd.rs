//! The shipped systemd units (`examples/systemd/envsync-sync.service` and `.timer`):
//! `systemd-analyze verify` accepts them, and the service's own commands, read from the unit
//! file (`ExecStartPre=` then `ExecStart=`, in its `WorkingDirectory=` with its
//! `Environment=`), behave as a timer needs: a second run on a synced repo is silent and
//! writes nothing, and a server edit not yet encrypted fails the run with exit 3 and one line
//! on stderr naming the entry.
//!
//! The units' placeholders (`/srv/secrets-repo`, `/opt/docker`, the key file, the installed
//! binaries) are rewritten to a temp folder: a clone of a real bare git remote, a server root,
//! the throwaway test key, the test's envsync and the real git.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, canary, git, Fixture};

const SERVICE: &str = "envsync-sync.service";
const TIMER: &str = "envsync-sync.timer";

/// The repo checkout the unit names.
const REPO_PLACEHOLDER: &str = "/srv/secrets-repo";
/// The key file the unit names (rewritten before the server root it lies in).
const KEY_PLACEHOLDER: &str = "/opt/docker/.age-key.txt";
/// The server root the unit names.
const ROOT_PLACEHOLDER: &str = "/opt/docker";
const ENVSYNC_PLACEHOLDER: &str = "/usr/local/bin/envsync";
const GIT_PLACEHOLDER: &str = "/usr/bin/git";

/// The dotenv entries of the test repo: repo path, server path.
const ENTRIES: [(&str, &str); 3] = [
    ("envs/api/.env.prod.enc", "api/.env.prod"),
    ("envs/worker/.env.prod.enc", "worker/.env.prod"),
    ("envs/db/.env.enc", "db/.env"),
];

/// The text of a shipped unit file.
fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/systemd")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A unit's text with its placeholders pointing at the test's checkout, server root, key,
/// envsync and git. Every placeholder must be in the service (the test would otherwise
/// silently run something else).
fn rewritten(text: &str, checkout: &Path, server: &Path) -> String {
    let git_bin = common::tool("git");
    let pairs = [
        (KEY_PLACEHOLDER, common::key_file(1)),
        (ROOT_PLACEHOLDER, server.to_path_buf()),
        (REPO_PLACEHOLDER, checkout.to_path_buf()),
        (ENVSYNC_PLACEHOLDER, common::envsync_bin()),
        (GIT_PLACEHOLDER, git_bin),
    ];
    let mut out = text.to_string();
    for (from, to) in pairs {
        out = out.replace(from, to.to_str().unwrap());
    }
    out
}

/// The `[Service]` settings of a unit, in order: (key, value).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continued lines are not parsed: {line}"
        );
        if section == "Service" {
            let (key, value) = line.split_once('=').unwrap();
            out.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    out
}

/// The values of one `[Service]` key.
fn values<'s>(settings: &'s [(String, String)], key: &str) -> Vec<&'s str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// What systemd runs for the service: its folder, its environment, and its commands
/// (every `ExecStartPre=`, then every `ExecStart=`), each an argv.
struct Service {
    dir: PathBuf,
    env: Vec<(String, String)>,
    commands: Vec<Vec<String>>,
}

impl Service {
    fn parse(unit: &str) -> Self {
        let settings = service_settings(unit);
        assert_eq!(values(&settings, "Type"), ["oneshot"]);
        let dir = values(&settings, "WorkingDirectory");
        assert_eq!(dir.len(), 1, "one WorkingDirectory=");
        let env = values(&settings, "Environment")
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(|pair| {
                let (k, v) = pair.trim_matches('"').split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let commands = ["ExecStartPre", "ExecStart"]
            .iter()
            .flat_map(|key| values(&settings, key))
            .map(|line| {
                assert!(
                    !line.contains(['"', '\'', '$', '%', ';']),
                    "quoting, variables and specifiers are not parsed: {line}"
                );
                // `-` would ignore a failure; `@`, `:`, `+`, `!` change what runs.
                assert!(
                    !line.starts_with(['-', '@', ':', '+', '!']),
                    "a command prefix in {line}"
                );
                line.split_whitespace().map(str::to_string).collect()
            })
            .collect();
        Self {
            dir: PathBuf::from(dir[0]),
            env,
            commands,
        }
    }
}

/// The outcome of one command of a service run.
struct Step {
    argv: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the service's commands as systemd does: in order, in its folder, with a minimal
/// environment plus its `Environment=`, stopping at the first that fails. With `trace`,
/// each envsync command runs under strace logging to that file (git is not traced).
fn run_service(svc: &Service, fx: &Fixture, trace: Option<&Path>) -> Vec<Step> {
    let mut steps = Vec::new();
    for argv in &svc.commands {
        let is_envsync = Path::new(&argv[0]) == common::envsync_bin();
        let mut cmd = match trace.filter(|_| is_envsync) {
            Some(log) => {
                let mut c = Command::new(common::tool("strace"));
                c.args(["-f", "-y", "-s", "200", "-o"])
                    .arg(log)
                    .args(["-e", "trace=openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,write,mkdir,mkdirat"])
                    .args(argv);
                c
            }
            None => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &fx.home)
            .env("LANG", "C.UTF-8")
            .current_dir(&svc.dir)
            .stdin(Stdio::null());
        for (k, v) in &svc.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let step = Step {
            argv: argv.clone(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        common::assert_no_leak(&step.stdout, &format!("stdout of {argv:?}"));
        common::assert_no_leak(&step.stderr, &format!("stderr of {argv:?}"));
        let failed = step.code != 0;
        steps.push(step);
        if failed {
            break;
        }
    }
    steps
}

/// A synced setup: [`cloned`], and one run of the service done (which writes every server
/// file).
fn synced() -> (Fixture, Service) {
    let (fx, svc) = cloned();
    let first = run_service(&svc, &fx, None);
    for step in &first {
        assert_eq!(
            step.code, 0,
            "first run: {:?}\n{}{}",
            step.argv, step.stdout, step.stderr
        );
    }
    for (_, server) in ENTRIES {
        assert!(fx.server_path(server).is_file(), "{server} was not written");
    }
    (fx, svc)
}

/// A fixture repo with three dotenv entries encrypted by real sops, pushed to a bare remote
/// and cloned (the fixture's repo is then the clone); the service, parsed from the shipped
/// unit rewritten to point at the clone. Nothing is decrypted yet.
fn cloned() -> (Fixture, Service) {
    let mut fx = Fixture::new();
    fx.manifest(
        &ENTRIES
            .iter()
            .map(|(repo, server)| Fixture::entry(repo, server))
            .collect::<Vec<_>>(),
    );
    for (i, (repo, _)) in ENTRIES.iter().enumerate() {
        let plain = format!(
            "# entry {i}\nDATABASE_URL=postgres://app:{}@db/app\nAPI_TOKEN={}\n",
            canary("db"),
            canary("token")
        );
        fx.sops_encrypt(repo, plain.as_bytes(), "dotenv");
    }
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-q", "-m", "secrets"]);
    let origin = fx.dir.path().join("origin.git");
    let checkout = fx.dir.path().join("checkout");
    git(
        &fx,
        &["clone", "-q", "--bare", ".", origin.to_str().unwrap()],
    );
    git(
        &fx,
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            checkout.to_str().unwrap(),
        ],
    );
    git(&fx, &["remote", "add", "origin", origin.to_str().unwrap()]);
    // From here on the server's checkout is the repo the fixture's helpers act on; the
    // first repo (a teammate's, [`upstream`]) pushes to `origin`.
    fx.repo = checkout;
    let svc = Service::parse(&rewritten(&shipped(SERVICE), &fx.repo, &fx.server));
    assert_eq!(
        svc.dir, fx.repo,
        "WorkingDirectory= is the repo placeholder"
    );
    let first = run_service(&svc, &fx, None);
    for step in &first {
        assert_eq!(
            step.code, 0,
            "first run: {:?}\n{}{}",
            step.argv, step.stdout, step.stderr
        );
    }
    for (_, server) in ENTRIES {
        assert!(fx.server_path(server).is_file(), "{server} was not written");
    }
    (fx, svc)
}

/// The teammate's repo [`cloned`] made first, which pushes to the remote.
fn upstream(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("repo")
}

/// Runs git in the teammate's repo ([`upstream`]); it must succeed.
fn git_upstream(fx: &Fixture, args: &[&str]) {
    let top = upstream(fx);
    let mut all = vec!["-C", top.to_str().unwrap()];
    all.extend_from_slice(args);
    git(fx, &all);
}

/// Every file under a folder: path, bytes and mtime (seconds, nanoseconds).
fn files_with_mtimes(root: &Path) -> Vec<(PathBuf, Vec<u8>, i64, i64)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let meta = e.metadata().unwrap();
            (
                e.path().to_path_buf(),
                fs::read(e.path()).unwrap(),
                meta.mtime(),
                meta.mtime_nsec(),
            )
        })
        .collect()
}

/// Proves: `systemd-analyze verify --man=no` exits 0 on both shipped units (their binaries
/// rewritten to the test's envsync and the real git, which verify requires to exist), and
/// prints no warning at all: no unknown key, section or value.
#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::Builder::new()
        .prefix("envsync-systemd")
        .tempdir()
        .unwrap();
    let (checkout, server) = (dir.path().join("repo"), dir.path().join("server"));
    fs::create_dir_all(&checkout).unwrap();
    fs::create_dir_all(&server).unwrap();
    let service = shipped(SERVICE);
    for placeholder in [
        REPO_PLACEHOLDER,
        KEY_PLACEHOLDER,
        ENVSYNC_PLACEHOLDER,
        GIT_PLACEHOLDER,
    ] {
        assert!(
            service.contains(placeholder),
            "{SERVICE} should name {placeholder}"
        );
    }
    let units = dir.path().join("units");
    fs::create_dir_all(&units).unwrap();
    for name in [SERVICE, TIMER] {
        fs::write(
            units.join(name),
            rewritten(&shipped(name), &checkout, &server),
        )
        .unwrap();
    }
    let out = Command::new(common::tool("systemd-analyze"))
        .args(["verify", "--man=no"])
        .arg(units.join(SERVICE))
        .arg(units.join(TIMER))
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "systemd-analyze verify failed:\n{text}"
    );
    for word in ["Unknown", "ignoring", "Failed", "not executable", "warning"] {
        assert!(
            !text.contains(word),
            "systemd-analyze verify warned ({word}):\n{text}"
        );
    }
    assert!(
        !text.contains(SERVICE) && !text.contains(TIMER),
        "systemd-analyze verify said something about the units:\n{text}"
    );

    // The check can see a warning here: an unknown key is one (exit 0, and a line).
    let broken = units.join("broken.service");
    let mut text = fs::read_to_string(units.join(SERVICE)).unwrap();
    text.push_str("ProtectEverything=yes\n");
    fs::write(&broken, text).unwrap();
    let out = Command::new(common::tool("systemd-analyze"))
        .args(["verify", "--man=no"])
        .arg(&broken)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("Unknown key") && said.contains("ProtectEverything"),
        "systemd-analyze verify did not warn of an unknown key:\n{said}"
    );
}

/// Proves: the unit pulls with `git pull --ff-only` in `ExecStartPre=` (a failed pull fails
/// the unit before any decrypt), runs `envsync -q decrypt --manifest <repo>/secrets.toml`,
/// and does not count exit 3 (refused) as a success; the timer fires every 15 minutes
/// (`systemd-analyze calendar` normalizes its `OnCalendar=`), randomized and persistent.
#[test]
fn systemd_units_pull_first_fail_on_refusal_and_fire_every_15_minutes() {
    let timer = shipped(TIMER);
    let calendar = timer
        .lines()
        .find_map(|l| l.strip_prefix("OnCalendar="))
        .expect("OnCalendar= in the timer");
    let out = Command::new(common::tool("systemd-analyze"))
        .args(["calendar", calendar])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("Normalized form: *-*-* *:00/15:00"),
        "OnCalendar={calendar} is not every 15 minutes:\n{said}"
    );
    assert!(timer.lines().any(|l| l.starts_with("RandomizedDelaySec=")));
    assert!(timer.lines().any(|l| l == "Persistent=true"));

    let unit = shipped(SERVICE);
    let settings = service_settings(&unit);
    assert_eq!(
        values(&settings, "ExecStartPre"),
        [format!("{GIT_PLACEHOLDER} pull --ff-only -q")]
    );
    assert_eq!(
        values(&settings, "ExecStart"),
        [format!(
            "{ENVSYNC_PLACEHOLDER} -q decrypt --manifest {REPO_PLACEHOLDER}/secrets.toml"
        )]
    );
    for value in values(&settings, "SuccessExitStatus") {
        assert!(
            !value.split_whitespace().any(|s| s == "3"),
            "SuccessExitStatus= must not include 3: {value}"
        );
    }
    assert_eq!(values(&settings, "ProtectSystem"), ["strict"]);
}

/// The system calls a `SystemCallFilter=` set names (`@group`s expanded by
/// `systemd-analyze syscall-filter`).
fn syscall_set(names: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in names.split_whitespace() {
        if !name.starts_with('@') {
            out.insert(name.to_string());
            continue;
        }
        let list = Command::new(common::tool("systemd-analyze"))
            .args(["syscall-filter", name])
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "systemd-analyze syscall-filter {name}"
        );
        let text = String::from_utf8_lossy(&list.stdout).into_owned();
        // The first line is the group's own name; `#` lines are comments.
        for line in text.lines().skip(1).map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                out.extend(syscall_set(line));
            }
        }
    }
    out
}

/// The system calls a `strace -f -o` log records.
fn syscalls_in(log: &Path) -> BTreeSet<String> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let call = l.split_once(' ')?.1.trim_start();
            let (name, _) = call.split_once('(')?;
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                .then(|| name.to_string())
        })
        .collect()
}

/// Proves: the unit's `SystemCallFilter=` allows every system call envsync makes in a first
/// (writing) run and a second (no-op) run of the service's commands, and git's in its pull:
/// traced by strace, none is outside the set `systemd-analyze syscall-filter` expands.
#[test]
fn systemd_syscall_filter_allows_envsync_and_git() {
    let (fx, svc) = cloned();
    let settings = service_settings(&rewritten(&shipped(SERVICE), &fx.repo, &fx.server));
    let filter = values(&settings, "SystemCallFilter");
    assert_eq!(filter.len(), 1, "one SystemCallFilter= line");
    let allowed = syscall_set(filter[0]);
    assert!(allowed.contains("openat") && allowed.contains("renameat2"));
    assert!(!allowed.contains("mount") && !allowed.contains("reboot"));
    let mut used = BTreeSet::new();
    for run in ["first", "second"] {
        for (i, argv) in svc.commands.iter().enumerate() {
            let log = fx.dir.path().join(format!("{run}.{i}.trace"));
            let out = Command::new(common::tool("strace"))
                .args(["-f", "-qq", "-o"])
                .arg(&log)
                .args(argv)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap())
                .env("HOME", &fx.home)
                .envs(svc.env.iter().map(|(k, v)| (k, v)))
                .current_dir(&svc.dir)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{run} run, {argv:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let calls = syscalls_in(&log);
            assert!(
                calls.contains("execve"),
                "strace logged nothing for {argv:?}"
            );
            used.extend(calls);
        }
        for (_, server) in ENTRIES {
            assert!(
                fx.server_path(server).is_file(),
                "{run} run: {server} missing"
            );
        }
    }
    let denied: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        denied.is_empty(),
        "SystemCallFilter={} denies system calls the service makes: {denied:?}",
        filter[0]
    );
}

/// Proves: on a synced repo, a second run of the service's commands (git pull, then
/// envsync) exits 0 and prints nothing on stdout or stderr; traced by strace, envsync opens
/// nothing for writing outside /dev and /proc, creates no folder, renames and removes
/// nothing and writes to no file; every file in the state folder keeps its bytes and mtime.
#[test]
fn systemd_second_run_is_silent_and_writes_nothing() {
    let (fx, svc) = synced();
    let state = fx.server.join(".envsync");
    let records_before = files_with_mtimes(&state);
    assert!(
        records_before.len() >= ENTRIES.len(),
        "no sync records in {}",
        state.display()
    );
    let servers_before = files_with_mtimes(&fx.server);
    let log = fx.dir.path().join("trace.log");
    let steps = run_service(&svc, &fx, Some(&log));
    assert_eq!(steps.len(), 2, "git pull, then envsync");
    for step in &steps {
        assert_eq!(step.code, 0, "{:?}:\n{}", step.argv, step.stderr);
        assert_eq!(step.stdout, "", "{:?} printed on stdout", step.argv);
        assert_eq!(step.stderr, "", "{:?} printed on stderr", step.argv);
    }
    let trace = fs::read_to_string(&log).unwrap();
    // The run went as far as its lock (opened read-only when it exists: flock needs no more).
    let lock = format!("{}>, \"lock\", O_RDONLY", state.display());
    assert!(
        trace.contains(&lock),
        "strace logged no read-only open of the run's lock; is it tracing?\n{trace}"
    );
    let writes: Vec<&str> = trace
        .lines()
        .filter(|l| {
            let opens_to_write = l.contains("open")
                && ["O_WRONLY", "O_RDWR", "O_CREAT"]
                    .iter()
                    .any(|f| l.contains(f))
                && !l.contains("</dev/")
                && !l.contains("\"/dev/")
                && !l.contains("\"/proc/");
            let changes = ["rename", "unlink", "mkdir", "creat("]
                .iter()
                .any(|c| l.contains(c));
            // With -y a write names its descriptor's target: a file has a path there.
            let writes_file = l.contains("write(") && l.contains("</") && !l.contains("</dev/");
            opens_to_write || changes || writes_file
        })
        .collect();
    assert!(
        writes.is_empty(),
        "envsync wrote during a no-op run:\n{}",
        writes.join("\n")
    );
    assert_eq!(
        files_with_mtimes(&state),
        records_before,
        "a file in the state folder changed"
    );
    assert_eq!(
        files_with_mtimes(&fx.server),
        servers_before,
        "a server file changed"
    );
}

/// Proves: after a server edit not yet encrypted, the service's run fails with exit 3 and
/// stderr is exactly one line, the refusal, naming the entry (server and repo path); the
/// edit stays. With two such edits it is still one line, naming both.
#[test]
fn systemd_unsynced_server_edit_is_one_line_exit_3() {
    let (fx, svc) = synced();
    let (repo, server) = ENTRIES[1];
    let path = fx.server_path(server);
    let mut edited = fs::read(&path).unwrap();
    edited.extend_from_slice(format!("NEW_KEY={}\n", canary("edit")).as_bytes());
    fs::write(&path, &edited).unwrap();

    let steps = run_service(&svc, &fx, None);
    assert_eq!(steps.len(), 2, "git pull, then envsync");
    assert_eq!(steps[0].code, 0, "git pull: {}", steps[0].stderr);
    let envsync = &steps[1];
    assert_eq!(envsync.code, 3, "stderr:\n{}", envsync.stderr);
    assert_eq!(envsync.stdout, "");
    let lines: Vec<&str> = envsync.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", envsync.stderr);
    assert!(
        lines[0].starts_with("envsync: refused: ")
            && lines[0].contains(server)
            && lines[0].contains(repo),
        "the line should be the refusal naming {server} ({repo}): {}",
        lines[0]
    );
    assert_eq!(fs::read(&path).unwrap(), edited, "the server edit was lost");

    let (repo2, server2) = ENTRIES[2];
    let mut other = fs::read(fx.server_path(server2)).unwrap();
    other.extend_from_slice(format!("ANOTHER={}\n", canary("edit")).as_bytes());
    fs::write(fx.server_path(server2), &other).unwrap();
    let steps = run_service(&svc, &fx, None);
    let envsync = steps.last().unwrap();
    assert_eq!(envsync.code, 3, "stderr:\n{}", envsync.stderr);
    let lines: Vec<&str> = envsync.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", envsync.stderr);
    for name in [server, repo, server2, repo2] {
        assert!(lines[0].contains(name), "{name} not named: {}", lines[0]);
    }
    let (_, untouched) = ENTRIES[0];
    assert!(
        !lines[0].contains(untouched),
        "an in-sync entry was named: {}",
        lines[0]
    );
}

/// Proves: a teammate's rotation pushed to the remote is pulled and written by the next run
/// (exit 0, silent); a `git revert` of it pushed later is applied too, and since its `.enc`
/// is older than the last sync, the run's stderr is exactly one line, the warning saying so
/// (`-q` keeps warnings: a stale checkout being applied must reach the journal).
#[test]
fn systemd_pulled_rotation_then_revert_warns_once() {
    let (fx, svc) = synced();
    let (repo, server) = ENTRIES[0];
    let before = fs::read(fx.server_path(server)).unwrap();
    // sops dates have a resolution of one second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    common::sops_set(&upstream(&fx).join(repo), "API_TOKEN", &canary("rotated"));
    git_upstream(&fx, &["commit", "-q", "-am", "rotate API_TOKEN"]);
    git_upstream(&fx, &["push", "-q", "origin", "HEAD"]);
    let steps = run_service(&svc, &fx, None);
    for step in &steps {
        assert_eq!(step.code, 0, "{:?}:\n{}", step.argv, step.stderr);
        assert_eq!(step.stdout, "", "{:?} printed on stdout", step.argv);
        assert_eq!(step.stderr, "", "{:?} printed on stderr", step.argv);
    }
    let rotated = fs::read(fx.server_path(server)).unwrap();
    assert_ne!(rotated, before, "the pulled rotation was not written");

    git_upstream(&fx, &["revert", "--no-edit", "HEAD"]);
    git_upstream(&fx, &["push", "-q", "origin", "HEAD"]);
    let steps = run_service(&svc, &fx, None);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].code, 0, "git pull: {}", steps[0].stderr);
    let envsync = &steps[1];
    assert_eq!(envsync.code, 0, "stderr:\n{}", envsync.stderr);
    assert_eq!(envsync.stdout, "");
    let lines: Vec<&str> = envsync.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", envsync.stderr);
    assert!(
        lines[0].starts_with(&format!("warning: {repo} is older than its last sync"))
            && lines[0].contains("applying it anyway"),
        "{}",
        lines[0]
    );
    assert_eq!(
        fs::read(fx.server_path(server)).unwrap(),
        before,
        "the revert was not applied"
    );
}
