//! `envsync decrypt`: repo → server.
//!
//! Every selected `.enc` is decrypted and authenticated in memory first and each entry's
//! state decided; an entry whose server file holds an unsynced edit (`server-changed`,
//! `conflict`, `new`) is refused, and then nothing at all is written, unless `--force`. Only
//! when the whole plan is clean is anything written: each file through the atomic writer (or
//! in place for `write = "in-place"`), then its sync record.
//!
//! A large binary `.enc` with no server file yet is the exception ([`crate::sync::large`]):
//! it is streamed into its temp file, and authenticated there, before anything is renamed.

use rayon::prelude::*;

use super::{arrow, collect, plan_changes, refusal, Context, Outcome};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::fs::{self, RunLock};
use crate::fs::{Expect, Job, Pending, Perms, Stamp};
use crate::manifest::Entry;
use crate::output::Style;
use crate::secret::{DataKey, SecretBytes};
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

/// A streamed entry (always a `create`), with its data key.
struct Streamed<'m> {
    large: LargeEntry<'m>,
    key: DataKey,
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
    let (streamed, entries) = split_streamed(ctx, entries, identities.as_ref())?;
    let sides = ctx.read_all(&entries)?;
    let planned = collect(
        sides
            .par_iter()
            .map(|s| plan(s, identities.as_ref(), force))
            .collect(),
    )?;
    let (steps, refusals): (Vec<_>, Vec<_>) = planned.into_iter().partition(Result::is_ok);
    let refusals: Vec<String> = refusals.into_iter().filter_map(Result::err).collect();
    if !refusals.is_empty() {
        return Err(Error::Refused(refusals));
    }
    let steps: Vec<Step<'_, '_>> = steps.into_iter().filter_map(Result::ok).collect();
    if dry_run {
        // A plan authenticates what it would write, streamed entries too.
        for s in &streamed {
            s.large.decrypt_into(&s.key, None)?;
        }
        report(ctx, &steps, &streamed, true);
        return Ok(ExitStatus::Success);
    }
    let manifest = &ctx.settings.manifest;
    let _lock = RunLock::acquire(&manifest.path)?;
    let servers =
        (steps.iter().map(|s| s.sides.entry)).chain(streamed.iter().map(|s| s.large.entry));
    for entry in servers {
        ctx.writer.sweep(&manifest.server_root, &entry.server);
    }
    apply(ctx, &steps, &streamed)?;
    report(ctx, &steps, &streamed, false);
    Ok(ExitStatus::Success)
}

/// Separates the entries to stream (see [`crate::sync::large`]) from the rest, and unlocks
/// the streamed ones' data keys.
fn split_streamed<'m>(
    ctx: &Context,
    entries: Vec<&'m Entry>,
    identities: Option<&Identities>,
) -> Result<(Vec<Streamed<'m>>, Vec<&'m Entry>), Error> {
    let Some(identities) = identities else {
        return Ok((Vec::new(), entries));
    };
    let manifest = &ctx.settings.manifest;
    let probed = collect(
        entries
            .par_iter()
            .map(|e| Ok((*e, LargeEntry::probe(manifest, e)?)))
            .collect(),
    )?;
    let mut streamed = Vec::new();
    let mut rest = Vec::new();
    for (entry, large) in probed {
        match large {
            Some(large) => streamed.push(large),
            None => rest.push(entry),
        }
    }
    let streamed = collect(
        streamed
            .into_iter()
            .map(|large| {
                let key = large.unlock(identities)?;
                Ok(Streamed { large, key })
            })
            .collect(),
    )?;
    Ok((streamed, rest))
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
    // Streamed files are decrypted into their temps (and authenticated) before any rename.
    let pending: Vec<(Pending<'_>, [u8; 32])> = streamed
        .iter()
        .map(|s| stage_streamed(ctx, s))
        .collect::<Result<_, Error>>()?;
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
    let jobs: Vec<Job<'_>> = atomic.iter().map(|(_, j)| *j).collect();
    for ((i, _), stamp) in atomic.iter().zip(ctx.writer.write_many(&jobs)?) {
        stamps[*i] = Some(stamp);
    }
    let mut streamed_records = Vec::with_capacity(pending.len());
    for ((pending, digest), s) in pending.into_iter().zip(streamed) {
        let stamp = pending.commit()?;
        streamed_records.push(RecordWrite::of_large(s.large.entry, &stamp, digest));
    }
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

/// Decrypts a streamed entry into a temp beside its server file; the digest of its `.enc`
/// comes back for the record.
fn stage_streamed<'a>(
    ctx: &'a Context,
    s: &'a Streamed<'_>,
) -> Result<(Pending<'a>, [u8; 32]), Error> {
    let job = Job {
        base: &ctx.settings.manifest.server_root,
        relative: &s.large.entry.server,
        head: &[],
        contents: &[],
        perms: s.large.server_perms(),
        expect: Expect::Absent,
    };
    let mut digest = [0u8; 32];
    let pending = ctx.writer.stage_with(job, |file| {
        digest = s.large.decrypt_into(&s.key, Some(file))?;
        Ok::<(), Error>(())
    })?;
    Ok((pending, digest))
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
        entry: s.large.entry,
        codec: Codec::Encrypted(Format::Binary),
        action: Action::Create.word(),
        state: State::ServerMissing,
        style: Style::Added,
        idle: false,
        detail: format!("{} (mode {:04o})", arrow(s.large.entry), s.large.entry.mode),
        changes: Vec::new(),
    }));
    outcomes.sort_by_key(|o| o.entry.line);
    super::report(&ctx.settings.printer, "decrypt", dry_run, &outcomes);
}
