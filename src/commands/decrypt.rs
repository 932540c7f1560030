//! `envsync decrypt`: repo → server.
//!
//! Every selected `.enc` is decrypted and authenticated in memory first and each entry's
//! state decided; an entry whose server file holds an unsynced edit (`server-changed`,
//! `conflict`, `new`) is refused, and then nothing at all is written, unless `--force`. Only
//! when the whole plan is clean is anything written: each file through the atomic writer (or
//! in place for `write = "in-place"`), then its sync record.
//!
//! A large binary `.enc` with no server file yet is decrypted as a stream from its file
//! ([`crate::sync::large`]) instead of being read whole first; it is authenticated in the
//! same step as every other entry, and written in the same batch.

use rayon::prelude::*;

use super::{arrow, collect, plan_changes, refusal, Context, Outcome};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::fs::{self, RunLock};
use crate::fs::{Expect, Job, Perms, Stamp};
use crate::manifest::Entry;
use crate::output::Style;
use crate::secret::SecretBytes;
use crate::sync::large::LargeEntry;
use crate::sync::state::{Analysis, State};
use crate::sync::{backup_path, store_records, Codec, RecordWrite, Sides, STATE_PERMS};

/// What decrypt will do to one server file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    /// Content is right; mode, owner or group are not (fixed without rewriting).
    FixPerms,
    Unchanged,
    /// An optional entry with no `.enc`.
    Skip,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::FixPerms => "fix-mode",
            Self::Unchanged => "unchanged",
            Self::Skip => "skip",
        }
    }
}

struct Step<'s, 'm> {
    sides: &'s Sides<'m>,
    analysis: Analysis,
    action: Action,
}

/// A streamed entry (always a `create`), decrypted and authenticated.
struct Streamed<'m> {
    entry: &'m Entry,
    plaintext: SecretBytes,
    /// The digest of its `.enc`, for the sync record.
    digest: [u8; 32],
}

impl Step<'_, '_> {
    fn plaintext(&self) -> Option<&SecretBytes> {
        self.analysis.repo.as_ref().map(|o| &o.plaintext)
    }
}

pub fn run(
    ctx: &Context,
    selection: &Selection,
    dry_run: bool,
    force: bool,
) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let identities = ctx.identities(&entries)?;
    let (large, entries) = split_large(ctx, entries, identities.as_ref())?;
    let sides = ctx.read_all(&entries)?;
    let planned = sides
        .par_iter()
        .map(|s| plan(s, identities.as_ref(), force))
        .collect();
    // One after the other: each streamed entry keeps both cores busy on its own.
    let streamed = match identities.as_ref() {
        Some(ids) => large.iter().map(|l| open_streamed(l, ids)).collect(),
        None => Vec::new(),
    };
    // Every entry's errors are reported together.
    let (planned, streamed) = match (collect(planned), collect(streamed)) {
        (Ok(planned), Ok(streamed)) => (planned, streamed),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(a), Err(b)) => return Err(Error::Several(vec![a, b])),
    };
    let (steps, refusals): (Vec<_>, Vec<_>) = planned.into_iter().partition(Result::is_ok);
    let refusals: Vec<String> = refusals.into_iter().filter_map(Result::err).collect();
    if !refusals.is_empty() {
        return Err(Error::Refused(refusals));
    }
    let steps: Vec<Step<'_, '_>> = steps.into_iter().filter_map(Result::ok).collect();
    if dry_run {
        report(ctx, &steps, &streamed, true);
        return Ok(ExitStatus::Success);
    }
    let manifest = &ctx.settings.manifest;
    let _lock = RunLock::acquire(&manifest.path)?;
    let servers = (steps.iter().map(|s| s.sides.entry)).chain(streamed.iter().map(|s| s.entry));
    for entry in servers {
        ctx.writer.sweep(&manifest.server_root, &entry.server);
    }
    apply(ctx, &steps, &streamed)?;
    report(ctx, &steps, &streamed, false);
    Ok(ExitStatus::Success)
}

