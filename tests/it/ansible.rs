//! The shipped Ansible playbook (`examples/ansible/envsync.yml`) on a fleet of three hosts,
//! run by real `ansible-playbook` (`ansible-core` from PyPI, installed by scripts/setup) with
//! local connections: web1, web2 and db1, each with its own clone of one origin repo (the
//! playbook's `git` task makes it), its own server root and its own age key, which opens only
//! the entries tagged with the host's name. What the playbook reports is read from ansible's
//! own PLAY RECAP; the services it restarts, from a marker file that the test's restart
//! command (`envsync_restart_command`) appends to.
//!
//! The shipped inventory (`examples/ansible/inventory.yml`) is checked with
//! `ansible-inventory`: three hosts, each with the variables the playbook reads.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::common::{self, canary, AGE1, AGE2, AGE3};

/// The hosts: name, its key's number (`key_file(n)`), its public key.
const HOSTS: [(&str, u8, &str); 3] = [("web1", 1, AGE1), ("web2", 2, AGE2), ("db1", 3, AGE3)];

/// The entries: host (its tag), repo path, server path, the service that reads it.
const ENTRIES: [(&str, &str, &str, &str); 5] = [
    ("web1", "web1/app.env.enc", "web1/app/.env", "app"),
    ("web1", "web1/nginx.env.enc", "web1/nginx/.env", "nginx"),
    ("web2", "web2/app.env.enc", "web2/app/.env", "app"),
    ("web2", "web2/worker.env.enc", "web2/worker/.env", "worker"),
    (
        "db1",
        "db1/postgres.env.enc",
        "db1/postgres/.env",
        "postgresql",
    ),
];

fn playbook() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ansible/envsync.yml")
}

fn ansible_playbook() -> PathBuf {
    common::tool("ansible-playbook")
}

/// Runs a command with a clean environment (no SOPS_*, no ANSIBLE_* from the caller, HOME
/// in the temp folder); it must succeed. Returns its stdout.
fn run_ok(cmd: &mut Command, home: &Path) -> String {
    let out = cmd
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("ENVSYNC_MANIFEST")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    common::assert_no_leak(&stdout, &format!("stdout of {cmd:?}"));
    common::assert_no_leak(&stderr, &format!("stderr of {cmd:?}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{stdout}{stderr}");
    stdout
}

/// One host's line of the PLAY RECAP: `ok`, `changed`, `unreachable`, `failed`, ... → N.
type Recap = BTreeMap<String, u32>;

/// One `ansible-playbook` run.
struct Play {
    code: i32,
    stdout: String,
    recap: BTreeMap<String, Recap>,
}

impl Play {
    fn count(&self, host: &str, what: &str) -> u32 {
        let line = self
            .recap
            .get(host)
            .unwrap_or_else(|| panic!("{host} not in the PLAY RECAP:\n{}", self.stdout));
        *line
            .get(what)
            .unwrap_or_else(|| panic!("no {what}= for {host}:\n{}", self.stdout))
    }

    /// Asserts `failed` and `changed` of every host, and that none was unreachable.
    #[track_caller]
    fn expect(&self, run: &str, want: &[(&str, u32, u32)]) {
        for &(host, failed, changed) in want {
            assert_eq!(
                (
                    self.count(host, "failed"),
                    self.count(host, "changed"),
                    self.count(host, "unreachable")
                ),
                (failed, changed, 0),
                "{run} run, {host}: (failed, changed, unreachable)\n{}",
                self.stdout
            );
        }
        assert_eq!(self.recap.len(), want.len(), "{}", self.stdout);
    }
}

/// Parses the PLAY RECAP: `web1 : ok=5 changed=2 unreachable=0 failed=0 skipped=3 ...`.
fn parse_recap(stdout: &str) -> BTreeMap<String, Recap> {
    let mut out = BTreeMap::new();
    let Some((_, recap)) = stdout.split_once("PLAY RECAP") else {
        return out;
    };
    for line in recap.lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let counts = counts
            .split_whitespace()
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect();
        out.insert(host.trim().to_string(), counts);
    }
    out
}

