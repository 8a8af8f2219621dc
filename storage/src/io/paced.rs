//! Paced writes of large files (checkpoints, zero-filled spare segments): each chunk is written
//! back before the next is written (backups copy files the same way). Left to one final `fsync`, hundreds of MB of dirty pages
//! fill the device queue and every `fdatasync` of the log waits behind them; in chunks, a flush
//! waits for one chunk at most.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

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
