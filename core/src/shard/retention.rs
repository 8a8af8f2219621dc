//! What a shard's log must keep when its segments are compacted, beyond what the log keeps by
//! itself (each key's latest record, every delete, each segment's last record).
//!
//! The rule per kind, for a record that a later one of its key superseded (or that has no
//! key), and why:
//! - **audit events and privacy alerts: always.** They are the record of every disclosure; the
//!   SHA-256 chain links each event to the one before, each patient's trail links their events
//!   by log index, and an alert names its event's index. They leave the log only by a retention
//!   rule of their own (not built yet).
//! - **Summary Care Record versions: always.** Each links to the version before by log index,
//!   and a record's history is read along those links.
//! - **document chunks: always** (a transfer's document; a chunk is written once).
//! - **records a remembered write outcome answers with** (the outcome ring's slots): kept while
//!   the outcome is in the ring, so a retry answers as the first time did.
//! - **records with no key: always** (only audit events have none today), and every record of
//!   a kind not named below (a kind added later is kept until its rule is written here).
//! - everything else superseded is dropped: earlier versions of patients, prescriptions,
//!   services, slots, referrals, transfers, registrations, the shard's metadata, and outcomes
//!   whose slot a later write took.
//!
//! The shard's metadata before a point is found by [`super::audit_queries`] from the audit
//! event before it as well, so dropping old metadata loses nothing a check needs.

use std::collections::HashSet;

use spine_storage::{ReadError, RecordView};

use super::record_layout;
use super::records;
use super::store::Store;

/// A shard's retention rule, with the records its live write outcomes pin.
#[derive(Debug, Default)]
pub struct Retention {
    /// Log indices of the records the outcomes in the ring answer with.
    pinned: HashSet<u64>,
}

impl Retention {
    /// The rule for `store`'s shard, pinning the records the outcomes in its ring answer with.
    /// The ring's slots fill in order from 0 and are never emptied, so every slot up to the
    /// first empty one is read, whatever ring size the server was run with. An outcome that
    /// does not decode pins nothing (its retry is refused as unreadable either way).
    pub fn of<S: Store>(store: &S) -> Result<Self, ReadError> {
        let mut pinned = HashSet::new();
        for slot in 0.. {
            let written = store.get(record_layout::outcome_key(slot), |stored| {
                records::outcome::decode(stored.payload)
                    .and_then(|record| record.outcome.ok())
                    .map(|written| written.index)
            })?;
            match written {
                None => break,
                Some(Some(index)) => {
                    pinned.insert(index);
                }
                Some(None) => {}
            }
        }
        Ok(Self { pinned })
    }

    /// Whether a compaction must keep `record`, superseded or without a key.
    pub fn keeps(&self, record: &RecordView<'_>) -> bool {
        if record.key().is_none() || self.pinned.contains(&record.position().index) {
            return true;
        }
        // Named kinds only: a kind added later is kept until its rule is written here.
        !matches!(
            record.kind(),
            record_layout::KIND_PATIENT
                | record_layout::KIND_OUTCOME
                | record_layout::KIND_META
                | record_layout::KIND_PRESCRIPTION
                | record_layout::KIND_SERVICE
                | record_layout::KIND_SLOT
                | record_layout::KIND_REFERRAL
                | record_layout::KIND_TRANSFER
                | record_layout::KIND_REGISTRATION
        )
    }

    /// How many records the outcomes pin.
    pub fn pinned(&self) -> usize {
        self.pinned.len()
    }
}
