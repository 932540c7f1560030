//! `envsync check [FILE..] [--staged]`: the CI gate and pre-commit hook. It reads only the
//! repo side (files, sops metadata, git) and never loads a key, so it runs where no private
//! key may go. One line a problem on stdout, `<file>: <problem>; <fix>`; exit 0 when there
//! is none, 1 when there are some, 2 on an error (bad manifest, git failing).
//!
//! Problems: an entry's `.enc` missing (unless `optional`); an orphan `.enc` no entry maps
//! (git-tracked, or any under the repo when it is not a git repo); an `.enc` that is not
//! really encrypted (plaintext, no sops metadata or MAC, a dotenv value in clear that the
//! file's rule says to encrypt); recipients that differ from `.sops.yaml` or the entry; a
//! plaintext target inside the repo that is tracked, staged or not ignored; the keys of a
//! dotenv entry against its `example` (missing and undocumented keys, both named; no value
//! is read). With `--staged`, only entries whose `.enc`, plaintext or example is staged, and
//! staged orphans.
//!
//! `--json` (docs/json.md): `{"clean": bool, "problems": [...]}` in the envelope, each
//! problem `{"file", "kind", "message", "fix"}`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::Serialize;

use super::{relative, Context};
use crate::cli::Selection;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::git::Git;
use crate::keys::{KeyError, Recipients};
use crate::manifest::Entry;
use crate::output::Style;

mod encryption;
mod example;
mod orphans;
mod targets;

use crate::keys::layout::KeyLayout;
use encryption::{classify, clear_keys, Encryption};
use example::check_example;
use orphans::{enc_files_under, orphans, NestedManifests};
use targets::{check_targets, WorkTree};

/// What kind of problem a line reports (the `kind` of `--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    Missing,
    Orphan,
    NotEncrypted,
    NoMetadata,
    ClearValue,
    /// Values in clear by the file's own rule that `.sops.yaml`'s rule would encrypt.
    RuleDrift,
    Recipients,
    PlaintextTracked,
    PlaintextStaged,
    PlaintextNotIgnored,
    /// The entry's `example` is missing or unreadable as dotenv, or the entry is not dotenv.
    Example,
    /// Keys the example documents that the entry lacks.
    MissingKeys,
    /// Keys the entry has that the example does not document.
    UndocumentedKeys,
}

/// The JSON body of `check` (docs/json/check.schema.json).
#[derive(Serialize)]
struct CheckReport<'a> {
    /// No problem found (exit 0).
    clean: bool,
    problems: &'a [Problem],
}

/// One problem: the file, what is wrong, and how to fix it.
#[derive(Debug, Serialize)]
pub(crate) struct Problem {
    file: String,
    kind: Kind,
    message: String,
    fix: String,
}

pub(crate) fn run(ctx: &Context, selection: &Selection, staged: bool) -> Result<ExitStatus, Error> {
    let manifest = &ctx.settings.manifest;
    let root = &manifest.repo_root;
    let entries = ctx.select(selection)?;
    let recipients = Recipients::load(root, &manifest.path)?;
    let git = Git::open(root);
    // In a folder that is not a git repo nothing can be staged.
    let staged_files = match &git {
        Some(git) => git.staged()?,
        None => BTreeSet::new(),
    };
    let tracked = match &git {
        Some(git) => Some(git.tracked()?),
        None => None,
    };
    // Plaintext targets are judged against the whole git work tree, which may start above
    // the manifest's folder (a manifest in infra/ with `root = ".."`).
    let tree = match &git {
        Some(git) => Some(WorkTree::read(git, root, &staged_files, tracked.as_ref())?),
        None => None,
    };
    // --staged: only entries with a staged `.enc`, plaintext or example, so a commit that
    // touches no secret pays for (almost) nothing.
    let entries: Vec<&Entry> = entries
        .into_iter()
        .filter(|e| {
            let target_staged = tree.as_ref().is_some_and(|t| {
                relative(&t.top, &e.server_path).is_some_and(|p| t.staged.contains(&p))
            });
            !staged
                || target_staged
                || [relative(root, &e.repo_path), e.example.clone()]
                    .iter()
                    .flatten()
                    .any(|p| staged_files.contains(p))
        })
        .collect();

    let mut problems = Vec::new();
    for entry in &entries {
        check_entry(root, entry, &recipients, &mut problems)?;
    }
    if let Some(tree) = &tree {
        check_targets(&entries, tree, &mut problems)?;
    }
    // Orphans are judged against every entry, but only reported when the run is not
    // narrowed to some entries: naming one file is not a question about the others.
    if selection.files.is_empty() && selection.tags.is_empty() {
        let mapped: HashSet<String> = manifest
            .entries
            .iter()
            .filter_map(|e| relative(root, &e.repo_path))
            .collect();
        let candidates = match &tracked {
            Some(tracked) => tracked.clone(),
            None => enc_files_under(root),
        };
        // The state folder is envsync's own (its records end in `.enc` too), and a folder
        // with its own secrets.toml (one manifest a host, in one repo) maps its own files.
        let mut nested = NestedManifests::new(root);
        let state = relative(root, &manifest.state_dir);
        let candidates = candidates
            .into_iter()
            .filter(|p| !staged || staged_files.contains(p))
            .filter(|p| {
                state
                    .as_ref()
                    .is_none_or(|state| !p.starts_with(&format!("{state}/")))
            })
            .filter(|p| !nested.claims(p));
        problems.extend(
            orphans(candidates, &mapped)
                .into_iter()
                .map(|file| Problem {
                    fix: format!(
                        "add a [[file]] entry for it to secrets.toml, or remove it (git rm {file})"
                    ),
                    message: "no entry of secrets.toml maps this .enc".into(),
                    kind: Kind::Orphan,
                    file,
                }),
        );
    }

    let printer = &ctx.settings.printer;
    if printer.json {
        printer.json(&CheckReport {
            clean: problems.is_empty(),
            problems: &problems,
        });
    } else {
        for p in &problems {
            printer.data(
                Style::Changed,
                &format!("{}: {}; {}", p.file, p.message, p.fix),
            );
        }
    }
    Ok(if problems.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Drift
    })
}

