//! What one PDS benchmark run found: a row per case (the median of its repeats, with what the
//! engine did meanwhile), the memory figures, and the JSON file.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use spine_core::engine::{EngineHandle, ShardStats};

use super::driver::Measured;

/// One case, one run.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub engine: &'static str,
    pub case: &'static str,
    /// Requests answered as the case expects a second, expected refusals included.
    pub ops_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub completed: u64,
    /// Of the completed, refusals the service gives in normal operation (a booking's slot
    /// taken by a racing booking).
    pub expected_refusals: u64,
    pub errors: u64,
    /// How long the run took, in seconds (less than asked when it used up what its set-up
    /// made; the whole transfer's time for the whole transfer).
    pub elapsed_s: f64,
    /// MiB of GP records a second, for the cases that carry them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mib_per_s: Option<f64>,
    /// Records per log batch (one write and `fdatasync` each).
    pub records_per_batch: f64,
    /// Bytes the logs wrote per completed request.
    pub log_bytes_per_request: f64,
    /// Requests (or steps of requests) per shard turn.
    pub inputs_per_turn: f64,
    /// Share of the shard threads' time spent executing turns.
    pub shard_busy_percent: f64,
    /// The logs' commit latency (queued to durable), worst shard.
    pub log_commit_p99_us: f64,
    /// The logs' flush latency (write + `fdatasync`), worst shard.
    pub log_flush_p99_us: f64,
}

/// The engine's counters, summed over shards.
#[derive(Clone, Copy, Default)]
pub struct Totals {
    batches: u64,
    records: u64,
    bytes: u64,
    turns: u64,
    inputs: u64,
    busy_nanos: u64,
}

impl Totals {
    pub fn of(stats: &[ShardStats]) -> Self {
        stats.iter().fold(Self::default(), |sum, shard| Self {
            batches: sum.batches + shard.batches,
            records: sum.records + shard.records_written,
            bytes: sum.bytes + shard.bytes_written,
            turns: sum.turns + shard.turns,
            inputs: sum.inputs + shard.inputs,
            busy_nanos: sum.busy_nanos + shard.busy_nanos,
        })
    }
}

impl Row {
    /// The row of `case`, measured between the counters `before` and now.
    pub fn new(
        case: &'static str,
        measured: &Measured,
        engine: &EngineHandle,
        before: Totals,
    ) -> Self {
        let after = Totals::of(&engine.stats());
        let batches = (after.batches - before.batches).max(1) as f64;
        let turns = (after.turns - before.turns).max(1) as f64;
        let latencies = engine.log_latencies();
        let worst = |pick: fn(&spine_storage::LatencyReport) -> f64| {
            latencies.iter().map(pick).fold(0.0, f64::max)
        };
        let seconds = measured.elapsed.as_secs_f64();
        let shard_seconds = seconds * engine.shard_count() as f64;
        Self {
            engine: "spine",
            case,
            ops_per_s: (measured.completed as f64 / seconds).round(),
            p50_us: measured.latency.value_at_quantile(0.5),
            p99_us: measured.latency.value_at_quantile(0.99),
            completed: measured.completed,
            expected_refusals: measured.expected,
            errors: measured.errors,
            elapsed_s: (seconds * 1000.0).round() / 1000.0,
            mib_per_s: (measured.bytes > 0)
                .then(|| round1(measured.bytes as f64 / f64::from(1 << 20) / seconds)),
            records_per_batch: round1((after.records - before.records) as f64 / batches),
            log_bytes_per_request: round1(
                (after.bytes - before.bytes) as f64 / measured.completed.max(1) as f64,
            ),
            inputs_per_turn: round1((after.inputs - before.inputs) as f64 / turns),
            shard_busy_percent: round1(
                100.0 * (after.busy_nanos - before.busy_nanos) as f64 / 1e9 / shard_seconds,
            ),
            log_commit_p99_us: worst(|latency| latency.commit.p99_us).round(),
            log_flush_p99_us: worst(|latency| latency.flush.p99_us).round(),
        }
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        let mut carried = String::new();
        if let Some(mib_per_s) = self.mib_per_s {
            carried += &format!("  {mib_per_s:.1} MiB/s in {:.3} s", self.elapsed_s);
        }
        if self.expected_refusals > 0 {
            carried += &format!("  ({} expected refusals)", self.expected_refusals);
        }
        format!(
            "{:<17} {:>9.0}/s  p50 {:>6} us  p99 {:>6} us  errors {}{carried}  | {:.0} records a \
             batch, {:.0} B a request, {:.0} inputs a turn, shards {:.0}% busy, log commit p99 \
             {:.0} us",
            self.case,
            self.ops_per_s,
            self.p50_us,
            self.p99_us,
            self.errors,
            self.records_per_batch,
            self.log_bytes_per_request,
            self.inputs_per_turn,
            self.shard_busy_percent,
            self.log_commit_p99_us,
        )
    }
}

/// The row with the median throughput of `runs` (all of one case).
pub fn median(mut runs: Vec<Row>) -> Row {
    assert!(!runs.is_empty(), "a case ran at least once");
    runs.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    runs.swap_remove(runs.len() / 2)
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// The whole run, as the JSON file holds it.
#[derive(Serialize)]
pub struct Report {
    pub machine: String,
    pub patients: usize,
    pub shards: usize,
    pub concurrency: usize,
    pub routing: String,
    pub repeat: usize,
    pub seconds: f64,
    pub load_per_s: f64,
    pub index_bytes_per_patient: f64,
    pub primary_index_bytes_per_patient: f64,
    pub memory_bytes_per_patient: f64,
    /// The data directory's allocated bytes after the load, per patient.
    pub disk_bytes_per_patient: f64,
    pub engine_fixed_bytes: u64,
    pub results: Vec<Row>,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("encoding the report")?;
        fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}
