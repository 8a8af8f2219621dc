//! Compaction: a sealed segment is rewritten with only the records still needed, and the copy
//! takes its place while the log serves.
//!
//! Records are copied byte for byte (header, CRC and index unchanged), so every link an
//! application keeps by log index stays valid for the records kept; only their offsets change,
//! and the compacted segment lists them sparsely. The log itself always keeps each key's latest
//! record (the one the index finds), every delete (an older record of its key may still be in
//! an earlier segment) and the segment's last record (it ends an append group and says where
//! the segment's indices end); the caller's `keep` decides the rest: records superseded by a
//! later one of their key, and records with no key.
//!
//! The procedure and its crash cases are in `storage/FORMAT.md`, "Compaction": the copy is
//! written to `N.cseg.tmp`, synced, renamed to `N.cseg` (the commit point) and the directory
//! synced; only then does the copy replace the segment in memory and `N.seg` is removed. A
//! crash before the rename leaves the segment as it was (the temporary file is removed at
//! open); after it, opening uses the compacted copy and removes `N.seg` if it is still there.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::record::{self, RecordHeader};
use super::segment::{self, Segment, sync_dir};
use super::state::{MovedRecord, PENDING_SEGMENT, Replacement, State};
use super::{Log, ReadError, RecordView, Shared};
use crate::format::{RECORD_FLAG_DELETE, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use crate::index::Location;
use crate::io::paced::{Pace, WRITEBACK_CHUNK, write_paced};

/// Records whose liveness is checked under one hold of the state's read lock: the writer
/// publishes a batch only between two holds.
const RECORDS_PER_LOCK: usize = 4096;

/// Keys a compaction moves to their new place under one hold of the state's write lock (about
/// 40 ns each).
const MOVES_PER_LOCK: usize = 4096;

/// A sealed segment, as a compaction planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    /// The log index the segment starts at (its file's name).
    pub first_index: u64,
    /// Its file.
    pub path: PathBuf,
    /// The log index of its last record (every segment but the last has one: a compaction
    /// keeps it).
    pub last_index: u64,
    /// Whether it is a compacted segment already.
    pub compacted: bool,
    /// Records in it.
    pub records: u64,
    /// Bytes of its file.
    pub file_bytes: u64,
    /// Of its records, how many a later record of their key superseded since the log was
    /// opened or the segment last compacted (a lower bound on what a compaction drops).
    pub superseded: u64,
}

/// Files of a log pinned against compaction ([`Log::pin_files`]), until dropped.
pub struct FilesPin {
    shared: Arc<Shared>,
}

impl Drop for FilesPin {
    fn drop(&mut self) {
        *self.shared.file_pins.lock() -= 1;
    }
}

impl std::fmt::Debug for FilesPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilesPin")
    }
}

/// What one compaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The segment's first index.
    pub first_index: u64,
    /// The file that holds it now (unchanged when nothing could be dropped).
    pub path: PathBuf,
    /// Records before.
    pub records_before: u64,
    /// Records kept.
    pub records_kept: u64,
    /// File bytes before.
    pub bytes_before: u64,
    /// File bytes after.
    pub bytes_after: u64,
}

