//! GP2GP transfer rules against a deliberately simple model: random sequences of uploads by the
//! sending practice (in any order, repeated, with wrong or conflicting bytes, by the wrong
//! practice), resumes from the missing-chunk list, completions, downloads and acknowledgements
//! by the receiving practice, cancellations, expiry, and a server that answers only at its log
//! flushes, loses unflushed work in crashes (the transfer record read back from its encoding)
//! and drops answers on broken connections. Each sequence ends with both practices finishing
//! honestly.
//!
//! The model keeps chunks as bytes and compares them, where the rules keep digests; its rules
//! are written out once more as plain code, with codes as strings.
//!
//! Invariants checked:
//! - after every step, the outcome (accepted, idempotent success, or the refusal's code), the
//!   state, the chunks held and their bytes, the missing list and the time are the model's;
//! - a refused step changes nothing, and an idempotent success (`AlreadyHeld`,
//!   `AlreadyDelivered`, `AlreadyCancelled`) is exactly a step the model finds changes nothing;
//! - a chunk, once held, never changes; once acknowledged to the sender, it is never lost, even
//!   by a crash;
//! - the transfer record reads back from its encoding as it was written;
//! - delivery happens at most once, is durable exactly when the durable record is `Delivered`,
//!   and a receiver told of it holds the document, byte-identical;
//! - at the end, a transfer not cancelled and never sent a wrong chunk first is delivered.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::BTreeMap;

use proptest::prelude::*;
use spine_core::gp2gp::{
    self, Acknowledgement, CHUNK_BYTES, Cancellation, CancelledBy, ChunkOutcome, Completion,
    NewTransfer, Sha256Hash, TRANSFER_IDLE_MS_MAX, Transfer, TransferId, TransferRefusal,
    TransferState,
};
use spine_core::pds::values::OdsCode;
use spine_core::shard::records;

const PRACTICES: [&str; 3] = ["A81001", "B82002", "C83003"];
const CHUNK: usize = CHUNK_BYTES as usize;
/// Documents span up to three chunks and a short fourth: enough for full chunks, a short last
/// chunk and reordering, and few enough bytes that hashing in a debug build stays quick.
const FULL_CHUNKS_MAX: usize = 3;
const STEPS_MAX: usize = 48;
const START_MS: u64 = 1_700_000_000_000;

/// Who asks: the sending practice, the receiving practice, or one with no part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Sender,
    Receiver,
    Stranger,
}

impl Who {
    fn practice(self) -> OdsCode {
        PRACTICES[self as usize].parse().unwrap()
    }
}

/// What an upload carries.
#[derive(Clone, Copy, Debug)]
enum Payload {
    /// The document's bytes for the chunk.
    Document,
    /// The chunk with one byte changed.
    Changed(usize),
    /// The chunk a byte shorter or longer.
    WrongLength,
    /// An index past the last chunk.
    OutOfRange(u32),
}

#[derive(Clone, Debug)]
enum Op {
    Upload {
        pick: usize,
        payload: Payload,
        who: Who,
    },
    /// The sender asks for the missing chunks and uploads the first of them.
    Resume {
        limit: usize,
    },
    /// The engine completes the transfer (refused unless it awaits completion).
    Complete,
    Download {
        pick: usize,
        who: Who,
    },
    /// The receiver acknowledges with the digest of what it holds, or of something else.
    Acknowledge {
        honest: bool,
        who: Who,
    },
    Cancel {
        who: Who,
    },
    Expire,
    /// The clock moves, by a little, by more than the idle limit, or back.
    Tick {
        ms: i64,
    },
    /// The log's writes become durable; the answers held back are sent.
    Flush,
    /// A connection breaks: answers not yet sent are lost; the server keeps its state.
    Disconnect,
    /// The server restarts: it reads back what was durable and loses the rest.
    Crash,
    /// The record is encoded and decoded, as a restart with everything durable would.
    RoundTrip,
}

