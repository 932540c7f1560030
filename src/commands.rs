//! One module a command, and what they share: the run context and entry selection.
//!
//! Every command flows load → plan → apply: it reads and checks all selected entries first,
//! builds a plan, and only then writes (or, with `--dry-run`, prints the plan).

pub(crate) mod add;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod decrypt;
pub(crate) mod diff;
pub(crate) mod edit;
pub(crate) mod encrypt;
pub(crate) mod exec;
pub(crate) mod hooks;
pub(crate) mod init;
pub(crate) mod keygen;
pub(crate) mod rekey;
pub(crate) mod rollback;
pub(crate) mod show;
pub(crate) mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::Glob;
use rayon::prelude::*;

use crate::cli::{Command, Selection};
use crate::crypto::Identities;
use crate::error::{Error, Refusal};
use crate::exit::ExitStatus;
use crate::fs::{AtomicWriter, Folders, RunLock};
use crate::keys;

use crate::error::FileError;
use crate::format::Format;
use crate::manifest::Entry;
use crate::output::json::Changes;
use crate::output::{Printer, Style};
use crate::settings::Settings;
use crate::sops::store::dotenv;
use crate::sync::decision::{decide, Decision, Direction, Failure, Next, Situation};
use crate::sync::state::{Analysis, State};
use crate::sync::{Codec, Sides};

/// What a command runs with.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) settings: Settings,
    pub(crate) cwd: PathBuf,
    pub(crate) writer: AtomicWriter,
}

impl Context {
    pub(crate) fn new(settings: Settings, cwd: PathBuf) -> Self {
        Self {
            settings,
            cwd,
            writer: AtomicWriter::new(),
        }
    }

    /// The entries a selection names, in manifest order. Each name is looked up in an index
    /// of repo and server paths (made once), so naming every entry stays linear.
    pub(crate) fn select(&self, selection: &Selection) -> Result<Vec<&Entry>, Error> {
        let manifest = &self.settings.manifest;
        let mut chosen = vec![selection.files.is_empty(); manifest.entries.len()];
        let index = (!selection.files.is_empty()).then(|| PathIndex::new(&manifest.entries));
        for pattern in &selection.files {
            let hits = match &index {
                Some(index) => self.matching(index, pattern)?,
                None => Vec::new(),
            };
            if hits.is_empty() {
                return Err(Error::NoMatch {
                    pattern: pattern.clone(),
                    manifest: manifest.path.display().to_string(),
                });
            }
            for i in hits {
                chosen[i] = true;
            }
        }
        Ok(manifest
            .entries
            .iter()
            .zip(chosen)
            .filter(|(entry, chosen)| {
                *chosen
                    && (selection.tags.is_empty()
                        || selection.tags.iter().any(|t| entry.tags.contains(t)))
            })
            .map(|(entry, _)| entry)
            .collect())
    }

