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
//! `--json` prints `{"version": 1, "command": "check", "ok": bool, "problems": [...]}`, each
//! problem `{"file", "kind", "message", "fix"}`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::{relative, Context};
use crate::cli::Selection;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::git::Git;
use crate::keys::{KeyError, Recipients};
use crate::manifest::Entry;
use crate::output::Style;
use crate::sops::cipher::EncValue;
use crate::sops::store::dotenv::{self, Item};
use crate::sops::{CryptRule, Metadata};

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
        printer.json(&json!({
            "version": 1,
            "command": "check",
            "ok": problems.is_empty(),
            "problems": problems,
        }));
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
    if Format::detect(&bytes) == Some(Format::Dotenv) {
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
    let want = Layout::new(
        options
            .keys
            .groups
            .iter()
            .map(|g| g.iter().map(|r| r.text.clone()).collect())
            .collect(),
        options.keys.threshold,
    );
    let have = Layout::new(
        metadata
            .key_groups
            .iter()
            .map(|g| g.iter().map(|k| k.recipient.clone()).collect())
            .collect(),
        metadata.shamir_threshold,
    );
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

/// The keys of a dotenv entry against its `example`: missing and undocumented keys, both
/// named. Only key names are read from either side; values are never looked at.
fn check_example(
    root: &Path,
    entry: &Entry,
    example: &str,
    enc: &[u8],
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let repo = &entry.repo;
    let mut problem = |kind, message: String, fix: String| {
        problems.push(Problem {
            file: repo.clone(),
            kind,
            message,
            fix,
        });
    };
    let path = root.join(example);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problem(
                Kind::Example,
                format!("its example {example} is missing"),
                format!("create {example} with the entry's keys (KEY= lines), or remove `example` from its entry"),
            );
            return Ok(());
        }
        Err(source) => return Err(Error::Read { path, source }),
    };
    let documented = match example_keys(&text) {
        Ok(keys) => keys,
        Err(line) => {
            problem(
                Kind::Example,
                format!("its example {example} is not a dotenv file (line {line} is not a KEY=value line)"),
                format!("write {example} as KEY=value lines and # comments"),
            );
            return Ok(());
        }
    };
    let dotenv_entry = entry.plain
        || entry.format == Some(Format::Dotenv)
        || (entry.format.is_none() && Format::detect(enc) == Some(Format::Dotenv));
    let have = match dotenv::parse(enc) {
        Ok(items) if dotenv_entry => entry_keys(&items),
        _ => {
            problem(
                Kind::Example,
                format!("has an example ({example}) but is not a dotenv file"),
                "remove `example` from its entry: only dotenv keys are compared".into(),
            );
            return Ok(());
        }
    };
    let (missing, undocumented) = key_drift(&have, &documented);
    if !missing.is_empty() {
        problem(
            Kind::MissingKeys,
            format!(
                "lacks keys its example {example} documents: {}",
                missing.join(", ")
            ),
            format!(
                "add them to {} and run `envsync encrypt {repo}`, or remove them from {example}",
                entry.server
            ),
        );
    }
    if !undocumented.is_empty() {
        problem(
            Kind::UndocumentedKeys,
            format!(
                "has keys its example {example} does not document: {}",
                undocumented.join(", ")
            ),
            format!("add `KEY=` lines for them to {example}"),
        );
    }
    Ok(())
}

/// The keys of a parsed dotenv entry (sops metadata left out), as an example names them.
fn entry_keys(items: &[Item]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Pair { key, .. } => Some(normal_key(key)),
            Item::Comment(_) => None,
        })
        .filter(|key| !key.starts_with("sops_"))
        .collect()
}

/// The keys an example file documents: `KEY=...` lines, with `export` and spaces allowed as
/// shells and dotenv libraries allow them; `#` lines are comments; a quoted value may run
/// over several lines, as docker compose reads it. Err is the first line that is none of
/// these (its text is never shown: it may be a pasted value).
fn example_keys(text: &[u8]) -> Result<BTreeSet<String>, usize> {
    let mut keys = BTreeSet::new();
    // The quote a multi-line value is waiting for.
    let mut open: Option<u8> = None;
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(quote) = open {
            if line.contains(&quote) {
                open = None;
            }
            continue;
        }
        let line = line.trim_ascii();
        if line.is_empty() || line.starts_with(b"#") {
            continue;
        }
        let eq = line.iter().position(|&b| b == b'=').ok_or(index + 1)?;
        let key = std::str::from_utf8(&line[..eq]).map_err(|_| index + 1)?;
        let key = normal_key(key);
        if !is_key_name(&key) {
            return Err(index + 1);
        }
        let value = line[eq + 1..].trim_ascii_start();
        if let Some(&quote @ (b'"' | b'\'')) = value.first() {
            if !value[1..].contains(&quote) {
                open = Some(quote);
            }
        }
        keys.insert(key);
    }
    Ok(keys)
}

