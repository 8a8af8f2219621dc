//! Spine core's network layer: the `spine/1` protocol over QUIC and TLS, the client and the
//! `spine` binary. See `DESIGN.md` section 6 and `net/PROTOCOL.md`.
//!
//! Where things are:
//! - [`protocol`]: frames, messages and the server side of a connection (sans-IO).
#![warn(missing_docs, unreachable_pub)]

pub mod protocol;
