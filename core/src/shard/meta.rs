//! A shard's counters and audit chain head, written as the last record of every turn that
//! writes. A turn is one append group of the log, durable whole or not at all, so the last
//! record of a recovered log is a turn's metadata record. On open the shard reads it back and
//! replays any records after it all the same (defence in depth), so the counters never go back.

use serde::{Deserialize, Serialize};

use super::records::versioned;
use crate::audit::chain::{ChainHead, GENESIS};

/// Version byte in front of every metadata record.
pub const ENCODING_VERSION: u8 = 1;

/// What a shard must not forget between runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// The next nine-digit stem to try when allocating an NHS number.
    pub nhs_cursor: u64,
    /// The next alert's sequence number.
    pub alert_sequence: u64,
    /// The next write outcome's sequence number (its slot is this modulo the slot count).
    pub outcome_sequence: u64,
    /// The audit chain's last sequence number.
    pub chain_sequence: u64,
    /// The audit chain's last hash.
    pub chain_hash: [u8; 32],
}

impl ShardMeta {
    /// The counters of a new shard allocating from `nhs_first_stem`.
    pub fn new(nhs_first_stem: u64) -> Self {
        Self {
            nhs_cursor: nhs_first_stem,
            alert_sequence: 1,
            outcome_sequence: 0,
            chain_sequence: 0,
            chain_hash: GENESIS,
        }
    }

    /// The audit chain's head.
    pub fn chain_head(&self) -> ChainHead {
        ChainHead {
            sequence: self.chain_sequence,
            hash: self.chain_hash,
        }
    }

    /// The record's bytes: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(ENCODING_VERSION, self)
    }

    /// Reads a record written by [`ShardMeta::encode`].
    pub fn decode(payload: &[u8]) -> Option<Self> {
        versioned::decode(ENCODING_VERSION, payload)
    }
}
