//! The writer thread (group commit) and the segment preparer; this is also where the log's
//! threads are started (the checkpointer's work is in `checkpointer.rs`).
//!
//! The writer is the only thread that writes segments or changes the state. Per batch: take
//! queued appends as the [`BatchPolicy`] says, encode them behind each other, write them with one
//! call to the io backend (write + `fdatasync`), then, with the batch durable, apply it to the
//! indexes and acknowledge every append in it. A batch never ends inside an append group, and
//! a batch that does not fit the current segment is split at a group boundary; each part is its
//! own durable write. A group's last record carries `RECORD_FLAG_GROUP_END`, so recovery can
//! keep groups whole.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::append_queue::AppendQueue;
use super::checkpointer::Checkpointer;
use super::group_commit::{BatchDecision, BatchPolicy, OpenBatch};
use super::record::{self, Position, RecordHeader};
use super::segment::{self, SPARE_SUFFIX, Segment, prepare_spare, sync_dir};
use super::{AppendError, AppendRequest, Shared};
use crate::format::{RECORD_FLAG_GROUP_END, SEGMENT_HEADER_SIZE, record_size};
use crate::index::Location;
use crate::index::secondary::{SecondaryKey, SecondaryKeys};
use crate::io::IoBackend;

type Spare = io::Result<(fs::File, PathBuf)>;

/// The append queue and the log's threads, writer first.
/// The append queue, the threads (writer first) and a way to ask the checkpointer for a
/// checkpoint.
pub(super) type Started = (
    Arc<AppendQueue<AppendRequest>>,
    Vec<JoinHandle<()>>,
    crossbeam_channel::Sender<()>,
);

/// Starts the writer, preparer and checkpointer threads.
pub(super) fn start(
    shared: Arc<Shared>,
    backend: Box<dyn IoBackend>,
    extractor: Arc<dyn SecondaryKeys>,
) -> io::Result<Started> {
    let config = &shared.config;
    let queue = Arc::new(AppendQueue::new(config.appends_pending_max));
    // One spare segment ready at a time: enough to roll without waiting, little disk held.
    let (spare_sender, spares) = bounded(1);
    // One checkpoint request pending at most; more while one is written are redundant.
    let (checkpoint_sender, checkpoint_requests) = bounded(1);
    // The preparer's thread id, once it runs: a writer that has to wait for a spare raises
    // the preparer's I/O priority.
    let preparer_tid = Arc::new(AtomicI32::new(0));
    let preparer = {
        let dir = config.dir.clone();
        let size = config.segment_size;
        let preparer_tid = Arc::clone(&preparer_tid);
        thread::Builder::new()
            .name("spine-log-prepare".into())
            .spawn(move || prepare_spares(dir, size, spare_sender, &preparer_tid))?
    };
    let checkpointer = {
        let checkpointer = Checkpointer::new(Arc::clone(&shared));
        thread::Builder::new()
            .name("spine-log-checkpoint".into())
            .spawn(move || checkpointer.run(checkpoint_requests))?
    };
    let (next_index, write_offset, current) = {
        let state = shared.state.read();
        // A compacted segment is never written to: one left last (its successor was prepared
        // but never written) is followed by a new segment at the first batch.
        let current = state
            .last_segment()
            .map(|ordinal| (ordinal, Arc::clone(&state.segments[ordinal as usize])))
            .filter(|(_, segment)| !segment.compacted());
        (state.last.index + 1, state.write_offset, current)
    };
    let writer = Writer {
        policy: config.batch_policy(),
        last_checkpoint_index: next_index - 1,
        shared,
        backend,
        extractor,
        queue: Arc::clone(&queue),
        spares,
        preparer_tid,
        checkpoints: checkpoint_sender.clone(),
        buffer: Vec::new(),
        scratch: Vec::new(),
        run: Vec::new(),
        current,
        header_pending: false,
        write_offset,
        next_index,
        carry: None,
        previous_records: 0,
        missed_previous: 0,
    };
    let writer = thread::Builder::new()
        .name("spine-log-writer".into())
        .spawn(move || writer.run())?;
    queue.set_writer(writer.thread().clone());
    Ok((
        queue,
        vec![writer, preparer, checkpointer],
        checkpoint_sender,
    ))
}

