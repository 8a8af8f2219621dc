//! The tamper-evident audit chain (sans-IO).
//!
//! Each record holds its sequence number, the hash of the record before it, its own hash, the
//! link to the same patient's previous event (its trail link) and the encoded event; its hash is
//! SHA-256 over a domain tag, the sequence number, the previous hash, the trail link and the
//! event bytes. So changing an event or its trail link breaks its own hash, removing one leaves
//! a gap in the sequence, and moving one breaks the order and the links. Everything that can
//! change the answer to "who has seen my record" is in the hash: the trail links are what that
//! query follows.
//!
//! A chain alone cannot show that its tail was cut off, or rewritten from some point on by
//! someone who recomputed every hash after it. Checking against a head (the last sequence and
//! hash) kept somewhere the log's writer cannot change catches both; [`verify`] takes one.
//!
//! Record layout: `sequence u64 | previous [32] | hash [32] | trail u64 | event bytes`,
//! little-endian; `trail` is the log index of the patient's previous audit event, 0 for none.

use sha2::{Digest, Sha256};

use super::event::{AuditEvent, EventCodecError};

/// Bytes before the event in a record.
pub const RECORD_PREFIX_SIZE: usize = 8 + 32 + 32 + 8;
/// Mixed into every hash so that no other SHA-256 input can pose as an audit record (v2: the
/// trail link joined the hash).
const DOMAIN_TAG: &[u8] = b"spine-audit-chain-v2";

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: Hash = [0u8; 32];

/// The last record of a chain: what a verifier checks the chain's end against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last record (the first record has 1).
    pub sequence: u64,
    /// Its hash.
    pub hash: Hash,
}

/// Appends events to a chain: keeps the sequence number and hash of the last record.
#[derive(Clone, Debug)]
pub struct AuditChain {
    head: ChainHead,
}

fn link_hash(sequence: u64, previous: &Hash, trail: u64, event: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN_TAG);
    hasher.update(sequence.to_le_bytes());
    hasher.update(previous);
    if !crate::planted::trail_links_unhashed() {
        hasher.update(trail.to_le_bytes());
    }
    hasher.update(event);
    hasher.finalize().into()
}

impl AuditChain {
    /// A new, empty chain.
    pub fn new() -> Self {
        Self {
            head: ChainHead {
                sequence: 0,
                hash: GENESIS,
            },
        }
    }

    /// Continues a chain whose last record is `head` (after a restart).
    pub fn resume(head: ChainHead) -> Self {
        Self { head }
    }

    /// The last record appended.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Appends `event`, linked to the same patient's previous event at log index `trail` (0
    /// for none): writes its record to `out` (the bytes to store) and advances the head.
    pub fn append(
        &mut self,
        event: &AuditEvent,
        trail: u64,
        out: &mut Vec<u8>,
    ) -> Result<ChainHead, EventCodecError> {
        let start = out.len();
        let sequence = self.head.sequence + 1;
        out.extend_from_slice(&sequence.to_le_bytes());
        out.extend_from_slice(&self.head.hash);
        out.extend_from_slice(&[0u8; 32]);
        out.extend_from_slice(&trail.to_le_bytes());
        if let Err(error) = event.encode(out) {
            out.truncate(start);
            return Err(error);
        }
        let hash = link_hash(
            sequence,
            &self.head.hash,
            trail,
            &out[start + RECORD_PREFIX_SIZE..],
        );
        out[start + 40..start + 72].copy_from_slice(&hash);
        self.head = ChainHead { sequence, hash };
        Ok(self.head)
    }
}

impl Default for AuditChain {
    fn default() -> Self {
        Self::new()
    }
}

/// One stored record, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRecord<'a> {
    /// Sequence number.
    pub sequence: u64,
    /// Hash of the record before.
    pub previous: Hash,
    /// This record's hash.
    pub hash: Hash,
    /// Log index of the same patient's previous event (0 for none).
    pub trail: u64,
    /// The encoded event.
    pub event: &'a [u8],
}

