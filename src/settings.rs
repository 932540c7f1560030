//! Turns the parsed command line and the environment into checked settings: the manifest
//! found and validated, identity sources resolved, the printer chosen. Nothing here decrypts
//! or writes.

use std::path::PathBuf;

use crate::cli::GlobalArgs;
use crate::error::Error;
use crate::keys::{default_identity_file, home_ssh_keys, IdentityConfig};
use crate::manifest::{self, Manifest};
use crate::output::{Printer, Verbosity};
use crate::secret::SecretBytes;

/// Everything a command needs besides its own arguments.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) manifest: Manifest,
    pub(crate) identities: IdentityConfig,
    pub(crate) printer: Printer,
}

/// The printer the global options ask for.
pub(crate) fn printer(args: &GlobalArgs) -> Printer {
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    Printer::new(verbosity, args.json, args.color)
}

impl Settings {
    /// Resolves global options; `cwd` is where manifest discovery starts.
    pub(crate) fn from_args(args: &GlobalArgs, cwd: PathBuf) -> Result<Self, Error> {
        let printer = printer(args);
        let manifest_path = match &args.manifest {
            Some(path) => path.clone(),
            None => manifest::discover(&cwd).ok_or(Error::NoManifest { start: cwd.clone() })?,
        };
        let manifest = Manifest::load(&manifest_path)?;
        let identities = identity_config(args, &cwd, manifest.identity.clone());
        Ok(Self {
            manifest,
            identities,
            printer,
        })
    }
}

/// Where identities come from: `--identity`, the manifest's `server.identity` (when there is
/// a manifest), `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY`, `SOPS_AGE_SSH_PRIVATE_KEY_FILE`, the
/// default key file and `~/.ssh`, as sops looks for them.
pub(crate) fn identity_config(
    args: &GlobalArgs,
    cwd: &std::path::Path,
    manifest: Option<PathBuf>,
) -> IdentityConfig {
    let env_path = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    IdentityConfig {
        explicit: args.identity.iter().map(|p| cwd.join(p)).collect(),
        manifest,
        env_key_file: env_path("SOPS_AGE_KEY_FILE"),
        env_key: std::env::var("SOPS_AGE_KEY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| SecretBytes::new(v.into_bytes())),
        env_ssh_key_file: env_path("SOPS_AGE_SSH_PRIVATE_KEY_FILE"),
        default_file: default_identity_file(),
        home_ssh: home_ssh_keys(),
    }
}
