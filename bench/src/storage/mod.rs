//! `spine-bench storage`: one workload, run in one process on Spine's log, redb and SQLite, each
//! configured so that every acknowledged append is fsync-durable.
//!
//! Where things are:
//! - [`measure`]: latency histograms, the timed loops shared by the engines, keys and payloads.
//! - [`spine`], [`redb`], [`sqlite`]: each engine's side of the cases.
//! - [`disk`]: the disk's own `fdatasync` latency, and dropping the page cache.
//! - [`report`]: result rows, the text table and the JSON file.

mod disk;
mod measure;
mod redb;
mod report;
mod spine;
mod sqlite;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::{Args, ValueEnum};
use tempfile::TempDir;

use crate::machine;
use report::{Report, Row};
use spine_storage::BackendChoice;

/// Concurrent appenders of the `append_durable` case: one (pure latency), a few, and many (how
/// well each engine turns concurrency into throughput).
const APPENDERS: [usize; 3] = [1, 16, 256];

/// Arguments of `spine-bench storage`.
#[derive(Args, Debug)]
pub struct StorageArgs {
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Directory in which each engine gets a fresh temporary directory, deleted afterwards. It
    /// must be on the disk to measure: tmpfs would measure memory, not durability.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// Seconds each append_durable run (per engine and appender count) and each read_random run
    /// lasts.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    seconds: f64,

    /// Runs of each append_durable measurement; the row gives the median of each figure. The
    /// disks of shared machines are noisy: one run can catch a stall another does not.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeat: usize,

    /// Records of 256 bytes written before timing recovery (spine only).
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    recover_records: u64,

    /// Records of 256 bytes loaded before the random reads.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    read_records: u64,

    /// Run only these cases (repeatable or comma separated); all when absent.
    #[arg(long, value_name = "CASE", value_delimiter = ',')]
    only: Vec<Case>,

    /// Engines to run, comma separated.
    #[arg(
        long,
        value_name = "ENGINE",
        value_delimiter = ',',
        default_value = "spine,redb,sqlite"
    )]
    engines: Vec<Engine>,

    /// Io backends to run spine's append case on, comma separated; each gives its own rows, so
    /// they can be read side by side (`auto` picks io_uring where the kernel allows it). Reads
    /// and recovery do not go through the backend and run with the first one only.
    #[arg(
        long,
        value_name = "BACKEND",
        value_delimiter = ',',
        default_value = "auto,portable"
    )]
    spine_backends: Vec<SpineBackend>,

    /// Size of spine's segment files in MiB (segments are preallocated and zero-filled, so this
    /// sets how often the log rolls to a new one and prepares the next in the background).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    spine_segment_mib: u64,

    /// Background index checkpoint every this many records during spine's append case (0: none,
    /// so that the figures are the group commit's alone; the log's default is 1,000,000).
    #[arg(long, value_name = "RECORDS", default_value_t = 0)]
    spine_checkpoint_interval: u64,
}

/// An io backend of spine's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SpineBackend {
    /// io_uring where the kernel allows it, otherwise portable.
    Auto,
    /// io_uring: linked WRITE + FSYNC(DATASYNC).
    IoUring,
    /// pwrite + fdatasync.
    Portable,
}

impl SpineBackend {
    fn choice(self) -> BackendChoice {
        match self {
            SpineBackend::Auto => BackendChoice::Auto,
            SpineBackend::IoUring => BackendChoice::IoUring,
            SpineBackend::Portable => BackendChoice::Portable,
        }
    }
}

/// A part of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Case {
    /// Durable 256-byte appends with 1, 16 and 256 concurrent appenders.
    Append,
    /// Random point reads by key on one thread.
    Read,
    /// Reopen time of a large log, with and without a checkpoint (spine only).
    Recover,
}

