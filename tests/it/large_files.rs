//! Large binary secrets streamed by `envsync decrypt`: an `.enc` of at least 8 MiB
//! (`STREAM_FROM`) whose server file does not exist yet is decrypted chunk by chunk into a
//! private temp beside the target, authenticated (GCM tag, sops MAC) at the end, and only then
//! renamed into place. Every file here was encrypted by real `sops` 3.11.0, and decrypted
//! plaintexts are compared byte for byte with the original and with `sops -d`.
//!
//! One large encryption is shared by every test (its `.enc` bytes are copied into each
//! fixture, tampered where the test needs it), so the whole file costs one big `sops` run.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::common::{key_file, Fixture, Run};

/// Where the shared large `.enc` goes in each fixture's repo, and its server file.
const ENC: &str = "big/data.bin.enc";
const SERVER: &str = "app/data.bin";

/// The plaintext's size: 9 MiB and an odd tail, so its base64 ends with padding and its last
/// GCM block is partial. Its `.enc` is about 12 MiB, well above the 8 MiB streaming threshold.
const PLAIN_LEN: usize = (9 << 20) + 12_346;

/// What every test starts from.
struct Big {
    plain: Vec<u8>,
    /// The `.enc` real sops wrote for `plain` (recipients AGE1, AGE2).
    enc: Vec<u8>,
    /// A small binary `.enc` encrypted separately (another data key): its `mac` is foreign.
    other: Vec<u8>,
}

fn big() -> &'static Big {
    static BIG: OnceLock<Big> = OnceLock::new();
    BIG.get_or_init(|| {
        // Pseudo-random, non-repeating bytes (xorshift64*), with a registered canary inside
        // so that any run printing a piece of the plaintext fails the leak check.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut plain = Vec::with_capacity(PLAIN_LEN + 8);
        while plain.len() < PLAIN_LEN {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            plain.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        plain.truncate(PLAIN_LEN);
        let canary = common::canary("large-binary");
        let at = PLAIN_LEN / 3;
        plain[at..at + canary.len()].copy_from_slice(canary.as_bytes());

        let fx = Fixture::new();
        fx.sops_encrypt("big.enc", &plain, "binary");
        fx.sops_encrypt("other.enc", b"another file, another data key\n", "binary");
        let enc = fs::read(fx.repo_path("big.enc")).unwrap();
        let other = fs::read(fx.repo_path("other.enc")).unwrap();
        assert!(
            enc.len() as u64 >= 8 << 20,
            "the shared .enc must be at least 8 MiB to be streamed, it is {} bytes",
            enc.len()
        );
        let (_, end) = base64_range(&enc);
        assert_eq!(enc[end - 1], b'=', "the base64 ends with padding");
        Big { plain, enc, other }
    })
}

/// A fixture holding the shared `.enc` (or `enc`) at [`ENC`], mapped to [`SERVER`] with
/// `extra` appended to the entry, and no server file.
fn fixture_with(enc: &[u8], extra: &str) -> Fixture {
    let fx = Fixture::new();
    common::write_file(&fx.repo_path(ENC), enc);
    fx.manifest(&[format!("{}{extra}", Fixture::entry(ENC, SERVER))]);
    fx
}

