//! Safety: never lose a secret. One table, one row per situation: a fresh fixture (two dotenv
//! entries and one binary entry, encrypted by real sops and decrypted once so sync records
//! exist), a setup that creates the situation with real files (and real `sops set` for a
//! teammate's rotation), one envsync run, and then the exit code, the messages, and a checksum
//! walk (SHA-256, mode, owner, inode and mtime of every file) of the repo, the server tree
//! without its state folder, and the state folder, before and after. Each row says which of the
//! three trees may change; every other tree must be untouched to the inode and the nanosecond.
//! Every row is its own test, named after the row: `cargo test --test it safety::row_3d`.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::common::{Fixture, Run};
use sha2::{Digest, Sha256};

const APP_ENC: &str = "app/.env.enc";
const APP: &str = "app/.env";
const WORKER_ENC: &str = "worker/.env.enc";
const WORKER: &str = "worker/.env";
const WEB_ENC: &str = "web/.htpasswd.enc";
const WEB: &str = "web/.htpasswd";

const TOKEN: &str = "tok-5a1f0c9e-safety";
/// DB_PASSWORD as first encrypted (19 bytes).
const PASSWORD: &str = "pw-orig-Qx71-safety";
/// DB_PASSWORD after a teammate's `sops set` (27 bytes).
const ROTATED: &str = "pw-rotated-by-teammate-7Kq2";
/// DB_PASSWORD after an edit on the server (25 bytes).
const EDITED: &str = "pw-edited-on-server-Lm93x";
const NEW_KEY_VALUE: &str = "newkey-value-Tt55-safety";
const QUEUE_PASSWORD: &str = "mq-pass-3Rz9-safety";
const API_KEY: &str = "wk-api-key-8Hc4-safety";
const HTPASSWD_HASH: &str = "$apr1$safety$Zk9QbW1hcnRpbmdhbGU";

fn app_plain(password: &str) -> String {
    format!("A=1\nTOKEN={TOKEN}\nDB_PASSWORD={password}\n")
}

fn worker_plain() -> String {
    format!("QUEUE_URL=amqp://worker:{QUEUE_PASSWORD}@mq:5672/\nAPI_KEY={API_KEY}\n")
}

fn web_plain() -> String {
    format!("admin:{HTPASSWD_HASH}\n")
}

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// The `.enc` files, made once by real sops and copied into every row's fixture.
struct Template {
    app: Vec<u8>,
    /// `app` after `sops set … '["DB_PASSWORD"]' '"<ROTATED>"'`: a teammate's rotation.
    app_rotated: Vec<u8>,
    worker: Vec<u8>,
    web: Vec<u8>,
}

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        for value in [
            TOKEN,
            PASSWORD,
            ROTATED,
            EDITED,
            NEW_KEY_VALUE,
            QUEUE_PASSWORD,
            API_KEY,
            HTPASSWD_HASH,
        ] {
            common::secret(value);
        }
        let fx = Fixture::new();
        fx.sops_encrypt(APP_ENC, app_plain(PASSWORD).as_bytes(), "dotenv");
        fx.sops_encrypt(WORKER_ENC, worker_plain().as_bytes(), "dotenv");
        fx.sops_encrypt(WEB_ENC, web_plain().as_bytes(), "binary");
        let app = fs::read(fx.repo_path(APP_ENC)).unwrap();
        let rotated = fx.dir.path().join("rotated.env");
        fs::write(&rotated, &app).unwrap();
        sops_set(&rotated, "DB_PASSWORD", ROTATED);
        let app_rotated = fs::read(&rotated).unwrap();
        assert_eq!(
            common::sops_decrypt(&rotated, "dotenv", &common::key_file(1)),
            app_plain(ROTATED).as_bytes(),
            "sops set did not rotate DB_PASSWORD"
        );
        Template {
            app,
            app_rotated,
            worker: fs::read(fx.repo_path(WORKER_ENC)).unwrap(),
            web: fs::read(fx.repo_path(WEB_ENC)).unwrap(),
        }
    })
}

/// Real `sops set` on a dotenv `.enc`, with the AGE1 key: what a teammate's rotation is.
fn sops_set(file: &Path, key: &str, value: &str) {
    let out = Command::new(common::sops())
        .args(["set", "--input-type", "dotenv", "--output-type", "dotenv"])
        .arg(file)
        .arg(format!("[\"{key}\"]"))
        .arg(format!("\"{value}\""))
        .env("SOPS_AGE_KEY_FILE", common::key_file(1))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops set failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes the manifest: the app entry (plus `app_extra`), the worker entry, the web entry
/// (plus `web_extra`).
fn manifest(fx: &Fixture, app_extra: &str, web_extra: &str) {
    fx.manifest(&[
        format!("{}{app_extra}", Fixture::entry(APP_ENC, APP)),
        Fixture::entry(WORKER_ENC, WORKER),
        format!("{}{web_extra}", Fixture::entry(WEB_ENC, WEB)),
    ]);
}

/// A fixture in sync: the three `.enc` files from the template, decrypted once by envsync, so
/// the server files and the sync records exist.
fn base() -> Fixture {
    let t = template();
    let fx = Fixture::new();
    common::write_file(&fx.repo_path(APP_ENC), &t.app);
    common::write_file(&fx.repo_path(WORKER_ENC), &t.worker);
    common::write_file(&fx.repo_path(WEB_ENC), &t.web);
    manifest(&fx, "", "");
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        fs::read(fx.server_path(APP)).unwrap(),
        app_plain(PASSWORD).as_bytes()
    );
    assert_eq!(
        fs::read(fx.server_path(WEB)).unwrap(),
        web_plain().as_bytes()
    );
    assert!(record(&fx, APP_ENC).is_file(), "decrypt stored no record");
    fx
}

fn state_dir(fx: &Fixture) -> PathBuf {
    fx.server.join(".envsync")
}

/// The `.enc` a sync record holds: the record file after its one-line header
/// (`envsync-record 1 server=<stamp of the server file>`).
fn record_enc(fx: &Fixture, repo: &str) -> Vec<u8> {
    let bytes = fs::read(record(fx, repo)).unwrap();
    assert!(
        bytes.starts_with(b"envsync-record 1 server="),
        "a record starts with its header"
    );
    let body = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[body..].to_vec()
}

fn record(fx: &Fixture, repo: &str) -> PathBuf {
    // One flat folder: the repo path with `%` and `/` escaped.
    state_dir(fx)
        .join("records")
        .join(repo.replace('%', "%25").replace('/', "%2F"))
}

