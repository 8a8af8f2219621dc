//! Runs the engine on a data directory and changes and reads patients until killed, printing a
//! line for everything acknowledged, so that a crash test can SIGKILL it at a random moment and
//! check what survived.
//!
//! On first start it loads `--patients` synthetic patients whose telecom and first address line
//! both read `count 0`. Then each of `--workers` tasks repeatedly reads a patient and writes it
//! back with both counters one higher, at the version it read (retrying on a version conflict),
//! and reads patients.
//!
//! Protocol on stdout: `ready` once the engine is open and the population loaded, then
//! `update <nhs> <version> <count>` after an update was acknowledged and `read <nhs>` after a
//! retrieve was answered (its audit event is durable). Any error ends the process with a
//! message on stderr and a non-zero status.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use spine_core::NhsNumber;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineHandle};
use spine_core::pds::synthetic::{SplitMix64, nhs_numbers, patient_at};
use spine_core::request::{ErrorCode, Operation, Reply, Request};
use spine_tests::engine_crash_config;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Changes and reads patients until killed.
#[derive(Debug, Parser)]
struct Args {
    /// Data directory (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Patients in the population.
    #[arg(long, default_value_t = 64)]
    patients: usize,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// Seed of the workers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Lines waiting for the printer at most.
const LINE_QUEUE: usize = 4096;

fn request(operation: Operation) -> Request {
    Request {
        id: Uuid::new_v4(),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.patients == 0 || args.workers == 0 {
        bail!("--patients and --workers must be at least 1");
    }
    let engine = Engine::start(engine_crash_config(&args.dir))
        .with_context(|| format!("starting the engine in {}", args.dir.display()))?;
    let handle = engine.handle();
    let numbers: Vec<NhsNumber> = nhs_numbers().take(args.patients).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(load(&handle, &numbers))?;

    let (lines, line_receiver) = mpsc::channel(LINE_QUEUE);
    let printer = std::thread::Builder::new()
        .name("line-printer".into())
        .spawn(move || spine_tests::print_lines(line_receiver))
        .context("starting the printer thread")?;
    let worked = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..args.workers {
            tasks.spawn(work(
                handle.clone(),
                numbers.clone(),
                SplitMix64::new(args.seed ^ (worker as u64) << 32),
                lines.clone(),
            ));
        }
        drop(lines);
        spine_tests::first_to_end(&mut tasks).await
    });
    worked?;
    spine_tests::join_printer(printer)
}

/// Loads the population unless an earlier run did.
async fn load(handle: &EngineHandle, numbers: &[NhsNumber]) -> Result<()> {
    for (index, &nhs_number) in numbers.iter().enumerate() {
        let mut patient = patient_at(3, index as u64, nhs_number);
        patient.general_practitioner = Some("Y90001".parse().context("practice code")?);
        patient.restricted = false;
        patient.telecom[0].value = "count 0".into();
        patient.addresses[0].lines[0] = "count 0".into();
        match handle.submit(request(Operation::PdsLoad { patient })).await {
            Ok(_) => {}
            Err(refusal) if refusal.code == ErrorCode::InvalidValue => {}
            Err(refusal) => bail!("loading {nhs_number}: {refusal}"),
        }
    }
    Ok(())
}

fn count(text: &str) -> Result<u64> {
    text.strip_prefix("count ")
        .and_then(|count| count.parse().ok())
        .ok_or_else(|| anyhow!("{text:?} is not a counter"))
}

/// Reads and updates random patients forever.
async fn work(
    handle: EngineHandle,
    numbers: Vec<NhsNumber>,
    mut random: SplitMix64,
    lines: mpsc::Sender<String>,
) -> Result<()> {
    loop {
        let nhs_number = numbers[random.below(numbers.len() as u64) as usize];
        let mut patient = match handle
            .submit(request(Operation::PdsRetrieve { nhs_number }))
            .await
        {
            Ok(Reply::Patient(patient)) => patient,
            other => bail!("retrieve {nhs_number}: {other:?}"),
        };
        lines
            .send(format!("read {nhs_number}"))
            .await
            .map_err(|_| anyhow!("the printer stopped"))?;
        if random.below(2) == 0 {
            continue;
        }
        let next = count(&patient.telecom[0].value)? + 1;
        if count(&patient.addresses[0].lines[0])? + 1 != next {
            bail!("{nhs_number}: the two counters disagree: a half-applied update");
        }
        let expected_version = patient.version;
        patient.telecom[0].value = format!("count {next}");
        patient.addresses[0].lines[0] = format!("count {next}");
        let update = Operation::PdsUpdate {
            patient,
            expected_version,
        };
        match handle.submit(request(update)).await {
            Ok(Reply::Patient(updated)) => {
                lines
                    .send(format!("update {nhs_number} {} {next}", updated.version))
                    .await
                    .map_err(|_| anyhow!("the printer stopped"))?;
            }
            Err(refusal) if refusal.code == ErrorCode::ResourceVersionMismatch => {}
            other => bail!("update {nhs_number}: {other:?}"),
        }
    }
}
