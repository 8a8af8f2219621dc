//! Opening a log: find the segments, load the newest checkpoint, verify every record after it,
//! and cut off a torn tail.
//!
//! [`scan_segment`] is pure (bytes in, verdict out) and holds the crash-case reasoning of
//! `FORMAT.md`: the writer writes one batch at a time, and starts the next only after the
//! previous one is durable, so only the last batch of the last segment can be torn. When a
//! record is invalid, the rest of the segment is searched for valid records: one that belongs to
//! a *later* batch proves the invalid record was durable (acknowledged) before, so the log is
//! corrupt and refuses to open; otherwise the invalid record starts a torn tail, which is zeroed.
//!
//! Records are kept in whole append groups (one engine turn each): a record counts only once
//! the group's last record (`RECORD_FLAG_GROUP_END`) has been verified, and a torn tail is cut
//! from the first record of the group it falls in, so a crash never leaves half a turn behind.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{self, Invalid, InvalidSegmentHeader, RecordHeader, SegmentHeader};
use super::segment::{self, Segment, sync_dir};
use super::state::State;
use super::{LogConfig, OpenError, ReadError, RecoveryReport, TornTail};
use crate::format::{RECORD_ALIGNMENT, RECORD_FLAG_GROUP_END, SEGMENT_HEADER_SIZE};
use crate::index::Location;
use crate::index::checkpoint::{self, Checkpoint};
use crate::index::primary::PrimaryIndex;
use crate::index::secondary::{SecondaryIndexes, SecondaryKey, SecondaryKeys};
use crate::io::BackendKind;

/// How a segment's records end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentEnd {
    /// The records end at `end`; everything after is zero.
    Clean { end: usize },
    /// The last, torn batch: its append group that starts at `at` is incomplete (a record of
    /// it is invalid, or its last record is missing); bytes `at..nonzero_end` must be zeroed.
    /// `records_cut` valid records of that group are discarded with it.
    Torn {
        at: usize,
        nonzero_end: usize,
        records_cut: u64,
        reason: &'static str,
    },
}

/// Why a torn tail whose records were all valid was cut: its group's last record is missing.
const UNFINISHED_GROUP: &str = "append group without its last record";

/// A record before the tail is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Corruption {
    pub(crate) offset: usize,
    pub(crate) reason: &'static str,
}

/// Verifies the records of one segment from `start`, expecting the first to have index
/// `next_index`, and calls `on_record(offset, header, payload)` for each valid one in order,
/// a whole append group at a time (records of a group cut short are never passed on).
/// `start` must be a group boundary. `is_last` says whether this is the log's last segment,
/// the only one that may be torn.
pub(crate) fn scan_segment<E>(
    bytes: &[u8],
    start: usize,
    mut next_index: u64,
    payload_max: u32,
    is_last: bool,
    mut on_record: impl FnMut(usize, &RecordHeader, &[u8]) -> Result<(), E>,
) -> Result<Result<SegmentEnd, Corruption>, E> {
    assert!(start >= SEGMENT_HEADER_SIZE && start.is_multiple_of(RECORD_ALIGNMENT));
    let mut offset = start;
    // The records of the group being read, passed on once its last record is verified.
    let mut group: Vec<(usize, RecordHeader)> = Vec::new();
    let mut group_start = start;
    let invalid = loop {
        if offset >= bytes.len() {
            break None;
        }
        match record::decode(&bytes[offset..], payload_max) {
            Ok(header) if header.position.index == next_index => {
                group.push((offset, header));
                offset += header.record_size();
                next_index += 1;
                if header.flags & RECORD_FLAG_GROUP_END != 0 {
                    for (at, header) in group.drain(..) {
                        on_record(at, &header, record::payload(&bytes[at..], &header))?;
                    }
                    group_start = offset;
                }
            }
            Ok(_) => break Some(Invalid::BadHeader),
            Err(invalid) => break Some(invalid),
        }
    };
    let torn = |nonzero_end: usize, reason| {
        Ok(Ok(SegmentEnd::Torn {
            at: group_start,
            nonzero_end: nonzero_end.max(offset),
            records_cut: group.len() as u64,
            reason,
        }))
    };
    let Some(invalid) = invalid else {
        // The segment is full to its last byte.
        return match (group.is_empty(), is_last) {
            (true, _) => Ok(Ok(SegmentEnd::Clean { end: offset })),
            (false, true) => torn(offset, UNFINISHED_GROUP),
            (false, false) => Ok(Err(Corruption {
                offset: group_start,
                reason: "segment ends inside an append group",
            })),
        };
    };
    let tail = analyse_tail(bytes, offset, next_index, payload_max);
    let corrupt = |reason| Ok(Err(Corruption { offset, reason }));
    if tail.later_batch {
        return corrupt(match invalid {
            Invalid::Zeroed => "zeroed record followed by later durable records",
            other => other.describe(),
        });
    }
    let unwritten_after = invalid == Invalid::Zeroed && tail.nonzero_end <= offset;
    match (unwritten_after, group.is_empty(), is_last) {
        (true, true, _) => Ok(Ok(SegmentEnd::Clean { end: offset })),
        (true, false, true) => torn(tail.nonzero_end, UNFINISHED_GROUP),
        (true, false, false) => Ok(Err(Corruption {
            offset: group_start,
            reason: "segment ends inside an append group",
        })),
        (false, _, true) => torn(tail.nonzero_end, invalid.describe()),
        (false, _, false) if invalid == Invalid::Zeroed => {
            corrupt("unexpected bytes after the end of a full segment")
        }
        (false, _, false) => corrupt(invalid.describe()),
    }
}

