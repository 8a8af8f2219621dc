//! Taking a directory's `flock`, with a short grace for a holder that is only passing through.
//!
//! A lock belongs to an open file description, and `fork` shares every description with the
//! child until the child's `exec` closes the ones marked close-on-exec. So while any thread of
//! this process is starting a child (a test harness running the `spine` binary, a supervisor
//! spawning a helper), a lock this process has just released can still look held for the
//! moment the child takes to exec. A refusal is therefore only reported once the lock has
//! stayed taken for [`GRACE`]: long enough for any exec, short enough that an operator who
//! started a second server hears of it at once.

use std::fs::{File, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

/// How long a lock must stay held by someone else before it is reported as taken.
pub const GRACE: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_millis(5);

/// Whether the lock is wanted for writing (exclusive) or for reading (shared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Only this holder.
    Exclusive,
    /// Any number of readers, no writer.
    Shared,
}

/// Takes `mode` on `file`, retrying for [`GRACE`] while another holder has it.
pub fn take(file: &File, mode: LockMode) -> Result<(), TryLockError> {
    let started = Instant::now();
    loop {
        let taken = match mode {
            LockMode::Exclusive => file.try_lock(),
            LockMode::Shared => file.try_lock_shared(),
        };
        match taken {
            Err(TryLockError::WouldBlock) if started.elapsed() < GRACE => {
                thread::sleep(RETRY_EVERY);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

    use super::*;

    #[test]
    fn a_lock_released_during_the_grace_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let holder = File::create(&path).unwrap();
        holder.try_lock().unwrap();
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            drop(holder);
        });
        let second = File::create(&path).unwrap();
        take(&second, LockMode::Exclusive).unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn a_lock_held_past_the_grace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let holder = File::create(&path).unwrap();
        holder.try_lock().unwrap();
        let second = File::create(&path).unwrap();
        let started = Instant::now();
        assert!(matches!(
            take(&second, LockMode::Shared),
            Err(TryLockError::WouldBlock)
        ));
        assert!(started.elapsed() >= GRACE);
    }
}
