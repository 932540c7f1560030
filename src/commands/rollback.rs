//! `envsync rollback FILE [--to STAMP]`: points a `releases` entry's `current` back at the
//! release before it (or the one named), then runs its `on_change`.
//!
//! The switch is one batch step (a new symlink renamed over `current`) together with a mark
//! in the state folder, so that `status` says `rolled back to <stamp>` and a plain `decrypt`
//! (or `encrypt`) refuses the entry until `--force` says which side wins. Nothing is
//! decrypted: no identity is needed.

use serde::Serialize;

use super::Context;
use crate::cli::Selection;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fs::{Expect, Job, Op};
use crate::manifest::Entry;
use crate::output::Style;
use crate::sync::files::{current_link, release_order, rollback_mark};
use crate::sync::{Sides, STATE_PERMS};

/// The JSON body of `rollback` (docs/json/rollback.schema.json): `{"dry_run", "entries":
/// [{"repo", "server", "from", "to"}]}`, `from` and `to` being release names.
#[derive(Serialize)]
struct Report<'a> {
    dry_run: bool,
    entries: Vec<Switched<'a>>,
}

#[derive(Serialize)]
struct Switched<'a> {
    repo: &'a str,
    server: &'a str,
    from: &'a str,
    to: &'a str,
}

/// One entry's rollback: from the release `current` names to `target`.
struct Switch<'s> {
    entry: &'s Entry,
    from: String,
    link_before: Option<&'s str>,
    target: String,
    link_target: String,
    link_path: String,
    mark_path: String,
    mark: Vec<u8>,
}

pub(crate) fn run(
    ctx: &Context,
    selection: &Selection,
    to: Option<&str>,
    dry_run: bool,
    no_hooks: bool,
) -> Result<ExitStatus, Error> {
    let entries = ctx.select(selection)?;
    if let Some(entry) =
        (entries.iter()).find(|e| e.files.as_ref().and_then(|l| l.releases).is_none())
    {
        return Err(Error::Rollback {
            server: entry.server.clone(),
            reason: "its entry has no `releases`, so there is no earlier release to go back to"
                .into(),
        });
    }
    if to.is_some() && entries.len() != 1 {
        return Err(Error::Rollback {
            server: entries
                .iter()
                .map(|e| e.server.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reason: "--to names one release: select one entry".into(),
        });
    }
    let sides = ctx.read_all(&entries)?;
    let switches = super::collect(sides.iter().map(|s| plan(s, to)).collect())?;
    let printer = &ctx.settings.printer;
    let would = if dry_run {
        "would roll back"
    } else {
        "rolled back"
    };
    let say = |s: &Switch<'_>| {
        format!(
            "{would} {}: current → releases/{} (was releases/{})",
            s.entry.server, s.target, s.from
        )
    };
    let changed: Vec<&Entry> = switches.iter().map(|s| s.entry).collect();
    let json = || Report {
        dry_run,
        entries: switches
            .iter()
            .map(|s| Switched {
                repo: &s.entry.repo,
                server: &s.entry.server,
                from: &s.from,
                to: &s.target,
            })
            .collect(),
    };
    if dry_run {
        if printer.json {
            printer.json(&json());
        }
        for s in switches.iter().filter(|_| !printer.json) {
            printer.data(Style::Changed, &say(s));
        }
        super::hooks::list(ctx, &changed, no_hooks);
        return Ok(ExitStatus::Success);
    }
    let lock = ctx.prepare_writes(entries.iter().copied(), true)?;
    let manifest = &ctx.settings.manifest;
    let mut ops = Vec::with_capacity(2 * switches.len());
    for s in &switches {
        ops.push(Op::Link {
            base: &manifest.server_root,
            relative: &s.link_path,
            target: &s.link_target,
            before: s.link_before,
            folders: Sides::perms_for(s.entry).folders,
        });
        ops.push(Op::Write(Job {
            base: &manifest.state_dir,
            relative: &s.mark_path,
            head: &[],
            contents: &s.mark,
            perms: STATE_PERMS,
            expect: Expect::Any,
            previous: None,
        }));
    }
    let mut batch = ctx.writer.batch();
    batch.apply(&ops)?;
    batch.finish()?;
    for s in &switches {
        printer.info(Style::Changed, &say(s));
    }
    if printer.json {
        printer.json(&json());
    }
    drop(lock);
    super::hooks::on_change(ctx, &changed, no_hooks)?;
    Ok(ExitStatus::Success)
}

/// Where `sides`' `current` goes: `to`, else the newest release older than the current one.
fn plan<'s>(sides: &'s Sides<'_>, to: Option<&str>) -> Result<Switch<'s>, Error> {
    let entry = sides.entry;
    let fail = |reason: String| Error::Rollback {
        server: entry.server.clone(),
        reason,
    };
    let folder = sides
        .folder
        .as_ref()
        .ok_or_else(|| fail("it is not a releases entry".into()))?;
    let from = folder.release.clone().ok_or_else(|| {
        fail("it has no `current` release yet; run `envsync decrypt` first".into())
    })?;
    let releases: Vec<&String> = folder.releases.iter().filter(|r| **r != from).collect();
    let target = match to {
        Some(name) if name == from => {
            return Err(fail(format!("releases/{name} is already current")))
        }
        Some(name) => releases
            .iter()
            .find(|r| r.as_str() == name)
            .map(|r| (*r).clone())
            .ok_or_else(|| {
                fail(format!(
                    "there is no release `{name}`; {}",
                    available(&releases)
                ))
            })?,
        None => releases
            .iter()
            .filter(|r| release_order(r) < release_order(&from))
            .max_by(|a, b| release_order(a).cmp(&release_order(b)))
            .map(|r| (*r).clone())
            .ok_or_else(|| {
                fail(format!(
                    "there is no release before {from}; {}",
                    available(&releases)
                ))
            })?,
    };
    Ok(Switch {
        entry,
        from,
        link_before: folder.link.as_deref(),
        link_target: format!("releases/{target}"),
        link_path: current_link(entry),
        mark_path: rollback_mark(entry),
        mark: format!("{target}\n").into_bytes(),
        target,
    })
}

fn available(releases: &[&String]) -> String {
    if releases.is_empty() {
        "it has no other release".into()
    } else {
        let names: Vec<&str> = releases.iter().map(|r| r.as_str()).collect();
        format!("the others are: {}", names.join(", "))
    }
}
