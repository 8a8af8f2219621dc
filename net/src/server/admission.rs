//! What a connection must show after its TLS handshake, on both transports, before it is
//! served: the `spine/1` application protocol, a client certificate fit for signing, and a
//! system the certificate is registered to.

use rustls::pki_types::CertificateDer;
use spine_core::access::Directory;
use spine_core::request::ErrorCode;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki;
use crate::protocol::ALPN;

/// Why a connection whose handshake succeeded is refused: told to the client in a goodbye.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The goodbye's code.
    pub(crate) code: ErrorCode,
    /// The goodbye's message.
    pub(crate) message: String,
    /// The reason, as the metrics label it.
    pub(crate) reason: &'static str,
}

/// The ASID of the system a connection with `alpn` negotiated and `chain` presented is served
/// as, or why it is refused.
pub(crate) fn admit(
    directory: &Directory,
    alpn: Option<&[u8]>,
    chain: Option<&[CertificateDer<'_>]>,
) -> Result<u64, Refusal> {
    // rustls lets a TLS client that offers no ALPN at all through (a QUIC one it refuses).
    if alpn != Some(ALPN) {
        return Err(Refusal {
            code: ErrorCode::MalformedRequest,
            message: "the client negotiated no application protocol (ALPN): spine/1 is required"
                .to_owned(),
            reason: "no_alpn",
        });
    }
    let Some(cert) = chain.and_then(|chain| chain.first()) else {
        // The verifier requires a certificate; this is for a configuration that did not.
        return Err(Refusal {
            code: ErrorCode::AccessDenied,
            message: "no client certificate".to_owned(),
            reason: "unregistered",
        });
    };
    let fingerprint = pki::fingerprint(cert);
    if !allows_digital_signature(cert) {
        return Err(Refusal {
            code: ErrorCode::AccessDenied,
            message: format!(
                "the client certificate (SHA-256 {fingerprint}) does not allow digitalSignature \
                 in its key usage, which a TLS 1.3 client certificate needs"
            ),
            reason: "key_usage",
        });
    }
    match directory.system_by_certificate(&fingerprint) {
        Some(system) => Ok(system.asid),
        None => Err(Refusal {
            code: ErrorCode::AccessDenied,
            message: format!(
                "the client certificate (SHA-256 {fingerprint}) is not registered to any system"
            ),
            reason: "unregistered",
        }),
    }
}

/// Whether the certificate has a key usage extension that includes `digitalSignature`: the
/// handshake's CertificateVerify is a signature by the key (RFC 8446, 4.4.3; RFC 5280,
/// 4.2.1.3). The CA's verifier checks the chain and the extended key usage, not this. A
/// certificate without the extension is refused too: the deployment's CA always writes it.
fn allows_digital_signature(cert: &CertificateDer<'_>) -> bool {
    match X509Certificate::from_der(cert.as_ref()) {
        Ok((_, parsed)) => matches!(
            parsed.key_usage(),
            Ok(Some(usage)) if usage.value.digital_signature()
        ),
        Err(_) => false,
    }
}
