//! `envsync decrypt`: repo → server.
//!
//! Every selected `.enc` is decrypted and authenticated in memory first; only when all of
//! them are good is anything written, each file through the atomic writer.

use rayon::prelude::*;

use super::{arrow, collect, Context, Outcome};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::fs::RunLock;
use crate::output::Style;
use crate::secret::SecretBytes;
use crate::sync::Sides;

/// What decrypt will do to one server file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    /// Content is right; mode, owner or group are not.
    FixPerms,
    Unchanged,
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::FixPerms => "fix-mode",
            Self::Unchanged => "unchanged",
        }
    }
}

struct Step<'s, 'm> {
    sides: &'s Sides<'m>,
    action: Action,
    plaintext: SecretBytes,
}

pub fn run(ctx: &Context, selection: &Selection, dry_run: bool) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    let identities = ctx.identities(&entries)?;
    let sides = ctx.read_all(&entries)?;
    let steps = collect(
        sides
            .par_iter()
            .map(|s| plan(s, identities.as_ref()))
            .collect(),
    )?;
    let printer = &ctx.settings.printer;
    if dry_run {
        report(ctx, &steps, true);
        return Ok(ExitStatus::Success);
    }
    let manifest = &ctx.settings.manifest;
    let _lock = RunLock::acquire(&manifest.path)?;
    for s in &steps {
        ctx.writer
            .sweep(&manifest.server_root, &s.sides.entry.server);
    }
    let results: Vec<Result<(), Error>> = steps
        .par_iter()
        .filter(|s| s.action != Action::Unchanged)
        .map(|s| {
            ctx.writer
                .write(
                    &manifest.server_root,
                    &s.sides.entry.server,
                    s.plaintext.expose(),
                    s.sides.server_perms(),
                )
                .map_err(Error::from)
        })
        .collect();
    collect(results)?;
    report(ctx, &steps, false);
    printer.verbose(&format!("decrypted {} entries", steps.len()));
    Ok(ExitStatus::Success)
}

fn plan<'s, 'm>(
    sides: &'s Sides<'m>,
    identities: Option<&Identities>,
) -> Result<Step<'s, 'm>, Error> {
    let entry = sides.entry;
    let opened = sides.open_repo(identities)?.ok_or_else(|| Error::File {
        path: entry.repo_path.clone(),
        source: FileError::RepoMissing {
            server: entry.server.clone(),
        },
    })?;
    let action = match sides.server_canonical() {
        Ok(None) => Action::Create,
        Ok(Some(current)) if current == opened.plaintext => {
            if sides.server_perms_drift() {
                Action::FixPerms
            } else {
                Action::Unchanged
            }
        }
        // A server file that no longer parses is simply replaced.
        Ok(Some(_)) | Err(_) => Action::Update,
    };
    Ok(Step {
        sides,
        action,
        plaintext: opened.plaintext,
    })
}

fn report(ctx: &Context, steps: &[Step<'_, '_>], dry_run: bool) {
    let outcomes: Vec<Outcome<'_>> = steps
        .iter()
        .map(|step| Outcome {
            entry: step.sides.entry,
            codec: step.sides.codec,
            action: step.action.word(),
            style: match step.action {
                Action::Create => Style::Added,
                Action::Update | Action::FixPerms => Style::Changed,
                Action::Unchanged => Style::Plain,
            },
            idle: step.action == Action::Unchanged,
            detail: format!(
                "{} (mode {:04o})",
                arrow(step.sides.entry),
                step.sides.entry.mode
            ),
        })
        .collect();
    super::report(&ctx.settings.printer, "decrypt", dry_run, &outcomes);
}