/// The repo side of one entry: present, really encrypted, for the right recipients.
fn check_entry(
    root: &Path,
    entry: &Entry,
    recipients: &Recipients,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let repo = &entry.repo;
    let problem = |kind, message: String, fix: String| Problem {
        file: repo.clone(),
        kind,
        message,
        fix,
    };
    let bytes = match std::fs::read(&entry.repo_path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !entry.optional {
                problems.push(problem(
                    Kind::Missing,
                    format!("is missing (the repo copy of {})", entry.server),
                    format!(
                        "restore it from git (git checkout -- {repo}), or run `envsync encrypt {repo}`"
                    ),
                ));
            }
            return Ok(());
        }
        Err(source) => {
            return Err(Error::Read {
                path: entry.repo_path.clone(),
                source,
            })
        }
    };
    if let Some(example) = &entry.example {
        check_example(root, entry, example, &bytes, problems)?;
    }
    // A plain entry's repo file is plaintext by design.
    if entry.plain {
        return Ok(());
    }
    let reencrypt = format!(
        "restore it from git, or run `envsync encrypt --force {repo}` to re-create it from the server copy"
    );
    let metadata = match classify(&bytes) {
        Encryption::Age => return Ok(()),
        Encryption::Plaintext => {
            // Never quote the content: it may be the secret itself.
            problems.push(problem(
                Kind::NotEncrypted,
                "is not encrypted (no sops metadata and no age header)".into(),
                format!("if it was committed, treat its values as leaked; {reencrypt}"),
            ));
            return Ok(());
        }
        Encryption::NoMetadata(why) => {
            problems.push(problem(
                Kind::NoMetadata,
                format!("has no valid sops metadata or MAC ({why})"),
                reencrypt,
            ));
            return Ok(());
        }
        Encryption::Sops(metadata) => metadata,
    };
    // No recipients configured anywhere: encrypt keeps the file's own, so there is nothing
    // to differ from, and the file's own rule is the only one.
    let options = match recipients.options_for(entry) {
        Ok(options) => Some(options),
        Err(KeyError::NoRecipients { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if Format::detect(&bytes).is_some_and(|f| f == Format::Dotenv || f.codec().is_some()) {
        // In clear although the file's own rule (what sops recorded) says to encrypt: a
        // value pasted over its ciphertext, so a leak.
        let own = metadata.rule.clone().unwrap_or_default();
        let leaked = clear_keys(&bytes, &own);
        if !leaked.is_empty() {
            problems.push(problem(
                Kind::ClearValue,
                format!(
                    "holds values in clear that its sops rule says to encrypt: {}",
                    leaked.join(", ")
                ),
                format!("treat them as leaked and rotate them; {reencrypt}"),
            ));
        }
        // In clear by the file's rule, but today's rule (`.sops.yaml`, what the next encrypt
        // applies) would encrypt them: the file was made under a narrower rule. Not a leak
        // by itself; the team decides which rule is right.
        let narrower: Vec<String> = options
            .as_ref()
            .map(|o| clear_keys(&bytes, &o.rule))
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !leaked.contains(k))
            .collect();
        if !narrower.is_empty() {
            problems.push(problem(
                Kind::RuleDrift,
                format!(
                    "was encrypted under a narrower rule than .sops.yaml's, which would encrypt: {}",
                    narrower.join(", ")
                ),
                format!(
                    "if they are secrets, rotate them on the server and run `envsync encrypt {repo}` (it applies .sops.yaml's rule); if not, give .sops.yaml the file's rule"
                ),
            ));
        }
    }
    let Some(options) = options else {
        return Ok(());
    };
    let want = KeyLayout::of_plan(&options.keys);
    let have = KeyLayout::of_metadata(&metadata);
    if let Some(drift) = have.drift_from(&want) {
        let source = if entry.recipients.is_some() {
            "the entry's recipients"
        } else {
            ".sops.yaml"
        };
        problems.push(problem(
            Kind::Recipients,
            format!("its recipients differ from {source} ({drift})"),
            format!("run `envsync rekey {repo}`"),
        ));
    }
    Ok(())
}
