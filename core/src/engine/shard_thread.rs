//! One shard's thread: pinned to its core, running a single-threaded tokio runtime that hosts
//! the shard's loop and any per-core tasks (the network's, the benchmark's).
//!
//! The loop gathers what is in the inbox, runs it as one turn, queues the turn's records as one
//! log batch, and answers the turn's requests when the batch (and every batch before it) is
//! durable. Up to `turns_in_flight_max` batches are in flight; the oldest finishes first, since
//! the log makes batches durable in the order they were queued.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, TryRecvError};
use spine_storage::{AppendError, Log, Position};
use tokio::sync::{Notify, oneshot};

use crate::request::{ErrorCode, Operation, Refusal};
use crate::shard::{ShardInput, ShardOutput, ShardState};

/// A request to a shard with where its answer goes.
pub(crate) struct Envelope {
    pub(crate) input: ShardInput,
    pub(crate) reply: oneshot::Sender<ShardOutput>,
}

/// Resolves when a turn's batch is durable, with its last record's position (`None` for a
/// turn that wrote nothing).
type Durable = Pin<Box<dyn Future<Output = Result<Option<Position>, AppendError>>>>;

/// A turn whose batch is not durable yet.
struct InFlight {
    number: u64,
    first_index: u64,
    records: usize,
    durable: Durable,
    answers: Vec<(oneshot::Sender<ShardOutput>, ShardOutput)>,
}

/// What a shard's loop has done, for operators and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct LoopCounters {
    /// Turns executed.
    pub(crate) turns: AtomicU64,
    /// Inputs executed.
    pub(crate) inputs: AtomicU64,
    /// Time spent executing turns and queueing their batches, in nanoseconds.
    pub(crate) busy_nanos: AtomicU64,
}

/// What the loop needs besides the shard.
pub(crate) struct ShardLoop {
    pub(crate) state: ShardState,
    pub(crate) log: Arc<Log>,
    pub(crate) inbox: Receiver<Envelope>,
    pub(crate) wake: Arc<Notify>,
    /// Set when the engine stops: drain the inbox, answer, exit.
    pub(crate) closing: Arc<AtomicBool>,
    pub(crate) counters: Arc<LoopCounters>,
    pub(crate) turn_records_max: usize,
    /// Encoded bytes a turn's records may take at most: a turn is one append group, which
    /// must fit in one log segment.
    pub(crate) turn_bytes_max: usize,
    pub(crate) turns_in_flight_max: usize,
}

/// Encoded bytes, headers and padding included, that one record other than a GP2GP chunk or a
/// Summary Care Record may take at most: a patient, an audit event, a prescription, a referral
/// or an outcome are a few KiB at their fields' limits.
const SMALL_RECORD_BYTES_MAX: usize = 16 * 1024;
/// Encoded bytes of the one large record (a chunk or a Summary Care Record) an input may write:
/// the log's payload limit for the engine, with a record header.
const LARGE_RECORD_BYTES_MAX: usize = 256 * 1024 + 64;

/// Encoded bytes of a record with no payload (a deletion): a record header.
const EMPTY_RECORD_BYTES: usize = 40;
/// Encoded bytes of one bookable slot's record, at most.
const SLOT_RECORD_BYTES_MAX: usize = 1024;

/// Encoded bytes an input's records may take, at most (see [`records_bound`]). Only sizes the
/// turn: the first input of a turn always runs.
pub(crate) fn bytes_bound(input: &ShardInput) -> usize {
    let ShardInput::Execute(request) = input else {
        return records_bound(input) * SMALL_RECORD_BYTES_MAX;
    };
    match &request.operation {
        Operation::ErsPublishSlots { slots, .. } => {
            slots.len() * SLOT_RECORD_BYTES_MAX + 4 * SMALL_RECORD_BYTES_MAX
        }
        // The chunk, its transfer and event, and the deletion of every chunk of a transfer
        // that ends.
        Operation::Gp2gpSendChunk { .. } => {
            LARGE_RECORD_BYTES_MAX + gp2gp_small_records_bytes_max()
        }
        Operation::Gp2gpStatus { .. }
        | Operation::Gp2gpFetchChunk { .. }
        | Operation::Gp2gpAcknowledge { .. }
        | Operation::Gp2gpCancel { .. } => gp2gp_small_records_bytes_max(),
        Operation::ScrUpdate { .. } => LARGE_RECORD_BYTES_MAX + 3 * SMALL_RECORD_BYTES_MAX,
        _ => records_bound(input) * SMALL_RECORD_BYTES_MAX,
    }
}

