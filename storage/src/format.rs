//! Byte-layout constants of the log's files.
//!
//! `storage/FORMAT.md` documents the same layout for people; a unit test at the bottom of this
//! file parses that document and checks every constant against it, so the two cannot drift.
//! All integers are little-endian.

/// Version of the on-disk format written into every segment header.
pub const FORMAT_VERSION: u32 = 2;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SPINELOG";
/// Size of the segment header; the first record starts right after it.
pub const SEGMENT_HEADER_SIZE: usize = 64;
/// Offset of the format version (`u32`).
pub const SEGMENT_VERSION_OFFSET: usize = 8;
/// Offset of the log index of the segment's first record (`u64`).
pub const SEGMENT_FIRST_INDEX_OFFSET: usize = 16;
/// Offset of the segment's compaction round (`u32`): 0 for a full segment, n for the n-th
/// compaction of a compacted one (`N.cseg`, holding only the records a compaction kept, byte
/// for byte, back to back; the file ends with its last record).
pub const SEGMENT_COMPACTION_OFFSET: usize = 12;
/// Offset of the segment's preallocated size in bytes (`u64`).
pub const SEGMENT_SIZE_OFFSET: usize = 24;
/// Offset of the CRC32C of segment header bytes `0..SEGMENT_HEADER_CRC_OFFSET` (`u32`).
pub const SEGMENT_HEADER_CRC_OFFSET: usize = 32;

/// Size of a record header; the payload follows it.
pub const RECORD_HEADER_SIZE: usize = 40;
/// Every record starts on, and is padded with zeros to, this alignment.
pub const RECORD_ALIGNMENT: usize = 8;
/// Offset of the payload length in bytes (`u32`).
pub const RECORD_PAYLOAD_LEN_OFFSET: usize = 0;
/// Offset of the CRC32C (`u32`) over header bytes `0..4`, `8..40` and the payload.
pub const RECORD_CRC_OFFSET: usize = 4;
/// Offset of the term of the record's position (`u64`).
pub const RECORD_TERM_OFFSET: usize = 8;
/// Offset of the log index of the record's position (`u64`, dense, first record is 1).
pub const RECORD_INDEX_OFFSET: usize = 16;
/// Offset of the record's primary key (`u64`; 0 means the record has no key).
pub const RECORD_KEY_OFFSET: usize = 24;
/// Offset of the application-defined record kind (`u8`).
pub const RECORD_KIND_OFFSET: usize = 32;
/// Offset of the flags byte (`u8`).
pub const RECORD_FLAGS_OFFSET: usize = 33;
/// Offset of two reserved bytes that must be zero (`u16`).
pub const RECORD_RESERVED_OFFSET: usize = 34;
/// Offset of the record's place in its commit batch (`u32`): its index minus the index of the
/// batch's first record. Recovery uses it to tell a torn last batch from older corruption.
pub const RECORD_BATCH_OFFSET_OFFSET: usize = 36;

/// Flag: the record deletes its key from the indexes (a tombstone).
pub const RECORD_FLAG_DELETE: u8 = 0b0000_0001;
/// Flag: the record is the last of its append group (one engine turn, or one single append).
/// A group's records are durable together or not at all: recovery keeps a log only up to the
/// last record carrying this flag.
pub const RECORD_FLAG_GROUP_END: u8 = 0b0000_0010;
/// All flags this version understands; any other bit set makes a record invalid.
pub const RECORD_FLAGS_KNOWN: u8 = RECORD_FLAG_DELETE | RECORD_FLAG_GROUP_END;

const _: () = assert!(SEGMENT_HEADER_SIZE == 64);
const _: () = assert!(SEGMENT_HEADER_SIZE.is_multiple_of(RECORD_ALIGNMENT));
const _: () = assert!(SEGMENT_HEADER_CRC_OFFSET + 4 <= SEGMENT_HEADER_SIZE);
const _: () = assert!(RECORD_HEADER_SIZE == 40);
const _: () = assert!(RECORD_HEADER_SIZE.is_multiple_of(RECORD_ALIGNMENT));
const _: () = assert!(RECORD_BATCH_OFFSET_OFFSET + 4 == RECORD_HEADER_SIZE);
const _: () = assert!(RECORD_ALIGNMENT.is_power_of_two());

