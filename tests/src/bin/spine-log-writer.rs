//! Appends to a log forever, printing `ack <index> <key>` for every durable append, so that a
//! crash test can SIGKILL it at a random moment and check what survived.
//!
//! Protocol on stdout: `ready` once the log is open, then one `ack` line per append, printed
//! only after the append resolved (the record is durable). Records that were written but whose
//! ack line was not printed yet may survive a kill; the checker allows that. Keys come from
//! [`crash_key`] and payloads from [`payload_for_key`], so the checker needs nothing but the key
//! to verify a record. Any error ends the process with a message on stderr and a non-zero status.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, ValueEnum};
use spine_storage::{BackendChoice, Key, Log, NewRecord};
use spine_tests::{CRASH_RECORD_KIND, crash_key, crash_log_config, payload_for_key};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Backend {
    Auto,
    IoUring,
    Portable,
}

impl From<Backend> for BackendChoice {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Auto => BackendChoice::Auto,
            Backend::IoUring => BackendChoice::IoUring,
            Backend::Portable => BackendChoice::Portable,
        }
    }
}

/// Appends deterministic records to a log until killed.
#[derive(Debug, Parser)]
struct Args {
    /// Log directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Io backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: Backend,
    /// Concurrent appending tasks.
    #[arg(long, default_value_t = 8)]
    appenders: usize,
    /// Segment size in bytes; small, so that segments roll often.
    #[arg(long, default_value_t = 256 * 1024)]
    segment_size: u64,
    /// Background checkpoint every this many records; small, so that checkpoints happen often.
    #[arg(long, default_value_t = 2000)]
    checkpoint_interval: u64,
    /// Run seed: the high half of every key, so runs with different seeds never share a key.
    #[arg(long)]
    seed: u32,
}

/// Acks waiting for the printer at most; a slow stdout reader slows the appenders down.
const ACK_QUEUE: usize = 4096;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.appenders == 0 {
        bail!("--appenders must be at least 1");
    }
    let mut config = crash_log_config(&args.dir, args.segment_size);
    config.backend = args.backend.into();
    config.checkpoint_interval_records = args.checkpoint_interval;
    let (log, report) =
        Log::open(config).with_context(|| format!("opening the log in {}", args.dir.display()))?;
    eprintln!(
        "spine-log-writer: opened {} ({} records, backend {})",
        args.dir.display(),
        report.records,
        report.backend
    );
    let log = Arc::new(log);

    // One thread owns stdout, so ack lines never interleave and are flushed promptly.
    let (acks, ack_receiver) = mpsc::channel(ACK_QUEUE);
    let printer = std::thread::Builder::new()
        .name("ack-printer".into())
        .spawn(move || print_acks(ack_receiver))
        .context("starting the ack printer thread")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let appended = runtime.block_on(run_appenders(&log, args.seed, args.appenders, acks));
    // The appenders only stop on an error; report the first one (or the printer's).
    match appended {
        Err(error) => Err(error),
        Ok(()) => match printer.join() {
            Ok(Err(error)) => Err(error),
            _ => Err(anyhow!("the ack printer stopped unexpectedly")),
        },
    }
}

/// Prints `ready`, then one `ack` line per acknowledged append, until every sender is gone.
fn print_acks(mut acks: mpsc::Receiver<(u64, u64)>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let write_error = "writing to stdout";
    writeln!(out, "ready").context(write_error)?;
    out.flush().context(write_error)?;
    while let Some((index, key)) = acks.blocking_recv() {
        writeln!(out, "ack {index} {key}").context(write_error)?;
        // Drain what is already queued before flushing: fewer writes, same guarantee (every
        // printed line is for a durable append).
        while let Ok((index, key)) = acks.try_recv() {
            writeln!(out, "ack {index} {key}").context(write_error)?;
        }
        out.flush().context(write_error)?;
    }
    Ok(())
}

/// Runs `appenders` tasks that append forever; returns the first error.
async fn run_appenders(
    log: &Arc<Log>,
    seed: u32,
    appenders: usize,
    acks: mpsc::Sender<(u64, u64)>,
) -> Result<()> {
    let counter = Arc::new(AtomicU32::new(1));
    let mut tasks = JoinSet::new();
    for _ in 0..appenders {
        tasks.spawn(append_forever(
            Arc::clone(log),
            seed,
            Arc::clone(&counter),
            acks.clone(),
        ));
    }
    drop(acks);
    match tasks.join_next().await {
        Some(Ok(Err(error))) => Err(error),
        Some(Err(join_error)) => Err(anyhow!("an appender task failed: {join_error}")),
        Some(Ok(Ok(()))) | None => Err(anyhow!("an appender stopped without an error")),
    }
}

async fn append_forever(
    log: Arc<Log>,
    seed: u32,
    counter: Arc<AtomicU32>,
    acks: mpsc::Sender<(u64, u64)>,
) -> Result<()> {
    loop {
        let count = counter.fetch_add(1, Ordering::Relaxed);
        if count == u32::MAX {
            bail!("key space of seed {seed} exhausted");
        }
        // The one counter whose key would be 0 is skipped; keys stay unique.
        let Some(key) = crash_key(seed, count).and_then(Key::new) else {
            continue;
        };
        let record = NewRecord::put(key, CRASH_RECORD_KIND, payload_for_key(key.get()));
        let position = log
            .append(record)
            .await
            .with_context(|| format!("appending key {}", key.get()))?;
        acks.send((position.index, key.get()))
            .await
            .map_err(|_| anyhow!("the ack printer stopped (stdout closed?)"))?;
    }
}
