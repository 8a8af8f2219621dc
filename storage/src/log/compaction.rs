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
use super::segment::{self, COMPACTING_SUFFIX, Segment, sync_dir};
use super::state::{MovedRecord, Replacement};
use super::{Log, ReadError, RecordView};
use crate::format::{RECORD_FLAG_DELETE, SEGMENT_HEADER_SIZE};
use crate::index::Location;
use crate::io::paced::{Pace, WRITEBACK_CHUNK, write_paced};

/// Records whose liveness is checked under one hold of the state's read lock: the writer
/// publishes a batch only between two holds.
const RECORDS_PER_LOCK: usize = 4096;

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
            .map(|((segment, offsets), indices)| SealedSegment {
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
            })
            .collect()
    }

    /// Compacts the sealed segment that starts at `first_index`, keeping what the log needs
    /// and every other record for which `keep` says so, writing at `pace`. Writes and reads go on meanwhile; one compaction runs at a time.
    pub fn compact_segment(
        &self,
        first_index: u64,
        keep: &dyn Fn(&RecordView<'_>) -> bool,
        pace: &mut Pace,
    ) -> Result<Compacted, CompactError> {
        if self.read_only {
            return Err(CompactError::ReadOnly);
        }
        let _one_at_a_time = self.shared.compaction.lock();
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
        let kept = self.records_to_keep(ordinal, &old, &offsets, keep)?;
        let unchanged = Compacted {
            first_index,
            path: old.path.clone(),
            records_before: offsets.len() as u64,
            records_kept: offsets.len() as u64,
            bytes_before: old.size() as u64,
            bytes_after: old.size() as u64,
        };
        if kept.len() == offsets.len() {
            return Ok(unchanged);
        }
        let (path, replacement) = write_compacted(&old, &kept, pace)?;
        {
            let mut state = self.shared.state.write();
            state.replace_segment(ordinal, &replacement);
        }
        // The checkpointer's copy of the indexes still points into the old segment.
        self.shared.compactions.fetch_add(1, Ordering::Release);
        let dir = &self.shared.config.dir;
        let io_error = |source| CompactError::Io {
            path: old.path.clone(),
            source,
        };
        if !old.compacted() {
            fs::remove_file(&old.path).map_err(io_error)?;
            sync_dir(dir).map_err(io_error)?;
        }
        tracing::info!(
            segment = %path.display(),
            records_before = unchanged.records_before,
            records_kept = kept.len(),
            bytes_before = unchanged.bytes_before,
            bytes_after = replacement.segment.size(),
            "segment compacted"
        );
        Ok(Compacted {
            path,
            records_kept: kept.len() as u64,
            bytes_after: replacement.segment.size() as u64,
            ..unchanged
        })
    }

    /// The records of `segment` (the sealed segment with `ordinal`) a compaction keeps, with
    /// their offsets in it, in log order.
    fn records_to_keep(
        &self,
        ordinal: u32,
        segment: &Segment,
        offsets: &[u32],
        keep: &dyn Fn(&RecordView<'_>) -> bool,
    ) -> Result<Vec<(u32, RecordHeader)>, CompactError> {
        let mut kept = Vec::new();
        let last = offsets.len().saturating_sub(1);
        for (chunk_number, chunk) in offsets.chunks(RECORDS_PER_LOCK).enumerate() {
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

/// Writes the compacted copy of `old` holding the `kept` records, and commits it: synced,
/// renamed into place, the directory synced. Returns its path and what replaces `old`.
fn write_compacted(
    old: &Segment,
    kept: &[(u32, RecordHeader)],
    pace: &mut Pace,
) -> Result<(PathBuf, Replacement), CompactError> {
    let dir = old
        .path
        .parent()
        .expect("a segment lies in the log's directory");
    let path = dir.join(segment::compacted_file_name(old.first_index));
    let temporary = dir.join(format!("{:020}{COMPACTING_SUFFIX}", old.first_index));
    let io_error = |source| CompactError::Io {
        path: temporary.clone(),
        source,
    };
    let mut offsets = Vec::with_capacity(kept.len());
    let mut indices = Vec::with_capacity(kept.len());
    let mut moved = Vec::new();
    let mut size = SEGMENT_HEADER_SIZE;
    for (old_offset, header) in kept {
        offsets.push(size as u32);
        indices.push(header.position.index);
        if header.key != 0 && header.flags & RECORD_FLAG_DELETE == 0 {
            moved.push(MovedRecord {
                key: header.key,
                old_offset: *old_offset,
                new_offset: size as u32,
            });
        }
        size += header.record_size();
    }
    let _ = fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(io_error)?;
    let written = write_records(&mut file, old, kept, size, pace).and_then(|()| file.sync_all());
    if let Err(source) = written {
        let _ = fs::remove_file(&temporary);
        return Err(io_error(source));
    }
    drop(file);
    fs::rename(&temporary, &path).map_err(io_error)?;
    sync_dir(dir).map_err(io_error)?;
    let file = File::open(&path).map_err(io_error)?;
    let segment = Segment::from_file(file, path.clone(), old.first_index, size as u64)
        .map_err(io_error)?
        .into_compacted(old.compaction + 1);
    Ok((
        path,
        Replacement {
            segment: Arc::new(segment),
            offsets,
            indices,
            moved,
        },
    ))
}

/// Writes the compacted segment's header and the kept records, 4 MiB at a time, each chunk
/// written back before the next, at `pace`.
fn write_records(
    file: &mut File,
    old: &Segment,
    kept: &[(u32, RecordHeader)],
    size: usize,
    pace: &mut Pace,
) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(WRITEBACK_CHUNK.min(size));
    chunk.extend_from_slice(&record::encode_segment_header_with(
        old.first_index,
        size as u64,
        old.compaction + 1,
    ));
    let mut written = 0u64;
    let mut flush = |chunk: &mut Vec<u8>, file: &mut File| -> io::Result<()> {
        write_paced(file, written, [chunk.as_slice()])?;
        written += chunk.len() as u64;
        pace.wrote(chunk.len());
        chunk.clear();
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
