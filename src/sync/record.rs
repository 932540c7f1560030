//! Sync records: what the state folder keeps of each entry's last sync, and how they are
//! stored (one flat folder, written as a batch without fsync: a lost record only makes an
//! entry look `new`).

use sha2::{Digest, Sha256};

use super::rollback::lastmodified_in;
use super::STATE_PERMS;
use crate::fs::{self, Stamp};
use crate::manifest::{Entry, Manifest};

/// A sync record: the `.enc` as synced (ciphertext only), and the stamp of the server file
/// that sync left. With both unchanged an entry is in sync without decrypting anything.
///
/// On disk: `envsync-record 1 server=<dev:ino:size:mtime:ctime>\n`, then the `.enc` bytes.
/// An `.enc` over [`RECORD_COPY_LIMIT`] is recorded by its SHA-256 digest instead
/// (`… enc-sha256=<hex> lastmodified=<RFC 3339>\n`, no body): copying a large secret on every
/// sync would double the run's I/O, and a rekeyed large file then merely reads as changed in
/// the repo. SHA-256 is `sha2`'s, the hash crate age already brings, so envsync has one
/// hashing stack. The `.enc`'s sops `lastmodified` is kept beside the digest (a copy holds it
/// already), so an `.enc` older than its last sync is told apart ([`super::rollback`]);
/// digest records without it (earlier versions) still read, without that date.
///
/// Records with `enc-blake3=` (written by the versions that used BLAKE3 for this digest)
/// can no longer be checked: they are read as a digest that matches no `.enc`, so the entry's
/// `.enc` reads as changed since the last sync. On an untouched server a decrypt then finds
/// the plaintexts equal (or rewrites the server file) and stores a new record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) enc: RecordedEnc,
    pub(crate) server: Option<Stamp>,
    /// A digest record's `lastmodified=` field, when it has one.
    pub(crate) lastmodified: Option<String>,
}

/// How a record holds the `.enc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordedEnc {
    Copy(Vec<u8>),
    /// The SHA-256 of a large `.enc` ([`enc_digest`]).
    Sha256([u8; 32]),
    /// A BLAKE3 digest written by an earlier version: it matches no `.enc`.
    Blake3Legacy,
}

/// `.enc` files up to this size are copied into their record.
pub(crate) const RECORD_COPY_LIMIT: usize = 1 << 20;

const RECORD_MAGIC: &[u8] = b"envsync-record 1 server=";
const DIGEST_FIELD: &str = " enc-sha256=";
const BLAKE3_FIELD: &str = " enc-blake3=";
const LASTMODIFIED_FIELD: &str = " lastmodified=";

impl Record {
    /// Reads a record file; anything unrecognised is taken as a bare `.enc` copy.
    pub(crate) fn parse(bytes: Vec<u8>) -> Self {
        let header = bytes.strip_prefix(RECORD_MAGIC).and_then(|rest| {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = std::str::from_utf8(&rest[..end]).ok()?;
            let (line, lastmodified) = match line.split_once(LASTMODIFIED_FIELD) {
                Some((line, date)) if line.contains(DIGEST_FIELD) && !date.contains(' ') => {
                    (line, Some(date.to_string()))
                }
                _ => (line, None),
            };
            let (stamp, digest) = if let Some((stamp, hex)) = line.split_once(DIGEST_FIELD) {
                (stamp, Some(RecordedEnc::Sha256(hex32(hex.as_bytes())?)))
            } else if let Some((stamp, hex)) = line.split_once(BLAKE3_FIELD) {
                hex32(hex.as_bytes())?;
                (stamp, Some(RecordedEnc::Blake3Legacy))
            } else {
                (line, None)
            };
            let start = RECORD_MAGIC.len() + end + 1;
            Some((Stamp::decode(stamp)?, digest, lastmodified, start))
        });
        match header {
            Some((stamp, Some(digest), lastmodified, _)) => Self {
                enc: digest,
                server: Some(stamp),
                lastmodified,
            },
            Some((stamp, None, _, start)) => Self {
                enc: RecordedEnc::Copy(bytes[start..].to_vec()),
                server: Some(stamp),
                lastmodified: None,
            },
            None => Self {
                enc: RecordedEnc::Copy(bytes),
                server: None,
                lastmodified: None,
            },
        }
    }

