//! What `envsync init --from-makefile` takes from a Makefile: the `SECRET_FILES` and
//! `INFRA_FILES` items as manifest entries, the server root, and the age key file. Each
//! decision that can refuse (which root, a server path outside it, two items on one server
//! path) is a small pure function, tested on its own.

use std::collections::HashMap;
use std::path::{Component, Path};

use super::makefile::{MakeError, Makefile};

/// Why a Makefile cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImportError {
    /// A needed value uses what only make knows.
    Value(MakeError),
    /// Neither list is defined.
    NoLists,
    /// No root, or several: the candidates (name = value).
    Root { candidates: Vec<String> },
    /// An item's server path is not under the root.
    OutsideRoot { item: String, root: String },
    /// An item's repo path leaves the repo.
    OutsideRepo { item: String },
    /// Two items share a server (or repo) path.
    Same {
        first: String,
        second: String,
        side: &'static str,
        path: String,
    },
}

/// One manifest entry made from a list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Imported {
    pub(crate) repo: String,
    /// Relative to the root.
    pub(crate) server: String,
    pub(crate) plain: bool,
    /// The item as the Makefile wrote it (expanded), for messages.
    pub(crate) item: String,
}

/// What a Makefile gives the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Import {
    pub(crate) root: String,
    /// The variable the root came from, when it came from the Makefile.
    pub(crate) root_var: Option<String>,
    pub(crate) entries: Vec<Imported>,
    /// The age key file variable and its value, when it has one that could be read.
    pub(crate) identity: Option<(String, String)>,
    /// The secret list's variable and line, for the manifest's comments.
    pub(crate) lists: Vec<(&'static str, usize)>,
}

/// The lists that are imported: secrets, and config kept in clear.
pub(crate) const SECRET_LIST: &str = "SECRET_FILES";
pub(crate) const PLAIN_LIST: &str = "INFRA_FILES";

