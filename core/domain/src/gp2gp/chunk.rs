//! How a document is cut into chunks, and the key value of each chunk's log record.
//!
//! Every chunk is [`CHUNK_BYTES`] long except the last, which holds what is left (1 to
//! [`CHUNK_BYTES`] bytes). The chunk size is fixed by the transfer record's encoding version:
//! the record does not store it, so a different size needs a new version.

use super::transfer::{TRANSFER_ID_BITS, TransferId};

/// Bytes in every chunk but the last. 256 KiB keeps a chunk, with its request's other fields,
/// well inside the default frame (1 MiB) and log payload (1 MiB) limits, and keeps what a broken
/// connection costs to one chunk's resend; at [`DOCUMENT_BYTES_MAX`] it makes 400 chunks, few
/// enough for the transfer record to hold every chunk's digest (its largest size is
/// `core/RECORDS.md`'s, kind 11).
pub const CHUNK_BYTES: u32 = 256 * 1024;

/// The largest document a transfer carries: 100 MiB. GP2GP records with many scanned
/// attachments reach tens of MiB; a bound keeps a transfer's storage and time finite.
pub const DOCUMENT_BYTES_MAX: u64 = 100 * 1024 * 1024;

/// Chunks in a document of [`DOCUMENT_BYTES_MAX`]: the most any transfer has.
pub const CHUNK_COUNT_MAX: u32 = (DOCUMENT_BYTES_MAX / CHUNK_BYTES as u64) as u32;

/// Bits of a chunk's key value that hold its index.
pub const CHUNK_INDEX_BITS: u32 = 9;

/// Bits below a shard's namespace byte, which every key value must fit in.
const KEY_VALUE_BITS: u32 = 56;

const _: () = assert!(DOCUMENT_BYTES_MAX.is_multiple_of(CHUNK_BYTES as u64));
const _: () = assert!(CHUNK_COUNT_MAX == 400);
const _: () = assert!(CHUNK_COUNT_MAX <= 1 << CHUNK_INDEX_BITS);
const _: () = assert!(TRANSFER_ID_BITS + CHUNK_INDEX_BITS == KEY_VALUE_BITS);

/// Chunks in a document of `document_size` bytes (1 to [`DOCUMENT_BYTES_MAX`]; callers check
/// the size first, as [`super::start`] and [`super::Transfer::decode`] do).
pub fn chunk_count(document_size: u64) -> u32 {
    assert!(document_size >= 1, "an empty document has no chunks");
    assert!(
        document_size <= DOCUMENT_BYTES_MAX,
        "document of {document_size} bytes"
    );
    let count = document_size.div_ceil(u64::from(CHUNK_BYTES));
    // At most CHUNK_COUNT_MAX by the size check above.
    count as u32
}

/// The length of chunk `chunk_index` of a document of `document_size` bytes, or `None` if the
/// document has no such chunk.
pub fn chunk_size(document_size: u64, chunk_index: u32) -> Option<u32> {
    if chunk_index >= chunk_count(document_size) {
        return None;
    }
    let rest = document_size - chunk_offset(chunk_index);
    // The index is in range, so 1 <= rest; the minimum is at most CHUNK_BYTES.
    Some(rest.min(u64::from(CHUNK_BYTES)) as u32)
}

/// Where chunk `chunk_index` starts in the document.
pub fn chunk_offset(chunk_index: u32) -> u64 {
    u64::from(chunk_index) * u64::from(CHUNK_BYTES)
}

/// The key value of chunk `chunk_index`'s log record: the transfer id above
/// [`CHUNK_INDEX_BITS`] bits of index, `(id << 9) | index`. It is below 2^56, leaving the top
/// byte for the shard's record namespace, and distinct for every (transfer, chunk) pair, since
/// ids are below 2^47 and indexes below 2^9. The index must be in range for some document
/// (below [`CHUNK_COUNT_MAX`]); steps check it before a key is ever made.
pub fn chunk_key_value(transfer: TransferId, chunk_index: u32) -> u64 {
    assert!(chunk_index < CHUNK_COUNT_MAX, "chunk index {chunk_index}");
    let value = transfer.get() << CHUNK_INDEX_BITS | u64::from(chunk_index);
    assert!(value < 1 << KEY_VALUE_BITS);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn documents_are_cut_into_full_chunks_and_a_shorter_last_one() {
        let cases: [(u64, u32, u32); 6] = [
            (1, 1, 1),
            (256 * KIB - 1, 1, 256 * 1024 - 1),
            (256 * KIB, 1, 256 * 1024),
            (256 * KIB + 1, 2, 1),
            (1000 * KIB, 4, 232 * 1024),
            (DOCUMENT_BYTES_MAX, CHUNK_COUNT_MAX, CHUNK_BYTES),
        ];
        for (size, count, last) in cases {
            assert_eq!(chunk_count(size), count, "{size}");
            assert_eq!(chunk_size(size, count - 1), Some(last), "{size}");
            assert_eq!(chunk_size(size, count), None, "{size}");
            if count > 1 {
                assert_eq!(chunk_size(size, 0), Some(CHUNK_BYTES));
            }
            let total: u64 = (0..count)
                .map(|index| u64::from(chunk_size(size, index).unwrap()))
                .sum();
            assert_eq!(total, size);
            assert_eq!(chunk_offset(count - 1) + u64::from(last), size);
        }
        assert_eq!(chunk_size(10, u32::MAX), None);
    }

    #[test]
    #[should_panic(expected = "document of")]
    fn a_document_over_the_limit_is_a_programmer_error_here() {
        chunk_count(DOCUMENT_BYTES_MAX + 1);
    }

    #[test]
    fn chunk_key_values_are_distinct_and_below_the_namespace_byte() {
        let low = TransferId::new(1).unwrap();
        let high = TransferId::new(TransferId::MAX).unwrap();
        assert_eq!(chunk_key_value(low, 0), 1 << 9);
        assert_eq!(chunk_key_value(low, 399), 1 << 9 | 399);
        assert_eq!(chunk_key_value(TransferId::new(2).unwrap(), 0), 2 << 9);
        assert_eq!(chunk_key_value(high, 399), (1 << 56) - (1 << 9) + 399);
        assert!(chunk_key_value(high, CHUNK_COUNT_MAX - 1) < 1 << 56);
    }

    #[test]
    #[should_panic(expected = "chunk index 400")]
    fn a_chunk_key_needs_an_index_in_range() {
        chunk_key_value(TransferId::new(1).unwrap(), CHUNK_COUNT_MAX);
    }
}
