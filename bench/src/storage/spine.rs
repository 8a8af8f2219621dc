//! Spine's log (`spine_storage::Log`): durable appends from tokio tasks, batched random reads,
//! and reopen time with and without a checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use spine_storage::format::record_size;
use spine_storage::{BackendChoice, Key, Log, LogConfig, NewRecord};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::disk;
use super::measure::{self, Latency, Measured, PAYLOAD_SIZE, READ_CHUNK};
use super::report::{Row, round};

/// Record kind of every appended record (spine's kinds are application-defined).
const KIND: u8 = 1;

/// Tokio worker threads: one per core of the development machine. The log's writer thread
/// shares those cores, as it would in the server.
const WORKER_THREADS: usize = 2;

/// Concurrent appenders while loading records: enough to fill the log's 1 MiB batches (about
/// 3,500 records of 256 bytes) and below its 16,384 pending appends, so loading runs at the
/// group-commit bandwidth rather than at one flush per few records.
const LOAD_APPENDERS: u64 = 4096;

/// Pause between a fresh log's first append and the timed run. That append takes the first spare
/// segment, and the preparer thread at once zero-fills and syncs the next 64 MiB one, which takes
/// a few hundred milliseconds of disk bandwidth. A long-running log prepared it long ago; at one
/// appender it would otherwise land inside the timed run and compete with every flush. Later
/// segment rolls, at a rate set by the throughput, are part of the measurement.
const SPARE_SETTLE: Duration = Duration::from_millis(500);

/// Appends per second the `append_durable` index is sized for: the group-commit bandwidth ceiling
/// of the development machine (about 2.5 million 256-byte records/s, `shared/MACHINE.md`), so the
/// index never doubles (a pause) in the middle of a run.
const APPENDS_PER_S_MAX: f64 = 2.5e6;

/// The log settings a run of spine is measured with.
#[derive(Clone, Copy, Debug)]
pub struct SpineOptions {
    /// Io backend.
    pub backend: BackendChoice,
    /// Segment file size in bytes.
    pub segment_size: u64,
    /// Background checkpoint interval in the append case (0: none).
    pub checkpoint_interval_records: u64,
}

fn config(dir: &Path, expected_keys: u64, options: SpineOptions) -> LogConfig {
    let mut config = LogConfig::new(dir);
    config.backend = options.backend;
    config.segment_size = options.segment_size;
    config.expected_keys = usize::try_from(expected_keys).unwrap_or(usize::MAX);
    // No background checkpoints unless asked for: one would replay the log into a shadow index
    // and write a file in the middle of whichever run it landed in. `recover` measures
    // checkpoints on their own.
    config.checkpoint_interval_records = options.checkpoint_interval_records;
    // Nor one on close where no reopen follows: the checkpoint of an index sized for millions of
    // keys is hundreds of MB, whose writeback would slow the next run's flushes.
    config.checkpoint_on_close = false;
    config
}

fn open(config: LogConfig) -> Result<Arc<Log>> {
    let dir = config.dir.clone();
    let (log, _report) =
        Log::open(config).with_context(|| format!("opening the log in {}", dir.display()))?;
    Ok(Arc::new(log))
}

fn close(log: Arc<Log>) -> Result<()> {
    let log = Arc::into_inner(log).context("the log is still shared after its appenders ended")?;
    log.close().context("closing the log")
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .build()
        .context("starting the tokio runtime")
}

fn key(value: u64) -> Result<Key> {
    Key::new(value).context("key 0 is reserved")
}

/// Waits for every task and returns their results; the first error or panic fails the lot.
async fn join_all<T>(tasks: Vec<JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.context("an appender task panicked")??);
    }
    Ok(results)
}

