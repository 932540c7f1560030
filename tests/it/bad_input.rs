//! Bad input: tampered `.enc` files, the wrong key, broken manifests, paths that escape,
//! missing, empty or malformed server files.
//!
//! Every failure must be exit 2 with exactly one line on stderr that names the offending file,
//! no secret in the output (the harness checks every run), and not one byte or mode changed
//! in the repo, on the server or around them.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::common::{Fixture, Run, AGE1, AGE2};

const DOTENV_ENC: &str = "app/.env.enc";
const DOTENV_SERVER: &str = "app/.env";
const BINARY_ENC: &str = "web/.htpasswd.enc";
const BINARY_SERVER: &str = "web/.htpasswd";

type Snap = Vec<(PathBuf, Vec<u8>, u32)>;

/// A fixture with a dotenv and a binary entry, both encrypted by real sops and decrypted once
/// by envsync, so the server targets exist with known content.
fn setup() -> Fixture {
    let fx = Fixture::new();
    let token = common::secret("tok-9f8e7d6c5b4a-bad-input");
    let password = common::secret("pw-Zx81-spectrum-bad-input");
    let hash = common::secret("$apr1$badinput$Q2h4Zm9vYmFyYmF6");
    fx.sops_encrypt(
        DOTENV_ENC,
        format!("# db\nA=1\nTOKEN={token}\nDB_PASSWORD={password}\n").as_bytes(),
        "dotenv",
    );
    fx.sops_encrypt(BINARY_ENC, format!("admin:{hash}\n").as_bytes(), "binary");
    fx.manifest(&[
        Fixture::entry(DOTENV_ENC, DOTENV_SERVER),
        Fixture::entry(BINARY_ENC, BINARY_SERVER),
    ]);
    fx.envsync(["decrypt"]).expect(0);
    assert!(fx.server_path(DOTENV_SERVER).is_file());
    assert!(fx.server_path(BINARY_SERVER).is_file());
    fx
}

/// Everything in the fixture's temp folder: repo, server root, home, and the folder that holds
/// them (the parent of the server root).
fn snap(fx: &Fixture) -> Snap {
    common::snapshot(fx.dir.path())
}

/// The paths whose presence, bytes or mode differ between two snapshots.
fn changes(before: &Snap, after: &Snap) -> Vec<String> {
    let index = |s: &Snap| -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        s.iter()
            .map(|(p, b, m)| (p.clone(), (b.clone(), *m)))
            .collect()
    };
    let (a, b) = (index(before), index(after));
    let mut out = Vec::new();
    for (path, (bytes, mode)) in &a {
        match b.get(path) {
            None => out.push(format!("removed {}", path.display())),
            Some((nb, nm)) => {
                if nb != bytes {
                    out.push(format!("content changed: {}", path.display()));
                }
                if nm != mode {
                    out.push(format!("mode {mode:o} → {nm:o}: {}", path.display()));
                }
            }
        }
    }
    for path in b.keys() {
        if !a.contains_key(path) {
            out.push(format!("created {}", path.display()));
        }
    }
    out
}

#[track_caller]
fn assert_unchanged(fx: &Fixture, before: &Snap, what: &str) {
    let diff = changes(before, &snap(fx));
    assert!(
        diff.is_empty(),
        "{what}: a failed run changed files:\n{}",
        diff.join("\n")
    );
}

/// Whether `text` mentions `path`: its absolute form (as given or canonical), or its relative
/// form as a whole path (not as the prefix of a longer name: `app/.env` is not named by
/// `app/.env.enc`).
fn names_path(text: &str, absolute: &Path, relative: &str) -> bool {
    let mut forms = vec![absolute.display().to_string()];
    if let Ok(canonical) = absolute
        .parent()
        .map_or_else(|| absolute.canonicalize(), Path::canonicalize)
    {
        if let Some(name) = absolute.file_name() {
            forms.push(canonical.join(name).display().to_string());
        }
    }
    forms.push(relative.to_string());
    forms.iter().any(|form| {
        text.match_indices(form.as_str()).any(|(at, _)| {
            !matches!(
                text[at + form.len()..].chars().next(),
                Some(c) if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')
            )
        })
    })
}

