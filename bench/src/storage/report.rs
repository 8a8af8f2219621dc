//! What a run found: the machine, the disk's own flush latency and one row per engine, case and
//! appender count; printed as a text table and written as JSON.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::disk::DiskBaseline;
use super::measure::Measured;

/// The JSON file's top level.
#[derive(Serialize)]
pub struct Report {
    pub machine: String,
    /// 4 KiB overwrite of a preallocated, synced file + `fdatasync`: the floor of any durable
    /// append.
    pub fdatasync_p50_us: f64,
    pub fdatasync_p99_us: f64,
    /// 4 KiB append to a growing file + `fdatasync`.
    pub append_fdatasync_p50_us: f64,
    pub append_fdatasync_p99_us: f64,
    /// 64 KiB overwrite of a preallocated, synced file + `fdatasync`: a batch-sized flush.
    pub fdatasync_64k_p50_us: f64,
    pub fdatasync_64k_p99_us: f64,
    /// The same two overwrite figures measured again after the run, to show drift during it.
    pub fdatasync_after_p50_us: f64,
    pub fdatasync_after_p99_us: f64,
    pub fdatasync_64k_after_p50_us: f64,
    pub fdatasync_64k_after_p99_us: f64,
    pub results: Vec<Row>,
}

/// One result. Fields that do not apply to a case are left out of the JSON.
#[derive(Serialize, Default)]
pub struct Row {
    pub engine: &'static str,
    pub case: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appenders: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// Records in the store: appends acknowledged (`append_durable`, including those that ended
    /// after the deadline), records loaded (`read_random`) or recovered (`recover`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// `append_durable`: appends acknowledged by the deadline per second of the run.
    pub ops_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// Payload megabytes (10^6 bytes) per second; for `recover`, record bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// Spine's io backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Spine: records per group commit (one write + one `fdatasync`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg_batch_records: Option<f64>,
    /// Spine: mean time of one batch's write + `fdatasync`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_us_mean: Option<f64>,
    /// Spine: commit latency measured inside the log, from an append entering the queue to its
    /// batch being durable (without the appender task's own scheduling delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_p99_us: Option<f64>,
    /// Spine: one batch's write + `fdatasync`, measured inside the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_p99_us: Option<f64>,
    /// How fast the records were loaded before reading or recovering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_records_per_s: Option<f64>,
    /// Spine `read_random`: one plain `Log::get` per key, beside the batched figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_get_ops_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_get_p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_get_p99_us: Option<f64>,
    /// `recover`: whether the page cache was dropped before the reopen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_cache: Option<bool>,
    /// `recover`: wall time of `Log::open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_ms: Option<f64>,
    /// `recover`: records verified by scanning (those after the checkpoint, or all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_scanned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// One row from repeated runs of the same measurement: each figure is the median of the
    /// runs' figures (so a row may combine figures of different runs), and the note says so.
    pub fn median_of(mut runs: Vec<Row>) -> Row {
        assert!(!runs.is_empty(), "at least one run");
        let count = runs.len();
        let median = |values: Vec<f64>| {
            let mut values = values;
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let field = |get: fn(&Row) -> Option<f64>, runs: &[Row]| {
            let values: Vec<f64> = runs.iter().filter_map(get).collect();
            (!values.is_empty()).then(|| median(values))
        };
        let ops_per_s = median(runs.iter().map(|r| r.ops_per_s).collect());
        let p50_us = field(|r| r.p50_us, &runs);
        let p99_us = field(|r| r.p99_us, &runs);
        let mb_per_s = field(|r| r.mb_per_s, &runs);
        let avg_batch_records = field(|r| r.avg_batch_records, &runs);
        let flush_us_mean = field(|r| r.flush_us_mean, &runs);
        let commit_p50_us = field(|r| r.commit_p50_us, &runs);
        let commit_p99_us = field(|r| r.commit_p99_us, &runs);
        let flush_p50_us = field(|r| r.flush_p50_us, &runs);
        let flush_p99_us = field(|r| r.flush_p99_us, &runs);
        let records = field(|r| r.records.map(|n| n as f64), &runs).map(|n| n as u64);
        let mut row = runs.swap_remove(0);
        row.ops_per_s = ops_per_s;
        row.p50_us = p50_us;
        row.p99_us = p99_us;
        row.mb_per_s = mb_per_s;
        row.avg_batch_records = avg_batch_records;
        row.flush_us_mean = flush_us_mean;
        row.commit_p50_us = commit_p50_us;
        row.commit_p99_us = commit_p99_us;
        row.flush_p50_us = flush_p50_us;
        row.flush_p99_us = flush_p99_us;
        row.records = records;
        if count > 1 {
            let note = format!("median of {count} runs");
            row.note = Some(match row.note.take() {
                Some(existing) => format!("{note}; {existing}"),
                None => note,
            });
        }
        row
    }

    /// A row with the throughput and latency of a timed run.
    pub fn measured(engine: &'static str, case: &'static str, measured: &Measured) -> Self {
        Self {
            engine,
            case,
            ops_per_s: round(measured.ops_per_s(), 0),
            p50_us: Some(round(measured.latency.p50_us(), 3)),
            p99_us: Some(round(measured.latency.p99_us(), 3)),
            mb_per_s: Some(round(measured.mb_per_s(), 2)),
            ..Self::default()
        }
    }

    /// One line for the progress output.
    pub fn summary(&self) -> String {
        let cells = self.cells();
        format!("done: {}", cells.join(" | "))
    }

    fn cells(&self) -> [String; 9] {
        let optional = |value: Option<f64>| value.map_or("-".into(), |value| format!("{value}"));
        [
            self.engine.to_owned(),
            self.case.to_owned(),
            self.appenders.map_or("-".into(), |n| n.to_string()),
            self.records.map_or("-".into(), thousands),
            thousands(self.ops_per_s as u64),
            optional(self.p50_us),
            optional(self.p99_us),
            optional(self.mb_per_s),
            self.notes(),
        ]
    }

    fn notes(&self) -> String {
        let mut notes = Vec::new();
        if let Some(checkpoint) = self.checkpoint {
            notes.push(format!("checkpoint {checkpoint}"));
        }
        if let Some(cold) = self.cold_cache {
            notes.push(if cold { "cold cache" } else { "warm cache" }.to_owned());
        }
        if let Some(open_ms) = self.open_ms {
            notes.push(format!("open {open_ms} ms"));
        }
        if let Some(scanned) = self.records_scanned {
            notes.push(format!("{} scanned", thousands(scanned)));
        }
        if let Some(backend) = &self.backend {
            notes.push(backend.clone());
        }
        if let Some(batch) = self.avg_batch_records {
            notes.push(format!("{batch} rec/batch"));
        }
        if let Some(flush) = self.flush_us_mean {
            notes.push(format!("flush {flush} us"));
        }
        if let (Some(p50), Some(p99)) = (self.commit_p50_us, self.commit_p99_us) {
            notes.push(format!("commit p50 {p50} p99 {p99} us"));
        }
        if let (Some(p50), Some(p99)) = (self.flush_p50_us, self.flush_p99_us) {
            notes.push(format!("flush p50 {p50} p99 {p99} us"));
        }
        if let Some(load) = self.load_records_per_s {
            notes.push(format!("loaded {}/s", thousands(load as u64)));
        }
        if let (Some(ops), Some(p50), Some(p99)) = (
            self.plain_get_ops_per_s,
            self.plain_get_p50_us,
            self.plain_get_p99_us,
        ) {
            notes.push(format!(
                "plain get: {}/s p50 {p50} us p99 {p99} us",
                thousands(ops as u64)
            ));
        }
        if let Some(note) = &self.note {
            notes.push(note.clone());
        }
        notes.join("; ")
    }
}

impl Report {
    pub fn new(
        machine: String,
        baseline: &DiskBaseline,
        after: &DiskBaseline,
        results: Vec<Row>,
    ) -> Self {
        Self {
            machine,
            fdatasync_p50_us: round(baseline.overwrite.p50_us(), 1),
            fdatasync_p99_us: round(baseline.overwrite.p99_us(), 1),
            append_fdatasync_p50_us: round(baseline.append.p50_us(), 1),
            append_fdatasync_p99_us: round(baseline.append.p99_us(), 1),
            fdatasync_64k_p50_us: round(baseline.overwrite_64k.p50_us(), 1),
            fdatasync_64k_p99_us: round(baseline.overwrite_64k.p99_us(), 1),
            fdatasync_after_p50_us: round(after.overwrite.p50_us(), 1),
            fdatasync_after_p99_us: round(after.overwrite.p99_us(), 1),
            fdatasync_64k_after_p50_us: round(after.overwrite_64k.p50_us(), 1),
            fdatasync_64k_after_p99_us: round(after.overwrite_64k.p99_us(), 1),
            results,
        }
    }

