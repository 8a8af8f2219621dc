//! The embedded server: the engine and the `spine serve` listeners in this process, on a fresh
//! temporary data directory with its own certificates, for a run with no `--target`. Behind
//! the `embedded-server` feature, so a generator built without it links no engine or storage.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use spine_core::access::directory_file;
use spine_core::access::{Activity, System};
use spine_core::engine::{Engine, EngineConfig};
use spine_core::storage::BackendChoice;
use spine_net::client::Transport;
use spine_net::pki::{DEMO_CLIENT, prepare_deployment};
use spine_net::server::{Limits, Server, ServerConfig};

/// How the embedded server is set up.
#[derive(Clone, Debug, Default)]
pub struct EmbeddedOptions {
    /// Connecting systems, each with a certificate of its own (at least one: the demo client).
    pub systems: usize,
    /// Shards (default: one per core).
    pub shards: Option<usize>,
    /// Segment size of the logs, in MiB (default: the engine's).
    pub segment_mib: Option<u64>,
    /// io backend of the logs: `auto`, `io-uring` or `portable` (default: the engine's).
    pub backend: Option<String>,
}

/// A running embedded server, its data directory removed when it goes.
pub struct Embedded {
    engine: Option<Engine>,
    server: Option<Server>,
    addr: SocketAddr,
    systems: Vec<String>,
    dir: tempfile::TempDir,
}

impl Embedded {
    /// Starts the engine and listeners on a fresh data directory with `options.systems`
    /// client certificates registered.
    pub fn start(options: &EmbeddedOptions, transport: Transport) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("spine-loadgen-")
            .tempdir()
            .context("creating a temporary data directory")?;
        let data_dir = dir.path().to_owned();
        let pki = prepare_deployment(&data_dir)?;
        let mut systems = vec![DEMO_CLIENT.to_owned()];
        let mut directory = directory_file::load(&data_dir)?;
        for system in 1..options.systems.max(1) {
            let name = format!("loadgen-{system}");
            let (_, fingerprint) = pki.issue_client(&name)?;
            let asid = 200_000_000_100 + system as u64;
            directory.systems.push(System {
                asid,
                name: name.clone(),
                organisation: "Y90001".parse().context("ODS code")?,
                activities: Activity::ALL.to_vec(),
                certificates: vec![fingerprint],
            });
            systems.push(name);
        }
        directory.index().context("registering the load systems")?;
        directory_file::save(&data_dir, &directory)?;
        let engine = Engine::start(engine_config(&data_dir, options)?)
            .context("starting the embedded engine")?;
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let server_config = ServerConfig {
            tls_addr: loopback,
            quic_addr: Some(loopback),
            metrics_addr: None,
            limits: Limits {
                // The generator is one very busy system: no per-system rate below its offer.
                requests_per_second_per_system: 10_000_000,
                ..Limits::default()
            },
        };
        let server = Server::start(&engine.handle(), &server_config, &pki)?;
        let addr = match transport {
            Transport::Tls => server.tls_addr(),
            Transport::Quic => server.quic_addr().context("QUIC is on")?,
        };
        eprintln!(
            "embedded server: {} shards, {addr}, data in {}",
            engine.handle().shard_count(),
            data_dir.display()
        );
        Ok(Self {
            engine: Some(engine),
            server: Some(server),
            addr,
            systems,
            dir,
        })
    }

    /// The address of the transport it was started for.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its data directory (the CA and the client certificates are there).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The names of the systems registered, each with a certificate.
    pub fn systems(&self) -> &[String] {
        &self.systems
    }

    /// Forgets the logs' latencies so far (the population's loading), so the report covers
    /// the run alone.
    pub fn reset_log_latencies(&self) {
        if let Some(engine) = &self.engine {
            engine.handle().reset_log_latencies();
        }
    }

    /// One line per shard: its log's commit and flush latencies since the last reset.
    pub fn log_latency_lines(&self) -> Vec<String> {
        let Some(engine) = &self.engine else {
            return Vec::new();
        };
        let ms = |us: f64| us / 1000.0;
        engine
            .handle()
            .log_latencies()
            .iter()
            .enumerate()
            .map(|(shard, latency)| {
                format!(
                    "embedded server, shard {shard}'s log: commit p50 {:.2} ms, p99 {:.2} ms, \
                     max {:.2} ms; flush p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} batches)",
                    ms(latency.commit.p50_us),
                    ms(latency.commit.p99_us),
                    ms(latency.commit.max_us),
                    ms(latency.flush.p50_us),
                    ms(latency.flush.p99_us),
                    ms(latency.flush.max_us),
                    latency.flush.count,
                )
            })
            .collect()
    }
}

fn engine_config(data_dir: &Path, options: &EmbeddedOptions) -> Result<EngineConfig> {
    let mut config = EngineConfig::new(data_dir);
    if let Some(shards) = options.shards {
        config.shards = shards;
    }
    if let Some(mib) = options.segment_mib {
        ensure!(mib > 0, "--segment-mib must be at least 1");
        config.segment_size = mib << 20;
    }
    if let Some(backend) = &options.backend {
        config.backend = match backend.as_str() {
            "auto" => BackendChoice::Auto,
            "io-uring" => BackendChoice::IoUring,
            "portable" => BackendChoice::Portable,
            other => bail!("unknown backend {other:?}: auto, io-uring or portable"),
        };
    }
    Ok(config)
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop(Duration::from_secs(5));
        }
        if let Some(engine) = self.engine.take()
            && let Err(error) = engine.shutdown()
        {
            eprintln!("stopping the embedded engine: {error}");
        }
    }
}
