//! `spine-bench pds`: the engine in process with audit on, on all shards: a synthetic
//! population is loaded, then retrieve, update, exact search and fuzzy search, the Summary
//! Care Record's update and view, the Electronic Prescription Service's issue and the
//! pharmacy's release, dispense and claim, the e-Referral Service's bookings, and GP2GP's
//! uploads and downloads of records, each run for a fixed time, every request durable and
//! audited before it is answered; and, when asked for, one 100 MiB GP2GP transfer timed end
//! to end.
//!
//! Memory is read from the process's anonymous resident memory (the heap; not the log's
//! file-backed maps). Index bytes per patient: its growth over the load, plus the primary
//! tables (sized for the population when the engine starts), divided by the patients; the
//! engine's fixed start-up cost is reported apart, and so is all memory per patient.

mod driver;
mod ers;
mod gp2gp;
mod report;

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use clap::Args;
use spine_core::engine::{Engine, EngineConfig};
use spine_core::pds::synthetic::nhs_numbers;
use spine_storage::BackendChoice;

use crate::machine;
use driver::{Case, Population};
use report::{Report, Row, Totals};

/// Arguments of `spine-bench pds`.
#[derive(Args, Debug)]
pub struct PdsArgs {
    /// Patients in the synthetic population.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    patients: usize,

    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Directory in which the engine gets a fresh data directory, deleted afterwards (unless
    /// `--keep-dir`). It must be on the disk to measure.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,

    /// Keep the data directory afterwards (its path is printed), for `spine serve` to open:
    /// restart and cold-read measurements at the size loaded.
    #[arg(long)]
    keep_dir: bool,

    /// Seconds each case runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    seconds: f64,

    /// Runs of each case; each row gives the run with the median throughput. The machines
    /// are shared and noisy: one run can catch a stall another does not.
    #[arg(long, value_name = "N", default_value_t = 3)]
    repeat: usize,

    /// Shards (default: one per core).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,

    /// Requests outstanding at once, over all shards.
    #[arg(long, value_name = "N", default_value_t = 512)]
    concurrency: usize,

    /// The population's seed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Cases to run, comma-separated (default: all but `gp2gp_100mib`, which holds its
    /// 100 MiB record in memory and writes it to the log at every repeat).
    #[arg(long, value_name = "CASES", value_delimiter = ',',
          default_values_t = ["pds_retrieve".to_owned(), "pds_update".to_owned(),
                              "pds_search_exact".to_owned(), "pds_search_fuzzy".to_owned(),
                              "scr_update".to_owned(), "scr_view".to_owned(),
                              "eps_create".to_owned(), "eps_dispense".to_owned(),
                              "ers_book".to_owned(), "gp2gp_chunk".to_owned(),
                              "gp2gp_fetch".to_owned()])]
    cases: Vec<String>,

    /// Which patients a benchmark task asks for: `any` (uniformly from everyone, so most
    /// requests cross to another shard, as network traffic arriving on any core does) or
    /// `home` (only patients of the shard the task runs on, as a shard-aware client would).
    /// Searches always go to every shard.
    #[arg(long, value_name = "ROUTING", default_value = "any")]
    routing: String,

    /// How long a shard's log batch may wait for more records, in microseconds (default: the
    /// engine's).
    #[arg(long, value_name = "MICROSECONDS")]
    batch_delay_us: Option<u64>,

    /// Turns whose batch may be in flight at once on one shard (default: the engine's).
    #[arg(long, value_name = "N")]
    turns_in_flight: Option<usize>,

    /// io backend of the shards' logs.
    #[arg(long, value_name = "BACKEND", default_value = "auto")]
    backend: String,
}

/// Anonymous resident memory of this process, in bytes (`RssAnon` in `/proc/self/status`),
/// after the allocator returned the memory it holds free: live memory and fragmentation, not
/// what freed temporaries left cached.
fn anonymous_rss() -> Result<u64> {
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas; it touches no
    // live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .context("no RssAnon line in /proc/self/status")?;
    Ok(kib * 1024)
}

fn backend(name: &str) -> Result<BackendChoice> {
    Ok(match name {
        "auto" => BackendChoice::Auto,
        "io-uring" | "io_uring" => BackendChoice::IoUring,
        "portable" => BackendChoice::Portable,
        other => anyhow::bail!("unknown backend {other:?}: auto, io-uring or portable"),
    })
}

