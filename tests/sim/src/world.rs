//! The simulated machine: every shard's state machine over its real log, on a simulated disk,
//! with queues in place of the engine's inboxes and threads, and a clock the simulator moves.
//!
//! Nothing here runs on its own: the simulator decides which shard runs a turn and when, so a
//! seed decides every interleaving of the coordinators' steps. A turn is what the engine's
//! shard loop does with a batch of inputs: execute them, append the records as one group,
//! wait until they are durable, and only then release the outputs. A turn whose append fails
//! (the power went, a flush failed) releases nothing: the machine has crashed.
//!
//! While a shard's disk stalls a flush, its turns go on as the engine's do with turns in
//! flight: each is executed over the state the turns before it left (not durable yet), its
//! batch queued behind theirs, and its outputs held until the stall ends and every batch
//! before and including its own is durable.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spine_core::access::Directory;
use spine_core::coordinator::{ShardLinks, shard_overloaded};
use spine_core::request::Refusal;
use spine_core::shard::audit_queries::verify_audit_from;
use spine_core::shard::record_layout::ShardIndexes;
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState};
use spine_storage::{
    DiskFault, Log, LogConfig, PendingBatch, RecoveryReport, SimulatedDisk, StallEnd,
};
use tokio::sync::oneshot;

use crate::run::Plant;
use crate::trace::Trace;

/// Inputs a shard's queue holds at most; beyond, `send` refuses as an overloaded inbox does.
const INBOX_CAPACITY: usize = 256;
/// Segment size: small, so that a seed rolls segments (and a power cut can meet a roll).
const SEGMENT_BYTES: u64 = 128 * 1024;
/// Largest record payload the simulated logs take (a patient is far smaller).
const PAYLOAD_BYTES_MAX: u32 = 64 * 1024;
/// Turns a shard keeps in flight at most while its disk stalls (the engine's default).
const TURNS_IN_FLIGHT_MAX: usize = 4;
/// How long the simulator waits for the log's writer to reach a stalled write (it gets there
/// in microseconds; the wait only guards against a hang).
const STALL_REACHED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the simulated machine could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A shard's log did not open (recovery refused what the crash left).
    #[error("shard {shard}: opening its log: {source}")]
    Log {
        /// The shard.
        shard: usize,
        /// The failure.
        source: spine_storage::OpenError,
    },
    /// A shard's audit since its checkpoint does not verify (the engine's start refuses too).
    #[error("shard {shard}: its audit since the checkpoint does not verify: {source}")]
    Audit {
        /// The shard.
        shard: usize,
        /// The failure.
        source: spine_core::shard::audit_queries::AuditReadError,
    },
    /// A shard could not rebuild its state from its log.
    #[error("shard {shard}: {source}")]
    Shard {
        /// The shard.
        shard: usize,
        /// The failure.
        source: spine_core::shard::ShardError,
    },
    /// The async runtime the log's appends are awaited on could not start.
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

struct Queued {
    input: ShardInput,
    reply: oneshot::Sender<ShardOutput>,
}

/// A turn executed whose batch is not durable yet (only while a disk stalls).
struct InFlight {
    number: u64,
    first_index: u64,
    records: usize,
    /// Its append groups (two under the planted split-turn bug).
    batches: Vec<PendingBatch>,
    answers: Vec<(oneshot::Sender<ShardOutput>, ShardOutput)>,
}

struct SimShard {
    log: Log,
    state: ShardState,
    disk: Arc<SimulatedDisk>,
    /// A stall is armed and the shard's next batch will meet it.
    stall_armed: bool,
    /// Turns executed while the disk stalls, oldest first.
    in_flight: VecDeque<InFlight>,
}

/// How a turn ended.
#[derive(Debug)]
pub enum TurnEnd {
    /// The shard had nothing queued, or its disk stalls with every turn it may keep in
    /// flight.
    Idle,
    /// Executed, durable, answered.
    Answered,
    /// Executed; its batch waits behind a stalled flush, its answers with it.
    InFlight,
    /// The append failed: nothing was answered and the machine must restart.
    Crashed(String),
}

