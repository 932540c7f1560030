//! `envsync rekey [FILE..]`: re-wraps each `.enc`'s data key for today's recipients (from the
//! entry or `.sops.yaml`), leaving values, MAC and `lastmodified` byte for byte as they are,
//! as `sops updatekeys` does. `--rotate` makes a new data key and re-encrypts every value.
//!
//! Every file is decrypted and prepared in memory before any is written. A file already
//! wrapped for exactly today's recipients is left untouched (unless `--rotate`). The sync
//! record of an entry that was in sync follows its `.enc`, since the plaintext is unchanged.

use std::collections::BTreeSet;

use rayon::prelude::*;

use super::{collect, Context};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format;
use crate::fs::Op;
use crate::keys::Recipients;
use crate::output::Style;
use crate::sops::same_keys;
use crate::sync::{enc_digest, record_ops, repo_job, Codec, RecordWrite, Sides};

/// Options of one rekey run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flags {
    pub(crate) dry_run: bool,
    pub(crate) rotate: bool,
}

struct Step<'s, 'm> {
    sides: &'s Sides<'m>,
    added: Vec<String>,
    removed: Vec<String>,
    /// The rewritten `.enc`; `None` when it is up to date (or kept in clear).
    contents: Option<Vec<u8>>,
}

pub(crate) fn run(ctx: &Context, selection: &Selection, flags: Flags) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let manifest = &ctx.settings.manifest;
    let recipients = Recipients::load(&manifest.repo_root, &manifest.path)?;
    let identities = ctx.identities(&entries)?;
    let sides = ctx.read_all(&entries)?;
    let mut steps = collect(
        sides
            .par_iter()
            .map(|s| plan(s, &recipients, identities.as_ref(), flags.rotate))
            .collect(),
    )?;
    // Entries that share a `.enc` (`key`) write and record the same new file.
    let mut first: std::collections::HashMap<&str, Vec<u8>> = std::collections::HashMap::new();
    for step in &mut steps {
        if let Some(contents) = &mut step.contents {
            let repo = step.sides.entry.repo.as_str();
            match first.get(repo) {
                Some(same) => contents.clone_from(same),
                None => {
                    first.insert(repo, contents.clone());
                }
            }
        }
    }
    if !flags.dry_run {
        let _lock = ctx.prepare_writes(steps.iter().map(|s| s.sides.entry), false)?;
        apply(ctx, &steps)?;
    }
    report(ctx, &steps, flags);
    Ok(ExitStatus::Success)
}

fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    recipients: &Recipients,
    identities: Option<&Identities>,
    rotate: bool,
) -> Result<Step<'s, 'm>, Error> {
    let entry = sides.entry;
    let untouched = Step {
        sides,
        added: Vec::new(),
        removed: Vec::new(),
        contents: None,
    };
    let Codec::Encrypted(format) = sides.codec else {
        return Ok(untouched);
    };
    let Some(enc) = &sides.repo else {
        if entry.optional {
            return Ok(untouched);
        }
        return Err(Error::File {
            path: entry.repo_path.clone(),
            source: FileError::RepoMissing {
                server: entry.server.clone(),
            },
        });
    };
    let opened = sides
        .open_repo(identities)?
        .ok_or_else(|| crate::keys::KeyError::NoIdentity { looked: Vec::new() })?;
    let options = recipients.options_for(entry)?;
    let old: BTreeSet<String> = opened
        .sops
        .as_ref()
        .map(|d| d.metadata.recipients().into_iter().collect())
        .unwrap_or_default();
    let new: BTreeSet<String> = options
        .keys
        .groups
        .iter()
        .flatten()
        .map(|r| r.text.clone())
        .collect();
    let up_to_date = opened
        .sops
        .as_ref()
        .is_some_and(|d| same_keys(&d.metadata, &options));
    let to_error = |e: crate::sops::SopsError| Error::File {
        path: entry.repo_path.clone(),
        source: e.into(),
    };
    let contents = if rotate {
        let whole = opened.whole.as_ref().unwrap_or(&opened.plaintext);
        Some(format::encrypt(format, whole.expose(), &options, None).map_err(to_error)?)
    } else if up_to_date {
        None
    } else {
        Some(format::rekey(format, enc.bytes.expose(), &opened, &options.keys).map_err(to_error)?)
    };
    Ok(Step {
        sides,
        added: new.difference(&old).cloned().collect(),
        removed: old.difference(&new).cloned().collect(),
        contents,
    })
}