/// Runs the PDS benchmark.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn run(args: &PdsArgs) -> Result<()> {
    ensure!(args.patients > 0, "--patients must be at least 1");
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.repeat > 0, "--repeat must be at least 1");
    let (dir, machine) = machine::scratch_dir(&args.dir, "spine-bench-pds-")?;

    let mut config = EngineConfig::new(dir.path());
    if let Some(shards) = args.shards {
        config.shards = shards;
    }
    config.backend = backend(&args.backend)?;
    if let Some(micros) = args.batch_delay_us {
        config.batch_delay = Duration::from_micros(micros);
    }
    if let Some(turns) = args.turns_in_flight {
        config.turns_in_flight_max = turns;
    }
    // A patient's record and latest audit event; the table rounds its own size up (rounding
    // here as well sized 80 million patients' tables at twice what they need).
    config.expected_keys_per_shard = args.patients * 2 / config.shards;
    let shards = config.shards;
    let tasks_per_shard = args.concurrency.div_ceil(shards);

    let numbers: Vec<_> = nhs_numbers().take(args.patients).collect();
    let by_shard = match args.routing.as_str() {
        "any" => None,
        "home" => {
            let mut by_shard = vec![Vec::new(); shards];
            for (index, number) in numbers.iter().enumerate() {
                by_shard[spine_core::shard::shard_of(number.value(), shards)].push(index as u32);
            }
            Some(by_shard.into_iter().map(Arc::new).collect())
        }
        other => anyhow::bail!("unknown routing {other:?}: any or home"),
    };
    let population = Arc::new(Population::new(args.seed, numbers, by_shard));
    let memory_before = anonymous_rss()?;
    let engine = Engine::start(config).context("starting the engine")?;
    let handle = engine.handle();
    let memory_started = anonymous_rss()?;
    eprintln!(
        "engine started: {:.1} MiB of anonymous memory before any patient",
        memory_started.saturating_sub(memory_before) as f64 / f64::from(1 << 20)
    );

    eprintln!("loading {} patients on {shards} shards", args.patients);
    let load = driver::run(
        &handle,
        &population,
        Case::Load,
        tasks_per_shard,
        Duration::MAX,
    )?;
    load.ensure_no_errors("loads")?;
    let load_per_s = load.completed as f64 / load.elapsed.as_secs_f64();
    eprintln!(
        "loaded at {load_per_s:.0}/s in {:.1} s",
        load.elapsed.as_secs_f64()
    );
    let stats = handle.stats();
    let memory_after = anonymous_rss()?;
    let primary: usize = stats.iter().map(|shard| shard.primary_index_bytes).sum();
    // The primary tables were sized for the population when the engine started; everything
    // else the load added (secondary indexes, the log's record offsets, allocator slack) is
    // the growth since then. The engine's fixed start-up cost (queues, buffers, outcome rings,
    // runtimes) is reported apart.
    let per_patient = |bytes: u64| bytes as f64 / args.patients as f64;
    let index_bytes_per_patient =
        per_patient(memory_after.saturating_sub(memory_started) + primary as u64);
    let memory_bytes_per_patient = per_patient(memory_after.saturating_sub(memory_before));
    let primary_index_bytes_per_patient = per_patient(primary as u64);
    let engine_fixed_bytes = memory_started
        .saturating_sub(memory_before)
        .saturating_sub(primary as u64);
    let disk_bytes_per_patient = per_patient(machine::allocated_bytes(dir.path())?);
    eprintln!(
        "memory: {index_bytes_per_patient:.0} index bytes/patient \
         ({primary_index_bytes_per_patient:.0} in primary indexes); \
         {memory_bytes_per_patient:.0} bytes/patient in all, with {:.1} MiB fixed; disk: \
         {disk_bytes_per_patient:.0} bytes/patient",
        engine_fixed_bytes as f64 / f64::from(1 << 20)
    );

    let duration = Duration::from_secs_f64(args.seconds);
    let all = [
        (Case::Retrieve, "pds_retrieve"),
        (Case::Update, "pds_update"),
        (Case::SearchExact, "pds_search_exact"),
        (Case::SearchFuzzy, "pds_search_fuzzy"),
        // Views need the summaries the updates write: updates go first.
        (Case::ScrUpdate, "scr_update"),
        (Case::ScrView, "scr_view"),
        (Case::EpsCreate, "eps_create"),
        (Case::EpsDispense, "eps_dispense"),
        (Case::ErsBook, "ers_book"),
        // Downloads need the transfers the uploads complete: uploads go first.
        (Case::Gp2gpChunk, "gp2gp_chunk"),
        (Case::Gp2gpFetch, "gp2gp_fetch"),
        (Case::Gp2gpTransfer, "gp2gp_100mib"),
    ];
    for wanted in &args.cases {
        ensure!(
            all.iter().any(|(_, name)| name == wanted),
            "unknown case {wanted:?}: {}",
            all.map(|(_, name)| name).join(", ")
        );
    }
    let chosen: Vec<(Case, &'static str)> = all
        .into_iter()
        .filter(|(_, name)| args.cases.iter().any(|wanted| wanted == name))
        .collect();
    // Repeats go round the cases, so a noisy spell of the machine spreads over them all.
    let mut runs: Vec<Vec<Row>> = vec![Vec::new(); chosen.len()];
    for repeat in 0..args.repeat {
        for (slot, &(case, name)) in chosen.iter().enumerate() {
            driver::set_up(&handle, &population, case, tasks_per_shard, duration)
                .with_context(|| format!("setting up {name}"))?;
            let before = Totals::of(&handle.stats());
            handle.reset_log_latencies();
            let measured = driver::run(&handle, &population, case, tasks_per_shard, duration)?;
            let row = Row::new(name, &measured, &handle, before);
            eprintln!(
                "run {}/{}: {}{}",
                repeat + 1,
                args.repeat,
                row.summary(),
                measured
                    .first_error
                    .map(|error| format!(" (first error: {error})"))
                    .unwrap_or_default()
            );
            runs[slot].push(row);
        }
    }
    let results: Vec<Row> = runs.into_iter().map(report::median).collect();
    eprintln!("medians of {} runs:", args.repeat);
    for row in &results {
        eprintln!("  {}", row.summary());
    }
    drop(handle);
    engine.shutdown().context("stopping the engine")?;
    if args.keep_dir {
        eprintln!("data directory kept: {}", dir.keep().display());
    }

    let report = Report {
        machine: machine.summary,
        patients: args.patients,
        shards,
        concurrency: args.concurrency,
        routing: args.routing.clone(),
        repeat: args.repeat,
        seconds: args.seconds,
        load_per_s: load_per_s.round(),
        index_bytes_per_patient: index_bytes_per_patient.round(),
        primary_index_bytes_per_patient: primary_index_bytes_per_patient.round(),
        memory_bytes_per_patient: memory_bytes_per_patient.round(),
        disk_bytes_per_patient: disk_bytes_per_patient.round(),
        engine_fixed_bytes,
        results,
    };
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    Ok(())
}
