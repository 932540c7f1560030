//! One module a command, and what they share: the run context and entry selection.
//!
//! Every command flows load → plan → apply: it reads and checks all selected entries first,
//! builds a plan, and only then writes (or, with `--dry-run`, prints the plan).

pub mod decrypt;
pub mod diff;
pub mod encrypt;

use std::path::{Path, PathBuf};

use globset::Glob;
use rayon::prelude::*;
use serde_json::json;

use crate::cli::{Command, Selection};
use crate::crypto::Identities;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fs::AtomicWriter;
use crate::keys;
use crate::manifest::Entry;
use crate::output::{Printer, Style};
use crate::settings::Settings;
use crate::sync::{Codec, Sides};

/// What a command runs with.
#[derive(Debug)]
pub struct Context {
    pub settings: Settings,
    pub cwd: PathBuf,
    pub writer: AtomicWriter,
}

impl Context {
    pub fn new(settings: Settings, cwd: PathBuf) -> Self {
        Self {
            settings,
            cwd,
            writer: AtomicWriter::new(),
        }
    }

    /// The entries a selection names, in manifest order.
    pub fn select(&self, selection: &Selection) -> Result<Vec<&Entry>, Error> {
        let manifest = &self.settings.manifest;
        let mut chosen = vec![selection.files.is_empty(); manifest.entries.len()];
        for pattern in &selection.files {
            let hits = self.matching(pattern)?;
            if hits.is_empty() {
                return Err(Error::NoMatch {
                    pattern: pattern.clone(),
                    manifest: manifest.path.display().to_string(),
                });
            }
            for i in hits {
                chosen[i] = true;
            }
        }
        Ok(manifest
            .entries
            .iter()
            .zip(chosen)
            .filter(|(entry, chosen)| {
                *chosen
                    && (selection.tags.is_empty()
                        || selection.tags.iter().any(|t| entry.tags.contains(t)))
            })
            .map(|(entry, _)| entry)
            .collect())
    }

    fn matching(&self, pattern: &str) -> Result<Vec<usize>, Error> {
        let as_path = self.cwd.join(pattern);
        let same = |a: &Path, b: &Path| a == b || normalise(a) == normalise(b);
        let exact: Vec<usize> = self
            .settings
            .manifest
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                e.repo == pattern
                    || e.server == pattern
                    || same(&as_path, &e.repo_path)
                    || same(&as_path, &e.server_path)
            })
            .map(|(i, _)| i)
            .collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
        let glob = Glob::new(pattern)
            .map_err(|_| Error::BadGlob {
                pattern: pattern.to_string(),
            })?
            .compile_matcher();
        Ok(self
            .settings
            .manifest
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| glob.is_match(&e.repo) || glob.is_match(&e.server))
            .map(|(i, _)| i)
            .collect())
    }

    /// Loads identities when any selected entry is encrypted.
    pub fn identities(&self, entries: &[&Entry]) -> Result<Option<Identities>, Error> {
        if entries.iter().all(|e| e.plain) {
            return Ok(None);
        }
        Ok(Some(keys::load_identities(&self.settings.identities)?))
    }

    /// Reads both sides of every entry in parallel; all errors are collected.
    pub fn read_all<'m>(&self, entries: &[&'m Entry]) -> Result<Vec<Sides<'m>>, Error> {
        collect(
            entries
                .par_iter()
                .map(|e| Sides::read(&self.settings.manifest, e))
                .collect(),
        )
    }
}

/// Splits results into the values or one error listing every failure.
pub fn collect<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut values = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    match Error::from_many(errors) {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

/// Lexical normalisation (`a/./b` → `a/b`), for comparing user paths with entry paths.
fn normalise(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// One entry's outcome, as decrypt and encrypt report it.
pub struct Outcome<'m> {
    pub entry: &'m Entry,
    pub codec: Codec,
    /// `create`, `update`, `unchanged`…
    pub action: &'static str,
    pub style: Style,
    /// Nothing to do: shown only with --verbose (or in a dry run's plan).
    pub idle: bool,
    /// `repo → server` or `repo ← server`, with any note.
    pub detail: String,
}

/// Prints what a writing command did (or, with `dry_run`, would do): the plan on stdout for
/// a dry run, progress on stderr otherwise, a JSON document with --json.
pub fn report(printer: &Printer, command: &str, dry_run: bool, outcomes: &[Outcome<'_>]) {
    if printer.json {
        let entries: Vec<_> = outcomes
            .iter()
            .map(|o| {
                json!({
                    "repo": o.entry.repo,
                    "server": o.entry.server,
                    "format": o.codec.name(),
                    "action": o.action,
                    "mode": format!("{:04o}", o.entry.mode),
                })
            })
            .collect();
        printer.json(&json!({
            "version": 1,
            "command": command,
            "dry_run": dry_run,
            "entries": entries,
        }));
        return;
    }
    for o in outcomes {
        let would = if dry_run && !o.idle { "would " } else { "" };
        let line = format!("{would}{:<9} {}", o.action, o.detail);
        if dry_run {
            printer.data(o.style, &line);
        } else if o.idle {
            printer.verbose(&line);
        } else {
            printer.info(o.style, &line);
        }
    }
}

/// `repo → server` for messages.
pub fn arrow(entry: &Entry) -> String {
    format!("{} → {}", entry.repo, entry.server)
}

/// Whether an entry's codec needs a key at all.
pub fn needs_key(sides: &Sides<'_>) -> bool {
    sides.codec != Codec::Plain
}

/// Runs one command.
pub fn dispatch(ctx: &Context, command: &Command) -> Result<ExitStatus, Error> {
    match command {
        Command::Decrypt { selection, dry_run } => decrypt::run(ctx, selection, *dry_run),
        Command::Encrypt {
            selection,
            dry_run,
            allow_empty,
        } => encrypt::run(ctx, selection, *dry_run, *allow_empty),
        Command::Diff { selection } => diff::run(ctx, selection),
    }
}
