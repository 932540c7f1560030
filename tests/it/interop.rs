//! Interop with the real tools: every file envsync reads was written by real `sops` 3.11.0
//! (or an independent writer that sops accepts) or real `age`, and every file envsync writes
//! is read back by real `sops` and `age`. Plaintexts are compared byte for byte.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{key_file, vectors, Fixture, AGE1, AGE2};

// ---------------------------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------------------------

/// Writes `secrets.toml` like `Fixture::manifest`, but with `identity` (or none) as
/// `server.identity`.
fn manifest_with_identity(fx: &Fixture, identity: Option<&Path>, files: &[String]) {
    let mut text = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n",
        fx.server.display()
    );
    if let Some(identity) = identity {
        text.push_str(&format!("identity = \"{}\"\n", identity.display()));
    }
    for f in files {
        text.push_str("\n[[file]]\n");
        text.push_str(f);
        if !f.ends_with('\n') {
            text.push('\n');
        }
    }
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
}

/// A `[[file]]` body with an explicit `format`.
fn entry_with_format(repo: &str, server: &str, format: &str) -> String {
    format!("{}format = \"{format}\"\n", Fixture::entry(repo, server))
}

/// The key file holding all three vector keys.
fn all_keys() -> PathBuf {
    vectors().join("keys/all.txt")
}

