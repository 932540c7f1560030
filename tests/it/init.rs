//! `envsync init`: a team's Makefile (SECRET_FILES over continuation lines, INFRA_FILES,
//! sops loops in the recipes) imported into a manifest that then decrypts every file
//! byte-identical to `sops -d` and passes `check`; refusals that write nothing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{canary, git, key_file, mode_of, snapshot, sops_decrypt, Fixture, AGE1, AGE2};

/// The Makefile's items: (item as written, repo path, server path, sops type).
const ITEMS: [(&str, &str, &str, &str); 11] = [
    (
        "envs/aletheia/.env.prod.enc:aletheia/envs/.env.prod",
        "envs/aletheia/.env.prod.enc",
        "aletheia/envs/.env.prod",
        "dotenv",
    ),
    (
        "envs/aletheia/.env.staging:aletheia/envs/.env.staging",
        "envs/aletheia/.env.staging.enc",
        "aletheia/envs/.env.staging",
        "dotenv",
    ),
    (
        "envs/helios/.env.enc:$(SERVER_ROOT)/helios/.env",
        "envs/helios/.env.enc",
        "helios/.env",
        "dotenv",
    ),
    (
        "envs/helios/worker.env.enc:helios/worker.env",
        "envs/helios/worker.env.enc",
        "helios/worker.env",
        "dotenv",
    ),
    (
        "envs/mail/.env:$(SERVER_ROOT)/mail/.env",
        "envs/mail/.env.enc",
        "mail/.env",
        "dotenv",
    ),
    (
        "envs/grafana/.env.enc:grafana/.env",
        "envs/grafana/.env.enc",
        "grafana/.env",
        "dotenv",
    ),
    (
        "envs/postgres/.env:postgres/.env",
        "envs/postgres/.env.enc",
        "postgres/.env",
        "dotenv",
    ),
    (
        "envs/redis/.env.enc:${SERVER_ROOT}/redis/.env",
        "envs/redis/.env.enc",
        "redis/.env",
        "dotenv",
    ),
    (
        "envs/traefik/.env:traefik/.env",
        "envs/traefik/.env.enc",
        "traefik/.env",
        "dotenv",
    ),
    (
        "nginx/.htpasswd.enc:$(SERVER_ROOT)/nginx/.htpasswd",
        "nginx/.htpasswd.enc",
        "nginx/.htpasswd",
        "binary",
    ),
    (
        "db/seed.sql:postgres/initdb/seed.sql",
        "db/seed.sql.enc",
        "postgres/initdb/seed.sql",
        "binary",
    ),
];

const PLAIN: [(&str, &str); 2] = [
    ("nginx/conf.d/app.conf", "nginx/conf.d/app.conf"),
    ("docker-compose.yml", "docker-compose.yml"),
];

/// The team's Makefile, with the server root `root`; `extra` goes into SECRET_FILES.
fn makefile(root: &Path, extra: &str) -> String {
    let mut items = String::new();
    for (i, (item, ..)) in ITEMS.iter().enumerate() {
        // Several items a line, as teams wrap them.
        let sep = if i % 3 == 2 { " \\\n\t" } else { " " };
        items.push_str(item);
        items.push_str(sep);
    }
    format!(
        "# Secrets of the docker host: make decrypt | encrypt | diff\n\
         SERVER_ROOT ?= {root}\n\
         SOPS_AGE_KEY_FILE ?= $(SERVER_ROOT)/.age-key.txt\n\
         export SOPS_AGE_KEY_FILE\n\
         DEPLOY_TOKEN := {token}\n\
         \n\
         SECRET_FILES := \\\n\t{items}{extra}\n\
         \n\
         INFRA_FILES := nginx/conf.d/app.conf:nginx/conf.d/app.conf docker-compose.yml:docker-compose.yml\n\
         \n\
         .PHONY: decrypt encrypt diff\n\
         decrypt: ## repo -> server\n\
         \t@for pair in $(SECRET_FILES); do \\\n\
         \t\tsrc=$${{pair%%:*}}; dst=$${{pair#*:}}; \\\n\
         \t\tmkdir -p $$(dirname $$dst); \\\n\
         \t\tsops -d $${{src%.enc}}.enc > $$dst && chmod 600 $$dst; \\\n\
         \tdone\n\
         encrypt: ## server -> repo\n\
         \t@for pair in $(SECRET_FILES); do \\\n\
         \t\tsrc=$${{pair%%:*}}; dst=$${{pair#*:}}; \\\n\
         \t\tsops -e $$dst > $${{src%.enc}}.enc; \\\n\
         \tdone\n\
         diff:\n\
         \t@for pair in $(SECRET_FILES); do \\\n\
         \t\tsrc=$${{pair%%:*}}; dst=$${{pair#*:}}; \\\n\
         \t\tdiff <(sops -d $${{src%.enc}}.enc) $$dst || true; \\\n\
         \tdone\n",
        root = root.display(),
        // A value in the Makefile is never shown, whatever envsync says about the file.
        token = canary("make"),
    )
}

