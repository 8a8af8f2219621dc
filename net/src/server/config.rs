//! The server's settings and limits, with their defaults (documented in `net/PROTOCOL.md`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::protocol::session::SessionLimits;

/// Limits the server enforces, each with a specific error when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes after the length field (`FRAME_TOO_LARGE`, connection closed).
    pub frame_bytes_max: u32,
    /// Requests in flight on one connection (`TOO_MANY_STREAMS` for more).
    pub in_flight_per_connection: usize,
    /// Open connections in all (a new one is told `SERVICE_UNAVAILABLE` and closed).
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
            frame_bytes_max: 1 << 20,
            in_flight_per_connection: 1_024,
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
