//! One record: encoding into a batch buffer and verification from bytes (sans-IO).
//!
//! Layout constants live in [`crate::format`]; `FORMAT.md` describes them byte by byte.

use crate::format::*;

/// Where a record sits in the log: the term (for a future replicated log) and the dense index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Term the record was written in.
    pub term: u64,
    /// Dense log index; the first record of a log has index 1.
    pub index: u64,
}

/// The fields of a record header, as written or as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub payload_len: u32,
    /// Position of the record.
    pub position: Position,
    /// Primary key, 0 when the record has none.
    pub key: u64,
    /// Application-defined kind.
    pub kind: u8,
    /// Flags, see [`RECORD_FLAG_DELETE`].
    pub flags: u8,
    /// Index of this record minus the index of the first record of its commit batch.
    pub batch_offset: u32,
}

impl RecordHeader {
    /// Bytes the whole record occupies, padding included.
    pub fn record_size(&self) -> usize {
        record_size(self.payload_len as usize)
    }
}

/// Why bytes at some offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The header is all zeros: the preallocated, never-written part of a segment.
    Zeroed,
    /// The header or payload runs past the end of the segment.
    Truncated,
    /// A header field is impossible (length above the maximum, reserved bits set, index 0).
    BadHeader,
    /// The CRC32C does not match the header and payload.
    ChecksumMismatch,
}

impl Invalid {
    /// Lower-case description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Invalid::Zeroed => "zeroed header",
            Invalid::Truncated => "record runs past the end of the segment",
            Invalid::BadHeader => "impossible header field",
            Invalid::ChecksumMismatch => "checksum mismatch",
        }
    }
}

/// The little-endian `u32` at `offset` of `bytes`.
pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&header[RECORD_PAYLOAD_LEN_OFFSET..RECORD_CRC_OFFSET]);
    let crc = crc32c::crc32c_append(crc, &header[RECORD_TERM_OFFSET..RECORD_HEADER_SIZE]);
    crc32c::crc32c_append(crc, payload)
}

