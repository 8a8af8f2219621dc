//! Where a log ends, for copying it while it is written (a backup): every segment file and how
//! many of its bytes hold records, read while the writer is held between two batches.
//!
//! The bytes a [`LogExtent`] names never change afterwards: a segment is written only past
//! its write offset (a batch's zero padding reaches into the next page, but rewrites zeros
//! with zeros), so a copy of each segment's first `used_bytes` bytes, zeros after them to the
//! segment's size, is the log as it was at that durable position: a log that opens without a
//! torn tail. A hold taken on several logs at once (the engine's shards, one after another,
//! all held together) gives positions no crash could tell from one instant's: each log's
//! every durable record, and nothing a later batch wrote (see `Log::hold_writes`).

use std::path::PathBuf;

use parking_lot::MutexGuard;

use super::record::Position;
use super::state::State;
use super::{Log, ReadError};
use crate::format::SEGMENT_HEADER_SIZE;
use crate::index::Location;

/// A log's durable extent: its last durable record and its segments up to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogExtent {
    /// The last durable record (index 0 for an empty log).
    pub last: Position,
    /// Every segment, oldest first.
    pub segments: Vec<SegmentExtent>,
}

/// One segment file of a [`LogExtent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentExtent {
    /// The file.
    pub path: PathBuf,
    /// The log index of its first record (the file's name).
    pub first_index: u64,
    /// The file's size (the `segment_size` it was created with).
    pub size: u64,
    /// Bytes from the start of the file to the end of its last record (the header's size for
    /// a segment with none); everything after them is zeros at this position.
    pub used_bytes: u64,
}

/// The log's writer, held between two batches: nothing becomes durable while this lives, and
/// the batch in flight when it was taken was durable and indexed before it was given.
pub struct WritesHeld<'a> {
    log: &'a Log,
    _gate: MutexGuard<'a, ()>,
}

impl Log {
    /// Holds the writer between two batches (waiting for the batch in flight, one flush at
    /// most): appends queue meanwhile, as they do behind a slow flush. Hold it only as long as
    /// reading [`WritesHeld::extent`] takes.
    pub fn hold_writes(&self) -> WritesHeld<'_> {
        WritesHeld {
            log: self,
            _gate: self.shared.writes.lock(),
        }
    }
}

impl WritesHeld<'_> {
    /// Where the log ends now: every segment and its used bytes. `Err` only if the last
    /// record of a sealed segment can no longer be read (the medium changed under the log).
    pub fn extent(&self) -> Result<LogExtent, ReadError> {
        let state = self.log.shared.state.read();
        let segments = (0..state.segments.len())
            .map(|ordinal| segment_extent(&state, ordinal))
            .collect::<Result<_, _>>()?;
        Ok(LogExtent {
            last: state.last,
            segments,
        })
    }
}

/// The extent of the segment with `ordinal`: up to the write offset for the last segment, up
/// to its last record's end for the others.
fn segment_extent(state: &State, ordinal: usize) -> Result<SegmentExtent, ReadError> {
    let segment = &state.segments[ordinal];
    let used_bytes = if ordinal + 1 == state.segments.len() {
        state.write_offset as u64
    } else if let Some(&offset) = state.offsets[ordinal].last() {
        let view = state.view(Location {
            segment: ordinal as u32,
            offset,
        })?;
        u64::from(offset) + view.header.record_size() as u64
    } else {
        SEGMENT_HEADER_SIZE as u64
    };
    Ok(SegmentExtent {
        path: segment.path.clone(),
        first_index: segment.first_index,
        size: segment.size() as u64,
        used_bytes,
    })
}
