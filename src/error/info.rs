//! Errors as the JSON contract gives them (`error` and `refused` of a failed run's
//! document): a stable `kind` for each way a run fails, and the file, line and key it
//! concerns, taken from the typed error rather than parsed out of its message.

use std::path::Path;

use super::{Error, FileError};
use crate::fs::FsError;
use crate::keys::KeyError;
use crate::output::json::{ErrorInfo, Refused};
use crate::sops::SopsError;

/// Where an error points: its file, line and key.
#[derive(Default)]
struct Place {
    file: Option<String>,
    line: Option<usize>,
    key: Option<String>,
}

impl Place {
    fn file(path: &Path) -> Self {
        Self {
            file: Some(path.display().to_string()),
            ..Self::default()
        }
    }
}

impl Error {
    /// This error as the contract's `error` object.
    pub(crate) fn info(&self) -> ErrorInfo {
        let (kind, place) = self.kind_and_place();
        let message = match self {
            Self::Refused(refusals) => format!(
                "nothing was written: {} {} would lose an unsynced change",
                refusals.len(),
                if refusals.len() == 1 {
                    "entry"
                } else {
                    "entries"
                }
            ),
            Self::Several(errors) => format!("{} errors; nothing was written", errors.len()),
            other => other.to_string(),
        };
        let hint = match self {
            Self::Refused(_) => {
                Some("each entry of `refused` says which command resolves it".to_string())
            }
            other => other.hint(),
        };
        ErrorInfo {
            kind,
            file: place.file,
            line: place.line,
            key: place.key,
            message,
            hint,
            errors: match self {
                Self::Several(errors) => errors.iter().map(Error::info).collect(),
                _ => Vec::new(),
            },
        }
    }