/// Byte offsets of the base64 ciphertext of the `data` value (between `data:` and `,iv:`).
fn base64_range(enc: &[u8]) -> (usize, usize) {
    let opening = b"\"ENC[AES256_GCM,data:";
    let start = find(enc, opening, 0).unwrap() + opening.len();
    let end = find(enc, b",iv:", start).unwrap();
    (start, end)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The shared `.enc` with `edit` applied.
fn tampered(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut enc = big().enc.clone();
    edit(&mut enc);
    enc
}

/// Another valid base64 character in place of the one at `at`.
fn flip_base64(enc: &mut [u8], at: usize) {
    enc[at] = if enc[at] == b'Q' { b'R' } else { b'Q' };
}

/// Envsync temp files (`.envsync.*.tmp`) anywhere under `root`.
fn temps(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy();
            name.starts_with(".envsync.") && name.ends_with(".tmp")
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Every regular file under `root` (server files, temps, state records).
fn files(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// A failed run: exit 2, the message names the `.enc`, and the server holds no file at all
/// (no target, no temp, no sync record).
#[track_caller]
fn assert_refused(fx: &Fixture, run: &Run, what: &str) {
    assert_eq!(
        run.code, 2,
        "{what}: expected exit 2\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let enc = fx.repo_path(ENC).display().to_string();
    assert!(
        run.stderr.contains(&enc),
        "{what}: the error does not name {enc}:\n{}",
        run.stderr
    );
    assert!(
        !fx.server_path(SERVER).exists(),
        "{what}: the server file was created"
    );
    assert_eq!(
        temps(&fx.server),
        Vec::<PathBuf>::new(),
        "{what}: temp left"
    );
    assert_eq!(
        files(&fx.server),
        Vec::<PathBuf>::new(),
        "{what}: a failed run wrote files"
    );
}

/// The server file holds exactly the shared plaintext.
#[track_caller]
fn assert_plain(fx: &Fixture, what: &str) {
    let got = fs::read(fx.server_path(SERVER)).unwrap();
    assert!(
        got == big().plain,
        "{what}: the server file differs from the plaintext ({} bytes, want {})",
        got.len(),
        big().plain.len()
    );
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout))
}

/// `status --json`: the single entry's state, and the overall flag.
fn status_state(fx: &Fixture) -> (String, bool) {
    let run = fx.envsync(["status", "--json"]);
    let doc = json(&run);
    let state = doc["entries"][0]["state"].as_str().unwrap().to_string();
    let in_sync = doc["in_sync"].as_bool().unwrap();
    assert_eq!(
        run.code,
        if in_sync { 0 } else { 1 },
        "status exit code and in_sync disagree:\n{}",
        run.stdout
    );
    (state, in_sync)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The streamed decrypt
// ---------------------------------------------------------------------------------------------

/// A first decrypt onto an empty server: the file is exact (as the plaintext and as `sops -d`
/// prints it), 0600 with the entry's owner and group, nothing left behind; the sync record
/// holds the `.enc`'s SHA-256, status says in-sync, and a second decrypt touches nothing.
#[test]
fn streamed_decrypt_onto_an_empty_server() {
    let big = big();
    let fx = fixture_with(&big.enc, "owner = \"nobody\"\ngroup = \"daemon\"\n");
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    // The report of a real run goes to stderr (stdout is for --json and dry runs).
    let created = format!("create    {ENC} → {SERVER} (mode 0600)");
    assert!(
        run.stderr.contains(&created),
        "the report does not say {created:?}:\n{}",
        run.stderr
    );

    assert_plain(&fx, "streamed decrypt");
    let server = fs::read(fx.server_path(SERVER)).unwrap();
    assert!(
        server == fx.sops_decrypt(ENC, "binary"),
        "the server file differs from what sops -d prints"
    );
    let meta = fs::symlink_metadata(fx.server_path(SERVER)).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode");
    let nobody = uzers::get_user_by_name("nobody").unwrap().uid();
    let daemon = uzers::get_group_by_name("daemon").unwrap().gid();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nobody, daemon),
        "owner and group"
    );
    assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");

    // The record: a digest of the .enc as synced, not a copy of 12 MiB.
    let record = fx
        .server
        .join(".envsync/records")
        .join(ENC.replace('/', "%2F"));
    let record = fs::read_to_string(&record).unwrap();
    let digest = hex(&<sha2::Sha256 as sha2::Digest>::digest(&big.enc));
    assert!(
        record.starts_with("envsync-record 1 ")
            && record.contains(&format!(" enc-sha256={digest}")),
        "the record does not hold the .enc's SHA-256 digest {digest}:\n{record}"
    );

    assert_eq!(status_state(&fx), ("in-sync".to_string(), true));

    // A second decrypt: unchanged, same inode, same mtime, same bytes.
    let before = fs::metadata(fx.server_path(SERVER)).unwrap();
    let run = fx.envsync(["decrypt", "--json"]);
    run.expect(0);
    let doc = json(&run);
    assert_eq!(doc["entries"][0]["action"], "unchanged", "{}", run.stdout);
    assert_eq!(doc["entries"][0]["state"], "in-sync", "{}", run.stdout);
    let after = fs::metadata(fx.server_path(SERVER)).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "an in-sync file is not rewritten"
    );
    assert_plain(&fx, "after the second decrypt");
}

