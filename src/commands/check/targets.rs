//! Plaintext targets inside the git work tree: neither tracked nor staged, and ignored.

use std::collections::BTreeSet;
use std::path::Path;

use super::{Kind, Problem};
use crate::commands::relative;
use crate::error::Error;
use crate::git::Git;
use crate::manifest::Entry;

/// Plaintext targets inside the repo's work tree must be neither tracked nor staged, and
/// must be ignored so that a `git add .` cannot pick them up.
pub(super) fn check_targets(
    entries: &[&Entry],
    tree: &WorkTree,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let (tracked, staged) = (&tree.tracked, &tree.staged);
    let targets: Vec<String> = entries
        .iter()
        .filter(|e| !e.plain)
        .filter_map(|e| relative(&tree.top, &e.server_path))
        .collect();
    let git = Git::open(&tree.top).ok_or_else(|| Error::Git {
        args: "rev-parse --is-inside-work-tree".into(),
        message: format!("{} is no longer a git work tree", tree.top.display()),
    })?;
    let ignored = git.ignored(&targets)?;
    for target in targets {
        let state = TargetState {
            tracked: tracked.contains(&target),
            // `tracked` is the index: a staged path no longer in it is a staged removal
            // (`git rm --cached`, the fix given here), which is the cure, not a problem.
            staged: staged.contains(&target) && tracked.contains(&target),
            ignored: ignored.contains(&target),
        };
        if let Some((kind, message, fix)) = target_problem(state, &target) {
            problems.push(Problem {
                file: target,
                kind,
                message: message.into(),
                fix,
            });
        }
    }
    Ok(())
}

/// The git work tree holding the repo: its top folder, and its tracked and staged files
/// (paths from the top).
pub(super) struct WorkTree {
    pub(super) top: std::path::PathBuf,
    tracked: BTreeSet<String>,
    pub(super) staged: BTreeSet<String>,
}

impl WorkTree {
    /// Reuses what was read for the repo root when the root is the top.
    pub(super) fn read(
        git: &Git<'_>,
        root: &Path,
        staged: &BTreeSet<String>,
        tracked: Option<&BTreeSet<String>>,
    ) -> Result<Self, Error> {
        let top = git.toplevel()?;
        if top == root {
            if let Some(tracked) = tracked {
                return Ok(Self {
                    top,
                    tracked: tracked.clone(),
                    staged: staged.clone(),
                });
            }
        }
        let at_top = Git::open(&top).ok_or_else(|| Error::Git {
            args: "rev-parse --show-toplevel".into(),
            message: format!("{} is not a git work tree", top.display()),
        })?;
        Ok(Self {
            tracked: at_top.tracked()?,
            staged: at_top.staged()?,
            top,
        })
    }
}

/// What git says of a plaintext target.
#[derive(Clone, Copy, Debug)]
struct TargetState {
    tracked: bool,
    staged: bool,
    ignored: bool,
}

/// The problem a plaintext target inside the repo has, if any. Staged wins over tracked:
/// the fix is the same, but "staged" tells a pre-commit hook's user it is not yet pushed.
fn target_problem(state: TargetState, target: &str) -> Option<(Kind, &'static str, String)> {
    let unstage = format!("run `git rm --cached {target}` and add it to .gitignore");
    if state.staged {
        Some((
            Kind::PlaintextStaged,
            "is a plaintext secret staged for commit",
            unstage,
        ))
    } else if state.tracked {
        Some((
            Kind::PlaintextTracked,
            "is a plaintext secret tracked by git",
            format!("{unstage}, then treat its values as leaked and rotate them"),
        ))
    } else if !state.ignored {
        Some((
            Kind::PlaintextNotIgnored,
            "is a plaintext secret inside the repo that git does not ignore",
            format!("add `/{target}` to .gitignore"),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_targets_are_classified() {
        let table = [
            // tracked, staged, ignored → kind
            (false, false, true, None),
            (false, false, false, Some(Kind::PlaintextNotIgnored)),
            (true, false, true, Some(Kind::PlaintextTracked)),
            (true, false, false, Some(Kind::PlaintextTracked)),
            (true, true, false, Some(Kind::PlaintextStaged)),
            (false, true, true, Some(Kind::PlaintextStaged)),
        ];
        for (tracked, staged, ignored, want) in table {
            let state = TargetState {
                tracked,
                staged,
                ignored,
            };
            let got = target_problem(state, "app/.env").map(|(kind, _, _)| kind);
            assert_eq!(got, want, "{state:?}");
        }
    }
}