/// The largest [`bytes_bound`] of any input: a search's disclosure of the most matches (two
/// records each), a GP2GP chunk with its transfer's records, an update of a Summary Care
/// Record, a nominated release of the most prescriptions, a publication of the most slots.
pub(crate) fn input_bytes_max() -> usize {
    let disclose = (2 * crate::pds::search::RESULTS_MAX + 1) * SMALL_RECORD_BYTES_MAX;
    let release = (2 * usize::from(crate::shard::RELEASE_LIMIT_MAX) + 1) * SMALL_RECORD_BYTES_MAX;
    let chunk = LARGE_RECORD_BYTES_MAX + gp2gp_small_records_bytes_max();
    let scr = LARGE_RECORD_BYTES_MAX + 3 * SMALL_RECORD_BYTES_MAX;
    let slots = crate::ers::operations::SLOTS_PER_PUBLICATION_MAX * SLOT_RECORD_BYTES_MAX
        + 4 * SMALL_RECORD_BYTES_MAX;
    [disclose, release, chunk, scr, slots]
        .into_iter()
        .fold(4 * SMALL_RECORD_BYTES_MAX, usize::max)
}

/// Bytes of one envelope, as an inbox slot holds it.
pub(crate) fn envelope_bytes() -> usize {
    std::mem::size_of::<Envelope>()
}

/// A GP2GP step's records other than a chunk: one deletion per chunk and six others.
fn gp2gp_small_records_bytes_max() -> usize {
    crate::gp2gp::CHUNK_COUNT_MAX as usize * EMPTY_RECORD_BYTES + 6 * SMALL_RECORD_BYTES_MAX
}

/// Records an input may append, at most (its patient record, audit event, alert and outcome;
/// or two per disclosed match; and a publication's slots).
fn records_bound(input: &ShardInput) -> usize {
    match input {
        ShardInput::Execute(request) => match &request.operation {
            Operation::ErsPublishSlots { slots, .. } => slots.len() + 4,
            // A chunk and its transfer, a completion's event and transfer, and the deletion of
            // every chunk of a transfer that ends.
            Operation::Gp2gpSendChunk { .. }
            | Operation::Gp2gpStatus { .. }
            | Operation::Gp2gpFetchChunk { .. }
            | Operation::Gp2gpAcknowledge { .. }
            | Operation::Gp2gpCancel { .. } => crate::gp2gp::CHUNK_COUNT_MAX as usize + 6,
            _ => 4,
        },
        ShardInput::Create { .. } | ShardInput::ErsReferral { .. } => 4,
        ShardInput::ErsSlot(_) => 1,
        ShardInput::Disclose { matches, .. } => 2 * matches.len() + 1,
        ShardInput::Audit { .. } => 2,
        ShardInput::ReleaseNominated { limit, .. } => 2 * limit + 1,
        ShardInput::LookupOutcome(_)
        | ShardInput::SearchLocal { .. }
        | ShardInput::ErsSearchLocal { .. }
        | ShardInput::ErsRepairList { .. } => 0,
    }
}

/// The output that tells the requester of `input` it was not executed.
fn refused(input: &ShardInput, refusal: &Refusal) -> ShardOutput {
    match input {
        ShardInput::SearchLocal { .. } => ShardOutput::Candidates(Err(refusal.clone())),
        ShardInput::ReleaseNominated { .. } => ShardOutput::Released(Err(refusal.clone())),
        ShardInput::ErsReferral { .. } => ShardOutput::ErsReferral(Err(refusal.clone())),
        ShardInput::ErsSlot(_) => ShardOutput::ErsSlot(Err(refusal.clone())),
        ShardInput::ErsSearchLocal { .. } => ShardOutput::FreeSlots(Err(refusal.clone())),
        ShardInput::ErsRepairList { .. } => ShardOutput::ErsRepair(Err(refusal.clone())),
        _ => ShardOutput::Response(Err(refusal.clone())),
    }
}

