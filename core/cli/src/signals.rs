//! Stop signals: SIGINT, SIGTERM and SIGUSR1 set a flag that the runner
//! checks between batches (`Runner::stop`), so that the run in training is
//! recorded as interrupted with its last checkpoint kept, instead of the
//! process dying mid-write. A second SIGINT or SIGTERM exits at once
//! (status 130), which loses only the epoch in flight: the ledger commits
//! whole epochs and checkpoints are written atomically.
//!
//! SIGUSR1 is what a Slurm job asks for before its time limit
//! (`--signal=B:USR1@N`); it is told apart so that a shard can requeue
//! itself after it ([`Stop::by_usr1`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The flags the handlers set.
#[derive(Debug, Clone)]
pub struct Stop {
    /// Any stop signal arrived.
    pub any: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers (once per process) and returns their flags.
    pub fn install() -> std::io::Result<Self> {
        let stop = Self {
            any: Arc::new(AtomicBool::new(false)),
            usr1: Arc::new(AtomicBool::new(false)),
        };
        #[cfg(unix)]
        {
            use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
            use signal_hook::flag;
            // The shutdown handlers come first: they exit only when the
            // flag was already set, by an earlier signal.
            for sig in [SIGINT, SIGTERM] {
                flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop.any))?;
            }
            for sig in [SIGINT, SIGTERM, SIGUSR1] {
                flag::register(sig, Arc::clone(&stop.any))?;
            }
            flag::register(SIGUSR1, Arc::clone(&stop.usr1))?;
        }
        Ok(stop)
    }

    /// Whether the stop came from SIGUSR1 (Slurm's warning before the time
    /// limit, or a user's `scancel --signal=USR1`).
    pub fn by_usr1(&self) -> bool {
        self.usr1.load(Ordering::Relaxed)
    }
}
