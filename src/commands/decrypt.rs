//! `envsync decrypt`: repo → server.
//!
//! Load, plan, apply. Every selected `.enc` is decrypted and authenticated in memory first
//! and each entry's state decided; what happens to it is [`decide`]'s answer. An entry whose
//! server file holds an unsynced edit (`server-changed`, `conflict`, `new`) is refused, and
//! then nothing at all is written, unless `--force`. Only when the whole plan is clean is
//! anything written, as one batch ([`crate::fs::Batch`]): every server file (atomically, or
//! in place for `write = "in-place"`), every mode fix, then the sync records; a failure
//! anywhere puts everything back.
//!
//! An `as = "files"` entry becomes batch steps on its folder ([`FolderPlan`]): key files
//! written, removed or fixed, or with `releases` a whole new release, applied and checked by
//! its `verify` before anything else, then `current` switched with the rest of the batch.
//! Old releases are pruned and `on_change` commands run only once everything is durable.
//!
//! A large binary `.enc` with no server file yet is decrypted as a stream from its file
//! ([`crate::sync::large`]) instead of being read whole first; it is authenticated in the
//! same step as every other entry, and written in the same batch.
//!
//! [`decide`]: crate::sync::decision::decide

use rayon::prelude::*;

use super::{arrow, collect, plan_changes, settle, step, Context, Flags, Outcome, Step};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::fs::{Expect, Job, Op};
use crate::manifest::Entry;
use crate::output::json::Changes;
use crate::output::Style;
use crate::secret::SecretBytes;
use crate::sync::decision::{Decision, Direction};
use crate::sync::files::{FolderPlan, StagedReleases};
use crate::sync::large::LargeEntry;
use crate::sync::state::State;
use crate::sync::{backup_path, record_ops, Codec, RecordWrite, Sides, STATE_PERMS};

/// A streamed entry (always a `create`), decrypted and authenticated.
struct Streamed<'m> {
    entry: &'m Entry,
    plaintext: SecretBytes,
    /// The digest of its `.enc`, for the sync record.
    digest: [u8; 32],
    /// The `.enc`'s sops `lastmodified`, for the sync record.
    lastmodified: String,
}

/// The plaintext decrypt writes for a step.
fn plaintext<'a>(step: &'a Step<'_, '_>) -> Option<&'a SecretBytes> {
    step.analysis.repo.as_ref().map(|o| &o.plaintext)
}

pub(crate) fn run(ctx: &Context, selection: &Selection, flags: Flags) -> Result<ExitStatus, Error> {
    // Load: every selected entry's files, decrypted and authenticated.
    let entries = ctx.select(selection)?;
    let identities = ctx.identities(&entries)?;
    let (large, entries) = split_large(ctx, entries, identities.as_ref())?;
    let sides = ctx.read_all(&entries)?;
    // Plan: each entry's decision; errors and refusals stop the run here.
    let planned = sides
        .par_iter()
        .map(|s| plan(s, identities.as_ref(), flags))
        .collect();
    // One after the other: each streamed entry keeps both cores busy on its own.
    let streamed = match identities.as_ref() {
        Some(ids) => large.iter().map(|l| open_streamed(l, ids)).collect(),
        None => Vec::new(),
    };
    // Every entry's errors are reported together.
    let (steps, streamed) = match (settle(Direction::Decrypt, planned), collect(streamed)) {
        (Ok(steps), Ok(streamed)) => (steps, streamed),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(a), Err(b)) => return Err(Error::Several(vec![a, b])),
    };
    warn_rollbacks(ctx, &steps, flags.dry_run);
    // `as = "files"` entries: the key files, releases and links each one changes.
    let folders = collect(
        steps
            .iter()
            .map(|s| {
                let in_sync = s.analysis.state == State::InSync;
                FolderPlan::new(s.sides, s.decision, in_sync, plaintext(s))
            })
            .collect(),
    )?;
    let changed = changed_entries(&steps, &folders, &streamed);
    if flags.dry_run {
        report(
            ctx,
            &steps,
            &folders,
            &streamed,
            (&changed, flags.no_hooks),
            true,
        );
        super::hooks::list(ctx, &changed, flags.no_hooks);
        return Ok(ExitStatus::Success);
    }
    // Apply: one batch, all or nothing.
    let servers = (steps.iter().map(|s| s.sides.entry)).chain(streamed.iter().map(|s| s.entry));
    let lock = ctx.prepare_writes(servers, true)?;
    apply(ctx, &steps, &folders, &streamed)?;
    report(
        ctx,
        &steps,
        &folders,
        &streamed,
        (&changed, flags.no_hooks),
        false,
    );
    super::hooks::prune(ctx, &folders);
    drop(lock);
    super::hooks::on_change(ctx, &changed, flags.no_hooks)?;
    Ok(ExitStatus::Success)
}

