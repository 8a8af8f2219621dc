//! An async client of `spine/1`, over TLS or QUIC: one connection, any number of requests in
//! flight on it (up to a bound), answered in any order (TLS: matched by request id; QUIC: a
//! stream each). Cheap to clone; clones share the connection. Used by the load generator and
//! the tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use spine_domain::access::Justification;
use spine_domain::pds::values::OdsCode;
use spine_domain::request::{ConnectionRoute, Operation, Reply, Response};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_rustls::TlsConnector;
use uuid::Uuid;

use crate::pki::{CertFiles, PkiError};
use crate::protocol::ALPN;
use crate::protocol::frame::{self, FrameDecoder, FrameKind};
use crate::protocol::message::{self, Goodbye, WireRequest};
use crate::protocol::response_body::ResponseBody;
use crate::protocol::session::SessionLimits;

/// Who the client is and whom it trusts.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// The deployment CA's certificate (PEM).
    pub ca: PathBuf,
    /// The system's client certificate and key.
    pub cert: CertFiles,
}

/// Why a call failed without a response from the server.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or the TLS handshake failed.
    #[error("connecting: {0}")]
    Connect(String),
    /// The server closed the connection, saying why.
    #[error("the server closed the connection: {}: {}", .0.code, .0.message)]
    Goodbye(Goodbye),
    /// The connection ended without a goodbye.
    #[error("the connection was lost: {0}")]
    Lost(String),
    /// Another call with the same request id is in flight on this connection.
    #[error("request id {0} is already in flight on this connection")]
    DuplicateId(Uuid),
}

type Waiting = Arc<Mutex<HashMap<Uuid, oneshot::Sender<Result<ResponseBody, ClientError>>>>>;

/// Which transport a client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TLS 1.3 over TCP.
    Tls,
    /// QUIC.
    Quic,
}

/// A connection to a server over either transport.
#[derive(Clone)]
pub enum Client {
    /// Over TLS.
    Tls(TlsClient),
    /// Over QUIC.
    Quic(QuicClient),
}

