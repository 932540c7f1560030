//! The sides of an entry: the repo `.enc`, the server plaintext and the sync record (the
//! `.enc` as last synced, kept in the state folder); opening (decrypting and authenticating)
//! them, and deciding from the three which side changed ([`state`]).
//!
//! Commands load every selected entry through here (in parallel) before they plan or write
//! anything, so a bad file anywhere stops a run before its first write. The one other way in
//! is [`large`]: a large binary `.enc` going onto a new server file, decrypted as a stream in
//! the same step.

pub(crate) mod decision;
pub(crate) mod extract;
pub(crate) mod files;
pub(crate) mod large;
pub(crate) mod record;
pub(crate) mod rollback;
pub(crate) mod state;

pub(crate) use record::{
    enc_digest, record_ops, record_path, Record, RecordWrite, RECORD_COPY_LIMIT,
};

use std::path::Path;

use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::format::{self, Format, Opened};
use crate::fs::{self, Existing, Folders, Perms, Stamp};
use crate::manifest::{Entry, Manifest};
use crate::output::json::PermDrift;
use crate::secret::SecretBytes;
use crate::sops::store::dotenv;

/// How an entry's repo file relates to its plaintext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Kept in clear (`plain = true`): the repo file is a copy.
    Plain,
    /// Encrypted in this format.
    Encrypted(Format),
}

impl Codec {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Encrypted(f) => f.name(),
        }
    }

    /// The format of an encrypted entry.
    pub(crate) fn format(self) -> Option<Format> {
        match self {
            Self::Plain => None,
            Self::Encrypted(f) => Some(f),
        }
    }
}

/// An entry with both of its files read (not yet decrypted).
#[derive(Debug)]
pub(crate) struct Sides<'m> {
    pub(crate) entry: &'m Entry,
    pub(crate) repo: Option<Existing>,
    pub(crate) server: Option<Existing>,
    /// The `.enc` as it was at the last successful sync, if any.
    pub(crate) record: Option<Record>,
    /// The `.enc`'s digest ([`enc_digest`]), computed once when a record needs it.
    repo_digest_once: std::sync::OnceLock<[u8; 32]>,
    pub(crate) codec: Codec,
    /// An `as = "files"` entry's server folder (`server` is then that folder read as one
    /// dotenv file).
    pub(crate) folder: Option<files::FolderSide>,
}

/// A `.enc` written into the repo: `contents` over the entry's repo path, keeping the old
/// file's mode (0644 for a new one), durable.
pub(crate) fn repo_job<'a>(
    manifest: &'a Manifest,
    entry: &'a Entry,
    contents: &'a [u8],
    existing: Option<&'a Existing>,
) -> fs::Job<'a> {
    repo_file_job(&manifest.repo_root, &entry.repo, contents, existing)
}

/// The batch job that writes any repo-side file (an `.enc`, the manifest, `.gitignore`):
/// a new file is made 0644 in 0755 folders; an existing one keeps its mode, and the batch
/// refuses it if it changed since it was read.
pub(crate) fn repo_file_job<'a>(
    repo_root: &'a std::path::Path,
    relative: &'a str,
    contents: &'a [u8],
    existing: Option<&'a Existing>,
) -> fs::Job<'a> {
    fs::Job {
        base: repo_root,
        relative,
        head: &[],
        contents,
        perms: Perms {
            mode: existing.map_or(REPO_MODE, |r| r.mode),
            uid: None,
            gid: None,
            folders: Folders {
                mode: REPO_FOLDER_MODE,
                gid: None,
                guarded: false,
            },
            durable: true,
        },
        expect: existing.map_or(fs::Expect::Absent, |e| fs::Expect::Stamp(e.stamp)),
        previous: existing.map(Existing::previous),
    }
}

/// Where an in-place entry's previous content is kept while it is rewritten.
pub(crate) fn backup_path(entry: &Entry) -> String {
    format!("backup/{}", entry.server)
}

/// Permissions of everything in the state folder. Records are durable before a run reports
/// success: a record lost in a crash would make a synced entry look `new`.
pub(crate) const STATE_PERMS: Perms = Perms {
    mode: 0o600,
    uid: None,
    gid: None,
    folders: Folders {
        mode: 0o700,
        gid: None,
        guarded: true,
    },
    durable: true,
};

