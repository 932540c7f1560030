//! The manifest, `secrets.toml`: which `.enc` in the repo maps to which plaintext file on the
//! server, with what mode and owner.
//!
//! Loading validates everything before any command reads or writes a secret: unknown keys,
//! paths that escape the repo or `server.root`, two entries sharing a path, modes and owners
//! that do not resolve. Each error names the manifest, the line and the key.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::format::Format;
use crate::sops::keypath::KeyPath;

/// The manifest's file name, found by walking up from the working directory.
pub(crate) const FILE_NAME: &str = "secrets.toml";

/// A manifest error: file, line, key and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub(crate) struct ManifestError {
    pub(crate) path: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    version: Spanned<i64>,
    server: RawServer,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default, rename = "file")]
    files: Vec<RawFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    root: Spanned<String>,
    identity: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    mode: Option<Spanned<RawMode>>,
    dir_mode: Option<Spanned<RawMode>>,
    owner: Option<Spanned<RawId>>,
    group: Option<Spanned<RawId>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawMode {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawId {
    Name(String),
    Id(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    repo: Spanned<String>,
    server: Spanned<String>,
    format: Option<Spanned<Format>>,
    mode: Option<Spanned<RawMode>>,
    dir_mode: Option<Spanned<RawMode>>,
    owner: Option<Spanned<RawId>>,
    group: Option<Spanned<RawId>>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    plain: bool,
    #[serde(default)]
    tags: Vec<String>,
    recipients: Option<Vec<String>>,
    #[serde(rename = "as")]
    as_: Option<Spanned<String>>,
    names: Option<Spanned<String>>,
    releases: Option<Spanned<i64>>,
    verify: Option<Spanned<Vec<String>>>,
    on_change: Option<Spanned<Vec<String>>>,
    example: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    write: Option<Spanned<String>>,
    follow_symlinks: Option<Spanned<toml::Value>>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// The manifest file.
    pub(crate) path: PathBuf,
    /// The repo root: the manifest's folder.
    pub(crate) repo_root: PathBuf,
    pub(crate) server_root: PathBuf,
    pub(crate) identity: Option<PathBuf>,
    pub(crate) state_dir: PathBuf,
    /// `defaults.dir_mode`: the mode of the server root when envsync creates it.
    pub(crate) dir_mode: u32,
    pub(crate) entries: Vec<Entry>,
}

/// One `[[file]]`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The repo path as written, relative to the repo root (`envs/app/.env.enc`).
    pub(crate) repo: String,
    /// The server path relative to `server.root` (`app/.env`).
    pub(crate) server: String,
    pub(crate) repo_path: PathBuf,
    pub(crate) server_path: PathBuf,
    pub(crate) format: Option<Format>,
    pub(crate) mode: u32,
    /// Mode of the server folders envsync creates for this entry (`dir_mode`).
    pub(crate) dir_mode: u32,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    pub(crate) optional: bool,
    pub(crate) plain: bool,
    pub(crate) tags: Vec<String>,
    pub(crate) recipients: Option<Vec<String>>,
    /// `write = "in-place"`: keep the inode (for files bind-mounted alone into containers).
    pub(crate) in_place: bool,
    /// `as = "files"`: the server side is a folder of one file per dotenv key.
    pub(crate) files: Option<FilesLayout>,
    /// `on_change`: the command to run after a run changed this entry's server content.
    pub(crate) on_change: Option<Vec<String>>,
    /// `example`: the repo file (a dotenv `.env.example`) whose keys `check` compares with
    /// this entry's keys, relative to the repo root.
    pub(crate) example: Option<String>,
    /// `key = "database.password"`: the entry is this one value of a YAML, JSON or INI
    /// `.enc`, written raw to the server file.
    pub(crate) key: Option<KeyPath>,
    /// The manifest line of `repo = …`, for messages.
    pub(crate) line: usize,
}

/// How an `as = "files"` entry lays out its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilesLayout {
    /// `names = "lower"`: a key's file name is the key lowercased.
    pub(crate) lower: bool,
    /// `releases = N`: timestamped release folders behind a `current` symlink, N kept.
    pub(crate) releases: Option<usize>,
    /// `verify`: run against a new release before `current` switches to it.
    pub(crate) verify: Option<Vec<String>>,
}

