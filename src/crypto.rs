//! The age layer, and the only module that touches the `age` crate.
//!
//! It loads identities (age and unencrypted SSH keys), parses recipients (age X25519 and SSH
//! public keys, as sops stores them), wraps and unwraps SOPS data keys as armored age files
//! (one file a recipient, as sops does), and encrypts and decrypts whole files in the plain
//! `age` format.

use std::io::{BufReader, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::secret::SecretBytes;

/// Why an age operation failed. Never holds key material.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    #[error("no identity matches any of its recipients")]
    NoMatch,
    #[error("its age data is corrupt or was altered ({0})")]
    Corrupt(String),
    #[error("the recipient `{0}` is not an age (age1…) or SSH (ssh-ed25519/ssh-rsa) public key")]
    BadRecipient(String),
    #[error("{origin}: {reason}")]
    BadIdentity { origin: String, reason: String },
    #[error("age encryption failed: {0}")]
    Encrypt(String),
    #[error("the recipient `{0}` is a post-quantum age recipient (age1pq1…), which this build of envsync cannot encrypt to (the `age` crate it uses has no post-quantum support); use an X25519 (age1…) or SSH public key")]
    PostQuantumRecipient(String),
    #[error("it is encrypted only to post-quantum age recipients (age1pq1…), which this build of envsync cannot decrypt: {}; re-encrypt it to an X25519 (age1…) or SSH recipient too", .0.join(", "))]
    PostQuantumOnly(Vec<String>),
}

/// How a post-quantum age identity line starts (age 1.3, ML-KEM-768 + X25519).
const PQ_IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-PQ-1";
/// How a post-quantum age recipient starts.
const PQ_RECIPIENT_PREFIX: &str = "age1pq1";

/// Said of a source whose post-quantum identities were skipped.
pub(crate) const PQ_UNSUPPORTED: &str =
    "post-quantum age identities (AGE-SECRET-KEY-PQ-1…) are not supported by this build of envsync";

/// Whether `recipient` is a post-quantum age recipient (`age1pq1…`).
pub(crate) fn is_post_quantum_recipient(recipient: &str) -> bool {
    let r = recipient.trim().as_bytes();
    r.len() >= PQ_RECIPIENT_PREFIX.len()
        && r[..PQ_RECIPIENT_PREFIX.len()].eq_ignore_ascii_case(PQ_RECIPIENT_PREFIX.as_bytes())
}

/// A recipient for a message: post-quantum ones are some 1,950 characters long, so only
/// their start is shown.
pub(crate) fn short_recipient(recipient: &str) -> String {
    if is_post_quantum_recipient(recipient) && recipient.len() > 24 {
        format!("{}…", recipient.get(..20).unwrap_or(recipient))
    } else {
        recipient.to_string()
    }
}

/// Whether an identity file line is a post-quantum age identity.
fn is_post_quantum_identity(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    line.len() >= PQ_IDENTITY_PREFIX.len()
        && line[..PQ_IDENTITY_PREFIX.len()].eq_ignore_ascii_case(PQ_IDENTITY_PREFIX.as_bytes())
}

/// What one identity source added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Added {
    /// Usable identities (X25519, plugin-free age keys, SSH keys).
    pub(crate) keys: usize,
    /// Post-quantum age identity lines skipped (not supported by the `age` crate used).
    pub(crate) post_quantum: usize,
}

/// Where an identity came from, for messages ("--identity /root/key.txt", "SOPS_AGE_KEY").
#[derive(Clone, Debug)]
pub(crate) struct IdentitySource {
    pub(crate) origin: String,
    pub(crate) contents: SecretBytes,
}

/// The identities loaded for a run: parsed once, tried against every wrapped key.
pub(crate) struct Identities {
    keys: Vec<Box<dyn age::Identity + Send + Sync>>,
    origins: Vec<String>,
    /// The `age1…` recipients of the X25519 keys, to tell without decrypting whether a
    /// file names one of them.
    recipients: Vec<String>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identities({} keys from {:?})",
            self.keys.len(),
            self.origins
        )
    }
}

impl Identities {
    /// Parses every source; a source that does not parse is an error naming it.
    pub(crate) fn parse(sources: &[IdentitySource]) -> Result<Self, CryptoError> {
        let mut identities = Self {
            keys: Vec::new(),
            origins: Vec::new(),
            recipients: Vec::new(),
        };
        for source in sources {
            identities.add(source)?;
        }
        Ok(identities)
    }

