//! The pre-commit framework, for real (PyPI's `pre-commit` 4.7.0, from scripts/setup): the
//! project's own `.pre-commit-hooks.yaml`, committed in a local hook repo that pre-commit
//! clones by path (offline), installed in the team's eleven-file repo. A commit that stages a
//! plaintext target is refused with the hook naming the file; a commit of a properly
//! re-encrypted `.enc` goes through, and so does the removal of a plaintext committed past
//! the hook. pre-commit's cache is a temp folder, HOME is empty, and
//! the hook finds the envsync under test on PATH.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{self, git, Fixture};
use crate::team::{enc, team_fixture, value_of, with_key, Server};

/// The environment every pre-commit and git step gets: the harness's clean one, PATH led by
/// the folder of the envsync under test, pre-commit's cache in the fixture.
fn framework_env<'c>(cmd: &'c mut Command, fx: &Fixture) -> &'c mut Command {
    let bin_dir = common::envsync_bin().parent().unwrap().to_path_buf();
    let mut paths = vec![bin_dir];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    let path: OsString = std::env::join_paths(paths).unwrap();
    common::clean_env(cmd, fx)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", fx.dir.path().join("pre-commit-home"))
        .env_remove("XDG_CACHE_HOME")
        .env_remove("PRE_COMMIT_ALLOW_NO_CONFIG")
        .env_remove("SKIP")
}

/// Runs `program args` in `dir` with [`framework_env`]; returns its output.
fn run_in(fx: &Fixture, dir: &Path, program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    framework_env(&mut cmd, fx).current_dir(dir);
    cmd.output().unwrap()
}

