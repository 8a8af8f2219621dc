//! Request execution, the same for both transports: what every connection shares (the engine,
//! the limits, the budgets, the metrics), and running one decoded request on the engine within
//! its deadline. A transport only moves frames; everything a request does happens here.

use std::sync::Arc;
use std::time::Instant;

use spine_core::engine::EngineHandle;
use spine_core::request::{ConnectionRoute, ErrorCode, Operation, Refusal, Reply};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::config::Limits;
use super::connections::Connections;
use super::in_flight::InFlightBytes;
use crate::protocol::message::{WireRequest, WireResponse};

/// What every connection of the server shares.
pub(crate) struct Shared {
    pub(crate) engine: EngineHandle,
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) limits: Limits,
    pub(crate) connections: Connections,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The bytes of requests in flight, over every connection of both transports.
    pub(crate) in_flight_bytes: InFlightBytes,
    /// Turns true when the server stops: connections stop reading, answer what is in flight,
    /// and close.
    pub(crate) stop: watch::Receiver<bool>,
}

/// Runs one request on the engine for system `asid`, within its deadline, and counts it in
/// the metrics of `transport` (both transports). The connection is served by `local_shard`'s
/// core: a connection's route is answered here.
pub(crate) async fn execute_request(
    shared: &Shared,
    transport: usize,
    request: WireRequest,
    asid: u64,
    local_shard: usize,
) -> WireResponse {
    let (engine, limits) = (&shared.engine, &shared.limits);
    let started = Instant::now();
    let operation = crate::metrics::operation_label(&request.operation);
    let id = request.id;
    if matches!(request.operation, Operation::ConnectionRoute) {
        let route = ConnectionRoute {
            shards: engine.shard_count() as u32,
            local_shard: local_shard as u32,
        };
        shared
            .metrics
            .request(transport, operation, started.elapsed(), None);
        return WireResponse::new(id, Ok(Reply::Route(route)));
    }
    let deadline = match request.deadline_ms {
        0 => limits.request_deadline,
        ms => limits
            .request_deadline
            .min(std::time::Duration::from_millis(u64::from(ms))),
    };
    let response =
        match tokio::time::timeout(deadline, engine.submit(request.into_request(asid))).await {
            Ok(response) => response,
            Err(_) => Err(Refusal::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "no answer within {} ms; the request may still take effect: retry with the \
                 same request id to learn its outcome",
                    deadline.as_millis()
                ),
            )),
        };
    let refused = response.as_ref().err().map(|refusal| refusal.code);
    shared
        .metrics
        .request(transport, operation, started.elapsed(), refused);
    WireResponse::new(id, response)
}