struct Tail {
    /// A valid record of a batch that started after the invalid record exists.
    later_batch: bool,
    /// End of the last non-zero 8-byte word at or after the invalid record.
    nonzero_end: usize,
}

/// Searches the bytes after an invalid record at `at` (which should have had index
/// `next_index`) for valid records.
fn analyse_tail(bytes: &[u8], at: usize, next_index: u64, payload_max: u32) -> Tail {
    let mut tail = Tail {
        later_batch: false,
        nonzero_end: at,
    };
    let mut position = at;
    while position + RECORD_ALIGNMENT <= bytes.len() {
        let word = &bytes[position..position + RECORD_ALIGNMENT];
        if word.iter().all(|&b| b == 0) {
            position += RECORD_ALIGNMENT;
            continue;
        }
        tail.nonzero_end = tail.nonzero_end.max(position + RECORD_ALIGNMENT);
        if position > at
            && let Ok(header) = record::decode(&bytes[position..], payload_max)
            && header.position.index >= next_index
        {
            let batch_first_index = header.position.index - u64::from(header.batch_offset);
            if batch_first_index > next_index {
                tail.later_batch = true;
                return tail;
            }
            // A surviving record of the torn batch itself.
            tail.nonzero_end = tail.nonzero_end.max(position + header.record_size());
            position += header.record_size();
            continue;
        }
        position += RECORD_ALIGNMENT;
    }
    tail
}

/// Whether opening may change the log's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Opening for service: cut a torn tail (zeroing it), remove spares, temporary checkpoints
    /// and a prepared segment never written, restore a short last segment's size.
    Repair,
    /// Verification: write nothing (the files may be a read-only copy); what `Repair` would
    /// change is only reported (a torn tail in `RecoveryReport::torn_tail`).
    ReadOnly,
}