    /// The header line of the record of an `.enc` of `enc_len` bytes for a server file with
    /// this stamp; `digest` gives the `.enc`'s digest when it is needed (a large `.enc`), and
    /// `lastmodified` its sops date, kept beside the digest.
    pub(crate) fn header(
        server: &Stamp,
        enc_len: usize,
        digest: impl FnOnce() -> [u8; 32],
        lastmodified: Option<&str>,
    ) -> Vec<u8> {
        let mut out = RECORD_MAGIC.to_vec();
        out.extend_from_slice(server.encode().as_bytes());
        if enc_len > RECORD_COPY_LIMIT {
            out.extend_from_slice(DIGEST_FIELD.as_bytes());
            out.extend(
                digest()
                    .iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes()),
            );
            // A date is RFC 3339 (no spaces, no newline), as `lastmodified_in` checked.
            if let Some(date) = lastmodified.filter(|d| !d.contains([' ', '\n'])) {
                out.extend_from_slice(LASTMODIFIED_FIELD.as_bytes());
                out.extend_from_slice(date.as_bytes());
            }
        }
        out.push(b'\n');
        out
    }

    /// Whether the record was written by an earlier version (a BLAKE3 digest) and a sync
    /// should rewrite it. (It never matches, so such an entry is never judged in sync from
    /// its record alone: the slow path finds it and stores a new record anyway.)
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(self.enc, RecordedEnc::Blake3Legacy)
    }

    /// What follows the header: the `.enc` itself, unless it is recorded by its digest.
    pub(crate) fn body(enc: &[u8]) -> &[u8] {
        if enc.len() > RECORD_COPY_LIMIT {
            &[]
        } else {
            enc
        }
    }

    /// Whether the record holds exactly this `.enc`; `digest` gives its digest if needed.
    pub(crate) fn same_enc(&self, enc: &[u8], digest: impl FnOnce() -> [u8; 32]) -> bool {
        let large = enc.len() > RECORD_COPY_LIMIT;
        match &self.enc {
            RecordedEnc::Copy(copy) => copy == enc,
            RecordedEnc::Sha256(recorded) => large && *recorded == digest(),
            RecordedEnc::Blake3Legacy => false,
        }
    }

    /// The sops `lastmodified` of the `.enc` as last synced, when the record tells it.
    pub(crate) fn synced_lastmodified(&self) -> Option<String> {
        match &self.enc {
            RecordedEnc::Copy(copy) => lastmodified_in(copy),
            RecordedEnc::Sha256(_) => self.lastmodified.clone(),
            RecordedEnc::Blake3Legacy => None,
        }
    }

    /// The recorded `.enc`, when the record holds a copy.
    pub(crate) fn copy(&self) -> Option<&[u8]> {
        match &self.enc {
            RecordedEnc::Copy(copy) => Some(copy),
            RecordedEnc::Sha256(_) | RecordedEnc::Blake3Legacy => None,
        }
    }

    /// Whether this record says `enc` and the server file are exactly as last synced.
    pub(crate) fn matches(
        &self,
        enc: &[u8],
        server: &Stamp,
        digest: impl FnOnce() -> [u8; 32],
    ) -> bool {
        self.server.as_ref() == Some(server) && self.same_enc(enc, digest)
    }
}

/// The digest of a (large) `.enc`, as its record holds it: SHA-256.
pub(crate) fn enc_digest(bytes: &[u8]) -> [u8; 32] {
    let mut digest = EncDigest::default();
    digest.update(bytes);
    digest.finish()
}

/// [`enc_digest`] fed piece by piece, for an `.enc` that is streamed rather than read whole.
#[derive(Default)]
pub(crate) struct EncDigest(Sha256);

impl EncDigest {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn hex32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(text.chunks(2)) {
        *slot = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// A sync record to store: where it goes, its header, and the `.enc` it records.
pub(crate) struct RecordWrite<'a> {
    path: String,
    head: Vec<u8>,
    enc: &'a [u8],
}

impl<'a> RecordWrite<'a> {
    /// The record of `enc` for `entry`, whose server file now has the stamp `server`;
    /// `digest` gives the `.enc`'s digest when the record holds one.
    pub(crate) fn new(
        entry: &Entry,
        server: &Stamp,
        enc: &'a [u8],
        digest: impl FnOnce() -> [u8; 32],
    ) -> Self {
        let lastmodified = (enc.len() > RECORD_COPY_LIMIT)
            .then(|| lastmodified_in(enc))
            .flatten();
        Self {
            path: record_path(entry),
            head: Record::header(server, enc.len(), digest, lastmodified.as_deref()),
            enc,
        }
    }

