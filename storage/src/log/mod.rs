//! The log: open (with recovery), append (group commit), read (zero-copy, verified).
//!
//! Threads: appends from any thread or task go through a bounded queue (`append_queue.rs`) to
//! one writer thread (`writer.rs`), which batches them (`group_commit.rs`), writes each batch with
//! one write and one `fdatasync` through the io backend, then publishes the batch to the indexes
//! and acknowledges it. A preparer thread keeps a zero-filled spare segment ready so that rolling
//! to a new segment does not stall appenders, and a checkpointer thread (`checkpointer.rs`) writes
//! index checkpoints read from the live indexes a run at a time, without copying them. Reads
//! take a read lock on the indexes and see exactly the durable records; commit and flush
//! latencies are kept in `latency.rs`.

mod append_queue;
mod checkpointer;
mod compaction;
mod extent;
pub mod group_commit;
mod latency;
pub mod record;
mod recovery;
use recovery::io_error;
pub(crate) mod segment;
mod state;
mod writer;

use std::fs::{self, File};
use std::io;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::format::{RECORD_FLAG_DELETE, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, record_size};
use crate::index::secondary::{NoSecondaryKeys, SecondaryKeys};
use crate::io::{BackendChoice, BackendKind, FaultInjection, SimulatedDisk};
use append_queue::AppendQueue;
pub use compaction::{CompactError, Compacted, FilesPin, SealedSegment};
pub use extent::{LogExtent, SegmentExtent, WritesHeld};
use group_commit::BatchPolicy;
use latency::Latencies;
pub use latency::{LatencyReport, LatencySummary};
pub use record::{Position, RecordHeader};
use state::State;

/// Name of the lock file that keeps a second process from opening the same log.
const LOCK_FILE_NAME: &str = "LOCK";

/// A record's primary key: non-zero, because 0 means "no key" on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(NonZeroU64);

impl Key {
    /// `None` for 0, which is reserved.
    pub const fn new(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(value) => Some(Self(value)),
            None => None,
        }
    }

    /// The key's value.
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

/// A record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// The key the record is indexed under, if any.
    pub key: Option<Key>,
    /// Application-defined kind.
    pub kind: u8,
    /// Whether the record deletes its key from the indexes.
    pub delete: bool,
    /// The payload.
    pub payload: Bytes,
}

impl NewRecord {
    /// A record that becomes `key`'s latest value.
    pub fn put(key: Key, kind: u8, payload: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key),
            kind,
            delete: false,
            payload: payload.into(),
        }
    }

    /// A record that removes `key` from the indexes (the record itself stays in the log).
    pub fn delete(key: Key, kind: u8) -> Self {
        Self {
            key: Some(key),
            kind,
            delete: true,
            payload: Bytes::new(),
        }
    }

    /// A record with no key, reachable by position only (for example an audit event).
    pub fn unkeyed(kind: u8, payload: impl Into<Bytes>) -> Self {
        Self {
            key: None,
            kind,
            delete: false,
            payload: payload.into(),
        }
    }

    fn flags(&self) -> u8 {
        if self.delete { RECORD_FLAG_DELETE } else { 0 }
    }
}

