//! `releases = N`: each decrypt that changes an `as = "files"` entry writes a complete
//! `releases/<UTC stamp>/`, runs `verify`, switches the relative `current` symlink, and
//! keeps N releases. A reader thread reads through `current` during real rotations (real
//! sops) and must never see a missing file or a partial or mixed release. `envsync
//! rollback`, the rolled-back state, and `verify` failing (nothing written) or passing.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::{self, Fixture};

const ENC: &str = "app/.env.enc";
const SERVER: &str = "app/secrets";
const KEYS: [&str; 3] = ["A", "B", "C"];

/// One generation of the `.enc`: each key's value. Values are 32 KiB so that a partial
/// file cannot pass for a whole one.
type Generation = BTreeMap<&'static str, Vec<u8>>;

fn value(generation: usize, key: &str) -> Vec<u8> {
    format!("gen{generation}-{key}:")
        .repeat(32 * 1024 / 8)
        .into_bytes()
}

/// Generations 0, 1 and 3 set every key; generation 2 only changes A (`sops set`).
fn generations() -> Vec<Generation> {
    let all = |g| {
        KEYS.iter()
            .map(|k| (*k, value(g, k)))
            .collect::<Generation>()
    };
    let mut two = all(1);
    two.insert("A", value(2, "A"));
    vec![all(0), all(1), two, all(3)]
}

fn dotenv(generation: &Generation) -> Vec<u8> {
    let line = |(key, value): (&&str, &Vec<u8>)| [key.as_bytes(), b"=", value, b"\n"].concat();
    generation.iter().flat_map(line).collect()
}

/// Makes the repo hold generation `g` with real sops (a full re-encrypt, or `sops set`).
fn rotate(fx: &Fixture, gens: &[Generation], g: usize) {
    if g == 2 {
        let a = String::from_utf8(gens[2]["A"].clone()).unwrap();
        common::sops_set(&fx.repo_path(ENC), "A", &a);
    } else {
        fx.sops_encrypt(ENC, &dotenv(&gens[g]), "dotenv");
    }
    assert_eq!(fx.sops_decrypt(ENC, "dotenv"), dotenv(&gens[g]));
}

fn entry(extra: &str) -> String {
    format!(
        "{}as = \"files\"\ndir_mode = \"0750\"\ngroup = \"daemon\"\n{extra}",
        Fixture::entry(ENC, SERVER)
    )
}

fn current(fx: &Fixture) -> PathBuf {
    fx.server_path(&format!("{SERVER}/current"))
}

fn releases(fx: &Fixture) -> Vec<String> {
    common::names_in(&fx.server_path(&format!("{SERVER}/releases")))
}

/// The stamp `current` names; it must be a relative symlink `releases/<stamp>`.
fn current_stamp(fx: &Fixture) -> String {
    let link = current(fx);
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "current is not a symlink");
    let target = fs::read_link(&link).unwrap();
    let stamp = target
        .to_str()
        .and_then(|t| t.strip_prefix("releases/"))
        .unwrap_or_else(|| panic!("current → {} is not releases/<stamp>", target.display()));
    assert!(!stamp.is_empty() && !stamp.contains('/'), "{stamp}");
    stamp.to_string()
}

/// `date -u` in the release stamp format.
fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The release `stamp` holds exactly `generation`, in a `dir_mode` folder of group daemon
/// (as its files); `current` reads the same.
fn assert_release(fx: &Fixture, stamp: &str, generation: &Generation) {
    let dir = fx.server_path(&format!("{SERVER}/releases/{stamp}"));
    let keys: Vec<&str> = generation.keys().copied().collect();
    assert_eq!(common::names_in(&dir), keys, "release {stamp} is complete");
    let daemon = common::daemon_gid();
    let owner = |p: &Path| {
        let meta = fs::metadata(p).unwrap();
        (meta.mode() & 0o7777, meta.gid())
    };
    for (key, bytes) in generation {
        let (file, through) = (dir.join(key), current(fx).join(key));
        let ok = fs::read(&file).unwrap() == *bytes && fs::read(through).unwrap() == *bytes;
        assert!(ok, "{stamp}/{key} or current/{key} differs");
        assert_eq!(owner(&file), (0o600, daemon), "{key}");
    }
    assert_eq!(
        owner(&dir),
        (0o750, daemon),
        "a release: dir_mode and group"
    );
    assert_eq!(owner(dir.parent().unwrap()), (0o750, daemon), "releases/");
}