/// Every shard, as one machine.
pub struct World {
    root: PathBuf,
    directory: Arc<Directory>,
    shards: Vec<RefCell<SimShard>>,
    inboxes: Vec<RefCell<VecDeque<Queued>>>,
    clock_ms: Cell<u64>,
    runtime: tokio::runtime::Runtime,
    plant: Option<Plant>,
    /// What happened, in order; its hash is the run's fingerprint.
    pub trace: Trace,
}

/// The log configuration of a simulated shard: no background checkpoints and none on close
/// (the simulator takes them when the seed says), no batching delay (each turn is its own
/// batch), and the simulated disk.
pub fn log_config(root: &Path, shard: usize, disk: Arc<SimulatedDisk>) -> LogConfig {
    let mut config = LogConfig::new(root.join(format!("shard-{shard}")));
    config.segment_size = SEGMENT_BYTES;
    config.payload_bytes_max = PAYLOAD_BYTES_MAX;
    config.batch_delay = std::time::Duration::ZERO;
    config.checkpoint_interval_records = 0;
    config.checkpoint_on_close = false;
    config.expected_keys = 1024;
    config.appends_pending_max = 4096;
    config.simulated_disk = Some(disk);
    config
}

impl World {
    /// Opens (recovering) `shards` logs under `root`, each on a fresh, healthy disk, and
    /// rebuilds each shard from its log, as a restarted machine does.
    pub fn open(
        root: &Path,
        shards: usize,
        directory: Arc<Directory>,
        clock_ms: u64,
        trace: Trace,
        plant: Option<Plant>,
    ) -> Result<(Self, Vec<RecoveryReport>), WorldError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(WorldError::Runtime)?;
        let mut opened = Vec::with_capacity(shards);
        let mut reports = Vec::with_capacity(shards);
        for shard in 0..shards {
            let disk = SimulatedDisk::new();
            if plant == Some(Plant::SkippedFlushes) {
                disk.plant_skipped_flushes();
            }
            let config = log_config(root, shard, Arc::clone(&disk));
            let (log, report) = Log::open_with(config, Arc::new(ShardIndexes))
                .map_err(|source| WorldError::Log { shard, source })?;
            // As the engine's start does: what recovery scanned (everything after the
            // checkpoint) is checked against the audit chain.
            let unscanned = report.records - report.records_scanned;
            verify_audit_from(&log, unscanned + 1, None)
                .map_err(|source| WorldError::Audit { shard, source })?;
            let shard_config = ShardConfig {
                // Every request of a seed stays in the ring, so every retry is answered from
                // its first outcome.
                // (Planted bug: a ring of one slot forgets them at once.)
                outcome_slots: if plant == Some(Plant::ForgottenOutcomes) {
                    1
                } else {
                    1 << 16
                },
                ..ShardConfig::new(shard, shards)
            };
            let state = ShardState::open(shard_config, Arc::clone(&directory), &log)
                .map_err(|source| WorldError::Shard { shard, source })?;
            opened.push(RefCell::new(SimShard {
                log,
                state,
                disk,
                stall_armed: false,
                in_flight: VecDeque::new(),
            }));
            reports.push(report);
        }
        let world = Self {
            root: root.to_path_buf(),
            directory,
            shards: opened,
            inboxes: (0..shards).map(|_| RefCell::default()).collect(),
            clock_ms: Cell::new(clock_ms),
            runtime,
            plant,
            trace,
        };
        Ok((world, reports))
    }

    /// How many shards there are.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The directory the logs are in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The simulated time, in milliseconds since 1970.
    pub fn now_ms(&self) -> u64 {
        self.clock_ms.get()
    }

    /// Moves the clock on.
    pub fn advance_clock(&self, ms: u64) {
        self.clock_ms.set(self.clock_ms.get() + ms);
    }

    /// Shards with inputs queued.
    pub fn busy_shards(&self) -> Vec<usize> {
        (0..self.inboxes.len())
            .filter(|&shard| !self.inboxes[shard].borrow().is_empty())
            .collect()
    }

    /// Arms `fault` on `shard`'s disk: its next batch meets it.
    pub fn arm(&self, shard: usize, fault: DiskFault) {
        let mut sim_shard = self.shards[shard].borrow_mut();
        sim_shard.disk.arm(fault);
        sim_shard.stall_armed = fault == DiskFault::FlushStalls;
        self.trace.note(format_args!("arm shard={shard} {fault:?}"));
    }

    /// Whether `shard`'s disk lost its power.
    pub fn powered_off(&self, shard: usize) -> bool {
        self.shards[shard].borrow().disk.is_powered_off()
    }

    /// The shards whose disk stalls a flush now.
    pub fn stalled_shards(&self) -> Vec<usize> {
        (0..self.shards.len())
            .filter(|&shard| self.shards[shard].borrow().disk.is_stalled())
            .collect()
    }

    /// Ends `shard`'s stalled flush as `end` says, then finishes its turns in flight, oldest
    /// first: each is answered once its batch is durable. `Crashed` when the power went (or an
    /// append failed): none of them is answered.
    pub fn end_stall(&self, shard: usize, end: StallEnd) -> TurnEnd {
        let mut guard = self.shards[shard].borrow_mut();
        let SimShard {
            state,
            disk,
            in_flight,
            ..
        } = &mut *guard;
        let ended = disk.end_stall(end);
        self.trace.note(format_args!(
            "stall ended shard={shard} {end:?} turns_in_flight={} ended={ended}",
            in_flight.len()
        ));
        while let Some(turn) = in_flight.pop_front() {
            let mut last = None;
            for batch in turn.batches {
                match self.runtime.block_on(batch.durable()) {
                    Ok(position) => last = Some(position),
                    Err(error) => {
                        self.trace
                            .note(format_args!("append failed shard={shard}: {error}"));
                        in_flight.clear();
                        return TurnEnd::Crashed(error.to_string());
                    }
                }
            }
            if let Some(last) = last {
                state.durable(turn.number, turn.first_index, turn.records, last);
            }
            release(turn.answers);
        }
        TurnEnd::Answered
    }

    /// Writes a checkpoint of `shard`'s indexes now.
    pub fn checkpoint(&self, shard: usize) -> std::io::Result<()> {
        let written = self.shards[shard].borrow().log.checkpoint()?;
        self.trace.note(format_args!(
            "checkpoint shard={shard} written={}",
            written.is_some()
        ));
        Ok(())
    }

    /// Runs `f` over `shard`'s log (for checks that read it).
    pub fn with_log<T>(&self, shard: usize, f: impl FnOnce(&Log) -> T) -> T {
        f(&self.shards[shard].borrow().log)
    }

    /// Runs one turn on `shard` with at most `inputs_max` of its queued inputs.
    pub fn run_turn(&self, shard: usize, inputs_max: usize) -> TurnEnd {
        let mut guard = self.shards[shard].borrow_mut();
        let sim_shard = &mut *guard;
        let pipelined = sim_shard.stall_armed || !sim_shard.in_flight.is_empty();
        if pipelined && sim_shard.in_flight.len() >= TURNS_IN_FLIGHT_MAX {
            return TurnEnd::Idle;
        }
        let queued: Vec<Queued> = {
            let mut inbox = self.inboxes[shard].borrow_mut();
            let take = inbox.len().min(inputs_max.max(1));
            inbox.drain(..take).collect()
        };
        if queued.is_empty() {
            return TurnEnd::Idle;
        }
        let (inputs, replies): (Vec<_>, Vec<_>) = queued
            .into_iter()
            .map(|queued| (queued.input, queued.reply))
            .unzip();
        let turn = sim_shard
            .state
            .execute(&sim_shard.log, self.now_ms(), inputs);
        assert_eq!(turn.outputs.len(), replies.len(), "one output per input");
        let records = turn.records.len();
        self.trace.note(format_args!(
            "turn shard={shard} number={} inputs={} records={records} first_index={}{}",
            turn.number,
            replies.len(),
            turn.first_index,
            if pipelined { " in_flight" } else { "" }
        ));
        let mut turn_in_flight = InFlight {
            number: turn.number,
            first_index: turn.first_index,
            records,
            batches: Vec::new(),
            answers: replies.into_iter().zip(turn.outputs).collect(),
        };
        let groups = self.append_groups(turn.records);
        if pipelined {
            return self.queue_behind_stall(shard, sim_shard, turn_in_flight, groups);
        }
        let mut last = None;
        for group in groups {
            match self.runtime.block_on(sim_shard.log.append_batch(group)) {
                Ok(position) => last = Some(position),
                Err(error) => return self.append_failed(shard, error.to_string()),
            }
        }
        if let Some(last) = last {
            let turn = &turn_in_flight;
            sim_shard
                .state
                .durable(turn.number, turn.first_index, turn.records, last);
        }
        release(std::mem::take(&mut turn_in_flight.answers));
        TurnEnd::Answered
    }

    /// A turn's records as the append groups they go in: one (or none), or two under the
    /// planted split-turn bug.
    fn append_groups(
        &self,
        records: Vec<spine_storage::NewRecord>,
    ) -> Vec<Vec<spine_storage::NewRecord>> {
        let count = records.len();
        if count == 0 {
            return Vec::new();
        }
        let mut groups = vec![records];
        if self.plant == Some(Plant::SplitTurns) && count > 1 {
            // Planted bug: the turn's records as two append groups, not one.
            let second = groups[0].split_off(count / 2);
            groups.push(second);
        }
        groups
    }

    /// Queues a turn's groups behind the stalled flush (waiting, the first time, until the
    /// log's writer is inside it) and keeps the turn in flight.
    fn queue_behind_stall(
        &self,
        shard: usize,
        sim_shard: &mut SimShard,
        mut turn: InFlight,
        groups: Vec<Vec<spine_storage::NewRecord>>,
    ) -> TurnEnd {
        for group in groups {
            match sim_shard.log.try_append_batch(group) {
                Ok(batch) => turn.batches.push(batch),
                Err(error) => return self.append_failed(shard, error.to_string()),
            }
            if std::mem::take(&mut sim_shard.stall_armed)
                && !sim_shard.disk.wait_until_stalled(STALL_REACHED_WITHIN)
            {
                return self.append_failed(shard, "the armed stall never came".into());
            }
        }
        sim_shard.in_flight.push_back(turn);
        TurnEnd::InFlight
    }

    fn append_failed(&self, shard: usize, error: String) -> TurnEnd {
        self.trace
            .note(format_args!("append failed shard={shard}: {error}"));
        TurnEnd::Crashed(error)
    }

    /// Drops every queued input (their requesters never hear back) and closes the logs
    /// without a checkpoint: what a machine keeps when it stops at this instant.
    pub fn crash(self) {
        for inbox in &self.inboxes {
            inbox.borrow_mut().clear();
        }
        for shard in self.shards {
            let shard = shard.into_inner();
            // A write still stalled never reaches the disk: the machine stopped first. (The
            // log's writer must be let go before the log can close.)
            shard
                .disk
                .end_stall(StallEnd::PowerLoss(spine_storage::TornWrite::Nothing));
            drop(shard.in_flight);
            drop(shard.state);
            drop(shard.log);
        }
    }
}

/// Sends each output to its requester (one that went away is no error).
fn release(answers: Vec<(oneshot::Sender<ShardOutput>, ShardOutput)>) {
    for (reply, output) in answers {
        let _ = reply.send(output);
    }
}

impl ShardLinks for World {
    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn send(
        &self,
        shard: usize,
        input: ShardInput,
    ) -> Result<oneshot::Receiver<ShardOutput>, Refusal> {
        let mut inbox = self.inboxes[shard].borrow_mut();
        if inbox.len() >= INBOX_CAPACITY {
            return Err(shard_overloaded(shard));
        }
        let (reply, answer) = oneshot::channel();
        inbox.push_back(Queued { input, reply });
        Ok(answer)
    }
}
