//! What the tree stores (YAML, JSON, INI) share: the `sops` metadata taken out of and put
//! back into the tree, and decrypt, encrypt and rekey over [`walk`](crate::sops::walk).
//!
//! Each store contributes only its text form ([`Codec::parse`], [`Codec::emit`]) and how it
//! spells the metadata: a map in YAML and JSON (YAML's key groups show `hc_vault: []`, JSON's
//! `"hc_vault": null`), a `[sops]` section of flattened keys in INI.

use super::{ini, json, yaml};
use crate::crypto::Identities;
use crate::secret::{DataKey, SecretBytes};
use crate::sops::metadata::{flatten, unflatten, Metadata};
use crate::sops::tree::{self, Branch, MapItem, Scalar, Tree, Value};
use crate::sops::walk::{self, Stash};
use crate::sops::{
    mac, new_metadata, unlock_data_key, Decrypted, EncryptOptions, SopsError, Unlocked,
};

/// `.sops.yaml`'s `stores:` indentation, which sops applies to what it decrypts and
/// encrypts alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StoreLayout {
    /// `stores.yaml.indent` (sops: 4 when unset or 0).
    pub(crate) yaml_indent: Option<usize>,
    /// `stores.json.indent`: that many spaces a level (sops: a tab when unset).
    pub(crate) json_indent: Option<usize>,
}

/// Set once, from the `.sops.yaml` beside the manifest, before any file is read or written
/// (sops too reads it once a run); unset, the stores write sops's defaults.
static LAYOUT: std::sync::OnceLock<StoreLayout> = std::sync::OnceLock::new();

/// Records the `stores:` layout for this run.
pub(crate) fn configure(layout: StoreLayout) {
    let _ = LAYOUT.set(layout);
}

/// The top-level key that holds the metadata.
const SOPS_KEY: &str = "sops";

/// The text form of a tree store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    Yaml,
    Json,
    Ini,
}

impl Codec {
    pub(crate) fn parse(self, text: &[u8]) -> Result<Tree, SopsError> {
        match self {
            Self::Yaml => yaml::parse::parse(text),
            Self::Json => json::parse(text),
            Self::Ini => ini::parse(text),
        }
    }

    /// The documents of an encrypted file without their `sops` metadata, read without a
    /// key: key paths are in clear, values as they are stored.
    pub(crate) fn parse_data(self, file: &[u8]) -> Result<Tree, SopsError> {
        let mut tree = self.parse(file)?;
        for branch in &mut tree {
            branch.retain(|item| !matches!(item, MapItem::Pair(k, _) if k == SOPS_KEY));
        }
        Ok(tree)
    }

    pub(crate) fn emit(self, tree: &Tree) -> Vec<u8> {
        let layout = LAYOUT.get().copied().unwrap_or_default();
        match self {
            Self::Yaml => yaml::emit::emit(tree, layout.yaml_indent.unwrap_or(4)),
            Self::Json => json::emit(tree, layout.json_indent),
            Self::Ini => ini::emit(tree),
        }
    }

    /// The metadata as this store writes it under the `sops` key.
    fn metadata_value(self, metadata: &Metadata) -> Value {
        let json = metadata.to_tree();
        match self {
            Self::Json => tree::from_json(&json),
            Self::Yaml => {
                let mut value = tree::from_json(&json);
                yaml_empty_vaults(&mut value);
                value
            }
            Self::Ini => {
                let mut pairs = flatten(&json);
                pairs.sort();
                Value::Map(
                    pairs
                        .into_iter()
                        .map(|(k, v)| MapItem::Pair(k, Value::str(v.replace('\n', "\\n"))))
                        .collect(),
                )
            }
        }
    }

    /// Reads the metadata from the value under the `sops` key.
    fn read_metadata(self, value: &Value) -> Result<Metadata, SopsError> {
        match self {
            Self::Yaml | Self::Json => Metadata::from_tree(&tree::to_json(value)),
            Self::Ini => {
                let Value::Map(section) = value else {
                    return Err(SopsError::Metadata(
                        "the [sops] section is not a section".into(),
                    ));
                };
                let pairs: Vec<(String, String)> = section
                    .iter()
                    .filter_map(|item| match item {
                        MapItem::Pair(k, Value::Scalar(Scalar::Str(v))) => {
                            Some((k.clone(), v.replace("\\n", "\n")))
                        }
                        _ => None,
                    })
                    .collect();
                Metadata::from_tree(&unflatten(&pairs)?)
            }
        }
    }
}

/// go-yaml writes the nil `hc_vault` list of each key group as `[]`, where JSON has `null`.
fn yaml_empty_vaults(value: &mut Value) {
    let Value::Map(meta) = value else { return };
    for item in meta.iter_mut() {
        let MapItem::Pair(key, Value::List(groups)) = item else {
            continue;
        };
        if key != "key_groups" {
            continue;
        }
        for group in groups.iter_mut() {
            let tree::ListItem::Value(Value::Map(fields)) = group else {
                continue;
            };
            for field in fields.iter_mut() {
                if let MapItem::Pair(name, v) = field {
                    if name == "hc_vault" && *v == Value::Scalar(Scalar::Null) {
                        *v = Value::List(Vec::new());
                    }
                }
            }
        }
    }
}