/// A verified record borrowed from a segment's memory map (zero-copy).
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub(crate) header: RecordHeader,
    pub(crate) payload: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record's position.
    pub fn position(&self) -> Position {
        self.header.position
    }

    /// The record's key, if it has one.
    pub fn key(&self) -> Option<Key> {
        Key::new(self.header.key)
    }

    /// The application-defined kind.
    pub fn kind(&self) -> u8 {
        self.header.kind
    }

    /// Whether this record deleted its key.
    pub fn is_delete(&self) -> bool {
        self.header.flags & RECORD_FLAG_DELETE != 0
    }

    /// Whether this record is the last of its append group (one `append`, or one
    /// `append_batch`).
    pub fn ends_group(&self) -> bool {
        self.header.flags & crate::format::RECORD_FLAG_GROUP_END != 0
    }

    /// The payload, straight from the map.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Configuration of a log. [`LogConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Directory holding the segments, checkpoints and the lock file; created if missing.
    pub dir: PathBuf,
    /// Size of each preallocated segment file (at most 4 GiB - 1, since offsets are `u32`).
    /// Default 64 MiB.
    pub segment_size: u64,
    /// Largest payload accepted; larger appends fail with [`AppendError::RecordTooLarge`].
    /// Default 1 MiB.
    pub payload_bytes_max: u32,
    /// A batch closes at this many encoded bytes. Default 1 MiB.
    pub batch_bytes_max: usize,
    /// A batch closes at this many records. Default 8,192.
    pub batch_records_max: usize,
    /// Longest wait for more records once the queue is empty (see [`group_commit`]). It must
    /// cover the time the appenders just answered take to append again (about 200 µs for 256
    /// tasks on 2 cores), or some of them miss every batch. Default 250 µs.
    pub batch_delay: Duration,
    /// Appends queued or in flight at most; further appenders wait (backpressure). Worst-case
    /// memory is this times `payload_bytes_max`. Default 16,384.
    pub appends_pending_max: usize,
    /// Term written into new records' positions. Default 1.
    pub term: u64,
    /// Which io backend to use. Default [`BackendChoice::Auto`].
    pub backend: BackendChoice,
    /// Keys the primary index is sized for up front; it doubles (a pause) when exceeded.
    /// Default 65,536.
    pub expected_keys: usize,
    /// Write an index checkpoint every this many records (0: never in the background).
    /// Default 1,000,000.
    pub checkpoint_interval_records: u64,
    /// Write a checkpoint when the log is closed. Default true.
    pub checkpoint_on_close: bool,
    /// Use the newest checkpoint at open. Default true; false forces a full scan.
    pub use_checkpoint: bool,
    /// Make the io backend fail on purpose; for tests only.
    pub fault_injection: Option<FaultInjection>,
    /// Write through a simulated disk (the portable backend, with the faults a simulator arms)
    /// instead of the chosen backend; for simulations only.
    pub simulated_disk: Option<Arc<SimulatedDisk>>,
}

impl LogConfig {
    /// Defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: 64 << 20,
            payload_bytes_max: 1 << 20,
            batch_bytes_max: 1 << 20,
            batch_records_max: 8192,
            batch_delay: Duration::from_micros(250),
            appends_pending_max: 16_384,
            term: 1,
            backend: BackendChoice::Auto,
            expected_keys: 65_536,
            checkpoint_interval_records: 1_000_000,
            checkpoint_on_close: true,
            use_checkpoint: true,
            fault_injection: None,
            simulated_disk: None,
        }
    }

    fn validate(&self) -> Result<(), OpenError> {
        let invalid = |reason: &'static str| Err(OpenError::InvalidConfig { reason });
        let largest_record = record_size(self.payload_bytes_max as usize) as u64;
        if self.segment_size > u64::from(u32::MAX) {
            return invalid("segment_size must be below 4 GiB");
        }
        if self.segment_size < SEGMENT_HEADER_SIZE as u64 + largest_record {
            return invalid("segment_size must hold the segment header and the largest record");
        }
        if !self.segment_size.is_multiple_of(4096) {
            return invalid("segment_size must be a multiple of 4096");
        }
        if self.batch_bytes_max < RECORD_HEADER_SIZE || self.batch_records_max == 0 {
            return invalid("batch_bytes_max and batch_records_max must admit one record");
        }
        if self.batch_records_max > u32::MAX as usize {
            return invalid("batch_records_max must fit in 32 bits");
        }
        if self.appends_pending_max == 0 || self.appends_pending_max > Semaphore::MAX_PERMITS {
            return invalid("appends_pending_max must be at least 1");
        }
        if self.term == 0 {
            return invalid("term must be at least 1");
        }
        Ok(())
    }

    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            batch_bytes_max: self.batch_bytes_max,
            batch_records_max: self.batch_records_max,
            delay: self.batch_delay,
        }
    }
}

