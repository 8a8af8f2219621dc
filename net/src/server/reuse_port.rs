//! One socket per core on the same port (SO_REUSEPORT), and what the connections a core
//! serves share (its shard, its share of the per-system rate): what both transports need
//! before they start accepting.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use socket2::{Domain, Socket, Type};

use super::config::Limits;
use super::rate::RateLimiter;

/// Fails with `AddrInUse` if any socket holds `addr` (of `kind`): SO_REUSEPORT alone would let
/// a second server of the same user join this one's group on the port and take a share of its
/// connections. The probe does not set SO_REUSEPORT, so the kernel refuses it wherever the port
/// is held, by a group or by a plain socket. A TCP probe sets SO_REUSEADDR, so that connections
/// of a stopped server still in TIME_WAIT do not block a restart; a listener still conflicts. A
/// UDP probe does not (two UDP sockets with SO_REUSEADDR share a port). Port 0 is not probed:
/// the kernel picks a free port.
///
/// The probe is closed before the group binds, so two servers started at the same instant could
/// both pass it and then share the port; a server started while another runs cannot.
pub(crate) fn probe_free(addr: SocketAddr, kind: Type) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), kind, None)?;
    probe.set_reuse_address(kind == Type::STREAM)?;
    probe.bind(&addr.into())
}

/// `cores` sockets of `kind` bound to `addr` (port 0: a free port, the same for all), after
/// [`probe_free`] found no one else on it; returns the address bound and the sockets,
/// non-blocking.
pub(crate) fn bind_per_core(
    addr: SocketAddr,
    kind: Type,
    cores: usize,
) -> std::io::Result<(SocketAddr, Vec<Socket>)> {
    probe_free(addr, kind)?;
    let mut bound = addr;
    let mut sockets = Vec::with_capacity(cores);
    for _ in 0..cores {
        let socket = Socket::new(Domain::for_address(bound), kind, None)?;
        // TIME_WAIT connections of an earlier run must not block a TCP listener; a UDP socket
        // with SO_REUSEADDR would let any other such socket share its port.
        socket.set_reuse_address(kind == Type::STREAM)?;
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
