//! Latency histograms of the write path, recorded by the writer thread and read by anyone.
//!
//! - commit latency: from an append entering the queue to its batch being durable (what the
//!   group commit costs an append, without the caller's own scheduling delays);
//! - flush latency: one write + `fdatasync` of a batch.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest latency tracked; longer ones are recorded as this.
const TRACKED_NANOS_MAX: u64 = 60_000_000_000;
/// Three significant figures: 0.1 % precision, about 180 KiB per histogram.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Quantiles of one latency distribution, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest value.
    pub max_us: f64,
}

/// Commit and flush latency since open (or the last reset).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencyReport {
    /// From an append entering the queue to its batch being durable.
    pub commit: LatencySummary,
    /// One batch's write + `fdatasync`.
    pub flush: LatencySummary,
}

pub(crate) struct Latencies {
    commit: Histogram<u64>,
    flush: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, TRACKED_NANOS_MAX, SIGNIFICANT_FIGURES)
        .expect("constant bounds are valid")
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos())
        .unwrap_or(u64::MAX)
        .clamp(1, TRACKED_NANOS_MAX)
}

fn summary(histogram: &Histogram<u64>) -> LatencySummary {
    let us = |nanos: u64| nanos as f64 / 1000.0;
    LatencySummary {
        count: histogram.len(),
        p50_us: us(histogram.value_at_quantile(0.50)),
        p99_us: us(histogram.value_at_quantile(0.99)),
        p999_us: us(histogram.value_at_quantile(0.999)),
        max_us: us(histogram.max()),
    }
}

impl Latencies {
    pub(crate) fn new() -> Self {
        Self {
            commit: histogram(),
            flush: histogram(),
        }
    }

    pub(crate) fn record_flush(&mut self, duration: Duration) {
        self.flush.saturating_record(nanos(duration));
    }

    pub(crate) fn record_commit(&mut self, duration: Duration) {
        self.commit.saturating_record(nanos(duration));
    }

    pub(crate) fn report(&self) -> LatencyReport {
        LatencyReport {
            commit: summary(&self.commit),
            flush: summary(&self.flush),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.commit.reset();
        self.flush.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_reported_in_microseconds() {
        let mut latencies = Latencies::new();
        for micros in 1..=1000u64 {
            latencies.record_commit(Duration::from_micros(micros));
        }
        latencies.record_flush(Duration::from_secs(3600));
        let report = latencies.report();
        assert_eq!(report.commit.count, 1000);
        assert!((report.commit.p50_us - 500.0).abs() < 1.0, "{report:?}");
        assert!((report.commit.p99_us - 990.0).abs() < 1.0, "{report:?}");
        assert!(
            (report.flush.max_us - 60_000_000.0).abs() < 60_000.0,
            "an hour is clamped to the tracked maximum"
        );
        latencies.reset();
        assert_eq!(latencies.report().commit.count, 0);
    }
}
