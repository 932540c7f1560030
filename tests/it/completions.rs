//! `envsync completions SHELL` and `envsync man`: scripts for the five shells (bash's passes
//! `bash -n`), the dynamic completion they register offering the manifest's entries and tags,
//! and a man page that `man -l` renders. Neither needs a manifest.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::process::Command;

use crate::common::{envsync_bin, Fixture};

#[test]
fn every_shell_gets_a_script_and_bash_parses_it() {
    let empty = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(envsync_bin())
            .args(["completions", shell])
            .current_dir(empty.path())
            .env_remove("ENVSYNC_MANIFEST")
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("envsync"), "{shell}:\n{script}");
        // The script asks envsync itself (from PATH) for candidates, never a build path.
        assert!(!script.contains("target/"), "{shell}:\n{script}");
        if shell == "bash" {
            let path = empty.path().join("envsync.bash");
            std::fs::write(&path, &script).unwrap();
            let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(check.status.success(), "bash -n: {check:?}");
            assert!(script.contains("complete -o nospace"), "{script}");
        }
    }
}

/// What bash's registered function asks envsync for, with the word being completed at
/// `index` of `words`.
fn complete(fx: &Fixture, words: &[&str], index: usize) -> Vec<String> {
    let out = Command::new(envsync_bin())
        .arg("--")
        .args(words)
        .current_dir(&fx.repo)
        .env_remove("ENVSYNC_MANIFEST")
        .env("COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", index.to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn completion_offers_the_manifests_entries_and_tags() {
    let fx = Fixture::new();
    fx.manifest(&[
        format!(
            "{}tags = [\"web\"]\n",
            Fixture::entry("web/app.env.enc", "app/.env")
        ),
        format!(
            "{}tags = [\"db\", \"nightly\"]\n",
            Fixture::entry("db/pg.env.enc", "postgres/.env")
        ),
    ]);
    let files = complete(&fx, &["envsync", "decrypt", ""], 2);
    for want in [
        "web/app.env.enc",
        "app/.env",
        "db/pg.env.enc",
        "postgres/.env",
    ] {
        assert!(files.contains(&want.to_string()), "{files:?}");
    }
    let prefixed = complete(&fx, &["envsync", "diff", "we"], 2);
    assert_eq!(prefixed, ["web/app.env.enc"]);
    let tags = complete(&fx, &["envsync", "status", "--tag", ""], 3);
    assert_eq!(tags, ["db", "nightly", "web"]);
    let commands = complete(&fx, &["envsync", "re"], 1);
    assert_eq!(commands, ["rekey"]);
    // A broken manifest offers no entry (the shell's own file names at most), quietly.
    std::fs::write(fx.repo.join("secrets.toml"), "version = [").unwrap();
    let files = complete(&fx, &["envsync", "decrypt", ""], 2);
    assert!(!files.iter().any(|f| f.ends_with(".env.enc")), "{files:?}");
}

#[test]
fn man_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(envsync_bin())
        .arg("man")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = dir.path().join("envsync.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(rendered.status.success(), "man -l: {rendered:?}");
    let text = String::from_utf8_lossy(&rendered.stdout);
    for want in ["NAME", "SYNOPSIS", "decrypt", "encrypt", "completions"] {
        assert!(
            text.contains(want),
            "no {want} in the rendered page:\n{text}"
        );
    }
}
