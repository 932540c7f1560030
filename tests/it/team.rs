//! The team's real layout, shared by the team tests: eleven files (nine dotenv: shared, two
//! apps in three stages, monitoring, umami; two whole-file binary: an htpasswd and an SQL
//! init script), every secret a canary, and a builder for the whole fixture repo.
#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use std::fs;

use crate::common::{self, git, Fixture};

/// One file of the team repo: its server path (the repo path is `<path>.enc`), its sops type
/// and its plaintext.
pub(crate) struct TeamFile {
    pub(crate) path: String,
    pub(crate) kind: &'static str,
    pub(crate) plain: String,
}

fn app_env(app: &str, stage: &str) -> String {
    let db = common::canary(&format!("db-{app}-{stage}"));
    format!(
        "# {app} ({stage})\n\
         APP_ENV={stage}\n\
         APP_URL=https://{app}-{stage}.example.org\n\
         SECRET_KEY={secret}\n\
         \n\
         # Database\n\
         DB_HOST=postgres\n\
         DB_PORT=5432\n\
         DB_NAME={app}_{stage}\n\
         DB_USER={app}\n\
         DB_PASSWORD={db}\n\
         DATABASE_URL=postgres://{app}:{db}@postgres:5432/{app}_{stage}?sslmode=disable\n\
         \n\
         # Mail\n\
         SMTP_HOST=smtp.example.org\n\
         SMTP_PORT=587\n\
         SMTP_USER=noreply@{app}.example.org\n\
         SMTP_PASSWORD={smtp}\n\
         SMTP_FROM=\"{app} <noreply@{app}.example.org>\"\n",
        secret = common::canary(&format!("secret-{app}-{stage}")),
        smtp = common::canary(&format!("smtp-{app}-{stage}")),
    )
}

pub(crate) fn team_files() -> Vec<TeamFile> {
    let mut files = vec![TeamFile {
        path: "shared/.env".into(),
        kind: "dotenv",
        plain: format!(
            "# Shared services\n\
             POSTGRES_USER=postgres\n\
             POSTGRES_PASSWORD={}\n\
             REDIS_PASSWORD={}\n\
             \n\
             # Backups\n\
             S3_ENDPOINT=https://s3.example.org\n\
             S3_ACCESS_KEY_ID=AKIAEXAMPLE42\n\
             S3_SECRET_ACCESS_KEY={}\n",
            common::canary("postgres"),
            common::canary("redis"),
            common::canary("s3"),
        ),
    }];
    for app in ["aletheia", "helios"] {
        for (stage, path) in [
            ("dev", format!("envs/{app}/.env.dev")),
            ("staging", format!("envs/{app}/.env.staging")),
            ("prod", format!("envs/{app}/.env.prod")),
        ] {
            files.push(TeamFile {
                path,
                kind: "dotenv",
                plain: app_env(app, stage),
            });
        }
    }
    files.push(TeamFile {
        path: "monitoring/.env".into(),
        kind: "dotenv",
        plain: format!(
            "GF_SECURITY_ADMIN_USER=admin\n\
             GF_SECURITY_ADMIN_PASSWORD={}\n\
             PROMETHEUS_BASIC_AUTH=prom:{}\n\
             ALERTMANAGER_SLACK_WEBHOOK=https://hooks.slack.com/services/{}\n",
            common::canary("grafana"),
            common::canary("prom"),
            common::canary("slack"),
        ),
    });
    files.push(TeamFile {
        path: "umami/.env".into(),
        kind: "dotenv",
        plain: format!(
            "DATABASE_URL=postgresql://umami:{}@postgres:5432/umami\n\
             DATABASE_TYPE=postgresql\n\
             APP_SECRET={}\n",
            common::canary("umami-db"),
            common::canary("umami-app"),
        ),
    });
    files.push(TeamFile {
        path: "nginx/.htpasswd".into(),
        kind: "binary",
        plain: format!(
            "admin:$apr1$Xq3bT9kz${}\nmonitor:$2y$05${}\n",
            common::canary("htpasswd-admin"),
            common::canary("htpasswd-monitor"),
        ),
    });
    let sql_users: Vec<String> = [
        "aletheia_dev",
        "aletheia_staging",
        "aletheia_prod",
        "helios_dev",
        "umami",
    ]
    .iter()
    .map(|user| {
        format!(
            "CREATE USER {user} WITH PASSWORD '{}';\nCREATE DATABASE {user} OWNER {user};\n",
            common::canary(&format!("sql-{user}"))
        )
    })
    .collect();
    files.push(TeamFile {
        path: "shared/init-scripts/01-create-databases.sql".into(),
        kind: "binary",
        plain: format!(
            "-- Run once by the postgres container on first start.\n{}\
             GRANT ALL PRIVILEGES ON DATABASE umami TO umami;\n",
            sql_users.concat()
        ),
    });
    assert_eq!(files.len(), 11);
    files
}

pub(crate) fn enc(path: &str) -> String {
    format!("{path}.enc")
}

/// Where the fixture's server root is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Server {
    /// The fixture's own `server/` folder, outside the repo.
    Outside,
    /// The repo's work tree itself (each plaintext next to its `.enc`), with a `.gitignore`
    /// that ignores every plaintext target and the state folder.
    InRepo,
}

/// The full team fixture: the eleven files encrypted by real sops (AGE1, AGE2), a
/// `secrets.toml` with the eleven entries and no identity (a key is given by
/// `SOPS_AGE_KEY_FILE` when a step needs one), all committed to git. No plaintext is written
/// to the server.
pub(crate) fn team_fixture(server: Server) -> (Fixture, Vec<TeamFile>) {
    let mut fx = Fixture::new();
    if server == Server::InRepo {
        fx.server = fx.repo.clone();
    }
    let files = team_files();
    for f in &files {
        fx.sops_encrypt(&enc(&f.path), f.plain.as_bytes(), f.kind);
    }
    let mut manifest = format!(
        "version = 1\n\n[server]\nroot = \"{}\"\n",
        fx.server.display()
    );
    for f in &files {
        manifest.push_str("\n[[file]]\n");
        manifest.push_str(&Fixture::entry(&enc(&f.path), &f.path));
    }
    fs::write(fx.repo.join("secrets.toml"), manifest).unwrap();
    if server == Server::InRepo {
        fs::write(fx.repo.join(".gitignore"), gitignore(&files)).unwrap();
    }
    git(&fx, &["add", "-A"]);
    git(&fx, &["commit", "-qm", "team secrets"]);
    (fx, files)
}

/// The `.gitignore` of a repo that is also the server root: the state folder and each
/// plaintext target, one anchored line each.
pub(crate) fn gitignore(files: &[TeamFile]) -> String {
    let mut text = String::from("/.envsync/\n");
    for f in files {
        text.push_str(&format!("/{}\n", f.path));
    }
    text
}

/// The value of `key` in a dotenv text.
pub(crate) fn value_of<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line"))
}

/// The AGE1 key file as the environment a keyed step gets.
pub(crate) fn with_key() -> String {
    common::key_file(1).display().to_string()
}