    /// Whether `record` already holds exactly what this would store: then writing it would
    /// only churn the state folder (a temp and a rename for nothing), so it is not written.
    pub(crate) fn is_stored_in(&self, record: &Record) -> bool {
        let new = Record::parse(self.head.clone());
        new.server == record.server
            && new.lastmodified == record.lastmodified
            && match (&new.enc, &record.enc) {
                // The header parsed alone: the copy it stands for is the body.
                (RecordedEnc::Copy(_), RecordedEnc::Copy(old)) => old == Record::body(self.enc),
                (new, old) => new == old,
            }
    }

    /// The record of a large `.enc` that was streamed, not read: by its digest and its sops
    /// `lastmodified`.
    pub(crate) fn of_large(
        entry: &Entry,
        server: &Stamp,
        digest: [u8; 32],
        lastmodified: &str,
    ) -> Self {
        Self {
            path: record_path(entry),
            // Streamed files are far over the copy limit: the header holds the digest.
            head: Record::header(server, usize::MAX, || digest, Some(lastmodified)),
            enc: &[],
        }
    }
}

/// The batch steps that store `records` (applied after the files they describe).
pub(crate) fn record_ops<'a>(
    manifest: &'a Manifest,
    records: &'a [RecordWrite<'a>],
) -> Vec<fs::Op<'a>> {
    records
        .iter()
        .map(|r| {
            fs::Op::Write(fs::Job {
                base: &manifest.state_dir,
                relative: &r.path,
                head: &r.head,
                contents: Record::body(r.enc),
                perms: STATE_PERMS,
                expect: fs::Expect::Any,
                previous: None,
            })
        })
        .collect()
}

