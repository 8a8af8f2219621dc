//! `spine`: the Spine core server and its tools.
//!
//! - `spine serve`: the engine and its listeners. With no arguments it uses an embedded
//!   default: a data directory `spine-data` under the current directory, a local CA with a
//!   server certificate and a demo client certificate made on first start, the demo access
//!   directory, loopback addresses; it prints where everything is. SIGINT or SIGTERM: stop
//!   accepting, answer what is in flight, flush, exit 0.
//! - `spine cert issue --system NAME`: a client certificate for a new system, registered in
//!   the access directory (the server reads it at start).
//! - `spine verify`: reads every record of every shard's log and verifies every audit chain,
//!   offline, writing nothing (it works on a read-only copy); any damage, a torn tail included,
//!   is printed and exits 1. Only `spine serve` cuts a torn tail, when it opens the log, and logs
//!   what it cut.
//! - `spine backup --to BACKUP`: a copy of the data directory at one cut of every shard's log,
//!   taken from a serving core through its control socket (writes held for microseconds) or
//!   from a stopped one; `spine restore --from BACKUP` checks one and brings it back into a new
//!   data directory; `spine verify` checks a backup against its manifest as well.
//! - `spine stats`: records per service and shard, offline.
//!
//! Exit status: 0 on success; 1 on an error (printed with its causes); 2 for bad arguments.

/// mimalloc rather than the system allocator: allocation and freeing took about a tenth of the
/// CPU at 42,000 operations a second, and with it p50 fell by a third (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use spine_core::access::directory_file;
use spine_core::access::{Activity, System};
use spine_core::backup::control::{self, ControlSocket};
use spine_core::backup::{self as backups, Manifest, Pace, check, take};
use spine_core::compaction;
use spine_core::engine::{Engine, EngineConfig, data_dir};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::{RecordKind, ShardIndexes};
use spine_net::pki::{DEMO_CLIENT, Pki, prepare_deployment};
use spine_net::server::Server;
use spine_net::settings::{LimitSettings, Settings};
use spine_storage::{Log, OpenError, RecoveryReport};

#[derive(Parser, Debug)]
#[command(name = "spine", version, about = "Spine core: server and tools", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine and serve spine/1 over TLS.
    Serve(Box<ServeArgs>),
    /// Manage certificates.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Verify every shard's log and audit chain, of a stopped data directory or a backup
    /// (whose files are checked against its manifest too); writes nothing.
    Verify(DataDir),
    /// Copy a data directory, served or stopped, at one cut of every shard's log.
    Backup {
        #[command(flatten)]
        data: DataDir,
        /// Where the backup goes: a directory that does not exist yet, or is empty.
        #[arg(long, value_name = "BACKUP")]
        to: PathBuf,
        /// An earlier backup of the same directory: segments unchanged since are hard links
        /// to its copies (copied where the two are on different file systems).
        #[arg(long, value_name = "BACKUP")]
        since: Option<PathBuf>,
        #[command(flatten)]
        rate: CopyRate,
    },
    /// Restore a backup (checked first) into a new data directory.
    Restore {
        /// The backup.
        #[arg(long, value_name = "BACKUP")]
        from: PathBuf,
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        rate: CopyRate,
    },
    /// Print records per kind and shard (the server must not be running).
    Stats(DataDir),
    /// Reclaim the records no shard needs any more (earlier versions, forgotten write
    /// outcomes) from a stopped data directory's sealed segments; audit is always kept. Safe
    /// to kill and run again.
    Compact {
        #[command(flatten)]
        data: DataDir,
        #[command(flatten)]
        rate: CopyRate,
    },
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
struct CopyRate {
    /// Bytes a second the copy may read and write, at most (`200MiB`, `1GiB` or bytes), so that
    /// a serving core on the same disk keeps its latency [default: no limit].
    #[arg(long, value_name = "SIZE", value_parser = parse_rate)]
    rate: Option<NonZeroU64>,
}

