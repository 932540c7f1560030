//! `envsync init [--from-makefile FILE] [--root DIR] [-n] [--json]`: writes a starter
//! `secrets.toml` (and a `.sops.yaml` when there is none), importing a Makefile's
//! `SECRET_FILES` / `INFRA_FILES` lists ([`import`], read by [`makefile`] without running
//! make) and written as [`render`] lays it out. Like `keygen`, it runs without a manifest.
//!
//! It never overwrites: an existing manifest is refused (exit 2, nothing written), an
//! existing `.sops.yaml` is left as it is, and both are created with the atomic writer's
//! no-replace rename. The manifest is validated by the same parser every command uses
//! before anything is written. Recipients for `.sops.yaml` come from the sops metadata of
//! the imported `.enc` files (no key needed), else from the public key of the identity.
//! Plaintext targets inside the repo are added to `.gitignore`.

pub(crate) mod import;
pub(crate) mod makefile;
mod render;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use self::import::{ImportError, Imported};
use self::render::{manifest_text, sops_yaml_text, Draft};
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::format::Format;
use crate::fs::{AtomicWriter, Folders, FsError, Perms};
use crate::keys::{load_identities, IdentityConfig, KeyError};
use crate::manifest::{Manifest, FILE_NAME};
use crate::output::{Printer, Style};
use crate::secret::SecretBytes;

/// Why init refuses. Nothing was written, unless `Partial` says what was.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    #[error("{} already exists, and envsync init never overwrites it; edit it by hand (see secrets.toml.example), or move it away and run envsync init again", .path.display())]
    Exists { path: PathBuf },
    #[error("{} line {line}: {message}; pass --root DIR if it is the server root, or edit secrets.toml by hand (see secrets.toml.example)", .path.display())]
    Makefile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{} defines neither SECRET_FILES nor INFRA_FILES; list the files there as repo:server pairs, or write secrets.toml by hand (see secrets.toml.example)", .path.display())]
    NoLists { path: PathBuf },
    #[error("cannot tell the server root from {}: {}; pass --root DIR", .path.display(), root_candidates(.candidates))]
    Root {
        path: PathBuf,
        candidates: Vec<String>,
    },
    #[error("{}: the server path of `{item}` is outside the server root {root}; pass --root DIR with a root that holds every server file, or fix the item", .path.display())]
    OutsideRoot {
        path: PathBuf,
        item: String,
        root: String,
    },
    #[error("{}: the repo path of `{item}` leaves the repo; fix the item", .path.display())]
    OutsideRepo { path: PathBuf, item: String },
    #[error("{}: `{first}` and `{second}` both map to the {side} path {shared}; remove one of them from the Makefile", .path.display())]
    Same {
        path: PathBuf,
        first: String,
        second: String,
        side: &'static str,
        shared: String,
    },
    #[error("{} is not inside {}, the folder the manifest goes in; run envsync init in the repo that holds the Makefile, or pass --manifest PATH", .makefile.display(), .repo.display())]
    MakefileOutside { makefile: PathBuf, repo: PathBuf },
    #[error("the manifest envsync init made does not validate ({message}); nothing was written. This is a bug in envsync: please report it, and write secrets.toml by hand meanwhile")]
    Generated { message: String },
    #[error("{source}; already written: {}", .written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Partial {
        written: Vec<PathBuf>,
        source: Box<Error>,
    },
}

/// The root error's detail: which candidates there were.
fn root_candidates(candidates: &[String]) -> String {
    if candidates.is_empty() {
        "no variable prefixes the server paths, and none named like a root (SERVER_ROOT, SERVER_DIR, *_ROOT, *_DIR) has an absolute value".into()
    } else {
        format!("several candidates ({})", candidates.join(", "))
    }
}

/// What `init` was asked for.
#[derive(Debug)]
pub(crate) struct Args<'a> {
    pub(crate) from_makefile: Option<&'a Path>,
    pub(crate) root: Option<&'a str>,
    pub(crate) dry_run: bool,
    /// `--manifest`: where the manifest goes (default `secrets.toml` here).
    pub(crate) manifest: Option<&'a Path>,
    /// `--identity` files.
    pub(crate) identity: &'a [PathBuf],
}

/// The root when neither --root nor a Makefile says.
const DEFAULT_ROOT: &str = "/opt/docker";

/// Files envsync init writes are meant to be committed.
const PUBLIC: Perms = Perms {
    mode: 0o644,
    uid: None,
    gid: None,
    folders: Folders {
        mode: 0o755,
        gid: None,
        guarded: false,
    },
    durable: true,
};

