//! Exit statuses, as the contract numbers them.

use std::process::ExitCode;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done; for diff/status/check: nothing to report.
    Success,
    /// diff/status/check found drift or problems.
    Drift,
    /// Bad manifest, bad input, no matching key, MAC mismatch, I/O failure.
    Error,
    /// Refused: doing it would lose an unsynced change; nothing was written.
    Refused,
    /// Everything was written and is durable, but an `on_change` command failed.
    HookFailed,
    /// Stopped by SIGINT: nothing half-written remains, no temp file left.
    Interrupted,
    /// Stopped by SIGTERM or SIGHUP, as [`ExitStatus::Interrupted`].
    Terminated,
    /// `exec`: the command was found but could not be run (not executable), as shells say.
    CannotRun,
    /// `exec`: the command was not found, as shells say.
    NotFound,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Drift => 1,
            Self::Error => 2,
            Self::Refused => 3,
            Self::HookFailed => 4,
            Self::Interrupted => 130,
            Self::Terminated => 143,
            Self::CannotRun => 126,
            Self::NotFound => 127,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Drift.code(), 1);
        assert_eq!(ExitStatus::Error.code(), 2);
        assert_eq!(ExitStatus::Refused.code(), 3);
        assert_eq!(ExitStatus::HookFailed.code(), 4);
        assert_eq!(ExitStatus::Interrupted.code(), 130);
        assert_eq!(ExitStatus::Terminated.code(), 143);
        assert_eq!(ExitStatus::CannotRun.code(), 126);
        assert_eq!(ExitStatus::NotFound.code(), 127);
    }
}