    /// The entries `pattern` names: by repo or server path (as written in the manifest, or
    /// as a path from the working folder), else as a glob over both.
    fn matching(&self, index: &PathIndex<'_>, pattern: &str) -> Result<Vec<usize>, Error> {
        let exact = index.lookup(pattern, &self.cwd.join(pattern));
        if !exact.is_empty() {
            return Ok(exact);
        }
        let glob = Glob::new(pattern)
            .map_err(|_| Error::BadGlob {
                pattern: pattern.to_string(),
            })?
            .compile_matcher();
        Ok(self
            .settings
            .manifest
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| glob.is_match(&e.repo) || glob.is_match(&e.server))
            .map(|(i, _)| i)
            .collect())
    }

    /// Before a plan is applied: refuses server folders others could write to (before
    /// anything is created), takes the run's lock and removes the temps a killed run left
    /// beside the targets (server side or repo side). The targets are checked against the
    /// plan only after this, so an edit made while the run waited for its lock stops it.
    pub(crate) fn prepare_writes<'e>(
        &self,
        entries: impl IntoIterator<Item = &'e Entry>,
        server_side: bool,
    ) -> Result<Option<RunLock>, Error> {
        let manifest = &self.settings.manifest;
        let printer = &self.settings.printer;
        let entries: Vec<&Entry> = entries.into_iter().collect();
        let euid = rustix::process::geteuid().as_raw();
        if server_side {
            for entry in &entries {
                // A files entry's key files live in its server folder (or under it).
                let folder = match entry.files {
                    Some(_) => &entry.server_path,
                    None => entry.server_path.parent().unwrap_or(&manifest.server_root),
                };
                let existing = folder.ancestors().find(|p| p.is_dir()).unwrap_or(folder);
                self.writer
                    .check_folder(existing, entry.uid.unwrap_or(euid))?;
            }
        }
        // A repo-side run (encrypt, rekey) on a machine with no server root, a workstation,
        // has no server files or records to protect, and must not create a server root: it
        // takes no lock.
        if !server_side && !manifest.server_root.is_dir() {
            self.sweep(&entries, server_side);
            return Ok(None);
        }
        // The server root first, as a folder shared by every entry (`defaults.dir_mode`);
        // the state folder inside it is private.
        let root = Folders {
            mode: manifest.dir_mode,
            gid: None,
            guarded: true,
        };
        crate::fs::create_folder(&manifest.server_root, root)?;
        let state = crate::sync::STATE_PERMS.folders;
        let lock = RunLock::acquire(&self.writer, &manifest.state_dir, state, |path| {
            printer.info(
                Style::Plain,
                &format!(
                    "waiting for another envsync run to finish (it holds {})",
                    path.display()
                ),
            );
        })?;
        self.sweep(&entries, server_side);
        Ok(Some(lock))
    }

    /// Removes the temps a killed run left beside the targets.
    fn sweep(&self, entries: &[&Entry], server_side: bool) {
        let manifest = &self.settings.manifest;
        for entry in entries {
            if server_side && entry.files.is_some() {
                // Inside the folder: key files' temps, and `current`'s; staged releases.
                let inside = format!("{}/-", entry.server);
                self.writer.sweep(&manifest.server_root, &inside);
                crate::sync::files::sweep_staged(manifest, entry);
            } else if server_side {
                self.writer.sweep(&manifest.server_root, &entry.server);
            } else {
                self.writer.sweep(&manifest.repo_root, &entry.repo);
            }
        }
    }

    /// Loads identities when any selected entry is encrypted.
    pub(crate) fn identities(&self, entries: &[&Entry]) -> Result<Option<Identities>, Error> {
        if entries.iter().all(|e| e.plain) {
            return Ok(None);
        }
        Ok(Some(keys::load_identities(&self.settings.identities)?))
    }

    /// Reads both sides of every entry in parallel; all errors are collected.
    pub(crate) fn read_all<'m>(&self, entries: &[&'m Entry]) -> Result<Vec<Sides<'m>>, Error> {
        collect(
            entries
                .par_iter()
                .map(|e| Sides::read(&self.settings.manifest, e))
                .collect(),
        )
    }

    /// Reads each entry's files, one result an entry (`--keep-going` reports the others).
    pub(crate) fn read_each<'m>(&self, entries: &[&'m Entry]) -> Vec<Result<Sides<'m>, Error>> {
        entries
            .par_iter()
            .map(|e| Sides::read(&self.settings.manifest, e))
            .collect()
    }
}

/// An entry that could not be compared, as `--keep-going` reports it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct EntryError {
    pub(crate) repo: String,
    pub(crate) server: String,
    pub(crate) error: crate::output::json::ErrorInfo,
}

/// The entries that could be compared, those that could not, and their errors.
pub(crate) type Partial<T> = (Vec<T>, Vec<EntryError>, Vec<Error>);