/// What the reader thread found.
#[derive(Default)]
struct Seen {
    /// Generations of A read through `current/A`.
    generations: BTreeSet<usize>,
    reads: usize,
    failures: Vec<String>,
}

/// One pass: every key through `current/<key>` (must exist, whole), then one release as a
/// whole (readlink, then every key in it: all of one generation).
fn read_once(root: &Path, gens: &[Generation], seen: &Mutex<Seen>) {
    let matching = |key: &str, bytes: &[u8]| -> BTreeSet<usize> {
        (0..gens.len()).filter(|g| gens[*g][key] == bytes).collect()
    };
    let mut failures = Vec::new();
    let mut a_generation = None;
    for key in KEYS {
        match fs::read(root.join("current").join(key)) {
            Ok(bytes) => {
                let m = matching(key, &bytes);
                if m.is_empty() {
                    failures.push(format!("current/{key}: partial ({} bytes)", bytes.len()));
                } else if key == "A" {
                    a_generation = m.first().copied();
                }
            }
            Err(e) => failures.push(format!("current/{key}: {e}")),
        }
    }
    if let Ok(target) = fs::read_link(root.join("current")) {
        let release = root.join(target);
        let mut common: Option<BTreeSet<usize>> = None;
        for key in KEYS {
            match fs::read(release.join(key)) {
                Ok(bytes) => {
                    let m = matching(key, &bytes);
                    common = Some(match common {
                        None => m,
                        Some(c) => c.intersection(&m).copied().collect(),
                    });
                }
                // Pruned between the readlink and this read: only an old release may go.
                Err(_) if !release.exists() => return,
                Err(e) => failures.push(format!("{}: {e}", release.display())),
            }
        }
        if common.is_some_and(|c| c.is_empty()) {
            failures.push(format!("{} mixes generations", release.display()));
        }
    } else {
        failures.push("current: no link".into());
    }
    let mut seen = seen.lock().unwrap();
    seen.reads += 1;
    seen.generations.extend(a_generation);
    seen.failures.extend(failures);
}

