//! Index checkpoints: a snapshot of the indexes and record offsets up to some durable record, so
//! that opening the log scans only what was written after it.
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
pub(crate) const CHECKPOINT_VERSION: u32 = 3;
/// The previous layout, still read.
const CHECKPOINT_VERSION_FULL_SEGMENTS_ONLY: u32 = 2;
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

/// One segment's part of a checkpoint being written, borrowed from the state.
pub(crate) struct SegmentPart<'a> {
    pub(crate) first_index: u64,
    pub(crate) offsets: &'a [u32],
    /// The segment's compaction round (0: a full segment).
    pub(crate) compaction: u32,
    /// For a compacted segment, each record's log index.
    pub(crate) indices: Option<&'a [u64]>,
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
}

fn file_name(last_index: u64) -> String {
    format!("checkpoint-{last_index:020}{SUFFIX}")
}

/// Serialises the parts of a checkpoint. Done under the state's read lock, so it borrows.
pub(crate) fn encode(
    last: Position,
    write_offset: u32,
    segments: &[SegmentPart<'_>],
    primary: &PrimaryIndex,
    secondary: &SecondaryIndexes,
) -> Vec<u8> {
    let offsets_total: usize = segments.iter().map(|part| part.offsets.len()).sum();
    let mut out = Vec::with_capacity(64 + offsets_total * 4 + primary.memory_bytes());
    out.extend_from_slice(&CHECKPOINT_MAGIC);
    out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
    out.extend_from_slice(&write_offset.to_le_bytes());
    out.extend_from_slice(&last.term.to_le_bytes());
    out.extend_from_slice(&last.index.to_le_bytes());
    out.extend_from_slice(&(segments.len() as u64).to_le_bytes());
    for part in segments {
        out.extend_from_slice(&part.first_index.to_le_bytes());
        assert_eq!(part.compaction > 0, part.indices.is_some());
        out.extend_from_slice(&part.compaction.to_le_bytes());
        out.extend_from_slice(&(part.offsets.len() as u64).to_le_bytes());
        for offset in part.offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        if let Some(indices) = part.indices {
            assert_eq!(indices.len(), part.offsets.len(), "an index per record");
            for index in indices {
                out.extend_from_slice(&index.to_le_bytes());
            }
        }
    }
    encode_slots(&mut out, primary);
    out.extend_from_slice(&(secondary.index_count() as u64).to_le_bytes());
    for set in secondary.sets() {
        out.extend_from_slice(&(set.len() as u64).to_le_bytes());
        for (key, primary_key) in set {
            let key = key.as_bytes();
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&primary_key.to_le_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Appends the primary table: slot count, key count, then runs of (empty slots `u32`, occupied
/// slots `u32`, the occupied slots). The file grows with the keys, not with the table's capacity,
/// and loading it is a sequential copy into a table of the same size, without rehashing.
fn encode_slots(out: &mut Vec<u8>, primary: &PrimaryIndex) {
    let slots = primary.raw_slots();
    out.extend_from_slice(&(slots.len() as u64).to_le_bytes());
    out.extend_from_slice(&(primary.len() as u64).to_le_bytes());
    let mut at = 0;
    while at < slots.len() {
        let empty = slots[at..]
            .iter()
            .take(u32::MAX as usize)
            .take_while(|s| s.key == 0)
            .count();
        at += empty;
        let occupied = slots[at..]
            .iter()
            .take(u32::MAX as usize)
            .take_while(|s| s.key != 0)
            .count();
        out.extend_from_slice(&(empty as u32).to_le_bytes());
        out.extend_from_slice(&(occupied as u32).to_le_bytes());
        for slot in &slots[at..at + occupied] {
            out.extend_from_slice(&slot.key.to_le_bytes());
            out.extend_from_slice(&slot.location.to_le_bytes());
        }
        at += occupied;
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

/// Writes an encoded checkpoint for `last_index` into `dir` atomically and removes older ones.
/// `disk`: the simulated disk a simulator may cut the power of between these steps.
pub(crate) fn write(
    dir: &Path,
    last_index: u64,
    encoded: &[u8],
    disk: Option<&Arc<SimulatedDisk>>,
) -> io::Result<PathBuf> {
    let path = dir.join(file_name(last_index));
    let temporary = dir.join(format!("checkpoint-{last_index:020}{TEMPORARY_SUFFIX}"));
    let written = File::create(&temporary).and_then(|mut file| {
        write_paced(&mut file, 0, encoded.chunks(WRITEBACK_CHUNK))?;
        reached(disk, Reached::CheckpointWritten { file: &temporary })?;
        file.sync_all()
    });
    if let Err(error) = written {
        // Do not leave a large partial file behind, for example on a full disk (a simulated
        // machine whose power went removes nothing: recovery must).
        if !disk.is_some_and(|disk| disk.is_powered_off()) {
            let _ = fs::remove_file(&temporary);
        }
        return Err(error);
    }
    fs::rename(&temporary, &path)?;
    reached(
        disk,
        Reached::CheckpointRenamed {
            from: &temporary,
            to: &path,
        },
    )?;
    sync_dir(dir)?;
    reached(disk, Reached::CheckpointDurable)?;
    for (index, older) in list(dir)? {
        if index < last_index {
            fs::remove_file(older)?;
        }
    }
    Ok(path)
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
    let bytes = fs::read(&path)?;
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

/// One segment's part: first index, compaction round (from version 3), offsets, and for a
/// compacted segment its records' indices.
fn decode_segment(
    reader: &mut Reader<'_>,
    version: u32,
) -> Result<CheckpointSegment, &'static str> {
    let first_index = reader.u64()?;
    let compaction = if version == CHECKPOINT_VERSION {
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
    if version != CHECKPOINT_VERSION && version != CHECKPOINT_VERSION_FULL_SEGMENTS_ONLY {
        return Err("unsupported checkpoint version");
    }
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
    let primary = decode_slots(&mut reader)?;
    let index_count = reader.count(8)?;
    if index_count > usize::from(u8::MAX) {
        return Err("too many secondary indexes");
    }
    let mut sets = Vec::with_capacity(index_count);
    for _ in 0..index_count {
        let entry_count = reader.count(12)?;
        let mut set = BTreeSet::new();
        for _ in 0..entry_count {
            let key_len = reader.u32()? as usize;
            let key = InlineKey::new(reader.take(key_len)?).ok_or("secondary key too long")?;
            set.insert((key, reader.u64()?));
        }
        sets.push(set);
    }
    if reader.at != body.len() {
        return Err("trailing bytes");
    }
    let checkpoint = Checkpoint {
        last,
        write_offset,
        segments,
        primary,
        secondary: SecondaryIndexes::from_sets(sets),
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
    use crate::index::secondary::SecondaryKey;

    fn sample() -> Vec<u8> {
        let mut primary = PrimaryIndex::with_capacity(10);
        primary.insert(
            5,
            Location {
                segment: 0,
                offset: 64,
            },
        );
        primary.insert(
            6,
            Location {
                segment: 1,
                offset: 64,
            },
        );
        let mut secondary = SecondaryIndexes::new(1);
        secondary.insert(
            SecondaryKey {
                index: 0,
                key: b"SMITH".to_vec(),
            },
            5,
        );
        // A compacted segment that kept record 2 of 1..=2, then a full one with record 3.
        encode(
            Position { term: 1, index: 3 },
            104,
            &[
                SegmentPart {
                    first_index: 1,
                    offsets: &[64],
                    compaction: 1,
                    indices: Some(&[2]),
                },
                SegmentPart {
                    first_index: 3,
                    offsets: &[64],
                    compaction: 0,
                    indices: None,
                },
            ],
            &primary,
            &secondary,
        )
    }

    #[test]
    fn round_trips() {
        let checkpoint = decode(&sample()).unwrap();
        assert_eq!(checkpoint.last, Position { term: 1, index: 3 });
        assert_eq!(checkpoint.write_offset, 104);
        assert_eq!(checkpoint.segments.len(), 2);
        assert_eq!(checkpoint.segments[0].indices, Some(vec![2]));
        assert_eq!(checkpoint.segments[1].indices, None);
        assert_eq!(
            checkpoint.primary.get(6),
            Some(Location {
                segment: 1,
                offset: 64
            })
        );
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
        write(dir.path(), 3, &sample(), None).unwrap();
        write(dir.path(), 9, &sample(), None).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![file_name(9)]);
        assert!(load_latest(dir.path()).unwrap().is_some());
    }
}
