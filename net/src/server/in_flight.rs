//! The server's byte budget for requests in flight, over every connection of both transports:
//! a decoded request is charged when it is read and its answer when it arrives, until the
//! answer is written. A request that finds the budget spent is answered `SERVICE_UNAVAILABLE`
//! at once: what waits in the engine's inboxes and turns is bounded in bytes, not only in
//! count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use spine_core::request::{ErrorCode, Refusal};

/// Bytes charged for a request besides twice its frame: the request's fixed-size parts, and
/// what decoding a list of small values (a publication's slots) adds to their bytes.
pub(crate) const REQUEST_FIXED_BYTES: u64 = 16 * 1024;

/// Bytes charged for a request whose frame took `frame_bytes`: the decoded request holds its
/// strings and bytes, no more than the frame (twice: a shard builds its records from them).
pub(crate) fn request_charge(frame_bytes: usize) -> u64 {
    2 * frame_bytes as u64 + REQUEST_FIXED_BYTES
}

/// The bytes in flight now, against their limit; shared by every connection.
#[derive(Clone, Debug)]
pub(crate) struct InFlightBytes {
    used: Arc<AtomicU64>,
    max: u64,
}

/// Bytes charged to the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    used: Arc<AtomicU64>,
    bytes: u64,
}

impl InFlightBytes {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: u64) -> Self {
        Self {
            used: Arc::new(AtomicU64::new(0)),
            max,
        }
    }

    /// Charges `bytes` if they fit.
    pub(crate) fn try_charge(&self, bytes: u64) -> Option<Charge> {
        let mut charge = Charge {
            used: Arc::clone(&self.used),
            bytes: 0,
        };
        self.try_grow(&mut charge, bytes).then_some(charge)
    }

    /// Adds `bytes` to `charge` if they fit.
    pub(crate) fn try_grow(&self, charge: &mut Charge, bytes: u64) -> bool {
        let fits = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok();
        if fits {
            charge.bytes += bytes;
        }
        fits
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The refusal of a request that finds the budget spent.
    pub(crate) fn refusal(&self) -> Refusal {
        Refusal::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the server holds its limit of {} bytes of requests in flight; retry later",
                self.max
            ),
        )
    }
}

impl Charge {
    /// Adds `bytes` whether they fit or not: an answer that has arrived is memory already
    /// held; while the budget is over, new requests are refused until answers are written.
    pub(crate) fn force_grow(&mut self, bytes: u64) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        self.bytes += bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_the_budget_and_are_given_back_when_dropped() {
        let budget = InFlightBytes::new(100);
        let mut first = budget.try_charge(60).unwrap();
        assert!(budget.try_charge(41).is_none(), "60 + 41 is over 100");
        let second = budget.try_charge(40).unwrap();
        assert_eq!(budget.used(), 100);
        assert!(!budget.try_grow(&mut first, 1));
        drop(second);
        assert!(budget.try_grow(&mut first, 10));
        first.force_grow(200);
        assert_eq!(budget.used(), 270);
        assert!(budget.try_charge(1).is_none(), "over the budget: refused");
        drop(first);
        assert_eq!(budget.used(), 0);
        assert!(budget.refusal().message.contains("100 bytes"));
    }
}