    /// Parses one source (an age identity file, or an unencrypted OpenSSH/PEM private key)
    /// and adds its keys. Post-quantum age identities (`AGE-SECRET-KEY-PQ-1…`) are skipped
    /// and counted, as sops without post-quantum support would: the other keys still work, and
    /// a source holding only post-quantum identities adds none (`keys == 0`), not an error.
    pub(crate) fn add(&mut self, source: &IdentitySource) -> Result<Added, CryptoError> {
        let bad = |reason: &str| CryptoError::BadIdentity {
            origin: source.origin.clone(),
            reason: reason.to_string(),
        };
        let data = source.contents.expose();
        if data.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
            || data.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
        {
            let identity = age::ssh::Identity::from_buffer(data, Some(source.origin.clone()))
                .map_err(|_| bad("it is not a readable SSH private key"))?;
            match identity {
                age::ssh::Identity::Unencrypted(_) => {}
                age::ssh::Identity::Encrypted(_) => {
                    return Err(bad(
                        "passphrase-protected SSH keys are not supported; use an unencrypted key or an age identity",
                    ))
                }
                age::ssh::Identity::Unsupported(_) => {
                    return Err(bad("this SSH key type is not supported (ed25519 and rsa are)"))
                }
            }
            self.keys
                .push(Box::new(identity.with_callbacks(age::NoCallbacks)));
            self.origins.push(source.origin.clone());
            return Ok(Added {
                keys: 1,
                post_quantum: 0,
            });
        }
        // Normalise CRLF, which age's parser rejects but sops accepts, and set post-quantum
        // identities aside (the `age` crate refuses the whole file for one of them).
        let mut post_quantum = 0;
        let text = Zeroizing::new(
            data.split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| {
                    let pq = is_post_quantum_identity(l);
                    post_quantum += usize::from(pq);
                    !pq
                })
                .collect::<Vec<_>>()
                .join(&b'\n'),
        );
        if post_quantum > 0 && !text.split(|&b| b == b'\n').any(is_key_line) {
            self.origins.push(format!(
                "{} (holds only post-quantum age identities, skipped: {PQ_UNSUPPORTED})",
                source.origin
            ));
            return Ok(Added {
                keys: 0,
                post_quantum,
            });
        }
        let file = age::IdentityFile::from_buffer(text.as_slice()).map_err(|_| {
            bad("it is not an age identity file (one age secret key a line, # comments; the line numbers are not shown to keep keys out of logs)")
        })?;
        let parsed = file
            .into_identities()
            .map_err(|_| bad("it holds an identity that cannot be used"))?;
        if parsed.is_empty() {
            return Err(bad("it holds no age secret key"));
        }
        let keys = parsed.len();
        self.keys.extend(parsed);
        self.origins.push(if post_quantum == 0 {
            source.origin.clone()
        } else {
            format!(
                "{} ({post_quantum} post-quantum age identit{} skipped: not supported by this build of envsync)",
                source.origin,
                if post_quantum == 1 { "y" } else { "ies" }
            )
        });
        for line in text.split(|&b| b == b'\n') {
            let key = std::str::from_utf8(line)
                .ok()
                .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
                .and_then(|l| l.parse::<age::x25519::Identity>().ok());
            if let Some(key) = key {
                self.recipients.push(key.to_public().to_string());
            }
        }
        Ok(Added { keys, post_quantum })
    }

    /// Whether `file` (an `.enc`) names one of these identities' X25519 recipients: a cheap
    /// check that the key still belongs to an unchanged file, without decrypting it.
    pub(crate) fn named_in(&self, file: &[u8]) -> bool {
        // memmem, not a window compare a byte: this runs on every in-sync entry.
        (self.recipients.iter()).any(|r| memchr::memmem::find(file, r.as_bytes()).is_some())
    }

    /// The `age1…` public keys of the X25519 identities (`init` writes them to .sops.yaml).
    pub(crate) fn recipients(&self) -> &[String] {
        &self.recipients
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Where the identities came from, for a "no matching identity" message.
    pub(crate) fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Decrypts an age file (armored or binary) with any of the identities.
    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretBytes, CryptoError> {
        let reader = ArmoredReader::new(ciphertext);
        let decryptor =
            age::Decryptor::new_buffered(BufReader::new(reader)).map_err(map_decrypt_error)?;
        let mut stream = decryptor
            .decrypt(self.keys.iter().map(|k| k.as_ref() as &dyn age::Identity))
            .map_err(map_decrypt_error)?;
        let mut plain = SecretBytes::with_capacity(ciphertext.len());
        plain
            .read_to_end(&mut stream)
            .map_err(|e| CryptoError::Corrupt(e.kind().to_string()))?;
        Ok(plain)
    }

    /// Unwraps a SOPS `enc` entry: strictly armored, as sops requires.
    pub(crate) fn unwrap_key(&self, armored: &str) -> Result<SecretBytes, CryptoError> {
        if !armored
            .trim_start()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
        {
            return Err(CryptoError::Corrupt(
                "the wrapped key is not armored".into(),
            ));
        }
        self.decrypt(armored.as_bytes())
    }
}

