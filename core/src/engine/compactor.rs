//! Online compaction: one background thread for the whole engine rewrites the shards' sealed
//! segments while they serve, one segment at a time, at a rate, so the log's flushes and the
//! shards' reads keep the disk to themselves most of the time.
//!
//! Every `interval` it looks at each shard's sealed segments and compacts those worth it, the
//! ones never compacted first: a segment not looked at since the engine started (what was
//! superseded before a restart is not counted, so each one is read once), or one of whose
//! records at least
//! `min_dropped_percent` were superseded since. The records kept are those the log needs and
//! those the shard's retention rule keeps ([`crate::shard::retention`]), read afresh for each
//! shard each time: the outcome ring only ever pins records newer than the segments looked at.
//! A backup in progress pins the files ([`spine_storage::Log::pin_files`]); the compactor
//! then leaves that shard until its next look.

use std::collections::HashSet;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use spine_storage::io::paced::Pace;
use spine_storage::{CompactError, Log, SealedSegment};

use crate::shard::retention::Retention;

/// How the engine compacts its logs while it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionSettings {
    /// Bytes a second one compaction reads and writes, at most (`None`: no limit). Default 4 MiB: a few
    /// times what the national peak writes to the log, so compaction keeps up with it; at 16
    /// MiB the national peak's p99 doubled while a compaction ran on 2 cores
    /// (`bench/RESULTS.md`).
    pub rate: Option<NonZeroU64>,
    /// How long the compactor waits between two looks. Default 30 s.
    pub interval: Duration,
    /// A segment looked at before is compacted again once at least this share of its records
    /// (in percent) was superseded since, and only if at least this share would go. Default 25.
    pub min_dropped_percent: u8,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        Self {
            rate: NonZeroU64::new(4 << 20),
            interval: Duration::from_secs(30),
            min_dropped_percent: 25,
        }
    }
}

/// The running compactor; [`Compactor::stop`] (or dropping it) stops it within one chunk of
/// the compaction in progress, which is then left undone (its temporary copy removed).
pub(crate) struct Compactor {
    stop: Arc<AtomicBool>,
    wake: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the compactor over `logs` (shard order).
    pub(crate) fn start(
        logs: Vec<Arc<Log>>,
        settings: CompactionSettings,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, woken) = crossbeam_channel::bounded(1);
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("spine-compactor".into())
                .spawn(move || run(&logs, &settings, &stop, &woken))?
        };
        Ok(Self {
            stop,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Stops the compactor and waits for its thread.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Dropping the sender wakes the wait at once.
        self.wake.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the compactor's thread panicked");
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The compactor's thread: a look at every shard each `interval`, until stopped.
fn run(
    logs: &[Arc<Log>],
    settings: &CompactionSettings,
    stop: &Arc<AtomicBool>,
    woken: &Receiver<()>,
) {
    let mut looked_at: Vec<HashSet<u64>> = vec![HashSet::new(); logs.len()];
    loop {
        match woken.recv_timeout(settings.interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        for (shard, log) in logs.iter().enumerate() {
            if stop.load(Ordering::Acquire) {
                return;
            }
            compact_shard(shard, log, settings, &mut looked_at[shard], stop);
        }
    }
}

/// Whether `segment` is worth a compaction's look.
fn worth_a_look(
    segment: &SealedSegment,
    settings: &CompactionSettings,
    looked_at: &HashSet<u64>,
) -> bool {
    !looked_at.contains(&segment.first_index)
        || segment.superseded * 100 >= segment.records * u64::from(settings.min_dropped_percent)
}

/// Compacts the sealed segments of one shard's log that are worth it.
fn compact_shard(
    shard: usize,
    log: &Log,
    settings: &CompactionSettings,
    looked_at: &mut HashSet<u64>,
    stop: &Arc<AtomicBool>,
) {
    let mut candidates: Vec<SealedSegment> = log
        .sealed_segments()
        .into_iter()
        .filter(|segment| worth_a_look(segment, settings, looked_at))
        .collect();
    // Segments never compacted first: they hold the most to drop (a first look after a start
    // reads every segment, at the rate).
    candidates.sort_by_key(|segment| segment.compacted);
    if candidates.is_empty() {
        return;
    }
    let retention = match Retention::of(log) {
        Ok(retention) => retention,
        Err(error) => {
            tracing::error!(shard, %error, "compaction: the outcome ring could not be read");
            return;
        }
    };
    for segment in candidates {
        let min_dropped = segment.records * u64::from(settings.min_dropped_percent) / 100;
        let mut pace = Pace::cancellable(settings.rate, Arc::clone(stop));
        let keep = |record: &spine_storage::RecordView<'_>| retention.keeps(record);
        match log.compact_segment(segment.first_index, &keep, &mut pace, min_dropped) {
            Ok(_) | Err(CompactError::NotSealed(_)) => {
                looked_at.insert(segment.first_index);
            }
            // A backup is copying the files, or the engine is stopping: the next look.
            Err(CompactError::Pinned | CompactError::Stopped) => return,
            Err(error) => {
                tracing::error!(shard, segment = %segment.path.display(), %error, "compaction failed; the segment is as it was");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: u64, superseded: u64) -> SealedSegment {
        SealedSegment {
            first_index: 1,
            path: "1.seg".into(),
            last_index: records,
            compacted: false,
            records,
            file_bytes: 1 << 20,
            superseded,
        }
    }

    #[test]
    fn a_segment_is_looked_at_once_then_again_only_once_enough_of_it_is_superseded() {
        let settings = CompactionSettings::default();
        let mut looked_at = HashSet::new();
        assert!(worth_a_look(&segment(1000, 0), &settings, &looked_at));
        looked_at.insert(1);
        assert!(!worth_a_look(&segment(1000, 249), &settings, &looked_at));
        assert!(worth_a_look(&segment(1000, 250), &settings, &looked_at));
    }
}