/// Sets the reader's stop flag when dropped: a failed assertion ends the reader too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn three_rotations_keep_two_complete_releases_and_readers_never_see_a_gap() {
    let fx = Fixture::new();
    let gens = generations();
    rotate(&fx, &gens, 0);
    fx.manifest(&[entry("releases = 2\n")]);
    fx.envsync(["decrypt"]).expect(0);
    let mut stamps = vec![current_stamp(&fx)];
    assert_release(&fx, &stamps[0], &gens[0]);
    assert_eq!(releases(&fx), stamps);

    let root = fx.server_path(SERVER);
    let seen = Mutex::new(Seen::default());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                read_once(&root, &gens, &seen);
            }
        });
        let _stop = StopOnDrop(&stop);
        for g in 1..=3 {
            rotate(&fx, &gens, g);
            let before = utc_now();
            fx.envsync(["decrypt"]).expect(0);
            let after = utc_now();
            let stamp = current_stamp(&fx);
            let base = stamp.split('-').next().unwrap();
            assert!(
                before.as_str() <= base && base <= after.as_str() && base.len() == 16,
                "stamp {stamp} is not the UTC time of the run ({before}..{after})"
            );
            // Prune and rollback order releases by name: a new one sorts last, never reused.
            let newest = stamps.iter().all(|s| *s < stamp);
            assert!(newest, "release {stamp} after {stamps:?}");
            stamps.push(stamp.clone());
            assert_release(&fx, &stamp, &gens[g]);
            let kept = stamps[stamps.len().saturating_sub(2)..].to_vec();
            assert_eq!(releases(&fx), kept, "after rotation {g}: the two newest");
            assert_eq!(status_entry(&fx, 0)["release"], stamp.as_str());
            // Let the reader see this generation before the next one.
            let start = Instant::now();
            while !seen.lock().unwrap().generations.contains(&g) {
                assert!(start.elapsed() < Duration::from_secs(20), "reader stuck");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let seen = seen.into_inner().unwrap();
    let failures = &seen.failures;
    assert!(failures.is_empty(), "readers saw: {failures:#?}");
    assert_eq!(seen.generations, BTreeSet::from([0, 1, 2, 3]));
    assert!(seen.reads > 10, "only {} reads", seen.reads);
}

fn status_entry(fx: &Fixture, code: i32) -> serde_json::Value {
    let run = fx.envsync(["status", "--json"]);
    run.expect(code);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    doc["entries"][0].clone()
}

#[test]
fn rollback_points_current_back_and_decrypt_refuses_until_forced() {
    let fx = Fixture::new();
    let gens = generations();
    rotate(&fx, &gens, 0);
    fx.sops_encrypt("plain/.env.enc", b"X=1\n", "dotenv");
    let plain = Fixture::entry("plain/.env.enc", "plain/.env");
    fx.manifest(&[entry("releases = 3\n"), plain]);
    fx.envsync(["decrypt"]).expect(0);
    let mut s = vec![current_stamp(&fx)];
    for g in [1, 2] {
        rotate(&fx, &gens, g);
        fx.envsync(["decrypt"]).expect(0);
        s.push(current_stamp(&fx));
    }
    assert_eq!(releases(&fx), s);
    let unchanged = |what: &str, run: &[&str], code: i32| {
        let (server, repo) = (common::snapshot(&fx.server), common::snapshot(&fx.repo));
        let out = fx.envsync(run);
        out.expect(code);
        let after = (common::snapshot(&fx.server), common::snapshot(&fx.repo));
        assert!(
            after == (server, repo),
            "{what} changed the server or the repo"
        );
        out
    };
    let dry = unchanged("rollback -n", &["rollback", ENC, "--dry-run"], 0);
    assert!(dry.stdout.contains(&s[1]), "{dry:?}");
    assert_eq!(current_stamp(&fx), s[2]);

    let run = fx.envsync(["rollback", ENC]);
    run.expect(0);
    let (to, from) = (&s[1], &s[2]);
    let said = format!("rolled back {SERVER}: current → releases/{to} (was releases/{from})");
    assert!(run.stderr.contains(&said), "{}", run.stderr);
    assert_eq!(current_stamp(&fx), s[1]);
    assert_release(&fx, &s[1], &gens[1]);
    assert_eq!(releases(&fx), s, "a rollback removes no release");
    let status = fx.envsync(["status"]);
    status.expect(1);
    assert!(
        status.stdout.contains(&format!("rolled back to {to}")),
        "{status:?}"
    );
    let entry = status_entry(&fx, 1);
    assert_eq!(entry["rolled_back_to"], s[1].as_str());
    assert_eq!(entry["release"], s[1].as_str());

    let refused = unchanged("decrypt", &["decrypt"], 3);
    let fix = format!("envsync decrypt --force {ENC}");
    assert!(refused.stderr.contains(&fix), "{}", refused.stderr);
    unchanged("encrypt", &["encrypt"], 3);

    fx.envsync(["rollback", ENC, "--to", &s[0]]).expect(0);
    assert_eq!(current_stamp(&fx), s[0]);
    assert_release(&fx, &s[0], &gens[0]);
    assert_eq!(status_entry(&fx, 1)["rolled_back_to"], s[0].as_str());
    let unknown = ["rollback", ENC, "--to", "20000101T000000Z"];
    let unknown = unchanged("--to unknown", &unknown, 2);
    assert!(unknown.stderr.contains("20000101T000000Z"), "{unknown:?}");
    unchanged("rollback past the oldest", &["rollback", ENC], 2);
    unchanged("no releases", &["rollback", "plain/.env.enc"], 2);

    fx.envsync(["decrypt", "--force"]).expect(0);
    let new = current_stamp(&fx);
    assert!(!s.contains(&new), "decrypt --force made no new release");
    assert_release(&fx, &new, &gens[2]);
    let entry = status_entry(&fx, 0);
    assert_eq!(entry["state"], "in-sync");
    let mark = entry.get("rolled_back_to");
    assert!(mark.is_none_or(serde_json::Value::is_null), "{entry}");
    let left = releases(&fx);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&new), "{left:?}");
}

