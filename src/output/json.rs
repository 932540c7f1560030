//! The one JSON contract (docs/json.md, docs/json/*.schema.json): every `--json` run prints
//! exactly one document on stdout, `{"version": 1, "command", "ok", …}`, on success and on
//! failure alike. A command hands its typed body to the printer; the run's end wraps it in
//! the envelope, adding `error` (and `refused`) when the run failed, so a refusal or an error
//! after a command printed its report still gives one document, and the exit status is
//! unchanged. The shared pieces of the bodies live here: what changed in an entry
//! ([`Changes`]), a permission drift ([`PermDrift`]), an error ([`ErrorInfo`]).

use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::diff::KeyChange;

/// The version of the contract, the first field of every document.
pub(crate) const VERSION: u32 = 1;

/// The body a command reported, waiting for the run's end.
static PENDING: Mutex<Option<Map<String, Value>>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<Map<String, Value>>> {
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Keeps a command's body (a struct serialising to an object) for [`document`].
pub(crate) fn keep(body: &impl Serialize) {
    let fields = match serde_json::to_value(body) {
        Ok(Value::Object(fields)) => fields,
        // A body is always a struct: anything else is a bug, kept visible.
        Ok(other) => Map::from_iter([("body".to_string(), other)]),
        Err(e) => Map::from_iter([("body_error".to_string(), Value::String(e.to_string()))]),
    };
    // The envelope's own fields: a body repeating one would print a key twice.
    debug_assert!(
        !["version", "command", "ok", "error", "refused"]
            .iter()
            .any(|k| fields.contains_key(*k)),
        "a JSON body repeats an envelope field"
    );
    *pending() = Some(fields);
}

/// Takes the kept body back (a command that runs another and nests its report).
pub(crate) fn take() -> Option<Map<String, Value>> {
    pending().take()
}

/// The envelope around every document.
#[derive(Serialize)]
struct Envelope<'a> {
    version: u32,
    command: &'a str,
    ok: bool,
    #[serde(flatten)]
    body: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<Vec<Refused>>,
}

/// The run's one document: the kept body (if any) in the envelope, with the failure's
/// `error` and `refused` when there is one. `None` when a successful command kept no body
/// (`show`, `exec`: their stdout is their own output).
pub(crate) fn document(command: &str, failure: Option<&crate::error::Error>) -> Option<Value> {
    let body = pending().take();
    if body.is_none() && failure.is_none() {
        return None;
    }
    let envelope = Envelope {
        version: VERSION,
        command,
        ok: failure.is_none(),
        body: body.unwrap_or_default(),
        error: failure.map(crate::error::Error::info),
        refused: failure.and_then(crate::error::Error::refused),
    };
    serde_json::to_value(envelope).ok()
}

/// The document of a command line that could not be parsed (`kind` = `usage`): `command` is
/// the subcommand named on it, or `envsync`.
pub(crate) fn usage_document(command: &str, message: String) -> Option<Value> {
    let envelope = Envelope {
        version: VERSION,
        command,
        ok: false,
        body: Map::new(),
        error: Some(ErrorInfo {
            kind: "usage",
            file: None,
            line: None,
            key: None,
            message,
            hint: Some(match command {
                "envsync" => "see `envsync --help`".into(),
                command => format!("see `envsync {command} --help`"),
            }),
            errors: Vec::new(),
        }),
        refused: None,
    };
    serde_json::to_value(envelope).ok()
}

/// An error as JSON: what kind, where (file, line, key when known), the message and the
/// hint. Never a value: messages name keys and lines only.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ErrorInfo {
    /// A stable snake_case name (`mac_mismatch`, `refused`, `manifest`…).
    pub(crate) kind: &'static str,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) key: Option<String>,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    /// Several errors at once (`kind` = `several`): each of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<ErrorInfo>,
}

/// An entry a run refused to write.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Refused {
    pub(crate) repo: String,
    pub(crate) server: String,
    pub(crate) state: String,
    /// What the state means (`edited on the server since the last sync`).
    pub(crate) reason: String,
    /// The commands that resolve it.
    pub(crate) resolve: String,
}

/// A value's key and length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct KeyLen {
    pub(crate) key: String,
    pub(crate) len: usize,
}

/// A changed value's key and both lengths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct KeyDelta {
    pub(crate) key: String,
    pub(crate) old_len: usize,
    pub(crate) new_len: usize,
}

/// Old and new counts or sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct OldNew {
    pub(crate) old: usize,
    pub(crate) new: usize,
}

/// A server file's mode, owner or group against what its entry says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct PermDrift {
    /// `mode`, `owner` or `group`.
    pub(crate) field: &'static str,
    /// What the file has (`0644`, `root`; a number when no name exists).
    pub(crate) actual: String,
    /// What the entry says.
    pub(crate) expected: String,
}

impl PermDrift {
    /// `mode 0644 (want 0600)`.
    pub(crate) fn describe(&self) -> String {
        format!("{} {} (want {})", self.field, self.actual, self.expected)
    }
}

