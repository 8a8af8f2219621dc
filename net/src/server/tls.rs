//! TLS 1.3 over TCP: one listener per core on the same port (SO_REUSEPORT), each on its core's
//! runtime; a connection is served on the core that accepted it, its requests pipelined and
//! answered in any order, matched by request id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::connection_setup::{Admitted, admit_connection, handshake_within};
use super::connections::HANDSHAKES_IN_FLIGHT_PER_CORE;
use super::execute::{Shared, execute_request};
use super::in_flight::{Charge, request_charge};
use super::rate::rate_limited;
use super::reuse_port::{CoreLocal, bind_per_core};
use super::stall::write_all_progressing;
use super::timeouts::{Timeout, Timeouts};
use crate::protocol::frame::FrameKind;
use crate::protocol::message::{self, Goodbye, WireResponse, goodbye_frame};
use crate::protocol::session::{ServerSession, SessionEvent};

/// This transport's index in the metrics.
const TRANSPORT: usize = 0;

/// Binds one listener per core on `addr` (the same port for all) and starts accepting on each
/// core's runtime until `stop` turns true. Returns the address bound and the accept tasks.
pub(crate) fn start(
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let cores = shared.engine.shard_count();
    let (bound, listeners) = bind_per_core(addr, socket2::Type::STREAM, cores)?;
    let tasks = listeners
        .into_iter()
        .enumerate()
        .map(|(core, listener)| {
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            let local = CoreLocal::new(core, &shared.limits, cores);
            shared
                .engine
                .runtime(core)
                .clone()
                .spawn(accept_loop(shared, listener, local, stop))
        })
        .collect();
    Ok((bound, tasks))
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: socket2::Socket,
    local: Arc<CoreLocal>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener.into()) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "could not register a TLS listener");
            return;
        }
    };
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT_PER_CORE));
    loop {
        // No more than so many handshakes at once on this core; the kernel's backlog holds
        // the connections not yet accepted.
        let handshake = tokio::select! {
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = Arc::clone(&shared);
                    let local = Arc::clone(&local);
                    tokio::spawn(async move {
                        if let Err(error) = serve(shared, stream, local, handshake).await {
                            tracing::debug!(%peer, %error, "connection ended");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "accepting a TLS connection"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// One connection, from handshake to close.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    local: Arc<CoreLocal>,
    handshake: OwnedSemaphorePermit,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let limits = shared.limits;
    let tls = handshake_within(&shared, TRANSPORT, shared.acceptor.accept(stream))
        .await
        .map_err(std::io::Error::other)?;
    let admitted = {
        let connection = tls.get_ref().1;
        admit_connection(
            &shared,
            TRANSPORT,
            connection.alpn_protocol(),
            connection.peer_certificates(),
            handshake,
        )
    };
    let (mut reader, mut writer) = tokio::io::split(tls);
    let Admitted { asid, _slot } = match admitted {
        Ok(admitted) => admitted,
        Err(Goodbye { code, message }) => {
            shared.metrics.goodbye(TRANSPORT, code);
            writer.write_all(&goodbye_frame(code, message)).await?;
            return writer.shutdown().await;
        }
    };

    // The requests in flight, polled by this task: no task of their own, and one wake-up of
    // this task covers every answer that arrived meanwhile. Answers gather in `out` and go in
    // one write; while it waits on a client that does not read, this task reads nothing more.
    let mut in_flight = FuturesUnordered::new();
    let mut session = ServerSession::new(limits.session());
    let mut stop = shared.stop.clone();
    let mut out = BytesMut::with_capacity(16 * 1024);
    // A bad frame's goodbye, sent only after every request read before it is answered: the
    // goodbye is the connection's last frame (`net/PROTOCOL.md`, section 2).
    let mut goodbye = None;
    let mut timeouts = Timeouts::new(limits.idle_timeout, limits.frame_timeout, Instant::now());
    let timer = tokio::time::sleep_until(timeouts.deadline(Instant::now()).into());
    tokio::pin!(timer);
    // The charges of the answers in `out`, given back once it is written.
    let mut charges: Vec<Charge> = Vec::new();
    'connection: loop {
        let mut completed = false;
        loop {
            let before = session.buffered();
            let Some(event) = session.next_event() else {
                break;
            };
            completed = true;
            match event {
                SessionEvent::Request(request) => {
                    let frame_bytes = before.saturating_sub(session.buffered());
                    let Some(charge) = shared
                        .in_flight_bytes
                        .try_charge(request_charge(frame_bytes))
                    else {
                        session.answered();
                        let refusal = shared.in_flight_bytes.refusal();
                        append_response(&mut out, &WireResponse::new(request.id, Err(refusal)));
                        continue;
                    };
                    if !local.rate.lock().allow(asid, Instant::now()) {
                        session.answered();
                        let refusal = rate_limited(asid, &limits);
                        append_response(&mut out, &WireResponse::new(request.id, Err(refusal)));
                        continue;
                    }
                    let shared = Arc::clone(&shared);
                    let local_shard = local.shard;
                    in_flight.push(async move {
                        let response =
                            execute_request(&shared, TRANSPORT, request, asid, local_shard).await;
                        (response, charge)
                    });
                }
                SessionEvent::Respond(response) => append_response(&mut out, &response),
                SessionEvent::Close(bad_frame) => {
                    goodbye = Some(bad_frame);
                    break;
                }
            }
        }
        while let Some(Some(answered)) = in_flight.next().now_or_never() {
            session.answered();
            append_charged(&mut out, &mut charges, answered);
        }
        if !out.is_empty() {
            write_answers(&shared, &mut writer, &out).await?;
            out.clear();
            charges.clear();
        }
        if goodbye.is_some() {
            break 'connection;
        }
        timeouts.received(completed, session.buffered() > 0, Instant::now());
        reserve_for_frame(session.receive_buffer(), limits.frame_bytes_max);
        tokio::select! {
            Some(answered) = in_flight.next(), if !in_flight.is_empty() => {
                session.answered();
                append_charged(&mut out, &mut charges, answered);
                timeouts.active(Instant::now());
            }
            read = reader.read_buf(session.receive_buffer()) => match read {
                Ok(0) | Err(_) => break 'connection,
                Ok(_) => timeouts.active(Instant::now()),
            },
            _ = stop.changed() => break 'connection,
            () = &mut timer => match timeouts.expired(in_flight.len(), Instant::now()) {
                Ok(timeout) => {
                    shared.metrics.timed_out(TRANSPORT, timeout);
                    goodbye = Some(timeouts.goodbye(timeout));
                    break 'connection;
                }
                Err(again) => timer.as_mut().reset(again.into()),
            },
        }
    }
    // Nothing more is read. Answer what is in flight (each request within its deadline): a
    // stopping server, a client that closed its side, or a bad frame, whose goodbye goes last.
    while let Some(answered) = in_flight.next().await {
        append_charged(&mut out, &mut charges, answered);
    }
    if let Some(goodbye) = goodbye {
        shared.metrics.goodbye(TRANSPORT, goodbye.code);
        out.extend_from_slice(&goodbye_frame(goodbye.code, goodbye.message));
    }
    if !out.is_empty() {
        write_answers(&shared, &mut writer, &out).await?;
    }
    writer.shutdown().await
}

/// Writes `out` to the client; a client that takes none of it for the frame timeout is
/// counted and dropped (the error ends the connection: a goodbye would not be read either).
async fn write_answers<W: tokio::io::AsyncWrite + Unpin>(
    shared: &Shared,
    writer: &mut W,
    out: &[u8],
) -> std::io::Result<()> {
    let written = write_all_progressing(writer, out, shared.limits.frame_timeout).await;
    if matches!(&written, Err(error) if error.kind() == std::io::ErrorKind::TimedOut) {
        shared.metrics.timed_out(TRANSPORT, Timeout::WriteStalled);
    }
    written
}

/// Room in `buffer` to read into. A frame begun and not yet whole gets room for its rest and
/// the read reserve at once, and nothing more until it is whole: a buffer grown a little at a
/// time doubles its capacity, and would hold twice the largest frame. Between frames (or for
/// a small buffer) the read reserve, 16 KiB, when less than 4 KiB is free. The buffer holds
/// at most one frame and the reserve (and, below 64 KiB, twice that).
fn reserve_for_frame(buffer: &mut BytesMut, frame_bytes_max: u32) {
    let free = buffer.capacity() - buffer.len();
    let frame_rest = match buffer.get(..4) {
        Some(length) => {
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            // A frame over the limit is refused once its header is read: no room for it.
            let body = length.min(frame_bytes_max) as usize;
            (4 + body).saturating_sub(buffer.len())
        }
        None => 0,
    };
    let reserve = crate::memory::READ_RESERVE_BYTES as usize;
    if frame_rest > free {
        buffer.reserve(frame_rest + reserve);
    } else if free < 4096 && (frame_rest == 0 || buffer.len() < SMALL_BUFFER_BYTES) {
        buffer.reserve(reserve);
    }
}

/// A receive buffer below this may grow by the read reserve mid-frame (doubling, it stays
/// small); a larger one holds a large frame and has room for its rest.
const SMALL_BUFFER_BYTES: usize = 64 * 1024;

/// Appends the frame of an answered request to `out`, and charges its bytes (twice: the
/// answer as the engine gave it, until encoded, and its frame) with the request's.
fn append_charged(out: &mut BytesMut, charges: &mut Vec<Charge>, answered: (WireResponse, Charge)) {
    let (response, mut charge) = answered;
    let start = out.len();
    append_response(out, &response);
    charge.force_grow(2 * (out.len() - start) as u64);
    charges.push(charge);
}

/// Appends the frame of `response` to `out`.
fn append_response(out: &mut BytesMut, response: &WireResponse) {
    message::encode_frame(FrameKind::Response, response, out);
}