/// The JSON body of `init` (docs/json/init.schema.json).
#[derive(serde::Serialize)]
struct InitReport<'a> {
    dry_run: bool,
    /// The manifest written (or, in a dry run, to write).
    manifest: String,
    /// How many entries it has, and how many of them are `plain`.
    entries: usize,
    plain: usize,
    /// The .sops.yaml written, or null when one existed.
    sops_yaml: Option<String>,
    /// Lines added to .gitignore.
    gitignore: &'a [String],
}

pub(crate) fn run(printer: &Printer, args: &Args<'_>, cwd: &Path) -> Result<ExitStatus, Error> {
    let manifest_path = cwd.join(args.manifest.unwrap_or(Path::new(FILE_NAME)));
    let repo_root = manifest_path.parent().unwrap_or(cwd).to_path_buf();
    refuse_existing(&manifest_path)?;

    let mut draft = Draft {
        source: None,
        root: args.root.unwrap_or(DEFAULT_ROOT).to_string(),
        root_note: None,
        identity: None,
        lists: Vec::new(),
        entries: Vec::new(),
    };
    let mut makefile_key = None;
    if let Some(makefile) = args.from_makefile {
        let path = cwd.join(makefile);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let curdir = path.parent().unwrap_or(cwd).display().to_string();
        let imported =
            import::import(&text, args.root, &curdir).map_err(|e| import_error(path.clone(), e))?;
        let prefix = repo_prefix(&path, &repo_root)?;
        draft.source = Some(makefile.display().to_string());
        draft.root = imported.root;
        draft.root_note = imported
            .root_var
            .map(|name| format!("from {name} in the Makefile"));
        draft.lists = imported.lists;
        draft.entries = imported
            .entries
            .into_iter()
            .map(|e| Imported {
                repo: join(&prefix, &e.repo),
                ..e
            })
            .collect();
        if let Some((name, value)) = imported.identity {
            makefile_key = Some(path.parent().unwrap_or(cwd).join(&value));
            // A relative key file is the Makefile's; the manifest reads it from its folder.
            let value = if value.starts_with('/') {
                value
            } else {
                join(&prefix, &value)
            };
            draft.identity = Some((value, format!("from {name} in the Makefile")));
        }
    }
    if let Some(first) = args.identity.first() {
        draft.identity = Some((
            cwd.join(first).display().to_string(),
            "from --identity".into(),
        ));
    }
    let text = manifest_text(&draft);
    let parsed = Manifest::parse(&manifest_path, &text).map_err(|e| InitError::Generated {
        message: e.to_string(),
    })?;

    // .sops.yaml: only when there is none; recipients from the files, else the identity.
    let sops_path = repo_root.join(".sops.yaml");
    let sops_yaml = if std::fs::symlink_metadata(&sops_path).is_ok() {
        None
    } else {
        let mut recipients = enc_recipients(&repo_root, &draft.entries);
        let from = if recipients.is_empty() {
            recipients = identity_recipients(args.identity, makefile_key.as_deref(), printer)?;
            "the public key of the identity"
        } else {
            "the existing .enc files"
        };
        (!recipients.is_empty()).then(|| (sops_yaml_text(&recipients), from, recipients.len()))
    };

    // Plaintext targets (and the state folder) inside the git work tree: ignored at its top.
    let targets: Vec<&Path> = parsed
        .entries
        .iter()
        .filter(|e| !e.plain)
        .map(|e| e.server_path.as_path())
        .collect();
    let plan = crate::git::plan_ignores(&parsed.repo_root, &parsed.state_dir, &targets)?;
    for tracked in &plan.tracked {
        printer.warn(&format!(
            "git tracks {tracked}, a plaintext secret: run `git rm --cached {tracked}` and treat its values as leaked"
        ));
    }
    let (ignore_base, ignores) = (plan.base, plan.lines);
    let plain = draft.entries.iter().filter(|e| e.plain).count();
    let report = |sops_yaml: Option<&PathBuf>| {
        printer.json(&InitReport {
            dry_run: args.dry_run,
            manifest: manifest_path.display().to_string(),
            entries: draft.entries.len(),
            plain,
            sops_yaml: sops_yaml.map(|p| p.display().to_string()),
            gitignore: &ignores,
        });
    };
    if args.dry_run {
        if printer.json {
            report(sops_yaml.as_ref().map(|_| &sops_path));
        } else {
            print_plan(
                printer,
                &manifest_path,
                &text,
                &sops_path,
                sops_yaml.as_ref(),
                &repo_root,
                &ignores,
            );
        }
        if sops_yaml.is_none() {
            warn_sops(printer, &sops_path);
        }
        note_missing(printer, &repo_root, &draft.entries);
        return Ok(ExitStatus::Success);
    }

    write(&repo_root, &manifest_path, text.as_bytes())?;
    let mut written = vec![manifest_path.clone()];
    let partial = |written: &[PathBuf], e: Error| InitError::Partial {
        written: written.to_vec(),
        source: Box::new(e),
    };
    printer.info(
        Style::Plain,
        &format!(
            "wrote {}: {} entries ({plain} plain), server root {}",
            shown(cwd, &manifest_path),
            draft.entries.len(),
            draft.root
        ),
    );
    if let Some((yaml, from, count)) = &sops_yaml {
        match write(&repo_root, &sops_path, yaml.as_bytes()) {
            Ok(()) => {
                written.push(sops_path.clone());
                printer.info(
                    Style::Plain,
                    &format!(
                        "wrote {}: {count} age recipient{} from {from}",
                        shown(cwd, &sops_path),
                        if *count == 1 { "" } else { "s" }
                    ),
                );
            }
            // Made meanwhile: left alone, as an existing one is.
            Err(Error::Fs(FsError::Exists { .. })) => {}
            Err(e) => return Err(partial(&written, e).into()),
        }
    } else {
        warn_sops(printer, &sops_path);
    }
    crate::git::append_ignores(&ignore_base, &ignores).map_err(|e| partial(&written, e))?;
    if !ignores.is_empty() {
        printer.info(
            Style::Plain,
            &format!(
                "added {} plaintext target{} to {}",
                ignores.len(),
                if ignores.len() == 1 { "" } else { "s" },
                shown(cwd, &ignore_base.join(".gitignore"))
            ),
        );
    }
    note_missing(printer, &repo_root, &draft.entries);
    if printer.json {
        report(written.get(1));
    }
    printer.info(
        Style::Plain,
        "next: review secrets.toml, then run `envsync check` and `envsync decrypt --dry-run`",
    );
    Ok(ExitStatus::Success)
}