// Setups: each turns the in-sync base fixture into one situation.

fn nothing(_: &Fixture) {}

/// A teammate's rotation was pulled: the `.enc` changed (real `sops set`), the server did not.
fn rotate(fx: &Fixture) {
    common::write_file(&fx.repo_path(APP_ENC), &template().app_rotated);
}

/// DB_PASSWORD was edited on the server.
fn server_edit(fx: &Fixture) {
    fx.write_server(APP, app_plain(EDITED).as_bytes());
}

fn conflict(fx: &Fixture) {
    rotate(fx);
    server_edit(fx);
}

fn chmod(fx: &Fixture, rel: &str, mode: u32) {
    fs::set_permissions(fx.server_path(rel), fs::Permissions::from_mode(mode)).unwrap();
}

fn remove_state(fx: &Fixture) {
    fs::remove_dir_all(state_dir(fx)).unwrap();
}

const OWNED: &str = "mode = \"0640\"\nowner = \"nobody\"\ngroup = \"nogroup\"\n";
const IN_PLACE: &str = "write = \"in-place\"\n";

// ---------------------------------------------------------------------------------------------
// Checksums of the three trees
// ---------------------------------------------------------------------------------------------

/// One file or folder as the walk saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    dir: bool,
    sha256: String,
    mode: u32,
    uid: u32,
    gid: u32,
    ino: u64,
    mtime_ns: i128,
    bytes: Vec<u8>,
}

impl Meta {
    /// What a reader sees: kind, bytes, mode, owner (not inode nor mtime).
    fn content(&self) -> (bool, &str, u32, u32, u32) {
        (self.dir, &self.sha256, self.mode, self.uid, self.gid)
    }
}

/// Every file and folder under a root, by relative path; `None` when the root does not exist.
type Tree = Option<BTreeMap<PathBuf, Meta>>;

fn walk(root: &Path, skip: Option<&Path>) -> Tree {
    fs::symlink_metadata(root).ok()?;
    let mut out = BTreeMap::new();
    let entries = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| Some(e.path()) != skip);
    for entry in entries {
        let entry = entry.unwrap();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let bytes = if meta.is_file() {
            fs::read(entry.path()).unwrap()
        } else {
            Vec::new()
        };
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        // The root's own mtime moves when the state folder beside the server files is made.
        let mtime_ns = if rel.as_os_str().is_empty() {
            0
        } else {
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
        };
        out.insert(
            rel,
            Meta {
                dir: meta.is_dir(),
                sha256: format!("{:x}", Sha256::digest(&bytes)),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                ino: meta.ino(),
                mtime_ns,
                bytes,
            },
        );
    }
    Some(out)
}

/// The repo, the server without its state folder, and the state folder.
#[derive(Clone, Debug)]
struct Snaps {
    repo: Tree,
    server: Tree,
    state: Tree,
}

impl Snaps {
    fn take(fx: &Fixture) -> Self {
        let state = state_dir(fx);
        Self {
            repo: walk(&fx.repo, None),
            server: walk(&fx.server, Some(&state)),
            state: walk(&state, None),
        }
    }

    fn trees(&self) -> [&Tree; 3] {
        [&self.repo, &self.server, &self.state]
    }
}

fn meta<'t>(tree: &'t Tree, rel: &str) -> &'t Meta {
    tree.as_ref()
        .and_then(|t| t.get(Path::new(rel)))
        .unwrap_or_else(|| panic!("{rel} is not in the tree"))
}

/// How a tree may differ after the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Untouched: same files, bytes, modes, owners, inodes and mtimes.
    Same,
    /// Same files, bytes, modes and owners; may have been rewritten (inode, mtime).
    Rewritten,
    /// Must differ in files, bytes, modes or owners.
    Changed,
    /// Not checked.
    Any,
}
use Change::{Any, Changed, Rewritten, Same};

/// What differs between two walks; `strict` includes inode and mtime.
fn differences(before: &Tree, after: &Tree, strict: bool) -> Vec<String> {
    let (a, b) = match (before, after) {
        (None, None) => return Vec::new(),
        (Some(_), None) => return vec!["the folder was removed".into()],
        (None, Some(_)) => return vec!["the folder was created".into()],
        (Some(a), Some(b)) => (a, b),
    };
    let mut out = Vec::new();
    for (path, old) in a {
        let Some(new) = b.get(path) else {
            out.push(format!("removed {}", path.display()));
            continue;
        };
        if old.content() != new.content() {
            out.push(format!(
                "{}: sha {} mode {:o} {}:{} → sha {} mode {:o} {}:{}",
                path.display(),
                &old.sha256[..12],
                old.mode,
                old.uid,
                old.gid,
                &new.sha256[..12],
                new.mode,
                new.uid,
                new.gid
            ));
        } else if strict && (old.ino != new.ino || old.mtime_ns != new.mtime_ns) {
            out.push(format!(
                "{}: rewritten (inode {} → {}, mtime {} → {})",
                path.display(),
                old.ino,
                new.ino,
                old.mtime_ns,
                new.mtime_ns
            ));
        }
    }
    for path in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("created {}", path.display()));
    }
    out
}