impl Client {
    /// Connects to `addr` over `transport`, checking the server's certificate names
    /// `server_name`.
    pub async fn connect(
        transport: Transport,
        addr: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, ClientError> {
        Ok(match transport {
            Transport::Tls => Client::Tls(TlsClient::connect(addr, server_name, config).await?),
            Transport::Quic => Client::Quic(QuicClient::connect(addr, server_name, config).await?),
        })
    }

    /// Sends `request` and waits for its response.
    pub async fn call(&self, request: WireRequest) -> Result<Response, ClientError> {
        decoded(self.call_body(request).await?)
    }

    /// Sends `request` and waits for its response's body, decoded only as far as its head
    /// (for callers that need no more than whether it was done).
    pub async fn call_body(&self, request: WireRequest) -> Result<ResponseBody, ClientError> {
        match self {
            Client::Tls(client) => client.call_body(request).await,
            Client::Quic(client) => client.call_body(request).await,
        }
    }

    /// Asks the server how it is sharded and which shard's core serves this connection
    /// (`Ok(None)`: the server refused to say).
    pub async fn route(&self) -> Result<Option<ConnectionRoute>, ClientError> {
        let organisation: OdsCode = ROUTE_ORGANISATION
            .parse()
            .map_err(|error| ClientError::Connect(format!("{ROUTE_ORGANISATION}: {error}")))?;
        let request = WireRequest {
            id: Uuid::new_v4(),
            user: Uuid::nil(),
            role_profile: String::new(),
            organisation,
            justification: Justification::None,
            deadline_ms: 0,
            operation: Operation::ConnectionRoute,
        };
        Ok(match self.call(request).await? {
            Ok(Reply::Route(route)) => Some(route),
            Ok(_) | Err(_) => None,
        })
    }
}

/// The organisation a route request names: the server answers it without looking at the caller.
const ROUTE_ORGANISATION: &str = "Y00000";

/// A TLS connection to a server.
#[derive(Clone)]
pub struct TlsClient {
    frames: mpsc::Sender<Bytes>,
    waiting: Waiting,
    permits: Arc<Semaphore>,
    /// Why the connection ended, once it has.
    ended: Arc<Mutex<Option<ClientError>>>,
}

/// Requests in flight on one connection at most (the server's default limit is larger).
pub const IN_FLIGHT_MAX: usize = 512;
/// Largest response frame accepted, in bytes.
const FRAME_BYTES_MAX: u32 = 16 << 20;

/// The TLS client configuration for `identity`: TLS 1.3, ALPN `spine/1`, resumption on.
pub fn tls_client_config(identity: &ClientIdentity) -> Result<rustls::ClientConfig, ClientError> {
    let failed = |error: String| ClientError::Connect(error);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls::pki_types::CertificateDer::from_pem_file(&identity.ca)
        .map_err(|error| failed(format!("{}: {error}", identity.ca.display())))?;
    roots.add(ca).map_err(|error| failed(error.to_string()))?;
    let (chain, key) = identity
        .cert
        .load()
        .map_err(|error: PkiError| failed(error.to_string()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| failed(error.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|error| failed(error.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

impl TlsClient {
    /// Connects to `addr`, checking the server's certificate names `server_name`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, ClientError> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|error| ClientError::Connect(error.to_string()))?;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|error| ClientError::Connect(format!("{addr}: {error}")))?;
        stream
            .set_nodelay(true)
            .map_err(|error| ClientError::Connect(error.to_string()))?;
        let tls = TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|error| ClientError::Connect(format!("TLS handshake: {error}")))?;
        let (mut reader, mut writer) = tokio::io::split(tls);
        let (frames, mut to_send) = mpsc::channel::<Bytes>(IN_FLIGHT_MAX);
        let waiting: Waiting = Arc::default();
        let ended: Arc<Mutex<Option<ClientError>>> = Arc::default();
        tokio::spawn(async move {
            // A write failure ends the connection; the reader reports it to every caller.
            let _ = crate::frame_writer::write_frames(&mut writer, &mut to_send).await;
        });
        let reading = (Arc::clone(&waiting), Arc::clone(&ended));
        tokio::spawn(async move {
            let (waiting, ended) = reading;
            let error = read_responses(&mut reader, &waiting).await;
            // Every call still waiting learns why the connection ended.
            *ended.lock() = Some(error.clone());
            for (_, reply) in waiting.lock().drain() {
                let _ = reply.send(Err(error.clone()));
            }
        });
        Ok(Self {
            frames,
            waiting,
            permits: Arc::new(Semaphore::new(IN_FLIGHT_MAX)),
            ended,
        })
    }

    /// Sends `request` and waits for its response.
    pub async fn call(&self, request: WireRequest) -> Result<Response, ClientError> {
        decoded(self.call_body(request).await?)
    }

    /// Sends `request` and waits for its response's body ([`Client::call_body`]).
    pub async fn call_body(&self, request: WireRequest) -> Result<ResponseBody, ClientError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Lost("client closed".into()))?;
        let id = request.id;
        let (reply, answer) = oneshot::channel();
        {
            let mut waiting = self.waiting.lock();
            if let Some(error) = self.ended.lock().clone() {
                return Err(error);
            }
            if waiting.contains_key(&id) {
                return Err(ClientError::DuplicateId(id));
            }
            waiting.insert(id, reply);
        }
        let mut out = BytesMut::with_capacity(frame::FRAME_BYTES_TYPICAL);
        message::encode_frame(FrameKind::Request, &request, &mut out);
        if self.frames.send(out.freeze()).await.is_err() {
            self.waiting.lock().remove(&id);
            return Err(ClientError::Lost("the connection's writer stopped".into()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ClientError::Lost("the connection ended".into())))
    }
}

/// Reads response frames until the connection ends; returns why it ended.
async fn read_responses(
    reader: &mut (impl AsyncReadExt + Unpin),
    waiting: &Waiting,
) -> ClientError {
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    loop {
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return ClientError::Lost(error.to_string()),
            };
            match frame.kind {
                FrameKind::Response => {
                    let body = match ResponseBody::new(frame.body) {
                        Ok(body) => body,
                        Err(error) => return ClientError::Lost(error.to_string()),
                    };
                    if let Some(reply) = waiting.lock().remove(&body.id()) {
                        let _ = reply.send(Ok(body));
                    }
                }
                FrameKind::Goodbye => {
                    return match message::decode::<Goodbye>("goodbye", &frame.body) {
                        Ok(goodbye) => ClientError::Goodbye(goodbye),
                        Err(error) => ClientError::Lost(error.to_string()),
                    };
                }
                FrameKind::Request => {
                    return ClientError::Lost("the server sent a request frame".into());
                }
            }
        }
        let buffer = decoder.buffer_mut();
        if buffer.capacity() - buffer.len() < 4096 {
            buffer.reserve(16 * 1024);
        }
        match reader.read_buf(decoder.buffer_mut()).await {
            Ok(0) => return ClientError::Lost("closed by the server".into()),
            Ok(_) => {}
            Err(error) => return ClientError::Lost(error.to_string()),
        }
    }
}

/// A QUIC connection to a server: a bidirectional stream per request.
#[derive(Clone)]
pub struct QuicClient {
    connection: quinn::Connection,
    /// Kept so the endpoint (the client's socket) lives as long as the connection.
    _endpoint: quinn::Endpoint,
}

impl QuicClient {
    /// Connects to `addr`, checking the server's certificate names `server_name`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, ClientError> {
        let failed = |error: String| ClientError::Connect(error);
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config)
            .map_err(|error| failed(error.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(Arc::new(crate::quic_transport::transport_config(
            SessionLimits::default(),
        )));
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|error| failed(error.to_string()))?;
        endpoint.set_default_client_config(client_config);
        let connection = endpoint
            .connect(addr, server_name)
            .map_err(|error| failed(error.to_string()))?
            .await
            .map_err(|error| connection_error(error, true))?;
        Ok(Self {
            connection,
            _endpoint: endpoint,
        })
    }

