//! Io backends: how a batch reaches the disk durably.
//!
//! The writer thread hands a backend one contiguous buffer and a file offset; the backend returns
//! only when the bytes are written *and* `fdatasync` has completed. Two real backends exist:
//! io_uring (a linked WRITE -> FSYNC(DATASYNC) pair, one submission per batch) and a portable one
//! (`pwrite` + `fdatasync`). [`BackendChoice::Auto`] picks io_uring and falls back when the kernel
//! or a container forbids it. [`FaultInjection`] wraps either to fail on purpose in tests, and
//! [`SimulatedDisk`] (`simulated.rs`) is the disk a simulator arms faults on, power loss and
//! torn writes included.

mod fault;
pub mod paced;
mod portable;
mod simulated;
mod uring;

use std::fs::File;
use std::io;
use std::sync::Arc;

pub use fault::FaultInjection;
pub(crate) use fault::FaultyBackend;
pub(crate) use portable::PortableBackend;
pub use simulated::{DiskFault, FileStep, SECTOR_BYTES, SimulatedDisk, StallEnd, TornWrite};
pub(crate) use simulated::{Reached, reached};
pub(crate) use uring::UringBackend;

/// Which backend to use, from the log's configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, otherwise portable.
    #[default]
    Auto,
    /// io_uring or fail to open.
    IoUring,
    /// `pwrite` + `fdatasync`.
    Portable,
}

/// The backend a log is actually using; reported at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring: linked WRITE + FSYNC(DATASYNC).
    IoUring,
    /// `pwrite` + `fdatasync`.
    Portable,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Portable => "portable (pwrite + fdatasync)",
        })
    }
}

/// Writes a buffer at an offset and makes it durable.
pub(crate) trait IoBackend: Send {
    /// Writes all of `buf` at `offset` of `file`, then `fdatasync`s it. Returns only when both are
    /// done; an error means the bytes may or may not be on disk.
    fn write_durable(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()>;

    /// Which backend this is.
    fn kind(&self) -> BackendKind;
}

/// Builds the backend the configuration asks for.
pub(crate) fn open_backend(
    choice: BackendChoice,
    fault: Option<FaultInjection>,
    simulated: Option<Arc<SimulatedDisk>>,
) -> io::Result<Box<dyn IoBackend>> {
    let backend: Box<dyn IoBackend> = match (simulated, choice) {
        (Some(disk), _) => Box::new(simulated::SimulatedBackend::new(disk)),
        (None, BackendChoice::Portable) => Box::new(PortableBackend),
        (None, BackendChoice::IoUring) => Box::new(UringBackend::new()?),
        (None, BackendChoice::Auto) => auto(UringBackend::new()),
    };
    Ok(match fault {
        Some(fault) => Box::new(FaultyBackend::new(backend, fault)),
        None => backend,
    })
}

/// What `Auto` uses given the outcome of setting up io_uring: it where it works, else portable
/// (containers often forbid io_uring with seccomp, or the kernel disables it).
fn auto(uring: io::Result<UringBackend>) -> Box<dyn IoBackend> {
    match uring {
        Ok(uring) => Box::new(uring),
        Err(error) => {
            tracing::info!(%error, "io_uring unavailable, using the portable backend");
            Box::new(PortableBackend)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EPERM`, as a seccomp profile that forbids `io_uring_setup` answers.
    const EPERM: i32 = 1;

    #[test]
    fn auto_falls_back_to_portable_when_io_uring_setup_fails() {
        let backend = auto(Err(io::Error::from_raw_os_error(EPERM)));
        assert_eq!(backend.kind(), BackendKind::Portable);
    }
}
