//! Compaction of a stopped data directory (`spine compact`): every shard's sealed segments are
//! rewritten with only the records the shard still needs ([`crate::shard::retention`]), and
//! the segments they replace are removed. Each segment is replaced whole or not at all
//! (`storage/FORMAT.md`, "Compaction"), so the command can be killed at any moment and run
//! again.

use std::sync::Arc;

use spine_storage::io::paced::Pace;
use spine_storage::{CompactError, Compacted, Log, OpenError, ReadError};

use crate::engine::EngineConfig;
use crate::shard::record_layout::ShardIndexes;
use crate::shard::retention::Retention;

/// What compaction did to one shard's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardCompacted {
    /// The shard.
    pub shard: usize,
    /// Sealed segments looked at.
    pub segments: usize,
    /// Segments rewritten (the others had nothing to drop).
    pub rewritten: usize,
    /// Records in the sealed segments before.
    pub records_before: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Bytes of the sealed segments' files before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Records the remembered write outcomes answer with, kept whether superseded or not.
    pub pinned: usize,
}

/// Why a shard could not be compacted.
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    /// The shard's log did not open (in use by a server, or damaged).
    #[error("shard {shard}: {source}")]
    Open {
        /// The shard.
        shard: usize,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The outcome ring could not be read.
    #[error("shard {shard}: reading the write outcomes: {source}")]
    Read {
        /// The shard.
        shard: usize,
        /// Why.
        #[source]
        source: ReadError,
    },
    /// A segment could not be compacted (it is unchanged).
    #[error("shard {shard}: {source}")]
    Compact {
        /// The shard.
        shard: usize,
        /// Why.
        #[source]
        source: CompactError,
    },
    /// The checkpoint after compacting, or closing the log, failed.
    #[error("shard {shard}: closing the log: {source}")]
    Close {
        /// The shard.
        shard: usize,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Compacts every sealed segment of every shard of `config`'s data directory (not served:
/// each log's lock is taken), reading and writing at `pace`, and calls `progress` after each
/// segment. Each shard ends with a checkpoint, so the next start loads the
/// indexes instead of scanning the log.
pub fn compact_data_dir(
    config: &EngineConfig,
    pace: &mut Pace,
    mut progress: impl FnMut(usize, &Compacted),
) -> Result<Vec<ShardCompacted>, CompactionError> {
    let mut done = Vec::with_capacity(config.shards);
    for shard in 0..config.shards {
        let (log, _) = Log::open_with(config.log_config(shard), Arc::new(ShardIndexes))
            .map_err(|source| CompactionError::Open { shard, source })?;
        let retention =
            Retention::of(&log).map_err(|source| CompactionError::Read { shard, source })?;
        let mut compacted = ShardCompacted {
            shard,
            pinned: retention.pinned(),
            ..ShardCompacted::default()
        };
        for sealed in log.sealed_segments() {
            let segment = log
                .compact_segment(sealed.first_index, &|view| retention.keeps(view), pace, 1)
                .map_err(|source| CompactionError::Compact { shard, source })?;
            compacted.segments += 1;
            compacted.rewritten += usize::from(segment.records_kept < segment.records_before);
            compacted.records_before += segment.records_before;
            compacted.records_kept += segment.records_kept;
            compacted.bytes_before += segment.bytes_before;
            compacted.bytes_after += segment.bytes_after;
            progress(shard, &segment);
        }
        let closed = log.checkpoint().map(drop).and_then(|()| log.close());
        closed.map_err(|source| CompactionError::Close { shard, source })?;
        done.push(compacted);
    }
    Ok(done)
}
