//! `envsync encrypt`: server → repo.
//!
//! Never skips silently: a missing server file is an error unless the entry is optional, an
//! empty one unless `--allow-empty`. An entry whose `.enc` changed since the last sync (a
//! teammate's rotation: `repo-changed`, `conflict`, `new`) is refused, and then nothing is
//! written, unless `--force`. A plaintext equal to what the `.enc` holds leaves the `.enc`
//! untouched; a dotenv whose values partly changed keeps its data key and the exact
//! ciphertext of every unchanged value, so the git diff shows only what changed.

use rayon::prelude::*;

mod shared;

use super::{plan_changes, settle, step, Context, Flags, Outcome, Step};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::{self, Format};
use crate::keys::layout::own_options;
use crate::keys::{KeyError, Recipients};
use crate::output::json::Changes;
use crate::output::Style;
use crate::secret::SecretBytes;
use crate::sops::{same_keys, SopsError};
use crate::sync::decision::{Decision, Direction};
use crate::sync::extract;
use crate::sync::files::rollback_mark;
use crate::sync::{enc_digest, record_ops, repo_job, Codec, RecordWrite, Sides};

pub(crate) fn run(ctx: &Context, selection: &Selection, flags: Flags) -> Result<ExitStatus, Error> {
    // Load.
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
    // Plan: each entry's decision and new `.enc`; errors and refusals stop the run here.
    let planned = sides
        .par_iter()
        .map(|s| plan(s, &recipients, identities.as_ref(), flags))
        .collect();
    let mut steps = settle(Direction::Encrypt, planned)?;
    shared::merge(&mut steps, &recipients)?;
    // Apply: one batch, all or nothing.
    if !flags.dry_run {
        let _lock = ctx.prepare_writes(steps.iter().map(|s| s.sides.entry), false)?;
        apply(ctx, &steps, Vec::new())?;
    }
    report(ctx, &steps, flags.dry_run);
    Ok(ExitStatus::Success)
}

/// Decides one entry and, when it is written, makes its new `.enc`.
pub(super) fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    recipients: &Recipients,
    identities: Option<&Identities>,
    flags: Flags,
) -> Result<Step<'s, 'm>, Error> {
    let entry = sides.entry;
    let empty = sides.server.as_ref().is_some_and(|s| s.bytes.is_empty());
    // Whether no identity here opened the `.enc` (the only case where differing recipients
    // make --force re-encrypt an in-sync entry: the old key is lost).
    let mut unopened = identities.is_none();
    let analysis = match sides.analyse(identities) {
        Ok(a) => a,
        // A file no identity here opens is judged like one without an identity.
        Err(Error::File {
            source: FileError::Sops(SopsError::NoMatchingIdentity { .. }),
            ..
        }) => {
            unopened = true;
            sides.analyse(None)?
        }
        // An empty server file is refused whatever the state (even one that cannot be told).
        Err(_) if empty && !flags.allow_empty => {
            return Err(Error::File {
                path: entry.server_path.clone(),
                source: FileError::ServerEmpty,
            })
        }
        Err(e) => return Err(e),
    };
    // Today's recipients; with none configured anywhere, an existing `.enc` keeps its own
    // (groups, threshold and rule), as `sops edit` does.
    // A configuration error only stops an entry that is written, as before.
    let options = encrypt_options(sides, recipients);
    // --force re-encrypts an unchanged file for new recipients only when no key here opens
    // it and it is the file the last sync left (a lost key); otherwise `rekey` re-wraps it
    // without touching its values.
    let recipients_differ = unopened
        && sides.repo_matches_record()
        && options
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .is_some_and(|o| sides.recipient_drift(o).is_some());
    let mut step = step(
        Direction::Encrypt,
        sides,
        analysis,
        flags,
        recipients_differ,
    );
    if !step.decision.writes() {
        return Ok(step);
    }
    // An entry found in sync by its stamps alone was not read: a forced re-encrypt (new
    // recipients) reads the server plaintext now.
    let plaintext = match step.analysis.server.clone() {
        Some(plaintext) => plaintext,
        None => sides.server_canonical(None)?.unwrap_or_default(),
    };
    // A whole YAML, JSON or INI file is encrypted from the server's own text: its layout
    // was only normalised to be compared, and a second trip through it is not lossless
    // (go-yaml prints the float -0 as `-0`, which reads back as an int).
    let whole_tree = sides
        .view_codec()
        .format()
        .and_then(Format::codec)
        .is_some();
    let plaintext = match (&sides.server, whole_tree) {
        (Some(server), true) => server.bytes.clone(),
        _ => plaintext,
    };
    let Codec::Encrypted(format) = sides.codec else {
        step.contents = plaintext.expose().to_vec();
        return Ok(step);
    };
    let options = options?.ok_or_else(|| KeyError::NoRecipients {
        repo: entry.repo.clone(),
    })?;
    // A `key` entry writes its value into the `.enc`'s tree: that needs the tree open.
    let mut opened_now = None;
    let partial = entry.key.is_some() || (entry.files.is_some() && format.codec().is_some());
    if partial && step.analysis.repo.is_none() && sides.repo.is_some() {
        opened_now = sides.open_repo(identities)?;
        if opened_now.is_none() {
            return Err(Error::File {
                path: entry.repo_path.clone(),
                source: FileError::Extract {
                    key: entry.key.as_ref().map(ToString::to_string).unwrap_or_default(),
                    reason: "can be written into this file only with a key that opens it (pass --identity)".into(),
                },
            });
        }
    }
    let opened = step.analysis.repo.as_ref().or(opened_now.as_ref());
    let plaintext = match format.codec().filter(|_| partial) {
        Some(codec) => {
            let mut tree = match opened {
                Some(o) => codec
                    .parse(o.whole.as_ref().unwrap_or(&o.plaintext).expose())
                    .map_err(|e| Error::File {
                        path: entry.repo_path.clone(),
                        source: e.into(),
                    })?,
                None => Vec::new(),
            };
            match &entry.key {
                Some(key) => extract::set(&mut tree, key, plaintext.expose()),
                None => extract::merge_files_view(&mut tree, plaintext.expose()),
            }
            .map_err(|source| Error::File {
                path: entry.server_path.clone(),
                source,
            })?;
            SecretBytes::new(codec.emit(&tree))
        }
        None => plaintext,
    };
    let reusable = opened
        .filter(|p| {
            p.sops
                .as_ref()
                .is_some_and(|d| same_keys(&d.metadata, &options))
        })
        .zip(sides.repo.as_ref())
        .map(|(p, r)| (p, r.bytes.expose()));
    step.contents =
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
    Ok(step)
}