impl<'a> ChainRecord<'a> {
    /// Splits a stored record; `None` if it is too short to be one.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < RECORD_PREFIX_SIZE {
            return None;
        }
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&bytes[..8]);
        let mut previous = GENESIS;
        previous.copy_from_slice(&bytes[8..40]);
        let mut hash = GENESIS;
        hash.copy_from_slice(&bytes[40..72]);
        let mut trail = [0u8; 8];
        trail.copy_from_slice(&bytes[72..RECORD_PREFIX_SIZE]);
        Some(Self {
            sequence: u64::from_le_bytes(sequence),
            previous,
            hash,
            trail: u64::from_le_bytes(trail),
            event: &bytes[RECORD_PREFIX_SIZE..],
        })
    }

    /// Whether the record's contents match its hash.
    pub fn hash_matches(&self) -> bool {
        link_hash(self.sequence, &self.previous, self.trail, self.event) == self.hash
    }

    /// The chain's head if this record is its last.
    pub fn as_head(&self) -> ChainHead {
        ChainHead {
            sequence: self.sequence,
            hash: self.hash,
        }
    }

    /// The decoded event.
    pub fn decode_event(&self) -> Result<AuditEvent, EventCodecError> {
        AuditEvent::decode(self.event)
    }
}

/// How a chain fails verification: the first problem found, in chain order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TamperError {
    /// The record at this position is too short to be a record.
    #[error("audit record {position} is malformed")]
    Malformed {
        /// Position of the record in the input, from 0.
        position: usize,
    },
    /// The record's contents do not match its hash: the event (or the hash) was changed.
    #[error("audit record {sequence} was changed: its hash does not match its contents")]
    Changed {
        /// Sequence number of the record.
        sequence: u64,
    },
    /// Records are missing: the sequence jumps over this number.
    #[error("audit record {sequence} is missing")]
    Missing {
        /// The first missing sequence number.
        sequence: u64,
    },
    /// A record stands where it does not belong: an earlier sequence number, or a link to a
    /// record other than the one before it.
    #[error("audit record {found} stands where record {expected} belongs")]
    OutOfOrder {
        /// The sequence number expected here.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// The chain does not end at the trusted head: its tail was removed or rewritten.
    #[error("audit chain ends at record {last}, not at the trusted head (record {head})")]
    HeadMismatch {
        /// The chain's last sequence number.
        last: u64,
        /// The head's sequence number.
        head: u64,
    },
}

/// Checks a chain record by record, in stored order (sans-IO: the caller reads the records).
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    last: ChainHead,
}

impl ChainVerifier {
    /// A verifier whose next record must follow `start` (the genesis head for a whole chain).
    pub fn new(start: ChainHead) -> Self {
        Self { last: start }
    }

    /// The head of the records checked so far.
    pub fn head(&self) -> ChainHead {
        self.last
    }

    /// Checks that `record` follows the records before it and is intact; advances the head.
    pub fn check(&mut self, record: &ChainRecord<'_>) -> Result<(), TamperError> {
        let expected = self.last.sequence + 1;
        if record.sequence > expected {
            return Err(TamperError::Missing { sequence: expected });
        }
        if record.sequence < expected {
            return Err(TamperError::OutOfOrder {
                expected,
                found: record.sequence,
            });
        }
        if !record.hash_matches() || record.decode_event().is_err() {
            return Err(TamperError::Changed {
                sequence: record.sequence,
            });
        }
        if record.previous != self.last.hash {
            // The record is intact but was made after a different predecessor: the one before
            // it was replaced or moved here from elsewhere.
            return Err(TamperError::OutOfOrder {
                expected,
                found: record.sequence,
            });
        }
        self.last = record.as_head();
        Ok(())
    }

    /// Checks that the chain ends at the trusted `head`, if one is given; returns its head.
    pub fn finish(&self, head: Option<ChainHead>) -> Result<ChainHead, TamperError> {
        match head {
            Some(head) if head != self.last => Err(TamperError::HeadMismatch {
                last: self.last.sequence,
                head: head.sequence,
            }),
            _ => Ok(self.last),
        }
    }
}

