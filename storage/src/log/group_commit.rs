//! When a commit batch closes: the group-commit policy, as a pure function of time and counts.
//!
//! The writer thread opens a batch with the first queued append and keeps taking appends while
//! the queue has them. When the queue runs dry it may wait a little for more, because under
//! concurrent load the appenders just acknowledged are about to append again, and one larger
//! batch costs one `fdatasync` where two small ones cost two. It waits only while the batch holds
//! fewer records than it expects (so a lone appender never waits), and never past `delay`.
//!
//! What to expect: the appenders of the previous batch, which are about to append again, plus
//! those already queued when this batch opened (they missed the previous batch). Expecting only
//! the previous batch's size lets a fixed share of appenders miss every batch and wait two
//! flushes each time; with 256 appenders that doubled the p99 latency.

use std::time::{Duration, Instant};

/// Limits that close a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// A batch closes once it holds this many bytes of encoded records.
    pub batch_bytes_max: usize,
    /// A batch closes once it holds this many records.
    pub batch_records_max: usize,
    /// Longest wait, from the batch's first record, for more records when the queue is empty.
    pub delay: Duration,
}

/// What the writer should do next with the open batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchDecision {
    /// Write and flush the batch now.
    Close,
    /// The queue has records: take the next one.
    TakeMore,
    /// The queue is empty: wait for a record until this instant, then close.
    WaitUntil(Instant),
}

/// The open batch as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct OpenBatch {
    /// When the batch's first record was taken.
    pub opened_at: Instant,
    /// Encoded bytes so far.
    pub bytes: usize,
    /// Records so far.
    pub records: usize,
    /// Records the batch expects: the previous batch's plus those queued when this one opened.
    pub expected_records: usize,
}

impl BatchPolicy {
    /// Decides the next step for `batch` at `now`.
    pub fn decide(&self, batch: &OpenBatch, now: Instant, queue_empty: bool) -> BatchDecision {
        assert!(batch.records > 0, "a batch opens with its first record");
        if batch.bytes >= self.batch_bytes_max || batch.records >= self.batch_records_max {
            return BatchDecision::Close;
        }
        if !queue_empty {
            return BatchDecision::TakeMore;
        }
        let deadline = batch.opened_at + self.delay;
        if batch.records >= batch.expected_records || now >= deadline {
            return BatchDecision::Close;
        }
        BatchDecision::WaitUntil(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BatchPolicy = BatchPolicy {
        batch_bytes_max: 1000,
        batch_records_max: 10,
        delay: Duration::from_micros(100),
    };

    fn batch(
        opened_at: Instant,
        bytes: usize,
        records: usize,
        expected_records: usize,
    ) -> OpenBatch {
        OpenBatch {
            opened_at,
            bytes,
            records,
            expected_records,
        }
    }

    #[test]
    fn closes_on_size_even_with_a_full_queue() {
        let now = Instant::now();
        assert_eq!(
            POLICY.decide(&batch(now, 1000, 1, 50), now, false),
            BatchDecision::Close
        );
        assert_eq!(
            POLICY.decide(&batch(now, 10, 10, 50), now, false),
            BatchDecision::Close
        );
    }

    #[test]
    fn takes_queued_records_first() {
        let now = Instant::now();
        assert_eq!(
            POLICY.decide(&batch(now, 10, 1, 1), now, false),
            BatchDecision::TakeMore
        );
    }

    #[test]
    fn a_lone_appender_never_waits() {
        let now = Instant::now();
        assert_eq!(
            POLICY.decide(&batch(now, 10, 1, 1), now, true),
            BatchDecision::Close
        );
        assert_eq!(
            POLICY.decide(&batch(now, 10, 1, 0), now, true),
            BatchDecision::Close
        );
    }

    #[test]
    fn waits_for_the_expected_records_but_not_past_the_delay() {
        let opened = Instant::now();
        let open = batch(opened, 10, 3, 8);
        assert_eq!(
            POLICY.decide(&open, opened + Duration::from_micros(40), true),
            BatchDecision::WaitUntil(opened + POLICY.delay)
        );
        assert_eq!(
            POLICY.decide(&open, opened + POLICY.delay, true),
            BatchDecision::Close
        );
        assert_eq!(
            POLICY.decide(&batch(opened, 10, 8, 8), opened, true),
            BatchDecision::Close
        );
    }
}
