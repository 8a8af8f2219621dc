//! Fault injection: a wrapper that makes a real backend fail on purpose, for tests of fail-stop.

use std::fs::File;
use std::io;

use super::{BackendKind, IoBackend};

/// When the wrapped backend should start failing. Used by tests; never set in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInjection {
    /// Batches that succeed before the first failure.
    pub fail_after_batches: u64,
    /// The OS error to report (for example `libc::ENOSPC` = 28 or `libc::EIO` = 5).
    pub os_error: i32,
    /// Whether the failing batch's bytes reach the disk before the error (a failed fsync) or not
    /// (a failed write).
    pub write_reaches_disk: bool,
}

/// A backend that fails every write once `fail_after_batches` have succeeded.
pub(crate) struct FaultyBackend {
    inner: Box<dyn IoBackend>,
    fault: FaultInjection,
    batches_done: u64,
}

impl FaultyBackend {
    pub(crate) fn new(inner: Box<dyn IoBackend>, fault: FaultInjection) -> Self {
        Self {
            inner,
            fault,
            batches_done: 0,
        }
    }
}

impl IoBackend for FaultyBackend {
    fn write_durable(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
        if self.batches_done >= self.fault.fail_after_batches {
            if self.fault.write_reaches_disk {
                self.inner.write_durable(file, offset, buf)?;
            }
            return Err(io::Error::from_raw_os_error(self.fault.os_error));
        }
        self.batches_done += 1;
        self.inner.write_durable(file, offset, buf)
    }

    fn kind(&self) -> BackendKind {
        self.inner.kind()
    }
}