/// An existing manifest (or anything at its path, a dangling link too) is refused.
fn refuse_existing(path: &Path) -> Result<(), InitError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Err(InitError::Exists {
            path: path.to_path_buf(),
        }),
        Err(_) => Ok(()),
    }
}

/// The warning for a run that found no recipients for `.sops.yaml` (or kept one).
fn warn_sops(printer: &Printer, sops_path: &Path) {
    if std::fs::symlink_metadata(sops_path).is_ok() {
        printer.verbose(&format!("kept the existing {}", sops_path.display()));
        return;
    }
    printer.warn(&format!(
        "no recipients found (no .enc file to read them from, no identity), so {} was not written; run `envsync keygen -o FILE` and put the public key it prints in .sops.yaml (creation_rules: - path_regex: '\\.enc$' age: <public key>)",
        sops_path.display()
    ));
}

/// Says which imported repo files do not exist yet (a manifest may come before them).
fn note_missing(printer: &Printer, repo_root: &Path, entries: &[Imported]) {
    let missing: Vec<&str> = entries
        .iter()
        .filter(|e| std::fs::symlink_metadata(repo_root.join(&e.repo)).is_err())
        .map(|e| e.repo.as_str())
        .collect();
    if let Some(first) = missing.first() {
        printer.info(
            Style::Changed,
            &format!(
                "note: {} of the repo files do not exist yet (first: {first}); `envsync encrypt` makes the .enc files from the server copies",
                missing.len()
            ),
        );
    }
}

