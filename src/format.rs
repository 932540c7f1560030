//! The formats an `.enc` file can have, how each is recognised, and the one place that
//! dispatches decryption and encryption to the right store.

use serde::Deserialize;

use crate::crypto::{self, Identities};
use crate::secret::SecretBytes;
use crate::sops::{self, Decrypted, EncryptOptions, KeyPlan, SopsError, Unlocked};

/// The on-disk format of an encrypted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// SOPS dotenv: key names in clear, values encrypted.
    Dotenv,
    /// SOPS binary: the whole file as one value in a JSON wrapper.
    Binary,
    /// Plain ASCII-armored age.
    Age,
    /// SOPS YAML.
    Yaml,
    /// SOPS JSON.
    Json,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Binary => "binary",
            Self::Age => "age",
            Self::Yaml => "yaml",
            Self::Json => "json",
        }
    }

    /// Recognises an existing `.enc` from its content, so a repo made by `make encrypt`
    /// keeps its formats whatever the file names say.
    pub(crate) fn detect(bytes: &[u8]) -> Option<Self> {
        if crypto::is_age_file(bytes) {
            return Some(Self::Age);
        }
        if sops::binary::looks_encrypted(bytes) {
            return Some(Self::Binary);
        }
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"{") && memchr::memmem::rfind(bytes, b"\"sops\"").is_some() {
            return Some(Self::Json);
        }
        if sops::dotenv::looks_encrypted(bytes) {
            return Some(Self::Dotenv);
        }
        if bytes.split(|&b| b == b'\n').any(|l| l == b"sops:") {
            return Some(Self::Yaml);
        }
        None
    }

    /// The format of a new file, from its server name: `.env` and `.env.*` are dotenv,
    /// `.yaml`/`.yml`/`.json` those, anything else binary.
    pub(crate) fn for_server_name(name: &str) -> Self {
        if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") {
            Self::Dotenv
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            Self::Yaml
        } else if name.ends_with(".json") {
            Self::Json
        } else {
            Self::Binary
        }
    }

    /// Whether this build reads and writes the format.
    pub(crate) fn supported(self) -> bool {
        matches!(self, Self::Dotenv | Self::Binary | Self::Age)
    }
}

/// An opened `.enc`: its plaintext, and the SOPS state needed to rewrite it minimally.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) plaintext: SecretBytes,
    pub(crate) sops: Option<Unlocked>,
}

/// Decrypts `bytes` in `format`; everything is authenticated before this returns.
pub(crate) fn decrypt(
    format: Format,
    bytes: &[u8],
    identities: &Identities,
) -> Result<Opened, SopsError> {
    let sops_file = |d: Decrypted| Opened {
        plaintext: d.plaintext,
        sops: Some(d.keys),
    };
    match format {
        Format::Dotenv => sops::dotenv::decrypt(bytes, identities).map(sops_file),
        Format::Binary => sops::binary::decrypt(bytes, identities).map(sops_file),
        Format::Age => Ok(Opened {
            plaintext: identities.decrypt(bytes)?,
            sops: None,
        }),
        Format::Yaml | Format::Json => Err(unsupported(format)),
    }
}

/// Encrypts `plain` in `format`. `previous` is the file being replaced, when it decrypted.
pub(crate) fn encrypt(
    format: Format,
    plain: &[u8],
    options: &EncryptOptions,
    previous: Option<(&Opened, &[u8])>,
) -> Result<Vec<u8>, SopsError> {
    match format {
        Format::Dotenv => {
            let previous = previous.and_then(|(o, bytes)| o.sops.as_ref().map(|d| (d, bytes)));
            sops::dotenv::encrypt(plain, options, previous)
        }
        Format::Binary => sops::binary::encrypt(plain, options),
        Format::Age => {
            let recipients: Vec<&crypto::Recipient> =
                options.keys.groups.iter().flatten().collect();
            Ok(crypto::encrypt_armored(plain, &recipients)?)
        }
        Format::Yaml | Format::Json => Err(unsupported(format)),
    }
}

/// Re-wraps an opened file's data key for `plan`'s recipients, keeping every value, the MAC
/// and `lastmodified` (an age file, which has no separate data key, is re-encrypted).
pub(crate) fn rekey(
    format: Format,
    bytes: &[u8],
    opened: &Opened,
    plan: &KeyPlan,
) -> Result<Vec<u8>, SopsError> {
    let sops_file = || {
        opened
            .sops
            .as_ref()
            .ok_or_else(|| SopsError::NotSops("it has no sops metadata".into()))
    };
    match format {
        Format::Dotenv => {
            let d = sops_file()?;
            let meta = sops::rewrap(&d.metadata, &d.data_key, plan)?;
            Ok(sops::dotenv::replace_metadata(bytes, &meta))
        }
        Format::Binary => {
            let d = sops_file()?;
            let meta = sops::rewrap(&d.metadata, &d.data_key, plan)?;
            sops::binary::replace_metadata(bytes, &meta)
        }
        Format::Age => {
            let recipients: Vec<&crypto::Recipient> = plan.groups.iter().flatten().collect();
            Ok(crypto::encrypt_armored(
                opened.plaintext.expose(),
                &recipients,
            )?)
        }
        Format::Yaml | Format::Json => Err(unsupported(format)),
    }
}

fn unsupported(format: Format) -> SopsError {
    SopsError::NotSops(format!(
        "it is a SOPS {} file, which this version of envsync does not read or write yet",
        format.name()
    ))
}