    /// The contract's `refused` list, for a refusal.
    pub(crate) fn refused(&self) -> Option<Vec<Refused>> {
        match self {
            Self::Refused(refusals) => Some(
                refusals
                    .iter()
                    .map(|r| Refused {
                        repo: r.repo.clone(),
                        server: r.server.clone(),
                        state: r.state.clone(),
                        reason: r.meaning.clone(),
                        resolve: r.resolve.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    fn kind_and_place(&self) -> (&'static str, Place) {
        match self {
            Self::NoManifest { start } => ("no_manifest", Place::file(start)),
            Self::Manifest(e) => (
                "manifest",
                Place {
                    line: e.line,
                    ..Place::file(&e.path)
                },
            ),
            Self::Keys(e) => keys(e),
            Self::Fs(e) => fs(e.cause()),
            Self::Init(_) => ("init", Place::default()),
            Self::NoMatch { .. } => ("no_match", Place::default()),
            Self::BadGlob { .. } => ("bad_glob", Place::default()),
            Self::Git { .. } => ("git", Place::default()),
            Self::Read { path, .. } => ("read", Place::file(path)),
            Self::File { path, source } => file(path, source),
            Self::Refused(_) => ("refused", Place::default()),
            Self::LateSignal { .. } => ("interrupted", Place::default()),
            Self::Stdout { .. } => ("stdout", Place::default()),
            Self::Add { path, .. } => (
                "add",
                Place {
                    file: Some(path.clone()),
                    ..Place::default()
                },
            ),
            Self::Edit { file, .. } => (
                "edit",
                Place {
                    file: Some(file.clone()),
                    ..Place::default()
                },
            ),
            Self::Rollback { server, .. } => (
                "rollback",
                Place {
                    file: Some(server.clone()),
                    ..Place::default()
                },
            ),
            Self::Verify { server, .. } => (
                "verify",
                Place {
                    file: Some(server.clone()),
                    ..Place::default()
                },
            ),
            Self::OnChange(_) => ("on_change", Place::default()),
            Self::Exec { .. } => ("exec", Place::default()),
            Self::Several(_) => ("several", Place::default()),
        }
    }
}

fn keys(e: &KeyError) -> (&'static str, Place) {
    match e {
        KeyError::ReadIdentity { path, .. } => ("identity", Place::file(path)),
        KeyError::OpenPermissions { path, .. }
        | KeyError::Owner { path, .. }
        | KeyError::KeyFolder { path, .. } => ("identity_unsafe", Place::file(path)),
        KeyError::NoTerminal { path } => ("identity", Place::file(path)),
        KeyError::Crypto(_) => ("identity", Place::default()),
        KeyError::NoIdentity { .. } => ("no_identity", Place::default()),
        KeyError::Config { path, .. } => ("sops_config", Place::file(path)),
        KeyError::NoRecipients { repo } => (
            "no_recipients",
            Place {
                file: Some(repo.clone()),
                ..Place::default()
            },
        ),
    }
}

fn fs(e: &FsError) -> (&'static str, Place) {
    match e {
        FsError::Io { path, .. } => ("io", Place::file(path)),
        FsError::Symlink { path } => ("symlink", Place::file(path)),
        FsError::Exists { path } => ("exists", Place::file(path)),
        FsError::NotAFile { path } => ("not_a_file", Place::file(path)),
        FsError::NotALink { path } => ("not_a_link", Place::file(path)),
        FsError::Changed { path } => ("changed_meanwhile", Place::file(path)),
        FsError::BadFolder { path } => ("bad_folder", Place::file(path)),
        FsError::Hostile { path, .. } => ("unsafe_folder", Place::file(path)),
        FsError::Interrupted { .. } => ("interrupted", Place::default()),
        FsError::NotWritten { source } => fs(source),
        FsError::Undone { source, .. } => {
            let (_, place) = fs(source);
            ("partly_written", place)
        }
    }
}

fn file(path: &Path, source: &FileError) -> (&'static str, Place) {
    let mut place = Place::file(path);
    let kind = match source {
        FileError::Sops(e) => match e {
            SopsError::Syntax { line, .. } => {
                place.line = Some(*line);
                "syntax"
            }
            SopsError::NotSops(_) => "not_sops",
            SopsError::Metadata(_) => "metadata",
            SopsError::Value { key, .. } => {
                place.key = Some(key.clone());
                "bad_value"
            }
            SopsError::NotEncrypted { key } => {
                place.key = Some(key.clone());
                "value_in_clear"
            }
            SopsError::MacMismatch => "mac_mismatch",
            SopsError::NoMatchingIdentity { .. } => "no_matching_identity",
            SopsError::DataKey(_) => "data_key",
            SopsError::AlreadyEncrypted => "already_encrypted",
            SopsError::Crypto(_) => "crypto",
        },
        FileError::RepoMissing { .. } => "repo_missing",
        FileError::ServerMissing => "server_missing",
        FileError::ServerEmpty => "server_empty",
        FileError::UnknownFormat => "not_encrypted",
        FileError::Damaged { .. } => "damaged",
        FileError::RevealNeedsKey => "reveal_needs_key",
        FileError::Keys(_) => "keys",
        FileError::FilesNeedDotenv(_) => "files_need_keys",
        FileError::KeyFileName { key } | FileError::EnvName { key, .. } => {
            place.key = Some(key.clone());
            "bad_key_name"
        }
        FileError::SameFileName { .. } => "same_file_name",
        FileError::ExecNeedsDotenv(_) => "exec_needs_dotenv",
        FileError::Extract { key, .. } => {
            place.key = Some(key.clone());
            "extract"
        }
        FileError::KeyNeedsTree(_) => "key_needs_tree",
        FileError::StrayCurrent { .. } => "stray_current",
    };
    (kind, place)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::error::Refusal;
    use crate::manifest::ManifestError;

    #[test]
    fn kinds_and_places_come_from_the_typed_error() {
        let enc = PathBuf::from("app/.env.enc");
        let file = |source: FileError| Error::File {
            path: enc.clone(),
            source,
        };
        // The error, then its kind, file, line and key.
        type Row = (
            Error,
            &'static str,
            Option<&'static str>,
            Option<usize>,
            Option<&'static str>,
        );
        let table: Vec<Row> = vec![
            (
                file(SopsError::MacMismatch.into()),
                "mac_mismatch",
                Some("app/.env.enc"),
                None,
                None,
            ),
            (
                file(
                    SopsError::Syntax {
                        line: 7,
                        reason: "no =".into(),
                    }
                    .into(),
                ),
                "syntax",
                Some("app/.env.enc"),
                Some(7),
                None,
            ),
            (
                file(
                    SopsError::NotEncrypted {
                        key: "API_TOKEN".into(),
                    }
                    .into(),
                ),
                "value_in_clear",
                Some("app/.env.enc"),
                None,
                Some("API_TOKEN"),
            ),
            (
                file(FileError::ServerMissing),
                "server_missing",
                Some("app/.env.enc"),
                None,
                None,
            ),
            (
                Error::Manifest(ManifestError {
                    path: "secrets.toml".into(),
                    line: Some(12),
                    message: "unknown key".into(),
                }),
                "manifest",
                Some("secrets.toml"),
                Some(12),
                None,
            ),
            (
                Error::Fs(FsError::NotWritten {
                    source: Box::new(FsError::Symlink {
                        path: "srv/app/.env".into(),
                    }),
                }),
                "symlink",
                Some("srv/app/.env"),
                None,
                None,
            ),
        ];
        for (error, kind, file, line, key) in table {
            let info = error.info();
            assert_eq!(info.kind, kind, "{error}");
            assert_eq!(info.file.as_deref(), file, "{error}");
            assert_eq!(info.line, line, "{error}");
            assert_eq!(info.key.as_deref(), key, "{error}");
            assert_eq!(info.message, error.to_string());
            assert!(error.refused().is_none());
        }
    }

    #[test]
    fn a_refusal_lists_each_entry_and_several_errors_nest() {
        let refusal = Error::Refused(vec![Refusal {
            entry: "app/.env (app/.env.enc)".into(),
            repo: "app/.env.enc".into(),
            server: "app/.env".into(),
            meaning: "edited on the server since the last sync".into(),
            state: "server-changed".into(),
            resolve: "envsync encrypt app/.env.enc".into(),
        }]);
        let info = refusal.info();
        assert_eq!(info.kind, "refused");
        assert!(info.message.contains("1 entry"), "{}", info.message);
        let refused = refusal.refused().unwrap();
        assert_eq!(
            (refused[0].repo.as_str(), refused[0].state.as_str()),
            ("app/.env.enc", "server-changed")
        );
        let several = Error::Several(vec![
            Error::BadGlob {
                pattern: "[".into(),
            },
            Error::NoMatch {
                pattern: "x".into(),
                manifest: "secrets.toml".into(),
            },
        ]);
        let info = several.info();
        assert_eq!(info.kind, "several");
        let kinds: Vec<&str> = info.errors.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["bad_glob", "no_match"]);
    }
}
