//! QUIC's transport settings and its close code, the same at both ends of a connection: the
//! server's endpoints and the client's use one function, so their windows and stream limits
//! cannot drift apart.

use quinn::{TransportConfig, VarInt};

use crate::protocol::session::SessionLimits;

/// The application error code a connection is closed with; the reason bytes are a goodbye
/// message (see `net/PROTOCOL.md`).
pub const CLOSE_GOODBYE: u32 = 1;

/// Bytes of a connection's receive window, of each stream's, and of its send window: one
/// frame whole. A connection's windows bound what QUIC buffers for it; what its streams have
/// read is charged to the requests in flight (`in_flight_bytes_max`).
pub fn window_bytes(frame_bytes_max: u32) -> u64 {
    u64::from(frame_bytes_max) + 64
}

/// The transport settings: streams for the requests in flight, windows of one frame.
pub fn transport_config(limits: SessionLimits) -> TransportConfig {
    let mut transport = TransportConfig::default();
    let streams = u32::try_from(limits.in_flight_max).unwrap_or(u32::MAX);
    transport.max_concurrent_bidi_streams(VarInt::from_u32(streams));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    let window = window_bytes(limits.frame_bytes_max);
    let window_varint = VarInt::from_u64(window).unwrap_or(VarInt::MAX);
    transport.stream_receive_window(window_varint);
    transport.receive_window(window_varint);
    transport.send_window(window);
    transport.max_idle_timeout(Some(
        std::time::Duration::from_secs(60)
            .try_into()
            .expect("60 s is a valid idle timeout"),
    ));
    transport
}