/// A team repo: the 11 `.enc` files made by real sops (AGE1, AGE2), the two config files,
/// the Makefile, and the age key at `$(SERVER_ROOT)/.age-key.txt`.
fn team_repo() -> Fixture {
    let fx = Fixture::new();
    for (i, (_, repo, _, kind)) in ITEMS.iter().enumerate() {
        let plain = match *kind {
            "dotenv" => format!(
                "# service {i}\nDB_PASSWORD={}\nAPI_TOKEN={}\nPORT=80{i:02}\n",
                canary(&format!("db{i}")),
                canary(&format!("api{i}"))
            ),
            _ => format!("admin:$apr1${}\x00\x01\n", canary(&format!("bin{i}"))),
        };
        fx.sops_encrypt(repo, plain.as_bytes(), kind);
    }
    fs::create_dir_all(fx.repo.join("nginx/conf.d")).unwrap();
    fs::write(
        fx.repo.join("nginx/conf.d/app.conf"),
        "server { listen 80; }\n",
    )
    .unwrap();
    fs::write(fx.repo.join("docker-compose.yml"), "services: {}\n").unwrap();
    fs::write(fx.repo.join("Makefile"), makefile(&fx.server, "")).unwrap();
    let key = fx.server.join(".age-key.txt");
    fs::copy(key_file(1), &key).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fx
}

/// The manifest's entries as (repo, server, plain).
fn entries(fx: &Fixture) -> Vec<(String, String, bool)> {
    let text = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    doc["file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["repo"].as_str().unwrap().to_string(),
                f["server"].as_str().unwrap().to_string(),
                f.get("plain")
                    .and_then(toml::Value::as_bool)
                    .unwrap_or(false),
            )
        })
        .collect()
}

#[test]
fn a_team_makefile_becomes_a_manifest_that_decrypts_like_sops() {
    let fx = team_repo();
    let run = fx.envsync(["init", "--from-makefile", "Makefile"]);
    run.expect(0);
    let text = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    assert!(
        text.starts_with("# secrets.toml: written by envsync init from Makefile;"),
        "{text}"
    );
    let mut want: Vec<(String, String, bool)> = ITEMS
        .iter()
        .map(|(_, repo, server, _)| (repo.to_string(), server.to_string(), false))
        .collect();
    want.extend(
        PLAIN
            .iter()
            .map(|(r, s)| (r.to_string(), s.to_string(), true)),
    );
    assert_eq!(entries(&fx), want);
    let doc: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(
        doc["server"]["root"].as_str(),
        Some(fx.server.to_str().unwrap())
    );
    let key = fx.server.join(".age-key.txt");
    assert_eq!(
        doc["server"]["identity"].as_str(),
        Some(key.to_str().unwrap())
    );
    // The existing .sops.yaml is left alone.
    assert_eq!(
        fs::read_to_string(fx.repo.join(".sops.yaml")).unwrap(),
        format!("creation_rules:\n  - age: {AGE1},{AGE2}\n")
    );

    // The manifest works: decrypt puts every file where `sops -d` would, byte for byte.
    fx.envsync(["decrypt"]).expect(0);
    for (_, repo, server, kind) in ITEMS {
        let target = fx.server_path(server);
        assert_eq!(
            fs::read(&target).unwrap(),
            sops_decrypt(&fx.repo_path(repo), kind, &key_file(1)),
            "{server}"
        );
        assert_eq!(mode_of(&target), 0o600, "{server}");
    }
    for (repo, server) in PLAIN {
        assert_eq!(
            fs::read(fx.server_path(server)).unwrap(),
            fs::read(fx.repo_path(repo)).unwrap()
        );
        assert_eq!(mode_of(&fx.server_path(server)), 0o644, "{server}");
    }

    // check, keyless (HOME empty, no SOPS_*), on the committed repo.
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "envsync init"]);
    let check = fx.envsync(["check"]);
    check.expect(0);
    assert_eq!(check.stdout, "");

    // A second init refuses and changes no byte.
    let before = snapshot(fx.dir.path());
    let again = fx.envsync(["init", "--from-makefile", "Makefile"]);
    again.expect(2);
    assert!(
        again.stderr.contains("secrets.toml already exists")
            && again.stderr.contains("never overwrites"),
        "{}",
        again.stderr
    );
    assert_eq!(snapshot(fx.dir.path()), before);
    fx.envsync(["init"]).expect(2);
    assert_eq!(snapshot(fx.dir.path()), before);
}