/// Splits per-entry results: with `keep_going`, the values and the errors (each named by its
/// entry); without, the values or one error listing every failure.
pub(crate) fn keep_going<T>(
    entries: &[&Entry],
    results: Vec<Result<T, Error>>,
    keep_going: bool,
) -> Result<Partial<T>, Error> {
    if !keep_going {
        return collect(results).map(|v| (v, Vec::new(), Vec::new()));
    }
    let mut values = Vec::with_capacity(results.len());
    let mut described = Vec::new();
    let mut errors = Vec::new();
    for (entry, result) in entries.iter().zip(results) {
        match result {
            Ok(v) => values.push(v),
            Err(e) => {
                described.push(EntryError {
                    repo: entry.repo.clone(),
                    server: entry.server.clone(),
                    error: e.info(),
                });
                errors.push(e);
            }
        }
    }
    Ok((values, described, errors))
}

/// Splits results into the values or one error listing every failure.
pub(crate) fn collect<T>(results: Vec<Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut values = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(v) => values.push(v),
            Err(e) => errors.push(e),
        }
    }
    match Error::from_many(errors) {
        Some(e) => Err(e),
        None => Ok(values),
    }
}

/// Entries by the names a selection may use: repo and server paths as the manifest writes
/// them, and their full paths normalised.
struct PathIndex<'m> {
    by_name: HashMap<&'m str, Vec<usize>>,
    by_path: HashMap<PathBuf, Vec<usize>>,
}

impl<'m> PathIndex<'m> {
    fn new(entries: &'m [Entry]) -> Self {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::with_capacity(2 * entries.len());
        let mut by_path: HashMap<PathBuf, Vec<usize>> = HashMap::with_capacity(2 * entries.len());
        for (i, e) in entries.iter().enumerate() {
            for name in [e.repo.as_str(), e.server.as_str()] {
                by_name.entry(name).or_default().push(i);
            }
            for path in [&e.repo_path, &e.server_path] {
                by_path.entry(normalise(path)).or_default().push(i);
            }
        }
        Self { by_name, by_path }
    }

    /// The entries named `name`, or found at `path`, in manifest order.
    fn lookup(&self, name: &str, path: &Path) -> Vec<usize> {
        let mut hits: Vec<usize> = (self.by_name.get(name).into_iter().flatten())
            .chain(self.by_path.get(&normalise(path)).into_iter().flatten())
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        hits
    }
}

/// Lexical normalisation (`a/./b` → `a/b`, `a/x/../b` → `a/b`), for comparing user paths
/// with entry paths. A `..` that would climb above the start is kept, so such a path is
/// never under a root it does not start with.
fn normalise(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            // `/..` is `/`.
            Component::ParentDir if matches!(out.last(), Some(Component::RootDir)) => {}
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// `path` relative to `root` with `/` separators, or None when it is not under it.
pub(crate) fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = normalise(path);
    let rel = rel.strip_prefix(normalise(root)).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// One entry's outcome, as decrypt and encrypt report it.
pub(crate) struct Outcome<'m> {
    pub(crate) entry: &'m Entry,
    pub(crate) codec: Codec,
    /// What the run does (or, in a dry run, would do) to the entry.
    pub(crate) decision: Decision,
    pub(crate) state: State,
    pub(crate) style: Style,
    /// Nothing to do: shown only with --verbose (or in a dry run's plan).
    pub(crate) idle: bool,
    /// `repo → server` or `repo ← server`, with any note.
    pub(crate) detail: String,
    /// What the write changes (or, in a dry run, would change): keys added, removed and
    /// changed, sizes, mode fixes. Empty for an entry left alone.
    pub(crate) changes: Changes,
}

/// The JSON body of decrypt and encrypt (docs/json/decrypt.schema.json).
#[derive(serde::Serialize)]
struct WriteReport<'a> {
    dry_run: bool,
    /// Whether any entry's target was (or would be) written or had its mode fixed.
    changed: bool,
    entries: Vec<EntryReport<'a>>,
    /// decrypt: the `on_change` commands run (or, in a dry run, to run).
    #[serde(skip_serializing_if = "Option::is_none")]
    on_change: Option<&'a [String]>,
}

/// One entry of a decrypt or encrypt report.
#[derive(serde::Serialize)]
struct EntryReport<'a> {
    repo: &'a str,
    server: &'a str,
    format: &'static str,
    tags: &'a [String],
    state: &'static str,
    action: &'static str,
    changed: bool,
    mode: String,
    changes: &'a Changes,
}

