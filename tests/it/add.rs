//! `envsync add`: a server file registered in one step (manifest entry with its comments
//! kept, `.gitignore`, first encrypt, sync record), read back by real sops, refused with
//! nothing written when the path is managed or missing, and shown whole by `--dry-run`.
#![allow(clippy::unwrap_used)]

use std::fs;

use crate::common::{self, git, Fixture};

/// A manifest written by hand, with comments the edit must keep.
const COMMENTED: &str = "# Team secrets: see README.\nversion = 1 # the only version\n\n\
    [server]\nroot = \"{root}\"\nidentity = \"{key}\"\n\n\
    [defaults]\nmode = \"0600\" # owner only\n\n\
    # The shared services.\n[[file]]\nrepo = \"shared/.env.enc\"\nserver = \"shared/.env\"\n\n\
    # keep this last comment\n";

/// A fixture whose manifest is [`COMMENTED`] with the server root in the fixture's server
/// folder, or in `server/` inside the repo; one entry encrypted, everything committed.
fn commented_repo(root_in_repo: bool) -> Fixture {
    let fx = Fixture::new();
    let root = if root_in_repo {
        fx.repo.join("server")
    } else {
        fx.server.clone()
    };
    let text = COMMENTED
        .replace("{root}", &root.display().to_string())
        .replace("{key}", &common::key_file(1).display().to_string());
    fs::write(fx.repo.join("secrets.toml"), text).unwrap();
    fx.sops_encrypt(
        "shared/.env.enc",
        format!("POSTGRES_PASSWORD={}\n", common::canary("pg")).as_bytes(),
        "dotenv",
    );
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "init"]);
    fx
}

/// Proves the whole `add` flow: the entry is appended after the existing text, which is kept
/// byte for byte; the `.enc` is one real sops reads back to the server file; the record
/// makes the new entry in sync; a round trip through decrypt gives the same bytes; and
/// `check` passes once the result is committed.
#[test]
fn add_registers_encrypts_and_round_trips() {
    let fx = commented_repo(false);
    let before = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    let plain = format!(
        "# the new app\nAPI_TOKEN={}\nDB_URL=postgres://app:{}@db/app\n",
        common::canary("api-token"),
        common::canary("db-url"),
    );
    fx.write_server("newapp/.env", plain.as_bytes());

    let run = fx.envsync(["add", "newapp/.env", "--tag", "newapp"]);
    run.expect(0);
    assert!(
        run.stdout
            .contains("add newapp/.env.enc ← newapp/.env (dotenv)"),
        "{}",
        run.stdout
    );
    let after = fs::read_to_string(fx.repo.join("secrets.toml")).unwrap();
    assert!(
        after.starts_with(&before),
        "the old text was not kept:\n{after}"
    );
    assert_eq!(
        &after[before.len()..],
        "\n[[file]]\nrepo = \"newapp/.env.enc\"\nserver = \"newapp/.env\"\ntags = [\"newapp\"]\n"
    );
    assert_eq!(
        fx.sops_decrypt("newapp/.env.enc", "dotenv"),
        plain.as_bytes(),
        "sops -d of the added .enc differs from the server file"
    );
    // The server root is outside the repo: .gitignore is not touched.
    assert!(!fx.repo.join(".gitignore").exists());
    // The server file was made 0644 by the operator's umask: add says how to fix it.
    assert!(
        run.stderr.contains(
            "newapp/.env is mode 0644, its entry says 0600: run `envsync decrypt newapp/.env.enc`"
        ),
        "{}",
        run.stderr
    );
    fx.envsync(["decrypt", "newapp/.env"]).expect(0);
    assert_eq!(common::mode_of(&fx.server_path("newapp/.env")), 0o600);
    let status = fx.envsync(["status", "newapp/.env"]);
    status.expect(0);
    assert!(status.stdout.starts_with("in-sync"), "{}", status.stdout);

    // Round trip: a fresh server gets the same bytes back.
    fs::remove_file(fx.server_path("newapp/.env")).unwrap();
    fx.envsync(["decrypt", "--force", "newapp/.env"]).expect(0);
    assert_eq!(
        fs::read(fx.server_path("newapp/.env")).unwrap(),
        plain.as_bytes()
    );
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "add newapp"]);
    fx.envsync(["check"]).expect(0);
}

