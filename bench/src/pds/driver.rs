//! The load the PDS benchmark drives: tasks on every shard's own runtime (as the network's
//! connections will be), each with one request outstanding at a time, until a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::EngineHandle;
use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, Prescription, PrescriptionId};
use spine_core::pds::synthetic::{SplitMix64, exact_trace, fuzzy_trace, patient_at};
use spine_core::pds::values::OdsCode;
use spine_core::request::{Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::shard::shard_of;
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
    /// The demo GP issues a prescription of 1 to 4 items for a random patient, nominated to
    /// one of the demo pharmacies or to none.
    EpsCreate,
    /// The pharmacy's side of prescriptions issued in set-up (an untimed `EpsCreate` run as
    /// long as this one): release by id, dispense every item in full, claim. Each of the three
    /// is one timed request, as in the other cases, so that the log and turn figures stay per
    /// request; prescriptions a second are a third of the rate. The pharmacy is the nominated
    /// one, else either demo pharmacy. A run that uses up the prescriptions stops there and is
    /// measured over the time it ran.
    EpsDispense,
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
    /// Prescriptions issued so far that no pharmacy has taken up yet.
    pub prescriptions: std::sync::Mutex<Vec<Issued>>,
}

impl Population {
    /// The population of `numbers`, nothing updated or issued yet.
    pub fn new(seed: u64, numbers: Vec<NhsNumber>, by_shard: Option<Vec<Arc<Vec<u32>>>>) -> Self {
        Self {
            seed,
            numbers,
            by_shard,
            versions: std::sync::Mutex::default(),
            summaries: std::sync::Mutex::default(),
            prescriptions: std::sync::Mutex::default(),
        }
    }

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

/// `user`'s request, in the demo user's role.
fn request(id: Uuid, user: Uuid, operation: Operation) -> Request {
    Request {
        id,
        caller: demo_caller(user),
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
    /// Operations prepared in advance, sent in turn by the GP (searches, prescriptions).
    Prepared(Vec<Operation>),
    /// Patients of the task's share with their summary's version (0: none yet).
    ScrUpdate(Vec<(NhsNumber, u32)>),
    /// Patients with a summary.
    ScrView(Arc<Vec<NhsNumber>>),
    /// Prescriptions to dispense, the one at `next` having had its first `step` steps.
    Dispense {
        prescriptions: Vec<Issued>,
        next: usize,
        step: usize,
    },
}

/// A prescription issued and not yet taken up, with what its pharmacy will do.
pub struct Issued {
    id: PrescriptionId,
    /// The pharmacy that will dispense it, an index into [`PHARMACIES`].
    pharmacy: usize,
    /// (item index, quantity): every item in full.
    lines: Vec<(usize, u32)>,
}

impl Issued {
    /// What a pharmacy will do with `prescription`: its nominated pharmacy dispenses it, or
    /// (not nominated, as when the patient brings the token anywhere) either, by its id.
    fn of(prescription: &Prescription) -> Self {
        let nominated = prescription.nominated_pharmacy.as_ref().and_then(|code| {
            PHARMACIES
                .iter()
                .position(|(pharmacy, _)| code.as_str() == *pharmacy)
        });
        Self {
            id: prescription.id,
            pharmacy: nominated
                .unwrap_or((prescription.id.key_value() % PHARMACIES.len() as u64) as usize),
            lines: prescription
                .items
                .iter()
                .enumerate()
                .map(|(index, item)| (index, item.quantity.saturating_sub(item.dispensed)))
                .collect(),
        }
    }
}

/// The demo pharmacies and their pharmacists: the directory's only dispensers.
const PHARMACIES: [(&str, Uuid); 2] = [
    ("FY001", demo_ids::PHARMACIST),
    ("FY002", demo_ids::SECOND_PHARMACIST),
];

/// Medicines prescriptions are made of (code, description, quantity, unit, dosage): dm+d codes
/// of the EPS specification's examples.
const MEDICINES: [(&str, &str, u32, &str, &str); 4] = [
    (
        "39732311000001104",
        "Amoxicillin 250mg capsules",
        21,
        "capsule",
        "One capsule three times a day",
    ),
    (
        "322341003",
        "Co-codamol 30mg/500mg tablets",
        20,
        "tablet",
        "Two tablets twice a day for 5 days",
    ),
    (
        "321080004",
        "Pseudoephedrine hydrochloride 60mg tablets",
        30,
        "tablet",
        "One tablet three times a day for 10 days",
    ),
    (
        "324252006",
        "Azithromycin 250mg capsules",
        6,
        "capsule",
        "Two capsules on the first day, then one a day",
    ),
];

/// A prescription for `patient` of 1 to 4 different medicines, nominated to a demo pharmacy
/// or (a third of them) to none.
fn new_prescription(random: &mut SplitMix64, patient: NhsNumber) -> NewPrescription {
    let items = 1 + random.below(MEDICINES.len() as u64) as usize;
    let first = random.below(MEDICINES.len() as u64) as usize;
    let nominated = random.below(PHARMACIES.len() as u64 + 1) as usize;
    NewPrescription {
        patient,
        nominated_pharmacy: PHARMACIES
            .get(nominated)
            .map(|(code, _)| code.parse().expect("a demo pharmacy code")),
        items: (0..items)
            .map(|offset| {
                let (code, description, quantity, unit, dosage) =
                    MEDICINES[(first + offset) % MEDICINES.len()];
                NewLineItem {
                    code: code.parse().expect("a dm+d code of the specification"),
                    description: description.into(),
                    quantity,
                    unit: unit.into(),
                    dosage: dosage.into(),
                }
            })
            .collect(),
    }
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

/// A random index of the population: from everyone, or from the task's home `candidates`.
fn pick(random: &mut SplitMix64, population: &Population, candidates: Option<&[u32]>) -> usize {
    match candidates {
        Some(home) => home[random.below(home.len() as u64) as usize] as usize,
        None => random.below(population.numbers.len() as u64) as usize,
    }
}

/// Distinct requests prepared for the update, search and prescribing cases, over all tasks.
const POOL: usize = 20_000;

/// The task's share of the pool of prepared operations, made by `operation`.
fn prepared(tasks: usize, operation: impl FnMut() -> Operation) -> Work {
    Work::Prepared(
        std::iter::repeat_with(operation)
            .take(POOL / tasks + 1)
            .collect(),
    )
}

fn prepare(
    case: Case,
    population: &Population,
    task: usize,
    tasks: usize,
    shards: usize,
    summarised: &Arc<Vec<NhsNumber>>,
    dealt: Vec<Issued>,
) -> Work {
    let share = || (task..population.numbers.len()).step_by(tasks);
    let mut random = SplitMix64::new(task as u64 + 1);
    match case {
        Case::Load => Work::Load(share().collect()),
        Case::Retrieve => Work::Retrieve(population.candidates(task, shards)),
        Case::Update => Work::Update(
            own_share(population, task, tasks, shards)
                .into_iter()
                .map(|index| benchmark_patient(population, index))
                // A restricted patient's location fields cannot be changed by an update.
                .filter(|patient| !patient.restricted)
                .take(POOL / tasks + 1)
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
        // Searches go to every shard whatever the routing: any patient will do.
        Case::SearchExact | Case::SearchFuzzy => prepared(tasks, || {
            let patient = benchmark_patient(population, pick(&mut random, population, None));
            let query = if case == Case::SearchExact {
                exact_trace(&patient)
            } else {
                fuzzy_trace(&patient)
            };
            Operation::PdsSearch { query }
        }),
        Case::ScrUpdate => {
            let summaries = population
                .summaries
                .lock()
                .expect("no task panics holding it");
            Work::ScrUpdate(
                own_share(population, task, tasks, shards)
                    .into_iter()
                    .take(POOL / tasks + 1)
                    .map(|index| {
                        let number = population.numbers[index];
                        (number, summaries.get(&number).copied().unwrap_or(0))
                    })
                    .collect(),
            )
        }
        Case::ScrView => Work::ScrView(Arc::clone(summarised)),
        Case::EpsCreate => {
            let candidates = population.candidates(task, shards);
            prepared(tasks, || {
                let home = candidates.as_deref().map(Vec::as_slice);
                let index = pick(&mut random, population, home);
                Operation::EpsCreate {
                    prescription: new_prescription(&mut random, population.numbers[index]),
                }
            })
        }
        Case::EpsDispense => Work::Dispense {
            prescriptions: dealt,
            next: 0,
            step: 0,
        },
    }
}

/// Deals `prescriptions` out to `tasks` (spread round-robin over `shards`) evenly: with home
/// routing each to a task of the shard it lives on, else to any.
fn deal(
    prescriptions: Vec<Issued>,
    population: &Population,
    tasks: usize,
    shards: usize,
) -> Vec<Vec<Issued>> {
    let per_shard = tasks / shards;
    let mut dealt: Vec<Vec<Issued>> = (0..tasks).map(|_| Vec::new()).collect();
    let mut turns = vec![0usize; shards];
    for (position, prescription) in prescriptions.into_iter().enumerate() {
        let shard = match population.by_shard {
            Some(_) => shard_of(prescription.id.key_value(), shards),
            None => position % shards,
        };
        // Task `shard + k * shards` runs on `shard`.
        dealt[shard + shards * (turns[shard] % per_shard)].push(prescription);
        turns[shard] += 1;
    }
    dealt
}

struct TaskResult {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    /// The versions the task's updates left its patients at.
    versions: Vec<(NhsNumber, u32)>,
    /// The summary versions the task's SCR updates left its patients at.
    summaries: Vec<(NhsNumber, u32)>,
    /// Prescriptions the task issued, or was dealt and did not begin.
    issued: Vec<Issued>,
    latency: Histogram<u64>,
}

fn check(response: &Response, case: Case) -> Result<(), String> {
    match (response, case) {
        (Ok(Reply::Patient(_)), Case::Load | Case::Retrieve | Case::Update) => Ok(()),
        (Ok(Reply::Scr(_)), Case::ScrUpdate | Case::ScrView) => Ok(()),
        (Ok(Reply::Prescription(_)), Case::EpsCreate | Case::EpsDispense) => Ok(()),
        (Ok(Reply::Matches(found)), Case::SearchExact | Case::SearchFuzzy) if !found.is_empty() => {
            Ok(())
        }
        (Ok(Reply::Matches(_)), _) => Err("a search found nothing".into()),
        (Err(refusal), _) => Err(refusal.to_string()),
        (Ok(other), _) => Err(format!("unexpected reply {other:?}")),
    }
}

/// What every task of one run shares.
struct Shared {
    engine: EngineHandle,
    population: Arc<Population>,
    case: Case,
    /// Which run of this process it is, for the request ids.
    run: u64,
    deadline: Instant,
    /// Set by a task that ran out of work before the deadline, to stop the others too: the
    /// run is then measured over the time all of them were busy.
    stop: AtomicBool,
    /// The codes of [`PHARMACIES`].
    pharmacies: Vec<OdsCode>,
}

async fn run_task(shared: Arc<Shared>, work: Work, task: usize) -> TaskResult {
    let (engine, population, case) = (&shared.engine, &shared.population, shared.case);
    let mut result = TaskResult {
        completed: 0,
        errors: 0,
        first_error: None,
        versions: Vec::new(),
        summaries: Vec::new(),
        issued: Vec::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    };
    let mut random = SplitMix64::new(0xBE4C_0000 + task as u64);
    let mut work = work;
    let mut position = 0usize;
    loop {
        if case != Case::Load
            && (Instant::now() >= shared.deadline || shared.stop.load(Ordering::Relaxed))
        {
            break;
        }
        // The GP asks, but for the pharmacy's steps.
        let mut user = demo_ids::GP;
        let operation = match &mut work {
            Work::Load(indexes) => match indexes.get(position) {
                Some(&index) => Operation::PdsLoad {
                    patient: benchmark_patient(population, index),
                },
                None => break,
            },
            Work::Retrieve(candidates) => Operation::PdsRetrieve {
                nhs_number: population.numbers[pick(
                    &mut random,
                    population,
                    candidates.as_deref().map(Vec::as_slice),
                )],
            },
            Work::Update(patients) => {
                let slot = position % patients.len();
                let (patient, version) = &mut patients[slot];
                patient.telecom[0].value = format!("07700 9{:05}", random.below(100_000));
                Operation::PdsUpdate {
                    patient: patient.clone(),
                    expected_version: *version,
                }
            }
            Work::Prepared(operations) => operations[position % operations.len()].clone(),
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
            Work::Dispense {
                prescriptions,
                next,
                step,
            } => {
                let Some(issued) = prescriptions.get(*next) else {
                    shared.stop.store(true, Ordering::Relaxed);
                    break;
                };
                let pharmacy = shared.pharmacies[issued.pharmacy].clone();
                user = PHARMACIES[issued.pharmacy].1;
                let action = match step {
                    0 => EpsAction::Release { pharmacy },
                    1 => EpsAction::Dispense {
                        pharmacy,
                        lines: issued.lines.clone(),
                    },
                    _ => EpsAction::Claim { pharmacy },
                };
                Operation::EpsUpdate {
                    id: issued.id,
                    action,
                }
            }
        };
        let started = Instant::now();
        let id = request_id(shared.run, task, position);
        let response = engine.submit(request(id, user, operation)).await;
        let micros = started.elapsed().as_micros().max(1) as u64;
        result.latency.saturating_record(micros);
        let checked = check(&response, case);
        match (&mut work, &response, &checked) {
            (Work::Update(patients), Ok(Reply::Patient(updated)), Ok(())) => {
                let slot = position % patients.len();
                patients[slot].1 = updated.version;
            }
            (Work::ScrUpdate(patients), Ok(Reply::Scr(updated)), Ok(())) => {
                let slot = position % patients.len();
                patients[slot].1 = updated.version;
            }
            (Work::Prepared(_), Ok(Reply::Prescription(issued)), Ok(())) => {
                result.issued.push(Issued::of(issued));
            }
            // The next step of the journey, or the next prescription once it is claimed or
            // a step failed (the steps after it would fail too).
            (Work::Dispense { next, step, .. }, _, _) => {
                *step += 1;
                if *step == DISPENSE_STEPS || checked.is_err() {
                    (*next, *step) = (*next + 1, 0);
                }
            }
            _ => {}
        }
        match checked {
            Ok(()) => result.completed += 1,
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
        Work::Dispense {
            mut prescriptions,
            next,
            step,
        } => {
            // Those not begun go back for the next run; one begun cannot be released again.
            let begun = next + usize::from(step > 0);
            result.issued = prescriptions.split_off(begun.min(prescriptions.len()));
        }
        _ => {}
    }
    result
}

/// A pharmacy's steps on one prescription: release, dispense, claim.
const DISPENSE_STEPS: usize = 3;

/// What `case` needs done before it is measured: prescriptions for the pharmacies to dispense,
/// issued by an `EpsCreate` run as long as the case runs (the rate of issue bounds how many a
/// timed run can use).
pub fn set_up(
    engine: &EngineHandle,
    population: &Arc<Population>,
    case: Case,
    tasks_per_shard: usize,
    duration: Duration,
) -> Result<()> {
    if case == Case::EpsDispense {
        run(
            engine,
            population,
            Case::EpsCreate,
            tasks_per_shard,
            duration,
        )?
        .ensure_no_errors("prescriptions of the set-up")?;
    }
    Ok(())
}

impl Measured {
    /// Fails if any of the requests (`what`) failed, naming the first failure.
    pub fn ensure_no_errors(&self, what: &str) -> Result<()> {
        ensure!(
            self.errors == 0,
            "{} {what} failed, the first: {}",
            self.errors,
            self.first_error.as_deref().unwrap_or_default()
        );
        Ok(())
    }
}

/// Runs `case` with `tasks_per_shard` tasks on every shard for `duration` (a load runs until
/// every patient is loaded; a dispense run until its prescriptions are used up, if sooner).
pub fn run(
    engine: &EngineHandle,
    population: &Arc<Population>,
    case: Case,
    tasks_per_shard: usize,
    duration: Duration,
) -> Result<Measured> {
    let shards = engine.shard_count();
    let tasks = shards * tasks_per_shard;
    let summarised: Arc<Vec<NhsNumber>> = Arc::new(
        population
            .summaries
            .lock()
            .expect("no task panics holding it")
            .keys()
            .copied()
            .collect(),
    );
    ensure!(
        case != Case::ScrView || !summarised.is_empty(),
        "scr_view needs summaries to view: run scr_update first"
    );
    let mut dealt = if case == Case::EpsDispense {
        let issued = std::mem::take(
            &mut *population
                .prescriptions
                .lock()
                .expect("no task panics holding it"),
        );
        ensure!(
            !issued.is_empty(),
            "eps_dispense needs prescriptions: its set-up issued none"
        );
        deal(issued, population, tasks, shards)
    } else {
        Vec::new()
    };
    let works: Vec<Work> = (0..tasks)
        .map(|task| {
            let mine = dealt.get_mut(task).map(std::mem::take).unwrap_or_default();
            prepare(case, population, task, tasks, shards, &summarised, mine)
        })
        .collect();
    let pharmacies = PHARMACIES
        .iter()
        .map(|(code, _)| code.parse().context("a demo pharmacy code"))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        population: Arc::clone(population),
        case,
        run: RUNS.fetch_add(1, Ordering::Relaxed),
        deadline: started + duration.min(Duration::from_secs(7 * 24 * 3600)),
        stop: AtomicBool::new(false),
        pharmacies,
    });
    let handles: Vec<_> = works
        .into_iter()
        .enumerate()
        .map(|(task, work)| {
            let runtime = engine.runtime(task % shards);
            runtime.spawn(run_task(Arc::clone(&shared), work, task))
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
        population
            .prescriptions
            .lock()
            .expect("no task panics holding it")
            .extend(result.issued);
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
    if shared.stop.load(Ordering::Relaxed) {
        eprintln!(
            "note: {case:?} used up its prescriptions after {:.1} s of {:.1} s; measured over \
             that time",
            measured.elapsed.as_secs_f64(),
            duration.as_secs_f64()
        );
    }
    Ok(measured)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

    use super::*;

    #[test]
    fn prescriptions_are_valid_with_1_to_4_different_medicines() {
        let mut random = SplitMix64::new(7);
        let patient = spine_core::pds::synthetic::nhs_numbers().next().unwrap();
        let mut counts = [0usize; MEDICINES.len() + 1];
        let mut nominated = [0usize; PHARMACIES.len() + 1];
        for _ in 0..1000 {
            let prescription = new_prescription(&mut random, patient);
            prescription.validate().unwrap();
            let codes: std::collections::HashSet<_> =
                prescription.items.iter().map(|item| item.code).collect();
            assert_eq!(codes.len(), prescription.items.len(), "no medicine twice");
            counts[prescription.items.len()] += 1;
            let pharmacy = prescription.nominated_pharmacy.map(|code| {
                PHARMACIES
                    .iter()
                    .position(|(pharmacy, _)| code.as_str() == *pharmacy)
                    .unwrap()
            });
            nominated[pharmacy.unwrap_or(PHARMACIES.len())] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1..].iter().all(|&count| count > 0), "{counts:?}");
        assert!(nominated.iter().all(|&count| count > 0), "{nominated:?}");
    }

    fn issued(count: u32) -> Vec<Issued> {
        let practice: OdsCode = "Y90001".parse().unwrap();
        (0..count)
            .map(|serial| Issued {
                id: PrescriptionId::new(serial * 7919, &practice, serial).unwrap(),
                pharmacy: 0,
                lines: vec![(0, 1)],
            })
            .collect()
    }

    #[test]
    fn dealing_is_even_and_home_routing_keeps_each_on_its_shard() {
        let (tasks, shards) = (6, 2);
        let anywhere = Population::new(1, Vec::new(), None);
        let dealt = deal(issued(601), &anywhere, tasks, shards);
        let sizes: Vec<usize> = dealt.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 601);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);

        let home = Population::new(1, Vec::new(), Some(Vec::new()));
        let dealt = deal(issued(601), &home, tasks, shards);
        assert_eq!(dealt.iter().map(Vec::len).sum::<usize>(), 601);
        for (task, share) in dealt.iter().enumerate() {
            assert!(!share.is_empty());
            for prescription in share {
                assert_eq!(shard_of(prescription.id.key_value(), shards), task % shards);
            }
        }
    }

    #[test]
    fn request_ids_differ_between_runs() {
        assert_ne!(request_id(0, 3, 5), request_id(1, 3, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 4, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 3, 6));
    }
}
