//! `envsync add SERVER_PATH [--repo P] [--format F] [--tag T] [-n]`: registers a server file.
//!
//! Load: the server path is resolved and refused when it is already managed, missing or not
//! a regular file; the repo path must be free (no entry, no file). Plan: the `[[file]]` entry
//! is appended to the manifest text with `toml_edit` (comments, order and layout of the rest
//! kept) and the result is validated as any manifest is; the `.gitignore` line is worked out
//! when the plaintext sits inside the repo; the first encrypt is planned as `encrypt` plans
//! it. Apply: the new `.enc`, the manifest and `.gitignore` are one batch with the sync
//! record, so a failure anywhere leaves every file as it was. `--dry-run` prints the plan.
//!
//! `--json`: docs/json.md (`dry_run`, `manifest`, `entry`, `gitignore`, `changes`).

use std::path::Path;

use serde::Serialize;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table};

use super::{encrypt, relative, settle, Context, Flags};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::fs::Op;
use crate::git;
use crate::keys::Recipients;
use crate::manifest::Manifest;
use crate::output::json::Changes;
use crate::output::Style;
use crate::sync::decision::Direction;
use crate::sync::repo_file_job;

/// What `envsync add` was asked.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) server: &'a str,
    pub(crate) repo: Option<&'a str>,
    pub(crate) format: Option<&'a str>,
    pub(crate) tags: &'a [String],
    pub(crate) dry_run: bool,
    pub(crate) allow_empty: bool,
}

/// The entry as it is added (the JSON `entry`).
#[derive(Debug, Serialize)]
struct NewEntry {
    repo: String,
    server: String,
    format: &'static str,
    tags: Vec<String>,
}