/// Whether an identity file line holds a key (not blank, not a comment).
fn is_key_line(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    !line.is_empty() && !line.starts_with(b"#")
}

fn map_decrypt_error(e: age::DecryptError) -> CryptoError {
    match e {
        age::DecryptError::NoMatchingKeys => CryptoError::NoMatch,
        age::DecryptError::InvalidMac => CryptoError::Corrupt("header MAC mismatch".into()),
        age::DecryptError::InvalidHeader => CryptoError::Corrupt("invalid header".into()),
        age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
            CryptoError::Corrupt("decryption failed".into())
        }
        age::DecryptError::Io(io) => CryptoError::Corrupt(io.kind().to_string()),
        age::DecryptError::UnknownFormat => CryptoError::Corrupt("unknown age format".into()),
        _ => CryptoError::Corrupt("unsupported age file".into()),
    }
}

/// A parsed recipient with the string it came from (stored verbatim in sops metadata).
pub(crate) struct Recipient {
    pub(crate) text: String,
    key: Box<dyn age::Recipient + Send + Sync>,
}

impl Recipient {
    /// Parses `age1…`, `ssh-ed25519 AAAA… [comment]` or `ssh-rsa AAAA… [comment]`.
    pub(crate) fn parse(text: &str) -> Result<Self, CryptoError> {
        let trimmed = text.trim();
        // A private key pasted where a recipient belongs is not echoed back.
        let bad = || {
            let upper = trimmed.to_ascii_uppercase();
            let private = upper.starts_with("AGE-SECRET-KEY")
                || upper.starts_with("AGE-PLUGIN-")
                || upper.contains("PRIVATE KEY");
            CryptoError::BadRecipient(if private {
                "(a private key: not shown; use its public key)".to_string()
            } else {
                trimmed.to_string()
            })
        };
        if is_post_quantum_recipient(trimmed) {
            return Err(CryptoError::PostQuantumRecipient(short_recipient(trimmed)));
        }
        let key: Box<dyn age::Recipient + Send + Sync> = if trimmed.starts_with("age1") {
            Box::new(
                trimmed
                    .parse::<age::x25519::Recipient>()
                    .map_err(|_| bad())?,
            )
        } else if trimmed.starts_with("ssh-") {
            Box::new(trimmed.parse::<age::ssh::Recipient>().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        Ok(Self {
            text: trimmed.to_string(),
            key,
        })
    }
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.text)
    }
}

/// Encrypts `plaintext` to `recipients` as one armored age file.
pub(crate) fn encrypt_armored(
    plaintext: &[u8],
    recipients: &[&Recipient],
) -> Result<Vec<u8>, CryptoError> {
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|r| r.key.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    let io_err = |e: std::io::Error| CryptoError::Encrypt(e.to_string());
    let mut out = Vec::with_capacity(plaintext.len() * 4 / 3 + 512);
    let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io_err)?;
    let mut writer = encryptor.wrap_output(armor).map_err(io_err)?;
    writer.write_all(plaintext).map_err(io_err)?;
    writer
        .finish()
        .and_then(ArmoredWriter::finish)
        .map_err(io_err)?;
    Ok(out)
}

/// Wraps a SOPS data key (or share) for one recipient: its own armored age file.
pub(crate) fn wrap_key(key: &[u8], recipient: &Recipient) -> Result<String, CryptoError> {
    let armored = encrypt_armored(key, &[recipient])?;
    String::from_utf8(armored).map_err(|_| CryptoError::Encrypt("armor is not text".into()))
}