/// The state and report that opening produced.
pub(crate) struct Recovered {
    pub(crate) state: State,
    pub(crate) report: RecoveryReport,
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(segment: &Path, offset: u64, reason: &'static str) -> OpenError {
    OpenError::Corrupt {
        segment: segment.to_path_buf(),
        offset,
        reason,
    }
}

/// A segment file found in the log's directory.
struct SegmentFile {
    first_index: u64,
    path: PathBuf,
    compacted: bool,
}

/// Segment files in `dir`, oldest first. Where a compaction committed a compacted segment
/// (`N.cseg`), it is the segment and the full one it replaced (`N.seg`, left by a crash before
/// its removal) is not: in `Repair` mode that file is removed.
fn list_segments(dir: &Path, mode: Mode) -> Result<Vec<SegmentFile>, OpenError> {
    let mut full = std::collections::BTreeMap::new();
    let mut compacted = std::collections::BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(first_index) = segment::parse_segment_file_name(&name) {
            full.insert(first_index, entry.path());
        } else if let Some(first_index) = segment::parse_compacted_file_name(&name) {
            compacted.insert(first_index, entry.path());
        }
    }
    let mut replaced = false;
    for first_index in compacted.keys() {
        if let Some(path) = full.remove(first_index)
            && mode == Mode::Repair
        {
            tracing::info!(path = %path.display(), "removing a segment a compaction replaced");
            fs::remove_file(&path).map_err(io_error(&path))?;
            replaced = true;
        }
    }
    if replaced {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    let mut found: Vec<SegmentFile> = full
        .into_iter()
        .map(|(first_index, path)| SegmentFile {
            first_index,
            path,
            compacted: false,
        })
        .chain(
            compacted
                .into_iter()
                .map(|(first_index, path)| SegmentFile {
                    first_index,
                    path,
                    compacted: true,
                }),
        )
        .collect();
    found.sort_by_key(|file| file.first_index);
    Ok(found)
}

/// Opens and checks one segment file's header and size. `Ok(None)`: the file is the last one
/// and was prepared but never written (zeroed header); it has been removed.
fn open_segment(
    first_index: u64,
    path: PathBuf,
    is_last: bool,
    mode: Mode,
) -> Result<Option<Segment>, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(mode == Mode::Repair)
        .open(&path)
        .map_err(io_error(&path))?;
    let (decoded, length) = read_segment_header(&file, &path)?;
    let header = match decoded {
        Ok(header) => header,
        Err(InvalidSegmentHeader::Zeroed) if is_last => {
            if mode == Mode::Repair {
                tracing::info!(path = %path.display(), "removing a prepared segment that was never written");
                fs::remove_file(&path).map_err(io_error(&path))?;
            }
            return Ok(None);
        }
        Err(InvalidSegmentHeader::Zeroed) => {
            return Err(corrupt(&path, 0, "segment header is zeroed"));
        }
        Err(InvalidSegmentHeader::Corrupt) => {
            return Err(corrupt(&path, 0, "segment header is damaged"));
        }
        Err(InvalidSegmentHeader::UnsupportedVersion(_)) => {
            return Err(corrupt(
                &path,
                0,
                "segment written by an unsupported format version",
            ));
        }
    };
    check_name(&header, first_index, false, &path)?;
    if length != header.segment_size {
        if !is_last || length > header.segment_size {
            return Err(corrupt(&path, length, "segment file has the wrong size"));
        }
        if mode == Mode::ReadOnly {
            // Scanned as it is: the records end before the file does, a torn tail.
            return Segment::from_file(file, path.clone(), first_index, length)
                .map(Some)
                .map_err(io_error(&path));
        }
        // Truncated last segment: restore its size with zeros; the scan then finds the cut
        // record and treats it as a torn tail.
        tracing::warn!(path = %path.display(), length, "last segment is short; extending it");
        file.set_len(header.segment_size).map_err(io_error(&path))?;
        file.sync_all().map_err(io_error(&path))?;
    }
    Segment::from_file(file, path.clone(), first_index, header.segment_size)
        .map(Some)
        .map_err(io_error(&path))
}

/// Reads the header of the segment file at `path`, and the file's length.
fn read_segment_header(
    file: &File,
    path: &Path,
) -> Result<(Result<SegmentHeader, InvalidSegmentHeader>, u64), OpenError> {
    let length = file.metadata().map_err(io_error(path))?.len();
    if length < SEGMENT_HEADER_SIZE as u64 {
        return Err(corrupt(
            path,
            length,
            "segment file is shorter than its header",
        ));
    }
    let mut head = [0u8; SEGMENT_HEADER_SIZE];
    file.read_exact_at(&mut head, 0).map_err(io_error(path))?;
    Ok((record::decode_segment_header(&head), length))
}

