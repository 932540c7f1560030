//! What envsync asks git (which files are tracked, staged and ignored), and the one place
//! that adds lines to the repo's `.gitignore` (`add`, `init`). git runs as a child process
//! with `-C repo_root` and arguments passed as a list, never through a shell, so no path is
//! ever interpreted. Paths come back relative to the repo root (the manifest's folder),
//! which may be a subfolder of the git work tree.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::commands::relative;
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::fs::{AtomicWriter, Folders, Perms};

/// The repo root as git sees it.
pub(crate) struct Git<'r> {
    root: &'r Path,
}

impl<'r> Git<'r> {
    /// The git work tree holding `root`, or None when it is not in one (or git is not
    /// installed): then `check` falls back to walking the folder.
    pub(crate) fn open(root: &'r Path) -> Option<Self> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "--is-inside-work-tree"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        (out.status.success() && out.stdout.trim_ascii() == b"true").then_some(Self { root })
    }

    /// Runs git; `ok` lists the exit codes that are answers rather than failures.
    fn run(&self, args: &[&str], ok: &[i32]) -> Result<(i32, Vec<u8>), Error> {
        self.run_with(args, None, ok)
    }

    /// Runs git with `input` on its stdin (paths, so that no path is taken for an option).
    fn run_with(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        ok: &[i32],
    ) -> Result<(i32, Vec<u8>), Error> {
        let failed = |message: String| Error::Git {
            args: args.join(" "),
            message,
        };
        let mut child = Command::new("git")
            .arg("-C")
            .arg(self.root)
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A small list of paths: git reads all of it before answering, so writing it
            // whole before reading the output cannot deadlock.
            stdin.write_all(input).map_err(|e| failed(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed(e.to_string()))?;
        let code = out.status.code().unwrap_or(-1);
        if !ok.contains(&code) {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok((code, out.stdout))
    }

    /// Every tracked file under the repo root.
    pub(crate) fn tracked(&self) -> Result<BTreeSet<String>, Error> {
        let (_, out) = self.run(&["ls-files", "-z", "--full-name", "--", "."], &[0])?;
        // --full-name gives paths from the top of the work tree; strip the prefix so they
        // compare with the manifest's repo-relative paths.
        let prefix = self.prefix()?;
        Ok(split_z(&out)
            .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// Every file staged for the next commit under the repo root (added, changed, renamed;
    /// deletions too, so a staged removal of an `.enc` selects its entry).
    pub(crate) fn staged(&self) -> Result<BTreeSet<String>, Error> {
        let (_, out) = self.run(
            &["diff", "--cached", "--name-only", "--relative", "-z"],
            &[0],
        )?;
        Ok(split_z(&out).map(str::to_string).collect())
    }

    /// Which of `paths` git ignores (a tracked file is never ignored).
    pub(crate) fn ignored(&self, paths: &[String]) -> Result<BTreeSet<String>, Error> {
        if paths.is_empty() {
            return Ok(BTreeSet::new());
        }
        let input: Vec<u8> = paths
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0)))
            .collect();
        // Exit 1: none of them is ignored.
        let (_, out) = self.run_with(&["check-ignore", "-z", "--stdin"], Some(&input), &[0, 1])?;
        Ok(split_z(&out).map(str::to_string).collect())
    }

    /// The top folder of the work tree (where `.git` is).
    pub(crate) fn toplevel(&self) -> Result<std::path::PathBuf, Error> {
        let (_, out) = self.run(&["rev-parse", "--show-toplevel"], &[0])?;
        Ok(std::path::PathBuf::from(
            String::from_utf8_lossy(out.trim_ascii()).into_owned(),
        ))
    }

    /// The repo root's path from the top of the work tree, with a trailing `/` (or empty).
    fn prefix(&self) -> Result<String, Error> {
        let (_, out) = self.run(&["rev-parse", "--show-prefix"], &[0])?;
        Ok(String::from_utf8_lossy(out.trim_ascii()).into_owned())
    }
}

/// The lines `.gitignore` needs so that git ignores every one of `targets` (repo-relative
/// plaintext paths): `/path` for each one git does not ignore yet (all of them when the repo
/// is not in a git work tree). Anchored, so that it matches that one file only.
pub(crate) fn missing_ignores(root: &Path, targets: &[String]) -> Result<Vec<String>, Error> {
    let ignored = match Git::open(root) {
        Some(git) => git.ignored(targets)?,
        None => BTreeSet::new(),
    };
    let mut lines: Vec<String> = targets
        .iter()
        .filter(|t| !ignored.contains(*t))
        .map(|t| format!("/{}", escape_pattern(t)))
        .collect();
    lines.dedup();
    Ok(lines)
}

/// What `.gitignore` needs so that git ignores plaintext targets and the state folder.
#[derive(Debug)]
pub(crate) struct IgnorePlan {
    /// The folder whose `.gitignore` takes the lines: the top of the git work tree (the
    /// repo root when it is not in one).
    pub(crate) base: PathBuf,
    pub(crate) lines: Vec<String>,
    /// Targets git tracks already (committed in clear): ignoring them does not untrack them.
    pub(crate) tracked: Vec<String>,
}

/// Plans the ignore lines for `targets` (server files) and the state folder, each when it
/// is inside the git work tree holding `repo_root` (which may start above it: a manifest in
/// infra/ with `root = ".."`) and git does not ignore it yet. The state folder is asked
/// about as a file in it (`<state>/lock`), which a folder pattern matches whether or not
/// the folder exists yet, and ignored as a folder.
pub(crate) fn plan_ignores(
    repo_root: &Path,
    state_dir: &Path,
    targets: &[&Path],
) -> Result<IgnorePlan, Error> {
    let top = match Git::open(repo_root) {
        Some(repo) => repo.toplevel()?,
        None => repo_root.to_path_buf(),
    };
    // Folders resolved (a root reached through a link into the repo), the file itself not:
    // git sees a linked file by its own path.
    let resolved = |t: &Path| match (t.parent(), t.file_name()) {
        (Some(parent), Some(name)) => real(parent).join(name),
        _ => t.to_path_buf(),
    };
    let inside: Vec<String> = targets
        .iter()
        .filter_map(|t| relative(&top, &resolved(t)))
        .collect();
    let tracked = match Git::open(&top) {
        Some(repo) if !inside.is_empty() => {
            let tracked = repo.tracked()?;
            inside
                .iter()
                .filter(|t| tracked.contains(*t))
                .cloned()
                .collect()
        }
        _ => Vec::new(),
    };
    let state = relative(&top, &real(state_dir));
    let state_probe = state.as_ref().map(|s| format!("{s}/lock"));
    let asked: Vec<String> = inside.iter().cloned().chain(state_probe.clone()).collect();
    let lines = missing_ignores(&top, &asked)?
        .into_iter()
        .map(|line| match (&state, &state_probe) {
            (Some(state), Some(probe)) if line == format!("/{}", escape_pattern(probe)) => {
                format!("/{}/", escape_pattern(state))
            }
            _ => line,
        })
        .collect();
    Ok(IgnorePlan {
        base: top,
        lines,
        tracked,
    })
}

/// `path` with its longest existing part resolved (links, `..`), the rest as written: a
/// root that does not exist yet still compares with the repo's real path.
pub(crate) fn real(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(found) = existing.canonicalize() {
            return missing.iter().rev().fold(found, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Appends `lines` to `<root>/.gitignore` (created 0644 when missing) through the atomic
/// writer, keeping what is there and its mode.
pub(crate) fn append_ignores(root: &Path, lines: &[String]) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let path = root.join(".gitignore");
    let (text, mode) = match std::fs::read(&path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                .unwrap_or(0o644);
            (bytes, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0o644),
        Err(source) => return Err(Error::Read { path, source }),
    };
    let text = with_ignores(&text, lines);
    let perms = Perms {
        mode,
        uid: None,
        gid: None,
        folders: Folders::PRIVATE,
        durable: true,
    };
    AtomicWriter::new().write(root, ".gitignore", &text, perms)?;
    Ok(())
}

/// `.gitignore` content `existing` with `lines` added at the end.
pub(crate) fn with_ignores(existing: &[u8], lines: &[String]) -> Vec<u8> {
    let mut text = existing.to_vec();
    if !text.is_empty() && !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    for line in lines {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    text
}

/// A path as a `.gitignore` pattern that matches only itself: glob characters, a leading
/// `#` or `!` and trailing spaces are escaped with a backslash.
pub(crate) fn escape_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.pop();
        out.push_str("\\ ");
    }
    out
}

/// The NUL-separated names git prints with `-z`.
fn split_z(out: &[u8]) -> impl Iterator<Item = &str> {
    out.split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .filter_map(|p| std::str::from_utf8(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_paths_resolve_links_in_the_part_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(&repo, repo.join("link")).unwrap();
        assert_eq!(real(&repo.join("link/live/srv")), repo.join("live/srv"));
    }

    #[test]
    fn ignore_patterns_match_only_the_path() {
        let table = [
            ("app/.env", "app/.env"),
            ("a*b/[x]?.env", "a\\*b/\\[x\\]\\?.env"),
            ("#notes/!x", "\\#notes/\\!x"),
            ("back\\slash", "back\\\\slash"),
            ("trailing ", "trailing\\ "),
        ];
        for (path, want) in table {
            assert_eq!(escape_pattern(path), want, "{path}");
        }
    }
}