    /// The results as an aligned text table, headed by the machine and the disk baseline.
    pub fn table(&self) -> String {
        const HEADER: [&str; 9] = [
            "engine",
            "case",
            "appenders",
            "records",
            "ops/s",
            "p50 us",
            "p99 us",
            "MB/s",
            "notes",
        ];
        let rows: Vec<[String; 9]> = self.results.iter().map(Row::cells).collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut table = format!(
            "machine: {}\ndisk: 4 KiB overwrite + fdatasync p50 {} us, p99 {} us; \
             4 KiB append + fdatasync p50 {} us, p99 {} us; \
             64 KiB overwrite + fdatasync p50 {} us, p99 {} us\n\
             disk after the run: 4 KiB overwrite p50 {} us, p99 {} us; 64 KiB overwrite p50 {} us, p99 {} us\n\n",
            self.machine,
            self.fdatasync_p50_us,
            self.fdatasync_p99_us,
            self.append_fdatasync_p50_us,
            self.append_fdatasync_p99_us,
            self.fdatasync_64k_p50_us,
            self.fdatasync_64k_p99_us,
            self.fdatasync_after_p50_us,
            self.fdatasync_after_p99_us,
            self.fdatasync_64k_after_p50_us,
            self.fdatasync_64k_after_p99_us,
        );
        let header = HEADER.map(str::to_owned);
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
                // Text columns left-aligned, numbers right-aligned, the notes unpadded.
                let _ = match index {
                    0 | 1 => write!(line, "{cell:<width$}  "),
                    8 => write!(line, "{cell}"),
                    _ => write!(line, "{cell:>width$}  "),
                };
            }
            table.push_str(line.trim_end());
            table.push('\n');
        }
        table
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("encoding the results as JSON")?;
        fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// `value` rounded to `decimals` decimal places, so that the JSON does not show float noise.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// `1234567` as `1,234,567`.
fn thousands(value: u64) -> String {
    let digits: Vec<char> = value.to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|group| group.iter().collect())
        .collect();
    groups.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_takes_each_figure_separately() {
        let run = |ops: f64, p99: f64| Row {
            engine: "spine",
            case: "append_durable",
            ops_per_s: ops,
            p99_us: Some(p99),
            ..Row::default()
        };
        let row = Row::median_of(vec![run(100.0, 9.0), run(300.0, 1.0), run(200.0, 5.0)]);
        assert_eq!(row.ops_per_s, 200.0);
        assert_eq!(row.p99_us, Some(5.0));
        assert_eq!(row.p50_us, None);
        assert_eq!(row.note.as_deref(), Some("median of 3 runs"));
        let single = Row::median_of(vec![run(7.0, 7.0)]);
        assert_eq!(single.note, None);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