impl Outcome<'_> {
    /// Whether the run writes (or would write) this entry's target or fixes its mode.
    fn changed(&self) -> bool {
        self.decision.writes() || self.decision == Decision::FixPerms
    }
}

/// Prints what a writing command did (or, with `dry_run`, would do): the plan on stdout for
/// a dry run, progress on stderr otherwise, a JSON document with --json.
/// `on_change`: for decrypt, the `on_change` commands the run starts (or, in a dry run, would
/// start) once everything is written; the JSON document lists them.
pub(crate) fn report(
    printer: &Printer,
    dry_run: bool,
    outcomes: &[Outcome<'_>],
    on_change: Option<&[String]>,
) {
    if printer.json {
        printer.json(&WriteReport {
            dry_run,
            changed: outcomes.iter().any(Outcome::changed),
            entries: outcomes
                .iter()
                .map(|o| EntryReport {
                    repo: &o.entry.repo,
                    server: &o.entry.server,
                    format: o.codec.name(),
                    tags: &o.entry.tags,
                    state: o.state.name(),
                    action: o.decision.word(),
                    changed: o.changed(),
                    mode: format!("{:04o}", o.entry.mode),
                    changes: &o.changes,
                })
                .collect(),
            on_change,
        });
        return;
    }
    for o in outcomes {
        let would = if dry_run && !o.idle { "would " } else { "" };
        let line = format!("{would}{:<9} {}", o.decision.word(), o.detail);
        if dry_run {
            printer.data(o.style, &line);
            for change in o.changes.lines(crate::diff::PLAN) {
                printer.data(Style::for_line(&change), &format!("    {change}"));
            }
        } else if o.idle {
            printer.verbose(&line);
        } else {
            printer.info(o.style, &line);
        }
    }
}

/// What writing `new` over `old` (`None`: no file yet) changes in `sides`' entry, masked:
/// keys for keyed files and extracted values (`key`), sizes otherwise.
pub(crate) fn plan_changes(sides: &Sides<'_>, old: Option<&[u8]>, new: &[u8]) -> Changes {
    use crate::diff::KeyChange;
    if let Some(key) = &sides.entry.key {
        let key = key.to_string();
        return match old {
            None => Changes::from_keys(&[KeyChange::Added {
                key,
                len: crate::secret::display_len(new),
            }]),
            Some(old) if old != new => Changes::from_keys(&[KeyChange::Changed {
                key,
                old_len: crate::secret::display_len(old),
                new_len: crate::secret::display_len(new),
            }]),
            Some(_) => Changes::default(),
        };
    }
    content_changes(sides.view_codec(), old, new)
}

/// What writing `new` over `old` (`None`: no file yet) changes, read as `codec`: keys for
/// dotenv, YAML, JSON and INI, sizes otherwise.
pub(crate) fn content_changes(codec: Codec, old: Option<&[u8]>, new: &[u8]) -> Changes {
    let old_bytes = old.unwrap_or_default();
    if codec == Codec::Encrypted(Format::Dotenv) {
        if let (Ok(old), Ok(new)) = (dotenv::parse(old_bytes), dotenv::parse(new)) {
            return Changes::from_keys(&crate::diff::dotenv(&old, &new));
        }
    }
    if let Some(tree) = codec.format().and_then(Format::codec) {
        let parsed_old = if old.is_some() {
            tree.parse(old_bytes).ok()
        } else {
            Some(Vec::new())
        };
        if let (Some(old), Ok(new)) = (parsed_old, tree.parse(new)) {
            return Changes::from_keys(&crate::diff::tree(&old, &new));
        }
    }
    if old == Some(new) {
        Changes::default()
    } else {
        Changes::content(old_bytes.len(), new.len())
    }
}

/// One entry's place in a decrypt or encrypt plan: its files, what they were judged to be,
/// and what the run does to it.
#[derive(Debug)]
pub(crate) struct Step<'s, 'm> {
    pub(crate) sides: &'s Sides<'m>,
    pub(crate) analysis: Analysis,
    pub(crate) decision: Decision,
    /// encrypt: the new `.enc` (empty unless the decision writes).
    pub(crate) contents: Vec<u8>,
    /// encrypt, when entries share one `.enc` (`key`): the file written for all of them,
    /// which holds the other entries' changes too; `contents` is then this entry's own
    /// result, the one its sync record keeps.
    pub(crate) shared: Option<std::sync::Arc<Vec<u8>>>,
}

/// Decides one entry, as [`decide`] says for `direction`.
pub(crate) fn step<'s, 'm>(
    direction: Direction,
    sides: &'s Sides<'m>,
    analysis: Analysis,
    flags: Flags,
    recipients_differ: bool,
) -> Step<'s, 'm> {
    let situation = Situation {
        state: analysis.state,
        perms_drift: sides.server_perms_drift(),
        server_empty: sides.server.as_ref().is_some_and(|s| s.bytes.is_empty()),
        force: flags.force,
        allow_empty: flags.allow_empty,
        optional: sides.entry.optional,
        recipients_differ,
    };
    Step {
        sides,
        analysis,
        decision: decide(direction, situation),
        contents: Vec::new(),
        shared: None,
    }
}

/// Flags of a writing command.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Flags {
    pub(crate) dry_run: bool,
    pub(crate) force: bool,
    pub(crate) allow_empty: bool,
    /// `--no-hooks`: changes run no `on_change` command.
    pub(crate) no_hooks: bool,
}