/// Who asks, with these weights.
fn who(sender: u32, receiver: u32, stranger: u32) -> impl Strategy<Value = Who> {
    prop_oneof![
        sender => Just(Who::Sender),
        receiver => Just(Who::Receiver),
        stranger => Just(Who::Stranger),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        12 => Just(Payload::Document),
        1 => any::<usize>().prop_map(Payload::Changed),
        1 => Just(Payload::WrongLength),
        1 => (0..3u32).prop_map(Payload::OutOfRange),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let tick = prop_oneof![
        8 => 0..60_000i64,
        1 => Just(TRANSFER_IDLE_MS_MAX as i64),
        1 => -60_000..0i64,
    ];
    prop_oneof![
        10 => (any::<usize>(), payload(), who(20, 1, 1))
            .prop_map(|(pick, payload, who)| Op::Upload { pick, payload, who }),
        4 => (1..4usize).prop_map(|limit| Op::Resume { limit }),
        3 => Just(Op::Complete),
        5 => (any::<usize>(), who(1, 10, 1))
            .prop_map(|(pick, who)| Op::Download { pick, who }),
        2 => (prop_oneof![4 => Just(true), 1 => Just(false)], who(10, 10, 1))
            .prop_map(|(honest, who)| Op::Acknowledge { honest, who }),
        // Mostly refused: an accepted cancellation ends the sequence's interest.
        1 => who(1, 1, 6).prop_map(|who| Op::Cancel { who }),
        1 => Just(Op::Expire),
        3 => tick.prop_map(|ms| Op::Tick { ms }),
        5 => Just(Op::Flush),
        2 => Just(Op::Disconnect),
        2 => Just(Op::Crash),
        1 => Just(Op::RoundTrip),
    ]
}

/// A document's size: whole chunks and a tail, the tail often at its edges.
fn document_size() -> impl Strategy<Value = usize> {
    let tail = prop_oneof![1..=16usize, CHUNK - 2..=CHUNK, 1..=CHUNK];
    (0..=FULL_CHUNKS_MAX, tail).prop_map(|(full, tail)| full * CHUNK + tail)
}

/// `size` bytes from `seed` (splitmix64), so a case's document costs no generation or
/// shrinking of its own.
fn document(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(size + 8);
    while bytes.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

// ---- The model: chunks as bytes, the rules written out once more. ----

#[derive(Clone, Debug, PartialEq, Eq)]
enum MState {
    Sending,
    Complete,
    Delivered,
    Failed,
    Cancelled(Who),
    Expired,
}

#[derive(Clone, Debug)]
struct Model {
    size: usize,
    held: BTreeMap<u32, Vec<u8>>,
    state: MState,
    updated_ms: u64,
}

/// `Ok(true)` for a change, `Ok(false)` for a success that changes nothing, or the code.
type Outcome = Result<bool, &'static str>;

impl Model {
    fn count(&self) -> u32 {
        self.size.div_ceil(CHUNK) as u32
    }

    fn length(&self, index: u32) -> Option<usize> {
        let start = index as usize * CHUNK;
        (index < self.count()).then(|| (self.size - start).min(CHUNK))
    }

    fn missing(&self) -> Vec<u32> {
        (0..self.count())
            .filter(|index| !self.held.contains_key(index))
            .collect()
    }

    fn changed(&mut self, now_ms: u64) -> Outcome {
        self.updated_ms = self.updated_ms.max(now_ms);
        Ok(true)
    }

    fn upload(&mut self, who: Who, index: u32, bytes: &[u8], now_ms: u64) -> Outcome {
        if who != Who::Sender {
            return Err("NOT_PARTICIPANT");
        }
        if matches!(
            self.state,
            MState::Failed | MState::Cancelled(_) | MState::Expired
        ) {
            return Err("INVALID_STATE");
        }
        let length = self.length(index).ok_or("CHUNK_INDEX_OUT_OF_RANGE")?;
        if bytes.len() != length {
            return Err("CHUNK_LENGTH_MISMATCH");
        }
        match self.held.get(&index) {
            Some(held) if held == bytes => Ok(false),
            Some(_) => Err("CHUNK_CONFLICT"),
            None => {
                self.held.insert(index, bytes.to_vec());
                self.changed(now_ms)
            }
        }
    }

    fn complete(&mut self, document: &[u8], now_ms: u64) -> Outcome {
        if self.state != MState::Sending {
            return Err("INVALID_STATE");
        }
        if !self.missing().is_empty() {
            return Err("DOCUMENT_INCOMPLETE");
        }
        let joined: Vec<u8> = self.held.values().flatten().copied().collect();
        self.state = if joined == document {
            MState::Complete
        } else {
            MState::Failed
        };
        self.changed(now_ms)
    }

    fn download(&self, who: Who, index: u32) -> Result<&[u8], &'static str> {
        if who != Who::Receiver {
            return Err("NOT_PARTICIPANT");
        }
        if self.state != MState::Complete {
            return Err("INVALID_STATE");
        }
        self.held
            .get(&index)
            .map(Vec::as_slice)
            .ok_or("CHUNK_INDEX_OUT_OF_RANGE")
    }

    fn acknowledge(&mut self, who: Who, is_document: bool, now_ms: u64) -> Outcome {
        if who != Who::Receiver {
            return Err("NOT_PARTICIPANT");
        }
        if !matches!(self.state, MState::Complete | MState::Delivered) {
            return Err("INVALID_STATE");
        }
        if !is_document {
            return Err("DOCUMENT_HASH_MISMATCH");
        }
        if self.state == MState::Delivered {
            return Ok(false);
        }
        self.state = MState::Delivered;
        self.changed(now_ms)
    }

    fn cancel(&mut self, who: Who, now_ms: u64) -> Outcome {
        if who == Who::Stranger {
            return Err("NOT_PARTICIPANT");
        }
        match self.state {
            MState::Cancelled(_) | MState::Expired => Ok(false),
            MState::Delivered | MState::Failed => Err("INVALID_STATE"),
            MState::Sending | MState::Complete => {
                self.state = MState::Cancelled(who);
                self.changed(now_ms)
            }
        }
    }

    fn expire(&mut self, now_ms: u64) -> Outcome {
        if !matches!(self.state, MState::Sending | MState::Complete) {
            return Err("INVALID_STATE");
        }
        if now_ms.saturating_sub(self.updated_ms) < TRANSFER_IDLE_MS_MAX {
            return Err("TRANSFER_NOT_IDLE");
        }
        self.state = MState::Expired;
        self.changed(now_ms)
    }
}

fn model_state(state: TransferState) -> MState {
    match state {
        TransferState::Sending => MState::Sending,
        TransferState::Complete => MState::Complete,
        TransferState::Delivered => MState::Delivered,
        TransferState::Failed => MState::Failed,
        TransferState::Cancelled(CancelledBy::SendingPractice) => MState::Cancelled(Who::Sender),
        TransferState::Cancelled(CancelledBy::ReceivingPractice) => {
            MState::Cancelled(Who::Receiver)
        }
        TransferState::Cancelled(CancelledBy::Expiry) => MState::Expired,
    }
}

// ---- The world: the server (the rules, a log, a durable copy) and the two practices. ----

/// An answer the server holds back until the log is durable.
#[derive(Clone, Debug)]
enum Answer {
    ChunkAcknowledged { index: u32, bytes: Vec<u8> },
    Chunk { index: u32, bytes: Vec<u8> },
    Delivered,
    AlreadyDelivered,
}

struct World {
    document: Vec<u8>,
    /// The transfer as the server holds it now, and its chunk records.
    transfer: Transfer,
    log: BTreeMap<u32, Vec<u8>>,
    /// What is durable: the encoded record, and the chunk records.
    durable_record: Vec<u8>,
    durable_log: BTreeMap<u32, Vec<u8>>,
    model: Model,
    durable_model: Model,
    pending: Vec<Answer>,
    /// Deliveries made since the last flush, and made durable.
    deliveries_pending: u32,
    deliveries_durable: u32,
    /// What the sender was told is held: bytes and the digest then recorded.
    acknowledged: BTreeMap<u32, (Vec<u8>, Sha256Hash)>,
    /// What the receiver downloaded, how many times it was told `Delivered`, and whether it was
    /// told its acknowledgement succeeded (`Delivered` or `AlreadyDelivered`).
    received: BTreeMap<u32, Vec<u8>>,
    told_delivered: u32,
    knows_delivered: bool,
    now_ms: u64,
    /// Whether a cancellation or expiry was ever accepted, even if a crash later undid it.
    cancelled_ever: bool,
}

fn code<T>(result: Result<T, TransferRefusal>) -> Result<T, &'static str> {
    result.map_err(|refusal| refusal.code().as_str())
}