/// Whether `text` names manifest line `line` (`line 7`, or `secrets.toml:7`).
fn names_line(text: &str, line: usize) -> bool {
    ["line ", "secrets.toml:"].iter().any(|prefix| {
        let needle = format!("{prefix}{line}");
        text.match_indices(needle.as_str()).any(|(at, _)| {
            !text[at + needle.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    })
}

/// The common checks of a failed run: exit 2 and exactly one non-empty line on stderr.
#[track_caller]
fn assert_error_line(run: &Run, what: &str) -> String {
    assert_eq!(
        run.code, 2,
        "{what}: expected exit 2, got {}\nstdout:\n{}\nstderr:\n{}",
        run.code, run.stdout, run.stderr
    );
    let err = run.stderr.trim();
    assert!(!err.is_empty(), "{what}: stderr is empty");
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: stderr must be exactly one line:\n{err}"
    );
    assert!(
        !err.contains("AGE-SECRET-KEY"),
        "{what}: stderr shows a secret key"
    );
    err.to_string()
}

/// exit 2, one line naming `rel` (a repo path when `in_repo`, else a server path).
#[track_caller]
fn assert_names_file(fx: &Fixture, run: &Run, in_repo: bool, rel: &str, what: &str) {
    let err = assert_error_line(run, what);
    let absolute = if in_repo {
        fx.repo_path(rel)
    } else {
        fx.server_path(rel)
    };
    assert!(
        names_path(&err, &absolute, rel),
        "{what}: the error does not name {}:\n{err}",
        absolute.display()
    );
}

/// Runs each case, then fails listing every case that failed (not only the first).
fn run_cases<C>(cases: &[C], name: impl Fn(&C) -> String, mut body: impl FnMut(&C)) {
    let mut failed = Vec::new();
    for case in cases {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(case))) {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            failed.push(format!("--- {}:\n{message}", name(case)));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Tampering helpers. All of them keep the file parseable.

/// Byte range of the first line whose trimmed text starts with `marker`.
fn line_range(text: &str, marker: &str) -> std::ops::Range<usize> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(marker) {
            return start..start + line.trim_end_matches('\n').len();
        }
        start += line.len();
    }
    panic!("no line starting with {marker:?} in:\n{text}");
}

/// Replaces the first base64 character after `field` on the line starting with `marker` by
/// another valid base64 character. The first character of a base64 run carries six whole
/// bits, so the decoded bytes change and no padding rule is broken.
fn flip(text: &str, marker: &str, field: &str) -> String {
    let line = line_range(text, marker);
    let at = line.start
        + text[line.clone()]
            .find(field)
            .unwrap_or_else(|| panic!("no {field:?} on the {marker:?} line"))
        + field.len();
    let old = text.as_bytes()[at];
    assert!(
        old.is_ascii_alphanumeric() || old == b'+' || old == b'/',
        "not base64 after {field:?}: {:?}",
        old as char
    );
    let new = if old == b'A' { "B" } else { "A" };
    let mut out = text.to_string();
    out.replace_range(at..at + 1, new);
    out
}

/// Flips a base64 character inside the ephemeral share of the age stanza in the armored
/// data key on the line starting with `marker` (the armor's line breaks are written `\n`).
fn flip_armor(text: &str, marker: &str) -> String {
    let header = "-----BEGIN AGE ENCRYPTED FILE-----\\n";
    let line = line_range(text, marker);
    let at = line.start + text[line.clone()].find(header).expect("an armored key") + header.len();
    // Base64 of `age-encryption.org/v1\n-> X25519 ` is 44 chars; the share follows.
    let at = at + 50;
    let old = text.as_bytes()[at];
    assert!(old.is_ascii_alphanumeric() || old == b'+' || old == b'/');
    let new = if old == b'A' { "B" } else { "A" };
    let mut out = text.to_string();
    out.replace_range(at..at + 1, new);
    out
}

/// Swaps the two lines that start with `a` and `b`.
fn swap_lines(text: &str, a: &str, b: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(a))
        .expect("first line");
    let j = lines
        .iter()
        .position(|l| l.starts_with(b))
        .expect("second line");
    lines.swap(i, j);
    lines.join("\n")
}

