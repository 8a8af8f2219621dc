//! The simulated machine: every shard's state machine over its real log, on a simulated disk,
//! with queues in place of the engine's inboxes and threads, and a clock the simulator moves.
//!
//! Nothing here runs on its own: the simulator decides which shard runs a turn and when, so a
//! seed decides every interleaving of the coordinators' steps. A turn is what the engine's
//! shard loop does with a batch of inputs: execute them, append the records as one group,
//! wait until they are durable, and only then release the outputs. A turn whose append fails
//! (the power went, a flush failed) releases nothing: the machine has crashed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spine_core::access::Directory;
use spine_core::coordinator::{ShardLinks, shard_overloaded};
use spine_core::request::Refusal;
use spine_core::shard::keys::ShardIndexes;
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState};
use spine_storage::{AppendError, DiskFault, Log, LogConfig, RecoveryReport, SimulatedDisk};
use tokio::sync::oneshot;

use crate::run::Plant;
use crate::trace::Trace;

/// Inputs a shard's queue holds at most; beyond, `send` refuses as an overloaded inbox does.
const INBOX_CAPACITY: usize = 256;
/// Segment size: small, so that a seed rolls segments.
const SEGMENT_BYTES: u64 = 256 * 1024;
/// Largest record payload the simulated logs take (a patient is far smaller).
const PAYLOAD_BYTES_MAX: u32 = 64 * 1024;

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

struct SimShard {
    log: Log,
    state: ShardState,
    disk: Arc<SimulatedDisk>,
}

/// How a turn ended.
#[derive(Debug)]
pub enum TurnEnd {
    /// The shard had nothing queued.
    Idle,
    /// Executed, durable, answered.
    Answered,
    /// The append failed: nothing was answered and the machine must restart.
    Crashed(AppendError),
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
            opened.push(RefCell::new(SimShard { log, state, disk }));
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
        self.shards[shard].borrow().disk.arm(fault);
        self.trace.note(format_args!("arm shard={shard} {fault:?}"));
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
        let mut guard = self.shards[shard].borrow_mut();
        let SimShard { log, state, .. } = &mut *guard;
        let turn = state.execute(log, self.now_ms(), inputs);
        assert_eq!(turn.outputs.len(), replies.len(), "one output per input");
        let records = turn.records.len();
        self.trace.note(format_args!(
            "turn shard={shard} number={} inputs={} records={records} first_index={}",
            turn.number,
            replies.len(),
            turn.first_index
        ));
        if records > 0 {
            let mut groups = vec![turn.records];
            if self.plant == Some(Plant::SplitTurns) && records > 1 {
                // Planted bug: the turn's records as two append groups, not one.
                let second = groups[0].split_off(records / 2);
                groups.push(second);
            }
            let mut last = None;
            for group in groups {
                match self.runtime.block_on(log.append_batch(group)) {
                    Ok(position) => last = Some(position),
                    Err(error) => {
                        self.trace
                            .note(format_args!("append failed shard={shard}: {error}"));
                        return TurnEnd::Crashed(error);
                    }
                }
            }
            let last = last.expect("a turn with records appended at least one group");
            state.durable(turn.number, turn.first_index, records, last);
        }
        for (reply, output) in replies.into_iter().zip(turn.outputs) {
            // A requester that went away (a task dropped) is no error.
            let _ = reply.send(output);
        }
        TurnEnd::Answered
    }

    /// Drops every queued input (their requesters never hear back) and closes the logs
    /// without a checkpoint: what a machine keeps when it stops at this instant.
    pub fn crash(self) {
        for inbox in &self.inboxes {
            inbox.borrow_mut().clear();
        }
        for shard in self.shards {
            let shard = shard.into_inner();
            drop(shard.state);
            drop(shard.log);
        }
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