/// Separates the entries to stream (see [`crate::sync::large`]) from the rest.
fn split_large<'m>(
    ctx: &Context,
    entries: Vec<&'m Entry>,
    identities: Option<&Identities>,
) -> Result<(Vec<LargeEntry<'m>>, Vec<&'m Entry>), Error> {
    // Without identities nothing can be decrypted, streamed or not.
    if identities.is_none() {
        return Ok((Vec::new(), entries));
    }
    let manifest = &ctx.settings.manifest;
    let probed = collect(
        entries
            .par_iter()
            .map(|e| Ok((*e, LargeEntry::probe(manifest, e)?)))
            .collect(),
    )?;
    let mut large = Vec::new();
    let mut rest = Vec::new();
    for (entry, probed) in probed {
        match probed {
            Some(l) => large.push(l),
            None => rest.push(entry),
        }
    }
    Ok((large, rest))
}

/// Decrypts and authenticates a streamed entry.
fn open_streamed<'m>(
    large: &LargeEntry<'m>,
    identities: &Identities,
) -> Result<Streamed<'m>, Error> {
    let key = large.unlock(identities)?;
    let (plaintext, digest) = large.decrypt(&key)?;
    Ok(Streamed {
        entry: large.entry,
        plaintext,
        digest,
    })
}

/// Decides one entry's action; `Err(line)` is a refusal naming the resolving command.
fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    identities: Option<&Identities>,
    force: bool,
) -> Result<Result<Step<'s, 'm>, String>, Error> {
    let entry = sides.entry;
    // A large .enc's record holds its digest: hash it on the other core while it decrypts.
    let (analysis, _) = rayon::join(
        || sides.analyse(identities),
        || sides.large().then(|| sides.repo_digest()),
    );
    let analysis = analysis?;
    let action = match analysis.state {
        State::InSync if sides.server_perms_drift() => Action::FixPerms,
        State::InSync => Action::Unchanged,
        State::RepoChanged => Action::Update,
        State::ServerMissing => Action::Create,
        State::ServerChanged | State::Conflict | State::New if force => Action::Update,
        state @ (State::ServerChanged | State::Conflict | State::New) => {
            return Ok(Err(refusal(entry, state, "decrypt")));
        }
        State::RepoMissing | State::Missing if entry.optional => Action::Skip,
        State::RepoMissing | State::Missing => {
            return Err(Error::File {
                path: entry.repo_path.clone(),
                source: FileError::RepoMissing {
                    server: entry.server.clone(),
                },
            })
        }
    };
    Ok(Ok(Step {
        sides,
        analysis,
        action,
    }))
}