/// Niceness of the checkpointer: replaying records and encoding a checkpoint is CPU work that, on
/// a small machine, competes for the cores with the writer and the appenders, and a writer that
/// loses its core for a scheduler tick delays a whole batch. (The preparer keeps its CPU
/// priority: it is mostly I/O, which it does at idle I/O priority until the writer waits for it;
/// see [`set_io_priority`].)
const BACKGROUND_NICENESS: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux applies niceness per thread). Failure
/// only costs latency, so it is logged, not returned.
pub(super) fn lower_priority_of_this_thread() {
    // SAFETY: `gettid` and `setpriority` take and return plain integers and touch no memory of
    // ours.
    let result = unsafe {
        let thread_id = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            thread_id as libc::id_t,
            BACKGROUND_NICENESS,
        )
    };
    if result != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "could not lower a background thread's priority");
    }
}

/// A thread's I/O priority class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IoPriority {
    /// Served only when no other I/O waits (where the disk's scheduler knows priorities; it
    /// may wait seconds under a steady load).
    Idle,
    /// The default: best effort, level 4.
    Normal,
}

/// Sets the I/O priority of thread `tid` (0: the calling thread). Failure only costs latency,
/// so it is logged, not returned.
fn set_io_priority(tid: libc::pid_t, priority: IoPriority) {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    const IOPRIO_CLASS_BE: libc::c_long = 2;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    let value = match priority {
        IoPriority::Idle => IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT,
        IoPriority::Normal => IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT | 4,
    };
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let result = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            libc::c_long::from(tid),
            value,
        )
    };
    if result != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), ?priority, "could not set a thread's I/O priority");
    }
}

/// Keeps one zero-filled spare segment ready until the writer goes away. Each spare starts at
/// idle I/O priority, so the log's flushes go first; a writer that finds no spare ready raises
/// it (a steady load could otherwise keep an idle preparer waiting for seconds).
fn prepare_spares(dir: PathBuf, size: u64, spares: Sender<Spare>, tid: &AtomicI32) {
    // SAFETY: gettid has no preconditions.
    tid.store(unsafe { libc::gettid() }, Ordering::Release);
    for number in 0u64.. {
        set_io_priority(0, IoPriority::Idle);
        let path = dir.join(format!("{number}{SPARE_SUFFIX}"));
        let spare = prepare_spare(&path, size).map(|file| (file, path.clone()));
        let failed = spare.is_err();
        if failed {
            // Do not leave a partial file behind (for example after ENOSPC).
            let _ = fs::remove_file(&path);
        }
        if spares.send(spare).is_err() {
            let _ = fs::remove_file(&path);
            return;
        }
        if failed {
            return;
        }
    }
}

