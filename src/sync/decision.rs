//! The one decision that overwrites or refuses: from an entry's sync state, its mode/owner
//! drift and the run's flags, what a command does to it.
//!
//! Every command asks [`decide`] (and `status` asks [`next`], which is defined by it), so
//! the rules live in one pure function with a table test that covers every combination. The
//! rules are the contract's Safety section: a write never loses an unsynced change unless
//! `--force` takes the side of the command that was run.

use super::state::State;

/// The commands that write: decrypt (repo → server) and encrypt (server → repo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Decrypt,
    Encrypt,
}

/// Everything the decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Situation {
    pub(crate) state: State,
    /// The server file's mode, owner or group differ from the entry's.
    pub(crate) perms_drift: bool,
    /// The server file exists and is empty.
    pub(crate) server_empty: bool,
    pub(crate) force: bool,
    pub(crate) allow_empty: bool,
    /// The entry is `optional = true`.
    pub(crate) optional: bool,
    /// The `.enc`'s recipients differ from today's rules (`.sops.yaml` or the entry).
    pub(crate) recipients_differ: bool,
}

/// What a command does to one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Write a target that does not exist yet.
    Create,
    /// Replace the target's content.
    Update,
    /// Content is right; mode, owner or group are not: fixed without rewriting.
    FixPerms,
    /// Nothing to do.
    Unchanged,
    /// An optional entry whose source file is missing.
    Skip,
    /// Writing would lose an unsynced change; `Next` resolves it. Nothing is written.
    Refuse(Next),
    /// The run cannot go on for this entry (exit 2).
    Fail(Failure),
}

impl Decision {
    /// The word a report shows.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::FixPerms => "fix-mode",
            Self::Unchanged => "unchanged",
            Self::Skip => "skip",
            Self::Refuse(_) => "refuse",
            Self::Fail(_) => "error",
        }
    }

    /// Whether the target's content is written.
    pub(crate) fn writes(self) -> bool {
        matches!(self, Self::Create | Self::Update)
    }
}

/// What resolves an entry: the command to run next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// `envsync decrypt` (the repo has what the server should get).
    Decrypt,
    /// `envsync encrypt` (the server has what the repo should get).
    Encrypt,
    /// Both sides changed, or were never synced: `envsync diff`, then `--force` one way.
    Compare,
    /// Neither file exists: restore the `.enc` from git, or create the server file.
    Restore,
}

/// Why an entry stops the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// decrypt: the `.enc` does not exist.
    RepoMissing,
    /// encrypt: the server file does not exist.
    ServerMissing,
    /// encrypt: the server file is empty (and `--allow-empty` was not given).
    ServerEmpty,
}

/// What `direction` does to an entry in `situation`.
pub(crate) fn decide(direction: Direction, s: Situation) -> Decision {
    use Decision::{Create, Fail, FixPerms, Refuse, Skip, Unchanged, Update};
    match direction {
        Direction::Decrypt => match s.state {
            State::InSync if s.perms_drift => FixPerms,
            State::InSync => Unchanged,
            State::RepoChanged => Update,
            State::ServerMissing => Create,
            State::ServerChanged | State::Conflict | State::New | State::RolledBack if s.force => {
                Update
            }
            State::ServerChanged => Refuse(Next::Encrypt),
            State::Conflict | State::New | State::RolledBack => Refuse(Next::Compare),
            State::RepoMissing | State::Missing if s.optional => Skip,
            State::RepoMissing | State::Missing => Fail(Failure::RepoMissing),
        },
        Direction::Encrypt => match s.state {
            // An empty plaintext is never encrypted by accident, whatever the state.
            _ if s.server_empty && !s.allow_empty => Fail(Failure::ServerEmpty),
            // A lost key: --force re-encrypts an unchanged plaintext to today's recipients.
            State::InSync if s.force && s.recipients_differ => Update,
            State::InSync => Unchanged,
            State::ServerChanged => Update,
            State::RepoMissing => Create,
            State::RepoChanged | State::Conflict | State::New | State::RolledBack if s.force => {
                Update
            }
            State::RepoChanged => Refuse(Next::Decrypt),
            State::Conflict | State::New | State::RolledBack => Refuse(Next::Compare),
            State::ServerMissing | State::Missing if s.optional => Skip,
            State::ServerMissing | State::Missing => Fail(Failure::ServerMissing),
        },
    }
}

