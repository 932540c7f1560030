//! `envsync show FILE [--reveal]`: prints an `.enc` with every value masked as a keyed
//! fingerprint (its length and a short HMAC, see [`crate::fingerprint`]), or in clear with
//! `--reveal`. It is also git's textconv for `.enc` files: `git diff` of a rotated `.enc`
//! then shows which keys changed instead of ciphertext noise.
//!
//! FILE is an entry's repo or server path (its `.enc` is shown), or any `.enc` path (git
//! hands textconv a temp copy). Without a matching identity the keys are still shown, each
//! value as `<no key>`, so `git diff` keeps working for teammates without the key. Without a
//! manifest (a clone that has none, textconv run elsewhere) FILE is taken as an `.enc` path.

use std::path::{Path, PathBuf};

use super::Context;
use crate::cli::Selection;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::fingerprint::Fingerprinter;
use crate::format::{self, Format, Opened};
use crate::keys::{self, IdentityConfig, KeyError};
use crate::output::sanitize;
use crate::output::Printer;
use crate::sops::keypath::{leaves, LeafValue};
use crate::sops::store::dotenv::{self, Item};
use crate::sops::store::Codec;
use crate::sops::tree::Scalar;
use crate::sops::walk::scalar_bytes;
use crate::sops::SopsError;
use crate::sync::files::keys_in;

/// Shown for a value when no identity here opens the file.
const NO_KEY: &str = "<no key>";

pub(crate) fn run(ctx: &Context, file: &str, reveal: bool) -> Result<ExitStatus, Error> {
    let (path, format, plain) = locate(ctx, file)?;
    let printer = &ctx.settings.printer;
    show(
        printer,
        &ctx.settings.identities,
        &path,
        format,
        plain,
        reveal,
    )
}

/// `show` where no manifest is found (a clone without `secrets.toml`, git's textconv run
/// outside the repo): FILE is any `.enc`, and identities come from the usual places but
/// the manifest.
pub(crate) fn run_without_manifest(
    printer: &Printer,
    identities: &IdentityConfig,
    path: &Path,
    reveal: bool,
) -> Result<ExitStatus, Error> {
    show(printer, identities, path, None, false, reveal)
}

fn show(
    printer: &Printer,
    identities: &IdentityConfig,
    path: &Path,
    format: Option<Format>,
    plain: bool,
    reveal: bool,
) -> Result<ExitStatus, Error> {
    let path = path.to_path_buf();
    let bytes =
        std::fs::read(&path).map_err(|e| Error::Fs(crate::fs::FsError::io(&path, "read", e)))?;
    if plain {
        // A `plain = true` entry is configuration, kept in clear in the repo already.
        printer.secret_data(&bytes);
        return Ok(ExitStatus::Success);
    }
    let format = match format.or_else(|| Format::detect(&bytes)) {
        Some(format) => format,
        None => {
            return Err(Error::File {
                path,
                source: FileError::UnknownFormat,
            })
        }
    };
    let opened = open(identities, format, &bytes).map_err(|source| Error::File {
        path: path.clone(),
        source,
    })?;
    if reveal {
        let Some(opened) = opened else {
            return Err(Error::File {
                path,
                source: FileError::RevealNeedsKey,
            });
        };
        printer.secret_data(opened.plaintext.expose());
        return Ok(ExitStatus::Success);
    }
    let lines = masked(format, &bytes, opened.as_ref()).map_err(|source| Error::File {
        path,
        source: source.into(),
    })?;
    printer.secret_data(lines.as_bytes());
    Ok(ExitStatus::Success)
}

/// The `.enc` that FILE names, the format its entry gives, and whether the entry is plain.
fn locate(ctx: &Context, file: &str) -> Result<(PathBuf, Option<Format>, bool), Error> {
    let selection = Selection {
        files: vec![file.to_string()],
        tags: Vec::new(),
    };
    match ctx.select(&selection) {
        Ok(entries) if entries.len() == 1 => {
            let entry = entries[0];
            Ok((entry.repo_path.clone(), entry.format, entry.plain))
        }
        Ok(_) | Err(Error::NoMatch { .. } | Error::BadGlob { .. }) => {
            let path = ctx.cwd.join(file);
            if path.is_file() {
                Ok((path, None, false))
            } else {
                Err(Error::NoMatch {
                    pattern: file.to_string(),
                    manifest: ctx.settings.manifest.path.display().to_string(),
                })
            }
        }
        Err(e) => Err(e),
    }
}