/// Why a compaction did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// No sealed segment starts there (the last segment is never compacted: it is written).
    #[error("no sealed segment starts at log index {0}")]
    NotSealed(u64),
    /// The log is open for reading only.
    #[error("the log is open for reading only")]
    ReadOnly,
    /// A record of the segment does not verify.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Files are pinned ([`Log::pin_files`]: a backup is copying them); the segment is
    /// unchanged and the compaction can be tried again once the pin is let go.
    #[error("the log's files are pinned by a copy in progress")]
    Pinned,
    /// The compaction was asked to stop ([`Pace::cancellable`]); the segment is unchanged.
    #[error("the compaction was stopped")]
    Stopped,
    /// Writing or syncing the compacted copy failed; the segment is unchanged.
    #[error("compacting {path}: {source}")]
    Io {
        /// The file being written or removed.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

impl Log {
    /// Every sealed segment (all but the last), oldest first.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        let state = self.shared.state.read();
        let sealed = state.segments.len().saturating_sub(1);
        state.segments[..sealed]
            .iter()
            .zip(&state.offsets)
            .zip(&state.indices)
            .zip(&state.superseded)
            .map(
                |(((segment, offsets), indices), &superseded)| SealedSegment {
                    first_index: segment.first_index,
                    last_index: if segment.compacted() {
                        indices.last().copied().unwrap_or(segment.first_index - 1)
                    } else {
                        segment.first_index + offsets.len() as u64 - 1
                    },
                    path: segment.path.clone(),
                    compacted: segment.compacted(),
                    records: offsets.len() as u64,
                    file_bytes: segment.size() as u64,
                    superseded,
                },
            )
            .collect()
    }

    /// Compacts the sealed segment that starts at `first_index`, keeping what the log needs
    /// and every other record for which `keep` says so, reading and writing at `pace`; unless it would
    /// drop fewer than `min_dropped` records (at least one), when it leaves the segment as it
    /// is. Writes and reads go on meanwhile; one compaction runs at a time. While files are
    /// pinned ([`Log::pin_files`]) it changes none and answers [`CompactError::Pinned`].
    pub fn compact_segment(
        &self,
        first_index: u64,
        keep: &dyn Fn(&RecordView<'_>) -> bool,
        pace: &mut Pace,
        min_dropped: u64,
    ) -> Result<Compacted, CompactError> {
        if self.read_only {
            return Err(CompactError::ReadOnly);
        }
        let _one_at_a_time = self.shared.compaction.lock();
        if *self.shared.file_pins.lock() > 0 {
            return Err(CompactError::Pinned);
        }
        let (ordinal, old, offsets) = {
            let state = self.shared.state.read();
            let sealed = state.segments.len().saturating_sub(1);
            let ordinal = state.segments[..sealed]
                .iter()
                .position(|segment| segment.first_index == first_index)
                .ok_or(CompactError::NotSealed(first_index))?;
            (
                ordinal as u32,
                Arc::clone(&state.segments[ordinal]),
                state.offsets[ordinal].clone(),
            )
        };
        let kept = self.records_to_keep(ordinal, &old, &offsets, keep, pace)?;
        let unchanged = Compacted {
            first_index,
            path: old.path.clone(),
            records_before: offsets.len() as u64,
            records_kept: offsets.len() as u64,
            bytes_before: old.size() as u64,
            bytes_after: old.size() as u64,
        };
        if ((offsets.len() - kept.len()) as u64) < min_dropped.max(1) {
            return Ok(unchanged);
        }
        let copy = write_copy(&old, &kept, pace)?;
        let (replacement, swap) = self.commit_copy(ordinal, &old, copy)?;
        let counters = &self.shared.counters;
        counters.compactions.fetch_add(1, Ordering::Relaxed);
        let reclaimed = (old.size() - replacement.segment.size()) as u64;
        counters
            .compaction_bytes_reclaimed
            .fetch_add(reclaimed, Ordering::Relaxed);
        // The newest checkpoint names the segment as it was, and opening ignores a checkpoint
        // that does not match the segments (a crash now would scan the whole log): one that
        // matches is asked for at once, where checkpoints are written in the background.
        if self.shared.config.checkpoint_interval_records > 0
            && let Some(requests) = &self.checkpoint_requests
        {
            let _ = requests.try_send(());
        }
        tracing::info!(
            longest_hold_us = swap.as_micros() as u64,
            segment = %replacement.segment.path.display(),
            records_before = unchanged.records_before,
            records_kept = kept.len(),
            bytes_before = unchanged.bytes_before,
            bytes_after = replacement.segment.size(),
            "segment compacted"
        );
        Ok(Compacted {
            path: replacement.segment.path.clone(),
            records_kept: kept.len() as u64,
            bytes_after: replacement.segment.size() as u64,
            ..unchanged
        })
    }

    /// Puts `copy` in place of `old` (the sealed segment with `ordinal`): renamed into place,
    /// swapped in under the write lock, and `old`'s file removed, all while no file is pinned
    /// (a pin waits for this to end). Returns the longest the write lock was held at once.
    fn commit_copy(
        &self,
        ordinal: u32,
        old: &Arc<Segment>,
        copy: Copy,
    ) -> Result<(Replacement, std::time::Duration), CompactError> {
        let pins = self.shared.file_pins.lock();
        if *pins > 0 {
            copy.discard();
            return Err(CompactError::Pinned);
        }
        let mut replacement = copy.commit()?;
        let swap = self.swap_in_steps(ordinal, &mut replacement);
        let io_error = |source| CompactError::Io {
            path: old.path.clone(),
            source,
        };
        if !old.compacted() {
            fs::remove_file(&old.path).map_err(io_error)?;
            sync_dir(&self.shared.config.dir).map_err(io_error)?;
        }
        drop(pins);
        Ok((replacement, swap))
    }

    /// Puts `replacement` in the place of the sealed segment `ordinal` in the live state, in
    /// steps that each hold the write lock briefly (readers and the writer go on between
    /// them): the copy readable as the pending segment, the keys moved to it a chunk at a time,
    /// the swap, the keys moved to the segment's ordinal, the pending copy let go. No
    /// checkpoint of the live state is written meanwhile (index entries name the pending
    /// copy). Returns the longest the write lock was held at once.
    fn swap_in_steps(&self, ordinal: u32, replacement: &mut Replacement) -> std::time::Duration {
        // A checkpoint reads the indexes while the log goes on writing: no key may move under
        // it without a record naming it.
        let _no_checkpoint = self.shared.checkpointed.lock();
        let moved = std::mem::take(&mut replacement.moved);
        let mut longest = std::time::Duration::ZERO;
        let mut step = |work: &mut dyn FnMut(&mut State)| {
            let mut state = self.shared.state.write();
            let started = std::time::Instant::now();
            work(&mut state);
            longest = longest.max(started.elapsed());
        };
        step(&mut |state| state.begin_pending(ordinal, replacement));
        for chunk in moved.chunks(MOVES_PER_LOCK) {
            step(&mut |state| state.move_keys(chunk, ordinal, PENDING_SEGMENT));
        }
        step(&mut |state| state.swap_in(ordinal, replacement));
        for chunk in moved.chunks(MOVES_PER_LOCK) {
            step(&mut |state| state.move_keys(chunk, PENDING_SEGMENT, ordinal));
        }
        step(&mut State::end_pending);
        longest
    }

    /// Pins the log's files: until the pin is dropped no compaction commits, so every file a
    /// copy of the log names (a backup's extent) stays as it is. Waits for a compaction that
    /// is committing (a rename, a swap and a removal) to end.
    pub fn pin_files(&self) -> FilesPin {
        *self.shared.file_pins.lock() += 1;
        FilesPin {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The records of `segment` (the sealed segment with `ordinal`) a compaction keeps, with
    /// their offsets in it, in log order.
    fn records_to_keep(
        &self,
        ordinal: u32,
        segment: &Segment,
        offsets: &[u32],
        keep: &dyn Fn(&RecordView<'_>) -> bool,
        pace: &mut Pace,
    ) -> Result<Vec<(u32, RecordHeader)>, CompactError> {
        let mut kept = Vec::new();
        let last = offsets.len().saturating_sub(1);
        for (chunk_number, chunk) in offsets.chunks(RECORDS_PER_LOCK).enumerate() {
            // The reading is paced too: a first look at every segment after a start reads
            // the whole log.
            let read_up_to = chunk
                .last()
                .map_or(0, |&offset| offset as usize + RECORD_HEADER_SIZE);
            let read_from = chunk.first().map_or(0, |&offset| offset as usize);
            pace.advance(read_up_to - read_from);
            segment.will_read(read_from, read_up_to - read_from);
            if pace.cancelled() {
                return Err(CompactError::Stopped);
            }
            let state = self.shared.state.read();
            for (within, &offset) in chunk.iter().enumerate() {
                let location = Location {
                    segment: ordinal,
                    offset,
                };
                let view = state.view(location)?;
                let header = view.header;
                let latest = header.key != 0 && state.primary.get(header.key) == Some(location);
                let needed = chunk_number * RECORDS_PER_LOCK + within == last
                    || latest
                    || header.flags & RECORD_FLAG_DELETE != 0;
                if needed || keep(&view) {
                    kept.push((offset, header));
                }
            }
            assert!(
                std::ptr::eq(Arc::as_ptr(&state.segments[ordinal as usize]), segment),
                "the segment being compacted was replaced under its compaction"
            );
        }
        Ok(kept)
    }
}

/// A compacted copy written and synced under its temporary name, not yet in place.
struct Copy {
    temporary: PathBuf,
    path: PathBuf,
    first_index: u64,
    compaction: u32,
    size: usize,
    offsets: Vec<u32>,
    indices: Vec<u64>,
    moved: Vec<MovedRecord>,
}

/// Writes the compacted copy of `old` holding the `kept` records to `N.cseg.tmp`, synced.
fn write_copy(
    old: &Segment,
    kept: &[(u32, RecordHeader)],
    pace: &mut Pace,
) -> Result<Copy, CompactError> {
    let dir = old
        .path
        .parent()
        .expect("a segment lies in the log's directory");
    let mut copy = Copy {
        temporary: dir.join(segment::compacting_file_name(old.first_index)),
        path: dir.join(segment::compacted_file_name(old.first_index)),
        first_index: old.first_index,
        compaction: old.compaction + 1,
        size: SEGMENT_HEADER_SIZE,
        offsets: Vec::with_capacity(kept.len()),
        indices: Vec::with_capacity(kept.len()),
        moved: Vec::new(),
    };
    for (old_offset, header) in kept {
        copy.offsets.push(copy.size as u32);
        copy.indices.push(header.position.index);
        if header.key != 0 && header.flags & RECORD_FLAG_DELETE == 0 {
            copy.moved.push(MovedRecord {
                key: header.key,
                old_offset: *old_offset,
                new_offset: copy.size as u32,
            });
        }
        copy.size += header.record_size();
    }
    let _ = fs::remove_file(&copy.temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&copy.temporary)
        .map_err(|source| copy.io_error(source))?;
    let header =
        record::encode_segment_header_with(old.first_index, copy.size as u64, copy.compaction);
    let written = write_records(&mut file, &header, old, kept, copy.size, pace)
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        copy.discard();
        if source.kind() == io::ErrorKind::Interrupted {
            return Err(CompactError::Stopped);
        }
        return Err(copy.io_error(source));
    }
    Ok(copy)
}

impl Copy {
    fn io_error(&self, source: io::Error) -> CompactError {
        CompactError::Io {
            path: self.temporary.clone(),
            source,
        }
    }

    /// Removes the temporary file (a failure leaves it for the next open to remove).
    fn discard(&self) {
        let _ = fs::remove_file(&self.temporary);
    }

    /// Renames the copy into place (the commit point) and syncs the directory; returns what
    /// replaces the old segment.
    fn commit(self) -> Result<Replacement, CompactError> {
        let dir = self
            .path
            .parent()
            .expect("a segment lies in the log's directory");
        fs::rename(&self.temporary, &self.path).map_err(|source| self.io_error(source))?;
        sync_dir(dir).map_err(|source| self.io_error(source))?;
        let file = File::open(&self.path).map_err(|source| self.io_error(source))?;
        let segment =
            Segment::from_file(file, self.path.clone(), self.first_index, self.size as u64)
                .map_err(|source| self.io_error(source))?
                .into_compacted(self.compaction);
        Ok(Replacement {
            segment: Arc::new(segment),
            offsets: self.offsets,
            indices: self.indices,
            moved: self.moved,
        })
    }
}

/// Writes the compacted segment's `header` and the records of `old` it `kept` (`size` bytes
/// in all), 4 MiB at a time, each chunk written back before the next, at `pace`.
fn write_records(
    file: &mut File,
    header: &[u8; SEGMENT_HEADER_SIZE],
    old: &Segment,
    kept: &[(u32, RecordHeader)],
    size: usize,
    pace: &mut Pace,
) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(WRITEBACK_CHUNK.min(size));
    chunk.extend_from_slice(header);
    let mut written = 0u64;
    let mut flush = |chunk: &mut Vec<u8>, file: &mut File| -> io::Result<()> {
        write_paced(file, written, [chunk.as_slice()])?;
        written += chunk.len() as u64;
        pace.advance(chunk.len());
        chunk.clear();
        if pace.cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "compaction stopped",
            ));
        }
        Ok(())
    };
    for (offset, header) in kept {
        let bytes = old
            .record_bytes(*offset as usize)
            .filter(|bytes| bytes.len() == header.record_size())
            .ok_or_else(|| io::Error::other("a kept record changed under the compaction"))?;
        if chunk.len() + bytes.len() > WRITEBACK_CHUNK {
            flush(&mut chunk, file)?;
        }
        chunk.extend_from_slice(bytes);
    }
    flush(&mut chunk, file)
}
