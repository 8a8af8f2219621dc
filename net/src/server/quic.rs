//! QUIC (quinn): one endpoint per core on the same UDP port (SO_REUSEPORT; the kernel keeps a
//! connection's datagrams on one socket), each on its core's runtime. A request is one
//! bidirectional stream: the client sends a request frame and finishes; the server answers
//! with a response frame and finishes. QUIC's own stream limit bounds requests in flight on a
//! connection; flow-control windows are raised from quinn's defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, Endpoint, Incoming, VarInt};
use rustls::pki_types::CertificateDer;
use spine_core::request::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::ServerError;
use super::connection_setup::{Admitted, admit_connection, handshake_within};
use super::connections::HANDSHAKES_IN_FLIGHT_PER_CORE;
use super::execute::{Shared, execute_request};
use super::rate::rate_limited;
use super::reuse_port::{CoreLocal, bind_per_core};
use super::stall::write_all_progressing;
use super::timeouts::{Timeout, Timeouts};
use crate::protocol::frame::{self, FrameKind};
use crate::protocol::message::{self, Goodbye, WireResponse};
use crate::protocol::session::{ServerSession, SessionEvent, SessionLimits};
use crate::quic_transport::{CLOSE_GOODBYE, transport_config};

/// This transport's index in the metrics.
const TRANSPORT: usize = 1;

/// Connection attempts one endpoint holds before they are accepted, at most (quinn's default,
/// 65,536, may hold 100 MiB); more are refused at once.
pub const INCOMING_MAX: usize = 256;
/// Bytes an endpoint buffers for its attempts not yet accepted, besides each one's first
/// datagram (quinn's default, 100 MiB).
pub const INCOMING_BUFFER_BYTES_TOTAL: u64 = 1 << 20;
/// Bytes of a first datagram, at most (quinn's largest UDP payload, 1,472, and room).
pub const DATAGRAM_BYTES_MAX: u64 = 1_500;

/// Bytes one endpoint's attempts not yet accepted hold, at most.
pub fn incoming_bytes_max() -> u64 {
    INCOMING_MAX as u64 * DATAGRAM_BYTES_MAX + INCOMING_BUFFER_BYTES_TOTAL
}

/// Binds one endpoint per core on `addr` (the same port for all) and accepts on each core's
/// runtime until `stop` turns true. Returns the address bound and the accept tasks.
pub(crate) fn start(
    shared: Arc<Shared>,
    tls: Arc<rustls::ServerConfig>,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, Vec<JoinHandle<()>>), ServerError> {
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|error| ServerError::Tls(format!("QUIC: {error}")))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server_config.transport_config(Arc::new(transport_config(shared.limits.session())));
    server_config
        .max_incoming(INCOMING_MAX)
        .incoming_buffer_size(64 << 10)
        .incoming_buffer_size_total(INCOMING_BUFFER_BYTES_TOTAL);
    let cores = shared.engine.shard_count();
    let (bound, sockets) =
        bind_per_core(addr, socket2::Type::DGRAM, cores).map_err(|error| ServerError::Bind {
            what: "QUIC",
            addr,
            error,
        })?;
    let tasks = sockets
        .into_iter()
        .enumerate()
        .map(|(core, socket)| {
            let shared = Arc::clone(&shared);
            let server_config = server_config.clone();
            let stop = stop.clone();
            let local = CoreLocal::new(core, &shared.limits, cores);
            shared.engine.runtime(core).clone().spawn(async move {
                let endpoint = match Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(server_config),
                    socket.into(),
                    Arc::new(quinn::TokioRuntime),
                ) {
                    Ok(endpoint) => endpoint,
                    Err(error) => {
                        tracing::error!(%error, "could not start a QUIC endpoint");
                        return;
                    }
                };
                accept_loop(shared, endpoint, local, stop).await;
            })
        })
        .collect();
    Ok((bound, tasks))
}

async fn accept_loop(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    local: Arc<CoreLocal>,
    mut stop: watch::Receiver<bool>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_PER_CORE));
    loop {
        // No more than so many handshakes at once on this core (as on TLS).
        let handshake = tokio::select! {
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => {
                endpoint.set_server_config(None);
                return;
            }
        };
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let shared = Arc::clone(&shared);
                    let local = Arc::clone(&local);
                    tokio::spawn(async move {
                        if let Err(error) = serve(shared, incoming, local, handshake).await {
                            tracing::debug!(%error, "QUIC connection ended");
                        }
                    });
                }
                None => return,
            },
            _ = stop.changed() => {
                // No new connections; those open finish their streams and close themselves.
                endpoint.set_server_config(None);
                return;
            }
        }
    }
}