/// The decrypt really streams, and authenticates before it writes: traced with strace,
/// envsync never reads the `.enc` in one call (the stream reads it with `pread64`), and no
/// plaintext is written before the last piece of it has been read, that is before the tag
/// and the MAC could be checked. The output is exact.
#[test]
fn large_file_is_read_in_pieces_and_written_after_authentication() {
    let big = big();
    let fx = fixture_with(&big.enc, "");
    let log = fx.dir.path().join("strace.log");
    let out = Command::new(common::tool("strace"))
        .args(["-f", "-qq", "-e", "signal=none", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=read,pread64,readv,preadv,write,pwrite64,writev,pwritev",
        ])
        .arg(common::envsync_bin())
        .arg("decrypt")
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    common::assert_no_leak(&stderr, "stderr of the traced decrypt");
    common::assert_no_leak(&String::from_utf8_lossy(&out.stdout), "stdout");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_plain(&fx, "traced decrypt");

    // `pid name(args) = n`, or a call split by another thread: `<... name resumed>)   = n`.
    let trace = fs::read_to_string(&log).unwrap();
    let (mut largest_read, mut written) = (0u64, 0u64);
    let (mut last_pread, mut first_big_write) = (None, None);
    for (i, line) in trace.lines().enumerate() {
        if line.contains("pread64") {
            last_pread = Some(i);
        }
        let Some((_, result)) = line.rsplit_once(" = ") else {
            continue;
        };
        let Ok(n) = result
            .split_whitespace()
            .next()
            .unwrap_or("")
            .parse::<u64>()
        else {
            continue;
        };
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest);
        let name = match call.strip_prefix("<... ") {
            Some(resumed) => resumed.split(' ').next().unwrap_or(""),
            None => call.split('(').next().unwrap_or(""),
        };
        if name.contains("read") {
            largest_read = largest_read.max(n);
        } else if name.contains("write") {
            written += n;
            // Plaintext goes out in large writes; messages and records are small.
            if n >= 1 << 16 && first_big_write.is_none() {
                first_big_write = Some(i);
            }
        }
    }
    let (Some(last_pread), Some(first_big_write)) = (last_pread, first_big_write) else {
        panic!(
            "no pread64 or no large write in the trace:\n{}",
            &trace[..trace.len().min(4000)]
        );
    };
    assert!(
        first_big_write > last_pread,
        "a write (trace line {first_big_write}) came before the .enc was read to its end (line {last_pread})"
    );
    assert!(
        written >= PLAIN_LEN as u64,
        "the trace shows {written} bytes written, less than the plaintext ({PLAIN_LEN}):\n{}",
        &trace[..trace.len().min(4000)]
    );
    assert!(
        largest_read <= (big.enc.len() / 4) as u64,
        "the .enc was read in one piece of {largest_read} bytes, not streamed"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Tampering and 3. the wrong key
// ---------------------------------------------------------------------------------------------

/// Every alteration of a large `.enc` is refused (exit 2, the `.enc` named, with the reason)
/// and leaves the server as it was: no file, no temp, no record.
#[test]
fn tampered_large_files_write_nothing() {
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let mid = (start + end) / 2;
    let tag_at = find(&big.enc, b",tag:", end).unwrap() + ",tag:".len();
    let mac_opening = b"\"mac\": \"ENC[AES256_GCM,data:";
    let mac_at = find(&big.enc, mac_opening, end).unwrap() + mac_opening.len();
    let lastmodified = b"\"lastmodified\": \"";
    let lastmodified_at = find(&big.enc, lastmodified, end).unwrap() + lastmodified.len();

    // The `mac` line of the other file, in place of this file's.
    let mac_line = |enc: &[u8]| {
        let from = find(enc, b"\"mac\": \"", 0).unwrap();
        let to = find(enc, b"\n", from).unwrap();
        (from, to)
    };
    let (other_from, other_to) = mac_line(&big.other);
    let foreign_mac = big.other[other_from..other_to].to_vec();

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "one base64 character changed in the middle",
            tampered(|e| flip_base64(e, mid)),
            &["failed authentication"],
        ),
        (
            "one base64 character changed in the first chunk",
            tampered(|e| flip_base64(e, start + 1000)),
            &["failed authentication"],
        ),
        (
            "the data value's tag altered",
            tampered(|e| flip_base64(e, tag_at + 2)),
            &["failed authentication"],
        ),
        (
            "the sops mac altered",
            tampered(|e| flip_base64(e, mac_at + 3)),
            &["MAC mismatch"],
        ),
        (
            "the sops mac of another file",
            tampered(|e| {
                let (from, to) = mac_line(e);
                e.splice(from..to, foreign_mac.iter().copied());
            }),
            &["MAC mismatch"],
        ),
        (
            "lastmodified changed (the MAC's additional data)",
            tampered(|e| {
                // 2026-… → 2027-…: still a valid timestamp.
                e[lastmodified_at + 3] = if e[lastmodified_at + 3] == b'7' {
                    b'8'
                } else {
                    b'7'
                };
            }),
            &["MAC mismatch"],
        ),
        (
            "truncated three quarters into the base64 (still over 8 MiB)",
            tampered(|e| e.truncate(start + (end - start) * 3 / 4)),
            &["is damaged", "git checkout"],
        ),
        (
            "the last bytes cut (the closing braces)",
            tampered(|e| e.truncate(e.len() - 4)),
            &["invalid JSON"],
        ),
        (
            "a non-base64 character (*) in the middle",
            tampered(|e| e[mid] = b'*'),
            &["ENC[AES256_GCM"],
        ),
    ];
    for (what, enc, reasons) in cases {
        assert_ne!(enc, big.enc, "{what}: the edit changed nothing");
        let fx = fixture_with(&enc, "");
        let run = fx.envsync(["decrypt"]);
        assert_refused(&fx, &run, what);
        for reason in reasons {
            assert!(
                run.stderr.contains(reason),
                "{what}: the error does not say {reason:?}:\n{}",
                run.stderr
            );
        }
    }
}

