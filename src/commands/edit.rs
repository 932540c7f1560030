//! `envsync edit FILE [--apply]`: `sops edit`, safely.
//!
//! The entry's `.enc` is decrypted in memory and handed to the editor as a 0600 file in a
//! private 0700 folder on a memory file system ([`scratch`]); the editor is
//! `$SOPS_EDITOR`, `$VISUAL`, `$EDITOR` or `vi`, split into words as a shell would but run
//! without one ([`editor`]). After a clean exit the file is read back (a dotenv that no
//! longer parses is reported by line, never by content) and re-encrypted minimally, as
//! `encrypt` does: same data key, every unchanged value keeps its ciphertext, and nothing is
//! written when nothing changed. Only the repo side changes (the entry then shows as
//! `repo-changed`); `--apply` then decrypts it onto the server as `envsync decrypt FILE`.
//!
//! The scratch folder is removed on every way out: a failed or killed editor, an error, a
//! signal (the editor is sent the same one; exit 130 or 143).

mod editor;
mod scratch;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::output::json::Changes;

use super::{Context, Flags};
use crate::cli::Selection;
use crate::crypto::Recipient;
use crate::error::{Error, FileError};
use crate::exit::ExitStatus;
use crate::format::{self, Format, Opened};
use crate::fs::Op;
use crate::keys::{self, KeyError, Recipients};
use crate::manifest::Entry;
use crate::output::Style;
use crate::secret::SecretBytes;
use crate::sops::store::dotenv;
use crate::sops::{same_keys, EncryptOptions, KeyPlan, SopsError};
use crate::sync::{repo_job, Codec, Sides};
use editor::Ended;
use scratch::Scratch;

pub(crate) fn run(ctx: &Context, file: &str, apply: bool) -> Result<ExitStatus, Error> {
    let entry = one_entry(ctx, file)?;
    let fail = |reason: String| Error::Edit {
        file: entry.repo.clone(),
        reason,
    };
    if entry.plain {
        return Err(fail(format!(
            "it is a plain entry, kept in clear in the repo: edit the file itself ({})",
            entry.repo
        )));
    }
    let identities = keys::load_identities(&ctx.settings.identities)?;
    let manifest = &ctx.settings.manifest;
    let sides = Sides::read(manifest, entry)?;
    let Codec::Encrypted(format) = sides.codec else {
        return Err(fail("it is a plain entry: edit the file itself".into()));
    };
    let Some(repo) = &sides.repo else {
        return Err(Error::File {
            path: entry.repo_path.clone(),
            source: FileError::RepoMissing {
                server: entry.server.clone(),
            },
        });
    };
    let opened = sides
        .open_repo(Some(&identities))?
        .ok_or_else(|| fail("it could not be opened".into()))?;
    // A `key` entry edits the whole file it takes its value from.
    let whole = opened.whole.as_ref().unwrap_or(&opened.plaintext);
    let edited = edit(ctx, entry, format, whole.expose())?;
    let Some(plaintext) = edited else {
        report(ctx, entry, "unchanged", Changes::default());
        return finish(ctx, entry, apply);
    };
    // Re-encrypt as `encrypt` does: the same data key when the recipients are the same, so
    // every unchanged value keeps its exact ciphertext.
    let recipients = Recipients::load(&manifest.repo_root, &manifest.path)?;
    // No recipients configured anywhere: the file keeps its own, as `sops edit` does.
    let options = match (recipients.options_for(entry), own_options(&opened)) {
        (Ok(options), _) | (Err(KeyError::NoRecipients { .. }), Some(options)) => options,
        (Err(e), _) => return Err(e.into()),
    };
    let reusable = reusable(&opened, &options).map(|o| (o, repo.bytes.expose()));
    let contents =
        format::encrypt(format, plaintext.expose(), &options, reusable).map_err(|source| {
            Error::File {
                path: entry.repo_path.clone(),
                source: source.into(),
            }
        })?;
    {
        // The run's lock is released before `--apply`'s decrypt, which takes it again.
        let _lock = ctx.prepare_writes([entry], false)?;
        let ops = [Op::Write(repo_job(manifest, entry, &contents, Some(repo)))];
        let mut batch = ctx.writer.batch();
        batch.apply(&ops)?;
        batch.finish()?;
    }
    let changes = super::content_changes(
        Codec::Encrypted(format),
        Some(whole.expose()),
        plaintext.expose(),
    );
    report(ctx, entry, "update", changes);
    finish(ctx, entry, apply)
}