/// The masked view of a YAML, JSON or INI file: one line a value, named by its key path.
fn masked_tree(
    codec: Codec,
    enc: &[u8],
    opened: Option<&Opened>,
    fingerprints: Option<&Fingerprinter>,
) -> Result<String, SopsError> {
    let mut out = String::new();
    if let Some(opened) = opened {
        let tree = codec.parse(opened.plaintext.expose())?;
        for (path, leaf) in leaves(&tree) {
            let shown = match leaf_bytes(&leaf) {
                Some(bytes) => match fingerprints {
                    Some(f) => f.masked(&path, bytes.expose()),
                    None => format!("<len {}>", bytes.len()),
                },
                None => leaf_marker(&leaf).to_string(),
            };
            out.push_str(&format!("{} = {shown}\n", sanitize(&path)));
        }
    } else {
        // The key paths are in clear in the file; the values are not.
        let tree = codec.parse_data(enc)?;
        for (path, leaf) in leaves(&tree) {
            let shown = match leaf {
                LeafValue::Scalar(Scalar::Null) | LeafValue::EmptyMap | LeafValue::EmptyList => {
                    leaf_marker(&leaf)
                }
                LeafValue::Scalar(_) => NO_KEY,
            };
            out.push_str(&format!("{} = {shown}\n", sanitize(&path)));
        }
    }
    Ok(out)
}

/// A leaf's canonical bytes (what is fingerprinted); `None` for null and empty containers.
fn leaf_bytes(leaf: &LeafValue<'_>) -> Option<crate::secret::SecretBytes> {
    match leaf {
        LeafValue::Scalar(s) => scalar_bytes(s).map(|(b, _)| b),
        LeafValue::EmptyMap | LeafValue::EmptyList => None,
    }
}

/// How a leaf without a value to mask is shown.
fn leaf_marker(leaf: &LeafValue<'_>) -> &'static str {
    match leaf {
        LeafValue::EmptyMap => "{}",
        LeafValue::EmptyList => "[]",
        LeafValue::Scalar(_) => "null",
    }
}

/// Opens the file when an identity here can; `None` when none can (or none is set up).
fn open(
    identities: &IdentityConfig,
    format: Format,
    bytes: &[u8],
) -> Result<Option<Opened>, FileError> {
    let identities = match keys::load_identities(identities) {
        Ok(ids) => ids,
        Err(KeyError::NoIdentity { .. }) => return Ok(None),
        Err(e) => return Err(FileError::Keys(e.to_string())),
    };
    match format::decrypt(format, bytes, &identities) {
        Ok(opened) => Ok(Some(opened)),
        Err(SopsError::NoMatchingIdentity { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The masked view: one line a dotenv key (and comment), one line for a whole file.
fn masked(format: Format, enc: &[u8], opened: Option<&Opened>) -> Result<String, SopsError> {
    let fingerprints = opened
        .and_then(|o| o.sops.as_ref())
        .map(|unlocked| Fingerprinter::new(&unlocked.data_key));
    if let Some(codec) = format.codec() {
        return masked_tree(codec, enc, opened, fingerprints.as_ref());
    }
    let mut out = String::new();
    match (format, opened) {
        (Format::Dotenv, Some(opened)) => {
            for item in dotenv::parse(opened.plaintext.expose())? {
                let line = match (&item, &fingerprints) {
                    (Item::Comment(text), Some(f)) => format!("# {}", f.masked("#", text.expose())),
                    (Item::Pair { key, value }, Some(f)) => {
                        format!("{key}={}", f.masked(key, value.expose()))
                    }
                    (Item::Comment(text), None) => format!("# <len {}>", text.len()),
                    (Item::Pair { key, value }, None) => format!("{key}=<len {}>", value.len()),
                };
                out.push_str(&line);
                out.push('\n');
            }
        }
        (Format::Dotenv, None) => {
            for key in keys_in(enc) {
                out.push_str(&format!("{key}={NO_KEY}\n"));
            }
        }
        (_, Some(opened)) => {
            let whole = opened.plaintext.expose();
            let shown = match &fingerprints {
                Some(f) => f.masked("", whole),
                // A plain age file has no data key to derive a fingerprint key from.
                None => format!("<len {}>", whole.len()),
            };
            out.push_str(&format!("<{} file> {shown}\n", format.name()));
        }
        (_, None) => out.push_str(&format!("<{} file> {NO_KEY}\n", format.name())),
    }
    Ok(out)
}
