//! What the writing commands run around a batch: `verify` on each new release before it goes
//! live, pruning of old releases once the batch is durable, and the `on_change` commands of
//! the entries whose server content changed, last of all.

use std::ffi::OsString;

use super::Context;
use crate::error::Error;
use crate::hooks::{self, shown};
use crate::manifest::Entry;
use crate::output::Style;
use crate::sync::files::{list_releases, releases_dir, to_prune, FolderPlan};

/// Runs the `verify` command of every entry that writes a new release, against it. The first
/// failure stops the run: the caller's batch is then undone (the new releases removed,
/// `current` untouched).
pub(crate) fn verify(ctx: &Context, folders: &[Option<FolderPlan<'_>>]) -> Result<(), Error> {
    let root = &ctx.settings.manifest.server_root;
    for plan in folders.iter().flatten() {
        let (Some(release), Some(layout)) = (&plan.release, &plan.entry.files) else {
            continue;
        };
        let Some(argv) = &layout.verify else { continue };
        let folder = clean(&root.join(&release.staging));
        ctx.settings.printer.info(
            Style::Plain,
            &format!(
                "verify    {} release {}: {}",
                plan.entry.server,
                release.name,
                shown(argv)
            ),
        );
        hooks::run(argv, root, &[("ENVSYNC_RELEASE", OsString::from(&folder))]).map_err(
            |failed| Error::Verify {
                command: failed.command,
                how: failed.how,
                server: plan.entry.server.clone(),
                release: release.name.clone(),
            },
        )?;
    }
    Ok(())
}

/// Removes the releases beyond each entry's `releases = N` after a new one went live. The
/// run is complete by then: a release that cannot be removed is a warning.
pub(crate) fn prune(ctx: &Context, folders: &[Option<FolderPlan<'_>>]) {
    let root = &ctx.settings.manifest.server_root;
    for plan in folders.iter().flatten() {
        let (Some(release), Some(layout)) = (&plan.release, &plan.entry.files) else {
            continue;
        };
        let Some(keep) = layout.releases else {
            continue;
        };
        let folder = root.join(releases_dir(plan.entry));
        let Ok(names) = list_releases(root, plan.entry) else {
            continue;
        };
        for old in to_prune(&names, keep, &release.name) {
            // `remove_dir_all` never follows a symlink inside the tree it removes.
            match std::fs::remove_dir_all(folder.join(&old)) {
                Ok(()) => ctx
                    .settings
                    .printer
                    .verbose(&format!("pruned    {}/releases/{old}", plan.entry.server)),
                Err(e) => ctx.settings.printer.warn(&format!(
                    "{}: could not remove the old release: {e}",
                    folder.join(&old).display()
                )),
            }
        }
    }
}

/// `path` with `.` and `..` resolved: the server root may be given relative to the
/// manifest (`root = "../server"`), and the paths a command gets should read plainly.
fn clean(path: &std::path::Path) -> std::path::PathBuf {
    match (
        path.parent().and_then(|p| p.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    }
}

/// With `--dry-run`: the `on_change` commands the run would start.
pub(crate) fn list(ctx: &Context, changed: &[&Entry], no_hooks: bool) {
    let printer = &ctx.settings.printer;
    if printer.json || no_hooks {
        return;
    }
    for (argv, _) in hooks::on_change_plan(changed) {
        printer.data(
            Style::Plain,
            &format!("would run on_change: {}", shown(argv)),
        );
    }
}

/// Runs each distinct `on_change` command of the `changed` entries once, after the run is
/// durable. Every command runs even when one fails; any failure is exit 4.
pub(crate) fn on_change(ctx: &Context, changed: &[&Entry], no_hooks: bool) -> Result<(), Error> {
    let printer = &ctx.settings.printer;
    let plan = hooks::on_change_plan(changed);
    if no_hooks {
        for (argv, _) in &plan {
            printer.info(
                Style::Plain,
                &format!("skipped on_change (--no-hooks): {}", shown(argv)),
            );
        }
        return Ok(());
    }
    let root = &ctx.settings.manifest.server_root;
    let mut failures = Vec::new();
    for (argv, paths) in plan {
        let list: Vec<OsString> = paths.iter().map(|p| clean(p).into_os_string()).collect();
        let changed = list.join(&OsString::from("\n"));
        printer.info(Style::Plain, &format!("on_change {}", shown(argv)));
        if let Err(failed) = hooks::run(argv, root, &[("ENVSYNC_CHANGED", changed)]) {
            failures.push(failed);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::OnChange(failures))
    }
}
