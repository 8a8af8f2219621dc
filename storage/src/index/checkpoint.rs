//! Index checkpoints: the indexes and record offsets as of some durable record, so that opening
//! the log scans only what was written after it.
//!
//! A checkpoint is read from the live indexes a run of entries at a time while the log goes on
//! writing, and streamed to its file (version 4): no copy of the indexes is made, in memory or
//! in a buffer. Such a checkpoint is *fuzzy*: it holds every key that did not change after its
//! last record, as it was; a key that did may be in any state it had since, or absent. Opening
//! replays the records after the last one over it, and gives every key those records name the
//! index entries of its latest record (`recovery`), which makes the result exact.
//!
//! A checkpoint is an optimisation, never the source of truth: one that fails its CRC or does not
//! match the segments on disk is ignored and the log is scanned from the start. It is written to a
//! temporary file, synced, renamed into place and the directory synced, so a crash leaves either
//! the old checkpoint or the new one. Layout in `FORMAT.md`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Location;
use super::primary::{PrimaryIndex, Slot};
use super::secondary::{InlineKey, SecondaryIndexes};
use crate::io::paced::{WRITEBACK_CHUNK, write_paced};
use crate::io::{Reached, SimulatedDisk, reached};
use crate::log::record::Position;
use crate::log::segment::sync_dir;

/// First bytes of a checkpoint file.
pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"SPINECKP";
/// Version of the checkpoint layout.
/// 2: slots placed by the key without its top byte (older checkpoints are ignored).
/// 3: each segment gives its compaction round (0: a full segment), and a compacted one lists
///    its records' log indices (version 2 files are still read: their segments are all full).
/// 4: fuzzy: the indexes as runs of entries read while the log went on writing (versions 2
///    and 3, exact snapshots of the table's slots, are still read).
pub(crate) const CHECKPOINT_VERSION: u32 = 4;
/// The exact snapshot with compaction rounds, still read.
const CHECKPOINT_VERSION_SLOTS: u32 = 3;
/// The exact snapshot of full segments only, still read.
const CHECKPOINT_VERSION_FULL_SEGMENTS_ONLY: u32 = 2;
/// Entries in one run of a version 4 checkpoint, at most.
pub(crate) const RUN_ENTRIES_MAX: usize = 1 << 16;
const SUFFIX: &str = ".ckpt";
const TEMPORARY_SUFFIX: &str = ".ckpt.tmp";

/// One segment's part of a checkpoint.
pub(crate) struct CheckpointSegment {
    pub(crate) first_index: u64,
    pub(crate) offsets: Vec<u32>,
    /// The segment's compaction round (0: a full segment).
    pub(crate) compaction: u32,
    /// For a compacted segment, each record's log index (`None` for a full segment).
    pub(crate) indices: Option<Vec<u64>>,
}

/// What a checkpoint holds.
pub(crate) struct Checkpoint {
    /// Last record the checkpoint covers.
    pub(crate) last: Position,
    /// Where the record after `last` goes: in the last listed segment, at this offset.
    pub(crate) write_offset: u32,
    pub(crate) segments: Vec<CheckpointSegment>,
    pub(crate) primary: PrimaryIndex,
    pub(crate) secondary: SecondaryIndexes,
    /// Whether the indexes were read while the log went on writing (version 4): the keys the
    /// records after `last` name must get their index entries again after the replay.
    pub(crate) fuzzy: bool,
}

fn file_name(last_index: u64) -> String {
    format!("checkpoint-{last_index:020}{SUFFIX}")
}

/// A checkpoint being written (version 4), streamed to its temporary file in written-back
/// chunks with its checksum kept as it goes: the header and each segment's part, then runs of
/// primary entries, then each secondary index's runs; [`CheckpointWriter::finish`] makes it the
/// newest checkpoint. A writer dropped unfinished removes its file.
pub(crate) struct CheckpointWriter {
    dir: PathBuf,
    last_index: u64,
    /// Emptied once renamed into place: nothing is left for the drop to remove.
    temporary: PathBuf,
    file: File,
    buffer: Vec<u8>,
    crc: u32,
    written: u64,
    disk: Option<Arc<SimulatedDisk>>,
}

