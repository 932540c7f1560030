//! The atomic writer, end to end through `envsync decrypt`: SIGKILL at many points (timed and
//! injected with strace), SIGINT and SIGTERM injected at the same points, umask independence,
//! owner and group, symlinks at the target and on the way, stale temps, hard links, and the
//! exact syscall order of one write.
//!
//! Decrypt runs use `--force`: these tests overwrite server files on purpose, so the sync
//! states (tested in tests/it/safety.rs) do not get in the way.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{clean_env, envsync_command, Fixture};

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

/// Runs a command to completion and checks its output the way the harness does: no secret
/// leaked, no panic. Returns (exit code, stdout, stderr).
pub(crate) fn run_checked(cmd: &mut Command, context: &str) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{context}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    common::assert_no_leak(&stdout, &format!("stdout of {context}"));
    common::assert_no_leak(&stderr, &format!("stderr of {context}"));
    assert!(
        !stderr.contains("panicked") && !stderr.contains("internal error"),
        "envsync panicked in {context}:\n{stderr}"
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Writes server plaintexts, encrypts them into the repo with `envsync encrypt`, then removes
/// the server plaintexts again (so decrypt starts from an empty server unless told otherwise).
fn encrypt_from_server(fx: &Fixture, files: &[(&str, &[u8])]) {
    for (server, plain) in files {
        fx.write_server(server, plain);
    }
    fx.envsync(["encrypt"]).expect(0);
    for (server, _) in files {
        fs::remove_file(fx.server_path(server)).expect("remove server plaintext");
    }
}

/// Replaces `path` with `bytes` and `mode` through a temp file and a rename (never in place, so
/// a run reading it never sees a half-written file). The temp name does not look like envsync's.
fn put(path: &Path, bytes: &[u8], mode: u32) {
    let name = path.file_name().expect("file name").to_string_lossy();
    let tmp = path.with_file_name(format!("restore-{name}.part"));
    fs::write(&tmp, bytes).expect("write restore temp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).expect("chmod restore temp");
    fs::rename(&tmp, path).expect("rename restore temp");
}

pub(crate) fn mode(meta: &fs::Metadata) -> u32 {
    meta.permissions().mode() & 0o7777
}

/// Whether a file name is one of envsync's temps: `.envsync.<name>.<hex>.tmp`.
pub(crate) fn is_envsync_temp(name: &str) -> bool {
    name.starts_with(".envsync.") && name.ends_with(".tmp")
}

/// Every `.envsync.*.tmp` under `root`.
pub(crate) fn temps_under(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.expect("walk server root"))
        .filter(|e| is_envsync_temp(&e.file_name().to_string_lossy()))
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// A numeric id from the system's user and group databases (`id -u NAME` /
/// `getent group NAME`).
pub(crate) fn system_id(kind: &str, name: &str) -> u32 {
    let out = match kind {
        "user" => Command::new("id").args(["-u", name]).output(),
        _ => Command::new("getent").args(["group", name]).output(),
    }
    .expect("run id/getent");
    assert!(out.status.success(), "no {kind} {name} on this machine");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = match kind {
        "user" => text.trim(),
        _ => text.trim().split(':').nth(2).unwrap_or_default(),
    };
    field
        .parse()
        .unwrap_or_else(|_| panic!("cannot parse the id of {kind} {name} from {text:?}"))
}

/// strace, found like every other tool: a missing strace fails the test.
pub(crate) fn strace() -> PathBuf {
    common::tool("strace")
}

fn was_killed(status: ExitStatus) -> bool {
    status.signal() == Some(9) || status.code() == Some(137)
}

// ---------------------------------------------------------------------------------------------
// 1. SIGKILL at many points
// ---------------------------------------------------------------------------------------------

/// One server file of the crash fixture with its two acceptable contents.
struct Target {
    server: String,
    old: Vec<u8>,
    new: Vec<u8>,
}

const CRASH_FILES: usize = 200;
const CRASH_FOLDERS: usize = 10;

/// A repo of many dotenv `.enc` files whose plaintexts are NEW, and a server holding the OLD
/// plaintexts (mode 0600). File 0 is encrypted by real sops, the rest by `envsync encrypt`.
fn crash_fixture() -> (Fixture, Vec<Target>) {
    let fx = Fixture::new();
    let mut targets = Vec::new();
    let mut entries = Vec::new();
    for i in 0..CRASH_FILES {
        // Some folders are nested, so the sweep is checked at several depths.
        let folder = match i % CRASH_FOLDERS {
            0 => "top".to_string(),
            1 => "nest/a/b".to_string(),
            k => format!("d{k}"),
        };
        let server = format!("{folder}/app{i:03}.env");
        let repo = format!("enc/{folder}/app{i:03}.env.enc");
        let mut new = String::new();
        for j in 0..24 {
            new.push_str(&format!(
                "NEW_KEY_{j}=new-value-{i:03}-{j:02}-abcdefghijklmnopqrstuvwxyz0123456789\n"
            ));
        }
        let old = format!("OLD_KEY=old-value-{i:03}\nSHARED=x\n");
        entries.push(Fixture::entry(&repo, &server));
        targets.push(Target {
            server,
            old: old.into_bytes(),
            new: new.into_bytes(),
        });
    }
    fx.manifest(&entries);
    // One file by real sops; `envsync encrypt` must find it unchanged and create the others.
    let first_repo = format!("enc/top/app{:03}.env.enc", 0);
    fx.sops_encrypt(&first_repo, &targets[0].new, "dotenv");
    for t in &targets {
        fx.write_server(&t.server, &t.new);
    }
    let run = fx.envsync(["encrypt"]);
    run.expect(0);
    assert!(
        fx.repo_path(&first_repo).is_file()
            && fx
                .repo_path(&format!("enc/d9/app{:03}.env.enc", 199))
                .is_file(),
        "encrypt did not create the repo files:\n{}",
        run.stderr
    );
    restore_old(&fx, &targets);
    (fx, targets)
}

/// Puts OLD content and mode 0600 back on every target that does not have both.
fn restore_old(fx: &Fixture, targets: &[Target]) {
    for t in targets {
        let path = fx.server_path(&t.server);
        let ok = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && mode(&m) == 0o600)
            && fs::read(&path).is_ok_and(|b| b == t.old);
        if !ok {
            put(&path, &t.old, 0o600);
        }
    }
}

/// Checks the invariants after a run that may have been killed anywhere: every target holds
/// exactly its OLD or its NEW bytes with mode 0600, every leftover temp is a 0600 regular file
/// owned by us, and nothing else appeared. Returns how many targets hold NEW.
fn check_crash_state(fx: &Fixture, targets: &[Target], context: &str) -> usize {
    let mut new_count = 0;
    let expected: BTreeSet<PathBuf> = targets.iter().map(|t| fx.server_path(&t.server)).collect();
    for t in targets {
        let path = fx.server_path(&t.server);
        let meta = fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{context}: {} is gone: {e}", t.server));
        assert!(
            meta.is_file(),
            "{context}: {} is not a regular file",
            t.server
        );
        let bytes = fs::read(&path).expect("read target");
        if bytes == t.new {
            new_count += 1;
        } else {
            assert!(
                bytes == t.old,
                "{context}: {} holds {} bytes that are neither the old ({} bytes) nor the new ({} bytes) content",
                t.server,
                bytes.len(),
                t.old.len(),
                t.new.len()
            );
        }
        assert_eq!(
            mode(&meta),
            0o600,
            "{context}: {} has mode {:04o}, expected exactly 0600",
            t.server,
            mode(&meta)
        );
    }
    let my_uid = fs::metadata(&fx.server).expect("stat server root").uid();
    // envsync's own state folder (the default `server.state`) is not a target.
    let state_dir = fx.server.join(".envsync");
    for entry in walkdir::WalkDir::new(&fx.server) {
        let entry = entry.expect("walk server root");
        let meta = fs::symlink_metadata(entry.path()).expect("stat entry");
        if meta.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_envsync_temp(&name) {
            assert!(
                meta.is_file() && mode(&meta) == 0o600 && meta.uid() == my_uid,
                "{context}: leftover temp {} is not a 0600 regular file of ours (mode {:04o})",
                entry.path().display(),
                mode(&meta)
            );
        } else if !entry.path().starts_with(&state_dir) {
            assert!(
                expected.contains(entry.path()),
                "{context}: unexpected file {} on the server",
                entry.path().display()
            );
        }
    }
    new_count
}

/// Which rename syscall envsync uses, seen by strace on a full run.
fn rename_syscall(fx: &Fixture, targets: &[Target]) -> String {
    restore_old(fx, targets);
    let log = fx.dir.path().join("rename.strace");
    let mut cmd = Command::new(strace());
    cmd.arg("-f")
        .arg("-o")
        .arg(&log)
        .args(["-e", "trace=?rename,renameat,renameat2"])
        .arg(common::envsync_bin())
        .args(["decrypt", "--force"]);
    clean_env(&mut cmd, fx);
    let (code, _, stderr) = run_checked(&mut cmd, "strace envsync decrypt (rename family)");
    assert_eq!(code, 0, "decrypt under strace failed:\n{stderr}");
    let calls = parse_strace(&fs::read_to_string(&log).expect("read strace log"));
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for call in &calls {
        *used.entry(call.name.clone()).or_default() += 1;
    }
    assert_eq!(
        used.len(),
        1,
        "expected exactly one rename syscall, saw {used:?}"
    );
    let (name, count) = used.into_iter().next().expect("one syscall");
    // One rename for each updated file, and one for its sync record.
    assert_eq!(
        count,
        2 * CRASH_FILES,
        "expected two {name}s per updated file (the file, its record), saw {count}"
    );
    assert_eq!(
        check_crash_state(fx, targets, "full run under strace"),
        CRASH_FILES
    );
    name
}

#[test]
fn sigkill_at_any_point_leaves_old_or_new_never_partial() {
    let (fx, targets) = crash_fixture();

    // A full run: every target becomes NEW, 0600. Measured three times; the fastest is the
    // run's duration for the kill sweep (a slow outlier would only waste kill points).
    let mut duration = Duration::MAX;
    for _ in 0..3 {
        restore_old(&fx, &targets);
        let start = Instant::now();
        let status = envsync_command(&fx, &["decrypt", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run decrypt");
        duration = duration.min(start.elapsed());
        assert!(status.success(), "full decrypt failed: {status:?}");
        assert_eq!(
            check_crash_state(&fx, &targets, "full run"),
            CRASH_FILES,
            "a full run must write every target"
        );
    }

    // Timed SIGKILLs: a few right at the start, then 34 points from 0 to 1.3x the run.
    let mut delays = vec![Duration::ZERO; 3];
    delays.extend([Duration::from_micros(500), Duration::from_millis(2)]);
    let points = 34u32;
    for k in 0..points {
        delays.push(duration.mul_f64(1.3 * f64::from(k) / f64::from(points - 1)));
    }
    let mut outcomes = Vec::new();
    for (i, delay) in delays.iter().enumerate() {
        restore_old(&fx, &targets);
        let mut child = envsync_command(&fx, &["decrypt", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn decrypt");
        if !delay.is_zero() {
            std::thread::sleep(*delay);
        }
        // SIGKILL (a no-op when the run already finished).
        child.kill().expect("kill decrypt");
        let status = child.wait().expect("wait decrypt");
        let context = format!("kill #{i} after {delay:?} ({status:?})");
        let new_count = check_crash_state(&fx, &targets, &context);
        if status.success() {
            assert_eq!(
                new_count, CRASH_FILES,
                "{context}: a finished run wrote everything"
            );
        }
        outcomes.push(new_count);
    }

    // Kills injected inside the write path by strace, at the Nth call of a syscall (counted per
    // thread). A kill at the first rename or the first fsync happens before any rename.
    let rename = rename_syscall(&fx, &targets);
    let mut injected: Vec<(&str, u32)> = Vec::new();
    for n in [2, 9, 60, 99] {
        injected.push((rename.as_str(), n));
    }
    // A batch this size is flushed with syncfs: once before the renames, once after.
    for n in [1, 2] {
        injected.push(("syncfs", n));
    }
    for n in [1, 30] {
        injected.push(("write", n));
    }
    injected.push(("fchmod", 7));
    // Last: a kill at the first rename, so its temps are certainly left for the final sweep.
    injected.push((rename.as_str(), 1));
    for (syscall, n) in &injected {
        restore_old(&fx, &targets);
        let mut cmd = Command::new(strace());
        cmd.args(["-f", "-o", "/dev/null", "-e"])
            .arg(format!("trace={syscall}"))
            .arg("-e")
            .arg(format!("inject={syscall}:signal=SIGKILL:when={n}"))
            .arg(common::envsync_bin())
            .args(["decrypt", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        clean_env(&mut cmd, &fx);
        let status = cmd.status().expect("run strace");
        let context = format!("SIGKILL injected at {syscall} #{n} ({status:?})");
        let new_count = check_crash_state(&fx, &targets, &context);
        if status.success() {
            assert_eq!(
                new_count, CRASH_FILES,
                "{context}: a finished run wrote everything"
            );
        } else {
            assert!(was_killed(status), "{context}: expected SIGKILL or success");
            // The second syncfs comes after every rename: all NEW is right there.
            assert!(
                new_count < CRASH_FILES || (*syscall == "syncfs" && *n == 2),
                "{context}: killed, yet every target is NEW"
            );
        }
        if (*syscall == rename && *n <= 2) || *syscall == "syncfs" {
            assert!(was_killed(status), "{context}: the kill must land");
        }
        if *syscall == rename {
            // n-1 renames completed before the nth; each writing thread alternates a target
            // and its sync record, so at least half of them were targets.
            assert!(
                2 * new_count + 1 >= *n as usize,
                "{context}: only {new_count} targets are NEW"
            );
        }
        if (*syscall == rename || *syscall == "syncfs") && *n == 1 {
            assert_eq!(new_count, 0, "{context}: no rename can have happened yet");
        }
        outcomes.push(new_count);
    }
    assert!(
        outcomes.iter().any(|&c| c > 0 && c < CRASH_FILES),
        "no kill landed between two renames: {outcomes:?}"
    );
    let stale = temps_under(&fx.server);
    assert!(
        !stale.is_empty(),
        "a kill at rename #1 must leave its temp behind"
    );

    // A run to completion converges and sweeps every temp in every folder it writes.
    restore_old(&fx, &targets);
    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_eq!(check_crash_state(&fx, &targets, "final run"), CRASH_FILES);
    let left = temps_under(&fx.server);
    assert!(
        left.is_empty(),
        "temps left after a complete run (before it: {stale:?}): {left:?}"
    );
}

/// The SIGKILL sweep's injection points with a signal envsync catches (SIGINT, SIGTERM), plus
/// the last `syncfs` (after the last safe point). Every run whose point strace reached (its log
/// shows the nth call on some thread: `when=N` counts per thread) ends 130 or 143 and says it
/// was interrupted; one whose point was never reached ends 0 with every target NEW. Either way
/// no temp is left anywhere under the server root, and every target is OLD (the batch put
/// back), or NEW when the signal came in the last `syncfs`.
fn injected_signal_sweep(signal: &str, code: i32) {
    let (fx, targets) = crash_fixture();
    let rename = rename_syscall(&fx, &targets);
    let mut injected: Vec<(&str, usize)> = Vec::new();
    for n in [2, 9, 60, 99] {
        injected.push((rename.as_str(), n));
    }
    for n in [1, 2, 3] {
        injected.push(("syncfs", n));
    }
    for n in [1, 30] {
        injected.push(("write", n));
    }
    injected.push(("fchmod", 7));
    injected.push((rename.as_str(), 1));
    let log = fx.dir.path().join("signal.strace");
    // How many syncfs a full run makes: the last is the late point.
    restore_old(&fx, &targets);
    let mut cmd = Command::new(strace());
    cmd.arg("-f")
        .arg("-o")
        .arg(&log)
        .args(["-e", "trace=syncfs"])
        .arg(common::envsync_bin())
        .args(["decrypt", "--force"]);
    clean_env(&mut cmd, &fx);
    let (got, _, stderr) = run_checked(&mut cmd, "strace envsync decrypt (syncfs)");
    assert_eq!(got, 0, "decrypt under strace failed:\n{stderr}");
    let calls = parse_strace(&fs::read_to_string(&log).expect("read strace log"));
    let last_syncfs = calls.iter().filter(|c| c.name == "syncfs").count();
    assert!(
        last_syncfs >= 2,
        "a large decrypt flushes with syncfs (before its renames and at the end): {last_syncfs}"
    );
    let mut reached_count = 0;
    for (syscall, n) in &injected {
        restore_old(&fx, &targets);
        let mut cmd = Command::new(strace());
        cmd.arg("-f")
            .arg("-o")
            .arg(&log)
            .arg("-e")
            .arg(format!("trace={syscall}"))
            .arg("-e")
            .arg(format!("inject={syscall}:signal={signal}:when={n}"))
            .arg(common::envsync_bin())
            .args(["decrypt", "--force"]);
        clean_env(&mut cmd, &fx);
        let context = format!("{signal} injected at {syscall} #{n}");
        let (got, _, stderr) = run_checked(&mut cmd, &context);
        let mut per_thread: BTreeMap<u32, usize> = BTreeMap::new();
        let calls = parse_strace(&fs::read_to_string(&log).expect("read strace log"));
        for call in calls.iter().filter(|c| c.name == *syscall) {
            *per_thread.entry(call.pid).or_default() += 1;
        }
        let most = per_thread.values().copied().max().unwrap_or(0);
        let context = format!("{context} (exit {got}, at most {most} calls on a thread)");
        let new_count = check_crash_state(&fx, &targets, &context);
        let left = temps_under(&fx.server);
        assert!(left.is_empty(), "{context}: temps left behind: {left:?}");
        if most < *n {
            assert_eq!(got, 0, "{context}: the point was never reached:\n{stderr}");
            assert_eq!(
                new_count, CRASH_FILES,
                "{context}: a finished run wrote everything"
            );
            continue;
        }
        reached_count += 1;
        assert_eq!(got, code, "{context}: expected exit {code}\n{stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {signal}")),
            "{context}: the message must name the signal:\n{stderr}"
        );
        // The last syncfs makes the whole run durable after the last safe point.
        let late = *syscall == "syncfs" && *n == last_syncfs;
        assert_eq!(
            new_count,
            if late { CRASH_FILES } else { 0 },
            "{context}: expected every target {}",
            if late {
                "NEW"
            } else {
                "OLD (the batch put back)"
            }
        );
        if (*syscall == rename && *n <= 2) || *syscall == "syncfs" {
            assert!(most >= *n, "{context}: the signal must land");
        }
    }
    assert!(
        reached_count + 1 >= injected.len(),
        "{signal}: too few injection points were reached ({reached_count} of {})",
        injected.len()
    );
    // A run to completion converges.
    restore_old(&fx, &targets);
    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_eq!(check_crash_state(&fx, &targets, "final run"), CRASH_FILES);
}

#[test]
fn sigint_at_injected_points_exits_130_and_leaves_old_or_new_no_temp() {
    injected_signal_sweep("SIGINT", 130);
}

#[test]
fn sigterm_at_injected_points_exits_143_and_leaves_old_or_new_no_temp() {
    injected_signal_sweep("SIGTERM", 143);
}

// ---------------------------------------------------------------------------------------------
// 2. umask independence
// ---------------------------------------------------------------------------------------------

#[test]
fn modes_are_exact_under_any_umask() {
    let fx = Fixture::new();
    let files: [(&str, &str, u32); 4] = [
        ("m600", "etc/six.env", 0o600),
        ("m640", "etc/six-forty.env", 0o640),
        ("m440", "etc/four-forty.env", 0o440),
        ("nested", "new/deeper/app.env", 0o640),
    ];
    let mut entries = Vec::new();
    let mut plains = Vec::new();
    for (name, server, m) in files {
        entries.push(format!(
            "{}mode = \"{m:04o}\"\n",
            Fixture::entry(&format!("enc/{name}.env.enc"), server)
        ));
        plains.push((server, format!("NAME={name}\nVALUE=umask-{name}\n")));
    }
    fx.manifest(&entries);
    let plain_refs: Vec<(&str, &[u8])> = plains.iter().map(|(s, p)| (*s, p.as_bytes())).collect();
    encrypt_from_server(&fx, &plain_refs);

    let check = |context: &str| {
        for (name, server, m) in files {
            let path = fx.server_path(server);
            let meta = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("{context}: {server} missing: {e}"));
            assert_eq!(
                mode(&meta),
                m,
                "{context}: {server} has mode {:04o}, expected {m:04o}",
                mode(&meta)
            );
            assert_eq!(
                fs::read(&path).expect("read target"),
                format!("NAME={name}\nVALUE=umask-{name}\n").into_bytes(),
                "{context}: {server} content"
            );
        }
        for folder in ["new", "new/deeper"] {
            let m = mode(&fs::symlink_metadata(fx.server_path(folder)).expect("stat folder"));
            assert_eq!(
                m, 0o755,
                "{context}: folder {folder} created by decrypt has mode {m:04o}, expected 0755 (the default dir_mode)"
            );
        }
    };

    for umask in ["000", "077", "022"] {
        // Start from nothing: the server root itself and every folder must be created.
        fs::remove_dir_all(&fx.server).expect("clear server root");
        let script = format!("umask {umask}; exec \"$0\" decrypt");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&script).arg(common::envsync_bin());
        clean_env(&mut cmd, &fx);
        let context = format!("decrypt under umask {umask}");
        let (code, _, stderr) = run_checked(&mut cmd, &context);
        assert_eq!(code, 0, "{context} failed:\n{stderr}");
        check(&context);
        let root_mode = mode(&fs::metadata(&fx.server).expect("stat server root"));
        assert_eq!(
            root_mode, 0o755,
            "{context}: the missing server root was created {root_mode:04o}, not the default dir_mode 0755"
        );
        let state_mode = mode(&fs::metadata(fx.server.join(".envsync")).expect("stat state"));
        assert_eq!(
            state_mode, 0o700,
            "{context}: the state folder was created {state_mode:04o}, not private"
        );

        // Wrong modes on the right content are fixed, again whatever the umask.
        for (_, server, _) in files {
            fs::set_permissions(fx.server_path(server), fs::Permissions::from_mode(0o666))
                .expect("chmod target");
        }
        let context = format!("fix-mode decrypt under umask {umask}");
        let (code, _, stderr) = run_checked(&mut cmd, &context);
        assert_eq!(code, 0, "{context} failed:\n{stderr}");
        check(&context);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. owner and group
// ---------------------------------------------------------------------------------------------

#[test]
fn owner_and_group_are_applied() {
    let fx = Fixture::new();
    let nobody = system_id("user", "nobody");
    let nogroup = system_id("group", "nogroup");
    let daemon_group = system_id("group", "daemon");
    let uid_one = 1;
    let root_uid = fs::metadata(&fx.server).expect("stat server").uid();
    let root_gid = fs::metadata(&fx.server).expect("stat server").gid();
    fx.manifest(&[
        format!(
            "{}owner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0640\"\n",
            Fixture::entry("enc/both.env.enc", "app/both.env")
        ),
        format!(
            "{}group = \"daemon\"\nmode = \"0640\"\n",
            Fixture::entry("enc/group.env.enc", "app/group.env")
        ),
        format!(
            "{}owner = \"1\"\n",
            Fixture::entry("enc/numeric.env.enc", "app/numeric.env")
        ),
    ]);
    encrypt_from_server(
        &fx,
        &[
            ("app/both.env", b"A=both\n"),
            ("app/group.env", b"A=group\n"),
            ("app/numeric.env", b"A=numeric\n"),
        ],
    );
    let expected = [
        ("app/both.env", nobody, nogroup, 0o640),
        ("app/group.env", root_uid, daemon_group, 0o640),
        ("app/numeric.env", uid_one, root_gid, 0o600),
    ];
    let check = |context: &str| {
        for (server, uid, gid, m) in expected {
            let meta = fs::symlink_metadata(fx.server_path(server))
                .unwrap_or_else(|e| panic!("{context}: {server} missing: {e}"));
            assert_eq!(
                (meta.uid(), meta.gid(), mode(&meta)),
                (uid, gid, m),
                "{context}: {server} (uid, gid, mode) is ({}, {}, {:04o}), expected ({uid}, {gid}, {m:04o})",
                meta.uid(),
                meta.gid(),
                mode(&meta)
            );
        }
    };
    fx.envsync(["decrypt", "--force"]).expect(0);
    check("first decrypt");

    // Drifted owner, group and mode on the right content are put back.
    for (server, _, _, _) in expected {
        let path = fx.server_path(server);
        std::os::unix::fs::chown(&path, Some(root_uid), Some(root_gid)).expect("chown");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    fx.envsync(["decrypt", "--force"]).expect(0);
    check("decrypt after drift");
}

// ---------------------------------------------------------------------------------------------
// 4. symlinks
// ---------------------------------------------------------------------------------------------

/// A fixture with `app/.env` (and a harmless `ok/.env`) encrypted in the repo and an empty
/// server.
fn symlink_fixture() -> Fixture {
    let fx = Fixture::new();
    fx.manifest(&[
        Fixture::entry("enc/app.env.enc", "app/.env"),
        Fixture::entry("enc/ok.env.enc", "ok/.env"),
    ]);
    encrypt_from_server(
        &fx,
        &[("app/.env", b"TOKEN=new\n"), ("ok/.env", b"FINE=1\n")],
    );
    fx
}

#[test]
fn symlink_at_target_is_refused() {
    let fx = symlink_fixture();
    let victim = fx.dir.path().join("victim.txt");
    fs::write(&victim, b"VICTIM CONTENT\n").expect("write victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod victim");
    let link = fx.server_path("app/.env");
    std::os::unix::fs::symlink(&victim, &link).expect("plant symlink");
    let before = common::snapshot(&fx.server);

    let run = fx.envsync(["decrypt", "--force"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&link.display().to_string()) && run.stderr.contains("symlink"),
        "stderr must name {} and say symlink:\n{}",
        link.display(),
        run.stderr
    );
    assert_eq!(fs::read(&victim).expect("read victim"), b"VICTIM CONTENT\n");
    assert_eq!(mode(&fs::metadata(&victim).expect("stat victim")), 0o644);
    assert!(fs::symlink_metadata(&link)
        .expect("lstat link")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&link).expect("readlink"), victim);
    assert_eq!(
        common::snapshot(&fx.server),
        before,
        "a refused decrypt must write nothing (not even the other entry)"
    );
}

#[test]
fn dangling_symlink_at_target_is_refused() {
    let fx = symlink_fixture();
    let ghost_dir = fx.dir.path().join("ghost");
    let ghost = ghost_dir.join("created.env");
    let link = fx.server_path("app/.env");
    fs::create_dir_all(link.parent().expect("parent")).expect("mkdir app");
    std::os::unix::fs::symlink(&ghost, &link).expect("plant dangling symlink");
    let before = common::snapshot(&fx.server);

    let run = fx.envsync(["decrypt", "--force"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&link.display().to_string()) && run.stderr.contains("symlink"),
        "stderr must name {} and say symlink:\n{}",
        link.display(),
        run.stderr
    );
    assert!(
        fs::symlink_metadata(&ghost_dir).is_err(),
        "decrypt created something at the dangling link's destination"
    );
    assert_eq!(fs::read_link(&link).expect("readlink"), ghost);
    assert_eq!(common::snapshot(&fx.server), before);
}

#[test]
fn symlinked_folder_on_the_way_is_refused() {
    let fx = symlink_fixture();
    // The folder the entry needs is a link to a folder outside the server root.
    fs::remove_dir_all(fx.server_path("app")).expect("clear app");
    let other = fx.dir.path().join("other-dir");
    fs::create_dir_all(&other).expect("mkdir other");
    let link = fx.server_path("app");
    std::os::unix::fs::symlink(&other, &link).expect("plant folder symlink");
    let before = common::snapshot(&fx.server);

    let run = fx.envsync(["decrypt", "--force"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&link.display().to_string()) && run.stderr.contains("symlink"),
        "stderr must name {} and say symlink:\n{}",
        link.display(),
        run.stderr
    );
    let inside: Vec<_> = fs::read_dir(&other)
        .expect("list other dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        inside.is_empty(),
        "decrypt wrote into the folder behind the link: {inside:?}"
    );
    assert_eq!(fs::read_link(&link).expect("readlink"), other);
    assert_eq!(common::snapshot(&fx.server), before);
}

// ---------------------------------------------------------------------------------------------
// 5. stale temps
// ---------------------------------------------------------------------------------------------

#[test]
fn stale_temps_are_swept_by_the_next_write_into_the_folder() {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry("enc/app.env.enc", "srv/app")]);
    encrypt_from_server(&fx, &[("srv/app", b"TOKEN=fresh\n")]);
    let folder = fx.server_path("srv");
    fs::create_dir_all(&folder).expect("mkdir srv");
    let stale = folder.join(".envsync.app.deadbeef.tmp");
    fs::write(&stale, b"TOKEN=half-writ").expect("plant stale temp");
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o600)).expect("chmod stale");
    let stale_full = folder.join(".envsync.app.0123456789abcdef.tmp");
    fs::write(&stale_full, b"TOKEN=old\n").expect("plant stale temp");
    // A stale temp that is a symlink: the sweep removes the link, never what it points to.
    let victim = fx.dir.path().join("victim.txt");
    fs::write(&victim, b"VICTIM\n").expect("write victim");
    let stale_link = folder.join(".envsync.app.feedface.tmp");
    std::os::unix::fs::symlink(&victim, &stale_link).expect("plant stale link");
    // Files that are not envsync temps stay.
    let keep = [folder.join("notes.tmp"), folder.join(".envsync.app.keep")];
    for k in &keep {
        fs::write(k, b"keep me\n").expect("write keeper");
    }

    fx.envsync(["decrypt", "--force"]).expect(0);
    let target = fx.server_path("srv/app");
    assert_eq!(fs::read(&target).expect("read target"), b"TOKEN=fresh\n");
    assert_eq!(common::mode_of(&target), 0o600);
    for s in [&stale, &stale_full, &stale_link] {
        assert!(
            fs::symlink_metadata(s).is_err(),
            "{} survived a decrypt that wrote into its folder",
            s.display()
        );
    }
    assert_eq!(fs::read(&victim).expect("read victim"), b"VICTIM\n");
    for k in &keep {
        assert!(
            k.exists(),
            "{} is not an envsync temp, yet it was removed",
            k.display()
        );
    }
    assert!(temps_under(&fx.server).is_empty());
}

// ---------------------------------------------------------------------------------------------
// 6. hard links
// ---------------------------------------------------------------------------------------------

#[test]
fn hard_link_at_target_is_broken_not_written_through() {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry("enc/app.env.enc", "app/.env")]);
    encrypt_from_server(&fx, &[("app/.env", b"TOKEN=new\n")]);
    let elsewhere = fx.dir.path().join("elsewhere.env");
    fs::write(&elsewhere, b"TOKEN=old\n").expect("write elsewhere");
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o644)).expect("chmod");
    let target = fx.server_path("app/.env");
    fs::create_dir_all(target.parent().expect("parent")).expect("mkdir app");
    fs::hard_link(&elsewhere, &target).expect("hard link");
    assert_eq!(fs::metadata(&target).expect("stat").nlink(), 2);
    let inode = fs::metadata(&elsewhere).expect("stat").ino();

    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_eq!(
        fs::read(&elsewhere).expect("read elsewhere"),
        b"TOKEN=old\n"
    );
    assert_eq!(mode(&fs::metadata(&elsewhere).expect("stat")), 0o644);
    assert_eq!(fs::metadata(&elsewhere).expect("stat").nlink(), 1);
    let meta = fs::symlink_metadata(&target).expect("stat target");
    assert_eq!(fs::read(&target).expect("read target"), b"TOKEN=new\n");
    assert_eq!(meta.nlink(), 1, "the target must no longer be a hard link");
    assert_ne!(meta.ino(), inode);
    assert_eq!(mode(&meta), 0o600);
}