/// The files (not folders) that were replaced or rewritten, or changed in any way.
fn touched_files(before: &Tree, after: &Tree) -> Vec<String> {
    let empty = BTreeMap::new();
    let (a, b) = (
        before.as_ref().unwrap_or(&empty),
        after.as_ref().unwrap_or(&empty),
    );
    let mut paths: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| {
            let (x, y) = (a.get(*p), b.get(*p));
            !x.or(y).is_some_and(|m| m.dir) && x != y
        })
        .map(|p| p.display().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running envsync
// ---------------------------------------------------------------------------------------------

/// How a row runs envsync.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The harness (`Fixture::envsync`).
    Harness,
    /// `sh -c 'umask <mask>; exec envsync …'` with the harness's environment.
    Umask(&'static str),
    /// Under `strace -f -y`, logging the pwrite family and ftruncate to
    /// `<fixture>/pwrite.strace`.
    StraceLog,
    /// Under strace, the first call of this syscall (in each thread) failing with ENOSPC.
    StraceEnospc(&'static str),
}

fn strace_log(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("pwrite.strace")
}

fn run_via(fx: &Fixture, via: Via, args: &[&str]) -> Run {
    let mut cmd = match via {
        Via::Harness => return fx.envsync(args),
        Via::Umask(mask) => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(format!("umask {mask}; exec \"$0\" \"$@\""))
                .arg(common::envsync_bin());
            cmd
        }
        Via::StraceLog => {
            let mut cmd = Command::new(common::tool("strace"));
            cmd.args(["-f", "-y", "-o"])
                .arg(strace_log(fx))
                .args(["-e", "trace=pwrite64,pwritev,pwritev2,ftruncate"])
                .arg(common::envsync_bin());
            cmd
        }
        Via::StraceEnospc(syscall) => {
            let mut cmd = Command::new(common::tool("strace"));
            cmd.args(["-f", "-o", "/dev/null", "-e"])
                .arg(format!("trace={syscall}"))
                .arg("-e")
                .arg(format!("inject={syscall}:error=ENOSPC:when=1"))
                .arg(common::envsync_bin());
            cmd
        }
    };
    let out = cmd
        .args(args)
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "full")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let context = format!("envsync {args:?} via {via:?}");
    common::assert_no_leak(&run.stdout, &format!("stdout of {context}"));
    common::assert_no_leak(&run.stderr, &format!("stderr of {context}"));
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("internal error"),
        "envsync panicked in {context}:\n{}",
        run.stderr
    );
    run
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// What a row's check sees.
struct Outcome {
    before: Snaps,
    after: Snaps,
    run: Run,
}

struct Row {
    name: &'static str,
    setup: fn(&Fixture),
    via: Via,
    args: &'static [&'static str],
    code: i32,
    stdout: Vec<String>,
    stderr: Vec<String>,
    /// How the repo, the server (without the state folder) and the state folder may change.
    trees: [Change; 3],
    /// Further checks after the run.
    check: fn(&Fixture, &Outcome),
}

fn no_check(_: &Fixture, _: &Outcome) {}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// The stderr of a refused run: the entry's line with its state, the resolving command, and
/// the closing "nothing was written".
fn refused(state: &str, meaning: &str, resolve: &str) -> Vec<String> {
    vec![
        format!("envsync: refused: {APP} ({APP_ENC}): {meaning} [{state}]; "),
        resolve.to_string(),
        "envsync: error: nothing was written".to_string(),
    ]
}

const DIFF_THEN_FORCE: &str = "compare with `envsync diff app/.env.enc`, then keep the server \
     copy with `envsync encrypt --force app/.env.enc` or the repo copy with \
     `envsync decrypt --force app/.env.enc`";

