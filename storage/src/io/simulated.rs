//! A disk a simulator controls: the real file underneath, and faults armed one write at a time.
//!
//! The log's only data not yet durable is the batch inside [`IoBackend::write_durable`]: every
//! other byte it wrote was flushed before it was acknowledged. So a power loss is simulated
//! where it can happen, in a batch's write: the batch reaches the disk as nothing, a prefix, or
//! any subset of its 512-byte sectors (a torn write, as a drive that reorders its writes leaves
//! it), chosen from a seed; from then on the disk is dead and every write fails without
//! touching the file, as if the machine were off. A simulator then drops the log (with
//! `checkpoint_on_close` off, nothing else is written) and reopens the directory, which is then
//! exactly what a machine would find after the power came back. A flush can also fail once,
//! with or without its bytes on the disk, or stall: the batch's write waits, and the log's
//! writer with it, until the simulator ends the stall with the flush done or the power gone
//! (while it waits, the engine keeps executing turns and queueing their batches behind it).
//!
//! The log also changes files outside its batches: it renames a spare segment into place when
//! it rolls, and writes each checkpoint to a temporary file that it syncs and renames. The
//! power can go between those steps too ([`DiskFault::PowerLossAt`]): the log calls
//! [`SimulatedDisk::reached`] at each point, and an armed cut there leaves the files as a power
//! loss could (a temporary file with only a prefix written, a rename the directory never
//! recorded) and turns the disk off.
//!
//! To show that the simulator finds a missing flush, the disk can also be told to skip them
//! ([`SimulatedDisk::plant_skipped_flushes`], a bug planted on purpose): writes then stay in a
//! volatile cache, kept apart with what they overwrote, and a power loss takes them back
//! (keeping, like the write in flight, only what the torn write's rule keeps).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::{BackendKind, IoBackend};

/// The sector a drive writes atomically, and so the unit of a torn write.
pub const SECTOR_BYTES: u64 = 512;

/// `EIO`: what a write to a disk without power reports.
const EIO: i32 = 5;

/// What of the batch in flight reaches the disk when the power goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornWrite {
    /// None of it.
    Nothing,
    /// Its first `bytes` bytes (the whole batch when it is shorter).
    Prefix {
        /// Bytes kept.
        bytes: u64,
    },
    /// Each of its sectors (by file offset, so the first and last may be partial) kept or lost
    /// as the seed decides.
    Sectors {
        /// Decides which sectors are kept.
        seed: u64,
    },
}

/// A fault armed for the disk's next batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// The power goes during the write.
    PowerLoss(TornWrite),
    /// The write or its flush fails with `os_error` (`EIO` 5, `ENOSPC` 28); when
    /// `reaches_disk`, the bytes are durable anyway (a flush that failed after writing).
    FlushFails {
        /// The OS error reported.
        os_error: i32,
        /// Whether the bytes are on the disk.
        reaches_disk: bool,
    },
    /// The write waits until [`SimulatedDisk::end_stall`] says how it ends.
    FlushStalls,
    /// The power goes at a step of a file change outside the batches (batches pass it by).
    PowerLossAt(FileStep),
}

/// A point in a file change outside the log's batches where the power can go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// While a checkpoint's temporary file is written: it keeps its first `bytes` only.
    CheckpointWrite {
        /// Bytes of the temporary file that reached the disk.
        bytes: u64,
    },
    /// After a checkpoint is renamed into place, before its directory is synced: the rename
    /// reached the disk, or did not.
    CheckpointRename {
        /// Whether the rename is on the disk.
        kept: bool,
    },
    /// After a new checkpoint is durable, before the older ones are removed.
    CheckpointCleanup,
    /// After a spare segment is renamed to its final name (the log rolling to it), before the
    /// directory is synced: the rename reached the disk, or did not.
    SegmentRename {
        /// Whether the rename is on the disk.
        kept: bool,
    },
}

