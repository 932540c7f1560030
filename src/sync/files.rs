//! `as = "files"` entries: a dotenv `.enc` kept on the server as a folder holding one file
//! per key (Docker secrets, `*_FILE` variables), each the value's bytes with no newline added.
//! With `releases`, the folder is `<server>/releases/<UTC stamp>/` behind a `current` symlink.
//!
//! The files envsync owns are those of the keys the `.enc` and its sync record name; any
//! other file in the folder is left alone (and listed by `status`). For the sync states the
//! folder reads as one dotenv plaintext laid out like the `.enc` (its comments and order), so
//! a files entry is judged, diffed and encrypted exactly as a dotenv entry is; only the
//! writing differs ([`plan`]).

mod plan;

pub(crate) use plan::{FolderPlan, StagedReleases};

use std::path::Path;

use rustix::fs::{self as rfs, AtFlags};

use crate::error::{Error, FileError};
use crate::fs::{self, Existing, Stamp, TEMP_PREFIX};
use crate::manifest::{Entry, FilesLayout, Manifest};
use crate::secret::SecretBytes;
use crate::sops::store::dotenv::{self, Item};
use crate::sops::SopsError;

/// One key's file on the server.
#[derive(Debug)]
pub(crate) struct KeyFile {
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) file: Existing,
}

/// What the server folder of a files entry holds.
#[derive(Debug, Default)]
pub(crate) struct FolderSide {
    /// The folder the key files are in, relative to the server root (`<server>`, or
    /// `<server>/releases/<stamp>`); `None` when there is none yet.
    pub(crate) dir: Option<String>,
    /// With releases: the release `current` points at, and the link's text.
    pub(crate) release: Option<String>,
    pub(crate) link: Option<String>,
    /// The files of the keys envsync owns that exist, in key order.
    pub(crate) files: Vec<KeyFile>,
    /// Files in the folder that no key maps to, sorted.
    pub(crate) unmanaged: Vec<String>,
    /// With releases: every release folder's name, sorted (oldest first).
    pub(crate) releases: Vec<String>,
    /// Set by `envsync rollback`: the release it went back to, and the mark's stamp.
    pub(crate) rolled_back: Option<(String, Stamp)>,
    /// `names = "lower"`.
    pub(crate) lower: bool,
}

