//! Counting open connections, in all and per system, against their limits.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::config::Limits;

/// TLS (and, apart, QUIC) handshakes one core runs at once, at most; further connections wait
/// in the kernel's backlog (TLS) or quinn's queue of incoming connections (QUIC). A handshake
/// holds [`crate::memory::HANDSHAKE_BYTES`] or so until it ends, within the handshake timeout.
pub const HANDSHAKES_IN_FLIGHT_PER_CORE: usize = 16;

/// Open connections, shared by every core (touched only when a connection opens or closes).
#[derive(Clone, Debug, Default)]
pub(crate) struct Connections {
    open: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_system: HashMap<u64, usize>,
}

/// One open connection; closing it (dropping this) frees its place.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    open: Arc<Mutex<Counts>>,
    asid: u64,
}

impl Connections {
    /// Takes a place for a connection of system `asid`, or says which limit is reached.
    pub(crate) fn open(&self, asid: u64, limits: &Limits) -> Result<ConnectionSlot, String> {
        let mut counts = self.open.lock();
        if counts.total >= limits.connections_max {
            return Err(format!(
                "the server has {} connections open, its limit; retry later",
                counts.total
            ));
        }
        let system = counts.per_system.entry(asid).or_default();
        if *system >= limits.connections_per_system_max {
            return Err(format!(
                "system {asid} has {system} connections open, its limit; reuse them"
            ));
        }
        *system += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            open: Arc::clone(&self.open),
            asid,
        })
    }

    /// Connections open now.
    pub(crate) fn total(&self) -> usize {
        self.open.lock().total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.open.lock();
        counts.total -= 1;
        if let Some(system) = counts.per_system.get_mut(&self.asid) {
            *system -= 1;
            if *system == 0 {
                counts.per_system.remove(&self.asid);
            }
        }
    }
}
