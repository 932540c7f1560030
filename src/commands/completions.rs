//! `envsync completions SHELL` and `envsync man`, both from the clap definitions in
//! [`crate::cli`], and the values completions offer: the manifest's entries (repo and server
//! paths) for FILE arguments and its tags for `--tag`.
//!
//! Completion is dynamic (clap_complete's `COMPLETE=<shell> envsync` protocol, set up in
//! `main.rs`): the script `completions` prints registers a function that asks envsync itself
//! for candidates, so they follow the manifest of the folder the operator is in. Neither
//! command needs a manifest; while completing, a missing or broken manifest simply offers
//! nothing (an error printed into a shell's completion would garble the prompt).

use std::collections::BTreeSet;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::Shells;

use crate::cli::{Cli, CompletionShell};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::manifest::{self, Manifest};
use crate::output::Printer;

/// The environment variable clap_complete's registration scripts set while completing.
pub(crate) const COMPLETE_VAR: &str = "COMPLETE";

/// Prints the registration script of `shell`: it makes the shell call `envsync` (from PATH)
/// for candidates.
pub(crate) fn completions(printer: &Printer, shell: CompletionShell) -> Result<ExitStatus, Error> {
    let name = match shell {
        CompletionShell::Bash => "bash",
        CompletionShell::Zsh => "zsh",
        CompletionShell::Fish => "fish",
        CompletionShell::Elvish => "elvish",
        CompletionShell::Powershell => "powershell",
    };
    let mut script = Vec::new();
    if let Some(completer) = Shells::builtins().completer(name) {
        completer
            .write_registration(COMPLETE_VAR, "envsync", "envsync", "envsync", &mut script)
            .map_err(|source| Error::Stdout { source })?;
    }
    printer.raw(&script);
    Ok(ExitStatus::Success)
}

/// Prints the man page (roff) for envsync and its commands.
pub(crate) fn man(printer: &Printer) -> Result<ExitStatus, Error> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|source| Error::Stdout { source })?;
    printer.raw(&page);
    Ok(ExitStatus::Success)
}

/// The manifest completion reads: `$ENVSYNC_MANIFEST`, else the nearest `secrets.toml`.
fn manifest() -> Option<Manifest> {
    let path = match std::env::var_os("ENVSYNC_MANIFEST").filter(|v| !v.is_empty()) {
        Some(path) => path.into(),
        None => manifest::discover(&std::env::current_dir().ok()?)?,
    };
    Manifest::load(&path).ok()
}

/// Candidates for FILE: every entry's repo path (its server path as the help).
pub(crate) fn entry_candidates() -> Vec<CompletionCandidate> {
    let Some(manifest) = manifest() else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    manifest
        .entries
        .iter()
        .flat_map(|e| [(e.repo.clone(), &e.server), (e.server.clone(), &e.repo)])
        .filter(|(path, _)| seen.insert(path.clone()))
        .map(|(path, other)| CompletionCandidate::new(path).help(Some(other.clone().into())))
        .collect()
}

/// Candidates for `--tag`: the manifest's tags.
pub(crate) fn tag_candidates() -> Vec<CompletionCandidate> {
    let Some(manifest) = manifest() else {
        return Vec::new();
    };
    let tags: BTreeSet<&String> = manifest.entries.iter().flat_map(|e| &e.tags).collect();
    tags.into_iter()
        .map(|t| CompletionCandidate::new(t.as_str()))
        .collect()
}