/// Why a log did not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration is impossible.
    #[error("invalid log configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// Another process (or log handle) holds the directory.
    #[error("log directory {dir} is in use by another process")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// An io error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The io_uring backend was required but could not be set up.
    #[error("io_uring backend unavailable: {0}")]
    Backend(#[source] io::Error),
    /// A record or header before the tail is damaged: data that was acknowledged is not intact,
    /// so the log refuses to open rather than lose it silently.
    #[error("segment {segment}: offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in it.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A segment between the first and the last is missing.
    #[error("segment starting at log index {first_index} is missing from {dir}")]
    SegmentMissing {
        /// Directory of the log.
        dir: PathBuf,
        /// First index the missing segment should hold.
        first_index: u64,
    },
}

/// Why an append failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The payload is larger than `payload_bytes_max`.
    #[error("record payload of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload size.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// A write or flush failed earlier; the log refuses writes until it is reopened. Nothing
    /// acknowledged before the failure is lost.
    #[error("log is stopped after an io failure and must be reopened: {cause}")]
    FailStop {
        /// The failure that stopped the log.
        #[source]
        cause: Arc<io::Error>,
    },
    /// The log is closing or its writer thread is gone.
    #[error("log is closed")]
    Closed,
    /// `try_append_batch` found fewer free places than records: too many appends are pending.
    #[error("{records} records do not fit: too many appends are pending")]
    QueueFull {
        /// Records in the batch.
        records: usize,
    },
    /// An `append_batch` of no records.
    #[error("a batch needs at least one record")]
    EmptyBatch,
    /// An `append_batch` of more records than may be pending at once.
    #[error("a batch of {records} records exceeds appends_pending_max ({max})")]
    BatchTooLarge {
        /// Records in the batch.
        records: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An `append_batch` whose records do not fit in one segment: a batch is one append group,
    /// durable whole or not at all, and a group never spans segments.
    #[error(
        "a batch of {bytes} encoded bytes does not fit in one segment ({max} bytes for records)"
    )]
    BatchBytesTooLarge {
        /// Encoded bytes of the batch's records.
        bytes: usize,
        /// Bytes a segment holds for records.
        max: usize,
    },
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The bytes on disk no longer match their checksum.
    #[error("segment {segment}: offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in it.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

impl From<ReadError> for OpenError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Corrupt {
                segment,
                offset,
                reason,
            } => OpenError::Corrupt {
                segment,
                offset,
                reason,
            },
        }
    }
}

/// A torn tail that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the log now ends.
    pub offset: u64,
    /// Bytes zeroed after that point.
    pub bytes_discarded: u64,
    /// Records that were valid but were cut with the rest of their append group, which was
    /// incomplete (none of them had been acknowledged).
    pub valid_records_discarded: u64,
    /// Why the append group that started at `offset` was cut: what was wrong with its first
    /// invalid record, or that its last record is missing.
    pub reason: &'static str,
}

/// What opening the log found.
#[derive(Clone, Debug)]
pub struct RecoveryReport {
    /// The io backend in use.
    pub backend: BackendKind,
    /// Segments in the log.
    pub segments: usize,
    /// Records in the log (the last index).
    pub records: u64,
    /// Records verified by scanning (those after the checkpoint, or all).
    pub records_scanned: u64,
    /// Bytes of records verified by scanning.
    pub bytes_scanned: u64,
    /// The checkpoint used, if any.
    pub checkpoint: Option<PathBuf>,
    /// The torn tail that was cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Time the whole open took.
    pub duration: Duration,
}

/// Counters of the write path, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Batches written and flushed.
    pub batches: u64,
    /// Records written.
    pub records: u64,
    /// Bytes written (records and segment headers).
    pub bytes: u64,
    /// Total time spent in write + `fdatasync`, in nanoseconds.
    pub flush_nanos: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Longest time a checkpoint held the state's read lock, in nanoseconds: how long it kept the
    /// writer from publishing (and so from acknowledging) a batch.
    pub checkpoint_lock_nanos_max: u64,
    /// Segments compacted (replaced by a compacted copy).
    pub compactions: u64,
    /// File bytes compaction reclaimed (the segments' sizes less their copies').
    pub compaction_bytes_reclaimed: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    flush_nanos: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_lock_nanos_max: AtomicU64,
    compactions: AtomicU64,
    compaction_bytes_reclaimed: AtomicU64,
}

