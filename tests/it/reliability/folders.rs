//! The folders envsync creates and the folders it writes into, on the real binary: a missing
//! root and missing entry folders get `dir_mode` (from the entry or `[defaults]`), the owner
//! and the entry's group, while existing folders stay as they are; an inherited default ACL is
//! stripped from every file and folder envsync writes, so `nobody` cannot read through it; and
//! a folder at or above a target that someone else can write to (hostile) is refused with exit
//! 2 before anything is written or created, while sticky folders and folders of the target's
//! owner are accepted.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{
    assert_no_acl, cat_as, getfacl, open_to_others, set_mode, setfacl, sha256, tree, write_manifest,
};
use crate::common::{self, Fixture};
use crate::writer::{mode, system_id, temps_under};

// ---------------------------------------------------------------------------------------------
// Folders envsync creates
// ---------------------------------------------------------------------------------------------

/// (mode, uid, gid) of a folder.
fn folder_owner(path: &Path) -> (u32, u32, u32) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    assert!(meta.is_dir(), "{} is not a folder", path.display());
    (mode(&meta), meta.uid(), meta.gid())
}

/// A fresh server (no root yet) and two entries in new nested folders, both 0640 group
/// daemon: the root is made 0755 (the default `dir_mode`) and the state folder 0700; the first
/// entry's folders are 0755 root:daemon, the second's (`dir_mode = "0750"`) 0750 root:daemon.
/// daemon reads both files, nobody neither.
#[test]
fn folders_made_on_a_fresh_server_get_dir_mode_owner_and_group() {
    let fx = Fixture::new();
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    let daemon = system_id("group", "daemon");
    open_to_others(&fx);
    // The server root and the folder above it do not exist yet.
    fs::remove_dir(&fx.server).expect("remove the server root");
    let root = fx.server.join("docker");
    write_manifest(
        &fx.repo,
        &root,
        "",
        &[
            format!(
                "{}mode = \"0640\"\ngroup = \"daemon\"\n",
                Fixture::entry("enc/api.env.enc", "apps/api/envs/.env")
            ),
            format!(
                "{}mode = \"0640\"\ngroup = \"daemon\"\ndir_mode = \"0750\"\n",
                Fixture::entry("enc/db.env.enc", "private/db/.env")
            ),
        ],
    );
    let api = common::secret("api-token-9f8e7d6c5b4a");
    let db = common::secret("db-password-0a1b2c3d4e5f");
    let plains = [
        (
            "enc/api.env.enc",
            "apps/api/envs/.env",
            format!("API_TOKEN={api}\n"),
        ),
        (
            "enc/db.env.enc",
            "private/db/.env",
            format!("DB_PASSWORD={db}\n"),
        ),
    ];
    for (repo, _, plain) in &plains {
        fx.sops_encrypt(repo, plain.as_bytes(), "dotenv");
    }
    fx.envsync(["decrypt"]).expect(0);

    // The missing root and the folder above it: the default dir_mode, the running user.
    for made in [&fx.server, &root] {
        assert_eq!(
            folder_owner(made),
            (0o755, me, my_gid),
            "{}: a missing server root is made 0755, owned by the running user",
            made.display()
        );
        assert_no_acl(made, "the server root");
    }
    assert_eq!(
        folder_owner(&root.join(".envsync")).0,
        0o700,
        "the state folder must be private"
    );
    for rel in ["apps", "apps/api", "apps/api/envs"] {
        assert_eq!(
            folder_owner(&root.join(rel)),
            (0o755, me, daemon),
            "{rel}: expected 0755, owned by the running user, group daemon (the entry's)"
        );
    }
    for rel in ["private", "private/db"] {
        assert_eq!(
            folder_owner(&root.join(rel)),
            (0o750, me, daemon),
            "{rel}: expected dir_mode 0750, owned by the running user, group daemon"
        );
    }
    for (_, rel, plain) in &plains {
        let path = root.join(rel);
        let meta = fs::metadata(&path).expect("stat file");
        assert_eq!((mode(&meta), meta.uid(), meta.gid()), (0o640, me, daemon));
        let (ok, bytes) = cat_as("daemon", &path);
        assert!(ok, "daemon (group daemon) cannot read {rel}");
        assert_eq!(sha256(&bytes), sha256(plain.as_bytes()), "{rel} as daemon");
        let (ok, _) = cat_as("nobody", &path);
        assert!(!ok, "nobody can read {rel} (0640 root:daemon)");
    }
    assert!(temps_under(&fx.server).is_empty());
}

