//! The final report: a text table, the JSON file, and two SVG plots (latency by percentile,
//! throughput over time).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::Serialize;

use crate::measure::Measurement;
use crate::model::NATIONAL_PEAK_PER_S;

/// One operation in the JSON.
#[derive(Serialize)]
pub struct OpReport {
    /// Operations that ended.
    pub count: u64,
    /// Requests they sent.
    pub requests: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
}

/// The `--find-max` answer.
#[derive(Serialize)]
pub struct FindMaxReport {
    /// The highest rate that met the objective, requests a second.
    pub max_rate_per_s: f64,
    /// That rate as a multiple of the national peak (3,500/s).
    pub peak_multiple: f64,
    /// Every rate tried: (rate, p99 µs, error rate, met).
    pub steps: Vec<(f64, u64, f64, bool)>,
}

/// The JSON file.
#[derive(Serialize)]
pub struct Report {
    /// The machine it ran on.
    pub machine: String,
    /// The profile.
    pub profile: String,
    /// The transport.
    pub transport: String,
    /// The highest intended rate.
    pub rate_target_per_s: f64,
    /// Seconds run.
    pub duration_s: f64,
    /// Operations scheduled.
    pub offered: u64,
    /// Operations answered as the server should (expected refusals included).
    pub completed: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Operations not sent (too many in flight).
    pub dropped: u64,
    /// Requests sent.
    pub requests: u64,
    /// Operations ended a second.
    pub throughput_per_s: f64,
    /// Median latency from intended send time, µs.
    pub p50_us: u64,
    /// 99th percentile latency from intended send time, µs.
    pub p99_us: u64,
    /// Failures by code.
    pub errors_by_code: std::collections::BTreeMap<String, u64>,
    /// Expected refusals by code (counted as completed).
    pub expected_by_code: std::collections::BTreeMap<String, u64>,
    /// Per operation.
    pub operations: std::collections::BTreeMap<String, OpReport>,
    /// Operations ended in each second.
    pub timeline: Vec<u64>,
    /// The 99th percentile latency of the operations ended in each second, µs.
    pub timeline_p99_us: Vec<u64>,
    /// With `--find-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub find_max: Option<FindMaxReport>,
}

impl Report {
    /// The report of one run.
    pub fn new(
        machine: String,
        profile: String,
        transport: &str,
        rate_target_per_s: f64,
        measurement: &Measurement,
        elapsed_s: f64,
    ) -> Self {
        let operations = measurement
            .operations
            .iter()
            .map(|(op, figures)| {
                (
                    op.name().to_owned(),
                    OpReport {
                        count: figures.count,
                        requests: figures.requests,
                        p50_us: figures.latency.value_at_quantile(0.5),
                        p99_us: figures.latency.value_at_quantile(0.99),
                        max_us: figures.latency.max(),
                    },
                )
            })
            .collect();
        Self {
            machine,
            profile,
            transport: transport.to_owned(),
            rate_target_per_s,
            duration_s: elapsed_s,
            offered: measurement.offered,
            completed: measurement.completed,
            failed: measurement.failed,
            dropped: measurement.dropped,
            requests: measurement.requests(),
            throughput_per_s: ((measurement.completed + measurement.failed) as f64
                / elapsed_s.max(1e-9))
            .round(),
            p50_us: measurement.latency.value_at_quantile(0.5),
            p99_us: measurement.latency.value_at_quantile(0.99),
            errors_by_code: measurement.errors_by_code.clone(),
            expected_by_code: measurement.expected_by_code.clone(),
            operations,
            timeline: measurement.timeline.clone(),
            timeline_p99_us: measurement.timeline_p99_us.clone(),
            find_max: None,
        }
    }

