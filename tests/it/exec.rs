//! `envsync exec FILE.. [--clear-env] -- CMD`: CMD runs with the decrypted dotenv entries in
//! its environment, byte-exact, later FILEs winning; no shell, no plaintext on disk, no
//! `SOPS_AGE_KEY`; CMD's exit status is envsync's, and a signal to envsync reaches CMD; any
//! entry that cannot be opened is exit 2 and CMD never starts.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, envsync_command, Fixture, AGE3};
use crate::writer::{parse_strace, strace};

/// CMD's environment, as `env -0` printed it into `out`.
fn env_file(out: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let bytes = fs::read(out).unwrap();
    bytes
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|var| {
            let eq = var.iter().position(|&b| b == b'=').unwrap();
            (var[..eq].to_vec(), var[eq + 1..].to_vec())
        })
        .collect()
}

/// Runs `envsync <args> -- env -0` (plus `extra` env vars), CMD's stdout into a file; returns
/// the exit code, envsync's stderr (checked for leaks) and CMD's environment.
fn exec_env(
    fx: &Fixture,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (i32, BTreeMap<Vec<u8>, Vec<u8>>) {
    let out = fx.dir.path().join("env.out");
    let mut cmd = envsync_command(fx, args);
    cmd.args(["--", "env", "-0"]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let output = cmd
        .stdout(fs::File::create(&out).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    common::assert_no_leak(&stderr, "stderr of envsync exec");
    let code = output.status.code().unwrap_or(-1);
    assert_eq!(code, 0, "envsync exec {args:?}: {stderr}");
    (code, env_file(&out))
}

fn two_entries(fx: &Fixture, a: &[u8], b: &[u8]) {
    fx.sops_encrypt("a/.env.enc", a, "dotenv");
    fx.sops_encrypt("b/.env.enc", b, "dotenv");
    fx.manifest(&[
        Fixture::entry("a/.env.enc", "a/.env"),
        Fixture::entry("b/.env.enc", "b/.env"),
    ]);
}

#[test]
fn values_arrive_byte_exact_and_no_shell_runs_them() {
    let fx = Fixture::new();
    let pwned = fx.dir.path().join("pwned");
    let canary = common::canary("exec");
    // In a sops dotenv file a line feed is the two characters `\n`.
    let tail = format!(
        "line2 $(touch {}) `touch {}` a=b \"dq\" 'sq' ünï🔒 $HOME",
        pwned.display(),
        pwned.display()
    );
    let plain = format!("SECRET={canary}\\n{tail}\nOTHER=x=y\n");
    fx.sops_encrypt("app/.env.enc", plain.as_bytes(), "dotenv");
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    let (_, env) = exec_env(&fx, &["exec", "app/.env.enc"], &[]);
    let want = format!("{canary}\n{tail}");
    assert_eq!(env[b"SECRET".as_slice()], want.as_bytes());
    assert_eq!(env[b"OTHER".as_slice()], b"x=y");
    assert!(!pwned.exists(), "a value was run by a shell");
    // Nothing on disk: the server side was not written.
    assert!(!fx.server_path("app/.env").exists());
    assert!(
        !fx.server_path(".envsync").exists(),
        "exec made a state folder"
    );
    // Selected by server path too, and printenv sees the same bytes.
    let out = fx.dir.path().join("printenv.out");
    let status = envsync_command(&fx, &["exec", "app/.env", "--", "printenv", "SECRET"])
        .stdout(fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(&out).unwrap(), format!("{want}\n").as_bytes());
}

#[test]
fn later_files_win_and_clear_env_keeps_only_the_entries() {
    let fx = Fixture::new();
    two_entries(&fx, b"K=from-a\nONLY_A=1\n", b"K=from-b\n");
    let inherited = [("K", "inherited"), ("KEEP", "yes")];
    let (_, env) = exec_env(&fx, &["exec", "a/.env.enc", "b/.env.enc"], &inherited);
    assert_eq!(env[b"K".as_slice()], b"from-b");
    assert_eq!(env[b"ONLY_A".as_slice()], b"1");
    assert_eq!(env[b"KEEP".as_slice()], b"yes");
    assert!(env.contains_key(b"PATH".as_slice()));
    let (_, env) = exec_env(&fx, &["exec", "b/.env.enc", "a/.env.enc"], &inherited);
    assert_eq!(env[b"K".as_slice()], b"from-a");
    let (_, env) = exec_env(
        &fx,
        &["exec", "--clear-env", "b/.env.enc", "a/.env.enc"],
        &inherited,
    );
    let keys: Vec<&[u8]> = env.keys().map(Vec::as_slice).collect();
    assert_eq!(keys, [b"K".as_slice(), b"ONLY_A".as_slice()]);
    assert_eq!(env[b"K".as_slice()], b"from-a");
}

#[test]
fn exit_status_is_the_commands() {
    let fx = Fixture::new();
    fx.sops_encrypt("app/.env.enc", b"A=1\n", "dotenv");
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    fx.envsync(["exec", "app/.env.enc", "--", "sh", "-c", "exit 7"])
        .expect(7);
    fx.envsync(["-v", "exec", "app/.env.enc", "--", "true"])
        .expect(0);
    let run = fx.envsync(["exec", "app/.env.enc", "--", "no-such-command-envsync"]);
    run.expect(127);
    assert!(
        run.stderr.contains("no-such-command-envsync"),
        "{}",
        run.stderr
    );
    let script = fx.dir.path().join("not-executable");
    fs::write(&script, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    fx.envsync(["exec", "app/.env.enc", "--", script.to_str().unwrap()])
        .expect(126);
    // No CMD is a usage error.
    fx.envsync(["exec", "app/.env.enc"]).expect(2);
}

#[test]
fn sigterm_to_envsync_ends_the_command() {
    let fx = Fixture::new();
    fx.sops_encrypt("app/.env.enc", b"A=1\n", "dotenv");
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    let mut child = envsync_command(&fx, &["exec", "app/.env.enc", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let comm = format!("/proc/{pid}/comm");
    let start = Instant::now();
    // envsync's pid becomes sleep's: wait for the exec.
    while fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
        assert!(start.elapsed() < Duration::from_secs(30), "sleep never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "sleep outlived SIGTERM"
    );
    assert!(
        status.signal() == Some(15) || status.code() == Some(143),
        "{status:?}"
    );
    assert!(
        !Path::new(&comm).exists(),
        "the sleep process is still there"
    );
}

#[test]
fn a_bad_entry_anywhere_means_the_command_never_starts() {
    let fx = Fixture::new();
    let marker = fx.dir.path().join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    two_entries(&fx, b"A=1\n", b"B=2\nC=3\n");
    // A MAC-broken second file: two key lines swapped (each value still authenticates, the
    // MAC over the values in order does not).
    let b = fx.repo_path("b/.env.enc");
    let mut lines: Vec<String> = fs::read_to_string(&b)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let at = |p: &str| lines.iter().position(|l| l.starts_with(p)).unwrap();
    let (i, j) = (at("B="), at("C="));
    lines.swap(i, j);
    fs::write(&b, lines.join("\n") + "\n").unwrap();
    let run = fx.envsync([&["exec", "a/.env.enc", "b/.env.enc"][..], &touch[..]].concat());
    run.expect(2);
    assert!(
        run.stderr.contains("b/.env.enc") && run.stderr.contains("MAC"),
        "{}",
        run.stderr
    );
    assert!(!marker.exists(), "CMD ran after a MAC failure");
    // A second file no identity here opens (encrypted to AGE3 only).
    let enc = common::sops_encrypt_dotenv(fx.dir.path(), "B=2\n", &["--age", AGE3]);
    fs::write(&b, enc).unwrap();
    let run = fx.envsync([&["exec", "a/.env.enc", "b/.env.enc"][..], &touch[..]].concat());
    run.expect(2);
    assert!(run.stderr.contains("b/.env.enc"), "{}", run.stderr);
    assert!(
        !marker.exists(),
        "CMD ran without a key for the second file"
    );
    // A missing .enc, a binary entry: named, exit 2.
    fs::remove_file(&b).unwrap();
    let run = fx.envsync([&["exec", "a/.env.enc", "b/.env.enc"][..], &touch[..]].concat());
    run.expect(2);
    assert!(run.stderr.contains("b/.env.enc"), "{}", run.stderr);
    fx.sops_encrypt("bin.enc", b"blob", "binary");
    fx.manifest(&[
        Fixture::entry("a/.env.enc", "a/.env"),
        Fixture::entry("bin.enc", "bin"),
    ]);
    let run = fx.envsync([&["exec", "a/.env.enc", "bin.enc"][..], &touch[..]].concat());
    run.expect(2);
    assert!(
        run.stderr.contains("bin.enc") && run.stderr.contains("binary"),
        "{}",
        run.stderr
    );
    assert!(!marker.exists());
}

#[test]
fn a_key_that_cannot_be_a_variable_is_named_and_nothing_runs() {
    let fx = Fixture::new();
    let marker = fx.dir.path().join("ran");
    let canary = common::canary("nul");
    let table = [
        (format!("GOOD=1\nBAD=x{canary}\0y\n"), "`BAD`", "NUL byte"),
        ("GOOD=1\nB\0AD=1\n".to_string(), "`B\\0AD`", "NUL byte"),
    ];
    for (plain, key, reason) in table {
        fx.sops_encrypt("app/.env.enc", plain.as_bytes(), "dotenv");
        fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
        let run = fx.envsync([
            "exec",
            "app/.env.enc",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ]);
        run.expect(2);
        assert!(
            run.stderr.contains("app/.env.enc")
                && run.stderr.contains(key)
                && run.stderr.contains(reason),
            "{}",
            run.stderr
        );
        assert!(!marker.exists(), "CMD ran with a bad key");
    }
}

#[test]
fn a_files_entry_is_a_dotenv_entry() {
    let fx = Fixture::new();
    fx.sops_encrypt("app/secrets.enc", b"DB_PASSWORD=s3cret-files\n", "dotenv");
    fx.manifest(&[format!(
        "{}as = \"files\"\n",
        Fixture::entry("app/secrets.enc", "app/secrets")
    )]);
    let (_, env) = exec_env(&fx, &["exec", "app/secrets"], &[]);
    assert_eq!(env[b"DB_PASSWORD".as_slice()], b"s3cret-files");
    assert!(!fx.server_path("app/secrets").exists());
}

#[test]
fn strace_shows_no_write_before_the_exec_and_no_key_in_the_child() {
    let fx = Fixture::new();
    let canary = common::canary("strace");
    fx.sops_encrypt(
        "app/.env.enc",
        format!("TOKEN={canary}\n").as_bytes(),
        "dotenv",
    );
    // No server.identity: SOPS_AGE_KEY is the only identity source.
    let manifest = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n\n[[file]]\n{}",
        fx.server.display(),
        Fixture::entry("app/.env.enc", "app/.env")
    );
    fs::write(fx.repo_path("secrets.toml"), manifest).unwrap();
    let key = fs::read_to_string(common::key_file(1)).unwrap();
    let key = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let log = fx.dir.path().join("exec.strace");
    let out = fx.dir.path().join("env.out");
    let mut cmd = Command::new(strace());
    cmd.args(["-f", "-s", "256", "-o"]).arg(&log);
    cmd.args([
        "-e",
        "trace=execve,openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,write",
    ]);
    cmd.arg(common::envsync_bin());
    cmd.args(["exec", "app/.env.enc", "--", "env", "-0"]);
    common::clean_env(&mut cmd, &fx).env("SOPS_AGE_KEY", key);
    let output = cmd
        .stdout(fs::File::create(&out).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let env = env_file(&out);
    assert_eq!(env[b"TOKEN".as_slice()], canary.as_bytes());
    assert!(
        !env.contains_key(b"SOPS_AGE_KEY".as_slice()),
        "the key reached CMD"
    );
    let calls = parse_strace(&fs::read_to_string(&log).unwrap());
    let exec = calls
        .iter()
        .rposition(|c| c.name == "execve" && c.arg(0).ends_with("/env\"") && c.ret.starts_with('0'))
        .expect("the execve of env");
    for call in &calls[..exec] {
        let wrote = match call.name.as_str() {
            "openat" | "open" => {
                let flags = call.args.iter().find(|a| a.contains("O_")).unwrap();
                ["O_WRONLY", "O_RDWR", "O_CREAT"]
                    .iter()
                    .any(|f| flags.contains(f))
            }
            "execve" => false,
            // write(2) to stdout or stderr only.
            "write" => !matches!(call.arg(0), "1" | "2"),
            _ => true,
        };
        assert!(!wrote, "envsync touched disk before the exec: {call:?}");
    }
}
