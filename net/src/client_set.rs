//! Several connections to one server, each request sent over a connection that its home
//! shard's core serves: the server then executes it without handing it to another core (no
//! cross-core queue, no wake-up of another thread). The server says which core serves a
//! connection (`connection_route`); the kernel spreads connections over cores at random, so a
//! set opens a few more while a shard has none. Requests without a home (searches, creates)
//! and servers that do not say go round-robin.
//!
//! Over TLS a set also keeps bulk lanes: a connection per shard for the requests that carry a
//! GP2GP chunk (256 KiB, in the request or its answer). One TCP connection is one byte stream,
//! so a chunk holds up every small request queued behind it; on lanes of their own, chunks
//! wait only for each other. QUIC gives each request its own stream and needs none.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use spine_domain::request::{ConnectionRoute, Operation, Response};
use spine_domain::routing::shard_of;

use crate::client::{Client, ClientError, Transport};
use crate::protocol::message::WireRequest;
use crate::protocol::response_body::ResponseBody;

/// Extra connections a set opens, at most, per connection asked for, to reach every shard.
const EXTRA_CONNECTIONS_PER_CONNECTION: usize = 3;

/// Connections to one server, routed by home shard. Cheap to share (`Arc`); the connections
/// are the tasks' of the runtime that opened them.
pub struct ClientSet {
    clients: Vec<Client>,
    routes: Routes,
    next: AtomicUsize,
}

/// Which connection of a set each request goes over: the set's routing, without its sockets.
#[derive(Clone, Debug, Default)]
struct Routes {
    /// The server's shards, when every connection's route agreed.
    shards: Option<usize>,
    /// The connections that are not bulk lanes: the first ones of the set.
    regular: usize,
    /// Per shard, the indexes of the (regular) connections its core serves.
    by_shard: Vec<Vec<usize>>,
    /// Per shard, the indexes of its bulk lanes (empty: none).
    bulk_by_shard: Vec<Vec<usize>>,
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
        let mut set = Self::new(connected);
        if transport == Transport::Tls {
            set.open_bulk_lanes(addr, server_name, &configs[0]).await?;
        }
        Ok(set)
    }

    /// Opens a bulk lane for every shard, as far as the kernel's spreading of connections over
    /// cores allows in as many attempts as [`ClientSet::connect`] makes.
    async fn open_bulk_lanes(
        &mut self,
        addr: SocketAddr,
        server_name: &str,
        config: &Arc<rustls::ClientConfig>,
    ) -> Result<(), ClientError> {
        let Some(shards) = self.routes.shards else {
            return Ok(());
        };
        let attempts = shards * (1 + EXTRA_CONNECTIONS_PER_CONNECTION);
        let mut lanes = vec![Vec::new(); shards];
        for _ in 0..attempts {
            if lanes.iter().all(|lane: &Vec<usize>| !lane.is_empty()) {
                break;
            }
            let client =
                Client::connect(Transport::Tls, addr, server_name, Arc::clone(config)).await?;
            let shard = match client.route().await? {
                Some(route) if route_of_a_server_with(&route, shards) => route.local_shard as usize,
                // Routes that changed since the set connected: not a server to route by.
                _ => return Ok(()),
            };
            lanes[shard].push(self.clients.len());
            self.clients.push(client);
        }
        self.routes.bulk_by_shard = lanes;
        Ok(())
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
            routes: Routes {
                shards,
                regular: connected.len(),
                by_shard,
                bulk_by_shard: Vec::new(),
            },
            clients: connected.into_iter().map(|(client, _)| client).collect(),
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
        self.routes.by_shard.iter().map(Vec::len).collect()
    }

    /// How many bulk lanes each shard's core serves (empty when the set has none).
    pub fn bulk_lanes_by_shard(&self) -> Vec<usize> {
        self.routes.bulk_by_shard.iter().map(Vec::len).collect()
    }

    fn pick(&self, request: &WireRequest) -> usize {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.routes.pick(&request.operation, turn)
    }
}