fn close(shared: &Shared, connection: &Connection, code: ErrorCode, message: String) {
    shared.metrics.goodbye(TRANSPORT, code);
    let goodbye = message::encode(&Goodbye { code, message });
    connection.close(VarInt::from_u32(CLOSE_GOODBYE), &goodbye);
}

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
async fn serve(
    shared: Arc<Shared>,
    incoming: Incoming,
    local: Arc<CoreLocal>,
    handshake: OwnedSemaphorePermit,
) -> Result<(), String> {
    let limits = shared.limits;
    // The client's first flight is taken apart here: a TLS refusal (no ALPN) can come now.
    let connecting = incoming.accept().map_err(|error| {
        shared.metrics.handshake_refused(TRANSPORT, "tls");
        error.to_string()
    })?;
    let connection = handshake_within(&shared, TRANSPORT, connecting).await?;
    let alpn = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let chain = connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    let admitted = admit_connection(
        &shared,
        TRANSPORT,
        alpn.as_deref(),
        chain.as_deref().map(Vec::as_slice),
        handshake,
    );
    let Admitted { asid, _slot } = match admitted {
        Ok(admitted) => admitted,
        Err(Goodbye { code, message }) => {
            close(&shared, &connection, code, message);
            return Ok(());
        }
    };
    let mut stop = shared.stop.clone();
    let mut streams = tokio::task::JoinSet::new();
    // Idle: no stream open for the idle timeout (QUIC's own idle timeout, 60 s without a
    // packet, does not catch a client that sends keep-alives). The timer is re-armed only when
    // it fires.
    let mut active_at = Instant::now();
    let timer = tokio::time::sleep(limits.idle_timeout);
    tokio::pin!(timer);
    loop {
        let (send, receive) = tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok(stream) => stream,
                Err(_) => return Ok(()),
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {
                active_at = Instant::now();
                continue;
            }
            _ = stop.changed() => break,
            () = &mut timer => {
                let now = Instant::now();
                let due = active_at + limits.idle_timeout;
                if streams.is_empty() && now >= due {
                    shared.metrics.timed_out(TRANSPORT, Timeout::Idle);
                    let goodbye = Timeouts::new(limits.idle_timeout, limits.frame_timeout, now)
                        .goodbye(Timeout::Idle);
                    close(&shared, &connection, goodbye.code, goodbye.message);
                    return Ok(());
                }
                let again = if streams.is_empty() { due } else { now + limits.idle_timeout };
                timer.as_mut().reset(again.into());
                continue;
            }
        };
        active_at = Instant::now();
        let shared = Arc::clone(&shared);
        let local = Arc::clone(&local);
        streams.spawn(async move {
            if let Err(error) = serve_stream(shared, asid, send, receive, local).await {
                tracing::debug!(%error, "QUIC stream ended");
            }
        });
    }
    // Stopping: the streams already accepted are answered (and their answers delivered), then
    // the connection closes.
    let grace = limits.request_deadline + std::time::Duration::from_secs(5);
    let _ = tokio::time::timeout(grace, async {
        while streams.join_next().await.is_some() {}
    })
    .await;
    connection.close(VarInt::from_u32(0), b"server stopping");
    Ok(())
}

