//! The in-memory state shared by the writer, readers and the checkpointer: the segment list, the
//! record offsets of each segment, and the indexes. Recovery and the writer change it through
//! [`State::apply`] only, so both build exactly the same state from the same records.

use std::sync::Arc;

use super::record::{self, Position, RecordHeader};
use super::segment::Segment;
use super::{ReadError, RecordView};
use crate::format::{
    RECORD_FLAG_DELETE, RECORD_HEADER_SIZE, RECORD_INDEX_OFFSET, RECORD_KEY_OFFSET,
    SEGMENT_HEADER_SIZE,
};
use crate::index::Location;
use crate::index::primary::PrimaryIndex;
use crate::index::secondary::{SecondaryIndexes, SecondaryKey, SecondaryKeys};

const PAST_THE_END: &str = "record runs past the end of the segment";

/// The segment an index entry names while it points into a compacted copy that is taking a
/// sealed segment's place ([`State::begin_pending`]); never a real ordinal (a log has far fewer
/// segments), and never written to a checkpoint (none is written meanwhile).
pub(crate) const PENDING_SEGMENT: u32 = u32::MAX - 1;

/// A compacted copy of a sealed segment, ready to take its place (see [`State::begin_pending`]).
pub(crate) struct Replacement {
    pub(crate) segment: Arc<Segment>,
    /// Offsets of its records, in log order.
    pub(crate) offsets: Vec<u32>,
    /// Their log indices.
    pub(crate) indices: Vec<u64>,
    /// Every keyed record it kept, with its offset before and after.
    pub(crate) moved: Vec<MovedRecord>,
}

/// Where a keyed record was and is, in a segment and its compacted copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MovedRecord {
    pub(crate) key: u64,
    pub(crate) old_offset: u32,
    pub(crate) new_offset: u32,
}

pub(crate) struct State {
    /// Every segment, oldest first; a [`Location`]'s segment is an index into this.
    pub(crate) segments: Vec<Arc<Segment>>,
    /// Per segment, the offsets of its records in log order.
    pub(crate) offsets: Vec<Vec<u32>>,
    /// Per segment, for a compacted one, the log index of each record in `offsets` (sorted,
    /// with gaps where records were dropped); empty for a full segment, whose indices follow
    /// from its first index.
    pub(crate) indices: Vec<Vec<u64>>,
    /// Per segment, how many of its records a later record of their key superseded since the
    /// log was opened or the segment compacted: what a compaction planner weighs (a lower
    /// bound: supersessions before a checkpointed open are not counted).
    pub(crate) superseded: Vec<u64>,
    /// While a compacted copy replaces a sealed segment in steps: the segment's ordinal and the
    /// copy, which index entries name as [`PENDING_SEGMENT`] meanwhile.
    pub(crate) pending: Option<(u32, Arc<Segment>)>,
    pub(crate) primary: PrimaryIndex,
    pub(crate) secondary: SecondaryIndexes,
    /// The last durable record; index 0 while the log is empty.
    pub(crate) last: Position,
    /// Where the next record goes in the last segment.
    pub(crate) write_offset: usize,
    /// Payload maximum, for verifying reads.
    pub(crate) payload_max: u32,
    /// Whether recovery is replaying the records after a fuzzy checkpoint (see
    /// [`State::apply`]).
    pub(crate) replaying_fuzzy: bool,
}

impl State {
    pub(crate) fn new(
        primary: PrimaryIndex,
        secondary: SecondaryIndexes,
        payload_max: u32,
    ) -> Self {
        Self {
            segments: Vec::new(),
            offsets: Vec::new(),
            indices: Vec::new(),
            superseded: Vec::new(),
            pending: None,
            primary,
            secondary,
            last: Position { term: 0, index: 0 },
            write_offset: SEGMENT_HEADER_SIZE,
            payload_max,
            replaying_fuzzy: false,
        }
    }

    /// Adds a new, empty last segment.
    pub(crate) fn push_segment(&mut self, segment: Arc<Segment>) {
        assert_eq!(
            segment.first_index,
            self.last.index + 1,
            "segments are contiguous"
        );
        self.segments.push(segment);
        self.offsets.push(Vec::new());
        self.indices.push(Vec::new());
        self.superseded.push(0);
        self.write_offset = SEGMENT_HEADER_SIZE;
    }