/// The entries whose server content this run changes (a mode fix alone is no change).
fn changed_entries<'m>(
    steps: &[Step<'_, 'm>],
    folders: &[Option<FolderPlan<'_>>],
    streamed: &[Streamed<'m>],
) -> Vec<&'m Entry> {
    steps
        .iter()
        .zip(folders)
        .filter(|(s, plan)| match plan {
            Some(plan) => plan.changes_content,
            None => s.decision.writes(),
        })
        .map(|(s, _)| s.sides.entry)
        .chain(streamed.iter().map(|s| s.entry))
        .collect()
}

/// Warns of every `.enc` this run applies that is older than its last sync: a revert is
/// applied as any pulled change, but a stale checkout looks the same.
fn warn_rollbacks(ctx: &Context, steps: &[Step<'_, '_>], dry_run: bool) {
    for step in steps.iter().filter(|s| s.decision.writes()) {
        if let Some(rollback) = &step.analysis.rollback {
            let warning = rollback.warning(&step.sides.entry.repo, dry_run);
            ctx.settings.printer.warn(&warning);
        }
    }
}

/// Decides one entry.
fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    identities: Option<&Identities>,
    flags: Flags,
) -> Result<Step<'s, 'm>, Error> {
    // A large .enc's record holds its digest: hash it on the other core while it decrypts.
    let (analysis, _) = rayon::join(
        || sides.analyse(identities),
        || sides.large().then(|| sides.repo_digest()),
    );
    Ok(step(Direction::Decrypt, sides, analysis?, flags, false))
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
        lastmodified: large.lastmodified().to_string(),
    })
}

/// The batch step that brings one entry's server file in line, if any.
fn server_op<'a>(ctx: &'a Context, step: &'a Step<'_, '_>, backup: &'a str) -> Option<Op<'a>> {
    let manifest = &ctx.settings.manifest;
    let entry = step.sides.entry;
    let server = step.sides.server.as_ref();
    let perms = step.sides.server_perms();
    match step.decision {
        Decision::FixPerms => {
            let server = server?;
            Some(Op::Perms {
                base: &manifest.server_root,
                relative: &entry.server,
                perms,
                expect: server.stamp,
                before: server.owner(),
            })
        }
        d if d.writes() => {
            let job = Job {
                base: &manifest.server_root,
                relative: &entry.server,
                head: &[],
                contents: plaintext(step)?.expose(),
                perms,
                expect: server.map_or(Expect::Absent, |f| Expect::Stamp(f.stamp)),
                previous: server.map(|f| f.previous()).filter(|_| !entry.in_place),
            };
            match server.filter(|_| entry.in_place) {
                // Kept recoverable by a private backup copy until the batch is durable.
                Some(old) => Some(Op::InPlace {
                    job,
                    old: old.bytes.expose(),
                    before: old.owner(),
                    backup: Job {
                        base: &manifest.state_dir,
                        relative: backup,
                        head: &[],
                        contents: old.bytes.expose(),
                        perms: STATE_PERMS,
                        expect: Expect::Any,
                        previous: None,
                    },
                }),
                None => Some(Op::Write(job)),
            }
        }
        _ => None,
    }
}