/// `appenders` tokio tasks append for `duration`, each awaiting one durable append at a time.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn append_durable(
    dir: &Path,
    appenders: usize,
    duration: Duration,
    options: SpineOptions,
) -> Result<Row> {
    let log = open(config(
        dir,
        (duration.as_secs_f64() * APPENDS_PER_S_MAX) as u64,
        options,
    ))?;
    let runtime = runtime()?;
    let payload = Bytes::from(measure::payload());
    // The first append of a fresh log waits for its first segment: keep that out of the figures.
    // Its key lies above every appender's keys.
    runtime
        .block_on(log.append(NewRecord::put(key(u64::MAX)?, KIND, payload.clone())))
        .context("warm-up append")?;
    std::thread::sleep(SPARE_SETTLE);
    log.reset_latencies();
    let before = log.stats();
    let deadline = Instant::now() + duration;
    let per_appender = runtime.block_on(join_all(
        (0..appenders)
            .map(|appender| {
                let log = Arc::clone(&log);
                let payload = payload.clone();
                runtime.spawn(async move {
                    let mut latency = Latency::new();
                    let mut in_time = 0;
                    let mut index = 0;
                    while Instant::now() < deadline {
                        let key = key(measure::appender_key(appender, index))?;
                        let call = Instant::now();
                        log.append(NewRecord::put(key, KIND, payload.clone()))
                            .await
                            .with_context(|| format!("appending key {}", key.get()))?;
                        let done = Instant::now();
                        latency.record(done - call);
                        in_time += u64::from(done <= deadline);
                        index += 1;
                    }
                    Ok((latency, in_time))
                })
            })
            .collect(),
    ))?;
    let after = log.stats();
    let inside = log.latencies();
    let measured = Measured::appenders(duration, &per_appender);
    let batches = after.batches - before.batches;
    let records = after.records - before.records;
    ensure!(
        records == measured.latency.count(),
        "the log wrote {records} records but {} appends were acknowledged",
        measured.latency.count()
    );
    let backend = log.backend().to_string();
    drop(runtime);
    close(log)?;
    Ok(Row {
        appenders: Some(appenders),
        records: Some(records),
        backend: Some(backend),
        avg_batch_records: Some(round(records as f64 / batches.max(1) as f64, 1)),
        flush_us_mean: Some(round(
            (after.flush_nanos - before.flush_nanos) as f64 / batches.max(1) as f64 / 1e3,
            1,
        )),
        commit_p50_us: Some(round(inside.commit.p50_us, 1)),
        commit_p99_us: Some(round(inside.commit.p99_us, 1)),
        flush_p50_us: Some(round(inside.flush.p50_us, 1)),
        flush_p99_us: Some(round(inside.flush.p99_us, 1)),
        note: Some(format!(
            "checkpoint_interval_records {}, checkpoint_on_close false",
            options.checkpoint_interval_records
        )),
        ..Row::measured("spine", "append_durable", &measured)
    })
}

/// Appends keys `1..=records` from [`LOAD_APPENDERS`] tasks; returns how long that took.
fn load(runtime: &Runtime, log: &Arc<Log>, records: u64, payload: &Bytes) -> Result<Duration> {
    let started = Instant::now();
    runtime.block_on(join_all(
        (0..LOAD_APPENDERS.min(records))
            .map(|appender| {
                let log = Arc::clone(log);
                let payload = payload.clone();
                runtime.spawn(async move {
                    // Appender `a` writes keys a + 1, a + 1 + LOAD_APPENDERS, ...: every key once.
                    let mut value = appender + 1;
                    while value <= records {
                        log.append(NewRecord::put(key(value)?, KIND, payload.clone()))
                            .await
                            .with_context(|| format!("loading key {value}"))?;
                        value += LOAD_APPENDERS;
                    }
                    Ok(())
                })
            })
            .collect(),
    ))?;
    let elapsed = started.elapsed();
    ensure!(
        log.key_count() as u64 == records,
        "loaded {records} keys but the index holds {}",
        log.key_count()
    );
    Ok(elapsed)
}

