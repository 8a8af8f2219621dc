//! Spine core's network layer: the `spine/1` protocol over QUIC and TLS, the client and the
//! `spine` binary. See `ARCHITECTURE.md` section 6 and `net/PROTOCOL.md`.
//!
//! Where things are:
//! - [`protocol`]: frames, messages and the server side of a connection (sans-IO).
//! - [`client`]: an async client over TLS or QUIC.
//! - [`client_set`]: connections to one server, each request sent to its home shard's core.
//! - [`memory`]: the worst case of every limit, summed, and the defaults fitted to a budget.
//! - [`metrics`]: counters and the Prometheus endpoint.
//! - [`pki`]: the deployment's CA and certificates.
//! - [`quic_transport`]: QUIC's settings and close code, shared by client and server.
//! - [`server`]: the listeners on every core, the limits, a graceful stop.
//! - [`settings`]: `spine serve`'s settings: defaults, a file, flags.
#![warn(missing_docs, unreachable_pub)]

pub mod client;
pub mod client_set;
mod frame_writer;
#[cfg(feature = "server")]
pub mod memory;
#[cfg(feature = "server")]
pub mod metrics;
pub mod pki;
pub mod protocol;
pub mod quic_transport;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod settings;
