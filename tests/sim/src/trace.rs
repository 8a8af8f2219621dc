//! The run's trace: every event the simulator decides or observes, hashed as it happens, with
//! the last lines kept to print when a check fails. Two runs of one seed must give one hash.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::rc::Rc;

use sha2::{Digest, Sha256};

/// Lines kept for the report of a failure.
const TAIL_LINES: usize = 60;

#[derive(Default)]
struct Lines {
    hash: Sha256,
    events: u64,
    tail: VecDeque<String>,
}

/// A shared handle to one run's trace.
#[derive(Clone, Default)]
pub struct Trace(Rc<RefCell<Lines>>);

impl Trace {
    /// Adds one event.
    pub fn note(&self, line: fmt::Arguments<'_>) {
        let mut text = String::new();
        let _ = text.write_fmt(line);
        let mut lines = self.0.borrow_mut();
        lines.hash.update(text.as_bytes());
        lines.hash.update(b"\n");
        lines.events += 1;
        if lines.tail.len() == TAIL_LINES {
            lines.tail.pop_front();
        }
        lines.tail.push_back(text);
    }

    /// Events so far.
    pub fn events(&self) -> u64 {
        self.0.borrow().events
    }

    /// The hash of every event so far, in hex.
    pub fn hash(&self) -> String {
        let digest = self.0.borrow().hash.clone().finalize();
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The last events, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.0.borrow().tail.iter().cloned().collect()
    }
}