/// The keys a dotenv file names (its `sops_` metadata lines left out), in order. The key
/// names of an encrypted dotenv file are in clear, so this needs no decryption.
pub(crate) fn keys_in(dotenv_file: &[u8]) -> Vec<String> {
    // A YAML, JSON or INI `.enc`: its top-level scalars' names.
    if let Some(keys) = super::extract::top_level_keys(dotenv_file) {
        return keys;
    }
    dotenv::parse(dotenv_file)
        .map(|items| {
            items
                .into_iter()
                .filter_map(|item| match item {
                    Item::Pair { key, .. } if !key.starts_with("sops_") => Some(key),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The folder holding `releases/` and `current` is the entry's server path.
pub(crate) fn releases_dir(entry: &Entry) -> String {
    format!("{}/releases", entry.server)
}

/// The temp name a new release is written under before it goes live.
pub(crate) fn staging_name(release: &str) -> String {
    format!("{TEMP_PREFIX}{release}.tmp")
}

/// Removes the staged releases a killed run left in `entry`'s `releases/` (run under the
/// lock, before anything is planned to be written there).
pub(crate) fn sweep_staged(manifest: &Manifest, entry: &Entry) {
    let folder = manifest.server_root.join(releases_dir(entry));
    let Ok(names) = std::fs::read_dir(&folder) else {
        return;
    };
    for name in names.filter_map(Result::ok) {
        let staged = name
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX) && n.ends_with(".tmp"));
        if staged && name.file_type().is_ok_and(|t| t.is_dir()) {
            // Never follows a symlink inside what it removes.
            let _ = std::fs::remove_dir_all(name.path());
        }
    }
}

pub(crate) fn current_link(entry: &Entry) -> String {
    format!("{}/current", entry.server)
}

/// Where `envsync rollback` marks an entry as rolled back, in the state folder.
pub(crate) fn rollback_mark(entry: &Entry) -> String {
    format!(
        "rolled-back/{}",
        entry.repo.replace('%', "%25").replace('/', "%2F")
    )
}

/// A key's file name, checked: one path component that is not a temp name.
fn file_name(entry: &Entry, layout: &FilesLayout, key: &str) -> Result<String, Error> {
    let name = layout.name_of(key);
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.starts_with(TEMP_PREFIX);
    if bad {
        return Err(Error::File {
            path: entry.repo_path.clone(),
            source: FileError::KeyFileName {
                key: key.to_string(),
            },
        });
    }
    Ok(name)
}

/// The release `link` (the text of `current`) names: `releases/<stamp>`.
fn release_of(entry: &Entry, manifest: &Manifest, link: &str) -> Result<String, Error> {
    let absolute = manifest.server_root.join(releases_dir(entry));
    let rest = Path::new(link)
        .strip_prefix(&absolute)
        .ok()
        .and_then(Path::to_str)
        .or_else(|| link.trim_start_matches("./").strip_prefix("releases/"));
    match rest {
        Some(stamp) if release_order(stamp).is_some() => Ok(stamp.to_string()),
        _ => Err(Error::File {
            path: manifest.server_root.join(current_link(entry)),
            source: FileError::StrayCurrent {
                link: link.to_string(),
            },
        }),
    }
}

/// Reads the server folder of a files entry: the files of the keys `enc` (the `.enc`) and
/// `synced` (the `.enc` as last synced) name. Also returns the folder as one file, as the
/// rest of the sync code sees a server side: a dotenv plaintext in key order, the first
/// drifting file's mode and owner, and one stamp over every key file.
pub(crate) fn read(
    manifest: &Manifest,
    entry: &Entry,
    layout: &FilesLayout,
    enc: Option<&[u8]>,
    synced: Option<&[u8]>,
) -> Result<(FolderSide, Option<Existing>), Error> {
    // The `.enc`'s keys, each with its file name: two of them on one file is an error.
    let mut keys = enc.map(keys_in).unwrap_or_default();
    // A key set twice is one file (the last value wins, as in `pairs`).
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    let mut names: Vec<String> = Vec::with_capacity(keys.len());
    for key in &keys {
        let name = file_name(entry, layout, key)?;
        if let Some(i) = names.iter().position(|n| *n == name) {
            return Err(Error::File {
                path: entry.repo_path.clone(),
                source: FileError::SameFileName {
                    first: keys[i].clone(),
                    second: key.clone(),
                    name,
                },
            });
        }
        names.push(name);
    }
    // Then the keys of the last sync that the `.enc` dropped: their files are envsync's to
    // remove, unless a key of the `.enc` now owns that file (`Api_Key` renamed `API_KEY`
    // under `names = "lower"`).
    for key in synced.map(keys_in).unwrap_or_default() {
        let Ok(name) = file_name(entry, layout, &key) else {
            continue;
        };
        if !keys.contains(&key) && !names.contains(&name) {
            keys.push(key);
            names.push(name);
        }
    }
    let root = &manifest.server_root;
    let mut side = FolderSide {
        lower: layout.lower,
        ..FolderSide::default()
    };
    if let Some(mark) = fs::read(&manifest.state_dir, &rollback_mark(entry))? {
        let text = String::from_utf8_lossy(mark.bytes.expose())
            .trim()
            .to_string();
        side.rolled_back = Some((text, mark.stamp));
    }
    let dir = if layout.releases.is_some() {
        side.releases = list_releases(root, entry)?;
        match fs::read_link(root, &current_link(entry))? {
            None => None,
            Some(link) => {
                let release = release_of(entry, manifest, &link)?;
                side.link = Some(link);
                let dir = format!("{}/{release}", releases_dir(entry));
                side.release = Some(release);
                Some(dir)
            }
        }
    } else {
        Some(entry.server.clone())
    };
    let Some(dir) = dir else {
        return Ok((side, None));
    };
    let Some(folder) = folder_stat(root, &dir)? else {
        return Ok((side, None));
    };
    for (key, name) in keys.iter().zip(&names) {
        if let Some(file) = fs::read(root, &format!("{dir}/{name}"))? {
            side.files.push(KeyFile {
                key: key.clone(),
                name: name.clone(),
                file,
            });
        }
    }
    side.unmanaged = list(root, &dir)?
        .into_iter()
        .filter(|n| !n.starts_with(TEMP_PREFIX) && !names.contains(n))
        .collect();
    side.dir = Some(dir);
    // A folder holding none of the key files (made by hand, or by `docker compose`) is a
    // server that has not been written yet, not an edit that emptied it.
    if side.files.is_empty() {
        return Ok((side, None));
    }
    let whole = side.as_one_file(entry, &folder);
    Ok((side, Some(whole)))
}

/// Whether a key file's mode, owner or group differ from its entry's.
fn drifts(entry: &Entry, file: &Existing) -> bool {
    file.mode != entry.mode
        || entry.uid.is_some_and(|u| u != file.uid)
        || entry.gid.is_some_and(|g| g != file.gid)
}

/// The stat of the folder `base/relative`, `None` when missing; not a folder is an error.
fn folder_stat(base: &Path, relative: &str) -> Result<Option<rfs::Stat>, Error> {
    let path = base.join(relative);
    let Some((dir, name)) = fs::open_parent(base, relative, None)? else {
        return Ok(None);
    };
    match rfs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
            Ok(Some(st))
        }
        Ok(_) => Err(Error::Fs(fs::FsError::BadFolder { path })),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::Fs(fs::FsError::io(&path, "inspect", e))),
    }
}

