//! SOPS files encrypted with age, in two layers.
//!
//! The primitives, shared by every store: the value cipher ([`cipher`], AES-256-GCM under the
//! file's data key; [`gcm`] for a value too large to hold twice), the MAC ([`mac`]), Shamir
//! sharing of the data key ([`shamir`]), the `sops` metadata block ([`metadata`]), and here
//! the data key itself: unwrapped with an identity, wrapped for recipients.
//!
//! The stores ([`store`], one file each behind one enum): each turns `.enc` bytes into the
//! plaintext bytes that `sops -d` prints, and plaintext back into a file that sops reads.
//! Everything is checked in memory (every value's tag, then the MAC) before a plaintext is
//! handed out.

pub(crate) mod cipher;
pub(crate) mod gcm;
pub(crate) mod keypath;
pub(crate) mod mac;
pub(crate) mod metadata;
pub(crate) mod shamir;
pub(crate) mod store;
pub(crate) mod tree;
pub(crate) mod walk;

use zeroize::Zeroizing;

use crate::crypto::{CryptoError, Identities, Recipient};
use crate::secret::{DataKey, SecretBytes};
pub(crate) use cipher::CipherError;
pub(crate) use metadata::{AgeKey, CryptRule, Metadata};

/// Why a SOPS file could not be read or written. Names keys and lines, never values.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SopsError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("it is not a SOPS file: {0}")]
    NotSops(String),
    #[error("its sops metadata is invalid: {0}")]
    Metadata(String),
    #[error("the value of `{key}` {source}")]
    Value { key: String, source: CipherError },
    #[error("`{key}` should be encrypted but is stored in clear text")]
    NotEncrypted { key: String },
    #[error("MAC mismatch: the file was altered after it was encrypted (values edited, reordered or removed)")]
    MacMismatch,
    #[error("no identity matches any of its recipients ({}); identities tried: {}", if .recipients.is_empty() { "an age file does not name them".to_string() } else { .recipients.join(", ") }, if .tried.is_empty() { "none".to_string() } else { .tried.join(", ") })]
    NoMatchingIdentity {
        recipients: Vec<String>,
        tried: Vec<String>,
    },
    #[error("its data key {0}")]
    DataKey(String),
    #[error("it already holds sops metadata (a top-level `sops` key, or `sops_` lines): it is encrypted already")]
    AlreadyEncrypted,
    #[error("{0}")]
    Crypto(#[from] CryptoError),
}

/// A decrypted SOPS file.
#[derive(Debug)]
pub(crate) struct Decrypted {
    /// The file's plaintext, as `sops -d` prints it.
    pub(crate) plaintext: SecretBytes,
    pub(crate) keys: Unlocked,
}

/// What rewriting a SOPS file minimally needs besides its plaintext: its metadata and its
/// data key.
#[derive(Debug)]
pub(crate) struct Unlocked {
    pub(crate) metadata: Metadata,
    pub(crate) data_key: DataKey,
}

/// Who can decrypt a file written now: one group normally, several with Shamir sharing.
#[derive(Debug)]
pub(crate) struct KeyPlan {
    pub(crate) groups: Vec<Vec<Recipient>>,
    pub(crate) threshold: Option<usize>,
}

impl KeyPlan {
    /// A single group of recipients.
    pub(crate) fn single(recipients: Vec<Recipient>) -> Self {
        Self {
            groups: vec![recipients],
            threshold: None,
        }
    }
}

/// How to write a new SOPS file.
#[derive(Debug)]
pub(crate) struct EncryptOptions {
    pub(crate) keys: KeyPlan,
    pub(crate) rule: CryptRule,
    pub(crate) mac_only_encrypted: bool,
}

