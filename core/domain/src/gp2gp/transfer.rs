//! The transfer record: one per document in transit, holding what the Spine knows of it (who
//! sends it to whom, its size and digest, which chunks are held and each one's digest, and
//! where it is in the protocol), and its encoding in the log.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::chunk::{DOCUMENT_BYTES_MAX, chunk_count};
use super::hash::Sha256Hash;
use crate::NhsNumber;
use crate::pds::values::OdsCode;

/// Bits a transfer id may use: with [`super::chunk::CHUNK_INDEX_BITS`] of chunk index it makes
/// a chunk's key value, which must stay below the shard's namespace byte.
pub const TRANSFER_ID_BITS: u32 = 47;

/// A transfer's id, chosen by the engine when the transfer starts: 1 to 2^47 - 1. Zero is
/// never used, so a field left at zero is caught rather than read as a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct TransferId(u64);

/// A value that is not a transfer id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GP2GP transfer id (digits only, 1 to {max})", max = TransferId::MAX)]
pub struct TransferIdError(pub String);

impl TransferId {
    /// The largest id.
    pub const MAX: u64 = (1 << TRANSFER_ID_BITS) - 1;

    /// The id with this value, if it is in range.
    pub fn new(value: u64) -> Option<Self> {
        (1..=Self::MAX).contains(&value).then_some(Self(value))
    }

    /// The id's value.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for TransferId {
    type Error = TransferIdError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::new(value).ok_or_else(|| TransferIdError(value.to_string()))
    }
}

impl From<TransferId> for u64 {
    fn from(id: TransferId) -> Self {
        id.0
    }
}

impl FromStr for TransferId {
    type Err = TransferIdError;

    /// Decimal digits only: `u64`'s own parser would also take a leading `+`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TransferIdError(text.to_owned());
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        text.parse::<u64>()
            .ok()
            .and_then(Self::new)
            .ok_or_else(error)
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who ended a transfer before delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CancelledBy {
    /// The sending (previous) practice withdrew it.
    SendingPractice,
    /// The receiving (new) practice rejected it (GP2GP's negative acknowledgement).
    ReceivingPractice,
    /// Nobody moved it for [`super::TRANSFER_IDLE_MS_MAX`]; see [`super::expire`].
    Expiry,
}

/// Where a transfer is. `Delivered`, `Failed` and `Cancelled` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransferState {
    /// The sending practice is uploading chunks. When every chunk is held the transfer awaits
    /// completion ([`Transfer::awaits_completion`]) but is still `Sending` until the whole
    /// document's digest is checked.
    Sending,
    /// Every chunk is held and together they are the declared document: the receiving
    /// practice may download it.
    Complete,
    /// The receiving practice acknowledged the whole document. Exactly one transition reaches
    /// this state, so the document is delivered exactly once.
    Delivered,
    /// Every chunk was held but together they were not the declared document. The chunks
    /// cannot be changed, so the sender must start a new transfer.
    Failed,
    /// Ended before delivery.
    Cancelled(CancelledBy),
}

impl TransferState {
    /// The state's code, as messages and the wire name it.
    pub fn code(&self) -> &'static str {
        match self {
            TransferState::Sending => "SENDING",
            TransferState::Complete => "COMPLETE",
            TransferState::Delivered => "DELIVERED",
            TransferState::Failed => "FAILED",
            TransferState::Cancelled(_) => "CANCELLED",
        }
    }

    /// Whether no step can change the transfer any more.
    pub fn is_final(&self) -> bool {
        !matches!(self, TransferState::Sending | TransferState::Complete)
    }
}

/// A practice's part in a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Party {
    /// The previous practice: it starts the transfer and uploads the chunks.
    SendingPractice,
    /// The new practice: it downloads the chunks and acknowledges delivery.
    ReceivingPractice,
}

/// What the sending practice declares when it starts a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    /// The patient whose record it is.
    pub patient: NhsNumber,
    /// The previous practice, which sends.
    pub from_practice: OdsCode,
    /// The new practice, which receives.
    pub to_practice: OdsCode,
    /// The document's size in bytes: 1 to [`DOCUMENT_BYTES_MAX`].
    pub document_size: u64,
    /// SHA-256 of the whole document.
    pub document_sha256: Sha256Hash,
}

/// A transfer's fields, each as [`Transfer`] holds it, to rebuild one stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferParts {
    /// The transfer's id.
    pub id: TransferId,
    /// The patient whose record it is.
    pub patient: NhsNumber,
    /// The previous practice, which sends.
    pub from_practice: OdsCode,
    /// The new practice, which receives.
    pub to_practice: OdsCode,
    /// The document's size in bytes.
    pub document_size: u64,
    /// SHA-256 of the whole document, as declared.
    pub document_sha256: Sha256Hash,
    /// One entry per chunk: its digest once held.
    pub chunks: Vec<Option<Sha256Hash>>,
    /// Where the transfer is.
    pub state: TransferState,
    /// When it started, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
}

