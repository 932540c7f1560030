//! The team's real layout, end to end: eleven files encrypted by real sops, decrypted onto an
//! empty server, one password rotated on the server, drift reported without values, and the
//! rotation encrypted back touching only the one `.enc` that changed.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::fs;
use std::time::SystemTime;

use crate::common::Fixture;
use crate::team::{enc, team_files};

/// Every value in a JSON document that is an object holding a string equal to `needle`.
fn objects_naming<'v>(value: &'v serde_json::Value, needle: &str) -> Vec<&'v serde_json::Value> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            if map.values().any(|v| v.as_str() == Some(needle)) {
                found.push(value);
            }
            for v in map.values() {
                found.extend(objects_naming(v, needle));
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                found.extend(objects_naming(v, needle));
            }
        }
        _ => {}
    }
    found
}

/// Proves the whole team workflow: decrypt of eleven sops files onto an empty server matches
/// `sops -d` with mode 0600; diff is silent; a rotated password is reported by key and
/// lengths only (text and JSON, exit 1); encrypt writes it back so sops reads the new value,
/// the repo is in sync again, and the other ten `.enc` files are left untouched.
#[test]
fn team_repo_decrypt_rotate_encrypt() {
    let fx = Fixture::new();
    let files = team_files();
    for f in &files {
        fx.sops_encrypt(&enc(&f.path), f.plain.as_bytes(), f.kind);
    }
    fx.manifest(
        &files
            .iter()
            .map(|f| Fixture::entry(&enc(&f.path), &f.path))
            .collect::<Vec<_>>(),
    );

    // Decrypt onto an empty server root.
    assert_eq!(fs::read_dir(&fx.server).unwrap().count(), 0);
    fx.envsync(["decrypt"]).expect(0);
    for f in &files {
        let server = fx.server_path(&f.path);
        assert_eq!(
            fs::read(&server).unwrap(),
            fx.sops_decrypt(&enc(&f.path), f.kind),
            "{}: envsync decrypt differs from sops -d",
            f.path
        );
        assert_eq!(common::mode_of(&server), 0o600, "{}: mode", f.path);
    }

    // In sync: exit 0, nothing on stdout.
    let run = fx.envsync(["diff"]);
    run.expect(0);
    assert_eq!(run.stdout, "", "diff of an in-sync repo printed something");

    // Rotate SMTP_PASSWORD on the server, to a value of another length.
    let rotated = "envs/aletheia/.env.prod";
    let current = fs::read_to_string(fx.server_path(rotated)).unwrap();
    let old_value = current
        .lines()
        .find_map(|l| l.strip_prefix("SMTP_PASSWORD="))
        .unwrap()
        .to_string();
    let new_value = common::canary("smtp-rotated-aletheia-prod-2025");
    assert_ne!(old_value.len(), new_value.len());
    let updated = current.replace(
        &format!("SMTP_PASSWORD={old_value}\n"),
        &format!("SMTP_PASSWORD={new_value}\n"),
    );
    assert_ne!(updated, current);
    fx.write_server(rotated, updated.as_bytes());
    let (old_len, new_len) = (old_value.len().to_string(), new_value.len().to_string());

    // Text diff: exit 1, the key and both lengths, no values.
    let run = fx.envsync(["diff"]);
    run.expect(1);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("SMTP_PASSWORD"))
        .unwrap_or_else(|| panic!("diff does not name SMTP_PASSWORD:\n{}", run.stdout));
    assert!(
        line.contains(&old_len) && line.contains(&new_len),
        "diff line does not show the lengths {old_len} and {new_len}: {line}"
    );
    assert!(
        run.stdout.contains(rotated),
        "diff does not name {rotated}:\n{}",
        run.stdout
    );
    for other in files.iter().filter(|f| f.path != rotated) {
        assert!(
            !run.stdout.contains(other.path.as_str()),
            "diff reports an unchanged file {}:\n{}",
            other.path,
            run.stdout
        );
    }
    for value in [&old_value, &new_value] {
        assert!(!run.stdout.contains(value.as_str()), "diff leaked a value");
        assert!(!run.stderr.contains(value.as_str()), "diff leaked a value");
    }

    // JSON diff: exit 1, valid JSON, the key and lengths, no values.
    let run = fx.envsync(["diff", "--json"]);
    run.expect(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("diff --json is not JSON ({e}):\n{}", run.stdout));
    let named = objects_naming(&doc, "SMTP_PASSWORD");
    assert_eq!(
        named.len(),
        1,
        "diff --json names SMTP_PASSWORD {} times:\n{}",
        named.len(),
        run.stdout
    );
    let numbers: Vec<u64> = named[0]
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert!(
        numbers.contains(&(old_value.len() as u64)) && numbers.contains(&(new_value.len() as u64)),
        "diff --json does not give the lengths: {}",
        named[0]
    );
    for value in [&old_value, &new_value] {
        assert!(
            !run.stdout.contains(value.as_str()),
            "diff --json leaked a value"
        );
    }

    // Encrypt the rotation back.
    let before: Vec<(Vec<u8>, SystemTime)> = files
        .iter()
        .map(|f| {
            let path = fx.repo_path(&enc(&f.path));
            (
                fs::read(&path).unwrap(),
                fs::metadata(&path).unwrap().modified().unwrap(),
            )
        })
        .collect();
    fx.envsync(["encrypt"]).expect(0);
    assert_eq!(
        fx.sops_decrypt(&enc(rotated), "dotenv"),
        updated.as_bytes(),
        "sops -d of the re-encrypted file"
    );
    let run = fx.envsync(["diff"]);
    run.expect(0);
    assert_eq!(run.stdout, "", "diff after encrypt printed something");
    for (f, (bytes, mtime)) in files.iter().zip(&before) {
        let path = fx.repo_path(&enc(&f.path));
        let now = fs::read(&path).unwrap();
        if f.path == rotated {
            assert_ne!(&now, bytes, "{rotated}.enc was not rewritten");
            continue;
        }
        assert!(&now == bytes, "{}.enc changed", f.path);
        assert_eq!(
            &fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "{}.enc was rewritten",
            f.path
        );
    }
}