/// Today's options for an entry's `.enc`; with no recipients configured anywhere, an existing
/// `.enc` keeps its own (groups, threshold and rule), as `sops edit` does.
pub(super) fn encrypt_options(
    sides: &Sides<'_>,
    recipients: &Recipients,
) -> Result<Option<crate::sops::EncryptOptions>, Error> {
    match sides.codec {
        Codec::Encrypted(_) => match recipients.options_for(sides.entry) {
            Ok(options) => Ok(Some(options)),
            Err(KeyError::NoRecipients { .. }) => sides
                .repo_metadata()
                .map(|m| own_options(&m))
                .transpose()
                .map_err(Error::from),
            Err(e) => Err(Error::from(e)),
        },
        Codec::Plain => Ok(None),
    }
}

/// Writes every `.enc` that changes (and `extra`, other repo files that go with them: `add`'s
/// manifest and `.gitignore`), then the sync records: one batch, undone as a whole if any
/// part fails.
pub(super) fn apply<'a>(
    ctx: &'a Context,
    steps: &'a [Step<'_, '_>],
    extra: Vec<crate::fs::Op<'a>>,
) -> Result<(), Error> {
    let manifest = &ctx.settings.manifest;
    // A `.enc` that several entries share is written once.
    let mut written = std::collections::HashSet::new();
    let mut ops: Vec<_> = steps
        .iter()
        .filter(|s| s.decision.writes() && written.insert(s.sides.entry.repo.as_str()))
        .map(|s| {
            let contents = s.shared.as_deref().unwrap_or(&s.contents);
            let job = repo_job(manifest, s.sides.entry, contents, s.sides.repo.as_ref());
            crate::fs::Op::Write(job)
        })
        .collect();
    ops.extend(extra);
    // Declared before the batch, which borrows them until it is finished or undone (and is
    // dropped, undoing itself, on an error path): clippy's late-init rewrite would break that.
    #[allow(clippy::needless_late_init)]
    let records: Vec<RecordWrite<'_>>;
    let marks: Vec<(String, crate::fs::Stamp)> = steps
        .iter()
        .filter(|s| s.decision.writes())
        .filter_map(|s| {
            let (_, stamp) = s.sides.folder.as_ref()?.rolled_back.as_ref()?;
            Some((rollback_mark(s.sides.entry), *stamp))
        })
        .collect();
    let mut batch = ctx.writer.batch();
    batch.apply(&ops)?;
    // The records: the .enc as this sync left it, and the server file it was made from.
    records = steps
        .iter()
        .filter_map(|s| {
            let enc = match s.decision {
                d if d.writes() => s.contents.as_slice(),
                Decision::Unchanged if s.analysis.record_stale => {
                    s.sides.repo.as_ref()?.bytes.expose()
                }
                _ => return None,
            };
            let server = &s.sides.server.as_ref()?.stamp;
            s.sides.record_write(server, enc, || enc_digest(enc))
        })
        .collect();
    let mut state_ops = record_ops(manifest, &records);
    // A rolled-back release written into the repo is the repo's version now: the mark goes.
    state_ops.extend(marks.iter().map(|(relative, stamp)| crate::fs::Op::Remove {
        base: &manifest.state_dir,
        relative,
        expect: *stamp,
    }));
    batch.apply(&state_ops)?;
    batch.finish()?;
    Ok(())
}

fn report(ctx: &Context, steps: &[Step<'_, '_>], dry_run: bool) {
    let outcomes: Vec<Outcome<'_>> = steps
        .iter()
        .map(|step| {
            let entry = step.sides.entry;
            let note = if step.decision == Decision::Skip {
                " (optional, no server file)"
            } else {
                ""
            };
            let mut changes = Changes::default();
            // Shown in a plan and in JSON only: a plain run does not parse the files again.
            if step.decision.writes() && (dry_run || ctx.settings.printer.json) {
                let old = step.analysis.repo.as_ref().map(|o| o.plaintext.expose());
                let new = step.analysis.server.as_ref().map(|s| s.expose());
                changes = plan_changes(step.sides, old, new.unwrap_or_default());
            }
            Outcome {
                entry,
                codec: step.sides.codec,
                decision: step.decision,
                state: step.analysis.state,
                style: match step.decision {
                    Decision::Create => Style::Added,
                    Decision::Update => Style::Changed,
                    _ => Style::Plain,
                },
                idle: step.decision == Decision::Unchanged,
                detail: format!("{} ← {}{note}", entry.repo, entry.server),
                changes,
            }
        })
        .collect();
    super::report(&ctx.settings.printer, dry_run, &outcomes, None);
}
