//! The background checkpointer: keeps a shadow copy of the indexes and writes checkpoints from
//! it, so the writer is never held off while a checkpoint is encoded.
//!
//! Encoding a checkpoint of the live state needs the state's read lock for as long as it takes
//! (227 ms for 4 million keys, measured), and the writer cannot publish a batch meanwhile. The
//! shadow avoids that: it is built the way recovery builds the state (from the newest checkpoint
//! file, then the records after it) and caught up before each checkpoint by replaying the durable
//! records it has not seen, read from the segment maps. Durable records never change, so this
//! needs the lock only to copy the segment list and the last durable position.
//!
//! The cost is a second copy of the indexes in memory while background checkpoints are enabled
//! (`checkpoint_interval_records > 0`), and the CPU to replay each record once more.
//!
//! A compaction replaces a sealed segment the shadow may point into. It sends the checkpointer
//! what it did ([`CompactionNotice`]): the shadow is caught up to the point of the swap and then
//! takes the same replacement, so it is not built again (from the log, since the checkpoint on
//! disk no longer matches the segments). Only when a notice cannot be followed (the queue of
//! them full, the shadow not past the segment) is the shadow dropped and built at the next
//! checkpoint.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, select};

use super::record;
use super::recovery::{apply_checkpoint, replay_compacted};
use super::segment::Segment;
use super::state::{Replacement, State};
use super::{OpenError, Shared};
use crate::format::SEGMENT_HEADER_SIZE;
use crate::index::Location;
use crate::index::checkpoint;
use crate::index::primary::PrimaryIndex;
use crate::index::secondary::{SecondaryIndexes, SecondaryKey, SecondaryKeys};

pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    extractor: Arc<dyn SecondaryKeys>,
    /// Built at the first checkpoint request, so opening the log pays nothing for it.
    shadow: Option<State>,
    /// The log's count of compactions it was not told of, as of the shadow: after such a
    /// compaction the shadow points into a segment that is gone, and is built again.
    unfollowed_seen: u64,
    scratch: Vec<SecondaryKey>,
}

impl Checkpointer {
    pub(super) fn new(shared: Arc<Shared>, extractor: Arc<dyn SecondaryKeys>) -> Self {
        Self {
            shared,
            extractor,
            shadow: None,
            unfollowed_seen: 0,
            scratch: Vec::new(),
        }
    }

    /// Writes a checkpoint for every request, and follows every compaction, until the request
    /// channel closes.
    pub(super) fn run(mut self, requests: Receiver<()>) {
        super::writer::lower_priority_of_this_thread();
        let notices = self.shared.compaction_notices.1.clone();
        loop {
            select! {
                recv(requests) -> request => {
                    if request.is_err() {
                        return;
                    }
                    // Compactions before this checkpoint are followed first.
                    while let Ok(notice) = notices.try_recv() {
                        self.follow(*notice);
                    }
                    if let Err(error) = self.checkpoint() {
                        // Rebuilt from disk at the next request, in case the shadow went astray.
                        self.shadow = None;
                        tracing::warn!(%error, "background checkpoint failed; the log is unaffected");
                    }
                }
                recv(notices) -> notice => {
                    if let Ok(notice) = notice {
                        self.follow(*notice);
                    }
                }
            }
        }
    }

    /// Gives the shadow the replacement a compaction made in the live state, once the shadow
    /// is caught up to where the swap happened; drops the shadow if that cannot be done.
    fn follow(&mut self, mut notice: CompactionNotice) {
        let Some(mut shadow) = self.shadow.take() else {
            return;
        };
        let segments = self.shared.state.read().segments.clone();
        if let Err(error) = self.catch_up(&mut shadow, &segments, notice.swapped_at) {
            tracing::warn!(%error, "checkpointer: following a compaction; the shadow is built again");
            return;
        }
        let at = notice.ordinal as usize;
        let sealed = at + 1 < shadow.segments.len();
        match shadow.segments.get(at) {
            // Replayed from the compacted copy itself: nothing to do.
            Some(held) if Arc::ptr_eq(held, &notice.replacement.segment) => {}
            Some(held) if sealed && Arc::ptr_eq(held, &notice.replaced) => {
                shadow.replace_segment(notice.ordinal, &mut notice.replacement);
            }
            _ => {
                tracing::info!(
                    "checkpointer: a compaction it cannot follow; the shadow is built again"
                );
                return;
            }
        }
        self.shadow = Some(shadow);
    }