/// Checks that a segment's header agrees with its file name: the first index, and whether it
/// was compacted (`N.cseg`) or not (`N.seg`).
fn check_name(
    header: &SegmentHeader,
    first_index: u64,
    named_compacted: bool,
    path: &Path,
) -> Result<(), OpenError> {
    if header.first_index != first_index {
        return Err(corrupt(
            path,
            0,
            "segment header disagrees with the file name",
        ));
    }
    match (named_compacted, header.compaction != 0) {
        (false, true) => Err(corrupt(path, 0, "a compacted segment named as a full one")),
        (true, false) => Err(corrupt(path, 0, "a full segment named as a compacted one")),
        _ => Ok(()),
    }
}

/// Opens a compacted segment: written whole and synced before it was named, it is never torn,
/// so any fault in it is corruption (and it is never changed, even in `Repair` mode).
fn open_compacted(first_index: u64, path: PathBuf) -> Result<Segment, OpenError> {
    let file = File::open(&path).map_err(io_error(&path))?;
    let (decoded, length) = read_segment_header(&file, &path)?;
    let header = decoded.map_err(|_| corrupt(&path, 0, "compacted segment header is damaged"))?;
    check_name(&header, first_index, true, &path)?;
    if length != header.segment_size {
        return Err(corrupt(
            &path,
            length,
            "compacted segment has the wrong size",
        ));
    }
    Segment::from_file(file, path.clone(), first_index, length)
        .map(|segment| segment.into_compacted(header.compaction))
        .map_err(io_error(&path))
}

/// Verifies the records of a compacted segment, each one's index above the one before and the
/// first at or above `next_index`, and calls `on_record(offset, header, payload)` for each.
/// The records fill the file exactly and the last ends an append group (compaction keeps each
/// segment's last record).
fn scan_compacted<E>(
    bytes: &[u8],
    next_index: u64,
    payload_max: u32,
    mut on_record: impl FnMut(usize, &RecordHeader, &[u8]) -> Result<(), E>,
) -> Result<Result<(), Corruption>, E> {
    let mut offset = SEGMENT_HEADER_SIZE;
    let mut expected = next_index;
    let mut ends_group = false;
    while offset < bytes.len() {
        let header = match record::decode(&bytes[offset..], payload_max) {
            Ok(header) if header.position.index >= expected => header,
            Ok(_) => {
                return Ok(Err(Corruption {
                    offset,
                    reason: "compacted segment's indices do not rise",
                }));
            }
            Err(invalid) => {
                return Ok(Err(Corruption {
                    offset,
                    reason: invalid.describe(),
                }));
            }
        };
        on_record(offset, &header, record::payload(&bytes[offset..], &header))?;
        offset += header.record_size();
        expected = header.position.index + 1;
        ends_group = header.flags & RECORD_FLAG_GROUP_END != 0;
    }
    if !ends_group {
        return Ok(Err(Corruption {
            offset,
            reason: "compacted segment does not end with an append group's last record",
        }));
    }
    Ok(Ok(()))
}

/// Applies `checkpoint` to `state` if it matches the segments; `Ok(false)` if it does not.
pub(super) fn apply_checkpoint(
    dir: &Path,
    checkpoint: Checkpoint,
    segments: &[Arc<Segment>],
    state: &mut State,
) -> Result<bool, OpenError> {
    let mut expected_first = 1;
    for (ordinal, part) in checkpoint.segments.iter().enumerate() {
        let on_disk = segments.get(ordinal).map(|s| s.first_index);
        if on_disk != Some(part.first_index) {
            if segments.iter().all(|s| s.first_index != part.first_index) {
                return Err(OpenError::SegmentMissing {
                    dir: dir.to_path_buf(),
                    first_index: part.first_index,
                });
            }
            return Ok(false);
        }
        let size = segments[ordinal].size();
        if part.first_index != expected_first
            || part.offsets.last().is_some_and(|&o| o as usize >= size)
            || part.compaction != segments[ordinal].compaction
        {
            // A segment compacted (again) after the checkpoint was written: its offsets
            // changed, so the log is scanned.
            return Ok(false);
        }
        expected_first = part.last_index() + 1;
    }
    if checkpoint.secondary.index_count() != state.secondary.index_count()
        || checkpoint.write_offset as usize > segments[checkpoint.segments.len() - 1].size()
    {
        return Ok(false);
    }
    state.replaying_fuzzy = checkpoint.fuzzy;
    for (segment, part) in segments.iter().zip(checkpoint.segments) {
        state.segments.push(Arc::clone(segment));
        state.offsets.push(part.offsets);
        state.indices.push(part.indices.unwrap_or_default());
        state.superseded.push(0);
    }
    state.primary = checkpoint.primary;
    state.secondary = checkpoint.secondary;
    state.last = checkpoint.last;
    state.write_offset = checkpoint.write_offset as usize;
    Ok(true)
}

