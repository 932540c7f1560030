//! Post-quantum age keys (age 1.3: `AGE-SECRET-KEY-PQ-1…` identities, `age1pq1…`
//! recipients), which the `age` crate envsync uses does not support. A keys file holding one
//! next to X25519 keys is not refused as a whole: its X25519 keys decrypt, as sops 3.11's do.
//! A file holding only post-quantum identities is "no usable identity", said so; a file
//! encrypted only to post-quantum recipients, and a post-quantum recipient to encrypt to, are
//! refused naming the type.
//!
//! No real post-quantum key can be made here (the age on this machine predates 1.3), so the
//! keys are syntactically valid stand-ins: Bech32 (the encoding age uses, without Bech32's
//! 90-character limit) over fixed arbitrary bytes, with age's HRPs `age-secret-key-pq-` (a
//! 32-byte seed, upper-cased as age writes it) and `age1pq` (a 1,216-byte ML-KEM-768 +
//! X25519 public key). The `bech32` crate in Cargo.lock refuses strings over 1,023
//! characters, so a tiny encoder is below.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::common::{self, canary, key_file, Fixture, AGE1};

/// Bech32 (BIP 173) of `data` under `hrp`, lower case, with no length limit.
fn bech32(hrp: &str, data: &[u8]) -> String {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let polymod = |values: &[u8]| {
        let mut chk: u32 = 1;
        for &v in values {
            let top = chk >> 25;
            chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
            for (i, g) in GEN.iter().enumerate() {
                if (top >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    };
    // 8-bit bytes to 5-bit groups, zero-padded.
    let mut five = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            five.push(u8::try_from((acc >> bits) & 31).unwrap());
        }
    }
    if bits > 0 {
        five.push(u8::try_from((acc << (5 - bits)) & 31).unwrap());
    }
    let mut values: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    values.push(0);
    values.extend(hrp.bytes().map(|c| c & 31));
    values.extend(&five);
    values.extend([0; 6]);
    let check = polymod(&values) ^ 1;
    five.extend((0..6).map(|i| u8::try_from((check >> (5 * (5 - i))) & 31).unwrap()));
    let mut out = format!("{hrp}1");
    out.extend(five.iter().map(|&v| char::from(CHARSET[usize::from(v)])));
    out
}

/// Fixed arbitrary bytes (not a real key: none can be made here).
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| u8::try_from((i * 37 + usize::from(seed) * 101 + 11) % 256).unwrap())
        .collect()
}

/// A post-quantum age identity line, as age 1.3's `age-keygen -pq` writes it.
fn pq_identity(seed: u8) -> String {
    bech32("age-secret-key-pq-", &bytes(32, seed)).to_ascii_uppercase()
}

/// A post-quantum age recipient (`age1pq1…`, some 1,950 characters).
fn pq_recipient(seed: u8) -> String {
    bech32("age1pq", &bytes(1216, seed))
}

/// Writes a 0600 key file.
fn write_key(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `secrets.toml` with no `server.identity` and one dotenv entry `app/.env`.
fn manifest(fx: &Fixture, identity: Option<&Path>) {
    let mut text = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n",
        fx.server.display()
    );
    if let Some(identity) = identity {
        text.push_str(&format!("identity = \"{}\"\n", identity.display()));
    }
    text.push_str("\n[[file]]\n");
    text.push_str(&Fixture::entry("app/.env.enc", "app/.env"));
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
}

/// A keys file as age 1.3 could leave it: a post-quantum identity, then the AGE1 X25519
/// key (with its comments), then another post-quantum one.
fn mixed_keys(fx: &Fixture) -> PathBuf {
    let x25519 = fs::read_to_string(key_file(1)).unwrap();
    let path = fx.home.join("mixed-keys.txt");
    write_key(
        &path,
        &format!(
            "# created: 2026-01-01T00:00:00Z\n# public key: {}…\n{}\n\n{x25519}\n{}\n",
            &pq_recipient(1)[..30],
            pq_identity(1),
            pq_identity(2)
        ),
    );
    path
}

