//! `envsync exec FILE.. [--clear-env] -- CMD [ARGS..]`: runs CMD with the keys of dotenv
//! entries in its environment, as `sops exec-env` does, with no plaintext on disk.
//!
//! The repo `.enc` is the source of truth (as for `sops exec-env`): it is decrypted in
//! memory; the server file is not read. Every selected entry is read, decrypted and checked
//! first, and any failure (no key, MAC mismatch, a missing `.enc`, a non-dotenv entry, a key
//! that cannot be a variable name) stops the run with exit 2 before CMD starts: all or
//! nothing. Nothing is written: no temp, no sync record, no lock.
//!
//! CMD's environment is envsync's own (none with `--clear-env`) minus `SOPS_AGE_KEY`, plus
//! each entry's keys, byte-exact; a later FILE wins over an earlier one and over the
//! inherited environment. CMD is exec(2)'d directly (no shell) with the caller's umask: its
//! pid is envsync's, so signals reach it and its exit status is envsync's, and the image
//! that held the decrypted files is replaced. CMD not found: 127; not executable: 126.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;

use rayon::prelude::*;
use zeroize::Zeroize;

use super::{collect, Context};
use crate::cli::Selection;
use crate::crypto::Identities;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::{self, Format};
use crate::fs::FsError;
use crate::manifest::{Entry, Manifest};
use crate::output::sanitize;
use crate::secret::SecretBytes;
use crate::sops::store::dotenv::{self, Item};

/// What `envsync exec` was asked to do.
pub(crate) struct Request<'a> {
    pub(crate) files: &'a [String],
    pub(crate) tags: &'a [String],
    pub(crate) clear_env: bool,
    pub(crate) cmd: &'a [String],
}

/// One entry's variables, in file order.
type Layer = Vec<(String, SecretBytes)>;

pub(crate) fn run(ctx: &Context, request: &Request<'_>) -> Result<ExitStatus, Error> {
    let entries = ordered(ctx, request.files, request.tags)?;
    let manifest = &ctx.settings.manifest;
    let read = collect(entries.iter().map(|e| read_enc(manifest, e)).collect())?;
    let identities = ctx.identities(&entries)?;
    let layers: Vec<Layer> = collect(
        read.par_iter()
            .map(|(entry, enc)| open(entry, enc.expose(), identities.as_ref()))
            .collect(),
    )?;
    drop(read);
    let keys: usize = layers.iter().map(Vec::len).sum();
    let inherited = (!request.clear_env).then(std::env::vars_os);
    let vars = merge(inherited.into_iter().flatten(), &layers);
    drop(layers);
    let n = entries.len();
    let plural = if n == 1 { "entry" } else { "entries" };
    ctx.settings
        .printer
        .verbose(&format!("exec: {keys} keys from {n} {plural}"));
    let (program, args) = request.cmd.split_first().ok_or_else(|| Error::Exec {
        program: String::new(),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)));
    // The command holds its own copy now.
    wipe(vars);
    // exec(2) replaces the image without running destructors or flushing buffers.
    let _ = crate::output::finish_stdout();
    let own = rustix::process::umask(crate::hooks::caller_umask());
    // A signal that came while decrypting: stop here, CMD never starts. (One that comes
    // between this check and the execve is caught and lost: CMD still runs.)
    if let Some(signal) = crate::signals::received() {
        rustix::process::umask(own);
        return Err(Error::Fs(FsError::Interrupted { signal }));
    }
    let source = command.exec();
    rustix::process::umask(own);
    Err(Error::Exec {
        program: sanitize(program),
        source,
    })
}

/// The selected entries in the order they apply: each FILE's matches (manifest order within
/// one FILE), the tag filter applied to each; an entry named twice takes its last place.
/// With no FILE, every entry with one of the tags.
fn ordered<'m>(
    ctx: &'m Context,
    files: &[String],
    tags: &[String],
) -> Result<Vec<&'m Entry>, Error> {
    let select = |files: Vec<String>| {
        ctx.select(&Selection {
            files,
            tags: tags.to_vec(),
        })
    };
    let mut entries: Vec<&Entry> = Vec::new();
    if files.is_empty() {
        entries = select(Vec::new())?;
    }
    for file in files {
        for entry in select(vec![file.clone()])? {
            entries.retain(|e| !std::ptr::eq(*e, entry));
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return Err(Error::NoMatch {
            pattern: format!("{} (with --tag {})", files.join(" "), tags.join(", ")),
            manifest: ctx.settings.manifest.path.display().to_string(),
        });
    }
    Ok(entries)
}

/// Reads an entry's `.enc` and checks that it is a dotenv file; no key is needed yet.
fn read_enc<'m>(manifest: &Manifest, entry: &'m Entry) -> Result<(&'m Entry, SecretBytes), Error> {
    let fail = |source| Error::File {
        path: entry.repo_path.clone(),
        source,
    };
    if entry.plain {
        return Err(fail(FileError::ExecNeedsDotenv("plain (`plain = true`)")));
    }
    let enc = crate::fs::read(&manifest.repo_root, &entry.repo)?.ok_or_else(|| {
        fail(FileError::RepoMissing {
            server: entry.server.clone(),
        })
    })?;
    let format = entry
        .format
        .or_else(|| Format::detect(enc.bytes.expose()))
        .ok_or_else(|| fail(FileError::UnknownFormat))?;
    if format != Format::Dotenv {
        return Err(fail(FileError::ExecNeedsDotenv(format.name())));
    }
    Ok((entry, enc.bytes))
}

