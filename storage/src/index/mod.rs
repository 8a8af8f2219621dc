//! In-memory indexes over the log, rebuilt on recovery and checkpointed in the background.
//!
//! - [`primary`]: key -> location of the key's latest record; an open-addressing table of
//!   fixed-size 16-byte slots, no allocation per entry.
//! - [`secondary`]: ordered indexes of derived keys (for example a surname) -> primary key.
//! - `checkpoint`: a snapshot of both, so restart scans only the log written after it.

pub(crate) mod checkpoint;
pub mod primary;
pub mod secondary;

/// Where a record is: which segment (its ordinal in the log) and the byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Ordinal of the segment, 0 for the oldest.
    pub segment: u32,
    /// Byte offset of the record in the segment; never 0, because the segment header is there.
    pub offset: u32,
}

impl Location {
    /// Packs into one word; 0 is never a valid packed location (offset 0 is the header).
    pub(crate) fn pack(self) -> u64 {
        assert!(self.offset > 0, "offset 0 holds the segment header");
        (u64::from(self.segment) << 32) | u64::from(self.offset)
    }

    /// Inverse of [`Location::pack`].
    pub(crate) fn unpack(word: u64) -> Self {
        Self {
            segment: (word >> 32) as u32,
            offset: word as u32,
        }
    }
}
