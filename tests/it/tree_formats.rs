//! YAML, JSON and INI `.enc` files against real sops: the vectors, files sops encrypts here,
//! files envsync writes read back by sops, extraction with `key`, shared `.enc` files, the
//! tamper matrix, and a manifest mixing all five formats.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;
use std::process::Command;

use crate::common::{self, git, key_file, sops, vectors, Fixture, AGE1, AGE2};

/// The tree formats: (sops type, file suffix).
const TREES: [(&str, &str); 3] = [("yaml", "yaml"), ("json", "json"), ("ini", "ini")];

/// A copy of the three age keys in one 0600 file, as an identity.
fn all_keys(fx: &Fixture) -> std::path::PathBuf {
    let path = fx.home.join("all.txt");
    fs::copy(vectors().join("keys/all.txt"), &path).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// Every YAML, JSON and INI vector decrypts, in one run, to exactly what sops printed.
#[test]
fn every_tree_vector_decrypts_to_the_expected_output() {
    let fx = Fixture::new();
    let mut names = Vec::new();
    for entry in fs::read_dir(vectors()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let tree = TREES
            .iter()
            .any(|(_, ext)| name.ends_with(&format!(".{ext}")));
        // The python-written binary file is a binary wrapper in a .json name (tested below).
        if tree && name != "python_written_binary.enc.json" {
            names.push(name);
        }
    }
    names.sort();
    assert!(names.len() >= 10, "vectors missing: {names:?}");
    let mut entries = Vec::new();
    for name in &names {
        common::write_file(
            &fx.repo_path(&format!("v/{name}")),
            &fs::read(vectors().join(name)).unwrap(),
        );
        entries.push(Fixture::entry(&format!("v/{name}"), &format!("out/{name}")));
    }
    fx.manifest(&entries);
    let keys = all_keys(&fx);
    let ssh = vectors().join("keys/id_ed25519");
    let run = fx.envsync([
        "--identity",
        keys.to_str().unwrap(),
        "--identity",
        ssh.to_str().unwrap(),
        "decrypt",
    ]);
    run.expect(0);
    for name in &names {
        let expected = fs::read(vectors().join(format!("expected/{name}.decrypted"))).unwrap();
        let got = fs::read(fx.server_path(&format!("out/{name}"))).unwrap();
        assert!(
            got == expected,
            "{name}: envsync wrote\n{}\nsops printed\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
    }
    // In sync right after, by content (the vectors' recipients are their own, so `status`
    // would report those).
    fx.envsync([
        "--identity",
        keys.to_str().unwrap(),
        "--identity",
        ssh.to_str().unwrap(),
        "diff",
    ])
    .expect(0);
}

/// A binary wrapper with a `.json` name is detected as binary: raw bytes, as
/// `sops -d --input-type binary --output-type binary` gives them.
#[test]
fn a_binary_wrapper_named_json_is_binary() {
    let fx = Fixture::new();
    let name = "python_written_binary.enc.json";
    common::write_file(
        &fx.repo_path(name),
        &fs::read(vectors().join(name)).unwrap(),
    );
    fx.manifest(&[Fixture::entry(name, "data.bin")]);
    fx.envsync(["decrypt"]).expect(0);
    let want = common::sops_decrypt(&fx.repo_path(name), "binary", &key_file(1));
    assert_eq!(fs::read(fx.server_path("data.bin")).unwrap(), want);
}

/// Real sops encrypts `plain` as `kind` into the repo (AGE1, AGE2).
fn sops_encrypt(fx: &Fixture, rel: &str, plain: &[u8], kind: &str) {
    fx.sops_encrypt(rel, plain, kind);
}

/// Rich inputs for each tree format: comments, anchors, long strings, unicode, empty values,
/// lists of maps and every type.
fn rich(kind: &str) -> &'static str {
    match kind {
        "yaml" => concat!(
            "# top comment\n",
            "app:\n",
            "  name: demo   # inline\n",
            "  port: 8080\n",
            "  ratio: 0.25\n",
            "  big: 99999999999999999999\n",
            "  on: true\n",
            "  yes_string: yes\n",
            "  none: ~\n",
            "  empty: \"\"\n",
            "  when: 2024-01-02\n",
            "  quoted_date: \"2024-01-02\"\n",
            "  unicode: \"ünïcødé ✓ 日本\"\n",
            "  long: \"", "aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd eeeeeeeeee ffffffffff gggggggggg hhhhhhhhhh", "\"\n",
            "  block: |\n",
            "    line one\n",
            "    line two\n",
            "defaults: &defaults\n",
            "  retries: 3\n",
            "  # nested comment\n",
            "  timeout: 1.5\n",
            "service:\n",
            "  <<: *defaults\n",
            "  hosts:\n",
            "    - name: a\n",
            "      token: t-a\n",
            "    - name: b\n",
            "      token: t-b\n",
            "  ports: [80, 443]\n",
            "  copy: *defaults\n",
            "public_unencrypted:\n",
            "  url: https://example.com/?a=1&b=2\n",
        ),
        "json" => concat!(
            "{\n",
            "  \"name\": \"demo\",\n",
            "  \"port\": 8080,\n",
            "  \"ratio\": 0.25,\n",
            "  \"flag\": false,\n",
            "  \"none\": null,\n",
            "  \"empty\": \"\",\n",
            "  \"unicode\": \"ünïcødé ✓ 日本 \\u2028\",\n",
            "  \"html\": \"<b>&amp;</b>\",\n",
            "  \"hosts\": [{\"name\": \"a\", \"token\": \"t-a\"}, {\"name\": \"b\", \"token\": \"t-b\"}],\n",
            "  \"deep\": {\"a\": {\"b\": {\"c\": [1, 2.5, [true, null]]}}},\n",
            "  \"emptyobj\": {},\n",
            "  \"emptylist\": [],\n",
            "  \"tiny\": 0.0000001,\n",
            "  \"huge\": 1e300,\n",
            "  \"user_unencrypted\": \"visible\"\n",
            "}\n",
        ),
        _ => concat!(
            "; top comment\n",
            "[database]\n",
            "user = admin\n",
            "; the password\n",
            "password = s3cr3t=with=equals\n",
            "port=5432\n",
            "empty =\n",
            "[app]\n",
            "name = ünïcødé ✓\n",
            "url_unencrypted = https://example.com/?a=1\n",
            "note = a \\n literal\n",
        ),
    }
}

/// Files sops encrypts here decrypt to exactly `sops -d`.
#[test]
fn fresh_sops_files_decrypt_exactly() {
    let fx = Fixture::new();
    let mut entries = Vec::new();
    for (kind, ext) in TREES {
        sops_encrypt(&fx, &format!("rich.enc.{ext}"), rich(kind).as_bytes(), kind);
        entries.push(Fixture::entry(
            &format!("rich.enc.{ext}"),
            &format!("rich.{ext}"),
        ));
    }
    fx.manifest(&entries);
    fx.envsync(["decrypt"]).expect(0);
    for (kind, ext) in TREES {
        let want = fx.sops_decrypt(&format!("rich.enc.{ext}"), kind);
        let got = fs::read(fx.server_path(&format!("rich.{ext}"))).unwrap();
        assert!(
            got == want,
            "{kind}: envsync wrote\n{}\nsops printed\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
    fx.envsync(["diff"]).expect(0);
}

/// What envsync writes, sops reads back to the server content; rotating one nested value
/// changes that value's line, `mac` and `lastmodified`, nothing else.
#[test]
fn sops_reads_what_envsync_writes_and_a_rotation_is_one_line() {
    for (kind, ext) in TREES {
        let fx = Fixture::new();
        let server = format!("app/config.{ext}");
        let repo = format!("config.enc.{ext}");
        fx.write_server(&server, rich(kind).as_bytes());
        fx.manifest(&[Fixture::entry(&repo, &server)]);
        fx.envsync(["encrypt"]).expect(0);
        let canonical = fx.sops_decrypt(&repo, kind);
        // The same content as the server file, in sops's layout: in sync, not drift.
        fx.write_server(&server, &canonical);
        // The entry's mode: a 0644 file would be drift too.
        std::fs::set_permissions(
            fx.server_path(&server),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        fx.envsync(["diff"]).expect(0);
        git(&fx, &["add", "-A"]);
        git(&fx, &["commit", "-qm", "first"]);
        // Rotate one nested value on the server.
        let text = String::from_utf8(canonical).unwrap();
        let rotated = match kind {
            "yaml" => text.replacen("t-b", "t-b-rotated", 1),
            "json" => text.replacen("t-b", "t-b-rotated", 1),
            _ => text.replacen("s3cr3t=with=equals", "n3w-s3cr3t", 1),
        };
        assert_ne!(rotated, text);
        fx.write_server(&server, rotated.as_bytes());
        fx.envsync(["encrypt"]).expect(0);
        assert_eq!(fx.sops_decrypt(&repo, kind), rotated.as_bytes(), "{kind}");
        let diff = git(&fx, &["diff", "-U0", "--", &repo]);
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .collect();
        // The rotated value's line and the MAC; `lastmodified` too unless the same second.
        let is = |l: &&str, what: &str| l.contains(what);
        let value = changed
            .iter()
            .filter(|l| !is(l, "mac") && !is(l, "lastmodified"))
            .count();
        let mac = changed.iter().filter(|l| is(l, "mac")).count();
        let stamp = changed.iter().filter(|l| is(l, "lastmodified")).count();
        assert_eq!((value, mac), (2, 2), "{kind}: {diff}");
        assert!(stamp == 0 || stamp == 2, "{kind}: {diff}");
        // Encrypting again changes nothing.
        let before = fs::read(fx.repo_path(&repo)).unwrap();
        fx.envsync(["encrypt"]).expect(0);
        assert_eq!(fs::read(fx.repo_path(&repo)).unwrap(), before, "{kind}");
    }
}

/// `key` entries: one value raw on the server, back into its place; several entries share
/// one `.enc`, written once, with a conflict refused.
#[test]
fn extraction_round_trips_and_shared_files_merge() {
    for (kind, ext) in TREES {
        let fx = Fixture::new();
        let repo = format!("shared.enc.{ext}");
        let (plain, key_a, key_b, value_a) = match kind {
            "ini" => (
                "[db]\npassword = pw-one\nuser = app\n[api]\ntoken = tok-one\n",
                "db.password",
                "api.token",
                "pw-one",
            ),
            "json" => (
                "{\"db\": {\"password\": \"pw-one\", \"port\": 5432}, \"api\": {\"token\": \"tok-one\"}}",
                "db.password",
                "api.token",
                "pw-one",
            ),
            _ => (
                "db:\n  password: pw-one\n  port: 5432\napi:\n  token: tok-one\n",
                "db.password",
                "api.token",
                "pw-one",
            ),
        };
        sops_encrypt(&fx, &repo, plain.as_bytes(), kind);
        let whole = format!("app/config.{ext}");
        fx.manifest(&[
            Fixture::entry(&repo, &whole),
            format!(
                "{}key = \"{key_a}\"\n",
                Fixture::entry(&repo, "app/db_password")
            ),
            format!(
                "{}key = \"{key_b}\"\n",
                Fixture::entry(&repo, "app/api_token")
            ),
        ]);
        fx.envsync(["decrypt"]).expect(0);
        assert_eq!(
            fs::read(fx.server_path("app/db_password")).unwrap(),
            value_a.as_bytes()
        );
        assert_eq!(
            fs::read(fx.server_path("app/api_token")).unwrap(),
            b"tok-one"
        );
        assert_eq!(common::mode_of(&fx.server_path("app/db_password")), 0o600);
        // Two values edited on the server: one encrypt writes both into the one file.
        fx.write_server("app/db_password", b"pw-two");
        fx.write_server("app/api_token", b"tok-two\n");
        let run = fx.envsync(["encrypt"]);
        run.expect(0);
        let now = String::from_utf8(fx.sops_decrypt(&repo, kind)).unwrap();
        assert!(
            now.contains("pw-two") && now.contains("tok-two"),
            "{kind}: {now}"
        );
        assert!(
            !now.contains("pw-one") && !now.contains("tok-one"),
            "{kind}: {now}"
        );
        // The whole-file entry now lags behind the repo: decrypt brings it up.
        let status = fx.envsync(["status"]);
        assert!(
            status.stdout.contains("repo-changed"),
            "{kind}: {}",
            status.stdout
        );
        fx.envsync(["decrypt"]).expect(0);
        fx.envsync(["status"]).expect(0);
        // The same value changed through two entries: refused, nothing written.
        let whole_text = fs::read_to_string(fx.server_path(&whole)).unwrap();
        fx.write_server(&whole, whole_text.replace("pw-two", "pw-three").as_bytes());
        fx.write_server("app/db_password", b"pw-four");
        let before = fs::read(fx.repo_path(&repo)).unwrap();
        let run = fx.envsync(["encrypt"]);
        run.expect(3);
        assert!(run.stderr.contains(key_a), "{kind}: {}", run.stderr);
        assert_eq!(fs::read(fx.repo_path(&repo)).unwrap(), before, "{kind}");
        common::assert_no_leak(&run.stderr, "conflict");
        assert!(!run.stderr.contains("pw-four") && !run.stderr.contains("pw-three"));
    }
}

/// The tamper matrix for trees: each change to a real sops file is exit 2 with the server
/// file left as it was.
#[test]
fn tampered_tree_files_are_refused() {
    for (kind, ext) in [("yaml", "yaml"), ("json", "json")] {
        let fx = Fixture::new();
        let repo = format!("t.enc.{ext}");
        let plain = match kind {
            "json" => {
                "{\"a\": \"alpha\", \"b\": \"bravo\", \"n\": {\"c\": \"charlie\"}, \"i\": 7}\n"
            }
            _ => "a: alpha\nb: bravo\nn:\n  c: charlie\ni: 7\n",
        };
        sops_encrypt(&fx, &repo, plain.as_bytes(), kind);
        fx.manifest(&[Fixture::entry(&repo, &format!("t.{ext}"))]);
        // Valid in both formats, and different from the .enc: every case reaches the decrypt.
        fx.write_server(
            &format!("t.{ext}"),
            b"{\"z\": \"original server content\"}\n",
        );
        let good = fs::read_to_string(fx.repo_path(&repo)).unwrap();
        let value_of = |key: &str| -> String {
            let line = good
                .lines()
                .find(|l| {
                    l.trim_start().starts_with(&format!("\"{key}\""))
                        || l.trim_start().starts_with(&format!("{key}:"))
                })
                .unwrap();
            let start = line.find("ENC[").unwrap();
            let end = line[start..].find(']').unwrap() + start + 1;
            line[start..end].to_string()
        };
        let (a, b, c) = (value_of("a"), value_of("b"), value_of("c"));
        let flip = {
            // One base64 character of a's data changed.
            let at = a.find("data:").unwrap() + 5;
            let mut chars: Vec<char> = a.chars().collect();
            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
            chars.into_iter().collect::<String>()
        };
        let mac_line = good
            .lines()
            .find(|l| l.contains("mac"))
            .unwrap()
            .to_string();
        let mac_flipped = mac_line
            .replacen("data:", "data:A", 1)
            .replacen("data:AA", "data:B", 1);
        let cases: Vec<(&str, String)> = vec![
            ("flipped value", good.replacen(&a, &flip, 1)),
            (
                "swapped values",
                good.replacen(&a, "@@A@@", 1)
                    .replacen(&b, &a, 1)
                    .replacen("@@A@@", &b, 1),
            ),
            (
                "moved value",
                good.replacen(&c, "@@C@@", 1)
                    .replacen(&a, &c, 1)
                    .replacen("@@C@@", &a, 1),
            ),
            (
                // A string's tag made int. (An int made str with the same digits is not
                // detectable: sops authenticates the value's text and its path, not its
                // type, and accepts that file too.)
                "changed type",
                good.replacen(&a, &a.replace("type:str", "type:int"), 1),
            ),
            ("changed mac", good.replacen(&mac_line, &mac_flipped, 1)),
            (
                "deleted key",
                match kind {
                    "json" => good.replacen(&format!("\t\"b\": \"{b}\",\n"), "", 1),
                    _ => good.replacen(&format!("b: {b}\n"), "", 1),
                },
            ),
        ];
        for (what, text) in cases {
            assert_ne!(text, good, "{kind} {what}: the tamper did not apply");
            fs::write(fx.repo_path(&repo), &text).unwrap();
            let run = fx.envsync(["decrypt", "--force"]);
            assert_eq!(run.code, 2, "{kind} {what}: {}", run.stderr);
            assert_eq!(
                fs::read(fx.server_path(&format!("t.{ext}"))).unwrap(),
                b"{\"z\": \"original server content\"}\n",
                "{kind} {what}"
            );
            for secret in ["alpha", "bravo", "charlie"] {
                assert!(!run.stderr.contains(secret), "{kind} {what} leaked");
            }
        }
        // The control: the untouched file decrypts over the same server file.
        fs::write(fx.repo_path(&repo), &good).unwrap();
        fx.envsync(["decrypt", "--force"]).expect(0);
    }
}

/// One manifest with all five formats: decrypt, diff and status in one run.
#[test]
fn a_manifest_mixing_all_five_formats() {
    let fx = Fixture::new();
    fx.sops_encrypt("env.enc", b"A=1\nB=two\n", "dotenv");
    fx.sops_encrypt("blob.enc", b"\x00binary\xff\n", "binary");
    fx.sops_encrypt("c.enc.yaml", b"k: v\nn:\n  m: 1\n", "yaml");
    fx.sops_encrypt("c.enc.json", b"{\"k\": \"v\"}", "json");
    fx.sops_encrypt("c.enc.ini", b"[s]\nk = v\n", "ini");
    let age = Command::new(common::tool("age"))
        .args(["-a", "-r", AGE1, "-r", AGE2])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        let mut child = age;
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"age secret\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    common::write_file(&fx.repo_path("p.age"), &out.stdout);
    fx.manifest(&[
        Fixture::entry("env.enc", "app/.env"),
        Fixture::entry("blob.enc", "app/blob"),
        Fixture::entry("c.enc.yaml", "app/c.yaml"),
        Fixture::entry("c.enc.json", "app/c.json"),
        Fixture::entry("c.enc.ini", "app/c.ini"),
        Fixture::entry("p.age", "app/p.txt"),
    ]);
    fx.envsync(["decrypt"]).expect(0);
    fx.envsync(["diff"]).expect(0);
    fx.envsync(["status"]).expect(0);
    fx.write_server("app/c.yaml", b"k: v\nn:\n    m: 2\n");
    fx.write_server("app/c.ini", b"[s]\nk = w\n");
    let diff = fx.envsync(["diff"]);
    diff.expect(1);
    assert!(diff.stdout.contains("n.m: changed"), "{}", diff.stdout);
    assert!(diff.stdout.contains("s.k: changed"), "{}", diff.stdout);
    let status = fx.envsync(["status"]);
    status.expect(1);
    assert_eq!(
        status.stdout.matches("server-changed").count(),
        2,
        "{}",
        status.stdout
    );
    // A reformatted file with the same content is not drift.
    fx.write_server("app/c.yaml", b"k: v\nn: {m: 1}\n");
    fx.write_server("app/c.ini", b"[s]\nk = v\n");
    fx.envsync(["diff"]).expect(0);
}

/// A `.enc` envsync cannot read is one error for its entry; `--keep-going` reports the rest.
#[test]
fn keep_going_reports_the_other_entries() {
    let fx = Fixture::new();
    fx.sops_encrypt("good.enc.json", b"{\"k\": \"v\"}", "json");
    common::write_file(
        &fx.repo_path("bad.enc.yaml"),
        b"sops:\n  this is: [not closed\n",
    );
    fx.manifest(&[
        Fixture::entry("good.enc.json", "good.json"),
        Fixture::entry("bad.enc.yaml", "bad.yaml"),
    ]);
    fx.envsync(["decrypt", "good.enc.json"]).expect(0);
    for cmd in ["diff", "status"] {
        let all = fx.envsync([cmd]);
        all.expect(2);
        assert!(all.stderr.contains("bad.enc.yaml"), "{}", all.stderr);
        let kept = fx.envsync([cmd, "--keep-going", "--json"]);
        kept.expect(2);
        let json: serde_json::Value = serde_json::from_str(&kept.stdout).unwrap();
        assert_eq!(
            json["entries"].as_array().unwrap().len(),
            1,
            "{}",
            kept.stdout
        );
        assert_eq!(json["entries"][0]["repo"], "good.enc.json");
        assert_eq!(json["errors"][0]["repo"], "bad.enc.yaml");
        assert!(kept.stderr.contains("bad.enc.yaml"));
    }
}

/// The masked view names key paths; without a key the paths still show.
#[test]
fn show_names_key_paths() {
    let fx = Fixture::new();
    fx.sops_encrypt(
        "c.enc.json",
        b"{\"database\": {\"password\": \"hunter2-secret\"}, \"hosts\": [{\"token\": \"tk\"}, {\"token\": \"tk2\"}]}",
        "json",
    );
    fx.manifest(&[Fixture::entry("c.enc.json", "c.json")]);
    let run = fx.envsync(["show", "c.enc.json"]);
    run.expect(0);
    assert!(
        run.stdout.contains("database.password = <len 14 · "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("hosts[1].token = <len 3 · "),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("hunter2"));
    // No manifest, no key (git's textconv in a teammate's clone).
    let keyless = Command::new(common::envsync_bin())
        .arg("show")
        .arg(fx.repo_path("c.enc.json"))
        .current_dir(&fx.home)
        .env("HOME", &fx.home)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&keyless.stdout);
    assert!(
        text.contains("database.password = <no key>"),
        "{text} {}",
        String::from_utf8_lossy(&keyless.stderr)
    );
}

/// `as = "files"` on a YAML or JSON `.enc`: one file per top-level scalar; a server edit
/// and a removed file go back into the tree, nested values stay; sops reads the result.
#[test]
fn files_layout_for_tree_entries() {
    for (kind, ext) in TREES.into_iter().filter(|(k, _)| *k != "ini") {
        let fx = Fixture::new();
        let repo = format!("s.enc.{ext}");
        let plain = match kind {
            "json" => "{\"POSTGRES_PASSWORD\": \"pw-one\", \"PORT\": 5432, \"nested\": {\"a\": \"b\"}, \"API_TOKEN\": \"tok-one\"}\n",
            _ => "POSTGRES_PASSWORD: pw-one\nPORT: 5432\nnested:\n  a: b\nAPI_TOKEN: tok-one\n",
        };
        sops_encrypt(&fx, &repo, plain.as_bytes(), kind);
        fx.manifest(&[format!(
            "{}as = \"files\"\nnames = \"lower\"\n",
            Fixture::entry(&repo, "app/secrets")
        )]);
        fx.envsync(["decrypt"]).expect(0);
        assert_eq!(
            common::names_in(&fx.server_path("app/secrets")),
            ["api_token", "port", "postgres_password"]
        );
        assert_eq!(
            fs::read(fx.server_path("app/secrets/port")).unwrap(),
            b"5432"
        );
        fx.write_server("app/secrets/postgres_password", b"pw-two");
        fs::remove_file(fx.server_path("app/secrets/api_token")).unwrap();
        let diff = fx.envsync(["diff"]);
        diff.expect(1);
        assert!(
            diff.stdout.contains("POSTGRES_PASSWORD: changed"),
            "{}",
            diff.stdout
        );
        fx.envsync(["encrypt"]).expect(0);
        let now = String::from_utf8(fx.sops_decrypt(&repo, kind)).unwrap();
        assert!(
            now.contains("pw-two") && !now.contains("tok-one"),
            "{kind}: {now}"
        );
        assert!(
            now.contains("5432") && now.contains('a') && now.contains("nested"),
            "{kind}: {now}"
        );
        fx.envsync(["status"]).expect(0);
    }
}

/// `check` (no key) finds a value pasted in clear over its ciphertext in a tree file.
#[test]
fn check_finds_a_clear_value_in_a_tree_file() {
    for (kind, ext) in TREES {
        let fx = Fixture::new();
        let repo = format!("c.enc.{ext}");
        let plain = match kind {
            "json" => "{\"db\": {\"password\": \"pw\", \"user_unencrypted\": \"app\"}}\n",
            "ini" => "[db]\npassword = pw\nuser_unencrypted = app\n",
            _ => "db:\n  password: pw\n  user_unencrypted: app\n",
        };
        sops_encrypt(&fx, &repo, plain.as_bytes(), kind);
        fx.manifest(&[Fixture::entry(&repo, &format!("c.{ext}"))]);
        fs::write(fx.repo.join(".gitignore"), "/secrets.toml.bak\n").unwrap();
        git(&fx, &["add", "-A"]);
        git(&fx, &["commit", "-qm", "c"]);
        fx.envsync(["check"]).expect(0);
        let text = fs::read_to_string(fx.repo_path(&repo)).unwrap();
        let start = text.find("ENC[").unwrap();
        let end = text[start..].find(']').unwrap() + start + 1;
        fs::write(
            fx.repo_path(&repo),
            format!("{}leaked-value{}", &text[..start], &text[end..]),
        )
        .unwrap();
        let run = fx.envsync(["check"]);
        run.expect(1);
        assert!(run.stdout.contains("db.password"), "{kind}: {}", run.stdout);
        assert!(!run.stdout.contains("leaked-value"), "{kind}");
    }
}

/// Every file in tests/fixtures/tree-cases (comments in every position, anchors, flow
/// style, multi-document, every scalar type and quoting case, CRLF): encrypted by real sops,
/// envsync prints exactly what `sops -d` prints; encrypted by envsync, `sops -d` prints
/// exactly what it prints for its own encryption of the same file.
#[test]
fn tree_cases_match_sops_both_ways() {
    let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tree-cases");
    let mut names: Vec<String> = fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let kind = name.rsplit('.').next().unwrap();
        let fx = Fixture::new();
        let plain = fs::read(cases.join(name)).unwrap();
        let ours = format!("ours.enc.{kind}");
        fx.manifest(&[Fixture::entry(&ours, &format!("x.{kind}"))]);
        // sops → envsync.
        let theirs = format!("theirs.enc.{kind}");
        fx.sops_encrypt(&theirs, &plain, kind);
        let want = fx.sops_decrypt(&theirs, kind);
        let show = fx.envsync(["show", "--reveal", &theirs]);
        if show.code != 0 || show.stdout.as_bytes() != want.as_slice() {
            failures.push(format!(
                "{name}: envsync read sops's file as\n{}{}",
                show.stdout, show.stderr
            ));
        }
        // envsync → sops.
        fx.write_server(&format!("x.{kind}"), &plain);
        let run = fx.envsync(["encrypt"]);
        if run.code != 0 {
            failures.push(format!("{name}: envsync encrypt failed: {}", run.stderr));
            continue;
        }
        let back = fx.sops_decrypt(&ours, kind);
        if back != want {
            failures.push(format!(
                "{name}: sops read envsync's file as\n{}",
                String::from_utf8_lossy(&back)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// Every rule sops has, and Shamir key groups: a file sops encrypts under the rule reads as
/// `sops -d` prints it; envsync's file under the same `.sops.yaml` has the same values in
/// clear and encrypted (comments included), and sops reads it.
#[test]
fn rules_and_key_groups_match_sops() {
    let plain = "# sops:enc\nsecret: one\npublic: two\n# plain comment\nnested:\n  # sops:enc\n  password: three\n  user_unencrypted: four\n  list:\n    - five\n    # sops:enc\n    - six\n";
    let groups = format!(
        "shamir_threshold: 2\n    key_groups:\n      - age: [{AGE1}]\n      - age: [{AGE2}]\n      - age: [{}]",
        common::AGE3
    );
    let rules = [
        format!("age: {AGE1}\n    encrypted_regex: ^(secret|password)$"),
        format!("age: {AGE1}\n    unencrypted_regex: ^public$"),
        format!("age: {AGE1}\n    encrypted_suffix: word"),
        format!("age: {AGE1}\n    encrypted_comment_regex: sops:enc"),
        format!("age: {AGE1}\n    unencrypted_comment_regex: plain"),
        format!("age: {AGE1}\n    mac_only_encrypted: true"),
        groups,
    ];
    // Which lines are encrypted, and as what (the ciphertext itself differs).
    let layout = |text: &str| -> Vec<String> {
        text.lines()
            .take_while(|l| !l.starts_with("sops:"))
            .map(|l| match l.find("ENC[") {
                Some(at) => format!("{}ENC:{}", &l[..at], &l[l.rfind("type:").unwrap()..]),
                None => l.to_string(),
            })
            .collect()
    };
    for rule in rules {
        let fx = Fixture::new();
        fs::write(
            fx.repo.join(".sops.yaml"),
            format!("creation_rules:\n  - {rule}\n"),
        )
        .unwrap();
        fx.write_server("x.yaml", plain.as_bytes());
        fx.manifest(&[Fixture::entry("x.enc.yaml", "x.yaml")]);
        let out = Command::new(sops())
            .args(["encrypt", "--input-type", "yaml", "--output-type", "yaml"])
            .args(["--filename-override", "theirs.enc.yaml"])
            .arg(fx.server_path("x.yaml"))
            .current_dir(&fx.repo)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::write(fx.repo_path("theirs.enc.yaml"), &out.stdout).unwrap();
        let keys = all_keys(&fx);
        let want = common::sops_decrypt(&fx.repo_path("theirs.enc.yaml"), "yaml", &keys);
        let show = fx.envsync([
            "--identity",
            keys.to_str().unwrap(),
            "show",
            "--reveal",
            "theirs.enc.yaml",
        ]);
        assert_eq!(
            show.stdout.as_bytes(),
            want.as_slice(),
            "{rule}: {}",
            show.stderr
        );
        fx.envsync(["--identity", keys.to_str().unwrap(), "encrypt"])
            .expect(0);
        let back = common::sops_decrypt(&fx.repo_path("x.enc.yaml"), "yaml", &keys);
        assert_eq!(back, want, "{rule}");
        let theirs = String::from_utf8(out.stdout).unwrap();
        let ours = fs::read_to_string(fx.repo_path("x.enc.yaml")).unwrap();
        assert_eq!(layout(&ours), layout(&theirs), "{rule}");
    }
}

/// `.sops.yaml`'s `stores:` indentation applies to what envsync decrypts and encrypts, as it
/// does for sops (which reads the same `.sops.yaml` from the repo).
#[test]
fn store_indentation_from_sops_yaml() {
    let fx = Fixture::new();
    fs::write(
        fx.repo.join(".sops.yaml"),
        format!("stores:\n  yaml:\n    indent: 2\n  json:\n    indent: 3\ncreation_rules:\n  - age: {AGE1}\n"),
    )
    .unwrap();
    fx.write_server("x.yaml", b"a:\n  b:\n    - c: 1\n      d: [x]\n");
    fx.write_server("y.json", b"{\"a\": {\"b\": [1, {\"c\": 2}]}}");
    fx.manifest(&[
        Fixture::entry("x.enc.yaml", "x.yaml"),
        Fixture::entry("y.enc.json", "y.json"),
    ]);
    fx.envsync(["encrypt"]).expect(0);
    for (rel, kind) in [("x.enc.yaml", "yaml"), ("y.enc.json", "json")] {
        // sops run in the repo (its .sops.yaml applies) prints what envsync writes.
        let out = Command::new(sops())
            .args(["decrypt", "--input-type", kind, "--output-type", kind, rel])
            .current_dir(&fx.repo)
            .env("SOPS_AGE_KEY_FILE", key_file(1))
            .output()
            .unwrap();
        assert!(out.status.success());
        let server = rel.replace(".enc", "");
        fs::remove_file(fx.server_path(&server)).unwrap();
        fx.envsync(["decrypt"]).expect(0);
        assert_eq!(
            fs::read(fx.server_path(&server)).unwrap(),
            out.stdout,
            "{rel}"
        );
    }
    let yaml = fs::read_to_string(fx.repo_path("x.enc.yaml")).unwrap();
    assert!(yaml.starts_with("a:\n  b:\n    - c: ENC["), "{yaml}");
    let json = fs::read_to_string(fx.repo_path("y.enc.json")).unwrap();
    assert!(
        json.starts_with("{\n   \"a\": {\n      \"b\": [\n"),
        "{json}"
    );
}

/// A server YAML file broken by a hand edit: status calls it edited, decrypt refuses to
/// overwrite it (exit 3), encrypt names the line and writes nothing (exit 2), and decrypt
/// --force restores it.
#[test]
fn a_broken_server_file_is_an_edit_not_a_crash() {
    let fx = Fixture::new();
    fx.sops_encrypt("c.enc.yaml", b"a:\n    b: s3cret-value\n", "yaml");
    fx.manifest(&[Fixture::entry("c.enc.yaml", "c.yaml")]);
    fx.envsync(["decrypt"]).expect(0);
    let enc = fs::read(fx.repo_path("c.enc.yaml")).unwrap();
    fx.write_server("c.yaml", b"a:\n    b: [s3cret-value\n");
    fx.envsync(["status"]).expect(1);
    fx.envsync(["decrypt"]).expect(3);
    let run = fx.envsync(["encrypt"]);
    run.expect(2);
    assert!(run.stderr.contains("line "), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    assert_eq!(fs::read(fx.repo_path("c.enc.yaml")).unwrap(), enc);
    fx.envsync(["decrypt", "--force"]).expect(0);
    assert_eq!(
        fs::read(fx.server_path("c.yaml")).unwrap(),
        b"a:\n    b: s3cret-value\n"
    );
}

/// A `key` entry's number keeps its server spelling: `2.50` and `+8081` go in as strings
/// (their number form would print differently), `8082` stays an int; all are in sync after.
#[test]
fn a_key_entry_keeps_the_server_spelling() {
    let fx = Fixture::new();
    fx.sops_encrypt("c.enc.yaml", b"ratio: 1.5\nport: 8080\nother: 1\n", "yaml");
    fx.manifest(&[
        format!(
            "{}key = \"ratio\"\n",
            Fixture::entry("c.enc.yaml", "app/ratio")
        ),
        format!(
            "{}key = \"port\"\n",
            Fixture::entry("c.enc.yaml", "app/port")
        ),
        format!(
            "{}key = \"other\"\n",
            Fixture::entry("c.enc.yaml", "app/other")
        ),
    ]);
    fx.envsync(["decrypt"]).expect(0);
    fx.write_server("app/ratio", b"2.50");
    fx.write_server("app/port", b"+8081");
    fx.write_server("app/other", b"8082");
    fx.envsync(["encrypt"]).expect(0);
    assert_eq!(
        fx.sops_decrypt("c.enc.yaml", "yaml"),
        b"ratio: \"2.50\"\nport: \"+8081\"\nother: 8082\n"
    );
    fx.envsync(["decrypt"]).expect(0);
    let status = fx.envsync(["status"]);
    assert!(!status.stdout.contains("changed"), "{}", status.stdout);
}
