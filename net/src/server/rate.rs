//! Per-system request rates: a token bucket per system (sans-IO: the caller says what time it
//! is), shared by the system's connections.

use std::collections::HashMap;
use std::time::Instant;

use spine_core::request::{ErrorCode, Refusal};

/// The refusal of a request over system `asid`'s rate.
pub fn rate_limited(asid: u64, limits: &super::Limits) -> Refusal {
    Refusal::new(
        ErrorCode::RateLimited,
        format!(
            "system {asid} is over its rate of {} requests a second",
            limits.requests_per_second_per_system
        ),
    )
}

/// Token buckets, one per system.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    buckets: HashMap<u64, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    /// Buckets allowing `per_second` requests a second, with a burst of one second's worth.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Whether system `asid` may send a request at `now` (and takes its token if so).
    pub fn allow(&mut self, asid: u64, now: Instant) -> bool {
        let per_second = self.per_second;
        let bucket = self.buckets.entry(asid).or_insert(Bucket {
            tokens: per_second,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(per_second);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_system_gets_its_rate_and_no_more_and_others_are_unaffected() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10);
        let allowed = (0..25).filter(|_| limiter.allow(1, start)).count();
        assert_eq!(allowed, 10, "a burst of one second's worth");
        assert!(limiter.allow(2, start), "another system has its own bucket");
        let later = start + Duration::from_millis(500);
        let allowed = (0..25).filter(|_| limiter.allow(1, later)).count();
        assert_eq!(allowed, 5, "half a second refills half the bucket");
    }
}
