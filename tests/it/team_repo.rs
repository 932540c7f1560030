//! The team's real layout, end to end: eleven files encrypted by real sops, decrypted onto an
//! empty server, one password rotated on the server, drift reported without values, and the
//! rotation encrypted back touching only the one `.enc` that changed.

#![allow(clippy::unwrap_used)] // a test panics on purpose when a step fails

use crate::common;

use std::fs;
use std::time::SystemTime;

use crate::common::Fixture;

/// One file of the team repo: its server path (the repo path is `<path>.enc`), its sops type
/// and its plaintext.
struct TeamFile {
    path: String,
    kind: &'static str,
    plain: String,
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

fn team_files() -> Vec<TeamFile> {
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

fn enc(path: &str) -> String {
    format!("{path}.enc")
}

/// Every value in a JSON document that is an object holding a string equal to `needle`.
fn objects_naming<'v>(value: &'v serde_json::Value, needle: &str) -> Vec<&'v serde_json::Value> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            if map.values().any(|v| v.as_str() == Some(needle)) {
                found.push(value);
            }
            for v in map.values() {
                found.extend(objects_naming(v, needle));
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                found.extend(objects_naming(v, needle));
            }
        }
        _ => {}
    }
    found
}

/// Proves the whole team workflow: decrypt of eleven sops files onto an empty server matches
/// `sops -d` with mode 0600; diff is silent; a rotated password is reported by key and
/// lengths only (text and JSON, exit 1); encrypt writes it back so sops reads the new value,
/// the repo is in sync again, and the other ten `.enc` files are left untouched.
#[test]
fn team_repo_decrypt_rotate_encrypt() {
    let fx = Fixture::new();
    let files = team_files();
    for f in &files {
        fx.sops_encrypt(&enc(&f.path), f.plain.as_bytes(), f.kind);
    }
    fx.manifest(
        &files
            .iter()
            .map(|f| Fixture::entry(&enc(&f.path), &f.path))
            .collect::<Vec<_>>(),
    );

    // Decrypt onto an empty server root.
    assert_eq!(fs::read_dir(&fx.server).unwrap().count(), 0);
    fx.envsync(["decrypt"]).expect(0);
    for f in &files {
        let server = fx.server_path(&f.path);
        assert_eq!(
            fs::read(&server).unwrap(),
            fx.sops_decrypt(&enc(&f.path), f.kind),
            "{}: envsync decrypt differs from sops -d",
            f.path
        );
        assert_eq!(common::mode_of(&server), 0o600, "{}: mode", f.path);
    }

    // In sync: exit 0, nothing on stdout.
    let run = fx.envsync(["diff"]);
    run.expect(0);
    assert_eq!(run.stdout, "", "diff of an in-sync repo printed something");

    // Rotate SMTP_PASSWORD on the server, to a value of another length.
    let rotated = "envs/aletheia/.env.prod";
    let current = fs::read_to_string(fx.server_path(rotated)).unwrap();
    let old_value = current
        .lines()
        .find_map(|l| l.strip_prefix("SMTP_PASSWORD="))
        .unwrap()
        .to_string();
    let new_value = common::canary("smtp-rotated-aletheia-prod-2025");
    assert_ne!(old_value.len(), new_value.len());
    let updated = current.replace(
        &format!("SMTP_PASSWORD={old_value}\n"),
        &format!("SMTP_PASSWORD={new_value}\n"),
    );
    assert_ne!(updated, current);
    fx.write_server(rotated, updated.as_bytes());
    let (old_len, new_len) = (old_value.len().to_string(), new_value.len().to_string());

    // Text diff: exit 1, the key and both lengths, no values.
    let run = fx.envsync(["diff"]);
    run.expect(1);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("SMTP_PASSWORD"))
        .unwrap_or_else(|| panic!("diff does not name SMTP_PASSWORD:\n{}", run.stdout));
    assert!(
        line.contains(&old_len) && line.contains(&new_len),
        "diff line does not show the lengths {old_len} and {new_len}: {line}"
    );
    assert!(
        run.stdout.contains(rotated),
        "diff does not name {rotated}:\n{}",
        run.stdout
    );
    for other in files.iter().filter(|f| f.path != rotated) {
        assert!(
            !run.stdout.contains(other.path.as_str()),
            "diff reports an unchanged file {}:\n{}",
            other.path,
            run.stdout
        );
    }
    for value in [&old_value, &new_value] {
        assert!(!run.stdout.contains(value.as_str()), "diff leaked a value");
        assert!(!run.stderr.contains(value.as_str()), "diff leaked a value");
    }

    // JSON diff: exit 1, valid JSON, the key and lengths, no values.
    let run = fx.envsync(["diff", "--json"]);
    run.expect(1);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("diff --json is not JSON ({e}):\n{}", run.stdout));
    let named = objects_naming(&doc, "SMTP_PASSWORD");
    assert_eq!(
        named.len(),
        1,
        "diff --json names SMTP_PASSWORD {} times:\n{}",
        named.len(),
        run.stdout
    );
    let numbers: Vec<u64> = named[0]
        .as_object()
        .unwrap()
        .values()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert!(
        numbers.contains(&(old_value.len() as u64)) && numbers.contains(&(new_value.len() as u64)),
        "diff --json does not give the lengths: {}",
        named[0]
    );
    for value in [&old_value, &new_value] {
        assert!(
            !run.stdout.contains(value.as_str()),
            "diff --json leaked a value"
        );
    }

    // Encrypt the rotation back.
    let before: Vec<(Vec<u8>, SystemTime)> = files
        .iter()
        .map(|f| {
            let path = fx.repo_path(&enc(&f.path));
            (
                fs::read(&path).unwrap(),
                fs::metadata(&path).unwrap().modified().unwrap(),
            )
        })
        .collect();
    fx.envsync(["encrypt"]).expect(0);
    assert_eq!(
        fx.sops_decrypt(&enc(rotated), "dotenv"),
        updated.as_bytes(),
        "sops -d of the re-encrypted file"
    );
    let run = fx.envsync(["diff"]);
    run.expect(0);
    assert_eq!(run.stdout, "", "diff after encrypt printed something");
    for (f, (bytes, mtime)) in files.iter().zip(&before) {
        let path = fx.repo_path(&enc(&f.path));
        let now = fs::read(&path).unwrap();
        if f.path == rotated {
            assert_ne!(&now, bytes, "{rotated}.enc was not rewritten");
            continue;
        }
        assert!(&now == bytes, "{}.enc changed", f.path);
        assert_eq!(
            &fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "{}.enc was rewritten",
            f.path
        );
    }
}