/// Decrypts and authenticates an entry's `.enc`, and checks every key and value.
fn open(entry: &Entry, enc: &[u8], identities: Option<&Identities>) -> Result<Layer, Error> {
    let fail = |source| Error::File {
        path: entry.repo_path.clone(),
        source,
    };
    let identities = identities
        .ok_or_else(|| fail(FileError::Keys("no identity is set up to open it".into())))?;
    let opened = format::decrypt(Format::Dotenv, enc, identities).map_err(|e| fail(e.into()))?;
    let items = dotenv::parse(opened.plaintext.expose()).map_err(|e| fail(e.into()))?;
    let mut layer = Vec::with_capacity(items.len());
    for item in items {
        if let Item::Pair { key, value } = item {
            if let Err(reason) = check_variable(&key, value.expose()) {
                return Err(fail(FileError::EnvName {
                    key: sanitize(&key.replace('\0', "\\0")),
                    reason,
                }));
            }
            layer.push((key, value));
        }
    }
    Ok(layer)
}

/// Whether `key=value` can be put in an environment; the reason when not (never the value).
fn check_variable(key: &str, value: &[u8]) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("the name is empty")
    } else if key.contains('=') {
        Err("the name contains `=`")
    } else if key.contains('\0') {
        Err("the name contains a NUL byte")
    } else if value.contains(&0) {
        Err("its value contains a NUL byte, which an environment cannot hold")
    } else {
        Ok(())
    }
}

/// CMD's environment: `inherited` minus the variables that hold key material, then each
/// layer in order, a later one replacing an earlier value in place. Order is kept.
fn merge(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    layers: &[Layer],
) -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = inherited
        .into_iter()
        .filter(|(k, _)| {
            !crate::hooks::SECRET_VARIABLES
                .iter()
                .any(|s| OsStr::new(s) == k.as_os_str())
        })
        .collect();
    let mut index: HashMap<OsString, usize> = (vars.iter().enumerate())
        .map(|(i, (k, _))| (k.clone(), i))
        .collect();
    for (key, value) in layers.iter().flatten() {
        let value = OsString::from_vec(value.expose().to_vec());
        let key = OsString::from(key);
        match index.get(&key) {
            Some(&i) => {
                let old = std::mem::replace(&mut vars[i].1, value);
                wipe_one(old);
            }
            None => {
                index.insert(key.clone(), vars.len());
                vars.push((key, value));
            }
        }
    }
    vars
}

fn wipe_one(value: OsString) {
    value.into_vec().zeroize();
}

/// Zeroes the values of an environment that was not used (exec failed).
fn wipe(vars: Vec<(OsString, OsString)>) {
    for (_, value) in vars {
        wipe_one(value);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn os(bytes: &[u8]) -> OsString {
        OsStr::from_bytes(bytes).to_os_string()
    }

    #[test]
    fn variable_names_and_values_are_checked() {
        let table: [(&str, &[u8], Option<&str>); 7] = [
            ("DB_PASSWORD", b"p=a\"ss\n$(x)", None),
            ("lower.dotted-name", b"", None),
            ("", b"v", Some("the name is empty")),
            ("A=B", b"v", Some("the name contains `=`")),
            ("A\0B", b"v", Some("the name contains a NUL byte")),
            (
                "A",
                b"x\0y",
                Some("its value contains a NUL byte, which an environment cannot hold"),
            ),
            ("ÜNICODE", "é\u{1F512}".as_bytes(), None),
        ];
        for (key, value, want) in table {
            assert_eq!(check_variable(key, value).err(), want, "{key:?}");
        }
    }

    #[test]
    fn later_layers_win_and_key_variables_are_dropped() {
        let layer = |pairs: &[(&str, &[u8])]| -> Layer {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
                .collect()
        };
        let inherited = vec![
            (os(b"PATH"), os(b"/bin")),
            // Not a key (any value): the variable is dropped by its name.
            (os(b"SOPS_AGE_KEY"), os(b"not-a-real-age-key")),
            (os(b"SOPS_AGE_KEY_FILE"), os(b"/k.txt")),
            (os(b"A"), os(b"inherited")),
        ];
        let layers = [
            layer(&[("A", b"first"), ("B", b"first")]),
            layer(&[("B", b"second\xff"), ("C", b"x=y\nz")]),
        ];
        let got = merge(inherited, &layers);
        let want = vec![
            (os(b"PATH"), os(b"/bin")),
            (os(b"SOPS_AGE_KEY_FILE"), os(b"/k.txt")),
            (os(b"A"), os(b"first")),
            (os(b"B"), os(b"second\xff")),
            (os(b"C"), os(b"x=y\nz")),
        ];
        assert_eq!(got, want);
        // --clear-env: the entries' keys only.
        let got = merge(Vec::new(), &layers[..1]);
        assert_eq!(
            got,
            vec![(os(b"A"), os(b"first")), (os(b"B"), os(b"first"))]
        );
    }
}
