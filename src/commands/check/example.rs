//! The keys of a dotenv entry against its `example`: missing and undocumented keys, read
//! by name only.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Kind, Problem};
use crate::error::Error;
use crate::format::Format;
use crate::manifest::Entry;
use crate::sops::store::dotenv::{self, Item};

/// The keys of a dotenv entry against its `example`: missing and undocumented keys, both
/// named. Only key names are read from either side; values are never looked at.
pub(super) fn check_example(
    root: &Path,
    entry: &Entry,
    example: &str,
    enc: &[u8],
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let repo = &entry.repo;
    let mut problem = |kind, message: String, fix: String| {
        problems.push(Problem {
            file: repo.clone(),
            kind,
            message,
            fix,
        });
    };
    let path = root.join(example);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problem(
                Kind::Example,
                format!("its example {example} is missing"),
                format!("create {example} with the entry's keys (KEY= lines), or remove `example` from its entry"),
            );
            return Ok(());
        }
        Err(source) => return Err(Error::Read { path, source }),
    };
    let documented = match example_keys(&text) {
        Ok(keys) => keys,
        Err(line) => {
            problem(
                Kind::Example,
                format!("its example {example} is not a dotenv file (line {line} is not a KEY=value line)"),
                format!("write {example} as KEY=value lines and # comments"),
            );
            return Ok(());
        }
    };
    let dotenv_entry = entry.plain
        || entry.format == Some(Format::Dotenv)
        || (entry.format.is_none() && Format::detect(enc) == Some(Format::Dotenv));
    let have = match dotenv::parse(enc) {
        Ok(items) if dotenv_entry => entry_keys(&items),
        _ => {
            problem(
                Kind::Example,
                format!("has an example ({example}) but is not a dotenv file"),
                "remove `example` from its entry: only dotenv keys are compared".into(),
            );
            return Ok(());
        }
    };
    let (missing, undocumented) = key_drift(&have, &documented);
    if !missing.is_empty() {
        problem(
            Kind::MissingKeys,
            format!(
                "lacks keys its example {example} documents: {}",
                missing.join(", ")
            ),
            format!(
                "add them to {} and run `envsync encrypt {repo}`, or remove them from {example}",
                entry.server
            ),
        );
    }
    if !undocumented.is_empty() {
        problem(
            Kind::UndocumentedKeys,
            format!(
                "has keys its example {example} does not document: {}",
                undocumented.join(", ")
            ),
            format!("add `KEY=` lines for them to {example}"),
        );
    }
    Ok(())
}

/// The keys of a parsed dotenv entry (sops metadata left out), as an example names them.
fn entry_keys(items: &[Item]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Pair { key, .. } => Some(normal_key(key)),
            Item::Comment(_) => None,
        })
        .filter(|key| !key.starts_with("sops_"))
        .collect()
}

/// The keys an example file documents: `KEY=...` lines, with `export` and spaces allowed as
/// shells and dotenv libraries allow them; `#` lines are comments; a quoted value may run
/// over several lines, as docker compose reads it. Err is the first line that is none of
/// these (its text is never shown: it may be a pasted value).
fn example_keys(text: &[u8]) -> Result<BTreeSet<String>, usize> {
    let mut keys = BTreeSet::new();
    // The quote a multi-line value is waiting for.
    let mut open: Option<u8> = None;
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(quote) = open {
            if line.contains(&quote) {
                open = None;
            }
            continue;
        }
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let eq = line.iter().position(|&b| b == b'=').ok_or(index + 1)?;
        let key = std::str::from_utf8(&line[..eq]).map_err(|_| index + 1)?;
        let key = normal_key(key);
        if !is_key_name(&key) {
            return Err(index + 1);
        }
        let value = line[eq + 1..].trim_ascii_start();
        if let Some(&quote @ (b'"' | b'\'')) = value.first() {
            if !value[1..].contains(&quote) {
                open = Some(quote);
            }
        }
        keys.insert(key);
    }
    Ok(keys)
}

/// A dotenv key name: a letter or `_`, then letters, digits, `_`, `.` or `-`.
fn is_key_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A key as written, without an `export` prefix or surrounding spaces.
fn normal_key(key: &str) -> String {
    let key = key.trim();
    match key.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim().to_string(),
        _ => key.to_string(),
    }
}

/// The example's keys the entry lacks, and the entry's keys the example lacks, sorted.
fn key_drift(have: &BTreeSet<String>, documented: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (
        documented.difference(have).cloned().collect(),
        have.difference(documented).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn example_keys_are_key_names_only() {
        let text = b"# Database\nDB_HOST=localhost\n  export DB_PASSWORD=\n\nAPI_KEY = changeme\n#OPTIONAL=x\n";
        assert_eq!(
            example_keys(text),
            Ok(set(&["API_KEY", "DB_HOST", "DB_PASSWORD"]))
        );
        assert_eq!(example_keys(b"A=1\nnot a pair\n"), Err(2));
        assert_eq!(example_keys(b"=value\n"), Err(1));
        // A pasted URL or token is not a key name, and is never echoed as one.
        assert_eq!(example_keys(b"A=1\nhttps://x.example/?a=b\n"), Err(2));
        assert_eq!(
            example_keys(b"export\tA=1\nCERT=\"-----BEGIN\nabc=def\n-----END\"\nB='x\ny=z'\nC=3\n"),
            Ok(set(&["A", "B", "C", "CERT"]))
        );
        assert_eq!(example_keys(b"export=1\n"), Ok(set(&["export"])));
    }

    #[test]
    fn example_drift_names_both_sides() {
        let table = [
            (set(&["A", "B"]), set(&["B", "A"]), vec![], vec![]),
            (set(&["A"]), set(&["A", "B"]), vec!["B"], vec![]),
            (set(&["A", "C"]), set(&["A"]), vec![], vec!["C"]),
            (set(&["A", "C"]), set(&["B"]), vec!["B"], vec!["A", "C"]),
        ];
        for (have, documented, missing, undocumented) in table {
            let (m, u) = key_drift(&have, &documented);
            assert_eq!(
                (m, u),
                (
                    missing.into_iter().map(String::from).collect::<Vec<_>>(),
                    undocumented
                        .into_iter()
                        .map(String::from)
                        .collect::<Vec<_>>()
                ),
                "{have:?} {documented:?}"
            );
        }
    }
}