/// A storage engine under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// Spine's log (`spine_storage::Log`).
    Spine,
    /// redb, `Durability::Immediate`.
    Redb,
    /// SQLite, `journal_mode=WAL`, `synchronous=FULL`.
    Sqlite,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Spine => "spine",
            Engine::Redb => "redb",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// Runs the cases asked for, prints the table and writes the JSON file.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn run(args: &StorageArgs) -> Result<()> {
    ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be a positive number"
    );
    ensure!(args.read_records > 0, "--read-records must be at least 1");
    ensure!(args.repeat > 0, "--repeat must be at least 1");
    ensure!(
        !args.spine_backends.is_empty(),
        "--spine-backends needs at least one backend"
    );
    ensure!(
        args.spine_segment_mib > 0,
        "--spine-segment-mib must be at least 1"
    );
    ensure!(
        args.recover_records > 0,
        "--recover-records must be at least 1"
    );
    let seconds = Duration::from_secs_f64(args.seconds);
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("bench directory {}", args.dir.display()))?;
    let machine = machine::describe(&dir);
    if machine.filesystem == "tmpfs" {
        eprintln!(
            "warning: {} is on tmpfs: fsync is free there, so nothing below measures a disk",
            dir.display()
        );
    }
    eprintln!("machine: {}", machine.summary);
    eprintln!(
        "bench directory: {} ({})",
        dir.display(),
        machine.filesystem
    );

    let baseline = disk::fdatasync_baseline(fresh_dir(&dir, "disk")?.path())?;
    eprintln!("{}", baseline.describe());
    let cases = if args.only.is_empty() {
        vec![Case::Append, Case::Read, Case::Recover]
    } else {
        args.only.clone()
    };
    let mut rows = Vec::new();
    for case in [Case::Append, Case::Read, Case::Recover] {
        if !cases.contains(&case) {
            continue;
        }
        for &engine in &args.engines {
            // Only spine has io backends to choose from.
            let backends = match (engine, case) {
                (Engine::Spine, Case::Append) => args.spine_backends.clone(),
                (Engine::Spine, Case::Read | Case::Recover) => args.spine_backends[..1].to_vec(),
                (Engine::Redb | Engine::Sqlite, _) => vec![SpineBackend::Auto],
            };
            for backend in backends {
                let options = spine::SpineOptions {
                    backend: backend.choice(),
                    segment_size: args.spine_segment_mib << 20,
                    checkpoint_interval_records: args.spine_checkpoint_interval,
                };
                for row in run_case(case, engine, args, seconds, &dir, options)? {
                    eprintln!("{}", row.summary());
                    rows.push(row);
                }
            }
        }
    }
    // Measured again at the end: a shared disk can change during a run, and a figure is only
    // readable against the disk it ran on.
    let after = disk::fdatasync_baseline(fresh_dir(&dir, "disk-after")?.path())?;
    eprintln!("after the run: {}", after.describe());
    let report = Report::new(machine.summary, &baseline, &after, rows);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The rows of one case on one engine; each measurement gets a fresh directory so that no engine
/// starts with another run's data or free space.
fn run_case(
    case: Case,
    engine: Engine,
    args: &StorageArgs,
    seconds: Duration,
    dir: &Path,
    options: spine::SpineOptions,
) -> Result<Vec<Row>> {
    let label = format!("{}-{case:?}", engine.name()).to_lowercase();
    let context = || format!("{} {case:?}", engine.name());
    match case {
        Case::Append => {
            let mut rows = Vec::with_capacity(APPENDERS.len());
            for appenders in APPENDERS {
                let mut runs = Vec::with_capacity(args.repeat);
                for _ in 0..args.repeat {
                    let dir = fresh_dir(dir, &label)?;
                    let row = match engine {
                        Engine::Spine => {
                            spine::append_durable(dir.path(), appenders, seconds, options)
                        }
                        Engine::Redb => redb::append_durable(dir.path(), appenders, seconds),
                        Engine::Sqlite => sqlite::append_durable(dir.path(), appenders, seconds),
                    };
                    runs.push(
                        row.with_context(|| format!("{}, {appenders} appenders", context()))?,
                    );
                }
                rows.push(Row::median_of(runs));
            }
            Ok(rows)
        }
        Case::Read => {
            let dir = fresh_dir(dir, &label)?;
            let records = args.read_records;
            let row = match engine {
                Engine::Spine => spine::read_random(dir.path(), records, seconds, options),
                Engine::Redb => redb::read_random(dir.path(), records, seconds),
                Engine::Sqlite => sqlite::read_random(dir.path(), records, seconds),
            };
            Ok(vec![row.with_context(context)?])
        }
        Case::Recover => match engine {
            Engine::Spine => {
                let dir = fresh_dir(dir, &label)?;
                spine::recover(dir.path(), args.recover_records, options).with_context(context)
            }
            // Reopening redb or SQLite after a clean close reads a header, not the data: there is
            // nothing comparable to time.
            Engine::Redb | Engine::Sqlite => {
                eprintln!("recover: spine only, skipping {}", engine.name());
                Ok(Vec::new())
            }
        },
    }
}

fn fresh_dir(parent: &Path, label: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("spine-bench-{label}-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))
}
