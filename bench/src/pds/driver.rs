//! The load the PDS benchmark drives: tasks on every shard's own runtime (as the network's
//! connections will be), each with one request outstanding at a time, until a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::EngineHandle;
use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, Prescription, PrescriptionId};
use spine_core::ers::{ReferralState, Slot, Ubrn};
use spine_core::gp2gp::{DOCUMENT_BYTES_MAX, TransferState};
use spine_core::pds::synthetic::{SplitMix64, exact_trace, fuzzy_trace, patient_at};
use spine_core::pds::values::OdsCode;
use spine_core::request::{ErrorCode, Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::shard::shard_of;
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

use super::ers::{self, Booking};
use super::gp2gp::{self, Document, Upload};

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
    /// The demo GP refers a random patient to cardiology, every benchmark service on the
    /// shortlist (the set-up of `ErsBook`).
    ErsRefer,
    /// The hospital's appointments manager publishes the slots a booking run needs, each
    /// publication once (the set-up of `ErsBook`; runs to the end, as a load does).
    ErsPublish,
    /// The demo GP books a slot for each referral made in set-up (an untimed `ErsRefer` run as
    /// long as this one, then the slots for them published): the referral's shard begins the
    /// booking, the slot's shard decides it, the referral's shard confirms or aborts, each
    /// durable before the next. A few bookings race for one slot (see [`ers`]): the losers'
    /// `SLOT_NOT_AVAILABLE` is expected, counted apart and not as a failure. Referrals a run
    /// does not reach are left unbooked, and the next run's set-up makes its own, so every run
    /// starts alike. A run that uses up its referrals stops there, as `EpsDispense` does.
    ErsBook,
    /// The previous practice starts sending the record of a random patient who moved (see
    /// [`gp2gp::moved`]), one of [`gp2gp::documents`] (the set-up of `Gp2gpChunk`).
    Gp2gpStart,
    /// The previous practice uploads the chunks of transfers started in set-up, each task one
    /// transfer after another, chunk after chunk; a transfer's last chunk is answered once its
    /// shard has read back and checked the whole document, in the same request. Transfers
    /// completed are kept for `Gp2gpFetch`; those a run did not begin wait for the next run
    /// (the one a task was uploading when the run ended stays unfinished). A start costs a
    /// small fraction of an upload, so the set-up starts transfers (an untimed `Gp2gpStart`
    /// run as long as this one) only when fewer wait than twice what the last run began: one
    /// start run then serves every repeat. A run that uses up its transfers stops there.
    Gp2gpChunk,
    /// The new practice (the demo GP) downloads a random chunk of a random transfer completed
    /// so far (by `Gp2gpChunk` runs, else by an untimed set-up of its own), each download
    /// audited as a disclosure. Nothing is acknowledged, so the transfers stay downloadable;
    /// the shard checks each chunk against its SHA-256 before answering, and the benchmark
    /// checks its index and length.
    Gp2gpFetch,
    /// One transfer of the largest record the Spine takes (100 MiB, 400 chunks), timed end to
    /// end: see [`gp2gp::whole_transfer`].
    Gp2gpTransfer,
}

impl Case {
    /// Whether every task works through its share to the end, whatever the deadline: loads
    /// and the publications of a set-up.
    fn runs_to_completion(self) -> bool {
        matches!(self, Case::Load | Case::ErsPublish)
    }
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
    pub versions: Mutex<HashMap<NhsNumber, u32>>,
    /// The Summary Care Record version of each patient given one so far.
    pub summaries: Mutex<HashMap<NhsNumber, u32>>,
    /// Prescriptions issued so far that no pharmacy has taken up yet.
    pub prescriptions: Mutex<Vec<Issued>>,
    /// Whether the benchmark's e-RS services are published (once per engine).
    services_published: AtomicBool,
    /// Referrals an `ErsRefer` run made, for the booking set-up to pair with slots.
    referrals: Mutex<Vec<Ubrn>>,
    /// Slot publications the booking set-up wants an `ErsPublish` run to send.
    publications: Mutex<Vec<Operation>>,
    /// Slots an `ErsPublish` run published.
    slots: Mutex<Vec<Slot>>,
    /// Bookings the next `ErsBook` run makes.
    bookings: Mutex<Vec<Booking>>,
    /// The records of the GP2GP upload and download cases, made when first needed.
    documents: OnceLock<Vec<Arc<Document>>>,
    /// The record of the whole transfer, made when first needed.
    largest_document: OnceLock<Arc<Document>>,
    /// Transfers started and not uploaded yet, for the next `Gp2gpChunk` run.
    uploads: Mutex<Vec<Upload>>,
    /// Transfers the last `Gp2gpChunk` run began.
    uploads_begun: AtomicU64,
    /// Transfers complete, for `Gp2gpFetch`.
    complete: Mutex<Vec<Upload>>,
    /// The patients who moved ([`gp2gp::moved`]), by home shard with home routing (else one
    /// list), found when first needed.
    movers: OnceLock<Vec<Arc<Vec<u32>>>>,
    /// Whether the movers' moves were made on this engine (once: see
    /// [`gp2gp::register_movers`]).
    pub(super) movers_registered: AtomicBool,
}