// ---------------------------------------------------------------------------------------------
// 7. syscall order
// ---------------------------------------------------------------------------------------------

/// One syscall from an `strace -f` log, with `<unfinished ...>` / `resumed>` halves joined.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    pub(crate) ret: String,
}

impl Call {
    pub(crate) fn ret_fd(&self) -> Option<i64> {
        self.ret.split_whitespace().next()?.parse().ok()
    }

    pub(crate) fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }
}

/// Parses `strace -f` output: `PID name(args) = ret`, joining split calls per pid.
pub(crate) fn parse_strace(text: &str) -> Vec<Call> {
    let mut pending: BTreeMap<u32, String> = BTreeMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        let (pid, rest) = match line.split_once(char::is_whitespace) {
            Some((p, r)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
                (p.parse::<u32>().expect("pid"), r.trim_start())
            }
            _ => (0, line),
        };
        if rest.starts_with("+++") || rest.starts_with("---") || rest.is_empty() {
            continue;
        }
        let full = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid, head.trim_end().to_string());
            continue;
        } else if rest.starts_with("<...") {
            let Some((_, tail)) = rest.split_once("resumed>") else {
                continue;
            };
            let head = pending.remove(&pid).unwrap_or_default();
            format!("{head}{tail}")
        } else {
            rest.to_string()
        };
        let Some(open) = full.find('(') else { continue };
        let name = full[..open].to_string();
        // strace pads before ` = `; the return value never holds ` = ` (arguments may).
        let Some(eq) = full.rfind(" = ") else {
            continue;
        };
        let Some(inner) = full[..eq].trim_end().strip_suffix(')') else {
            continue;
        };
        if inner.len() <= open {
            continue;
        }
        let args = split_args(&inner[open + 1..]);
        let ret = full[eq + 3..].trim().to_string();
        calls.push(Call {
            pid,
            name,
            args,
            ret,
        });
    }
    calls
}

