//! The text `envsync init` writes: the manifest (commented, deterministic: no dates) and
//! the `.sops.yaml` with one creation rule for every `.enc` file.

use std::collections::BTreeSet;

use super::import::{self, Imported};

/// What the manifest is made from.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The Makefile, as the user named it.
    pub(crate) source: Option<String>,
    pub(crate) root: String,
    pub(crate) root_note: Option<String>,
    /// The identity path and where it came from.
    pub(crate) identity: Option<(String, String)>,
    pub(crate) lists: Vec<(&'static str, usize)>,
    pub(crate) entries: Vec<Imported>,
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The manifest text: deterministic (no dates), commented.
pub(crate) fn manifest_text(d: &Draft) -> String {
    let mut out = String::new();
    match &d.source {
        Some(source) => out.push_str(&format!(
            "# secrets.toml: written by envsync init from {source}; see secrets.toml.example\n"
        )),
        None => out.push_str("# secrets.toml: written by envsync init; see secrets.toml.example\n"),
    }
    out.push_str(
        "# for every key an entry can take. Review it, then run `envsync check` and\n\
         # `envsync decrypt --dry-run`.\n\
         version = 1\n\n[server]\n",
    );
    let note = |line: String, note: Option<&str>| match note {
        Some(note) => format!("{line}  # {note}\n"),
        None => format!("{line}\n"),
    };
    out.push_str(&note(
        format!("root = {}", quoted(&d.root)),
        Some(
            d.root_note
                .as_deref()
                .unwrap_or("server paths are relative to this"),
        ),
    ));
    match &d.identity {
        Some((path, from)) => out.push_str(&note(format!("identity = {}", quoted(path)), Some(from))),
        None => out.push_str(
            "# identity = \"/opt/docker/.age-key.txt\"  # the age key decrypt and diff use (or --identity, SOPS_AGE_KEY_FILE)\n",
        ),
    }
    out.push_str("\n[defaults]\nmode = \"0600\"\n# owner = \"root\"\n# group = \"debian\"\n");
    if d.source.is_none() {
        out.push_str(
            "\n# One [[file]] a secret file:\n\
             # [[file]]\n\
             # repo = \"envs/app/.env.prod.enc\"  # the encrypted copy, relative to this folder\n\
             # server = \"app/.env.prod\"         # the plaintext, relative to server.root\n\
             # mode = \"0640\"\n\
             # group = \"debian\"\n",
        );
        return out;
    }
    for (list, line) in &d.lists {
        let plain = *list == import::PLAIN_LIST;
        let what = if plain { ": config kept in clear" } else { "" };
        out.push_str(&format!("\n# {list} (Makefile line {line}){what}\n"));
        for entry in d.entries.iter().filter(|e| e.plain == plain) {
            out.push_str(&format!(
                "\n[[file]]\nrepo = {}\nserver = {}\n",
                quoted(&entry.repo),
                quoted(&entry.server)
            ));
            if plain {
                out.push_str("plain = true\nmode = \"0644\"\n");
            }
        }
    }
    out
}

/// `.sops.yaml` with one creation rule for every `.enc` file.
pub(crate) fn sops_yaml_text(recipients: &BTreeSet<String>) -> String {
    let list: Vec<&str> = recipients.iter().map(String::as_str).collect();
    format!(
        "# .sops.yaml: written by envsync init. sops and envsync encrypt every .enc file to these\n\
         # age recipients; to add one, append its public key and run `envsync rekey`.\n\
         creation_rules:\n  - path_regex: '\\.enc$'\n    age: {}\n",
        list.join(",")
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::Manifest;

    fn entry(repo: &str, server: &str, plain: bool) -> Imported {
        Imported {
            repo: repo.into(),
            server: server.into(),
            plain,
            item: format!("{repo}:{server}"),
        }
    }

    fn draft(source: Option<&str>, entries: Vec<Imported>) -> Draft {
        Draft {
            source: source.map(str::to_string),
            root: "/srv/docker".into(),
            root_note: Some("from SERVER_ROOT in the Makefile".into()),
            identity: None,
            lists: vec![(import::SECRET_LIST, 3), (import::PLAIN_LIST, 9)],
            entries,
        }
    }

    #[test]
    fn manifests_made_validate_and_are_deterministic() {
        let path = Path::new("/nonexistent/repo/secrets.toml");
        let entries = vec![
            entry("envs/a \"q\".env.enc", "a/.env", false),
            entry("nginx/app.conf", "nginx/app.conf", true),
        ];
        for d in [draft(None, Vec::new()), draft(Some("Makefile"), entries)] {
            let text = manifest_text(&d);
            assert_eq!(text, manifest_text(&d));
            let manifest = Manifest::parse(path, &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(manifest.entries.len(), d.entries.len());
            assert!(text.starts_with("# secrets.toml: written by envsync init"));
            for (made, want) in manifest.entries.iter().zip(&d.entries) {
                assert_eq!(
                    (made.repo.as_str(), made.plain),
                    (want.repo.as_str(), want.plain)
                );
            }
        }
    }

    #[test]
    fn sops_yaml_is_one_rule_for_enc_files() {
        let recipients: BTreeSet<String> = ["age1b", "age1a"].map(String::from).into();
        let text = sops_yaml_text(&recipients);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let rule = &doc["creation_rules"][0];
        assert_eq!(rule["path_regex"].as_str(), Some("\\.enc$"));
        assert_eq!(rule["age"].as_str(), Some("age1a,age1b"));
    }
}
