//! `envsync diff`: what differs between each `.enc` and its server file, values masked.
//!
//! Keyed entries (dotenv, YAML, JSON, INI, `key`) list keys added, removed and changed with
//! value lengths; other files get a unified diff with every line masked, in clear for
//! `plain = true` entries (config, not secrets). A server file whose mode, owner or group
//! differs from its entry is drift too. Exit 1 when anything differs.

use rayon::prelude::*;
use serde::Serialize;

use super::{arrow, Context, EntryError};
use crate::cli::Selection;
use crate::diff::{self, KeyChange};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::manifest::Entry;
use crate::output::json::Changes;
use crate::output::Style;
use crate::sops::store::dotenv;
use crate::sync::{Codec, Sides};

/// How one entry's two sides compare, as `diff` reports it (content only: the sync state
/// is `status`'s business).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Comparison {
    InSync,
    Drift,
    ServerMissing,
    RepoMissing,
    BothMissing,
}

/// The JSON body of `diff` (docs/json/diff.schema.json).
#[derive(Serialize)]
struct DiffReport<'a> {
    /// Whether any entry differs (the exit status is then 1).
    drift: bool,
    entries: Vec<&'a EntryDiff>,
    /// With --keep-going: the entries that could not be compared.
    errors: &'a [EntryError],
}

#[derive(Debug, Serialize)]
struct EntryDiff {
    repo: String,
    server: String,
    state: Comparison,
    /// What differs: keys added, removed and changed with lengths, comments, order, the
    /// size of files without keys, and the server file's mode, owner and group.
    changes: Changes,
    /// Files without keys: the unified diff, every line masked (in clear for `plain`
    /// entries).
    lines: Vec<String>,
}

pub(crate) fn run(
    ctx: &Context,
    selection: &Selection,
    keep_going: bool,
) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let identities = ctx.identities(&entries)?;
    let results = ctx
        .read_each(&entries)
        .into_par_iter()
        .map(|sides| {
            let sides = sides?;
            compare(&sides, identities.as_ref()).map(|d| (sides.entry, d))
        })
        .collect();
    let (diffs, failed, errors) = super::keep_going(&entries, results, keep_going)?;
    let drift = diffs
        .iter()
        .any(|(_, d)| !matches!(d.state, Comparison::InSync));
    report(ctx, &diffs, &failed);
    if let Some(error) = Error::from_many(errors) {
        return Err(error);
    }
    Ok(if drift {
        ExitStatus::Drift
    } else {
        ExitStatus::Success
    })
}

/// Content and permissions: a mode, owner or group that differs from the entry's is drift.
fn compare(
    sides: &Sides<'_>,
    identities: Option<&crate::crypto::Identities>,
) -> Result<EntryDiff, Error> {
    let mut result = compare_content(sides, identities)?;
    result.changes.perms = sides.perm_drift();
    if !result.changes.perms.is_empty() && matches!(result.state, Comparison::InSync) {
        result.state = Comparison::Drift;
    }
    Ok(result)
}