/// Recovers the data key from the metadata with any of `identities`.
pub(crate) fn unlock_data_key(
    meta: &Metadata,
    identities: &Identities,
) -> Result<DataKey, SopsError> {
    let mut corrupt = None;
    let mut unwrap_group = |group: &[AgeKey]| -> Option<SecretBytes> {
        for key in group {
            match identities.unwrap_key(&key.enc) {
                Ok(plain) => return Some(plain),
                Err(CryptoError::NoMatch) => {}
                Err(e) => corrupt = Some(e),
            }
        }
        None
    };
    // Post-quantum recipients (age1pq1…, some 1,950 characters) are named by their start;
    // a file encrypted to nothing else says so, as no identity of this build can open it.
    let no_match = || {
        let all = meta.recipients();
        let shown = all.iter().map(|r| crate::crypto::short_recipient(r));
        if !all.is_empty()
            && all
                .iter()
                .all(|r| crate::crypto::is_post_quantum_recipient(r))
        {
            SopsError::Crypto(CryptoError::PostQuantumOnly(shown.collect()))
        } else {
            SopsError::NoMatchingIdentity {
                recipients: shown.collect(),
                tried: identities.origins().to_vec(),
            }
        }
    };
    if meta.key_groups.len() <= 1 {
        let group = meta.key_groups.first().map_or(&[][..], Vec::as_slice);
        let plain = unwrap_group(group);
        return match plain {
            Some(p) => DataKey::from_slice(p.expose())
                .ok_or_else(|| SopsError::DataKey("is not 32 bytes".into())),
            None => Err(corrupt.map_or_else(no_match, SopsError::Crypto)),
        };
    }
    let threshold = meta.shamir_threshold.unwrap_or(meta.key_groups.len());
    let mut shares = Vec::new();
    for group in &meta.key_groups {
        if let Some(share) = unwrap_group(group) {
            shares.push(Zeroizing::new(share.expose().to_vec()));
            if shares.len() == threshold {
                break;
            }
        }
    }
    if shares.len() < threshold {
        return Err(match corrupt {
            Some(e) => SopsError::Crypto(e),
            // No group opens at all: the same as a one-group file no identity opens (the
            // lost-key path depends on it).
            None if shares.is_empty() => no_match(),
            None => SopsError::DataKey(format!(
                "needs {threshold} of {} key groups but identities match only {} ({})",
                meta.key_groups.len(),
                shares.len(),
                meta.recipients().join(", ")
            )),
        });
    }
    shamir::combine(&shares).ok_or_else(|| SopsError::DataKey("shares are malformed".into()))
}

/// Wraps `key` for every recipient of the plan (splitting it first with several groups).
pub(crate) fn seal_data_key(
    key: &DataKey,
    plan: &KeyPlan,
    threshold: Option<usize>,
) -> Result<Vec<Vec<AgeKey>>, SopsError> {
    let wrap_all = |secret: &[u8], group: &[Recipient]| -> Result<Vec<AgeKey>, SopsError> {
        group
            .iter()
            .map(|r| {
                Ok(AgeKey {
                    recipient: r.text.clone(),
                    enc: crate::crypto::wrap_key(secret, r)?,
                })
            })
            .collect()
    };
    if plan.groups.len() <= 1 {
        let group = plan.groups.first().map_or(&[][..], Vec::as_slice);
        return Ok(vec![wrap_all(key.expose(), group)?]);
    }
    let n = u8::try_from(plan.groups.len())
        .map_err(|_| SopsError::DataKey("cannot be split into more than 255 groups".into()))?;
    let threshold = u8::try_from(threshold.unwrap_or(plan.groups.len()))
        .ok()
        .filter(|t| (2..=n).contains(t))
        .ok_or_else(|| SopsError::DataKey(format!("needs a shamir_threshold between 2 and {n}")))?;
    let shares = shamir::split(key, n, threshold);
    plan.groups
        .iter()
        .zip(&shares)
        .map(|(group, share)| wrap_all(share, group))
        .collect()
}

