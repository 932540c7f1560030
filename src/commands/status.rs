//! `envsync status`: one line per entry with its sync state and what to run next; exit 1
//! unless everything is in sync, modes and owners included.
//!
//! `--json` (docs/json.md) prints `{"in_sync": bool, "entries": [...], "errors": [...]}` in
//! the envelope; each entry is `{"repo", "server", "state", "next", "drift"}` where `state` is one of
//! `in-sync`, `server-changed`, `repo-changed`, `conflict`, `server-missing`, `repo-missing`,
//! `new`, `missing`; `next` is the command that resolves it (or null); `drift` lists
//! `{"field": "mode"|"owner"|"group", "actual", "expected"}` for the server file (owners
//! and groups by name);
//! `as = "files"` entries add `unmanaged` (files in the folder no key maps to, left alone)
//! and, with `releases`, `release` (where `current` points) and `rolled_back_to` (set after
//! `envsync rollback` while the state is `rolled-back`). `recipients_differ` says how the
//! `.enc`'s recipients differ from today's rules (null when they agree): that is drift too.
//! `older_than_last_sync` is true when the `.enc` changed since the last sync into one with an
//! earlier sops `lastmodified` (a revert, or a stale checkout), which the text shows as
//! `repo-changed (older than the last sync)`; then `repo_lastmodified` and
//! `synced_lastmodified` give both dates (RFC 3339, as the files spell them), else null.

use rayon::prelude::*;
use serde::Serialize;

use super::Context;
use crate::cli::Selection;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::keys::Recipients;
use crate::output::json::PermDrift;
use crate::output::Style;
use crate::sops::SopsError;
use crate::sync::decision::{next, Next};
use crate::sync::state::State;
use crate::sync::{Codec, Sides};

/// The JSON body of `status` (docs/json/status.schema.json).
#[derive(Serialize)]
struct StatusReport<'a> {
    /// Whether every entry is in sync, modes, owners and recipients included.
    in_sync: bool,
    entries: &'a [EntryStatus],
    /// With --keep-going: the entries that could not be read.
    errors: &'a [super::EntryError],
}

#[derive(Debug, Serialize)]
struct EntryStatus {
    repo: String,
    server: String,
    state: &'static str,
    next: Option<String>,
    drift: Vec<PermDrift>,
    older_than_last_sync: bool,
    repo_lastmodified: Option<String>,
    synced_lastmodified: Option<String>,
    /// `as = "files"`: files in the folder that no key maps to (left alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    unmanaged: Option<Vec<String>>,
    /// `releases`: the release `current` points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<String>,
    /// After `envsync rollback`: the release it went back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    rolled_back_to: Option<String>,
    /// How the `.enc`'s recipients differ from today's rules (`.sops.yaml` or the entry),
    /// or null: `envsync rekey` re-wraps it, `envsync encrypt --force` re-encrypts it when
    /// the old key is lost.
    recipients_differ: Option<String>,
    #[serde(skip)]
    clean: bool,
}