/// Whether a document has a top-level `sops` key.
fn has_sops_key(branch: &Branch) -> bool {
    tree::get(branch, SOPS_KEY).is_some()
}

/// The documents without their `sops` keys, and the metadata of the first document that
/// has one (as sops reads it).
fn split(codec: Codec, file: &[u8]) -> Result<(Tree, Metadata), SopsError> {
    let tree = codec.parse(file)?;
    let mut metadata = None;
    let mut docs = Tree::with_capacity(tree.len());
    for branch in tree {
        let mut kept = Branch::with_capacity(branch.len());
        for item in branch {
            match item {
                MapItem::Pair(key, value) if key == SOPS_KEY => {
                    if metadata.is_none() {
                        metadata = Some(codec.read_metadata(&value)?);
                    }
                }
                other => kept.push(other),
            }
        }
        docs.push(kept);
    }
    let metadata = metadata.ok_or_else(|| SopsError::NotSops("it has no sops metadata".into()))?;
    Ok((docs, metadata))
}

/// The documents with the metadata appended to each, written out.
fn join(codec: Codec, mut tree: Tree, metadata: &Metadata) -> Vec<u8> {
    let value = codec.metadata_value(metadata);
    if tree.is_empty() {
        tree.push(Branch::new());
    }
    for branch in &mut tree {
        branch.push(MapItem::Pair(SOPS_KEY.into(), value.clone()));
    }
    codec.emit(&tree)
}

/// The metadata of a file, read without decrypting anything.
pub(crate) fn metadata(codec: Codec, file: &[u8]) -> Result<Metadata, SopsError> {
    split(codec, file).map(|(_, metadata)| metadata)
}

/// The decrypted tree of a file, every value and the MAC checked.
pub(crate) fn decrypt_tree(
    codec: Codec,
    file: &[u8],
    identities: &Identities,
) -> Result<(Tree, Unlocked), SopsError> {
    let (tree, metadata) = split(codec, file)?;
    let data_key = unlock_data_key(&metadata, identities)?;
    let tree = open(tree, &metadata, &data_key)?;
    Ok((tree, Unlocked { metadata, data_key }))
}

fn open(tree: Tree, metadata: &Metadata, data_key: &DataKey) -> Result<Tree, SopsError> {
    walk::decrypt(
        tree,
        &metadata.rule.clone().unwrap_or_default(),
        metadata.mac_only_encrypted,
        &metadata.mac,
        &metadata.lastmodified,
        data_key,
    )
}

/// Decrypts a file into the text `sops -d` prints.
pub(crate) fn decrypt(
    codec: Codec,
    file: &[u8],
    identities: &Identities,
) -> Result<Decrypted, SopsError> {
    let (tree, keys) = decrypt_tree(codec, file, identities)?;
    Ok(Decrypted {
        plaintext: SecretBytes::new(codec.emit(&tree)),
        keys,
    })
}

/// Encrypts a plaintext file. With `previous` (the file replaced, opened), its data key and
/// recipients are kept and every unchanged value keeps its ciphertext.
pub(crate) fn encrypt(
    codec: Codec,
    plain: &[u8],
    options: &EncryptOptions,
    previous: Option<(&Unlocked, &[u8])>,
) -> Result<Vec<u8>, SopsError> {
    let tree = codec.parse(plain)?;
    encrypt_tree(codec, tree, options, previous)
}

/// Encrypts a plaintext tree (see [`encrypt`]).
pub(crate) fn encrypt_tree(
    codec: Codec,
    tree: Tree,
    options: &EncryptOptions,
    previous: Option<(&Unlocked, &[u8])>,
) -> Result<Vec<u8>, SopsError> {
    if tree.iter().any(has_sops_key) {
        return Err(SopsError::AlreadyEncrypted);
    }
    let data_key = match previous {
        Some((p, _)) => p.data_key.clone(),
        None => DataKey::generate(),
    };
    let mut metadata = new_metadata(&data_key, options, Some(options.rule.clone()))?;
    let stash = match previous {
        Some((p, file)) => {
            metadata.key_groups.clone_from(&p.metadata.key_groups);
            metadata.shamir_threshold = p.metadata.shamir_threshold;
            let old_rule = p.metadata.rule.clone().unwrap_or_default();
            split(codec, file)
                .map(|(old, _)| Stash::from_tree(old, &old_rule, &data_key))
                .unwrap_or_default()
        }
        None => Stash::default(),
    };
    let (tree, digest) = walk::encrypt(
        tree,
        &options.rule,
        options.mac_only_encrypted,
        &data_key,
        &stash,
    )?;
    metadata.mac = mac::seal(&digest, &metadata.lastmodified, &data_key)?;
    Ok(join(codec, tree, &metadata))
}

/// The same file with another metadata block: values, MAC and `lastmodified` kept, the
/// text re-emitted (as `sops updatekeys` does).
pub(crate) fn replace_metadata(
    codec: Codec,
    file: &[u8],
    metadata: &Metadata,
) -> Result<Vec<u8>, SopsError> {
    let (tree, _) = split(codec, file)?;
    Ok(join(codec, tree, metadata))
}