/// A dotenv key name: a letter or `_`, then letters, digits, `_`, `.` or `-`.
fn is_key_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A key as written, without an `export` prefix or surrounding spaces.
fn normal_key(key: &str) -> String {
    let key = key.trim();
    match key.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim().to_string(),
        _ => key.to_string(),
    }
}

/// The example's keys the entry lacks, and the entry's keys the example lacks, sorted.
fn key_drift(have: &BTreeSet<String>, documented: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (
        documented.difference(have).cloned().collect(),
        have.difference(documented).cloned().collect(),
    )
}

/// Plaintext targets inside the repo's work tree must be neither tracked nor staged, and
/// must be ignored so that a `git add .` cannot pick them up.
fn check_targets(
    entries: &[&Entry],
    tree: &WorkTree,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let (tracked, staged) = (&tree.tracked, &tree.staged);
    let targets: Vec<String> = entries
        .iter()
        .filter(|e| !e.plain)
        .filter_map(|e| relative(&tree.top, &e.server_path))
        .collect();
    let git = Git::open(&tree.top).ok_or_else(|| Error::Git {
        args: "rev-parse --is-inside-work-tree".into(),
        message: format!("{} is no longer a git work tree", tree.top.display()),
    })?;
    let ignored = git.ignored(&targets)?;
    for target in targets {
        let state = TargetState {
            tracked: tracked.contains(&target),
            // `tracked` is the index: a staged path no longer in it is a staged removal
            // (`git rm --cached`, the fix given here), which is the cure, not a problem.
            staged: staged.contains(&target) && tracked.contains(&target),
            ignored: ignored.contains(&target),
        };
        if let Some((kind, message, fix)) = target_problem(state, &target) {
            problems.push(Problem {
                file: target,
                kind,
                message: message.into(),
                fix,
            });
        }
    }
    Ok(())
}

/// The git work tree holding the repo: its top folder, and its tracked and staged files
/// (paths from the top).
struct WorkTree {
    top: std::path::PathBuf,
    tracked: BTreeSet<String>,
    staged: BTreeSet<String>,
}

impl WorkTree {
    /// Reuses what was read for the repo root when the root is the top.
    fn read(
        git: &Git<'_>,
        root: &Path,
        staged: &BTreeSet<String>,
        tracked: Option<&BTreeSet<String>>,
    ) -> Result<Self, Error> {
        let top = git.toplevel()?;
        if top == root {
            if let Some(tracked) = tracked {
                return Ok(Self {
                    top,
                    tracked: tracked.clone(),
                    staged: staged.clone(),
                });
            }
        }
        let at_top = Git::open(&top).ok_or_else(|| Error::Git {
            args: "rev-parse --show-toplevel".into(),
            message: format!("{} is not a git work tree", top.display()),
        })?;
        Ok(Self {
            tracked: at_top.tracked()?,
            staged: at_top.staged()?,
            top,
        })
    }
}

/// What git says of a plaintext target.
#[derive(Clone, Copy, Debug)]
struct TargetState {
    tracked: bool,
    staged: bool,
    ignored: bool,
}

/// The problem a plaintext target inside the repo has, if any. Staged wins over tracked:
/// the fix is the same, but "staged" tells a pre-commit hook's user it is not yet pushed.
fn target_problem(state: TargetState, target: &str) -> Option<(Kind, &'static str, String)> {
    let unstage = format!("run `git rm --cached {target}` and add it to .gitignore");
    if state.staged {
        Some((
            Kind::PlaintextStaged,
            "is a plaintext secret staged for commit",
            unstage,
        ))
    } else if state.tracked {
        Some((
            Kind::PlaintextTracked,
            "is a plaintext secret tracked by git",
            format!("{unstage}, then treat its values as leaked and rotate them"),
        ))
    } else if !state.ignored {
        Some((
            Kind::PlaintextNotIgnored,
            "is a plaintext secret inside the repo that git does not ignore",
            format!("add `/{target}` to .gitignore"),
        ))
    } else {
        None
    }
}