    /// The steps of a replacement that readers and the writer see meanwhile, each short (the
    /// live state, under its write lock for each step). First the copy is readable as the
    /// pending segment; then the keys move to it a chunk at a time ([`State::move_keys`] from
    /// `ordinal` to [`PENDING_SEGMENT`]); then it takes the segment's place ([`State::swap_in`]);
    /// then the keys move to its ordinal a chunk at a time; then [`State::end_pending`].
    pub(crate) fn begin_pending(&mut self, ordinal: u32, replacement: &Replacement) {
        self.check_replacement(ordinal, replacement);
        assert!(self.pending.is_none(), "one replacement at a time");
        self.pending = Some((ordinal, Arc::clone(&replacement.segment)));
    }

    /// Ends a replacement once no key points at the pending segment any more.
    pub(crate) fn end_pending(&mut self) {
        self.pending = None;
    }

    fn check_replacement(&self, ordinal: u32, replacement: &Replacement) {
        assert!(
            Some(ordinal) < self.last_segment(),
            "only a sealed segment is replaced"
        );
        assert_eq!(
            self.segments[ordinal as usize].first_index, replacement.segment.first_index,
            "a segment is replaced by its own compacted copy"
        );
        assert!(replacement.segment.compacted());
    }

    /// Moves each key of `moved` that the index finds at its old offset in segment `from` to
    /// its new offset in segment `to`. The keys are looked up a few ahead, so their slots'
    /// cache misses overlap.
    pub(crate) fn move_keys(&mut self, moved: &[MovedRecord], from: u32, to: u32) {
        const AHEAD: usize = 8;
        for (at, record) in moved.iter().enumerate() {
            if let Some(ahead) = moved.get(at + AHEAD) {
                self.primary.prefetch(ahead.key);
            }
            let (old, new) = if from == to || to == PENDING_SEGMENT {
                (record.old_offset, record.new_offset)
            } else {
                // From the pending copy to its ordinal: the offset is the copy's either way.
                (record.new_offset, record.new_offset)
            };
            self.primary.move_if_at(
                record.key,
                Location {
                    segment: from,
                    offset: old,
                },
                Location {
                    segment: to,
                    offset: new,
                },
            );
        }
    }

    /// Puts the replacement's segment, offsets and indices in the place of segment `ordinal`.
    pub(crate) fn swap_in(&mut self, ordinal: u32, replacement: &mut Replacement) {
        let at = ordinal as usize;
        self.segments[at] = Arc::clone(&replacement.segment);
        self.offsets[at] = std::mem::take(&mut replacement.offsets);
        self.indices[at] = std::mem::take(&mut replacement.indices);
        self.superseded[at] = 0;
    }

    /// The segment a location from the index lies in: the pending copy's, or its ordinal's.
    pub(crate) fn segment_holding(&self, location: Location) -> &Arc<Segment> {
        match &self.pending {
            Some((_, copy)) if location.segment == PENDING_SEGMENT => copy,
            _ => &self.segments[location.segment as usize],
        }
    }

    /// The ordinal of the segment a location lies in (the pending copy's is its segment's).
    fn ordinal_holding(&self, location: Location) -> usize {
        match self.pending {
            Some((ordinal, _)) if location.segment == PENDING_SEGMENT => ordinal as usize,
            _ => location.segment as usize,
        }
    }

    /// Ordinal of the last segment.
    pub(crate) fn last_segment(&self) -> Option<u32> {
        self.segments.len().checked_sub(1).map(|n| n as u32)
    }