impl FilesLayout {
    /// The file name of `key`.
    pub(crate) fn name_of(&self, key: &str) -> String {
        if self.lower {
            key.to_lowercase()
        } else {
            key.to_string()
        }
    }
}

/// Default mode of a server file.
const DEFAULT_MODE: u32 = 0o600;
/// Default mode of a server folder envsync creates: traversable, so that a `0640
/// root:debian` file in it is readable by its group.
const DEFAULT_DIR_MODE: u32 = 0o755;

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub(crate) fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read it ({e}); pass --manifest PATH or set ENVSYNC_MANIFEST"),
        })?;
        Self::parse(path, &text)
    }

    /// Validates manifest `text` read from `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        // Every entry's line comes from one table of line starts, built in one pass: counting
        // the newlines before each entry made parsing quadratic (261 ms at 4,001 entries).
        let lines = Lines::new(text);
        let err = |span: Option<std::ops::Range<usize>>, message: String| ManifestError {
            path: path.to_path_buf(),
            line: span.map(|s| lines.line_of(s.start)),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end_matches('\n').replace('\n', "; ");
            err(e.span(), message)
        })?;
        if *raw.version.get_ref() != 1 {
            return Err(err(
                Some(raw.version.span()),
                "`version` must be 1 (the only manifest version this envsync knows)".into(),
            ));
        }
        let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let repo_root = absolute
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let server_root = repo_root.join(raw.server.root.get_ref());
        if raw.server.root.get_ref().is_empty() {
            return Err(err(
                Some(raw.server.root.span()),
                "`server.root` is empty".into(),
            ));
        }
        let identity = raw
            .server
            .identity
            .as_ref()
            .map(|i| repo_root.join(i.get_ref()));
        let state_dir = raw.server.state.as_ref().map_or_else(
            || server_root.join(".envsync"),
            |s| repo_root.join(s.get_ref()),
        );

        let default_mode = match &raw.defaults.mode {
            Some(m) => parse_mode(m.get_ref()).ok_or_else(|| {
                err(
                    Some(m.span()),
                    "`defaults.mode` is not an octal mode like \"0600\"".into(),
                )
            })?,
            None => DEFAULT_MODE,
        };
        let default_dir_mode = match &raw.defaults.dir_mode {
            Some(m) => parse_dir_mode(m.get_ref()).ok_or_else(|| {
                err(
                    Some(m.span()),
                    "`defaults.dir_mode` must be an octal folder mode like \"0750\": owner rwx, no group or other write"
                        .into(),
                )
            })?,
            None => DEFAULT_DIR_MODE,
        };
        // Each owner or group name is looked up once: a lookup reads the user database, about
        // 25 us, which 20,000 entries naming `owner = "root"` would pay 20,000 times.
        let mut ids = IdCache::default();
        let default_uid = resolve_id(raw.defaults.owner.as_ref(), IdKind::User, &mut ids)
            .map_err(|(span, m)| err(Some(span), m))?;
        let default_gid = resolve_id(raw.defaults.group.as_ref(), IdKind::Group, &mut ids)
            .map_err(|(span, m)| err(Some(span), m))?;

        let count = raw.files.len();
        let mut entries = Vec::with_capacity(count);
        let mut seen_repo: HashMap<String, Vec<(usize, Option<String>)>> =
            HashMap::with_capacity(count);
        let mut seen_server: HashMap<String, usize> = HashMap::with_capacity(count);
        for file in raw.files {
            let line = lines.line_of(file.repo.span().start);
            if let Some(v) = &file.follow_symlinks {
                return Err(err(
                    Some(v.span()),
                    "`follow_symlinks` is not supported by this version of envsync; remove it"
                        .into(),
                ));
            }
            let layout = files_layout(&file).map_err(|(span, m)| err(Some(span), m))?;
            let on_change = match &file.on_change {
                Some(argv) if argv.get_ref().is_empty() => {
                    return Err(err(
                        Some(argv.span()),
                        "`on_change` must name a command: [\"program\", \"arg\", …]".into(),
                    ))
                }
                other => other.as_ref().map(|a| a.get_ref().clone()),
            };
            let repo = clean_relative(file.repo.get_ref()).ok_or_else(|| {
                err(
                    Some(file.repo.span()),
                    format!(
                        "`repo = \"{}\"` must be a relative path inside the repo, without `..`",
                        file.repo.get_ref().escape_debug()
                    ),
                )
            })?;
            let example = match &file.example {
                None => None,
                Some(example) => Some(clean_relative(example.get_ref()).ok_or_else(|| {
                    err(
                        Some(example.span()),
                        format!(
                            "`example = \"{}\"` must be a relative path inside the repo, without `..`",
                            example.get_ref().escape_debug()
                        ),
                    )
                })?),
            };
            let server_text = file.server.get_ref();
            let server_relative = Path::new(server_text)
                .strip_prefix(&server_root)
                .ok()
                .and_then(|p| p.to_str())
                .unwrap_or(server_text);
            let server = clean_relative(server_relative).ok_or_else(|| {
                err(
                    Some(file.server.span()),
                    format!(
                        "`server = \"{}\"` must stay inside server.root ({}): a relative path without `..`",
                        server_text.escape_debug(),
                        server_root.display()
                    ),
                )
            })?;
            let key = entry_key(&file).map_err(|(span, m)| err(Some(span), m))?;
            // Entries share a `.enc` only to take different values of it (one may map the
            // whole file), as sops-nix does.
            let sharing = seen_repo.entry(repo.clone()).or_default();
            let key_text = key.as_ref().map(ToString::to_string);
            if let Some((first, _)) = sharing.iter().find(|(_, k)| *k == key_text) {
                return Err(err(
                    Some(file.repo.span()),
                    match &key_text {
                        None => format!(
                            "`repo = \"{repo}\"` is also the repo path of the entry on line {first}; entries share a .enc only to extract different values of it (`key = \"…\"`)"
                        ),
                        Some(k) => format!(
                            "`repo = \"{repo}\"` with `key = \"{k}\"` is also the entry on line {first}"
                        ),
                    },
                ));
            }
            sharing.push((line, key_text));
            if let Some(first) = seen_server.insert(server.clone(), line) {
                return Err(err(
                    Some(file.server.span()),
                    format!(
                        "`server = \"{server}\"` is also the server path of the entry on line {first}"
                    ),
                ));
            }
            let in_place = match &file.write {
                None => false,
                Some(w) => match w.get_ref().as_str() {
                    "atomic" => false,
                    "in-place" => true,
                    _ => {
                        return Err(err(
                            Some(w.span()),
                            "`write` must be \"atomic\" (the default) or \"in-place\"".into(),
                        ))
                    }
                },
            };
            let server_path = server_root.join(&server);
            if server_path.starts_with(&state_dir) {
                return Err(err(
                    Some(file.server.span()),
                    format!(
                        "`server = \"{server}\"` is inside the state folder ({}); envsync keeps its sync records there",
                        state_dir.display()
                    ),
                ));
            }
            let mode = match &file.mode {
                Some(m) => parse_mode(m.get_ref()).ok_or_else(|| {
                    err(
                        Some(m.span()),
                        "`mode` is not an octal mode like \"0640\"".into(),
                    )
                })?,
                None => default_mode,
            };
            let dir_mode = match &file.dir_mode {
                Some(m) => parse_dir_mode(m.get_ref()).ok_or_else(|| {
                    err(
                        Some(m.span()),
                        "`dir_mode` must be an octal folder mode like \"0750\": owner rwx, no group or other write".into(),
                    )
                })?,
                None => default_dir_mode,
            };
            let uid = resolve_id(file.owner.as_ref(), IdKind::User, &mut ids)
                .map_err(|(span, m)| err(Some(span), m))?
                .or(default_uid);
            let gid = resolve_id(file.group.as_ref(), IdKind::Group, &mut ids)
                .map_err(|(span, m)| err(Some(span), m))?
                .or(default_gid);
            entries.push(Entry {
                repo_path: repo_root.join(&repo),
                server_path,
                repo,
                server,
                format: file.format.map(Spanned::into_inner),
                mode,
                dir_mode,
                uid,
                gid,
                optional: file.optional,
                plain: file.plain,
                tags: file.tags,
                recipients: file.recipients,
                in_place,
                files: layout,
                on_change,
                example,
                key,
                line,
            });
        }
        nothing_inside_a_files_folder(&entries).map_err(|(line, message)| ManifestError {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            repo_root,
            server_root,
            identity,
            state_dir,
            dir_mode: default_dir_mode,
            entries,
        })
    }
}