/// `age -d -i key` of `input`; panics when age fails.
fn age_decrypt(input: &[u8], key: &Path) -> Vec<u8> {
    let mut child = Command::new(common::tool("age"))
        .arg("-d")
        .arg("-i")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "age -d -i {} failed: {}",
        key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `age -e -a -r recipient` of `input`.
fn age_encrypt_armored(input: &[u8], recipient: &str) -> Vec<u8> {
    let mut child = Command::new(common::tool("age"))
        .args(["-e", "-a", "-r", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "age -e failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The key file of a vector recipient.
fn key_for(recipient: &str) -> PathBuf {
    match recipient {
        AGE1 => key_file(1),
        AGE2 => key_file(2),
        common::AGE3 => key_file(3),
        other => panic!("unexpected recipient {other}"),
    }
}

/// What sops prints for a dotenv plaintext: lines split on `\n`, empty lines dropped, each
/// line ended by `\n`.
fn dotenv_canonical(plain: &str) -> String {
    plain
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `(recipient, armored enc)` of every age key of a SOPS dotenv file, in list order.
fn dotenv_age_keys(file: &str) -> Vec<(String, String)> {
    let field = |n: usize, name: &str| {
        let prefix = format!("sops_age__list_{n}__map_{name}=");
        file.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.replace("\\n", "\n"))
    };
    let mut keys = Vec::new();
    for n in 0.. {
        match (field(n, "recipient"), field(n, "enc")) {
            (Some(recipient), Some(enc)) => keys.push((recipient, enc)),
            (None, None) => break,
            other => panic!("age key {n} is incomplete: {other:?}"),
        }
    }
    keys
}

/// `(recipient, armored enc)` of every age key of a SOPS binary (JSON) file.
fn binary_age_keys(file: &[u8]) -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_slice(file).unwrap();
    doc["sops"]["age"]
        .as_array()
        .expect("sops.age is a list")
        .iter()
        .map(|k| {
            (
                k["recipient"].as_str().unwrap().to_string(),
                k["enc"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks that every wrapped data key opens with its recipient's key with real `age`, is 32
/// bytes, and that all recipients hold the same data key.
#[track_caller]
fn assert_data_keys_open(keys: &[(String, String)], what: &str) {
    let recipients: Vec<&str> = keys.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(recipients, [AGE1, AGE2], "{what}: recipients");
    let mut data_keys = Vec::new();
    for (recipient, enc) in keys {
        assert!(
            enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n")
                && enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"),
            "{what}: enc for {recipient} is not an armored age file:\n{enc}"
        );
        let data_key = age_decrypt(enc.as_bytes(), &key_for(recipient));
        assert_eq!(
            data_key.len(),
            32,
            "{what}: data key for {recipient} is not 32 bytes"
        );
        data_keys.push(data_key);
    }
    assert!(
        data_keys.windows(2).all(|w| w[0] == w[1]),
        "{what}: recipients hold different data keys"
    );
}

/// The layout of a JSON text with the values left out: per line, its indentation, the key
/// (if any) and the structural characters, so two files differing only in random values and
/// timestamps compare equal.
fn json_shape(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let body = line.trim_start_matches('\t');
            let tabs = line.len() - body.len();
            let head = match body.find("\": ") {
                Some(i) if body.starts_with('"') => &body[..i + 3],
                _ => "",
            };
            let rest = &body[head.len()..];
            let open = rest.chars().next().unwrap_or(' ');
            let close = rest.chars().last().unwrap_or(' ');
            format!("{tabs}|{head}|{open}{close}")
        })
        .collect()
}

/// `sops -d` with the given key, for each key in `keys`, must print exactly `expected`.
#[track_caller]
fn assert_sops_reads(path: &Path, kind: &str, keys: &[PathBuf], expected: &[u8]) {
    for key in keys {
        let got = common::sops_decrypt(path, kind, key);
        assert!(
            got == expected,
            "sops -d ({kind}, key {}) of {} differs from the plaintext:\n got: {:?}\nwant: {:?}",
            key.display(),
            path.display(),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every dotenv and binary vector
// ---------------------------------------------------------------------------------------------

/// `(vector, sops type, compare with expected/<vector>.decrypted)`.
const VECTORS: &[(&str, &str, bool)] = &[
    ("dotenv_tricky.enc.env", "dotenv", true),
    ("dotenv_tricky_2recipients.enc.env", "dotenv", true),
    ("dotenv_backslash_n.enc.env", "dotenv", true),
    ("dotenv_mac_only_encrypted.enc.env", "dotenv", true),
    ("dotenv_shamir_2of3.enc.env", "dotenv", true),
    ("dotenv_typed.env.enc", "dotenv", true),
    ("python_written_dotenv.enc.env", "dotenv", true),
    ("python_written_iv12.enc.env", "dotenv", true),
    ("python_written_mac_only.enc.env", "dotenv", true),
    ("rotate_before.enc.env", "dotenv", true),
    ("rotate_after.enc.env", "dotenv", true),
    ("updatekeys_before.enc.env", "dotenv", true),
    ("updatekeys_after.enc.env", "dotenv", true),
    ("dotenv_as_binary.env.enc", "binary", true),
    ("01-create-databases.sql.enc", "binary", true),
    ("binary_with_nul.enc.bin", "binary", true),
    // Its expected/ file was made by decrypting it as JSON, not as binary.
    ("python_written_binary.enc.json", "binary", false),
];

/// Proves: `envsync decrypt` turns every dotenv and binary sops vector into exactly the bytes
/// real `sops decrypt --input-type T --output-type T` prints, whether the format comes from
/// the manifest (`format = …`) or from the file's content.
#[test]
fn decrypt_matches_sops_for_every_vector() {
    let fx = Fixture::new();
    let mut entries = Vec::new();
    for (name, kind, _) in VECTORS {
        let bytes = fs::read(vectors().join(name)).unwrap();
        for how in ["detected", "explicit"] {
            let repo = format!("vectors/{how}/{name}");
            common::write_file(&fx.repo_path(&repo), &bytes);
            let server = format!("out/{how}/{name}.plain");
            entries.push(if how == "explicit" {
                entry_with_format(&repo, &server, kind)
            } else {
                Fixture::entry(&repo, &server)
            });
        }
    }
    manifest_with_identity(&fx, Some(&all_keys()), &entries);
    fx.envsync(["decrypt"]).expect(0);

    for (name, kind, compare_expected) in VECTORS {
        let want = common::sops_decrypt(&vectors().join(name), kind, &all_keys());
        if *compare_expected {
            let expected =
                fs::read(vectors().join("expected").join(format!("{name}.decrypted"))).unwrap();
            assert_eq!(want, expected, "{name}: sops disagrees with expected/");
        }
        for how in ["detected", "explicit"] {
            let server = fx.server_path(&format!("out/{how}/{name}.plain"));
            let got = fs::read(&server).unwrap();
            assert!(
                got == want,
                "{name} ({how} format {kind}): envsync decrypt differs from sops -d\n got: {:?}\nwant: {:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
            assert_eq!(common::mode_of(&server), 0o600, "{name} ({how}): mode");
        }
    }
    // Decrypted again, nothing changes and the server agrees with the repo.
    fx.envsync(["diff"]).expect(0);
}

/// Proves: the 2-of-3 Shamir vector opens with any two of its three keys given as
/// `--identity`, exactly as sops prints it, and does not open with one key alone.
#[test]
fn shamir_vector_needs_two_of_three_keys() {
    let name = "dotenv_shamir_2of3.enc.env";
    let want = common::sops_decrypt(&vectors().join(name), "dotenv", &all_keys());
    let fx = Fixture::new();
    common::write_file(
        &fx.repo_path(name),
        &fs::read(vectors().join(name)).unwrap(),
    );
    manifest_with_identity(&fx, None, &[Fixture::entry(name, "shamir.env")]);
    for (a, b) in [(1, 2), (1, 3), (2, 3)] {
        let _ = fs::remove_file(fx.server_path("shamir.env"));
        let (ka, kb) = (key_file(a), key_file(b));
        fx.envsync([
            "decrypt".as_ref(),
            "--identity".as_ref(),
            ka.as_os_str(),
            "--identity".as_ref(),
            kb.as_os_str(),
        ])
        .expect(0);
        assert_eq!(
            fs::read(fx.server_path("shamir.env")).unwrap(),
            want,
            "keys {a}+{b}"
        );
    }
    fs::remove_file(fx.server_path("shamir.env")).unwrap();
    for a in 1..=3 {
        let ka = key_file(a);
        let run = fx.envsync(["decrypt".as_ref(), "--identity".as_ref(), ka.as_os_str()]);
        assert_ne!(run.code, 0, "key {a} alone opened a 2-of-3 file");
        assert!(
            !fx.server_path("shamir.env").exists(),
            "key {a} alone wrote a server file"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Files freshly encrypted by real sops
// ---------------------------------------------------------------------------------------------

/// A dotenv plaintext with every shape sops treats specially.
fn tricky_dotenv(token: &str) -> String {
    format!(
        "# a comment line: with = and 'quotes'\n\
         EQUALS=a=b=c==\n\
         HASH=value # not a comment\n\
         DOUBLE=\"double quoted\"\n\
         SINGLE='single quoted'\n\
         UNICODE=é ✓ 日本\n\
         ESCAPED=line1\\nline2\n\
         LITERAL_BACKSLASH=a\\\\nb\n\
         EMPTY=\n\
         TRAILING_SPACE =  padded value  \n\
         export X=y\n\
         CRLF=value\r\n\
         TOKEN={token}\n"
    )
}

/// Bytes that are not UTF-8: NULs, 0xff, 0xfe, no final newline.
fn tricky_binary(token: &str) -> Vec<u8> {
    let mut bytes = b"\x00\x00hello\x00world\xff\xfe\xff binary\n".to_vec();
    bytes.extend_from_slice(token.as_bytes());
    bytes.extend_from_slice(b"\x00\xff");
    bytes
}

/// Proves: files real sops encrypts in the test (tricky dotenv, NUL/0xff binary) decrypt
/// with `envsync decrypt` to exactly what `sops -d` prints.
#[test]
fn decrypt_matches_sops_for_fresh_sops_files() {
    let fx = Fixture::new();
    let dotenv = tricky_dotenv(&common::canary("fresh-dotenv"));
    let binary = tricky_binary(&common::canary("fresh-binary"));
    // (repo path, server path, sops type, plaintext)
    let cases: [(&str, &str, &str, &[u8]); 3] = [
        ("app/.env.enc", "app/.env", "dotenv", dotenv.as_bytes()),
        // A `.env.enc` holding a dotenv-structured file, only recognisable by content.
        ("typed/.env.enc", "typed/.env", "dotenv", dotenv.as_bytes()),
        ("blob/data.bin.enc", "blob/data.bin", "binary", &binary),
    ];
    for (repo, _, kind, plain) in cases {
        fx.sops_encrypt(repo, plain, kind);
    }
    fx.manifest(
        &cases
            .iter()
            .map(|(repo, server, _, _)| Fixture::entry(repo, server))
            .collect::<Vec<_>>(),
    );
    fx.envsync(["decrypt"]).expect(0);
    for (repo, server, kind, plain) in cases {
        let want = fx.sops_decrypt(repo, kind);
        let got = fs::read(fx.server_path(server)).unwrap();
        assert!(
            got == want,
            "{repo}: envsync decrypt differs from sops -d\n got: {:?}\nwant: {:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        // And sops itself gave back the input (as it prints it).
        let canonical = if kind == "dotenv" {
            dotenv_canonical(std::str::from_utf8(plain).unwrap()).into_bytes()
        } else {
            plain.to_vec()
        };
        assert_eq!(want, canonical, "{repo}: sops round trip");
    }
    fx.envsync(["diff"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// 3. envsync encrypt, read by real sops and age
// ---------------------------------------------------------------------------------------------

/// `(repo path, server path, explicit format, sops type, server plaintext)`.
type EncryptCase<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, &'a [u8]);

/// Proves: dotenv and binary `.enc` files written by `envsync encrypt` decrypt with real
/// `sops` to exactly the canonical plaintext with either recipient's key alone, carry a
/// 32-byte data key that real `age` unwraps for each recipient, and (binary) are JSON laid
/// out like sops's own.
#[test]
fn encrypt_output_is_read_by_sops_and_age() {
    let fx = Fixture::new();
    let token = common::canary("enc-dotenv");
    // Blank lines and no final newline: sops drops the former and adds the latter.
    let dotenv = format!(
        "\n{}\n\nNOTE_unencrypted=kept in clear\n\nLAST=no newline at the end",
        tricky_dotenv(&token)
    );
    let binary = tricky_binary(&common::canary("enc-binary"));
    let cases: [EncryptCase; 3] = [
        (
            "app/.env.enc",
            "app/.env",
            None,
            "dotenv",
            dotenv.as_bytes(),
        ),
        (
            "conf/app.conf.enc",
            "conf/app.conf",
            Some("dotenv"),
            "dotenv",
            dotenv.as_bytes(),
        ),
        (
            "blob/data.bin.enc",
            "blob/data.bin",
            None,
            "binary",
            &binary,
        ),
    ];
    let mut entries = Vec::new();
    for (repo, server, format, _, plain) in cases {
        fx.write_server(server, plain);
        entries.push(match format {
            Some(f) => entry_with_format(repo, server, f),
            None => Fixture::entry(repo, server),
        });
    }
    fx.manifest(&entries);
    fx.envsync(["encrypt"]).expect(0);

    for (repo, _, _, kind, plain) in cases {
        let path = fx.repo_path(repo);
        let written = fs::read(&path).unwrap();
        let canonical = if kind == "dotenv" {
            dotenv_canonical(std::str::from_utf8(plain).unwrap()).into_bytes()
        } else {
            plain.to_vec()
        };
        assert_sops_reads(&path, kind, &[key_file(1), key_file(2)], &canonical);

        if kind == "dotenv" {
            let text = String::from_utf8(written).unwrap();
            assert!(!text.contains(&token), "{repo}: a secret value is in clear");
            assert!(
                text.contains("\nNOTE_unencrypted=kept in clear\n"),
                "{repo}: _unencrypted value not kept in clear"
            );
            assert_data_keys_open(&dotenv_age_keys(&text), repo);
        } else {
            let text = String::from_utf8(written.clone()).expect("binary store is UTF-8 JSON");
            let doc: serde_json::Value = serde_json::from_slice(&written).expect("valid JSON");
            let keys: Vec<&str> = doc
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(keys, ["data", "sops"], "{repo}: top-level keys");
            assert!(
                doc["data"]
                    .as_str()
                    .unwrap()
                    .starts_with("ENC[AES256_GCM,data:"),
                "{repo}: data is not an ENC value"
            );
            assert!(
                text.starts_with("{\n\t\"data\": \"ENC[AES256_GCM,data:")
                    && text.contains("\n\t\"sops\": {\n\t\t")
                    && text.ends_with("\n\t}\n}\n"),
                "{repo}: not tab-indented like sops:\n{text}"
            );
            // Same layout, line for line, as sops's own file for the same input.
            fx.sops_encrypt("reference.bin.enc", plain, "binary");
            let reference = fs::read_to_string(fx.repo_path("reference.bin.enc")).unwrap();
            assert_eq!(
                json_shape(&text),
                json_shape(&reference),
                "{repo}: layout differs from sops\nenvsync:\n{text}\nsops:\n{reference}"
            );
            assert_data_keys_open(&binary_age_keys(&written), repo);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The plain age format
// ---------------------------------------------------------------------------------------------

/// Proves: `format = "age"` entries interoperate with real `age` both ways: an armored file
/// from `age -e -a` decrypts to the original bytes, and `envsync encrypt` writes an armored
/// file that `age -d` with either `.sops.yaml` recipient's key opens to the exact bytes.
#[test]
fn age_format_interoperates_with_age() {
    let fx = Fixture::new();
    let original = tricky_binary(&common::canary("age-in"));
    fx.manifest(&[
        entry_with_format("keys/in.age", "keys/in.bin", "age"),
        entry_with_format("keys/out.age", "keys/out.bin", "age"),
    ]);

    // age → envsync decrypt.
    common::write_file(
        &fx.repo_path("keys/in.age"),
        &age_encrypt_armored(&original, AGE1),
    );
    fx.envsync(["decrypt", "keys/in.age"]).expect(0);
    assert_eq!(fs::read(fx.server_path("keys/in.bin")).unwrap(), original);
    assert_eq!(common::mode_of(&fx.server_path("keys/in.bin")), 0o600);

    // envsync encrypt → age.
    let server = tricky_binary(&common::canary("age-out"));
    fx.write_server("keys/out.bin", &server);
    // The entry's mode, so that `diff` below judges content only (a 0644 file is drift).
    fs::set_permissions(
        fx.server_path("keys/out.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fx.envsync(["encrypt", "keys/out.age"]).expect(0);
    let written = fs::read(fx.repo_path("keys/out.age")).unwrap();
    let text = String::from_utf8(written.clone()).expect("armored age is text");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n")
            && text
                .trim_end()
                .ends_with("-----END AGE ENCRYPTED FILE-----"),
        "not an armored age file:\n{text}"
    );
    for n in [1, 2] {
        assert_eq!(
            age_decrypt(&written, &key_file(n)),
            server,
            "age -d with key {n}"
        );
    }
    fx.envsync(["diff"]).expect(0);
}

// ---------------------------------------------------------------------------------------------
// 5. Minimal rewrites
// ---------------------------------------------------------------------------------------------

/// Proves: with an identity at hand, `envsync encrypt` of an unchanged plaintext leaves every
/// `.enc` (dotenv, binary, age) byte-identical.
#[test]
fn encrypt_twice_is_byte_identical() {
    let fx = Fixture::new();
    let dotenv = tricky_dotenv(&common::canary("idem-dotenv"));
    let binary = tricky_binary(&common::canary("idem-binary"));
    let cases: [(&str, &str, Option<&str>, &[u8]); 3] = [
        ("app/.env.enc", "app/.env", None, dotenv.as_bytes()),
        ("blob/data.bin.enc", "blob/data.bin", None, &binary),
        ("blob/data.age", "blob/data.age.bin", Some("age"), &binary),
    ];
    let mut entries = Vec::new();
    for (repo, server, format, plain) in cases {
        fx.write_server(server, plain);
        entries.push(match format {
            Some(f) => entry_with_format(repo, server, f),
            None => Fixture::entry(repo, server),
        });
    }
    fx.manifest(&entries);
    fx.envsync(["encrypt"]).expect(0);
    let first: Vec<Vec<u8>> = cases
        .iter()
        .map(|(repo, ..)| fs::read(fx.repo_path(repo)).unwrap())
        .collect();
    fx.envsync(["encrypt"]).expect(0);
    for ((repo, ..), before) in cases.iter().zip(&first) {
        let after = fs::read(fx.repo_path(repo)).unwrap();
        assert!(
            &after == before,
            "{repo}: second encrypt of an unchanged plaintext rewrote the file"
        );
    }
}

/// Proves: changing one value and re-encrypting a dotenv `.enc` (written by envsync or by
/// real sops) changes only that key's line, `sops_mac` and `sops_lastmodified`; every other
/// line keeps its exact bytes, and sops reads the result.
#[test]
fn one_key_change_rewrites_only_its_line() {
    for origin in ["envsync", "sops"] {
        let fx = Fixture::new();
        let old = common::canary("minimal-old");
        let new = common::canary("minimal-new-value");
        let plain = |token: &str| {
            format!(
                "# settings\nDB_HOST=db\nDB_PASSWORD=pw-{old}\nTOKEN={token}\nUNICODE=é ✓ 日本\nEMPTY=\nMULTI=a\\nb\n"
            )
        };
        fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
        match origin {
            "sops" => {
                fx.sops_encrypt("app/.env.enc", plain(&old).as_bytes(), "dotenv");
                fx.envsync(["decrypt"]).expect(0);
            }
            _ => {
                fx.write_server("app/.env", plain(&old).as_bytes());
                fx.envsync(["encrypt"]).expect(0);
            }
        }
        let before = fs::read_to_string(fx.repo_path("app/.env.enc")).unwrap();

        fx.write_server("app/.env", plain(&new).as_bytes());
        fx.envsync(["encrypt"]).expect(0);
        let after = fs::read_to_string(fx.repo_path("app/.env.enc")).unwrap();
        assert_eq!(
            fx.sops_decrypt("app/.env.enc", "dotenv"),
            plain(&new).into_bytes(),
            "{origin}: sops -d after the change"
        );

        let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
        assert_eq!(b.len(), a.len(), "{origin}: line count changed");
        let changed: Vec<&str> = b
            .iter()
            .zip(&a)
            .filter(|(x, y)| x != y)
            .map(|(_, y)| y.split('=').next().unwrap())
            .collect();
        assert!(
            changed.contains(&"TOKEN") && changed.contains(&"sops_mac"),
            "{origin}: TOKEN and sops_mac must change, changed: {changed:?}"
        );
        assert!(
            changed
                .iter()
                .all(|k| ["TOKEN", "sops_mac", "sops_lastmodified"].contains(k)),
            "{origin}: lines other than TOKEN, sops_mac, sops_lastmodified changed: {changed:?}\nbefore:\n{before}\nafter:\n{after}"
        );
    }
}