/// Writes every server file that changes and fixes modes, then stores the sync records of
/// the entries this run synced: one batch, undone as a whole if any part fails. New
/// releases go first and are verified before anything else is applied.
fn apply(
    ctx: &Context,
    steps: &[Step<'_, '_>],
    folders: &[Option<FolderPlan<'_>>],
    streamed: &[Streamed<'_>],
) -> Result<(), Error> {
    let manifest = &ctx.settings.manifest;
    let backups: Vec<String> = steps.iter().map(|s| backup_path(s.sides.entry)).collect();
    let (indices, mut ops): (Vec<usize>, Vec<Op<'_>>) = steps
        .iter()
        .zip(&backups)
        .enumerate()
        .filter(|(_, (s, _))| s.sides.entry.files.is_none())
        .filter_map(|(i, (s, backup))| Some((i, server_op(ctx, s, backup)?)))
        .unzip();
    // Streamed entries are new files in the same batch.
    ops.extend(streamed.iter().map(|s| {
        Op::Write(Job {
            base: &manifest.server_root,
            relative: &s.entry.server,
            head: &[],
            contents: s.plaintext.expose(),
            perms: Sides::perms_for(s.entry),
            expect: Expect::Absent,
            previous: None,
        })
    }));
    // Declared before the batch, which borrows them until it is finished or undone (and is
    // dropped, undoing itself, on an error path): clippy's late-init rewrite would break that.
    #[allow(clippy::needless_late_init)]
    let records: Vec<RecordWrite<'_>>;
    // New releases first, under temp names: written, made durable and verified before
    // anything else is applied. Until the run is complete they are removed on any way out
    // (the main batch's undo renames a release back to its temp name first).
    let staged = StagedReleases::new(manifest, folders);
    // Each plan's steps, and how many there are: its stamps come back in that stretch.
    let mut release_ops: Vec<Op<'_>> = Vec::new();
    let mut folder_ops: Vec<Op<'_>> = Vec::new();
    let mut counts = Vec::new();
    for plan in folders.iter().flatten() {
        let (release, main) = (plan.release_ops(manifest), plan.ops(manifest));
        counts.push((release.len(), main.len()));
        release_ops.extend(release);
        folder_ops.extend(main);
    }
    let mut release_stamps = Vec::new();
    if !release_ops.is_empty() {
        let mut staging = ctx.writer.batch();
        release_stamps = staging.apply(&release_ops)?;
        super::hooks::verify(ctx, folders)?;
        staging.finish()?;
    }
    let mut batch = ctx.writer.batch();
    // After the other files and the streamed ones: their stamps come back first, in order.
    let others = ops.len();
    ops.extend(folder_ops);
    let written = batch.apply(&ops)?;
    let mut stamps = vec![None; steps.len()];
    for (i, stamp) in indices.iter().zip(&written) {
        stamps[*i] = Some(*stamp);
    }
    // A files entry's stamp covers all its key files, from what the batches gave back.
    let (mut at_release, mut at_main) = (0, others);
    let plans = folders
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.as_ref()?)));
    for ((i, plan), (r, m)) in plans.zip(counts) {
        let release = (release_stamps.get(at_release..at_release + r)).unwrap_or_default();
        let main = written.get(at_main..at_main + m).unwrap_or_default();
        stamps[i] = Some(plan.record_stamp(&manifest.server_root, release, main)?);
        (at_release, at_main) = (at_release + r, at_main + m);
    }
    let written = written.into_iter().skip(indices.len());
    let streamed_records = (streamed.iter().zip(written))
        .map(|(s, stamp)| RecordWrite::of_large(s.entry, &stamp, s.digest, &s.lastmodified));
    // The records: the .enc as synced, and the server file as this sync left it.
    records = steps
        .iter()
        .zip(&stamps)
        // A server file this run touched (a mode fix too: its ctime moved) needs a new
        // record even when the old one was current, or the next run takes the slow path.
        .filter(|(s, stamp)| {
            (s.analysis.record_stale || stamp.is_some()) && s.decision != Decision::Skip
        })
        .filter_map(|(s, stamp)| {
            let server = stamp.or(s.sides.server.as_ref().map(|f| f.stamp))?;
            let enc = s.sides.repo.as_ref()?.bytes.expose();
            s.sides.record_write(&server, enc, || s.sides.repo_digest())
        })
        .chain(streamed_records)
        .collect();
    batch.apply(&record_ops(manifest, &records))?;
    batch.finish()?;
    staged.done();
    Ok(())
}

fn report(
    ctx: &Context,
    steps: &[Step<'_, '_>],
    folders: &[Option<FolderPlan<'_>>],
    streamed: &[Streamed<'_>],
    (changed, no_hooks): (&[&Entry], bool),
    dry_run: bool,
) {
    let mut outcomes: Vec<Outcome<'_>> = steps
        .iter()
        .zip(folders)
        .map(|(step, plan)| {
            let entry = step.sides.entry;
            let mut changes = Changes::default();
            // Shown in a plan and in JSON only: a plain run does not parse the files again.
            let shown = dry_run || ctx.settings.printer.json;
            if let (true, Some(new), Decision::Create | Decision::Update) =
                (shown, plaintext(step), step.decision)
            {
                // As judged: a files folder laid out like the `.enc`.
                let old = (step.analysis.server.as_ref().map(|s| s.expose())).or(step
                    .sides
                    .server
                    .as_ref()
                    .map(|s| s.bytes.expose()));
                changes = plan_changes(step.sides, old, new.expose());
            }
            if shown && step.decision != Decision::Unchanged {
                changes.perms = step.sides.perm_drift();
            }
            Outcome {
                entry,
                codec: step.sides.codec,
                decision: step.decision,
                state: step.analysis.state,
                style: match step.decision {
                    Decision::Create => Style::Added,
                    Decision::Update | Decision::FixPerms => Style::Changed,
                    _ => Style::Plain,
                },
                idle: step.decision == Decision::Unchanged,
                detail: match plan.as_ref().and_then(|p| p.release.as_ref()) {
                    Some(release) => format!(
                        "{}/ (release {}, mode {:04o})",
                        arrow(entry),
                        release.name,
                        entry.mode
                    ),
                    None if plan.is_some() || entry.files.is_some() => {
                        format!(
                            "{}/ (one file a key, mode {:04o})",
                            arrow(entry),
                            entry.mode
                        )
                    }
                    None => format!("{} (mode {:04o})", arrow(entry), entry.mode),
                },
                changes,
            }
        })
        .collect();
    outcomes.extend(streamed.iter().map(|s| Outcome {
        entry: s.entry,
        codec: Codec::Encrypted(Format::Binary),
        decision: Decision::Create,
        state: State::ServerMissing,
        style: Style::Added,
        idle: false,
        detail: format!("{} (mode {:04o})", arrow(s.entry), s.entry.mode),
        changes: Changes::content(0, s.plaintext.len()),
    }));
    outcomes.sort_by_key(|o| o.entry.line);
    let commands: Vec<String> = crate::hooks::on_change_plan(changed)
        .into_iter()
        .filter(|_| !no_hooks)
        .map(|(argv, _)| crate::hooks::shown(argv))
        .collect();
    super::report(&ctx.settings.printer, dry_run, &outcomes, Some(&commands));
}