/// What an `.enc`'s bytes are, judged without any key.
#[derive(Debug)]
enum Encryption {
    /// A plain age file: no sops metadata to check.
    Age,
    Sops(Box<Metadata>),
    /// Neither sops nor age.
    Plaintext,
    /// It looks like sops but its metadata or MAC is missing or broken (why).
    NoMetadata(String),
}

fn classify(bytes: &[u8]) -> Encryption {
    let format = match Format::detect(bytes) {
        Some(Format::Age) => return Encryption::Age,
        Some(format) => format,
        // Encrypted values with the metadata cut off are damage, not plaintext.
        None if memchr::memmem::find(bytes, b"ENC[AES256_GCM,").is_some() => {
            return Encryption::NoMetadata("encrypted values but no sops metadata".into())
        }
        None => return Encryption::Plaintext,
    };
    match sops_metadata(format, bytes) {
        Ok(m) if m.mac.trim().is_empty() => Encryption::NoMetadata("the MAC is empty".into()),
        Ok(m) => Encryption::Sops(Box::new(m)),
        Err(why) => Encryption::NoMetadata(why),
    }
}

/// The `sops` metadata of a file in `format`, read without decrypting (also `init`'s
/// source of recipients).
pub(crate) fn sops_metadata(format: Format, bytes: &[u8]) -> Result<Metadata, String> {
    if let Some(store) = format.store() {
        return store.metadata(bytes).map_err(|e| e.to_string());
    }
    // YAML and JSON: this build does not decrypt them, but their metadata is one object.
    let tree: serde_json::Value = match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|_| "it is not valid JSON")?,
        _ => serde_yaml_ng::from_slice(bytes).map_err(|_| "it is not valid YAML")?,
    };
    let block = tree.get("sops").ok_or("it has no sops block")?;
    Metadata::from_tree(block).map_err(|e| e.to_string())
}

/// The keys of a sops dotenv file whose value is in clear although `rule` says to encrypt
/// it. Values are only tested for the `ENC[` form, never shown.
fn clear_keys(file: &[u8], rule: &CryptRule) -> Vec<String> {
    let Ok(items) = dotenv::parse(file) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Item::Pair { key, value } if !key.starts_with("sops_") => Some((key, value)),
            _ => None,
        })
        .filter(|(key, value)| {
            let encrypted = std::str::from_utf8(value.expose()).is_ok_and(EncValue::is_enc);
            // sops leaves empty values as they are.
            !value.expose().is_empty()
                && !encrypted
                && rule.encrypts(&[key.as_str()]).unwrap_or(true)
        })
        .map(|(key, _)| key)
        .collect()
}

/// Who can open a file: its key groups (one, or several with Shamir sharing), each a set
/// of recipients, and how many groups it takes.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// Sorted, so that the order of groups does not count.
    groups: Vec<BTreeSet<String>>,
    threshold: usize,
}

impl Layout {
    fn new(mut groups: Vec<BTreeSet<String>>, threshold: Option<usize>) -> Self {
        groups.sort();
        // sops: no threshold (or 0) means every group is needed.
        let threshold = threshold.filter(|&t| t > 0).unwrap_or(groups.len());
        Self { groups, threshold }
    }

    /// How this layout differs from `want`, for the message; None when they are the same.
    /// Recipients added or removed are named; otherwise a different grouping or threshold.
    fn drift_from(&self, want: &Self) -> Option<String> {
        let flat = |l: &Self| -> BTreeSet<String> { l.groups.iter().flatten().cloned().collect() };
        if let Some(drift) = recipient_drift(&flat(self), &flat(want)) {
            return Some(drift);
        }
        (self != want).then(|| {
            format!(
                "key groups: {} with threshold {}, want {} with threshold {}",
                self.groups.len(),
                self.threshold,
                want.groups.len(),
                want.threshold
            )
        })
    }
}

