//! `spine-sim`: runs seeds of the deterministic simulator and reports each failure with the
//! command that reproduces it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use spine_sim::{Plant, SimOptions, run_seed};

/// A bug to plant on purpose (to see the simulator find it).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PlantArg {
    /// The disk acknowledges writes without flushing them.
    SkippedFlushes,
    /// A turn's records are appended as two groups.
    SplitTurns,
    /// Each shard remembers one request's outcome.
    ForgottenOutcomes,
    /// The audit chain's hash leaves out the trail links.
    UnhashedTrailLinks,
}

/// Runs the deterministic simulator: every seed drives shards, logs and coordinators in one
/// thread over a disk that loses power, and checks what each restart finds.
#[derive(Parser, Debug)]
#[command(name = "spine-sim", version)]
struct Args {
    /// Run this one seed (and print its trace hash).
    #[arg(long, conflicts_with_all = ["seeds", "minutes"])]
    seed: Option<u64>,
    /// Run this many seeds, from --first-seed on.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// Run seeds for this many minutes instead of a count.
    #[arg(long)]
    minutes: Option<f64>,
    /// The first seed of a run of many.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Shards of the simulated machine.
    #[arg(long, default_value_t = SimOptions::default().shards)]
    shards: usize,
    /// Steps of traffic per seed.
    #[arg(long, default_value_t = SimOptions::default().steps)]
    steps: u64,
    /// Where the simulated machines' files go (default: a memory file system when there is
    /// one, else the system's temporary directory).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Plant a bug on purpose; the run should then fail.
    #[arg(long, value_enum)]
    plant: Option<PlantArg>,
}

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn main() -> ExitCode {
    let args = Args::parse();
    let options = SimOptions {
        shards: args.shards,
        steps: args.steps,
        plant: args.plant.map(|plant| match plant {
            PlantArg::SkippedFlushes => Plant::SkippedFlushes,
            PlantArg::SplitTurns => Plant::SplitTurns,
            PlantArg::ForgottenOutcomes => Plant::ForgottenOutcomes,
            PlantArg::UnhashedTrailLinks => Plant::UnhashedTrailLinks,
        }),
    };
    let scratch = args.scratch.clone().unwrap_or_else(default_scratch);
    if let Some(seed) = args.seed {
        return match run_seed(seed, options, &scratch) {
            Ok(report) => {
                println!(
                    "seed {seed}: ok, {} crashes ({} torn tails cut, {} stalled flushes, {} turns run with a batch in flight, {} power cuts in a checkpoint or a roll), {} GP2GP transfers delivered, {} answers checked ({} prescription versions), {} events, {:.1} simulated hours, trace {}",
                    report.crashes,
                    report.torn_tails,
                    report.stalls,
                    report.turns_in_flight,
                    report.file_step_cuts,
                    report.transfers_delivered,
                    report.answers,
                    report.transitions_checked,
                    report.events,
                    report.simulated_ms as f64 / 3_600_000.0,
                    report.trace_hash
                );
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let deadline = args
        .minutes
        .map(|minutes| started + Duration::from_secs_f64(minutes * 60.0));
    let mut totals = Totals::default();
    let mut seed = args.first_seed;
    loop {
        let done = match deadline {
            Some(deadline) => Instant::now() >= deadline,
            None => totals.seeds >= args.seeds,
        };
        if done {
            break;
        }
        match run_seed(seed, options, &scratch) {
            Ok(report) => totals.add(&report),
            Err(failure) => {
                totals.failures += 1;
                eprintln!("{failure}\n");
            }
        }
        totals.seeds += 1;
        seed += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let Totals {
        seeds,
        crashes,
        torn_tails,
        stalls,
        turns_in_flight,
        file_step_cuts,
        transfers_delivered,
        answers,
        transitions,
        simulated_ms,
        failures,
    } = totals;
    println!(
        "{seeds} seeds ({} to {}) in {seconds:.1} s: {:.1} seeds/s, {crashes} crashes and \
         restarts ({torn_tails} torn tails cut), {stalls} stalled flushes ({turns_in_flight} \
         turns run with a batch in flight), {file_step_cuts} power cuts in a checkpoint or a \
         roll, {transfers_delivered} GP2GP transfers delivered, {answers} answers checked ({transitions} \
         prescription versions), {:.1} simulated hours ({:.0} simulated seconds per second), \
         {failures} failed",
        args.first_seed,
        seed.saturating_sub(1),
        seeds as f64 / seconds,
        simulated_ms as f64 / 3_600_000.0,
        simulated_ms as f64 / 1000.0 / seconds,
    );
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sums over the seeds of a run.
#[derive(Default)]
struct Totals {
    seeds: u64,
    crashes: u64,
    torn_tails: u64,
    stalls: u64,
    turns_in_flight: u64,
    file_step_cuts: u64,
    transfers_delivered: u64,
    answers: u64,
    transitions: u64,
    simulated_ms: u64,
    failures: u64,
}

impl Totals {
    fn add(&mut self, report: &spine_sim::SeedReport) {
        self.crashes += u64::from(report.crashes);
        self.torn_tails += u64::from(report.torn_tails);
        self.stalls += u64::from(report.stalls);
        self.turns_in_flight += u64::from(report.turns_in_flight);
        self.file_step_cuts += u64::from(report.file_step_cuts);
        self.transfers_delivered += report.transfers_delivered as u64;
        self.answers += report.answers;
        self.transitions += report.transitions_checked;
        self.simulated_ms += report.simulated_ms;
    }
}

/// A memory file system when the machine has one (the logs' flushes cost nothing there, and
/// the simulator's faults come from the simulated disk, not the real one).
fn default_scratch() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}