#[test]
fn a_dry_run_writes_nothing() {
    let fx = team_repo();
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    let before = snapshot(fx.dir.path());
    let run = fx.envsync(["init", "--from-makefile", "Makefile", "--dry-run"]);
    run.expect(0);
    assert_eq!(snapshot(fx.dir.path()), before);
    assert!(run.stdout.contains("would write"), "{}", run.stdout);
    assert!(
        run.stdout.contains("repo = \"db/seed.sql.enc\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("path_regex"), "{}", run.stdout);
    let json = fx.envsync(["init", "--from-makefile", "Makefile", "-n", "--json"]);
    json.expect(0);
    assert_eq!(snapshot(fx.dir.path()), before);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["command"], "init");
    assert_eq!(doc["entries"], 13);
    assert_eq!(doc["plain"], 2);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(
        doc["sops_yaml"].as_str(),
        Some(fx.repo.join(".sops.yaml").to_str().unwrap())
    );
    assert_eq!(doc["gitignore"], serde_json::json!([]));
}

#[test]
fn a_repo_without_sops_yaml_gets_the_files_recipients() {
    let fx = team_repo();
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    let run = fx.envsync(["init", "--from-makefile", "Makefile", "--json"]);
    run.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["dry_run"], false);
    assert_eq!(
        doc["sops_yaml"].as_str(),
        Some(fx.repo.join(".sops.yaml").to_str().unwrap())
    );
    assert_eq!(
        (doc["entries"].as_u64(), doc["plain"].as_u64()),
        (Some(13), Some(2))
    );
    assert_eq!(
        doc["manifest"].as_str(),
        Some(fx.repo.join("secrets.toml").to_str().unwrap())
    );
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(fx.repo.join(".sops.yaml")).unwrap()).unwrap();
    let rule = &yaml["creation_rules"][0];
    assert_eq!(rule["path_regex"], "\\.enc$");
    // Both recipients: they came from the files, not from the one key on the server.
    let got: BTreeSet<&str> = rule["age"].as_str().unwrap().split(',').collect();
    assert_eq!(got, BTreeSet::from([AGE1, AGE2]));
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "envsync init"]);
    fx.envsync(["check"]).expect(0);
}

