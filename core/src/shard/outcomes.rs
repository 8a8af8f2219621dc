//! Idempotent writes: the outcome of each write is stored in a ring of slots in the log, so a
//! retry with the same request id gets the first outcome back instead of a second effect.
//!
//! The ring holds the last `slots` writes of the shard; in memory the shard keeps only which
//! request id is in which slot. A retry older than that is treated as new (the window is
//! configured, and documented to supplier systems).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::record_layout;
use crate::pds::nhs_number::NhsNumber;
use crate::request::{Refusal, Reply};
use crate::versioned;

/// Version 2 names the written record by its key (any service's); version 1, still read,
/// named a patient.
pub const ENCODING_VERSION: u8 = 2;
const ENCODING_VERSION_PATIENT_ONLY: u8 = 1;

/// What a write returned: the reply, and where the record it wrote is.
pub type WriteOutcome = Result<(Reply, Written), Refusal>;

/// What a write's outcome record keeps: where the record it wrote is (the record itself is in
/// the log already, so a retry reads it back rather than the ring holding a second copy), or
/// the refusal.
pub type StoredOutcome = Result<Written, Refusal>;

/// The record a write produced: its key (what the overlay knows it by) and log index. A
/// retry reads it back and answers as the first time (the reply's form follows from the
/// record's kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The record's key.
    pub key: u64,
    /// Its log index.
    pub index: u64,
}

/// Version 1's layout, kept to read outcomes written before version 2.
#[derive(Deserialize)]
struct PatientOutcomeRecord {
    request_id: Uuid,
    fingerprint: u64,
    sequence: u64,
    outcome: Result<(NhsNumber, u64), Refusal>,
}

/// One stored outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// The request's id.
    pub request_id: Uuid,
    /// A digest of what was asked, to tell a retry from a different request reusing the id.
    pub fingerprint: u64,
    /// The outcome's sequence number in the shard.
    pub sequence: u64,
    /// What the request returned.
    pub outcome: StoredOutcome,
}

impl OutcomeRecord {
    /// The record's bytes: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(ENCODING_VERSION, self)
    }

    /// Reads a record written by [`OutcomeRecord::encode`] (or by version 1).
    pub fn decode(payload: &[u8]) -> Option<Self> {
        if let Some(record) = versioned::decode(ENCODING_VERSION, payload) {
            return Some(record);
        }
        let old: PatientOutcomeRecord = versioned::decode(ENCODING_VERSION_PATIENT_ONLY, payload)?;
        Some(Self {
            request_id: old.request_id,
            fingerprint: old.fingerprint,
            sequence: old.sequence,
            outcome: old.outcome.map(|(nhs_number, index)| Written {
                key: record_layout::patient_key(nhs_number).get(),
                index,
            }),
        })
    }
}

/// Which request id sits in which slot of the ring.
#[derive(Debug)]
pub struct OutcomeSlots {
    slots: Vec<Option<Uuid>>,
    by_request: HashMap<Uuid, u64>,
}

impl OutcomeSlots {
    /// An empty ring of `slots` slots.
    pub fn new(slots: usize) -> Self {
        assert!(slots > 0, "the outcome ring needs at least one slot");
        Self {
            slots: vec![None; slots],
            by_request: HashMap::with_capacity(slots),
        }
    }

    /// How many slots there are.
    pub fn len(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Whether the ring has no slots (never: see [`OutcomeSlots::new`]).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot sequence number `sequence` is stored in.
    pub fn slot_of(&self, sequence: u64) -> u64 {
        sequence % self.len()
    }

    /// Records that `request_id`'s outcome has sequence number `sequence`, evicting the one
    /// that held the slot before.
    pub fn insert(&mut self, request_id: Uuid, sequence: u64) {
        let slot = self.slot_of(sequence) as usize;
        if let Some(evicted) = self.slots[slot].replace(request_id) {
            self.by_request.remove(&evicted);
        }
        self.by_request.insert(request_id, sequence);
    }

    /// The sequence number of `request_id`'s outcome, if it is still in the ring.
    pub fn find(&self, request_id: Uuid) -> Option<u64> {
        self.by_request.get(&request_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_outcomes_still_read() {
        let nhs: NhsNumber = "9000000009".parse().expect("valid");
        let old = versioned::encode(
            ENCODING_VERSION_PATIENT_ONLY,
            &(
                Uuid::from_u128(5),
                7u64,
                3u64,
                Ok::<_, Refusal>((nhs, 42u64)),
            ),
        );
        let record = OutcomeRecord::decode(&old).expect("version 1 decodes");
        assert_eq!(record.request_id, Uuid::from_u128(5));
        assert_eq!(
            record.outcome,
            Ok(Written {
                key: record_layout::patient_key(nhs).get(),
                index: 42
            })
        );
        assert_eq!(OutcomeRecord::decode(&record.encode()), Some(record));
    }

    #[test]
    fn the_ring_forgets_the_oldest() {
        let mut slots = OutcomeSlots::new(2);
        let ids: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        for (sequence, id) in ids.iter().enumerate() {
            slots.insert(*id, sequence as u64);
        }
        assert_eq!(slots.find(ids[0]), None);
        assert_eq!(slots.find(ids[1]), Some(1));
        assert_eq!(slots.find(ids[2]), Some(2));
    }
}