fn compare_content(
    sides: &Sides<'_>,
    identities: Option<&crate::crypto::Identities>,
) -> Result<EntryDiff, Error> {
    let entry = sides.entry;
    let mut result = EntryDiff {
        repo: entry.repo.clone(),
        server: entry.server.clone(),
        state: Comparison::InSync,
        changes: Changes::default(),
        lines: Vec::new(),
    };
    if sides.unchanged_since_sync(identities) {
        return Ok(result);
    }
    let repo = sides.open_repo(identities)?;
    let server = sides.server.as_ref();
    let (repo, server) = match (repo, server) {
        (None, None) => {
            result.state = Comparison::BothMissing;
            return Ok(result);
        }
        (None, Some(_)) => {
            result.state = Comparison::RepoMissing;
            return Ok(result);
        }
        (Some(_), None) => {
            result.state = Comparison::ServerMissing;
            return Ok(result);
        }
        (Some(r), Some(s)) => (r, s),
    };
    if sides.view_codec() == Codec::Encrypted(Format::Dotenv) {
        let parse = |bytes: &[u8], path: &std::path::Path| {
            dotenv::parse(bytes).map_err(|e| Error::File {
                path: path.to_path_buf(),
                source: e.into(),
            })
        };
        let old = parse(repo.plaintext.expose(), &entry.repo_path)?;
        // A files folder, laid out like the `.enc` (its comments and order).
        let laid_out = (sides.folder.as_ref()).map(|f| f.plaintext(Some(repo.plaintext.expose())));
        let new = parse(
            laid_out.as_ref().unwrap_or(&server.bytes).expose(),
            &entry.server_path,
        )?;
        result.changes = Changes::from_keys(&diff::dotenv(&old, &new));
        if !result.changes.is_empty() {
            result.state = Comparison::Drift;
        }
    } else if let Some(key) = &entry.key {
        // One value: its bytes against the server file's.
        let (old, new) = (&repo.plaintext, &server.bytes);
        if old != new {
            result.changes = Changes::from_keys(&[KeyChange::Changed {
                key: key.to_string(),
                old_len: old.display_len(),
                new_len: new.display_len(),
            }]);
            result.state = Comparison::Drift;
        }
    } else if let Some(codec) = sides.codec.format().and_then(Format::codec) {
        let parse = |bytes: &[u8], path: &std::path::Path| {
            codec.parse(bytes).map_err(|e| Error::File {
                path: path.to_path_buf(),
                source: e.into(),
            })
        };
        let old = parse(repo.plaintext.expose(), &entry.repo_path)?;
        let new = parse(server.bytes.expose(), &entry.server_path)?;
        result.changes = Changes::from_keys(&diff::tree(&old, &new));
        if !result.changes.is_empty() {
            result.state = Comparison::Drift;
        }
    } else {
        let (old, new) = (repo.plaintext.expose(), server.bytes.expose());
        // `plain = true` entries are config, not secrets: their diff is shown in clear.
        let lines = if sides.codec == Codec::Plain {
            diff::clear_text(old, new)
        } else {
            diff::masked_text(old, new)
        };
        if let Some(lines) = lines {
            result.lines = lines;
            result.changes = Changes::content(old.len(), new.len());
            result.state = Comparison::Drift;
        }
    }
    Ok(result)
}

fn report(ctx: &Context, diffs: &[(&Entry, EntryDiff)], failed: &[EntryError]) {
    let printer = &ctx.settings.printer;
    if printer.json {
        printer.json(&DiffReport {
            drift: diffs
                .iter()
                .any(|(_, d)| !matches!(d.state, Comparison::InSync)),
            entries: diffs.iter().map(|(_, d)| d).collect(),
            errors: failed,
        });
        return;
    }
    for (entry, d) in diffs {
        let head = arrow(entry);
        match d.state {
            Comparison::InSync => printer.verbose(&format!("in sync   {head}")),
            Comparison::ServerMissing => printer.data(
                Style::Removed,
                &format!("{head}: server file missing (envsync decrypt creates it)"),
            ),
            Comparison::RepoMissing => printer.data(
                Style::Added,
                &format!("{head}: repo file missing (envsync encrypt creates it)"),
            ),
            Comparison::BothMissing => {
                printer.data(Style::Removed, &format!("{head}: both files missing"))
            }
            Comparison::Drift => {
                printer.data(Style::Header, &format!("{head}:"));
                // A file without keys shows its unified diff, not its sizes.
                let mut changes = d.changes.clone();
                if !d.lines.is_empty() {
                    changes.content = None;
                }
                let shown = changes.lines(diff::DRIFT);
                for line in shown.into_iter().chain(d.lines.iter().cloned()) {
                    printer.data(Style::for_line(&line), &format!("  {line}"));
                }
            }
        }
    }
}
