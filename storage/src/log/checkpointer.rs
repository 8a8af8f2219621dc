//! Checkpoints of the live indexes, written while the log goes on writing: the background
//! checkpointer thread, and the same work for an explicit request and on close.
//!
//! A checkpoint is read from the live state a run at a time, each under the state's read lock
//! for a short while only (the writer publishes its batches between runs), and streamed to its
//! file: no copy of the indexes is kept, so a shard's memory is its indexes once, whatever their
//! size. What is read is *fuzzy* (`index::checkpoint`): keys that change meanwhile are caught
//! in any state they pass through, and recovery makes them exact by replaying the records after
//! the checkpoint's last one. Two things would move a key that no later record names, and are
//! kept from doing so while a checkpoint is read: a compaction's swap (it waits for the
//! checkpoint's lock, held throughout) and a deletion's backward shift in the primary table (the
//! keys it shifts are noted and read again at the end, `index::primary`).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::Receiver;

use super::Shared;
use super::state::State;
use crate::index::checkpoint::{CheckpointWriter, RUN_ENTRIES_MAX};
use crate::index::secondary::InlineKey;

/// Primary table slots read under one hold of the read lock (1 MiB of slots).
const SLOTS_PER_HOLD: usize = RUN_ENTRIES_MAX;
/// Secondary entries read under one hold of the read lock.
const SECONDARY_ENTRIES_PER_HOLD: usize = 16_384;
/// Record offsets (or compacted segments' indices) copied under one hold of the read lock.
const OFFSETS_PER_HOLD: usize = RUN_ENTRIES_MAX;

pub(super) struct Checkpointer {
    shared: Arc<Shared>,
}

impl Checkpointer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Writes a checkpoint for every request, until the request channel closes.
    pub(super) fn run(self, requests: Receiver<()>) {
        super::writer::lower_priority_of_this_thread();
        while requests.recv().is_ok() {
            let started = Instant::now();
            match self.shared.write_checkpoint() {
                // Operators see each background checkpoint and what it cost.
                Ok(Some(path)) => tracing::info!(
                    path = %path.display(),
                    ms = started.elapsed().as_millis(),
                    "background checkpoint written"
                ),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "background checkpoint failed; the log is unaffected");
                }
            }
        }
    }
}

/// One segment's part of a checkpoint, as the state held it at the checkpoint's last record.
struct SegmentPlan {
    first_index: u64,
    compaction: u32,
    /// Its records up to the checkpoint's last one.
    records: usize,
}

impl Shared {
    /// Writes a checkpoint of the live state as of its last durable record, reading it while
    /// the log goes on writing; `None` if there is nothing new since the last checkpoint.
    pub(super) fn write_checkpoint(&self) -> io::Result<Option<PathBuf>> {
        // Held throughout: no other checkpoint, and no compaction's swap, meanwhile.
        let mut checkpointed = self.checkpointed.lock();
        let (last, write_offset, plans, mut cursor) = {
            let mut state = self.state.write();
            if state.last.index == 0 || state.last.index <= *checkpointed {
                return Ok(None);
            }
            // A compaction holds `checkpointed` while index entries name its pending copy.
            assert!(
                state.pending.is_none(),
                "a checkpoint of the live state while a segment is being replaced"
            );
            let plans: Vec<SegmentPlan> = state
                .segments
                .iter()
                .zip(&state.offsets)
                .map(|(segment, offsets)| SegmentPlan {
                    first_index: segment.first_index,
                    compaction: segment.compaction,
                    records: offsets.len(),
                })
                .collect();
            let cursor = state.primary.begin_capture();
            (state.last, state.write_offset as u32, plans, cursor)
        };
        let disk = self.config.simulated_disk.as_ref();
        let started =
            CheckpointWriter::create(&self.config.dir, last, write_offset, plans.len(), disk);
        let read = started.and_then(|mut writer| {
            self.write_segments(&mut writer, &plans)?;
            self.write_primary(&mut writer, &mut cursor)?;
            Ok(writer)
        });
        // The capture ends whatever happened, so the next one can begin.
        let shifted = self.state.write().primary.end_capture();
        let mut writer = read?;
        let shifted = shifted.ok_or_else(|| {
            io::Error::other(
                "more index entries were shifted while the checkpoint was read than it notes; \
                 it is written at the next request",
            )
        })?;
        for run in shifted.chunks(RUN_ENTRIES_MAX) {
            writer.primary_run(run)?;
        }
        writer.end_runs()?;
        self.write_secondary(&mut writer)?;
        let path = writer.finish()?;
        *checkpointed = last.index;
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(Some(path))
    }

