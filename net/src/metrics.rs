//! Metrics in the Prometheus text format (version 0.0.4), served on a loopback HTTP port:
//! requests, refusals by code and latency histograms per operation and transport; open
//! connections, refused handshakes by reason, goodbyes by code, timeouts; and, from the engine, each shard's log batches, records, bytes and flush
//! latency, and turns.
//!
//! Counting is lock-free (atomics); the text is made when scraped.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spine_core::engine::EngineHandle;
use spine_core::request::{ErrorCode, Operation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::timeouts::Timeout;

/// Transports, as labelled.
pub const TRANSPORTS: [&str; 2] = ["tls", "quic"];
/// Operations, as labelled.
pub const OPERATIONS: [&str; Operation::NAMES.len()] = Operation::NAMES;
/// Latency bucket upper bounds, in seconds.
const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Error codes counted: every code a response can carry.
const CODES: [ErrorCode; ErrorCode::ALL.len()] = ErrorCode::ALL;
/// Why a handshake was refused, as labelled: it timed out; TLS failed it (a certificate of
/// another CA or none, no common protocol version or ALPN); or, after it, no ALPN, a
/// certificate without `digitalSignature`, a certificate no system holds.
pub const HANDSHAKE_REFUSALS: [&str; 5] =
    ["timeout", "tls", "no_alpn", "key_usage", "unregistered"];
/// The timeouts that close connections, as labelled.
const TIMEOUTS: [Timeout; Timeout::ALL.len()] = Timeout::ALL;

/// The label of an operation.
pub fn operation_label(operation: &Operation) -> usize {
    operation.index()
}

/// One transport and operation's figures.
#[derive(Debug, Default)]
struct Series {
    requests: AtomicU64,
    refused: [AtomicU64; CODES.len()],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_micros: AtomicU64,
}

/// Every counter the server keeps.
#[derive(Debug)]
pub struct Metrics {
    series: Vec<Series>,
    connections_opened: [AtomicU64; 2],
    connections_refused: [AtomicU64; 2],
    handshakes_refused: [[AtomicU64; HANDSHAKE_REFUSALS.len()]; 2],
    goodbyes: [[AtomicU64; CODES.len()]; 2],
    timeouts: [[AtomicU64; TIMEOUTS.len()]; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            series: (0..TRANSPORTS.len() * OPERATIONS.len())
                .map(|_| Series::default())
                .collect(),
            connections_opened: Default::default(),
            connections_refused: Default::default(),
            handshakes_refused: Default::default(),
            goodbyes: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            timeouts: Default::default(),
        }
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn request(
        &self,
        transport: usize,
        operation: usize,
        latency: Duration,
        refused: Option<ErrorCode>,
    ) {
        let series = &self.series[transport * OPERATIONS.len() + operation];
        series.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(code) = refused
            && let Some(slot) = CODES.iter().position(|known| *known == code)
        {
            series.refused[slot].fetch_add(1, Ordering::Relaxed);
        }
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            series.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        series
            .latency_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records a connection opened (`refused`: closed at once with a goodbye).
    pub fn connection(&self, transport: usize, refused: bool) {
        let counters = if refused {
            &self.connections_refused
        } else {
            &self.connections_opened
        };
        counters[transport].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a handshake refused for `reason` (one of [`HANDSHAKE_REFUSALS`]).
    pub fn handshake_refused(&self, transport: usize, reason: &str) {
        if let Some(slot) = HANDSHAKE_REFUSALS.iter().position(|known| *known == reason) {
            self.handshakes_refused[transport][slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a goodbye sent with `code` (on QUIC: a stream's, or a connection's close).
    pub fn goodbye(&self, transport: usize, code: ErrorCode) {
        if let Some(slot) = CODES.iter().position(|known| *known == code) {
            self.goodbyes[transport][slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a connection (or QUIC stream) closed by `timeout`.
    pub(crate) fn timed_out(&self, transport: usize, timeout: Timeout) {
        if let Some(slot) = TIMEOUTS.iter().position(|known| *known == timeout) {
            self.timeouts[transport][slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition, with the engine's figures and `open_connections`.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    pub fn render(&self, engine: &EngineHandle, open_connections: usize) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP spine_requests_total Requests answered.");
        let _ = writeln!(out, "# TYPE spine_requests_total counter");
        let each = || {
            TRANSPORTS.iter().enumerate().flat_map(|(t, transport)| {
                OPERATIONS
                    .iter()
                    .enumerate()
                    .map(move |(o, operation)| (t * OPERATIONS.len() + o, *transport, *operation))
            })
        };
        for (slot, transport, operation) in each() {
            let labels = format!("transport=\"{transport}\",operation=\"{operation}\"");
            let _ = writeln!(
                out,
                "spine_requests_total{{{labels}}} {}",
                load(&self.series[slot].requests)
            );
        }
        let _ = writeln!(
            out,
            "# HELP spine_refusals_total Requests refused, by error code."
        );
        let _ = writeln!(out, "# TYPE spine_refusals_total counter");
        for (slot, transport, operation) in each() {
            for (index, code) in CODES.iter().enumerate() {
                let count = load(&self.series[slot].refused[index]);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "spine_refusals_total{{transport=\"{transport}\",operation=\"{operation}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP spine_request_duration_seconds Time from a request's arrival to its answer."
        );
        let _ = writeln!(out, "# TYPE spine_request_duration_seconds histogram");
        for (slot, transport, operation) in each() {
            let series = &self.series[slot];
            let labels = format!("transport=\"{transport}\",operation=\"{operation}\"");
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&series.buckets) {
                cumulative += load(bucket);
                let _ = writeln!(
                    out,
                    "spine_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = load(&series.requests);
            let _ = writeln!(
                out,
                "spine_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "spine_request_duration_seconds_sum{{{labels}}} {}",
                load(&series.latency_micros) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "spine_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP spine_connections_total Connections accepted (refused: closed at once)."
        );
        let _ = writeln!(out, "# TYPE spine_connections_total counter");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (outcome, counters) in [
                ("opened", &self.connections_opened),
                ("refused", &self.connections_refused),
            ] {
                let _ = writeln!(
                    out,
                    "spine_connections_total{{transport=\"{transport}\",outcome=\"{outcome}\"}} {}",
                    load(&counters[t])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP spine_handshakes_refused_total Handshakes refused, by reason (timeout and tls: no goodbye; the rest: a goodbye)."
        );
        let _ = writeln!(out, "# TYPE spine_handshakes_refused_total counter");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (r, reason) in HANDSHAKE_REFUSALS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "spine_handshakes_refused_total{{transport=\"{transport}\",reason=\"{reason}\"}} {}",
                    load(&self.handshakes_refused[t][r])
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP spine_goodbyes_total Goodbyes sent, by code (QUIC: on a stream, or as a connection's close reason)."
        );
        let _ = writeln!(out, "# TYPE spine_goodbyes_total counter");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (index, code) in CODES.iter().enumerate() {
                let count = load(&self.goodbyes[t][index]);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "spine_goodbyes_total{{transport=\"{transport}\",code=\"{code}\"}} {count}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP spine_connection_timeouts_total Connections closed idle, with a frame not whole in time, or not reading their answers (QUIC: that stream)."
        );
        let _ = writeln!(out, "# TYPE spine_connection_timeouts_total counter");
        for (t, transport) in TRANSPORTS.iter().enumerate() {
            for (index, timeout) in TIMEOUTS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "spine_connection_timeouts_total{{transport=\"{transport}\",timeout=\"{}\"}} {}",
                    timeout.label(),
                    load(&self.timeouts[t][index])
                );
            }
        }
        let _ = writeln!(out, "# HELP spine_connections_open Connections open now.");
        let _ = writeln!(out, "# TYPE spine_connections_open gauge");
        let _ = writeln!(out, "spine_connections_open {open_connections}");
        render_engine(&mut out, engine);
        out
    }
}

/// A counter read from a shard's figures.
type ShardCounter = fn(&spine_core::engine::ShardStats) -> u64;

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn render_engine(out: &mut String, engine: &EngineHandle) {
    let stats = engine.stats();
    let counters: [(&str, &str, ShardCounter); 7] = [
        (
            "spine_log_batches_total",
            "Log batches written (one write and flush each).",
            |s| s.batches,
        ),
        ("spine_log_records_total", "Log records written.", |s| {
            s.records_written
        }),
        ("spine_log_bytes_total", "Log bytes written.", |s| {
            s.bytes_written
        }),
        (
            "spine_shard_turns_total",
            "Turns the shard executed.",
            |s| s.turns,
        ),
        (
            "spine_shard_inputs_total",
            "Requests and request steps the shard executed.",
            |s| s.inputs,
        ),
        (
            "spine_log_compactions_total",
            "Sealed log segments replaced by a compacted copy.",
            |s| s.compactions,
        ),
        (
            "spine_log_compaction_reclaimed_bytes_total",
            "File bytes compaction reclaimed.",
            |s| s.compaction_bytes_reclaimed,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (shard, shard_stats) in stats.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {}", value(shard_stats));
        }
    }
    let _ = writeln!(
        out,
        "# HELP spine_shard_writes_stopped 1 when the shard's log failed (disk full, I/O error) and it answers WRITES_STOPPED until restarted."
    );
    let _ = writeln!(out, "# TYPE spine_shard_writes_stopped gauge");
    for (shard, shard_stats) in stats.iter().enumerate() {
        let _ = writeln!(
            out,
            "spine_shard_writes_stopped{{shard=\"{shard}\"}} {}",
            u8::from(shard_stats.writes_stopped)
        );
    }
    let _ = writeln!(
        out,
        "# HELP spine_log_keys Keys in the shard's primary index."
    );
    let _ = writeln!(out, "# TYPE spine_log_keys gauge");
    for (shard, shard_stats) in stats.iter().enumerate() {
        let _ = writeln!(
            out,
            "spine_log_keys{{shard=\"{shard}\"}} {}",
            shard_stats.keys
        );
    }
    let _ = writeln!(
        out,
        "# HELP spine_log_flush_seconds Write + fdatasync of a log batch, since the server started."
    );
    let _ = writeln!(out, "# TYPE spine_log_flush_seconds summary");
    for (shard, latency) in engine.log_latencies().iter().enumerate() {
        for (quantile, micros) in [
            ("0.5", latency.flush.p50_us),
            ("0.99", latency.flush.p99_us),
        ] {
            let _ = writeln!(
                out,
                "spine_log_flush_seconds{{shard=\"{shard}\",quantile=\"{quantile}\"}} {}",
                micros / 1e6
            );
        }
        let _ = writeln!(
            out,
            "spine_log_flush_seconds_count{{shard=\"{shard}\"}} {}",
            latency.flush.count
        );
    }
}

/// Largest HTTP request read, in bytes.
const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Serves `GET /metrics` on `addr` (on the runtime it is spawned on) until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    engine: EngineHandle,
    open_connections: impl Fn() -> usize + Send + Sync + 'static,
    mut stop: watch::Receiver<bool>,
) {
    let open_connections = Arc::new(open_connections);
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let metrics = Arc::clone(&metrics);
        let engine = engine.clone();
        let open_connections = Arc::clone(&open_connections);
        tokio::spawn(async move {
            let mut request = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // Read the request head, bounded in size and time.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|window| window == b"\r\n\r\n")
                    && request.len() < HTTP_REQUEST_BYTES_MAX
                {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                true
            })
            .await;
            if !matches!(read, Ok(true)) {
                return;
            }
            let (status, body) = if request.starts_with(b"GET /metrics ") {
                ("200 OK", metrics.render(&engine, open_connections()))
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_owned(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Fetches `GET /metrics` from `addr` and returns the body (for tools and tests).
pub async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!(
            "unexpected answer from {addr}: {}",
            response.lines().next().unwrap_or_default()
        ))),
    }
}

/// Binds the metrics listener (a std listener, registered on the runtime that serves it).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