/// State shared by the handle and the background threads.
struct Shared {
    state: RwLock<State>,
    failed: AtomicBool,
    failure: Mutex<Option<Arc<io::Error>>>,
    counters: Counters,
    config: LogConfig,
    /// Held while a checkpoint is written, so the background and explicit writers never race
    /// on the same file; holds the last index checkpointed.
    checkpointed: Mutex<u64>,
    /// Recorded by the writer once per batch.
    latencies: Mutex<Latencies>,
    /// Held by the writer while it writes a batch and indexes it, and by
    /// [`Log::hold_writes`] to read where the log ends between two batches.
    writes: Mutex<()>,
    /// Held by a compaction from its first look at a segment until the segment is replaced.
    compaction: Mutex<()>,
    /// How many [`FilesPin`]s are held; a compaction commits only while there are none.
    file_pins: Mutex<usize>,
}

impl Shared {
    /// A log's shared state as recovery left it.
    fn new(state: State, config: LogConfig) -> Self {
        Self {
            state: RwLock::new(state),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            counters: Counters::default(),
            config,
            checkpointed: Mutex::new(0),
            latencies: Mutex::new(Latencies::new()),
            writes: Mutex::new(()),
            compaction: Mutex::new(()),
            file_pins: Mutex::new(0),
        }
    }
}