    /// The text table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "profile {} over {}: {:.0}/s intended, {:.1} s\n\
             offered {}  completed {}  failed {}  dropped {}  ({} requests)\n\
             throughput {:.0}/s  p50 {:.2} ms  p99 {:.2} ms\n\n\
             {:<24} {:>9} {:>9} {:>10} {:>10} {:>10}\n",
            self.profile,
            self.transport,
            self.rate_target_per_s,
            self.duration_s,
            self.offered,
            self.completed,
            self.failed,
            self.dropped,
            self.requests,
            self.throughput_per_s,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
            "operation",
            "count",
            "requests",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        for (name, op) in &self.operations {
            out += &format!(
                "{name:<24} {:>9} {:>9} {:>10.2} {:>10.2} {:>10.2}\n",
                op.count,
                op.requests,
                op.p50_us as f64 / 1000.0,
                op.p99_us as f64 / 1000.0,
                op.max_us as f64 / 1000.0
            );
        }
        for (code, count) in &self.errors_by_code {
            out += &format!("failed {code}: {count}\n");
        }
        for (code, count) in &self.expected_by_code {
            out += &format!("expected refusal {code}: {count}\n");
        }
        if let Some(find_max) = &self.find_max {
            out += &format!(
                "\nfind-max: {:.0}/s met the objective: {:.1}x the national peak of {NATIONAL_PEAK_PER_S:.0}/s\n",
                find_max.max_rate_per_s, find_max.peak_multiple
            );
            for (rate, p99, errors, met) in &find_max.steps {
                out += &format!(
                    "  {rate:>9.0}/s  p99 {:>8.2} ms  errors {:.4}  {}\n",
                    *p99 as f64 / 1000.0,
                    errors,
                    if *met { "met" } else { "missed" }
                );
            }
        }
        out
    }

    /// Writes the JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).context("encoding the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// Writes the latency-by-percentile plot (`…-latency.svg`) and the throughput-over-time plot
/// (`…-throughput.svg`) next to `base`.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn write_plots(base: &Path, measurement: &Measurement, title: &str) -> Result<()> {
    let latency_path = base.with_extension("latency.svg");
    let throughput_path = base.with_extension("throughput.svg");
    let plot_error = |error: String| anyhow::anyhow!("plotting: {error}");
    {
        // Percentiles on a log scale of 1 / (1 - p): 50, 90, 99, 99.9, 99.99.
        let points: Vec<(f64, f64)> = (0..=80)
            .map(|step| {
                let nines = f64::from(step) / 20.0;
                let quantile = 1.0 - 10f64.powf(-nines);
                let micros = measurement.latency.value_at_quantile(quantile) as f64;
                (nines, micros / 1000.0)
            })
            .collect();
        let top = points.iter().map(|(_, ms)| *ms).fold(0.1, f64::max) * 1.1;
        let root = SVGBackend::new(&latency_path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|error| plot_error(error.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{title}: latency by percentile"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..4f64, 0f64..top)
            .map_err(|error| plot_error(error.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("ms from intended send")
            .x_label_formatter(&|nines| format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-nines))))
            .draw()
            .map_err(|error| plot_error(error.to_string()))?;
        chart
            .draw_series(LineSeries::new(points, &BLUE))
            .map_err(|error| plot_error(error.to_string()))?;
        root.present()
            .map_err(|error| plot_error(error.to_string()))?;
    }
    {
        let points: Vec<(f64, f64)> = measurement
            .timeline
            .iter()
            .enumerate()
            .map(|(second, count)| (second as f64, *count as f64))
            .collect();
        let right = points.len().max(1) as f64;
        let top = points.iter().map(|(_, n)| *n).fold(1.0, f64::max) * 1.1;
        let root = SVGBackend::new(&throughput_path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|error| plot_error(error.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title}: throughput"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..right, 0f64..top)
            .map_err(|error| plot_error(error.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("operations a second")
            .draw()
            .map_err(|error| plot_error(error.to_string()))?;
        chart
            .draw_series(LineSeries::new(points, &RED))
            .map_err(|error| plot_error(error.to_string()))?;
        root.present()
            .map_err(|error| plot_error(error.to_string()))?;
    }
    Ok(())
}