/// A point the log reaches in a file change outside its batches, with the files concerned.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reached<'a> {
    /// A checkpoint's temporary file is written, not synced.
    CheckpointWritten {
        /// The temporary file.
        file: &'a std::path::Path,
    },
    /// A checkpoint was renamed from `from` to `to`; the directory is not synced.
    CheckpointRenamed {
        from: &'a std::path::Path,
        to: &'a std::path::Path,
    },
    /// A checkpoint is durable; older ones are still there.
    CheckpointDurable,
    /// A spare was renamed from `from` to the segment `to`; the directory is not synced.
    SegmentRenamed {
        from: &'a std::path::Path,
        to: &'a std::path::Path,
    },
}

/// The power cut at `reached`, if `config` writes through a simulated disk: `Ok` when none is
/// armed there (or there is no simulated disk).
pub(crate) fn reached(disk: Option<&Arc<SimulatedDisk>>, reached: Reached<'_>) -> io::Result<()> {
    match disk {
        Some(disk) => disk.reached(reached),
        None => Ok(()),
    }
}

/// How a stalled write ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallEnd {
    /// It reaches the disk and is flushed.
    Flushed,
    /// The power goes before it is flushed.
    PowerLoss(TornWrite),
}

/// Where a stall is.
#[derive(Debug, Default, PartialEq, Eq)]
enum Stall {
    /// No write is stalled.
    #[default]
    None,
    /// A write waits for its end.
    Waiting,
    /// The simulator ended it; the waiting write takes this.
    Ended(StallEnd),
}

#[derive(Debug, Default)]
struct DiskState {
    armed: Option<DiskFault>,
    powered_off: bool,
    batches_written: u64,
    /// Flushes are skipped (a planted bug).
    skip_flushes: bool,
    /// Writes not flushed, oldest first (only while flushes are skipped).
    unflushed: Vec<Unflushed>,
    stall: Stall,
}

/// A write in the volatile cache, with the bytes it overwrote.
#[derive(Debug)]
struct Unflushed {
    file: File,
    offset: u64,
    before: Vec<u8>,
    after: Vec<u8>,
}

/// The handle a simulator keeps to one log's disk; the log's backend shares it
/// ([`crate::LogConfig::simulated_disk`]).
#[derive(Debug, Default)]
pub struct SimulatedDisk {
    state: Mutex<DiskState>,
    /// Signalled when a write starts to stall and when a stall ends.
    stall_changed: Condvar,
}

impl SimulatedDisk {
    /// A healthy, powered disk.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Arms `fault` for the next batch written (replacing one armed before).
    pub fn arm(&self, fault: DiskFault) {
        self.state.lock().armed = Some(fault);
    }

    /// Whether the power went (a `PowerLoss` fired).
    pub fn is_powered_off(&self) -> bool {
        self.state.lock().powered_off
    }

    /// Plants a bug: from now on the disk acknowledges writes without flushing them, so a power
    /// loss takes back what it acknowledged. For the simulator's test that it finds such bugs.
    pub fn plant_skipped_flushes(&self) {
        self.state.lock().skip_flushes = true;
    }

    /// Batches written in full and flushed since the disk was made.
    pub fn batches_written(&self) -> u64 {
        self.state.lock().batches_written
    }

    /// Waits until a write armed with [`DiskFault::FlushStalls`] is stalled (the log's writer
    /// is inside it, so later batches queue behind it rather than joining it), at most
    /// `timeout`; whether it is.
    pub fn wait_until_stalled(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.stall != Stall::Waiting {
            if self
                .stall_changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.stall == Stall::Waiting;
            }
        }
        true
    }

    /// Called by the log at each step of a file change outside its batches: when a
    /// [`DiskFault::PowerLossAt`] armed for this step fires, leaves the files as the power
    /// loss would, turns the disk off and fails with `EIO` (as it does once the disk is off).
    pub(crate) fn reached(&self, reached: Reached<'_>) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.powered_off {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let Some(DiskFault::PowerLossAt(step)) = state.armed else {
            return Ok(());
        };
        match (step, reached) {
            (FileStep::CheckpointWrite { bytes }, Reached::CheckpointWritten { file }) => {
                let file = File::options().write(true).open(file)?;
                let length = file.metadata()?.len();
                file.set_len(length.min(bytes))?;
                file.sync_all()?;
            }
            (FileStep::CheckpointRename { kept }, Reached::CheckpointRenamed { from, to })
            | (FileStep::SegmentRename { kept }, Reached::SegmentRenamed { from, to }) => {
                if !kept {
                    std::fs::rename(to, from)?;
                }
            }
            (FileStep::CheckpointCleanup, Reached::CheckpointDurable) => {}
            _ => return Ok(()),
        }
        state.armed = None;
        state.powered_off = true;
        Err(io::Error::from_raw_os_error(EIO))
    }

    /// Whether a write is stalled, waiting for [`SimulatedDisk::end_stall`].
    pub fn is_stalled(&self) -> bool {
        self.state.lock().stall == Stall::Waiting
    }

    /// Ends the stalled write as `end` says; false if no write is stalled.
    pub fn end_stall(&self, end: StallEnd) -> bool {
        let mut state = self.state.lock();
        if state.stall != Stall::Waiting {
            return false;
        }
        state.stall = Stall::Ended(end);
        self.stall_changed.notify_all();
        true
    }
}