/// The names in the folder `base/relative`, sorted (none when it does not exist).
fn list(base: &Path, relative: &str) -> Result<Vec<String>, Error> {
    let path = base.join(relative);
    let mut names: Vec<String> = match std::fs::read_dir(&path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::Fs(fs::FsError::io(&path, "list", e))),
    };
    names.sort();
    Ok(names)
}

/// One stamp over a folder's key files: any write, rename, chmod or removal of one of
/// them changes it; other files in the folder (and the folder's own times, which the
/// batch's clean-up moves) do not.
pub(crate) fn combined_stamp<'a>(
    folder: &rfs::Stat,
    files: impl IntoIterator<Item = (&'a str, Stamp)>,
) -> Stamp {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let (mut mtime, mut ctime) = ((0, 0), (0, 0));
    // By name: the same files give the same stamp in whatever order they were listed.
    let mut files: Vec<(&str, Stamp)> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    for (name, stamp) in files {
        hash.update(format!("{name}\0{}\n", stamp.encode()));
        mtime = mtime.max(stamp.mtime);
        ctime = ctime.max(stamp.ctime);
    }
    let digest = hash.finalize();
    let mut size = [0u8; 8];
    size.copy_from_slice(&digest[..8]);
    Stamp {
        dev: folder.st_dev,
        ino: folder.st_ino,
        // Positive, as a stamp's size is read back through a signed field in places.
        size: u64::from_le_bytes(size) >> 1,
        mtime,
        ctime,
    }
}

impl FolderSide {
    /// The folder as one server file (see [`read`]).
    fn as_one_file(&self, entry: &Entry, folder: &rfs::Stat) -> Existing {
        let shown = (self.files.iter().find(|f| drifts(entry, &f.file))).or(self.files.first());
        let stamps = self.files.iter().map(|f| (f.name.as_str(), f.file.stamp));
        Existing {
            bytes: self.plaintext(None),
            mode: shown.map_or(entry.mode, |f| f.file.mode),
            uid: shown.map_or(folder.st_uid, |f| f.file.uid),
            gid: shown.map_or(entry.gid.unwrap_or(folder.st_gid), |f| f.file.gid),
            stamp: combined_stamp(folder, stamps),
        }
    }

    /// The folder as a dotenv plaintext laid out like `template` (the `.enc`'s plaintext:
    /// its comments and key order; a key with no file is left out); keys it does not name
    /// follow, in key order.
    pub(crate) fn plaintext(&self, template: Option<&[u8]>) -> SecretBytes {
        // By file name: under `names = "lower"` a key renamed in case (`Api_Key` in the last
        // sync, `API_KEY` now) names the same file.
        let name_of = |key: &str| {
            if self.lower {
                key.to_lowercase()
            } else {
                key.to_string()
            }
        };
        let value = |key: &str| {
            let name = name_of(key);
            self.files.iter().find(|f| f.name == name)
        };
        let mut items = Vec::with_capacity(self.files.len());
        let template = template
            .and_then(|t| dotenv::parse(t).ok())
            .unwrap_or_default();
        for item in &template {
            match item {
                Item::Comment(_) => items.push(item.clone()),
                Item::Pair { key, .. } => {
                    if let Some(f) = value(key) {
                        items.push(Item::Pair {
                            key: key.clone(),
                            value: f.file.bytes.clone(),
                        });
                    }
                }
            }
        }
        let named = |name: &str| {
            template
                .iter()
                .any(|i| matches!(i, Item::Pair { key: k, .. } if name_of(k) == name))
        };
        for f in self.files.iter().filter(|f| !named(&f.name)) {
            items.push(Item::Pair {
                key: f.key.clone(),
                value: f.file.bytes.clone(),
            });
        }
        dotenv::emit(&items)
    }
}