    /// Records a durable record at `location` and updates the indexes. Fails only if the record
    /// it replaces can no longer be read back (its secondary keys could not be removed).
    pub(crate) fn apply(
        &mut self,
        extractor: &dyn SecondaryKeys,
        scratch: &mut Vec<SecondaryKey>,
        location: Location,
        header: &RecordHeader,
        payload: &[u8],
    ) -> Result<(), ReadError> {
        let segment = location.segment as usize;
        let compacted = self.segments.get(segment).is_some_and(|s| s.compacted());
        if compacted {
            assert!(
                header.position.index > self.last.index,
                "records are applied in order"
            );
            self.indices[segment].push(header.position.index);
        } else {
            assert_eq!(
                header.position.index,
                self.last.index + 1,
                "records are applied in order"
            );
        }
        assert_eq!(
            Some(location.segment),
            self.last_segment(),
            "records go to the last segment"
        );
        assert!(
            location.offset as usize >= self.write_offset,
            "records never overlap"
        );
        self.offsets[location.segment as usize].push(location.offset);
        self.last = header.position;
        self.write_offset = location.offset as usize + header.record_size();
        if header.key == 0 {
            return Ok(());
        }
        let previous = if header.flags & RECORD_FLAG_DELETE != 0 {
            self.primary.remove(header.key)
        } else {
            self.primary.insert(header.key, location)
        };
        if let Some(previous) = previous {
            let ordinal = self.ordinal_holding(previous);
            self.superseded[ordinal] += 1;
        }
        // A key whose records never carry secondary keys needs no look at the record it
        // replaces (a random read, and a checksum, per write).
        if self.secondary.index_count() == 0 || !extractor.may_have_keys(header.key) {
            return Ok(());
        }
        if let Some(previous) = previous {
            scratch.clear();
            // The old record was verified when it was indexed; failing now means the medium
            // changed under us, which the caller treats as fatal for the log.
            let old = self.view(previous)?;
            extractor.extract(&old, scratch);
            // Over a fuzzy checkpoint the previous record's entries may be missing: the
            // checkpoint read the primary entry before the key changed and its secondary
            // entries after (`index::checkpoint`). Nothing else is: every entry it read of a
            // later record is removed by the replay of the record after that one.
            for key in scratch.drain(..) {
                let removed = self.secondary.remove(key, header.key);
                assert!(
                    removed || self.replaying_fuzzy,
                    "secondary key of an indexed record was missing"
                );
            }
        }
        if header.flags & RECORD_FLAG_DELETE == 0 {
            scratch.clear();
            extractor.extract(
                &RecordView {
                    header: *header,
                    payload,
                },
                scratch,
            );
            for key in scratch.drain(..) {
                self.secondary.insert(key, header.key);
            }
        }
        Ok(())
    }

    /// Location of the record with log index `index`, if it is durable.
    pub(crate) fn locate(&self, index: u64) -> Option<Location> {
        if index == 0 || index > self.last.index {
            return None;
        }
        let segment = self
            .segments
            .partition_point(|s| s.first_index <= index)
            .checked_sub(1)?;
        let position = if self.segments[segment].compacted() {
            self.indices[segment].binary_search(&index).ok()?
        } else {
            (index - self.segments[segment].first_index) as usize
        };
        let offset = *self.offsets[segment].get(position)?;
        Some(Location {
            segment: segment as u32,
            offset,
        })
    }

    /// The bytes from `location` to the end of its segment's written part, if in range.
    fn bytes_at(&self, location: Location) -> Option<&[u8]> {
        self.segment_holding(location)
            .record_bytes(location.offset as usize)
    }

    fn corrupt(&self, location: Location, reason: &'static str) -> ReadError {
        ReadError::Corrupt {
            segment: self.segment_holding(location).path.clone(),
            offset: u64::from(location.offset),
            reason,
        }
    }

    /// The log index of the record at `location`, read from its header without verifying the
    /// record; `Corrupt` if the header does not name `key`.
    pub(crate) fn index_at(&self, location: Location, key: u64) -> Result<u64, ReadError> {
        let bytes = self
            .bytes_at(location)
            .filter(|bytes| bytes.len() >= RECORD_HEADER_SIZE)
            .ok_or_else(|| self.corrupt(location, PAST_THE_END))?;
        let field = |offset: usize| {
            u64::from_le_bytes(
                bytes[offset..offset + 8]
                    .try_into()
                    .expect("eight bytes inside the header"),
            )
        };
        if field(RECORD_KEY_OFFSET) != key {
            return Err(self.corrupt(location, "the indexed record has another key"));
        }
        Ok(field(RECORD_INDEX_OFFSET))
    }

    /// Verifies and returns the record at `location` (pair assertion: the CRC was checked before
    /// the write and is checked again on every read).
    pub(crate) fn view(&self, location: Location) -> Result<RecordView<'_>, ReadError> {
        let bytes = self
            .bytes_at(location)
            .ok_or_else(|| self.corrupt(location, PAST_THE_END))?;
        let header = record::decode(bytes, self.payload_max)
            .map_err(|why| self.corrupt(location, why.describe()))?;
        Ok(RecordView {
            header,
            payload: record::payload(bytes, &header),
        })
    }
}
