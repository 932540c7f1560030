//! Failed batches, on the real binary: injected I/O faults (EIO, EXDEV) and immutable or
//! append-only targets leave no temp and every target OLD; every exit 2 means, and says, that
//! nothing was written, in small and large batches; and the folders an undone batch created
//! are removed again.

use std::fs;

use super::{Batch, Chattr, Side};

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