/// The portable backend's write and flush, with the simulated disk's faults.
pub(crate) struct SimulatedBackend {
    disk: Arc<SimulatedDisk>,
}

impl SimulatedBackend {
    pub(crate) fn new(disk: Arc<SimulatedDisk>) -> Self {
        Self { disk }
    }
}

impl IoBackend for SimulatedBackend {
    fn write_durable(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut state = self.disk.state.lock();
        if state.powered_off {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        // A cut armed for a file step waits for it: batches pass it by.
        let mut armed = match state.armed {
            Some(DiskFault::PowerLossAt(_)) => None,
            _ => state.armed.take(),
        };
        if armed == Some(DiskFault::FlushStalls) {
            armed = self.disk.stall(&mut state);
        }
        match armed {
            None if state.skip_flushes => {
                let mut before = vec![0; buf.len()];
                read_up_to(file, offset, &mut before)?;
                file.write_all_at(buf, offset)?;
                state.unflushed.push(Unflushed {
                    file: file.try_clone()?,
                    offset,
                    before,
                    after: buf.to_vec(),
                });
                state.batches_written += 1;
                Ok(())
            }
            None | Some(DiskFault::FlushStalls | DiskFault::PowerLossAt(_)) => {
                file.write_all_at(buf, offset)?;
                file.sync_data()?;
                state.batches_written += 1;
                Ok(())
            }
            Some(DiskFault::FlushFails {
                os_error,
                reaches_disk,
            }) => {
                if reaches_disk {
                    file.write_all_at(buf, offset)?;
                    file.sync_data()?;
                }
                Err(io::Error::from_raw_os_error(os_error))
            }
            Some(DiskFault::PowerLoss(torn)) => {
                power_loss(&mut state, file, offset, buf, torn)?;
                Err(io::Error::from_raw_os_error(EIO))
            }
        }
    }

    fn kind(&self) -> BackendKind {
        BackendKind::Portable
    }
}

impl SimulatedDisk {
    /// Holds the write in flight until the simulator ends the stall; the fault it then meets.
    fn stall(&self, state: &mut parking_lot::MutexGuard<'_, DiskState>) -> Option<DiskFault> {
        state.stall = Stall::Waiting;
        self.stall_changed.notify_all();
        while state.stall == Stall::Waiting {
            self.stall_changed.wait(state);
        }
        match std::mem::take(&mut state.stall) {
            Stall::Ended(StallEnd::PowerLoss(torn)) => Some(DiskFault::PowerLoss(torn)),
            _ => None,
        }
    }
}

/// The power goes during a write of `buf` at `offset`: what `torn` keeps of it reaches the
/// disk, the volatile cache is lost (newest first, each write torn the same way), and the disk
/// is off.
fn power_loss(
    state: &mut DiskState,
    file: &File,
    offset: u64,
    buf: &[u8],
    torn: TornWrite,
) -> io::Result<()> {
    for (at, bytes) in kept_pieces(offset, buf, torn) {
        file.write_all_at(bytes, at)?;
    }
    file.sync_data()?;
    for (number, lost) in state.unflushed.drain(..).rev().enumerate() {
        lost.file.write_all_at(&lost.before, lost.offset)?;
        let torn = match torn {
            TornWrite::Sectors { seed } => TornWrite::Sectors {
                seed: seed.wrapping_add(number as u64 + 1),
            },
            other => other,
        };
        for (at, bytes) in kept_pieces(lost.offset, &lost.after, torn) {
            lost.file.write_all_at(bytes, at)?;
        }
        lost.file.sync_data()?;
    }
    state.powered_off = true;
    Ok(())
}

/// Reads what `buf` can hold at `offset`, leaving zeros past the file's end.
fn read_up_to(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            read => done += read,
        }
    }
    Ok(())
}