/// What `status` says to run next, if anything: the command that would write the entry,
/// else the one its refusal names. `None` when nothing needs doing.
pub(crate) fn next(state: State, perms_drift: bool, optional: bool) -> Option<Next> {
    let s = Situation {
        state,
        perms_drift,
        server_empty: false,
        force: false,
        allow_empty: true,
        optional,
        recipients_differ: false,
    };
    match (decide(Direction::Decrypt, s), decide(Direction::Encrypt, s)) {
        (d, _) if d.writes() || d == Decision::FixPerms => Some(Next::Decrypt),
        (_, e) if e.writes() => Some(Next::Encrypt),
        (Decision::Refuse(next), _) | (_, Decision::Refuse(next)) => Some(next),
        (Decision::Fail(_), Decision::Fail(_)) => Some(Next::Restore),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Create, Fail, FixPerms, Refuse, Skip, Unchanged, Update};
    use Direction::{Decrypt, Encrypt};

    const STATES: [State; 9] = [
        State::RolledBack,
        State::InSync,
        State::ServerChanged,
        State::RepoChanged,
        State::Conflict,
        State::ServerMissing,
        State::RepoMissing,
        State::New,
        State::Missing,
    ];

    /// A flag of a row: `Y`, `N`, or `_` (either).
    #[derive(Clone, Copy)]
    enum F {
        Y,
        N,
        X,
    }
    use F::{N, X, Y};

    impl F {
        fn fits(self, value: bool) -> bool {
            match self {
                Y => value,
                N => !value,
                X => true,
            }
        }
    }

    /// One rule of the contract: direction, state (`None` = any), drift, empty, force,
    /// allow-empty, optional → decision. The first row that fits a situation gives it.
    type Row = (Direction, Option<State>, F, F, F, F, F, Decision);

    /// The contract's Safety section, written out as rows (not derived from `decide`).
    fn table() -> Vec<Row> {
        use State::*;
        let any = None;
        vec![
            // decrypt: repo → server. drift, empty, force, allow, optional.
            (Decrypt, Some(InSync), Y, X, X, X, X, FixPerms),
            (Decrypt, Some(InSync), N, X, X, X, X, Unchanged),
            (Decrypt, Some(RepoChanged), X, X, X, X, X, Update),
            (Decrypt, Some(ServerMissing), X, X, X, X, X, Create),
            (Decrypt, Some(ServerChanged), X, X, Y, X, X, Update),
            (
                Decrypt,
                Some(ServerChanged),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Encrypt),
            ),
            (Decrypt, Some(Conflict), X, X, Y, X, X, Update),
            (
                Decrypt,
                Some(Conflict),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Compare),
            ),
            (Decrypt, Some(New), X, X, Y, X, X, Update),
            (Decrypt, Some(New), X, X, N, X, X, Refuse(Next::Compare)),
            // `envsync rollback` went back on purpose: only --force moves either way.
            (Decrypt, Some(RolledBack), X, X, Y, X, X, Update),
            (
                Decrypt,
                Some(RolledBack),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Compare),
            ),
            (Decrypt, Some(RepoMissing), X, X, X, X, Y, Skip),
            (
                Decrypt,
                Some(RepoMissing),
                X,
                X,
                X,
                X,
                N,
                Fail(Failure::RepoMissing),
            ),
            (Decrypt, Some(Missing), X, X, X, X, Y, Skip),
            (
                Decrypt,
                Some(Missing),
                X,
                X,
                X,
                X,
                N,
                Fail(Failure::RepoMissing),
            ),
            // encrypt: server → repo. An empty server file first, whatever the state.
            (Encrypt, any, X, Y, X, N, X, Fail(Failure::ServerEmpty)),
            (Encrypt, Some(InSync), X, X, X, X, X, Unchanged),
            (Encrypt, Some(ServerChanged), X, X, X, X, X, Update),
            (Encrypt, Some(RepoMissing), X, X, X, X, X, Create),
            (Encrypt, Some(RepoChanged), X, X, Y, X, X, Update),
            (
                Encrypt,
                Some(RepoChanged),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Decrypt),
            ),
            (Encrypt, Some(Conflict), X, X, Y, X, X, Update),
            (
                Encrypt,
                Some(Conflict),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Compare),
            ),
            (Encrypt, Some(New), X, X, Y, X, X, Update),
            (Encrypt, Some(New), X, X, N, X, X, Refuse(Next::Compare)),
            (Encrypt, Some(RolledBack), X, X, Y, X, X, Update),
            (
                Encrypt,
                Some(RolledBack),
                X,
                X,
                N,
                X,
                X,
                Refuse(Next::Compare),
            ),
            (Encrypt, Some(ServerMissing), X, X, X, X, Y, Skip),
            (
                Encrypt,
                Some(ServerMissing),
                X,
                X,
                X,
                X,
                N,
                Fail(Failure::ServerMissing),
            ),
            (Encrypt, Some(Missing), X, X, X, X, Y, Skip),
            (
                Encrypt,
                Some(Missing),
                X,
                X,
                X,
                X,
                N,
                Fail(Failure::ServerMissing),
            ),
        ]
    }

    fn situations() -> impl Iterator<Item = Situation> {
        let bools = [false, true];
        STATES.into_iter().flat_map(move |state| {
            (0..32u8).map(move |bits| Situation {
                state,
                perms_drift: bools[usize::from(bits & 1)],
                server_empty: bools[usize::from(bits >> 1 & 1)],
                force: bools[usize::from(bits >> 2 & 1)],
                allow_empty: bools[usize::from(bits >> 3 & 1)],
                optional: bools[usize::from(bits >> 4 & 1)],
                recipients_differ: false,
            })
        })
    }

    fn fits(row: &Row, direction: Direction, s: &Situation) -> bool {
        let (d, state, drift, empty, force, allow, optional, _) = *row;
        d == direction
            && state.is_none_or(|st| st == s.state)
            && drift.fits(s.perms_drift)
            && empty.fits(s.server_empty)
            && force.fits(s.force)
            && allow.fits(s.allow_empty)
            && optional.fits(s.optional)
    }

    /// Every combination (2 directions × 9 states × 32 flag sets = 576) is decided as the
    /// first fitting row says, and every row decides at least one of them.
    #[test]
    fn every_combination_follows_the_table() {
        let table = table();
        let mut used = vec![false; table.len()];
        let mut checked = 0;
        for direction in [Decrypt, Encrypt] {
            for s in situations() {
                let index = table
                    .iter()
                    .position(|row| fits(row, direction, &s))
                    .unwrap_or_else(|| panic!("no row for {direction:?} {s:?}"));
                used[index] = true;
                assert_eq!(decide(direction, s), table[index].7, "{direction:?} {s:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 576);
        let unused: Vec<usize> = (0..table.len()).filter(|&i| !used[i]).collect();
        assert!(unused.is_empty(), "rows never used: {unused:?}");
    }

    /// Recipients that differ from today's rules change one decision only: a forced encrypt
    /// of an in-sync entry (a lost key) re-encrypts it. Every other situation, in both
    /// directions, is decided as without the drift (the 576 rows above).
    #[test]
    fn recipient_drift_changes_only_a_forced_encrypt_in_sync() {
        for direction in [Decrypt, Encrypt] {
            for s in situations() {
                let drifted = Situation {
                    recipients_differ: true,
                    ..s
                };
                let reencrypts = direction == Encrypt
                    && s.state == State::InSync
                    && s.force
                    && (s.allow_empty || !s.server_empty);
                let want = if reencrypts {
                    Update
                } else {
                    decide(direction, s)
                };
                assert_eq!(
                    decide(direction, drifted),
                    want,
                    "{direction:?} {drifted:?}"
                );
            }
        }
    }

    /// Without --force nothing that holds an unsynced change is written.
    #[test]
    fn without_force_no_unsynced_change_is_overwritten() {
        for s in situations().filter(|s| !s.force) {
            let decrypt = decide(Decrypt, s);
            if matches!(
                s.state,
                State::ServerChanged | State::Conflict | State::New | State::RolledBack
            ) {
                assert!(matches!(decrypt, Refuse(_)), "decrypt {s:?}: {decrypt:?}");
            }
            let encrypt = decide(Encrypt, s);
            if matches!(
                s.state,
                State::RepoChanged | State::Conflict | State::New | State::RolledBack
            ) {
                assert!(
                    matches!(encrypt, Refuse(_) | Fail(_)),
                    "encrypt {s:?}: {encrypt:?}"
                );
            }
        }
    }

    #[test]
    fn status_next_steps() {
        let rows = [
            (State::InSync, false, false, None),
            (State::InSync, true, false, Some(Next::Decrypt)),
            (State::RepoChanged, false, false, Some(Next::Decrypt)),
            (State::ServerMissing, false, true, Some(Next::Decrypt)),
            (State::ServerChanged, false, false, Some(Next::Encrypt)),
            (State::ServerChanged, true, false, Some(Next::Encrypt)),
            (State::RepoMissing, false, false, Some(Next::Encrypt)),
            (State::RepoMissing, false, true, Some(Next::Encrypt)),
            (State::Conflict, false, false, Some(Next::Compare)),
            (State::New, true, false, Some(Next::Compare)),
            (State::Missing, false, false, Some(Next::Restore)),
            (State::Missing, false, true, None),
            (State::RolledBack, false, false, Some(Next::Compare)),
        ];
        for (state, drift, optional, want) in rows {
            assert_eq!(
                next(state, drift, optional),
                want,
                "{state:?} {drift} {optional}"
            );
        }
        // Every state has an answer (or none) without panicking, drift or not.
        for state in STATES {
            for (drift, optional) in [(false, false), (true, false), (false, true), (true, true)] {
                let _ = next(state, drift, optional);
            }
        }
    }
}