/// Where an entry's sync record lives inside the state folder: one flat folder, the repo
/// path with `%` and `/` escaped (`envs/app/.env.enc` → `records/envs%2Fapp%2F.env.enc`),
/// so records cost no folder of their own.
pub(crate) fn record_path(entry: &Entry) -> String {
    let escape = |s: &str| s.replace('%', "%25").replace('/', "%2F");
    match &entry.key {
        // Entries that share a `.enc` each keep their own record: `<repo>%23<key>` (`#`
        // escaped, which no plain repo path's record name holds).
        Some(key) => format!(
            "records/{}%23{}",
            escape(&entry.repo),
            escape(&key.to_string())
        ),
        None => format!("records/{}", escape(&entry.repo)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            dev: 2049,
            ino: 1234,
            size: 99,
            mtime: (1_700_000_000, 5),
            ctime: (1_700_000_001, 0),
        }
    }

    fn large_enc() -> Vec<u8> {
        (0..RECORD_COPY_LIMIT + 10)
            .map(|i| (i % 251) as u8)
            .collect()
    }

    #[test]
    fn copy_record_round_trip() {
        let enc = b"{\"data\": \"ENC[...]\"}".to_vec();
        let mut bytes = Record::header(&stamp(), enc.len(), || unreachable!("small"), None);
        bytes.extend_from_slice(Record::body(&enc));
        let record = Record::parse(bytes);
        assert_eq!(record.server, Some(stamp()));
        assert_eq!(record.copy(), Some(&enc[..]));
        assert!(record.matches(&enc, &stamp(), || unreachable!("a copy needs no digest")));
        assert!(!record.same_enc(b"other", || [0; 32]));
        assert!(!record.is_legacy());
    }

    #[test]
    fn sha256_record_round_trip() {
        let enc = large_enc();
        let bytes = Record::header(&stamp(), enc.len(), || enc_digest(&enc), None);
        let text = std::str::from_utf8(&bytes).unwrap();
        let hex: String = Sha256::digest(&enc)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            text,
            format!(
                "envsync-record 1 server={} enc-sha256={hex}\n",
                stamp().encode()
            )
        );
        assert!(Record::body(&enc).is_empty());
        let record = Record::parse(bytes);
        assert_eq!(record.enc, RecordedEnc::Sha256(enc_digest(&enc)));
        assert_eq!(record.copy(), None);
        assert!(!record.is_legacy());
        assert!(record.matches(&enc, &stamp(), || enc_digest(&enc)));
        let mut changed = enc.clone();
        changed[7] ^= 1;
        assert!(!record.same_enc(&changed, || enc_digest(&changed)));
        // A digest record never stands for a small `.enc`.
        assert!(!record.same_enc(b"small", || enc_digest(&enc)));
    }

    /// A record is rewritten only when what it would hold differs.
    #[test]
    fn a_record_is_stored_only_when_it_changes() {
        let entry_record = |head: Vec<u8>, body: &[u8]| {
            let mut bytes = head;
            bytes.extend_from_slice(body);
            Record::parse(bytes)
        };
        let write = |server: &Stamp, enc: &'static [u8]| RecordWrite {
            path: "records/x".into(),
            head: Record::header(server, enc.len(), || unreachable!("small"), None),
            enc,
        };
        let enc: &'static [u8] = b"KEY=ENC[...]\n";
        let stored = entry_record(
            Record::header(&stamp(), enc.len(), || unreachable!(), None),
            enc,
        );
        assert!(write(&stamp(), enc).is_stored_in(&stored));
        assert!(!write(&stamp(), b"KEY=ENC[other]\n").is_stored_in(&stored));
        let mut moved = stamp();
        moved.ctime.1 += 1;
        assert!(!write(&moved, enc).is_stored_in(&stored));
        assert!(!write(&stamp(), enc).is_stored_in(&Record::parse(enc.to_vec())));
        let large = large_enc();
        let digest = enc_digest(&large);
        let large_write = RecordWrite {
            path: "records/x".into(),
            head: Record::header(&stamp(), large.len(), || digest, None),
            enc: &large,
        };
        let stored = Record::parse(Record::header(&stamp(), large.len(), || digest, None));
        assert!(large_write.is_stored_in(&stored));
        let other = Record::parse(Record::header(&stamp(), large.len(), || [7; 32], None));
        assert!(!large_write.is_stored_in(&other));
    }

    #[test]
    fn enc_digest_is_sha256_fed_whole_or_in_pieces() {
        let enc = large_enc();
        let mut pieces = EncDigest::default();
        for piece in enc.chunks(1000) {
            pieces.update(piece);
        }
        let expected: [u8; 32] = Sha256::digest(&enc).into();
        assert_eq!(pieces.finish(), expected);
        assert_eq!(enc_digest(&enc), expected);
    }

    #[test]
    fn blake3_records_of_earlier_versions_never_match() {
        let enc = large_enc();
        // Whatever digest it holds (here even the `.enc`'s SHA-256), it cannot be checked.
        let hex: String = enc_digest(&enc)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let line = format!(
            "envsync-record 1 server={} enc-blake3={hex}\n",
            stamp().encode()
        );
        let record = Record::parse(line.into_bytes());
        assert_eq!(record.enc, RecordedEnc::Blake3Legacy);
        assert_eq!(record.server, Some(stamp()));
        assert_eq!(record.copy(), None);
        assert!(record.is_legacy());
        assert!(!record.same_enc(&enc, || enc_digest(&enc)));
        assert!(!record.matches(&enc, &stamp(), || enc_digest(&enc)));
    }

    #[test]
    fn bare_copies_without_a_header() {
        // Records of the first versions were the `.enc` alone.
        let enc = b"KEY=ENC[AES256_GCM,data:abc,iv:def,tag:ghi,type:str]\n".to_vec();
        let record = Record::parse(enc.clone());
        assert_eq!(record.server, None);
        assert_eq!(record.copy(), Some(&enc[..]));
        assert!(record.same_enc(&enc, || unreachable!()));
        assert!(!record.matches(&enc, &stamp(), || unreachable!()));
    }

    #[test]
    fn garbage_is_a_copy_that_matches_nothing_else() {
        let magic = "envsync-record 1 server=";
        let good = stamp().encode();
        for bytes in [
            b"".to_vec(),
            b"\xff\xfe garbage".to_vec(),
            format!("{magic}not-a-stamp\nbody").into_bytes(),
            format!("{magic}{good}").into_bytes(), // no end of line
            format!("{magic}{good} enc-sha256=abc\n").into_bytes(),
            format!("{magic}{good} enc-sha256={}\n", "zz".repeat(32)).into_bytes(),
            format!("{magic}{good} enc-blake3={}\n", "0".repeat(63)).into_bytes(),
            vec![b'\n'; 3],
        ] {
            let record = Record::parse(bytes.clone());
            assert_eq!(record.server, None, "{bytes:?}");
            assert_eq!(record.copy(), Some(&bytes[..]));
            assert!(!record.is_legacy());
            let enc = large_enc();
            assert!(!record.same_enc(&enc, || enc_digest(&enc)));
        }
    }
}
