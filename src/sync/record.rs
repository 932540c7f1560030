//! Sync records: what the state folder keeps of each entry's last sync, and how they are
//! stored (one flat folder, written as a batch without fsync: a lost record only makes an
//! entry look `new`).

use super::STATE_PERMS;
use crate::fs::{self, Stamp};
use crate::manifest::{Entry, Manifest};

/// A sync record: the `.enc` as synced (ciphertext only), and the stamp of the server file
/// that sync left. With both unchanged an entry is in sync without decrypting anything.
///
/// On disk: `envsync-record 1 server=<dev:ino:size:mtime:ctime>\n`, then the `.enc` bytes.
/// An `.enc` over [`RECORD_COPY_LIMIT`] is recorded by its BLAKE3 digest instead
/// (`… enc-blake3=<hex>\n`, no body): copying a large secret on every sync would double the
/// run's I/O, and a rekeyed large file then merely reads as changed in the repo. (BLAKE3
/// because hashing an 89 MB `.enc` is on the critical path of a streamed decrypt: 12 ms, where
/// SHA-256 took 48. Records written with `enc-sha256=` by earlier versions are still read.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub enc: RecordedEnc,
    pub server: Option<Stamp>,
}

/// How a record holds the `.enc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedEnc {
    Copy(Vec<u8>),
    Blake3([u8; 32]),
    /// Written by envsync 0.1 before BLAKE3.
    Sha256([u8; 32]),
}

/// `.enc` files up to this size are copied into their record.
pub const RECORD_COPY_LIMIT: usize = 1 << 20;

const RECORD_MAGIC: &[u8] = b"envsync-record 1 server=";
const DIGEST_FIELD: &str = " enc-blake3=";
const SHA256_FIELD: &str = " enc-sha256=";

impl Record {
    /// Reads a record file; anything unrecognised is taken as a bare `.enc` copy.
    pub(crate) fn parse(bytes: Vec<u8>) -> Self {
        let header = bytes.strip_prefix(RECORD_MAGIC).and_then(|rest| {
            let end = rest.iter().position(|&b| b == b'\n')?;
            let line = std::str::from_utf8(&rest[..end]).ok()?;
            let (stamp, digest) = if let Some((stamp, hex)) = line.split_once(DIGEST_FIELD) {
                (stamp, Some(RecordedEnc::Blake3(hex32(hex.as_bytes())?)))
            } else if let Some((stamp, hex)) = line.split_once(SHA256_FIELD) {
                (stamp, Some(RecordedEnc::Sha256(hex32(hex.as_bytes())?)))
            } else {
                (line, None)
            };
            Some((Stamp::decode(stamp)?, digest, RECORD_MAGIC.len() + end + 1))
        });
        match header {
            Some((stamp, Some(digest), _)) => Self {
                enc: digest,
                server: Some(stamp),
            },
            Some((stamp, None, start)) => Self {
                enc: RecordedEnc::Copy(bytes[start..].to_vec()),
                server: Some(stamp),
            },
            None => Self {
                enc: RecordedEnc::Copy(bytes),
                server: None,
            },
        }
    }

    /// The header line of the record of an `.enc` of `enc_len` bytes for a server file with
    /// this stamp; `digest` gives the `.enc`'s digest when it is needed (a large `.enc`).
    pub fn header(server: &Stamp, enc_len: usize, digest: impl FnOnce() -> [u8; 32]) -> Vec<u8> {
        let mut out = RECORD_MAGIC.to_vec();
        out.extend_from_slice(server.encode().as_bytes());
        if enc_len > RECORD_COPY_LIMIT {
            out.extend_from_slice(DIGEST_FIELD.as_bytes());
            out.extend(
                digest()
                    .iter()
                    .flat_map(|b| format!("{b:02x}").into_bytes()),
            );
        }
        out.push(b'\n');
        out
    }

    /// Whether the record was written by an earlier version (a SHA-256 digest): a sync
    /// rewrites it, so that later runs digest the `.enc` with BLAKE3 only.
    pub fn is_legacy(&self) -> bool {
        matches!(self.enc, RecordedEnc::Sha256(_))
    }

    /// What follows the header: the `.enc` itself, unless it is recorded by its digest.
    pub fn body(enc: &[u8]) -> &[u8] {
        if enc.len() > RECORD_COPY_LIMIT {
            &[]
        } else {
            enc
        }
    }

    /// Whether the record holds exactly this `.enc`; `digest` gives its digest if needed.
    pub fn same_enc(&self, enc: &[u8], digest: impl FnOnce() -> [u8; 32]) -> bool {
        let large = enc.len() > RECORD_COPY_LIMIT;
        match &self.enc {
            RecordedEnc::Copy(copy) => copy == enc,
            RecordedEnc::Blake3(recorded) => large && *recorded == digest(),
            RecordedEnc::Sha256(recorded) => {
                use sha2::Digest;
                large && recorded[..] == sha2::Sha256::digest(enc)[..]
            }
        }
    }

    /// The recorded `.enc`, when the record holds a copy.
    pub fn copy(&self) -> Option<&[u8]> {
        match &self.enc {
            RecordedEnc::Copy(copy) => Some(copy),
            RecordedEnc::Blake3(_) | RecordedEnc::Sha256(_) => None,
        }
    }

    /// Whether this record says `enc` and the server file are exactly as last synced.
    pub fn matches(&self, enc: &[u8], server: &Stamp, digest: impl FnOnce() -> [u8; 32]) -> bool {
        self.server.as_ref() == Some(server) && self.same_enc(enc, digest)
    }
}

/// The digest of a (large) `.enc`, as its record holds it.
pub fn enc_digest(bytes: &[u8]) -> [u8; 32] {
    blake3::hash(bytes).into()
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
pub struct RecordWrite<'a> {
    path: String,
    head: Vec<u8>,
    enc: &'a [u8],
}

impl<'a> RecordWrite<'a> {
    /// The record of `enc` for `entry`, whose server file now has the stamp `server`;
    /// `digest` gives the `.enc`'s digest when the record holds one.
    pub fn new(
        entry: &Entry,
        server: &Stamp,
        enc: &'a [u8],
        digest: impl FnOnce() -> [u8; 32],
    ) -> Self {
        Self {
            path: record_path(entry),
            head: Record::header(server, enc.len(), digest),
            enc,
        }
    }

    /// The record of a large `.enc` that was streamed, not read: by its digest.
    pub fn of_large(entry: &Entry, server: &Stamp, digest: [u8; 32]) -> Self {
        Self {
            path: record_path(entry),
            // Streamed files are far over the copy limit: the header holds the digest.
            head: Record::header(server, usize::MAX, || digest),
            enc: &[],
        }
    }
}

/// The batch steps that store `records` (applied after the files they describe).
pub fn record_ops<'a>(manifest: &'a Manifest, records: &'a [RecordWrite<'a>]) -> Vec<fs::Op<'a>> {
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
pub fn record_path(entry: &Entry) -> String {
    format!(
        "records/{}",
        entry.repo.replace('%', "%25").replace('/', "%2F")
    )
}