impl World {
    fn new(seed: u64, size: usize) -> Self {
        let document = document(seed, size);
        let new = NewTransfer {
            patient: "9434765919".parse().unwrap(),
            from_practice: Who::Sender.practice(),
            to_practice: Who::Receiver.practice(),
            document_size: size as u64,
            document_sha256: Sha256Hash::of(&document),
        };
        let transfer = gp2gp::start(
            TransferId::new(seed % TransferId::MAX + 1).unwrap(),
            new,
            START_MS,
        )
        .unwrap();
        let model = Model {
            size,
            held: BTreeMap::new(),
            state: MState::Sending,
            updated_ms: START_MS,
        };
        World {
            durable_record: records::transfer::encode(&transfer),
            transfer,
            document,
            log: BTreeMap::new(),
            durable_log: BTreeMap::new(),
            durable_model: model.clone(),
            model,
            pending: Vec::new(),
            deliveries_pending: 0,
            deliveries_durable: 0,
            acknowledged: BTreeMap::new(),
            received: BTreeMap::new(),
            told_delivered: 0,
            knows_delivered: false,
            now_ms: START_MS,
            cancelled_ever: false,
        }
    }

    fn chunk(&self, index: u32) -> &[u8] {
        let start = index as usize * CHUNK;
        &self.document[start..(start + CHUNK).min(self.document.len())]
    }

