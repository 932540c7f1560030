//! The run lock, `<state>/lock` in the private state folder, on the real binary: another
//! user's lock on the manifest does not block a run; a run waits for the state lock and says
//! so, and a signal while it waits ends it (130 or 143, nothing written); two manifests with
//! one server root take turns.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{
    in_syscall, kill, lock_held, open_to_others, set_mode, sha256, traced_envsync, wait_until,
    write_manifest, Background, Batch, Side, SIGNALS, SYS_RENAMES,
};
use crate::common::envsync_command;
use crate::common::{self, Fixture};

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
