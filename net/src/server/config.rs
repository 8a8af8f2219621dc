//! The server's settings and limits, with their defaults (documented in `net/PROTOCOL.md`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::protocol::session::SessionLimits;

/// Limits the server enforces, each with a specific error when reached. Each one that holds
/// memory says its worst case; `crate::memory` sums them, and `spine serve` sizes the ones
/// marked "fitted" from its memory budget (half the machine's memory by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes after the length field (`FRAME_TOO_LARGE`, connection closed).
    /// Default 1 MiB. Worst-case memory: a TLS connection's receive buffer holds one frame
    /// being received, `frame_bytes_max + 6 + 16 KiB`; a QUIC connection's receive and send
    /// windows are each `frame_bytes_max + 64`.
    pub frame_bytes_max: u32,
    /// Requests in flight on one connection (`TOO_MANY_STREAMS` for more; QUIC's stream limit).
    /// Default 1,024. Holds no memory of its own: the requests' bytes are charged to
    /// `in_flight_bytes_max`.
    pub in_flight_per_connection: usize,
    /// Bytes of requests in flight over all connections (each charged `2 × its frame + 16
    /// KiB` when read, and twice its answer's bytes when that arrives, until the answer is
    /// written); a request beyond it is answered `SERVICE_UNAVAILABLE`. Worst-case memory:
    /// this, plus the answers that arrive while it is spent. Default 1 GiB; fitted: a quarter
    /// of the budget.
    pub in_flight_bytes_max: u64,
    /// Open connections in all (a new one is told `SERVICE_UNAVAILABLE` and closed). Default
    /// 10,000; fitted: what the budget leaves after the queues, at most 10,000. Worst-case
    /// memory: `connections_max ×` the larger of TLS's `frame_bytes_max + 6 + 16 KiB + 64 KiB`
    /// and QUIC's `2 × (frame_bytes_max + 64) + 64 KiB` (`crate::memory::connection_bytes_max`).
    pub connections_max: usize,
    /// Open connections of one system (likewise).
    pub connections_per_system_max: usize,
    /// How long a request may take when it names no shorter deadline (`DEADLINE_EXCEEDED`).
    pub request_deadline: Duration,
    /// Requests a second one system may send, over all its connections (`RATE_LIMITED` above).
    pub requests_per_second_per_system: u32,
    /// How long a TLS handshake may take before the connection is dropped.
    pub handshake_timeout: Duration,
    /// How long a connection may be idle (nothing in flight, no partial frame, nothing
    /// received; on QUIC no stream open) before it is closed (goodbye `DEADLINE_EXCEEDED`).
    pub idle_timeout: Duration,
    /// How long a frame may take to arrive whole once its first byte has (goodbye
    /// `DEADLINE_EXCEEDED`: the TLS connection, or the QUIC stream, is closed).
    pub frame_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: SessionLimits::default().frame_bytes_max,
            in_flight_per_connection: SessionLimits::default().in_flight_max,
            in_flight_bytes_max: 1 << 30,
            connections_max: 10_000,
            connections_per_system_max: 1_000,
            request_deadline: Duration::from_secs(5),
            requests_per_second_per_system: 200_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            frame_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// What a connection's session enforces.
    pub fn session(&self) -> SessionLimits {
        SessionLimits {
            frame_bytes_max: self.frame_bytes_max,
            in_flight_max: self.in_flight_per_connection,
        }
    }
}

/// Where the server listens and what it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// TLS over TCP: one listener per core on this address (port 0: a free port).
    pub tls_addr: SocketAddr,
    /// QUIC: one endpoint per core on this UDP address (port 0: a free port); `None`: off.
    pub quic_addr: Option<SocketAddr>,
    /// Prometheus metrics over HTTP (`GET /metrics`) on this address, loopback by default;
    /// `None`: off.
    pub metrics_addr: Option<SocketAddr>,
    /// The limits.
    pub limits: Limits,
}