/// A failed streamed decrypt leaves the server folder tree exactly as it was: not even the
/// server file's folder is created (as for a small file, whose decrypt fails before any
/// write).
#[test]
fn failed_stream_creates_no_folder() {
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let fx = fixture_with(&tampered(|e| flip_base64(e, (start + end) / 2)), "");
    let before = common::snapshot(&fx.server);
    let run = fx.envsync(["decrypt"]);
    assert_refused(&fx, &run, "tampered");
    let after = common::snapshot(&fx.server);
    let paths = |s: &[(PathBuf, Vec<u8>, u32)]| s.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        paths(&after),
        paths(&before),
        "a failed decrypt changed the server tree"
    );
}

/// One refused entry writes nothing for any entry: a good large file staged before a tampered
/// one is thrown away, and a small entry of the same run is not written either.
#[test]
fn one_bad_large_file_stops_the_whole_run() {
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let fx = Fixture::new();
    common::write_file(&fx.repo_path("big/good.bin.enc"), &big.enc);
    common::write_file(
        &fx.repo_path("big/bad.bin.enc"),
        &tampered(|e| flip_base64(e, (start + end) / 2)),
    );
    fx.sops_encrypt("small/.env.enc", b"SMALL=value\n", "dotenv");
    fx.manifest(&[
        Fixture::entry("small/.env.enc", "app/.env"),
        Fixture::entry("big/good.bin.enc", "app/good.bin"),
        Fixture::entry("big/bad.bin.enc", "app/bad.bin"),
    ]);
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    let bad = fx.repo_path("big/bad.bin.enc").display().to_string();
    assert!(run.stderr.contains(&bad), "{}", run.stderr);
    assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");
    assert_eq!(
        files(&fx.server),
        Vec::<PathBuf>::new(),
        "a refused run wrote files"
    );

    // With the bad file restored, the same run writes all three.
    common::write_file(&fx.repo_path("big/bad.bin.enc"), &big.enc);
    fx.envsync(["decrypt"]).expect(0);
    for server in ["app/good.bin", "app/bad.bin"] {
        assert!(
            fs::read(fx.server_path(server)).unwrap() == big.plain,
            "{server} differs from the plaintext"
        );
    }
    assert_eq!(
        fs::read(fx.server_path("app/.env")).unwrap(),
        b"SMALL=value\n"
    );
    fx.envsync(["status"]).expect(0);
}

/// An identity that is not a recipient: exit 2 naming the `.enc`, nothing written.
#[test]
fn wrong_key_writes_nothing() {
    let big = big();
    let fx = fixture_with(&big.enc, "");
    let manifest = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let with_age3 = manifest.replace(
        &key_file(1).display().to_string(),
        &key_file(3).display().to_string(),
    );
    assert_ne!(manifest, with_age3);
    fs::write(fx.repo.join("secrets.toml"), with_age3).unwrap();
    let run = fx.envsync(["decrypt"]);
    assert_refused(&fx, &run, "wrong key");
    assert!(
        run.stderr.contains(common::AGE1),
        "the error lists the recipients:\n{}",
        run.stderr
    );
    // The dry run refuses it too.
    let run = fx.envsync(["decrypt", "--dry-run"]);
    assert_refused(&fx, &run, "wrong key, dry run");
}

