//! The thread-per-core engine: one shard per core, each on its own pinned thread with its own
//! log, indexes and audit chain, sharing nothing; requests reach a shard through its bounded
//! inbox (crossbeam) and a wake-up.
//!
//! - `config.rs`: the settings.
//! - `shard_thread.rs`: a shard's thread and loop (turns, batches, answers after durability).
//! - `links.rs`: how the coordinators ([`crate::coordinator`]) reach the shards: their inboxes.

mod compactor;
mod config;
pub mod data_dir;
mod links;
mod shard_thread;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use spine_storage::{Log, OpenError, RecoveryReport};
use tokio::sync::Notify;

use crate::access::Directory;
use crate::access::directory_file::{self, DirectoryFileError};
pub use crate::coordinator::RepairReport;
use crate::shard::record_layout::ShardIndexes;
use crate::shard::{ShardConfig, ShardError, ShardState};
pub use compactor::CompactionSettings;
pub use config::EngineConfig;
use shard_thread::{Envelope, LoopCounters, ShardLoop};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The settings contradict each other.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The data directory is in use, or its data was written with another shard count.
    #[error(transparent)]
    DataDirUnusable(#[from] data_dir::DataDirError),
    /// The access directory could not be loaded.
    #[error("access directory: {0}")]
    Directory(#[from] DirectoryFileError),
    /// A shard's log could not be opened.
    #[error("shard {shard}: opening its log: {source}")]
    Log {
        /// The shard.
        shard: usize,
        /// The failure.
        source: OpenError,
    },
    /// A shard could not rebuild its state from its log.
    #[error("shard {shard}: {source}")]
    Shard {
        /// The shard.
        shard: usize,
        /// The failure.
        source: ShardError,
    },
    /// A shard's audit does not verify from its checkpoint on.
    #[error("shard {shard}: audit: {source}; `spine verify` reports every problem")]
    Audit {
        /// The shard.
        shard: usize,
        /// The first problem found.
        source: crate::shard::audit_queries::AuditReadError,
    },
    /// A shard's thread could not start.
    #[error("shard {shard}: starting its thread: {source}")]
    Thread {
        /// The shard.
        shard: usize,
        /// The failure.
        source: std::io::Error,
    },
    /// The compactor's thread could not start.
    #[error("starting the compactor's thread: {0}")]
    CompactorThread(std::io::Error),
    /// A shard's thread panicked.
    #[error("shard {0}'s thread panicked")]
    Panicked(usize),
}

/// One shard as the rest of the engine sees it.
#[derive(Clone)]
struct ShardLink {
    counters: Arc<LoopCounters>,
    inbox: Sender<Envelope>,
    wake: Arc<Notify>,
    log: Arc<Log>,
    runtime: tokio::runtime::Handle,
}

/// A cheap, cloneable handle for submitting requests from any thread or task.
#[derive(Clone)]
pub struct EngineHandle {
    shards: Arc<[ShardLink]>,
    directory: Arc<Directory>,
}

/// The running engine: owns the shard threads; dropping it (or [`Engine::shutdown`]) stops
/// them after answering everything already submitted.
pub struct Engine {
    handle: Option<EngineHandle>,
    closing: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    recoveries: Vec<RecoveryReport>,
    /// Stopped before the shard threads (it holds their logs).
    compactor: Option<compactor::Compactor>,
    /// Released after the shard threads stop (fields drop in order, after `stop`).
    _data_dir: data_dir::DataDirLock,
}

/// What one shard holds, for operators and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardStats {
    /// Keys in the shard's primary index (patients, audit trail heads, alerts, outcomes).
    pub keys: usize,
    /// Records in the shard's log.
    pub records: u64,
    /// Bytes of memory the primary index uses.
    pub primary_index_bytes: usize,
    /// Log batches (one write and flush each) since the engine started.
    pub batches: u64,
    /// Records written since the engine started.
    pub records_written: u64,
    /// Bytes written since the engine started.
    pub bytes_written: u64,
    /// Turns the shard has executed.
    pub turns: u64,
    /// Requests (and steps of requests spanning shards) the shard has executed.
    pub inputs: u64,
    /// Time the shard's thread spent executing turns, in nanoseconds.
    pub busy_nanos: u64,
    /// The shard's log failed (disk full, I/O error): it refuses writes with `WRITES_STOPPED`
    /// until restarted.
    pub writes_stopped: bool,
    /// Segments of the shard's log compacted since the engine started.
    pub compactions: u64,
    /// File bytes those compactions reclaimed.
    pub compaction_bytes_reclaimed: u64,
}

