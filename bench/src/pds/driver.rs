//! The load the PDS benchmark drives: tasks on every shard's own runtime (as the network's
//! connections will be), each with one request outstanding at a time, until a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::EngineHandle;
use spine_core::pds::synthetic::{SplitMix64, exact_trace, fuzzy_trace, patient_at};
use spine_core::request::{Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

/// What one kind of request the benchmark sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Load every patient of the population (each task loads its share once).
    Load,
    /// Retrieve a random patient.
    Retrieve,
    /// Update a patient of the task's own share (so updates never conflict).
    Update,
    /// Search by family name and birth date.
    SearchExact,
    /// Fuzzy search by given name, a misspelt family name and birth date.
    SearchFuzzy,
    /// Replace the Summary Care Record of a patient of the task's own share, at its version.
    ScrUpdate,
    /// View the Summary Care Record of a random patient that has one (after `ScrUpdate`).
    ScrView,
}

/// The population the tasks work on.
pub struct Population {
    pub seed: u64,
    pub numbers: Vec<NhsNumber>,
    /// With home routing, the population's indexes by home shard: each task then asks only
    /// for patients of the shard it runs on.
    pub by_shard: Option<Vec<Arc<Vec<u32>>>>,
    /// The version of each patient updated so far (the others are at version 1), so that a
    /// repeated update run starts from where the last one left off.
    pub versions: std::sync::Mutex<HashMap<NhsNumber, u32>>,
    /// The Summary Care Record version of each patient given one so far.
    pub summaries: std::sync::Mutex<HashMap<NhsNumber, u32>>,
}

impl Population {
    /// Indexes `task` (of `tasks`, spread round-robin over `shards`) may pick from: all, or
    /// those at home on the task's shard.
    fn candidates(&self, task: usize, shards: usize) -> Option<Arc<Vec<u32>>> {
        self.by_shard
            .as_ref()
            .map(|by_shard| Arc::clone(&by_shard[task % shards]))
    }
}