    /// What the receiver holds, joined in order.
    fn reassembled(&self) -> Vec<u8> {
        self.received.values().flatten().copied().collect()
    }

    fn upload(&mut self, who: Who, index: u32, bytes: Vec<u8>) -> Outcome {
        let expected = self.model.upload(who, index, &bytes, self.now_ms);
        let outcome = code(gp2gp::accept_chunk(
            &self.transfer,
            &who.practice(),
            index,
            &bytes,
            self.now_ms,
        ));
        let outcome = outcome.map(|outcome| match outcome {
            ChunkOutcome::Accepted(next) => {
                self.transfer = next;
                self.log.insert(index, bytes.clone());
                true
            }
            ChunkOutcome::AlreadyHeld => false,
        });
        assert_eq!(outcome, expected, "upload of chunk {index} by {who:?}");
        if outcome.is_ok() {
            self.pending
                .push(Answer::ChunkAcknowledged { index, bytes });
        }
        outcome
    }

    /// Applies `op`; for a step of the rules, returns its outcome.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    fn apply(&mut self, op: &Op) -> Option<Outcome> {
        let outcome = match *op {
            Op::Upload { pick, payload, who } => {
                let count = self.model.count();
                let index = pick as u32 % count;
                let bytes = self.chunk(index).to_vec();
                let (index, bytes) = match payload {
                    Payload::Document => (index, bytes),
                    Payload::Changed(at) => {
                        let mut bytes = bytes;
                        let at = at % bytes.len();
                        bytes[at] ^= 1;
                        (index, bytes)
                    }
                    Payload::WrongLength if pick % 2 == 0 && bytes.len() > 1 => {
                        (index, bytes[1..].to_vec())
                    }
                    Payload::WrongLength => (index, [&bytes[..], &[0]].concat()),
                    Payload::OutOfRange(past) => (count + past, vec![0; 1]),
                };
                self.upload(who, index, bytes)
            }
            Op::Resume { limit } => {
                let missing = gp2gp::missing_chunks(&self.transfer, limit);
                let expected: Vec<u32> = self.model.missing().into_iter().take(limit).collect();
                assert_eq!(missing, expected);
                let &index = missing.first()?;
                self.upload(Who::Sender, index, self.chunk(index).to_vec())
            }
            Op::Complete => self.complete(),
            Op::Download { pick, who } => {
                self.download(who, pick as u32 % (self.model.count() + 1))
            }
            Op::Acknowledge { honest, who } => self.acknowledge(honest, who),
            Op::Cancel { who } => {
                let expected = self.model.cancel(who, self.now_ms);
                let outcome = code(gp2gp::cancel(&self.transfer, &who.practice(), self.now_ms))
                    .map(|done| match done {
                        Cancellation::Cancelled(next) => {
                            self.transfer = next;
                            true
                        }
                        Cancellation::AlreadyCancelled => false,
                    });
                assert_eq!(outcome, expected, "cancel by {who:?}");
                self.cancelled_ever |= outcome == Ok(true);
                outcome
            }
            Op::Expire => {
                let expected = self.model.expire(self.now_ms);
                let outcome = code(gp2gp::expire(&self.transfer, self.now_ms)).map(|next| {
                    self.transfer = next;
                    true
                });
                assert_eq!(outcome, expected, "expire");
                self.cancelled_ever |= outcome.is_ok();
                outcome
            }
            Op::Tick { ms } => {
                self.now_ms = self.now_ms.saturating_add_signed(ms);
                return None;
            }
            Op::Flush => {
                self.flush();
                return None;
            }
            Op::Disconnect => {
                self.pending.clear();
                return None;
            }
            Op::Crash => {
                self.transfer = records::transfer::decode(&self.durable_record).unwrap();
                self.log = self.durable_log.clone();
                self.model = self.durable_model.clone();
                self.pending.clear();
                self.deliveries_pending = 0;
                return None;
            }
            Op::RoundTrip => {
                let read =
                    records::transfer::decode(&records::transfer::encode(&self.transfer)).unwrap();
                assert_eq!(read, self.transfer);
                self.transfer = read;
                return None;
            }
        };
        Some(outcome)
    }

    fn complete(&mut self) -> Outcome {
        let expected = self.model.complete(&self.document, self.now_ms);
        let chunks: Vec<Vec<u8>> = (0..self.model.count())
            .map_while(|index| self.log.get(&index).cloned())
            .collect();
        let outcome = gp2gp::complete(&self.transfer, &chunks, self.now_ms);
        let outcome = match outcome {
            Ok(completion) => {
                let failed = matches!(completion, Completion::HashMismatch(_));
                assert_eq!(completion.refusal().is_some(), failed);
                self.transfer = completion.transfer().clone();
                Ok(true)
            }
            Err(gp2gp::CompletionError::Refused(refusal)) => Err(refusal.code().as_str()),
            Err(other) => panic!("completion: {other}"),
        };
        assert_eq!(outcome, expected, "complete");
        outcome
    }

    fn download(&mut self, who: Who, index: u32) -> Outcome {
        let expected = self.model.download(who, index).map(<[u8]>::to_vec);
        let outcome = code(gp2gp::check_download(
            &self.transfer,
            &who.practice(),
            index,
        ));
        let outcome = outcome.map(|download| {
            assert_eq!(download.chunk_index, index);
            assert_eq!(
                download.key_value,
                gp2gp::chunk_key_value(self.transfer.id(), index)
            );
            assert_eq!(download.offset, u64::from(index) * CHUNK as u64);
            // The engine's pair check: the bytes read are the bytes accepted.
            let bytes = self.log[&index].clone();
            assert_eq!(bytes.len(), download.size as usize);
            assert_eq!(Sha256Hash::of(&bytes), download.sha256);
            bytes
        });
        assert_eq!(outcome, expected, "download of chunk {index} by {who:?}");
        let bytes = outcome?;
        self.pending.push(Answer::Chunk { index, bytes });
        // A read changes nothing.
        Ok(false)
    }

    fn acknowledge(&mut self, honest: bool, who: Who) -> Outcome {
        let reassembled = self.reassembled();
        let (digest, is_document) = if honest {
            (Sha256Hash::of(&reassembled), reassembled == self.document)
        } else {
            (Sha256Hash::of(b"not the document"), false)
        };
        let expected = self.model.acknowledge(who, is_document, self.now_ms);
        let outcome = code(gp2gp::acknowledge(
            &self.transfer,
            &who.practice(),
            digest,
            self.now_ms,
        ))
        .map(|acknowledgement| match acknowledgement {
            Acknowledgement::Delivered(next) => {
                self.transfer = next;
                self.deliveries_pending += 1;
                self.pending.push(Answer::Delivered);
                true
            }
            Acknowledgement::AlreadyDelivered => {
                self.pending.push(Answer::AlreadyDelivered);
                false
            }
        });
        assert_eq!(outcome, expected, "acknowledgement by {who:?}");
        outcome
    }

    /// Everything written becomes durable, then the answers held back are sent.
    fn flush(&mut self) {
        self.durable_record = records::transfer::encode(&self.transfer);
        self.durable_log = self.log.clone();
        self.durable_model = self.model.clone();
        self.deliveries_durable += std::mem::take(&mut self.deliveries_pending);
        for answer in std::mem::take(&mut self.pending) {
            match answer {
                Answer::ChunkAcknowledged { index, bytes } => {
                    let digest = self.transfer.chunk_sha256(index).unwrap();
                    assert_eq!(self.durable_log[&index], bytes);
                    self.acknowledged.insert(index, (bytes, digest));
                }
                Answer::Chunk { index, bytes } => {
                    self.received.insert(index, bytes);
                }
                Answer::Delivered => {
                    self.told_delivered += 1;
                    self.knows_delivered = true;
                }
                Answer::AlreadyDelivered => self.knows_delivered = true,
            }
        }
    }

    /// The invariants that hold after every step.
    fn check(&self) {
        let transfer = &self.transfer;
        let model = &self.model;
        assert_eq!(model_state(transfer.state()), model.state);
        assert_eq!(transfer.updated_ms(), model.updated_ms);
        assert_eq!(transfer.chunk_count(), model.count());
        for index in 0..model.count() {
            let held = transfer.chunk_sha256(index).is_some();
            assert_eq!(held, model.held.contains_key(&index), "chunk {index}");
            assert_eq!(
                self.log.get(&index),
                model.held.get(&index),
                "chunk {index}"
            );
        }
        assert_eq!(gp2gp::missing_chunks(transfer, usize::MAX), model.missing());
        assert_eq!(
            transfer.awaits_completion(),
            model.state == MState::Sending && model.missing().is_empty()
        );
        // Acknowledged chunks are never lost or changed, crashes included.
        for (index, (bytes, digest)) in &self.acknowledged {
            assert_eq!(transfer.chunk_sha256(*index), Some(*digest));
            assert_eq!(self.log.get(index), Some(bytes));
        }
        // Delivery: at most once, durable exactly when the durable record says so.
        let durable = records::transfer::decode(&self.durable_record).unwrap();
        assert!(self.deliveries_durable <= 1);
        assert_eq!(
            self.deliveries_durable == 1,
            durable.state() == TransferState::Delivered
        );
        assert!(self.told_delivered <= 1);
        if self.knows_delivered {
            assert_eq!(durable.state(), TransferState::Delivered);
            assert!(
                self.reassembled() == self.document,
                "delivered another document"
            );
        }
    }

    /// Whether some chunk held is not the document's.
    fn holds_a_wrong_chunk(&self) -> bool {
        self.log
            .iter()
            .any(|(&index, bytes)| bytes.as_slice() != self.chunk(index))
    }
}

