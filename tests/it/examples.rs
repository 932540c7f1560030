//! The shipped examples run as their READMEs say: `examples/docker-secrets` (a dotenv `.enc`
//! written as a folder of Docker secret files beside the compose file that mounts them) and
//! `examples/releases` (timestamped releases behind a `current` symlink, `verify`, rollback,
//! prune). Each example folder is copied, with the demo's throwaway key, into a temp folder so
//! that the repo is never written; the real envsync and the real sops run on the copy.
//!
//! The examples leave `group` commented out so that anyone can run them; the tests (run as
//! root, as CI does) turn on `group = "daemon"`, a group every Debian host has, where
//! production would name the containers' group (`app`).

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::common::{self, mode_of, snapshot, Fixture};

/// The demo's throwaway key, which both examples name as `../demo/demo-age-key.txt`.
const DEMO_KEY: &str = "examples/demo/demo-age-key.txt";

/// The commented-out group line of both example manifests, and what the tests make of it.
const GROUP_LINE: &str = "# group = \"app\"";
const GROUP_TEST: &str = "group = \"daemon\"";

/// Copies `examples/<name>` to `<temp>/<name>` (leaving out a `server` folder a local run of
/// the example may have left) and the demo key to `<temp>/demo/`, and returns a fixture whose
/// repo is the copy and whose server is its `server` folder.
fn example(name: &str) -> Fixture {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let dir = tempfile::Builder::new()
        .prefix("envsync-example")
        .tempdir()
        .unwrap();
    let repo = dir.path().join(name);
    for entry in walkdir::WalkDir::new(&source)
        .into_iter()
        .filter_entry(|e| e.path() != source.join("server"))
    {
        let entry = entry.unwrap();
        let to = repo.join(entry.path().strip_prefix(&source).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&to).unwrap();
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
    let key = dir.path().join("demo/demo-age-key.txt");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_KEY), &key).unwrap();
    // git checks files out 0644; envsync refuses a private key others can read.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let server = repo.join("server");
    assert!(!server.exists(), "the copy must start with no server");
    Fixture {
        dir,
        repo,
        server,
        home,
    }
}

/// Turns on `group = "daemon"` in the copy's manifest (see the module comment).
fn with_test_group(fx: &Fixture) {
    let path = fx.repo_path("secrets.toml");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.matches(GROUP_LINE).count(),
        1,
        "{} should hold one `{GROUP_LINE}` line",
        path.display()
    );
    fs::write(&path, text.replace(GROUP_LINE, GROUP_TEST)).unwrap();
}

/// Replaces the copy's `on_change = …` line with `line`.
fn set_on_change(fx: &Fixture, line: &str) {
    let path = fx.repo_path("secrets.toml");
    let text = fs::read_to_string(&path).unwrap();
    let old: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("on_change = "))
        .collect();
    assert_eq!(old.len(), 1, "one on_change line in {}", path.display());
    fs::write(&path, text.replace(old[0], line)).unwrap();
}

fn daemon_gid() -> u32 {
    uzers::get_group_by_name("daemon")
        .expect("group `daemon` (every Debian host has it)")
        .gid()
}

/// The keys and values of a dotenv `.enc` in the copy, as real `sops -d` prints them (a
/// `\n` in a value is sops' escape for a newline). Every value is registered as a secret, so
/// that no envsync output may show it.
fn sops_values(fx: &Fixture, rel: &str) -> BTreeMap<String, Vec<u8>> {
    let key = fx.dir.path().join("demo/demo-age-key.txt");
    let plain = common::sops_decrypt(&fx.repo_path(rel), "dotenv", &key);
    let mut values = BTreeMap::new();
    for line in String::from_utf8(plain).unwrap().lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap();
        common::secret(value);
        values.insert(name.to_string(), value.replace("\\n", "\n").into_bytes());
    }
    values
}

