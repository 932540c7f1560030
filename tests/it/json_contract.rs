//! The JSON contract (docs/json.md): every command's `--json` output, on success, drift,
//! refusal and error, is one document that validates against its schema in docs/json/
//! (checked by PyPI's `jsonschema`, a real validator), with the exit status unchanged; a
//! changed entry carries its keys with lengths in every command; no document holds a value.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{self, canary, sops_set, Fixture, Run, AGE3};

/// Every document a run printed, saved for the validator, and which (command, case) pairs
/// were covered.
struct Documents {
    dir: PathBuf,
    files: Vec<PathBuf>,
    covered: BTreeSet<(String, &'static str)>,
}

impl Documents {
    fn new(fx: &Fixture) -> Self {
        let dir = fx.dir.path().join("documents");
        fs::create_dir_all(&dir).unwrap();
        Self {
            dir,
            files: Vec::new(),
            covered: BTreeSet::new(),
        }
    }

    /// Checks the exit status, parses stdout as exactly one document, checks its envelope
    /// and keeps it for the schema check.
    #[track_caller]
    fn record(&mut self, case: &'static str, run: &Run, code: i32) -> Value {
        run.expect(code);
        let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "{case}: stdout is not one JSON document ({e}):\n{}",
                run.stdout
            )
        });
        assert_eq!(doc["version"], 1, "{case}");
        let command = doc["command"].as_str().unwrap().to_string();
        // ok: no error, no refusal; the exit status says the rest (1 = drift).
        assert_eq!(doc["ok"], matches!(code, 0 | 1), "{case}: {doc}");
        if code >= 2 {
            assert!(doc["error"]["message"].is_string(), "{case}: {doc}");
        }
        let path = self
            .dir
            .join(format!("{:03}-{command}.json", self.files.len()));
        fs::write(&path, &run.stdout).unwrap();
        self.files.push(path);
        self.covered.insert((command, case));
        doc
    }
}

fn entry_named<'a>(doc: &'a Value, repo: &str) -> &'a Value {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["repo"] == repo)
        .unwrap_or_else(|| panic!("no entry {repo} in {doc}"))
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

const APP: &str = "app.env.enc";
const NGINX: &str = "nginx.conf";