/// Reads a Makefile's lists. `root`: `--root`, which also stands for the variables that
/// prefix server paths (as `make SERVER_ROOT=DIR` would). `curdir`: the Makefile's folder,
/// make's `$(CURDIR)`.
pub(crate) fn import(text: &str, root: Option<&str>, curdir: &str) -> Result<Import, ImportError> {
    let builtins = [("CURDIR", curdir)];
    let first = Makefile::parse_with(text, &[], &builtins);
    let prefixes = prefix_vars(&first);
    let mk = match root {
        Some(root) => {
            let overrides: Vec<(String, String)> = prefixes
                .iter()
                .map(|name| (name.clone(), root.to_string()))
                .collect();
            Makefile::parse_with(text, &overrides, &builtins)
        }
        None => first,
    };
    let mut items = Vec::new();
    let mut lists = Vec::new();
    for (list, plain) in [(SECRET_LIST, false), (PLAIN_LIST, true)] {
        if let Some(value) = mk.value(list) {
            let value = value.map_err(ImportError::Value)?;
            lists.push((list, mk.line_of(list).unwrap_or(0)));
            items.extend(value.split_whitespace().map(|w| item(w, plain)));
        }
    }
    if lists.is_empty() {
        return Err(ImportError::NoLists);
    }
    let (root, root_var) = match root {
        Some(root) => (root.to_string(), None),
        None => {
            let (name, value) = choose_root(&mk, &prefixes)?;
            (value, Some(name))
        }
    };
    let entries = items
        .into_iter()
        .map(|(repo, server, plain, item)| {
            if !inside(&repo) {
                return Err(ImportError::OutsideRepo { item });
            }
            let server =
                server_relative(&root, &server).ok_or_else(|| ImportError::OutsideRoot {
                    item: item.clone(),
                    root: root.clone(),
                })?;
            Ok(Imported {
                repo,
                server,
                plain,
                item,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(&entries)?;
    Ok(Import {
        root,
        root_var,
        entries,
        identity: identity_var(&mk),
        lists,
    })
}

/// `repo:server` as the Makefile's loops read it: a secret's repo part gets `.enc` when it
/// has none (`sops -d $$src.enc`); without `:server`, `x.enc` maps to `x`. A plain item's
/// repo path is kept as it is. Returns (repo, server, plain, item).
pub(crate) fn item(word: &str, plain: bool) -> (String, String, bool, String) {
    let (repo, server) = match word.split_once(':') {
        Some((repo, server)) if !server.is_empty() => (repo, Some(server)),
        Some((repo, _)) => (repo, None),
        None => (word, None),
    };
    let repo_path = if plain || repo.ends_with(".enc") {
        repo.to_string()
    } else {
        format!("{repo}.enc")
    };
    let server = match server {
        Some(server) => server.to_string(),
        None if plain => repo.to_string(),
        None => repo_path
            .strip_suffix(".enc")
            .unwrap_or(&repo_path)
            .to_string(),
    };
    (repo_path, server, plain, word.to_string())
}

/// The variables that begin a server part in the lists (`x:$(SERVER_ROOT)/y`).
fn prefix_vars(mk: &Makefile) -> Vec<String> {
    let pattern = regex::Regex::new(r":\$[({]([A-Za-z0-9_.-]+)[)}]/").ok();
    let mut names = Vec::new();
    for list in [SECRET_LIST, PLAIN_LIST] {
        for raw in mk.raw(list) {
            for captures in pattern.iter().flat_map(|p| p.captures_iter(raw)) {
                let name = captures[1].to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// The root from the Makefile: the variable that prefixes server paths, else the one named
/// like a root (SERVER_ROOT, SERVER_DIR, *_ROOT, *_DIR) with an absolute value. Exactly
/// one value must be found.
fn choose_root(mk: &Makefile, prefixes: &[String]) -> Result<(String, String), ImportError> {
    let mut candidates = Vec::new();
    for name in prefixes {
        match mk.value(name) {
            Some(value) => candidates.push((name.clone(), value.map_err(ImportError::Value)?)),
            None => {
                return Err(ImportError::Value(MakeError {
                    line: mk.line_of(SECRET_LIST).unwrap_or(0),
                    message: format!("`$({name})` is not defined in the Makefile"),
                }))
            }
        }
    }
    if candidates.is_empty() {
        candidates = mk
            .names()
            .filter(|name| root_like(name))
            .filter_map(|name| match mk.value(name) {
                Some(Ok(value)) if value.starts_with('/') => Some((name.to_string(), value)),
                _ => None,
            })
            .collect();
    }
    pick_one(candidates)
}

/// A name a server root goes by.
fn root_like(name: &str) -> bool {
    name.ends_with("_ROOT") || name.ends_with("_DIR")
}

/// The one root among the candidates (several names with one value count as one).
fn pick_one(candidates: Vec<(String, String)>) -> Result<(String, String), ImportError> {
    let mut values: Vec<&str> = candidates.iter().map(|(_, v)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    match (values.len(), candidates.first()) {
        (1, Some(first)) => Ok(first.clone()),
        _ => Err(ImportError::Root {
            candidates: candidates
                .iter()
                .map(|(name, value)| format!("{name} = {value}"))
                .collect(),
        }),
    }
}

/// A server part relative to `root`: absolute ones must be under it; relative ones are
/// already, unless the root is relative too and they start with it (`$(ROOT)/x` with
/// `ROOT = ./server`). None when it leaves the root.
pub(crate) fn server_relative(root: &str, server: &str) -> Option<String> {
    let (root_n, server_n) = (normal(root), normal(server));
    let relative = match server_n.strip_prefix(&root_n) {
        Ok(rest) if server.starts_with('/') || !root.starts_with('/') => rest,
        _ if server.starts_with('/') => return None,
        _ => server_n.as_path(),
    };
    let relative = relative.to_str()?.to_string();
    (inside(&relative) && !relative.is_empty()).then_some(relative)
}

/// `path` without `.` parts and trailing slashes.
fn normal(path: &str) -> std::path::PathBuf {
    Path::new(path)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// A relative path that stays where it starts (no `..`, not absolute).
fn inside(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Refuses two items on one server path, or on one repo path.
fn check_unique(entries: &[Imported]) -> Result<(), ImportError> {
    for (side, key) in [
        (
            "server",
            (|e: &Imported| e.server.clone()) as fn(&Imported) -> String,
        ),
        ("repo", |e: &Imported| normal(&e.repo).display().to_string()),
    ] {
        let mut seen: HashMap<String, &Imported> = HashMap::new();
        for entry in entries {
            if let Some(first) = seen.insert(key(entry), entry) {
                return Err(ImportError::Same {
                    first: first.item.clone(),
                    second: entry.item.clone(),
                    side,
                    path: key(entry),
                });
            }
        }
    }
    Ok(())
}

/// The age key file: SOPS_AGE_KEY_FILE, AGE_KEY_FILE, else another `*AGE*_KEY_FILE`, with
/// its value when it can be read. Never a variable holding a key itself.
fn identity_var(mk: &Makefile) -> Option<(String, String)> {
    let exact = ["SOPS_AGE_KEY_FILE", "AGE_KEY_FILE"];
    let name = exact
        .iter()
        .copied()
        .find(|n| mk.line_of(n).is_some())
        .or_else(|| {
            mk.names()
                .find(|n| n.contains("AGE") && n.ends_with("_KEY_FILE"))
        })?;
    let value = mk.value(name)?.ok()?;
    (!value.is_empty() && !value.contains(char::is_whitespace)).then(|| (name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_map_as_the_makefile_loops_do() {
        let table = [
            ("a/.env.enc:app/.env", false, "a/.env.enc", "app/.env"),
            ("a/.env:app/.env", false, "a/.env.enc", "app/.env"),
            ("app/.env.enc", false, "app/.env.enc", "app/.env"),
            ("app/.env", false, "app/.env.enc", "app/.env"),
            ("app/.env:", false, "app/.env.enc", "app/.env"),
            (
                "n/app.conf:nginx/app.conf",
                true,
                "n/app.conf",
                "nginx/app.conf",
            ),
            (
                "docker-compose.yml",
                true,
                "docker-compose.yml",
                "docker-compose.yml",
            ),
        ];
        for (word, plain, repo, server) in table {
            let (r, s, p, w) = item(word, plain);
            assert_eq!(
                (r.as_str(), s.as_str(), p, w.as_str()),
                (repo, server, plain, word)
            );
        }
    }

    #[test]
    fn server_paths_are_made_relative_to_the_root() {
        let table = [
            ("/opt/docker", "app/.env", Some("app/.env")),
            ("/opt/docker", "./app/.env", Some("app/.env")),
            ("/opt/docker", "/opt/docker/app/.env", Some("app/.env")),
            (
                "/opt/docker/",
                "/opt/docker/nginx/.htpasswd",
                Some("nginx/.htpasswd"),
            ),
            ("/opt/docker", "/opt/dockerx/app/.env", None),
            ("/opt/docker", "/etc/app/.env", None),
            ("/opt/docker", "/opt/docker", None),
            ("/opt/docker", "../app/.env", None),
            ("/opt/docker", "/opt/docker/../etc/shadow", None),
            ("./server", "./server/app/.env", Some("app/.env")),
            ("server", "app/.env", Some("app/.env")),
        ];
        for (root, server, want) in table {
            assert_eq!(
                server_relative(root, server).as_deref(),
                want,
                "{root} {server}"
            );
        }
    }

    #[test]
    fn the_root_is_one_value_or_a_refusal() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            pick_one(vec![pair("SERVER_ROOT", "/srv")]),
            Ok(pair("SERVER_ROOT", "/srv"))
        );
        assert_eq!(
            pick_one(vec![pair("A_ROOT", "/srv"), pair("B_DIR", "/srv")]),
            Ok(pair("A_ROOT", "/srv"))
        );
        assert_eq!(
            pick_one(vec![pair("A_ROOT", "/srv"), pair("B_DIR", "/var")]),
            Err(ImportError::Root {
                candidates: vec!["A_ROOT = /srv".into(), "B_DIR = /var".into()]
            })
        );
        assert_eq!(
            pick_one(Vec::new()),
            Err(ImportError::Root { candidates: vec![] })
        );
    }

    #[test]
    fn a_makefile_is_imported() {
        let text = "SERVER_ROOT ?= /opt/docker\nBACKUP_DIR := /var/backups\n\
            SOPS_AGE_KEY_FILE ?= $(SERVER_ROOT)/.age-key.txt\n\
            SECRET_FILES := a/.env.enc:a/.env \\\n  b/.env:$(SERVER_ROOT)/b/.env \\\n  c/.env\n\
            INFRA_FILES := n.conf:nginx/n.conf\n";
        let got = import(text, None, "/repo").unwrap();
        assert_eq!(got.root, "/opt/docker");
        assert_eq!(got.root_var.as_deref(), Some("SERVER_ROOT"));
        let pairs: Vec<(&str, &str, bool)> = got
            .entries
            .iter()
            .map(|e| (e.repo.as_str(), e.server.as_str(), e.plain))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("a/.env.enc", "a/.env", false),
                ("b/.env.enc", "b/.env", false),
                ("c/.env.enc", "c/.env", false),
                ("n.conf", "nginx/n.conf", true),
            ]
        );
        assert_eq!(
            got.identity,
            Some((
                "SOPS_AGE_KEY_FILE".into(),
                "/opt/docker/.age-key.txt".into()
            ))
        );
        // --root stands for the prefix variable.
        let got = import(text, Some("/srv"), "/repo").unwrap();
        assert_eq!(got.entries[1].server, "b/.env");
        assert_eq!(got.root, "/srv");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let dup = "R_ROOT := /r\nSECRET_FILES := a:x b:/r/x\n";
        assert!(matches!(
            import(dup, None, "/repo"),
            Err(ImportError::Same { side: "server", ref first, ref second, .. })
                if first == "a:x" && second == "b:/r/x"
        ));
        let outside = "R_ROOT := /r\nSECRET_FILES := a:/etc/x\n";
        assert!(matches!(
            import(outside, None, "/repo"),
            Err(ImportError::OutsideRoot { .. })
        ));
        let ambiguous = "A_ROOT := /a\nB_DIR := /b\nSECRET_FILES := a:x\n";
        assert!(matches!(
            import(ambiguous, None, "/repo"),
            Err(ImportError::Root { .. })
        ));
        assert!(import(ambiguous, Some("/a"), "/repo").is_ok());
        let shell = "R_ROOT := /r\nSECRET_FILES := a:x \\\n  $(shell ls)\n";
        assert!(matches!(
            import(shell, None, "/repo"),
            Err(ImportError::Value(MakeError { line: 3, .. }))
        ));
        let escape = "R_ROOT := /r\nSECRET_FILES := ../a:x\n";
        assert!(matches!(
            import(escape, None, "/repo"),
            Err(ImportError::OutsideRepo { .. })
        ));
        assert_eq!(import("A = 1\n", None, "/repo"), Err(ImportError::NoLists));
        // A key itself is never taken for the key file.
        // Not a key: spelt in two parts so that secret scanners do not flag the source.
        let fake = ["AGE-SECRET-", "KEY-1XYZ"].concat();
        let key = format!("R_ROOT := /r\nSOPS_AGE_KEY := {fake}\nSECRET_FILES := a:x\n");
        assert_eq!(import(&key, None, "/repo").unwrap().identity, None);
    }
}
