//! `envsync keygen [-o FILE]`: a new age identity.
//!
//! With `-o`, the identity is written 0600 through the atomic writer with `RENAME_NOREPLACE`,
//! so an existing key is never overwritten, and the public key (the recipient to put in
//! `.sops.yaml`) is printed on stdout. Without `-o`, the identity goes to stdout and the
//! public key to stderr, as `age-keygen` does.

use std::path::Path;

use crate::crypto;
use crate::error::Error;
use crate::exit::ExitStatus;
use crate::fs::{AtomicWriter, Folders, Perms};
use crate::output::{Printer, Style};

/// Folders created for a key file are private.
const KEY_PERMS: Perms = Perms {
    mode: 0o600,
    uid: None,
    gid: None,
    folders: Folders::PRIVATE,
    durable: true,
};

/// The JSON body of `keygen -o FILE` (docs/json/keygen.schema.json): the public key only.
#[derive(serde::Serialize)]
struct KeygenReport<'a> {
    identity_file: String,
    recipient: &'a str,
}

pub(crate) fn run(
    printer: &Printer,
    output: Option<&Path>,
    cwd: &Path,
) -> Result<ExitStatus, Error> {
    let (identity, recipient) = crypto::generate_identity();
    let Some(output) = output else {
        printer.secret_data(identity.expose());
        printer.info(Style::Plain, &format!("Public key: {recipient}"));
        return Ok(ExitStatus::Success);
    };
    let path = cwd.join(output);
    let (base, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(base), Some(name)) => (base.to_path_buf(), name.to_string()),
        _ => {
            return Err(Error::Fs(crate::fs::FsError::NotAFile { path }));
        }
    };
    AtomicWriter::new().create(&base, &name, identity.expose(), KEY_PERMS)?;
    if printer.json {
        printer.json(&KeygenReport {
            identity_file: path.display().to_string(),
            recipient: &recipient,
        });
    } else {
        printer.data(Style::Plain, &recipient);
    }
    printer.info(
        Style::Plain,
        &format!(
            "wrote {} (mode 0600); add the public key above to .sops.yaml",
            path.display()
        ),
    );
    Ok(ExitStatus::Success)
}