#[test]
fn every_command_output_validates_against_its_schema() {
    let fx = Fixture::new();
    let password = canary("json-password");
    let rotated = canary("json-rotated");
    let added = canary("json-added");
    fx.write_server(
        "app/.env",
        format!("DB_PASSWORD={password}\nAPI_TOKEN=tok-1\n").as_bytes(),
    );
    fx.write_server("nginx/nginx.conf", b"worker_processes 2;\nlisten 80;\n");
    chmod(&fx.server_path("app/.env"), 0o600);
    chmod(&fx.server_path("nginx/nginx.conf"), 0o600);
    fx.manifest(&[
        format!("{}tags = [\"web\"]\n", Fixture::entry(APP, "app/.env")),
        format!(
            "{}plain = true\n",
            Fixture::entry(NGINX, "nginx/nginx.conf")
        ),
    ]);
    let mut docs = Documents::new(&fx);

    // encrypt, first time: every key added, with its length.
    let doc = docs.record("success", &fx.envsync(["encrypt", "--json"]), 0);
    assert_eq!(doc["changed"], true);
    let app = entry_named(&doc, APP);
    assert_eq!(app["action"], "create");
    assert_eq!(app["tags"], serde_json::json!(["web"]));
    assert_eq!(
        app["changes"]["added"],
        serde_json::json!([
            {"key": "DB_PASSWORD", "len": password.len()},
            {"key": "API_TOKEN", "len": 5},
        ])
    );

    // decrypt with nothing to do; status and diff in sync.
    let doc = docs.record("unchanged", &fx.envsync(["decrypt", "--json"]), 0);
    assert_eq!(doc["changed"], false);
    assert_eq!(entry_named(&doc, APP)["changed"], false);
    docs.record("in sync", &fx.envsync(["status", "--json"]), 0);
    let doc = docs.record("in sync", &fx.envsync(["diff", "--json"]), 0);
    assert_eq!(doc["drift"], false);

    // A teammate's rotation: the dry run and the decrypt carry the same changes.
    sops_set(&fx.repo_path(APP), "DB_PASSWORD", &rotated);
    let plan = docs.record(
        "dry run",
        &fx.envsync(["decrypt", "--dry-run", "--json"]),
        0,
    );
    let done = docs.record("success", &fx.envsync(["decrypt", "--json"]), 0);
    let want = serde_json::json!([
        {"key": "DB_PASSWORD", "old_len": password.len(), "new_len": rotated.len()}
    ]);
    for doc in [&plan, &done] {
        let app = entry_named(doc, APP);
        assert_eq!(app["changed"], true);
        assert_eq!(app["changes"]["changed"], want, "{doc}");
    }
    assert_eq!(plan["dry_run"], true);

    // chmod: drift (exit 1), listed; decrypt fixes it and says so.
    chmod(&fx.server_path("app/.env"), 0o644);
    let text = fx.envsync(["diff"]);
    text.expect(1);
    assert!(
        text.stdout.contains("~ mode 0644 (want 0600)"),
        "{}",
        text.stdout
    );
    let doc = docs.record("drift", &fx.envsync(["diff", "--json"]), 1);
    let perms = serde_json::json!([{"field": "mode", "actual": "0644", "expected": "0600"}]);
    assert_eq!(entry_named(&doc, APP)["state"], "drift");
    assert_eq!(entry_named(&doc, APP)["changes"]["perms"], perms);
    let doc = docs.record("drift", &fx.envsync(["status", "--json"]), 1);
    assert_eq!(entry_named(&doc, APP)["drift"], perms);
    let doc = docs.record("fix mode", &fx.envsync(["decrypt", "--json"]), 0);
    assert_eq!(entry_named(&doc, APP)["action"], "fix-mode");
    assert_eq!(entry_named(&doc, APP)["changes"]["perms"], perms);
    fx.envsync(["diff"]).expect(0);

    // A plain entry's diff is in clear: the changed config line is shown.
    fx.write_server("nginx/nginx.conf", b"worker_processes 4;\nlisten 80;\n");
    let text = fx.envsync(["diff", NGINX]);
    text.expect(1);
    assert!(
        text.stdout.contains("-worker_processes 2;"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("+worker_processes 4;"),
        "{}",
        text.stdout
    );
    let doc = docs.record("plain drift", &fx.envsync(["diff", "--json", NGINX]), 1);
    let lines = &entry_named(&doc, NGINX)["lines"];
    assert!(lines
        .as_array()
        .unwrap()
        .contains(&"+worker_processes 4;".into()));
    docs.record("success", &fx.envsync(["encrypt", "--json", NGINX]), 0);

    // A server edit not yet encrypted: decrypt refuses (exit 3) with the entry named; the
    // encrypt that keeps it carries the added key.
    fx.write_server(
        "app/.env",
        format!("DB_PASSWORD={rotated}\nAPI_TOKEN=tok-1\nNEW_KEY={added}\n").as_bytes(),
    );
    chmod(&fx.server_path("app/.env"), 0o600);
    let doc = docs.record("refusal", &fx.envsync(["decrypt", "--json"]), 3);
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(doc["refused"][0]["repo"], APP);
    assert_eq!(doc["refused"][0]["server"], "app/.env");
    assert_eq!(doc["refused"][0]["state"], "server-changed");
    let doc = docs.record("success", &fx.envsync(["encrypt", "--json", APP]), 0);
    assert_eq!(
        entry_named(&doc, APP)["changes"]["added"],
        serde_json::json!([{"key": "NEW_KEY", "len": added.len()}])
    );

    // A tampered .enc: exit 2, the error's kind and file; with --keep-going the others are
    // still reported in the same document.
    let good = fs::read(fx.repo_path(APP)).unwrap();
    let tampered = String::from_utf8(good.clone()).unwrap().replace(
        "sops_mac=ENC[AES256_GCM,data:",
        "sops_mac=ENC[AES256_GCM,data:AA",
    );
    fs::write(fx.repo_path(APP), tampered).unwrap();
    let doc = docs.record("error", &fx.envsync(["decrypt", "--json"]), 2);
    assert!(
        doc["error"]["file"].as_str().unwrap().ends_with(APP),
        "{doc}"
    );
    let doc = docs.record(
        "keep going",
        &fx.envsync(["diff", "--keep-going", "--json"]),
        2,
    );
    assert_eq!(doc["errors"][0]["repo"], APP);
    assert_eq!(doc["entries"][0]["repo"], NGINX);
    docs.record("error", &fx.envsync(["status", "--json"]), 2);
    fs::write(fx.repo_path(APP), &good).unwrap();

    // check: clean, then an orphan .enc.
    docs.record("result", &fx.envsync(["check", "--json"]), 0);
    fs::write(fx.repo_path("orphan.enc"), &good).unwrap();
    common::git(&fx, &["add", "orphan.enc"]);
    let doc = docs.record("problems", &fx.envsync(["check", "--json"]), 1);
    assert_eq!(doc["clean"], false);
    common::git(&fx, &["rm", "-qf", "orphan.enc"]);

    // rekey: a new recipient in .sops.yaml.
    let rules = fs::read_to_string(fx.repo_path(".sops.yaml")).unwrap();
    fs::write(
        fx.repo_path(".sops.yaml"),
        rules.replace("age: ", &format!("age: {AGE3},")),
    )
    .unwrap();
    let doc = docs.record("dry run", &fx.envsync(["rekey", "--dry-run", "--json"]), 0);
    assert_eq!(entry_named(&doc, APP)["added"], serde_json::json!([AGE3]));
    fs::write(fx.repo_path(".sops.yaml"), rules).unwrap();

    // add: the first encrypt's keys.
    fx.write_server("worker/.env", b"QUEUE_URL=amqp://q\n");
    let doc = docs.record("success", &fx.envsync(["add", "worker/.env", "--json"]), 0);
    assert_eq!(doc["changes"]["added"][0]["key"], "QUEUE_URL");
    docs.record("error", &fx.envsync(["add", "worker/.env", "--json"]), 2);

    // edit: an editor that changes one value.
    let editor = fx.dir.path().join("editor.sh");
    fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/^API_TOKEN=.*/API_TOKEN=tok-22/' \"$1\"\n",
    )
    .unwrap();
    chmod(&editor, 0o755);
    let runtime = fx.dir.path().join("runtime");
    fs::create_dir_all(&runtime).unwrap();
    chmod(&runtime, 0o700);
    let env = [
        ("EDITOR", editor.to_str().unwrap()),
        ("SOPS_EDITOR", ""),
        ("VISUAL", ""),
        ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
    ];
    let doc = docs.record(
        "success",
        &fx.envsync_with(["edit", APP, "--apply", "--json"], &env),
        0,
    );
    assert_eq!(
        doc["changes"]["changed"],
        serde_json::json!([{"key": "API_TOKEN", "old_len": 5, "new_len": 6}])
    );
    assert_eq!(doc["applied"]["changed"], true, "{doc}");
    docs.record(
        "error",
        &fx.envsync_with(["edit", "nope.enc", "--json"], &env),
        2,
    );

    // keygen, init (a dry run beside the repo, and a refusal to overwrite), rollback, show
    // and exec errors, a manifest error.
    let key = fx.dir.path().join("new-key.txt");
    let doc = docs.record(
        "success",
        &fx.envsync(["keygen", "-o", key.to_str().unwrap(), "--json"]),
        0,
    );
    assert!(doc["recipient"].as_str().unwrap().starts_with("age1"));
    let elsewhere = fx.dir.path().join("elsewhere/secrets.toml");
    fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    let manifest_arg = format!("--manifest={}", elsewhere.display());
    docs.record(
        "dry run",
        &fx.envsync([manifest_arg.as_str(), "init", "--dry-run", "--json"]),
        0,
    );
    docs.record("error", &fx.envsync(["init", "--json"]), 2);
    docs.record("error", &fx.envsync(["rollback", APP, "--json"]), 2);
    docs.record("error", &fx.envsync(["show", "missing.enc", "--json"]), 2);
    docs.record(
        "error",
        &fx.envsync(["exec", NGINX, "--json", "--", "true"]),
        2,
    );
    let doc = docs.record(
        "error",
        &fx.envsync(["--manifest", "/nonexistent/secrets.toml", "diff", "--json"]),
        2,
    );
    assert_eq!(doc["error"]["kind"], "manifest");
    // A command line clap refuses is a document too.
    let doc = docs.record(
        "usage",
        &fx.envsync(["decrypt", "--no-such-flag", "--json"]),
        2,
    );
    assert_eq!(doc["error"]["kind"], "usage");
    let doc = docs.record("usage", &fx.envsync(["--json", "frobnicate"]), 2);
    assert_eq!(doc["command"], "envsync");

    on_change_failure(&mut docs);

    let commands: BTreeSet<&str> = docs.covered.iter().map(|(c, _)| c.as_str()).collect();
    for command in [
        "add", "check", "decrypt", "diff", "edit", "encrypt", "exec", "init", "keygen", "rekey",
        "rollback", "show", "status", "envsync",
    ] {
        assert!(commands.contains(command), "no document of {command}");
    }
    validate(&docs.files);
    let all: String = docs
        .files
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect();
    for value in [
        password.as_str(),
        rotated.as_str(),
        added.as_str(),
        "tok-1",
        "tok-22",
        "amqp://q",
    ] {
        assert!(!all.contains(value), "a value leaked into JSON");
    }
    common::assert_no_leak(&all, "the JSON documents");
}

/// A failed `on_change` after everything was written: exit 4, one document with the
/// entries written and the error.
fn on_change_failure(docs: &mut Documents) {
    let fx = Fixture::new();
    fx.write_server("app/.env", b"A=1\n");
    chmod(&fx.server_path("app/.env"), 0o600);
    fx.manifest(&[format!(
        "{}on_change = [\"false\"]\n",
        Fixture::entry(APP, "app/.env")
    )]);
    fx.envsync(["encrypt"]).expect(0);
    fs::remove_file(fx.server_path("app/.env")).unwrap();
    let doc = docs.record("hook failed", &fx.envsync(["decrypt", "--json"]), 4);
    assert_eq!(doc["error"]["kind"], "on_change");
    assert_eq!(entry_named(&doc, APP)["action"], "create");
    assert_eq!(doc["on_change"], serde_json::json!(["false"]));
}

/// Validates every document with PyPI's jsonschema against docs/json/.
fn validate(files: &[PathBuf]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(common::tool("python3"))
        .arg(root.join("tests/json/validate.py"))
        .arg(root.join("docs/json"))
        .args(files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schema violations:\n{report}");
    assert!(
        report.contains(&format!(
            "validated {} documents: 0 violations",
            files.len()
        )),
        "{report}"
    );
}
