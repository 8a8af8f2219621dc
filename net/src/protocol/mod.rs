//! The `spine/1` protocol (sans-IO): frames ([`frame`]), the messages they carry ([`message`];
//! a request's schema of its own in [`wire`]),
//! and what one connection's server side does with the bytes it receives ([`session`]). Both
//! transports use all three; `net/PROTOCOL.md` is the specification.

pub mod frame;
pub mod message;
pub mod response_body;
pub mod session;
pub mod wire;

/// The ALPN protocol name both transports negotiate.
pub const ALPN: &[u8] = b"spine/1";