pub(crate) fn run(ctx: &mut Context, request: &Request<'_>) -> Result<ExitStatus, Error> {
    // Load: every refusal before anything is planned.
    let old = &ctx.settings.manifest;
    let server = server_relative(old, &ctx.cwd, request.server)?;
    let refuse = |reason: String| Error::Add {
        path: request.server.to_string(),
        reason,
    };
    if let Some(entry) = old.entries.iter().find(|e| e.server == server) {
        return Err(refuse(format!(
            "it is already managed by the entry on line {} of {} (repo = \"{}\"); nothing was written",
            entry.line,
            old.path.display(),
            entry.repo
        )));
    }
    let server_path = old.server_root.join(&server);
    // Without following a symlink at any level, as every read of a server file.
    if crate::fs::open(&old.server_root, &server)?.is_none() {
        return Err(refuse(format!(
            "{} does not exist; create the server file first, then add it; nothing was written",
            server_path.display()
        )));
    }
    let repo = match request.repo {
        Some(repo) => repo_relative(old, &ctx.cwd, repo),
        None => format!("{server}.enc"),
    };
    if let Some(entry) = old.entries.iter().find(|e| e.repo == repo) {
        return Err(refuse(format!(
            "the repo path {repo} is already the entry on line {}; pass --repo with another path; nothing was written",
            entry.line
        )));
    }
    let manifest_real = old.path.canonicalize().map_err(|source| Error::Read {
        path: old.path.clone(),
        source,
    })?;
    let manifest_name = manifest_real
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(crate::manifest::FILE_NAME)
        .to_string();
    if repo == manifest_name
        || repo == ".gitignore"
        || relative(&old.repo_root, &old.state_dir)
            .is_some_and(|state| repo == state || repo.starts_with(&format!("{state}/")))
    {
        return Err(refuse(format!(
            "--repo {repo} is the manifest, .gitignore or envsync's state folder; pass another path; nothing was written"
        )));
    }
    if std::fs::symlink_metadata(old.repo_root.join(&repo)).is_ok() {
        return Err(refuse(format!(
            "{repo} already exists in the repo; pass --repo with another path, or map it with a [[file]] entry by hand and run `envsync status`; nothing was written"
        )));
    }
    let format = match request.format {
        Some(name) => parse_format(name)?,
        None => Format::for_server_name(server.rsplit('/').next().unwrap_or(&server)),
    };

    // Plan: the manifest text, validated as a manifest. It is read and written where it
    // really is (a symlinked manifest is followed once, here, to its folder: the repo root).
    let manifest_file = crate::fs::read(&old.repo_root, &manifest_name)?.ok_or_else(|| {
        refuse(format!(
            "{} disappeared while envsync ran; nothing was written",
            old.path.display()
        ))
    })?;
    let old_text = std::str::from_utf8(manifest_file.bytes.expose()).map_err(|_| {
        refuse(format!(
            "{} is not UTF-8 text; nothing was written",
            old.path.display()
        ))
    })?;
    let new_text = with_entry(
        old_text,
        &repo,
        &server,
        request.format.map(|_| format),
        request.tags,
    )
    .map_err(|reason| refuse(format!("{reason}; nothing was written")))?;
    let new = Manifest::parse(&old.path, &new_text).map_err(|e| {
        refuse(format!(
            "the new entry would not be valid: {}; nothing was written",
            e.message
        ))
    })?;
    let ignores = git::plan_ignores(&new.repo_root, &new.state_dir, &[&server_path])?;
    if !ignores.tracked.is_empty() {
        return Err(refuse(format!(
            "git tracks it: it was committed in clear; run `git rm --cached {}` and treat its values as leaked (rotate them), then add it; nothing was written",
            server_path.display()
        )));
    }
    let ignore = ignores.lines;
    let gitignore_base = ignores.base;
    let gitignore_file = match ignore.is_empty() {
        true => None,
        false => crate::fs::read(&gitignore_base, ".gitignore")?,
    };
    let gitignore_text = git::with_ignores(
        gitignore_file
            .as_ref()
            .map_or(&[][..], |f| f.bytes.expose()),
        &ignore,
    );
    let added = NewEntry {
        repo: repo.clone(),
        server: server.clone(),
        format: format.name(),
        tags: request.tags.to_vec(),
    };
    ctx.settings.manifest = new;
    let ctx: &Context = ctx;
    let manifest = &ctx.settings.manifest;
    let entry = manifest
        .entries
        .iter()
        .find(|e| e.server == server)
        .expect("the parsed manifest holds the entry just added");

    // Plan: the first encrypt, as `encrypt` plans it (a new file needs no identity).
    let flags = Flags {
        dry_run: request.dry_run,
        allow_empty: request.allow_empty,
        ..Flags::default()
    };
    let recipients = Recipients::load(&manifest.repo_root, &manifest.path)?;
    let sides = ctx.read_all(&[entry])?;
    let planned = sides
        .iter()
        .map(|s| encrypt::plan(s, &recipients, None, flags))
        .collect();
    let steps = settle(Direction::Encrypt, planned)?;

    // Apply: the .enc, the manifest, .gitignore and the record in one batch.
    if !request.dry_run {
        let mut extra = vec![Op::Write(repo_file_job(
            &manifest.repo_root,
            &manifest_name,
            new_text.as_bytes(),
            Some(&manifest_file),
        ))];
        if !ignore.is_empty() {
            extra.push(Op::Write(repo_file_job(
                &gitignore_base,
                ".gitignore",
                &gitignore_text,
                gitignore_file.as_ref(),
            )));
        }
        let _lock = ctx.prepare_writes([entry], false)?;
        encrypt::apply(ctx, &steps, extra)?;
    }
    // add writes the repo side only; a server file looser than its entry says is a decrypt
    // away from right, and the operator is told so.
    let perms_hint = sides
        .first()
        .filter(|s| s.server_perms_drift())
        .and_then(|s| {
            let (have, want) = (s.server.as_ref()?.mode, s.server_perms().mode);
            let what = match have == want {
                true => "not owned as its entry says".to_string(),
                false => format!("mode {have:04o}, its entry says {want:04o}"),
            };
            Some(format!(
                "{server} is {what}: run `envsync decrypt {repo}` to set it"
            ))
        });
    // What the first encrypt puts in the `.enc`: every key, added.
    let changes = steps
        .first()
        .and_then(|s| {
            let plain = s.analysis.server.as_ref()?;
            Some(super::plan_changes(s.sides, None, plain.expose()))
        })
        .unwrap_or_default();
    report(
        ctx,
        (&added, changes),
        &new_text,
        old_text,
        &ignore,
        request.dry_run,
        perms_hint,
    );
    Ok(ExitStatus::Success)
}

