//! `spine-bench net`: PDS retrieves over the network, TLS and QUIC, through the real server
//! (the `spine-net` server and engine, started in this process on free loopback ports with a
//! fresh data directory and certificates, unless `--target` names a running one).
//!
//! Cases: closed-loop retrieves at 1, 16 and 256 requests outstanding (spread over up to 8
//! connections); an open-loop schedule at a fixed rate (3,500/s, the national peak's order),
//! latency measured from each request's intended send time so a stall is not hidden; and full
//! TLS handshakes a second (resumption off).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use spine_core::NhsNumber;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::{Engine, EngineConfig};
use spine_core::pds::synthetic::{Population, nhs_numbers};
use spine_core::request::{Operation, Reply};
use spine_net::client::{Client, ClientIdentity, Transport, tls_client_config};
use spine_net::pki::{DEMO_CLIENT, Pki, prepare_deployment};
use spine_net::protocol::message::WireRequest;
use spine_net::server::{Limits, Server, ServerConfig};
use uuid::Uuid;

use crate::machine;

/// Arguments of `spine-bench net`.
#[derive(Args, Debug)]
pub struct NetArgs {
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Directory in which the server gets a fresh data directory, deleted afterwards.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// A running server's data directory (for its CA and the demo client certificate) and
    /// addresses, instead of starting one: `--target DATA_DIR,TLS_ADDR,QUIC_ADDR`.
    #[arg(long, value_name = "DATA_DIR,TLS_ADDR,QUIC_ADDR")]
    target: Option<String>,

    /// Patients loaded before the run (a started server only).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    patients: usize,

    /// Seconds each case runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 4.0)]
    seconds: f64,

    /// Shards of a started server (default: one per core).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,

    /// Client threads.
    #[arg(long, value_name = "N", default_value_t = 2)]
    client_threads: usize,
}

#[derive(Serialize)]
struct Row {
    case: &'static str,
    transport: &'static str,
    concurrency: usize,
    rate: u32,
    ops_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    patients: usize,
    results: Vec<Row>,
}

const CONCURRENCY: [usize; 3] = [1, 16, 256];
const FIXED_RATE: u32 = 3_500;
const CONNECTIONS_MAX: usize = 8;

fn request(nhs_number: NhsNumber) -> WireRequest {
    WireRequest::as_demo_gp(Operation::PdsRetrieve { nhs_number })
}

/// What the cases need to reach the server.
struct Target {
    tls: SocketAddr,
    quic: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    identity: ClientIdentity,
    numbers: Arc<Vec<NhsNumber>>,
}