/// Shard `shard`'s log opened (recovered) and its state rebuilt from it, its audit chain
/// checked from the checkpoint on.
fn open_shard(
    config: &EngineConfig,
    shard: usize,
    directory: &Arc<Directory>,
) -> Result<(Arc<Log>, ShardState, RecoveryReport), EngineError> {
    let (log, report) = Log::open_with(config.log_config(shard), Arc::new(ShardIndexes))
        .map_err(|source| EngineError::Log { shard, source })?;
    let log = Arc::new(log);
    let shard_config = ShardConfig {
        nhs_stems: config.nhs_stems.clone(),
        outcome_slots: config.outcome_slots,
        search_candidates_max: config.search_candidates_max,
        ..ShardConfig::new(shard, config.shards)
    };
    let state = ShardState::open(shard_config, Arc::clone(directory), log.as_ref())
        .map_err(|source| EngineError::Shard { shard, source })?;
    // The checkpoint vouches for the records before it; what recovery scanned after it is
    // checked against the audit chain too, so tampering since the checkpoint (or a torn repair)
    // stops the start instead of serving a trail that lies.
    let unscanned = report.records - report.records_scanned;
    crate::shard::audit_queries::verify_audit_from(log.as_ref(), unscanned + 1, None)
        .map_err(|source| EngineError::Audit { shard, source })?;
    tracing::info!(
        shard,
        records = report.records,
        scanned = report.records_scanned,
        backend = ?report.backend,
        "shard opened"
    );
    Ok((log, state, report))
}

impl Engine {
    /// Opens every shard's log under `config.data_dir` (recovering what is there), loads or
    /// creates the access directory, and starts one thread per shard.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    pub fn start(config: EngineConfig) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| EngineError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        // Before anything in the directory is read or written.
        let data_dir_lock = data_dir::lock(&config.data_dir)?;
        data_dir::check_shards(&config.data_dir, &data_dir_lock, config.shards)?;
        let directory = Arc::new(directory_file::load_or_create(&config.data_dir)?);
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let mut links = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        let mut recoveries = Vec::with_capacity(config.shards);
        let closing = Arc::new(AtomicBool::new(false));
        // Each shard's log is opened and its state rebuilt on a thread of its own: recovery
        // reads a checkpoint and rebuilds indexes, and a restart takes as long as the slowest
        // shard rather than the sum of them all.
        let opened = std::thread::scope(|scope| {
            let opening: Vec<_> = (0..config.shards)
                .map(|shard| {
                    let (config, directory) = (&config, &directory);
                    scope.spawn(move || open_shard(config, shard, directory))
                })
                .collect();
            opening
                .into_iter()
                .enumerate()
                .map(|(shard, opening)| opening.join().map_err(|_| EngineError::Panicked(shard))?)
                .collect::<Result<Vec<_>, EngineError>>()
        })?;
        for (shard, (log, state, report)) in opened.into_iter().enumerate() {
            recoveries.push(report);
            let (inbox_sender, inbox) = crossbeam_channel::bounded(config.inbox_capacity);
            let wake = Arc::new(Notify::new());
            let counters = Arc::new(LoopCounters::default());
            let shard_loop = ShardLoop {
                counters: Arc::clone(&counters),
                state,
                log: Arc::clone(&log),
                inbox,
                wake: Arc::clone(&wake),
                closing: Arc::clone(&closing),
                turn_records_max: config.turn_records_max,
                turn_bytes_max: config.turn_bytes_max(),
                turns_in_flight_max: config.turns_in_flight_max,
            };
            let core = config
                .pin_threads
                .then(|| cores.get(shard % cores.len().max(1)).copied())
                .flatten();
            let (runtime_sender, runtime_receiver) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("spine-shard-{shard}"))
                .spawn(move || run_thread(shard, core, shard_loop, runtime_sender))
                .map_err(|source| EngineError::Thread { shard, source })?;
            let runtime = runtime_receiver
                .recv()
                .map_err(|_| EngineError::Panicked(shard))?;
            threads.push(thread);
            links.push(ShardLink {
                counters,
                inbox: inbox_sender,
                wake,
                log,
                runtime,
            });
        }
        let handle = EngineHandle {
            shards: links.into(),
            directory,
        };
        // Finish what a crash cut off between shards (bookings pending, slot releases owed).
        // It runs beside new requests, which is safe: every step it replays is idempotent, a
        // booking is replayed only while still pending, and a replay that comes late anyway is
        // owed back (see `coordinator/ers.rs`).
        let repairer = handle.clone();
        handle.runtime(0).spawn(async move {
            match repairer.repair_referrals().await {
                Ok(report) if report == RepairReport::default() => {}
                Ok(report) => tracing::info!(?report, "e-RS bookings repaired"),
                Err(refusal) => {
                    tracing::warn!(%refusal, "e-RS repair stopped; a restart runs it again")
                }
            }
        });
        let compactor = match config.compaction.clone() {
            Some(settings) => {
                let logs = handle.shards.iter().map(|link| Arc::clone(&link.log));
                Some(
                    compactor::Compactor::start(logs.collect(), settings)
                        .map_err(EngineError::CompactorThread)?,
                )
            }
            None => None,
        };
        Ok(Self {
            handle: Some(handle),
            closing,
            threads,
            recoveries,
            compactor,
            _data_dir: data_dir_lock,
        })
    }

    /// A handle for submitting requests.
    pub fn handle(&self) -> EngineHandle {
        self.handle
            .clone()
            .expect("the handle lives until shutdown")
    }

    /// What each shard's log recovery found at start.
    pub fn recoveries(&self) -> &[RecoveryReport] {
        &self.recoveries
    }

    /// Stops taking requests, answers those already submitted, closes the logs and joins the
    /// threads. Requests submitted afterwards through remaining handles are refused.
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), EngineError> {
        if let Some(mut compactor) = self.compactor.take() {
            compactor.stop();
        }
        // Each loop drains its inbox, answers, and exits; per-core tasks end with the runtime.
        self.closing.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            for link in handle.shards.iter() {
                link.wake.notify_one();
            }
        }
        let mut result = Ok(());
        for (shard, thread) in self.threads.drain(..).enumerate() {
            if thread.join().is_err() {
                result = Err(EngineError::Panicked(shard));
            }
        }
        result
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::error!(%error, "engine stopped with an error");
        }
    }
}