/// The fleet in a temp folder: an admin's repo (`admin/repo`, its plaintexts in
/// `admin/server`) pushed to a bare `origin.git`; for each host `<host>/server` (its server
/// root: the manifest says `root = "../server"`, beside the host's checkout `<host>/repo`);
/// the inventory and an empty ansible.cfg.
struct Fleet {
    dir: TempDir,
}

impl Fleet {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("envsync-ansible")
            .tempdir()
            .unwrap();
        let fleet = Self { dir };
        let admin = fleet.admin();
        for d in [fleet.home(), admin.clone(), fleet.path("admin/server")] {
            fs::create_dir_all(d).unwrap();
        }
        let mut manifest = String::from("version = 1\n\n[server]\nroot = \"../server\"\n");
        for (host, repo, server, _) in ENTRIES {
            let (_, _, recipient) = HOSTS.iter().find(|h| h.0 == host).unwrap();
            manifest.push_str(&format!(
                "\n[[file]]\nrepo = \"{repo}\"\nserver = \"{server}\"\ntags = [\"{host}\"]\n\
                 recipients = [\"{recipient}\"]\n"
            ));
            common::write_file(
                &fleet.path("admin/server").join(server),
                format!(
                    "# {host}\nDATABASE_URL=postgres://app:{}@db1/app\nAPI_TOKEN={}\n",
                    canary("db"),
                    canary("token")
                )
                .as_bytes(),
            );
        }
        fs::write(admin.join("secrets.toml"), manifest).unwrap();
        fleet.git(&admin, &["init", "-q"]);
        fleet.envsync_admin(&["-q", "encrypt"]);
        fleet.git(&admin, &["add", "-A"]);
        fleet.git(&admin, &["commit", "-q", "-m", "fleet secrets"]);
        let origin = fleet.path("origin.git");
        fleet.git(
            &admin,
            &["clone", "-q", "--bare", ".", origin.to_str().unwrap()],
        );
        fleet.git(
            &admin,
            &["remote", "add", "origin", origin.to_str().unwrap()],
        );

        let mut inventory = format!(
            "envsync_hosts:\n  vars:\n    ansible_connection: local\n    \
             ansible_python_interpreter: \"{{{{ ansible_playbook_python }}}}\"\n    \
             envsync_bin: {}\n    envsync_repo_url: {}\n    \
             envsync_restart_command: sh -c \"echo {{{{ inventory_hostname }}}} \
             {{{{ envsync_service }}}} >> {}\"\n  hosts:\n",
            common::envsync_bin().display(),
            origin.display(),
            fleet.markers_file().display(),
        );
        for (host, n, _) in HOSTS {
            fs::create_dir_all(fleet.server(host)).unwrap();
            inventory.push_str(&format!(
                "    {host}:\n      envsync_tag: {host}\n      envsync_checkout: {}\n      \
                 envsync_identity: {}\n      envsync_services:\n",
                fleet.path(host).join("repo").display(),
                common::key_file(n).display(),
            ));
            for (h, _, server, service) in ENTRIES {
                if h == host {
                    inventory.push_str(&format!("        {service}: [{server}]\n"));
                }
            }
        }
        fs::write(fleet.path("inventory.yml"), inventory).unwrap();
        fs::write(fleet.path("ansible.cfg"), "").unwrap();
        fs::write(fleet.markers_file(), "").unwrap();
        fleet
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    fn admin(&self) -> PathBuf {
        self.path("admin/repo")
    }

    /// A host's server root.
    fn server(&self, host: &str) -> PathBuf {
        self.path(host).join("server")
    }

    fn markers_file(&self) -> PathBuf {
        self.path("restarts.log")
    }

    /// The restarts so far: `host service`, one a line, in no particular order.
    fn restarts(&self) -> Vec<String> {
        let mut lines: Vec<String> = fs::read_to_string(self.markers_file())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    /// git in `dir`, with a committer identity; it must succeed.
    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = common::git_command();
        cmd.args(args).current_dir(dir);
        run_ok(&mut cmd, &self.home())
    }

    /// envsync in the admin's repo (encrypting needs no private key); it must succeed.
    fn envsync_admin(&self, args: &[&str]) {
        let mut cmd = Command::new(common::envsync_bin());
        cmd.args(args).current_dir(self.admin());
        run_ok(&mut cmd, &self.home());
    }