/// `[defaults] dir_mode = "0750"`: a missing server root is made 0750, an entry without its
/// own `dir_mode` gets 0750, one with `dir_mode = "0755"` gets 0755; a folder without `group`
/// gets the running user's group. An existing folder on the way (0711) and an existing root
/// are never changed.
#[test]
fn defaults_dir_mode_applies_to_the_root_and_existing_folders_stay() {
    let fx = Fixture::new();
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    let daemon = system_id("group", "daemon");
    let legacy = fx.server.join("legacy");
    fs::create_dir(&legacy).expect("mkdir legacy");
    set_mode(&legacy, 0o711);
    set_mode(&fx.server, 0o751);
    let entries = [
        format!(
            "{}group = \"daemon\"\n",
            Fixture::entry("enc/legacy.env.enc", "legacy/sub/.env")
        ),
        format!(
            "{}dir_mode = \"0755\"\n",
            Fixture::entry("enc/open.env.enc", "open/deep/.env")
        ),
    ];
    for (i, repo) in ["enc/legacy.env.enc", "enc/open.env.enc"]
        .iter()
        .enumerate()
    {
        fx.sops_encrypt(repo, format!("VALUE_{i}=v\n").as_bytes(), "dotenv");
    }
    write_manifest(&fx.repo, &fx.server, "dir_mode = \"0750\"", &entries);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        folder_owner(&fx.server).0,
        0o751,
        "an existing root was changed"
    );
    assert_eq!(
        folder_owner(&legacy),
        (0o711, me, my_gid),
        "an existing folder was changed"
    );
    assert_eq!(folder_owner(&legacy.join("sub")), (0o750, me, daemon));
    for rel in ["open", "open/deep"] {
        assert_eq!(
            folder_owner(&fx.server.join(rel)),
            (0o755, me, my_gid),
            "{rel}"
        );
    }

    // The same manifest on a server root that does not exist yet.
    let fresh = fx.dir.path().join("fresh-root");
    write_manifest(&fx.repo, &fresh, "dir_mode = \"0750\"", &entries);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(
        folder_owner(&fresh),
        (0o750, me, my_gid),
        "a missing server root is made with [defaults] dir_mode"
    );
    assert_eq!(folder_owner(&fresh.join(".envsync")).0, 0o700);
    assert_eq!(folder_owner(&fresh.join("legacy")), (0o750, me, daemon));
    assert_eq!(folder_owner(&fresh.join("open")), (0o755, me, my_gid));
    assert!(temps_under(&fx.server).is_empty() && temps_under(&fresh).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Inherited default ACLs
// ---------------------------------------------------------------------------------------------

/// A folder with `setfacl -m u:nobody:rx` and a default ACL `u:nobody:r`: a file created there
/// the ordinary way is readable by nobody (the control); the files envsync writes there (mode
/// 0640, replacing files that carried the inherited ACL, and one in new folders under it) have
/// no ACL at all and nobody cannot read them; the folders it creates have no ACL and no
/// default; the existing folder keeps its ACL.
fn inherited_default_acl_is_stripped(n: usize) {
    let fx = Fixture::new();
    open_to_others(&fx);
    let shared = fx.server.join("shared");
    fs::create_dir(&shared).expect("mkdir shared");
    set_mode(&shared, 0o755);
    setfacl(&["-m", "u:nobody:rx"], &shared);
    setfacl(&["-d", "-m", "u:nobody:r"], &shared);
    let control = shared.join("control.txt");
    fs::write(&control, b"control\n").expect("write control");
    assert!(
        cat_as("nobody", &control).0,
        "the control file must be readable by nobody through the default ACL, else this test proves nothing"
    );

    let mut entries = Vec::new();
    let mut targets = Vec::new();
    for i in 0..n {
        let server = if i == n - 1 {
            "shared/new/sub/app.env".to_string()
        } else {
            format!("shared/app{i}.env")
        };
        entries.push(format!(
            "{}mode = \"0640\"\n",
            Fixture::entry(&format!("enc/app{i}.env.enc"), &server)
        ));
        let value = common::secret(&format!("acl-secret-{i}-{}", "y".repeat(i + 1)));
        targets.push((server, format!("ACL_{i}={value}\n")));
    }
    fx.manifest(&entries);
    for (server, plain) in &targets {
        fx.write_server(server, plain.as_bytes());
    }
    fx.envsync(["encrypt"]).expect(0);
    // The server holds OLD files that inherited the ACL; the new folders are gone again.
    for (server, _) in &targets {
        fs::write(fx.server_path(server), b"OLD=1\n").expect("write OLD");
    }
    fs::remove_dir_all(shared.join("new")).expect("remove new");
    assert!(
        getfacl(&fx.server_path(&targets[0].0))
            .iter()
            .any(|l| l.starts_with("user:nobody:")),
        "the OLD file must carry the inherited ACL"
    );

    fx.envsync(["decrypt", "--force"]).expect(0);
    for (server, plain) in &targets {
        let path = fx.server_path(server);
        let context = format!("{server} ({n} entries)");
        assert_eq!(
            sha256(&fs::read(&path).expect("read")),
            sha256(plain.as_bytes()),
            "{context}: content"
        );
        assert_eq!(common::mode_of(&path), 0o640, "{context}: mode");
        assert_no_acl(&path, &context);
        assert!(
            !cat_as("nobody", &path).0,
            "{context}: nobody can read a 0640 root:root file"
        );
    }
    for folder in [shared.join("new"), shared.join("new/sub")] {
        assert_eq!(common::mode_of(&folder), 0o755, "{}", folder.display());
        assert_no_acl(&folder, "a folder envsync created");
    }
    let kept = getfacl(&shared);
    assert!(
        kept.iter().any(|l| l.starts_with("user:nobody:r-x"))
            && kept
                .iter()
                .any(|l| l.starts_with("default:user:nobody:r--")),
        "an existing folder's ACL was changed: {kept:?}"
    );
    assert!(cat_as("nobody", &control).0);
    assert!(temps_under(&fx.server).is_empty());
}

#[test]
fn inherited_default_acl_is_stripped_in_a_small_batch() {
    inherited_default_acl_is_stripped(3);
}

#[test]
fn inherited_default_acl_is_stripped_in_a_large_batch() {
    inherited_default_acl_is_stripped(10);
}

// ---------------------------------------------------------------------------------------------
// Hostile folders
// ---------------------------------------------------------------------------------------------

fn chown_nobody(path: &Path) {
    std::os::unix::fs::chown(path, Some(system_id("user", "nobody")), None)
        .unwrap_or_else(|e| panic!("chown nobody {}: {e}", path.display()));
}

/// A fixture with two entries, `server` and `fresh/sub/.env` (its folders missing), both
/// encrypted in the repo; the server root is empty and has no state folder yet.
fn two_entries(server: &str, extra: &str) -> Fixture {
    let fx = Fixture::new();
    fx.manifest(&[
        format!(
            "{}mode = \"0640\"\n{extra}",
            Fixture::entry("enc/app.env.enc", server)
        ),
        Fixture::entry("enc/fresh.env.enc", "fresh/sub/.env"),
    ]);
    let app = common::secret("hostile-app-secret-5d4c3b");
    fx.sops_encrypt(
        "enc/app.env.enc",
        format!("APP={app}\n").as_bytes(),
        "dotenv",
    );
    fx.sops_encrypt("enc/fresh.env.enc", b"FRESH=1\n", "dotenv");
    fx
}

type Setup = fn(&Fixture) -> PathBuf;

fn nobody_owns_app(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    chown_nobody(&d);
    d
}

fn nobody_owns_outer(fx: &Fixture) -> PathBuf {
    fs::create_dir_all(fx.server.join("outer/app")).expect("mkdir");
    let d = fx.server.join("outer");
    chown_nobody(&d);
    d
}

fn app_0777(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o777);
    d
}

