//! `spine`: the Spine core server and its tools.
//!
//! - `spine serve`: the engine and its listeners. With no arguments it uses an embedded
//!   default: a data directory `spine-data` under the current directory, a local CA with a
//!   server certificate and a demo client certificate made on first start, the demo access
//!   directory, loopback addresses; it prints where everything is. SIGINT or SIGTERM: stop
//!   accepting, answer what is in flight, flush, exit 0.
//! - `spine cert issue --system NAME`: a client certificate for a new system, registered in
//!   the access directory (the server reads it at start).
//! - `spine verify`: opens every shard's log (verifying every record after its checkpoint) and
//!   verifies every audit chain, offline.
//! - `spine stats`: records per service and shard, offline.
//!
//! Exit status: 0 on success; 1 on an error (printed with its causes); 2 for bad arguments.

/// mimalloc rather than the system allocator: allocation and freeing took about a tenth of the
/// CPU at 42,000 operations a second, and with it p50 fell by a third (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use spine_core::access::directory_file;
use spine_core::access::{Activity, System};
use spine_core::engine::{Engine, EngineConfig};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::keys::{self, ShardIndexes};
use spine_net::pki::{DEMO_CLIENT, Pki, prepare_deployment};
use spine_net::server::Server;
use spine_net::settings::{LimitSettings, Settings};
use spine_storage::Log;

#[derive(Parser, Debug)]
#[command(name = "spine", version, about = "Spine core: server and tools", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine and serve spine/1 over TLS.
    Serve(ServeArgs),
    /// Manage certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Verify every shard's log and audit chain (the server must not be running).
    Verify(DataDir),
    /// Print records per kind and shard (the server must not be running).
    Stats(DataDir),
}

#[derive(Subcommand, Debug)]
enum CertCommand {
    /// Issue a client certificate for a new system and register it in the access directory.
    Issue {
        #[command(flatten)]
        data: DataDir,
        /// The system's name (letters, digits, '-' and '_').
        #[arg(long)]
        system: String,
        /// The organisation (ODS code) that runs it.
        #[arg(long, default_value = "Y90001")]
        organisation: String,
    },
}

