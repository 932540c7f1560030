//! `envsync encrypt`: server → repo.
//!
//! Never skips silently: a missing server file is an error unless the entry is optional, an
//! empty one unless `--allow-empty`. A plaintext equal to what the `.enc` holds leaves the
//! `.enc` untouched; a dotenv whose values partly changed keeps its data key and the exact
//! ciphertext of every unchanged value, so the git diff shows only what changed.

use std::collections::BTreeSet;

use rayon::prelude::*;

use super::{collect, Context, Outcome};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::{self, Opened};
use crate::fs::{Perms, RunLock};
use crate::keys::{KeyError, Recipients};
use crate::output::Style;
use crate::sops::{EncryptOptions, SopsError};
use crate::sync::{Codec, Sides, REPO_FOLDER_MODE, REPO_MODE};

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
    action: Action,
    contents: Vec<u8>,
}

pub fn run(
    ctx: &Context,
    selection: &Selection,
    dry_run: bool,
    allow_empty: bool,
) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let recipients = Recipients::load(&ctx.settings.manifest.repo_root)?;
    // Encrypting needs only public keys; a private key lets envsync see what is unchanged.
    let identities = match ctx.identities(&entries) {
        Ok(ids) => ids,
        Err(Error::Keys(KeyError::NoIdentity { .. })) => {
            ctx.settings
                .printer
                .verbose("no identity found: every selected file will be re-encrypted in full");
            None
        }
        Err(e) => return Err(e),
    };
    let sides = ctx.read_all(&entries)?;
    let steps = collect(
        sides
            .par_iter()
            .map(|s| plan(s, &recipients, identities.as_ref(), allow_empty))
            .collect(),
    )?;
    if !dry_run {
        let _lock = RunLock::acquire(&ctx.settings.manifest.path)?;
        let repo_root = &ctx.settings.manifest.repo_root;
        for s in &steps {
            ctx.writer.sweep(repo_root, &s.sides.entry.repo);
        }
        let results: Vec<Result<(), Error>> = steps
            .par_iter()
            .filter(|s| matches!(s.action, Action::Create | Action::Update))
            .map(|s| {
                let mode = s.sides.repo.as_ref().map_or(REPO_MODE, |r| r.mode);
                let perms = Perms {
                    mode,
                    uid: None,
                    gid: None,
                    folder_mode: REPO_FOLDER_MODE,
                };
                ctx.writer
                    .write(repo_root, &s.sides.entry.repo, &s.contents, perms)
                    .map_err(Error::from)
            })
            .collect();
        collect(results)?;
    }
    report(ctx, &steps, dry_run);
    Ok(ExitStatus::Success)
}

fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    recipients: &Recipients,
    identities: Option<&Identities>,
    allow_empty: bool,
) -> Result<Step<'s, 'm>, Error> {
    let entry = sides.entry;
    let server_error = |source| Error::File {
        path: entry.server_path.clone(),
        source,
    };
    let Some(server) = &sides.server else {
        if entry.optional {
            return Ok(Step {
                sides,
                action: Action::Skip,
                contents: Vec::new(),
            });
        }
        return Err(server_error(FileError::ServerMissing));
    };
    if server.bytes.is_empty() && !allow_empty {
        return Err(server_error(FileError::ServerEmpty));
    }
    let plaintext = sides.server_canonical()?.unwrap_or_default();
    let changed = if sides.repo.is_some() {
        Action::Update
    } else {
        Action::Create
    };
    let Codec::Encrypted(format) = sides.codec else {
        let same = sides.repo.as_ref().is_some_and(|r| r.bytes == server.bytes);
        return Ok(Step {
            sides,
            action: if same { Action::Unchanged } else { changed },
            contents: server.bytes.clone(),
        });
    };
    let options = recipients.options_for(entry)?;
    let previous = match sides.open_repo(identities) {
        Ok(opened) => opened,
        // A file this key cannot open is replaced whole; every other failure stops the run.
        Err(Error::File {
            source: FileError::Sops(SopsError::NoMatchingIdentity { .. }),
            ..
        }) => None,
        Err(e) => return Err(e),
    };
    if previous.as_ref().is_some_and(|p| p.plaintext == plaintext) {
        return Ok(Step {
            sides,
            action: Action::Unchanged,
            contents: Vec::new(),
        });
    }
    let reusable = previous
        .as_ref()
        .filter(|p| same_keys(p, &options))
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
    Ok(Step {
        sides,
        action: changed,
        contents,
    })
}

/// Whether the previous file was written for exactly today's recipients and rule, so its
/// data key can be kept.
fn same_keys(previous: &Opened, options: &EncryptOptions) -> bool {
    let Some(sops) = &previous.sops else {
        return false;
    };
    let old: Vec<BTreeSet<&str>> = sops
        .metadata
        .key_groups
        .iter()
        .map(|g| g.iter().map(|k| k.recipient.as_str()).collect())
        .collect();
    let new: Vec<BTreeSet<&str>> = options
        .keys
        .groups
        .iter()
        .map(|g| g.iter().map(|r| r.text.as_str()).collect())
        .collect();
    old == new
        && sops.metadata.rule.clone().unwrap_or_default() == options.rule
        && sops.metadata.mac_only_encrypted == options.mac_only_encrypted
        && (old.len() <= 1 || sops.metadata.shamir_threshold == options.keys.threshold)
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
            Outcome {
                entry,
                codec: step.sides.codec,
                action: step.action.word(),
                style: match step.action {
                    Action::Create => Style::Added,
                    Action::Update => Style::Changed,
                    Action::Unchanged | Action::Skip => Style::Plain,
                },
                idle: step.action == Action::Unchanged,
                detail: format!("{} ← {}{note}", entry.repo, entry.server),
            }
        })
        .collect();
    super::report(&ctx.settings.printer, "encrypt", dry_run, &outcomes);
}
