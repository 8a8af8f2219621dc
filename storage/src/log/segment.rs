//! Segment files: naming, preallocation, and read-only memory maps.
//!
//! A segment is a preallocated, zero-filled, synced file of fixed size named by the log index of
//! its first record (`00000000000000000001.seg`). Writes go through the file with the io backend;
//! reads go through a read-only map of the whole file. Zero-filling and syncing ahead of time
//! matters: overwriting allocated blocks avoids an ext4 journal commit per `fdatasync`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::format::{RECORD_HEADER_SIZE, RECORD_PAYLOAD_LEN_OFFSET, record_size};

/// File name suffix of a segment.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of a segment being prepared; removed at open.
pub(crate) const SPARE_SUFFIX: &str = ".seg.spare";
/// File name suffix of a compacted segment: the records a compaction kept of the segment with
/// the same number (`storage/FORMAT.md`, "Compaction").
pub(crate) const COMPACTED_SUFFIX: &str = ".cseg";
/// File name suffix of a compacted segment being written; removed at open.
pub(crate) const COMPACTING_SUFFIX: &str = ".cseg.tmp";
/// Zero-filling writes this much at a time.
const ZERO_FILL_CHUNK: usize = 1 << 20;

/// Name of the segment whose first record has `first_index`.
pub(crate) fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}{SEGMENT_SUFFIX}")
}

/// Name of the compacted segment that replaces the segment whose first record has
/// `first_index`.
pub(crate) fn compacted_file_name(first_index: u64) -> String {
    format!("{first_index:020}{COMPACTED_SUFFIX}")
}

/// Name of the compacted segment being written for the segment whose first record has
/// `first_index`, before it is renamed into place.
pub(crate) fn compacting_file_name(first_index: u64) -> String {
    format!("{first_index:020}{COMPACTING_SUFFIX}")
}

/// First index encoded in a segment file name, or `None` if it is not one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, SEGMENT_SUFFIX)
}

/// First index encoded in a compacted segment's file name, or `None` if it is not one.
pub(crate) fn parse_compacted_file_name(name: &str) -> Option<u64> {
    parse_numbered(name, COMPACTED_SUFFIX)
}

fn parse_numbered(name: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `fsync` of a directory, so that creations and renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a zero-filled, synced spare segment of `size` bytes at `path`.
///
/// The zeros go straight to the disk (`O_DIRECT`) where the file system allows it, so that
/// they are written by this thread, at its I/O priority (the preparer's is idle: the log's
/// flushes go first), rather than by the kernel's writeback at the priority of everything
/// else, and leave no page cache behind. Elsewhere (or for a size that is not a multiple of
/// the direct I/O block) they go through the page cache.
pub(crate) fn prepare_spare(path: &Path, size: u64) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let direct = if size.is_multiple_of(DIRECT_BLOCK as u64) {
        open_direct(path).ok()
    } else {
        None
    };
    let zeros = vec![0u8; ZERO_FILL_CHUNK + DIRECT_BLOCK];
    let aligned = zeros.as_ptr().align_offset(DIRECT_BLOCK);
    let zeros = &zeros[aligned..aligned + ZERO_FILL_CHUNK];
    let mut filled = false;
    if let Some(mut direct) = direct {
        // A file system that takes the open but refuses the writes falls back below.
        filled = write_zeros(&mut direct, zeros, size).is_ok();
    }
    if !filled {
        file.set_len(0)?;
        write_zeros(&mut file, zeros, size)?;
    }
    file.sync_all()?;
    Ok(file)
}

/// Block size direct writes are aligned to (offsets, lengths and the buffer's address).
const DIRECT_BLOCK: usize = 4096;

fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// Writes `size` bytes of `zeros` (repeated) from the start of `file`.
fn write_zeros(file: &mut File, zeros: &[u8], size: u64) -> io::Result<()> {
    let mut left = size;
    while left > 0 {
        let chunk = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..chunk])?;
        left -= chunk as u64;
    }
    Ok(())
}

/// An open segment: its file for writing and a read-only map of all of it.
pub(crate) struct Segment {
    /// Index of the segment's first record.
    pub(crate) first_index: u64,
    /// Where the file is, for error messages.
    pub(crate) path: PathBuf,
    /// The file, written by the io backend.
    pub(crate) file: File,
    /// 0 for a full segment; n for the n-th compaction of a compacted one, whose records are
    /// a sparse, sorted subset of its range of indices and which is never written to.
    pub(crate) compaction: u32,
    map: Mmap,
}