/// The JSON body of `add` (docs/json/add.schema.json).
#[derive(Serialize)]
struct AddReport<'a> {
    dry_run: bool,
    /// The manifest the entry is appended to.
    manifest: String,
    entry: &'a NewEntry,
    /// Lines added to .gitignore.
    gitignore: &'a [String],
    /// What the first encrypt puts in the `.enc` (every key, added).
    changes: &'a Changes,
}

fn report(
    ctx: &Context,
    (added, changes): (&NewEntry, Changes),
    new_text: &str,
    old_text: &str,
    ignore: &[String],
    dry_run: bool,
    perms_hint: Option<String>,
) {
    let printer = &ctx.settings.printer;
    let manifest = &ctx.settings.manifest.path;
    if printer.json {
        printer.json(&AddReport {
            dry_run,
            manifest: manifest.display().to_string(),
            entry: added,
            gitignore: ignore,
            changes: &changes,
        });
        return;
    }
    let would = if dry_run { "would " } else { "" };
    printer.data(
        Style::Added,
        &format!(
            "{would}add {} ← {} ({})",
            added.repo, added.server, added.format
        ),
    );
    if dry_run {
        // The text appended to the manifest, as it would be written.
        let appended = new_text.strip_prefix(old_text).unwrap_or(new_text);
        printer.data(
            Style::Plain,
            &format!("{would}append to {}:", manifest.display()),
        );
        for line in appended.trim_matches('\n').lines() {
            printer.data(Style::Plain, &format!("  {line}"));
        }
    }
    for line in ignore {
        printer.data(Style::Plain, &format!("{would}add to .gitignore: {line}"));
    }
    if let Some(drift) = &perms_hint {
        printer.info(Style::Changed, drift);
    }
    if !dry_run {
        printer.info(
            Style::Plain,
            &format!(
                "encrypted {} and registered it in {}; commit both (and .gitignore)",
                added.repo,
                manifest.display()
            ),
        );
    }
}

/// The server path relative to `server.root`. An absolute path must be under the root; a
/// relative one is taken from the working folder when that is inside the root (an operator
/// in /opt/docker/app types `.env`), else from the root, as the manifest writes them.
fn server_relative(manifest: &Manifest, cwd: &Path, given: &str) -> Result<String, Error> {
    let root = &manifest.server_root;
    // The working folder is a resolved path: compare it with the resolved root too (a
    // root reached through a symlink, /srv/live → /srv/releases/3).
    let real_root = root.canonicalize().unwrap_or_else(|_| root.clone());
    let path = Path::new(given);
    let outside = || Error::Add {
        path: given.to_string(),
        reason: format!(
            "it is not inside server.root ({}); nothing was written",
            root.display()
        ),
    };
    if path.is_absolute() {
        return relative(root, path)
            .or_else(|| relative(&real_root, path))
            .ok_or_else(outside);
    }
    // Relative: from the root, as the manifest writes them, or from the working folder
    // when that is inside the root (an operator in /opt/docker/app types `.env`). When
    // the two name different files that both exist, the operator must say which.
    let from_root = relative(root, &root.join(path));
    let from_cwd = (relative(&real_root, cwd).is_some() || cwd == real_root)
        .then(|| relative(&real_root, &cwd.join(path)))
        .flatten();
    let exists = |rel: &Option<String>| {
        rel.as_ref()
            .is_some_and(|r| matches!(crate::fs::stamp(root, r), Ok(Some(_))))
    };
    match (&from_root, &from_cwd) {
        (Some(a), Some(b)) if a != b && exists(&from_root) && exists(&from_cwd) => {
            Err(Error::Add {
                path: given.to_string(),
                reason: format!(
                    "it names both {a} (from server.root) and {b} (from this folder); pass the absolute path; nothing was written"
                ),
            })
        }
        _ if exists(&from_cwd) => from_cwd.ok_or_else(outside),
        _ => from_root.ok_or_else(outside),
    }
}