/// A transfer. It changes only through this module's steps, which keep its rules, so its
/// fields are read through methods; one rebuilt from its fields ([`Transfer::from_parts`]) is
/// checked against those rules. serde alone (a message) checks only each field's own type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub(super) id: TransferId,
    pub(super) patient: NhsNumber,
    pub(super) from_practice: OdsCode,
    pub(super) to_practice: OdsCode,
    pub(super) document_size: u64,
    pub(super) document_sha256: Sha256Hash,
    /// One entry per chunk: `None` until the chunk is held, then its digest, which never
    /// changes. The entries are the bitmap of held chunks, so the two cannot disagree.
    pub(super) chunks: Vec<Option<Sha256Hash>>,
    pub(super) state: TransferState,
    pub(super) created_ms: u64,
    pub(super) updated_ms: u64,
}

impl Transfer {
    /// Withholds `practice` as either party (see `shard::restricted`).
    pub fn withhold_practice(&mut self, practice: &OdsCode) {
        use crate::restricted::withhold;
        withhold(&mut self.from_practice, practice);
        withhold(&mut self.to_practice, practice);
    }

    /// The transfer's id.
    pub fn id(&self) -> TransferId {
        self.id
    }

    /// The patient whose record it is.
    pub fn patient(&self) -> NhsNumber {
        self.patient
    }

    /// The previous practice, which sends.
    pub fn from_practice(&self) -> &OdsCode {
        &self.from_practice
    }

    /// The new practice, which receives.
    pub fn to_practice(&self) -> &OdsCode {
        &self.to_practice
    }

    /// The document's size in bytes.
    pub fn document_size(&self) -> u64 {
        self.document_size
    }

    /// SHA-256 of the whole document, as the sender declared it.
    pub fn document_sha256(&self) -> Sha256Hash {
        self.document_sha256
    }

    /// Chunks in the document.
    pub fn chunk_count(&self) -> u32 {
        // The record's rules keep the length at most CHUNK_COUNT_MAX.
        self.chunks.len() as u32
    }

    /// Chunks held.
    pub fn held_count(&self) -> u32 {
        // At most chunk_count, itself at most CHUNK_COUNT_MAX.
        self.chunks.iter().flatten().count() as u32
    }

    /// The digest of chunk `chunk_index` if it is held.
    pub fn chunk_sha256(&self, chunk_index: u32) -> Option<Sha256Hash> {
        let entry = self.chunks.get(usize::try_from(chunk_index).ok()?)?;
        *entry
    }

    /// One entry per chunk: `None` until the chunk is held, then its digest.
    pub fn chunks(&self) -> &[Option<Sha256Hash>] {
        &self.chunks
    }

    /// Where the transfer is.
    pub fn state(&self) -> TransferState {
        self.state
    }

    /// When it started, in ms since the Unix epoch.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// When it last changed, in ms since the Unix epoch; never before [`Transfer::created_ms`].
    pub fn updated_ms(&self) -> u64 {
        self.updated_ms
    }

    /// Whether every chunk is held but the document's digest is not yet checked: the engine
    /// then runs [`super::complete`]. This is how a completion lost to a restart is picked up
    /// again: the engine checks this after every step on the transfer and when it reads one
    /// back, not only after the chunk that made it true.
    pub fn awaits_completion(&self) -> bool {
        self.state == TransferState::Sending && self.chunks.iter().all(Option::is_some)
    }

    /// The part `practice` plays in the transfer, if any.
    pub fn party(&self, practice: &OdsCode) -> Option<Party> {
        if *practice == self.from_practice {
            Some(Party::SendingPractice)
        } else if *practice == self.to_practice {
            Some(Party::ReceivingPractice)
        } else {
            None
        }
    }

    /// A transfer rebuilt from its fields (as a stored record holds them), if it keeps the
    /// rules every step keeps.
    pub fn from_parts(parts: TransferParts) -> Result<Self, String> {
        let transfer = Self {
            id: parts.id,
            patient: parts.patient,
            from_practice: parts.from_practice,
            to_practice: parts.to_practice,
            document_size: parts.document_size,
            document_sha256: parts.document_sha256,
            chunks: parts.chunks,
            state: parts.state,
            created_ms: parts.created_ms,
            updated_ms: parts.updated_ms,
        };
        transfer.check()?;
        Ok(transfer)
    }

