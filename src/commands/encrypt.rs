//! `envsync encrypt`: server → repo.
//!
//! Never skips silently: a missing server file is an error unless the entry is optional, an
//! empty one unless `--allow-empty`. An entry whose `.enc` changed since the last sync (a
//! teammate's rotation: `repo-changed`, `conflict`, `new`) is refused, and then nothing is
//! written, unless `--force`. A plaintext equal to what the `.enc` holds leaves the `.enc`
//! untouched; a dotenv whose values partly changed keeps its data key and the exact
//! ciphertext of every unchanged value, so the git diff shows only what changed.

use rayon::prelude::*;

use super::{collect, plan_changes, refusal, Context, Outcome};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format;
use crate::fs::{Job, RunLock};
use crate::keys::{KeyError, Recipients};
use crate::output::Style;
use crate::sops::{same_keys, SopsError};
use crate::sync::state::{Analysis, State};
use crate::sync::{enc_digest, repo_job, store_records, Codec, RecordWrite, Sides};

/// What encrypt will do to one `.enc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Create,
    Update,
    Unchanged,
    /// An optional entry whose server file is missing.
    Skip,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Skip => "skip",
        }
    }
}

struct Step<'s, 'm> {
    sides: &'s Sides<'m>,
    analysis: Analysis,
    action: Action,
    /// The new `.enc` (empty unless the action writes).
    contents: Vec<u8>,
}

/// Options of one encrypt run.
#[derive(Clone, Copy, Debug)]
pub struct Flags {
    pub dry_run: bool,
    pub force: bool,
    pub allow_empty: bool,
}

pub fn run(ctx: &Context, selection: &Selection, flags: Flags) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let manifest = &ctx.settings.manifest;
    let recipients = Recipients::load(&manifest.repo_root, &manifest.path)?;
    // Encrypting needs only public keys; a private key lets envsync see what is unchanged.
    let identities = match ctx.identities(&entries) {
        Ok(ids) => ids,
        Err(Error::Keys(KeyError::NoIdentity { .. })) => {
            ctx.settings
                .printer
                .verbose("no identity found: changes are judged from the sync records alone");
            None
        }
        Err(e) => return Err(e),
    };
    let sides = ctx.read_all(&entries)?;
    let planned = collect(
        sides
            .par_iter()
            .map(|s| plan(s, &recipients, identities.as_ref(), flags))
            .collect(),
    )?;
    let (steps, refusals): (Vec<_>, Vec<_>) = planned.into_iter().partition(Result::is_ok);
    let refusals: Vec<String> = refusals.into_iter().filter_map(Result::err).collect();
    if !refusals.is_empty() {
        return Err(Error::Refused(refusals));
    }
    let steps: Vec<Step<'_, '_>> = steps.into_iter().filter_map(Result::ok).collect();
    if !flags.dry_run {
        let manifest = &ctx.settings.manifest;
        let _lock = RunLock::acquire(&manifest.path)?;
        for s in &steps {
            ctx.writer.sweep(&manifest.repo_root, &s.sides.entry.repo);
        }
        apply(ctx, &steps)?;
    }
    report(ctx, &steps, flags.dry_run);
    Ok(ExitStatus::Success)
}

fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    recipients: &Recipients,
    identities: Option<&Identities>,
    flags: Flags,
) -> Result<Result<Step<'s, 'm>, String>, Error> {
    let entry = sides.entry;
    let server_error = |source| Error::File {
        path: entry.server_path.clone(),
        source,
    };
    if sides.server.as_ref().is_some_and(|s| s.bytes.is_empty()) && !flags.allow_empty {
        return Err(server_error(FileError::ServerEmpty));
    }
    let analysis = match sides.analyse(identities) {
        Ok(a) => a,
        // A file no identity here opens is judged like one without an identity.
        Err(Error::File {
            source: FileError::Sops(SopsError::NoMatchingIdentity { .. }),
            ..
        }) => sides.analyse(None)?,
        Err(e) => return Err(e),
    };
    let write = match analysis.state {
        State::InSync => Action::Unchanged,
        State::ServerChanged => Action::Update,
        State::RepoMissing => Action::Create,
        State::RepoChanged | State::Conflict | State::New if flags.force => Action::Update,
        state @ (State::RepoChanged | State::Conflict | State::New) => {
            return Ok(Err(refusal(entry, state, "encrypt")));
        }
        State::ServerMissing | State::Missing if entry.optional => Action::Skip,
        State::ServerMissing | State::Missing => {
            return Err(server_error(FileError::ServerMissing))
        }
    };
    let step = |analysis, action, contents| {
        Ok(Ok(Step {
            sides,
            analysis,
            action,
            contents,
        }))
    };
    if matches!(write, Action::Unchanged | Action::Skip) {
        return step(analysis, write, Vec::new());
    }
    let plaintext = analysis.server.clone().unwrap_or_default();
    let Codec::Encrypted(format) = sides.codec else {
        return step(analysis, write, plaintext.expose().to_vec());
    };
    let options = recipients.options_for(entry)?;
    let reusable = analysis
        .repo
        .as_ref()
        .filter(|p| {
            p.sops
                .as_ref()
                .is_some_and(|d| same_keys(&d.metadata, &options))
        })
        .zip(sides.repo.as_ref())
        .map(|(p, r)| (p, r.bytes.as_slice()));
    let contents =
        format::encrypt(format, plaintext.expose(), &options, reusable).map_err(|e| {
            let path = match e {
                SopsError::Syntax { .. } | SopsError::AlreadyEncrypted => entry.server_path.clone(),
                _ => entry.repo_path.clone(),
            };
            Error::File {
                path,
                source: e.into(),
            }
        })?;
    step(analysis, write, contents)
}

/// Writes every `.enc` that changes as one batch, then the sync records.
fn apply(ctx: &Context, steps: &[Step<'_, '_>]) -> Result<(), Error> {
    let manifest = &ctx.settings.manifest;
    let jobs: Vec<Job<'_>> = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Create | Action::Update))
        .map(|s| repo_job(manifest, s.sides.entry, &s.contents, s.sides.repo.as_ref()))
        .collect();
    ctx.writer.write_many(&jobs)?;
    // The records: the .enc as this sync left it, and the server file it was made from.
    let records: Vec<RecordWrite<'_>> = steps
        .iter()
        .filter_map(|s| {
            let enc = match s.action {
                Action::Create | Action::Update => s.contents.as_slice(),
                Action::Unchanged if s.analysis.record_stale => &s.sides.repo.as_ref()?.bytes,
                Action::Unchanged | Action::Skip => return None,
            };
            let server = &s.sides.server.as_ref()?.stamp;
            Some(RecordWrite::new(s.sides.entry, server, enc, || {
                enc_digest(enc)
            }))
        })
        .collect();
    store_records(&ctx.writer, manifest, &records)?;
    Ok(())
}

fn report(ctx: &Context, steps: &[Step<'_, '_>], dry_run: bool) {
    let outcomes: Vec<Outcome<'_>> = steps
        .iter()
        .map(|step| {
            let entry = step.sides.entry;
            let note = if step.action == Action::Skip {
                " (optional, no server file)"
            } else {
                ""
            };
            let mut changes = Vec::new();
            if dry_run && matches!(step.action, Action::Update | Action::Create) {
                let old = step.analysis.repo.as_ref().map(|o| o.plaintext.expose());
                let new = step.analysis.server.as_ref().map(|s| s.expose());
                changes = plan_changes(
                    step.sides.codec,
                    old.unwrap_or_default(),
                    new.unwrap_or_default(),
                );
            }
            Outcome {
                entry,
                codec: step.sides.codec,
                action: step.action.word(),
                state: step.analysis.state,
                style: match step.action {
                    Action::Create => Style::Added,
                    Action::Update => Style::Changed,
                    Action::Unchanged | Action::Skip => Style::Plain,
                },
                idle: step.action == Action::Unchanged,
                detail: format!("{} ← {}{note}", entry.repo, entry.server),
                changes,
            }
        })
        .collect();
    super::report(&ctx.settings.printer, "encrypt", dry_run, &outcomes);
}