/// Mode of a repo file envsync creates: ciphertext, readable like any tracked file.
pub(crate) const REPO_MODE: u32 = 0o644;
/// Mode of a repo folder envsync creates.
pub(crate) const REPO_FOLDER_MODE: u32 = 0o755;

impl<'m> Sides<'m> {
    /// Reads both files; the codec comes from the entry, else the `.enc`'s content, else
    /// the server name.
    pub(crate) fn read(manifest: &Manifest, entry: &'m Entry) -> Result<Self, Error> {
        let repo = fs::read(&manifest.repo_root, &entry.repo)?;
        let record = fs::read(&manifest.state_dir, &record_path(entry))?
            .map(|r| Record::parse(r.bytes.expose().to_vec()));
        let codec = if entry.plain {
            Codec::Plain
        } else if let Some(format) = entry.format {
            Codec::Encrypted(format)
        } else if let Some(existing) = &repo {
            Codec::Encrypted(Format::detect(existing.bytes.expose()).ok_or_else(|| {
                Error::File {
                    path: entry.repo_path.clone(),
                    // Encrypted values without metadata: a damaged file, not plaintext.
                    source: if memchr::memmem::find(existing.bytes.expose(), b"ENC[AES256_GCM,")
                        .is_some()
                    {
                        FileError::Damaged {
                            path: entry.repo_path.display().to_string(),
                        }
                    } else {
                        FileError::UnknownFormat
                    },
                }
            })?)
        } else if entry.key.is_some() {
            // A new file for extracted values takes its format from its own name
            // (`secrets.yaml.enc`, `secrets.enc.yaml`), not the server file's.
            let name = entry.repo.rsplit('/').next().unwrap_or_default();
            let name = name.strip_suffix(".enc").unwrap_or(name);
            Codec::Encrypted(Format::for_server_name(name))
        } else {
            let name = Path::new(&entry.server)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            Codec::Encrypted(Format::for_server_name(name))
        };
        if let (Some(_), Codec::Encrypted(format)) = (&entry.key, codec) {
            if format.codec().is_none() {
                return Err(Error::File {
                    path: entry.repo_path.clone(),
                    source: FileError::KeyNeedsTree(format.name()),
                });
            }
        }
        let (folder, server) = match &entry.files {
            Some(layout) => {
                // INI's top level is sections: no values to make files of.
                let tree = matches!(codec, Codec::Encrypted(Format::Yaml | Format::Json));
                if codec != Codec::Encrypted(Format::Dotenv) && !tree {
                    return Err(Error::File {
                        path: entry.repo_path.clone(),
                        source: FileError::FilesNeedDotenv(codec.name()),
                    });
                }
                let enc = repo.as_ref().map(|r| r.bytes.expose());
                let synced = record.as_ref().and_then(Record::copy);
                let (side, server) = files::read(manifest, entry, layout, enc, synced)?;
                (Some(side), server)
            }
            None => (None, fs::read(&manifest.server_root, &entry.server)?),
        };
        Ok(Self {
            entry,
            repo,
            server,
            record,
            repo_digest_once: std::sync::OnceLock::new(),
            codec,
            folder,
        })
    }

    /// How the two sides' plaintexts are compared and diffed: a files folder as its dotenv
    /// view, an extracted value (`key`) as bytes, anything else in its own format.
    pub(crate) fn view_codec(&self) -> Codec {
        match self.codec {
            Codec::Encrypted(_) if self.folder.is_some() => Codec::Encrypted(Format::Dotenv),
            Codec::Encrypted(_) if self.entry.key.is_some() => Codec::Encrypted(Format::Binary),
            other => other,
        }
    }

    /// Decrypts and authenticates the repo side; `None` when the `.enc` does not exist (or
    /// there is no identity to open it with).
    pub(crate) fn open_repo(
        &self,
        identities: Option<&Identities>,
    ) -> Result<Option<Opened>, Error> {
        let Some(repo) = &self.repo else {
            return Ok(None);
        };
        self.open(repo.bytes.expose(), identities)
            .map_err(|source| Error::File {
                path: self.entry.repo_path.clone(),
                source,
            })
    }

