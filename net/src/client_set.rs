//! Several connections to one server, each request sent over a connection that its home
//! shard's core serves: the server then executes it without handing it to another core (no
//! cross-core queue, no wake-up of another thread). The server says which core serves a
//! connection (`connection_route`); the kernel spreads connections over cores at random, so a
//! set opens a few more while a shard has none. Requests without a home (searches, creates)
//! and servers that do not say go round-robin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spine_core::request::{ConnectionRoute, Response};
use spine_core::shard::shard_of;

use crate::client::{Client, ClientError, Transport};
use crate::protocol::message::WireRequest;
use crate::protocol::response_body::ResponseBody;

/// Extra connections a set opens, at most, per connection asked for, to reach every shard.
const EXTRA_CONNECTIONS_PER_CONNECTION: usize = 3;

/// Connections to one server, routed by home shard. Cheap to share (`Arc`); the connections
/// are the tasks' of the runtime that opened them.
pub struct ClientSet {
    clients: Vec<Client>,
    /// The server's shards, when every connection's route agreed.
    shards: Option<usize>,
    /// Per shard, the indexes in `clients` of the connections its core serves.
    by_shard: Vec<Vec<usize>>,
    next: AtomicUsize,
}

impl ClientSet {
    /// Opens `configs.len()` connections (a config each: systems may differ) to `addr` over
    /// `transport`, and more, up to three times as many, while a shard has none.
    pub async fn connect(
        transport: Transport,
        addr: SocketAddr,
        server_name: &str,
        configs: &[Arc<rustls::ClientConfig>],
    ) -> Result<Self, ClientError> {
        if configs.is_empty() {
            return Err(ClientError::Connect("no connection asked for".into()));
        }
        let mut connected = Vec::with_capacity(configs.len());
        let attempts = configs.len() * (1 + EXTRA_CONNECTIONS_PER_CONNECTION);
        for attempt in 0..attempts {
            let wanted = attempt < configs.len();
            if !wanted && covers_every_shard(&connected) {
                break;
            }
            let config = Arc::clone(&configs[attempt % configs.len()]);
            let client = Client::connect(transport, addr, server_name, config).await?;
            let route = client.route().await?;
            connected.push((client, route));
        }
        Ok(Self::new(connected))
    }

    /// A set of `connected` clients with the routes their server gave (`None`: unknown).
    pub fn new(connected: Vec<(Client, Option<ConnectionRoute>)>) -> Self {
        assert!(!connected.is_empty(), "a set has at least one connection");
        let shards = agreed_shards(&connected);
        let mut by_shard = vec![Vec::new(); shards.unwrap_or(0)];
        for (index, (_, route)) in connected.iter().enumerate() {
            if let (Some(_), Some(route)) = (shards, route) {
                by_shard[route.local_shard as usize].push(index);
            }
        }
        Self {
            clients: connected.into_iter().map(|(client, _)| client).collect(),
            shards,
            by_shard,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `request` over a connection its home shard's core serves (any, round-robin, if it
    /// has no home or no such connection) and waits for its response.
    pub async fn call(&self, request: WireRequest) -> Result<Response, ClientError> {
        let index = self.pick(&request);
        self.clients[index].call(request).await
    }

    /// [`ClientSet::call`], answering with the response's body decoded only as far as its head
    /// ([`Client::call_body`]).
    pub async fn call_body(&self, request: WireRequest) -> Result<ResponseBody, ClientError> {
        let index = self.pick(&request);
        self.clients[index].call_body(request).await
    }

    /// The connections, in the order they were opened.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// How many connections each shard's core serves (empty when the server did not say).
    pub fn connections_by_shard(&self) -> Vec<usize> {
        self.by_shard.iter().map(Vec::len).collect()
    }

    fn pick(&self, request: &WireRequest) -> usize {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let served = match (self.shards, request.operation.home_value()) {
            (Some(shards), Some(value)) => &self.by_shard[shard_of(value, shards)],
            _ => return turn % self.clients.len(),
        };
        if served.is_empty() {
            turn % self.clients.len()
        } else {
            served[turn % served.len()]
        }
    }
}

/// The shard count every connection's route gives, if they all gave one and agree.
fn agreed_shards(connected: &[(Client, Option<ConnectionRoute>)]) -> Option<usize> {
    let first = connected.first()?.1?;
    let agree = connected.iter().all(|(_, route)| {
        route.is_some_and(|route| route.shards == first.shards && route.local_shard < route.shards)
    });
    (agree && first.shards > 0).then_some(first.shards as usize)
}

/// Whether every shard of the server has a connection (or the routes are unknown, so more
/// connections would not help).
fn covers_every_shard(connected: &[(Client, Option<ConnectionRoute>)]) -> bool {
    let Some(shards) = agreed_shards(connected) else {
        return true;
    };
    let mut served = vec![false; shards];
    for (_, route) in connected {
        if let Some(route) = route {
            served[route.local_shard as usize] = true;
        }
    }
    served.iter().all(|&served| served)
}