/// What the tasks of one case measured together.
pub struct Measured {
    pub completed: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

/// Runs started so far, in this process: part of every request id.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Request ids are unique per run, task and request: (run and task, sequence). Without the
/// run, every run (the load too) would send the ids of earlier ones again for other requests,
/// and a write whose id is still in its shard's outcome ring (kept for idempotent retries) is
/// refused as `REQUEST_ID_REUSED`.
fn request_id(run: u64, task: usize, sequence: usize) -> Uuid {
    Uuid::from_u64_pair(run << 32 | task as u64, sequence as u64)
}

fn request(id: Uuid, operation: Operation) -> Request {
    Request {
        id,
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    }
}

/// Patients in the benchmark are registered at the demo GP's practice, so its updates have a
/// legitimate relationship.
pub fn benchmark_patient(population: &Population, index: usize) -> Patient {
    let mut patient = patient_at(population.seed, index as u64, population.numbers[index]);
    patient.general_practitioner = Some("Y90001".parse().expect("demo practice code"));
    patient
}

/// One task's share of the work, prepared before the clock starts.
enum Work {
    /// The indexes of the task's share, generated as they are loaded (so the driver holds no
    /// copy of the population while memory is measured).
    Load(Vec<usize>),
    /// Random patients: from everyone, or from the given indexes.
    Retrieve(Option<Arc<Vec<u32>>>),
    Update(Vec<(Patient, u32)>),
    Search(Vec<Operation>),
    /// Patients of the task's share with their summary's version (0: none yet).
    ScrUpdate(Vec<(NhsNumber, u32)>),
    /// Patients with a summary.
    ScrView(Arc<Vec<NhsNumber>>),
}

/// A small summary, `change` telling versions apart.
fn summary(change: usize) -> ScrContent {
    let entry = |text: String| ScrEntryInput { code: None, text };
    ScrContent {
        allergies: vec![entry("Penicillin: anaphylaxis".into())],
        repeat_medications: vec![entry("Ramipril 5mg capsules, one daily".into())],
        acute_medications: vec![entry(format!(
            "Amoxicillin 500mg capsules, course {change}"
        ))],
        ..ScrContent::default()
    }
}

/// Indexes of the task's share: split among the tasks of its shard with home routing, else
/// every `tasks`th patient.
fn own_share(population: &Population, task: usize, tasks: usize, shards: usize) -> Vec<usize> {
    match population.candidates(task, shards) {
        // Tasks on one shard split its patients between them.
        Some(home) => home
            .iter()
            .skip(task / shards)
            .step_by(tasks.div_ceil(shards))
            .map(|&index| index as usize)
            .collect(),
        None => (task..population.numbers.len()).step_by(tasks).collect(),
    }
}

fn prepare(
    case: Case,
    population: &Population,
    task: usize,
    tasks: usize,
    shards: usize,
    pool: usize,
    summarised: &Arc<Vec<NhsNumber>>,
) -> Work {
    let share = || (task..population.numbers.len()).step_by(tasks);
    match case {
        Case::Load => Work::Load(share().collect()),
        Case::Retrieve => Work::Retrieve(population.candidates(task, shards)),
        Case::Update => Work::Update(
            own_share(population, task, tasks, shards)
                .into_iter()
                .map(|index| benchmark_patient(population, index))
                // A restricted patient's location fields cannot be changed by an update.
                .filter(|patient| !patient.restricted)
                .take(pool / tasks + 1)
                .map(|patient| {
                    let versions = population
                        .versions
                        .lock()
                        .expect("no task panics holding it");
                    let version = versions.get(&patient.nhs_number).copied().unwrap_or(1);
                    (patient, version)
                })
                .collect(),
        ),
        Case::SearchExact | Case::SearchFuzzy => {
            let mut random = SplitMix64::new(task as u64 + 1);
            let operations = (0..pool / tasks + 1)
                .map(|_| {
                    let index = random.below(population.numbers.len() as u64) as usize;
                    let patient = benchmark_patient(population, index);
                    let query = if case == Case::SearchExact {
                        exact_trace(&patient)
                    } else {
                        fuzzy_trace(&patient)
                    };
                    Operation::PdsSearch { query }
                })
                .collect();
            Work::Search(operations)
        }
        Case::ScrUpdate => {
            let summaries = population
                .summaries
                .lock()
                .expect("no task panics holding it");
            Work::ScrUpdate(
                own_share(population, task, tasks, shards)
                    .into_iter()
                    .take(pool / tasks + 1)
                    .map(|index| {
                        let number = population.numbers[index];
                        (number, summaries.get(&number).copied().unwrap_or(0))
                    })
                    .collect(),
            )
        }
        Case::ScrView => Work::ScrView(Arc::clone(summarised)),
    }
}

struct TaskResult {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    /// The versions the task's updates left its patients at.
    versions: Vec<(NhsNumber, u32)>,
    /// The summary versions the task's SCR updates left its patients at.
    summaries: Vec<(NhsNumber, u32)>,
    latency: Histogram<u64>,
}

fn check(response: &Response, case: Case) -> Result<(), String> {
    match (response, case) {
        (Ok(Reply::Patient(_)), Case::Load | Case::Retrieve | Case::Update) => Ok(()),
        (Ok(Reply::Scr(_)), Case::ScrUpdate | Case::ScrView) => Ok(()),
        (Ok(Reply::Matches(found)), Case::SearchExact | Case::SearchFuzzy) if !found.is_empty() => {
            Ok(())
        }
        (Ok(Reply::Matches(_)), _) => Err("a search found nothing".into()),
        (Err(refusal), _) => Err(refusal.to_string()),
        (Ok(other), _) => Err(format!("unexpected reply {other:?}")),
    }
}

async fn run_task(
    engine: EngineHandle,
    population: Arc<Population>,
    case: Case,
    work: Work,
    task: usize,
    deadline: Instant,
    run: u64,
) -> TaskResult {
    let mut result = TaskResult {
        completed: 0,
        errors: 0,
        first_error: None,
        versions: Vec::new(),
        summaries: Vec::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    };
    let mut random = SplitMix64::new(0xBE4C_0000 + task as u64);
    let mut work = work;
    let mut position = 0usize;
    loop {
        if case != Case::Load && Instant::now() >= deadline {
            break;
        }
        let operation = match &mut work {
            Work::Load(indexes) => match indexes.get(position) {
                Some(&index) => Operation::PdsLoad {
                    patient: benchmark_patient(&population, index),
                },
                None => break,
            },
            Work::Retrieve(candidates) => {
                let index = match candidates {
                    Some(home) => home[random.below(home.len() as u64) as usize] as usize,
                    None => random.below(population.numbers.len() as u64) as usize,
                };
                Operation::PdsRetrieve {
                    nhs_number: population.numbers[index],
                }
            }
            Work::Update(patients) => {
                let slot = position % patients.len();
                let (patient, version) = &mut patients[slot];
                patient.telecom[0].value = format!("07700 9{:05}", random.below(100_000));
                Operation::PdsUpdate {
                    patient: patient.clone(),
                    expected_version: *version,
                }
            }
            Work::Search(operations) => operations[position % operations.len()].clone(),
            Work::ScrUpdate(patients) => {
                let (nhs_number, version) = patients[position % patients.len()];
                Operation::ScrUpdate {
                    nhs_number,
                    expected_version: version,
                    content: summary(position),
                }
            }
            Work::ScrView(summarised) => Operation::ScrView {
                nhs_number: summarised[random.below(summarised.len() as u64) as usize],
                permission_to_view: true,
            },
        };
        let started = Instant::now();
        let id = request_id(run, task, position);
        let response = engine.submit(request(id, operation)).await;
        let micros = started.elapsed().as_micros().max(1) as u64;
        result.latency.saturating_record(micros);
        match check(&response, case) {
            Ok(()) => {
                result.completed += 1;
                match (&mut work, &response) {
                    (Work::Update(patients), Ok(Reply::Patient(updated))) => {
                        let slot = position % patients.len();
                        patients[slot].1 = updated.version;
                    }
                    (Work::ScrUpdate(patients), Ok(Reply::Scr(updated))) => {
                        let slot = position % patients.len();
                        patients[slot].1 = updated.version;
                    }
                    _ => {}
                }
            }
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
        }
        position += 1;
    }
    match work {
        Work::Update(patients) => {
            result.versions = patients
                .into_iter()
                .map(|(patient, version)| (patient.nhs_number, version))
                .collect();
        }
        Work::ScrUpdate(patients) => result.summaries = patients,
        _ => {}
    }
    result
}

/// Runs `case` with `tasks_per_shard` tasks on every shard for `duration` (a load runs until
/// every patient is loaded).
pub fn run(
    engine: &EngineHandle,
    population: &Arc<Population>,
    case: Case,
    tasks_per_shard: usize,
    duration: Duration,
) -> Result<Measured> {
    let shards = engine.shard_count();
    let tasks = shards * tasks_per_shard;
    /// Distinct requests prepared for the update and search cases, over all tasks.
    const POOL: usize = 20_000;
    let summarised: Arc<Vec<NhsNumber>> = Arc::new(
        population
            .summaries
            .lock()
            .expect("no task panics holding it")
            .keys()
            .copied()
            .collect(),
    );
    anyhow::ensure!(
        case != Case::ScrView || !summarised.is_empty(),
        "scr_view needs summaries to view: run scr_update first"
    );
    let works: Vec<Work> = (0..tasks)
        .map(|task| prepare(case, population, task, tasks, shards, POOL, &summarised))
        .collect();
    let started = Instant::now();
    let deadline = started + duration.min(Duration::from_secs(7 * 24 * 3600));
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let handles: Vec<_> = works
        .into_iter()
        .enumerate()
        .map(|(task, work)| {
            let runtime = engine.runtime(task % shards);
            runtime.spawn(run_task(
                engine.clone(),
                Arc::clone(population),
                case,
                work,
                task,
                deadline,
                run,
            ))
        })
        .collect();
    let mut measured = Measured {
        completed: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    };
    for handle in handles {
        let result = pollster::block_on(handle).context("a benchmark task panicked")?;
        population
            .versions
            .lock()
            .expect("no task panics holding it")
            .extend(result.versions);
        population
            .summaries
            .lock()
            .expect("no task panics holding it")
            .extend(
                result
                    .summaries
                    .into_iter()
                    .filter(|(_, version)| *version > 0),
            );
        measured.completed += result.completed;
        measured.errors += result.errors;
        if measured.first_error.is_none() {
            measured.first_error = result.first_error;
        }
        measured
            .latency
            .add(&result.latency)
            .context("merging latency histograms")?;
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_differ_between_runs() {
        assert_ne!(request_id(0, 3, 5), request_id(1, 3, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 4, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 3, 6));
    }
}