#[track_caller]
fn succeeded(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// A git repo in the fixture's temp folder holding a copy of the project's
/// `.pre-commit-hooks.yaml`, committed; returns its path and the commit's sha.
fn hook_repo(fx: &Fixture) -> (PathBuf, String) {
    let dir = fx.dir.path().join("hooks");
    fs::create_dir_all(&dir).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml");
    fs::copy(shipped, dir.join(".pre-commit-hooks.yaml")).unwrap();
    let git_bin = Path::new("git");
    let identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"];
    for args in [
        vec!["init", "-q"],
        vec!["add", ".pre-commit-hooks.yaml"],
        [&identity[..], &["commit", "-qm", "hooks"]].concat(),
    ] {
        succeeded(&run_in(fx, &dir, git_bin, &args), "git in the hook repo");
    }
    let sha = succeeded(
        &run_in(fx, &dir, git_bin, &["rev-parse", "HEAD"]),
        "git rev-parse",
    );
    (dir, sha.trim().to_string())
}

/// `git commit -m <message>` in the repo with a committer identity and [`framework_env`].
fn commit(fx: &Fixture, message: &str) -> Output {
    run_in(
        fx,
        &fx.repo,
        Path::new("git"),
        &[
            "-c",
            "user.name=envsync-test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "-m",
            message,
        ],
    )
}

/// `pre-commit install` of the envsync-check hook: a commit that stages a plaintext target
/// fails with the hook's output naming it; a commit of an `.enc` re-encrypted by `envsync
/// encrypt` after a server edit passes the hook and is made; so is the `git rm --cached` of
/// a plaintext that was committed with `--no-verify`; and `pre-commit run --all-files` with
/// envsync-check-all fails on a plaintext tracked in an earlier commit.
#[test]
fn the_hook_refuses_plaintext_and_passes_an_encrypted_change() {
    let pre_commit = common::tool("pre-commit");
    let (fx, files) = team_fixture(Server::InRepo);
    let version = succeeded(
        &run_in(&fx, &fx.repo, &pre_commit, &["--version"]),
        "pre-commit --version",
    );
    assert_eq!(version.trim(), "pre-commit 4.7.0");

    let (hooks, sha) = hook_repo(&fx);
    fs::write(
        fx.repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {sha}\n    hooks: [{{id: envsync-check}}]\n",
            hooks.display()
        ),
    )
    .unwrap();
    git(&fx, &["add", ".pre-commit-config.yaml"]);
    git(&fx, &["commit", "-qm", "pre-commit config"]);
    succeeded(
        &run_in(&fx, &fx.repo, &pre_commit, &["install"]),
        "pre-commit install",
    );
    assert!(fx.repo.join(".git/hooks/pre-commit").is_file());
    // The server root is the work tree: decrypt puts every plaintext next to its `.enc`.
    let key = with_key();
    let keyed = [("SOPS_AGE_KEY_FILE", key.as_str())];
    fx.envsync_with(["decrypt"], &keyed).expect(0);
    assert!(common::names_in(&fx.home).is_empty(), "HOME is not empty");
    let head = git(&fx, &["rev-parse", "HEAD"]);

    // A staged plaintext: refused, the hook names it, nothing committed.
    let leaked = "envs/aletheia/.env.prod";
    assert!(files.iter().any(|f| f.path == leaked));
    git(&fx, &["add", "-f", leaked]);
    let out = commit(&fx, "leak");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "the commit went through:\n{text}");
    assert!(
        text.contains(&format!(
            "{leaked}: is a plaintext secret staged for commit"
        )),
        "the hook's output does not name {leaked}:\n{text}"
    );
    assert!(text.contains("envsync-check"), "{text}");
    common::assert_no_leak(&text, "the refused commit's output");
    assert_eq!(git(&fx, &["rev-parse", "HEAD"]), head, "HEAD moved");
    git(&fx, &["rm", "-q", "--cached", leaked]);

    // A server edit, encrypted back with the key, staged alone: the hook passes.
    let edited = "envs/aletheia/.env.dev";
    let current = fs::read_to_string(fx.server_path(edited)).unwrap();
    let old = value_of(&current, "SECRET_KEY").to_string();
    let updated = current.replace(&old, &common::canary("secret-rotated"));
    fx.write_server(edited, updated.as_bytes());
    fx.envsync_with(["encrypt"], &keyed).expect(0);
    let status = git(&fx, &["status", "--porcelain"]);
    assert_eq!(
        status,
        format!(" M {}\n", enc(edited)),
        "only the .enc changed"
    );
    git(&fx, &["add", &enc(edited)]);
    let out = commit(&fx, "rotate SECRET_KEY");
    let text = succeeded(&out, "the commit of an encrypted change");
    assert!(
        text.lines()
            .any(|l| l.starts_with("envsync check") && l.ends_with("Passed")),
        "the hook did not run and pass:\n{text}"
    );
    common::assert_no_leak(&text, "the accepted commit's output");
    assert_eq!(
        git(&fx, &["show", "--name-only", "--format=", "HEAD"]),
        format!("{}\n", enc(edited))
    );
    assert_eq!(
        common::sops_decrypt(&fx.repo_path(&enc(edited)), "dotenv", &common::key_file(2)),
        updated.as_bytes()
    );

    // A plaintext committed past the hook (`--no-verify`): the commit of its removal, the
    // fix check gives (`git rm --cached`), passes the hook.
    git(&fx, &["add", "-f", leaked]);
    git(
        &fx,
        &["commit", "-q", "--no-verify", "-m", "leak, past the hook"],
    );
    git(&fx, &["rm", "-q", "--cached", leaked]);
    let out = commit(&fx, "untrack the plaintext");
    let text = succeeded(&out, "the commit of the plaintext's removal");
    assert!(
        text.lines()
            .any(|l| l.starts_with("envsync check") && l.ends_with("Passed")),
        "the hook did not run and pass:\n{text}"
    );
    assert_eq!(git(&fx, &["ls-files", "--", leaked]), "", "still tracked");

    // `pre-commit run --all-files` (CI) with envsync-check-all: a plaintext tracked in an
    // earlier commit fails the run, although nothing is staged.
    fs::write(
        fx.repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: {}\n    rev: {sha}\n    hooks: [{{id: envsync-check}}, {{id: envsync-check-all}}]\n",
            hooks.display()
        ),
    )
    .unwrap();
    git(&fx, &["add", "-f", leaked, ".pre-commit-config.yaml"]);
    git(&fx, &["commit", "-q", "--no-verify", "-m", "leak again"]);
    let out = run_in(&fx, &fx.repo, &pre_commit, &["run", "--all-files"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "--all-files passed:\n{text}");
    assert!(
        text.contains(&format!("{leaked}: is a plaintext secret tracked by git")),
        "{text}"
    );
    common::assert_no_leak(&text, "pre-commit run --all-files");

    // pre-commit kept its clone in the fixture, nothing in HOME.
    assert!(fx.dir.path().join("pre-commit-home").is_dir());
    assert!(common::names_in(&fx.home).is_empty(), "HOME was written");
}