struct Writer {
    shared: Arc<Shared>,
    backend: Box<dyn IoBackend>,
    extractor: Arc<dyn SecondaryKeys>,
    queue: Arc<AppendQueue<AppendRequest>>,
    spares: Receiver<Spare>,
    /// The preparer's thread id (0 until it runs).
    preparer_tid: Arc<AtomicI32>,
    checkpoints: Sender<()>,
    policy: BatchPolicy,
    /// The encoded bytes of the write in progress.
    buffer: Vec<u8>,
    scratch: Vec<SecondaryKey>,
    /// The appends of the write in progress with their headers and offsets.
    run: Vec<(AppendRequest, RecordHeader, u32)>,
    /// Ordinal and handle of the segment being written.
    current: Option<(u32, Arc<Segment>)>,
    /// The current segment is new: its header goes out with its first write.
    header_pending: bool,
    write_offset: usize,
    next_index: u64,
    /// An append taken from the queue that did not fit the previous batch.
    carry: Option<AppendRequest>,
    previous_records: usize,
    /// Appends queued when the previous batch was acknowledged: they missed it. Counted before
    /// the acknowledgements go out, so that no appender of that batch is counted twice.
    missed_previous: usize,
    last_checkpoint_index: u64,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.policy.batch_records_max.min(1 << 16));
        let shared = Arc::clone(&self.shared);
        while self.collect(&mut batch) {
            self.previous_records = batch.len();
            // A backup reading where the log ends waits for this batch to be durable and
            // indexed, and holds the next one until it has read (`Log::hold_writes`).
            let _held = shared.writes.lock();
            self.commit(&mut batch);
            assert!(batch.is_empty());
        }
    }

    /// Fills `batch` as the policy says, ending it only at the end of an append group; `false`
    /// when the queue is closed and drained.
    fn collect(&mut self, batch: &mut Vec<AppendRequest>) -> bool {
        let first = match self.carry.take() {
            Some(request) => request,
            None => loop {
                if let Some(request) = self.queue.pop() {
                    break request;
                }
                if self.queue.is_closed() {
                    return false;
                }
                self.queue.wait(1, None);
            },
        };
        let mut open = OpenBatch {
            opened_at: Instant::now(),
            bytes: record_size(first.record.payload.len()),
            records: 1,
            expected_records: self.previous_records + self.missed_previous,
        };
        batch.push(first);
        loop {
            let inside_group = batch.last().is_some_and(|last| !last.ends_group);
            if inside_group {
                // The rest of the group is being pushed right now (under the push lock): take
                // it whatever the policy says, so the batch ends on a group boundary.
                if let Some(next) = self.queue.pop() {
                    open.bytes += record_size(next.record.payload.len());
                    open.records += 1;
                    batch.push(next);
                } else if self.queue.is_closed() {
                    // Closed while the group was pushed: the group is incomplete and its
                    // appender was told the log is closed. None of it is written.
                    drop_incomplete_group(batch);
                    return !batch.is_empty();
                } else {
                    self.queue.wait(1, None);
                }
                continue;
            }
            let decision = self
                .policy
                .decide(&open, Instant::now(), self.queue.len() == 0);
            if let BatchDecision::WaitUntil(deadline) = decision {
                if self.queue.is_closed() {
                    return true;
                }
                self.queue
                    .wait(open.expected_records - open.records, Some(deadline));
            }
            if decision == BatchDecision::Close {
                return true;
            }
            let Some(next) = self.queue.pop() else {
                continue;
            };
            let size = record_size(next.record.payload.len());
            if open.bytes + size > self.policy.batch_bytes_max {
                self.carry = Some(next);
                return true;
            }
            open.bytes += size;
            open.records += 1;
            batch.push(next);
        }
    }

    /// Makes `batch` durable (in as many writes as segment boundaries need) and answers it. A
    /// segment boundary splits the batch only between append groups.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    fn commit(&mut self, batch: &mut Vec<AppendRequest>) {
        let segment_size = self.shared.config.segment_size as usize;
        // Reversed, `pop` takes the requests in queue order and the next group is at the end.
        batch.reverse();
        while !batch.is_empty() {
            if let Some(cause) = self.shared.failure() {
                batch
                    .drain(..)
                    .for_each(|request| reply_failed(request, &cause));
                return;
            }
            let first_group = next_group_bytes(batch);
            if (self.current.is_none() || self.write_offset + first_group > segment_size)
                && let Err(error) = self.roll()
            {
                let cause = Arc::new(error);
                self.shared.fail_stop(Arc::clone(&cause));
                batch
                    .drain(..)
                    .for_each(|request| reply_failed(request, &cause));
                return;
            }
            let (ordinal, segment) = self
                .current
                .clone()
                .expect("a segment is open after rolling");
            self.buffer.clear();
            let write_at = if self.header_pending {
                self.buffer
                    .extend_from_slice(&record::encode_segment_header(
                        self.next_index,
                        segment_size as u64,
                    ));
                0
            } else {
                self.write_offset
            };
            let batch_first_index = self.next_index;
            let mut offset = self.write_offset;
            while !batch.is_empty() && offset + next_group_bytes(batch) <= segment_size {
                loop {
                    let request = batch.pop().expect("a group's records are all in the batch");
                    let ends_group = request.ends_group;
                    let group_end = if ends_group { RECORD_FLAG_GROUP_END } else { 0 };
                    let header = RecordHeader {
                        payload_len: request.record.payload.len() as u32,
                        position: Position {
                            term: self.shared.config.term,
                            index: self.next_index,
                        },
                        key: request.record.key.map_or(0, |key| key.get()),
                        kind: request.record.kind,
                        flags: request.record.flags() | group_end,
                        batch_offset: (self.next_index - batch_first_index) as u32,
                    };
                    record::encode(&mut self.buffer, &header, &request.record.payload);
                    self.run.push((request, header, offset as u32));
                    offset += header.record_size();
                    self.next_index += 1;
                    if ends_group {
                        break;
                    }
                }
            }
            assert_eq!(
                write_at + self.buffer.len(),
                offset,
                "the write covers exactly its records"
            );
            let padding = page_padding(offset, segment_size);
            self.buffer.resize(self.buffer.len() + padding, 0);
            self.write_run(ordinal, &segment, write_at, offset);
        }
    }

    /// Writes the encoded run durably, then publishes and acknowledges it, or fails it.
    fn write_run(&mut self, ordinal: u32, segment: &Segment, write_at: usize, end: usize) {
        assert!(!self.run.is_empty(), "a write carries at least one record");
        let started = Instant::now();
        let written = self
            .backend
            .write_durable(&segment.file, write_at as u64, &self.buffer);
        let durable_at = Instant::now();
        let counters = &self.shared.counters;
        counters
            .flush_nanos
            .fetch_add((durable_at - started).as_nanos() as u64, Ordering::Relaxed);
        if let Err(error) = written {
            let cause = Arc::new(error);
            self.shared.fail_stop(Arc::clone(&cause));
            self.run
                .drain(..)
                .for_each(|(request, _, _)| reply_failed(request, &cause));
            return;
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .records
            .fetch_add(self.run.len() as u64, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add((end - write_at) as u64, Ordering::Relaxed);
        let joins_state = std::mem::take(&mut self.header_pending);
        self.write_offset = end;
        let published = {
            let mut state = self.shared.state.write();
            if joins_state {
                state.push_segment(Arc::clone(
                    &self.current.as_ref().expect("a segment is being written").1,
                ));
            }
            self.run.iter().try_for_each(|(request, header, offset)| {
                let location = Location {
                    segment: ordinal,
                    offset: *offset,
                };
                state.apply(
                    self.extractor.as_ref(),
                    &mut self.scratch,
                    location,
                    header,
                    &request.record.payload,
                )
            })
        };
        if let Err(error) = published {
            // The batch is durable but the indexes could not follow it: stop rather than serve
            // an index that disagrees with the log. Reopening rebuilds the indexes.
            let cause = Arc::new(io::Error::other(error.to_string()));
            self.shared.fail_stop(Arc::clone(&cause));
            self.run
                .drain(..)
                .for_each(|(request, _, _)| reply_failed(request, &cause));
            return;
        }
        {
            let mut latencies = self.shared.latencies.lock();
            latencies.record_flush(durable_at - started);
            for (request, _, _) in &self.run {
                latencies.record_commit(durable_at.saturating_duration_since(request.queued_at));
            }
        }
        self.missed_previous = self.queue.len() + usize::from(self.carry.is_some());
        for (request, header, _) in self.run.drain(..) {
            if let Some(reply) = request.reply {
                let _ = reply.send(Ok(header.position));
            }
        }
        self.request_checkpoint_if_due();
    }

    fn request_checkpoint_if_due(&mut self) {
        let interval = self.shared.config.checkpoint_interval_records;
        let durable = self.next_index - 1;
        if interval > 0
            && durable - self.last_checkpoint_index >= interval
            && self.checkpoints.try_send(()).is_ok()
        {
            self.last_checkpoint_index = durable;
        }
    }

    /// Starts a new segment from the prepared spare: rename it to its final name and make the
    /// rename durable. Its header is written with its first batch, and only then does the
    /// segment join the shared state: a checkpoint must never list a segment that recovery
    /// would find unwritten (and remove).
    fn roll(&mut self) -> io::Result<()> {
        let ready = match self.spares.try_recv() {
            Ok(spare) => Ok(spare),
            Err(_) => {
                // Not ready: the preparer must not wait behind the log's own writes any more.
                let tid = self.preparer_tid.load(Ordering::Acquire);
                if tid != 0 {
                    set_io_priority(tid, IoPriority::Normal);
                }
                self.spares.recv()
            }
        };
        let (file, spare_path) = match ready {
            Ok(spare) => spare?,
            Err(_) => {
                return Err(io::Error::other(
                    "segment preparer stopped after an earlier failure",
                ));
            }
        };
        let dir = &self.shared.config.dir;
        let path = dir.join(segment::segment_file_name(self.next_index));
        fs::rename(&spare_path, &path)?;
        crate::io::reached(
            self.shared.config.simulated_disk.as_ref(),
            crate::io::Reached::SegmentRenamed {
                from: &spare_path,
                to: &path,
            },
        )?;
        sync_dir(dir)?;
        let segment = Arc::new(Segment::from_file(
            file,
            path,
            self.next_index,
            self.shared.config.segment_size,
        )?);
        let ordinal = self.shared.state.read().segments.len() as u32;
        self.current = Some((ordinal, segment));
        self.header_pending = true;
        self.write_offset = SEGMENT_HEADER_SIZE;
        Ok(())
    }
}

/// Page size the writes are padded to: the page cache's unit on the machines the log runs on.
const PAGE_BYTES: usize = 4096;

/// Zeros to append to a write that ends at `end` so that it ends on a page boundary (or at the
/// segment's end).
///
/// Why: a write that ends inside a page the page cache does not hold makes the kernel read that
/// page from the disk before copying into it, and a spare segment's zeros go to the disk with
/// `O_DIRECT`, so none of its pages are cached. Unpadded, every batch waited for one read on
/// its commit path (2,300 reads a second at 70,000 operations a second). Padded, each page after
/// a write's first is written whole, and its first is the previous write's last, which the page
/// cache holds. The bytes past the log's end are zeros already, so the padding changes nothing
/// on disk, and nothing below the write offset is rewritten.
fn page_padding(end: usize, segment_size: usize) -> usize {
    let page_end = end.next_multiple_of(PAGE_BYTES).min(segment_size);
    page_end.saturating_sub(end)
}

/// Encoded bytes of the next append group of a reversed batch (its records are at the end).
fn next_group_bytes(reversed: &[AppendRequest]) -> usize {
    let mut bytes = 0;
    for request in reversed.iter().rev() {
        bytes += record_size(request.record.payload.len());
        if request.ends_group {
            return bytes;
        }
    }
    panic!("a batch holds whole append groups only");
}

/// Removes the records after the batch's last complete append group: their group was cut short
/// when the log closed, so none of them may be written.
fn drop_incomplete_group(batch: &mut Vec<AppendRequest>) {
    let whole = batch
        .iter()
        .rposition(|request| request.ends_group)
        .map_or(0, |last| last + 1);
    batch.truncate(whole);
}

fn reply_failed(request: AppendRequest, cause: &Arc<io::Error>) {
    let Some(reply) = request.reply else {
        return;
    };
    let _ = reply.send(Err(AppendError::FailStop {
        cause: Arc::clone(cause),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_padded_to_the_next_page_boundary() {
        const SEGMENT: usize = 64 * PAGE_BYTES;
        assert_eq!(page_padding(3 * PAGE_BYTES + 10, SEGMENT), PAGE_BYTES - 10);
        assert_eq!(page_padding(PAGE_BYTES - 1, SEGMENT), 1);
        assert_eq!(
            page_padding(2 * PAGE_BYTES, SEGMENT),
            0,
            "already on a boundary"
        );
    }

    #[test]
    fn padding_never_passes_the_segment_end() {
        let segment = 10 * PAGE_BYTES + 100;
        assert_eq!(page_padding(10 * PAGE_BYTES + 40, segment), 60);
        assert_eq!(page_padding(segment, segment), 0);
    }
}