impl Segment {
    /// Maps an open segment file of exactly `size` bytes.
    pub(crate) fn from_file(
        file: File,
        path: PathBuf,
        first_index: u64,
        size: u64,
    ) -> io::Result<Self> {
        let length = file.metadata()?.len();
        if length != size {
            return Err(io::Error::other(format!(
                "segment is {length} bytes, expected {size}"
            )));
        }
        // SAFETY: the log directory is locked for this process (the LOCK file), and the log
        // never shrinks or rewrites a segment's durable bytes while it is open: records are
        // appended once, below the write offset nothing changes, and the only rewrite (zeroing
        // a torn tail) happens during recovery, before any slice of the map is handed out.
        // Another process modifying the file anyway breaks that contract, as for any mmap.
        let map = unsafe { Mmap::map(&file)? };
        // Reads by key land anywhere in the log: without this, each read of a page not in the
        // cache faults in the read-ahead window around it as well (8 MiB on some disks), and a
        // log larger than the page cache evicts itself to serve one record. Scans say what
        // they will read ([`Segment::will_read`]). Advice is a hint: if refused, reads still
        // work.
        let _ = map.advise(Advice::Random);
        Ok(Self {
            first_index,
            path,
            file,
            compaction: 0,
            map,
        })
    }

    /// The same segment, known to be the `compaction`-th compaction of its records.
    pub(crate) fn into_compacted(mut self, compaction: u32) -> Self {
        assert!(compaction > 0, "a compacted segment's round is at least 1");
        self.compaction = compaction;
        self
    }

    /// Whether this is a compacted segment.
    pub(crate) fn compacted(&self) -> bool {
        self.compaction > 0
    }

    /// The whole mapped segment. Only for recovery, before the writer starts: afterwards the
    /// tail of the last segment changes under the map, so use [`Segment::record_bytes`].
    pub(crate) fn bytes_for_recovery(&self) -> &[u8] {
        &self.map
    }

    /// Asks the kernel to read `len` bytes from `offset` ahead (a scan's next stretch), as
    /// random-access maps get no read-ahead of their own. A hint: ignored if refused.
    pub(crate) fn will_read(&self, offset: usize, len: usize) {
        let len = len.min(self.map.len().saturating_sub(offset));
        if len > 0 {
            let _ = self.map.advise_range(Advice::WillNeed, offset, len);
        }
    }

    /// Size of the segment file.
    pub(crate) fn size(&self) -> usize {
        self.map.len()
    }

    /// The bytes of the durable record at `offset`, padding included, or `None` if its header
    /// claims a size that runs past the end of the segment.
    ///
    /// Callers pass only offsets of records that were durable when they were indexed; those
    /// bytes never change again, so the returned slice is immutable for as long as `self` lives.
    pub(crate) fn record_bytes(&self, offset: usize) -> Option<&[u8]> {
        let header_end = offset.checked_add(RECORD_HEADER_SIZE)?;
        let header = self.map.get(offset..header_end)?;
        let size = record_size(super::record::read_u32(header, RECORD_PAYLOAD_LEN_OFFSET) as usize);
        self.map.get(offset..offset.checked_add(size)?)
    }

    /// Hints the CPU to start loading the cache line at `offset`, so that a batch of lookups
    /// overlaps its cache misses instead of paying them one after another.
    pub(crate) fn prefetch(&self, offset: usize) {
        if let Some(byte) = self.map.get(offset) {
            prefetch_read(byte);
        }
    }
}

/// Starts loading the cache line holding `value`.
#[inline]
pub(crate) fn prefetch_read<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: prefetching is only a hint; it never faults, even for an invalid address, and
        // here the pointer comes from a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Removes spare segments and unfinished compacted segments left by an earlier run.
pub(crate) fn remove_spares(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(SPARE_SUFFIX) || name.ends_with(COMPACTING_SUFFIX) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(987_654_321)),
            Some(987_654_321)
        );
        assert_eq!(parse_segment_file_name("1.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000000x.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000001.seg.spare"),
            None
        );
        assert_eq!(
            parse_compacted_file_name(&compacted_file_name(42)),
            Some(42)
        );
        assert_eq!(parse_segment_file_name(&compacted_file_name(42)), None);
        assert_eq!(
            parse_compacted_file_name("00000000000000000042.cseg.tmp"),
            None
        );
    }

    #[test]
    fn prepared_spares_are_zero_filled_and_sized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.seg.spare");
        let file = prepare_spare(&path, 3 * 1024 * 1024 + 8).unwrap();
        let segment = Segment::from_file(file, path, 1, 3 * 1024 * 1024 + 8).unwrap();
        assert!(segment.bytes_for_recovery().iter().all(|&b| b == 0));
        remove_spares(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