/// Runs the network benchmark.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn run(args: &NetArgs) -> Result<()> {
    ensure!(args.seconds > 0.0, "--seconds must be positive");
    let (scratch, machine) = machine::scratch_dir(&args.dir, "spine-bench-net-")?;
    let numbers: Arc<Vec<NhsNumber>> = Arc::new(nhs_numbers().take(args.patients.max(1)).collect());

    // A started server lives until the end of the run.
    let mut started: Option<(Engine, Server)> = None;
    let (data_dir, tls, quic) = match &args.target {
        Some(target) => {
            let parts: Vec<&str> = target.split(',').collect();
            ensure!(
                parts.len() == 3,
                "--target takes DATA_DIR,TLS_ADDR,QUIC_ADDR"
            );
            (
                PathBuf::from(parts[0]),
                parts[1].parse().context("TLS address")?,
                parts[2].parse().context("QUIC address")?,
            )
        }
        None => {
            let data_dir = scratch.path().to_owned();
            let pki = prepare_deployment(&data_dir)?;
            let mut config = EngineConfig::new(&data_dir);
            if let Some(shards) = args.shards {
                config.shards = shards;
            }
            let engine = Engine::start(config).context("starting the engine")?;
            load(&engine, args.patients)?;
            let server_config = ServerConfig {
                tls_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                quic_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                metrics_addr: None,
                limits: Limits::default(),
            };
            let server = Server::start(&engine.handle(), &server_config, &pki)?;
            let addresses = (server.tls_addr(), server.quic_addr().context("QUIC is on")?);
            eprintln!("server: TLS {}, QUIC {}", addresses.0, addresses.1);
            started = Some((engine, server));
            (data_dir, addresses.0, addresses.1)
        }
    };
    let pki = Pki::at(&data_dir);
    let identity = ClientIdentity {
        ca: pki.ca_cert(),
        cert: pki.client_files(DEMO_CLIENT)?,
    };
    let target = Target {
        tls,
        quic,
        config: Arc::new(tls_client_config(&identity)?),
        identity,
        numbers,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .context("building the client runtime")?;
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for transport in [Transport::Tls, Transport::Quic] {
        for concurrency in CONCURRENCY {
            let row = runtime.block_on(closed_loop(&target, transport, concurrency, duration))?;
            eprintln!(
                "retrieve  {:<4} {:>4} outstanding  {:>8.0}/s  p50 {:>6} us  p99 {:>6} us  errors {}",
                row.transport, concurrency, row.ops_per_s, row.p50_us, row.p99_us, row.errors
            );
            results.push(row);
        }
        let row = runtime.block_on(fixed_rate(&target, transport, FIXED_RATE, duration))?;
        eprintln!(
            "fixed rate {:<4} {:>5}/s  achieved {:>8.0}/s  p50 {:>6} us  p99 {:>6} us  errors {}",
            row.transport, FIXED_RATE, row.ops_per_s, row.p50_us, row.p99_us, row.errors
        );
        results.push(row);
    }
    let row = runtime.block_on(handshakes(&target, duration))?;
    eprintln!(
        "handshakes tls  {:>8.0}/s  p50 {:>6} us  p99 {:>6} us  errors {}",
        row.ops_per_s, row.p50_us, row.p99_us, row.errors
    );
    results.push(row);
    drop(runtime);
    if let Some((engine, server)) = started {
        server.stop(Duration::from_secs(5));
        engine.shutdown().context("stopping the engine")?;
    }
    let report = Report {
        machine: machine.summary,
        patients: args.patients,
        results,
    };
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Loads the synthetic population through the engine directly (not what is measured).
fn load(engine: &Engine, patients: usize) -> Result<()> {
    let handle = engine.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("building the load runtime")?;
    runtime.block_on(async {
        let mut pending = Vec::with_capacity(256);
        for patient in Population::new(1).take(patients) {
            let request = spine_core::request::Request {
                id: Uuid::new_v4(),
                caller: spine_core::access::directory_file::demo_caller(demo_ids::GP),
                justification: Justification::None,
                operation: Operation::PdsLoad { patient },
            };
            pending.push(handle.submit(request));
            if pending.len() == 256 {
                for response in futures_util::future::join_all(std::mem::take(&mut pending)).await {
                    response.map_err(|refusal| anyhow::anyhow!("loading: {refusal}"))?;
                }
            }
        }
        for response in futures_util::future::join_all(pending).await {
            response.map_err(|refusal| anyhow::anyhow!("loading: {refusal}"))?;
        }
        Ok(())
    })
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Tls => "tls",
        Transport::Quic => "quic",
    }
}

async fn connections(target: &Target, transport: Transport, count: usize) -> Result<Vec<Client>> {
    let addr = match transport {
        Transport::Tls => target.tls,
        Transport::Quic => target.quic,
    };
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(
            Client::connect(transport, addr, "localhost", Arc::clone(&target.config))
                .await
                .with_context(|| format!("connecting over {}", transport_name(transport)))?,
        );
    }
    Ok(clients)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// What a measuring task counted: done, errors, latency.
type Tally = (u64, u64, Histogram<u64>);

