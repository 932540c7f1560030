//! SIGINT, SIGTERM and SIGHUP during a batch, on the real binary held by strace at a chosen
//! syscall: a signal in the flush before the first rename or between renames puts the batch
//! back (every target OLD, no temp, 130 or 143, a message that says nothing was written); a
//! signal in the last step leaves every target NEW and still exits 130 or 143, without
//! claiming that nothing was written.

use std::path::Path;

use rustix::process::Signal;

use super::{
    in_syscall, kill, traced_envsync, wait_until, Background, Batch, Side, SIGNALS, SYS_SYNCFS,
};
use crate::writer::temps_under;

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
