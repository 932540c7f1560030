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
    /// and adds its keys.
    pub(crate) fn add(&mut self, source: &IdentitySource) -> Result<(), CryptoError> {
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
            return Ok(());
        }
        // Normalise CRLF, which age's parser rejects but sops accepts.
        let text = Zeroizing::new(
            data.split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .collect::<Vec<_>>()
                .join(&b'\n'),
        );
        let file = age::IdentityFile::from_buffer(text.as_slice()).map_err(|_| {
            bad("it is not an age identity file (one age secret key a line, # comments; the line numbers are not shown to keep keys out of logs)")
        })?;
        let parsed = file
            .into_identities()
            .map_err(|_| bad("it holds an identity that cannot be used"))?;
        if parsed.is_empty() {
            return Err(bad("it holds no age secret key"));
        }
        self.keys.extend(parsed);
        self.origins.push(source.origin.clone());
        for line in text.split(|&b| b == b'\n') {
            let key = std::str::from_utf8(line)
                .ok()
                .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
                .and_then(|l| l.parse::<age::x25519::Identity>().ok());
            if let Some(key) = key {
                self.recipients.push(key.to_public().to_string());
            }
        }
        Ok(())
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

    #[test]
    fn a_pasted_private_key_is_not_echoed() {
        let key = "age-secret-key-1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";
        let message = Recipient::parse(key).unwrap_err().to_string();
        assert!(!message.contains("qqqq"), "{message}");
        let message = Recipient::parse("nope").unwrap_err().to_string();
        assert!(message.contains("nope"), "{message}");
    }
}
