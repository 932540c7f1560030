//! The formats an `.enc` file can have, how each is recognised, and the one place that
//! dispatches decryption and encryption to the right store.

use serde::Deserialize;

use crate::crypto::{self, Identities};
use crate::secret::SecretBytes;
use crate::sops::store::{self, Codec, Store};
use crate::sops::{self, EncryptOptions, KeyPlan, SopsError, Unlocked};

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
    /// SOPS INI.
    Ini,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Binary => "binary",
            Self::Age => "age",
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Ini => "ini",
        }
    }

    /// Recognises an existing `.enc` from its content, so a repo made by `make encrypt`
    /// keeps its formats whatever the file names say.
    pub(crate) fn detect(bytes: &[u8]) -> Option<Self> {
        if crypto::is_age_file(bytes) {
            return Some(Self::Age);
        }
        if store::binary::looks_encrypted(bytes) {
            return Some(Self::Binary);
        }
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"{") && memchr::memmem::rfind(bytes, b"\"sops\"").is_some() {
            return Some(Self::Json);
        }
        if store::dotenv::looks_encrypted(bytes) {
            return Some(Self::Dotenv);
        }
        let mut lines = bytes.split(|&b| b == b'\n').map(|l| l.trim_ascii_end());
        lines.find_map(|line| match line {
            b"sops:" => Some(Self::Yaml),
            b"[sops]" => Some(Self::Ini),
            _ => None,
        })
    }

    /// The format of a new file, from its server name: `.env` and `.env.*` are dotenv,
    /// `.yaml`/`.yml`/`.json`/`.ini` those, anything else binary.
    pub(crate) fn for_server_name(name: &str) -> Self {
        if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") {
            Self::Dotenv
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            Self::Yaml
        } else if name.ends_with(".json") {
            Self::Json
        } else if name.ends_with(".ini") {
            Self::Ini
        } else {
            Self::Binary
        }
    }

    /// The SOPS store of a SOPS format that this build reads and writes.
    pub(crate) fn store(self) -> Option<Store> {
        match self {
            Self::Dotenv => Some(Store::Dotenv),
            Self::Binary => Some(Store::Binary),
            Self::Yaml => Some(Store::Tree(Codec::Yaml)),
            Self::Json => Some(Store::Tree(Codec::Json)),
            Self::Ini => Some(Store::Tree(Codec::Ini)),
            Self::Age => None,
        }
    }

    /// The text form of a tree format (YAML, JSON, INI).
    pub(crate) fn codec(self) -> Option<Codec> {
        match self.store()? {
            Store::Tree(codec) => Some(codec),
            _ => None,
        }
    }
}

/// An opened `.enc`: its plaintext, and the SOPS state needed to rewrite it minimally.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) plaintext: SecretBytes,
    pub(crate) sops: Option<Unlocked>,
    /// With `key`: the whole file's plaintext, `plaintext` being the one value taken out.
    pub(crate) whole: Option<SecretBytes>,
}

/// The `sops` metadata of a file in `format`, read without decrypting (`check`, `status`,
/// `init`: recipients and rules without a key).
pub(crate) fn metadata(format: Format, bytes: &[u8]) -> Result<sops::Metadata, String> {
    let store = format
        .store()
        .ok_or("a plain age file has no sops metadata")?;
    store.metadata(bytes).map_err(|e| e.to_string())
}

/// Decrypts `bytes` in `format`; everything is authenticated before this returns.
pub(crate) fn decrypt(
    format: Format,
    bytes: &[u8],
    identities: &Identities,
) -> Result<Opened, SopsError> {
    if format == Format::Age {
        // No identity here opens it: the same error as a SOPS file's, so that `status` and
        // the lost-key path treat a plain age entry alike.
        let plaintext = identities.decrypt(bytes).map_err(|e| match e {
            crypto::CryptoError::NoMatch => SopsError::NoMatchingIdentity {
                recipients: Vec::new(),
                tried: identities.origins().to_vec(),
            },
            other => other.into(),
        })?;
        return Ok(Opened {
            plaintext,
            sops: None,
            whole: None,
        });
    }
    let store = format.store().ok_or_else(|| unsupported(format))?;
    let decrypted = store.decrypt(bytes, identities)?;
    Ok(Opened {
        plaintext: decrypted.plaintext,
        sops: Some(decrypted.keys),
        whole: None,
    })
}

/// Encrypts `plain` in `format`. `previous` is the file being replaced, when it decrypted.
pub(crate) fn encrypt(
    format: Format,
    plain: &[u8],
    options: &EncryptOptions,
    previous: Option<(&Opened, &[u8])>,
) -> Result<Vec<u8>, SopsError> {
    if format == Format::Age {
        let recipients: Vec<&crypto::Recipient> = options.keys.groups.iter().flatten().collect();
        return Ok(crypto::encrypt_armored(plain, &recipients)?);
    }
    let store = format.store().ok_or_else(|| unsupported(format))?;
    let previous = previous.and_then(|(o, bytes)| o.sops.as_ref().map(|d| (d, bytes)));
    store.encrypt(plain, options, previous)
}

/// Re-wraps an opened file's data key for `plan`'s recipients, keeping every value, the MAC
/// and `lastmodified` (an age file, which has no separate data key, is re-encrypted).
pub(crate) fn rekey(
    format: Format,
    bytes: &[u8],
    opened: &Opened,
    plan: &KeyPlan,
) -> Result<Vec<u8>, SopsError> {
    if format == Format::Age {
        let recipients: Vec<&crypto::Recipient> = plan.groups.iter().flatten().collect();
        return Ok(crypto::encrypt_armored(
            opened.plaintext.expose(),
            &recipients,
        )?);
    }
    let store = format.store().ok_or_else(|| unsupported(format))?;
    let unlocked = (opened.sops.as_ref())
        .ok_or_else(|| SopsError::NotSops("it has no sops metadata".into()))?;
    let meta = sops::rewrap(&unlocked.metadata, &unlocked.data_key, plan)?;
    store.replace_metadata(bytes, &meta)
}

fn unsupported(format: Format) -> SopsError {
    SopsError::NotSops(format!(
        "it is a SOPS {} file, which this version of envsync does not read or write yet",
        format.name()
    ))
}