impl CheckpointWriter {
    /// Starts the checkpoint of the records up to `last` in `dir`, the next record going at
    /// `write_offset` of the last of its `segment_count` segments.
    pub(crate) fn create(
        dir: &Path,
        last: Position,
        write_offset: u32,
        segment_count: usize,
        disk: Option<&Arc<SimulatedDisk>>,
    ) -> io::Result<Self> {
        let temporary = dir.join(format!("checkpoint-{:020}{TEMPORARY_SUFFIX}", last.index));
        let file = File::create(&temporary)?;
        let mut writer = Self {
            dir: dir.to_path_buf(),
            last_index: last.index,
            temporary,
            file,
            buffer: Vec::with_capacity(WRITEBACK_CHUNK + (1 << 16)),
            crc: 0,
            written: 0,
            disk: disk.cloned(),
        };
        writer.put(&CHECKPOINT_MAGIC)?;
        writer.put(&CHECKPOINT_VERSION.to_le_bytes())?;
        writer.put(&write_offset.to_le_bytes())?;
        writer.put(&last.term.to_le_bytes())?;
        writer.put(&last.index.to_le_bytes())?;
        writer.put(&(segment_count as u64).to_le_bytes())?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= WRITEBACK_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buffer);
        write_paced(&mut self.file, self.written, [self.buffer.as_slice()])?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Starts a segment's part: its first index, compaction round (0: a full segment) and
    /// record count; its offsets follow ([`CheckpointWriter::offsets`]), then for a compacted
    /// segment its records' indices ([`CheckpointWriter::indices`]), `records` of each.
    pub(crate) fn segment(
        &mut self,
        first_index: u64,
        compaction: u32,
        records: usize,
    ) -> io::Result<()> {
        self.put(&first_index.to_le_bytes())?;
        self.put(&compaction.to_le_bytes())?;
        self.put(&(records as u64).to_le_bytes())
    }

    /// Some of a segment's record offsets.
    pub(crate) fn offsets(&mut self, offsets: &[u32]) -> io::Result<()> {
        offsets
            .iter()
            .try_for_each(|offset| self.put(&offset.to_le_bytes()))
    }

    /// Some of a compacted segment's record indices.
    pub(crate) fn indices(&mut self, indices: &[u64]) -> io::Result<()> {
        indices
            .iter()
            .try_for_each(|index| self.put(&index.to_le_bytes()))
    }

    /// A run of primary entries (at most [`RUN_ENTRIES_MAX`]; an empty run writes nothing).
    pub(crate) fn primary_run(&mut self, entries: &[(u64, Location)]) -> io::Result<()> {
        if !self.run_count(entries.len())? {
            return Ok(());
        }
        for (key, location) in entries {
            self.put(&key.to_le_bytes())?;
            self.put(&location.pack().to_le_bytes())?;
        }
        Ok(())
    }

    /// Starts a run of `count` entries (at most [`RUN_ENTRIES_MAX`]); whether there is one (an
    /// empty run writes nothing: a count of 0 ends the runs).
    fn run_count(&mut self, count: usize) -> io::Result<bool> {
        assert!(count <= RUN_ENTRIES_MAX, "a run longer than its maximum");
        if count > 0 {
            self.put(&(count as u32).to_le_bytes())?;
        }
        Ok(count > 0)
    }

    /// Ends the runs of the primary index or of a secondary one.
    pub(crate) fn end_runs(&mut self) -> io::Result<()> {
        self.put(&0u32.to_le_bytes())
    }