/// The sum of the tasks' tallies.
async fn gather(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Result<Tally> {
    let mut total = (0, 0, histogram());
    for task in tasks {
        let (done, errors, latency) = task.await.context("a measuring task")?;
        total.0 += done;
        total.1 += errors;
        total.2.add(&latency).context("merging histograms")?;
    }
    Ok(total)
}

/// `concurrency` tasks, each sending its next retrieve when the last is answered.
async fn closed_loop(
    target: &Target,
    transport: Transport,
    concurrency: usize,
    duration: Duration,
) -> Result<Row> {
    let clients = connections(target, transport, concurrency.clamp(1, CONNECTIONS_MAX)).await?;
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let client = clients[task % clients.len()].clone();
            let numbers = Arc::clone(&target.numbers);
            tokio::spawn(async move {
                let mut latency = histogram();
                let (mut done, mut errors) = (0u64, 0u64);
                let mut random = spine_core::pds::synthetic::SplitMix64::new(task as u64 + 1);
                while Instant::now() < deadline {
                    let nhs = numbers[random.below(numbers.len() as u64) as usize];
                    let sent = Instant::now();
                    match client.call(request(nhs)).await {
                        Ok(Ok(Reply::Patient(_))) => done += 1,
                        _ => errors += 1,
                    }
                    latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                }
                (done, errors, latency)
            })
        })
        .collect();
    let (done, errors, latency) = gather(tasks).await?;
    Ok(Row {
        case: "retrieve",
        transport: transport_name(transport),
        concurrency,
        rate: 0,
        ops_per_s: (done as f64 / started.elapsed().as_secs_f64()).round(),
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        errors,
    })
}

/// Retrieves sent on a fixed schedule (`rate` a second, evenly spaced, whatever the answers
/// do), latency counted from each one's intended send time.
async fn fixed_rate(
    target: &Target,
    transport: Transport,
    rate: u32,
    duration: Duration,
) -> Result<Row> {
    let clients = connections(target, transport, 4).await?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let total = (duration.as_secs_f64() * f64::from(rate)) as u64;
    let started = Instant::now();
    let (results, mut collected) = tokio::sync::mpsc::channel::<(bool, u64)>(65_536);
    for sequence in 0..total {
        let intended = started + interval.mul_f64(sequence as f64);
        tokio::time::sleep_until(intended.into()).await;
        let client = clients[sequence as usize % clients.len()].clone();
        let nhs = target.numbers[(sequence as usize * 7919) % target.numbers.len()];
        let results = results.clone();
        tokio::spawn(async move {
            let ok = matches!(client.call(request(nhs)).await, Ok(Ok(Reply::Patient(_))));
            let _ = results
                .send((ok, intended.elapsed().as_micros().max(1) as u64))
                .await;
        });
    }
    drop(results);
    let mut latency = histogram();
    let (mut done, mut errors) = (0u64, 0u64);
    while let Some((ok, micros)) = collected.recv().await {
        if ok {
            done += 1;
        } else {
            errors += 1;
        }
        latency.saturating_record(micros);
    }
    Ok(Row {
        case: "retrieve_fixed_rate",
        transport: transport_name(transport),
        concurrency: 0,
        rate,
        ops_per_s: (done as f64 / started.elapsed().as_secs_f64()).round(),
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        errors,
    })
}

/// Full TLS handshakes (no resumption), from 4 tasks at once.
async fn handshakes(target: &Target, duration: Duration) -> Result<Row> {
    let mut config = tls_client_config(&target.identity)?;
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let config = Arc::clone(&config);
            let addr = target.tls;
            tokio::spawn(async move {
                let mut latency = histogram();
                let (mut done, mut errors) = (0u64, 0u64);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    match Client::connect(Transport::Tls, addr, "localhost", Arc::clone(&config))
                        .await
                    {
                        Ok(_) => done += 1,
                        Err(_) => errors += 1,
                    }
                    latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                }
                (done, errors, latency)
            })
        })
        .collect();
    let (done, errors, latency) = gather(tasks).await?;
    Ok(Row {
        case: "handshake",
        transport: "tls",
        concurrency: 4,
        rate: 0,
        ops_per_s: (done as f64 / started.elapsed().as_secs_f64()).round(),
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        errors,
    })
}