fn rows() -> Vec<Row> {
    vec![
        // 1. A server edit is never overwritten by decrypt.
        Row {
            name: "1a server edit, decrypt refuses",
            setup: server_edit,
            via: Via::Harness,
            args: &["decrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "server-changed",
                "edited on the server since the last sync",
                "keep the edit with `envsync encrypt app/.env.enc`, or discard it with \
                 `envsync decrypt --force app/.env.enc`",
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "1b server edit refused, so the missing web file is not written either",
            setup: |fx| {
                server_edit(fx);
                fs::remove_file(fx.server_path(WEB)).unwrap();
            },
            via: Via::Harness,
            args: &["decrypt"],
            code: 3,
            stdout: vec![],
            stderr: strings(&["[server-changed]", "nothing was written: 1 entry"]),
            trees: [Same, Same, Same],
            check: |fx, _| assert!(!fx.server_path(WEB).exists()),
        },
        Row {
            name: "1c pulled rotation refused by encrypt, so the web edit is not encrypted either",
            setup: |fx| {
                rotate(fx);
                fx.write_server(WEB, b"admin:edited-on-the-server\n");
            },
            via: Via::Harness,
            args: &["encrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "repo-changed",
                "a newer .enc was pulled since the last sync",
                "apply the pulled change with `envsync decrypt app/.env.enc`, or overwrite it \
                 with `envsync encrypt --force app/.env.enc`",
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        // 2. A teammate's rotation made with real `sops set`.
        Row {
            name: "2a sops-set rotation, status says repo-changed",
            setup: rotate,
            via: Via::Harness,
            args: &["status"],
            code: 1,
            stdout: strings(&[
                "repo-changed    app/.env.enc → app/.env; next: envsync decrypt app/.env.enc",
                "in-sync         worker/.env.enc → worker/.env",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "2b sops-set rotation, status --json",
            setup: rotate,
            via: Via::Harness,
            args: &["status", "--json"],
            code: 1,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |_, o| {
                let doc: serde_json::Value = serde_json::from_str(&o.run.stdout).unwrap();
                assert_eq!(doc["version"], 1);
                assert_eq!(doc["command"], "status");
                assert_eq!(doc["in_sync"], false);
                let entries = doc["entries"].as_array().unwrap();
                assert_eq!(entries.len(), 3);
                assert_eq!(entries[0]["repo"], APP_ENC);
                assert_eq!(entries[0]["server"], APP);
                assert_eq!(entries[0]["state"], "repo-changed");
                assert_eq!(entries[0]["next"], "envsync decrypt app/.env.enc");
                assert_eq!(entries[0]["drift"], serde_json::json!([]));
                for e in &entries[1..] {
                    assert_eq!(e["state"], "in-sync");
                    assert!(e["next"].is_null());
                }
            },
        },
        Row {
            name: "2c sops-set rotation, decrypt applies it",
            setup: rotate,
            via: Via::Harness,
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed],
            check: |fx, o| {
                let server = fs::read(fx.server_path(APP)).unwrap();
                assert_eq!(server, app_plain(ROTATED).as_bytes());
                assert_eq!(server, fx.sops_decrypt(APP_ENC, "dotenv"));
                assert_eq!(common::mode_of(&fx.server_path(APP)), 0o600);
                assert_eq!(
                    record_enc(fx, APP_ENC),
                    template().app_rotated,
                    "the record is the synced .enc"
                );
                assert_eq!(meta(&o.after.state, "records/app%2F.env.enc").mode, 0o600);
                let changed = differences(&o.before.server, &o.after.server, false);
                assert!(
                    changed.len() == 1 && changed[0].starts_with("app/.env: "),
                    "{changed:?}"
                );
                fx.envsync(["status"]).expect(0);
            },
        },
        Row {
            name: "2d sops-set rotation, encrypt refuses",
            setup: rotate,
            via: Via::Harness,
            args: &["encrypt"],
            code: 3,
            stdout: vec![],
            stderr: strings(&["[repo-changed]", "`envsync decrypt app/.env.enc`"]),
            trees: [Same, Same, Same],
            check: no_check,
        },
        // 3. Both sides changed.
        Row {
            name: "3a conflict, decrypt refuses",
            setup: conflict,
            via: Via::Harness,
            args: &["decrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "conflict",
                "changed on both the server and in the repo since the last sync",
                DIFF_THEN_FORCE,
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "3b conflict, encrypt refuses",
            setup: conflict,
            via: Via::Harness,
            args: &["encrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "conflict",
                "changed on both the server and in the repo since the last sync",
                DIFF_THEN_FORCE,
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "3c conflict, status",
            setup: conflict,
            via: Via::Harness,
            args: &["status"],
            code: 1,
            stdout: strings(&[
                "conflict        app/.env.enc → app/.env; next: envsync diff app/.env.enc",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "3d conflict, decrypt --force takes the repo side",
            setup: conflict,
            via: Via::Harness,
            args: &["decrypt", "--force"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed],
            check: |fx, _| {
                let server = fs::read(fx.server_path(APP)).unwrap();
                assert_eq!(server, fx.sops_decrypt(APP_ENC, "dotenv"));
                assert_eq!(server, app_plain(ROTATED).as_bytes());
                assert_eq!(record_enc(fx, APP_ENC), template().app_rotated);
                fx.envsync(["status"]).expect(0);
            },
        },
        Row {
            name: "3e conflict, encrypt --force takes the server side",
            setup: conflict,
            via: Via::Harness,
            args: &["encrypt", "--force"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Changed, Same, Changed],
            check: |fx, _| {
                assert_eq!(
                    fx.sops_decrypt(APP_ENC, "dotenv"),
                    app_plain(EDITED).as_bytes()
                );
                assert_eq!(
                    record_enc(fx, APP_ENC),
                    fs::read(fx.repo_path(APP_ENC)).unwrap()
                );
                fx.envsync(["status"]).expect(0);
            },
        },
        // 4. Idempotent encrypt.
        Row {
            name: "4a encrypt twice, the second writes nothing",
            setup: |fx| {
                server_edit(fx);
                fx.envsync(["encrypt"]).expect(0);
            },
            via: Via::Harness,
            args: &["encrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |fx, o| {
                let mtime = fs::metadata(fx.repo_path(APP_ENC))
                    .unwrap()
                    .modified()
                    .unwrap();
                let before = meta(&o.before.repo, APP_ENC);
                let ns = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                assert_eq!(
                    i128::try_from(ns).unwrap(),
                    before.mtime_ns,
                    ".enc mtime moved"
                );
            },
        },
        Row {
            name: "4b encrypt right after decrypt leaves sops's own .enc untouched",
            setup: nothing,
            via: Via::Harness,
            args: &["encrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        // 5. Minimal encrypt.
        Row {
            name: "5 one-key server rotation, encrypt changes three lines",
            setup: server_edit,
            via: Via::Harness,
            args: &["encrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Changed, Same, Changed],
            check: |fx, o| {
                let old = String::from_utf8(meta(&o.before.repo, APP_ENC).bytes.clone()).unwrap();
                let new = fs::read_to_string(fx.repo_path(APP_ENC)).unwrap();
                let old: Vec<&str> = old.lines().collect();
                let new: Vec<&str> = new.lines().collect();
                assert_eq!(old.len(), new.len(), "line count changed");
                let mut changed: Vec<&str> = old
                    .iter()
                    .zip(&new)
                    .filter(|(a, b)| a != b)
                    .map(|(a, _)| a.split('=').next().unwrap())
                    .collect();
                changed.sort_unstable();
                assert!(
                    changed == ["DB_PASSWORD", "sops_lastmodified", "sops_mac"]
                        || changed == ["DB_PASSWORD", "sops_mac"],
                    "changed lines: {changed:?}"
                );
                assert_eq!(
                    fx.sops_decrypt(APP_ENC, "dotenv"),
                    app_plain(EDITED).as_bytes()
                );
                // The second recipient still opens it.
                assert_eq!(
                    common::sops_decrypt(&fx.repo_path(APP_ENC), "dotenv", &common::key_file(2)),
                    app_plain(EDITED).as_bytes()
                );
                assert_eq!(
                    record_enc(fx, APP_ENC),
                    fs::read(fx.repo_path(APP_ENC)).unwrap()
                );
                // The other entries' .enc files are untouched, and the mode is kept.
                assert_eq!(touched_files(&o.before.repo, &o.after.repo), [APP_ENC]);
                assert_eq!(meta(&o.after.repo, APP_ENC).mode, 0o644);
                fx.envsync(["status"]).expect(0);
            },
        },
        // 6. Mode drift.
        Row {
            name: "6a chmod 644, status reports mode drift",
            setup: |fx| chmod(fx, APP, 0o644),
            via: Via::Harness,
            args: &["status"],
            code: 1,
            stdout: strings(&[
                "in-sync         app/.env.enc → app/.env; mode 0644 (want 0600); \
                 next: envsync decrypt app/.env.enc",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "6b chmod 644, decrypt repairs the mode without rewriting",
            setup: |fx| chmod(fx, APP, 0o644),
            via: Via::Harness,
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: |fx, o| {
                let (old, new) = (meta(&o.before.server, APP), meta(&o.after.server, APP));
                assert_eq!((old.mode, new.mode), (0o644, 0o600));
                assert_eq!(old.sha256, new.sha256, "content changed");
                assert_eq!(old.ino, new.ino, "the file was replaced");
                assert_eq!(old.mtime_ns, new.mtime_ns, "the file was rewritten");
                assert_eq!(
                    differences(&o.before.server, &o.after.server, true).len(),
                    1
                );
                fx.envsync(["status"]).expect(0);
            },
        },
        Row {
            name: "6c chmod 644, decrypt --dry-run plans the mode fix",
            setup: |fx| chmod(fx, APP, 0o644),
            via: Via::Harness,
            args: &["decrypt", "--dry-run"],
            code: 0,
            stdout: strings(&[
                "would fix-mode  app/.env.enc → app/.env (mode 0600)\n    ~ mode 0644 → 0600",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        // 7. Owner, group and mode are exact whatever the umask.
        Row {
            name: "7a owner/group/0640, create under umask 000",
            setup: |fx| {
                manifest(fx, OWNED, "");
                fs::remove_file(fx.server_path(APP)).unwrap();
            },
            via: Via::Umask("000"),
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: owned,
        },
        Row {
            name: "7b owner/group/0640, create under umask 077",
            setup: |fx| {
                manifest(fx, OWNED, "");
                fs::remove_file(fx.server_path(APP)).unwrap();
            },
            via: Via::Umask("077"),
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: owned,
        },
        Row {
            name: "7c owner/group/0640, fix an existing file under umask 000",
            setup: |fx| manifest(fx, OWNED, ""),
            via: Via::Umask("000"),
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: owned_not_rewritten,
        },
        Row {
            name: "7d owner/group/0640, fix an existing file under umask 077",
            setup: |fx| manifest(fx, OWNED, ""),
            via: Via::Umask("077"),
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: owned_not_rewritten,
        },
        Row {
            name: "7e owner/group/0640, a pulled rotation under umask 000",
            setup: |fx| {
                manifest(fx, OWNED, "");
                rotate(fx);
            },
            via: Via::Umask("000"),
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed],
            check: |fx, o| {
                owned(fx, o);
                assert_eq!(
                    fs::read(fx.server_path(APP)).unwrap(),
                    app_plain(ROTATED).as_bytes()
                );
            },
        },
        Row {
            name: "7f owner/group/0640 drift, status",
            setup: |fx| manifest(fx, OWNED, ""),
            via: Via::Harness,
            args: &["status"],
            code: 1,
            // Owners and groups by name, as the operator knows them.
            stdout: vec!["in-sync         app/.env.enc → app/.env; mode 0600 (want 0640), \
                 owner root (want nobody), group root (want nogroup); next: envsync decrypt app/.env.enc"
                .into()],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "7g owner/group/mode drift, status --json",
            setup: |fx| {
                manifest(fx, OWNED, "");
                chmod(fx, APP, 0o644);
            },
            via: Via::Harness,
            args: &["status", "--json"],
            code: 1,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |_, o| {
                let doc: serde_json::Value = serde_json::from_str(&o.run.stdout).unwrap();
                assert_eq!(doc["in_sync"], false);
                let app = &doc["entries"][0];
                assert_eq!(app["state"], "in-sync");
                assert_eq!(app["next"], "envsync decrypt app/.env.enc");
                assert_eq!(
                    app["drift"],
                    serde_json::json!([
                        {"field": "mode", "actual": "0644", "expected": "0640"},
                        {"field": "owner", "actual": "root", "expected": "nobody"},
                        {"field": "group", "actual": "root", "expected": "nogroup"},
                    ])
                );
            },
        },
        // 8. Missing and empty server files.
        Row {
            name: "8a missing server file, encrypt fails",
            setup: |fx| fs::remove_file(fx.server_path(WEB)).unwrap(),
            via: Via::Harness,
            args: &["encrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&["server/web/.htpasswd: is missing, so there is nothing to encrypt"]),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "8b missing optional server file, encrypt skips it",
            setup: |fx| {
                manifest(fx, "", "optional = true\n");
                fs::remove_file(fx.server_path(WEB)).unwrap();
            },
            via: Via::Harness,
            args: &["encrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "8c empty server file, encrypt fails",
            setup: |fx| fx.write_server(WEB, b""),
            via: Via::Harness,
            args: &["encrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&["server/web/.htpasswd: is empty", "--allow-empty"]),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "8d empty server file, encrypt --allow-empty",
            setup: |fx| fx.write_server(WEB, b""),
            via: Via::Harness,
            args: &["encrypt", "--allow-empty"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Changed, Same, Changed],
            check: |fx, o| {
                assert_eq!(fx.sops_decrypt(WEB_ENC, "binary"), b"");
                assert_eq!(touched_files(&o.before.repo, &o.after.repo), [WEB_ENC]);
                fx.envsync(["status"]).expect(0);
            },
        },
        Row {
            name: "8e empty dotenv server file, encrypt fails",
            setup: |fx| fx.write_server(APP, b""),
            via: Via::Harness,
            args: &["encrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&["server/app/.env: is empty", "--allow-empty"]),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "8f empty dotenv server file, encrypt --allow-empty",
            setup: |fx| fx.write_server(APP, b""),
            via: Via::Harness,
            args: &["encrypt", "--allow-empty"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Changed, Same, Changed],
            check: |fx, o| {
                assert_eq!(fx.sops_decrypt(APP_ENC, "dotenv"), b"");
                assert_eq!(touched_files(&o.before.repo, &o.after.repo), [APP_ENC]);
                fx.envsync(["status"]).expect(0);
            },
        },
        // 9. Dry runs write nothing, the state folder included.
        Row {
            name: "9a decrypt --dry-run of a pulled rotation and a mode fix",
            setup: |fx| {
                rotate(fx);
                chmod(fx, APP, 0o644);
            },
            via: Via::Harness,
            args: &["decrypt", "--dry-run"],
            code: 0,
            stdout: vec![format!(
                concat!(
                    "would update    app/.env.enc → app/.env (mode 0600)\n",
                    "    ~ DB_PASSWORD: changed (len {} → {})\n",
                    "    ~ mode 0644 → 0600\n",
                ),
                PASSWORD.len(),
                ROTATED.len()
            )],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |_, o| {
                assert!(
                    !o.run.stdout.contains("TOKEN"),
                    "an unchanged key is listed"
                );
                assert!(
                    !o.run.stdout.contains("would update    worker")
                        && !o.run.stdout.contains("would update    web"),
                    "an unchanged entry would be written:\n{}",
                    o.run.stdout
                );
            },
        },
        Row {
            name: "9b encrypt -n of a server edit (changed, added, removed keys)",
            setup: |fx| {
                fx.write_server(
                    APP,
                    format!("TOKEN={TOKEN}\nDB_PASSWORD={EDITED}\nNEW_KEY={NEW_KEY_VALUE}\n")
                        .as_bytes(),
                );
            },
            via: Via::Harness,
            args: &["encrypt", "-n"],
            code: 0,
            stdout: vec![
                "would update    app/.env.enc ← app/.env\n".to_string(),
                format!(
                    "    ~ DB_PASSWORD: changed (len {} → {})\n",
                    PASSWORD.len(),
                    EDITED.len()
                ),
                "    + NEW_KEY: added".to_string(),
                "    - A: removed".to_string(),
            ],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            // A real decrypt would store the three records.
            name: "9c decrypt --dry-run without a state folder creates none",
            setup: remove_state,
            via: Via::Harness,
            args: &["decrypt", "--dry-run"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |fx, o| {
                assert!(o.before.state.is_none());
                assert!(!state_dir(fx).exists(), "a dry run made the state folder");
            },
        },
        Row {
            name: "9d decrypt -n of a missing server file without a state folder",
            setup: |fx| {
                remove_state(fx);
                fs::remove_dir_all(fx.server_path("app")).unwrap();
            },
            via: Via::Harness,
            args: &["decrypt", "-n"],
            code: 0,
            stdout: strings(&["would create    app/.env.enc → app/.env (mode 0600)"]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |fx, _| {
                assert!(!state_dir(fx).exists(), "a dry run made the state folder");
                assert!(!fx.server_path("app").exists());
            },
        },
        Row {
            name: "9e encrypt --dry-run of a missing .enc without a state folder",
            setup: |fx| {
                remove_state(fx);
                fs::remove_file(fx.repo_path(APP_ENC)).unwrap();
            },
            via: Via::Harness,
            args: &["encrypt", "--dry-run"],
            code: 0,
            stdout: strings(&[
                "would create    app/.env.enc ← app/.env",
                "+ DB_PASSWORD: added",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |fx, _| assert!(!state_dir(fx).exists(), "a dry run made the state folder"),
        },
        Row {
            name: "9f encrypt --dry-run of a server edit without a state folder",
            setup: |fx| {
                remove_state(fx);
                server_edit(fx);
            },
            // Without a record the edit is `new`: refused, and still nothing is created.
            via: Via::Harness,
            args: &["encrypt", "--dry-run"],
            code: 3,
            stdout: vec![],
            stderr: strings(&["[new]"]),
            trees: [Same, Same, Same],
            check: |fx, _| assert!(!state_dir(fx).exists(), "a dry run made the state folder"),
        },
        Row {
            // A real encrypt would store the three records.
            name: "9g encrypt -n of equal sides without a state folder creates none",
            setup: remove_state,
            via: Via::Harness,
            args: &["encrypt", "-n"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Same],
            check: |fx, o| {
                assert!(!o.run.stdout.contains("would "), "{}", o.run.stdout);
                assert!(!state_dir(fx).exists(), "a dry run made the state folder");
            },
        },
        // 10. In-place writes keep the inode.
        Row {
            name:
                "10a in-place rewrite keeps the inode, uses pwrite64 + ftruncate, drops the backup",
            setup: |fx| {
                manifest(fx, IN_PLACE, "");
                rotate(fx);
            },
            via: Via::StraceLog,
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed],
            check: |fx, o| {
                let (old, new) = (meta(&o.before.server, APP), meta(&o.after.server, APP));
                assert_eq!(old.ino, new.ino, "an in-place entry was replaced");
                assert_eq!(new.bytes, app_plain(ROTATED).as_bytes());
                assert_eq!(new.mode, 0o600);
                assert!(
                    !state_dir(fx).join("backup").join(APP).exists(),
                    "the backup was not removed"
                );
                assert_eq!(record_enc(fx, APP_ENC), template().app_rotated);
                // Which syscalls the in-place path uses: the failure rows inject into them.
                // Nothing else calls them, so `when=1` hits the in-place rewrite.
                let log = fs::read_to_string(strace_log(fx)).unwrap();
                let target = format!("{}>", fx.server_path(APP).display());
                let calls: Vec<(String, bool)> = log
                    .lines()
                    .filter_map(|line| {
                        let call = line.split_whitespace().nth(1)?;
                        let (name, _) = call.split_once('(')?;
                        Some((name.to_string(), line.contains(&target)))
                    })
                    .collect();
                assert_eq!(
                    calls,
                    [
                        ("pwrite64".to_string(), true),
                        ("ftruncate".to_string(), true)
                    ],
                    "pwrite family and ftruncate calls (name, on the target)"
                );
            },
        },
        Row {
            name: "10b in-place rewrite: pwrite64 fails with ENOSPC, the content is kept",
            setup: |fx| {
                manifest(fx, IN_PLACE, "");
                rotate(fx);
            },
            via: Via::StraceEnospc("pwrite64"),
            args: &["decrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&[
                "server/app/.env: cannot rewrite in place (the previous content was restored)",
                "No space left on device",
            ]),
            trees: [Same, Rewritten, Any],
            check: in_place_restored,
        },
        Row {
            // The new content is written, then the truncation fails: only the restore can
            // bring the previous content back.
            name: "10c in-place rewrite: ftruncate fails with ENOSPC, the content is restored",
            setup: |fx| {
                manifest(fx, IN_PLACE, "");
                rotate(fx);
            },
            via: Via::StraceEnospc("ftruncate"),
            args: &["decrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&[
                "server/app/.env: cannot rewrite in place (the previous content was restored)",
                "No space left on device",
            ]),
            trees: [Same, Rewritten, Any],
            check: in_place_restored,
        },
        // 11. New entries (no record, sides differ).
        Row {
            name: "11a new entry, decrypt refuses",
            setup: new_entry,
            via: Via::Harness,
            args: &["decrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "new",
                "repo and server differ and were never synced by envsync",
                DIFF_THEN_FORCE,
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "11b new entry, encrypt refuses",
            setup: new_entry,
            via: Via::Harness,
            args: &["encrypt"],
            code: 3,
            stdout: vec![],
            stderr: refused(
                "new",
                "repo and server differ and were never synced by envsync",
                DIFF_THEN_FORCE,
            ),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "11c new entry, status",
            setup: new_entry,
            via: Via::Harness,
            args: &["status"],
            code: 1,
            stdout: strings(&[
                "new             app/.env.enc → app/.env; next: envsync diff app/.env.enc",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "11d no record but equal sides, decrypt stores the record only",
            setup: |fx| fs::remove_file(record(fx, APP_ENC)).unwrap(),
            via: Via::Harness,
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Same, Changed],
            check: |fx, _| {
                assert_eq!(record_enc(fx, APP_ENC), template().app);
                assert_eq!(common::mode_of(&record(fx, APP_ENC)), 0o600);
            },
        },
        // 12. Missing sides.
        Row {
            name: "12a repo-missing, status",
            setup: |fx| fs::remove_file(fx.repo_path(APP_ENC)).unwrap(),
            via: Via::Harness,
            args: &["status"],
            code: 1,
            stdout: strings(&[
                "repo-missing    app/.env.enc → app/.env; next: envsync encrypt app/.env.enc",
            ]),
            stderr: vec![],
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "12b repo-missing, encrypt creates the .enc",
            setup: |fx| fs::remove_file(fx.repo_path(APP_ENC)).unwrap(),
            via: Via::Harness,
            args: &["encrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Changed, Same, Changed],
            check: |fx, _| {
                assert_eq!(
                    fx.sops_decrypt(APP_ENC, "dotenv"),
                    app_plain(PASSWORD).as_bytes()
                );
                assert_eq!(
                    record_enc(fx, APP_ENC),
                    fs::read(fx.repo_path(APP_ENC)).unwrap()
                );
                fx.envsync(["status"]).expect(0);
            },
        },
        Row {
            name: "12c repo-missing, decrypt fails naming encrypt",
            setup: |fx| fs::remove_file(fx.repo_path(APP_ENC)).unwrap(),
            via: Via::Harness,
            args: &["decrypt"],
            code: 2,
            stdout: vec![],
            stderr: strings(&["repo/app/.env.enc: is missing", "envsync encrypt app/.env"]),
            trees: [Same, Same, Same],
            check: no_check,
        },
        Row {
            name: "12d server-missing, decrypt creates it",
            setup: |fx| fs::remove_dir_all(fx.server_path("app")).unwrap(),
            via: Via::Harness,
            args: &["decrypt"],
            code: 0,
            stdout: vec![],
            stderr: vec![],
            trees: [Same, Changed, Changed], // the record follows the server file's new stamp
            check: |fx, _| {
                assert_eq!(
                    fs::read(fx.server_path(APP)).unwrap(),
                    app_plain(PASSWORD).as_bytes()
                );
                assert_eq!(common::mode_of(&fx.server_path(APP)), 0o600);
                // Folders envsync creates default to 0755 (`dir_mode`).
                assert_eq!(common::mode_of(&fx.server_path("app")), 0o755);
                fx.envsync(["status"]).expect(0);
            },
        },
    ]
}

/// No record for the app entry, and the server holds another password.
fn new_entry(fx: &Fixture) {
    fs::remove_file(record(fx, APP_ENC)).unwrap();
    server_edit(fx);
}

/// uid of `nobody`, gid of `nogroup`.
fn nobody() -> (u32, u32) {
    (
        uzers::get_user_by_name("nobody").unwrap().uid(),
        uzers::get_group_by_name("nogroup").unwrap().gid(),
    )
}

/// The app file is owned by nobody:nogroup, mode 0640 exactly, and holds the synced content.
fn owned(fx: &Fixture, o: &Outcome) {
    let st = fs::symlink_metadata(fx.server_path(APP)).unwrap();
    assert_eq!((st.uid(), st.gid()), nobody(), "owner and group");
    assert_eq!(st.mode() & 0o7777, 0o640, "mode");
    assert_eq!(
        fs::read(fx.server_path(APP)).unwrap(),
        fx.sops_decrypt(APP_ENC, "dotenv")
    );
    // The other entries keep root and 0600.
    let worker = meta(&o.after.server, WORKER);
    assert_eq!((worker.uid, worker.gid, worker.mode), (0, 0, 0o600));
}

/// After a failed in-place rewrite: the previous content in the same inode, the record not
/// advanced, any backup left private, and the entry still repo-changed.
fn in_place_restored(fx: &Fixture, o: &Outcome) {
    let (old, new) = (meta(&o.before.server, APP), meta(&o.after.server, APP));
    assert_eq!(new.bytes, app_plain(PASSWORD).as_bytes(), "not restored");
    assert_eq!(old.ino, new.ino, "an in-place entry was replaced");
    assert_eq!(new.mode, 0o600);
    assert_eq!(
        record_enc(fx, APP_ENC),
        template().app,
        "a failed write updated the record"
    );
    let backup = state_dir(fx).join("backup").join(APP);
    if backup.exists() {
        assert_eq!(common::mode_of(&backup), 0o600);
        assert_eq!(fs::read(&backup).unwrap(), app_plain(PASSWORD).as_bytes());
    }
    let status = fx.envsync(["status"]);
    status.expect(1);
    assert!(
        status.stdout.contains("repo-changed    app/.env.enc"),
        "{}",
        status.stdout
    );
}

/// As [`owned`], and the fix changed owner and mode only: same inode, bytes and mtime.
fn owned_not_rewritten(fx: &Fixture, o: &Outcome) {
    owned(fx, o);
    let (old, new) = (meta(&o.before.server, APP), meta(&o.after.server, APP));
    assert_eq!(old.sha256, new.sha256, "content changed");
    assert_eq!(
        (old.ino, old.mtime_ns),
        (new.ino, new.mtime_ns),
        "rewritten"
    );
}

/// Runs one row in a fresh fixture.
fn run_row(row: &Row) {
    let fx = base();
    (row.setup)(&fx);
    let before = Snaps::take(&fx);
    let run = run_via(&fx, row.via, row.args);
    let after = Snaps::take(&fx);
    assert_eq!(
        run.code, row.code,
        "exit code of envsync {:?}\nstdout:\n{}\nstderr:\n{}",
        row.args, run.stdout, run.stderr
    );
    for (stream, text, wanted) in [
        ("stdout", &run.stdout, &row.stdout),
        ("stderr", &run.stderr, &row.stderr),
    ] {
        for w in wanted {
            assert!(
                text.contains(w.as_str()),
                "{stream} lacks {w:?}\nstdout:\n{}\nstderr:\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
    match row.code {
        // A refusal prints its lines and the closing error, and no progress.
        3 => {
            assert!(run.stdout.is_empty(), "a refusal printed:\n{}", run.stdout);
            let lines: Vec<&str> = run.stderr.lines().collect();
            assert!(
                lines.len() >= 2
                    && lines[..lines.len() - 1]
                        .iter()
                        .all(|l| l.starts_with("envsync: refused: "))
                    && lines[lines.len() - 1].starts_with("envsync: error: nothing was written"),
                "stderr of a refusal:\n{}",
                run.stderr
            );
        }
        // An error is one line.
        2 => assert!(
            run.stderr.lines().count() == 1 && run.stderr.starts_with("envsync: error: "),
            "stderr of an error:\n{}",
            run.stderr
        ),
        _ => {}
    }
    // Whatever happened: no temp file is left, and the state folder stays private.
    for tree in after.trees() {
        for path in tree.iter().flat_map(BTreeMap::keys) {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            assert!(
                !(name.starts_with(".envsync.") && name.ends_with(".tmp")),
                "temp file left: {}",
                path.display()
            );
        }
    }
    for (path, m) in after.state.iter().flatten() {
        let want = if m.dir { 0o700 } else { 0o600 };
        assert_eq!(
            m.mode,
            want,
            "mode of {} in the state folder",
            path.display()
        );
    }
    for ((name, change), (old, new)) in ["repo", "server", "state folder"]
        .into_iter()
        .zip(row.trees)
        .zip(before.trees().into_iter().zip(after.trees()))
    {
        let strict = differences(old, new, true);
        let loose = differences(old, new, false);
        match change {
            Same => assert!(strict.is_empty(), "{name} changed:\n{}", strict.join("\n")),
            Rewritten => assert!(loose.is_empty(), "{name} changed:\n{}", loose.join("\n")),
            Changed => assert!(!loose.is_empty(), "{name} did not change"),
            Any => {}
        }
    }
    (row.check)(&fx, &Outcome { before, after, run });
}

/// A row's test name: `row_` and its label in snake case (every run of characters other than
/// a-z and 0-9 becomes one `_`): "3d conflict, decrypt --force takes the repo side" is
/// `row_3d_conflict_decrypt_force_takes_the_repo_side`.
fn test_name(label: &str) -> String {
    let mut name = String::from("row");
    for word in label
        .to_lowercase()
        .split(|c: char| !c.is_ascii_lowercase() && !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
    {
        name.push('_');
        name.push_str(word);
    }
    name
}

/// The row whose test is `name`.
fn row_named(name: &str) -> Row {
    rows()
        .into_iter()
        .find(|row| test_name(row.name) == name)
        .unwrap_or_else(|| panic!("no row of the table has the test name {name}"))
}

/// One `#[test]` per row, named after it (`cargo test --test it safety::row_3d`), each
/// running [`run_row`] in its own fixture; `ROW_TESTS` lists them for
/// [`every_row_has_its_own_test`].
macro_rules! row_tests {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                run_row(&row_named(stringify!($name)));
            }
        )*

        const ROW_TESTS: &[&str] = &[$(stringify!($name)),*];
    };
}

row_tests! {
    row_1a_server_edit_decrypt_refuses
    row_1b_server_edit_refused_so_the_missing_web_file_is_not_written_either
    row_1c_pulled_rotation_refused_by_encrypt_so_the_web_edit_is_not_encrypted_either
    row_2a_sops_set_rotation_status_says_repo_changed
    row_2b_sops_set_rotation_status_json
    row_2c_sops_set_rotation_decrypt_applies_it
    row_2d_sops_set_rotation_encrypt_refuses
    row_3a_conflict_decrypt_refuses
    row_3b_conflict_encrypt_refuses
    row_3c_conflict_status
    row_3d_conflict_decrypt_force_takes_the_repo_side
    row_3e_conflict_encrypt_force_takes_the_server_side
    row_4a_encrypt_twice_the_second_writes_nothing
    row_4b_encrypt_right_after_decrypt_leaves_sops_s_own_enc_untouched
    row_5_one_key_server_rotation_encrypt_changes_three_lines
    row_6a_chmod_644_status_reports_mode_drift
    row_6b_chmod_644_decrypt_repairs_the_mode_without_rewriting
    row_6c_chmod_644_decrypt_dry_run_plans_the_mode_fix
    row_7a_owner_group_0640_create_under_umask_000
    row_7b_owner_group_0640_create_under_umask_077
    row_7c_owner_group_0640_fix_an_existing_file_under_umask_000
    row_7d_owner_group_0640_fix_an_existing_file_under_umask_077
    row_7e_owner_group_0640_a_pulled_rotation_under_umask_000
    row_7f_owner_group_0640_drift_status
    row_7g_owner_group_mode_drift_status_json
    row_8a_missing_server_file_encrypt_fails
    row_8b_missing_optional_server_file_encrypt_skips_it
    row_8c_empty_server_file_encrypt_fails
    row_8d_empty_server_file_encrypt_allow_empty
    row_8e_empty_dotenv_server_file_encrypt_fails
    row_8f_empty_dotenv_server_file_encrypt_allow_empty
    row_9a_decrypt_dry_run_of_a_pulled_rotation_and_a_mode_fix
    row_9b_encrypt_n_of_a_server_edit_changed_added_removed_keys
    row_9c_decrypt_dry_run_without_a_state_folder_creates_none
    row_9d_decrypt_n_of_a_missing_server_file_without_a_state_folder
    row_9e_encrypt_dry_run_of_a_missing_enc_without_a_state_folder
    row_9f_encrypt_dry_run_of_a_server_edit_without_a_state_folder
    row_9g_encrypt_n_of_equal_sides_without_a_state_folder_creates_none
    row_10a_in_place_rewrite_keeps_the_inode_uses_pwrite64_ftruncate_drops_the_backup
    row_10b_in_place_rewrite_pwrite64_fails_with_enospc_the_content_is_kept
    row_10c_in_place_rewrite_ftruncate_fails_with_enospc_the_content_is_restored
    row_11a_new_entry_decrypt_refuses
    row_11b_new_entry_encrypt_refuses
    row_11c_new_entry_status
    row_11d_no_record_but_equal_sides_decrypt_stores_the_record_only
    row_12a_repo_missing_status
    row_12b_repo_missing_encrypt_creates_the_enc
    row_12c_repo_missing_decrypt_fails_naming_encrypt
    row_12d_server_missing_decrypt_creates_it
}

/// A row added to the table without its line in `row_tests!` (or a test left for a row that
/// was renamed or removed) fails here, so no row goes unrun.
#[test]
fn every_row_has_its_own_test() {
    let names: Vec<String> = rows().iter().map(|row| test_name(row.name)).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "two rows have the same test name: {names:?}"
    );
    let untested: Vec<&String> = names
        .iter()
        .filter(|name| !ROW_TESTS.contains(&name.as_str()))
        .collect();
    assert!(
        untested.is_empty(),
        "rows without a test (add their names to row_tests!): {untested:?}"
    );
    let stale: Vec<&&str> = ROW_TESTS
        .iter()
        .filter(|test| !names.iter().any(|name| name == *test))
        .collect();
    assert!(stale.is_empty(), "tests without a row: {stale:?}");
}