impl Population {
    /// The population of `numbers`, nothing updated or issued yet.
    pub fn new(seed: u64, numbers: Vec<NhsNumber>, by_shard: Option<Vec<Arc<Vec<u32>>>>) -> Self {
        Self {
            seed,
            numbers,
            by_shard,
            versions: Mutex::default(),
            summaries: Mutex::default(),
            prescriptions: Mutex::default(),
            services_published: AtomicBool::new(false),
            referrals: Mutex::default(),
            publications: Mutex::default(),
            slots: Mutex::default(),
            bookings: Mutex::default(),
            documents: OnceLock::new(),
            largest_document: OnceLock::new(),
            uploads: Mutex::default(),
            uploads_begun: AtomicU64::new(0),
            complete: Mutex::default(),
            movers: OnceLock::new(),
            movers_registered: AtomicBool::new(false),
        }
    }

    /// The records of the GP2GP upload and download cases.
    fn documents(&self) -> &[Arc<Document>] {
        self.documents.get_or_init(|| gp2gp::documents(self.seed))
    }

    /// The record of the whole transfer: the largest the Spine takes.
    fn largest_document(&self) -> &Arc<Document> {
        self.largest_document
            .get_or_init(|| Arc::new(Document::random(self.seed, DOCUMENT_BYTES_MAX as usize)))
    }

    /// The patients who moved that `task` (of tasks spread round-robin over the shards)
    /// sends the records of: all, or those at home on the task's shard (all, on a shard with
    /// none at home).
    pub(super) fn movers(&self, task: usize) -> Arc<Vec<u32>> {
        let lists = self.movers.get_or_init(|| {
            let all: Vec<u32> = (0..self.numbers.len() as u32)
                .filter(|&index| gp2gp::moved(index as usize))
                .collect();
            let Some(by_shard) = &self.by_shard else {
                return vec![Arc::new(all)];
            };
            by_shard
                .iter()
                .map(|home| {
                    let own: Vec<u32> = home
                        .iter()
                        .copied()
                        .filter(|&index| gp2gp::moved(index as usize))
                        .collect();
                    Arc::new(if own.is_empty() { all.clone() } else { own })
                })
                .collect()
        });
        Arc::clone(&lists[task % lists.len()])
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
    /// Requests answered as the case expects, expected refusals included.
    pub completed: u64,
    /// Of those, the expected refusals (a booking's slot taken by a racing booking).
    pub expected: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// Bytes of records the successful requests carried (GP2GP chunks, either way).
    pub bytes: u64,
}

/// How a request was answered, for the counts.
pub enum Verdict {
    /// As the case expects.
    Done,
    /// Refused, as the service refuses in normal operation (not a failure).
    Expected,
    /// Anything else.
    Failed(String),
}

impl Verdict {
    /// A failure, saying what the answer was.
    pub fn failed(response: &Response) -> Self {
        Verdict::Failed(match response {
            Err(refusal) => refusal.to_string(),
            Ok(reply) => format!("unexpected reply {reply:?}"),
        })
    }
}

impl Measured {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Self {
            completed: 0,
            expected: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            bytes: 0,
        }
    }

