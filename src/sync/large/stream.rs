//! The binary store, streamed (the large-file path's I/O, built on the SOPS primitives): a large `.enc` decrypted from its file chunk by chunk, on two
//! threads, into one plaintext buffer. The `.enc` is never held in memory whole (an 89 MB file
//! for a 64 MiB secret), and decoding, deciphering and the MAC overlap.
//!
//! sops writes `{"data": "ENC[AES256_GCM,data:<base64>,iv:…,tag:…,type:str]", "sops": {…}}`:
//! the ciphertext first, then its IV, its tag and the metadata. [`LargeBinary::find`] reads
//! the head and the tail of the file, finds where the base64 runs, and parses everything else
//! as [`binary`] (the in-memory store) would. [`LargeBinary::decrypt`] then streams the base64:
//!
//! ```text
//! worker: read ─ digest of the file ─ base64 into the buffer ─ GHASH ─ CTR ─┐ plaintext chunks
//! caller:                                              MAC (SHA-512) ◀──────┘
//! ```
//!
//! SHA-512 over the plaintext (`sha2`'s) is the longest job that cannot be split: 150 to
//! 220 ms of CPU for 64 MiB on this project's 2-core machine. So the calling thread does
//! nothing else; everything that can run beside it is on the worker, including the first
//! touch of the buffer's fresh pages. In a perf profile (load ~4) the worker's share came to
//! about as much: SHA-256 of the 89 MB file ~68 ms, base64 ~66 ms, GHASH ~48 ms, AES-CTR
//! ~16 ms, plus the reads. As everywhere else, the plaintext is handed out only after the
//! GCM tag and the MAC have been checked, and nothing reaches the disk before.
//!
//! When every byte of the range is base64 the file is the JSON document the in-memory store
//! parses, so both read the same values. A JSON escape (`\/`, which sops never writes but a
//! JSON tool might) stops the stream with [`StreamError::Layout`], and the caller reads the
//! file whole instead; any other byte that is not base64 makes the file invalid for sops too.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, SyncSender};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::crypto::Identities;
use crate::secret::{DataKey, SecretBytes};
use crate::sops::cipher::{CipherError, EncValue};
use crate::sops::gcm::GcmDecryptor;
use crate::sops::mac::{self, MacHasher};
use crate::sops::metadata::Metadata;
use crate::sops::store::binary;
use crate::sops::{unlock_data_key, SopsError};
use crate::sync::record::EncDigest;

/// Where the ciphertext starts: what sops writes before it (whitespace may vary).
const DATA_OPENING: &[u8] = b"\"ENC[AES256_GCM,data:";
/// How much of the file's end is read to find the ciphertext's end and the metadata.
const TAIL_WINDOW: u64 = 256 << 10;
/// Base64 characters a chunk: a multiple of 64, so that every chunk but the last decodes to
/// whole 16-byte GCM blocks.
const CHUNK_CHARS: usize = 1 << 20;
/// The plaintext bytes of a full chunk.
const CHUNK_BYTES: usize = CHUNK_CHARS / 4 * 3;

/// A binary-store file laid out as sops writes it, with everything but the ciphertext parsed.
#[derive(Debug)]
pub(crate) struct LargeBinary {
    /// Byte offsets of the base64 ciphertext in the file.
    start: u64,
    end: u64,
    /// The bytes before and after the ciphertext, as parsed (and digested).
    head: Vec<u8>,
    rest: Vec<u8>,
    iv: Vec<u8>,
    tag: [u8; 16],
    pub(crate) metadata: Metadata,
}

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// The file is not laid out as sops writes it: read it whole instead.
    #[error("the data string is not plain base64")]
    Layout,
    #[error(transparent)]
    Sops(#[from] SopsError),
    #[error("cannot read it: {0}")]
    Read(io::Error),
}

impl LargeBinary {
    /// Reads the head and the tail of a binary-store file. `None` when the layout is not the
    /// plain one sops writes (the caller reads the file whole); `Err` when the metadata is bad.
    pub(crate) fn find(file: &File) -> Result<Option<Self>, StreamError> {
        let size = file.metadata().map_err(StreamError::Read)?.len();
        let head = read_at(file, 0, size.min(256))?;
        let Some(start) = data_start(&head) else {
            return Ok(None);
        };
        let window_at = size.saturating_sub(TAIL_WINDOW).max(start as u64);
        let tail = read_at(file, window_at, size - window_at)?;
        // The base64 ends at the first byte in the window that cannot be base64, which must
        // be the `,iv:` sops writes next (a JSON escape there sends the file down the
        // in-memory path). The stream checks that everything before the window is base64.
        let Some(cut) = tail.iter().position(|&b| !is_base64(b)) else {
            return Ok(None);
        };
        let end = window_at + cut as u64;
        if end <= start as u64 || !tail[cut..].starts_with(b",iv:") {
            return Ok(None);
        }
        // The document with a stand-in for the ciphertext: its metadata, IV and tag.
        let mut stand_in = head[..start].to_vec();
        stand_in.extend_from_slice(b"AAAA");
        stand_in.extend_from_slice(&tail[cut..]);
        let Ok((data, sops)) = binary::parse_parts(&stand_in) else {
            return Ok(None);
        };
        let Ok(enc) = EncValue::parse(&data) else {
            return Ok(None);
        };
        let metadata = Metadata::from_tree(&sops)?;
        Ok(Some(Self {
            start: start as u64,
            end,
            head: head[..start].to_vec(),
            rest: tail[cut..].to_vec(),
            iv: enc.iv,
            tag: enc.tag,
            metadata,
        }))
    }