/// A `--rate`: a size a second, above zero.
fn parse_rate(text: &str) -> Result<NonZeroU64, String> {
    let bytes = spine_net::memory::parse_bytes(text)?;
    NonZeroU64::new(bytes).ok_or_else(|| "a rate above zero".to_owned())
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
    /// Shards, one per core [default: the count the data directory records, or the cores
    /// available for a new one]. A data directory keeps the count it was first served with.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Largest frame, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    frame_bytes_max: Option<u32>,
    /// Requests in flight on one connection [default: 1024].
    #[arg(long, value_name = "N")]
    in_flight_per_connection: Option<usize>,
    /// Bytes the limits may hold together: queues, buffers, connections (`12GiB`, `512MiB`
    /// or bytes) [default: half of the machine's memory]. Printed at start, with its parts.
    #[arg(long, value_name = "SIZE")]
    memory_budget: Option<String>,
    /// Do not compact sealed segments while serving (`spine compact` still can, stopped).
    #[arg(long)]
    no_compaction: bool,
    /// Bytes a second a compaction while serving reads and writes at most (`4MiB`, `1GiB` or bytes)
    /// [default: 4MiB].
    #[arg(long, value_name = "SIZE")]
    compaction_rate: Option<String>,
    /// Bytes of requests in flight over all connections [default: a quarter of the memory
    /// budget].
    #[arg(long, value_name = "BYTES")]
    in_flight_bytes_max: Option<u64>,
    /// Open connections in all [default: what the memory budget leaves, at most 10000].
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
    /// Longest a connection may be idle (nothing in flight or arriving), in milliseconds
    /// [default: 300000].
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// Longest a frame may take to arrive whole once begun, in milliseconds [default: 30000].
    #[arg(long, value_name = "MS")]
    frame_timeout_ms: Option<u64>,
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
            memory_budget: self.memory_budget.clone(),
            compaction: self.no_compaction.then_some(false),
            compaction_rate: self.compaction_rate.clone(),
            limits: LimitSettings {
                frame_bytes_max: self.frame_bytes_max,
                in_flight_per_connection: self.in_flight_per_connection,
                in_flight_bytes_max: self.in_flight_bytes_max,
                connections_max: self.connections_max,
                connections_per_system_max: self.connections_per_system_max,
                request_deadline_ms: self.request_deadline_ms,
                requests_per_second_per_system: self.rate_per_system,
                idle_timeout_ms: self.idle_timeout_ms,
                frame_timeout_ms: self.frame_timeout_ms,
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
        Command::Backup {
            data,
            to,
            since,
            rate,
        } => backup(
            &data.data_dir,
            &to,
            since.as_deref(),
            &mut Pace::new(rate.rate),
        ),
        Command::Restore { from, data, rate } => {
            restore(&from, &data.data_dir, &mut Pace::new(rate.rate))
        }
        Command::Stats(data) => stats(&data.data_dir),
        Command::Compact { data, rate } => compact(&data.data_dir, rate.rate),
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
    let mut server_config = settings.server_config()?;
    let data_dir = &settings.data_dir();
    let mut config = EngineConfig::new(data_dir);
    config.compaction = settings.compaction()?;
    // Asked for, or else the count the data was written with, or else one per core.
    let recorded = data_dir::recorded_shards(data_dir)
        .with_context(|| format!("reading {}", data_dir.display()))?;
    if let Some(shards) = settings.shards.or(recorded) {
        config.shards = shards;
    }
    let machine = spine_net::memory::machine_memory_bytes();
    let budget = settings.memory_budget(machine)?;
    let memory = settings.fit_to_memory(&mut config, &mut server_config, budget, machine)?;
    // Before the data directory is touched: a second server on the same addresses says so.
    spine_net::server::check_addresses_free(&server_config)?;
    let pki = prepare(data_dir)?;
    let (shards, inbox_capacity) = (config.shards, config.inbox_capacity);
    let engine = Engine::start(config).context("starting the engine")?;
    let handle = engine.handle();
    let server = Server::start(&handle, &server_config, &pki).context("starting the server")?;
    let control =
        // Service comes first: a socket that cannot be made (a data directory path too long
        // for a Unix socket's 108 bytes, say) costs online backups, said at start, not the core.
        match ControlSocket::start(data_dir, handle.clone()) {
            Ok(control) => Some(control),
            Err(error) => {
                eprintln!(
                    "spine: no control socket ({error}): `spine backup` cannot copy this core \
                     while it serves"
                );
                None
            }
        };
    println!("spine serving on {shards} shards");
    println!("{}", memory.summary());
    println!(
        "limits: {} connections, {} bytes of requests in flight, {} inbox slots a shard",
        server_config.limits.connections_max,
        server_config.limits.in_flight_bytes_max,
        inbox_capacity
    );
    print_places(&server, data_dir, &pki, control.as_ref())?;
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
    drop(control);
    drop(handle);
    engine.shutdown().context("stopping the engine")?;
    eprintln!("spine: stopped");
    Ok(())
}

/// Prints where a serving core is: its listeners and files.
fn print_places(
    server: &Server,
    data_dir: &Path,
    pki: &Pki,
    control: Option<&ControlSocket>,
) -> Result<()> {
    let demo_client = pki.client_files(DEMO_CLIENT)?;
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
    if let Some(control) = control {
        println!("control: {} (spine backup)", control.path().display());
    }
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

/// The shard count the data directory records (the server writes it on first start).
fn shard_count(data_dir: &Path) -> Result<usize> {
    match data_dir::recorded_shards(data_dir)
        .with_context(|| format!("reading {}", data_dir.display()))?
    {
        Some(shards) => Ok(shards),
        None => bail!("no shard logs in {}", data_dir.display()),
    }
}

/// Shard `shard`'s log opened for reading only, every record verified (checkpoints are not
/// trusted): nothing in the data directory is written, so this works on a read-only copy.
fn open_read_only(
    data_dir: &Path,
    shard: usize,
    shards: usize,
) -> Result<(Log, RecoveryReport), OpenError> {
    let mut config = EngineConfig::new(data_dir);
    config.shards = shards;
    let mut log_config = config.log_config(shard);
    log_config.use_checkpoint = false;
    Log::open_read_only(log_config, Arc::new(ShardIndexes))
}

/// Checks every record of every shard and every audit chain, writing nothing; any damage,
/// including a torn tail that opening for service would cut, is reported and fails the command.
fn verify(data_dir: &Path) -> Result<()> {
    let shards = shard_count(data_dir)?;
    let mut problems = 0;
    let manifest = if data_dir.join(backups::MANIFEST_FILE_NAME).exists() {
        let manifest = Manifest::read_from(data_dir)?;
        problems += check_backup(data_dir, &manifest)?;
        Some(manifest)
    } else {
        None
    };
    for shard in 0..shards {
        let (log, report) = match open_read_only(data_dir, shard, shards) {
            Ok(opened) => opened,
            Err(OpenError::Locked { .. }) => {
                bail!("shard {shard}'s log is in use: stop the server first")
            }
            Err(error) => {
                println!("shard {shard}: DAMAGED: {error}");
                problems += 1;
                continue;
            }
        };
        if let Some(torn) = &report.torn_tail {
            println!(
                "shard {shard}: DAMAGED: torn tail at {} offset {}: {}; {} bytes after it, {} \
                 valid records of an unfinished turn (never acknowledged if the tail was torn \
                 by a crash; `spine serve` cuts it when it opens the log)",
                torn.segment.display(),
                torn.offset,
                torn.reason,
                torn.bytes_discarded,
                torn.valid_records_discarded
            );
            problems += 1;
        }
        if let Some(position) = manifest
            .as_ref()
            .and_then(|manifest| manifest.positions.get(shard))
            .filter(|position| position.index != log.last_position().index)
        {
            println!(
                "shard {shard}: DAMAGED: the log ends at {}, the backup's cut at {}",
                log.last_position().index,
                position.index
            );
            problems += 1;
        }
        match verify_chain(&log, None) {
            Ok(head) => println!(
                "shard {shard}: {} records verified, audit chain of {} events intact",
                log.last_position().index,
                head.sequence
            ),
            Err(error) => {
                println!("shard {shard}: DAMAGED: audit chain: {error}");
                problems += 1;
            }
        }
    }
    if problems > 0 {
        bail!("{problems} problems found in {}", data_dir.display());
    }
    Ok(())
}

/// Checks the backup in `dir` against its manifest, printing each problem; returns how many.
fn check_backup(dir: &Path, manifest: &Manifest) -> Result<usize> {
    let found = check::check(dir, manifest)?;
    for problem in &found {
        println!("backup: DAMAGED: {problem}");
    }
    if found.is_empty() {
        println!(
            "backup: {} files match the manifest (taken {})",
            manifest.files.len(),
            if manifest.online { "online" } else { "offline" }
        );
    }
    Ok(found.len())
}

/// Copies `data_dir` to `to`: through the serving core's control socket if one holds the
/// directory, else holding the directory itself while it copies.
fn backup(data_dir: &Path, to: &Path, since: Option<&Path>, pace: &mut Pace) -> Result<()> {
    let shards = shard_count(data_dir)?;
    let taken = match data_dir::lock(data_dir) {
        Ok(lock) => {
            let mut cut = Vec::with_capacity(shards);
            for shard in 0..shards {
                let (log, report) = open_read_only(data_dir, shard, shards)
                    .with_context(|| format!("opening shard {shard}'s log"))?;
                if let Some(torn) = &report.torn_tail {
                    println!(
                        "shard {shard}: a torn tail at {} offset {} is left out ({} records of \
                         an unfinished turn, never acknowledged)",
                        torn.segment.display(),
                        torn.offset,
                        torn.valid_records_discarded
                    );
                }
                cut.push(
                    log.hold_writes()
                        .extent()
                        .with_context(|| format!("reading where shard {shard}'s log ends"))?,
                );
            }
            let taken = take::take(data_dir, &cut, take::Source::Offline, to, since, pace)?;
            drop(lock);
            taken
        }
        Err(data_dir::DataDirError::InUse { .. }) => {
            let served = control::request_cut(data_dir, shards)?.with_context(|| {
                format!(
                    "{} is in use, but no server answers on its control socket",
                    data_dir.display()
                )
            })?;
            println!(
                "the serving core held its log writers for {} µs to give the cut",
                served.held.as_micros()
            );
            take::take(
                data_dir,
                &served.extents,
                take::Source::Online,
                to,
                since,
                pace,
            )?
        }
        Err(error) => return Err(error.into()),
    };
    let manifest = &taken.manifest;
    for position in &manifest.positions {
        println!(
            "shard {}: copied up to log position {}:{}",
            position.shard, position.term, position.index
        );
    }
    println!(
        "backup: {} files in {} ({}, {} segments linked to the earlier backup); `spine verify \
         --data-dir {}` checks it",
        manifest.files.len(),
        to.display(),
        if manifest.online { "online" } else { "offline" },
        taken.linked,
        to.display()
    );
    Ok(())
}

/// Restores the backup in `from` into the new data directory `data_dir`.
fn restore(from: &Path, data_dir: &Path, pace: &mut Pace) -> Result<()> {
    let manifest = backups::restore::restore(from, data_dir, pace)?;
    for position in &manifest.positions {
        println!(
            "shard {}: restored up to log position {}:{}",
            position.shard, position.term, position.index
        );
    }
    println!(
        "restored {} files into {}; `spine serve --data-dir {}` serves it",
        manifest.files.len(),
        data_dir.display(),
        data_dir.display()
    );
    Ok(())
}

/// Compacts every shard's sealed segments, printing each segment rewritten and each shard's
/// totals.
fn compact(data_dir: &Path, rate: Option<NonZeroU64>) -> Result<()> {
    let mut config = EngineConfig::new(data_dir);
    config.shards = shard_count(data_dir)?;
    let report = |shard: usize, segment: &spine_storage::Compacted| {
        if segment.records_kept < segment.records_before {
            println!(
                "shard {shard}: {}: {} -> {} records, {} -> {} bytes",
                segment.path.display(),
                segment.records_before,
                segment.records_kept,
                segment.bytes_before,
                segment.bytes_after
            );
        }
    };
    let done = match compaction::compact_data_dir(&config, &mut Pace::new(rate), report) {
        Err(compaction::CompactionError::Open {
            shard,
            source: OpenError::Locked { .. },
        }) => bail!("shard {shard}'s log is in use: stop the server first"),
        other => other?,
    };
    let (mut before, mut after) = (0, 0);
    for shard in &done {
        println!(
            "shard {}: {} of {} sealed segments rewritten; {} -> {} records, {} -> {} bytes ({} \
             records pinned by remembered write outcomes)",
            shard.shard,
            shard.rewritten,
            shard.segments,
            shard.records_before,
            shard.records_kept,
            shard.bytes_before,
            shard.bytes_after,
            shard.pinned
        );
        before += shard.bytes_before;
        after += shard.bytes_after;
    }
    println!("compacted: sealed segments {before} -> {after} bytes");
    Ok(())
}

/// The column `spine stats` prints a record kind under (a match, so a new kind must name one).
fn stats_column(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Patient => "patients",
        RecordKind::Audit => "audit",
        RecordKind::Alert => "alerts",
        RecordKind::Outcome => "outcomes",
        RecordKind::Meta => "turns",
        RecordKind::Scr => "scr",
        RecordKind::Prescription => "eps",
        RecordKind::Service => "ers-services",
        RecordKind::Slot => "ers-slots",
        RecordKind::Referral => "ers-referrals",
        RecordKind::Transfer => "gp2gp",
        RecordKind::Chunk => "gp2gp-chunks",
        RecordKind::Registration => "registrations",
    }
}

/// Records of every kind per shard (record versions: an update adds one), and a column for
/// any kind this build does not know, so that the columns always add up to the records.
fn stats(data_dir: &Path) -> Result<()> {
    let mut header = String::from("shard");
    for name in RecordKind::ALL.map(stats_column) {
        header.push_str(&format!("  {name:>8}"));
    }
    println!("{header}  {:>8}  {:>8}", "unknown", "records");
    let shards = shard_count(data_dir)?;
    for shard in 0..shards {
        let (log, _) = open_read_only(data_dir, shard, shards)
            .with_context(|| format!("opening shard {shard}'s log"))?;
        let mut counts = [0u64; 256];
        for index in 1..=log.last_position().index {
            if let Some(kind) = log.read(index, |view| view.kind())? {
                counts[usize::from(kind)] += 1;
            }
        }
        let mut line = format!("{shard:5}");
        let mut known = 0;
        for kind in RecordKind::ALL {
            let name = stats_column(kind);
            let count = counts[usize::from(kind as u8)];
            known += count;
            line.push_str(&format!("  {count:>width$}", width = name.len().max(8)));
        }
        // Not the last index: a compaction leaves gaps where it dropped records.
        let records: u64 = counts.iter().sum();
        println!("{line}  {:>8}  {records:>8}", records - known);
        log.close()?;
    }
    Ok(())
}