    /// Opens `bytes` (the `.enc` or its record) with this entry's codec.
    pub(crate) fn open(
        &self,
        bytes: &[u8],
        identities: Option<&Identities>,
    ) -> Result<Option<Opened>, FileError> {
        Ok(Some(match self.codec {
            Codec::Plain => Opened {
                plaintext: SecretBytes::from(bytes),
                sops: None,
                whole: None,
            },
            Codec::Encrypted(format) => {
                let Some(identities) = identities else {
                    return Ok(None);
                };
                let opened = format::decrypt(format, bytes, identities)?;
                let part = match (&self.entry.key, format.codec()) {
                    (Some(key), Some(codec)) => {
                        Some(extract::value(codec, opened.plaintext.expose(), key)?)
                    }
                    (None, Some(codec)) if self.entry.files.is_some() => {
                        Some(extract::files_view(codec, opened.plaintext.expose())?)
                    }
                    _ => None,
                };
                match part {
                    Some(part) => Opened {
                        whole: Some(opened.plaintext),
                        plaintext: part,
                        sops: opened.sops,
                    },
                    None => opened,
                }
            }
        }))
    }

    /// The server plaintext as the repo would hold it: for dotenv, re-emitted the way sops
    /// prints it (blank lines dropped), so equal entries compare equal; for a files entry,
    /// its folder laid out like `repo` (the opened `.enc`: comments and key order).
    pub(crate) fn server_canonical(
        &self,
        repo: Option<&Opened>,
    ) -> Result<Option<SecretBytes>, Error> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        if let Some(folder) = &self.folder {
            return Ok(Some(folder.plaintext(repo.map(|r| r.plaintext.expose()))));
        }
        // An extracted value is its raw bytes.
        if self.entry.key.is_some() {
            return Ok(Some(server.bytes.clone()));
        }
        Ok(Some(match self.codec {
            Codec::Encrypted(Format::Dotenv) => {
                let items = dotenv::parse(server.bytes.expose()).map_err(|e| Error::File {
                    path: self.entry.server_path.clone(),
                    source: e.into(),
                })?;
                dotenv::emit(&items)
            }
            // A tree as `sops -d` prints it: formatting that is not content is not drift.
            // A server file that does not parse (a hand edit gone wrong) is taken as it is:
            // it differs from the repo, so decrypt refuses to overwrite it unless --force,
            // and encrypt names the line.
            Codec::Encrypted(format) => match format.codec() {
                Some(codec) => match codec.parse(server.bytes.expose()) {
                    Ok(tree) => SecretBytes::new(codec.emit(&tree)),
                    Err(_) => server.bytes.clone(),
                },
                None => server.bytes.clone(),
            },
            Codec::Plain => server.bytes.clone(),
        }))
    }

    /// The `.enc`'s sops metadata, read without a key; None for no `.enc`, a plain entry, a
    /// plain age file (its recipients are not visible) or metadata that does not parse
    /// (reported by whatever opens the file).
    pub(crate) fn repo_metadata(&self) -> Option<crate::sops::Metadata> {
        let Codec::Encrypted(format) = self.codec else {
            return None;
        };
        let bytes = self.repo.as_ref()?.bytes.expose();
        let format = Format::detect(bytes).unwrap_or(format);
        if format == Format::Age {
            return None;
        }
        crate::format::metadata(format, bytes).ok()
    }

    /// Whether the `.enc` is exactly the one the last sync left (a lost key on an unchanged
    /// file), not a newer one pulled since (a teammate's rotation this host cannot open).
    pub(crate) fn repo_matches_record(&self) -> bool {
        match (&self.record, &self.repo) {
            (Some(record), Some(repo)) => {
                let enc = repo.bytes.expose();
                record.same_enc(enc, || enc_digest(enc))
            }
            _ => false,
        }
    }

    /// How the `.enc`'s recipients (key groups and threshold) differ from `options`, today's
    /// rules; None when they are the same or cannot be told.
    pub(crate) fn recipient_drift(&self, options: &crate::sops::EncryptOptions) -> Option<String> {
        use crate::keys::layout::KeyLayout;
        let metadata = self.repo_metadata()?;
        KeyLayout::of_metadata(&metadata).drift_from(&KeyLayout::of_plan(&options.keys))
    }

    /// Whether neither file moved since the last sync (one read each and a digest: no
    /// decryption), which makes the entry in sync.
    /// With identities, one of them must still be a recipient of the `.enc`, so a wrong key
    /// is reported as it would be on a full decrypt.
    pub(crate) fn unchanged_since_sync(&self, identities: Option<&Identities>) -> bool {
        match (&self.record, &self.repo, &self.server) {
            (Some(record), Some(enc), Some(server)) => {
                record.matches(enc.bytes.expose(), &server.stamp, || self.repo_digest())
                    // A plain entry's repo file is a copy that names no recipient: asking for
                    // one sent every plain entry down the slow path, and its record was
                    // rewritten on every run.
                    && (self.codec == Codec::Plain
                        || identities.is_none_or(|ids| ids.named_in(enc.bytes.expose())))
            }
            _ => false,
        }
    }

    /// The record to store after a sync that leaves the server file at `server` and the
    /// repo file holding `enc`; `None` when the record on disk already says exactly that.
    pub(crate) fn record_write<'a>(
        &self,
        server: &Stamp,
        enc: &'a [u8],
        digest: impl FnOnce() -> [u8; 32],
    ) -> Option<RecordWrite<'a>> {
        let write = RecordWrite::new(self.entry, server, enc, digest);
        match &self.record {
            Some(record) if write.is_stored_in(record) => None,
            _ => Some(write),
        }
    }

    /// The `.enc`'s digest (of nothing, when there is none), computed once.
    pub(crate) fn repo_digest(&self) -> [u8; 32] {
        *self
            .repo_digest_once
            .get_or_init(|| enc_digest(self.repo.as_ref().map_or(&[][..], |r| r.bytes.expose())))
    }

    /// Whether a record of this entry holds the `.enc`'s digest rather than a copy.
    pub(crate) fn large(&self) -> bool {
        (self.repo.as_ref()).is_some_and(|r| r.bytes.len() > RECORD_COPY_LIMIT)
    }

    /// The permissions the server file should have.
    pub(crate) fn server_perms(&self) -> Perms {
        Self::perms_for(self.entry)
    }

    /// The permissions `entry`'s server file should have.
    pub(crate) fn perms_for(entry: &Entry) -> Perms {
        Perms {
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            folders: Folders {
                mode: entry.dir_mode,
                gid: entry.gid,
                guarded: true,
            },
            durable: true,
        }
    }

    /// Whether the server file's mode, owner or group differ from the entry's (names are
    /// looked up only for a drift, so this costs nothing on a file that is right).
    pub(crate) fn server_perms_drift(&self) -> bool {
        !self.perm_drift().is_empty()
    }

    /// How the server file's mode, owner and group differ from the entry's, owners and
    /// groups by name (by number when the system has no name for them).
    pub(crate) fn perm_drift(&self) -> Vec<PermDrift> {
        let Some(server) = &self.server else {
            return Vec::new();
        };
        let entry = self.entry;
        let mut drift = Vec::new();
        if server.mode != entry.mode {
            drift.push(PermDrift {
                field: "mode",
                actual: format!("{:04o}", server.mode),
                expected: format!("{:04o}", entry.mode),
            });
        }
        let user = |uid: u32| {
            uzers::get_user_by_uid(uid).map_or_else(
                || uid.to_string(),
                |u| u.name().to_string_lossy().into_owned(),
            )
        };
        let group = |gid: u32| {
            uzers::get_group_by_gid(gid).map_or_else(
                || gid.to_string(),
                |g| g.name().to_string_lossy().into_owned(),
            )
        };
        if let Some(uid) = entry.uid.filter(|u| *u != server.uid) {
            drift.push(PermDrift {
                field: "owner",
                actual: user(server.uid),
                expected: user(uid),
            });
        }
        if let Some(gid) = entry.gid.filter(|g| *g != server.gid) {
            drift.push(PermDrift {
                field: "group",
                actual: group(server.gid),
                expected: group(gid),
            });
        }
        drift
    }
}
