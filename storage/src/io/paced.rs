//! Paced writes of large files (checkpoints, zero-filled spare segments): each chunk is written
//! back before the next is written (backups copy files the same way). Left to one final `fsync`, hundreds of MB of dirty pages
//! fill the device queue and every `fdatasync` of the log waits behind them; in chunks, a flush
//! waits for one chunk at most.

use std::fs::File;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A rate limit for bulk work that shares the disk with the serving log (backups, restores,
/// compaction's reading and writing): the bytes counted so far are spread over time at no
/// more than the rate.
#[derive(Debug)]
pub struct Pace {
    bytes_per_second: Option<NonZeroU64>,
    started: Instant,
    bytes: u64,
    /// Set from elsewhere to ask the work to stop (a compaction when the engine stops).
    cancel: Option<Arc<AtomicBool>>,
}

impl Pace {
    /// At most `bytes_per_second` (no limit: `None`).
    pub fn new(bytes_per_second: Option<NonZeroU64>) -> Self {
        Self {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
            cancel: None,
        }
    }

    /// At most `bytes_per_second`, and stopped early once `cancel` is set.
    pub fn cancellable(bytes_per_second: Option<NonZeroU64>, cancel: Arc<AtomicBool>) -> Self {
        Self {
            cancel: Some(cancel),
            ..Self::new(bytes_per_second)
        }
    }

    /// Whether the work was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|cancel| cancel.load(Ordering::Acquire))
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self::new(None)
    }

    /// Counts `bytes` read or written, and waits as long as the rate asks.
    pub fn advance(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        if let Some(rate) = self.bytes_per_second {
            let due = Duration::from_secs_f64(self.bytes as f64 / rate.get() as f64);
            if let Some(early) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(early);
            }
        }
    }
}

/// Bytes written back at a time.
pub const WRITEBACK_CHUNK: usize = 4 << 20;

/// Appends `chunks` to `file` (at its current position, from `offset`), waiting for each
/// chunk's writeback before writing the next. The caller still syncs the file at the end (for
/// its metadata); by then there is little left to write.
pub fn write_paced<'a>(
    file: &mut File,
    offset: u64,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let mut offset = offset;
    for chunk in chunks {
        file.write_all(chunk)?;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: `sync_file_range` only reads its integer arguments; the descriptor is open
        // for as long as `file` is borrowed.
        let result = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset as i64, chunk.len() as i64, flags)
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        offset += chunk.len() as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_keeps_writes_within_its_rate_and_no_pace_waits_not_at_all() {
        let mut paced = Pace::new(NonZeroU64::new(100 << 20));
        for _ in 0..10 {
            paced.advance(1 << 20);
        }
        // 10 MiB at 100 MiB a second: a tenth of a second at least.
        assert!(paced.started.elapsed() >= Duration::from_millis(99));
        let mut unpaced = Pace::unlimited();
        unpaced.advance(usize::MAX >> 1);
        assert_eq!(unpaced.bytes, (usize::MAX >> 1) as u64);
    }
}
