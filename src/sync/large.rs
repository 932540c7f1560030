//! Entries decrypted as a stream: a large binary `.enc` whose server file does not exist yet
//! (a first deploy, a new server) is decrypted from the repo file chunk by chunk
//! ([`stream`]) instead of being read whole first: an 89 MB `.enc` for a
//! 64 MiB secret never sits in memory beside its plaintext.
//!
//! Such an entry is `server-missing` whatever its plaintext, so nothing but the write needs
//! the rest of [`super::Sides`]; in every other state the plaintext is compared with the
//! server's, and the entry goes through [`super::Sides`] as usual.

mod stream;

use std::fs::File;
use std::io::{Read, Seek};

use super::record::enc_digest;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::format::Format;
use crate::fs::{self, FsError};
use crate::manifest::{Entry, Manifest};
use crate::secret::{DataKey, SecretBytes};
use crate::sops::store::binary;
use crate::sops::SopsError;
use stream::{LargeBinary, StreamError};

/// `.enc` files from this size are streamed (below it, reading them whole is as fast).
pub(crate) const STREAM_FROM: u64 = 8 << 20;

/// A large binary `.enc` opened for streaming, its metadata read.
#[derive(Debug)]
pub(crate) struct LargeEntry<'m> {
    pub(crate) entry: &'m Entry,
    enc: File,
    layout: LargeBinary,
}

impl<'m> LargeEntry<'m> {
    /// The entry as a stream, when it is one: an encrypted binary entry, no server file, and
    /// an `.enc` of at least [`STREAM_FROM`] bytes laid out as sops writes it.
    pub(crate) fn probe(manifest: &Manifest, entry: &'m Entry) -> Result<Option<Self>, Error> {
        if entry.plain || entry.format.is_some_and(|f| f != Format::Binary) {
            return Ok(None);
        }
        // Two stats settle most entries: a small `.enc`, or a server file that exists.
        let large = |stamp: Option<fs::Stamp>| stamp.is_some_and(|s| s.size >= STREAM_FROM);
        if !large(fs::stamp(&manifest.repo_root, &entry.repo)?)
            || fs::stamp(&manifest.server_root, &entry.server)?.is_some()
        {
            return Ok(None);
        }
        let Some((enc, existing)) = fs::open(&manifest.repo_root, &entry.repo)? else {
            return Ok(None);
        };
        if existing.stamp.size < STREAM_FROM {
            return Ok(None);
        }
        let layout = LargeBinary::find(&enc).map_err(|e| stream_error(entry, e))?;
        Ok(layout.map(|layout| Self { entry, enc, layout }))
    }

    /// The file's sops `lastmodified`, for the sync record.
    pub(crate) fn lastmodified(&self) -> &str {
        &self.layout.metadata.lastmodified
    }

    /// The file's data key (a wrong key fails here, before anything is written).
    pub(crate) fn unlock(&self, identities: &Identities) -> Result<DataKey, Error> {
        (self.layout.unlock(identities)).map_err(|e| self.file_error(e.into()))
    }

    /// Decrypts and authenticates the `.enc`: its plaintext, and its digest for the sync
    /// record. A file sops could read but not laid out for streaming is read whole instead.
    pub(crate) fn decrypt(&self, key: &DataKey) -> Result<(SecretBytes, [u8; 32]), Error> {
        match self.layout.decrypt(&self.enc, key) {
            Err(StreamError::Layout) => self.decrypt_whole(key),
            other => other.map_err(|e| stream_error(self.entry, e)),
        }
    }

    fn decrypt_whole(&self, key: &DataKey) -> Result<(SecretBytes, [u8; 32]), Error> {
        let mut bytes = Vec::new();
        let read = (&self.enc)
            .rewind()
            .and_then(|()| (&self.enc).read_to_end(&mut bytes));
        read.map_err(|e| stream_error(self.entry, StreamError::Read(e)))?;
        let plain = binary::decrypt_with_key(&bytes, key).map_err(|e| self.file_error(e.into()))?;
        Ok((plain, enc_digest(&bytes)))
    }

    fn file_error(&self, source: FileError) -> Error {
        Error::File {
            path: self.entry.repo_path.clone(),
            source,
        }
    }
}

fn stream_error(entry: &Entry, e: StreamError) -> Error {
    match e {
        StreamError::Sops(e) => Error::File {
            path: entry.repo_path.clone(),
            source: e.into(),
        },
        StreamError::Read(e) => FsError::io(&entry.repo_path, "read", e).into(),
        StreamError::Layout => Error::File {
            path: entry.repo_path.clone(),
            source: SopsError::NotSops("its data string is not base64".into()).into(),
        },
    }
}
