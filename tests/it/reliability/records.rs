//! Durable sync records: every rename into `<state>/records/` is followed, before the run
//! exits, by an fsync of that folder or a `syncfs` (seen by `strace -f -y`), for one entry and
//! for eleven.

use std::fs;

use super::{Batch, Side};
use crate::writer::{parse_strace, run_checked};

/// Every rename into `<state>/records/` is followed, before the run exits, by an fsync of that
/// folder or a `syncfs` (`strace -f -y`, which shows the path behind each descriptor).
fn records_are_durable_before_exit(n: usize) {
    let b = Batch::new(n);
    let log = b.fx.dir.path().join("records.strace");
    let mut cmd = b.strace_decrypt(
        &log,
        &[
            "-y",
            "-e",
            "trace=renameat,renameat2,fsync,fdatasync,syncfs",
        ],
    );
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
                && (c.name == "syncfs"
                    || (matches!(c.name.as_str(), "fsync" | "fdatasync")
                        && c.arg(0).ends_with(&records)))
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