/// Verifies records in stored order, starting from the first record of the chain. With a
/// trusted `head`, also checks that the chain ends exactly there. Returns the chain's head.
pub fn verify(records: &[&[u8]], head: Option<ChainHead>) -> Result<ChainHead, TamperError> {
    let mut verifier = ChainVerifier::new(ChainHead {
        sequence: 0,
        hash: GENESIS,
    });
    for (position, bytes) in records.iter().enumerate() {
        let record = ChainRecord::parse(bytes).ok_or(TamperError::Malformed { position })?;
        match verifier.check(&record) {
            Ok(()) => {}
            // A jump forward: the expected record is either later on (moved) or nowhere.
            Err(TamperError::Missing { sequence })
                if records[position + 1..].iter().any(|later| {
                    ChainRecord::parse(later).is_some_and(|r| r.sequence == sequence)
                }) =>
            {
                return Err(TamperError::OutOfOrder {
                    expected: sequence,
                    found: record.sequence,
                });
            }
            Err(error) => return Err(error),
        }
    }
    verifier.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::tests::sample;
    use proptest::prelude::*;

    /// `count` chained records of distinct events.
    fn chain(count: usize) -> (Vec<Vec<u8>>, ChainHead) {
        let mut chain = AuditChain::new();
        let records = (0..count)
            .map(|i| {
                let mut out = Vec::new();
                chain
                    .append(&sample(1_000 + i as u64), i as u64, &mut out)
                    .unwrap();
                out
            })
            .collect();
        (records, chain.head())
    }

    fn check(records: &[Vec<u8>], head: Option<ChainHead>) -> Result<ChainHead, TamperError> {
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        verify(&slices, head)
    }

    #[test]
    fn an_intact_chain_verifies_and_resumes() {
        let (mut records, head) = chain(5);
        assert_eq!(check(&records, Some(head)), Ok(head));
        let mut resumed = AuditChain::resume(head);
        let mut out = Vec::new();
        let next = resumed.append(&sample(9_999), 0, &mut out).unwrap();
        records.push(out);
        assert_eq!(next.sequence, 6);
        assert_eq!(check(&records, Some(next)), Ok(next));
        assert_eq!(
            check(&[], None),
            Ok(ChainHead {
                sequence: 0,
                hash: GENESIS
            })
        );
    }

    #[test]
    fn a_rewritten_tail_is_caught_only_by_the_trusted_head() {
        let (mut records, head) = chain(4);
        // Whoever can write the log replaces the last event and recomputes its hash.
        let mut forger = AuditChain::resume({
            let third = ChainRecord::parse(&records[2]).unwrap();
            ChainHead {
                sequence: third.sequence,
                hash: third.hash,
            }
        });
        let mut forged = Vec::new();
        forger.append(&sample(1), 0, &mut forged).unwrap();
        records[3] = forged;
        assert!(
            check(&records, None).is_ok(),
            "a consistent rewrite passes without a head"
        );
        assert_eq!(
            check(&records, Some(head)),
            Err(TamperError::HeadMismatch { last: 4, head: 4 })
        );
        assert_eq!(
            check(&records[..3], Some(head)),
            Err(TamperError::HeadMismatch { last: 3, head: 4 })
        );
    }

    #[derive(Clone, Debug)]
    enum Tamper {
        ChangeByte { record: usize, byte: usize },
        Remove { record: usize },
        Swap { record: usize },
    }

    fn tamper() -> impl Strategy<Value = Tamper> {
        prop_oneof![
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(r, b)| {
                Tamper::ChangeByte {
                    record: r.index(1 << 16),
                    byte: b.index(1 << 16),
                }
            }),
            any::<prop::sample::Index>().prop_map(|r| Tamper::Remove {
                record: r.index(1 << 16)
            }),
            any::<prop::sample::Index>().prop_map(|r| Tamper::Swap {
                record: r.index(1 << 16)
            }),
        ]
    }

    proptest! {
        /// Any single change, removal (not of the last record: that needs the head) or swap of
        /// neighbours is found, as the right kind of tampering, at the right record.
        #[test]
        fn every_tampering_is_detected(count in 3usize..40, tampering in tamper()) {
            let (mut records, head) = chain(count);
            match tampering {
                Tamper::ChangeByte { record, byte } => {
                    let record = record % count;
                    let byte = byte % records[record].len();
                    records[record][byte] ^= 0x20;
                    let error = check(&records, Some(head)).unwrap_err();
                    // A changed sequence number shows as a gap or a repeat; anything else as a
                    // change at that record (or, for its stored previous hash, a broken link).
                    let sequence = record as u64 + 1;
                    let found = matches!(error, TamperError::Changed { sequence: s } if s == sequence)
                        || matches!(error, TamperError::Missing { sequence: s } if s == sequence)
                        || matches!(error, TamperError::OutOfOrder { expected, .. } if expected == sequence);
                    prop_assert!(found, "record {record} byte {byte}: {error:?}");
                }
                Tamper::Remove { record } => {
                    let record = record % (count - 1);
                    records.remove(record);
                    prop_assert_eq!(check(&records, None), Err(TamperError::Missing { sequence: record as u64 + 1 }));
                }
                Tamper::Swap { record } => {
                    let record = record % (count - 1);
                    records.swap(record, record + 1);
                    prop_assert_eq!(
                        check(&records, None),
                        Err(TamperError::OutOfOrder { expected: record as u64 + 1, found: record as u64 + 2 })
                    );
                }
            }
        }
    }
}