/// How a file's recipients differ from the wanted ones, for the message; None when equal.
fn recipient_drift(have: &BTreeSet<String>, want: &BTreeSet<String>) -> Option<String> {
    let add: Vec<&str> = want.difference(have).map(String::as_str).collect();
    let remove: Vec<&str> = have.difference(want).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !add.is_empty() {
        parts.push(format!("not yet encrypted to {}", add.join(", ")));
    }
    if !remove.is_empty() {
        parts.push(format!("still encrypted to {}", remove.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Folders under the repo root that hold their own envsync manifest (one a host, in one
/// repo), asked about one path at a time and remembered, so that a repo of thousands of
/// `.enc` files reads each folder's manifest once. A file there is claimed only when that
/// manifest maps it: a `secrets.toml` that is not an envsync manifest (an app's own config
/// file of that name) claims nothing.
struct NestedManifests<'r> {
    root: &'r Path,
    /// Per folder: the repo paths (from the outer root) its manifest maps, if it has one.
    known: std::collections::HashMap<String, Option<HashSet<String>>>,
}

impl<'r> NestedManifests<'r> {
    fn new(root: &'r Path) -> Self {
        Self {
            root,
            known: std::collections::HashMap::new(),
        }
    }

    /// Whether a manifest in a folder between the root and `path` maps it.
    fn claims(&mut self, path: &str) -> bool {
        let mut folder = path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            let root = self.root;
            let mapped = self.known.entry(parent.to_string()).or_insert_with(|| {
                let file = root.join(parent).join(crate::manifest::FILE_NAME);
                let manifest = crate::manifest::Manifest::load(&file).ok()?;
                Some(
                    manifest
                        .entries
                        .iter()
                        .filter_map(|e| relative(root, &e.repo_path))
                        .collect(),
                )
            });
            if mapped.as_ref().is_some_and(|m| m.contains(path)) {
                return true;
            }
            folder = parent;
        }
        false
    }
}

/// The `.enc` files among `files` that no entry maps, sorted.
fn orphans(files: impl IntoIterator<Item = String>, mapped: &HashSet<String>) -> Vec<String> {
    let mut out: Vec<String> = files
        .into_iter()
        .filter(|f| f.ends_with(".enc") && !mapped.contains(f))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every `*.enc` file under `root` (`.git` skipped), repo-relative: the orphan candidates
/// when the repo is not a git repo.
fn enc_files_under(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| relative(root, e.path()))
        .filter(|p| p.ends_with(".enc"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plaintext_targets_are_classified() {
        let table = [
            // tracked, staged, ignored → kind
            (false, false, true, None),
            (false, false, false, Some(Kind::PlaintextNotIgnored)),
            (true, false, true, Some(Kind::PlaintextTracked)),
            (true, false, false, Some(Kind::PlaintextTracked)),
            (true, true, false, Some(Kind::PlaintextStaged)),
            (false, true, true, Some(Kind::PlaintextStaged)),
        ];
        for (tracked, staged, ignored, want) in table {
            let state = TargetState {
                tracked,
                staged,
                ignored,
            };
            let got = target_problem(state, "app/.env").map(|(kind, _, _)| kind);
            assert_eq!(got, want, "{state:?}");
        }
    }

    #[test]
    fn enc_contents_are_classified_without_a_key() {
        let dotenv_ok = "A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            sops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\nx\\n-----END AGE ENCRYPTED FILE-----\\n\n\
            sops_age__list_0__map_recipient=age1thnacunnsjv0u8m4lhnnaf0ya24xxh80u3c0vdhmndypfm9ums9qjpsd7r\n\
            sops_lastmodified=2024-01-01T00:00:00Z\n\
            sops_mac=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            sops_unencrypted_suffix=_unencrypted\n\
            sops_version=3.11.0\n";
        let no_mac = dotenv_ok.replace(
            "sops_mac=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n",
            "",
        );
        let cut = "A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n";
        let json_no_mac = r#"{"a": "ENC[AES256_GCM,data:x,iv:x,tag:x,type:str]", "sops": {"age": [{"recipient": "age1x", "enc": "x"}], "lastmodified": "2024-01-01T00:00:00Z", "version": "3.11.0"}}"#;
        let table: [(&str, &[u8], &str); 7] = [
            ("plain dotenv", b"PASSWORD=hunter2\n", "plaintext"),
            ("empty", b"", "plaintext"),
            ("sops dotenv", dotenv_ok.as_bytes(), "sops"),
            ("dotenv without MAC", no_mac.as_bytes(), "no-metadata"),
            ("values, metadata cut", cut.as_bytes(), "no-metadata"),
            ("json without mac", json_no_mac.as_bytes(), "no-metadata"),
            (
                "age",
                b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n",
                "age",
            ),
        ];
        for (name, bytes, want) in table {
            let got = match classify(bytes) {
                Encryption::Age => "age",
                Encryption::Sops(_) => "sops",
                Encryption::Plaintext => "plaintext",
                Encryption::NoMetadata(_) => "no-metadata",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn clear_values_are_named_by_key_only() {
        let file = b"A=ENC[AES256_GCM,data:abc=,iv:abc=,tag:abc=,type:str]\n\
            B=hunter2\nC_unencrypted=public\nD=\nsops_version=3.11.0\n";
        let rule = CryptRule::default();
        assert_eq!(clear_keys(file, &rule), vec!["B".to_string()]);
        let only_pass = CryptRule::EncryptedRegex("^PASS".into());
        assert!(clear_keys(file, &only_pass).is_empty());
    }

    #[test]
    fn example_keys_are_key_names_only() {
        let text = b"# Database\nDB_HOST=localhost\n  export DB_PASSWORD=\n\nAPI_KEY = changeme\n#OPTIONAL=x\n";
        assert_eq!(
            example_keys(text),
            Ok(set(&["API_KEY", "DB_HOST", "DB_PASSWORD"]))
        );
        assert_eq!(example_keys(b"A=1\nnot a pair\n"), Err(2));
        assert_eq!(example_keys(b"=value\n"), Err(1));
        // A pasted URL or token is not a key name, and is never echoed as one.
        assert_eq!(example_keys(b"A=1\nhttps://x.example/?a=b\n"), Err(2));
        assert_eq!(
            example_keys(b"export\tA=1\nCERT=\"-----BEGIN\nabc=def\n-----END\"\nB='x\ny=z'\nC=3\n"),
            Ok(set(&["A", "B", "C", "CERT"]))
        );
        assert_eq!(example_keys(b"export=1\n"), Ok(set(&["export"])));
    }

    #[test]
    fn example_drift_names_both_sides() {
        let table = [
            (set(&["A", "B"]), set(&["B", "A"]), vec![], vec![]),
            (set(&["A"]), set(&["A", "B"]), vec!["B"], vec![]),
            (set(&["A", "C"]), set(&["A"]), vec![], vec!["C"]),
            (set(&["A", "C"]), set(&["B"]), vec!["B"], vec!["A", "C"]),
        ];
        for (have, documented, missing, undocumented) in table {
            let (m, u) = key_drift(&have, &documented);
            assert_eq!(
                (m, u),
                (
                    missing.into_iter().map(String::from).collect::<Vec<_>>(),
                    undocumented
                        .into_iter()
                        .map(String::from)
                        .collect::<Vec<_>>()
                ),
                "{have:?} {documented:?}"
            );
        }
    }

    #[test]
    fn recipient_drift_names_both_sides() {
        let table = [
            (set(&["a", "b"]), set(&["b", "a"]), None),
            (
                set(&["a"]),
                set(&["a", "b"]),
                Some("not yet encrypted to b"),
            ),
            (set(&["a", "b"]), set(&["a"]), Some("still encrypted to b")),
            (
                set(&["a"]),
                set(&["c"]),
                Some("not yet encrypted to c; still encrypted to a"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                recipient_drift(&have, &want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }

    #[test]
    fn key_group_layouts_are_compared() {
        let layout = |groups: &[&[&str]], t: Option<usize>| {
            Layout::new(groups.iter().map(|g| set(g)).collect(), t)
        };
        let table = [
            // One group: the threshold does not count.
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["b", "a"]], Some(1)),
                None,
            ),
            // Group order does not count.
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["b"], &["a"]], None),
                None,
            ),
            (
                layout(&[&["a", "b"]], None),
                layout(&[&["a"], &["b"]], Some(1)),
                Some("key groups: 1 with threshold 1, want 2 with threshold 1"),
            ),
            (
                layout(&[&["a"], &["b"], &["c"]], Some(2)),
                layout(&[&["a"], &["b"], &["c"]], Some(3)),
                Some("key groups: 3 with threshold 2, want 3 with threshold 3"),
            ),
            (
                layout(&[&["a"], &["b"]], Some(2)),
                layout(&[&["a"], &["c"]], Some(2)),
                Some("not yet encrypted to c; still encrypted to b"),
            ),
        ];
        for (have, want, expected) in table {
            assert_eq!(
                have.drift_from(&want).as_deref(),
                expected,
                "{have:?} {want:?}"
            );
        }
    }

    #[test]
    fn orphans_are_unmapped_enc_files() {
        let mapped: HashSet<String> = ["envs/a.enc".to_string()].into_iter().collect();
        let files = [
            "envs/a.enc",
            "envs/b.enc",
            "README.md",
            "envs/b.enc",
            "x.enc.bak",
        ]
        .map(String::from);
        assert_eq!(orphans(files, &mapped), vec!["envs/b.enc".to_string()]);
    }
}