/// Runs real `sops <command> --input-type dotenv --output-type dotenv <rel> <args…>` in the
/// copy with the demo key, as the READMEs tell an operator to rotate (`set`) or drop
/// (`unset`) a key; sops keeps the recipients and re-encrypts what changed.
fn sops_edit(fx: &Fixture, command: &str, rel: &str, args: &[&str]) {
    let out = Command::new(common::sops())
        .arg(command)
        .args(["--input-type", "dotenv", "--output-type", "dotenv"])
        .arg(rel)
        .args(args)
        .current_dir(&fx.repo)
        .env(
            "SOPS_AGE_KEY_FILE",
            fx.dir.path().join("demo/demo-age-key.txt"),
        )
        .env_remove("SOPS_AGE_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops {command} {rel} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sops set` of one dotenv key to `value`.
fn sops_set(fx: &Fixture, rel: &str, key: &str, value: &str) {
    let path = serde_json::to_string(&[key]).unwrap();
    let value = serde_json::to_string(value).unwrap();
    sops_edit(fx, "set", rel, &[&path, &value]);
}

/// `sops unset` of one dotenv key.
fn sops_unset(fx: &Fixture, rel: &str, key: &str) {
    let path = serde_json::to_string(&[key]).unwrap();
    sops_edit(fx, "unset", rel, &[&path]);
}

/// The names in a folder, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Asserts that `folder` holds exactly one file per key of `values`, named in lower case, each
/// the value's bytes (no newline added), `mode` and group daemon.
#[track_caller]
fn assert_key_files(folder: &Path, values: &BTreeMap<String, Vec<u8>>, mode: u32) {
    let mut expected: Vec<String> = values.keys().map(|k| k.to_lowercase()).collect();
    expected.sort();
    assert_eq!(names_in(folder), expected, "files of {}", folder.display());
    for (name, value) in values {
        let file = folder.join(name.to_lowercase());
        assert!(
            fs::read(&file).unwrap() == *value,
            "{} does not hold the value of {name} from sops -d",
            file.display()
        );
        let meta = fs::symlink_metadata(&file).unwrap();
        assert!(meta.is_file(), "{} is a regular file", file.display());
        assert_eq!(meta.mode() & 0o7777, mode, "mode of {}", file.display());
        assert_eq!(meta.gid(), daemon_gid(), "group of {}", file.display());
    }
}

/// How many times the `on_change` stand-in printed `line` (one whole line of stderr: envsync
/// also announces the command, quoted, before running it).
fn hook_ran(stderr: &str, line: &str) -> usize {
    stderr.lines().filter(|l| *l == line).count()
}

#[track_caller]
fn assert_dir(path: &Path, mode: u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.is_dir(), "{} is a folder", path.display());
    assert_eq!(meta.mode() & 0o7777, mode, "mode of {}", path.display());
}

// ---------------------------------------------------------------------------------------
// examples/docker-secrets

const DB_ENC: &str = "db/.env.enc";
const DB_HOOK: &str =
    "on_change: would run docker compose --project-directory db up -d --force-recreate db";

/// The `file:` paths of a compose file's top-level `secrets:` block, by secret name, and the
/// secret names its services use (`secrets:` lists under `services:`) and read through
/// `*_FILE: /run/secrets/<name>` variables. A minimal reader for the example's own layout.
struct Compose {
    files: BTreeMap<String, String>,
    used: Vec<String>,
    file_vars: Vec<String>,
}

fn read_compose(text: &str) -> Compose {
    let mut files = BTreeMap::new();
    let mut used = Vec::new();
    let mut file_vars = Vec::new();
    let mut top = "";
    let mut current_secret = None::<String>;
    let mut in_service_secrets = false;
    for line in text.lines() {
        let content = line.split(" #").next().unwrap().trim_end();
        if content.trim_start().starts_with('#') || content.trim().is_empty() {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let item = content.trim();
        if indent == 0 {
            top = item.trim_end_matches(':');
            continue;
        }
        match top {
            "secrets" if indent == 2 => current_secret = Some(item.trim_end_matches(':').into()),
            "secrets" => {
                if let Some(path) = item.strip_prefix("file:") {
                    files.insert(current_secret.clone().unwrap(), path.trim().to_string());
                }
            }
            "services" => {
                if indent == 4 {
                    in_service_secrets = item == "secrets:";
                } else if in_service_secrets && indent == 6 {
                    used.push(item.strip_prefix("- ").unwrap().to_string());
                }
                if let Some((var, value)) = item.split_once(": /run/secrets/") {
                    assert!(var.ends_with("_FILE"), "{var} reads a secret file");
                    file_vars.push(value.to_string());
                }
            }
            _ => {}
        }
    }
    Compose {
        files,
        used,
        file_vars,
    }
}

/// Proves: the docker-secrets example decrypts to one 0640 file per key of `db/.env.enc`
/// (lower-case names, exact `sops -d` values, no file for its comments) in `db/secrets/`,
/// next to the compose file, and every `file:` of compose's top-level `secrets:` exists
/// there; every secret a service uses is declared, and each `*_FILE` names one. The
/// `on_change` stand-in runs once, and not again on an unchanged decrypt.
#[test]
fn docker_secrets_decrypt_matches_compose() {
    let fx = example("docker-secrets");
    with_test_group(&fx);
    let values = sops_values(&fx, DB_ENC);
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["APP_DB_PASSWORD", "APP_SECRET_KEY", "POSTGRES_PASSWORD"],
        "the example's keys"
    );

    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert_eq!(hook_ran(&run.stderr, DB_HOOK), 1, "{}", run.stderr);

    let secrets = fx.server_path("db/secrets");
    assert_key_files(&secrets, &values, 0o640);
    assert_dir(&secrets, 0o755);
    let compose_text = fs::read_to_string(fx.server_path("db/compose.yaml")).unwrap();
    assert_eq!(
        compose_text,
        fs::read_to_string(fx.repo_path("db/compose.yaml")).unwrap(),
        "the plain entry copies compose.yaml beside the secrets"
    );
    assert_eq!(mode_of(&fx.server_path("db/compose.yaml")), 0o644);

    let compose = read_compose(&compose_text);
    let declared: Vec<String> = compose.files.keys().cloned().collect();
    assert_eq!(
        declared,
        names_in(&secrets),
        "compose declares exactly the key files"
    );
    for (name, file) in &compose.files {
        let path = fx.server_path("db").join(file);
        assert!(
            file.starts_with("./secrets/") && path.is_file(),
            "secret {name}: {} does not exist after decrypt",
            path.display()
        );
    }
    assert!(compose.used.len() >= 2, "services use secrets");
    for name in compose.used.iter().chain(&compose.file_vars) {
        assert!(
            compose.files.contains_key(name),
            "{name} is used but not declared"
        );
    }
    assert!(compose.file_vars.contains(&"postgres_password".to_string()));

    let again = fx.envsync(["decrypt"]);
    again.expect(0);
    assert!(!again.stderr.contains("on_change"), "{}", again.stderr);
    fx.envsync(["status"]).expect(0);
}

/// Proves: the docker-secrets README's rotations. A value rotated in the repo (real sops)
/// changes that one file and runs the hook; a value rotated on the server is put into the
/// `.enc` by `encrypt` (no hook); a key removed from the `.enc` loses its file while a file no
/// key maps to stays and `status` lists it without failing.
#[test]
fn docker_secrets_rotations() {
    let fx = example("docker-secrets");
    with_test_group(&fx);
    fx.envsync(["decrypt"]).expect(0);
    let secrets = fx.server_path("db/secrets");

    // In the repo: a new postgres password.
    let rotated = common::canary("postgres-password");
    sops_set(&fx, DB_ENC, "POSTGRES_PASSWORD", &rotated);
    let before = fs::read(secrets.join("app_secret_key")).unwrap();
    let diff = fx.envsync(["diff"]);
    diff.expect(1);
    assert!(
        diff.stdout.contains("POSTGRES_PASSWORD: changed"),
        "{}",
        diff.stdout
    );
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert_eq!(hook_ran(&run.stderr, DB_HOOK), 1, "{}", run.stderr);
    assert_eq!(
        fs::read(secrets.join("postgres_password")).unwrap(),
        rotated.as_bytes()
    );
    assert_eq!(fs::read(secrets.join("app_secret_key")).unwrap(), before);
    assert_key_files(&secrets, &sops_values(&fx, DB_ENC), 0o640);

    // On the server: a new app secret key, written without a newline, then encrypt (which
    // does not add the operator's notes.txt: no key maps to it).
    fs::write(secrets.join("notes.txt"), "not a secret\n").unwrap();
    let server_key = common::canary("app-secret-key");
    fs::write(secrets.join("app_secret_key"), &server_key).unwrap();
    fx.envsync(["status"]).expect(1);
    let enc_before = fs::read_to_string(fx.repo_path(DB_ENC)).unwrap();
    let enc = fx.envsync(["encrypt"]);
    enc.expect(0);
    assert!(!enc.stderr.contains("on_change"), "{}", enc.stderr);
    let enc_after = fs::read_to_string(fx.repo_path(DB_ENC)).unwrap();
    // sops_lastmodified has a one-second resolution: within the second of `sops set` above
    // it may come out the same.
    let changed: Vec<&str> = enc_after
        .lines()
        .filter(|l| !enc_before.lines().any(|b| b == *l))
        .map(|l| l.split('=').next().unwrap())
        .filter(|name| *name != "sops_lastmodified")
        .collect();
    assert_eq!(
        changed,
        ["APP_SECRET_KEY", "sops_mac"],
        "encrypt rewrote that key's line, the MAC and the date only"
    );
    assert_eq!(enc_after.lines().count(), enc_before.lines().count());
    let after = sops_values(&fx, DB_ENC);
    assert_eq!(after["APP_SECRET_KEY"], server_key.as_bytes());
    assert_eq!(after["POSTGRES_PASSWORD"], rotated.as_bytes());
    fx.envsync(["status"]).expect(0);

    // A key dropped from the .enc: its file goes, a file of the operator's stays.
    sops_unset(&fx, DB_ENC, "APP_DB_PASSWORD");
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert_eq!(hook_ran(&run.stderr, DB_HOOK), 1, "{}", run.stderr);
    assert_eq!(
        names_in(&secrets),
        ["app_secret_key", "notes.txt", "postgres_password"]
    );
    assert_eq!(
        fs::read(secrets.join("notes.txt")).unwrap(),
        b"not a secret\n"
    );
    let status = fx.envsync(["status"]);
    status.expect(0);
    assert!(
        status.stdout.contains("; unmanaged: notes.txt"),
        "{}",
        status.stdout
    );
}

/// Proves: the README's exit 4. A failing `on_change` (the real docker line failing) leaves
/// every file written and durable and exits 4; the next decrypt finds nothing changed and
/// runs no hook, so the operator reruns the command by hand.
#[test]
fn docker_secrets_failed_hook_is_exit_4() {
    let fx = example("docker-secrets");
    with_test_group(&fx);
    set_on_change(
        &fx,
        r#"on_change = ["sh", "-c", "echo docker compose failed >&2; exit 1"]"#,
    );
    let values = sops_values(&fx, DB_ENC);
    let run = fx.envsync(["decrypt"]);
    run.expect(4);
    assert_eq!(
        hook_ran(&run.stderr, "docker compose failed"),
        1,
        "{}",
        run.stderr
    );
    assert_key_files(&fx.server_path("db/secrets"), &values, 0o640);
    let again = fx.envsync(["decrypt"]);
    again.expect(0);
    assert!(
        !again.stderr.contains("docker compose failed"),
        "{}",
        again.stderr
    );
    fx.envsync(["status"]).expect(0);
}

// ---------------------------------------------------------------------------------------
// examples/releases

const HORADUS_ENC: &str = "horadus/.env.enc";
const HORADUS: &str = "horadus/secrets";
const HORADUS_HOOK: &str = "on_change: would recreate api worker beat for ";

/// The release `current` points at, checking that it is a relative `releases/<stamp>` link
/// to a folder.
#[track_caller]
fn current(fx: &Fixture) -> String {
    let link = fx.server_path(HORADUS).join("current");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "current is a symlink"
    );
    let target = fs::read_link(&link).unwrap();
    let name = target
        .to_str()
        .unwrap()
        .strip_prefix("releases/")
        .unwrap_or_else(|| panic!("current -> {}: not releases/<stamp>", target.display()))
        .to_string();
    let stamp = regex::Regex::new(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$").unwrap();
    assert!(stamp.is_match(&name), "release name {name}");
    assert!(link.is_dir(), "current resolves to a folder");
    name
}

fn releases(fx: &Fixture) -> Vec<String> {
    names_in(&fx.server_path(HORADUS).join("releases"))
}

/// The hook line the stand-in prints for a run that changed the horadus entry.
fn horadus_hook(fx: &Fixture) -> String {
    let parent = fx.server_path("horadus").canonicalize().unwrap();
    format!("{HORADUS_HOOK}{}", parent.join("secrets").display())
}

/// Proves: the releases example's first decrypt builds the runbook layout: `current`, a
/// relative symlink to `releases/<UTC stamp>`, the only release, 0750 folders, 0640 files
/// (group daemon here, `app` in production) with the exact `sops -d` values; `verify`
/// (check-secrets.sh) ran against it and the `on_change` stand-in got the changed path in
/// ENVSYNC_CHANGED. An unchanged decrypt writes no release and runs no hook.
#[test]
fn releases_first_decrypt_layout() {
    let fx = example("releases");
    with_test_group(&fx);
    let values = sops_values(&fx, HORADUS_ENC);
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SENTRY_DSN"],
        "the example's keys"
    );
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert!(run.stderr.contains("check-secrets: "), "{}", run.stderr);
    assert!(run.stderr.contains(" ok"), "verify ran: {}", run.stderr);
    assert_eq!(
        hook_ran(&run.stderr, &horadus_hook(&fx)),
        1,
        "{}",
        run.stderr
    );

    let secrets = fx.server_path(HORADUS);
    assert_eq!(names_in(&secrets), ["current", "releases"]);
    let name = current(&fx);
    assert_eq!(releases(&fx), [name.as_str()]);
    let release = secrets.join("releases").join(&name);
    for dir in [secrets.join("releases"), release.clone()] {
        assert_dir(&dir, 0o750);
        assert_eq!(
            fs::metadata(&dir).unwrap().gid(),
            daemon_gid(),
            "{}",
            dir.display()
        );
    }
    assert_key_files(&release, &values, 0o640);
    // Services read through `current`.
    assert_eq!(
        fs::read(secrets.join("current/database_url")).unwrap(),
        values["DATABASE_URL"]
    );

    let again = fx.envsync(["decrypt"]);
    again.expect(0);
    assert!(!again.stderr.contains("on_change"), "{}", again.stderr);
    assert_eq!(releases(&fx), [name.as_str()]);
    assert_eq!(current(&fx), name);
    fx.envsync(["status"]).expect(0);
}

