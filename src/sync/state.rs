//! Sync states: from the record (the `.enc` as last synced), the repo `.enc` and the server
//! plaintext, which side changed since the last sync.
//!
//! Changes are judged on plaintext, not bytes: a `.enc` rewritten with the same content (a
//! rekey, a rotation of the data key) is not a change. An unchanged `.enc` (byte-equal to its
//! record) costs no decryption of the record.

use serde::Serialize;

use super::{Record, Sides};
use crate::crypto::Identities;
use crate::error::Error;
use crate::format::Opened;
use crate::secret::SecretBytes;

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Repo and server hold the same plaintext.
    InSync,
    /// Edited on the server since the last sync.
    ServerChanged,
    /// A newer `.enc` was pulled since the last sync.
    RepoChanged,
    /// Both changed since the last sync.
    Conflict,
    /// The server file does not exist.
    ServerMissing,
    /// The `.enc` does not exist.
    RepoMissing,
    /// No record and the two sides differ: envsync cannot tell which is newer.
    New,
    /// Neither file exists.
    Missing,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::InSync => "in-sync",
            Self::ServerChanged => "server-changed",
            Self::RepoChanged => "repo-changed",
            Self::Conflict => "conflict",
            Self::ServerMissing => "server-missing",
            Self::RepoMissing => "repo-missing",
            Self::New => "new",
            Self::Missing => "missing",
        }
    }

    /// What the state means, for messages.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::InSync => "repo and server agree",
            Self::ServerChanged => "edited on the server since the last sync",
            Self::RepoChanged => "a newer .enc was pulled since the last sync",
            Self::Conflict => "changed on both the server and in the repo since the last sync",
            Self::ServerMissing => "the server file does not exist",
            Self::RepoMissing => "the .enc does not exist",
            Self::New => "repo and server differ and were never synced by envsync",
            Self::Missing => "neither file exists",
        }
    }
}

/// An entry's state and the plaintexts it was judged from.
#[derive(Debug)]
pub struct Analysis {
    pub state: State,
    /// The opened `.enc`, when it exists and an identity could open it.
    pub repo: Option<Opened>,
    /// The server plaintext in the form the repo holds it (dotenv re-emitted).
    pub server: Option<SecretBytes>,
    /// The record is missing or older than the `.enc`: a sync should store it.
    pub record_stale: bool,
}

impl Sides<'_> {
    /// Opens the repo side (and the record when needed) and classifies the entry.
    /// Without identities an encrypted entry is judged on bytes alone.
    pub fn analyse(&self, identities: Option<&Identities>) -> Result<Analysis, Error> {
        if self.unchanged_since_sync(identities) {
            return Ok(Analysis {
                state: State::InSync,
                repo: None,
                server: None,
                record_stale: self.record.as_ref().is_some_and(Record::is_legacy),
            });
        }
        let record_stale = true;
        let repo = self.open_repo(identities)?;
        let server = self.server_canonical()?;
        let state = match (&self.repo, &server) {
            (None, None) => State::Missing,
            (Some(_), None) => State::ServerMissing,
            (None, Some(_)) => State::RepoMissing,
            (Some(enc), Some(server_plain)) => {
                self.classify(identities, enc.bytes.expose(), repo.as_ref(), server_plain)
            }
        };
        Ok(Analysis {
            state,
            repo,
            server,
            record_stale,
        })
    }

    fn classify(
        &self,
        identities: Option<&Identities>,
        enc: &[u8],
        repo: Option<&Opened>,
        server: &SecretBytes,
    ) -> State {
        let Some(repo) = repo else {
            // No identity: only an untouched .enc (equal to its record) lets encrypt proceed.
            return if self
                .record
                .as_ref()
                .is_some_and(|r| r.same_enc(enc, || self.repo_digest()))
            {
                State::ServerChanged
            } else {
                State::New
            };
        };
        if &repo.plaintext == server {
            return State::InSync;
        }
        let Some(record) = &self.record else {
            return State::New;
        };
        let synced = if record.same_enc(enc, || self.repo_digest()) {
            Some(repo.plaintext.clone())
        } else {
            // A record that no longer opens (another key, another format, or kept as a
            // digest) tells nothing more than that the .enc changed.
            let Some(copy) = record.copy() else {
                let server_untouched =
                    (self.server.as_ref()).is_some_and(|s| record.server == Some(s.stamp));
                return if server_untouched {
                    State::RepoChanged
                } else {
                    State::Conflict
                };
            };
            self.open(copy, identities)
                .ok()
                .flatten()
                .map(|o| o.plaintext)
        };
        let Some(synced) = synced else {
            return State::New;
        };
        match (repo.plaintext != synced, server != &synced) {
            (true, true) => State::Conflict,
            (true, false) => State::RepoChanged,
            _ => State::ServerChanged,
        }
    }
}