#[test]
fn a_failing_verify_writes_nothing_from_the_run() {
    let fx = Fixture::new();
    let gens = generations();
    rotate(&fx, &gens, 0);
    fx.sops_encrypt("other/.env.enc", b"OTHER=old\n", "dotenv");
    let other = Fixture::entry("other/.env.enc", "other/.env");
    fx.manifest(&[entry("releases = 2\n"), other.clone()]);
    fx.envsync(["decrypt"]).expect(0);
    let stamp = current_stamp(&fx);
    rotate(&fx, &gens, 1);
    common::sops_set(&fx.repo_path("other/.env.enc"), "OTHER", "new");
    let said = "[\"sh\", \"-c\", \"echo said-$((6*7)); exit 1\"]";
    for (verify, shown) in [
        (said, "echo said-$((6*7)); exit 1"),
        ("[\"false\"]", "`false`"),
    ] {
        let failing = entry(&format!("releases = 2\nverify = {verify}\n"));
        fx.manifest(&[failing, other.clone()]);
        let before = common::snapshot(&fx.server);
        let run = fx.envsync(["decrypt"]);
        run.expect(2);
        let error = run.stderr.lines().find(|l| l.contains("error"));
        assert!(error.unwrap_or_default().contains(shown), "{run:?}");
        // The command's own output is shown too.
        assert!(verify != said || run.stderr.contains("said-42"), "{run:?}");
        let after = common::snapshot(&fx.server);
        assert!(after == before, "verify {verify}: something was written");
        assert_eq!(current_stamp(&fx), stamp);
        assert_eq!(releases(&fx), std::slice::from_ref(&stamp));
        let other_file = fs::read(fx.server_path("other/.env")).unwrap();
        assert_eq!(other_file, b"OTHER=old\n");
        fx.envsync(["status"]).expect(1);
    }
}

#[test]
fn a_passing_verify_sees_the_complete_new_release_before_the_switch() {
    let fx = Fixture::new();
    let gens = generations();
    rotate(&fx, &gens, 0);
    fx.manifest(&[entry("releases = 2\n")]);
    fx.envsync(["decrypt"]).expect(0);
    let old = current_stamp(&fx);
    let out = fx.dir.path().join("verify");
    fs::create_dir(&out).unwrap();
    let script = format!(
        "set -e; pwd > {o}/cwd; echo \"$ENVSYNC_RELEASE\" > {o}/release; \
         ls \"$ENVSYNC_RELEASE\" > {o}/list; cat \"$ENVSYNC_RELEASE/A\" > {o}/A; \
         readlink {SERVER}/current > {o}/link; test -f \"$ENVSYNC_RELEASE/C\"",
        o = out.display()
    );
    let verify = serde_json::to_string(&["sh", "-c", &script]).unwrap();
    fx.manifest(&[entry(&format!("releases = 2\nverify = {verify}\n"))]);
    rotate(&fx, &gens, 1);
    fx.envsync(["decrypt"]).expect(0);
    let new = current_stamp(&fx);
    assert_ne!(new, old);
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    let root = fx.server.canonicalize().unwrap();
    // The release as verified: an absolute folder in releases/ named after the new stamp
    // (envsync stages it as `.envsync.<stamp>.tmp` and renames it once verified).
    let verified = PathBuf::from(read("release").trim_end());
    let name = verified.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        verified.parent(),
        Some(root.join(SERVER).join("releases").as_path())
    );
    assert!(
        name == new || name == format!(".envsync.{new}.tmp"),
        "{name}"
    );
    assert_eq!(read("cwd").trim_end(), root.to_str().unwrap());
    assert_eq!(read("list"), "A\nB\nC\n");
    assert!(
        read("A").as_bytes() == gens[1]["A"],
        "verify read a partial A"
    );
    assert_eq!(
        read("link").trim_end(),
        format!("releases/{old}"),
        "switched before verify"
    );
    assert_release(&fx, &new, &gens[1]);
}

/// Releases made within one second get `-1`, `-2`…; as prune and rollback order releases by
/// name, each new release must sort after every earlier one, even when pruning freed the
/// plain stamp. The decrypts start at the top of a second and follow each other fast.
#[test]
fn release_names_sort_in_the_order_the_releases_were_made() {
    let fx = Fixture::new();
    let gens = generations();
    let encs: Vec<Vec<u8>> = (0..gens.len())
        .map(|g| {
            rotate(&fx, &gens, g);
            fs::read(fx.repo_path(ENC)).unwrap()
        })
        .collect();
    fx.manifest(&[entry("releases = 1\n")]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let millis = u64::from(now.unwrap().subsec_millis());
    std::thread::sleep(Duration::from_millis(1000 - millis));
    let mut made: Vec<String> = Vec::new();
    for enc in &encs {
        common::write_file(&fx.repo_path(ENC), enc);
        fx.envsync(["decrypt", "--force"]).expect(0);
        let stamp = current_stamp(&fx);
        assert!(made.iter().all(|m| *m < stamp), "{stamp} after {made:?}");
        assert_eq!(releases(&fx), std::slice::from_ref(&stamp), "keeps one");
        made.push(stamp);
    }
}