/// Decrypts a passphrase-protected (scrypt) age file, such as an encrypted identity file.
pub(crate) fn decrypt_with_passphrase(
    ciphertext: &[u8],
    passphrase: SecretString,
) -> Result<SecretBytes, CryptoError> {
    let identity = age::scrypt::Identity::new(passphrase);
    let reader = ArmoredReader::new(ciphertext);
    let decryptor =
        age::Decryptor::new_buffered(BufReader::new(reader)).map_err(map_decrypt_error)?;
    let mut stream = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
                CryptoError::Corrupt("wrong passphrase".into())
            }
            other => map_decrypt_error(other),
        })?;
    let mut plain = SecretBytes::with_capacity(ciphertext.len());
    plain
        .read_to_end(&mut stream)
        .map_err(|e| CryptoError::Corrupt(e.kind().to_string()))?;
    Ok(plain)
}

/// A new X25519 identity: the identity file text (with the created date and public key as
/// comments, as age-keygen writes it) and its recipient.
pub(crate) fn generate_identity() -> (SecretBytes, String) {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let mut text = SecretBytes::with_capacity(200);
    text.extend_from_slice(format!("# created: {created}\n# public key: {recipient}\n").as_bytes());
    text.extend_from_slice(identity.to_string().expose_secret().as_bytes());
    text.push(b'\n');
    (text, recipient)
}

/// Whether bytes look like an age file (armored or binary).
pub(crate) fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
        || bytes.starts_with(b"age-encryption.org/v1\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A post-quantum age identity (age 1.3) stand-in: Bech32 with HRP `age-secret-key-pq-`
    /// over 32 arbitrary bytes (no real one can be made without age 1.3), as
    /// tests/it/pq_identity.rs builds them.
    const PQ_IDENTITY: &str =
        "AGE-SECRET-KEY-PQ-18F0CF2WW7VVR6C584NGLVX6QVK92L48EREPK3RDJ6L7ZZ3NTJZ6STCSQET";

    fn source(text: &str) -> IdentitySource {
        IdentitySource {
            origin: "keys.txt".into(),
            contents: SecretBytes::new(text.as_bytes().to_vec()),
        }
    }

    #[test]
    fn post_quantum_identities_are_skipped_and_the_others_kept() {
        let (x25519, recipient) = generate_identity();
        let x25519 = String::from_utf8(x25519.expose().to_vec()).unwrap();
        // The age crate refuses the whole file for one post-quantum line: why they are skipped.
        let mixed = format!(
            "{PQ_IDENTITY}\r\n{x25519}\n{}\n",
            PQ_IDENTITY.to_lowercase()
        );
        assert!(
            age::IdentityFile::from_buffer(mixed.replace('\r', "").as_bytes())
                .map_or(true, |f| f.into_identities().is_err())
        );

        let mut identities = Identities::parse(&[]).unwrap();
        let added = identities.add(&source(&mixed)).unwrap();
        assert_eq!(
            added,
            Added {
                keys: 1,
                post_quantum: 2
            }
        );
        assert_eq!(identities.recipients(), std::slice::from_ref(&recipient));
        assert!(identities.origins()[0].contains("2 post-quantum age identities skipped"));
        let wrapped = wrap_key(b"k", &Recipient::parse(&recipient).unwrap()).unwrap();
        assert_eq!(identities.unwrap_key(&wrapped).unwrap().expose(), b"k");

        let mut only = Identities::parse(&[]).unwrap();
        let added = only
            .add(&source(&format!("# created: now\n{PQ_IDENTITY}\n")))
            .unwrap();
        assert_eq!(
            added,
            Added {
                keys: 0,
                post_quantum: 1
            }
        );
        assert!(only.is_empty());
        assert!(only.origins()[0].contains(PQ_UNSUPPORTED));
        assert!(!only.origins()[0].contains(&PQ_IDENTITY[20..]));
        // No key at all is still an error, not a post-quantum note.
        assert!(Identities::parse(&[])
            .unwrap()
            .add(&source("# none\n"))
            .is_err());
    }

    #[test]
    fn a_post_quantum_recipient_is_refused_by_type() {
        let long = format!("age1pq1{}", "q".repeat(1900));
        let message = Recipient::parse(&long).unwrap_err().to_string();
        assert!(
            message.contains("post-quantum age recipient (age1pq1…)"),
            "{message}"
        );
        assert!(message.len() < 400, "{message}");
    }

    #[test]
    fn a_pasted_private_key_is_not_echoed() {
        let key = "age-secret-key-1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
        let message = Recipient::parse(key).unwrap_err().to_string();
        assert!(!message.contains("qqqq"), "{message}");
        let message = Recipient::parse("nope").unwrap_err().to_string();
        assert!(message.contains("nope"), "{message}");
    }
}