/// The pairs of a dotenv plaintext, as the files they become.
pub(crate) fn pairs(
    entry: &Entry,
    layout: &FilesLayout,
    plaintext: &[u8],
) -> Result<Vec<(String, String, SecretBytes)>, Error> {
    let items = dotenv::parse(plaintext).map_err(|e: SopsError| Error::File {
        path: entry.repo_path.clone(),
        source: e.into(),
    })?;
    let mut out: Vec<(String, String, SecretBytes)> = Vec::new();
    for item in items {
        if let Item::Pair { key, value } = item {
            let name = file_name(entry, layout, &key)?;
            // A key set twice: the last value wins, as a dotenv reader would have it.
            out.retain(|(k, _, _)| *k != key);
            if let Some((first, _, _)) = out.iter().find(|(_, n, _)| *n == name) {
                return Err(Error::File {
                    path: entry.repo_path.clone(),
                    source: FileError::SameFileName {
                        first: first.clone(),
                        second: key,
                        name,
                    },
                });
            }
            out.push((key, name, value));
        }
    }
    Ok(out)
}

/// Where a release name sorts: its UTC stamp, then its `-N` (0 without one). `None` for a
/// name envsync does not make (`notes.txt`, `0-keep-me`): never a release, never pruned.
pub(crate) fn release_order(name: &str) -> Option<(&str, u32)> {
    let (stamp, n) = match name.split_once('-') {
        Some((stamp, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (stamp, n.parse().ok()?)
        }
        Some(_) => return None,
        None => (name, 0),
    };
    let b = stamp.as_bytes();
    let shaped = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shaped.then_some((stamp, n))
}

/// The releases of `entry`: the folders (not links, not files) in `releases/` whose names
/// envsync makes, oldest first.
pub(crate) fn list_releases(root: &Path, entry: &Entry) -> Result<Vec<String>, Error> {
    let folder = root.join(releases_dir(entry));
    let mut names: Vec<String> = list(root, &releases_dir(entry))?
        .into_iter()
        .filter(|n| release_order(n).is_some())
        .filter(|n| std::fs::symlink_metadata(folder.join(n)).is_ok_and(|m| m.file_type().is_dir()))
        .collect();
    names.sort_by(|a, b| release_order(a).cmp(&release_order(b)));
    Ok(names)
}

/// A name for a new release: the UTC time; when a release of that second (or a later one,
/// from a clock set back) exists, the newest one's name with the next `-NNN`. Names then
/// sort in the order the releases were made, and a pruned name is never reused.
pub(crate) fn new_release_name(taken: &[String]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    next_release_name(&stamp, taken)
}

fn next_release_name(stamp: &str, taken: &[String]) -> String {
    let newest = taken.iter().filter_map(|t| release_order(t)).max();
    match newest {
        Some((base, n)) if base >= stamp => format!("{base}-{:03}", n + 1),
        _ => stamp.to_string(),
    }
}

/// The releases beyond the newest `keep` (by name), never the one `current` points at.
pub(crate) fn to_prune(releases: &[String], keep: usize, current: &str) -> Vec<String> {
    let mut sorted: Vec<&String> = releases
        .iter()
        .filter(|r| release_order(r).is_some())
        .collect();
    sorted.sort_by(|a, b| release_order(a).cmp(&release_order(b)));
    let mut kept = 0;
    let mut prune = Vec::new();
    for name in sorted.into_iter().rev() {
        if name == current {
            continue;
        }
        // `current` counts as one of the kept.
        if kept + 1 < keep {
            kept += 1;
        } else {
            prune.push(name.clone());
        }
    }
    prune.reverse();
    prune
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_and_current() {
        let r = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a1, a2, a3) = (
            "20260101T000000Z",
            "20260101T000000Z-001",
            "20260102T000000Z",
        );
        let a4 = "20260102T000000Z-1000";
        let a5 = "20260102T000000Z-999";
        let all = r(&[a4, a2, a1, "notes.txt", a3, a5]);
        assert_eq!(to_prune(&all, 2, a4), r(&[a1, a2, a3]));
        assert_eq!(to_prune(&all, 1, a4), r(&[a1, a2, a3, a5]));
        // After a rollback to a2: a2 and the newest other are kept.
        assert_eq!(to_prune(&all, 2, a2), r(&[a1, a3, a5]));
        assert_eq!(to_prune(&all, 9, a4), r(&[]));
        assert_eq!(to_prune(&r(&[a1]), 1, a1), r(&[]));
    }

    #[test]
    fn only_names_envsync_makes_are_releases() {
        for good in [
            "20260215T090000Z",
            "20260215T090000Z-001",
            "20260215T090000Z-1000",
        ] {
            assert!(release_order(good).is_some(), "{good}");
        }
        for bad in [
            "notes.txt",
            "0-keep-me",
            "20260215T090000Z-",
            "20260215T090000Z-x",
            "2026021T090000Z",
            "20260215T090000Z-1-2",
            ".envsync.20260215T090000Z.tmp",
            "",
        ] {
            assert!(release_order(bad).is_none(), "{bad}");
        }
        assert!(release_order("20260215T090000Z-999") < release_order("20260215T090000Z-1000"));
    }

    #[test]
    fn release_names_sort_as_made_and_never_repeat() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let t = "20260215T090000Z";
        assert_eq!(next_release_name(t, &[]), t);
        assert_eq!(next_release_name(t, &names(&["20260214T000000Z"])), t);
        assert_eq!(next_release_name(t, &names(&[t])), format!("{t}-001"));
        // The newest is kept by pruning: its successor is after it, never a freed name.
        assert_eq!(
            next_release_name(t, &names(&[&format!("{t}-002")])),
            format!("{t}-003")
        );
        // A clock set back: still after the newest.
        assert_eq!(
            next_release_name(t, &names(&["20260301T000000Z"])),
            "20260301T000000Z-001"
        );
        let mut made: Vec<String> = vec![];
        for _ in 0..1003 {
            let name = next_release_name(t, &made);
            let order = release_order(&name);
            assert!(
                made.iter().all(|m| release_order(m) < order),
                "{name} after {:?}",
                made.last()
            );
            made.push(name);
        }
        // A name that is not a release does not count.
        assert_eq!(next_release_name(t, &names(&["zzz"])), t);
        assert_eq!(new_release_name(&[]).len(), t.len());
    }

    fn side(files: &[(&str, &[u8])]) -> FolderSide {
        let stamp = Stamp {
            dev: 1,
            ino: 2,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
        };
        FolderSide {
            files: files
                .iter()
                .map(|(key, value)| KeyFile {
                    key: key.to_string(),
                    name: key.to_lowercase(),
                    file: Existing {
                        bytes: SecretBytes::from(*value),
                        mode: 0o600,
                        uid: 0,
                        gid: 0,
                        stamp,
                    },
                })
                .collect(),
            lower: true,
            ..FolderSide::default()
        }
    }

    /// The folder reads as the `.enc` would hold it: the template's comments and order, a
    /// key with no file left out, a key the template lacks (a file envsync owns from the
    /// last sync) after it, and line feeds escaped as sops does.
    #[test]
    fn a_folder_reads_as_its_template_lays_it_out() {
        let folder = side(&[("B", b"two\nlines"), ("A", b"1"), ("OLD", b"x")]);
        let template = b"#top\nA=old\nGONE=z\n#mid\nB=old\n";
        assert_eq!(
            folder.plaintext(Some(template)).expose(),
            b"#top\nA=1\n#mid\nB=two\\nlines\nOLD=x\n"
        );
        assert_eq!(
            folder.plaintext(None).expose(),
            b"B=two\\nlines\nA=1\nOLD=x\n"
        );
    }

    #[test]
    fn keys_of_an_encrypted_file_leave_metadata_out() {
        let enc = b"#ENC[AES256_GCM,data:x]\nA=ENC[AES256_GCM,data:y]\nB=ENC[z]\nsops_version=3.11.0\nsops_mac=ENC[m]\n";
        assert_eq!(keys_in(enc), ["A", "B"]);
    }
}