/// Checks a whole plan before anything is written: every entry's error first (all of
/// them), then every refusal (all of them). Only a plan that can be applied comes back.
pub(crate) fn settle<'s, 'm>(
    direction: Direction,
    planned: Vec<Result<Step<'s, 'm>, Error>>,
) -> Result<Vec<Step<'s, 'm>>, Error> {
    let steps = collect(
        planned
            .into_iter()
            .map(|step| {
                let step = step?;
                match step.decision {
                    Decision::Fail(failure) => Err(failure_error(step.sides.entry, failure)),
                    _ => Ok(step),
                }
            })
            .collect(),
    )?;
    let refusals: Vec<Refusal> = steps
        .iter()
        .filter_map(|s| match s.decision {
            Decision::Refuse(next) => {
                Some(refusal(s.sides.entry, s.analysis.state, direction, next))
            }
            _ => None,
        })
        .collect();
    if refusals.is_empty() {
        Ok(steps)
    } else {
        Err(Error::Refused(refusals))
    }
}

/// The error for an entry that cannot be synced.
fn failure_error(entry: &Entry, failure: Failure) -> Error {
    match failure {
        Failure::RepoMissing => Error::File {
            path: entry.repo_path.clone(),
            source: FileError::RepoMissing {
                server: entry.server.clone(),
            },
        },
        Failure::ServerMissing => Error::File {
            path: entry.server_path.clone(),
            source: FileError::ServerMissing,
        },
        Failure::ServerEmpty => Error::File {
            path: entry.server_path.clone(),
            source: FileError::ServerEmpty,
        },
    }
}

/// The refusal for an entry `direction` must not write, with the commands that resolve it.
pub(crate) fn refusal(entry: &Entry, state: State, direction: Direction, next: Next) -> Refusal {
    let repo = &entry.repo;
    let resolve = match (direction, next) {
        (Direction::Decrypt, Next::Encrypt) => format!(
            "keep the edit with `envsync encrypt {repo}`, or discard it with `envsync decrypt --force {repo}`"
        ),
        (Direction::Encrypt, Next::Decrypt) => format!(
            "apply the pulled change with `envsync decrypt {repo}`, or overwrite it with `envsync encrypt --force {repo}`"
        ),
        _ => format!(
            "compare with `envsync diff {repo}`, then keep the server copy with `envsync encrypt --force {repo}` or the repo copy with `envsync decrypt --force {repo}`"
        ),
    };
    Refusal {
        entry: format!("{} ({repo})", entry.server),
        repo: repo.clone(),
        server: entry.server.clone(),
        meaning: state.meaning().to_string(),
        state: state.name().to_string(),
        resolve,
    }
}

