//! SIGINT, SIGTERM and SIGHUP: caught from the start of a run, so that a run stops at its next
//! safe point instead of dying between two renames. The batch checks [`check`] before each
//! step and undoes what it applied; the run then exits 130 (SIGINT) or 143 (SIGTERM, SIGHUP)
//! with no temp left behind.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::fs::FsError;

/// The signal received, as its number (0: none yet); set from the signal handler.
static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// A signal that interrupts a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Interrupt,
    Terminate,
    HangUp,
}

impl Signal {
    const ALL: [(Self, i32); 3] = [
        (Self::Interrupt, signal_hook::consts::SIGINT),
        (Self::Terminate, signal_hook::consts::SIGTERM),
        (Self::HangUp, signal_hook::consts::SIGHUP),
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
            Self::HangUp => "SIGHUP",
        }
    }

    /// 130 for SIGINT, 143 for SIGTERM and SIGHUP, as the contract numbers them.
    pub(crate) fn exit_status(self) -> crate::exit::ExitStatus {
        match self {
            Self::Interrupt => crate::exit::ExitStatus::Interrupted,
            Self::Terminate | Self::HangUp => crate::exit::ExitStatus::Terminated,
        }
    }

    pub(crate) fn number(self) -> i32 {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or(0, |(_, n)| *n)
    }
}

/// Installs the handlers: each records its signal and returns, nothing more (the only thing a
/// handler may safely do). Called once, before any secret is read.
pub(crate) fn install() -> std::io::Result<()> {
    let received = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for (signal, number) in Signal::ALL {
        let value = usize::try_from(signal.number()).unwrap_or(1);
        signal_hook::flag::register_usize(number, Arc::clone(received), value)?;
    }
    Ok(())
}

/// The first signal received, if any.
pub(crate) fn received() -> Option<Signal> {
    let number = RECEIVED.get()?.load(Ordering::SeqCst);
    Signal::ALL
        .iter()
        .find(|(_, n)| usize::try_from(*n).ok() == Some(number))
        .map(|(s, _)| *s)
}

/// A safe point: an error when a signal has arrived, so the caller stops and undoes.
pub(crate) fn check() -> Result<(), FsError> {
    match received() {
        Some(signal) => Err(FsError::Interrupted { signal }),
        None => Ok(()),
    }
}