/// Appends one encoded record (header, payload, zero padding) to `buf`.
///
/// The caller has checked `payload.len()` against the configured maximum, which is far below
/// `u32::MAX`.
pub fn encode(buf: &mut Vec<u8>, header: &RecordHeader, payload: &[u8]) {
    assert_eq!(header.payload_len as usize, payload.len());
    assert!(header.position.index > 0, "log indexes start at 1");
    assert_eq!(header.flags & !RECORD_FLAGS_KNOWN, 0);
    assert_eq!(buf.len() % RECORD_ALIGNMENT, 0, "records start aligned");
    let start = buf.len();
    let mut head = [0u8; RECORD_HEADER_SIZE];
    head[RECORD_PAYLOAD_LEN_OFFSET..RECORD_PAYLOAD_LEN_OFFSET + 4]
        .copy_from_slice(&header.payload_len.to_le_bytes());
    head[RECORD_TERM_OFFSET..RECORD_TERM_OFFSET + 8]
        .copy_from_slice(&header.position.term.to_le_bytes());
    head[RECORD_INDEX_OFFSET..RECORD_INDEX_OFFSET + 8]
        .copy_from_slice(&header.position.index.to_le_bytes());
    head[RECORD_KEY_OFFSET..RECORD_KEY_OFFSET + 8].copy_from_slice(&header.key.to_le_bytes());
    head[RECORD_KIND_OFFSET] = header.kind;
    head[RECORD_FLAGS_OFFSET] = header.flags;
    head[RECORD_BATCH_OFFSET_OFFSET..RECORD_BATCH_OFFSET_OFFSET + 4]
        .copy_from_slice(&header.batch_offset.to_le_bytes());
    let crc = record_crc(&head, payload);
    head[RECORD_CRC_OFFSET..RECORD_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(payload);
    buf.resize(start + header.record_size(), 0);
    assert_eq!(buf.len() % RECORD_ALIGNMENT, 0);
}

/// Verifies the record that starts at the beginning of `bytes` (the rest of its segment) and
/// returns its header. `payload_max` is the configured maximum payload size.
pub fn decode(bytes: &[u8], payload_max: u32) -> Result<RecordHeader, Invalid> {
    if bytes.len() < RECORD_HEADER_SIZE {
        return Err(if bytes.iter().all(|&b| b == 0) {
            Invalid::Zeroed
        } else {
            Invalid::Truncated
        });
    }
    let head = &bytes[..RECORD_HEADER_SIZE];
    if head.iter().all(|&b| b == 0) {
        return Err(Invalid::Zeroed);
    }
    let header = RecordHeader {
        payload_len: read_u32(head, RECORD_PAYLOAD_LEN_OFFSET),
        position: Position {
            term: read_u64(head, RECORD_TERM_OFFSET),
            index: read_u64(head, RECORD_INDEX_OFFSET),
        },
        key: read_u64(head, RECORD_KEY_OFFSET),
        kind: head[RECORD_KIND_OFFSET],
        flags: head[RECORD_FLAGS_OFFSET],
        batch_offset: read_u32(head, RECORD_BATCH_OFFSET_OFFSET),
    };
    let reserved_clear = head[RECORD_RESERVED_OFFSET] == 0 && head[RECORD_RESERVED_OFFSET + 1] == 0;
    let plausible = header.payload_len <= payload_max
        && header.position.index > 0
        && u64::from(header.batch_offset) < header.position.index
        && header.flags & !RECORD_FLAGS_KNOWN == 0
        && reserved_clear;
    if !plausible {
        return Err(Invalid::BadHeader);
    }
    let payload_end = RECORD_HEADER_SIZE + header.payload_len as usize;
    if bytes.len() < header.record_size() {
        return Err(Invalid::Truncated);
    }
    let stored_crc = read_u32(head, RECORD_CRC_OFFSET);
    if record_crc(head, &bytes[RECORD_HEADER_SIZE..payload_end]) != stored_crc {
        return Err(Invalid::ChecksumMismatch);
    }
    Ok(header)
}

/// The payload of a record already verified by [`decode`].
pub fn payload<'a>(bytes: &'a [u8], header: &RecordHeader) -> &'a [u8] {
    &bytes[RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + header.payload_len as usize]
}

/// Encodes a segment header for a segment whose first record has `first_index`.
pub fn encode_segment_header(first_index: u64, segment_size: u64) -> [u8; SEGMENT_HEADER_SIZE] {
    encode_segment_header_with(first_index, segment_size, 0)
}

/// Encodes a segment header for the `compaction`-th compaction of a segment (0: a full one).
pub fn encode_segment_header_with(
    first_index: u64,
    segment_size: u64,
    compaction: u32,
) -> [u8; SEGMENT_HEADER_SIZE] {
    let mut head = [0u8; SEGMENT_HEADER_SIZE];
    head[..8].copy_from_slice(&SEGMENT_MAGIC);
    head[SEGMENT_VERSION_OFFSET..SEGMENT_VERSION_OFFSET + 4]
        .copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    head[SEGMENT_COMPACTION_OFFSET..SEGMENT_COMPACTION_OFFSET + 4]
        .copy_from_slice(&compaction.to_le_bytes());
    head[SEGMENT_FIRST_INDEX_OFFSET..SEGMENT_FIRST_INDEX_OFFSET + 8]
        .copy_from_slice(&first_index.to_le_bytes());
    head[SEGMENT_SIZE_OFFSET..SEGMENT_SIZE_OFFSET + 8].copy_from_slice(&segment_size.to_le_bytes());
    let crc = crc32c::crc32c(&head[..SEGMENT_HEADER_CRC_OFFSET]);
    head[SEGMENT_HEADER_CRC_OFFSET..SEGMENT_HEADER_CRC_OFFSET + 4]
        .copy_from_slice(&crc.to_le_bytes());
    head
}

/// A segment header as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Log index of the segment's first record.
    pub first_index: u64,
    /// Preallocated size of the segment file.
    pub segment_size: u64,
    /// 0 for a full segment; n for the n-th compaction of a compacted one.
    pub compaction: u32,
}

