//! A releases entry (`as = "files"`, `releases = 2`) when the run dies or is signalled around
//! its release: the verify and on_change commands themselves signal or kill envsync (they
//! are its children, so `$PPID` is the real binary), at the three moments that matter.
//!
//! - killed (SIGKILL) while the new release is staged and verified: `current` still names
//!   the old release, the new one exists only as a temp folder that no listing counts, the
//!   next run removes it, and a plain rollback still goes to the real previous release;
//! - SIGTERM while verify runs: exit 143, the staged release removed, nothing written;
//! - SIGTERM while on_change runs: the run was complete and durable, it stays so, exit 143.

use std::fs;
use std::path::Path;

use crate::common::Fixture;

const ENC: &str = "app/.env.enc";

/// A fixture with one releases entry; `extra` adds manifest lines (verify, on_change).
fn releases(fx: &Fixture, extra: &str) {
    fx.manifest(&[format!(
        "{}as = \"files\"\nreleases = 2\n{extra}",
        Fixture::entry(ENC, "app/secrets")
    )]);
}

/// The release folders and anything else in `releases/`, sorted.
fn listing(fx: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fx.server_path("app/secrets/releases"))
        .expect("releases/ exists")
        .map(|e| {
            e.expect("a listing")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn current(fx: &Fixture) -> String {
    fs::read_link(fx.server_path("app/secrets/current"))
        .expect("current is a symlink")
        .to_string_lossy()
        .into_owned()
}

fn value(fx: &Fixture, key: &str) -> String {
    fs::read_to_string(fx.server_path(&format!("app/secrets/current/{key}")))
        .expect("the key file reads through current")
}

/// The first release (TOKEN=one), then a pulled rotation (TOKEN=two) in the repo.
fn first_release_then_rotation(fx: &Fixture) -> String {
    releases(fx, "");
    fx.sops_encrypt(ENC, b"TOKEN=one\nOTHER=x\n", "dotenv");
    fx.envsync(["decrypt"]).expect(0);
    let first = current(fx);
    assert_eq!(value(fx, "TOKEN"), "one");
    // A new second, so the rotation's release has a name of its own.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    fx.sops_encrypt(ENC, b"TOKEN=two\nOTHER=x\n", "dotenv");
    first
}

#[test]
fn killed_while_a_release_is_verified_leaves_only_a_temp_folder() {
    let fx = Fixture::new();
    let first = first_release_then_rotation(&fx);
    releases(
        &fx,
        "verify = [\"sh\", \"-c\", \"kill -KILL $PPID; sleep 2\"]\n",
    );
    let run = fx.envsync(["decrypt"]);
    assert_eq!(
        run.code, -1,
        "SIGKILL ends envsync without a status:\n{}",
        run.stderr
    );
    assert_eq!(
        current(&fx),
        first,
        "current moved before the release went live"
    );
    assert_eq!(value(&fx, "TOKEN"), "one");
    let left = listing(&fx);
    let released: Vec<&String> = left
        .iter()
        .filter(|n| !n.starts_with(".envsync."))
        .collect();
    assert_eq!(
        released.len(),
        1,
        "the killed run's release is only a temp folder: {left:?}"
    );
    assert!(
        left.iter()
            .any(|n| n.starts_with(".envsync.") && n.ends_with(".tmp")),
        "the staged release is under a temp name: {left:?}"
    );
    // Not a release: status still sees the pulled rotation, not a server edit.
    let status = fx.envsync(["status"]);
    status.expect(1);
    assert!(status.stdout.contains("repo-changed"), "{}", status.stdout);
    // The next run removes the leftover and makes the release.
    releases(&fx, "verify = [\"true\"]\n");
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(value(&fx, "TOKEN"), "two");
    let after = listing(&fx);
    assert!(
        after.iter().all(|n| !n.starts_with(".envsync.")),
        "the leftover was swept: {after:?}"
    );
    assert_eq!(after.len(), 2, "{after:?}");
    // A plain rollback goes back to the first release, never to the killed run's.
    fx.envsync(["rollback", ENC]).expect(0);
    assert_eq!(current(&fx), first);
    assert_eq!(value(&fx, "TOKEN"), "one");
}

#[test]
fn sigterm_while_a_release_is_verified_writes_nothing() {
    let fx = Fixture::new();
    let first = first_release_then_rotation(&fx);
    let records = fx.server_path(".envsync/records");
    let count = |dir: &Path| fs::read_dir(dir).map_or(0, Iterator::count);
    let record_before = count(&records);
    let snapshot_before = crate::common::snapshot(&fx.server);
    releases(
        &fx,
        "verify = [\"sh\", \"-c\", \"kill -TERM $PPID; exit 0\"]\n",
    );
    let run = fx.envsync(["decrypt"]);
    run.expect(143);
    assert!(
        run.stderr.contains("interrupted by SIGTERM"),
        "{}",
        run.stderr
    );
    assert_eq!(current(&fx), first);
    assert_eq!(listing(&fx).len(), 1, "{:?}", listing(&fx));
    assert_eq!(
        crate::common::snapshot(&fx.server),
        snapshot_before,
        "nothing of the run stays, the staged release included"
    );
    assert_eq!(count(&records), record_before);
    assert!(crate::writer::temps_under(&fx.server).is_empty());
}

#[test]
fn sigterm_while_on_change_runs_keeps_the_complete_run() {
    let fx = Fixture::new();
    let first = first_release_then_rotation(&fx);
    let marker = fx.dir.path().join("hook-ran");
    releases(
        &fx,
        &format!(
            "on_change = [\"sh\", \"-c\", \"kill -TERM $PPID; touch '{}'\"]\n",
            marker.display()
        ),
    );
    let run = fx.envsync(["decrypt"]);
    run.expect(143);
    assert!(
        run.stderr
            .contains("after every write of this run was complete and durable"),
        "{}",
        run.stderr
    );
    assert!(Path::new(&marker).exists(), "the hook ran to its end");
    assert_ne!(
        current(&fx),
        first,
        "the release went live before the hook ran"
    );
    assert_eq!(value(&fx, "TOKEN"), "two");
    // The records were durable too: the entry is in sync, and a second run changes nothing.
    releases(&fx, "");
    fx.envsync(["status"]).expect(0);
}