/// Splits strace arguments on top-level commas (not inside quotes, braces or brackets).
fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if quoted {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                args.push(current.trim().to_string());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        args.push(current.trim().to_string());
    }
    args
}

fn unquote(arg: &str) -> &str {
    arg.trim_matches('"')
}

/// Checks the write of one file (`name` in its folder) in the trace: O_EXCL 0600 create, write,
/// [fchown], fchmod, fsync, rename, fsync of the folder, nothing by path afterwards.
fn check_write_sequence(calls: &[Call], name: &str, chown: Option<(u32, u32)>, m: u32) {
    let prefix = format!(".envsync.{name}.");
    // `.envsync.<name>.<16 hex>.tmp` exactly: the sync record of `<name>.enc` has a temp too.
    let is_temp = |arg: &str| {
        unquote(arg)
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let creates: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].name == "openat" && is_temp(calls[i].arg(1)))
        .collect();
    assert_eq!(creates.len(), 1, "expected one temp for {name}: {calls:#?}");
    let open_at = creates[0];
    let open = &calls[open_at];
    let temp = unquote(open.arg(1)).to_string();
    let hex = temp
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix(".tmp"))
        .unwrap_or_default();
    assert!(
        !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "temp name {temp:?} is not .envsync.{name}.<hex>.tmp"
    );
    let flags = open.arg(2);
    for flag in ["O_WRONLY", "O_CREAT", "O_EXCL", "O_NOFOLLOW", "O_CLOEXEC"] {
        assert!(
            flags.split('|').any(|f| f == flag),
            "temp opened without {flag}: {open:?}"
        );
    }
    assert!(!flags.contains("O_TRUNC"), "{open:?}");
    assert_eq!(open.arg(3), "0600", "temp must be created 0600: {open:?}");
    let fd = open.ret_fd().expect("temp fd");
    assert!(fd >= 0, "temp open failed: {open:?}");
    let fd = fd.to_string();
    let dir = open.arg(0).to_string();
    // The folder fd was opened without following symlinks.
    let dir_open = calls[..open_at]
        .iter()
        .rev()
        .find(|c| {
            (c.name == "openat" || c.name == "openat2")
                && c.ret_fd().map(|r| r.to_string()).as_deref() == Some(dir.as_str())
        })
        .unwrap_or_else(|| panic!("no openat returned the folder fd {dir}"));
    // openat with O_NOFOLLOW (a component at a time), or openat2 refusing every symlink.
    let how = dir_open.args.join(",");
    assert!(
        how.contains("O_DIRECTORY")
            && (how.contains("O_NOFOLLOW") || how.contains("RESOLVE_NO_SYMLINKS")),
        "the folder was not opened O_DIRECTORY without following symlinks: {dir_open:?}"
    );

    // Everything this thread did on the temp and the folder after the create.
    let pid = open.pid;
    let after: Vec<(usize, &Call)> = calls
        .iter()
        .enumerate()
        .skip(open_at + 1)
        .filter(|(_, c)| c.pid == pid)
        .collect();
    let find = |what: &dyn Fn(&Call) -> bool, label: &str| -> usize {
        after
            .iter()
            .find(|(_, c)| what(c))
            .map(|(i, _)| *i)
            .unwrap_or_else(|| panic!("{name}: no {label} after the temp create: {after:#?}"))
    };
    let write = find(
        &|c| c.name == "write" && c.arg(0) == fd,
        "write to the temp",
    );
    let fchmod = find(
        &|c| c.name == "fchmod" && c.arg(0) == fd,
        "fchmod of the temp",
    );
    assert_eq!(
        calls[fchmod].arg(1),
        format!("{m:04o}"),
        "{name}: fchmod to the configured mode"
    );
    let fsync = find(
        &|c| c.name == "fsync" && c.arg(0) == fd,
        "fsync of the temp",
    );
    let rename = find(
        &|c| c.name.starts_with("rename") && unquote(c.arg(1)) == temp,
        "rename of the temp",
    );
    let r = &calls[rename];
    assert!(
        r.name == "renameat" || (r.name == "renameat2" && r.arg(4) == "0"),
        "{name}: the temp must be moved by a plain renameat: {r:?}"
    );
    assert_eq!(
        (r.arg(0), r.arg(2), unquote(r.arg(3))),
        (dir.as_str(), dir.as_str(), name),
        "{name}: rename within the folder fd onto the target: {r:?}"
    );
    assert_eq!(r.ret_fd(), Some(0), "{r:?}");
    let dir_fsync = find(
        &|c| c.name == "fsync" && c.arg(0) == dir,
        "fsync of the folder",
    );
    let fchown = after
        .iter()
        .find(|(_, c)| c.name == "fchown" && c.arg(0) == fd)
        .map(|(i, _)| *i);
    match (chown, fchown) {
        (Some((uid, gid)), Some(i)) => {
            assert_eq!(
                (calls[i].arg(1), calls[i].arg(2)),
                (uid.to_string().as_str(), gid.to_string().as_str()),
                "{name}: fchown ids"
            );
            assert!(
                write < i && i < fchmod,
                "{name}: fchown must come after the write and before fchmod"
            );
        }
        (Some(_), None) => panic!("{name}: owner is set but the temp was never fchown'd"),
        (None, Some(i)) => panic!("{name}: no owner set, yet fchown: {:?}", calls[i]),
        (None, None) => {}
    }
    assert!(
        open_at < write && write < fchmod && fchmod < fsync && fsync < rename && rename < dir_fsync,
        "{name}: order must be create {open_at} < write {write} < fchmod {fchmod} < fsync {fsync} < rename {rename} < dir fsync {dir_fsync}"
    );
    // Nothing touches permissions by path after the create, and nothing touches the temp fd
    // after the rename.
    for (i, c) in calls.iter().enumerate().skip(open_at + 1) {
        assert!(
            !matches!(
                c.name.as_str(),
                "chmod" | "chown" | "lchown" | "fchmodat" | "fchownat"
            ),
            "{name}: path-based permission change after the temp create: {c:?}"
        );
        // The fd number is free again once the temp is closed: a later write (the sync
        // record) may reuse it, so the check ends at the next open that returns it.
        let reopened = i > rename
            && calls[rename..i].iter().any(|o| {
                o.name == "openat" && o.ret_fd().map(|f| f.to_string()).as_ref() == Some(&fd)
            });
        if i > rename && c.pid == pid && !reopened {
            assert!(
                !(matches!(c.name.as_str(), "fchmod" | "fchown") && c.arg(0) == fd),
                "{name}: permission change on the temp fd after the rename: {c:?}"
            );
        }
    }
}

