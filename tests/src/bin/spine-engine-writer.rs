//! Runs the engine on a data directory and changes and reads patients and issues
//! prescriptions until killed, printing a line for everything sent and acknowledged, so that a
//! crash test can SIGKILL it at a random moment, retry what was never answered, and check that
//! every effect happened exactly once.
//!
//! On first start it loads `--patients` synthetic patients whose telecom reads `count 0` and
//! first address line `count 0`. Then each of `--workers` tasks repeatedly reads a patient and
//! writes it back with both counters one higher (the telecom also naming the request: `count N
//! by <request id>`), at the version it read, and issues prescriptions. With `--retries FILE`
//! it first sends again, with their ids, the requests the file lists (requests an earlier run
//! sent and never had answered), before it prints `ready`; with `--retry-only` it then waits to
//! be killed.
//!
//! Protocol on stdout, one line each, written before the next step is taken:
//! - `send update <request JSON>` / `send issue <request JSON>` just before a request is
//!   submitted (so a request the kill cut off is always known, and can be sent again as is);
//! - `retried <id> applied|mismatch|issued <prescription id>` for each retry's answer;
//! - `ready`;
//! - `update <nhs> <version> <count> <id>` after an update was acknowledged, `issue <id>
//!   <prescription id>` after a prescription was, `read <nhs>` after a retrieve was answered
//!   (its audit event is durable).
//!
//! Any error ends the process with a message on stderr and a non-zero status.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use spine_core::NhsNumber;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{CompactionSettings, Engine, EngineHandle};
use spine_core::eps::{NewLineItem, NewPrescription};
use spine_core::pds::synthetic::{SplitMix64, nhs_numbers, patient_at};
use spine_core::request::{ErrorCode, Operation, Reply, Request};
use spine_tests::engine_crash_config;
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
    /// Requests to send again first, one `update <JSON>` or `issue <JSON>` per line.
    #[arg(long)]
    retries: Option<PathBuf>,
    /// Compact the sealed segments while serving, looking every this many milliseconds, at 16
    /// MiB a second (a segment's copy then takes a good part of a run, so kills land in it);
    /// none without it.
    #[arg(long, value_name = "MS")]
    compact_every_ms: Option<u64>,
    /// Only send the retries, then wait to be killed.
    #[arg(long)]
    retry_only: bool,
}

/// Writes one line to stdout at once (stdout flushes at each line end): once this returns, a
/// SIGKILL cannot take the line back.
fn line(text: &str) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{text}").context("writing to stdout")
}

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
    let mut config = engine_crash_config(&args.dir);
    config.compaction = args.compact_every_ms.map(|ms| CompactionSettings {
        rate: std::num::NonZeroU64::new(16 << 20),
        interval: std::time::Duration::from_millis(ms),
        min_dropped_percent: 10,
    });
    let engine = Engine::start(config)
        .with_context(|| format!("starting the engine in {}", args.dir.display()))?;
    let handle = engine.handle();
    let numbers: Vec<NhsNumber> = nhs_numbers().take(args.patients).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(load(&handle, &numbers))?;
    if let Some(retries) = &args.retries {
        let text = std::fs::read_to_string(retries)
            .with_context(|| format!("reading {}", retries.display()))?;
        runtime.block_on(retry(&handle, &text))?;
    }
    line("ready")?;
    if args.retry_only {
        loop {
            std::thread::park();
        }
    }
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..args.workers {
            tasks.spawn(work(
                handle.clone(),
                numbers.clone(),
                SplitMix64::new(args.seed ^ (worker as u64) << 32),
            ));
        }
        spine_tests::first_to_end(&mut tasks).await
    })
}

/// Sends again each request of `retries` with its id, and prints how it was answered.
async fn retry(handle: &EngineHandle, retries: &str) -> Result<()> {
    for entry in retries.lines().filter(|entry| !entry.is_empty()) {
        let (kind, json) = entry
            .split_once(' ')
            .ok_or_else(|| anyhow!("bad retry line {entry:?}"))?;
        let request: Request =
            serde_json::from_str(json).with_context(|| format!("retry line {entry:?}"))?;
        let id = request.id;
        match (kind, handle.submit(request).await) {
            ("update", Ok(Reply::Patient(_))) => line(&format!("retried {id} applied"))?,
            ("update", Err(refusal)) if refusal.code == ErrorCode::ResourceVersionMismatch => {
                line(&format!("retried {id} mismatch"))?
            }
            ("issue", Ok(Reply::Prescription(issued))) => {
                line(&format!("retried {id} issued {}", issued.id))?
            }
            (_, other) => bail!("retrying {entry}: {other:?}"),
        }
    }
    Ok(())
}

/// Prints `send <kind> <request JSON>`, then submits the request.
async fn send(
    handle: &EngineHandle,
    kind: &str,
    request: Request,
) -> Result<spine_core::request::Response> {
    line(&format!(
        "send {kind} {}",
        serde_json::to_string(&request).context("encoding a request")?
    ))?;
    Ok(handle.submit(request).await)
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

/// The counter of `count N` or `count N by <request id>`.
fn count(text: &str) -> Result<u64> {
    text.strip_prefix("count ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .ok_or_else(|| anyhow!("{text:?} is not a counter"))
}

/// Reads and updates random patients, and issues prescriptions, forever.
async fn work(handle: EngineHandle, numbers: Vec<NhsNumber>, mut random: SplitMix64) -> Result<()> {
    loop {
        let nhs_number = numbers[random.below(numbers.len() as u64) as usize];
        let mut patient = match handle
            .submit(request(Operation::PdsRetrieve { nhs_number }))
            .await
        {
            Ok(Reply::Patient(patient)) => patient,
            other => bail!("retrieve {nhs_number}: {other:?}"),
        };
        line(&format!("read {nhs_number}"))?;
        match random.below(4) {
            0 | 1 => {}
            2 => issue(&handle, nhs_number).await?,
            _ => {
                let next = count(&patient.telecom[0].value)? + 1;
                if count(&patient.addresses[0].lines[0])? + 1 != next {
                    bail!("{nhs_number}: the two counters disagree: a half-applied update");
                }
                let expected_version = patient.version;
                let id = Uuid::new_v4();
                patient.telecom[0].value = format!("count {next} by {id}");
                patient.addresses[0].lines[0] = format!("count {next}");
                let update = Request {
                    id,
                    ..request(Operation::PdsUpdate {
                        patient,
                        expected_version,
                    })
                };
                match send(&handle, "update", update).await? {
                    Ok(Reply::Patient(updated)) => line(&format!(
                        "update {nhs_number} {} {next} {id}",
                        updated.version
                    ))?,
                    Err(refusal) if refusal.code == ErrorCode::ResourceVersionMismatch => {}
                    other => bail!("update {nhs_number}: {other:?}"),
                }
            }
        }
    }
}

/// Issues one prescription for `patient`.
async fn issue(handle: &EngineHandle, patient: NhsNumber) -> Result<()> {
    let create = request(Operation::EpsCreate {
        prescription: NewPrescription {
            patient,
            nominated_pharmacy: None,
            items: vec![NewLineItem {
                code: "317972000".parse().context("dm+d code")?,
                description: "Amoxicillin 250mg capsules".into(),
                quantity: 21,
                unit: "capsule".into(),
                dosage: "One capsule three times a day".into(),
            }],
        },
    });
    let id = create.id;
    match send(handle, "issue", create).await? {
        Ok(Reply::Prescription(issued)) => line(&format!("issue {id} {}", issued.id)),
        other => bail!("issue for {patient}: {other:?}"),
    }
}
