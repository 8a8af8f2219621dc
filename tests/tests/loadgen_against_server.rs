//! A short run against a real server (the engine and its TLS and QUIC listeners, in this
//! process, on a temporary data directory): the report's counts agree with each other and with
//! what the server's Prometheus metrics say it answered.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use spine_core::engine::{Engine, EngineConfig};
use spine_loadgen::model::Mix;
use spine_loadgen::runner::{self, NetworkDriver, RunConfig};
use spine_loadgen::workload::{Workload, load_population};
use spine_net::client::{ClientIdentity, Transport, tls_client_config};
use spine_net::client_set::ClientSet;
use spine_net::pki::{DEMO_CLIENT, prepare_deployment};
use spine_net::server::{Limits, Server, ServerConfig};

async fn scrape(addr: SocketAddr) -> String {
    spine_net::metrics::scrape(addr).await.unwrap()
}

/// The sum of every `spine_requests_total` sample for `transport`.
fn requests_answered(metrics: &str, transport: &str) -> u64 {
    let prefix = format!("spine_requests_total{{transport=\"{transport}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn a_short_run_agrees_with_the_servers_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = prepare_deployment(dir.path()).unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.shards = 2;
    config.pin_threads = false;
    let engine = Engine::start(config).unwrap();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start(
        &engine.handle(),
        &ServerConfig {
            tls_addr: loopback,
            quic_addr: Some(loopback),
            metrics_addr: Some(loopback),
            limits: Limits::default(),
        },
        &pki,
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let identity = ClientIdentity {
        ca: pki.ca_cert(),
        cert: pki.client_files(DEMO_CLIENT).unwrap(),
    };
    let tls = Arc::new(tls_client_config(&identity).unwrap());
    for (transport, addr, name) in [
        (Transport::Tls, server.tls_addr(), "tls"),
        (Transport::Quic, server.quic_addr().unwrap(), "quic"),
    ] {
        let before = runtime.block_on(scrape(server.metrics_addr().unwrap()));
        let (measurement, loads, routes) = runtime.block_on(async {
            let configs = [Arc::clone(&tls), Arc::clone(&tls)];
            let clients = Arc::new(
                ClientSet::connect(transport, addr, "localhost", &configs)
                    .await
                    .unwrap(),
            );
            // Each connection asked the server which shard's core serves it.
            let routes = clients.clients().len() as u64;
            let workload = Arc::new(Workload::new(5, 2_000));
            let loads = load_population(&workload, &clients, &ProgressBar::hidden())
                .await
                .unwrap();
            let driver = Arc::new(NetworkDriver::new(workload, clients));
            let config = RunConfig {
                duration: Duration::from_secs(2),
                rate: Arc::new(|_| 400.0),
                highest: 400.0,
                mix: Mix::national(),
                seed: 9,
                in_flight_max: 10_000,
            };
            (runner::run(driver, &config).await, loads, routes)
        });
        let after = runtime.block_on(scrape(server.metrics_addr().unwrap()));
        // About 800 operations offered; every one answered, none failed or dropped.
        assert!(
            (600..1_000).contains(&measurement.offered),
            "{}",
            measurement.offered
        );
        assert_eq!(
            measurement.completed, measurement.offered,
            "{measurement:?}"
        );
        assert_eq!((measurement.failed, measurement.dropped), (0, 0));
        let counted: u64 = measurement.operations.values().map(|op| op.count).sum();
        assert_eq!(counted, measurement.offered);
        // The server answered exactly the requests the run sent, plus the connections' route
        // requests and the population's loads:
        // 2,000 patients, the moves of the 40 who moved to the demo practice, and 1,800
        // summaries (the second transport's loads find them there already: refused,
        // answered), and 30 e-RS publications (10 services, each with 200 slots in two
        // publications; the second transport's publish more slots).
        assert_eq!(loads, 3_870);
        let answered = requests_answered(&after, name) - requests_answered(&before, name);
        assert_eq!(
            answered,
            measurement.requests() + routes + loads,
            "over {name}"
        );
    }
    server.stop(Duration::from_secs(5));
    engine.shutdown().unwrap();
}