    /// Sends `request` on a stream of its own and waits for its response.
    pub async fn call(&self, request: WireRequest) -> Result<Response, ClientError> {
        decoded(self.call_body(request).await?)
    }

    /// Sends `request` on a stream of its own and waits for its response's body
    /// ([`Client::call_body`]).
    pub async fn call_body(&self, request: WireRequest) -> Result<ResponseBody, ClientError> {
        let (mut send, mut receive) = self
            .connection
            .open_bi()
            .await
            .map_err(|error| connection_error(error, false))?;
        let mut out = BytesMut::with_capacity(frame::FRAME_BYTES_TYPICAL);
        message::encode_frame(FrameKind::Request, &request, &mut out);
        let lost = |error: String| ClientError::Lost(error);
        send.write_all(&out).await.map_err(|error| match error {
            quinn::WriteError::ConnectionLost(error) => connection_error(error, false),
            other => lost(other.to_string()),
        })?;
        send.finish().map_err(|error| lost(error.to_string()))?;
        let bytes = receive
            .read_to_end(FRAME_BYTES_MAX as usize)
            .await
            .map_err(|error| match error {
                quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(error)) => {
                    connection_error(error, false)
                }
                other => lost(other.to_string()),
            })?;
        let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
        decoder.extend(&bytes);
        let frame = decoder
            .next_frame()
            .map_err(|error| lost(error.to_string()))?
            .ok_or_else(|| lost("the stream ended without a response".into()))?;
        match frame.kind {
            FrameKind::Response => {
                ResponseBody::new(frame.body).map_err(|error| lost(error.to_string()))
            }
            FrameKind::Goodbye => Err(message::decode::<Goodbye>("goodbye", &frame.body)
                .map_or_else(|error| lost(error.to_string()), ClientError::Goodbye)),
            FrameKind::Request => Err(lost("the server sent a request frame".into())),
        }
    }
}

/// The whole response in `body`; a body that does not decode ends the call as the connection
/// would have.
fn decoded(body: ResponseBody) -> Result<Response, ClientError> {
    body.decode()
        .map_err(|error| ClientError::Lost(error.to_string()))
}

/// A QUIC connection error as the client reports it: the server's goodbye when it closed the
/// connection with one.
fn connection_error(error: quinn::ConnectionError, connecting: bool) -> ClientError {
    if let quinn::ConnectionError::ApplicationClosed(close) = &error
        && close.error_code == quinn::VarInt::from_u32(crate::quic_transport::CLOSE_GOODBYE)
        && let Ok(goodbye) = message::decode::<Goodbye>("goodbye", &close.reason)
    {
        return ClientError::Goodbye(goodbye);
    }
    if connecting {
        ClientError::Connect(error.to_string())
    } else {
        ClientError::Lost(error.to_string())
    }
}
