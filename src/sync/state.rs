//! Sync states: from the record (the `.enc` as last synced), the repo `.enc` and the server
//! plaintext, which side changed since the last sync.
//!
//! Changes are judged on plaintext, not bytes: a `.enc` rewritten with the same content (a
//! rekey, a rotation of the data key) is not a change. An unchanged `.enc` (byte-equal to its
//! record) costs no decryption of the record.

use serde::Serialize;

use super::rollback::Rollback;
use super::{Record, Sides};
use crate::crypto::Identities;
use crate::error::Error;
use crate::format::Opened;
use crate::secret::SecretBytes;

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum State {
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
    /// `envsync rollback` pointed `current` at an earlier release, which differs from the
    /// repo: kept until a `--force` run says which side wins.
    RolledBack,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::InSync => "in-sync",
            Self::ServerChanged => "server-changed",
            Self::RepoChanged => "repo-changed",
            Self::Conflict => "conflict",
            Self::ServerMissing => "server-missing",
            Self::RepoMissing => "repo-missing",
            Self::New => "new",
            Self::Missing => "missing",
            Self::RolledBack => "rolled-back",
        }
    }

    /// What the state means, for messages.
    pub(crate) fn meaning(self) -> &'static str {
        match self {
            Self::InSync => "repo and server agree",
            Self::ServerChanged => "edited on the server since the last sync",
            Self::RepoChanged => "a newer .enc was pulled since the last sync",
            Self::Conflict => "changed on both the server and in the repo since the last sync",
            Self::ServerMissing => "the server file does not exist",
            Self::RepoMissing => "the .enc does not exist",
            Self::New => "repo and server differ and were never synced by envsync",
            Self::Missing => "neither file exists",
            Self::RolledBack => {
                "the server was rolled back to an earlier release with envsync rollback"
            }
        }
    }
}

/// What the sync record says about an entry whose two sides both exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Synced {
    /// No record, or one that does not open: nothing is known of the last sync.
    Unknown,
    /// The record holds exactly the `.enc` that is in the repo now.
    SameEnc,
    /// The record holds another `.enc`, by its digest only; whether the server file is still
    /// the one that sync left.
    OtherEnc { server_untouched: bool },
    /// The record's plaintext, compared with each side.
    Compared {
        repo_changed: bool,
        server_changed: bool,
    },
}

/// An entry's state from what is known of it: which files exist, whether their plaintexts
/// agree (`None`: the `.enc` could not be opened, no identity), and what the record says.
/// Pure, so that every case is in one unit-test table.
pub(crate) fn classify(
    repo: bool,
    server: bool,
    same_plaintext: Option<bool>,
    synced: Synced,
) -> State {
    match (repo, server) {
        (false, false) => return State::Missing,
        (true, false) => return State::ServerMissing,
        (false, true) => return State::RepoMissing,
        (true, true) => {}
    }
    match (same_plaintext, synced) {
        (Some(true), _) => State::InSync,
        // Without an identity only an `.enc` untouched since the sync says who changed.
        (None, Synced::SameEnc) => State::ServerChanged,
        (None, _) | (Some(false), Synced::Unknown) => State::New,
        // The sides differ and the `.enc` is the synced one: the server moved.
        (Some(false), Synced::SameEnc) => State::ServerChanged,
        (Some(false), Synced::OtherEnc { server_untouched }) => {
            if server_untouched {
                State::RepoChanged
            } else {
                State::Conflict
            }
        }
        (
            Some(false),
            Synced::Compared {
                repo_changed,
                server_changed,
            },
        ) => match (repo_changed, server_changed) {
            (true, true) => State::Conflict,
            (true, false) => State::RepoChanged,
            // Neither changed yet they differ (cannot happen with one plaintext), or only the
            // server did: the server moved.
            _ => State::ServerChanged,
        },
    }
}

/// An entry's state and the plaintexts it was judged from.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub(crate) state: State,
    /// The opened `.enc`, when it exists and an identity could open it.
    pub(crate) repo: Option<Opened>,
    /// The server plaintext in the form the repo holds it (dotenv re-emitted).
    pub(crate) server: Option<SecretBytes>,
    /// The record is missing or older than the `.enc`: a sync should store it.
    pub(crate) record_stale: bool,
    /// The `.enc` changed since the last sync into one with an earlier `lastmodified`.
    pub(crate) rollback: Option<Rollback>,
}