#[derive(Args, Debug)]
struct DataDir {
    /// Data directory: shard logs, certificates and the access directory.
    #[arg(long, value_name = "DIR", default_value = "spine-data")]
    data_dir: PathBuf,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Settings file (TOML); flags override it, and it overrides the defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: shard logs, certificates and the access directory [default: spine-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TLS listening address (port 0: a free port, printed at start) [default: 127.0.0.1:7443].
    #[arg(long, value_name = "ADDR")]
    tls_addr: Option<SocketAddr>,
    /// QUIC listening address (UDP) [default: 127.0.0.1:7444].
    #[arg(long, value_name = "ADDR")]
    quic_addr: Option<SocketAddr>,
    /// Serve TLS only.
    #[arg(long)]
    no_quic: bool,
    /// Prometheus metrics address (loopback HTTP, `GET /metrics`) [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Shards, one per core [default: the cores available].
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Largest frame, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    frame_bytes_max: Option<u32>,
    /// Requests in flight on one connection [default: 1024].
    #[arg(long, value_name = "N")]
    in_flight_per_connection: Option<usize>,
    /// Open connections in all [default: 10000].
    #[arg(long, value_name = "N")]
    connections_max: Option<usize>,
    /// Open connections of one system [default: 1000].
    #[arg(long, value_name = "N")]
    connections_per_system_max: Option<usize>,
    /// Longest a request may take, in milliseconds [default: 5000].
    #[arg(long, value_name = "MS")]
    request_deadline_ms: Option<u64>,
    /// Requests a second one system may send [default: 200000].
    #[arg(long, value_name = "N")]
    rate_per_system: Option<u32>,
}

impl ServeArgs {
    /// The settings the flags give.
    fn settings(&self) -> Settings {
        Settings {
            data_dir: self.data_dir.clone(),
            shards: self.shards,
            tls_addr: self.tls_addr,
            quic_addr: self.quic_addr,
            quic: self.no_quic.then_some(false),
            metrics_addr: self.metrics_addr,
            limits: LimitSettings {
                frame_bytes_max: self.frame_bytes_max,
                in_flight_per_connection: self.in_flight_per_connection,
                connections_max: self.connections_max,
                connections_per_system_max: self.connections_per_system_max,
                request_deadline_ms: self.request_deadline_ms,
                requests_per_second_per_system: self.rate_per_system,
            },
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Cert {
            command:
                CertCommand::Issue {
                    data,
                    system,
                    organisation,
                },
        } => issue(&data.data_dir, &system, &organisation),
        Command::Verify(data) => verify(&data.data_dir),
        Command::Stats(data) => stats(&data.data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The certificates, and the access directory with the demo client registered on first start.
fn prepare(data_dir: &Path) -> Result<Pki> {
    Ok(prepare_deployment(data_dir)?)
}

fn serve(args: &ServeArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let settings = file.overridden_by(args.settings());
    let server_config = settings.server_config()?;
    let data_dir = &settings.data_dir();
    let pki = prepare(data_dir)?;
    let mut config = EngineConfig::new(data_dir);
    if let Some(shards) = settings.shards {
        config.shards = shards;
    }
    let shards = config.shards;
    let engine = Engine::start(config).context("starting the engine")?;
    let handle = engine.handle();
    let server = Server::start(&handle, &server_config, &pki).context("starting the server")?;
    let demo_client = pki.client_files(DEMO_CLIENT)?;
    println!("spine serving on {shards} shards");
    println!(
        "tls: {} (ALPN spine/1, client certificates required)",
        server.tls_addr()
    );
    if let Some(quic) = server.quic_addr() {
        println!("quic: {quic} (ALPN spine/1, client certificates required)");
    }
    if let Some(metrics) = server.metrics_addr() {
        println!("metrics: http://{metrics}/metrics");
    }
    println!("data: {}", data_dir.display());
    println!("ca: {}", pki.ca_cert().display());
    println!(
        "demo client: {} {}",
        demo_client.cert.display(),
        demo_client.key.display()
    );
    println!(
        "access directory: {}",
        data_dir.join(directory_file::FILE_NAME).display()
    );
    println!("ready");

    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    let signal = signals.block_on(wait_for_signal())?;
    eprintln!("spine: {signal}: stopping");
    let left = server.stop(Duration::from_secs(10));
    if left > 0 {
        eprintln!("spine: {left} connections still open after 10 s; closing them");
    }
    drop(handle);
    engine.shutdown().context("stopping the engine")?;
    eprintln!("spine: stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    })
}

fn issue(data_dir: &Path, name: &str, organisation: &str) -> Result<()> {
    let pki = prepare(data_dir)?;
    let organisation = organisation
        .parse()
        .with_context(|| format!("--organisation {organisation:?}"))?;
    let mut directory = directory_file::load(data_dir)?;
    if directory.systems.iter().any(|system| system.name == name) {
        bail!("a system named {name:?} is already registered");
    }
    let (files, issued) = pki.issue_client(name)?;
    let asid = directory
        .systems
        .iter()
        .map(|system| system.asid)
        .max()
        .unwrap_or(200_000_000_000)
        + 1;
    directory.systems.push(System {
        asid,
        name: name.to_owned(),
        organisation,
        activities: Activity::ALL.to_vec(),
        certificates: vec![issued.clone()],
    });
    directory.index().context("registering the system")?;
    directory_file::save(data_dir, &directory)?;
    println!("system {name}: ASID {asid}");
    println!("certificate: {} (SHA-256 {issued})", files.cert.display());
    println!("key: {}", files.key.display());
    println!("a running server reads the access directory at start: restart it");
    Ok(())
}

/// Each shard's log, opened as the engine opens it (the server must not hold them).
fn open_logs(data_dir: &Path) -> Result<Vec<Log>> {
    let mut config = EngineConfig::new(data_dir);
    let shards = std::fs::read_dir(data_dir)
        .with_context(|| format!("reading {}", data_dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("shard-"))
        .count();
    if shards == 0 {
        bail!("no shard logs in {}", data_dir.display());
    }
    config.shards = shards;
    (0..shards)
        .map(|shard| {
            Log::open_with(config.log_config(shard), Arc::new(ShardIndexes))
                .map(|(log, _)| log)
                .with_context(|| format!("opening shard {shard}'s log (is the server running?)"))
        })
        .collect()
}

fn verify(data_dir: &Path) -> Result<()> {
    for (shard, log) in open_logs(data_dir)?.into_iter().enumerate() {
        let head = verify_chain(&log, None).with_context(|| format!("shard {shard}"))?;
        println!(
            "shard {shard}: {} records verified, audit chain of {} events intact",
            log.last_position().index,
            head.sequence
        );
        log.close()
            .with_context(|| format!("closing shard {shard}'s log"))?;
    }
    Ok(())
}

fn stats(data_dir: &Path) -> Result<()> {
    println!("shard  patient-versions  audit-events  alerts  write-outcomes  records");
    for (shard, log) in open_logs(data_dir)?.into_iter().enumerate() {
        let mut counts = [0u64; 6];
        for index in 1..=log.last_position().index {
            if let Some(kind) = log.read(index, |view| view.kind())? {
                counts[usize::from(kind).min(5)] += 1;
            }
        }
        println!(
            "{shard:5}  {:16}  {:12}  {:6}  {:14}  {:7}",
            counts[usize::from(keys::KIND_PATIENT)],
            counts[usize::from(keys::KIND_AUDIT)],
            counts[usize::from(keys::KIND_ALERT)],
            counts[usize::from(keys::KIND_OUTCOME)],
            log.last_position().index
        );
        log.close()?;
    }
    Ok(())
}