/// Creates `path` (inside `repo_root`) without ever replacing a file.
fn write(repo_root: &Path, path: &Path, contents: &[u8]) -> Result<(), Error> {
    let name = path
        .strip_prefix(repo_root)
        .ok()
        .and_then(Path::to_str)
        .ok_or_else(|| FsError::NotAFile {
            path: path.to_path_buf(),
        })?;
    match AtomicWriter::new().create(repo_root, name, contents, PUBLIC) {
        Ok(_) => Ok(()),
        Err(FsError::Exists { path }) if path.ends_with(FILE_NAME) => {
            Err(InitError::Exists { path }.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The dry run's output: each file it would write, whole.
fn print_plan(
    printer: &Printer,
    manifest_path: &Path,
    manifest: &str,
    sops_path: &Path,
    sops_yaml: Option<&(String, &str, usize)>,
    repo_root: &Path,
    ignores: &[String],
) {
    let mut blocks = vec![(
        format!("would write {}", manifest_path.display()),
        manifest.to_string(),
    )];
    if let Some((yaml, _, _)) = sops_yaml {
        blocks.push((format!("would write {}", sops_path.display()), yaml.clone()));
    }
    if !ignores.is_empty() {
        let path = repo_root.join(".gitignore");
        blocks.push((
            format!("would add to {}", path.display()),
            ignores.join("\n"),
        ));
    }
    for (header, body) in blocks {
        printer.data(Style::Header, &format!("# --- {header} ---"));
        for line in body.lines() {
            printer.data(Style::Plain, line);
        }
    }
}

/// `path` as the user would name it: relative to `cwd` when under it.
fn shown(cwd: &Path, path: &Path) -> String {
    path.strip_prefix(cwd).unwrap_or(path).display().to_string()
}

/// The Makefile's folder relative to the repo root (empty when they are one): repo paths in
/// the Makefile are relative to it.
fn repo_prefix(makefile: &Path, repo_root: &Path) -> Result<String, InitError> {
    let folder = crate::git::real(makefile.parent().unwrap_or(Path::new(".")));
    let root = crate::git::real(repo_root);
    folder
        .strip_prefix(&root)
        .ok()
        .and_then(Path::to_str)
        .map(str::to_string)
        .ok_or_else(|| InitError::MakefileOutside {
            makefile: makefile.to_path_buf(),
            repo: repo_root.to_path_buf(),
        })
}

fn join(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}/{path}")
    }
}

fn import_error(path: PathBuf, e: ImportError) -> InitError {
    match e {
        ImportError::Value(e) => InitError::Makefile {
            path,
            line: e.line,
            message: e.message,
        },
        ImportError::NoLists => InitError::NoLists { path },
        ImportError::Root { candidates } => InitError::Root { path, candidates },
        ImportError::OutsideRoot { item, root } => InitError::OutsideRoot { path, item, root },
        ImportError::OutsideRepo { item } => InitError::OutsideRepo { path, item },
        ImportError::Same {
            first,
            second,
            side,
            path: shared,
        } => InitError::Same {
            path,
            first,
            second,
            side,
            shared,
        },
    }
}

/// The recipients the imported `.enc` files are encrypted to (their union), read from their
/// sops metadata without any key.
fn enc_recipients(repo_root: &Path, entries: &[Imported]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in entries.iter().filter(|e| !e.plain) {
        let Ok(bytes) = std::fs::read(repo_root.join(&entry.repo)) else {
            continue;
        };
        let Some(format) = Format::detect(&bytes).filter(|f| *f != Format::Age) else {
            continue;
        };
        if let Ok(metadata) = crate::format::metadata(format, &bytes) {
            out.extend(metadata.recipients());
        }
    }
    out
}

/// The public keys of the identities: `--identity` (which must load), then
/// `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY` and the Makefile's key file when they can be read.
fn identity_recipients(
    explicit: &[PathBuf],
    makefile_key: Option<&Path>,
    printer: &Printer,
) -> Result<BTreeSet<String>, Error> {
    let mut out = BTreeSet::new();
    if !explicit.is_empty() {
        let config = IdentityConfig {
            explicit: explicit.to_vec(),
            ..IdentityConfig::default()
        };
        out.extend(load_identities(&config)?.recipients().iter().cloned());
    }
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let optional = [
        IdentityConfig {
            env_key_file: env_path("SOPS_AGE_KEY_FILE"),
            env_key: std::env::var("SOPS_AGE_KEY")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| SecretBytes::new(v.into_bytes())),
            ..IdentityConfig::default()
        },
        IdentityConfig {
            manifest: makefile_key.map(Path::to_path_buf),
            ..IdentityConfig::default()
        },
    ];
    for config in optional {
        match load_identities(&config) {
            Ok(identities) => out.extend(identities.recipients().iter().cloned()),
            Err(KeyError::NoIdentity { .. }) => {}
            Err(e) => printer.warn(&format!("{e}; its public key is not used")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_manifest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        assert!(refuse_existing(&path).is_ok());
        std::os::unix::fs::symlink("/nonexistent", &path).unwrap();
        assert!(matches!(
            refuse_existing(&path),
            Err(InitError::Exists { .. })
        ));
    }
}