    /// Starts the secondary indexes: how many there are; each one's runs follow, in order.
    pub(crate) fn secondary_indexes(&mut self, count: usize) -> io::Result<()> {
        self.put(&(count as u64).to_le_bytes())
    }

    /// A run of one secondary index's entries, in order (at most [`RUN_ENTRIES_MAX`]; an
    /// empty run writes nothing).
    pub(crate) fn secondary_run(&mut self, entries: &[(InlineKey, u64)]) -> io::Result<()> {
        if !self.run_count(entries.len())? {
            return Ok(());
        }
        for (key, primary) in entries {
            let key = key.as_bytes();
            self.put(&(key.len() as u32).to_le_bytes())?;
            self.put(key)?;
            self.put(&primary.to_le_bytes())?;
        }
        Ok(())
    }

    /// Appends the checksum, syncs the file, renames it into place (the commit point), syncs
    /// the directory and removes older checkpoints. The simulated disk, if any, may cut the
    /// power between these steps.
    pub(crate) fn finish(mut self) -> io::Result<PathBuf> {
        self.flush()?;
        let crc = self.crc.to_le_bytes();
        write_paced(&mut self.file, self.written, [&crc[..]])?;
        let disk = self.disk.as_ref();
        reached(
            disk,
            Reached::CheckpointWritten {
                file: &self.temporary,
            },
        )?;
        self.file.sync_all()?;
        let path = self.dir.join(file_name(self.last_index));
        fs::rename(&self.temporary, &path)?;
        let temporary = std::mem::take(&mut self.temporary);
        reached(
            disk,
            Reached::CheckpointRenamed {
                from: &temporary,
                to: &path,
            },
        )?;
        sync_dir(&self.dir)?;
        reached(disk, Reached::CheckpointDurable)?;
        for (index, older) in list(&self.dir)? {
            if index < self.last_index {
                fs::remove_file(older)?;
            }
        }
        Ok(path)
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        // Do not leave a large partial file behind, for example on a full disk (a simulated
        // machine whose power went removes nothing: recovery must).
        if !self.temporary.as_os_str().is_empty()
            && !self.disk.as_ref().is_some_and(|disk| disk.is_powered_off())
        {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Largest table a checkpoint may describe (2^36 slots, 1 TiB): a bound checked before allocating.
const SLOTS_MAX: u64 = 1 << 36;

fn decode_slots(reader: &mut Reader<'_>) -> Result<PrimaryIndex, &'static str> {
    let slot_count = reader.u64()?;
    let len = reader.u64()?;
    if slot_count > SLOTS_MAX || len > slot_count {
        return Err("impossible primary index size");
    }
    let slot_count = slot_count as usize;
    let mut slots = vec![Slot::default(); slot_count];
    let mut at = 0usize;
    while at < slot_count {
        let empty = reader.u32()? as usize;
        let occupied = reader.u32()? as usize;
        at = at.checked_add(empty).ok_or("slot run overflow")?;
        let end = at
            .checked_add(occupied)
            .filter(|&end| end <= slot_count)
            .ok_or("slot run past the table")?;
        for slot in &mut slots[at..end] {
            *slot = Slot {
                key: reader.u64()?,
                location: reader.u64()?,
            };
            if slot.key == 0 {
                return Err("empty slot in an occupied run");
            }
        }
        at = end;
    }
    PrimaryIndex::from_raw_slots(slots, len as usize).ok_or("inconsistent primary index")
}

/// Removes checkpoint files a crash left half-written. Only at open: while the log runs, a
/// temporary file is a checkpoint being written.
pub(crate) fn remove_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(TEMPORARY_SUFFIX)
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Checkpoint files in `dir` with the last index each covers, oldest first.
fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let index = name
            .strip_prefix("checkpoint-")
            .and_then(|rest| rest.strip_suffix(SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(index) = index {
            found.push((index, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Loads the newest checkpoint in `dir`. `Ok(None)` when there is none or it is unusable (the
/// reason is logged; the caller scans the whole log instead).
pub(crate) fn load_latest(dir: &Path) -> io::Result<Option<(PathBuf, Checkpoint)>> {
    let Some((_, path)) = list(dir)?.pop() else {
        return Ok(None);
    };
    let file = File::open(&path)?;
    // SAFETY: checkpoint files are only ever written under a temporary name and renamed into
    // place whole, never changed after; the map is read while the log holds its directory.
    let bytes = unsafe { memmap2::Mmap::map(&file)? };
    match decode(&bytes) {
        Ok(checkpoint) => Ok(Some((path, checkpoint))),
        Err(reason) => {
            tracing::warn!(path = %path.display(), reason, "ignoring unusable checkpoint");
            Ok(None)
        }
    }
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(count).ok_or("length overflow")?;
        let slice = self.bytes.get(self.at..end).ok_or("truncated")?;
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut word = [0u8; 4];
        word.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    /// A count that must fit in what is left, at `unit` bytes an item, before anything is
    /// allocated for it.
    fn count(&mut self, unit: usize) -> Result<usize, &'static str> {
        let count = usize::try_from(self.u64()?).map_err(|_| "count too large")?;
        if count.saturating_mul(unit) > self.bytes.len() - self.at {
            return Err("count larger than the file");
        }
        Ok(count)
    }
}

/// Calls `entry` for each entry of a version 4 checkpoint's runs (each at least `unit` bytes),
/// up to the empty run that ends them.
fn for_each_run_entry(
    reader: &mut Reader<'_>,
    unit: usize,
    entry: &mut impl FnMut(&mut Reader<'_>) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    loop {
        let count = reader.u32()? as usize;
        if count == 0 {
            return Ok(());
        }
        if count > RUN_ENTRIES_MAX || count * unit > reader.bytes.len() - reader.at {
            return Err("a run longer than its maximum or the file");
        }
        for _ in 0..count {
            entry(reader)?;
        }
    }
}

/// The primary index of a version 4 checkpoint. An entry located after the checkpoint's last
/// record (read after the log wrote it) is left out: its key is named by a record after the
/// last, whose replay sets it. Of a key read twice (a deletion shifted it meanwhile), the later
/// entry counts: both give where it was at some point after the last record.
fn decode_primary_runs(
    reader: &mut Reader<'_>,
    segments: &[CheckpointSegment],
    write_offset: u32,
) -> Result<PrimaryIndex, &'static str> {
    // Counted first, so the table is sized once.
    let start = reader.at;
    let mut entries = 0usize;
    for_each_run_entry(reader, 16, &mut |reader| {
        reader.take(16)?;
        entries += 1;
        Ok(())
    })?;
    reader.at = start;
    let mut primary = PrimaryIndex::with_capacity(entries);
    let last_segment = segments.len().checked_sub(1);
    for_each_run_entry(reader, 16, &mut |reader| {
        let key = reader.u64()?;
        let packed = reader.u64()?;
        let location = Location::unpack(packed);
        if key == 0 || location.offset == 0 {
            return Err("an impossible primary entry");
        }
        let ordinal = location.segment as usize;
        let before_the_end = match last_segment {
            Some(last) => ordinal < last || (ordinal == last && location.offset < write_offset),
            None => false,
        };
        if before_the_end {
            primary.insert(key, location);
        }
        Ok(())
    })?;
    Ok(primary)
}

/// One segment's part: first index, compaction round (from version 3), offsets, and for a
/// compacted segment its records' indices.
fn decode_segment(
    reader: &mut Reader<'_>,
    version: u32,
) -> Result<CheckpointSegment, &'static str> {
    let first_index = reader.u64()?;
    let compaction = if version >= CHECKPOINT_VERSION_SLOTS {
        reader.u32()?
    } else {
        0
    };
    let offset_count = reader.count(4)?;
    let offsets = (0..offset_count)
        .map(|_| reader.u32())
        .collect::<Result<Vec<_>, _>>()?;
    let indices = if compaction > 0 {
        let indices = (0..offset_count)
            .map(|_| reader.u64())
            .collect::<Result<Vec<_>, _>>()?;
        Some(indices)
    } else {
        None
    };
    Ok(CheckpointSegment {
        first_index,
        offsets,
        compaction,
        indices,
    })
}

/// The secondary indexes: runs of entries (version 4) or a count and the entries.
fn decode_secondary(
    reader: &mut Reader<'_>,
    fuzzy: bool,
) -> Result<SecondaryIndexes, &'static str> {
    let index_count = reader.count(8)?;
    if index_count > usize::from(u8::MAX) {
        return Err("too many secondary indexes");
    }
    let mut sets = Vec::with_capacity(index_count);
    for _ in 0..index_count {
        let mut set = BTreeSet::new();
        let mut entry = |reader: &mut Reader<'_>| -> Result<(), &'static str> {
            let key_len = reader.u32()? as usize;
            let key = InlineKey::new(reader.take(key_len)?).ok_or("secondary key too long")?;
            set.insert((key, reader.u64()?));
            Ok(())
        };
        if fuzzy {
            for_each_run_entry(reader, 12, &mut entry)?;
        } else {
            for _ in 0..reader.count(12)? {
                entry(reader)?;
            }
        }
        sets.push(set);
    }
    Ok(SecondaryIndexes::from_sets(sets))
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, &'static str> {
    let body_len = bytes.len().checked_sub(4).ok_or("truncated")?;
    let (body, crc) = bytes.split_at(body_len);
    let mut crc_word = [0u8; 4];
    crc_word.copy_from_slice(crc);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc_word) {
        return Err("checksum mismatch");
    }
    let mut reader = Reader { bytes: body, at: 0 };
    if reader.take(8)? != CHECKPOINT_MAGIC {
        return Err("not a checkpoint");
    }
    let version = reader.u32()?;
    if !(CHECKPOINT_VERSION_FULL_SEGMENTS_ONLY..=CHECKPOINT_VERSION).contains(&version) {
        return Err("unsupported checkpoint version");
    }
    let fuzzy = version == CHECKPOINT_VERSION;
    let write_offset = reader.u32()?;
    let last = Position {
        term: reader.u64()?,
        index: reader.u64()?,
    };
    let segment_count = reader.count(16)?;
    let mut segments = Vec::with_capacity(segment_count);
    for _ in 0..segment_count {
        segments.push(decode_segment(&mut reader, version)?);
    }
    let primary = if fuzzy {
        decode_primary_runs(&mut reader, &segments, write_offset)?
    } else {
        decode_slots(&mut reader)?
    };
    let secondary = decode_secondary(&mut reader, fuzzy)?;
    if reader.at != body.len() {
        return Err("trailing bytes");
    }
    let checkpoint = Checkpoint {
        last,
        write_offset,
        segments,
        primary,
        secondary,
        fuzzy,
    };
    let mut covered = 0;
    for part in &checkpoint.segments {
        if part.first_index != covered + 1 {
            return Err("segments do not follow each other");
        }
        if !part.indices_rise() {
            return Err("a compacted segment's indices do not rise from its first index");
        }
        covered = part.last_index();
    }
    if covered != checkpoint.last.index || checkpoint.segments.is_empty() != (last.index == 0) {
        return Err("record count disagrees with the last index");
    }
    Ok(checkpoint)
}

impl CheckpointSegment {
    /// The index of the segment's last record (the one before its first if it has none).
    pub(crate) fn last_index(&self) -> u64 {
        match &self.indices {
            Some(indices) => indices.last().map_or(self.first_index - 1, |&last| last),
            None => self.first_index + self.offsets.len() as u64 - 1,
        }
    }

    /// Whether a compacted segment's indices rise from its first index on (a compacted
    /// segment keeps at least its last record; a full segment has none to check).
    fn indices_rise(&self) -> bool {
        let Some(indices) = &self.indices else {
            return true;
        };
        let rising = indices.windows(2).all(|pair| pair[0] < pair[1]);
        rising
            && indices
                .first()
                .is_some_and(|&first| first >= self.first_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Location;

    fn at(segment: u32, offset: u32) -> Location {
        Location { segment, offset }
    }

    /// A compacted segment that kept record 2 of 1..=2, then a full one with record 3; a key
    /// whose entry lies after the last record (read after the log wrote it).
    fn write_sample(dir: &Path) -> PathBuf {
        let last = Position { term: 1, index: 3 };
        let mut writer = CheckpointWriter::create(dir, last, 104, 2, None).unwrap();
        writer.segment(1, 1, 1).unwrap();
        writer.offsets(&[64]).unwrap();
        writer.indices(&[2]).unwrap();
        writer.segment(3, 0, 1).unwrap();
        writer.offsets(&[64]).unwrap();
        writer
            .primary_run(&[(5, at(0, 64)), (6, at(1, 64))])
            .unwrap();
        writer.primary_run(&[]).unwrap();
        writer.primary_run(&[(7, at(1, 104))]).unwrap();
        writer.end_runs().unwrap();
        writer.secondary_indexes(1).unwrap();
        let smith = InlineKey::new(b"SMITH").unwrap();
        writer.secondary_run(&[(smith, 5)]).unwrap();
        writer.end_runs().unwrap();
        writer.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        fs::read(write_sample(dir.path())).unwrap()
    }

    /// A checkpoint of one full segment of `records` records of 40 bytes.
    fn write_full(dir: &Path, records: u64) -> PathBuf {
        let last = Position {
            term: 1,
            index: records,
        };
        let offsets: Vec<u32> = (0..records as u32).map(|n| 64 + 40 * n).collect();
        let write_offset = 64 + 40 * records as u32;
        let mut writer = CheckpointWriter::create(dir, last, write_offset, 1, None).unwrap();
        writer.segment(1, 0, offsets.len()).unwrap();
        writer.offsets(&offsets).unwrap();
        writer.end_runs().unwrap();
        writer.secondary_indexes(0).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn round_trips_leaving_out_what_lies_after_the_last_record() {
        let checkpoint = decode(&sample()).unwrap();
        assert!(checkpoint.fuzzy);
        assert_eq!(checkpoint.last, Position { term: 1, index: 3 });
        assert_eq!(checkpoint.write_offset, 104);
        assert_eq!(checkpoint.segments.len(), 2);
        assert_eq!(checkpoint.segments[0].indices, Some(vec![2]));
        assert_eq!(checkpoint.segments[1].indices, None);
        assert_eq!(checkpoint.primary.get(6), Some(at(1, 64)));
        assert_eq!(checkpoint.primary.get(7), None);
        assert_eq!(checkpoint.primary.len(), 2);
        assert_eq!(checkpoint.secondary.prefix(0, b"SMI", 10), vec![5]);
    }

    #[test]
    fn any_damage_is_refused() {
        let bytes = sample();
        for at in (0..bytes.len()).step_by(7) {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(
                decode(&damaged).is_err(),
                "damage at byte {at} went unnoticed"
            );
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn writes_atomically_and_keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        write_full(dir.path(), 3);
        write_full(dir.path(), 9);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![file_name(9)]);
        let (_, loaded) = load_latest(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.last.index, 9);
    }

    #[test]
    fn a_checkpoint_left_unfinished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let last = Position { term: 1, index: 1 };
        let mut writer = CheckpointWriter::create(dir.path(), last, 104, 1, None).unwrap();
        writer.segment(1, 0, 1).unwrap();
        drop(writer);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(load_latest(dir.path()).unwrap().is_none());
    }
}