/// Writes every rewritten `.enc`; an entry whose record matched the old `.enc` gets a
/// record of the new one (same plaintext, same server file): one batch, undone as a whole
/// if any part fails.
fn apply(ctx: &Context, steps: &[Step<'_, '_>]) -> Result<(), Error> {
    let manifest = &ctx.settings.manifest;
    let rewritten: Vec<(&Step<'_, '_>, &Vec<u8>, &crate::fs::Existing)> = steps
        .iter()
        .filter_map(|s| Some((s, s.contents.as_ref()?, s.sides.repo.as_ref()?)))
        .collect();
    let mut written = std::collections::HashSet::new();
    let ops: Vec<Op<'_>> = rewritten
        .iter()
        .filter(|(s, _, _)| written.insert(s.sides.entry.repo.as_str()))
        .map(|(s, contents, enc)| Op::Write(repo_job(manifest, s.sides.entry, contents, Some(enc))))
        .collect();
    // Declared before the batch, which borrows them until it is finished or undone (and is
    // dropped, undoing itself, on an error path): clippy's late-init rewrite would break that.
    #[allow(clippy::needless_late_init)]
    let records: Vec<RecordWrite<'_>>;
    let mut batch = ctx.writer.batch();
    batch.apply(&ops)?;
    records = rewritten
        .iter()
        .filter_map(|(s, contents, enc)| {
            let old = (s.sides.record.as_ref())
                .filter(|r| r.same_enc(enc.bytes.expose(), || s.sides.repo_digest()))?;
            let server = old.server.as_ref()?;
            Some(RecordWrite::new(s.sides.entry, server, contents, || {
                enc_digest(contents)
            }))
        })
        .collect();
    batch.apply(&record_ops(manifest, &records))?;
    batch.finish()?;
    Ok(())
}

/// The JSON body of `rekey` (docs/json/rekey.schema.json).
#[derive(serde::Serialize)]
struct RekeyReport<'a> {
    dry_run: bool,
    /// `--rotate`: a new data key, every value re-encrypted.
    rotate: bool,
    /// Whether any `.enc` was (or would be) rewritten.
    changed: bool,
    entries: Vec<RekeyEntry<'a>>,
}

/// One entry of `rekey`: the recipients its `.enc` gains and loses.
#[derive(serde::Serialize)]
struct RekeyEntry<'a> {
    repo: &'a str,
    server: &'a str,
    /// `rekey`, `rotate` or `unchanged`.
    action: &'static str,
    changed: bool,
    added: &'a [String],
    removed: &'a [String],
}

fn report(ctx: &Context, steps: &[Step<'_, '_>], flags: Flags) {
    let printer = &ctx.settings.printer;
    let action = |s: &Step<'_, '_>| match (&s.contents, flags.rotate) {
        (None, _) => "unchanged",
        (Some(_), true) => "rotate",
        (Some(_), false) => "rekey",
    };
    if printer.json {
        printer.json(&RekeyReport {
            dry_run: flags.dry_run,
            rotate: flags.rotate,
            changed: steps.iter().any(|s| s.contents.is_some()),
            entries: steps
                .iter()
                .map(|s| RekeyEntry {
                    repo: &s.sides.entry.repo,
                    server: &s.sides.entry.server,
                    action: action(s),
                    changed: s.contents.is_some(),
                    added: &s.added,
                    removed: &s.removed,
                })
                .collect(),
        });
        return;
    }
    for s in steps {
        let idle = s.contents.is_none();
        let would = if flags.dry_run && !idle { "would " } else { "" };
        let line = format!("{would}{:<9} {}", action(s), s.sides.entry.repo);
        let changes = s
            .added
            .iter()
            .map(|r| format!("+ {r}"))
            .chain(s.removed.iter().map(|r| format!("- {r}")));
        if flags.dry_run {
            printer.data(if idle { Style::Plain } else { Style::Changed }, &line);
            for change in changes {
                printer.data(Style::for_line(&change), &format!("    {change}"));
            }
        } else if idle {
            printer.verbose(&line);
        } else {
            printer.info(Style::Changed, &line);
            for change in changes {
                printer.info(Style::for_line(&change), &format!("    {change}"));
            }
        }
    }
}
