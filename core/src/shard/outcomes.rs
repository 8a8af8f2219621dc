//! Idempotent writes: the outcome of each write is stored in a ring of slots in the log, so a
//! retry with the same request id gets the first outcome back instead of a second effect.
//!
//! The ring holds the last `slots` writes of the shard; in memory the shard keeps only which
//! request id is in which slot. A retry older than that is treated as new (the window is
//! configured, and documented to supplier systems).

use std::collections::HashMap;

use uuid::Uuid;

use crate::request::{Refusal, Reply};

/// What a write returned: the reply, and where the record it wrote is.
pub type WriteOutcome = Result<(Reply, Written), Refusal>;

/// What a write's outcome record keeps: where the record it wrote is (the record itself is in
/// the log already, so a retry reads it back rather than the ring holding a second copy), or
/// the refusal.
pub type StoredOutcome = Result<Written, Refusal>;

/// The record a write produced: its key (what the overlay knows it by) and log index. A
/// retry reads it back and answers as the first time (the reply's form follows from the
/// record's kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The record's key.
    pub key: u64,
    /// Its log index.
    pub index: u64,
}

/// One stored outcome (its bytes: `records::outcome`).
#[derive(Clone, Debug, PartialEq, Eq)]
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