/// The output that tells the requester a turn could not be made durable.
fn failed(output: &ShardOutput, refusal: &Refusal) -> ShardOutput {
    match output {
        ShardOutput::Candidates(_) => ShardOutput::Candidates(Err(refusal.clone())),
        ShardOutput::Released(_) => ShardOutput::Released(Err(refusal.clone())),
        ShardOutput::ErsReferral(_) => ShardOutput::ErsReferral(Err(refusal.clone())),
        ShardOutput::ErsSlot(_) => ShardOutput::ErsSlot(Err(refusal.clone())),
        ShardOutput::FreeSlots(_) => ShardOutput::FreeSlots(Err(refusal.clone())),
        ShardOutput::ErsRepair(_) => ShardOutput::ErsRepair(Err(refusal.clone())),
        ShardOutput::Outcome(_) | ShardOutput::Response(_) | ShardOutput::Audited => {
            ShardOutput::Response(Err(refusal.clone()))
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

impl ShardLoop {
    /// Runs until every sender of the inbox is gone and every turn is answered.
    pub(crate) async fn run(mut self) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut carried: Option<Envelope> = None;
        let mut closed = false;
        let mut failure: Option<Refusal> = None;
        loop {
            if in_flight.len() < self.turns_in_flight_max && !closed {
                let (inputs, replies, inbox_closed) = self.gather(&mut carried);
                closed = inbox_closed;
                if !inputs.is_empty() {
                    let turn = self.start_turn(inputs, replies, &failure);
                    in_flight.push_back(turn);
                    continue;
                }
            }
            if closed && in_flight.is_empty() {
                return;
            }
            let can_take_more = in_flight.len() < self.turns_in_flight_max && !closed;
            tokio::select! {
                biased;
                result = async { (&mut in_flight.front_mut().expect("checked non-empty").durable).await },
                    if !in_flight.is_empty() =>
                {
                    let turn = in_flight.pop_front().expect("checked non-empty");
                    self.finish_turn(turn, result, &mut failure);
                    // Let the tasks on this core that the answers woke (connections, clients)
                    // run and send their next requests before gathering: one larger turn
                    // instead of several small ones.
                    tokio::task::yield_now().await;
                }
                () = self.wake.notified(), if can_take_more => {}
            }
        }
    }

    /// Takes requests from the inbox until it is empty or the turn's record bound is reached.
    /// Returns them, their reply channels, and whether the inbox is closed.
    fn gather(
        &self,
        carried: &mut Option<Envelope>,
    ) -> (Vec<ShardInput>, Vec<oneshot::Sender<ShardOutput>>, bool) {
        // Sized for what is waiting (inputs are large, and growing the vector copies them), but
        // not beyond a usual turn: a burst must not leave a huge allocation behind.
        let waiting = (self.inbox.len() + usize::from(carried.is_some())).min(1024);
        let mut inputs = Vec::with_capacity(waiting);
        let mut replies = Vec::with_capacity(waiting);
        let mut records = 1; // the metadata record
        let mut bytes = SMALL_RECORD_BYTES_MAX;
        let mut closed = false;
        loop {
            let envelope = match carried.take() {
                Some(envelope) => envelope,
                None => match self.inbox.try_recv() {
                    Ok(envelope) => envelope,
                    Err(TryRecvError::Empty) => {
                        closed = self.closing.load(Ordering::Acquire);
                        break;
                    }
                    Err(TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                },
            };
            let bound = records_bound(&envelope.input);
            let bytes_bound = bytes_bound(&envelope.input);
            let full = records + bound > self.turn_records_max
                || bytes + bytes_bound > self.turn_bytes_max;
            if full && !inputs.is_empty() {
                *carried = Some(envelope);
                break;
            }
            records += bound;
            bytes += bytes_bound;
            inputs.push(envelope.input);
            replies.push(envelope.reply);
        }
        (inputs, replies, closed)
    }

    fn start_turn(
        &mut self,
        inputs: Vec<ShardInput>,
        replies: Vec<oneshot::Sender<ShardOutput>>,
        failure: &Option<Refusal>,
    ) -> InFlight {
        if let Some(refusal) = failure {
            // The log stopped: nothing more can be made durable, so nothing is executed.
            let answers = replies
                .into_iter()
                .zip(&inputs)
                .map(|(reply, input)| (reply, refused(input, refusal)))
                .collect();
            return InFlight {
                number: 0,
                first_index: 0,
                records: 0,
                durable: Box::pin(std::future::ready(Ok(None))),
                answers,
            };
        }
        let started = std::time::Instant::now();
        let input_count = inputs.len() as u64;
        let turn = self.state.execute(self.log.as_ref(), now_ms(), inputs);
        assert_eq!(turn.outputs.len(), replies.len(), "one output per input");
        let records = turn.records.len();
        let durable: Durable = if turn.records.is_empty() {
            Box::pin(std::future::ready(Ok(None)))
        } else {
            match self.log.try_append_batch(turn.records) {
                Ok(pending) => Box::pin(async move { pending.durable().await.map(Some) }),
                Err(AppendError::QueueFull { records }) => panic!(
                    "shard log queue full with {records} records: appends_pending_max must \
                     cover turns_in_flight_max turns of turn_records_max records"
                ),
                Err(error) => Box::pin(std::future::ready(Err(error))),
            }
        };
        self.counters.turns.fetch_add(1, Ordering::Relaxed);
        self.counters
            .inputs
            .fetch_add(input_count, Ordering::Relaxed);
        self.counters
            .busy_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        InFlight {
            number: turn.number,
            first_index: turn.first_index,
            records,
            durable,
            answers: replies.into_iter().zip(turn.outputs).collect(),
        }
    }

    fn finish_turn(
        &mut self,
        turn: InFlight,
        result: Result<Option<Position>, AppendError>,
        failure: &mut Option<Refusal>,
    ) {
        match result {
            Ok(last) => {
                if let Some(last) = last {
                    self.state
                        .durable(turn.number, turn.first_index, turn.records, last);
                }
                for (reply, output) in turn.answers {
                    // A requester that stopped waiting is no error.
                    let _ = reply.send(output);
                }
            }
            Err(error) => {
                tracing::error!(%error, "shard log failed; refusing every request from now on");
                let refusal = Refusal::new(
                    ErrorCode::WritesStopped,
                    format!(
                        "the shard's log failed, writes are stopped until an operator makes \
                         room or mends the disk and restarts the server: {error}"
                    ),
                );
                for (reply, output) in turn.answers {
                    let _ = reply.send(failed(&output, &refusal));
                }
                *failure = Some(refusal);
            }
        }
    }
}