/// What changed in one entry (or, in a plan, what the write changes): keys added, removed
/// and changed with their lengths (dotenv, YAML, JSON, INI, extracted values), the comments
/// and order of keyed files, the size of other files, and the server file's permissions.
/// `old` is the side being replaced: the server for decrypt and diff's repo view, the repo
/// for encrypt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Changes {
    /// The key changes in file order, for the text view.
    #[serde(skip)]
    keys: Vec<KeyChange>,
    pub(crate) added: Vec<KeyLen>,
    pub(crate) removed: Vec<KeyLen>,
    pub(crate) changed: Vec<KeyDelta>,
    /// Comments differ: how many on each side.
    pub(crate) comments: Option<OldNew>,
    /// Same keys and values, another order or layout.
    pub(crate) order: bool,
    /// A file without keys (binary, age, plain): its size before and after.
    pub(crate) content: Option<OldNew>,
    /// Mode, owner or group drift of the server file.
    pub(crate) perms: Vec<PermDrift>,
}

impl Changes {
    /// The changes of keyed content.
    pub(crate) fn from_keys(keys: &[KeyChange]) -> Self {
        let mut out = Self {
            keys: keys.to_vec(),
            ..Self::default()
        };
        for change in keys {
            match change {
                KeyChange::Added { key, len } => out.added.push(KeyLen {
                    key: key.clone(),
                    len: *len,
                }),
                KeyChange::Removed { key, len } => out.removed.push(KeyLen {
                    key: key.clone(),
                    len: *len,
                }),
                KeyChange::Changed {
                    key,
                    old_len,
                    new_len,
                } => out.changed.push(KeyDelta {
                    key: key.clone(),
                    old_len: *old_len,
                    new_len: *new_len,
                }),
                KeyChange::Comments { old, new } => {
                    out.comments = Some(OldNew {
                        old: *old,
                        new: *new,
                    });
                }
                KeyChange::Order => out.order = true,
            }
        }
        out
    }

    /// A file without keys: its size before and after.
    pub(crate) fn content(old: usize, new: usize) -> Self {
        Self {
            content: Some(OldNew { old, new }),
            ..Self::default()
        }
    }

    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Changes {
    /// The changes as text lines (`+ KEY: added (len 3)`, `~ mode 0644 (want 0600)`), each
    /// starting with `+`, `-` or `~`, worded for a plan or for drift; keys in file order.
    pub(crate) fn lines(&self, words: crate::diff::Wording) -> Vec<String> {
        let mut lines: Vec<String> = self.keys.iter().map(|k| k.describe(words)).collect();
        if let Some(size) = self.content {
            lines.push(format!(
                "~ content changes ({} → {} bytes)",
                size.old, size.new
            ));
        }
        lines.extend(self.perms.iter().map(|p| match words.plan {
            true => format!("~ {} {} → {}", p.field, p.actual, p.expected),
            false => format!("~ {}", p.describe()),
        }));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{DRIFT, PLAN};

    #[test]
    fn changes_split_keys_and_word_permissions_for_plans_and_drift() {
        let mut changes = Changes::from_keys(&[
            KeyChange::Removed {
                key: "OLD".into(),
                len: 3,
            },
            KeyChange::Changed {
                key: "PASSWORD".into(),
                old_len: 8,
                new_len: 12,
            },
            KeyChange::Added {
                key: "NEW".into(),
                len: 5,
            },
            KeyChange::Order,
        ]);
        changes.perms.push(PermDrift {
            field: "mode",
            actual: "0644".into(),
            expected: "0600".into(),
        });
        assert_eq!(
            changes.added,
            [KeyLen {
                key: "NEW".into(),
                len: 5
            }]
        );
        assert_eq!(
            changes.removed,
            [KeyLen {
                key: "OLD".into(),
                len: 3
            }]
        );
        assert_eq!(changes.changed.len(), 1);
        assert!(changes.order && !changes.is_empty());
        let plan = changes.lines(PLAN);
        assert_eq!(
            plan.first().map(String::as_str),
            Some("- OLD: removed (len 3)")
        );
        assert_eq!(plan.last().map(String::as_str), Some("~ mode 0644 → 0600"));
        let drift = changes.lines(DRIFT);
        assert_eq!(
            drift.last().map(String::as_str),
            Some("~ mode 0644 (want 0600)")
        );
        assert!(Changes::default().is_empty());
        assert_eq!(
            Changes::content(3, 5).lines(PLAN),
            ["~ content changes (3 → 5 bytes)"]
        );
    }

    #[test]
    fn the_envelope_comes_first_and_an_error_makes_ok_false() {
        #[derive(Serialize)]
        struct Body {
            entries: Vec<u8>,
        }
        keep(&Body { entries: vec![1] });
        let doc = document("diff", None).unwrap();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["version", "command", "ok", "entries"]);
        assert_eq!(doc["ok"], true);
        // Nothing kept and no failure: no document (show, exec).
        assert!(document("show", None).is_none());
        let failure = crate::error::Error::NoMatch {
            pattern: "x".into(),
            manifest: "secrets.toml".into(),
        };
        let doc = document("show", Some(&failure)).unwrap();
        assert_eq!(doc["ok"], false);
        assert_eq!(doc["error"]["kind"], "no_match");
        assert!(doc.get("refused").is_none());
    }
}