/// One request stream: read the request frame, execute, write the response frame, finish.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
async fn serve_stream(
    shared: Arc<Shared>,
    asid: u64,
    mut send: quinn::SendStream,
    mut receive: quinn::RecvStream,
    local: Arc<CoreLocal>,
) -> Result<(), String> {
    let limits = shared.limits;
    // A stream opens with its first bytes: its request frame must be whole (the stream
    // finished) within the frame timeout from then. What is read is charged to the requests
    // in flight as it arrives: QUIC gives the window back once bytes are read.
    let frame_max = limits.frame_bytes_max as usize + frame::FRAME_HEADER_BYTES;
    let Some(mut charge) = shared.in_flight_bytes.try_charge(0) else {
        return Err("no charge of 0 bytes".to_owned());
    };
    let read = tokio::time::timeout(
        limits.frame_timeout,
        read_charged(&shared, &mut receive, frame_max, &mut charge),
    )
    .await;
    let Ok(read) = read else {
        let _ = receive.stop(VarInt::from_u32(CLOSE_GOODBYE));
        shared.metrics.timed_out(TRANSPORT, Timeout::PartialFrame);
        let goodbye = Timeouts::new(limits.idle_timeout, limits.frame_timeout, Instant::now())
            .goodbye(Timeout::PartialFrame);
        return finish_with_goodbye(&shared, &mut send, goodbye.code, goodbye.message).await;
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(StreamRead::TooLong) => {
            // Stop the stream's sender; the connection serves on.
            let _ = receive.stop(VarInt::from_u32(CLOSE_GOODBYE));
            return finish_with_goodbye(
                &shared,
                &mut send,
                ErrorCode::FrameTooLarge,
                format!("a frame larger than {} bytes", limits.frame_bytes_max),
            )
            .await;
        }
        Err(StreamRead::OverBudget) => {
            let _ = receive.stop(VarInt::from_u32(CLOSE_GOODBYE));
            let refusal = shared.in_flight_bytes.refusal();
            return finish_with_goodbye(&shared, &mut send, refusal.code, refusal.message).await;
        }
        Err(StreamRead::Failed(error)) => return Err(error),
    };
    let frame_bytes = bytes.len();
    // The same session logic as a TLS connection, for a stream that carries one request.
    let mut session = ServerSession::new(SessionLimits {
        in_flight_max: 1,
        ..limits.session()
    });
    session.received(&bytes);
    let first = session.next_event();
    let extra = session.next_event().is_some() || session.buffered() > 0;
    let request = match first {
        Some(SessionEvent::Request(request)) if !extra => Ok(request),
        // A value refused on its own request (see the session).
        Some(SessionEvent::Respond(response)) if !extra => Err(response),
        Some(SessionEvent::Close(goodbye)) => {
            return finish_with_goodbye(&shared, &mut send, goodbye.code, goodbye.message).await;
        }
        Some(_) => {
            let message = "a request stream carries exactly one request frame".to_owned();
            return finish_with_goodbye(&shared, &mut send, ErrorCode::MalformedRequest, message)
                .await;
        }
        None => {
            let message = "the stream ended before a whole request frame".to_owned();
            return finish_with_goodbye(&shared, &mut send, ErrorCode::MalformedRequest, message)
                .await;
        }
    };
    // The frame's bytes are given back for the decoded request's charge.
    drop((bytes, session, charge));
    let (response, mut charge) = match request {
        Err(answered) => (answered, None),
        Ok(request) => {
            let charged = shared
                .in_flight_bytes
                .try_charge(super::in_flight::request_charge(frame_bytes));
            match charged {
                None => {
                    let refusal = shared.in_flight_bytes.refusal();
                    (WireResponse::new(request.id, Err(refusal)), None)
                }
                Some(charge) if local.rate.lock().allow(asid, Instant::now()) => (
                    execute_request(&shared, TRANSPORT, request, asid, local.shard).await,
                    Some(charge),
                ),
                Some(charge) => (
                    WireResponse::new(request.id, Err(rate_limited(asid, &limits))),
                    Some(charge),
                ),
            }
        }
    };
    let mut out = BytesMut::with_capacity(frame::FRAME_BYTES_TYPICAL);
    message::encode_frame(FrameKind::Response, &response, &mut out);
    drop(response);
    // Twice the frame, as on TLS (where the answer is held while its frame is written).
    if let Some(charge) = charge.as_mut() {
        charge.force_grow(2 * out.len() as u64);
    }
    if let Err(error) = write_all_progressing(&mut send, &out, limits.frame_timeout).await {
        if error.kind() == std::io::ErrorKind::TimedOut {
            // The client reads nothing of this stream: reset it; the connection serves on.
            shared.metrics.timed_out(TRANSPORT, Timeout::WriteStalled);
            let _ = send.reset(VarInt::from_u32(CLOSE_GOODBYE));
        }
        return Err(error.to_string());
    }
    send.finish().map_err(|error| error.to_string())?;
    // Until the client has the whole answer: a stopping server closes the connection only then.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), send.stopped()).await;
    Ok(())
}

/// Why a request stream's bytes could not be read whole.
enum StreamRead {
    /// More than a frame.
    TooLong,
    /// The requests in flight hold their byte limit.
    OverBudget,
    /// The stream failed.
    Failed(String),
}

/// Reads the stream to its end, at most `max` bytes, charging them to `charge` as they come.
async fn read_charged(
    shared: &Shared,
    receive: &mut quinn::RecvStream,
    max: usize,
    charge: &mut super::in_flight::Charge,
) -> Result<Vec<u8>, StreamRead> {
    let mut bytes = Vec::new();
    loop {
        let chunk = receive
            .read_chunk(max + 1 - bytes.len().min(max), true)
            .await
            .map_err(|error| StreamRead::Failed(error.to_string()))?;
        let Some(chunk) = chunk else {
            return Ok(bytes);
        };
        if bytes.len() + chunk.bytes.len() > max {
            return Err(StreamRead::TooLong);
        }
        if !shared
            .in_flight_bytes
            .try_grow(charge, chunk.bytes.len() as u64)
        {
            return Err(StreamRead::OverBudget);
        }
        bytes.extend_from_slice(&chunk.bytes);
    }
}

/// Answers a stream that carried no readable request with a goodbye frame (for that stream
/// only; the connection serves on).
async fn finish_with_goodbye(
    shared: &Shared,
    send: &mut quinn::SendStream,
    code: ErrorCode,
    message: String,
) -> Result<(), String> {
    shared.metrics.goodbye(TRANSPORT, code);
    send.write_all(&message::goodbye_frame(code, message))
        .await
        .map_err(|error| error.to_string())?;
    send.finish().map_err(|error| error.to_string())
}