/// Writes every server file that changes (the atomic ones as one batch), fixes modes,
/// then stores the sync records of the entries this run synced.
fn apply(ctx: &Context, steps: &[Step<'_, '_>], streamed: &[Streamed<'_>]) -> Result<(), Error> {
    let manifest = &ctx.settings.manifest;
    let writes = |s: &Step<'_, '_>| matches!(s.action, Action::Create | Action::Update);
    let in_place = |s: &Step<'_, '_>| s.sides.entry.in_place && s.sides.server.is_some();
    // The rare one-by-one cases first: mode fixes and in-place rewrites.
    let single: Vec<Result<(usize, Stamp), Error>> = steps
        .par_iter()
        .enumerate()
        .filter(|(_, s)| s.action == Action::FixPerms || (writes(s) && in_place(s)))
        .map(|(i, s)| Ok((i, apply_single(ctx, s)?)))
        .collect();
    let mut stamps: Vec<Option<Stamp>> = vec![None; steps.len()];
    for (i, stamp) in collect(single)? {
        stamps[i] = Some(stamp);
    }
    let atomic: Vec<(usize, Job<'_>)> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| writes(s) && !in_place(s))
        .filter_map(|(i, s)| {
            let job = Job {
                base: &manifest.server_root,
                relative: &s.sides.entry.server,
                head: &[],
                contents: s.plaintext()?.expose(),
                perms: s.sides.server_perms(),
                expect: (s.sides.server.as_ref())
                    .map_or(Expect::Absent, |f| Expect::Stamp(f.stamp)),
            };
            Some((i, job))
        })
        .collect();
    // Streamed entries are new files in the same batch.
    let streamed_jobs = streamed.iter().map(|s| Job {
        base: &manifest.server_root,
        relative: &s.entry.server,
        head: &[],
        contents: s.plaintext.expose(),
        perms: Sides::perms_for(s.entry),
        expect: Expect::Absent,
    });
    let jobs: Vec<Job<'_>> = (atomic.iter().map(|(_, j)| *j))
        .chain(streamed_jobs)
        .collect();
    let mut written = ctx.writer.write_many(&jobs)?.into_iter();
    for ((i, _), stamp) in atomic.iter().zip(written.by_ref()) {
        stamps[*i] = Some(stamp);
    }
    let streamed_records: Vec<RecordWrite<'_>> = (streamed.iter().zip(written))
        .map(|(s, stamp)| RecordWrite::of_large(s.entry, &stamp, s.digest))
        .collect();
    // The records: the .enc as synced, and the server file as this sync left it.
    let records: Vec<RecordWrite<'_>> = steps
        .iter()
        .zip(&stamps)
        .filter(|(s, _)| s.analysis.record_stale && s.action != Action::Skip)
        .filter_map(|(s, stamp)| {
            let server = stamp.or(s.sides.server.as_ref().map(|f| f.stamp))?;
            let enc = s.sides.repo.as_ref()?.bytes.as_slice();
            Some(RecordWrite::new(s.sides.entry, &server, enc, || {
                s.sides.repo_digest()
            }))
        })
        .chain(streamed_records)
        .collect();
    store_records(&ctx.writer, manifest, &records)?;
    Ok(())
}

/// A mode fix, or an in-place rewrite kept recoverable by a private backup copy.
fn apply_single(ctx: &Context, step: &Step<'_, '_>) -> Result<Stamp, Error> {
    let manifest = &ctx.settings.manifest;
    let entry = step.sides.entry;
    let perms = step.sides.server_perms();
    let (Some(plain), Some(old), false) = (
        step.plaintext(),
        &step.sides.server,
        step.action == Action::FixPerms,
    ) else {
        return Ok(fs::set_perms(&manifest.server_root, &entry.server, perms)?);
    };
    // Keep a private copy first: it is what a failed rewrite is restored from.
    let backup = backup_path(entry);
    let durable = Perms {
        durable: true,
        ..STATE_PERMS
    };
    ctx.writer
        .write(&manifest.state_dir, &backup, &old.bytes, durable)?;
    let result = fs::write_in_place(
        &manifest.server_root,
        &entry.server,
        &old.bytes,
        plain.expose(),
        perms,
    );
    // The plaintext copy goes as soon as the target is whole again: written, or restored.
    let restored = || {
        fs::read(&manifest.server_root, &entry.server)
            .ok()
            .flatten()
            .is_some_and(|now| now.bytes == old.bytes)
    };
    if result.is_ok() || restored() {
        fs::remove(&manifest.state_dir, &backup)?;
    }
    Ok(result?)
}

fn report(ctx: &Context, steps: &[Step<'_, '_>], streamed: &[Streamed<'_>], dry_run: bool) {
    let mut outcomes: Vec<Outcome<'_>> = steps
        .iter()
        .map(|step| {
            let entry = step.sides.entry;
            let mut changes = Vec::new();
            if dry_run {
                if let (Some(new), Action::Update) = (step.plaintext(), step.action) {
                    let old = step.sides.server.as_ref().map(|s| s.bytes.as_slice());
                    changes = plan_changes(step.sides.codec, old.unwrap_or_default(), new.expose());
                }
                if let Some(server) = step.sides.server.as_ref().filter(|s| s.mode != entry.mode) {
                    changes.push(format!("~ mode {:04o} → {:04o}", server.mode, entry.mode));
                }
            }
            Outcome {
                entry,
                codec: step.sides.codec,
                action: step.action.word(),
                state: step.analysis.state,
                style: match step.action {
                    Action::Create => Style::Added,
                    Action::Update | Action::FixPerms => Style::Changed,
                    Action::Unchanged | Action::Skip => Style::Plain,
                },
                idle: step.action == Action::Unchanged,
                detail: format!("{} (mode {:04o})", arrow(entry), entry.mode),
                changes,
            }
        })
        .collect();
    outcomes.extend(streamed.iter().map(|s| Outcome {
        entry: s.entry,
        codec: Codec::Encrypted(Format::Binary),
        action: Action::Create.word(),
        state: State::ServerMissing,
        style: Style::Added,
        idle: false,
        detail: format!("{} (mode {:04o})", arrow(s.entry), s.entry.mode),
        changes: Vec::new(),
    }));
    outcomes.sort_by_key(|o| o.entry.line);
    super::report(&ctx.settings.printer, "decrypt", dry_run, &outcomes);
}