fn app_0775(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o775);
    d
}

/// A 0755 folder whose ACL lets `nobody` write: the mask shows as group write (0775).
fn app_acl_lets_nobody_write(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("app");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o755);
    setfacl(&["-m", "u:nobody:rwx"], &d);
    d
}

fn open_0777(fx: &Fixture) -> PathBuf {
    let d = fx.server.join("open");
    fs::create_dir(&d).expect("mkdir");
    set_mode(&d, 0o777);
    d
}

fn above_root_0775(fx: &Fixture) -> PathBuf {
    set_mode(fx.dir.path(), 0o775);
    fx.dir.path().to_path_buf()
}

/// A folder at or above a target that someone other than root or the target's owner can write
/// to: refused with exit 2 before anything is written or created (no file, no folder, no state
/// folder, no lock, no temp); the message names the folder and the `chown`/`chmod` that fixes
/// it.
#[test]
fn hostile_folders_are_refused_before_anything_is_written() {
    let cases: [(&str, &str, Setup, &str); 7] = [
        (
            "target folder owned by nobody",
            "app/.env",
            nobody_owns_app,
            "chown",
        ),
        (
            "folder two above owned by nobody",
            "outer/app/.env",
            nobody_owns_outer,
            "chown",
        ),
        ("target folder 0777", "app/.env", app_0777, "chmod"),
        ("target folder 0775", "app/.env", app_0775, "chmod"),
        (
            "target folder whose ACL lets nobody write",
            "app/.env",
            app_acl_lets_nobody_write,
            "chmod g-w",
        ),
        (
            "missing target folder under a 0777 one",
            "open/missing/.env",
            open_0777,
            "chmod",
        ),
        (
            "a folder above the server root 0775",
            "app/.env",
            above_root_0775,
            "chmod",
        ),
    ];
    for (label, server, setup, fix) in cases {
        let fx = two_entries(server, "");
        let folder = setup(&fx);
        let before = tree(&fx.server);
        let attrs = folder_owner(&folder);
        let run = fx.envsync(["decrypt", "--force"]);
        assert_eq!(
            run.code, 2,
            "{label}: expected exit 2\nstderr:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!("{}:", folder.display())) && run.stderr.contains(fix),
            "{label}: the message must name {} and contain `{fix}`:\n{}",
            folder.display(),
            run.stderr
        );
        assert_eq!(
            tree(&fx.server),
            before,
            "{label}: a refused run created or changed something under the server root"
        );
        assert!(
            !fx.server.join(".envsync").exists(),
            "{label}: the state folder was created"
        );
        assert_eq!(
            folder_owner(&folder),
            attrs,
            "{label}: the folder was changed"
        );
    }
}

/// Not hostile: a sticky world-writable folder (1777, as /tmp), and a folder owned by the
/// target's own owner. Both are written.
#[test]
fn sticky_folders_and_folders_of_the_targets_owner_are_accepted() {
    let fx = two_entries("sticky/app.env", "");
    let sticky = fx.server.join("sticky");
    fs::create_dir(&sticky).expect("mkdir");
    set_mode(&sticky, 0o1777);
    fx.envsync(["decrypt"]).expect(0);
    assert_eq!(common::mode_of(&sticky.join("app.env")), 0o640);
    assert_eq!(common::mode_of(&sticky), 0o1777);
    assert!(temps_under(&fx.server).is_empty());

    let fx = two_entries("owned/app.env", "owner = \"nobody\"\n");
    let owned = fx.server.join("owned");
    fs::create_dir(&owned).expect("mkdir");
    chown_nobody(&owned);
    fx.envsync(["decrypt"]).expect(0);
    let meta = fs::metadata(owned.join("app.env")).expect("stat");
    assert_eq!(
        (meta.uid(), mode(&meta)),
        (system_id("user", "nobody"), 0o640)
    );
    assert!(temps_under(&fx.server).is_empty());
}