    /// Runs `read` under the state's read lock, recording how long the lock was held.
    fn under_read_lock<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        let state = self.state.read();
        let locked_at = Instant::now();
        let value = read(&state);
        let held = locked_at.elapsed();
        drop(state);
        self.counters
            .checkpoint_lock_nanos_max
            .fetch_max(held.as_nanos() as u64, Ordering::Relaxed);
        value
    }

    /// Each segment's part: its record offsets (and a compacted one's indices) up to the
    /// checkpoint's last record, which no longer change (sealed segments are replaced only by
    /// a compaction's swap, which waits; the last one's only grow).
    fn write_segments(
        &self,
        writer: &mut CheckpointWriter,
        plans: &[SegmentPlan],
    ) -> io::Result<()> {
        for (ordinal, plan) in plans.iter().enumerate() {
            writer.segment(plan.first_index, plan.compaction, plan.records)?;
            self.copy_in_holds(
                plan.records,
                |state| &state.offsets[ordinal],
                |offsets| writer.offsets(offsets),
            )?;
            if plan.compaction > 0 {
                self.copy_in_holds(
                    plan.records,
                    |state| &state.indices[ordinal],
                    |indices| writer.indices(indices),
                )?;
            }
        }
        Ok(())
    }

    /// Hands the first `count` items of the state's vector `part` picks to `write`, copied out
    /// under the read lock [`OFFSETS_PER_HOLD`] at a time.
    fn copy_in_holds<T: Copy>(
        &self,
        count: usize,
        part: impl Fn(&State) -> &[T],
        mut write: impl FnMut(&[T]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut copied = Vec::with_capacity(OFFSETS_PER_HOLD.min(count));
        for from in (0..count).step_by(OFFSETS_PER_HOLD) {
            let to = (from + OFFSETS_PER_HOLD).min(count);
            copied.clear();
            self.under_read_lock(|state| copied.extend_from_slice(&part(state)[from..to]));
            write(&copied)?;
        }
        Ok(())
    }

    /// The primary table, a run of slots at a time (the keys shifted meanwhile follow).
    fn write_primary(
        &self,
        writer: &mut CheckpointWriter,
        cursor: &mut crate::index::primary::CaptureCursor,
    ) -> io::Result<()> {
        let mut run = Vec::with_capacity(SLOTS_PER_HOLD);
        loop {
            run.clear();
            let done = self.under_read_lock(|state| {
                state.primary.capture_some(cursor, SLOTS_PER_HOLD, &mut run)
            });
            writer.primary_run(&run)?;
            if done {
                return Ok(());
            }
        }
    }

    /// Each secondary index, in order, a run of entries at a time.
    fn write_secondary(&self, writer: &mut CheckpointWriter) -> io::Result<()> {
        let count = self.under_read_lock(|state| state.secondary.index_count());
        writer.secondary_indexes(count)?;
        let mut run: Vec<(InlineKey, u64)> = Vec::with_capacity(SECONDARY_ENTRIES_PER_HOLD);
        for index in 0..count {
            let mut after = None;
            loop {
                run.clear();
                let done = self.under_read_lock(|state| {
                    state
                        .secondary
                        .capture_some(index, after, SECONDARY_ENTRIES_PER_HOLD, &mut run)
                });
                after = run.last().copied();
                writer.secondary_run(&run)?;
                if done {
                    break;
                }
            }
            writer.end_runs()?;
        }
        Ok(())
    }
}