impl Sides<'_> {
    /// Opens the repo side (and the record when needed) and classifies the entry.
    /// Without identities an encrypted entry is judged on bytes alone.
    pub(crate) fn analyse(&self, identities: Option<&Identities>) -> Result<Analysis, Error> {
        if self.unchanged_since_sync(identities) {
            return Ok(Analysis {
                state: State::InSync,
                repo: None,
                server: None,
                record_stale: self.record.as_ref().is_some_and(Record::is_legacy),
                rollback: None,
            });
        }
        let record_stale = true;
        let repo = self.open_repo(identities)?;
        let server = self.server_canonical(repo.as_ref())?;
        let state = match (&self.repo, &server) {
            (Some(enc), Some(server_plain)) => {
                self.classify(identities, enc.bytes.expose(), repo.as_ref(), server_plain)
            }
            (repo, server) => classify(repo.is_some(), server.is_some(), None, Synced::Unknown),
        };
        // A rollback is on purpose: until it is undone (or the repo catches up with it), it
        // is neither side's unsynced edit.
        // The mark counts while `current` is still where the rollback put it.
        let rolled_back = (self.folder.as_ref()).is_some_and(|f| {
            f.rolled_back
                .as_ref()
                .is_some_and(|(to, _)| f.release.as_ref() == Some(to))
        });
        let state = if rolled_back && matches!(state, State::ServerChanged | State::Conflict) {
            State::RolledBack
        } else {
            state
        };
        // Only a pulled `.enc` can be a rollback; an in-sync one (a rekey undone) is no news.
        let rollback = matches!(state, State::RepoChanged | State::Conflict)
            .then(|| self.rollback(repo.as_ref()))
            .flatten();
        Ok(Analysis {
            state,
            repo,
            server,
            record_stale,
            rollback,
        })
    }

    /// Gathers what [`classify`] needs, opening the record only when the answer depends on it.
    fn classify(
        &self,
        identities: Option<&Identities>,
        enc: &[u8],
        repo: Option<&Opened>,
        server: &SecretBytes,
    ) -> State {
        let same_enc = || {
            self.record
                .as_ref()
                .is_some_and(|r| r.same_enc(enc, || self.repo_digest()))
        };
        let Some(repo) = repo else {
            // No identity: only an untouched .enc (equal to its record) lets encrypt proceed.
            let synced = if same_enc() {
                Synced::SameEnc
            } else {
                Synced::Unknown
            };
            return classify(true, true, None, synced);
        };
        let same = &repo.plaintext == server;
        let synced = if same {
            Synced::Unknown
        } else {
            self.synced(identities, repo, server, same_enc())
        };
        classify(true, true, Some(same), synced)
    }

    /// What the record says about two sides that differ.
    fn synced(
        &self,
        identities: Option<&Identities>,
        repo: &Opened,
        server: &SecretBytes,
        same_enc: bool,
    ) -> Synced {
        let Some(record) = &self.record else {
            return Synced::Unknown;
        };
        if same_enc {
            return Synced::SameEnc;
        }
        // A record that holds only a digest tells nothing more than that the .enc changed.
        let Some(copy) = record.copy() else {
            let server_untouched =
                (self.server.as_ref()).is_some_and(|s| record.server == Some(s.stamp));
            return Synced::OtherEnc { server_untouched };
        };
        // A record that no longer opens (another key, another format) tells nothing.
        match self.open(copy, identities).ok().flatten() {
            Some(synced) => Synced::Compared {
                repo_changed: repo.plaintext != synced.plaintext,
                // A files folder has no comments or order of its own: it is laid out like
                // the plaintext it is compared with.
                server_changed: match &self.folder {
                    Some(folder) => {
                        folder.plaintext(Some(synced.plaintext.expose())) != synced.plaintext
                    }
                    None => *server != synced.plaintext,
                },
            },
            None => Synced::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_what_is_known() {
        let compared = |repo_changed, server_changed| Synced::Compared {
            repo_changed,
            server_changed,
        };
        let other = |server_untouched| Synced::OtherEnc { server_untouched };
        let rows = [
            // Which files exist decides first, whatever else is known.
            (false, false, Some(true), Synced::SameEnc, State::Missing),
            (true, false, None, Synced::Unknown, State::ServerMissing),
            (
                false,
                true,
                Some(false),
                compared(true, true),
                State::RepoMissing,
            ),
            // Equal plaintexts are in sync, whatever the record says (a rekey is no change).
            (true, true, Some(true), Synced::Unknown, State::InSync),
            (true, true, Some(true), other(false), State::InSync),
            // No identity: judged on the .enc's bytes against the record.
            (true, true, None, Synced::SameEnc, State::ServerChanged),
            (true, true, None, Synced::Unknown, State::New),
            (true, true, None, other(true), State::New),
            (true, true, None, compared(false, true), State::New),
            // Differing plaintexts.
            (true, true, Some(false), Synced::Unknown, State::New),
            (
                true,
                true,
                Some(false),
                Synced::SameEnc,
                State::ServerChanged,
            ),
            (true, true, Some(false), other(true), State::RepoChanged),
            (true, true, Some(false), other(false), State::Conflict),
            (
                true,
                true,
                Some(false),
                compared(true, true),
                State::Conflict,
            ),
            (
                true,
                true,
                Some(false),
                compared(true, false),
                State::RepoChanged,
            ),
            (
                true,
                true,
                Some(false),
                compared(false, true),
                State::ServerChanged,
            ),
            (
                true,
                true,
                Some(false),
                compared(false, false),
                State::ServerChanged,
            ),
        ];
        for (repo, server, same, synced, want) in rows {
            assert_eq!(
                classify(repo, server, same, synced),
                want,
                "repo {repo} server {server} same {same:?} {synced:?}"
            );
        }
    }
}