    /// The rules every step keeps, for records read back.
    fn check(&self) -> Result<(), String> {
        if !(1..=DOCUMENT_BYTES_MAX).contains(&self.document_size) {
            return Err(format!("document size {} out of range", self.document_size));
        }
        let expected = chunk_count(self.document_size) as usize;
        if self.chunks.len() != expected {
            return Err(format!(
                "{} chunk entries for a document of {} chunks",
                self.chunks.len(),
                expected
            ));
        }
        if self.from_practice == self.to_practice {
            return Err("the sending and receiving practices are the same".into());
        }
        if self.document_sha256.is_zero() {
            return Err("the document digest is all zeros".into());
        }
        if self.updated_ms < self.created_ms {
            return Err(format!(
                "updated at {} ms, before it was created at {} ms",
                self.updated_ms, self.created_ms
            ));
        }
        let all_held = self.chunks.iter().all(Option::is_some);
        let needs_all = matches!(
            self.state,
            TransferState::Complete | TransferState::Delivered | TransferState::Failed
        );
        if needs_all && !all_held {
            return Err(format!(
                "a {} transfer must hold every chunk",
                self.state.code()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn practice(code: &str) -> OdsCode {
        code.parse().unwrap()
    }

    /// A transfer of `document_size` bytes, none held, from A81001 to B82002.
    pub(crate) fn sample(document_size: u64) -> Transfer {
        Transfer {
            id: TransferId::new(7).unwrap(),
            patient: "9434765919".parse().unwrap(),
            from_practice: practice("A81001"),
            to_practice: practice("B82002"),
            document_size,
            document_sha256: Sha256Hash::of(b"document"),
            chunks: vec![None; chunk_count(document_size) as usize],
            state: TransferState::Sending,
            created_ms: 1_000,
            updated_ms: 1_000,
        }
    }

    #[test]
    fn transfer_ids_are_1_to_2_pow_47_minus_1_in_decimal() {
        assert_eq!(TransferId::new(0), None);
        assert_eq!(TransferId::new(1 << 47), None);
        let max = TransferId::new(TransferId::MAX).unwrap();
        assert_eq!(max.to_string(), "140737488355327");
        assert_eq!("140737488355327".parse(), Ok(max));
        assert_eq!("42".parse::<TransferId>().map(TransferId::get), Ok(42));
        for text in [
            "",
            "0",
            "+42",
            "-1",
            "4 2",
            "140737488355328",
            "99999999999999999999",
        ] {
            assert_eq!(
                text.parse::<TransferId>(),
                Err(TransferIdError(text.to_owned())),
                "{text}"
            );
        }
        assert_eq!(
            TransferIdError("x".into()).to_string(),
            "\"x\" is not a GP2GP transfer id (digits only, 1 to 140737488355327)"
        );
        assert!(TransferId::try_from(0).is_err());
        assert_eq!(u64::from(max), TransferId::MAX);
    }

    fn parts(transfer: &Transfer) -> TransferParts {
        TransferParts {
            id: transfer.id,
            patient: transfer.patient,
            from_practice: transfer.from_practice.clone(),
            to_practice: transfer.to_practice.clone(),
            document_size: transfer.document_size,
            document_sha256: transfer.document_sha256,
            chunks: transfer.chunks.clone(),
            state: transfer.state,
            created_ms: transfer.created_ms,
            updated_ms: transfer.updated_ms,
        }
    }

    #[test]
    fn a_transfer_rebuilt_from_its_parts_keeps_the_rules() {
        // Two chunks, the second one byte long.
        const DOCUMENT_SIZE: u64 = 256 * 1024 + 1;
        type Change = fn(&mut Transfer);
        let invalid = |change: Change| {
            let mut transfer = sample(DOCUMENT_SIZE);
            change(&mut transfer);
            Transfer::from_parts(parts(&transfer)).unwrap_err()
        };
        let cases: [(Change, &str); 7] = [
            (|t| t.document_size = 0, "document size 0 out of range"),
            (
                |t| t.document_size = DOCUMENT_BYTES_MAX + 1,
                "document size 104857601 out of range",
            ),
            (
                |t| t.chunks.push(None),
                "3 chunk entries for a document of 2 chunks",
            ),
            (
                |t| t.to_practice = t.from_practice.clone(),
                "the sending and receiving practices are the same",
            ),
            (
                |t| t.document_sha256 = Sha256Hash::from_bytes([0; 32]),
                "the document digest is all zeros",
            ),
            (
                |t| t.updated_ms = 999,
                "updated at 999 ms, before it was created at 1000 ms",
            ),
            (
                |t| t.state = TransferState::Delivered,
                "a DELIVERED transfer must hold every chunk",
            ),
        ];
        for (change, reason) in cases {
            assert_eq!(invalid(change), reason);
        }
        let transfer = sample(DOCUMENT_SIZE);
        assert_eq!(Transfer::from_parts(parts(&transfer)), Ok(transfer));
    }

    #[test]
    fn parties_and_states() {
        let transfer = sample(10);
        assert_eq!(
            transfer.party(&practice("A81001")),
            Some(Party::SendingPractice)
        );
        assert_eq!(
            transfer.party(&practice("B82002")),
            Some(Party::ReceivingPractice)
        );
        assert_eq!(transfer.party(&practice("C83003")), None);
        assert!(!transfer.awaits_completion());
        assert_eq!(transfer.held_count(), 0);
        assert_eq!(transfer.chunk_sha256(0), None);
        assert_eq!(transfer.chunk_sha256(u32::MAX), None);
        let codes = [
            TransferState::Sending,
            TransferState::Complete,
            TransferState::Delivered,
            TransferState::Failed,
            TransferState::Cancelled(CancelledBy::SendingPractice),
        ]
        .map(|state| (state.code(), state.is_final()));
        assert_eq!(
            codes,
            [
                ("SENDING", false),
                ("COMPLETE", false),
                ("DELIVERED", true),
                ("FAILED", true),
                ("CANCELLED", true)
            ]
        );
    }
}
