//! A one-line description of the machine, so that a result file says where it was measured.
//! Everything comes from `/proc`; a part that cannot be read is reported as unknown rather than
//! failing the run.

use std::fs;
use std::path::Path;
use std::thread;

/// The machine and the filesystem of the bench directory.
pub struct Machine {
    /// For example `2 cores, AMD EPYC, 23.4 GiB, kernel 6.18.44, ext4`.
    pub summary: String,
    /// Filesystem type of the bench directory, for example `ext4` or `tmpfs`.
    pub filesystem: String,
}

/// A fresh data directory named `prefix…` inside `dir` (removed when dropped), and the
/// machine it is on, announced on stderr: how each benchmark begins.
pub fn scratch_dir(dir: &Path, prefix: &str) -> anyhow::Result<(tempfile::TempDir, Machine)> {
    use anyhow::Context;
    let base =
        fs::canonicalize(dir).with_context(|| format!("bench directory {}", dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .context("creating the data directory")?;
    let machine = describe(scratch.path());
    eprintln!("machine: {}", machine.summary);
    Ok((scratch, machine))
}

/// Describes this machine and the filesystem `dir` (canonical) is on.
pub fn describe(dir: &Path) -> Machine {
    let cores = thread::available_parallelism().map_or(0, |cores| cores.get());
    let cpu = proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown CPU".into());
    let memory = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|total| total.trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or("unknown memory".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / (1 << 20) as f64)
        });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |release| release.trim().to_owned());
    let filesystem = filesystem_type(dir).unwrap_or_else(|| "unknown".into());
    Machine {
        summary: format!("{cores} cores, {cpu}, {memory}, kernel {kernel}, {filesystem}"),
        filesystem,
    }
}

/// The value of the first `name: value` line of a `/proc` file.
fn proc_field(path: &str, name: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_owned())
    })
}

/// The type of the filesystem mounted deepest above `dir`.
fn filesystem_type(dir: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            // The kernel escapes spaces in mount points as `\040`.
            let mount_point = fields.next()?.replace("\\040", " ");
            let kind = fields.next()?;
            dir.starts_with(&mount_point)
                .then(|| (mount_point.len(), kind.to_owned()))
        })
        // Later mounts shadow earlier ones at the same point, so the last longest wins.
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, kind)| kind)
}

/// The bytes the files under `dir` take on the disk (their allocated blocks: a segment's
/// preallocated, never-written end counts, a hole does not).
pub fn allocated_bytes(dir: &Path) -> anyhow::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            allocated_bytes(&entry.path())?
        } else {
            metadata.blocks() * 512
        };
    }
    Ok(total)
}