pub(crate) fn run(
    ctx: &Context,
    selection: &Selection,
    keep_going: bool,
) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let identities = ctx.identities(&entries)?;
    let manifest = &ctx.settings.manifest;
    let recipients = Recipients::load(&manifest.repo_root, &manifest.path)?;
    let results = ctx
        .read_each(&entries)
        .into_par_iter()
        .map(|s| {
            let sides = s?;
            let s = &sides;
            // Recipients are drift too, whatever the content's state: a new key in
            // `.sops.yaml`, or an old one lost.
            // A broken `.sops.yaml` is reported by the commands that encrypt; status
            // still tells every entry's state.
            let drift = match s.codec {
                Codec::Encrypted(_) => recipients
                    .options_for(s.entry)
                    .ok()
                    .and_then(|options| s.recipient_drift(&options)),
                Codec::Plain => None,
            };
            let analysis = match s.analyse(identities.as_ref()) {
                // The file is not yet encrypted to today's keys, so none of them opens
                // it (the old key is lost), and it is the one the last sync left: its
                // state is judged from the sync record. A newer `.enc` no key here opens
                // (a teammate's rotation) stays an error: nothing may hint at overwriting it.
                Err(Error::File {
                    source: FileError::Sops(SopsError::NoMatchingIdentity { .. }),
                    ..
                }) if drift.is_some() && s.repo_matches_record() => s.analyse(None)?,
                other => other?,
            };
            let mut status = describe(s, analysis.state);
            if drift.is_some() {
                status.clean = false;
            }
            status.recipients_differ = drift;
            if let Some(folder) = &s.folder {
                status.unmanaged = Some(folder.unmanaged.clone());
                status.release.clone_from(&folder.release);
                if analysis.state == State::RolledBack {
                    status.rolled_back_to = folder.rolled_back.as_ref().map(|(r, _)| r.clone());
                }
            }
            if let Some(rollback) = analysis.rollback {
                status.older_than_last_sync = true;
                status.repo_lastmodified = Some(rollback.repo);
                status.synced_lastmodified = Some(rollback.synced);
            }
            Ok(status)
        })
        .collect();
    let (statuses, failed, errors) = super::keep_going(&entries, results, keep_going)?;
    let all_clean = statuses.iter().all(|s| s.clean);
    let printer = &ctx.settings.printer;
    if printer.json {
        printer.json(&StatusReport {
            in_sync: all_clean,
            entries: &statuses,
            errors: &failed,
        });
    } else {
        for s in &statuses {
            let drift: Vec<String> = s.drift.iter().map(PermDrift::describe).collect();
            let state = if s.older_than_last_sync {
                format!("{} (older than the last sync)", s.state)
            } else if let Some(release) = &s.rolled_back_to {
                format!("rolled back to {release}")
            } else {
                s.state.to_string()
            };
            let mut line = format!("{state:<15} {} → {}", s.repo, s.server);
            if !drift.is_empty() {
                line.push_str(&format!("; {}", drift.join(", ")));
            }
            if let Some(unmanaged) = s.unmanaged.as_ref().filter(|u| !u.is_empty()) {
                line.push_str(&format!("; unmanaged: {}", unmanaged.join(", ")));
            }
            if s.recipients_differ.is_some() {
                line.push_str(&format!(
                    "; recipients differ: envsync rekey {} (old key lost: envsync encrypt --force {})",
                    s.repo, s.repo
                ));
            }
            if let Some(next) = &s.next {
                line.push_str(&format!("; next: {next}"));
            }
            let style = if s.clean {
                Style::Plain
            } else {
                Style::Changed
            };
            printer.data(style, &line);
        }
    }
    if let Some(error) = Error::from_many(errors) {
        return Err(error);
    }
    Ok(if all_clean {
        ExitStatus::Success
    } else {
        ExitStatus::Drift
    })
}

fn describe(sides: &Sides<'_>, state: State) -> EntryStatus {
    let entry = sides.entry;
    let repo = &entry.repo;
    let drift = sides.perm_drift();
    let next = next(state, !drift.is_empty(), entry.optional).map(|next| match next {
        Next::Decrypt => format!("envsync decrypt {repo}"),
        Next::Encrypt => format!("envsync encrypt {repo}"),
        Next::Compare => format!(
            "envsync diff {repo}, then envsync encrypt --force {repo} or envsync decrypt --force {repo}"
        ),
        Next::Restore => format!(
            "restore {repo} from git, or create {} and run envsync encrypt {repo}",
            entry.server
        ),
    });
    EntryStatus {
        repo: repo.clone(),
        server: entry.server.clone(),
        state: state.name(),
        clean: next.is_none(),
        next,
        drift,
        older_than_last_sync: false,
        repo_lastmodified: None,
        synced_lastmodified: None,
        unmanaged: None,
        release: None,
        rolled_back_to: None,
        recipients_differ: None,
    }
}