#[test]
fn the_stand_in_keys_are_well_formed() {
    // The BIP 173 test vector, then the shapes age 1.3 writes.
    assert_eq!(bech32("a", &[]), "a12uel5l");
    assert!(pq_identity(1).starts_with("AGE-SECRET-KEY-PQ-1"));
    assert!(pq_recipient(1).starts_with("age1pq1"));
    assert!(pq_recipient(1).len() > 1900);
}

/// A keys file with post-quantum lines and the AGE1 X25519 key: real sops 3.11 decrypts with
/// it, and so does envsync (`SOPS_AGE_KEY_FILE`, `--identity` and `SOPS_AGE_KEY`), writing
/// the plaintext sops prints.
#[test]
fn a_keys_file_with_post_quantum_lines_still_decrypts_with_its_x25519_key() {
    let fx = Fixture::new();
    manifest(&fx, None);
    let plain = format!("TOKEN={}\n", canary("pq-mixed"));
    fx.sops_encrypt("app/.env.enc", plain.as_bytes(), "dotenv");
    let keys = mixed_keys(&fx);

    // Real sops reads the same keys file.
    assert_eq!(
        common::sops_decrypt(&fx.repo_path("app/.env.enc"), "dotenv", &keys),
        plain.as_bytes()
    );

    let keys_str = keys.to_str().unwrap();
    fx.envsync_with(["decrypt"], &[("SOPS_AGE_KEY_FILE", keys_str)])
        .expect(0);
    assert_eq!(
        fs::read(fx.server_path("app/.env")).unwrap(),
        plain.as_bytes()
    );

    fs::remove_file(fx.server_path("app/.env")).unwrap();
    fx.envsync(["decrypt", "--identity", keys_str]).expect(0);
    assert_eq!(
        fs::read(fx.server_path("app/.env")).unwrap(),
        plain.as_bytes()
    );

    fs::remove_file(fx.server_path("app/.env")).unwrap();
    let contents = fs::read_to_string(&keys).unwrap();
    fx.envsync_with(["decrypt"], &[("SOPS_AGE_KEY", contents.as_str())])
        .expect(0);
    assert_eq!(
        fs::read(fx.server_path("app/.env")).unwrap(),
        plain.as_bytes()
    );
}

/// A keys file holding only post-quantum identities is no usable identity: exit 2, a message
/// saying this build does not support them, no key material shown, nothing written.
#[test]
fn a_keys_file_with_only_post_quantum_identities_is_no_usable_identity() {
    let fx = Fixture::new();
    manifest(&fx, None);
    fx.sops_encrypt(
        "app/.env.enc",
        format!("TOKEN={}\n", canary("pq-only")).as_bytes(),
        "dotenv",
    );
    let keys = fx.home.join("pq-keys.txt");
    let identity = pq_identity(3);
    write_key(
        &keys,
        &format!("# created: 2026-01-01T00:00:00Z\n{identity}\n"),
    );
    let before = common::snapshot(fx.dir.path());

    let keys_str = keys.to_str().unwrap();
    let contents = fs::read_to_string(&keys).unwrap();
    let runs = [
        fx.envsync_with(["decrypt"], &[("SOPS_AGE_KEY_FILE", keys_str)]),
        fx.envsync(["decrypt", "--identity", keys_str]),
        fx.envsync_with(["decrypt"], &[("SOPS_AGE_KEY", contents.as_str())]),
    ];
    for run in &runs {
        run.expect(2);
        assert!(
            run.stderr.contains("no usable age identity found")
                && run.stderr.contains(
                    "post-quantum age identities (AGE-SECRET-KEY-PQ-1…) are not supported by this build of envsync"
                ),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(&identity[20..]), "{}", run.stderr);
        assert!(!run.stderr.contains("bech32"), "{}", run.stderr);
    }
    assert!(runs[0].stderr.contains(keys_str), "{}", runs[0].stderr);
    assert!(!fx.server_path("app/.env").exists());
    assert_eq!(common::snapshot(fx.dir.path()), before);
}

