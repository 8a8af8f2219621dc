//! `spine-loadgen`: national traffic against a Spine core server.
//!
//! With no `--target` it starts an embedded server (the engine and the `spine serve` listeners,
//! in this process, on a temporary data directory with fresh certificates), loads the synthetic
//! population, runs the profile, and reports.
//!
//! Exit status: 0 when the run met its thresholds (or none were given); 3 when it missed one;
//! 1 on an error; 2 for bad arguments.

/// mimalloc rather than the system allocator: allocation and freeing took about a tenth of the
/// CPU at 42,000 operations a second (generator and embedded server together), and with it p50
/// fell by a third (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
#[cfg(feature = "embedded-server")]
use spine_loadgen::embedded::{Embedded, EmbeddedOptions};
use spine_loadgen::measure::Measurement;
use spine_loadgen::model::{Mix, NATIONAL_PEAK_PER_S, Profile};
use spine_loadgen::pool::ClientPool;
use spine_loadgen::report::{FindMaxReport, Report, write_plots};
use spine_loadgen::runner::{self, Objective, RunConfig};
use spine_loadgen::workload::Workload;
use spine_net::client::{ClientIdentity, Transport, tls_client_config};
use spine_net::pki::{DEMO_CLIENT, Pki};

/// Pause between `--find-max` steps.
const STEP_SETTLE: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProfileArg {
    /// A whole day's curve compressed into --duration, its peak hour at the national peak.
    NationalDay,
    /// The national peak (3,500 requests a second), steady.
    NationalPeak,
    /// --stress-multiple times the national peak, steady.
    Stress,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TransportArg {
    Quic,
    Tls,
}

/// Reproduces national Spine traffic against a server and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(name = "spine-loadgen", version, about, long_about = None)]
struct Args {
    /// The traffic profile (loadgen/MODEL.md gives the figures behind each).
    #[arg(long, value_enum, default_value = "national-peak")]
    profile: ProfileArg,
    /// For --profile stress: the multiple of the national peak.
    #[arg(long, value_name = "X", default_value_t = 5.0)]
    stress_multiple: f64,
    /// The transport.
    #[arg(long, value_enum, default_value = "quic")]
    transport: TransportArg,
    /// How long the run lasts (for --find-max: each step), e.g. 60s, 2m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// Write the report as JSON to this file; the plots go beside it (FILE.latency.svg,
    /// FILE.throughput.svg).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// A running server: its data directory (for the CA and the demo client certificate) and
    /// the address of the chosen transport, as DATA_DIR,ADDR. Without it an embedded server is
    /// started.
    #[arg(long, value_name = "DATA_DIR,ADDR")]
    target: Option<String>,
    /// A steady rate (requests a second) instead of the profile's.
    #[arg(long, value_name = "PER_SECOND")]
    rate: Option<f64>,
    /// Step the rate up from the national peak until the latency or error objective breaks,
    /// and report the highest rate that met it as a multiple of the national peak. A rate
    /// misses only if it misses twice in a row (shared machines stall now and then).
    #[arg(long)]
    find_max: bool,
    /// Objective: 99th percentile latency (from intended send time), at most, in milliseconds.
    /// Given, a missed objective sets exit status 3. --find-max uses 10 when not given.
    #[arg(long, value_name = "MS")]
    max_p99_ms: Option<f64>,
    /// Objective: failed and dropped operations, at most, as a share (0.001 is 0.1 %). Given,
    /// a missed objective sets exit status 3. --find-max uses 0.001 when not given.
    #[arg(long, value_name = "SHARE")]
    max_error_rate: Option<f64>,
    /// Patients in the synthetic population (loaded before the run).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    population: usize,
    /// Seed of the population, the schedule and every choice.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// A custom operation mix: a TOML file of `operation = weight` lines.
    #[arg(long, value_name = "FILE")]
    mix: Option<PathBuf>,
    /// Connections to spread the load over.
    #[arg(long, value_name = "N", default_value_t = 4)]
    connections: usize,
    /// Connecting systems to spread the connections over (embedded server only: each gets a
    /// certificate of its own).
    #[arg(long, value_name = "N", default_value_t = 2)]
    systems: usize,
    /// Operations in flight at most; more are dropped (and counted).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    in_flight_max: usize,
    /// Client threads: each a single-threaded runtime with its share of the connections and of
    /// the schedule (at most one per connection).
    #[arg(long, value_name = "N", default_value_t = 2)]
    client_threads: usize,
    /// io backend of the embedded server's logs: auto, io-uring or portable (default: the
    /// engine's, portable).
    #[arg(long, value_name = "BACKEND")]
    backend: Option<String>,
    /// Segment size of the embedded server's logs, in MiB (default: the engine's).
    #[arg(long, value_name = "MIB")]
    segment_mib: Option<u64>,
    /// Shards of the embedded server (default: one per core).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit, such as 60s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: units are ms, s, m and h")),
    };
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server a run with no `--target` runs against.
#[cfg(feature = "embedded-server")]
fn start_embedded(args: &Args, transport: Transport) -> Result<Embedded> {
    let options = EmbeddedOptions {
        systems: args.systems,
        shards: args.shards,
        segment_mib: args.segment_mib,
        backend: args.backend.clone(),
    };
    Embedded::start(&options, transport)
}

/// Built without the embedded server, a run needs `--target`.
#[cfg(not(feature = "embedded-server"))]
fn start_embedded(_args: &Args, _transport: Transport) -> Result<Embedded> {
    bail!(
        "this spine-loadgen was built without its embedded server (feature embedded-server): \
         name a running server with --target DATA_DIR,ADDR"
    )
}

/// Stands for the embedded server in a build without it: never made.
#[cfg(not(feature = "embedded-server"))]
enum Embedded {}

#[cfg(not(feature = "embedded-server"))]
impl Embedded {
    fn data_dir(&self) -> &std::path::Path {
        match *self {}
    }
    fn addr(&self) -> std::net::SocketAddr {
        match *self {}
    }
    fn systems(&self) -> &[String] {
        match *self {}
    }
    fn reset_log_latencies(&self) {
        match *self {}
    }
    fn log_latency_lines(&self) -> Vec<String> {
        match *self {}
    }
}

fn bar(length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn run(args: &Args) -> Result<bool> {
    ensure!(args.connections > 0, "--connections must be at least 1");
    ensure!(args.population > 0, "--population must be at least 1");
    let transport = match args.transport {
        TransportArg::Quic => Transport::Quic,
        TransportArg::Tls => Transport::Tls,
    };
    let transport_name = match transport {
        Transport::Quic => "quic",
        Transport::Tls => "tls",
    };
    let profile = match args.profile {
        ProfileArg::NationalDay => Profile::NationalDay,
        ProfileArg::NationalPeak => Profile::NationalPeak,
        ProfileArg::Stress => {
            ensure!(
                args.stress_multiple > 0.0,
                "--stress-multiple must be positive"
            );
            Profile::Stress(args.stress_multiple)
        }
    };
    let mix = match &args.mix {
        Some(path) => Mix::from_file(path)?,
        None => Mix::national(),
    };
    ensure!(
        args.client_threads > 0,
        "--client-threads must be at least 1"
    );
    let embedded = match &args.target {
        Some(_) => None,
        None => Some(start_embedded(args, transport)?),
    };
    let (data_dir, addr, systems) = match (&args.target, &embedded) {
        (Some(target), _) => {
            let (dir, addr) = target
                .split_once(',')
                .context("--target takes DATA_DIR,ADDR")?;
            (
                PathBuf::from(dir),
                addr.parse().context("--target address")?,
                vec![DEMO_CLIENT.to_owned()],
            )
        }
        (None, Some(server)) => (
            server.data_dir().to_owned(),
            server.addr(),
            server.systems().to_vec(),
        ),
        (None, None) => bail!("no --target and no embedded server"),
    };
    let pki = Pki::at(&data_dir);
    let mut configs = Vec::with_capacity(args.connections);
    for connection in 0..args.connections {
        let identity = ClientIdentity {
            ca: pki.ca_cert(),
            cert: pki.client_files(&systems[connection % systems.len()])?,
        };
        configs.push(Arc::new(tls_client_config(&identity)?));
    }
    let workload = Arc::new(Workload::new(args.seed, args.population));
    let threads = args.client_threads.min(args.connections);
    let pool = ClientPool::start(threads, transport, addr, configs, &workload)
        .with_context(|| format!("connecting to {addr} over {transport_name}"))?;
    let total = workload.numbers.len();
    let progress = bar(
        total as u64,
        "loading {pos}/{len} patients [{bar:30}] {per_sec}",
    );
    let requests = pool.load(&progress)?;
    progress.finish_and_clear();
    eprintln!("loaded {total} patients and their summaries ({requests} requests)");
    eprintln!(
        "{threads} client threads; connections by the shard serving them: {:?}",
        pool.routes()
    );
    let machine = machine();
    if let Some(server) = &embedded {
        server.reset_log_latencies();
    }

    let highest = args.rate.unwrap_or_else(|| profile.peak_rate());
    let duration = args.duration;
    let rate: runner::RateFn = match args.rate {
        Some(rate) => {
            ensure!(rate > 0.0, "--rate must be positive");
            Arc::new(move |_| rate)
        }
        None => {
            let seconds = duration.as_secs_f64();
            Arc::new(move |t| profile.rate_at(t / seconds))
        }
    };
    let config = RunConfig {
        duration,
        rate,
        highest,
        mix,
        seed: args.seed,
        in_flight_max: args.in_flight_max,
    };
    let objective = Objective {
        max_p99_ms: args.max_p99_ms.unwrap_or(10.0),
        max_error_rate: args.max_error_rate.unwrap_or(0.001),
    };
    let template = "{spinner} {elapsed:>4} [{bar:30}] {msg}";
    let (report, measurement) = if args.find_max {
        let mut failure = None;
        let steps = runner::find_max(
            |rate, step| {
                if step > 0 {
                    // The server finishes the last step's background work (a segment being
                    // prepared, pages being written back) before the next is measured.
                    std::thread::sleep(STEP_SETTLE);
                }
                let progress = bar(duration.as_millis() as u64, template);
                progress.println(format!("find-max: trying {rate:.0}/s"));
                let step_config = RunConfig {
                    rate: Arc::new(move |_| rate),
                    highest: rate,
                    seed: config.seed.wrapping_add(step),
                    ..config.clone()
                };
                let measured = pool.run(&step_config, &progress);
                progress.finish_and_clear();
                measured.unwrap_or_else(|error| {
                    failure.get_or_insert(error);
                    Measurement::default()
                })
            },
            objective,
        );
        if let Some(error) = failure {
            return Err(error.context("a find-max step"));
        }
        let best = steps
            .iter()
            .filter(|step| step.met)
            .max_by(|a, b| a.rate.total_cmp(&b.rate));
        let shown = best.unwrap_or(&steps[0]);
        let mut report = Report::new(
            machine,
            format!("find-max ({})", profile.name()),
            transport_name,
            shown.rate,
            &shown.measurement,
            duration.as_secs_f64(),
        );
        let max_rate = best.map_or(0.0, |step| step.rate);
        report.find_max = Some(FindMaxReport {
            max_rate_per_s: max_rate.round(),
            peak_multiple: (max_rate / NATIONAL_PEAK_PER_S * 10.0).round() / 10.0,
            steps: steps
                .iter()
                .map(|step| {
                    (
                        step.rate.round(),
                        step.measurement.latency.value_at_quantile(0.99),
                        step.measurement.error_rate(),
                        step.met,
                    )
                })
                .collect(),
        });
        (report, shown.measurement.clone())
    } else {
        let progress = bar(duration.as_millis() as u64, template);
        let started = Instant::now();
        let measurement = pool.run(&config, &progress)?;
        progress.finish_and_clear();
        let report = Report::new(
            machine,
            profile.name(),
            transport_name,
            highest,
            &measurement,
            started.elapsed().as_secs_f64(),
        );
        (report, measurement)
    };
    drop(pool);
    for line in embedded.iter().flat_map(Embedded::log_latency_lines) {
        eprintln!("{line}");
    }
    drop(embedded);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        report.write_json(path)?;
        write_plots(path, &measurement, &report.profile)?;
        eprintln!(
            "report: {}; plots: {} and {}",
            path.display(),
            path.with_extension("latency.svg").display(),
            path.with_extension("throughput.svg").display()
        );
    }
    let mut met = true;
    if let Some(max) = args.max_p99_ms
        && report.p99_us as f64 / 1000.0 > max
    {
        eprintln!(
            "missed: p99 {:.2} ms is over {max} ms",
            report.p99_us as f64 / 1000.0
        );
        met = false;
    }
    if let Some(max) = args.max_error_rate
        && measurement.error_rate() > max
    {
        eprintln!(
            "missed: error rate {:.5} is over {max}",
            measurement.error_rate()
        );
        met = false;
    }
    if args.find_max
        && report
            .find_max
            .as_ref()
            .is_some_and(|found| found.max_rate_per_s == 0.0)
    {
        eprintln!("missed: not even the national peak met the objective");
        met = false;
    }
    Ok(met)
}

/// A one-line description of this machine.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |cores| cores.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                line.strip_prefix("model name")
                    .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}")
}