/// The `as = "files"` layout of an entry, with `names`, `releases` and `verify` checked
/// The entry's `key`, checked: a path into a YAML, JSON or INI file, on an encrypted entry
/// that maps one server file.
fn entry_key(file: &RawFile) -> Result<Option<KeyPath>, (std::ops::Range<usize>, String)> {
    let Some(key) = &file.key else {
        return Ok(None);
    };
    let path = KeyPath::parse(key.get_ref()).map_err(|m| (key.span(), format!("`key`: {m}")))?;
    let refuse = |why: &str| Err((key.span(), format!("`key` {why}")));
    if file.plain {
        return refuse("extracts a value from an encrypted file; a `plain = true` entry has none");
    }
    if file.as_.is_some() {
        return refuse("and `as` cannot be combined: `key` writes one value to one file");
    }
    if let Some(format) = &file.format {
        if format.get_ref().codec().is_none() {
            return refuse(&format!(
                "needs a yaml, json or ini file, but `format = \"{}\"`",
                format.get_ref().name()
            ));
        }
    }
    Ok(Some(path))
}

/// against it.
fn files_layout(file: &RawFile) -> Result<Option<FilesLayout>, (std::ops::Range<usize>, String)> {
    let Some(as_) = &file.as_ else {
        let needs_files = [
            ("names", file.names.as_ref().map(Spanned::span)),
            ("releases", file.releases.as_ref().map(Spanned::span)),
            ("verify", file.verify.as_ref().map(Spanned::span)),
        ];
        if let Some((key, Some(span))) = needs_files.into_iter().find(|(_, s)| s.is_some()) {
            return Err((
                span,
                format!("`{key}` needs `as = \"files\"` on the same entry"),
            ));
        }
        return Ok(None);
    };
    if as_.get_ref() != "files" {
        return Err((
            as_.span(),
            "`as` must be \"files\" (one file per dotenv key in the server folder)".into(),
        ));
    }
    if file.plain {
        return Err((
            as_.span(),
            "`as = \"files\"` splits an encrypted dotenv file; it cannot be `plain = true`".into(),
        ));
    }
    if let Some(w) = file.write.as_ref().filter(|w| w.get_ref() == "in-place") {
        return Err((
            w.span(),
            "`write = \"in-place\"` cannot be combined with `as = \"files\"` (each key file is replaced atomically)".into(),
        ));
    }
    let lower = match &file.names {
        None => false,
        Some(n) => match n.get_ref().as_str() {
            "as-is" => false,
            "lower" => true,
            _ => return Err((
                n.span(),
                "`names` must be \"lower\" (POSTGRES_PASSWORD -> postgres_password) or \"as-is\""
                    .into(),
            )),
        },
    };
    let releases = match &file.releases {
        None => None,
        Some(n) => Some(
            usize::try_from(*n.get_ref())
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    (
                        n.span(),
                        "`releases` must be the number of releases to keep, 1 or more".into(),
                    )
                })?,
        ),
    };
    let verify = match &file.verify {
        None => None,
        Some(v) if releases.is_none() => {
            return Err((
                v.span(),
                "`verify` checks a new release before `current` switches: it needs `releases`"
                    .into(),
            ))
        }
        Some(v) if v.get_ref().is_empty() => {
            return Err((
                v.span(),
                "`verify` must name a command: [\"program\", \"arg\", …]".into(),
            ))
        }
        Some(v) => Some(v.get_ref().clone()),
    };
    Ok(Some(FilesLayout {
        lower,
        releases,
        verify,
    }))
}