    /// Counts a request answered after `took`, carrying `bytes` of records if it succeeded.
    pub fn count(&mut self, took: Duration, verdict: Verdict, bytes: usize) {
        self.latency
            .saturating_record(took.as_micros().max(1) as u64);
        match verdict {
            Verdict::Done => {
                self.completed += 1;
                self.bytes += bytes as u64;
            }
            Verdict::Expected => {
                self.completed += 1;
                self.expected += 1;
            }
            Verdict::Failed(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    /// Adds what `other` counted (its elapsed time aside).
    fn add(&mut self, other: &Measured) -> Result<()> {
        self.completed += other.completed;
        self.expected += other.expected;
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.latency
            .add(&other.latency)
            .context("merging latency histograms")
    }
}

/// `mutex`'s value; no task panics holding one.
fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("no task panics holding it")
}

/// Everything in `pool`, leaving it empty.
fn take<T>(pool: &Mutex<Vec<T>>) -> Vec<T> {
    std::mem::take(&mut *locked(pool))
}

/// Runs started so far, in this process: part of every request id.
pub(super) static RUNS: AtomicU64 = AtomicU64::new(0);

/// Request ids are unique per run, task and request: (run and task, sequence). Without the
/// run, every run (the load too) would send the ids of earlier ones again for other requests,
/// and a write whose id is still in its shard's outcome ring (kept for idempotent retries) is
/// refused as `REQUEST_ID_REUSED`.
pub fn request_id(run: u64, task: usize, sequence: usize) -> Uuid {
    Uuid::from_u64_pair(run << 32 | task as u64, sequence as u64)
}

/// `user`'s request, in the demo user's role.
pub fn request(id: Uuid, user: Uuid, operation: Operation) -> Request {
    Request {
        id,
        caller: demo_caller(user),
        justification: Justification::None,
        operation,
    }
}

/// Patients in the benchmark are registered at the demo GP's practice, so its updates have a
/// legitimate relationship; those who moved there ([`gp2gp::moved`]) are unrestricted.
pub fn benchmark_patient(population: &Population, index: usize) -> Patient {
    let mut patient = patient_at(population.seed, index as u64, population.numbers[index]);
    patient.general_practitioner = Some(demo_ids::RIVERSIDE.parse().expect("demo practice code"));
    if gp2gp::moved(index) {
        patient.restricted = false;
    }
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
    /// Operations prepared in advance, sent in turn by `user`: over and over until the
    /// deadline (searches, prescriptions, referrals, transfers' starts), or, not `repeat`ed,
    /// each once (publications).
    Prepared {
        user: Uuid,
        operations: Vec<Operation>,
        repeat: bool,
    },
    /// Patients of the task's share with their summary's version (0: none yet).
    ScrUpdate(Vec<(NhsNumber, u32)>),
    /// Patients with a summary.
    ScrView(Arc<Vec<NhsNumber>>),
    /// Prescriptions to release, dispense and claim.
    Dispense(Journey<Issued>),
    /// Bookings to make, one request each.
    Book(Journey<Booking>),
    /// Transfers to upload, a request a chunk.
    Upload(Journey<Upload>),
    /// Complete transfers to download chunks of.
    Fetch(Arc<Vec<Upload>>),
}

/// Items a task works through in order, each in a number of steps (a request each): the item
/// at `next` has had its first `step` steps.
struct Journey<T> {
    items: Vec<T>,
    next: usize,
    step: usize,
}

impl<T> Journey<T> {
    fn new(items: Vec<T>) -> Self {
        Self {
            items,
            next: 0,
            step: 0,
        }
    }

    /// The item in progress and its next step; `None` once all are done.
    fn current(&self) -> Option<(&T, usize)> {
        self.items.get(self.next).map(|item| (item, self.step))
    }

    /// Moves on after a step of an item of `steps`: to its next step, or to the next item
    /// once it had all of them or the step failed (the steps after it would fail too).
    fn advance(&mut self, steps: usize, failed: bool) {
        self.step += 1;
        if self.step >= steps || failed {
            (self.next, self.step) = (self.next + 1, 0);
        }
    }

    /// How many items were begun.
    fn begun(&self) -> usize {
        (self.next + usize::from(self.step > 0)).min(self.items.len())
    }

    /// The items not begun.
    fn not_begun(mut self) -> Vec<T> {
        let begun = self.begun();
        self.items.split_off(begun)
    }
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

/// The task's share of the pool of prepared operations, made by `operation`, sent by `user`.
fn prepared(tasks: usize, user: Uuid, operation: impl FnMut() -> Operation) -> Work {
    Work::Prepared {
        user,
        operations: std::iter::repeat_with(operation)
            .take(POOL / tasks + 1)
            .collect(),
        repeat: true,
    }
}

/// Every task's work for `case`: made up front, or taken from what earlier runs and the
/// case's set-up made.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn works(case: Case, population: &Population, tasks: usize, shards: usize) -> Result<Vec<Work>> {
    // What every task makes of its own share, with its own random numbers.
    let each = |work: &dyn Fn(usize, &mut SplitMix64) -> Work| -> Vec<Work> {
        (0..tasks)
            .map(|task| work(task, &mut SplitMix64::new(task as u64 + 1)))
            .collect()
    };
    Ok(match case {
        Case::Load => {
            each(&|task, _| Work::Load((task..population.numbers.len()).step_by(tasks).collect()))
        }
        Case::Retrieve => each(&|task, _| Work::Retrieve(population.candidates(task, shards))),
        Case::Update => each(&|task, _| {
            let versions = locked(&population.versions);
            Work::Update(
                own_share(population, task, tasks, shards)
                    .into_iter()
                    .map(|index| benchmark_patient(population, index))
                    // A restricted patient's location fields cannot be changed by an update.
                    .filter(|patient| !patient.restricted)
                    .take(POOL / tasks + 1)
                    .map(|patient| {
                        let version = versions.get(&patient.nhs_number).copied().unwrap_or(1);
                        (patient, version)
                    })
                    .collect(),
            )
        }),
        // Searches go to every shard whatever the routing: any patient will do.
        Case::SearchExact | Case::SearchFuzzy => each(&|_, random| {
            prepared(tasks, demo_ids::GP, || {
                let patient = benchmark_patient(population, pick(random, population, None));
                let query = if case == Case::SearchExact {
                    exact_trace(&patient)
                } else {
                    fuzzy_trace(&patient)
                };
                Operation::PdsSearch { query }
            })
        }),
        Case::ScrUpdate => each(&|task, _| {
            let summaries = locked(&population.summaries);
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
        }),
        Case::ScrView => {
            let summarised: Arc<Vec<NhsNumber>> =
                Arc::new(locked(&population.summaries).keys().copied().collect());
            ensure!(
                !summarised.is_empty(),
                "scr_view needs summaries to view: run scr_update first"
            );
            each(&|_, _| Work::ScrView(Arc::clone(&summarised)))
        }
        // What a practice starts for one of its patients: a random one, or one at home on the
        // task's shard.
        Case::EpsCreate | Case::ErsRefer | Case::Gp2gpStart => {
            let documents = population.documents();
            // The previous practice sends the record; the demo GP's practice does the rest.
            let user = match case {
                Case::Gp2gpStart => demo_ids::SECOND_GP,
                _ => demo_ids::GP,
            };
            each(&|task, random| {
                // Only the previous practice sends: the patients who moved.
                let candidates = match case {
                    Case::Gp2gpStart => Some(population.movers(task)),
                    _ => population.candidates(task, shards),
                };
                prepared(tasks, user, || {
                    let home = candidates.as_deref().map(Vec::as_slice);
                    let patient = population.numbers[pick(random, population, home)];
                    match case {
                        Case::EpsCreate => Operation::EpsCreate {
                            prescription: new_prescription(random, patient),
                        },
                        Case::ErsRefer => Operation::ErsCreateReferral {
                            referral: ers::new_referral(patient),
                        },
                        _ => {
                            documents[random.below(documents.len() as u64) as usize].start(patient)
                        }
                    }
                })
            })
        }
        Case::EpsDispense => {
            let issued = take(&population.prescriptions);
            ensure!(
                !issued.is_empty(),
                "eps_dispense needs prescriptions: its set-up issued none"
            );
            deal(
                issued,
                |issued| issued.id.key_value(),
                population,
                tasks,
                shards,
            )
            .into_iter()
            .map(|share| Work::Dispense(Journey::new(share)))
            .collect()
        }
        Case::ErsPublish => {
            let publications = take(&population.publications);
            let home = |operation: &Operation| operation.home_value().unwrap_or_default();
            deal(publications, home, population, tasks, shards)
                .into_iter()
                .map(|operations| Work::Prepared {
                    user: demo_ids::APPOINTMENTS_MANAGER,
                    operations,
                    repeat: false,
                })
                .collect()
        }
        Case::ErsBook => {
            let bookings = take(&population.bookings);
            ensure!(
                !bookings.is_empty(),
                "ers_book needs referrals: its set-up made none"
            );
            deal(
                bookings,
                |booking| booking.ubrn.value(),
                population,
                tasks,
                shards,
            )
            .into_iter()
            .map(|share| Work::Book(Journey::new(share)))
            .collect()
        }
        Case::Gp2gpChunk => {
            let uploads = take(&population.uploads);
            ensure!(
                !uploads.is_empty(),
                "gp2gp_chunk needs transfers: its set-up started none"
            );
            deal(
                uploads,
                |upload| upload.transfer.get(),
                population,
                tasks,
                shards,
            )
            .into_iter()
            .map(|share| Work::Upload(Journey::new(share)))
            .collect()
        }
        Case::Gp2gpFetch => {
            let complete = Arc::new(locked(&population.complete).clone());
            ensure!(
                !complete.is_empty(),
                "gp2gp_fetch needs complete transfers: its set-up completed none"
            );
            each(&|_, _| Work::Fetch(Arc::clone(&complete)))
        }
        Case::Gp2gpTransfer => {
            anyhow::bail!("gp2gp_100mib is one transfer, not the tasks' work")
        }
    })
}

/// Deals `items` out to `tasks` (spread round-robin over `shards`) evenly: with home routing
/// each to a task of the shard that `home` (the value the item is routed by) lives on, else
/// to any. Neighbours in `items` go to different tasks, at about the same place in their
/// turn.
fn deal<T>(
    items: Vec<T>,
    home: impl Fn(&T) -> u64,
    population: &Population,
    tasks: usize,
    shards: usize,
) -> Vec<Vec<T>> {
    let per_shard = tasks / shards;
    let mut dealt: Vec<Vec<T>> = (0..tasks).map(|_| Vec::new()).collect();
    let mut turns = vec![0usize; shards];
    for (position, item) in items.into_iter().enumerate() {
        let shard = match population.by_shard {
            Some(_) => shard_of(home(&item), shards),
            None => position % shards,
        };
        // Task `shard + k * shards` runs on `shard`.
        dealt[shard + shards * (turns[shard] % per_shard)].push(item);
        turns[shard] += 1;
    }
    dealt
}

struct TaskResult {
    measured: Measured,
    /// The versions the task's updates left its patients at.
    versions: Vec<(NhsNumber, u32)>,
    /// The summary versions the task's SCR updates left its patients at.
    summaries: Vec<(NhsNumber, u32)>,
    /// Prescriptions the task issued, or was dealt and did not begin.
    issued: Vec<Issued>,
    /// Referrals the task made.
    referrals: Vec<Ubrn>,
    /// Slots the task published.
    slots: Vec<Slot>,
    /// Transfers the task started, or was dealt and did not begin.
    uploads: Vec<Upload>,
    /// Transfers the task began uploading.
    uploads_begun: usize,
    /// Transfers the task completed.
    complete: Vec<Upload>,
}

/// How `response` answers a request of `case`, as far as the answer alone tells.
fn check(response: &Response, case: Case) -> Verdict {
    match (response, case) {
        (Ok(Reply::Patient(_)), Case::Load | Case::Retrieve | Case::Update)
        | (Ok(Reply::Scr(_)), Case::ScrUpdate | Case::ScrView)
        | (Ok(Reply::Prescription(_)), Case::EpsCreate | Case::EpsDispense)
        | (Ok(Reply::Referral(_)), Case::ErsRefer)
        | (Ok(Reply::Slots(_)), Case::ErsPublish)
        | (Ok(Reply::Transfer(_)), Case::Gp2gpStart | Case::Gp2gpChunk)
        | (Ok(Reply::Chunk { .. }), Case::Gp2gpFetch) => Verdict::Done,
        (Ok(Reply::Referral(referral)), Case::ErsBook) => match referral.state() {
            ReferralState::Booked => Verdict::Done,
            other => Verdict::Failed(format!("a booking left its referral {}", other.code())),
        },
        (Err(refusal), Case::ErsBook) if refusal.code == ErrorCode::SlotNotAvailable => {
            Verdict::Expected
        }
        (Ok(Reply::Matches(found)), Case::SearchExact | Case::SearchFuzzy) if !found.is_empty() => {
            Verdict::Done
        }
        (Ok(Reply::Matches(_)), _) => Verdict::Failed("a search found nothing".into()),
        _ => Verdict::failed(response),
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

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
async fn run_task(shared: Arc<Shared>, work: Work, task: usize) -> TaskResult {
    let (engine, population, case) = (&shared.engine, &shared.population, shared.case);
    let mut result = TaskResult {
        measured: Measured::new(),
        versions: Vec::new(),
        summaries: Vec::new(),
        issued: Vec::new(),
        referrals: Vec::new(),
        slots: Vec::new(),
        uploads: Vec::new(),
        uploads_begun: 0,
        complete: Vec::new(),
    };
    let mut random = SplitMix64::new(0xBE4C_0000 + task as u64);
    let mut work = work;
    let mut position = 0usize;
    // A task that runs out of work it was dealt stops the others.
    let used_up = || shared.stop.store(true, Ordering::Relaxed);
    loop {
        if !case.runs_to_completion()
            && (Instant::now() >= shared.deadline || shared.stop.load(Ordering::Relaxed))
        {
            break;
        }
        // The GP asks, but for the pharmacy's steps, the previous practice's uploads and
        // prepared operations of another user.
        let mut user = demo_ids::GP;
        // Bytes of a record the request carries (an upload), or, for a download, the chunk
        // asked for and its length.
        let mut carried = 0;
        let mut asked = None;
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
            Work::Prepared {
                user: sender,
                operations,
                repeat,
            } => {
                let operation = if *repeat {
                    operations.get(position % operations.len())
                } else {
                    operations.get(position)
                };
                let Some(operation) = operation else { break };
                user = *sender;
                operation.clone()
            }
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
            Work::Dispense(journey) => {
                let Some((issued, step)) = journey.current() else {
                    used_up();
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
            Work::Book(journey) => {
                let Some((booking, _)) = journey.current() else {
                    used_up();
                    break;
                };
                booking.operation()
            }
            Work::Upload(journey) => {
                let Some((upload, chunk)) = journey.current() else {
                    used_up();
                    break;
                };
                user = demo_ids::SECOND_GP;
                let operation = upload.document.send(upload.transfer, chunk as u32);
                carried = upload.document.chunk(chunk as u32).len();
                operation
            }
            Work::Fetch(complete) => {
                let upload = &complete[random.below(complete.len() as u64) as usize];
                let index = random.below(u64::from(upload.document.chunks())) as u32;
                asked = Some((index, upload.document.chunk(index).len()));
                Operation::Gp2gpFetchChunk {
                    transfer: upload.transfer,
                    index,
                }
            }
        };
        let started = Instant::now();
        let id = request_id(shared.run, task, position);
        let response = engine.submit(request(id, user, operation)).await;
        let took = started.elapsed();
        let mut verdict = check(&response, case);
        match (&mut work, &response, &verdict) {
            (Work::Update(patients), Ok(Reply::Patient(updated)), Verdict::Done) => {
                let slot = position % patients.len();
                patients[slot].1 = updated.version;
            }
            (Work::ScrUpdate(patients), Ok(Reply::Scr(updated)), Verdict::Done) => {
                let slot = position % patients.len();
                patients[slot].1 = updated.version;
            }
            (Work::Prepared { .. }, Ok(Reply::Prescription(issued)), Verdict::Done) => {
                result.issued.push(Issued::of(issued));
            }
            (Work::Prepared { .. }, Ok(Reply::Referral(referral)), Verdict::Done) => {
                result.referrals.push(referral.ubrn());
            }
            (Work::Prepared { .. }, Ok(Reply::Slots(slots)), Verdict::Done) => {
                result.slots.extend_from_slice(slots);
            }
            (Work::Prepared { .. }, Ok(Reply::Transfer(status)), Verdict::Done) => {
                let digest = status.transfer.document_sha256();
                match population.documents().iter().find(|d| d.sha256() == digest) {
                    Some(document) => result.uploads.push(Upload {
                        transfer: status.transfer.id(),
                        document: Arc::clone(document),
                    }),
                    None => verdict = Verdict::Failed("a transfer of an unknown record".into()),
                }
            }
            // The next step of the journey, or the next prescription once it is claimed or
            // a step failed.
            (Work::Dispense(journey), _, _) => {
                journey.advance(DISPENSE_STEPS, matches!(verdict, Verdict::Failed(_)));
            }
            (Work::Book(journey), _, _) => journey.advance(1, false),
            // The next chunk, or the next transfer once its last chunk completed it (or a
            // chunk failed).
            (Work::Upload(journey), _, _) => {
                let mut steps = 1;
                if let Some((upload, chunk)) = journey.current() {
                    steps = upload.document.chunks() as usize;
                    let last = chunk + 1 == steps;
                    if let (true, Ok(Reply::Transfer(status)), Verdict::Done) =
                        (last, &response, &verdict)
                    {
                        match status.transfer.state() {
                            TransferState::Complete => result.complete.push(upload.clone()),
                            other => {
                                verdict = Verdict::Failed(format!(
                                    "a transfer is {} after its last chunk",
                                    other.code()
                                ));
                            }
                        }
                    }
                }
                journey.advance(steps, matches!(verdict, Verdict::Failed(_)));
            }
            (Work::Fetch(_), Ok(Reply::Chunk { index, bytes }), Verdict::Done) => {
                if asked != Some((*index, bytes.len())) {
                    verdict = Verdict::Failed(format!(
                        "chunk {index} of {} bytes came for {asked:?}",
                        bytes.len()
                    ));
                }
                carried = bytes.len();
            }
            _ => {}
        }
        result.measured.count(took, verdict, carried);
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
        // Those not begun go back for the next run; one begun cannot be released again.
        Work::Dispense(journey) => result.issued = journey.not_begun(),
        Work::Upload(journey) => {
            result.uploads_begun = journey.begun();
            result.uploads = journey.not_begun();
        }
        _ => {}
    }
    result
}

/// A pharmacy's steps on one prescription: release, dispense, claim.
const DISPENSE_STEPS: usize = 3;

/// What `case` needs done before it is measured, untimed. Prescriptions for the pharmacies
/// to dispense and referrals to book, made by a run as long as the case runs (the rate they
/// are made at bounds how many a timed run can use), with the slots for the referrals;
/// transfers to upload, started the same way; complete transfers to download, if no upload
/// run made any; the largest record, for the whole transfer.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
pub fn set_up(
    engine: &EngineHandle,
    population: &Arc<Population>,
    case: Case,
    tasks_per_shard: usize,
    duration: Duration,
) -> Result<()> {
    let set_up_started = Instant::now();
    if matches!(
        case,
        Case::Gp2gpStart | Case::Gp2gpChunk | Case::Gp2gpFetch | Case::Gp2gpTransfer
    ) {
        gp2gp::register_movers(engine, population)?;
    }
    // What an untimed run of `case` made, failing on any failure; how many.
    let made_by = |case: Case, what: &str| -> Result<u64> {
        let measured = run(engine, population, case, tasks_per_shard, duration)?;
        measured.ensure_no_errors(what)?;
        Ok(measured.completed)
    };
    match case {
        Case::EpsDispense => {
            made_by(Case::EpsCreate, "prescriptions of the set-up")?;
        }
        Case::ErsBook => {
            publish_services(engine, population)?;
            made_by(Case::ErsRefer, "referrals of the set-up")?;
            let referrals = take(&population.referrals);
            *locked(&population.publications) =
                ers::publications(ers::slots_needed(referrals.len()));
            run(
                engine,
                population,
                Case::ErsPublish,
                tasks_per_shard,
                Duration::MAX,
            )?
            .ensure_no_errors("slot publications of the set-up")?;
            let slots = take(&population.slots);
            eprintln!(
                "set-up: {} referrals made, {} slots published for them, in {:.1} s",
                referrals.len(),
                slots.len(),
                set_up_started.elapsed().as_secs_f64()
            );
            let seed = population.seed ^ RUNS.load(Ordering::Relaxed);
            *locked(&population.bookings) = ers::pair(referrals, slots, seed)?;
        }
        Case::Gp2gpChunk => {
            let waiting = locked(&population.uploads).len() as u64;
            if waiting <= 2 * population.uploads_begun.load(Ordering::Relaxed) {
                let started = made_by(Case::Gp2gpStart, "transfers started in the set-up")?;
                eprintln!(
                    "set-up: {started} transfers started in {:.1} s",
                    set_up_started.elapsed().as_secs_f64()
                );
            } else {
                eprintln!("set-up: {waiting} transfers waiting from earlier set-ups");
            }
        }
        Case::Gp2gpFetch => {
            let none_complete = locked(&population.complete).is_empty();
            if none_complete {
                set_up(
                    engine,
                    population,
                    Case::Gp2gpChunk,
                    tasks_per_shard,
                    duration,
                )?;
                made_by(Case::Gp2gpChunk, "uploads of the set-up")?;
            }
            eprintln!(
                "set-up: {} complete transfers to download from",
                locked(&population.complete).len()
            );
        }
        Case::Gp2gpTransfer => {
            population.largest_document();
        }
        _ => {}
    }
    Ok(())
}

/// Publishes the benchmark's e-RS services, as the hospital's appointments manager, unless
/// done before on this engine.
fn publish_services(engine: &EngineHandle, population: &Population) -> Result<()> {
    if population.services_published.load(Ordering::Relaxed) {
        return Ok(());
    }
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    for number in 0..ers::SERVICES {
        let service = ers::service(number);
        let id = request_id(run, 0, number as usize);
        let publication = request(
            id,
            demo_ids::APPOINTMENTS_MANAGER,
            Operation::ErsPublishService { service },
        );
        match pollster::block_on(engine.submit(publication)) {
            Ok(Reply::Service(_)) => {}
            other => anyhow::bail!("publishing e-RS service {number}: {other:?}"),
        }
    }
    population.services_published.store(true, Ordering::Relaxed);
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

/// Keeps what a task made for later runs.
fn keep(population: &Population, result: TaskResult) {
    locked(&population.versions).extend(result.versions);
    locked(&population.summaries).extend(
        result
            .summaries
            .into_iter()
            .filter(|(_, version)| *version > 0),
    );
    locked(&population.prescriptions).extend(result.issued);
    locked(&population.referrals).extend(result.referrals);
    locked(&population.slots).extend(result.slots);
    locked(&population.uploads).extend(result.uploads);
    locked(&population.complete).extend(result.complete);
}

/// Runs `case` with `tasks_per_shard` tasks on every shard for `duration` (a load or a
/// publication runs until all is sent; a run of what set-up made, until it is used up, if
/// sooner); the whole transfer is one transfer.
pub fn run(
    engine: &EngineHandle,
    population: &Arc<Population>,
    case: Case,
    tasks_per_shard: usize,
    duration: Duration,
) -> Result<Measured> {
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    if case == Case::Gp2gpTransfer {
        let movers = population.movers(0);
        let index = pick(&mut SplitMix64::new(run), population, Some(&movers));
        let patient = population.numbers[index];
        let document = Arc::clone(population.largest_document());
        return gp2gp::whole_transfer(engine, patient, document, run);
    }
    let shards = engine.shard_count();
    let tasks = shards * tasks_per_shard;
    let works = works(case, population, tasks, shards)?;
    let pharmacies = PHARMACIES
        .iter()
        .map(|(code, _)| code.parse().context("a demo pharmacy code"))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        population: Arc::clone(population),
        case,
        run,
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
    let mut measured = Measured::new();
    let mut uploads_begun = 0;
    for handle in handles {
        let result = pollster::block_on(handle).context("a benchmark task panicked")?;
        measured.add(&result.measured)?;
        uploads_begun += result.uploads_begun;
        keep(population, result);
    }
    measured.elapsed = started.elapsed();
    if case == Case::Gp2gpChunk {
        population
            .uploads_begun
            .store(uploads_begun as u64, Ordering::Relaxed);
    }
    if shared.stop.load(Ordering::Relaxed) {
        eprintln!(
            "note: {case:?} used up what its set-up made after {:.1} s of {:.1} s; measured \
             over that time",
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
        let key = |prescription: &Issued| prescription.id.key_value();
        let anywhere = Population::new(1, Vec::new(), None);
        let dealt = deal(issued(601), key, &anywhere, tasks, shards);
        let sizes: Vec<usize> = dealt.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 601);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);

        let home = Population::new(1, Vec::new(), Some(Vec::new()));
        let dealt = deal(issued(601), key, &home, tasks, shards);
        assert_eq!(dealt.iter().map(Vec::len).sum::<usize>(), 601);
        for (task, share) in dealt.iter().enumerate() {
            assert!(!share.is_empty());
            for prescription in share {
                assert_eq!(shard_of(prescription.id.key_value(), shards), task % shards);
            }
        }
    }

    #[test]
    fn a_journey_moves_step_by_step_and_skips_the_rest_of_an_item_on_failure() {
        let mut journey = Journey::new(vec!['a', 'b', 'c', 'd']);
        assert_eq!(journey.current(), Some((&'a', 0)));
        journey.advance(3, false);
        assert_eq!(journey.current(), Some((&'a', 1)));
        assert_eq!(journey.begun(), 1);
        journey.advance(3, true);
        assert_eq!(journey.current(), Some((&'b', 0)));
        assert_eq!(journey.begun(), 1);
        for _ in 0..3 {
            journey.advance(3, false);
        }
        journey.advance(3, false);
        assert_eq!(journey.current(), Some((&'c', 1)));
        assert_eq!(journey.not_begun(), vec!['d']);
    }

    #[test]
    fn only_a_booking_may_be_refused_a_taken_slot() {
        use spine_core::request::Refusal;
        let taken = Err(Refusal::new(ErrorCode::SlotNotAvailable, "taken"));
        assert!(matches!(check(&taken, Case::ErsBook), Verdict::Expected));
        assert!(matches!(check(&taken, Case::ErsRefer), Verdict::Failed(_)));
        let other = Err(Refusal::new(ErrorCode::InvalidRequestState, "cancelled"));
        assert!(matches!(check(&other, Case::ErsBook), Verdict::Failed(_)));
    }

    #[test]
    fn request_ids_differ_between_runs() {
        assert_ne!(request_id(0, 3, 5), request_id(1, 3, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 4, 5));
        assert_ne!(request_id(0, 3, 5), request_id(0, 3, 6));
    }
}