    fn checkpoint(&mut self) -> io::Result<Option<PathBuf>> {
        // Read before the segment list, so a compaction after it is seen at the next request.
        let unfollowed = self.shared.unfollowed_compactions.load(Ordering::Acquire);
        if unfollowed != self.unfollowed_seen {
            self.shadow = None;
            self.unfollowed_seen = unfollowed;
        }
        let (segments, last) = {
            let state = self.shared.state.read();
            (state.segments.clone(), state.last)
        };
        let started = std::time::Instant::now();
        let built = self.shadow.is_none();
        let mut shadow = match self.shadow.take() {
            Some(shadow) => shadow,
            None => {
                let counters = &self.shared.counters;
                counters.shadow_builds.fetch_add(1, Ordering::Relaxed);
                self.build_shadow(&segments)?
            }
        };
        let shadow_ms = started.elapsed().as_millis();
        let caught_up = self.catch_up(&mut shadow, &segments, last.index);
        let written = caught_up.and_then(|()| self.shared.write_checkpoint_of(&shadow));
        if let Ok(Some(path)) = &written {
            // Operators see each background checkpoint, and what the first one after a start
            // costs (the shadow of the indexes is built then, from the newest checkpoint).
            tracing::info!(
                path = %path.display(),
                index = last.index,
                shadow_built = built,
                shadow_ms,
                ms = started.elapsed().as_millis(),
                "background checkpoint written"
            );
        }
        if self.shared.config.keep_checkpoint_shadow {
            self.shadow = Some(shadow);
        } else {
            drop(shadow);
            return_free_memory();
        }
        written
    }

    /// A state as of the newest checkpoint on disk (or an empty one), like recovery's.
    fn build_shadow(&self, segments: &[Arc<super::segment::Segment>]) -> io::Result<State> {
        let config = &self.shared.config;
        let fresh = || {
            State::new(
                PrimaryIndex::with_capacity(config.expected_keys),
                SecondaryIndexes::new(self.extractor.index_count()),
                config.payload_bytes_max,
            )
        };
        let mut shadow = fresh();
        if let Some((_, saved)) = checkpoint::load_latest(&config.dir)? {
            let matches = apply_checkpoint(&config.dir, saved, segments, &mut shadow)
                .map_err(|error: OpenError| io::Error::other(error.to_string()))?;
            if !matches {
                shadow = fresh();
            }
        }
        Ok(shadow)
    }

    /// Replays the durable records after the shadow's last one, up to `target`.
    fn catch_up(
        &mut self,
        shadow: &mut State,
        segments: &[Arc<super::segment::Segment>],
        target: u64,
    ) -> io::Result<()> {
        let corrupt = |error: super::ReadError| io::Error::other(error.to_string());
        while shadow.last.index < target {
            let next = shadow.last.index + 1;
            // Records at or below `target` are durable and never change, and the next one is
            // either at the shadow's write offset or, if that segment ended, at the start of
            // the next segment; the bytes read are one or the other, never a write in progress.
            let current = shadow
                .last_segment()
                .map(|ordinal| (ordinal, Arc::clone(&shadow.segments[ordinal as usize])));
            let offset = shadow.write_offset;
            let found = current.as_ref().and_then(|(ordinal, segment)| {
                let bytes = segment.record_bytes(offset)?;
                let header = record::decode(bytes, shadow.payload_max).ok()?;
                (header.position.index == next).then_some((*ordinal, bytes, header))
            });
            if let Some((ordinal, bytes, header)) = found {
                let location = Location {
                    segment: ordinal,
                    offset: offset as u32,
                };
                let payload = record::payload(bytes, &header);
                shadow
                    .apply(
                        self.extractor.as_ref(),
                        &mut self.scratch,
                        location,
                        &header,
                        payload,
                    )
                    .map_err(corrupt)?;
                continue;
            }
            let fresh_segment = shadow.write_offset == SEGMENT_HEADER_SIZE
                && shadow.offsets.last().is_some_and(Vec::is_empty);
            let following = segments.get(shadow.segments.len());
            match following {
                Some(segment) if segment.compacted() && segment.first_index == next => {
                    shadow.push_segment(Arc::clone(segment));
                    let extractor = self.extractor.as_ref();
                    replay_compacted(shadow, extractor, &mut self.scratch, segment)
                        .map_err(corrupt)?
                        .map_err(|corruption| {
                            io::Error::other(format!(
                                "checkpointer: compacted segment {} is damaged at {}: {}",
                                segment.path.display(),
                                corruption.offset,
                                corruption.reason
                            ))
                        })?;
                }
                Some(segment) if !fresh_segment && segment.first_index == next => {
                    shadow.push_segment(Arc::clone(segment));
                }
                _ => {
                    return Err(io::Error::other(format!(
                        "checkpointer: durable record {next} not found where the log puts it"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// What a compaction did to the live state, for the checkpointer's shadow.
pub(super) struct CompactionNotice {
    /// The segment's ordinal.
    pub(super) ordinal: u32,
    /// The segment replaced.
    pub(super) replaced: Arc<Segment>,
    /// What replaced it (its moves as the live state made them).
    pub(super) replacement: Replacement,
    /// The last durable index when it was swapped in: the shadow takes the replacement once
    /// it has applied every record up to here (every key a move skipped was superseded by then).
    pub(super) swapped_at: u64,
}

/// Gives memory freed by this thread back to the system, so that a dropped shadow no longer
/// counts against the process (glibc keeps freed small blocks in the thread's arena otherwise).
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas; it touches
    // no live allocation and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
