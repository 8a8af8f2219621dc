//! The server: the transports' listeners on every core of a running engine, the limits they
//! enforce, and a graceful stop.
//!
//! - `config.rs`: addresses and limits, with defaults.
//! - `admission.rs`: what a connection must show after its handshake to be served.
//! - `connection_setup.rs`: a connection's handshake and admission, the same on both
//!   transports.
//! - `execute.rs`: what connections share, and running one request on the engine (both
//!   transports).
//! - `tls.rs`: TLS 1.3 over TCP, one listener per core.
//! - `quic.rs`: QUIC, one endpoint per core.
//! - `connections.rs`: open connections against their limits.
//! - `in_flight.rs`: the byte budget of requests in flight, over all connections.
//! - `rate.rs`: per-system request rates.
//! - `stall.rs`: writes to a client that may not read.
//! - `timeouts.rs`: a connection's idle and partial-frame timeouts.
//! - `reuse_port.rs`: one socket per core on one port, and each core's share of the rate.

mod admission;
mod config;
mod connection_setup;
mod connections;
mod execute;
mod in_flight;
pub mod quic;
pub mod rate;
mod reuse_port;
mod stall;
pub(crate) mod timeouts;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::server::WebPkiClientVerifier;
use spine_core::engine::EngineHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{Limits, ServerConfig};
use connections::Connections;
pub use connections::HANDSHAKES_IN_FLIGHT_PER_CORE;

use crate::pki::{Pki, PkiError};
use crate::protocol::ALPN;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificates could not be read.
    #[error("certificates: {0}")]
    Pki(#[from] PkiError),
    /// The TLS configuration was refused.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A listener could not be bound.
    // The OS error is in the message, not a `source`: `spine` prints causes after the message,
    // and would say it twice.
    #[error("{what} on {addr}: {error}{}", in_use_hint(error))]
    Bind {
        /// What would have listened there: `TLS`, `QUIC`, `metrics`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The failure.
        error: std::io::Error,
    },
}

fn in_use_hint(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        "; another process (perhaps another spine server) holds the address"
    } else {
        ""
    }
}

/// Fails if another socket holds one of `config`'s addresses (TLS and metrics over TCP, QUIC
/// over UDP), before anything is started or written: `Server::start` checks again as it binds,
/// but by then the engine has opened its data directory.
pub fn check_addresses_free(config: &ServerConfig) -> Result<(), ServerError> {
    let probes = [
        ("TLS", Some(config.tls_addr), socket2::Type::STREAM),
        ("QUIC", config.quic_addr, socket2::Type::DGRAM),
        ("metrics", config.metrics_addr, socket2::Type::STREAM),
    ];
    for (what, addr, kind) in probes {
        if let Some(addr) = addr {
            reuse_port::probe_free(addr, kind).map_err(|error| ServerError::Bind {
                what,
                addr,
                error,
            })?;
        }
    }
    Ok(())
}

/// A running server.
pub struct Server {
    metrics_addr: Option<SocketAddr>,
    tls_addr: SocketAddr,
    quic_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
    connections: Connections,
}

/// The TLS server configuration: TLS 1.3 only, client certificates from the deployment's CA
/// required, ALPN `spine/1`, session resumption by tickets and by a session cache.
pub fn tls_server_config(pki: &Pki) -> Result<rustls::ServerConfig, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki.ca_der()?)
        .map_err(|error| ServerError::Tls(error.to_string()))?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|error| ServerError::Tls(error.to_string()))?;
    let (chain, key) = pki.server_files().load()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| ServerError::Tls(error.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|error| ServerError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|error| ServerError::Tls(error.to_string()))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(16_384);
    Ok(config)
}

impl Server {
    /// Starts listening on every core of `engine`.
    pub fn start(
        engine: &EngineHandle,
        config: &ServerConfig,
        pki: &Pki,
    ) -> Result<Self, ServerError> {
        let tls_config = Arc::new(tls_server_config(pki)?);
        let (stop, stopped) = watch::channel(false);
        let connections = Connections::default();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let shared = Arc::new(execute::Shared {
            metrics: Arc::clone(&metrics),
            engine: engine.clone(),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::clone(&tls_config)),
            limits: config.limits,
            connections: connections.clone(),
            in_flight_bytes: in_flight::InFlightBytes::new(config.limits.in_flight_bytes_max),
            stop: stopped.clone(),
        });
        let (tls_addr, mut accept_tasks) =
            tls::start(Arc::clone(&shared), config.tls_addr, stopped.clone()).map_err(|error| {
                ServerError::Bind {
                    what: "TLS",
                    addr: config.tls_addr,
                    error,
                }
            })?;
        let quic_addr = match config.quic_addr {
            Some(addr) => {
                let (bound, tasks) = quic::start(shared, tls_config, addr, stopped)?;
                accept_tasks.extend(tasks);
                Some(bound)
            }
            None => None,
        };
        let metrics_addr = match config.metrics_addr {
            Some(addr) => {
                let bind = |error| ServerError::Bind {
                    what: "metrics",
                    addr,
                    error,
                };
                let listener = crate::metrics::bind(addr).map_err(bind)?;
                let bound = listener.local_addr().map_err(bind)?;
                let engine = engine.clone();
                let open = connections.clone();
                let stopped = stop.subscribe();
                accept_tasks.push(engine.runtime(0).clone().spawn(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            crate::metrics::serve(
                                listener,
                                metrics,
                                engine,
                                move || open.total(),
                                stopped,
                            )
                            .await
                        }
                        Err(error) => tracing::error!(%error, "could not serve metrics"),
                    }
                }));
                Some(bound)
            }
            None => None,
        };
        Ok(Self {
            metrics_addr,
            tls_addr,
            quic_addr,
            stop,
            accept_tasks,
            connections,
        })
    }

    /// Where TLS clients connect.
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
    }

    /// Where Prometheus scrapes `GET /metrics`, if metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where QUIC clients connect, if QUIC is on.
    pub fn quic_addr(&self) -> Option<SocketAddr> {
        self.quic_addr
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.total()
    }

    /// Stops accepting; every connection stops reading, answers what it has in flight and
    /// closes. Waits up to `grace` for that; returns the connections still open after it.
    pub fn stop(self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        for task in &self.accept_tasks {
            task.abort();
        }
        let deadline = Instant::now() + grace;
        while self.connections.total() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.connections.total()
    }
}
