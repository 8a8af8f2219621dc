//! The disk's own limits: how long one `fdatasync` takes, measured with plain file calls, to read
//! the engines' figures against. Also dropping the page cache before cold reopens.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use super::measure::Latency;

/// Flushes timed per variant: enough for a stable p99, about a second in all on this machine.
const FLUSH_COUNT: usize = 2000;

/// Bytes written before each flush: one page.
const WRITE_SIZE: usize = 4096;

/// Bytes written before each flush in the batch-sized variant: about one group commit of 256
/// appends of 256 bytes (75 KiB), the size spine's flushes have under load.
const BATCH_WRITE_SIZE: usize = 64 * 1024;

/// Flushes timed in the batch-sized variant.
const BATCH_FLUSH_COUNT: usize = 500;

/// `fdatasync` latency of the two ways a log can write.
pub struct DiskBaseline {
    /// Overwriting a preallocated, zero-filled, synced file, as spine writes its segments: the
    /// flush only writes data (no file-size or extent change in the journal).
    pub overwrite: Latency,
    /// Appending to a growing file: each flush also commits the new file size.
    pub append: Latency,
    /// Overwriting 64 KiB of a preallocated file: the disk's cost of one batch-sized flush.
    pub overwrite_64k: Latency,
}

impl DiskBaseline {
    pub fn describe(&self) -> String {
        format!(
            "disk: 4 KiB overwrite + fdatasync p50 {:.0} us, p99 {:.0} us; \
             4 KiB append + fdatasync p50 {:.0} us, p99 {:.0} us; \
             64 KiB overwrite + fdatasync p50 {:.0} us, p99 {:.0} us",
            self.overwrite.p50_us(),
            self.overwrite.p99_us(),
            self.append.p50_us(),
            self.append.p99_us(),
            self.overwrite_64k.p50_us(),
            self.overwrite_64k.p99_us(),
        )
    }
}

/// Measures both variants in `dir`, which should be empty and is left with two files.
pub fn fdatasync_baseline(dir: &Path) -> Result<DiskBaseline> {
    let page = vec![0x5Au8; WRITE_SIZE];

    let overwrite = overwrite_flushes(&dir.join("preallocated"), WRITE_SIZE, FLUSH_COUNT)?;
    let overwrite_64k = overwrite_flushes(
        &dir.join("preallocated-64k"),
        BATCH_WRITE_SIZE,
        BATCH_FLUSH_COUNT,
    )?;

    let path = dir.join("growing");
    let mut file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut append = Latency::new();
    for _ in 0..FLUSH_COUNT {
        let started = Instant::now();
        file.write_all(&page)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("{}: append + fdatasync", path.display()))?;
        append.record(started.elapsed());
    }
    Ok(DiskBaseline {
        overwrite,
        append,
        overwrite_64k,
    })
}

/// Times `count` writes of `size` bytes at successive offsets of a preallocated file, each
/// followed by `fdatasync`.
fn overwrite_flushes(path: &Path, size: usize, count: usize) -> Result<Latency> {
    let block = vec![0x5Au8; size];
    let file = preallocated(path, count * size)?;
    let mut latency = Latency::new();
    for index in 0..count {
        let started = Instant::now();
        file.write_all_at(&block, (index * size) as u64)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("{}: write + fdatasync", path.display()))?;
        latency.record(started.elapsed());
    }
    Ok(latency)
}

/// A file of `size` zero bytes, written and synced, the way spine prepares a segment.
fn preallocated(path: &Path, size: usize) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&vec![0u8; size])
        .and_then(|()| file.sync_all())
        .with_context(|| format!("zero-filling {}", path.display()))?;
    Ok(file)
}

/// Writes dirty pages back, then asks the kernel to drop the page cache, so that the next reads
/// come from the disk. Needs root; returns whether the cache was dropped.
pub fn drop_page_cache() -> bool {
    // `drop_caches` only drops clean pages: sync first.
    let synced = Command::new("sync")
        .status()
        .is_ok_and(|status| status.success());
    synced && fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}