/// `repo → server` for messages.
pub(crate) fn arrow(entry: &Entry) -> String {
    format!("{} → {}", entry.repo, entry.server)
}

/// Runs one command.
pub(crate) fn dispatch(ctx: &mut Context, command: &Command) -> Result<ExitStatus, Error> {
    match command {
        Command::Add {
            server,
            repo,
            format,
            tags,
            dry_run,
            allow_empty,
        } => add::run(
            ctx,
            &add::Request {
                server,
                repo: repo.as_deref(),
                format: format.as_deref(),
                tags,
                dry_run: *dry_run,
                allow_empty: *allow_empty,
            },
        ),
        Command::Decrypt {
            selection,
            dry_run,
            force,
            no_hooks,
        } => decrypt::run(
            ctx,
            selection,
            Flags {
                dry_run: *dry_run,
                force: *force,
                allow_empty: false,
                no_hooks: *no_hooks,
            },
        ),
        Command::Rollback {
            selection,
            to,
            dry_run,
            no_hooks,
        } => rollback::run(ctx, selection, to.as_deref(), *dry_run, *no_hooks),
        Command::Encrypt {
            selection,
            dry_run,
            force,
            allow_empty,
        } => encrypt::run(
            ctx,
            selection,
            Flags {
                dry_run: *dry_run,
                force: *force,
                allow_empty: *allow_empty,
                no_hooks: true,
            },
        ),
        Command::Status {
            selection,
            keep_going,
        } => status::run(ctx, selection, *keep_going),
        Command::Check { selection, staged } => check::run(ctx, selection, *staged),
        Command::Rekey {
            selection,
            dry_run,
            rotate,
        } => rekey::run(
            ctx,
            selection,
            rekey::Flags {
                dry_run: *dry_run,
                rotate: *rotate,
            },
        ),
        Command::Keygen { output } => {
            keygen::run(&ctx.settings.printer, output.as_deref(), &ctx.cwd)
        }
        Command::Init {
            from_makefile,
            root,
            dry_run,
        } => init::run(
            &ctx.settings.printer,
            &init::Args {
                from_makefile: from_makefile.as_deref(),
                root: root.as_deref(),
                dry_run: *dry_run,
                manifest: Some(&ctx.settings.manifest.path),
                identity: &ctx.settings.identities.explicit,
            },
            &ctx.cwd,
        ),
        Command::Diff {
            selection,
            keep_going,
        } => diff::run(ctx, selection, *keep_going),
        Command::Completions { shell } => completions::completions(&ctx.settings.printer, *shell),
        Command::Man => completions::man(&ctx.settings.printer),
        Command::Exec {
            files,
            tags,
            clear_env,
            cmd,
        } => exec::run(
            ctx,
            &exec::Request {
                files,
                tags,
                clear_env: *clear_env,
                cmd,
            },
        ),
        Command::Show { file, reveal } => show::run(ctx, file, *reveal),
        Command::Edit { file, apply } => edit::run(ctx, file, *apply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_under_the_root() {
        let root = Path::new("/r/repo");
        let table = [
            ("/r/repo/./app/.env", Some("app/.env")),
            ("/r/repo/infra/../app/.env", Some("app/.env")),
            ("/r/server/app/.env", None),
            ("/r/repo/../server/.env", None),
            ("/r/repo/..", None),
            ("/r/repo", None),
            ("/../r/repo/x", Some("x")),
        ];
        for (path, want) in table {
            assert_eq!(relative(root, Path::new(path)).as_deref(), want, "{path}");
        }
        // A root given with `..` compares as the folder it names.
        assert_eq!(
            relative(Path::new("/r/repo/infra/.."), Path::new("/r/repo/app/.env")).as_deref(),
            Some("app/.env")
        );
        assert_eq!(
            relative(
                Path::new("/r/repo/infra"),
                Path::new("/r/repo/infra/../app/.env")
            ),
            None
        );
    }
}
