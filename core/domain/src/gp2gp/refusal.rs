//! Why a transfer step is refused, and the code that goes on the wire.
//!
//! The codes are this project's own: GP2GP's message specification has its own negative
//! acknowledgement reasons, but those describe the practices' systems (record too large to
//! integrate, patient not at this practice), not a chunked upload to the Spine. They are named
//! in the style of the Spine's other codes.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::hash::Sha256HashError;
use super::transfer::TransferId;
use crate::pds::values::OdsCode;

/// The codes a transfer refusal carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Gp2gpErrorCode {
    /// A malformed value: a document digest that is not 64 hex digits, or all zeros.
    InvalidValue,
    /// A document of zero bytes.
    DocumentEmpty,
    /// A document larger than [`super::DOCUMENT_BYTES_MAX`].
    DocumentTooLarge,
    /// The sending and receiving practices are the same.
    SamePractice,
    /// The practice is not the transfer's sender (for uploads) or receiver (for downloads and
    /// acknowledgements), or not a party to it at all.
    NotParticipant,
    /// The transfer's state does not allow the step.
    InvalidState,
    /// A chunk index past the document's last chunk.
    ChunkIndexOutOfRange,
    /// A chunk whose length is not its index's.
    ChunkLengthMismatch,
    /// Different bytes for a chunk already held.
    ChunkConflict,
    /// A step that needs the whole document before every chunk is held.
    DocumentIncomplete,
    /// The chunks, or what the receiver reassembled, are not the declared document.
    DocumentHashMismatch,
    /// Expiry of a transfer that moved recently.
    TransferNotIdle,
}

impl Gp2gpErrorCode {
    /// Every code, in the order they are declared.
    pub const ALL: [Gp2gpErrorCode; 12] = [
        Gp2gpErrorCode::InvalidValue,
        Gp2gpErrorCode::DocumentEmpty,
        Gp2gpErrorCode::DocumentTooLarge,
        Gp2gpErrorCode::SamePractice,
        Gp2gpErrorCode::NotParticipant,
        Gp2gpErrorCode::InvalidState,
        Gp2gpErrorCode::ChunkIndexOutOfRange,
        Gp2gpErrorCode::ChunkLengthMismatch,
        Gp2gpErrorCode::ChunkConflict,
        Gp2gpErrorCode::DocumentIncomplete,
        Gp2gpErrorCode::DocumentHashMismatch,
        Gp2gpErrorCode::TransferNotIdle,
    ];

    /// The code as it is written on the wire and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Gp2gpErrorCode::InvalidValue => "INVALID_VALUE",
            Gp2gpErrorCode::DocumentEmpty => "DOCUMENT_EMPTY",
            Gp2gpErrorCode::DocumentTooLarge => "DOCUMENT_TOO_LARGE",
            Gp2gpErrorCode::SamePractice => "SAME_PRACTICE",
            Gp2gpErrorCode::NotParticipant => "NOT_PARTICIPANT",
            Gp2gpErrorCode::InvalidState => "INVALID_STATE",
            Gp2gpErrorCode::ChunkIndexOutOfRange => "CHUNK_INDEX_OUT_OF_RANGE",
            Gp2gpErrorCode::ChunkLengthMismatch => "CHUNK_LENGTH_MISMATCH",
            Gp2gpErrorCode::ChunkConflict => "CHUNK_CONFLICT",
            Gp2gpErrorCode::DocumentIncomplete => "DOCUMENT_INCOMPLETE",
            Gp2gpErrorCode::DocumentHashMismatch => "DOCUMENT_HASH_MISMATCH",
            Gp2gpErrorCode::TransferNotIdle => "TRANSFER_NOT_IDLE",
        }
    }
}

