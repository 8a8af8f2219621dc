//! A connection's idle and partial-frame timeouts (sans-IO: instants in, a verdict out), so
//! that no client holds a connection it does not use: an idle connection (nothing in flight,
//! no partial frame) closes after the idle timeout, and a frame begun must be whole within the
//! frame timeout. The transport keeps one timer, armed at [`Timeouts::deadline`]; when it fires
//! it asks [`Timeouts::expired`], which re-arms it while the connection keeps moving, so
//! traffic costs no timer updates.

use std::time::{Duration, Instant};

use spine_core::request::ErrorCode;

use crate::protocol::message::Goodbye;

/// Which timeout closed a connection, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// Nothing in flight and nothing received for the idle timeout.
    Idle,
    /// A frame begun and not finished within the frame timeout.
    PartialFrame,
    /// Answers the client took none of for the frame timeout (`stall.rs`; no goodbye).
    WriteStalled,
}

impl Timeout {
    /// Every one, in the metrics' order.
    pub(crate) const ALL: [Timeout; 3] =
        [Timeout::Idle, Timeout::PartialFrame, Timeout::WriteStalled];

    /// The metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Timeout::Idle => "idle",
            Timeout::PartialFrame => "partial_frame",
            Timeout::WriteStalled => "write_stalled",
        }
    }
}

/// One connection's activity, against its two timeouts.
#[derive(Debug)]
pub(crate) struct Timeouts {
    idle: Duration,
    frame: Duration,
    /// The last time bytes arrived or an answer went.
    active_at: Instant,
    /// When the bytes of the frame now partly received began to arrive.
    frame_begun_at: Option<Instant>,
}

impl Timeouts {
    /// A connection that opened `now`.
    pub(crate) fn new(idle: Duration, frame: Duration, now: Instant) -> Self {
        Self {
            idle,
            frame,
            active_at: now,
            frame_begun_at: None,
        }
    }

    /// Bytes arrived or an answer went at `now`.
    pub(crate) fn active(&mut self, now: Instant) {
        self.active_at = now;
    }

    /// After the received bytes were taken apart at `now`: `completed` whether a frame was
    /// completed, `partial` whether bytes of an unfinished frame are left.
    pub(crate) fn received(&mut self, completed: bool, partial: bool, now: Instant) {
        self.frame_begun_at = match (partial, self.frame_begun_at) {
            (false, _) => None,
            (true, Some(begun)) if !completed => Some(begun),
            (true, _) => Some(now),
        };
    }

    /// When the timer should fire first: the sooner of the two timeouts from now.
    pub(crate) fn deadline(&self, now: Instant) -> Instant {
        now + self.idle.min(self.frame)
    }

    /// At `now`, with `in_flight` requests: the timeout that has run out, or the instant at
    /// which to look again.
    pub(crate) fn expired(&self, in_flight: usize, now: Instant) -> Result<Timeout, Instant> {
        if let Some(begun) = self.frame_begun_at {
            let due = begun + self.frame;
            return if now >= due {
                Ok(Timeout::PartialFrame)
            } else {
                Err(due)
            };
        }
        if in_flight > 0 {
            // Requests have their own deadlines; idleness counts from the last answer.
            return Err(self.deadline(now));
        }
        let due = self.active_at + self.idle;
        if now >= due {
            Ok(Timeout::Idle)
        } else {
            Err(due)
        }
    }

    /// The goodbye for `timeout`.
    pub(crate) fn goodbye(&self, timeout: Timeout) -> Goodbye {
        let message = match timeout {
            Timeout::Idle => format!(
                "the connection was idle for {} ms (nothing in flight, nothing received): \
                 closed; connect again when needed",
                self.idle.as_millis()
            ),
            Timeout::PartialFrame => format!(
                "a frame begun was not whole within {} ms: closed",
                self.frame.as_millis()
            ),
            Timeout::WriteStalled => format!(
                "the client read nothing for {} ms: closed",
                self.frame.as_millis()
            ),
        };
        Goodbye {
            code: ErrorCode::DeadlineExceeded,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);
    const FRAME: Duration = Duration::from_secs(2);

    #[test]
    fn an_idle_connection_expires_after_the_idle_timeout_from_its_last_activity() {
        let start = Instant::now();
        let mut timeouts = Timeouts::new(IDLE, FRAME, start);
        assert_eq!(timeouts.expired(0, start + FRAME), Err(start + IDLE));
        timeouts.active(start + Duration::from_secs(5));
        let due = start + Duration::from_secs(15);
        assert_eq!(timeouts.expired(0, start + IDLE), Err(due));
        assert_eq!(timeouts.expired(0, due), Ok(Timeout::Idle));
        assert!(
            timeouts.expired(1, due).is_err(),
            "not idle with a request in flight"
        );
    }

    #[test]
    fn a_partial_frame_expires_after_the_frame_timeout_from_its_first_bytes() {
        let start = Instant::now();
        let mut timeouts = Timeouts::new(IDLE, FRAME, start);
        timeouts.received(false, true, start);
        let later = start + Duration::from_secs(1);
        timeouts.active(later);
        timeouts.received(false, true, later);
        assert_eq!(
            timeouts.expired(0, later),
            Err(start + FRAME),
            "from its first bytes"
        );
        assert_eq!(
            timeouts.expired(3, start + FRAME),
            Ok(Timeout::PartialFrame)
        );
        // A frame completed: the next one's time starts now.
        timeouts.received(true, true, later);
        assert_eq!(timeouts.expired(0, start + FRAME), Err(later + FRAME));
        timeouts.received(false, false, later);
        assert_eq!(timeouts.expired(0, start + FRAME), Err(later + IDLE));
    }
}
