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
use crate::format::Opened;

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

/// The sops `lastmodified` of an encrypted file, read without decrypting it: the dotenv
/// store's `sops_lastmodified=` line, or the binary (JSON) store's `"lastmodified": "…"`.
/// `None` for anything else (an age file has no such date) or a value that is not RFC 3339.
/// The metadata sits at the end of the file, so both are searched from there.
pub(crate) fn lastmodified_in(file: &[u8]) -> Option<String> {
    const DOTENV: &[u8] = b"sops_lastmodified=";
    const JSON: &[u8] = b"\"lastmodified\"";
    let value = match memchr::memmem::rfind(file, DOTENV) {
        Some(at) if at == 0 || file[at - 1] == b'\n' => {
            let rest = &file[at + DOTENV.len()..];
            rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())].trim_ascii()
        }
        _ => {
            // A sops value is `ENC[…]` (no quote), so the last `"lastmodified"` is the key.
            let at = memchr::memmem::rfind(file, JSON)? + JSON.len();
            let rest = (file[at..].trim_ascii_start().strip_prefix(b":")?)
                .trim_ascii_start()
                .strip_prefix(b"\"")?;
            &rest[..memchr::memchr(b'"', rest)?]
        }
    };
    let value = std::str::from_utf8(value).ok()?;
    OffsetDateTime::parse(value, &Rfc3339).ok()?;
    Some(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastmodified_is_read_from_either_store() {
        let dotenv = b"A=ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops_lastmodified=2026-11-20T10:00:00Z\r\nsops_version=3.11.0\n";
        assert_eq!(
            lastmodified_in(dotenv).as_deref(),
            Some("2026-11-20T10:00:00Z")
        );
        let binary = b"{\n\t\"data\": \"ENC[AES256_GCM,data:x]\",\n\t\"sops\": {\n\t\t\"lastmodified\": \"2026-11-21T09:00:00Z\",\n\t\t\"version\": \"3.11.0\"\n\t}\n}\n";
        assert_eq!(
            lastmodified_in(binary).as_deref(),
            Some("2026-11-21T09:00:00Z")
        );
        for none in [
            &b"-----BEGIN AGE ENCRYPTED FILE-----\n"[..],
            b"sops_lastmodified=yesterday\n",
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