/// A plaintext inside the repo's work tree is added to `.gitignore` (and `check` agrees);
/// `--dry-run` prints the entry, the `.gitignore` line and the encrypt, and writes nothing;
/// `--json` names the same.
#[test]
fn a_plaintext_inside_the_repo_is_ignored_and_dry_run_writes_nothing() {
    let fx = commented_repo(true);
    fs::write(
        fx.repo.join(".gitignore"),
        "/server/shared/\n/server/.envsync/\n",
    )
    .unwrap();
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "ignore"]);
    let target = fx.repo.join("server/app/cfg.ini");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(&target, format!("password = {}\n", common::canary("ini"))).unwrap();

    let before = common::snapshot(&fx.repo);
    let run = fx.envsync(["add", "-n", "app/cfg.ini"]);
    run.expect(0);
    assert_eq!(common::snapshot(&fx.repo), before, "--dry-run wrote");
    for want in [
        "would add app/cfg.ini.enc ← app/cfg.ini (ini)",
        "  repo = \"app/cfg.ini.enc\"",
        "would add to .gitignore: /server/app/cfg.ini",
    ] {
        assert!(run.stdout.contains(want), "no `{want}` in:\n{}", run.stdout);
    }

    let run = fx.envsync(["add", "--json", "app/cfg.ini"]);
    run.expect(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["command"], "add");
    assert_eq!(doc["entry"]["repo"], "app/cfg.ini.enc");
    assert_eq!(doc["entry"]["format"], "ini");
    assert_eq!(doc["gitignore"][0], "/server/app/cfg.ini");
    assert_eq!(
        fs::read_to_string(fx.repo.join(".gitignore")).unwrap(),
        "/server/shared/\n/server/.envsync/\n/server/app/cfg.ini\n"
    );
    assert_eq!(
        git(&fx, &["check-ignore", "server/app/cfg.ini"]).trim(),
        "server/app/cfg.ini"
    );
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "add cfg"]);
    fx.envsync(["check"]).expect(0);
}

/// A server path already managed, a missing file, a path outside the root and a taken repo
/// path are each one clear exit 2, and no byte of the repo or server changes.
#[test]
fn refusals_write_nothing() {
    let fx = commented_repo(false);
    fx.envsync(["decrypt"]).expect(0);
    fx.write_server("other/.env", b"A=1\n");
    fs::write(fx.repo.join("taken.enc"), "not mine\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["add", "shared/.env"],
            "already managed by the entry on line",
        ),
        (
            &["add", "nope/.env"],
            "does not exist; create the server file first",
        ),
        (&["add", "/etc/hostname"], "is not inside server.root"),
        (
            &["add", "other/.env", "--repo", "taken.enc"],
            "taken.enc already exists in the repo",
        ),
        (
            &["add", "other/.env", "--repo", "shared/.env.enc"],
            "already the entry on line",
        ),
    ];
    for (args, want) in cases {
        let repo = common::snapshot(&fx.repo);
        let server = common::snapshot(&fx.server);
        let run = fx.envsync(args);
        run.expect(2);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("nothing was written"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(
            common::snapshot(&fx.repo),
            repo,
            "{args:?} wrote in the repo"
        );
        assert_eq!(
            common::snapshot(&fx.server),
            server,
            "{args:?} wrote on the server"
        );
    }
}

/// An encrypt that cannot be done (no recipients anywhere) stops `add` before anything is
/// written: the manifest is not changed either.
#[test]
fn a_failed_first_encrypt_leaves_the_manifest_alone() {
    let fx = commented_repo(false);
    fs::remove_file(fx.repo.join(".sops.yaml")).unwrap();
    fx.write_server("newapp/.env", b"A=1\n");
    let before = common::snapshot(&fx.repo);
    let run = fx.envsync(["add", "newapp/.env"]);
    run.expect(2);
    assert!(run.stderr.contains("recipients"), "{}", run.stderr);
    assert_eq!(common::snapshot(&fx.repo), before);
}