/// Proves: the releases README's rotate / verify / rollback / prune walk-through.
/// - a rotated value that check-secrets.sh rejects: exit 2 naming the verify command, the
///   script's reason on stderr, nothing written (server and state byte for byte), no hook;
/// - a good rotation: a second release, `current` switched to it, the old one kept; a
///   mode-only fix afterwards chmods the current release's file, no new release, no hook;
/// - `rollback`: `current` back to the first release, the hook runs, `status` says
///   `rolled back to <stamp>` (exit 1, JSON `rolled_back_to`), a plain decrypt refuses
///   (exit 3, naming `envsync decrypt --force horadus/.env.enc`), and no earlier release or
///   an unknown `--to` is exit 2 with nothing changed;
/// - `decrypt --force`: a third release from the repo, `releases = 2` prunes the first, the
///   mark is gone (status 0);
/// - a fourth release with `--no-hooks` (no hook output), `rollback --to` the third, then
///   `encrypt` refuses (3) and `encrypt --force` puts the rolled-back values into the `.enc`.
#[test]
fn releases_rotate_verify_rollback_prune() {
    let fx = example("releases");
    with_test_group(&fx);
    fx.envsync(["decrypt"]).expect(0);
    let first = current(&fx);
    let original = sops_values(&fx, HORADUS_ENC);
    let secrets = fx.server_path(HORADUS);

    // A rotation check-secrets.sh rejects.
    let bad = format!("mysql://horadus:{}@db/horadus", common::canary("db-bad"));
    sops_set(&fx, HORADUS_ENC, "DATABASE_URL", &bad);
    let before = snapshot(&fx.server);
    let run = fx.envsync(["decrypt"]);
    run.expect(2);
    assert!(run.stderr.contains("../check-secrets.sh"), "{}", run.stderr);
    assert!(
        run.stderr.contains("database_url is not a postgres:// URL"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("on_change"), "{}", run.stderr);
    assert!(
        snapshot(&fx.server) == before,
        "a failed verify wrote nothing"
    );
    assert_eq!(current(&fx), first);

    // A good rotation.
    let password = common::canary("db-password-2");
    let url = format!("postgres://horadus:{password}@db:5432/horadus");
    sops_set(&fx, HORADUS_ENC, "DATABASE_URL", &url);
    let rotated = sops_values(&fx, HORADUS_ENC);
    assert_eq!(rotated["DATABASE_URL"], url.as_bytes());
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert_eq!(
        hook_ran(&run.stderr, &horadus_hook(&fx)),
        1,
        "{}",
        run.stderr
    );
    let second = current(&fx);
    assert!(second > first, "{second} sorts after {first}");
    assert_eq!(releases(&fx), [first.clone(), second.clone()]);
    assert_key_files(&secrets.join("releases").join(&second), &rotated, 0o640);
    assert_key_files(&secrets.join("releases").join(&first), &original, 0o640);

    // A mode-only fix.
    let redis = secrets.join("current/redis_url");
    fs::set_permissions(&redis, fs::Permissions::from_mode(0o644)).unwrap();
    let run = fx.envsync(["decrypt"]);
    run.expect(0);
    assert!(!run.stderr.contains("on_change"), "{}", run.stderr);
    assert_eq!(mode_of(&redis), 0o640);
    assert_eq!(releases(&fx), [first.clone(), second.clone()]);
    assert_eq!(current(&fx), second);

    // Roll back.
    let dry = fx.envsync(["rollback", HORADUS_ENC, "--dry-run"]);
    dry.expect(0);
    assert!(dry.stdout.contains("would roll back"), "{}", dry.stdout);
    assert_eq!(current(&fx), second);
    let run = fx.envsync(["rollback", HORADUS_ENC]);
    run.expect(0);
    let said = format!("rolled back {HORADUS}: current → releases/{first} (was releases/{second})");
    assert!(run.stderr.contains(&said), "{}", run.stderr);
    assert_eq!(
        hook_ran(&run.stderr, &horadus_hook(&fx)),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(current(&fx), first);
    assert_eq!(
        fs::read(secrets.join("current/database_url")).unwrap(),
        original["DATABASE_URL"]
    );

    let status = fx.envsync(["status"]);
    status.expect(1);
    assert!(
        status.stdout.contains(&format!("rolled back to {first}")),
        "{}",
        status.stdout
    );
    let json = fx.envsync(["status", "--json"]);
    json.expect(1);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        parsed["entries"][0]["rolled_back_to"],
        first.as_str(),
        "{}",
        json.stdout
    );

    let before = snapshot(&fx.server);
    let refused = fx.envsync(["decrypt"]);
    refused.expect(3);
    assert!(
        refused
            .stderr
            .contains("envsync decrypt --force horadus/.env.enc"),
        "{}",
        refused.stderr
    );
    assert!(
        snapshot(&fx.server) == before,
        "a refused decrypt wrote nothing"
    );
    fx.envsync(["rollback", HORADUS_ENC]).expect(2);
    fx.envsync(["rollback", HORADUS_ENC, "--to", "20000101T000000Z"])
        .expect(2);
    assert!(
        snapshot(&fx.server) == before,
        "a failed rollback changed nothing"
    );

    // The repo wins again: a third release, the first pruned.
    let run = fx.envsync(["decrypt", "--force", HORADUS_ENC]);
    run.expect(0);
    assert_eq!(
        hook_ran(&run.stderr, &horadus_hook(&fx)),
        1,
        "{}",
        run.stderr
    );
    let third = current(&fx);
    assert!(third > second, "{third} sorts after {second}");
    assert_eq!(releases(&fx), [second.clone(), third.clone()]);
    assert_key_files(&secrets.join("releases").join(&third), &rotated, 0o640);
    let status = fx.envsync(["status"]);
    status.expect(0);
    assert!(!status.stdout.contains("rolled back"), "{}", status.stdout);

    // A third rotation, skipping the hook; rolled back by name, and the repo made to match
    // the rolled-back release with `encrypt --force`.
    let url3 = format!(
        "postgres://horadus:{}@db:5432/horadus",
        common::canary("db-password-3")
    );
    sops_set(&fx, HORADUS_ENC, "DATABASE_URL", &url3);
    let run = fx.envsync(["decrypt", "--no-hooks"]);
    run.expect(0);
    assert_eq!(
        hook_ran(&run.stderr, &horadus_hook(&fx)),
        0,
        "{}",
        run.stderr
    );
    let fourth = current(&fx);
    // Both kept; not compared by name: within one second the pruned first stamp's name is
    // free again, and the fourth release may take it (sorting before the third).
    let mut kept = vec![third.clone(), fourth.clone()];
    kept.sort();
    assert_eq!(releases(&fx), kept);
    assert_ne!(third, fourth);
    assert_eq!(
        fs::read(secrets.join("current/database_url")).unwrap(),
        url3.as_bytes()
    );
    fx.envsync(["rollback", HORADUS_ENC, "--to", &third])
        .expect(0);
    assert_eq!(current(&fx), third);
    fx.envsync(["encrypt"]).expect(3);
    fx.envsync(["encrypt", "--force", HORADUS_ENC]).expect(0);
    assert_eq!(sops_values(&fx, HORADUS_ENC), rotated);
    fx.envsync(["status"]).expect(0);
}

/// Proves: the paths in the examples' manifests are the ones the READMEs show, and both
/// `.enc` files are real sops files encrypted to the demo key only (`sops -d` with that key
/// reads them; the recipients line names its public key).
#[test]
fn examples_are_encrypted_to_the_demo_key() {
    let key = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO_KEY)).unwrap();
    assert!(
        key.starts_with("# THROWAWAY DEMO KEY"),
        "the demo key's header"
    );
    let public = key
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    for (name, enc) in [("docker-secrets", DB_ENC), ("releases", HORADUS_ENC)] {
        let fx = example(name);
        let text = fs::read_to_string(fx.repo_path(enc)).unwrap();
        let recipients: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("sops_age__list_"))
            .filter_map(|l| l.split_once("__map_recipient="))
            .map(|(_, r)| r)
            .collect();
        assert_eq!(recipients, [public], "{name}/{enc} recipients");
        let sops_yaml = fs::read_to_string(fx.repo_path(".sops.yaml")).unwrap();
        assert!(sops_yaml.contains(public), "{name}/.sops.yaml");
        assert!(!sops_values(&fx, enc).is_empty());
        let manifest = fx.repo_path("secrets.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        assert!(
            text.contains("identity = \"../demo/demo-age-key.txt\""),
            "{name}"
        );
        assert!(text.contains("root = \"server\""), "{name}");
    }
}