/// Why a segment header is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidSegmentHeader {
    /// All zeros: the segment was prepared but its first batch never became durable.
    Zeroed,
    /// Not a Spine log segment, or damaged.
    Corrupt,
    /// Written by a format version this build does not read.
    UnsupportedVersion(u32),
}

/// Verifies a segment header.
pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, InvalidSegmentHeader> {
    if bytes.len() < SEGMENT_HEADER_SIZE {
        return Err(InvalidSegmentHeader::Corrupt);
    }
    let head = &bytes[..SEGMENT_HEADER_SIZE];
    if head.iter().all(|&b| b == 0) {
        return Err(InvalidSegmentHeader::Zeroed);
    }
    let crc = crc32c::crc32c(&head[..SEGMENT_HEADER_CRC_OFFSET]);
    if head[..8] != SEGMENT_MAGIC || read_u32(head, SEGMENT_HEADER_CRC_OFFSET) != crc {
        return Err(InvalidSegmentHeader::Corrupt);
    }
    let version = read_u32(head, SEGMENT_VERSION_OFFSET);
    if version != FORMAT_VERSION {
        return Err(InvalidSegmentHeader::UnsupportedVersion(version));
    }
    Ok(SegmentHeader {
        first_index: read_u64(head, SEGMENT_FIRST_INDEX_OFFSET),
        segment_size: read_u64(head, SEGMENT_SIZE_OFFSET),
        compaction: read_u32(head, SEGMENT_COMPACTION_OFFSET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(index: u64, payload: &[u8]) -> RecordHeader {
        RecordHeader {
            payload_len: payload.len() as u32,
            position: Position { term: 3, index },
            key: 42,
            kind: 7,
            flags: 0,
            batch_offset: 0,
        }
    }

    #[test]
    fn zeroed_bytes_are_the_end_of_the_log() {
        assert_eq!(decode(&[0u8; 100], 1024), Err(Invalid::Zeroed));
        assert_eq!(decode(&[0u8; 8], 1024), Err(Invalid::Zeroed));
    }

    #[test]
    fn payload_above_the_maximum_is_a_bad_header() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(1, &[1; 100]), &[1; 100]);
        assert_eq!(decode(&buf, 99), Err(Invalid::BadHeader));
        assert!(decode(&buf, 100).is_ok());
    }

    #[test]
    fn segment_header_round_trips_and_detects_damage() {
        let mut head = encode_segment_header(77, 1 << 20);
        let decoded = decode_segment_header(&head).unwrap();
        assert_eq!(decoded.first_index, 77);
        assert_eq!(decoded.segment_size, 1 << 20);
        assert_eq!(decoded.compaction, 0);
        let compacted = encode_segment_header_with(77, 4096, 3);
        assert_eq!(
            decode_segment_header(&compacted).map(|h| h.compaction),
            Ok(3)
        );
        let mut damaged = compacted;
        damaged[SEGMENT_COMPACTION_OFFSET] ^= 1;
        assert_eq!(
            decode_segment_header(&damaged),
            Err(InvalidSegmentHeader::Corrupt),
            "the round is under the header's CRC"
        );
        head[17] ^= 1;
        assert_eq!(
            decode_segment_header(&head),
            Err(InvalidSegmentHeader::Corrupt)
        );
        assert_eq!(
            decode_segment_header(&[0u8; 64]),
            Err(InvalidSegmentHeader::Zeroed)
        );
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(index in 1u64.., payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut buf = Vec::new();
            let head = header(index, &payload);
            encode(&mut buf, &head, &payload);
            prop_assert_eq!(buf.len(), record_size(payload.len()));
            let decoded = decode(&buf, 1 << 20).unwrap();
            prop_assert_eq!(decoded, head);
            prop_assert_eq!(super::payload(&buf, &decoded), &payload[..]);
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..300), bit in 0usize..8, at in any::<prop::sample::Index>()) {
            let mut buf = Vec::new();
            encode(&mut buf, &header(9, &payload), &payload);
            let payload_end = RECORD_HEADER_SIZE + payload.len();
            let byte = at.index(payload_end);
            buf[byte] ^= 1 << bit;
            prop_assert!(decode(&buf, 1 << 20).is_err());
        }
    }
}