    /// The data key, from the first identity that opens it.
    pub(crate) fn unlock(&self, identities: &Identities) -> Result<DataKey, SopsError> {
        unlock_data_key(&self.metadata, identities)
    }

    /// Decrypts and authenticates the file: its plaintext, and the digest ([`enc_digest`])
    /// of the `.enc` bytes that were parsed and decrypted.
    ///
    /// [`enc_digest`]: crate::sync::enc_digest
    pub(crate) fn decrypt(
        &self,
        file: &File,
        key: &DataKey,
    ) -> Result<(SecretBytes, [u8; 32]), StreamError> {
        let chars = usize::try_from(self.end - self.start).map_err(|_| StreamError::Layout)?;
        if chars % 4 != 0 {
            // Not base64 as sops writes it (a JSON escape lengthens it): read it whole.
            return Err(StreamError::Layout);
        }
        let gcm = GcmDecryptor::new(key, &self.iv, binary::AAD).map_err(value_error)?;
        // Zeroed pages are only mapped when first written, by the worker as it decodes.
        let mut plain = SecretBytes::new(vec![0u8; chars / 4 * 3]);
        let mut hasher = MacHasher::new(self.metadata.mac_only_encrypted);
        let (ready, done) = sync_channel::<&mut [u8]>(4);
        let chunks = plain.expose_mut().chunks_mut(CHUNK_BYTES);
        let deciphered = std::thread::scope(|scope| {
            let worker = scope.spawn(move || self.decode(file, gcm, chunks, ready));
            for chunk in done {
                hasher.add(chunk, true);
            }
            worker
                .join()
                .unwrap_or_else(|_| Err(StreamError::Read(io::Error::other("worker panicked"))))
        });
        let (len, digest, gcm) = deciphered?;
        gcm.finish(&self.tag).map_err(value_error)?;
        mac::verify(
            &self.metadata.mac,
            &self.metadata.lastmodified,
            key,
            &hasher.finish(),
        )?;
        plain.truncate(len);
        Ok((plain, digest))
    }

    /// The worker thread: digests the file, decodes each chunk into its place in the
    /// buffer, hashes it for the tag, deciphers it, and hands it on to the MAC. Returns the
    /// plaintext length.
    fn decode<'b>(
        &self,
        file: &File,
        mut gcm: GcmDecryptor,
        chunks: impl Iterator<Item = &'b mut [u8]>,
        ready: SyncSender<&'b mut [u8]>,
    ) -> Result<(usize, [u8; 32], GcmDecryptor), StreamError> {
        let mut digest = EncDigest::default();
        digest.update(&self.head);
        let mut raw = vec![0u8; CHUNK_CHARS];
        let (mut at, mut len) = (self.start, 0);
        for chunk in chunks {
            let chars = (self.end - at).min(CHUNK_CHARS as u64) as usize;
            let raw = &mut raw[..chars];
            file.read_exact_at(raw, at).map_err(StreamError::Read)?;
            digest.update(raw);
            at += chars as u64;
            if raw.contains(&b'\\') {
                return Err(StreamError::Layout);
            }
            // The same strict decoder as the in-memory store. Padding may only end the last
            // chunk: every other one must decode to full length.
            let decoded = B64
                .decode_slice(&*raw, chunk)
                .ok()
                .filter(|&n| at == self.end || n == CHUNK_BYTES);
            let n = decoded.ok_or_else(|| value_error(CipherError::Syntax))?;
            let chunk = &mut chunk[..n];
            gcm.decrypt(chunk);
            len += n;
            // The MAC side never stops first: a failed send cannot happen.
            let _ = ready.send(chunk);
        }
        digest.update(&self.rest);
        Ok((len, digest.finish(), gcm))
    }
}

/// Offset just after `"data": "ENC[AES256_GCM,data:` at the start of `head`.
fn data_start(head: &[u8]) -> Option<usize> {
    let skip = |at: usize| {
        at + head[at..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count()
    };
    let mut at = skip(0);
    for token in [&b"{"[..], b"\"data\"", b":"] {
        at = skip(at + head.get(at..)?.starts_with(token).then_some(token.len())?);
    }
    head.get(at..)?
        .starts_with(DATA_OPENING)
        .then_some(at + DATA_OPENING.len())
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

fn read_at(file: &File, at: u64, len: u64) -> Result<Vec<u8>, StreamError> {
    let mut buf = vec![0u8; usize::try_from(len).map_err(|_| StreamError::Layout)?];
    file.read_exact_at(&mut buf, at)
        .map_err(StreamError::Read)?;
    Ok(buf)
}

fn value_error(source: CipherError) -> StreamError {
    StreamError::Sops(SopsError::Value {
        key: "data".into(),
        source,
    })
}