/// The one entry FILE names (repo path, server path or a glob matching exactly one).
fn one_entry<'c>(ctx: &'c Context, file: &str) -> Result<&'c Entry, Error> {
    let selection = Selection {
        files: vec![file.to_string()],
        tags: Vec::new(),
    };
    let entries = ctx.select(&selection)?;
    match entries.as_slice() {
        [entry] => Ok(entry),
        many => Err(Error::Edit {
            file: file.to_string(),
            reason: format!(
                "it matches {} entries ({}); name one",
                many.len(),
                many.iter()
                    .map(|e| e.repo.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The opened file, when its data key can be kept for `options`' recipients.
fn reusable<'o>(opened: &'o Opened, options: &EncryptOptions) -> Option<&'o Opened> {
    match &opened.sops {
        Some(unlocked) if same_keys(&unlocked.metadata, options) => Some(opened),
        _ => None,
    }
}

/// The options that re-encrypt an opened SOPS file for its own recipients and rule; `None`
/// for a plain age file or a recipient that no longer parses.
fn own_options(opened: &Opened) -> Option<EncryptOptions> {
    let meta = &opened.sops.as_ref()?.metadata;
    let groups = meta
        .key_groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|k| Recipient::parse(&k.recipient).ok())
                .collect()
        })
        .collect::<Option<Vec<Vec<_>>>>()?;
    groups.iter().flatten().next()?;
    Some(EncryptOptions {
        keys: KeyPlan {
            groups,
            threshold: meta.shamir_threshold,
        },
        rule: meta.rule.clone().unwrap_or_default(),
        mac_only_encrypted: meta.mac_only_encrypted,
    })
}

/// Runs the editor on `plain` until it leaves a file that parses; the new plaintext as the
/// `.enc` would hold it, or `None` when it holds what `plain` does.
fn edit(
    ctx: &Context,
    entry: &Entry,
    format: Format,
    plain: &[u8],
) -> Result<Option<SecretBytes>, Error> {
    let fail = |reason: String| Error::Edit {
        file: entry.repo.clone(),
        reason,
    };
    let (line, source) = editor::command_line(|name| std::env::var(name).ok());
    let argv = editor::split(&line).map_err(|why| {
        fail(format!(
            "the editor command ({source}) cannot be split into words: {why}"
        ))
    })?;
    let base = scratch::base().map_err(fail)?;
    let name = Path::new(&entry.server)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("secret");
    let scratch = Scratch::create(&base, name, plain).map_err(|e| {
        fail(format!(
            "could not make a private scratch file in {}: {e}; nothing was written",
            base.display()
        ))
    })?;
    loop {
        match editor::run(&argv, scratch.file()) {
            Ok(Ended::Exited(status)) if status.success() => {}
            Ok(Ended::Exited(status)) => {
                let how = match (status.code(), crate::hooks::status_signal(&status)) {
                    (Some(code), _) => format!("exited with status {code}"),
                    (None, Some(signal)) => format!("was killed by signal {signal}"),
                    (None, None) => "failed".into(),
                };
                return Err(fail(format!("the editor {how}; nothing was written")));
            }
            Ok(Ended::Interrupted(signal)) => {
                return Err(fail(format!(
                    "interrupted by {} while the editor ran; nothing was written",
                    signal.name()
                )))
            }
            Err(e) => {
                return Err(fail(format!(
                    "the editor `{}` could not be started ({e}); set SOPS_EDITOR, VISUAL or EDITOR",
                    argv[0]
                )))
            }
        }
        let bytes = std::fs::read(scratch.file())
            .map(SecretBytes::from)
            .map_err(|e| fail(format!("the edited file cannot be read back: {e}")))?;
        match canonical(format, bytes) {
            Ok(new) if new.expose() == plain => return Ok(None),
            Ok(new) => return Ok(Some(new)),
            Err(e) => {
                let problem = format!("the edited file does not parse as dotenv: {e}");
                if !ask_reopen(ctx, &problem) {
                    return Err(fail(format!("{problem}; nothing was written")));
                }
            }
        }
    }
}

