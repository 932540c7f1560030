//! Command-line basics: manifest discovery, selection, exit codes.
#![allow(clippy::unwrap_used)]

use crate::common;

use crate::common::Fixture;

#[test]
fn decrypt_then_diff_is_clean() {
    let fx = Fixture::new();
    let value = common::canary("cli");
    fx.sops_encrypt(
        "app/.env.enc",
        format!("A=1\nTOKEN={value}\n").as_bytes(),
        "dotenv",
    );
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        std::fs::read(fx.server_path("app/.env")).unwrap(),
        fx.sops_decrypt("app/.env.enc", "dotenv")
    );
    assert_eq!(common::mode_of(&fx.server_path("app/.env")), 0o600);
    fx.envsync(["diff"]).expect(0);
}

#[test]
fn unknown_selection_is_an_error() {
    let fx = Fixture::new();
    fx.manifest(&[Fixture::entry("app/.env.enc", "app/.env")]);
    let run = fx.envsync(["diff", "nope/*.enc"]);
    run.expect(2);
    assert!(run.stderr.contains("matches no entry"), "{}", run.stderr);
}

#[test]
fn no_manifest_says_where_it_looked() {
    let fx = Fixture::new();
    let run = fx.envsync(["diff"]);
    run.expect(2);
    assert!(run.stderr.contains("no secrets.toml"), "{}", run.stderr);
}