/// The manifest in a subfolder of the work tree (`infra/`, `root = ".."`): the plaintext is
/// ignored in the work tree's top `.gitignore` with a line git matches, and so is the state
/// folder; `check` agrees. A plaintext git already tracks is refused, nothing written.
#[test]
fn a_manifest_below_the_work_tree_top_ignores_at_the_top() {
    let fx = Fixture::new();
    let infra = fx.repo.join("infra");
    fs::create_dir_all(&infra).unwrap();
    fs::rename(fx.repo.join(".sops.yaml"), infra.join(".sops.yaml")).unwrap();
    fs::write(
        infra.join("secrets.toml"),
        "version = 1\n\n[server]\nroot = \"..\"\n",
    )
    .unwrap();
    fx.write_server("unused", b"");
    let target = fx.repo.join("app/.env");
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::write(
        &target,
        format!("TOKEN={}\n", common::canary("top")).as_bytes(),
    )
    .unwrap();
    let mut add = common::envsync_command(&fx, &["add", "app/.env"]);
    let out = add.current_dir(&infra).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::read_to_string(fx.repo.join(".gitignore")).unwrap(),
        "/app/.env\n/.envsync/\n"
    );
    assert!(!infra.join(".gitignore").exists());
    git(&fx, &["add", "-A"]);
    let status = git(&fx, &["status", "--porcelain"]);
    assert!(
        !status.contains("app/.env\n") && !status.contains(".envsync"),
        "{status}"
    );
    let mut check = common::envsync_command(&fx, &["check"]);
    let out = check.current_dir(&infra).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A plaintext committed in clear is not quietly ignored: refused, nothing written.
    let leaked = fx.repo.join("api/.env");
    fs::create_dir_all(leaked.parent().unwrap()).unwrap();
    fs::write(&leaked, "KEY=1\n").unwrap();
    git(&fx, &["add", "-f", "api/.env"]);
    let before = common::snapshot(&fx.repo);
    let mut add = common::envsync_command(&fx, &["add", "api/.env"]);
    let out = add.current_dir(&infra).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("git tracks it") && stderr.contains("git rm --cached"),
        "{stderr}"
    );
    assert_eq!(common::snapshot(&fx.repo), before);
}

/// A manifest reached through a symlink is edited where it really is; a name that says
/// YAML asks for `--format binary`; `--repo` may not name the manifest or `.gitignore`.
#[test]
fn symlinked_manifest_unsupported_format_and_reserved_repo_paths() {
    let fx = commented_repo(false);
    let real = fx.repo.join("prod.toml");
    fs::rename(fx.repo.join("secrets.toml"), &real).unwrap();
    fs::write(fx.repo.join("secrets.toml.staging"), "# another manifest\n").unwrap();
    let link_dir = fx.home.join("elsewhere");
    fs::create_dir_all(&link_dir).unwrap();
    std::os::unix::fs::symlink(&real, link_dir.join("secrets.toml")).unwrap();
    fx.write_server("app/.env", b"A=1\n");
    let link = link_dir.join("secrets.toml");
    let run = fx.envsync(["--manifest", link.to_str().unwrap(), "add", "app/.env"]);
    run.expect(0);
    assert!(fs::read_to_string(&real)
        .unwrap()
        .contains("server = \"app/.env\""));
    assert!(link.is_symlink(), "the link was replaced");
    assert_eq!(
        fs::read_to_string(fx.repo.join("secrets.toml.staging")).unwrap(),
        "# another manifest\n"
    );

    fx.write_server("app/values.yaml", b"a: 1\n");
    let args = [
        "--manifest",
        link.to_str().unwrap(),
        "add",
        "app/values.yaml",
    ];
    // A YAML file is added as SOPS YAML, which sops reads back.
    fx.envsync(args).expect(0);
    let enc = fs::read_dir(fx.repo.join("app"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("values.yaml"))
        .unwrap();
    assert_eq!(
        common::sops_decrypt(&enc, "yaml", &common::key_file(1)),
        b"a: 1\n"
    );
    fx.write_server("app/whole.yaml", b"b: 2\n");
    fx.envsync([
        "--manifest",
        link.to_str().unwrap(),
        "add",
        "--format",
        "binary",
        "app/whole.yaml",
    ])
    .expect(0);

    fx.write_server("app/other", b"x\n");
    for reserved in [".gitignore", "prod.toml"] {
        let run = fx.envsync([
            "--manifest",
            link.to_str().unwrap(),
            "add",
            "app/other",
            "--repo",
            reserved,
        ]);
        run.expect(2);
        assert!(
            run.stderr.contains("is the manifest, .gitignore"),
            "{}",
            run.stderr
        );
    }
}
