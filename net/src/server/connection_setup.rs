//! A connection's set-up, the same on both transports: its TLS handshake within the handshake
//! timeout, then admission (the `spine/1` protocol, a registered client certificate) and a
//! place among the open connections. A transport supplies only how it handshakes and how it
//! says goodbye.

use std::fmt::Display;
use std::future::Future;

use rustls::pki_types::CertificateDer;
use spine_core::request::ErrorCode;
use tokio::sync::OwnedSemaphorePermit;

use super::admission::admit;
use super::connections::ConnectionSlot;
use super::execute::Shared;
use crate::protocol::message::Goodbye;

/// The handshake's result, within the handshake timeout; a failure or a timeout is counted
/// among `transport`'s refused handshakes.
pub(crate) async fn handshake_within<T, E: Display>(
    shared: &Shared,
    transport: usize,
    handshake: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(shared.limits.handshake_timeout, handshake).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => {
            shared.metrics.handshake_refused(transport, "tls");
            Err(error.to_string())
        }
        Err(_) => {
            shared.metrics.handshake_refused(transport, "timeout");
            Err("the TLS handshake timed out".to_owned())
        }
    }
}

/// A connection admitted: the system it serves and its place among the open connections
/// (freed when dropped).
pub(crate) struct Admitted {
    /// The ASID of the system the certificate is registered to.
    pub(crate) asid: u64,
    /// Its place among the open connections.
    pub(crate) _slot: ConnectionSlot,
}

/// Admits a connection whose handshake negotiated `alpn` and presented `chain`, releasing
/// the core's `handshake` permit, and counts it; or the goodbye it must be closed with (the
/// transport counts that goodbye as it sends it).
pub(crate) fn admit_connection(
    shared: &Shared,
    transport: usize,
    alpn: Option<&[u8]>,
    chain: Option<&[CertificateDer<'_>]>,
    handshake: OwnedSemaphorePermit,
) -> Result<Admitted, Goodbye> {
    let admitted = admit(shared.engine.directory(), alpn, chain);
    drop(handshake);
    shared.metrics.connection(transport, admitted.is_err());
    let asid = admitted.map_err(|refusal| {
        shared.metrics.handshake_refused(transport, refusal.reason);
        Goodbye {
            code: refusal.code,
            message: refusal.message,
        }
    })?;
    let slot = shared
        .connections
        .open(asid, &shared.limits)
        .map_err(|message| Goodbye {
            code: ErrorCode::ServiceUnavailable,
            message,
        })?;
    Ok(Admitted { asid, _slot: slot })
}