/// Loads `records` records, then reads random keys on this thread with `get_many`, and again
/// with one `get` per key.
pub fn read_random(
    dir: &Path,
    records: u64,
    duration: Duration,
    options: SpineOptions,
) -> Result<Row> {
    let log = open(config(dir, records, options))?;
    let load_elapsed = {
        let runtime = runtime()?;
        load(&runtime, &log, records, &Bytes::from(measure::payload()))?
    };
    let keys = measure::random_keys(records)
        .into_iter()
        .map(key)
        .collect::<Result<Vec<Key>>>()?;

    let batched = measure::read_loop(duration, &keys, |chunk, latency| {
        let mut sum = 0;
        let mut missing = 0;
        let started = Instant::now();
        log.get_many(chunk, |_, view| match view {
            Some(view) => sum += measure::first_byte(view.payload()),
            None => missing += 1,
        })?;
        // One timing per chunk, shared evenly by its keys: timing each key inside `get_many`
        // would cost more than the lookup.
        latency.record_n(started.elapsed() / chunk.len() as u32, chunk.len() as u64);
        ensure!(missing == 0, "{missing} keys of a chunk were not found");
        Ok(sum)
    })?;

    let plain = measure::read_loop(duration, &keys, |chunk, latency| {
        let mut sum = 0;
        for &key in chunk {
            let started = Instant::now();
            let first = log.get(key, |view| measure::first_byte(view.payload()))?;
            latency.record(started.elapsed());
            sum += first.with_context(|| format!("key {} not found", key.get()))?;
        }
        Ok(sum)
    })?;
    close(log)?;
    Ok(Row {
        records: Some(records),
        load_records_per_s: Some(round(records as f64 / load_elapsed.as_secs_f64(), 0)),
        plain_get_ops_per_s: Some(round(plain.ops_per_s(), 0)),
        plain_get_p50_us: Some(round(plain.latency.p50_us(), 3)),
        plain_get_p99_us: Some(round(plain.latency.p99_us(), 3)),
        note: Some(format!(
            "get_many of {READ_CHUNK} random keys per call, one thread; \
             latency per key = latency per call / {READ_CHUNK}; plain_get_*: one get per key"
        )),
        ..Row::measured("spine", "read_random", &batched)
    })
}

/// Writes `records` records, closes the log (writing a checkpoint), then times reopening it
/// from the checkpoint and by a full scan, each after dropping the page cache where allowed.
pub fn recover(dir: &Path, records: u64, options: SpineOptions) -> Result<Vec<Row>> {
    let mut write_config = config(dir, records, options);
    write_config.checkpoint_on_close = true;
    let log = open(write_config)?;
    let load_elapsed = {
        let runtime = runtime()?;
        load(&runtime, &log, records, &Bytes::from(measure::payload()))?
    };
    // A checkpoint of the full log, timed for how long it holds the writer off.
    let started = Instant::now();
    log.checkpoint().context("checkpoint of the loaded log")?;
    let checkpoint_elapsed = started.elapsed();
    let stats = log.stats();
    eprintln!(
        "recover: checkpoint of {records} records took {:.0} ms, holding the state lock {:.0} ms",
        checkpoint_elapsed.as_secs_f64() * 1e3,
        stats.checkpoint_lock_nanos_max as f64 / 1e6,
    );
    eprintln!(
        "recover: wrote {records} records in {:.1} s ({} batches, {:.0} records per batch)",
        load_elapsed.as_secs_f64(),
        stats.batches,
        stats.records as f64 / stats.batches.max(1) as f64,
    );
    close(log)?;

    let mut rows = Vec::with_capacity(2);
    for use_checkpoint in [true, false] {
        let cold_cache = disk::drop_page_cache();
        let mut config = config(dir, records, options);
        config.use_checkpoint = use_checkpoint;
        let started = Instant::now();
        let (log, report) = Log::open(config)
            .with_context(|| format!("reopening the log, use_checkpoint {use_checkpoint}"))?;
        let elapsed = started.elapsed();
        ensure!(
            report.records == records,
            "reopened with {} records, wrote {records}",
            report.records
        );
        ensure!(
            report.checkpoint.is_some() == use_checkpoint,
            "use_checkpoint {use_checkpoint} but checkpoint used: {:?}",
            report.checkpoint
        );
        log.close().context("closing the reopened log")?;
        let seconds = elapsed.as_secs_f64();
        let bytes = report.records as f64 * record_size(PAYLOAD_SIZE) as f64;
        rows.push(Row {
            engine: "spine",
            case: "recover",
            checkpoint: Some(use_checkpoint),
            records: Some(report.records),
            ops_per_s: round(report.records as f64 / seconds, 0),
            mb_per_s: Some(round(bytes / seconds / 1e6, 1)),
            cold_cache: Some(cold_cache),
            open_ms: Some(round(seconds * 1e3, 1)),
            records_scanned: Some(report.records_scanned),
            load_records_per_s: Some(round(records as f64 / load_elapsed.as_secs_f64(), 0)),
            note: Some(
                "ops_per_s = records recovered per second of Log::open; \
                 mb_per_s = record bytes (header + payload + padding) per second"
                    .into(),
            ),
            ..Row::default()
        });
    }
    Ok(rows)
}