/// Whether a file's metadata was written for exactly these options' recipients (group by
/// group, order aside), rule and MAC mode, so its data key can be kept as it is.
pub(crate) fn same_keys(meta: &Metadata, options: &EncryptOptions) -> bool {
    use std::collections::BTreeSet;
    let old: Vec<BTreeSet<&str>> = meta
        .key_groups
        .iter()
        .map(|g| g.iter().map(|k| k.recipient.as_str()).collect())
        .collect();
    let new: Vec<BTreeSet<&str>> = options
        .keys
        .groups
        .iter()
        .map(|g| g.iter().map(|r| r.text.as_str()).collect())
        .collect();
    old == new
        // The binary store writes no rule: nothing to compare there.
        && meta.rule.as_ref().is_none_or(|r| *r == options.rule)
        && meta.mac_only_encrypted == options.mac_only_encrypted
        && (old.len() <= 1
            || meta.shamir_threshold.unwrap_or(old.len())
                == options.keys.threshold.unwrap_or(old.len()))
}

/// The same metadata with the data key wrapped for a new set of recipients: values, MAC and
/// `lastmodified` stay as they are (what `sops updatekeys` does).
pub(crate) fn rewrap(
    meta: &Metadata,
    key: &DataKey,
    plan: &KeyPlan,
) -> Result<Metadata, SopsError> {
    // One threshold for the split and for the metadata, or the shares would not recombine.
    let threshold = (plan.groups.len() > 1)
        .then(|| (plan.threshold.or(meta.shamir_threshold)).unwrap_or(plan.groups.len()));
    Ok(Metadata {
        key_groups: seal_data_key(key, plan, threshold)?,
        shamir_threshold: threshold,
        ..meta.clone()
    })
}

/// New metadata for a file written now (the MAC is filled in by the store).
pub(crate) fn new_metadata(
    key: &DataKey,
    options: &EncryptOptions,
    rule: Option<CryptRule>,
) -> Result<Metadata, SopsError> {
    let groups = options.keys.groups.len();
    let threshold = (groups > 1).then(|| options.keys.threshold.unwrap_or(groups));
    Ok(Metadata {
        key_groups: seal_data_key(key, &options.keys, threshold)?,
        shamir_threshold: threshold,
        lastmodified: mac::now_lastmodified(),
        mac: String::new(),
        rule,
        mac_only_encrypted: options.mac_only_encrypted,
        version: metadata::SOPS_VERSION.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> (Identities, String) {
        let (text, recipient) = crate::crypto::generate_identity();
        let source = crate::crypto::IdentitySource {
            origin: "test".into(),
            contents: text,
        };
        (Identities::parse(&[source]).unwrap(), recipient)
    }

    /// Adding a group to a 2-of-2 file without naming a threshold keeps the file's 2: the
    /// split and the metadata agree, so any two groups recover the key.
    #[test]
    fn rewrap_splits_with_the_threshold_it_records() {
        let ids: Vec<_> = (0..3).map(|_| identity()).collect();
        let group = |i: usize| vec![Recipient::parse(&ids[i].1).unwrap()];
        let key = DataKey::generate();
        let two = KeyPlan {
            groups: vec![group(0), group(1)],
            threshold: Some(2),
        };
        let meta = Metadata {
            key_groups: seal_data_key(&key, &two, Some(2)).unwrap(),
            shamir_threshold: Some(2),
            lastmodified: "2026-01-01T00:00:00Z".into(),
            mac: String::new(),
            rule: None,
            mac_only_encrypted: false,
            version: "3.11.0".into(),
        };
        let three = KeyPlan {
            groups: vec![group(0), group(1), group(2)],
            threshold: None,
        };
        let rewrapped = rewrap(&meta, &key, &three).unwrap();
        assert_eq!(rewrapped.shamir_threshold, Some(2));
        for pair in [[0, 1], [0, 2], [1, 2]] {
            // Each identity opens its own group's share; any two recover the same key.
            let shares: Vec<_> = pair
                .iter()
                .map(|&g| {
                    let plain = ids[g]
                        .0
                        .unwrap_key(&rewrapped.key_groups[g][0].enc)
                        .unwrap();
                    zeroize::Zeroizing::new(plain.expose().to_vec())
                })
                .collect();
            assert_eq!(shamir::combine(&shares).unwrap().expose(), key.expose());
        }
    }
}
