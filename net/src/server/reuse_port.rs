//! One socket per core on the same port (SO_REUSEPORT), and what the connections a core
//! serves share (its shard, its share of the per-system rate): what both transports need
//! before they start accepting.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use socket2::{Domain, Socket, Type};

use super::config::Limits;
use super::rate::RateLimiter;

/// `cores` sockets of `kind` bound to `addr` (port 0: a free port, the same for all); returns
/// the address bound and the sockets, non-blocking.
pub(crate) fn bind_per_core(
    addr: SocketAddr,
    kind: Type,
    cores: usize,
) -> std::io::Result<(SocketAddr, Vec<Socket>)> {
    let mut bound = addr;
    let mut sockets = Vec::with_capacity(cores);
    for _ in 0..cores {
        let socket = Socket::new(Domain::for_address(bound), kind, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&bound.into())?;
        if kind == Type::STREAM {
            socket.listen(1024)?;
        }
        bound = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("a socket bound to a non-IP address"))?;
        sockets.push(socket);
    }
    Ok((bound, sockets))
}

/// What the connections one core serves share.
pub(crate) struct CoreLocal {
    /// The shard whose thread is this core's: requests whose home it is stay on the core.
    pub(crate) shard: usize,
    /// Shared-nothing rate limits: each core allows its share of every system's rate.
    pub(crate) rate: Mutex<RateLimiter>,
}

impl CoreLocal {
    /// What core `shard` of `cores` shares among its connections.
    pub(crate) fn new(shard: usize, limits: &Limits, cores: usize) -> Arc<Self> {
        Arc::new(Self {
            shard,
            rate: Mutex::new(RateLimiter::new(
                limits.requests_per_second_per_system.div_ceil(cores as u32),
            )),
        })
    }
}