/// An `as = "files"` entry owns its whole server folder: no other entry's server path may
/// be inside it (two writers of one key file), nor may it be inside another's.
fn nothing_inside_a_files_folder(entries: &[Entry]) -> Result<(), (usize, String)> {
    let folders: Vec<&Entry> = entries.iter().filter(|e| e.files.is_some()).collect();
    if folders.is_empty() {
        return Ok(());
    }
    for entry in entries {
        for folder in &folders {
            let inside = entry.server.len() > folder.server.len()
                && entry.server.starts_with(&folder.server)
                && entry.server.as_bytes()[folder.server.len()] == b'/';
            if inside {
                return Err((
                    entry.line,
                    format!(
                        "`server = \"{}\"` is inside the folder of the `as = \"files\"` entry on line {} ({}), which envsync writes as a whole; move one of them",
                        entry.server, folder.line, folder.server
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Walks up from `start` to the first folder holding `secrets.toml`.
pub(crate) fn discover(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
}

/// The byte offsets at which the lines of a text start, to turn an offset into a line
/// number by binary search.
struct Lines {
    /// 0, then one past each `\n`, ascending.
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        Self { starts }
    }

    /// The 1-based line of byte `offset`: one more than the newlines before it (an offset
    /// past the end counts them all).
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

/// A relative path with no `..`, no root, no empty or control characters, normalised to
/// `/`-separated components; `None` when it could escape its base.
fn clean_relative(path: &str) -> Option<String> {
    if path.is_empty() || path.chars().any(char::is_control) {
        return None;
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn parse_mode(raw: &RawMode) -> Option<u32> {
    let mode = match raw {
        RawMode::Text(s) => u32::from_str_radix(s.strip_prefix("0o").unwrap_or(s), 8).ok()?,
        RawMode::Number(n) => u32::try_from(*n).ok()?,
    };
    (mode <= 0o7777).then_some(mode)
}

/// A folder mode envsync can create and then write through: the owner can list, enter and
/// write it, and nobody else can write it (envsync refuses such folders).
fn parse_dir_mode(raw: &RawMode) -> Option<u32> {
    parse_mode(raw).filter(|mode| mode & 0o700 == 0o700 && mode & 0o022 == 0)
}

#[derive(Clone, Copy)]
enum IdKind {
    User,
    Group,
}

/// Owner and group names already looked up in this manifest, with what they gave.
#[derive(Default)]
struct IdCache {
    users: HashMap<String, Option<u32>>,
    groups: HashMap<String, Option<u32>>,
}

/// Resolves an owner or group given by name or number.
fn resolve_id(
    raw: Option<&Spanned<RawId>>,
    kind: IdKind,
    cache: &mut IdCache,
) -> Result<Option<u32>, (std::ops::Range<usize>, String)> {
    let Some(raw) = raw else { return Ok(None) };
    let (noun, field) = match kind {
        IdKind::User => ("user", "owner"),
        IdKind::Group => ("group", "group"),
    };
    let id = match raw.get_ref() {
        RawId::Id(n) => u32::try_from(*n).ok(),
        RawId::Name(name) => match name.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let known = match kind {
                    IdKind::User => &mut cache.users,
                    IdKind::Group => &mut cache.groups,
                };
                *known.entry(name.clone()).or_insert_with(|| match kind {
                    IdKind::User => uzers::get_user_by_name(name).map(|u| u.uid()),
                    IdKind::Group => uzers::get_group_by_name(name).map(|g| g.gid()),
                })
            }
        },
    };
    id.map(Some).ok_or_else(|| {
        let shown = match raw.get_ref() {
            RawId::Name(n) => n.clone(),
            RawId::Id(n) => n.to_string(),
        };
        (
            raw.span(),
            format!("`{field} = \"{shown}\"`: no such {noun} on this machine"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("/nonexistent/secrets.toml"), text)
    }

    #[test]
    fn paths_must_stay_inside() {
        for bad in ["../x", "a/../../b", "/etc/shadow", ""] {
            let text = format!(
                "version = 1\n[server]\nroot = \"/srv\"\n[[file]]\nrepo = \"a.enc\"\nserver = \"{bad}\"\n"
            );
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, Some(6), "{bad}: {e}");
        }
    }

    #[test]
    fn examples_stay_inside_the_repo() {
        let with = |example: &str| {
            format!("version = 1\n[server]\nroot = \"/srv\"\n[[file]]\nrepo = \"a.enc\"\nserver = \"a\"\nexample = \"{example}\"\n")
        };
        let ok = parse(&with("envs/./a.env.example")).unwrap();
        assert_eq!(ok.entries[0].example.as_deref(), Some("envs/a.env.example"));
        for bad in ["../x", "/etc/passwd", ""] {
            let e = parse(&with(bad)).unwrap_err();
            assert_eq!(e.line, Some(7), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_key_names_line() {
        let e = parse("version = 1\n[server]\nroot = \"/srv\"\nidentty = \"k\"\n").unwrap_err();
        assert_eq!(e.line, Some(4));
        assert!(e.message.contains("identty"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let e = parse(
            "version = 1\n[server]\nroot = \"/srv\"\n[[file]]\nrepo = \"a.enc\"\nserver = \"a\"\n[[file]]\nrepo = \"b.enc\"\nserver = \"./a\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(9));
    }

    /// A manifest of `count` entries of 4 lines each (`[[file]]`, repo, server, mode) after a
    /// 3-line header: entry `k` (from 1) has `repo` on line 4k + 1 and `mode` on line 4k + 3.
    /// `edit` may rewrite any entry's lines.
    fn many(count: usize, edit: impl Fn(usize, &mut [String; 4])) -> String {
        let mut text = String::from("version = 1\n[server]\nroot = \"/srv\"\n");
        for k in 1..=count {
            let mut lines = [
                "[[file]]".to_string(),
                format!("repo = \"gen/{k}.enc\""),
                format!("server = \"gen/{k}\""),
                "mode = \"0600\"".to_string(),
            ];
            edit(k, &mut lines);
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn entry_lines_are_exact() {
        let m = parse(&many(600, |_, _| {})).unwrap();
        for (i, entry) in m.entries.iter().enumerate() {
            assert_eq!(entry.line, 4 * (i + 1) + 1, "{}", entry.repo);
        }
    }

    #[test]
    fn errors_in_3rd_and_500th_entry_name_their_line() {
        let path = "/nonexistent/secrets.toml";
        for k in [3, 500] {
            // A validation error (a bad mode).
            let e = parse(&many(600, |i, l| {
                if i == k {
                    l[3] = "mode = \"0999\"".into();
                }
            }))
            .unwrap_err();
            assert_eq!(e.line, Some(4 * k + 3));
            assert_eq!(
                e.to_string(),
                format!(
                    "{path} line {}: `mode` is not an octal mode like \"0640\"",
                    4 * k + 3
                )
            );
            // An error from the TOML reader itself (an unknown key).
            let e = parse(&many(600, |i, l| {
                if i == k {
                    l[3] = "mdoe = \"0600\"".into();
                }
            }))
            .unwrap_err();
            assert_eq!(e.line, Some(4 * k + 3), "{e}");
            assert!(e.message.contains("mdoe"), "{e}");
            // A path outside the server root.
            let e = parse(&many(600, |i, l| {
                if i == k {
                    l[2] = "server = \"../x\"".into();
                }
            }))
            .unwrap_err();
            assert_eq!(e.line, Some(4 * k + 2), "{e}");
        }
        // The 500th entry repeats the 3rd's repo path: both lines are named.
        let e = parse(&many(600, |i, l| {
            if i == 500 {
                l[1] = "repo = \"gen/3.enc\"".into();
            }
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{path} line {}: `repo = \"gen/3.enc\"` is also the repo path of the entry on line {}; entries share a .enc only to extract different values of it (`key = \"…\"`)",
                4 * 500 + 1,
                4 * 3 + 1
            )
        );
        // And its server path.
        let e = parse(&many(600, |i, l| {
            if i == 500 {
                l[2] = "server = \"./gen/3\"".into();
            }
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{path} line {}: `server = \"gen/3\"` is also the server path of the entry on line {}",
                4 * 500 + 2,
                4 * 3 + 1
            )
        );
    }

    #[test]
    fn owner_and_group_names_resolve_in_every_entry() {
        let m = parse(&many(600, |_, l| {
            l[3] = "owner = \"root\"\ngroup = \"root\"".into();
        }))
        .unwrap();
        assert!(m
            .entries
            .iter()
            .all(|e| e.uid == Some(0) && e.gid == Some(0)));
        // An unknown name in the 500th entry, after 499 lookups of another name.
        let e = parse(&many(600, |i, l| {
            l[3] = if i == 500 {
                "owner = \"no-such-user-envsync\"".into()
            } else {
                "owner = \"root\"".into()
            };
        }))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "/nonexistent/secrets.toml line {}: `owner = \"no-such-user-envsync\"`: no such user on this machine",
                4 * 500 + 3
            )
        );
    }

    #[test]
    fn line_table_counts_newlines_before_the_offset() {
        let text = "a\n\nbc\r\nd\n";
        let lines = Lines::new(text);
        for offset in 0..text.len() + 3 {
            let naive = text.as_bytes()[..offset.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            assert_eq!(lines.line_of(offset), naive, "offset {offset}");
        }
        assert_eq!(Lines::new("").line_of(0), 1);
    }

    #[test]
    fn nothing_may_sit_inside_a_files_folder() {
        let head = "version = 1\n[server]\nroot = \"/srv\"\n";
        let files = "[[file]]\nrepo = \"a.enc\"\nserver = \"app/secrets\"\nas = \"files\"\n";
        for (other, bad) in [
            ("app/secrets/API", true),
            ("app/secrets/x/y", true),
            ("app/secrets2", false),
            ("app/secret", false),
        ] {
            let text = format!("{head}{files}[[file]]\nrepo = \"b.enc\"\nserver = \"{other}\"\n");
            match parse(&text) {
                Err(e) => {
                    assert!(bad, "{other}: {e}");
                    assert_eq!(e.line, Some(9), "{e}");
                    assert!(e.message.contains("line 5"), "{e}");
                }
                Ok(_) => assert!(!bad, "{other} was accepted"),
            }
        }
    }

    #[test]
    fn absolute_server_path_under_root() {
        let m = parse(
            "version = 1\n[server]\nroot = \"/srv\"\n[[file]]\nrepo = \"a.enc\"\nserver = \"/srv/app/.env\"\nmode = \"0640\"\n",
        )
        .unwrap();
        assert_eq!(m.entries[0].server, "app/.env");
        assert_eq!(m.entries[0].mode, 0o640);
    }
}