/// The edited plaintext as the `.enc` holds it: dotenv re-emitted as sops prints it (blank
/// lines dropped), anything else as is.
fn canonical(format: Format, bytes: SecretBytes) -> Result<SecretBytes, SopsError> {
    match format {
        Format::Dotenv => Ok(dotenv::emit(&dotenv::parse(bytes.expose())?)),
        _ => match format.codec() {
            Some(codec) => Ok(SecretBytes::new(codec.emit(&codec.parse(bytes.expose())?))),
            None => Ok(bytes),
        },
    }
}

/// Reports `problem` and, when stdin is a terminal, asks whether to reopen the editor.
/// Not a terminal (a script, a test): no.
fn ask_reopen(ctx: &Context, problem: &str) -> bool {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return false;
    }
    ctx.settings.printer.warn(problem);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "reopen the editor? [Y/n] ");
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return false;
    }
    reopen(&answer)
}

/// Whether an answer to "reopen the editor? [Y/n]" is yes (empty: the default, yes).
fn reopen(answer: &str) -> bool {
    matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "" | "y" | "yes"
    )
}

/// The JSON body of `edit` (docs/json/edit.schema.json).
#[derive(serde::Serialize)]
struct EditReport<'a> {
    repo: &'a str,
    server: &'a str,
    /// `update` or `unchanged`.
    action: &'a str,
    /// What the edit changed in the whole file, values masked.
    changes: Changes,
}

fn report(ctx: &Context, entry: &Entry, action: &str, changes: Changes) {
    let printer = &ctx.settings.printer;
    if printer.json {
        printer.json(&EditReport {
            repo: &entry.repo,
            server: &entry.server,
            action,
            changes,
        });
    } else if action == "unchanged" {
        printer.info(Style::Plain, &format!("no change: {}", entry.repo));
    } else {
        printer.info(
            Style::Changed,
            &format!(
                "updated   {} (run `envsync decrypt {}` to apply it on the server)",
                entry.repo, entry.repo
            ),
        );
    }
}

/// With `--apply`: the entry decrypted onto the server as `envsync decrypt FILE` would.
fn finish(ctx: &Context, entry: &Entry, apply: bool) -> Result<ExitStatus, Error> {
    if !apply {
        return Ok(ExitStatus::Success);
    }
    let selection = Selection {
        files: vec![entry.repo.clone()],
        tags: Vec::new(),
    };
    // One document: decrypt's report goes into edit's, as `applied`.
    let edit = crate::output::json::take();
    let status = super::decrypt::run(ctx, &selection, Flags::default());
    if let Some(mut edit) = edit {
        let applied = crate::output::json::take().map(serde_json::Value::Object);
        edit.insert("applied".into(), applied.unwrap_or_default());
        crate::output::json::keep(&edit);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_answer_or_yes_reopens() {
        let table = [
            ("\n", true),
            ("y\n", true),
            ("Y", true),
            (" yes \n", true),
            ("n\n", false),
            ("no", false),
            ("q", false),
        ];
        for (answer, want) in table {
            assert_eq!(reopen(answer), want, "{answer:?}");
        }
    }

    #[test]
    fn dotenv_is_compared_as_sops_prints_it() {
        let canon = |f, b: &[u8]| canonical(f, SecretBytes::from(b)).map(|s| s.expose().to_vec());
        assert_eq!(canon(Format::Dotenv, b"A=1\n\nB=2").unwrap(), b"A=1\nB=2\n");
        assert_eq!(canon(Format::Binary, b"A=1\n\n").unwrap(), b"A=1\n\n");
        assert!(matches!(
            canonical(Format::Dotenv, SecretBytes::from(&b"A=1\nbroken\n"[..])),
            Err(SopsError::Syntax { line: 2, .. })
        ));
    }
}