impl Routes {
    /// The connection for `operation`, the set's `turn`-th request: a bulk lane of its home
    /// shard for a chunk, else a connection its home shard's core serves, else any regular
    /// one, round-robin.
    fn pick(&self, operation: &Operation, turn: usize) -> usize {
        let any = turn % self.regular;
        let home = match (self.shards, operation.home_value()) {
            (Some(shards), Some(value)) => shard_of(value, shards),
            _ => return any,
        };
        if carries_a_chunk(operation)
            && let Some(lanes) = self.bulk_by_shard.get(home)
            && !lanes.is_empty()
        {
            return lanes[turn % lanes.len()];
        }
        let served = &self.by_shard[home];
        if served.is_empty() {
            any
        } else {
            served[turn % served.len()]
        }
    }
}

/// Whether `operation` carries a GP2GP chunk, in the request or in its answer.
fn carries_a_chunk(operation: &Operation) -> bool {
    matches!(
        operation,
        Operation::Gp2gpSendChunk { .. } | Operation::Gp2gpFetchChunk { .. }
    )
}

/// Whether `route` comes from a server of `shards` shards and names one of them.
fn route_of_a_server_with(route: &ConnectionRoute, shards: usize) -> bool {
    route.shards as usize == shards && route.local_shard < route.shards
}

/// The shard count every connection's route gives, if they all gave one and agree.
fn agreed_shards(connected: &[(Client, Option<ConnectionRoute>)]) -> Option<usize> {
    let first = connected.first()?.1?;
    let agree = connected.iter().all(|(_, route)| {
        route.is_some_and(|route| route_of_a_server_with(&route, first.shards as usize))
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

#[cfg(test)]
mod tests {
    use spine_domain::gp2gp::TransferId;
    use spine_domain::pds::search::SearchQuery;

    use super::*;

    /// Two shards; regular connections 0 and 2 on shard 0, 1 on shard 1; lanes 3 (shard 0)
    /// and 4 (shard 1).
    fn routes() -> Routes {
        Routes {
            shards: Some(2),
            regular: 3,
            by_shard: vec![vec![0, 2], vec![1]],
            bulk_by_shard: vec![vec![3], vec![4]],
        }
    }

    /// A transfer whose home is `shard` of two.
    fn transfer_on(shard: usize) -> TransferId {
        (1..)
            .filter_map(TransferId::new)
            .find(|id| shard_of(id.get(), 2) == shard)
            .expect("some transfer id lives on every shard")
    }

    #[test]
    fn chunks_go_over_their_home_shards_bulk_lane() {
        let routes = routes();
        for shard in 0..2 {
            let transfer = transfer_on(shard);
            let send = Operation::Gp2gpSendChunk {
                transfer,
                index: 0,
                bytes: vec![1; 16],
            };
            let fetch = Operation::Gp2gpFetchChunk { transfer, index: 0 };
            for turn in 0..6 {
                assert_eq!(routes.pick(&send, turn), 3 + shard);
                assert_eq!(routes.pick(&fetch, turn), 3 + shard);
            }
        }
    }

    #[test]
    fn small_requests_never_take_a_bulk_lane() {
        let routes = routes();
        let status = Operation::Gp2gpStatus {
            transfer: transfer_on(0),
        };
        let search = Operation::PdsSearch {
            query: SearchQuery::new(),
        };
        for turn in 0..12 {
            assert!([0, 2].contains(&routes.pick(&status, turn)), "home shard 0");
            assert!(
                routes.pick(&search, turn) < 3,
                "round-robin over the regular ones"
            );
        }
    }

    #[test]
    fn without_lanes_chunks_go_with_everything_else() {
        let routes = Routes {
            bulk_by_shard: Vec::new(),
            ..routes()
        };
        let fetch = Operation::Gp2gpFetchChunk {
            transfer: transfer_on(1),
            index: 2,
        };
        for turn in 0..4 {
            assert_eq!(routes.pick(&fetch, turn), 1);
        }
    }
}