    /// One run of the shipped playbook on the fleet.
    fn play(&self) -> Play {
        let tmp = self.path("ansible-tmp");
        let out = Command::new(ansible_playbook())
            .arg("-i")
            .arg(self.path("inventory.yml"))
            .arg(playbook())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", self.home())
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "C.UTF-8")
            .env("ANSIBLE_CONFIG", self.path("ansible.cfg"))
            .env("ANSIBLE_LOCAL_TEMP", tmp.join("local"))
            .env("ANSIBLE_REMOTE_TEMP", tmp.join("remote"))
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        common::assert_no_leak(&stdout, "stdout of ansible-playbook");
        common::assert_no_leak(&stderr, "stderr of ansible-playbook");
        let recap = parse_recap(&stdout);
        assert!(
            !recap.is_empty(),
            "no PLAY RECAP (exit {:?}):\n{stdout}\n{stderr}",
            out.status.code()
        );
        Play {
            code: out.status.code().unwrap_or(-1),
            stdout: format!("{stdout}\n--- stderr ---\n{stderr}"),
            recap,
        }
    }
}

/// Proves, with four runs of the shipped playbook on three hosts:
/// 1. the first run clones each host's checkout, writes each host's own files (and no other
///    host's), reports every host changed and restarts each service once;
/// 2. a second run changes nothing and restarts nothing;
/// 3. a rotation of one web2 entry pushed to the origin changes only web2 and restarts only
///    the service that reads that entry;
/// 4. an edit on db1's server not yet encrypted fails db1 alone (exit 3: the failure names
///    the entry, the edit stays), web1 and web2 complete unchanged;
///
/// and no secret value appears in ansible's output.
#[test]
fn ansible_playbook_syncs_a_fleet_and_restarts_only_what_changed() {
    let fleet = Fleet::new();
    let started = std::time::Instant::now();

    let first = fleet.play();
    assert_eq!(first.code, 0, "first run:\n{}", first.stdout);
    // decrypt and the restart handler: two changed tasks on every host.
    first.expect("first", &[("web1", 0, 2), ("web2", 0, 2), ("db1", 0, 2)]);
    let mut all: Vec<String> = ENTRIES
        .iter()
        .map(|(host, _, _, service)| format!("{host} {service}"))
        .collect();
    all.sort();
    assert_eq!(fleet.restarts(), all, "first run:\n{}", first.stdout);
    for (host, _, _) in HOSTS {
        assert!(fleet.path(host).join("repo/secrets.toml").is_file());
        for (h, _, server, _) in ENTRIES {
            let path = fleet.server(host).join(server);
            if h == host {
                assert_eq!(
                    fs::read(&path).unwrap(),
                    fs::read(fleet.path("admin/server").join(server)).unwrap(),
                    "{host}: {server}"
                );
                assert_eq!(common::mode_of(&path), 0o600, "{host}: {server}");
            } else {
                assert!(!path.exists(), "{host} got {server}, another host's file");
            }
        }
    }

    let second = fleet.play();
    assert_eq!(second.code, 0, "second run:\n{}", second.stdout);
    second.expect("second", &[("web1", 0, 0), ("web2", 0, 0), ("db1", 0, 0)]);
    assert_eq!(
        fleet.restarts(),
        all,
        "second run restarted:\n{}",
        second.stdout
    );

    // A rotation of web2's app entry, by the admin, pushed to the origin.
    let (_, repo, server, _) = ENTRIES[2];
    common::write_file(
        &fleet.path("admin/server").join(server),
        format!(
            "# web2\nDATABASE_URL=postgres://app:{}@db1/app\nAPI_TOKEN={}\n",
            canary("db"),
            canary("rotated")
        )
        .as_bytes(),
    );
    fleet.envsync_admin(&["-q", "encrypt", repo]);
    let admin = fleet.admin();
    fleet.git(&admin, &["commit", "-q", "-am", "rotate web2's API_TOKEN"]);
    fleet.git(&admin, &["push", "-q", "origin", "HEAD"]);
    let third = fleet.play();
    assert_eq!(third.code, 0, "third run:\n{}", third.stdout);
    third.expect("third", &[("web1", 0, 0), ("web2", 0, 2), ("db1", 0, 0)]);
    let mut expected = all.clone();
    expected.push("web2 app".to_string());
    expected.sort();
    assert_eq!(fleet.restarts(), expected, "third run:\n{}", third.stdout);
    assert_eq!(
        fs::read(fleet.server("web2").join(server)).unwrap(),
        fs::read(fleet.path("admin/server").join(server)).unwrap(),
        "the rotation did not reach web2"
    );

    // An edit on db1's server, not encrypted.
    let (_, repo, server, _) = ENTRIES[4];
    let edited_path = fleet.server("db1").join(server);
    let mut edited = fs::read(&edited_path).unwrap();
    edited.extend_from_slice(format!("NEW_KEY={}\n", canary("edit")).as_bytes());
    fs::write(&edited_path, &edited).unwrap();
    let fourth = fleet.play();
    assert_eq!(
        fourth.code, 2,
        "fourth run (a host failed):\n{}",
        fourth.stdout
    );
    fourth.expect("fourth", &[("web1", 0, 0), ("web2", 0, 0), ("db1", 1, 0)]);
    let fatal: Vec<&str> = fourth
        .stdout
        .lines()
        .filter(|l| l.starts_with("fatal: "))
        .collect();
    assert_eq!(fatal.len(), 1, "{}", fourth.stdout);
    assert!(
        fatal[0].starts_with("fatal: [db1]")
            && fatal[0].contains("exit 3")
            && fatal[0].contains(server)
            && fatal[0].contains(repo)
            && fatal[0].contains("server-changed"),
        "db1's failure should be the refusal naming {server} ({repo}):\n{}",
        fatal[0]
    );
    assert_eq!(
        fleet.restarts(),
        expected,
        "fourth run restarted:\n{}",
        fourth.stdout
    );
    assert_eq!(
        fs::read(&edited_path).unwrap(),
        edited,
        "db1's edit was lost"
    );
    // How long four runs take, for the suite's budget (shown with --nocapture).
    #[allow(clippy::print_stderr)]
    {
        eprintln!("four ansible-playbook runs: {:?}", started.elapsed());
    }
}