/// Bytes a record with `payload_len` bytes of payload occupies in a segment, padding included.
pub const fn record_size(payload_len: usize) -> usize {
    (RECORD_HEADER_SIZE + payload_len + RECORD_ALIGNMENT - 1) & !(RECORD_ALIGNMENT - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Every row of a `| NAME | value |` table in FORMAT.md whose name is an upper-case constant.
    fn documented_constants() -> HashMap<String, String> {
        let doc = include_str!("../FORMAT.md");
        let mut constants = HashMap::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 {
                continue;
            }
            let name = cells[1].trim_matches('`');
            let is_constant = name.contains('_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if is_constant {
                constants.insert(name.to_string(), cells[2].trim_matches('`').to_string());
            }
        }
        constants
    }

    #[test]
    fn format_md_agrees_with_the_code() {
        let documented = documented_constants();
        let in_code: [(&str, String); 22] = [
            ("FORMAT_VERSION", FORMAT_VERSION.to_string()),
            (
                "SEGMENT_MAGIC",
                String::from_utf8_lossy(&SEGMENT_MAGIC).into_owned(),
            ),
            ("SEGMENT_HEADER_SIZE", SEGMENT_HEADER_SIZE.to_string()),
            ("SEGMENT_VERSION_OFFSET", SEGMENT_VERSION_OFFSET.to_string()),
            (
                "SEGMENT_FIRST_INDEX_OFFSET",
                SEGMENT_FIRST_INDEX_OFFSET.to_string(),
            ),
            ("SEGMENT_SIZE_OFFSET", SEGMENT_SIZE_OFFSET.to_string()),
            (
                "SEGMENT_COMPACTION_OFFSET",
                SEGMENT_COMPACTION_OFFSET.to_string(),
            ),
            (
                "SEGMENT_HEADER_CRC_OFFSET",
                SEGMENT_HEADER_CRC_OFFSET.to_string(),
            ),
            ("RECORD_HEADER_SIZE", RECORD_HEADER_SIZE.to_string()),
            ("RECORD_ALIGNMENT", RECORD_ALIGNMENT.to_string()),
            (
                "RECORD_PAYLOAD_LEN_OFFSET",
                RECORD_PAYLOAD_LEN_OFFSET.to_string(),
            ),
            ("RECORD_CRC_OFFSET", RECORD_CRC_OFFSET.to_string()),
            ("RECORD_TERM_OFFSET", RECORD_TERM_OFFSET.to_string()),
            ("RECORD_INDEX_OFFSET", RECORD_INDEX_OFFSET.to_string()),
            ("RECORD_KEY_OFFSET", RECORD_KEY_OFFSET.to_string()),
            ("RECORD_KIND_OFFSET", RECORD_KIND_OFFSET.to_string()),
            ("RECORD_FLAGS_OFFSET", RECORD_FLAGS_OFFSET.to_string()),
            ("RECORD_RESERVED_OFFSET", RECORD_RESERVED_OFFSET.to_string()),
            (
                "RECORD_BATCH_OFFSET_OFFSET",
                RECORD_BATCH_OFFSET_OFFSET.to_string(),
            ),
            ("RECORD_FLAG_DELETE", RECORD_FLAG_DELETE.to_string()),
            ("RECORD_FLAG_GROUP_END", RECORD_FLAG_GROUP_END.to_string()),
            ("RECORD_FLAGS_KNOWN", RECORD_FLAGS_KNOWN.to_string()),
        ];
        for (name, value) in &in_code {
            let documented_value = documented
                .get(*name)
                .unwrap_or_else(|| panic!("FORMAT.md does not document {name}"));
            assert_eq!(
                documented_value, value,
                "FORMAT.md disagrees with the code on {name}"
            );
        }
        assert_eq!(
            documented.len(),
            in_code.len(),
            "FORMAT.md documents constants the code does not have"
        );
    }

    #[test]
    fn record_size_pads_to_alignment() {
        assert_eq!(record_size(0), 40);
        assert_eq!(record_size(1), 48);
        assert_eq!(record_size(8), 48);
        assert_eq!(record_size(256), 296);
    }
}
