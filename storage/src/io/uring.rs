//! The io_uring backend: one submission of a linked WRITE -> FSYNC(DATASYNC) pair per batch.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{IoUring, opcode, squeue, types};

use super::{BackendKind, IoBackend};

/// Two entries are in flight at most: the write and the fsync linked to it.
const RING_ENTRIES: u32 = 4;
const USER_DATA_WRITE: u64 = 1;
const USER_DATA_FSYNC: u64 = 2;

/// A private ring owned by the writer thread.
pub(crate) struct UringBackend {
    ring: IoUring,
}

impl UringBackend {
    /// Sets up a ring; fails where the kernel or a seccomp profile forbids io_uring.
    pub(crate) fn new() -> io::Result<Self> {
        let ring = IoUring::new(RING_ENTRIES)?;
        Ok(Self { ring })
    }

    /// Submits `entries` and waits for all of their completions; returns their results in
    /// submission order.
    fn submit_and_collect(&mut self, entries: &[squeue::Entry]) -> io::Result<Vec<i32>> {
        assert!(entries.len() <= RING_ENTRIES as usize);
        {
            let mut submission = self.ring.submission();
            for entry in entries {
                // SAFETY: every buffer an entry points to is borrowed by the caller of
                // `write_durable` for the whole call, and this function waits below for the
                // completion of every entry it pushed, so the kernel never touches freed memory.
                unsafe { submission.push(entry) }
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        self.submit_and_wait(entries.len())?;
        let mut results = vec![0i32; entries.len()];
        let mut seen = 0;
        while seen < entries.len() {
            let Some(completion) = self.ring.completion().next() else {
                self.submit_and_wait(1)?;
                continue;
            };
            let slot = (completion.user_data() - 1) as usize;
            assert!(slot < entries.len(), "unexpected io_uring completion");
            results[slot] = completion.result();
            seen += 1;
        }
        Ok(results)
    }
}

impl UringBackend {
    /// Submits what is queued and waits for `count` completions, going on after a signal: an
    /// early return would leave the kernel using a buffer the caller is about to reuse.
    fn submit_and_wait(&mut self, count: usize) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(count) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

impl IoBackend for UringBackend {
    fn write_durable(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
        let fd = types::Fd(file.as_raw_fd());
        let mut written = 0usize;
        // A short write (rare, e.g. a signal) breaks the link and cancels the fsync: write the
        // rest, then fsync again. Each round makes progress or returns an error.
        loop {
            let rest = &buf[written..];
            let length =
                u32::try_from(rest.len()).map_err(|_| io::Error::other("batch too large"))?;
            let write = opcode::Write::new(fd, rest.as_ptr(), length)
                .offset(offset + written as u64)
                .build()
                .flags(squeue::Flags::IO_LINK)
                .user_data(USER_DATA_WRITE);
            let fsync = opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build()
                .user_data(USER_DATA_FSYNC);
            let results = self.submit_and_collect(&[write, fsync])?;
            let (write_result, fsync_result) = (results[0], results[1]);
            if write_result < 0 {
                return Err(io::Error::from_raw_os_error(-write_result));
            }
            if write_result == 0 && !rest.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "io_uring wrote 0 bytes",
                ));
            }
            written += write_result as usize;
            if written == buf.len() {
                // The write was whole, so the linked fsync ran and its result is its own.
                return if fsync_result < 0 {
                    Err(io::Error::from_raw_os_error(-fsync_result))
                } else {
                    Ok(())
                };
            }
            // A short write cancelled the linked fsync (-ECANCELED): go round for the rest.
        }
    }

    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }
}