/// Padding inside the base64 (the first 1 MiB of characters encoding 786,430 bytes and ending
/// in `==`, the rest encoded after it): the same bytes, so tag and MAC would pass, but sops
/// refuses such base64, and so does envsync, streamed or not.
#[test]
fn padding_inside_the_base64_is_refused() {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let cipher = B64.decode(&big.enc[start..end]).unwrap();
    let first = (1 << 20) / 4 * 3 - 2;
    let mut text = B64.encode(&cipher[..first]);
    assert!(text.ends_with("==") && text.len() == 1 << 20);
    text.push_str(&B64.encode(&cipher[first..]));
    let enc = tampered(|e| {
        e.splice(start..end, text.into_bytes());
    });
    let sops_reads = |enc: &[u8]| {
        let fx = fixture_with(enc, "");
        let out = Command::new(common::sops())
            .args([
                "decrypt",
                "--input-type",
                "binary",
                "--output-type",
                "binary",
            ])
            .arg(fx.repo_path(ENC))
            .env("SOPS_AGE_KEY_FILE", key_file(1))
            .output()
            .unwrap();
        out.status.success() && out.stdout == big.plain
    };
    assert!(sops_reads(&big.enc), "sops cannot read the untouched file");
    assert!(!sops_reads(&enc), "sops reads the padded base64");
    let fx = fixture_with(&enc, "");
    let run = fx.envsync(["decrypt"]);
    assert_refused(&fx, &run, "padding inside the base64");
}

// ---------------------------------------------------------------------------------------------
// 4. Layouts the stream does not take: decrypted whole, still exact
// ---------------------------------------------------------------------------------------------

/// A `/` in the middle of the base64 written as the JSON escape `\/` (same JSON string, which
/// sops reads): decrypted whole instead, exactly, with the entry's mode; then in sync.
#[test]
fn json_escape_in_the_middle_falls_back() {
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let slash = find(&big.enc, b"/", (start + end) / 2).unwrap();
    assert!(slash < end);
    let enc = tampered(|e| {
        e.splice(slash..=slash, *b"\\/");
    });
    let fx = fixture_with(&enc, "mode = \"0640\"\n");
    assert!(
        fx.sops_decrypt(ENC, "binary") == big.plain,
        "sops reads the escaped file"
    );
    fx.envsync(["decrypt"]).expect(0);
    assert_plain(&fx, "escaped /");
    assert_eq!(common::mode_of(&fx.server_path(SERVER)), 0o640);
    assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");
    assert_eq!(status_state(&fx), ("in-sync".to_string(), true));
}

/// The same escape near the end of the base64 (in the last 256 KiB the stream reads to find
/// where the base64 ends), at each position modulo 4: sops reads every one of these files, so
/// envsync must decrypt each exactly.
#[test]
fn json_escape_near_the_end_falls_back() {
    let big = big();
    let (start, end) = base64_range(&big.enc);
    let mut failures = Vec::new();
    for residue in 0..4 {
        let slash = (start..end - 1000)
            .rev()
            .find(|&i| big.enc[i] == b'/' && (i - start) % 4 == residue)
            .unwrap();
        let enc = tampered(|e| {
            e.splice(slash..=slash, *b"\\/");
        });
        let fx = fixture_with(&enc, "");
        if residue == 0 {
            assert!(
                fx.sops_decrypt(ENC, "binary") == big.plain,
                "sops reads the escaped file"
            );
        }
        let run = fx.envsync(["decrypt"]);
        let written = fs::read(fx.server_path(SERVER)).ok();
        if run.code != 0 || written.as_deref() != Some(&big.plain[..]) {
            failures.push(format!(
                "`\\/` at base64 index {} ({} % 4 = {residue}, {} characters before the end): \
                 exit {}, server file {}\n{}",
                slash - start,
                slash - start,
                end - slash,
                run.code,
                match &written {
                    None => "not written".to_string(),
                    Some(w) if w == &big.plain => "exact".to_string(),
                    Some(w) => format!("wrong ({} bytes)", w.len()),
                },
                run.stderr.trim_end()
            ));
        }
        assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");
    }
    assert!(
        failures.is_empty(),
        "valid files refused or miswritten:\n{}",
        failures.join("\n")
    );
}

