//! Kind 11, a GP2GP transfer: the payload's types at version 1, field for field as
//! `core/RECORDS.md` gives them, and their conversions to and from the domain's [`Transfer`].

use std::borrow::Cow;

use super::versioned;
use serde::{Deserialize, Serialize};

use super::{MalformedRecord, read};
use crate::NhsNumber;
use crate::gp2gp::{CancelledBy, Sha256Hash, Transfer, TransferId, TransferParts, TransferState};
use crate::pds::values::OdsCode;
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads. Version 1 fixes the chunk
/// size at [`crate::gp2gp::CHUNK_BYTES`]: the record does not store it.
pub const PAYLOAD_VERSION: u8 = 1;

/// The most bytes a payload takes, field by field in postcard's encoding. Checked before
/// decoding, so that no stored record makes decoding allocate more, and by a test that encodes
/// the largest record.
pub const PAYLOAD_BYTES_MAX: usize = 1 // version byte
    + 7 // id: a varint of at most 47 bits
    + 5 // patient: a varint of at most ten decimal digits (34 bits)
    + 2 * (1 + 10) // the two ODS codes: a length, then at most 10 bytes
    + 4 // document size: a varint of at most 100 MiB (27 bits)
    + 32 // document digest
    + 2 + 400 * (1 + 32) // chunk entries: a count, then a tag and maybe a digest each
    + 2 // state, and who cancelled
    + 2 * 10; // created and updated times: varints of up to 64 bits
const _: () = assert!(crate::gp2gp::CHUNK_COUNT_MAX == 400);

/// The record's payload: the version byte, then the record.
pub fn encode(transfer: &Transfer) -> Vec<u8> {
    let payload = TransferRecord::from(transfer).encode();
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "a transfer outgrew its record"
    );
    payload
}

/// The transfer in `payload` (at most [`PAYLOAD_BYTES_MAX`] bytes), checked against the rules
/// every step keeps ([`Transfer::from_parts`]).
pub fn decode(payload: &[u8]) -> Result<Transfer, MalformedRecord> {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(MalformedRecord::of(
            RecordKind::Transfer,
            format!(
                "{} bytes, more than the {PAYLOAD_BYTES_MAX} a record takes",
                payload.len()
            ),
        ));
    }
    read(
        RecordKind::Transfer,
        PAYLOAD_VERSION,
        payload,
        TransferRecord::into_domain,
        |_| Ok(()),
    )
}

/// `Transfer`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Transfer")]
pub struct TransferRecord<'a> {
    id: TransferId,
    patient: NhsNumber,
    from_practice: Cow<'a, OdsCode>,
    to_practice: Cow<'a, OdsCode>,
    document_size: u64,
    document_sha256: Sha256Hash,
    chunks: Cow<'a, [Option<Sha256Hash>]>,
    state: StatePayload,
    created_ms: u64,
    updated_ms: u64,
}

impl<'a> From<&'a Transfer> for TransferRecord<'a> {
    fn from(transfer: &'a Transfer) -> Self {
        Self {
            id: transfer.id(),
            patient: transfer.patient(),
            from_practice: Cow::Borrowed(transfer.from_practice()),
            to_practice: Cow::Borrowed(transfer.to_practice()),
            document_size: transfer.document_size(),
            document_sha256: transfer.document_sha256(),
            chunks: Cow::Borrowed(transfer.chunks()),
            state: StatePayload::from(transfer.state()),
            created_ms: transfer.created_ms(),
            updated_ms: transfer.updated_ms(),
        }
    }
}

