//! An `.enc` older than its sync record: the repo holds a version whose sops `lastmodified` is
//! earlier than that of the `.enc` last synced, as after `git checkout HEAD~1 -- x.enc` once a
//! rotation was synced. A git revert is a legitimate rollback, so decrypt still applies it; but
//! a stale checkout looks the same, so `status` says so and decrypt warns, naming both dates.
//!
//! The dates are read from the files' metadata without decrypting anything: the repo side's
//! is authenticated anyway (its MAC covers `lastmodified`) when it was opened, and the record
//! side is the state folder's own copy (or, for a large `.enc`, the date kept in the record's
//! header).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Codec, Sides};
use crate::format::{Format, Opened};

/// The two `lastmodified` dates of an `.enc` older than its last sync, as the files spell
/// them (RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rollback {
    /// The repo `.enc`'s.
    pub(crate) repo: String,
    /// The `.enc` last synced's.
    pub(crate) synced: String,
}

impl Rollback {
    /// `Some` when `repo` is strictly earlier than `synced`; `None` too when either is not
    /// an RFC 3339 date.
    pub(crate) fn compare(repo: String, synced: String) -> Option<Self> {
        let parse = |date: &str| OffsetDateTime::parse(date, &Rfc3339).ok();
        (parse(&repo)? < parse(&synced)?).then_some(Self { repo, synced })
    }

    /// The warning decrypt prints for the entry whose repo path is `repo_path` (without the
    /// `warning: ` label); `dry_run` says what a decrypt would do instead.
    pub(crate) fn warning(&self, repo_path: &str, dry_run: bool) -> String {
        let outcome = if dry_run {
            "a decrypt would apply it"
        } else {
            "applying it anyway"
        };
        format!(
            "{repo_path} is older than its last sync (lastmodified {}, last synced {}); {outcome} (a git revert is a legitimate rollback)",
            self.repo, self.synced
        )
    }
}

impl Sides<'_> {
    /// Whether the repo `.enc` is older than the one last synced. `opened` is the `.enc`
    /// decrypted, when an identity could open it (its date is then authenticated).
    pub(crate) fn rollback(&self, opened: Option<&Opened>) -> Option<Rollback> {
        // A plain file has no sops date; any `lastmodified` in it is content.
        if self.codec == Codec::Plain {
            return None;
        }
        let synced = self.record.as_ref()?.synced_lastmodified()?;
        let repo = match opened.and_then(|o| o.sops.as_ref()) {
            Some(unlocked) => unlocked.metadata.lastmodified.clone(),
            None => lastmodified_in(self.repo.as_ref()?.bytes.expose())?,
        };
        Rollback::compare(repo, synced)
    }
}

/// The sops `lastmodified` of an encrypted file, read from its metadata without decrypting
/// it (the stores' own parsers). `None` for a file no sops store reads (an age file has no
/// such date) or a value that is not RFC 3339.
pub(crate) fn lastmodified_in(file: &[u8]) -> Option<String> {
    let store = Format::detect(file)?.store()?;
    let value = store.metadata(file).ok()?.lastmodified;
    OffsetDateTime::parse(&value, &Rfc3339).ok()?;
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written by real sops (the test vectors), in both stores it reads.
    #[test]
    fn lastmodified_is_read_from_either_store() {
        let dotenv = include_bytes!("../../tests/fixtures/sops-vectors/dotenv_backslash_n.enc.env");
        assert_eq!(
            lastmodified_in(dotenv).as_deref(),
            Some("2026-11-23T07:19:37Z")
        );
        let binary = include_bytes!("../../tests/fixtures/sops-vectors/dotenv_as_binary.env.enc");
        assert_eq!(
            lastmodified_in(binary).as_deref(),
            Some("2026-11-23T07:14:59Z")
        );
        let text = String::from_utf8(dotenv.to_vec()).unwrap();
        let undated = text.replace(
            "sops_lastmodified=2026-11-23T07:19:37Z",
            "sops_lastmodified=yesterday",
        );
        for none in [
            &b"-----BEGIN AGE ENCRYPTED FILE-----\n"[..],
            undated.as_bytes(),
            b"KEY=1 sops_lastmodified=2026-11-20T10:00:00Z\n",
            b"{\"lastmodified\": 5}",
        ] {
            assert_eq!(lastmodified_in(none), None, "{none:?}");
        }
    }

    #[test]
    fn only_an_earlier_date_is_a_rollback() {
        let at = |a: &str, b: &str| Rollback::compare(a.into(), b.into()).is_some();
        assert!(at("2026-11-20T10:00:00Z", "2026-11-21T09:00:00Z"));
        assert!(!at("2026-11-21T09:00:00Z", "2026-11-21T09:00:00Z"));
        assert!(!at("2026-11-22T09:00:00Z", "2026-11-21T09:00:00Z"));
        // Offsets are compared as instants.
        assert!(at("2026-11-21T10:00:00+02:00", "2026-11-21T09:00:00Z"));
        assert!(!at("not a date", "2026-11-21T09:00:00Z"));
        let warning =
            Rollback::compare("2026-11-20T10:00:00Z".into(), "2026-11-21T09:00:00Z".into())
                .unwrap()
                .warning("app/.env.enc", false);
        assert_eq!(
            warning,
            "app/.env.enc is older than its last sync (lastmodified 2026-11-20T10:00:00Z, last synced 2026-11-21T09:00:00Z); applying it anyway (a git revert is a legitimate rollback)"
        );
    }
}