/// The JSON re-serialised by another writer: `sops` before `data` with two-space indentation
/// (declared `format = "binary"`: without it that layout reads as a SOPS JSON file), and
/// `data` first on one compact line (streamed). Both exact, both then in sync.
#[test]
fn reserialised_json_decrypts_exactly() {
    let big = big();
    let doc: serde_json::Value = serde_json::from_slice(&big.enc).unwrap();

    let mut sops_first = serde_json::Map::new();
    sops_first.insert("sops".into(), doc["sops"].clone());
    sops_first.insert("data".into(), doc["data"].clone());
    let sops_first = serde_json::to_vec_pretty(&sops_first).unwrap();
    assert!(sops_first.starts_with(b"{\n  \"sops\": {"));

    let mut data_first = serde_json::Map::new();
    data_first.insert("data".into(), doc["data"].clone());
    data_first.insert("sops".into(), doc["sops"].clone());
    let compact = serde_json::to_vec(&data_first).unwrap();
    assert!(compact.starts_with(b"{\"data\":\"ENC[AES256_GCM,data:"));
    assert!(!compact.contains(&b'\n'));

    for (what, enc, extra) in [
        ("sops first, indent 2", sops_first, "format = \"binary\"\n"),
        ("data first, compact", compact, ""),
    ] {
        assert!(enc.len() as u64 >= 8 << 20, "{what}: too small to stream");
        let fx = fixture_with(&enc, extra);
        assert!(
            fx.sops_decrypt(ENC, "binary") == big.plain,
            "{what}: sops reads it"
        );
        let run = fx.envsync(["decrypt"]);
        assert_eq!(
            run.code, 0,
            "{what}: decrypt failed\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        assert_plain(&fx, what);
        assert_eq!(common::mode_of(&fx.server_path(SERVER)), 0o600, "{what}");
        assert_eq!(
            temps(&fx.server),
            Vec::<PathBuf>::new(),
            "{what}: temp left"
        );
        assert_eq!(
            status_state(&fx),
            ("in-sync".to_string(), true),
            "{what}: status"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Dry runs
// ---------------------------------------------------------------------------------------------

/// `decrypt --dry-run` reports the create and writes nothing (no file, no folder, no state);
/// on a tampered large file it fails as the real run would, since it authenticates the file.
#[test]
fn dry_run_authenticates_and_writes_nothing() {
    let big = big();
    let fx = fixture_with(&big.enc, "");
    let before = common::snapshot(&fx.server);
    let run = fx.envsync(["decrypt", "--dry-run", "--json"]);
    run.expect(0);
    let doc = json(&run);
    assert_eq!(doc["dry_run"], true, "{}", run.stdout);
    assert_eq!(doc["entries"][0]["action"], "create", "{}", run.stdout);
    assert_eq!(
        doc["entries"][0]["state"], "server-missing",
        "{}",
        run.stdout
    );
    assert_eq!(
        common::snapshot(&fx.server),
        before,
        "a dry run wrote on the server"
    );
    assert_eq!(status_state(&fx), ("server-missing".to_string(), false));

    let (start, end) = base64_range(&big.enc);
    for (what, enc) in [
        (
            "a base64 character changed",
            tampered(|e| flip_base64(e, (start + end) / 2)),
        ),
        (
            "the sops mac altered",
            tampered(|e| {
                let opening = b"\"mac\": \"ENC[AES256_GCM,data:";
                let at = find(e, opening, 0).unwrap() + opening.len();
                flip_base64(e, at + 3);
            }),
        ),
    ] {
        let fx = fixture_with(&enc, "");
        let before = common::snapshot(&fx.server);
        let run = fx.envsync(["decrypt", "--dry-run"]);
        assert_refused(&fx, &run, &format!("dry run, {what}"));
        assert_eq!(common::snapshot(&fx.server), before, "dry run, {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. An existing server file: the normal path
// ---------------------------------------------------------------------------------------------

/// A large `.enc` whose server file already exists (other content, no record) is `new`:
/// refused (exit 3, the server file untouched) without `--force`, written exactly with it.
#[test]
fn existing_server_file_is_not_streamed_over() {
    let big = big();
    let fx = fixture_with(&big.enc, "");
    fx.write_server(SERVER, b"an older server copy\n");
    let run = fx.envsync(["decrypt"]);
    run.expect(3);
    assert!(run.stderr.contains("new"), "{}", run.stderr);
    assert_eq!(
        fs::read(fx.server_path(SERVER)).unwrap(),
        b"an older server copy\n",
        "a refused decrypt changed the server file"
    );
    assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");
    assert_eq!(status_state(&fx), ("new".to_string(), false));

    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_plain(&fx, "decrypt --force");
    assert_eq!(common::mode_of(&fx.server_path(SERVER)), 0o600);
    assert_eq!(temps(&fx.server), Vec::<PathBuf>::new(), "temp left");
    assert_eq!(status_state(&fx), ("in-sync".to_string(), true));
}