impl Shared {
    fn failure(&self) -> Option<Arc<io::Error>> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().clone()
    }

    fn fail_stop(&self, error: Arc<io::Error>) {
        let mut failure = self.failure.lock();
        if failure.is_none() {
            tracing::error!(%error, "log write failed; refusing writes until reopened");
            *failure = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// A request in the append queue.
pub(crate) struct AppendRequest {
    record: NewRecord,
    /// Whether this is the last record of its append group (a batch, or a single append): the
    /// writer never ends a commit batch, nor a segment, inside a group, and marks the group's
    /// last record so recovery keeps groups whole.
    ends_group: bool,
    /// Where the answer goes; `None` inside a batch, where only the last record is answered
    /// (records become durable in queue order, so its answer covers the others).
    reply: Option<oneshot::Sender<Result<Position, AppendError>>>,
    /// Released when the append is answered: the queue's bound covers in-flight batches too.
    _permit: OwnedSemaphorePermit,
    /// When the append entered the queue, for the commit latency.
    queued_at: std::time::Instant,
}

/// A batch queued by [`Log::try_append_batch`]; [`PendingBatch::durable`] waits for it.
#[derive(Debug)]
#[must_use = "a queued batch is acknowledged only once its durability is awaited"]
pub struct PendingBatch {
    last: oneshot::Receiver<Result<Position, AppendError>>,
    records: usize,
}

impl PendingBatch {
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the batch is empty (never: empty batches are refused).
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Resolves once every record of the batch is durable, with the last record's position.
    pub async fn durable(self) -> Result<Position, AppendError> {
        self.last.await.map_err(|_| AppendError::Closed)?
    }
}

/// An open log. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Log {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    queue: Arc<AppendQueue<AppendRequest>>,
    /// Held while a group's records are pushed, so groups of concurrent appenders never
    /// interleave in the queue (the writer relies on a group's records being consecutive).
    push_lock: Mutex<()>,
    writer: Option<JoinHandle<()>>,
    helpers: Vec<JoinHandle<()>>,
    /// Asks the checkpointer for a checkpoint (after a compaction); dropped at shutdown, so
    /// that the checkpointer's channel closes once the writer's end is gone too.
    checkpoint_requests: Option<crossbeam_channel::Sender<()>>,
    backend: BackendKind,
    /// Opened by [`Log::open_read_only`]: no writer, no checkpoint on close.
    read_only: bool,
    _lock: Option<File>,
}

impl Log {
    /// Opens (creating if needed) the log in `config.dir` with no secondary indexes.
    pub fn open(config: LogConfig) -> Result<(Self, RecoveryReport), OpenError> {
        Self::open_with(config, Arc::new(NoSecondaryKeys))
    }

    /// Opens the log, recovering it, with secondary indexes derived by `extractor`.
    pub fn open_with(
        config: LogConfig,
        extractor: Arc<dyn SecondaryKeys>,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        let started = std::time::Instant::now();
        config.validate()?;
        fs::create_dir_all(&config.dir).map_err(io_error(&config.dir))?;
        let lock_path = config.dir.join(LOCK_FILE_NAME);
        let lock = File::create(&lock_path).map_err(io_error(&lock_path))?;
        lock_or_refuse(
            crate::dir_lock::take(&lock, crate::dir_lock::LockMode::Exclusive),
            &lock_path,
            &config.dir,
        )?;
        let backend = crate::io::open_backend(
            config.backend,
            config.fault_injection,
            config.simulated_disk.clone(),
        )
        .map_err(OpenError::Backend)?;
        let backend_kind = backend.kind();
        let recovered = recovery::recover(&config, extractor.as_ref(), recovery::Mode::Repair)?;
        let mut report = recovered.report;
        report.backend = backend_kind;
        let shared = Arc::new(Shared::new(recovered.state, config.clone()));
        let (queue, threads, checkpoint_requests) =
            writer::start(Arc::clone(&shared), backend, extractor)
                .map_err(io_error(&config.dir))?;
        let mut threads = threads.into_iter();
        let writer = threads.next();
        report.duration = started.elapsed();
        tracing::info!(
            backend = %backend_kind,
            records = report.records,
            scanned = report.records_scanned,
            ms = report.duration.as_millis() as u64,
            "log opened"
        );
        let log = Self {
            shared,
            permits: Arc::new(Semaphore::new(config.appends_pending_max)),
            queue,
            push_lock: Mutex::new(()),
            writer,
            helpers: threads.collect(),
            checkpoint_requests: Some(checkpoint_requests),
            backend: backend_kind,
            read_only: false,
            _lock: Some(lock),
        };
        Ok((log, report))
    }

    /// Opens the log for reading only, verifying every record after the checkpoint (all of
    /// them when `config.use_checkpoint` is false), and writes nothing: not the lock file, not a
    /// torn tail's cut (reported in [`RecoveryReport::torn_tail`], the records before it are
    /// readable), not a checkpoint. Works on a read-only copy. Refused with `Locked` while a
    /// process has the log open for writing; appends fail with `Closed`.
    pub fn open_read_only(
        config: LogConfig,
        extractor: Arc<dyn SecondaryKeys>,
    ) -> Result<(Self, RecoveryReport), OpenError> {
        let started = std::time::Instant::now();
        config.validate()?;
        let lock_path = config.dir.join(LOCK_FILE_NAME);
        // A shared lock keeps a writer from opening meanwhile; a copy without the lock file
        // has no writer to keep out.
        let lock = match File::open(&lock_path) {
            Ok(lock) => {
                lock_or_refuse(
                    crate::dir_lock::take(&lock, crate::dir_lock::LockMode::Shared),
                    &lock_path,
                    &config.dir,
                )?;
                Some(lock)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(OpenError::Io {
                    path: lock_path,
                    source,
                });
            }
        };
        if !config.dir.is_dir() {
            return Err(OpenError::Io {
                path: config.dir.clone(),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        let recovered = recovery::recover(&config, extractor.as_ref(), recovery::Mode::ReadOnly)?;
        let mut report = recovered.report;
        report.duration = started.elapsed();
        let shared = Arc::new(Shared::new(recovered.state, config.clone()));
        let queue = Arc::new(AppendQueue::new(1));
        queue.close();
        let permits = Arc::new(Semaphore::new(0));
        permits.close();
        let log = Self {
            shared,
            permits,
            queue,
            push_lock: Mutex::new(()),
            writer: None,
            helpers: Vec::new(),
            checkpoint_requests: None,
            backend: BackendKind::Portable,
            read_only: true,
            _lock: lock,
        };
        Ok((log, report))
    }

    /// The io backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// Appends a record; resolves with its position once it is durable. Waits while
    /// `appends_pending_max` appends are already queued or in flight.
    pub async fn append(&self, record: NewRecord) -> Result<Position, AppendError> {
        self.check_appendable(&record)?;
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| AppendError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            record,
            ends_group: true,
            reply: Some(reply),
            _permit: permit,
            queued_at: std::time::Instant::now(),
        };
        let pushed = {
            let _group = self.push_lock.lock();
            self.queue.push(request)
        };
        if pushed.is_err() {
            // The permits keep the queue below its capacity, so only closing refuses a push.
            assert!(
                self.queue.is_closed(),
                "append queue larger than its permits"
            );
            return Err(AppendError::Closed);
        }
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// Appends `records` (at least one) in order as one append group, and resolves once all
    /// are durable with the position of the last. The group is atomic on disk: after any
    /// crash, recovery finds all of its records or none (it never ends a commit batch or a
    /// segment inside a group, and marks the group's last record). Only that record
    /// is answered: the log makes records durable in queue order, so its answer covers the
    /// rest, and a batch costs one wake-up, not one per record. When the caller is the log's
    /// only appender the indexes are consecutive, starting just after the last record it
    /// queued: an engine can name a record's index (to link to it) before it is durable.
    /// At most `appends_pending_max` records (`BatchTooLarge` otherwise); waits for room.
    pub async fn append_batch(&self, records: Vec<NewRecord>) -> Result<Position, AppendError> {
        let count = self.check_batch(&records)?;
        let permits = Arc::clone(&self.permits)
            .acquire_many_owned(count)
            .await
            .map_err(|_| AppendError::Closed)?;
        self.enqueue_batch(records, permits)?.durable().await
    }

    /// [`Log::append_batch`] without waiting for room: the records are queued before this
    /// returns (so batches queued one after another keep their order), or refused with
    /// `QueueFull` when fewer than `records.len()` appends may still be pending.
    pub fn try_append_batch(&self, records: Vec<NewRecord>) -> Result<PendingBatch, AppendError> {
        let count = self.check_batch(&records)?;
        let permits = match Arc::clone(&self.permits).try_acquire_many_owned(count) {
            Ok(permits) => permits,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(AppendError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(AppendError::QueueFull {
                    records: records.len(),
                });
            }
        };
        self.enqueue_batch(records, permits)
    }

    fn check_batch(&self, records: &[NewRecord]) -> Result<u32, AppendError> {
        if records.is_empty() {
            return Err(AppendError::EmptyBatch);
        }
        let max = self.shared.config.appends_pending_max;
        let too_large = AppendError::BatchTooLarge {
            records: records.len(),
            max,
        };
        if records.len() > max {
            return Err(too_large);
        }
        let mut bytes = 0;
        for record in records {
            self.check_appendable(record)?;
            bytes += record_size(record.payload.len());
        }
        let room = self.shared.config.segment_size as usize - SEGMENT_HEADER_SIZE;
        if bytes > room {
            return Err(AppendError::BatchBytesTooLarge { bytes, max: room });
        }
        u32::try_from(records.len()).map_err(|_| too_large)
    }

    fn enqueue_batch(
        &self,
        records: Vec<NewRecord>,
        mut permits: OwnedSemaphorePermit,
    ) -> Result<PendingBatch, AppendError> {
        let queued_at = std::time::Instant::now();
        let count = records.len();
        let (reply, answer) = oneshot::channel();
        let mut reply = Some(reply);
        let _group = self.push_lock.lock();
        for (position, record) in records.into_iter().enumerate() {
            let permit = permits
                .split(1)
                .expect("one permit was acquired for each record");
            let last = position + 1 == count;
            let request = AppendRequest {
                record,
                ends_group: last,
                reply: if last { reply.take() } else { None },
                _permit: permit,
                queued_at,
            };
            if self.queue.push(request).is_err() {
                assert!(
                    self.queue.is_closed(),
                    "append queue larger than its permits"
                );
                return Err(AppendError::Closed);
            }
        }
        Ok(PendingBatch {
            last: answer,
            records: count,
        })
    }

    /// [`Log::append`] for callers outside an async runtime: blocks the calling thread.
    pub fn append_blocking(&self, record: NewRecord) -> Result<Position, AppendError> {
        pollster::block_on(self.append(record))
    }

    fn check_appendable(&self, record: &NewRecord) -> Result<(), AppendError> {
        let max = self.shared.config.payload_bytes_max;
        if record.payload.len() > max as usize {
            return Err(AppendError::RecordTooLarge {
                size: record.payload.len(),
                max,
            });
        }
        match self.shared.failure() {
            Some(cause) => Err(AppendError::FailStop { cause }),
            None => Ok(()),
        }
    }

    /// Position of the last durable record (index 0 when the log is empty).
    pub fn last_position(&self) -> Position {
        self.shared.state.read().last
    }

    /// Calls `visit` with the record at log index `index`; `Ok(None)` if there is no such durable
    /// record.
    pub fn read<T>(
        &self,
        index: u64,
        visit: impl FnOnce(RecordView<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        let state = self.shared.state.read();
        match state.locate(index) {
            Some(location) => state.view(location).map(|view| Some(visit(view))),
            None => Ok(None),
        }
    }

    /// Where the record at log index `index` lies: its segment file and byte offset, for
    /// reports that must name a damaged record so that an operator can find it.
    pub fn record_place(&self, index: u64) -> Option<(PathBuf, u64)> {
        let state = self.shared.state.read();
        let location = state.locate(index)?;
        let segment = state.segment_holding(location).path.clone();
        Some((segment, u64::from(location.offset)))
    }

    /// Calls `visit` with `key`'s latest record; `Ok(None)` if the key has none (or was deleted).
    pub fn get<T>(
        &self,
        key: Key,
        visit: impl FnOnce(RecordView<'_>) -> T,
    ) -> Result<Option<T>, ReadError> {
        let state = self.shared.state.read();
        match state.primary.get(key.get()) {
            Some(location) => state.view(location).map(|view| Some(visit(view))),
            None => Ok(None),
        }
    }

    /// The log index of `key`'s latest record, without reading or verifying the record beyond
    /// its header (for links between records); `Ok(None)` if the key has none.
    pub fn index_of(&self, key: Key) -> Result<Option<u64>, ReadError> {
        let state = self.shared.state.read();
        match state.primary.get(key.get()) {
            Some(location) => state.index_at(location, key.get()).map(Some),
            None => Ok(None),
        }
    }

    /// Starts loading the index slots and the first bytes of the latest records of `keys` into
    /// the cache, so that the reads that follow overlap their cache misses instead of taking
    /// them one after another. Only a hint: it reads nothing and cannot fail.
    pub fn prefetch(&self, keys: &[Key]) {
        /// Bytes of each record prefetched: the header and a small record's payload.
        const RECORD_BYTES: usize = 256;
        let state = self.shared.state.read();
        for key in keys {
            state.primary.prefetch(key.get());
        }
        for key in keys {
            if let Some(location) = state.primary.get(key.get()) {
                let segment = state.segment_holding(location);
                for line in (0..RECORD_BYTES).step_by(64) {
                    segment.prefetch(location.offset as usize + line);
                }
            }
        }
    }

    /// Looks up many keys at once, calling `visit(i, record)` for `keys[i]` in order. Faster than
    /// [`Log::get`] in a loop: one lock for the batch, and the index slots and records of a group
    /// of keys are prefetched together so their cache misses overlap.
    pub fn get_many(
        &self,
        keys: &[Key],
        mut visit: impl FnMut(usize, Option<RecordView<'_>>),
    ) -> Result<(), ReadError> {
        /// Keys whose misses are overlapped; enough to cover memory latency, few enough that the
        /// prefetched lines are still in L1 when used.
        const GROUP: usize = 16;
        let state = self.shared.state.read();
        let mut locations = [None; GROUP];
        for (group_index, group) in keys.chunks(GROUP).enumerate() {
            for key in group {
                state.primary.prefetch(key.get());
            }
            for (slot, key) in group.iter().enumerate() {
                locations[slot] = state.primary.get(key.get());
                if let Some(location) = locations[slot] {
                    state
                        .segment_holding(location)
                        .prefetch(location.offset as usize);
                }
            }
            for (slot, location) in locations[..group.len()].iter().enumerate() {
                let view = location.map(|location| state.view(location)).transpose()?;
                visit(group_index * GROUP + slot, view);
            }
        }
        Ok(())
    }

    /// Primary keys whose derived key in secondary index `index` starts with `prefix`, at most
    /// `limit`, in derived-key order.
    pub fn secondary_prefix(&self, index: u8, prefix: &[u8], limit: usize) -> Vec<Key> {
        let keys = self
            .shared
            .state
            .read()
            .secondary
            .prefix(index, prefix, limit);
        keys.into_iter().filter_map(Key::new).collect()
    }

    /// Primary keys whose derived key in secondary index `index` lies in `from..to` (`to`
    /// exclusive; `None`: no upper end), at most `limit`, in derived-key order.
    pub fn secondary_range(
        &self,
        index: u8,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Vec<Key> {
        let keys = self
            .shared
            .state
            .read()
            .secondary
            .range(index, from, to, limit);
        keys.into_iter().filter_map(Key::new).collect()
    }

    /// Number of keys in the primary index.
    pub fn key_count(&self) -> usize {
        self.shared.state.read().primary.len()
    }

    /// Bytes of memory the primary index uses.
    pub fn primary_index_bytes(&self) -> usize {
        self.shared.state.read().primary.memory_bytes()
    }

    /// Write-path counters since open.
    pub fn stats(&self) -> LogStats {
        let counters = &self.shared.counters;
        LogStats {
            batches: counters.batches.load(Ordering::Relaxed),
            records: counters.records.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            flush_nanos: counters.flush_nanos.load(Ordering::Relaxed),
            checkpoints: counters.checkpoints.load(Ordering::Relaxed),
            checkpoint_lock_nanos_max: counters.checkpoint_lock_nanos_max.load(Ordering::Relaxed),
            compactions: counters.compactions.load(Ordering::Relaxed),
            compaction_bytes_reclaimed: counters.compaction_bytes_reclaimed.load(Ordering::Relaxed),
        }
    }

    /// Commit latency (queued to durable, per append) and flush latency (write + `fdatasync`,
    /// per batch) since open or the last [`Log::reset_latencies`].
    pub fn latencies(&self) -> LatencyReport {
        self.shared.latencies.lock().report()
    }

    /// Starts the latency histograms afresh (for example after a warm-up).
    pub fn reset_latencies(&self) {
        self.shared.latencies.lock().reset();
    }

    /// Writes an index checkpoint now (normally the background thread does this).
    pub fn checkpoint(&self) -> io::Result<Option<PathBuf>> {
        if self.read_only {
            return Err(io::Error::other("the log is open for reading only"));
        }
        self.shared.write_checkpoint()
    }

    /// The error that stopped the log, if one did.
    pub fn failure(&self) -> Option<Arc<io::Error>> {
        self.shared.failure()
    }

    /// Stops accepting appends, finishes those already queued, stops the background threads and
    /// writes a final checkpoint (if configured).
    pub fn close(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.permits.close();
        self.checkpoint_requests = None;
        // Closing lets the writer drain the queue and exit; its exit drops the channels the
        // helpers wait on, so they exit too.
        self.queue.close();
        let mut panicked = false;
        if let Some(writer) = self.writer.take() {
            panicked |= writer.join().is_err();
        }
        for helper in self.helpers.drain(..) {
            panicked |= helper.join().is_err();
        }
        if panicked {
            return Err(io::Error::other("a log thread panicked"));
        }
        // The spare waiting in the preparer's channel when the writer stopped.
        segment::remove_spares(&self.shared.config.dir)?;
        if self.shared.config.checkpoint_on_close && self.shared.failure().is_none() {
            self.shared.write_checkpoint()?;
        }
        Ok(())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if self.writer.is_some()
            && let Err(error) = self.shutdown()
        {
            tracing::warn!(%error, "log did not close cleanly");
        }
    }
}

/// The outcome of taking a log directory's lock: `Locked` if another process holds it.
fn lock_or_refuse(
    taken: Result<(), fs::TryLockError>,
    lock_path: &Path,
    dir: &Path,
) -> Result<(), OpenError> {
    match taken {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(OpenError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(source)) => Err(OpenError::Io {
            path: lock_path.to_path_buf(),
            source,
        }),
    }
}