/// Proves: the shipped inventory parses (`ansible-inventory --list`) into the group the
/// playbook targets, with hosts web1, web2 and db1, each with its own `envsync_tag` (its
/// name), the identity, checkout and repo URL, and a service map whose paths are relative
/// server paths; and the playbook targets that group.
#[test]
fn ansible_shipped_inventory_names_what_the_playbook_reads() {
    let dir = tempfile::Builder::new()
        .prefix("envsync-ansible")
        .tempdir()
        .unwrap();
    let inventory = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ansible/inventory.yml");
    let mut cmd = Command::new(ansible_playbook().with_file_name("ansible-inventory"));
    cmd.arg("-i")
        .arg(&inventory)
        .arg("--list")
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_CONFIG", dir.path().join("ansible.cfg"))
        .env("ANSIBLE_LOCAL_TEMP", dir.path().join("tmp"));
    fs::write(dir.path().join("ansible.cfg"), "").unwrap();
    let listed: serde_json::Value = serde_json::from_str(&run_ok(&mut cmd, dir.path())).unwrap();
    let mut hosts: Vec<&str> = listed["envsync_hosts"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["db1", "web1", "web2"]);
    for host in hosts {
        let vars = &listed["_meta"]["hostvars"][host];
        assert_eq!(vars["envsync_tag"], host, "{host}");
        for var in [
            "envsync_identity",
            "envsync_checkout",
            "envsync_repo_url",
            "envsync_restart_command",
        ] {
            assert!(vars[var].is_string(), "{host}: no {var}");
        }
        let services = vars["envsync_services"].as_object().unwrap();
        assert!(!services.is_empty(), "{host}: no envsync_services");
        for paths in services.values() {
            for path in paths.as_array().unwrap() {
                let path = path.as_str().unwrap();
                assert!(
                    path.starts_with(&format!("{host}/")),
                    "{host}: {path} is not a server path of this host"
                );
            }
        }
    }
    let play = fs::read_to_string(playbook()).unwrap();
    assert!(play.contains("hosts: envsync_hosts"), "the play's hosts");
}