#[test]
fn a_shell_call_in_the_list_is_refused_with_its_line() {
    let fx = team_repo();
    let text = makefile(&fx.server, "\\\n\t$(shell ls envs/extra/*.enc)");
    let line = text.lines().position(|l| l.contains("$(shell")).unwrap() + 1;
    fs::write(fx.repo.join("Makefile"), text).unwrap();
    let before = snapshot(fx.dir.path());
    let run = fx.envsync(["init", "--from-makefile", "Makefile"]);
    run.expect(2);
    assert!(
        run.stderr.contains(&format!("Makefile line {line}: "))
            && run.stderr.contains("$(shell")
            && run.stderr.contains("--root")
            && run.stderr.contains("by hand"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(fx.dir.path()), before);
}

#[test]
fn an_ambiguous_root_needs_root() {
    let fx = Fixture::new();
    fx.sops_encrypt(
        "envs/app.env.enc",
        format!("K={}\n", canary("amb")).as_bytes(),
        "dotenv",
    );
    fs::write(
        fx.repo.join("Makefile"),
        format!(
            "APP_ROOT := {}\nBACKUP_DIR := /var/backups\nSECRET_FILES := envs/app.env.enc:app/.env\n",
            fx.server.display()
        ),
    )
    .unwrap();
    let before = snapshot(fx.dir.path());
    let run = fx.envsync(["init", "--from-makefile", "Makefile"]);
    run.expect(2);
    assert!(
        run.stderr.contains("APP_ROOT")
            && run.stderr.contains("BACKUP_DIR")
            && run.stderr.contains("pass --root DIR"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(fx.dir.path()), before);
    let server = fx.server.to_str().unwrap();
    fx.envsync(["init", "--from-makefile", "Makefile", "--root", server])
        .expect(0);
    assert_eq!(
        entries(&fx),
        vec![("envs/app.env.enc".into(), "app/.env".into(), false)]
    );
}

#[test]
fn plaintext_targets_inside_the_repo_are_ignored() {
    let fx = Fixture::new();
    fx.sops_encrypt(
        "envs/app.env.enc",
        format!("K={}\n", canary("ign")).as_bytes(),
        "dotenv",
    );
    fs::write(
        fx.repo.join("Makefile"),
        "SERVER_ROOT := $(CURDIR)/live\n\
         SECRET_FILES := envs/app.env:$(SERVER_ROOT)/app/.env\n\
         INFRA_FILES := compose.yml\n",
    )
    .unwrap();
    fs::write(fx.repo.join("compose.yml"), "services: {}\n").unwrap();
    fx.envsync(["init", "--from-makefile", "Makefile"])
        .expect(0);
    let doc: toml::Value =
        toml::from_str(&fs::read_to_string(fx.repo.join("secrets.toml")).unwrap()).unwrap();
    let root = fx.repo.join("live");
    assert_eq!(doc["server"]["root"].as_str(), root.to_str());
    assert_eq!(
        fs::read_to_string(fx.repo.join(".gitignore")).unwrap(),
        "/live/app/.env\n/live/.envsync/\n",
        "the plaintext target and the state folder"
    );
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "init"]);
    fx.envsync(["check"]).expect(0);
}

#[test]
fn without_a_makefile_a_starter_manifest_and_a_keygen_hint() {
    let fx = Fixture::new();
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    let run = fx.envsync(["init"]);
    run.expect(0);
    assert!(
        run.stderr.contains("envsync keygen -o FILE") && run.stderr.contains(".sops.yaml"),
        "{}",
        run.stderr
    );
    assert!(!fx.repo.join(".sops.yaml").exists());
    let text = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(doc["server"]["root"].as_str(), Some("/opt/docker"));
    assert_eq!(doc["defaults"]["mode"].as_str(), Some("0600"));
    assert!(text.contains("# [[file]]"), "{text}");
    assert_eq!(mode_of(&fx.repo.join("secrets.toml")), 0o644);
    // With an identity, its public key goes to .sops.yaml.
    let fx = Fixture::new();
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    let key = key_file(1);
    fx.envsync([
        "init",
        "--identity",
        key.to_str().unwrap(),
        "--root",
        "/srv",
    ])
    .expect(0);
    let yaml = fs::read_to_string(fx.repo.join(".sops.yaml")).unwrap();
    assert!(yaml.contains(&format!("age: {AGE1}\n")), "{yaml}");
    let doc: toml::Value =
        toml::from_str(&fs::read_to_string(fx.repo.join("secrets.toml")).unwrap()).unwrap();
    assert_eq!(doc["server"]["root"].as_str(), Some("/srv"));
    assert_eq!(
        doc["server"]["identity"].as_str(),
        Some(key.to_str().unwrap())
    );
}
