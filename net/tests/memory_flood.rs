//! The memory budget holds under a flood: the real `spine serve` process with a small budget
//! (`--memory-budget 96MiB`), flooded by more TLS connections than its budget has room for,
//! each sending the start of a frame as large as allowed, stays within its budget above the
//! resident memory it started with (VmRSS of `/proc/<pid>/status`). The connections beyond the
//! fitted `connections_max` get the goodbye `SERVICE_UNAVAILABLE`; a frame over the limit gets
//! `FRAME_TOO_LARGE`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spine_core::request::ErrorCode;
use spine_core::request::Operation;
use spine_net::client::{Client, ClientIdentity, Transport, tls_client_config};
use spine_net::pki::{DEMO_CLIENT, Pki};
use spine_net::protocol::frame::{FrameDecoder, FrameKind};
use spine_net::protocol::message::{self, Goodbye, WireRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::Spine;

/// The budget the server is given: small, so that a flood a test can send passes it.
const BUDGET_BYTES: u64 = 96 << 20;
/// The largest frame (the default), each flooding connection sends all but a byte of one.
const FRAME_BYTES_MAX: usize = 1 << 20;
/// Connections the flood opens: enough frames to hold twice the budget, were they all served.
const FLOOD_CONNECTIONS: usize = 2 * (BUDGET_BYTES as usize) / FRAME_BYTES_MAX;

/// A running `spine serve` with the limits it printed at start.
struct Flooded {
    spine: Spine,
    /// The fitted limit on connections, as printed at start.
    connections_max: usize,
    /// The budget line printed at start.
    budget_line: String,
}

impl std::ops::Deref for Flooded {
    type Target = Spine;

    fn deref(&self) -> &Spine {
        &self.spine
    }
}

impl Flooded {
    /// `spine serve` on `dir` with `flags`, once it is ready.
    fn start(dir: &Path, flags: &[&str]) -> Self {
        let spine = Spine::start_with(dir, flags);
        let printed = |prefix: &str| {
            spine
                .printed
                .iter()
                .find(|line| line.starts_with(prefix))
                .cloned()
                .unwrap()
        };
        let connections_max = printed("limits: ")["limits: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let budget_line = printed("memory budget: ");
        Self {
            spine,
            connections_max,
            budget_line,
        }
    }

    /// The server's resident memory now, in bytes.
    fn resident_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.spine.child.id())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

type RawTls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn raw_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> RawTls {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .unwrap()
}

/// The goodbye the server sends on `tls` within `wait`, if it sends one.
async fn goodbye_within(tls: &mut RawTls, wait: Duration) -> Option<Goodbye> {
    let mut decoder = FrameDecoder::new(1 << 20);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(frame) = decoder.next_frame().unwrap() {
            assert_eq!(frame.kind, FrameKind::Goodbye);
            return Some(message::decode("goodbye", &frame.body).unwrap());
        }
        let read = tokio::time::timeout_at(deadline, tls.read_buf(decoder.buffer_mut())).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => panic!("the connection closed without a goodbye"),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// The start of a frame of `FRAME_BYTES_MAX` bytes: all of it but its last byte.
fn all_but_the_last_byte_of_a_largest_frame() -> Vec<u8> {
    let mut bytes = (FRAME_BYTES_MAX as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[1, FrameKind::Request.code()]);
    bytes.resize(4 + FRAME_BYTES_MAX - 1, 0x5a);
    bytes
}

/// The demo client's TLS configuration.
fn demo_config(dir: &Path) -> Arc<rustls::ClientConfig> {
    let pki = Pki::at(dir);
    let identity = ClientIdentity {
        ca: pki.ca_cert(),
        cert: pki.client_files(DEMO_CLIENT).unwrap(),
    };
    Arc::new(tls_client_config(&identity).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_request_that_finds_the_bytes_in_flight_spent_is_refused_on_both_transports() {
    let dir = tempfile::tempdir().unwrap();
    // Less than any request's charge (twice its frame and 16 KiB): every request is refused.
    let spine = Flooded::start(dir.path(), &["--in-flight-bytes-max", "16384"]);
    let config = demo_config(dir.path());
    runtime().block_on(async {
        for (transport, addr) in [(Transport::Tls, spine.addr), (Transport::Quic, spine.quic)] {
            let client = Client::connect(transport, addr, "localhost", Arc::clone(&config))
                .await
                .unwrap();
            let request = WireRequest::as_demo_gp(Operation::ConnectionRoute);
            let refusal = client.call(request).await.unwrap().unwrap_err();
            assert_eq!(refusal.code, ErrorCode::ServiceUnavailable, "{transport:?}");
            assert!(
                refusal
                    .message
                    .contains("16384 bytes of requests in flight"),
                "{transport:?}: {}",
                refusal.message
            );
        }
    });
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_flood_of_connections_and_large_frames_stays_within_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--memory-budget", "96MiB", "--frame-timeout-ms", "60000"];
    let spine = Flooded::start(dir.path(), &flags);
    assert!(
        spine.budget_line.contains("of 96.0 MiB"),
        "the budget is printed at start: {}",
        spine.budget_line
    );
    assert!(
        (1..FLOOD_CONNECTIONS / 2).contains(&spine.connections_max),
        "the budget fits few connections: {}",
        spine.connections_max
    );
    let config = demo_config(dir.path());
    runtime().block_on(async {
        // A frame over the limit is refused by its header alone.
        let mut tls = raw_connect(spine.addr, Arc::clone(&config)).await;
        let too_large = (FRAME_BYTES_MAX as u32 + 1).to_be_bytes();
        tls.write_all(&too_large).await.unwrap();
        tls.flush().await.unwrap();
        let goodbye = goodbye_within(&mut tls, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            goodbye.code,
            ErrorCode::FrameTooLarge,
            "{}",
            goodbye.message
        );
        drop(tls);
        // Its connection's place is free again before the flood.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let baseline = spine.resident_bytes();
        let started = Instant::now();
        let flood: Vec<_> = (0..FLOOD_CONNECTIONS)
            .map(|_| {
                let config = Arc::clone(&config);
                let addr = spine.addr;
                tokio::spawn(async move {
                    let mut tls = raw_connect(addr, config).await;
                    // A refused connection is told at once; a served one hears nothing.
                    if let Some(goodbye) = goodbye_within(&mut tls, Duration::from_secs(2)).await {
                        return Err(goodbye);
                    }
                    tls.write_all(&all_but_the_last_byte_of_a_largest_frame())
                        .await
                        .unwrap();
                    tls.flush().await.unwrap();
                    Ok(tls)
                })
            })
            .collect();
        let (mut served, mut refused) = (Vec::new(), 0);
        for connection in flood {
            match connection.await.unwrap() {
                Ok(tls) => served.push(tls),
                Err(goodbye) => {
                    assert_eq!(goodbye.code, ErrorCode::ServiceUnavailable);
                    assert!(
                        goodbye.message.contains("the server has"),
                        "the limit on connections in all: {}",
                        goodbye.message
                    );
                    refused += 1;
                }
            }
        }
        // The frames are in the server's buffers: its memory is at its most now.
        let mut peak = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(spine.resident_bytes());
        }
        let grown = peak.saturating_sub(baseline);
        eprintln!(
            "{} connections served, {refused} refused in {:?}; resident {} MiB at start, {} MiB \
             at the peak: {} MiB more, within a budget of {} MiB",
            served.len(),
            started.elapsed(),
            baseline >> 20,
            peak >> 20,
            grown >> 20,
            BUDGET_BYTES >> 20
        );
        assert!(
            grown <= BUDGET_BYTES,
            "the server grew by {grown} bytes, more than its budget of {BUDGET_BYTES}"
        );
        assert_eq!(
            served.len(),
            spine.connections_max,
            "served up to the limit"
        );
        assert_eq!(served.len() + refused, FLOOD_CONNECTIONS);
        drop(served);
    });
}