/// A shard thread: pins itself, builds its runtime, hands a handle back, runs the loop, and
/// closes the log once the loop has answered everything.
fn run_thread(
    shard: usize,
    core: Option<core_affinity::CoreId>,
    shard_loop: ShardLoop,
    runtime_sender: std::sync::mpsc::SyncSender<tokio::runtime::Handle>,
) {
    if let Some(core) = core
        && !core_affinity::set_for_current(core)
    {
        tracing::warn!(
            shard,
            core = core.id,
            "could not pin the shard thread to its core"
        );
    }
    // Timers, and sockets when a crate that uses them (the network's) is built in.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(shard, %error, "could not build the shard's runtime");
            return;
        }
    };
    if runtime_sender.send(runtime.handle().clone()).is_err() {
        return;
    }
    let log = Arc::clone(&shard_loop.log);
    runtime.block_on(shard_loop.run());
    drop(runtime);
    match Arc::try_unwrap(log) {
        Ok(log) => {
            if let Err(error) = log.close() {
                tracing::error!(shard, %error, "closing the shard's log");
            }
        }
        // Handles still share the log; it closes when the last one goes.
        Err(_) => tracing::debug!(shard, "log still shared at shutdown"),
    }
}

impl EngineHandle {
    /// How many shards there are.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Every shard's log files pinned against compaction until the pins are dropped (a
    /// backup's copy names them); waits for a compaction that is committing.
    pub fn pin_files(&self) -> Vec<spine_storage::FilesPin> {
        self.shards
            .iter()
            .map(|shard| shard.log.pin_files())
            .collect()
    }

    /// Where every shard's log ends, read with all their writers held at once: positions no
    /// crash could tell from one instant's, for a backup (`crate::backup`, the cut). Each
    /// writer is held between two batches for as long as reading the positions takes.
    pub fn backup_cut(&self) -> Result<Vec<spine_storage::LogExtent>, crate::backup::BackupError> {
        let held: Vec<_> = self
            .shards
            .iter()
            .map(|shard| shard.log.hold_writes())
            .collect();
        held.iter()
            .enumerate()
            .map(|(shard, held)| {
                held.extent()
                    .map_err(|source| crate::backup::BackupError::Extent { shard, source })
            })
            .collect()
    }

    /// The runtime of shard `shard`'s thread, for per-core tasks (network, benchmarks).
    pub fn runtime(&self, shard: usize) -> &tokio::runtime::Handle {
        &self.shards[shard].runtime
    }

    /// The access directory in use.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Verifies each shard's audit chain over its durable records (reading every record of
    /// every log); returns each chain's head, or the first problem found.
    pub fn verify_audit(
        &self,
    ) -> Vec<Result<crate::audit::chain::ChainHead, crate::shard::audit_queries::AuditReadError>>
    {
        self.shards
            .iter()
            .map(|link| crate::shard::audit_queries::verify_chain(link.log.as_ref(), None))
            .collect()
    }

    /// Each shard log's commit and flush latencies since the engine started or the last
    /// [`EngineHandle::reset_log_latencies`].
    pub fn log_latencies(&self) -> Vec<spine_storage::LatencyReport> {
        self.shards
            .iter()
            .map(|link| link.log.latencies())
            .collect()
    }

    /// Starts the log latency histograms afresh.
    pub fn reset_log_latencies(&self) {
        self.shards
            .iter()
            .for_each(|link| link.log.reset_latencies());
    }

    /// What each shard holds now.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.shards
            .iter()
            .map(|link| {
                let log = link.log.stats();
                ShardStats {
                    keys: link.log.key_count(),
                    records: link.log.last_position().index,
                    primary_index_bytes: link.log.primary_index_bytes(),
                    batches: log.batches,
                    records_written: log.records,
                    bytes_written: log.bytes,
                    turns: link.counters.turns.load(Ordering::Relaxed),
                    inputs: link.counters.inputs.load(Ordering::Relaxed),
                    busy_nanos: link.counters.busy_nanos.load(Ordering::Relaxed),
                    writes_stopped: link.log.failure().is_some(),
                    compactions: log.compactions,
                    compaction_bytes_reclaimed: log.compaction_bytes_reclaimed,
                }
            })
            .collect()
    }
}
