//! The paths that make envsync fast, checked for correctness (not timed): the sync record's
//! stamp shortcut, records of large `.enc` files kept as a digest, and batch writes.
#![allow(clippy::unwrap_used)]

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::Fixture;

fn record_file(fx: &Fixture, repo: &str) -> std::path::PathBuf {
    fx.server
        .join(".envsync/records")
        .join(repo.replace('%', "%25").replace('/', "%2F"))
}

/// A 2 MiB binary secret: decrypted exactly as sops decrypts it; its record holds a digest
/// (a header line only), and the stamp shortcut then says in sync without a copy.
#[test]
fn large_binary_secret_and_digest_record() {
    let fx = Fixture::new();
    let mut blob: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 7 % 256) as u8).collect();
    blob[100..110].copy_from_slice(b"\0\0\0\0\0\xff\xfe\0\0\0");
    fx.sops_encrypt("big.bin.enc", &blob, "binary");
    fx.manifest(&[Fixture::entry("big.bin.enc", "big.bin")]);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(fs::read(fx.server_path("big.bin")).unwrap(), blob);
    assert_eq!(fx.sops_decrypt("big.bin.enc", "binary"), blob);

    let record = fs::read(record_file(&fx, "big.bin.enc")).unwrap();
    let text = String::from_utf8(record).unwrap();
    assert!(text.starts_with("envsync-record 1 server="), "{text}");
    assert!(text.contains(" enc-sha256="), "{text}");
    assert_eq!(text.lines().count(), 1, "a digest record has no body");

    fx.envsync(["status"]).expect(0);
    fx.envsync(["diff"]).expect(0);

    // The same plaintext re-encrypted (new ciphertext): still in sync, judged by content.
    fx.sops_encrypt("big.bin.enc", &blob, "binary");
    fx.envsync(["status"]).expect(0);

    // A new .enc and a server edit: with only a digest of the old .enc envsync cannot tell
    // which side is newer, so both directions are refused.
    let mut other = blob.clone();
    other[0] ^= 1;
    fx.sops_encrypt("big.bin.enc", &other, "binary");
    fs::write(fx.server_path("big.bin"), b"edited on the server").unwrap();
    let run = fx.envsync(["decrypt"]);
    run.expect(3);
    assert!(run.stderr.contains("conflict"), "{}", run.stderr);
    fx.envsync(["encrypt"]).expect(3);
    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_eq!(fs::read(fx.server_path("big.bin")).unwrap(), other);
}

/// A large `.enc`'s record holds its SHA-256 (`enc-sha256=`). With the digest of the `.enc`
/// as it is, a server edit reads as `server-changed`; with any other digest envsync cannot
/// tell which side moved: `conflict`. A BLAKE3 record of an earlier version (`enc-blake3=`)
/// can no longer be checked: whatever it holds, it reads as a changed `.enc`, so `conflict`.
#[test]
fn sha256_records_count_and_blake3_records_never_match() {
    use sha2::{Digest, Sha256};
    let fx = Fixture::new();
    let blob: Vec<u8> = (0..(2u32 << 20)).map(|i| (i * 13 % 256) as u8).collect();
    fx.sops_encrypt("big.bin.enc", &blob, "binary");
    fx.manifest(&[Fixture::entry("big.bin.enc", "big.bin")]);
    fx.envsync(["decrypt"]).expect(0);
    let record = record_file(&fx, "big.bin.enc");
    let text = fs::read_to_string(&record).unwrap();
    let (head, recorded) = text.trim_end().split_once(" enc-sha256=").unwrap();
    // The synced `lastmodified` follows the digest; records without it still read (below).
    let (recorded, _) = recorded.split_once(" lastmodified=").unwrap();
    let enc = fs::read(fx.repo_path("big.bin.enc")).unwrap();
    let sha256 = |bytes: &[u8]| -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(recorded, sha256(&enc));
    fs::write(fx.server_path("big.bin"), b"edited on the server").unwrap();
    for (field, digest, state) in [
        ("enc-sha256", sha256(&enc), "server-changed"),
        ("enc-sha256", sha256(b"other"), "conflict"),
        ("enc-blake3", sha256(&enc), "conflict"),
    ] {
        fs::write(&record, format!("{head} {field}={digest}\n")).unwrap();
        let run = fx.envsync(["status", "--json"]);
        run.expect(1);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(doc["entries"][0]["state"], state, "{}", run.stdout);
    }
}

