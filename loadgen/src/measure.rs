//! What a run counts: requests offered (scheduled), completed, failed (by error code) and
//! dropped (not sent: too many in flight); per operation a latency histogram measured from each
//! request's intended send time; and completions second by second.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::model::Op;

/// How one operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done as asked.
    Done,
    /// Refused with a code the operation expects under load (a version conflict on a contended
    /// update, a duplicate found on registration, a death already recorded): the server
    /// behaved correctly, so it counts as completed, and is tallied by code.
    Expected(String),
    /// Refused with another code, or no answer (the code, or a transport error's name).
    Failed(String),
}

/// One operation's figures.
#[derive(Clone, Debug)]
pub struct OpFigures {
    /// Operations that ended (any outcome).
    pub count: u64,
    /// Requests they sent (an update reads, then writes).
    pub requests: u64,
    /// Latency from intended send time to the end, microseconds.
    pub latency: Histogram<u64>,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Operations scheduled.
    pub offered: u64,
    /// Operations that ended as the server should have ended them.
    pub completed: u64,
    /// Operations that failed.
    pub failed: u64,
    /// Operations not sent because too many were in flight.
    pub dropped: u64,
    /// Failures by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Expected refusals by code (counted in `completed`).
    pub expected_by_code: BTreeMap<String, u64>,
    /// Per operation.
    pub operations: BTreeMap<Op, OpFigures>,
    /// All operations' latency.
    pub latency: Histogram<u64>,
    /// Operations ended in each second of the run.
    pub timeline: Vec<u64>,
    /// The 99th percentile latency (microseconds) of the operations ended in each second, so
    /// a stall shows where it happened (the last second's once the run is finished).
    pub timeline_p99_us: Vec<u64>,
    /// The latency of the second being counted (operations end roughly in order; a late one
    /// counts in the second being counted).
    this_second: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Measurement {
    fn default() -> Self {
        Self {
            offered: 0,
            completed: 0,
            failed: 0,
            dropped: 0,
            errors_by_code: BTreeMap::new(),
            expected_by_code: BTreeMap::new(),
            operations: BTreeMap::new(),
            latency: histogram(),
            timeline: Vec::new(),
            timeline_p99_us: Vec::new(),
            this_second: histogram(),
        }
    }
}

impl Measurement {
    /// Records an operation of `op`, sending `requests` requests, that ended with `outcome`
    /// `latency` after its intended send time, `at` after the start of the run.
    pub fn record(
        &mut self,
        op: Op,
        requests: u64,
        outcome: Outcome,
        latency: Duration,
        at: Duration,
    ) {
        let micros = (latency.as_micros() as u64).max(1);
        let figures = self.operations.entry(op).or_insert_with(|| OpFigures {
            count: 0,
            requests: 0,
            latency: histogram(),
        });
        figures.count += 1;
        figures.requests += requests;
        figures.latency.saturating_record(micros);
        self.latency.saturating_record(micros);
        match outcome {
            Outcome::Done => self.completed += 1,
            Outcome::Expected(code) => {
                self.completed += 1;
                *self.expected_by_code.entry(code).or_default() += 1;
            }
            Outcome::Failed(code) => {
                self.failed += 1;
                *self.errors_by_code.entry(code).or_default() += 1;
            }
        }
        let second = at.as_secs() as usize;
        if self.timeline.len() <= second {
            self.close_second();
            self.timeline.resize(second + 1, 0);
            self.timeline_p99_us.resize(second + 1, 0);
        }
        self.timeline[second] += 1;
        self.this_second.saturating_record(micros);
    }

    /// Ends the second being counted: its 99th percentile goes into the timeline.
    fn close_second(&mut self) {
        if let Some(last) = self.timeline_p99_us.last_mut() {
            *last = self.this_second.value_at_quantile(0.99);
        }
        self.this_second.reset();
    }

    /// Ends the run's counting: the last second's percentile is filled in.
    pub fn finish(&mut self) {
        self.close_second();
    }

    /// Requests sent in all.
    pub fn requests(&self) -> u64 {
        self.operations
            .values()
            .map(|figures| figures.requests)
            .sum()
    }

    /// Failed and dropped operations as a share of those offered.
    pub fn error_rate(&self) -> f64 {
        if self.offered == 0 {
            return 0.0;
        }
        (self.failed + self.dropped) as f64 / self.offered as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_where_they_belong() {
        let mut measurement = Measurement {
            offered: 4,
            dropped: 1,
            ..Measurement::default()
        };
        let ms = Duration::from_millis;
        measurement.record(Op::Retrieve, 1, Outcome::Done, ms(2), ms(100));
        measurement.record(
            Op::UpdateContended,
            2,
            Outcome::Expected("RESOURCE_VERSION_MISMATCH".into()),
            ms(4),
            ms(1_500),
        );
        measurement.record(
            Op::Retrieve,
            1,
            Outcome::Failed("DEADLINE_EXCEEDED".into()),
            ms(5_000),
            ms(6_000),
        );
        assert_eq!((measurement.completed, measurement.failed), (2, 1));
        assert_eq!(measurement.requests(), 4);
        assert_eq!(measurement.errors_by_code["DEADLINE_EXCEEDED"], 1);
        assert_eq!(measurement.expected_by_code["RESOURCE_VERSION_MISMATCH"], 1);
        measurement.finish();
        assert_eq!(measurement.timeline, vec![1, 1, 0, 0, 0, 0, 1]);
        let expected = [2_000, 4_000, 0, 0, 0, 0, 5_000_000];
        assert_eq!(measurement.timeline_p99_us.len(), expected.len());
        for (second, (&p99, &want)) in measurement
            .timeline_p99_us
            .iter()
            .zip(&expected)
            .enumerate()
        {
            assert!(
                p99.abs_diff(want) <= want / 100,
                "second {second}: p99 {p99} us, expected {want} us"
            );
        }
        assert!((measurement.error_rate() - 0.5).abs() < 1e-9);
    }
}