/// A file encrypted only to a post-quantum recipient (here a real sops file whose one
/// recipient and wrapped key were swapped for a post-quantum stand-in: an `age1pq1…`
/// recipient and an armored age file with one `mlkem768x25519` stanza, as age 1.3 writes)
/// fails naming the recipient type, not "no identity matches", and writes nothing.
#[test]
fn a_file_encrypted_only_to_post_quantum_recipients_names_the_type() {
    let fx = Fixture::new();
    manifest(&fx, Some(&key_file(1)));
    let scratch = fx.dir.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    let enc = common::sops_encrypt_dotenv(
        &scratch,
        &format!("TOKEN={}\n", canary("pq-recipient")),
        &["--age", AGE1],
    );
    let enc = String::from_utf8(enc).unwrap();

    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut age_file = format!(
        "age-encryption.org/v1\n-> mlkem768x25519 {}\n",
        b64.encode(bytes(1120, 5))
    );
    age_file.push_str(&b64.encode(bytes(32, 6)));
    age_file.push_str(&format!("\n--- {}\n", b64.encode(bytes(32, 7))));
    let mut binary = age_file.into_bytes();
    binary.extend(bytes(16 + 48, 8));
    let body = base64::engine::general_purpose::STANDARD.encode(&binary);
    let mut armored = String::from("-----BEGIN AGE ENCRYPTED FILE-----\\n");
    for chunk in body.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(chunk).unwrap());
        armored.push_str("\\n");
    }
    armored.push_str("-----END AGE ENCRYPTED FILE-----\\n");

    let recipient = pq_recipient(4);
    let swapped: String = enc
        .lines()
        .map(|l| {
            if l.starts_with("sops_age__list_0__map_recipient=") {
                format!("sops_age__list_0__map_recipient={recipient}\n")
            } else if l.starts_with("sops_age__list_0__map_enc=") {
                format!("sops_age__list_0__map_enc={armored}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(swapped.contains(&recipient) && !swapped.contains(AGE1));
    common::write_file(&fx.repo_path("app/.env.enc"), swapped.as_bytes());

    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(
        run.stderr.contains(
            "encrypted only to post-quantum age recipients (age1pq1…), which this build of envsync cannot decrypt"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&recipient[..20]), "{}", run.stderr);
    // The 1,950-character recipient is named by its start only.
    assert!(!run.stderr.contains(&recipient[..60]), "{}", run.stderr);
    assert!(!fx.server_path("app/.env").exists());
}

/// An `age1pq1…` recipient to encrypt to, in `.sops.yaml` or in an entry's `recipients`, is
/// refused naming the type (not as a Bech32 or "not an age key" error); nothing is written.
#[test]
fn a_post_quantum_recipient_is_refused_naming_the_type() {
    let fx = Fixture::new();
    let recipient = pq_recipient(9);
    fx.write_server(
        "app/.env",
        format!("TOKEN={}\n", canary("pq-enc")).as_bytes(),
    );

    // In .sops.yaml, as a YAML list beside an X25519 key.
    manifest(&fx, Some(&key_file(1)));
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("creation_rules:\n  - age:\n      - {AGE1}\n      - {recipient}\n"),
    )
    .unwrap();
    let run = fx.envsync(["encrypt"]);
    run.expect(2);
    for needle in [
        ".sops.yaml: line 4: ",
        "is a post-quantum age recipient (age1pq1…), which this build of envsync cannot encrypt to",
        &recipient[..20],
    ] {
        assert!(run.stderr.contains(needle), "{needle}:\n{}", run.stderr);
    }
    assert!(!run.stderr.contains(&recipient[..60]), "{}", run.stderr);
    assert!(!fx.repo_path("app/.env.enc").exists());

    // In the entry's own recipients.
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {AGE1}\n"),
    )
    .unwrap();
    let text = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    fs::write(
        fx.repo.join("secrets.toml"),
        format!("{text}recipients = [\"{AGE1}\", \"{recipient}\"]\n"),
    )
    .unwrap();
    let run = fx.envsync(["encrypt"]);
    run.expect(2);
    for needle in ["secrets.toml", "is a post-quantum age recipient (age1pq1…)"] {
        assert!(run.stderr.contains(needle), "{needle}:\n{}", run.stderr);
    }
    assert!(!fx.repo_path("app/.env.enc").exists());
}