#[test]
fn syscall_order_of_one_write() {
    let fx = Fixture::new();
    let nobody = system_id("user", "nobody");
    let nogroup = system_id("group", "nogroup");
    fx.manifest(&[
        format!(
            "{}owner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0640\"\n",
            Fixture::entry("enc/owned.env.enc", "app/owned.env")
        ),
        Fixture::entry("enc/plain.env.enc", "other/plain.env"),
    ]);
    encrypt_from_server(
        &fx,
        &[
            ("app/owned.env", b"OWNED=1\n"),
            ("other/plain.env", b"PLAIN=1\n"),
        ],
    );
    // The folders exist; only the files are new.
    fs::create_dir_all(fx.server_path("app")).expect("mkdir app");
    fs::create_dir_all(fx.server_path("other")).expect("mkdir other");

    let log = fx.dir.path().join("order.strace");
    let mut cmd = Command::new(strace());
    cmd.arg("-f")
        .arg("-o")
        .arg(&log)
        .args([
            "-e",
            "trace=openat,?openat2,?open,?creat,write,fchmod,fchown,fsync,fdatasync,?rename,renameat,renameat2,?chmod,?chown,?lchown,fchmodat,fchownat",
        ])
        .arg(common::envsync_bin())
        .args(["decrypt", "--force"]);
    clean_env(&mut cmd, &fx);
    let (code, _, stderr) = run_checked(&mut cmd, "strace envsync decrypt");
    assert_eq!(code, 0, "decrypt under strace failed:\n{stderr}");
    let text = fs::read_to_string(&log).expect("read strace log");
    let calls = parse_strace(&text);
    assert!(
        calls
            .iter()
            .any(|c| c.name == "renameat" || c.name == "renameat2"),
        "the trace holds no rename at all:\n{text}"
    );
    check_write_sequence(&calls, "owned.env", Some((nobody, nogroup)), 0o640);
    check_write_sequence(&calls, "plain.env", None, 0o600);

    let owned = fs::metadata(fx.server_path("app/owned.env")).expect("stat owned");
    assert_eq!(
        (owned.uid(), owned.gid(), mode(&owned)),
        (nobody, nogroup, 0o640)
    );
    assert_eq!(common::mode_of(&fx.server_path("other/plain.env")), 0o600);
}