impl TransferRecord<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Result<Transfer, String> {
        Transfer::from_parts(TransferParts {
            id: self.id,
            patient: self.patient,
            from_practice: self.from_practice.into_owned(),
            to_practice: self.to_practice.into_owned(),
            document_size: self.document_size,
            document_sha256: self.document_sha256,
            chunks: self.chunks.into_owned(),
            state: self.state.into_domain(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// `TransferState`: the variants in this order are the stored numbers (public so that
/// `core/tests/records_doc.rs` can trace every variant).
#[derive(Serialize, Deserialize)]
#[serde(rename = "TransferState")]
#[expect(missing_docs)] // The variants are documented in core/RECORDS.md.
pub enum StatePayload {
    Sending,
    Complete,
    Delivered,
    Failed,
    Cancelled(CancelledByPayload),
}

impl From<TransferState> for StatePayload {
    fn from(state: TransferState) -> Self {
        match state {
            TransferState::Sending => Self::Sending,
            TransferState::Complete => Self::Complete,
            TransferState::Delivered => Self::Delivered,
            TransferState::Failed => Self::Failed,
            TransferState::Cancelled(by) => Self::Cancelled(match by {
                CancelledBy::SendingPractice => CancelledByPayload::SendingPractice,
                CancelledBy::ReceivingPractice => CancelledByPayload::ReceivingPractice,
                CancelledBy::Expiry => CancelledByPayload::Expiry,
            }),
        }
    }
}

impl StatePayload {
    fn into_domain(self) -> TransferState {
        match self {
            Self::Sending => TransferState::Sending,
            Self::Complete => TransferState::Complete,
            Self::Delivered => TransferState::Delivered,
            Self::Failed => TransferState::Failed,
            Self::Cancelled(by) => TransferState::Cancelled(match by {
                CancelledByPayload::SendingPractice => CancelledBy::SendingPractice,
                CancelledByPayload::ReceivingPractice => CancelledBy::ReceivingPractice,
                CancelledByPayload::Expiry => CancelledBy::Expiry,
            }),
        }
    }
}

/// `CancelledBy`: the variants in this order are the stored numbers (public for the trace).
#[derive(Serialize, Deserialize)]
#[serde(rename = "CancelledBy")]
#[expect(missing_docs)] // The variants are documented in core/RECORDS.md.
pub enum CancelledByPayload {
    SendingPractice,
    ReceivingPractice,
    Expiry,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gp2gp::{CHUNK_COUNT_MAX, DOCUMENT_BYTES_MAX, chunk_count};

    fn parts(document_size: u64) -> TransferParts {
        TransferParts {
            id: TransferId::new(7).expect("an id"),
            patient: "9434765919".parse().expect("an NHS number"),
            from_practice: "A81001".parse().expect("a code"),
            to_practice: "B82002".parse().expect("a code"),
            document_size,
            document_sha256: Sha256Hash::of(b"document"),
            chunks: vec![None; chunk_count(document_size) as usize],
            state: TransferState::Sending,
            created_ms: 1_000,
            updated_ms: 1_000,
        }
    }

    fn transfer(parts: TransferParts) -> Transfer {
        Transfer::from_parts(parts).expect("a valid transfer")
    }

    #[test]
    fn records_read_back_as_written_and_the_largest_fits_its_limit() {
        let small = transfer(parts(1000));
        assert_eq!(decode(&encode(&small)), Ok(small));
        let largest = transfer(TransferParts {
            id: TransferId::new(TransferId::MAX).expect("the largest id"),
            from_practice: "ABCDEFGHIJ".parse().expect("a code"),
            to_practice: "ABCDEFGHI0".parse().expect("a code"),
            chunks: vec![Some(Sha256Hash::from_bytes([0xff; 32])); CHUNK_COUNT_MAX as usize],
            state: TransferState::Cancelled(CancelledBy::Expiry),
            created_ms: u64::MAX,
            updated_ms: u64::MAX,
            ..parts(DOCUMENT_BYTES_MAX)
        });
        let payload = encode(&largest);
        assert_eq!(payload.len(), PAYLOAD_BYTES_MAX);
        assert_eq!(decode(&payload), Ok(largest));
    }

    #[test]
    fn damage_is_refused_and_named() {
        let payload = encode(&transfer(parts(10)));
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert_eq!(message(&[]), "stored transfer record is malformed: empty");
        let mut other = payload.clone();
        other[0] = 9;
        assert_eq!(
            message(&other),
            "stored transfer record is malformed: unknown encoding version 9"
        );
        let mut longer = payload;
        longer.push(0);
        assert_eq!(
            message(&longer),
            "stored transfer record is malformed: 1 bytes after the record"
        );
        assert_eq!(
            message(&vec![1; PAYLOAD_BYTES_MAX + 1]),
            "stored transfer record is malformed: 13296 bytes, more than the 13295 a record takes"
        );
        let valid = transfer(parts(10));
        let mut record = TransferRecord::from(&valid);
        record.updated_ms = 999;
        assert_eq!(
            message(&record.encode()),
            "stored transfer record is malformed: updated at 999 ms, before it was created at \
             1000 ms"
        );
    }
}