/// A `--repo` path relative to the repo root: as given when relative (as in the manifest),
/// or stripped of the repo root when absolute (left absolute otherwise, so that the
/// manifest check names it).
fn repo_relative(manifest: &Manifest, cwd: &Path, given: &str) -> String {
    let path = cwd.join(given);
    if Path::new(given).is_absolute() {
        return relative(&manifest.repo_root, &path).unwrap_or_else(|| given.to_string());
    }
    given.to_string()
}

fn parse_format(name: &str) -> Result<Format, Error> {
    match name {
        "dotenv" => Ok(Format::Dotenv),
        "binary" => Ok(Format::Binary),
        "age" => Ok(Format::Age),
        "yaml" => Ok(Format::Yaml),
        "json" => Ok(Format::Json),
        "ini" => Ok(Format::Ini),
        other => Err(Error::Add {
            path: other.to_string(),
            reason: "the formats are dotenv, binary, age, yaml, json and ini".into(),
        }),
    }
}

/// `text` with a `[[file]]` table appended after the existing ones. Everything else in the
/// document (comments, blank lines, key order, quoting) is kept as it was. Err says why the
/// manifest cannot take one.
fn with_entry(
    text: &str,
    repo: &str,
    server: &str,
    format: Option<Format>,
    tags: &[String],
) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        format!("the manifest is not valid TOML ({})", e.message())
    })?;
    // After whatever ends the file now (a last comment stays where it was, above the new
    // entry), and a blank line before it, as the manifest's own entries are written.
    let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
    doc.set_trailing("");
    let prefix = match trailing.trim_end_matches('\n') {
        "" => "\n".to_string(),
        kept => format!("{kept}\n\n"),
    };
    let files = doc
        .entry("file")
        .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(files) = files.as_array_of_tables_mut() else {
        return Err(
            "the manifest's `file` is not written as [[file]] tables; add the entry by hand".into(),
        );
    };
    let mut table = Table::new();
    table.insert("repo", toml_edit::value(repo));
    table.insert("server", toml_edit::value(server));
    if let Some(format) = format {
        table.insert("format", toml_edit::value(format.name()));
    }
    if !tags.is_empty() {
        table.insert("tags", toml_edit::value(tags.iter().collect::<Array>()));
    }
    table.decor_mut().set_prefix(prefix);
    files.push(table);
    let mut out = doc.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str =
        "# Our secrets.\nversion = 1\n\n[server]\nroot = \"/srv\" # the server\n\n\
        [[file]] # first\nrepo = 'a.enc'\nserver = \"a\"\n\n# trailing comment\n";

    #[test]
    fn an_entry_is_appended_and_everything_else_kept() {
        let out = with_entry(MANIFEST, "b/.env.enc", "b/.env", None, &["web".into()]).unwrap();
        assert!(out.starts_with(MANIFEST), "{out}");
        assert!(
            out.ends_with(
                "\n[[file]]\nrepo = \"b/.env.enc\"\nserver = \"b/.env\"\ntags = [\"web\"]\n"
            ),
            "{out}"
        );
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(parsed["file"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_first_entry_makes_the_table_array() {
        let text = "version = 1\n[server]\nroot = \"/srv\"\n";
        let out = with_entry(text, "x.enc", "x", Some(Format::Binary), &[]).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(parsed["file"][0]["format"].as_str(), Some("binary"));
        assert!(out.starts_with(text), "{out}");
    }

    #[test]
    fn inline_file_arrays_and_broken_toml_are_refused() {
        let inline =
            "version = 1\nfile = [{repo = \"a.enc\", server = \"a\"}]\n[server]\nroot = \"/\"\n";
        assert!(with_entry(inline, "b.enc", "b", None, &[])
            .unwrap_err()
            .contains("by hand"));
        assert!(with_entry("version = = 1", "b.enc", "b", None, &[])
            .unwrap_err()
            .contains("not valid TOML"));
    }

    #[test]
    fn paths_with_quotes_are_escaped() {
        let out = with_entry("version = 1\n", "a\"b.enc", "a\"b", None, &[]).unwrap();
        let parsed: toml::Value = toml::from_str(&out).unwrap();
        assert_eq!(parsed["file"][0]["server"].as_str(), Some("a\"b"));
    }
}