/// The pieces of a write of `buf` at `offset` that a power loss leaves on the disk.
fn kept_pieces(offset: u64, buf: &[u8], torn: TornWrite) -> Vec<(u64, &[u8])> {
    match torn {
        TornWrite::Nothing => Vec::new(),
        TornWrite::Prefix { bytes } => {
            let kept = (bytes as usize).min(buf.len());
            vec![(offset, &buf[..kept])]
        }
        TornWrite::Sectors { seed } => {
            let mut pieces = Vec::new();
            let mut random = SplitMix64(seed);
            let mut start = 0usize;
            while start < buf.len() {
                let at = offset + start as u64;
                let sector_end = (at / SECTOR_BYTES + 1) * SECTOR_BYTES;
                let end = buf.len().min(start + (sector_end - at) as usize);
                if random.next() & 1 == 1 {
                    pieces.push((at, &buf[start..end]));
                }
                start = end;
            }
            pieces
        }
    }
}

/// A small, well-known generator (Steele, Lea and Flood's SplitMix64): the sectors a seed
/// keeps must not depend on a crate's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_follow_file_offsets_and_cover_the_write_once() {
        let buf = vec![7u8; 2000];
        // Starts 100 bytes into a sector: pieces of 412, 512, 512, 512 and 52 bytes.
        let all: Vec<usize> = (0..64)
            .flat_map(|seed| kept_pieces(100, &buf, TornWrite::Sectors { seed }))
            .map(|(at, piece)| {
                assert!(
                    (at + piece.len() as u64 - 1) / SECTOR_BYTES == at / SECTOR_BYTES,
                    "a piece never spans sectors"
                );
                piece.len()
            })
            .collect();
        assert!(all.contains(&412) && all.contains(&52));
        let one = kept_pieces(100, &buf, TornWrite::Sectors { seed: 3 });
        assert_eq!(one, kept_pieces(100, &buf, TornWrite::Sectors { seed: 3 }));
        assert!(one.len() <= 5);
    }

    #[test]
    fn a_prefix_longer_than_the_write_keeps_the_write() {
        let buf = [1u8; 10];
        assert_eq!(
            kept_pieces(0, &buf, TornWrite::Prefix { bytes: 99 }),
            vec![(0, &buf[..])]
        );
        assert!(kept_pieces(0, &buf, TornWrite::Nothing).is_empty());
    }

    /// A zero-filled 4 KiB file in a fresh directory (kept alive by the returned guard).
    fn segment_file() -> io::Result<(tempfile::TempDir, File)> {
        let dir = tempfile::tempdir()?;
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.path().join("segment"))?;
        file.set_len(4096)?;
        Ok((dir, file))
    }

    #[test]
    fn a_powered_off_disk_writes_nothing() -> io::Result<()> {
        let (_dir, file) = segment_file()?;
        let disk = SimulatedDisk::new();
        let mut backend = SimulatedBackend::new(Arc::clone(&disk));
        backend.write_durable(&file, 0, &[1; 8])?;
        disk.arm(DiskFault::PowerLoss(TornWrite::Prefix { bytes: 3 }));
        assert!(backend.write_durable(&file, 8, &[2; 8]).is_err());
        assert!(disk.is_powered_off());
        assert!(backend.write_durable(&file, 16, &[3; 8]).is_err());
        let mut read = [0u8; 24];
        file.read_exact_at(&mut read, 0)?;
        assert_eq!(&read[..8], &[1; 8]);
        assert_eq!(&read[8..11], &[2; 3]);
        assert_eq!(
            &read[11..],
            &[0; 13],
            "nothing after the cut, nothing once off"
        );
        assert_eq!(disk.batches_written(), 1);
        Ok(())
    }

    #[test]
    fn skipped_flushes_are_taken_back_by_a_power_loss() -> io::Result<()> {
        let (_dir, file) = segment_file()?;
        let disk = SimulatedDisk::new();
        let mut backend = SimulatedBackend::new(Arc::clone(&disk));
        backend.write_durable(&file, 0, &[1; 8])?;
        disk.plant_skipped_flushes();
        backend.write_durable(&file, 8, &[2; 8])?;
        backend.write_durable(&file, 4, &[3; 8])?;
        disk.arm(DiskFault::PowerLoss(TornWrite::Nothing));
        assert!(backend.write_durable(&file, 16, &[4; 8]).is_err());
        let mut read = [0u8; 24];
        file.read_exact_at(&mut read, 0)?;
        assert_eq!(&read[..8], &[1; 8], "flushed before the bug: kept");
        assert_eq!(&read[8..], &[0; 16], "acknowledged but never flushed: lost");
        Ok(())
    }

    #[test]
    fn a_stalled_write_waits_for_its_end() -> io::Result<()> {
        let (_dir, file) = segment_file()?;
        let disk = SimulatedDisk::new();
        let short = std::time::Duration::from_millis(20);
        assert!(
            !disk.wait_until_stalled(short),
            "nothing armed, nothing stalls"
        );
        assert!(!disk.end_stall(StallEnd::Flushed));
        for (end, kept) in [
            (StallEnd::Flushed, [5u8; 8]),
            (
                StallEnd::PowerLoss(TornWrite::Prefix { bytes: 3 }),
                [5, 5, 5, 0, 0, 0, 0, 0],
            ),
        ] {
            file.write_all_at(&[0; 8], 0)?;
            disk.arm(DiskFault::FlushStalls);
            let mut backend = SimulatedBackend::new(Arc::clone(&disk));
            let writer_file = file.try_clone()?;
            let writer =
                std::thread::spawn(move || backend.write_durable(&writer_file, 0, &[5; 8]));
            assert!(disk.wait_until_stalled(std::time::Duration::from_secs(10)));
            assert!(disk.is_stalled());
            let mut read = [9u8; 8];
            file.read_exact_at(&mut read, 0)?;
            assert_eq!(read, [0; 8], "nothing reaches the disk while stalled");
            assert!(disk.end_stall(end));
            let result = writer.join().expect("the writer thread ran");
            assert_eq!(result.is_ok(), end == StallEnd::Flushed);
            file.read_exact_at(&mut read, 0)?;
            assert_eq!(read, kept);
            assert!(!disk.is_stalled());
        }
        assert!(disk.is_powered_off());
        Ok(())
    }

    #[test]
    fn a_power_cut_at_a_file_step_leaves_what_the_step_had_done() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let temporary = dir.path().join("checkpoint.tmp");
        std::fs::write(&temporary, [7u8; 100])?;
        let disk = SimulatedDisk::new();
        disk.arm(DiskFault::PowerLossAt(FileStep::CheckpointWrite {
            bytes: 30,
        }));
        // Batches and other steps pass an armed cut by.
        let (_segment_dir, segment) = segment_file()?;
        SimulatedBackend::new(Arc::clone(&disk)).write_durable(&segment, 0, &[1; 8])?;
        disk.reached(Reached::CheckpointDurable)?;
        assert!(
            disk.reached(Reached::CheckpointWritten { file: &temporary })
                .is_err()
        );
        assert_eq!(std::fs::read(&temporary)?, vec![7u8; 30]);
        assert!(disk.is_powered_off());
        assert!(disk.reached(Reached::CheckpointDurable).is_err(), "off");

        let disk = SimulatedDisk::new();
        disk.arm(DiskFault::PowerLossAt(FileStep::SegmentRename {
            kept: false,
        }));
        let (from, to) = (dir.path().join("spare"), dir.path().join("segment"));
        std::fs::write(&from, [1u8])?;
        std::fs::rename(&from, &to)?;
        assert!(
            disk.reached(Reached::SegmentRenamed {
                from: &from,
                to: &to
            })
            .is_err()
        );
        assert!(
            from.exists() && !to.exists(),
            "the rename never reached the disk"
        );
        Ok(())
    }
}
