//! The SOPS binary store: the whole file as one value, `{"data": "ENC[…]", "sops": {…}}`.
//!
//! The output is byte-for-byte what sops 3.11 writes: Go's `encoding/json` with a tab a level
//! and HTML-escaped strings, so a file envsync writes and one sops writes differ only in their
//! random bytes.

use std::borrow::Cow;

use serde_json::Value;

use crate::crypto::Identities;
use crate::secret::{DataKey, SecretBytes};
use crate::sops::cipher::{EncValue, ValueType};
use crate::sops::mac::{self, MacHasher};
use crate::sops::metadata::Metadata;
use crate::sops::{new_metadata, unlock_data_key, Decrypted, EncryptOptions, SopsError, Unlocked};

/// The additional data of the one value: its key path.
pub(crate) const AAD: &[u8] = b"data:";

/// The file as parsed: `data` borrowed from the file's bytes when it has no escapes (a
/// large secret is not copied), the metadata as a tree.
#[derive(serde::Deserialize)]
struct Wrapper<'a> {
    #[serde(borrow)]
    data: Option<Text<'a>>,
    sops: Option<Value>,
}

/// A string borrowed from the input when it can be (serde borrows a `Cow` only directly,
/// not inside an `Option`).
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Whether bytes look like a SOPS binary file: a JSON object whose first key is a `data`
/// string and whose next key is `sops`, as sops writes it (a JSON-store file whose first key
/// happens to be `data` has other keys, or a `data` that is not a string).
pub(crate) fn looks_encrypted(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.trim_ascii_start().strip_prefix(b"{") else {
        return false;
    };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b"\"data\"") else {
        return false;
    };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b":") else {
        return false;
    };
    let Some(string) = rest.trim_ascii_start().strip_prefix(b"\"") else {
        return false;
    };
    // The value is `ENC[…]` or empty; another writer may escape a `/` as `\/`.
    let mut at = 0;
    let end = loop {
        match memchr::memchr2(b'"', b'\\', &string[at..]) {
            Some(i) if string[at + i] == b'"' => break at + i,
            Some(i) => at += i + 2,
            None => return false,
        }
        if at >= string.len() {
            return false;
        }
    };
    let after = &string[end..];
    after.starts_with(b"\"")
        && after[1..]
            .trim_ascii_start()
            .strip_prefix(b",")
            .is_some_and(|r| r.trim_ascii_start().starts_with(b"\"sops\""))
}

/// The `sops` metadata of a SOPS binary file, read without decrypting anything.
pub(crate) fn metadata(file: &[u8]) -> Result<Metadata, SopsError> {
    Metadata::from_tree(&parse_parts(file)?.1)
}

/// Decrypts a SOPS binary file and checks its MAC.
pub(crate) fn decrypt(file: &[u8], identities: &Identities) -> Result<Decrypted, SopsError> {
    let (data, sops) = parse_parts(file)?;
    let metadata = Metadata::from_tree(&sops)?;
    let data_key = unlock_data_key(&metadata, identities)?;
    let plaintext = open_data(&data, &metadata, &data_key)?;
    Ok(Decrypted {
        plaintext,
        keys: Unlocked { metadata, data_key },
    })
}

/// Decrypts a SOPS binary file whose data key is already known, and checks its MAC.
pub(crate) fn decrypt_with_key(file: &[u8], data_key: &DataKey) -> Result<SecretBytes, SopsError> {
    let (data, sops) = parse_parts(file)?;
    open_data(&data, &Metadata::from_tree(&sops)?, data_key)
}

/// The plaintext of the `data` string, authenticated by its tag and the file's MAC.
fn open_data(
    data: &str,
    metadata: &Metadata,
    data_key: &DataKey,
) -> Result<SecretBytes, SopsError> {
    let plaintext = if data.is_empty() {
        SecretBytes::default()
    } else {
        let value_error = |source| SopsError::Value {
            key: "data".into(),
            source,
        };
        if !EncValue::is_enc(data) {
            return Err(SopsError::NotEncrypted { key: "data".into() });
        }
        let enc = EncValue::parse(data).map_err(value_error)?;
        enc.open(data_key, AAD).map_err(value_error)?
    };
    let mut hasher = MacHasher::new(metadata.mac_only_encrypted);
    hasher.add(plaintext.expose(), !plaintext.is_empty());
    mac::verify(
        &metadata.mac,
        &metadata.lastmodified,
        data_key,
        &hasher.finish(),
    )?;
    Ok(plaintext)
}

/// Encrypts raw bytes into a SOPS binary file.
pub(crate) fn encrypt(plain: &[u8], options: &EncryptOptions) -> Result<Vec<u8>, SopsError> {
    let data_key = DataKey::generate();
    // The binary store writes no encryption rule and ignores mac_only_encrypted.
    let mut metadata = new_metadata(&data_key, options, None)?;
    metadata.mac_only_encrypted = false;
    let mut hasher = MacHasher::new(false);
    hasher.add(plain, true);
    metadata.mac = mac::seal(&hasher.finish(), &metadata.lastmodified, &data_key)?;
    let data = if plain.is_empty() {
        String::new()
    } else {
        EncValue::encrypt(&data_key, plain, AAD, ValueType::Str).format()
    };
    Ok(emit(&data, &metadata))
}

/// Replaces the metadata of an existing file (new recipients for the same data key); the
/// `data` value is kept as it is.
pub(crate) fn replace_metadata(file: &[u8], metadata: &Metadata) -> Result<Vec<u8>, SopsError> {
    let data = parse(file)?
        .data
        .ok_or_else(|| SopsError::NotSops("it has no data string".into()))?;
    Ok(emit(&data.0, metadata))
}

/// The `data` string and the `sops` tree of a binary-store file.
pub(crate) fn parse_parts(file: &[u8]) -> Result<(Cow<'_, str>, Value), SopsError> {
    let doc = parse(file)?;
    let sops = doc
        .sops
        .ok_or_else(|| SopsError::NotSops("it has no sops metadata".into()))?;
    let data = doc
        .data
        .ok_or_else(|| SopsError::NotSops("it has no data string".into()))?;
    Ok((data.0, sops))
}

fn parse(file: &[u8]) -> Result<Wrapper<'_>, SopsError> {
    // serde_json's syntax errors name a line and column, never a value.
    serde_json::from_slice(file).map_err(|e| SopsError::Syntax {
        line: e.line(),
        reason: format!("invalid JSON at column {}", e.column()),
    })
}

/// The file as sops writes it: `{"data": …, "sops": {…}}`, tab-indented.
fn emit(data: &str, metadata: &Metadata) -> Vec<u8> {
    let mut out = String::with_capacity(data.len() + 4096);
    out.push_str("{\n\t\"data\": ");
    go_json_string(data, &mut out);
    out.push_str(",\n\t\"sops\": ");
    go_json_value(&metadata.to_tree(), 1, &mut out);
    out.push_str("\n}\n");
    out.into_bytes()
}

/// Writes `value` as Go's `json.MarshalIndent(v, "", "\t")` would, at nesting `depth`.
pub(crate) fn go_json_value(value: &Value, depth: usize, out: &mut String) {
    let indent = |out: &mut String, d: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n('\t', d));
    };
    match value {
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                go_json_string(k, out);
                out.push_str(": ");
                go_json_value(v, depth + 1, out);
            }
            indent(out, depth);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                go_json_value(v, depth + 1, out);
            }
            indent(out, depth);
            out.push(']');
        }
        Value::String(s) => go_json_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// A JSON string with Go's escaping: `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes.
pub(crate) fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go 1.22 and later (sops 3.11 is built with one) spell these two short.
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}
