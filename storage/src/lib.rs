//! Spine storage: a segmented, append-only, memory-mapped log with group commit, crash recovery
//! and in-memory indexes. Everything Spine core stores goes through it.
//!
//! Where things are:
//! - [`dir_lock`]: taking a directory's lock, with a grace for a holder passing through.
//! - [`format`](mod@format): the byte layout's constants (documented, and tested against, `FORMAT.md`).
//! - [`log`]: the [`Log`] handle; `log/record.rs` encodes and verifies records (sans-IO),
//!   `log/segment.rs` owns segment files and maps, `log/group_commit.rs` decides when a batch
//!   closes (sans-IO), `log/recovery.rs` tells torn tails from corruption (sans-IO scan),
//!   `log/writer.rs` is the group-commit thread, `log/checkpointer.rs` writes checkpoints read from
//!   the live indexes while the log goes on writing.
//! - [`io`]: the io backends (io_uring, portable `pwrite` + `fdatasync`, fault injection, and
//!   the simulated disk a simulator arms power losses and failed flushes on).
//! - [`index`]: the primary hash index, ordered secondary indexes and checkpoints.
#![warn(missing_docs, unreachable_pub)]

pub mod dir_lock;
pub mod format;
pub mod index;
pub mod io;
pub mod log;

pub use index::Location;
pub use index::secondary::{NoSecondaryKeys, SECONDARY_KEY_BYTES_MAX, SecondaryKey, SecondaryKeys};
pub use io::{
    BackendChoice, BackendKind, DiskFault, FaultInjection, FileStep, SimulatedDisk, StallEnd,
    TornWrite,
};
pub use log::{
    AppendError, CompactError, Compacted, FilesPin, Key, LatencyReport, LatencySummary, Log,
    LogConfig, LogExtent, LogStats, NewRecord, OpenError, PendingBatch, Position, ReadError,
    RecordView, RecoveryReport, SealedSegment, SegmentExtent, TornTail, WritesHeld,
};