/// Both practices finish honestly: the sender resends what is missing, the engine completes,
/// the receiver downloads everything and acknowledges twice.
fn finish(world: &World) -> Vec<Op> {
    let count = world.model.count() as usize;
    let mut ops = vec![Op::Flush];
    ops.extend((0..count).map(|_| Op::Resume { limit: 1 }));
    ops.extend([Op::Complete, Op::Flush]);
    ops.extend((0..count).map(|pick| Op::Download {
        pick,
        who: Who::Receiver,
    }));
    ops.extend([
        Op::Flush,
        Op::Acknowledge {
            honest: true,
            who: Who::Receiver,
        },
        Op::Flush,
        Op::Acknowledge {
            honest: true,
            who: Who::Receiver,
        },
        Op::Flush,
    ]);
    ops
}

/// Applies `op`, checking that a refusal or an idempotent success changes nothing, that a
/// chunk once held never changes (unless a crash takes back what was not durable), and the
/// invariants after it.
fn step(world: &mut World, op: &Op) {
    let before: Vec<Option<Sha256Hash>> = (0..world.model.count())
        .map(|index| world.transfer.chunk_sha256(index))
        .collect();
    let (transfer, log) = (world.transfer.clone(), world.log.clone());
    let (model_state, model_held) = (world.model.state.clone(), world.model.held.clone());
    let outcome = world.apply(op);
    if let Some(Err(_) | Ok(false)) = outcome {
        assert_eq!(world.transfer, transfer, "{op:?} changed the transfer");
        assert_eq!(world.log, log, "{op:?} changed the log");
        assert_eq!(world.model.state, model_state, "the model's {op:?}");
        assert_eq!(world.model.held, model_held, "the model's {op:?}");
    }
    if !matches!(op, Op::Crash) {
        for (index, digest) in before.iter().enumerate() {
            if digest.is_some() {
                assert_eq!(world.transfer.chunk_sha256(index as u32), *digest);
            }
        }
    }
    world.check();
}

proptest! {
    // Each case hashes a few MiB, which is slow in a debug build: 64 cases take about ten
    // seconds. Raise the count here for a longer search.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn transfers_follow_the_model(
        seed in any::<u64>(),
        size in document_size(),
        ops in prop::collection::vec(op(), 0..STEPS_MAX),
    ) {
        let mut world = World::new(seed, size);
        world.check();
        for op in &ops {
            step(&mut world, op);
        }
        let wrong_chunk_held = world.holds_a_wrong_chunk();
        for op in finish(&world) {
            step(&mut world, &op);
        }
        let state = world.transfer.state();
        if !world.cancelled_ever && !wrong_chunk_held {
            prop_assert_eq!(state, TransferState::Delivered);
        }
        if state == TransferState::Delivered {
            prop_assert!(world.knows_delivered);
            prop_assert_eq!(world.deliveries_durable, 1);
            prop_assert!(world.reassembled() == world.document);
        }
        if state == TransferState::Failed {
            prop_assert!(world.holds_a_wrong_chunk());
        }
    }
}