/// Swaps the key names of the dotenv lines `a=…` and `b=…`, keeping their values in place.
fn swap_keys(text: &str, a: &str, b: &str) -> String {
    text.split('\n')
        .map(|l| {
            if let Some(rest) = l.strip_prefix(&format!("{a}=")) {
                format!("{b}={rest}")
            } else if let Some(rest) = l.strip_prefix(&format!("{b}=")) {
                format!("{a}={rest}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces the dotenv value of `key` with `value`.
fn set_dotenv(text: &str, key: &str, value: &str) -> String {
    let line = line_range(text, &format!("{key}="));
    let mut out = text.to_string();
    out.replace_range(line, &format!("{key}={value}"));
    out
}

/// Replaces the JSON string value on the line starting with `"key":`.
fn set_json(text: &str, key: &str, value: &str) -> String {
    let marker = format!("\"{key}\":");
    let line = line_range(text, &marker);
    let indent = &text[line.clone()][..text[line.clone()].find('"').expect("quote")];
    let comma = if text[line.clone()].ends_with(',') {
        ","
    } else {
        ""
    };
    let new = format!("{indent}{marker} \"{value}\"{comma}");
    let mut out = text.to_string();
    out.replace_range(line, &new);
    out
}

fn read_text(path: &Path) -> String {
    fs::read_to_string(path).expect("read a text file")
}

// ---------------------------------------------------------------------------------------
// Tampered `.enc` files.

struct Tamper {
    name: &'static str,
    /// The repo file tampered with.
    file: &'static str,
    edit: fn(&str) -> String,
}

fn tampers() -> Vec<Tamper> {
    vec![
        Tamper {
            name: "dotenv: value data flipped",
            file: DOTENV_ENC,
            edit: |t| flip(t, "TOKEN=", "data:"),
        },
        Tamper {
            name: "dotenv: value iv flipped",
            file: DOTENV_ENC,
            edit: |t| flip(t, "TOKEN=", ",iv:"),
        },
        Tamper {
            name: "dotenv: value tag flipped",
            file: DOTENV_ENC,
            edit: |t| flip(t, "TOKEN=", ",tag:"),
        },
        Tamper {
            name: "dotenv: sops_mac data flipped",
            file: DOTENV_ENC,
            edit: |t| flip(t, "sops_mac=", "data:"),
        },
        Tamper {
            name: "dotenv: sops_mac tag flipped",
            file: DOTENV_ENC,
            edit: |t| flip(t, "sops_mac=", ",tag:"),
        },
        Tamper {
            name: "dotenv: the data key wrapped for our identity corrupted",
            file: DOTENV_ENC,
            edit: |t| flip_armor(t, "sops_age__list_0__map_enc="),
        },
        Tamper {
            name: "dotenv: two key lines swapped (MAC mismatch)",
            file: DOTENV_ENC,
            edit: |t| swap_lines(t, "TOKEN=", "DB_PASSWORD="),
        },
        Tamper {
            name: "dotenv: key names swapped (values fail to authenticate)",
            file: DOTENV_ENC,
            edit: |t| swap_keys(t, "TOKEN", "DB_PASSWORD"),
        },
        Tamper {
            name: "dotenv: sops_lastmodified changed",
            file: DOTENV_ENC,
            edit: |t| set_dotenv(t, "sops_lastmodified", "2020-01-02T03:04:05Z"),
        },
        Tamper {
            name: "dotenv: a value stored in clear inside a sops file",
            file: DOTENV_ENC,
            edit: |t| set_dotenv(t, "TOKEN", "plain-bad-input-token"),
        },
        Tamper {
            name: "dotenv: the .enc is plaintext",
            file: DOTENV_ENC,
            edit: |_| "A=1\nTOKEN=plain-bad-input-token\n".to_string(),
        },
        Tamper {
            name: "dotenv: the .enc is empty",
            file: DOTENV_ENC,
            edit: |_| String::new(),
        },
        Tamper {
            name: "dotenv: the .enc lost its sops_mac line",
            file: DOTENV_ENC,
            edit: |t| {
                t.split_inclusive('\n')
                    .filter(|l| !l.starts_with("sops_mac="))
                    .collect()
            },
        },
        Tamper {
            name: "binary: data flipped",
            file: BINARY_ENC,
            edit: |t| flip(t, "\"data\":", "data:"),
        },
        Tamper {
            name: "binary: iv flipped",
            file: BINARY_ENC,
            edit: |t| flip(t, "\"data\":", ",iv:"),
        },
        Tamper {
            name: "binary: tag flipped",
            file: BINARY_ENC,
            edit: |t| flip(t, "\"data\":", ",tag:"),
        },
        Tamper {
            name: "binary: mac data flipped",
            file: BINARY_ENC,
            edit: |t| flip(t, "\"mac\":", "data:"),
        },
        Tamper {
            name: "binary: the data key wrapped for our identity corrupted",
            file: BINARY_ENC,
            edit: |t| flip_armor(t, "\"enc\":"),
        },
        Tamper {
            name: "binary: lastmodified changed",
            file: BINARY_ENC,
            edit: |t| set_json(t, "lastmodified", "2020-01-02T03:04:05Z"),
        },
        Tamper {
            name: "binary: the .enc is cut in half",
            file: BINARY_ENC,
            edit: |t| t[..t.len() / 2].to_string(),
        },
        Tamper {
            name: "binary: the .enc is plaintext",
            file: BINARY_ENC,
            edit: |_| "admin:plain-bad-input-hash\n".to_string(),
        },
    ]
}

#[test]
fn tampered_enc_fails_cleanly() {
    common::secret("plain-bad-input-token");
    common::secret("plain-bad-input-hash");
    let fx = setup();
    let cases = tampers();
    run_cases(
        &cases,
        |c| c.name.to_string(),
        |case| {
            let path = fx.repo_path(case.file);
            let original = read_text(&path);
            let tampered = (case.edit)(&original);
            assert_ne!(tampered, original, "the edit changed nothing");
            fs::write(&path, &tampered).expect("write the tampered file");
            let before = snap(&fx);
            let result = catch_unwind(AssertUnwindSafe(|| {
                for command in ["decrypt", "diff"] {
                    let what = format!("{}: envsync {command}", case.name);
                    let run = fx.envsync([command]);
                    assert_names_file(&fx, &run, true, case.file, &what);
                    assert_unchanged(&fx, &before, &what);
                }
            }));
            // Put the good file back for the next case, whatever happened.
            fs::write(&path, &original).expect("restore");
            if let Err(payload) = result {
                std::panic::resume_unwind(payload);
            }
        },
    );
    // With everything restored, the fixture is healthy again.
    fx.envsync(["diff"]).expect(0);
}

/// With `format` set in the manifest, a plaintext `.enc` is still refused, not copied.
#[test]
fn plaintext_enc_with_explicit_format_fails_cleanly() {
    common::secret("plain-explicit-format-token");
    common::secret("plain-explicit-format-hash");
    let fx = setup();
    fx.manifest(&[
        format!(
            "{}format = \"dotenv\"\n",
            Fixture::entry(DOTENV_ENC, DOTENV_SERVER)
        ),
        format!(
            "{}format = \"binary\"\n",
            Fixture::entry(BINARY_ENC, BINARY_SERVER)
        ),
    ]);
    fx.envsync(["diff"]).expect(0);
    for (file, plain) in [
        (DOTENV_ENC, "A=1\nTOKEN=plain-explicit-format-token\n"),
        (BINARY_ENC, "admin:plain-explicit-format-hash\n"),
    ] {
        let path = fx.repo_path(file);
        let original = fs::read(&path).expect("read");
        fs::write(&path, plain).expect("write");
        let before = snap(&fx);
        for command in ["decrypt", "diff"] {
            let what = format!("envsync {command} with a plaintext {file} (format set)");
            let run = fx.envsync([command]);
            assert_names_file(&fx, &run, true, file, &what);
            assert_unchanged(&fx, &before, &what);
        }
        fs::write(&path, original).expect("restore");
    }
}

// ---------------------------------------------------------------------------------------
// The wrong key.

#[test]
fn wrong_key_lists_recipients() {
    let fx = setup();
    let manifest = fx.repo_path("secrets.toml");
    let text = read_text(&manifest);
    let good = common::key_file(1).display().to_string();
    assert!(text.contains(&good));
    fs::write(
        &manifest,
        text.replace(&good, &common::key_file(3).display().to_string()),
    )
    .expect("write manifest");
    let before = snap(&fx);
    for file in [DOTENV_ENC, BINARY_ENC] {
        for command in ["decrypt", "diff"] {
            let what = format!("envsync {command} {file} with keys/age3.txt");
            let run = fx.envsync([command, file]);
            assert_names_file(&fx, &run, true, file, &what);
            for recipient in [AGE1, AGE2] {
                assert!(
                    run.stderr.contains(recipient),
                    "{what}: the error does not list recipient {recipient}:\n{}",
                    run.stderr
                );
            }
            assert_unchanged(&fx, &before, &what);
        }
    }
    // All entries at once: every line names its file; nothing is written.
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(!run.stderr.contains("AGE-SECRET-KEY"));
    for file in [DOTENV_ENC, BINARY_ENC] {
        assert!(
            names_path(&run.stderr, &fx.repo_path(file), file),
            "{}",
            run.stderr
        );
    }
    assert_unchanged(&fx, &before, "envsync decrypt with keys/age3.txt");
}

// ---------------------------------------------------------------------------------------
// Bad manifests.

struct BadManifest {
    name: &'static str,
    /// Builds the manifest text from the good one.
    edit: fn(&str) -> String,
    /// A piece of the offending line (its last occurrence): the error must name that line,
    /// or one of the others given.
    line_with: &'static [&'static str],
    /// Text the message must hold besides the file and line.
    mentions: Option<&'static str>,
}

/// The good manifest plus one more entry.
fn add_entry(text: &str, body: &str) -> String {
    format!("{text}\n[[file]]\n{body}\n")
}

fn bad_manifests() -> Vec<BadManifest> {
    vec![
        BadManifest {
            name: "TOML syntax error",
            edit: |t| t.replace("version = 1\n", "version = 1\nthis is = not toml\n"),
            line_with: &["this is = not toml"],
            mentions: None,
        },
        BadManifest {
            name: "unterminated string",
            edit: |t| {
                add_entry(
                    t,
                    "repo = \"x/.env.enc\"\nserver = \"x/.env\nmode = \"0600\"",
                )
            },
            line_with: &["server = \"x/.env"],
            mentions: None,
        },
        BadManifest {
            name: "unknown key `idenity`",
            edit: |t| t.replacen("identity = ", "idenity = ", 1),
            line_with: &["idenity = "],
            mentions: Some("idenity"),
        },
        BadManifest {
            name: "unknown key in a [[file]]",
            edit: |t| {
                add_entry(
                    t,
                    "repo = \"x/.env.enc\"\nserver = \"x/.env\"\nmdoe = \"0600\"",
                )
            },
            line_with: &["mdoe = "],
            mentions: Some("mdoe"),
        },
        BadManifest {
            name: "[[file]] without `server`",
            edit: |t| add_entry(t, "repo = \"x/.env.enc\"\nmode = \"0600\""),
            line_with: &["[[file]]", "repo = \"x/.env.enc\""],
            mentions: Some("server"),
        },
        BadManifest {
            name: "version 2",
            edit: |t| t.replacen("version = 1", "version = 2", 1),
            line_with: &["version = 2"],
            mentions: Some("version"),
        },
        BadManifest {
            name: "a mode that is not octal",
            edit: |t| {
                add_entry(
                    t,
                    "repo = \"x/.env.enc\"\nserver = \"x/.env\"\nmode = \"0968\"",
                )
            },
            line_with: &["mode = \"0968\""],
            mentions: Some("mode"),
        },
        BadManifest {
            name: "an owner that does not exist",
            edit: |t| {
                add_entry(
                    t,
                    "repo = \"x/.env.enc\"\nserver = \"x/.env\"\nowner = \"no-such-user-envsync\"",
                )
            },
            line_with: &["owner = "],
            mentions: Some("no-such-user-envsync"),
        },
        BadManifest {
            name: "server path with `..`",
            edit: |t| add_entry(t, "repo = \"x/.env.enc\"\nserver = \"../escape/.env\""),
            line_with: &["server = \"../escape/.env\""],
            mentions: None,
        },
        BadManifest {
            name: "server path deeper with `..`",
            edit: |t| add_entry(t, "repo = \"x/.env.enc\"\nserver = \"a/../../escape/.env\""),
            line_with: &["server = \"a/../../escape/.env\""],
            mentions: None,
        },
        BadManifest {
            name: "absolute server path outside the root",
            edit: |t| add_entry(t, "repo = \"x/.env.enc\"\nserver = \"/etc/envsync-test\""),
            line_with: &["server = \"/etc/envsync-test\""],
            mentions: None,
        },
        BadManifest {
            name: "repo path with `..`",
            edit: |t| add_entry(t, "repo = \"../outside.enc\"\nserver = \"x/.env\""),
            line_with: &["repo = \"../outside.enc\""],
            mentions: None,
        },
        BadManifest {
            name: "absolute repo path outside the repo",
            edit: |t| add_entry(t, "repo = \"/etc/envsync-test.enc\"\nserver = \"x/.env\""),
            line_with: &["repo = \"/etc/envsync-test.enc\""],
            mentions: None,
        },
        BadManifest {
            name: "two entries with the same server path",
            edit: |t| add_entry(t, "repo = \"x/.env.enc\"\nserver = \"./app/.env\""),
            line_with: &["server = \"./app/.env\""],
            mentions: None,
        },
        BadManifest {
            name: "two entries with the same repo path",
            edit: |t| add_entry(t, "repo = \"app/./.env.enc\"\nserver = \"x/.env\""),
            line_with: &["repo = \"app/./.env.enc\""],
            mentions: None,
        },
    ]
}

#[test]
fn bad_manifest_names_file_and_line() {
    let fx = setup();
    let manifest = fx.repo_path("secrets.toml");
    let good = read_text(&manifest);
    let outside = [
        PathBuf::from("/etc/envsync-test"),
        PathBuf::from("/etc/envsync-test.enc"),
    ];
    let existed: Vec<bool> = outside.iter().map(|p| p.exists()).collect();
    let cases = bad_manifests();
    run_cases(
        &cases,
        |c| c.name.to_string(),
        |case| {
            let text = (case.edit)(&good);
            assert_ne!(text, good);
            let lines: Vec<usize> = case
                .line_with
                .iter()
                .map(|piece| {
                    text.lines()
                        .enumerate()
                        .filter(|(_, l)| l.contains(piece))
                        .last()
                        .expect("the offending line")
                        .0
                        + 1
                })
                .collect();
            fs::write(&manifest, &text).expect("write manifest");
            let before = snap(&fx);
            for command in ["decrypt", "encrypt", "diff"] {
                let what = format!("{}: envsync {command}", case.name);
                let run = fx.envsync([command]);
                let err = assert_error_line(&run, &what);
                assert!(
                    names_path(&err, &manifest, "secrets.toml"),
                    "{what}: the error does not name secrets.toml:\n{err}"
                );
                assert!(
                    lines.iter().any(|&line| names_line(&err, line)),
                    "{what}: the error does not name line {lines:?}:\n{err}\nmanifest:\n{text}"
                );
                if let Some(word) = case.mentions {
                    assert!(err.contains(word), "{what}: no `{word}` in:\n{err}");
                }
                assert_unchanged(&fx, &before, &what);
            }
        },
    );
    for (path, existed) in outside.iter().zip(existed) {
        if !existed && path.exists() {
            let _ = fs::remove_file(path);
            panic!("{} was created outside the server root", path.display());
        }
    }
    fs::write(&manifest, &good).expect("restore manifest");
    fx.envsync(["diff"]).expect(0);
}

// ---------------------------------------------------------------------------------------
// Decrypt is all or nothing.

#[test]
fn decrypt_is_all_or_nothing() {
    let fx = Fixture::new();
    let first = common::secret("first-all-or-nothing-1");
    let second = common::secret("second-all-or-nothing-2");
    let third = common::secret("third-all-or-nothing-3");
    fx.sops_encrypt("a/.env.enc", format!("ONE={first}\n").as_bytes(), "dotenv");
    fx.sops_encrypt("b/blob.enc", format!("{second}\n").as_bytes(), "binary");
    fx.sops_encrypt(
        "c/.env.enc",
        format!("THREE={third}\n").as_bytes(),
        "dotenv",
    );
    fx.manifest(&[
        Fixture::entry("a/.env.enc", "a/.env"),
        Fixture::entry("b/blob.enc", "b/blob"),
        Fixture::entry("c/.env.enc", "c/.env"),
    ]);
    let last = fx.repo_path("c/.env.enc");
    let good = read_text(&last);
    fs::write(&last, flip(&good, "sops_mac=", "data:")).expect("tamper");

    // An empty server root stays empty.
    let before = snap(&fx);
    let run = fx.envsync(["decrypt"]);
    assert_names_file(
        &fx,
        &run,
        true,
        "c/.env.enc",
        "decrypt with the last entry bad",
    );
    let files: Vec<_> = walkdir::WalkDir::new(&fx.server)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(files.is_empty(), "decrypt wrote {files:?}");
    assert_unchanged(&fx, &before, "decrypt with the last entry bad");

    // With server files in place and a newer `.enc` pulled for the first entry, a bad last
    // entry still means no file is touched.
    fs::write(&last, &good).expect("restore");
    fx.envsync(["decrypt"]).expect(0);
    let newer = common::secret("first-all-or-nothing-rotated");
    fx.sops_encrypt("a/.env.enc", format!("ONE={newer}\n").as_bytes(), "dotenv");
    fs::write(&last, flip(&good, "sops_mac=", "data:")).expect("tamper");
    let before = snap(&fx);
    let run = fx.envsync(["decrypt"]);
    assert_names_file(
        &fx,
        &run,
        true,
        "c/.env.enc",
        "decrypt after a pull, last bad",
    );
    assert_unchanged(&fx, &before, "decrypt after a pull, last bad");
    assert_eq!(
        fs::read(fx.server_path("a/.env")).expect("read"),
        format!("ONE={first}\n").into_bytes()
    );
}

// ---------------------------------------------------------------------------------------
// Encrypt never skips or empties silently.

#[test]
fn encrypt_missing_server_file_is_an_error() {
    let fx = setup();
    fs::remove_file(fx.server_path(DOTENV_SERVER)).expect("remove");
    let before = snap(&fx);
    for args in [vec!["encrypt"], vec!["encrypt", DOTENV_ENC]] {
        let what = format!("envsync {args:?} with a missing server file");
        let run = fx.envsync(&args);
        assert_names_file(&fx, &run, false, DOTENV_SERVER, &what);
        assert_unchanged(&fx, &before, &what);
    }
}

#[test]
fn encrypt_empty_server_file_is_an_error() {
    let fx = setup();
    fs::write(fx.server_path(DOTENV_SERVER), b"").expect("empty");
    fs::write(fx.server_path(BINARY_SERVER), b"").expect("empty");
    let before = snap(&fx);
    for (enc, server) in [(DOTENV_ENC, DOTENV_SERVER), (BINARY_ENC, BINARY_SERVER)] {
        let what = format!("envsync encrypt {enc} with an empty server file");
        let run = fx.envsync(["encrypt", enc]);
        assert_names_file(&fx, &run, false, server, &what);
        assert_unchanged(&fx, &before, &what);
    }
}

#[test]
fn encrypt_skips_missing_optional_file() {
    let fx = setup();
    fx.manifest(&[
        format!(
            "{}optional = true\n",
            Fixture::entry(DOTENV_ENC, DOTENV_SERVER)
        ),
        Fixture::entry(BINARY_ENC, BINARY_SERVER),
    ]);
    fs::remove_file(fx.server_path(DOTENV_SERVER)).expect("remove");
    let repo_before = common::snapshot(&fx.repo);
    let binary_before = fs::read(fx.server_path(BINARY_SERVER)).expect("read");
    fx.envsync(["encrypt"]).expect(0);
    let diff = changes(&repo_before, &common::snapshot(&fx.repo));
    assert!(
        diff.is_empty(),
        "encrypt changed the repo:\n{}",
        diff.join("\n")
    );
    assert!(!fx.server_path(DOTENV_SERVER).exists());
    assert_eq!(
        fs::read(fx.server_path(BINARY_SERVER)).expect("read"),
        binary_before
    );
}

// ---------------------------------------------------------------------------------------
// A malformed server dotenv.

#[test]
fn server_line_without_equals_names_line_not_content() {
    let fx = setup();
    let server = fx.server_path(DOTENV_SERVER);
    let text = read_text(&server);
    let bad = common::secret("sk_live_51HxBadInputLooksSecret0099");
    // Line 1 a comment, line 2 blank (still a line of the file), line 3 the bad one.
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with('#'), "{text}");
    lines.insert(1, "");
    lines.insert(2, &bad);
    fs::write(&server, format!("{}\n", lines.join("\n"))).expect("write");
    let before = snap(&fx);
    for command in ["encrypt", "diff"] {
        let what = format!("envsync {command} with a server line without `=`");
        let run = fx.envsync([command]);
        assert_names_file(&fx, &run, false, DOTENV_SERVER, &what);
        assert!(
            names_line(&run.stderr, 3),
            "{what}: the error does not name line 3:\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("sk_live"), "{}", run.stderr);
        assert_unchanged(&fx, &before, &what);
    }
}

// ---------------------------------------------------------------------------------------
// Other bad inputs.

#[test]
fn decrypt_with_missing_enc_is_an_error() {
    let fx = setup();
    fs::remove_file(fx.repo_path(BINARY_ENC)).expect("remove");
    let before = snap(&fx);
    for args in [vec!["decrypt"], vec!["decrypt", BINARY_ENC]] {
        let what = format!("envsync {args:?} with {BINARY_ENC} missing");
        let run = fx.envsync(&args);
        assert_names_file(&fx, &run, true, BINARY_ENC, &what);
        assert_unchanged(&fx, &before, &what);
    }
}

/// A server file that holds a SOPS file (the `.enc` copied over the plaintext) is refused by
/// encrypt: encrypting it again would commit ciphertext of ciphertext.
#[test]
fn encrypt_refuses_an_encrypted_server_file() {
    let fx = setup();
    fs::copy(fx.repo_path(DOTENV_ENC), fx.server_path(DOTENV_SERVER)).expect("copy");
    let before = snap(&fx);
    let run = fx.envsync(["encrypt", DOTENV_ENC]);
    assert_names_file(
        &fx,
        &run,
        false,
        DOTENV_SERVER,
        "encrypt of an encrypted server file",
    );
    assert_unchanged(&fx, &before, "encrypt of an encrypted server file");
}

/// Server dotenv lines that cannot be a `KEY=value` pair name the file and the line.
#[test]
fn malformed_server_dotenv_lines_name_the_line() {
    let fx = setup();
    let server = fx.server_path(DOTENV_SERVER);
    let good = fs::read(&server).expect("read");
    let cases: [(&str, &[u8]); 2] = [
        ("an empty key", b"=secret-empty-key-value-123\n"),
        (
            "a key that is not UTF-8",
            b"\xff\xfeKEY=secret-non-utf8-key-456\n",
        ),
    ];
    common::secret("secret-empty-key-value-123");
    common::secret("secret-non-utf8-key-456");
    run_cases(
        &cases,
        |c| c.0.to_string(),
        |(name, line)| {
            let mut bytes = b"A=1\n".to_vec();
            bytes.extend_from_slice(line);
            bytes.extend_from_slice(&good);
            fs::write(&server, &bytes).expect("write");
            let before = snap(&fx);
            for command in ["encrypt", "diff"] {
                let what = format!("envsync {command} with {name} on line 2");
                let run = fx.envsync([command]);
                assert_names_file(&fx, &run, false, DOTENV_SERVER, &what);
                assert!(
                    names_line(&run.stderr, 2),
                    "{what}: no line 2 in {}",
                    run.stderr
                );
                assert_unchanged(&fx, &before, &what);
            }
        },
    );
}