impl fmt::Display for Gp2gpErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transfer step was refused. A refusal changes nothing: the steps take the transfer by
/// reference and return a new one only when they accept. Messages name transfers, chunks and
/// practices, never the record's content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferRefusal {
    /// A malformed document digest.
    #[error(transparent)]
    Digest(#[from] Sha256HashError),
    /// A document digest of all zeros: a field never filled in.
    #[error("the document digest is all zeros")]
    ZeroDigest,
    /// A document of zero bytes: there is no record to send.
    #[error("the document is empty")]
    DocumentEmpty,
    /// A document larger than the limit.
    #[error("the document has {size} bytes; at most {max} are allowed")]
    DocumentTooLarge {
        /// Bytes declared.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A transfer from a practice to itself.
    #[error("practice {practice} cannot transfer a record to itself")]
    SamePractice {
        /// The practice.
        practice: OdsCode,
    },
    /// The practice may not take this step on this transfer.
    #[error("practice {practice} may not {action} transfer {transfer}")]
    NotParticipant {
        /// The transfer.
        transfer: TransferId,
        /// The practice that asked.
        practice: OdsCode,
        /// What was asked (`upload a chunk of`, `acknowledge`, ...), to read before the id.
        action: &'static str,
    },
    /// The step is not allowed in the transfer's state.
    #[error("cannot {action} transfer {transfer}: it is {state}")]
    InvalidState {
        /// The transfer.
        transfer: TransferId,
        /// What was asked, to read before the id.
        action: &'static str,
        /// The state's code (`DELIVERED`, `FAILED`, ...).
        state: &'static str,
    },
    /// A chunk index past the last chunk.
    #[error("transfer {transfer} has {count} chunks; there is no chunk {index}")]
    ChunkIndexOutOfRange {
        /// The transfer.
        transfer: TransferId,
        /// The index given.
        index: u32,
        /// Chunks in the document.
        count: u32,
    },
    /// A chunk of the wrong length for its index.
    #[error("transfer {transfer}: chunk {index} must be {expected} bytes, not {found}")]
    ChunkLengthMismatch {
        /// The transfer.
        transfer: TransferId,
        /// The chunk.
        index: u32,
        /// Its length.
        expected: u32,
        /// The length given.
        found: usize,
    },
    /// Different bytes for a chunk already held. A held chunk never changes, so the sender is
    /// sending another document than it started with.
    #[error("transfer {transfer}: chunk {index} is already held with other bytes")]
    ChunkConflict {
        /// The transfer.
        transfer: TransferId,
        /// The chunk.
        index: u32,
    },
    /// A step that needs every chunk held.
    #[error("cannot {action} transfer {transfer}: {missing} of its chunks are not yet held")]
    DocumentIncomplete {
        /// The transfer.
        transfer: TransferId,
        /// What was asked, to read before the id.
        action: &'static str,
        /// Chunks not held.
        missing: u32,
    },
    /// The held chunks together, or the document the receiver acknowledges, do not have the
    /// declared digest.
    #[error("transfer {transfer}: the document's SHA-256 is not the one declared at the start")]
    DocumentHashMismatch {
        /// The transfer.
        transfer: TransferId,
    },
    /// Expiry of a transfer that moved within the limit.
    #[error("transfer {transfer} changed {idle_ms} ms ago; it expires after {idle_ms_max} ms")]
    NotIdle {
        /// The transfer.
        transfer: TransferId,
        /// Time since it last changed.
        idle_ms: u64,
        /// The limit.
        idle_ms_max: u64,
    },
}

impl TransferRefusal {
    /// The code to send with the message.
    pub fn code(&self) -> Gp2gpErrorCode {
        match self {
            TransferRefusal::Digest(_) | TransferRefusal::ZeroDigest => {
                Gp2gpErrorCode::InvalidValue
            }
            TransferRefusal::DocumentEmpty => Gp2gpErrorCode::DocumentEmpty,
            TransferRefusal::DocumentTooLarge { .. } => Gp2gpErrorCode::DocumentTooLarge,
            TransferRefusal::SamePractice { .. } => Gp2gpErrorCode::SamePractice,
            TransferRefusal::NotParticipant { .. } => Gp2gpErrorCode::NotParticipant,
            TransferRefusal::InvalidState { .. } => Gp2gpErrorCode::InvalidState,
            TransferRefusal::ChunkIndexOutOfRange { .. } => Gp2gpErrorCode::ChunkIndexOutOfRange,
            TransferRefusal::ChunkLengthMismatch { .. } => Gp2gpErrorCode::ChunkLengthMismatch,
            TransferRefusal::ChunkConflict { .. } => Gp2gpErrorCode::ChunkConflict,
            TransferRefusal::DocumentIncomplete { .. } => Gp2gpErrorCode::DocumentIncomplete,
            TransferRefusal::DocumentHashMismatch { .. } => Gp2gpErrorCode::DocumentHashMismatch,
            TransferRefusal::NotIdle { .. } => Gp2gpErrorCode::TransferNotIdle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_screaming_snake_and_distinct() {
        let mut names: Vec<&str> = Gp2gpErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for name in &names {
            assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Gp2gpErrorCode::ALL.len());
        assert_eq!(Gp2gpErrorCode::ChunkConflict.to_string(), "CHUNK_CONFLICT");
    }

    #[test]
    fn refusals_have_codes_and_messages() {
        let transfer = TransferId::new(12).unwrap();
        let cases = [
            (
                TransferRefusal::from(Sha256HashError { length: 3 }),
                "INVALID_VALUE",
                "a SHA-256 digest is 64 hexadecimal digits; 3 characters given, or not all hex",
            ),
            (
                TransferRefusal::DocumentTooLarge { size: 5, max: 4 },
                "DOCUMENT_TOO_LARGE",
                "the document has 5 bytes; at most 4 are allowed",
            ),
            (
                TransferRefusal::NotParticipant {
                    transfer,
                    practice: "C83003".parse().unwrap(),
                    action: "acknowledge",
                },
                "NOT_PARTICIPANT",
                "practice C83003 may not acknowledge transfer 12",
            ),
            (
                TransferRefusal::InvalidState {
                    transfer,
                    action: "download a chunk of",
                    state: "DELIVERED",
                },
                "INVALID_STATE",
                "cannot download a chunk of transfer 12: it is DELIVERED",
            ),
            (
                TransferRefusal::ChunkLengthMismatch {
                    transfer,
                    index: 3,
                    expected: 10,
                    found: 11,
                },
                "CHUNK_LENGTH_MISMATCH",
                "transfer 12: chunk 3 must be 10 bytes, not 11",
            ),
            (
                TransferRefusal::NotIdle {
                    transfer,
                    idle_ms: 1,
                    idle_ms_max: 2,
                },
                "TRANSFER_NOT_IDLE",
                "transfer 12 changed 1 ms ago; it expires after 2 ms",
            ),
        ];
        for (refusal, code, message) in cases {
            assert_eq!(refusal.code().as_str(), code);
            assert_eq!(refusal.to_string(), message);
        }
    }
}