/// A server file rewritten with the same bytes gets a new stamp: the slow path decrypts,
/// finds it in sync, and refreshes the record so the next run is fast again.
#[test]
fn same_content_new_stamp_is_in_sync() {
    let fx = Fixture::new();
    fx.sops_encrypt("app.env.enc", b"A=1\nB=two\n", "dotenv");
    fx.manifest(&[Fixture::entry("app.env.enc", "app.env")]);
    fx.envsync(["decrypt"]).expect(0);
    let record = record_file(&fx, "app.env.enc");
    let before = fs::read(&record).unwrap();
    let path = fx.server_path("app.env");
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    fs::write(&path, &bytes).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fx.envsync(["status"]).expect(0);
    // status reads only; decrypt stores the new stamp without touching the file.
    let inode = fs::metadata(&path).unwrap().ino();
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "an in-sync file is not rewritten"
    );
    let after = fs::read(&record).unwrap();
    assert_ne!(before, after, "the record follows the file's new stamp");
    assert_eq!(
        before.splitn(2, |&b| b == b'\n').nth(1),
        after.splitn(2, |&b| b == b'\n').nth(1),
        "the recorded .enc is the same"
    );
}

/// More files than the per-file fsync path takes: written as one batch, each exact, each
/// with its mode, each with a record; nothing left behind.
#[test]
fn batch_write_of_many_files() {
    let fx = Fixture::new();
    let mut entries = Vec::new();
    for i in 0..24 {
        let plain = format!("KEY_{i}=value-{i}\n");
        fx.write_server(&format!("svc{i}/.env"), plain.as_bytes());
        let mode = if i % 2 == 0 { "0600" } else { "0640" };
        entries.push(format!(
            "repo = \"svc{i}/.env.enc\"\nserver = \"svc{i}/.env\"\nmode = \"{mode}\"\n"
        ));
    }
    fx.manifest(&entries);
    fx.envsync(["encrypt"]).expect(0);
    fs::remove_dir_all(&fx.server).unwrap();
    fx.envsync(["decrypt"]).expect(0);
    for i in 0..24 {
        let path = fx.server_path(&format!("svc{i}/.env"));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("KEY_{i}=value-{i}\n")
        );
        let want = if i % 2 == 0 { 0o600 } else { 0o640 };
        assert_eq!(common::mode_of(&path), want, "svc{i}");
        assert!(record_file(&fx, &format!("svc{i}/.env.enc")).is_file());
        assert_eq!(
            fx.sops_decrypt(&format!("svc{i}/.env.enc"), "dotenv"),
            format!("KEY_{i}=value-{i}\n").into_bytes()
        );
    }
    let leftovers: Vec<_> = walkdir::WalkDir::new(&fx.server)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fx.envsync(["status"]).expect(0);
}

/// A server file edited after decrypt planned its run (here: while envsync is held in its
/// lock by strace) is not overwritten: the batch stops before its first rename, exit 3.
#[test]
fn edit_during_a_run_is_not_overwritten() {
    let fx = Fixture::new();
    fx.sops_encrypt("app.env.enc", b"A=new\n", "dotenv");
    fx.manifest(&[Fixture::entry("app.env.enc", "app.env")]);
    fx.write_server("app.env", b"A=old\n");
    let mut child = std::process::Command::new(common::tool("strace"))
        .args(["-f", "-o", "/dev/null", "-e", "trace=flock"])
        .args(["-e", "inject=flock:delay_exit=1500000"])
        .arg(common::envsync_bin())
        .args(["decrypt", "--force"])
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", &fx.home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_run_lock(&fx, &mut child);
    fs::write(fx.server_path("app.env"), b"A=edited meanwhile\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("changed while envsync was working"),
        "{stderr}"
    );
    common::assert_no_leak(&stderr, "stderr");
    assert_eq!(
        fs::read(fx.server_path("app.env")).unwrap(),
        b"A=edited meanwhile\n"
    );
}

/// Waits until the envsync under `child` holds its run lock (its `flock` on the state
/// folder's `lock`, granted and held there by strace's delayed exit): by then it has planned
/// its run. Polled with a non-blocking lock of our own rather than guessed with a sleep, so a
/// loaded machine cannot make the edit land before the plan.
fn wait_for_run_lock(fx: &Fixture, child: &mut std::process::Child) {
    use rustix::fs::{flock, FlockOperation};
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(60);
    let lock_path = fx.server.join(".envsync/lock");
    let lock = loop {
        if let Ok(file) = fs::File::open(&lock_path) {
            break file;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("envsync ended ({status}) before it made its run lock");
        }
        assert!(Instant::now() < deadline, "no run lock within a minute");
        std::thread::sleep(Duration::from_millis(5));
    };
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Err(rustix::io::Errno::WOULDBLOCK) => return,
            Ok(()) => flock(&lock, FlockOperation::Unlock).unwrap(),
            Err(e) => panic!("flock of the run lock: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("envsync ended ({status}) before it took its run lock");
        }
        assert!(
            Instant::now() < deadline,
            "envsync did not take its run lock within a minute"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