/// Recovers the log in `config.dir`.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub(crate) fn recover(
    config: &LogConfig,
    extractor: &dyn SecondaryKeys,
    mode: Mode,
) -> Result<Recovered, OpenError> {
    let dir = &config.dir;
    if mode == Mode::Repair {
        segment::remove_spares(dir).map_err(io_error(dir))?;
        checkpoint::remove_temporaries(dir).map_err(io_error(dir))?;
    }
    let files = list_segments(dir, mode)?;
    let mut segments = Vec::with_capacity(files.len());
    let file_count = files.len();
    for (ordinal, found) in files.into_iter().enumerate() {
        let is_last = ordinal + 1 == file_count;
        let opened = if found.compacted {
            open_compacted(found.first_index, found.path).map(Some)?
        } else {
            open_segment(found.first_index, found.path, is_last, mode)?
        };
        if let Some(segment) = opened {
            segments.push(Arc::new(segment));
        }
    }
    if segments.len() < file_count && mode == Mode::Repair {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    let mut state = State::new(
        PrimaryIndex::with_capacity(config.expected_keys),
        SecondaryIndexes::new(extractor.index_count()),
        config.payload_bytes_max,
    );
    let mut checkpoint_path = None;
    if config.use_checkpoint
        && let Some((path, checkpoint)) = checkpoint::load_latest(dir).map_err(io_error(dir))?
    {
        if apply_checkpoint(dir, checkpoint, &segments, &mut state)? {
            checkpoint_path = Some(path);
        } else {
            tracing::warn!(path = %path.display(), "checkpoint does not match the segments; scanning everything");
        }
    }
    let mut report = RecoveryReport {
        backend: BackendKind::Portable,
        segments: segments.len(),
        records: 0,
        records_scanned: 0,
        bytes_scanned: 0,
        checkpoint: checkpoint_path,
        torn_tail: None,
        duration: std::time::Duration::ZERO,
    };
    let first_to_scan = state.segments.len().saturating_sub(1);
    let mut scratch = Vec::new();
    for (ordinal, segment) in segments.iter().enumerate().skip(first_to_scan) {
        let resuming = ordinal < state.segments.len();
        if !resuming {
            let expected = state.last.index + 1;
            if segment.first_index > expected {
                return Err(OpenError::SegmentMissing {
                    dir: dir.clone(),
                    first_index: expected,
                });
            }
            if segment.first_index < expected {
                return Err(corrupt(
                    &segment.path,
                    0,
                    "segment overlaps the previous one",
                ));
            }
            state.push_segment(Arc::clone(segment));
        }
        if segment.compacted() {
            // Covered by the checkpoint, or scanned whole here: nothing is ever appended to it.
            if !resuming {
                let scanned = replay_compacted(&mut state, extractor, &mut Vec::new(), segment)?
                    .map_err(|corruption| {
                        corrupt(&segment.path, corruption.offset as u64, corruption.reason)
                    })?;
                report.records_scanned += scanned.0;
                report.bytes_scanned += scanned.1;
            }
            continue;
        }
        let is_last = ordinal + 1 == segments.len();
        let start = state.write_offset;
        segment.will_read(start, segment.size());
        let bytes = segment.bytes_for_recovery();
        let outcome = scan_segment(
            bytes,
            start,
            state.last.index + 1,
            config.payload_bytes_max,
            is_last,
            |offset, header, payload| {
                report.records_scanned += 1;
                report.bytes_scanned += header.record_size() as u64;
                let location = Location {
                    segment: ordinal as u32,
                    offset: offset as u32,
                };
                state.apply(extractor, &mut scratch, location, header, payload)
            },
        )
        .map_err(OpenError::from)?;
        match outcome {
            Err(corruption) => {
                return Err(corrupt(
                    &segment.path,
                    corruption.offset as u64,
                    corruption.reason,
                ));
            }
            Ok(SegmentEnd::Clean { .. }) => {}
            Ok(SegmentEnd::Torn {
                at,
                nonzero_end,
                records_cut,
                reason,
            }) => {
                let torn = TornTail {
                    segment: segment.path.clone(),
                    offset: at as u64,
                    bytes_discarded: nonzero_end.saturating_sub(at) as u64,
                    valid_records_discarded: records_cut,
                    reason,
                };
                if mode == Mode::Repair {
                    zero_torn_tail(segment, &torn)?;
                }
                report.torn_tail = Some(torn);
            }
        }
    }
    state.replaying_fuzzy = false;
    report.records = state.last.index;
    Ok(Recovered { state, report })
}

/// Verifies the compacted segment just pushed as `state`'s last and indexes its records, for
/// recovery; returns how many records and bytes it
/// held, or where it is damaged.
pub(crate) fn replay_compacted(
    state: &mut State,
    extractor: &dyn SecondaryKeys,
    scratch: &mut Vec<SecondaryKey>,
    segment: &Segment,
) -> Result<Result<(u64, u64), Corruption>, ReadError> {
    let ordinal = state.last_segment().expect("the segment was pushed");
    let mut scanned = (0, 0);
    let next_index = state.last.index + 1;
    let payload_max = state.payload_max;
    segment.will_read(0, segment.size());
    let outcome = scan_compacted(
        segment.bytes_for_recovery(),
        next_index,
        payload_max,
        |offset, header, payload| {
            scanned.0 += 1;
            scanned.1 += header.record_size() as u64;
            let location = Location {
                segment: ordinal,
                offset: offset as u32,
            };
            state.apply(extractor, scratch, location, header, payload)
        },
    )?;
    Ok(outcome.map(|()| scanned))
}

/// Zeroes `at..nonzero_end` of the last segment and syncs it, so no byte of the torn batch can
/// be mistaken for a record later.
fn zero_torn_tail(segment: &Segment, torn: &TornTail) -> Result<(), OpenError> {
    let zeros = vec![0u8; torn.bytes_discarded as usize];
    let file: &File = &segment.file;
    file.write_all_at(&zeros, torn.offset)
        .map_err(io_error(&segment.path))?;
    file.sync_data().map_err(io_error(&segment.path))?;
    tracing::warn!(segment = %torn.segment.display(), offset = torn.offset, bytes = torn.bytes_discarded, records = torn.valid_records_discarded, reason = torn.reason, "cut off a torn tail");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{Position, encode};

    const PAYLOAD_MAX: u32 = 1024;

    /// A segment image with batches of the given sizes, each one append group, starting at
    /// index 1.
    fn image(batches: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = vec![0u8; SEGMENT_HEADER_SIZE];
        let mut offsets = Vec::new();
        let mut index = 1;
        for &size in batches {
            let first = index;
            for _ in 0..size {
                offsets.push(bytes.len());
                let payload = vec![index as u8; 30];
                let header = RecordHeader {
                    payload_len: 30,
                    position: Position { term: 1, index },
                    key: index,
                    kind: 1,
                    flags: if index - first + 1 == size as u64 {
                        RECORD_FLAG_GROUP_END
                    } else {
                        0
                    },
                    batch_offset: (index - first) as u32,
                };
                encode(&mut bytes, &header, &payload);
                index += 1;
            }
        }
        bytes.resize(bytes.len() + 4096, 0);
        (bytes, offsets)
    }

    fn scan(bytes: &[u8], is_last: bool) -> (Vec<u64>, Result<SegmentEnd, Corruption>) {
        let mut seen = Vec::new();
        let end = scan_segment::<()>(
            bytes,
            SEGMENT_HEADER_SIZE,
            1,
            PAYLOAD_MAX,
            is_last,
            |_, header, _| {
                seen.push(header.position.index);
                Ok(())
            },
        )
        .unwrap();
        (seen, end)
    }

    #[test]
    fn a_clean_segment_ends_at_the_first_zeroed_header() {
        let (bytes, offsets) = image(&[3, 2]);
        let (seen, end) = scan(&bytes, true);
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            end,
            Ok(SegmentEnd::Clean {
                end: offsets[4] + 72
            })
        );
    }

    #[test]
    fn damage_in_the_last_batch_cuts_its_whole_group() {
        let (mut bytes, offsets) = image(&[3, 3]);
        bytes[offsets[4] + 50] ^= 1;
        let (seen, end) = scan(&bytes, true);
        assert_eq!(
            seen,
            vec![1, 2, 3],
            "record 4 is valid but its group is not whole"
        );
        let Ok(SegmentEnd::Torn {
            at,
            nonzero_end,
            records_cut,
            reason,
        }) = end
        else {
            panic!("{end:?}")
        };
        assert_eq!(at, offsets[3], "cut from the group's first record");
        assert_eq!(records_cut, 1);
        assert_eq!(
            nonzero_end,
            offsets[5] + 72,
            "the surviving record of the torn batch is zeroed too"
        );
        assert_eq!(reason, "checksum mismatch");
    }

    #[test]
    fn a_group_whose_last_record_never_reached_the_disk_is_cut_whole() {
        let (mut bytes, offsets) = image(&[2, 3]);
        bytes[offsets[4]..offsets[4] + 72].fill(0);
        let (seen, end) = scan(&bytes, true);
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(
            end,
            Ok(SegmentEnd::Torn {
                at: offsets[2],
                nonzero_end: offsets[4],
                records_cut: 2,
                reason: UNFINISHED_GROUP,
            })
        );
        let (_, end) = scan(&bytes, false);
        assert_eq!(
            end,
            Err(Corruption {
                offset: offsets[2],
                reason: "segment ends inside an append group",
            }),
            "groups never span segments, so only the last may end inside one"
        );
    }

    #[test]
    fn a_torn_batch_whose_start_never_reached_the_disk_is_a_torn_tail() {
        let (mut bytes, offsets) = image(&[2, 3]);
        bytes[offsets[2]..offsets[3]].fill(0);
        let (seen, end) = scan(&bytes, true);
        assert_eq!(seen, vec![1, 2]);
        assert!(matches!(
            end,
            Ok(SegmentEnd::Torn {
                reason: "zeroed header",
                records_cut: 0,
                ..
            })
        ));
    }

    #[test]
    fn damage_followed_by_a_later_batch_is_corruption() {
        let (mut bytes, offsets) = image(&[3, 3]);
        bytes[offsets[1] + 45] ^= 0x40;
        let (seen, end) = scan(&bytes, true);
        assert_eq!(
            seen,
            Vec::<u64>::new(),
            "no record of a broken group is passed on"
        );
        assert_eq!(
            end,
            Err(Corruption {
                offset: offsets[1],
                reason: "checksum mismatch"
            })
        );
    }

    #[test]
    fn any_damage_in_a_segment_that_is_not_the_last_is_corruption() {
        let (mut bytes, offsets) = image(&[3, 3]);
        bytes[offsets[5] + 45] ^= 0x40;
        let (_, end) = scan(&bytes, false);
        assert_eq!(
            end,
            Err(Corruption {
                offset: offsets[5],
                reason: "checksum mismatch"
            })
        );
        let (clean, _) = image(&[3]);
        let (_, end) = scan(&clean, false);
        assert!(matches!(end, Ok(SegmentEnd::Clean { .. })));
    }
}
