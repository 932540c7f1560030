//! The library's top-level error: every way a run can fail, each naming the file (and key
//! or line) it concerns and saying what to do. No variant holds a secret value.

use std::path::PathBuf;

mod info;

use crate::exit::ExitStatus;
use crate::fs::FsError;
use crate::keys::KeyError;
use crate::manifest::ManifestError;
use crate::sops::SopsError;

/// An entry a run refused to write: which one and why, and the commands that resolve it.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// `server (repo)`.
    pub(crate) entry: String,
    /// The entry's repo path.
    pub(crate) repo: String,
    /// The entry's server path.
    pub(crate) server: String,
    /// What its state means (`edited on the server since the last sync`).
    pub(crate) meaning: String,
    /// Its state's name (`server-changed`).
    pub(crate) state: String,
    /// The commands that resolve it.
    pub(crate) resolve: String,
}

impl Refusal {
    /// The whole refusal, on one line.
    pub(crate) fn line(&self) -> String {
        format!(
            "{}: {} [{}]; {}",
            self.entry, self.meaning, self.state, self.resolve
        )
    }
}

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("no secrets.toml in {} or any folder above it; run envsync inside the repo, or pass --manifest PATH", .start.display())]
    NoManifest { start: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Init(#[from] crate::commands::init::InitError),
    #[error("`{pattern}` matches no entry of {manifest} (by repo path, server path or glob)")]
    NoMatch { pattern: String, manifest: String },
    #[error("`{pattern}` is not a valid glob")]
    BadGlob { pattern: String },
    #[error("`git {args}` failed: {message}")]
    Git { args: String, message: String },
    #[error("{}: cannot be read: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    File { path: PathBuf, source: FileError },
    /// Writing would lose an unsynced change; one line an entry, with the command that
    /// resolves it. Nothing was written.
    #[error("{}", .0.iter().map(Refusal::line).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
    /// A signal arrived after every write of the run was durable: the run is complete, and
    /// its exit status still says it was interrupted.
    #[error("interrupted by {}, after every write of this run was complete and durable", .signal.name())]
    LateSignal { signal: crate::signals::Signal },
    /// stdout failed (a full disk, a closed file), not as a closed pipe: the data was lost.
    #[error("the output could not be written to stdout: {source}; the run itself completed, only its output was lost")]
    Stdout { source: std::io::Error },
    /// `envsync add` cannot register this file; nothing was written.
    #[error("cannot add {path}: {reason}")]
    Add { path: String, reason: String },
    /// `envsync edit` stopped; nothing was written.
    #[error("edit {file}: {reason}")]
    Edit { file: String, reason: String },
    /// `envsync rollback` cannot roll this entry back.
    #[error("cannot roll back {server}: {reason}")]
    Rollback { server: String, reason: String },
    /// A release's `verify` command failed: the run was undone.
    #[error("verify `{command}` {how} for release {release} of {server}; nothing was written: the new release was removed and `current` still points where it did")]
    Verify {
        command: String,
        how: String,
        server: String,
        release: String,
    },
    /// `on_change` commands failed after every write of the run was durable.
    #[error("{}", .0.iter().map(|f| format!("on_change `{}` {}; every file of this run was written and is durable: run it by hand once the cause is fixed", f.command, f.how)).collect::<Vec<_>>().join("\n"))]
    OnChange(Vec<crate::hooks::Failed>),
    /// `exec`: the command could not be started (not found: 127, else 126).
    #[error("cannot run `{program}`: {}", exec_reason(.source))]
    Exec {
        program: String,
        source: std::io::Error,
    },
    /// Several entries failed; each is reported on its own line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<Error>),
}

/// What went wrong with one file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("{0}")]
    Sops(#[from] SopsError),
    #[error("is missing; it is the repo copy of {server}, so restore it (git checkout) or run `envsync encrypt {server}`")]
    RepoMissing { server: String },
    #[error("is missing, so there is nothing to encrypt; restore it (envsync decrypt) or mark the entry `optional = true`")]
    ServerMissing,
    #[error(
        "is empty; refusing to encrypt an empty secret (pass --allow-empty if that is intended)"
    )]
    ServerEmpty,
    #[error("is not encrypted (no sops metadata and no age header); plaintext must never be committed: restore it from git, or delete it and run `envsync encrypt` to re-create it from the server copy")]
    UnknownFormat,
    #[error("is damaged: it holds SOPS-encrypted values but no readable sops metadata (cut short?); restore it from git (git checkout -- {path}), or re-encrypt it from the server copy")]
    Damaged { path: String },
    #[error("cannot be shown in clear: no identity here opens it (pass --identity, or drop --reveal for the masked view)")]
    RevealNeedsKey,
    #[error("{0}")]
    Keys(String),
    #[error("is a {0} file, but its entry says `as = \"files\"`, which splits a dotenv, YAML or JSON file into one file per top-level key; remove `as`, or take single values with `key = \"…\"` entries")]
    FilesNeedDotenv(&'static str),
    #[error("key `{key}` cannot be a file name (empty, `.`, `..`, a `/` or a temp name); rename the key")]
    KeyFileName { key: String },
    #[error("keys `{first}` and `{second}` would both be written to the file `{name}`; rename one, or drop `names = \"lower\"`")]
    SameFileName {
        first: String,
        second: String,
        name: String,
    },
    #[error("is a {0} file; `envsync exec` puts dotenv entries only into a command's environment (run it with dotenv entries, or use `envsync decrypt` for this one)")]
    ExecNeedsDotenv(&'static str),
    #[error(
        "key `{key}` cannot be an environment variable: {reason}; rename the key (nothing was run)"
    )]
    EnvName { key: String, reason: &'static str },
    #[error("`key = \"{key}\"` {reason}")]
    Extract { key: String, reason: String },
    #[error("is a {0} file, but its entry extracts one value with `key`, which needs a yaml, json or ini file; remove `key` or point the entry at such a file")]
    KeyNeedsTree(&'static str),
    #[error("points at `{link}`, not at a release under releases/; point it back with `envsync rollback`, or remove it and run `envsync decrypt`")]
    StrayCurrent { link: String },
}

impl Error {
    /// The exit status this error maps to.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Refused(_) => ExitStatus::Refused,
            Self::Fs(e) => match e.cause() {
                FsError::Interrupted { signal } => signal.exit_status(),
                FsError::Changed { .. } => ExitStatus::Refused,
                _ => ExitStatus::Error,
            },
            Self::LateSignal { signal } => signal.exit_status(),
            Self::OnChange(_) => ExitStatus::HookFailed,
            Self::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ExitStatus::NotFound
            }
            Self::Exec { .. } => ExitStatus::CannotRun,
            _ => ExitStatus::Error,
        }
    }

    /// What to do next, printed after the message.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Self::File {
                path,
                source: FileError::Sops(e),
            } => sops_hint(e, path),
            Self::Manifest(e) if e.line.is_some() => Some("fix that line of the manifest".into()),
            Self::Fs(FsError::Interrupted { .. }) => Some("nothing was written".into()),
            Self::Fs(e) => match e.cause() {
                FsError::Io { source, .. } if source.raw_os_error() == Some(1) => Some(
                    "an immutable or append-only file (see lsattr) cannot be replaced: chattr -i -a it first, or fix the permissions".into(),
                ),
                _ => None,
            },
            Self::Keys(KeyError::Crypto(_) | KeyError::ReadIdentity { .. }) => Some(
                "check the identity file (an age-keygen key file or an unencrypted SSH private key)".into(),
            ),
            Self::Keys(KeyError::NoIdentity { .. }) => Some(
                "set server.identity in secrets.toml, pass --identity FILE, or set SOPS_AGE_KEY_FILE"
                    .into(),
            ),
            Self::Keys(KeyError::NoRecipients { .. }) => Some(
                "add `recipients = [\"age1…\"]` to its [[file]] entry, or an `age:` creation rule to .sops.yaml beside secrets.toml"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The one-line report printed on stderr.
    pub(crate) fn report(&self) -> String {
        match self {
            Self::Refused(lines) => {
                let mut out: Vec<String> = lines
                    .iter()
                    .map(|l| format!("refused: {}", l.line()))
                    .collect();
                out.push(format!(
                    "error: nothing was written: {} {} would lose an unsynced change (see above)",
                    lines.len(),
                    if lines.len() == 1 { "entry" } else { "entries" }
                ));
                out.join("\n")
            }
            Self::Several(errors) => errors
                .iter()
                .map(Error::report)
                .collect::<Vec<_>>()
                .join("\n"),
            other => match other.hint() {
                Some(hint) => format!("error: {other}; {hint}"),
                None => format!("error: {other}"),
            },
        }
    }

    /// The report printed on stderr with `--quiet`: as [`Error::report`], except that a
    /// refusal is one line naming every refused entry (a cron mail or journal line).
    pub(crate) fn quiet_report(&self) -> String {
        match self {
            Self::Refused(refusals) => match refusals.as_slice() {
                [one] => format!("refused: nothing was written: {}", one.line()),
                many => format!(
                    "refused: nothing was written: {} entries would lose an unsynced change: {}; \
                     run it again without -q for the commands that resolve each",
                    many.len(),
                    many.iter()
                        .map(|r| format!("{} [{}]", r.entry, r.state))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            Self::Several(errors) => errors
                .iter()
                .map(Error::quiet_report)
                .collect::<Vec<_>>()
                .join("\n"),
            other => other.report(),
        }
    }

    /// Wraps per-entry errors: one stays itself, several are reported together.
    pub(crate) fn from_many(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Self::Several(errors)),
        }
    }
}

/// Why `exec` could not start a command, as a shell would put it.
fn exec_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "command not found (as a path, else on PATH)".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (not executable, or a folder on its path cannot be searched)".into()
        }
        _ => e.to_string(),
    }
}

fn sops_hint(e: &SopsError, path: &std::path::Path) -> Option<String> {
    let shown = path.display();
    match e {
        SopsError::MacMismatch | SopsError::Value { .. } | SopsError::NotEncrypted { .. } => Some(
            format!("the file was altered; restore it from git (git checkout -- {shown}) or re-encrypt it from the server copy"),
        ),
        SopsError::NoMatchingIdentity { .. } => Some(
            "pass the matching key with --identity, server.identity or SOPS_AGE_KEY_FILE".into(),
        ),
        SopsError::Syntax { .. } => Some("fix that line".into()),
        SopsError::Metadata(_) | SopsError::NotSops(_) | SopsError::DataKey(_) | SopsError::Crypto(_) => Some(
            format!("restore it from git (git checkout -- {shown}), or re-encrypt it from the server copy"),
        ),
        SopsError::AlreadyEncrypted => {
            Some("the server file must hold plaintext; run envsync decrypt to restore it".into())
        }
    }
}
