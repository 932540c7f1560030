//! All or nothing at every batch size: a batch of three entries (far below the size at which
//! a batch is flushed with `syncfs`) whose second rename fails leaves every target as it was,
//! with no temp behind, and says so.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{self, Fixture};

const NAMES: [&str; 3] = ["one", "two", "three"];

fn old(name: &str) -> String {
    format!("OLD_{}=old value of {name}\n", name.to_uppercase())
}

fn new(name: &str) -> String {
    format!(
        "NEW_{}=new value of {name}\nSHARED=x\n",
        name.to_uppercase()
    )
}

/// Three dotenv entries: the repo holds NEW (by real sops), the server OLD (mode 0640).
fn three_entries() -> Fixture {
    let fx = Fixture::new();
    let mut entries = Vec::new();
    for name in NAMES {
        let repo = format!("envs/{name}/.env.enc");
        let server = format!("{name}/.env");
        fx.sops_encrypt(&repo, new(name).as_bytes(), "dotenv");
        fx.write_server(&server, old(name).as_bytes());
        set_mode(&fx.server_path(&server), 0o640);
        entries.push(format!(
            "{}mode = \"0640\"\n",
            Fixture::entry(&repo, &server)
        ));
    }
    fx.manifest(&entries);
    fx
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn server(fx: &Fixture, name: &str) -> String {
    String::from_utf8(fs::read(fx.server_path(&format!("{name}/.env"))).expect("read"))
        .expect("utf-8")
}

/// Every file under the server root (temps included), with its content and mode.
fn tree(fx: &Fixture) -> Vec<(std::path::PathBuf, Vec<u8>, u32)> {
    common::snapshot(&fx.server)
}

fn assert_all_old(fx: &Fixture, before: &[(std::path::PathBuf, Vec<u8>, u32)], context: &str) {
    for name in NAMES {
        assert_eq!(
            server(fx, name),
            old(name),
            "{context}: {name} was replaced"
        );
    }
    assert_eq!(
        tree(fx),
        before,
        "{context}: the server tree changed (a target, a mode, a temp or a record)"
    );
}

fn chattr(flag: &str, path: &Path) {
    let status = Command::new(common::tool("chattr"))
        .arg(flag)
        .arg(path)
        .status()
        .expect("run chattr");
    assert!(status.success(), "chattr {flag} {}", path.display());
}

/// The second target is immutable (`chattr +i`): its rename fails after the first target
/// was replaced. The first is put back, the third never touched; exit 2, nothing written.
#[test]
fn second_rename_refused_by_an_immutable_target_leaves_all_three_old() {
    let fx = three_entries();
    let before = tree(&fx);
    let second = fx.server_path("two/.env");
    chattr("+i", &second);
    let run = fx.envsync(["decrypt", "--force"]);
    chattr("-i", &second);
    run.expect(2);
    assert!(
        run.stderr.contains("two/.env") && run.stderr.contains("nothing was written"),
        "the error names the file and says nothing was written:\n{}",
        run.stderr
    );
    assert_all_old(&fx, &before, "immutable second target");
    // With the obstacle gone the same command writes all three.
    fx.envsync(["decrypt", "--force"]).expect(0);
    for name in NAMES {
        assert_eq!(server(&fx, name), new(name));
    }
    fx.envsync(["status"]).expect(0);
}

/// The second rename fails with EIO (injected by strace): the same, with a fault that is
/// not about the target itself.
#[test]
fn second_rename_failing_with_eio_leaves_all_three_old() {
    let fx = three_entries();
    let before = tree(&fx);
    let out = Command::new(common::tool("strace"))
        .args(["-f", "-o", "/dev/null", "-e", "trace=renameat,renameat2"])
        .args(["-e", "inject=renameat,renameat2:error=EIO:when=2"])
        .arg(common::envsync_bin())
        .args(["decrypt", "--force"])
        .current_dir(&fx.repo)
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env("HOME", &fx.home)
        .env("NO_COLOR", "1")
        .output()
        .expect("run strace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    common::assert_no_leak(&stderr, "stderr");
    assert_all_old(&fx, &before, "EIO on the second rename");
}
