//! The requests each operation sends, over a synthetic population the server holds.
//!
//! Patients are the seeded synthetic population (`spine_domain::pds::synthetic`), registered at
//! the demo GP's practice so the demo GP may change them. Updates and death notifications read
//! the record first and write at the version read, as a client would; contended updates do so
//! on a handful of "hot" patients, so that concurrent writers meet `RESOURCE_VERSION_MISMATCH`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use spine_domain::NhsNumber;
use spine_domain::access::directory_file::demo_ids;
use spine_domain::eps::{EpsAction, NewLineItem, NewPrescription};
use spine_domain::ers::{
    NewReferral, NewSlot, Priority, ReferralAction, Service, ServiceId, SlotQuery, SlotStart,
};
use spine_domain::gp2gp::Sha256Hash;
use spine_domain::pds::patient::{Death, DeathNotificationStatus, Patient};
use spine_domain::pds::synthetic::{SplitMix64, exact_trace, fuzzy_trace, nhs_numbers, patient_at};
use spine_domain::pds::values::OdsCode;
use spine_domain::request::{ErrorCode, Operation, Refusal, Reply, Response};
use spine_domain::scr::record::{ScrContent, ScrEntryInput};
use spine_net::client::ClientError;
use spine_net::client_set::ClientSet;
use spine_net::protocol::message::WireRequest;
use spine_net::protocol::response_body::ResponseBody;

use crate::measure::Outcome;
use crate::model::Op;

/// Patients every contended update picks from.
pub const HOT_PATIENTS: usize = 8;
/// Bookable services (one hospital's cardiology clinics), every referral's shortlist.
pub const ERS_SERVICES: u32 = 10;
/// Slots a service publishes at most: 28 days of 40 fifteen-minute slots (08:00–18:00).
const SLOTS_PER_SERVICE_MAX: usize = 28 * 40;
/// Free slots a booking's search asks for; the patient picks one of them.
const SLOTS_OFFERED: u32 = 5;
/// Slots one booking tries before giving up (each taken by a concurrent booking).
const BOOKING_ATTEMPTS_MAX: usize = 3;
/// A transferred GP record's size: four chunks.
const GP_RECORD_BYTES: usize = 4 * spine_domain::gp2gp::CHUNK_BYTES as usize;
/// Distinct GP records the transfers send, made and hashed once: making and hashing a record
/// per transfer (1 MiB of random bytes, two SHA-256 passes) held up the client thread's other
/// operations for milliseconds each time.
const GP_RECORDS: usize = 4;

/// A GP record the transfers send, with its digest.
struct GpRecord {
    bytes: Vec<u8>,
    sha256: Sha256Hash,
}

impl GpRecord {
    /// Record `number` of the population of `seed`: random bytes.
    fn new(seed: u64, number: u64) -> Self {
        let mut random = SplitMix64::new(seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut bytes = vec![0u8; GP_RECORD_BYTES];
        for word in bytes.chunks_exact_mut(8) {
            word.copy_from_slice(&random.next_u64().to_le_bytes());
        }
        let sha256 = Sha256Hash::of(&bytes);
        Self { bytes, sha256 }
    }
}

/// The population and the requests made of it.
pub struct Workload {
    /// The population's seed.
    pub seed: u64,
    /// Its NHS numbers, index by index.
    pub numbers: Vec<NhsNumber>,
    /// Registrations made so far (each a new person).
    registrations: AtomicU64,
    /// The GP records transfers send.
    gp_records: Vec<GpRecord>,
}

/// An operation's outcome and the requests it sent.
#[derive(Clone, Debug)]
pub struct Done {
    /// How it ended.
    pub outcome: Outcome,
    /// Requests sent.
    pub requests: u64,
}

/// The demo GP's request (the role with every PDS activity).
pub fn gp_request(operation: Operation) -> WireRequest {
    WireRequest::as_demo_gp(operation)
}

fn pharmacist_request(operation: Operation) -> WireRequest {
    WireRequest::as_demo_user(demo_ids::PHARMACIST, operation)
        .expect("the demo directory holds the pharmacist")
}

fn appointments_request(operation: Operation) -> WireRequest {
    WireRequest::as_demo_user(demo_ids::APPOINTMENTS_MANAGER, operation)
        .expect("the demo directory holds the appointments manager")
}

/// One patient in this many moved to the demo practice from Hillview: the ones whose records
/// Hillview may send by GP2GP.
const MOVED_EVERY: usize = 50;

/// Whether patient `index` moved to the demo practice from Hillview (patient 0 did).
fn moved(index: usize) -> bool {
    index.is_multiple_of(MOVED_EVERY)
}

fn previous_practice_request(operation: Operation) -> WireRequest {
    WireRequest::as_demo_user(demo_ids::SECOND_GP, operation)
        .expect("the demo directory holds the second practice's GP")
}

fn privacy_officer_request(operation: Operation) -> WireRequest {
    WireRequest::as_demo_user(demo_ids::PRIVACY_OFFICER, operation)
        .expect("the demo directory holds the privacy officer")
}

/// Whether a refusal is one `op` meets in normal operation under load.
fn expected(op: Op, code: ErrorCode) -> bool {
    matches!(
        (op, code),
        (
            Op::Update | Op::UpdateContended | Op::DeathNotification,
            ErrorCode::ResourceVersionMismatch
        ) | (Op::DeathNotification, ErrorCode::ForbiddenUpdate)
            | (
                Op::Create,
                ErrorCode::SingleMatch | ErrorCode::MultipleMatches
            )
            | (Op::SearchExact | Op::SearchFuzzy, ErrorCode::TooManyMatches)
            // Patients without a summary (a tenth), and a practice's two updates crossing.
            | (Op::ScrView, ErrorCode::ResourceNotFound)
            | (Op::ScrUpdate, ErrorCode::ResourceVersionMismatch)
            // Concurrent bookings of one slot: all but one are refused.
            | (
                Op::ErsBooking,
                ErrorCode::SlotNotAvailable | ErrorCode::SlotsCurrentlyAvailable
            )
    )
}

/// The `number`th bookable service.
fn ers_service(number: u32) -> Service {
    Service {
        id: ServiceId(11_000 + number),
        name: format!("City General Cardiology Clinic {}", number + 1),
        provider: "Y9H01".parse().expect("demo hospital code"),
        specialty: "CARDIOLOGY".parse().expect("a specialty code"),
        clinic_type: "GENERAL".parse().expect("a clinic type code"),
    }
}

/// The `n`th slot of a service: March 2031, 40 a day from 08:00, fifteen minutes each.
fn ers_slot(n: usize) -> NewSlot {
    let (day, of_day) = (n / 40 + 1, (n % 40) as u16);
    let date = format!("2031-03-{day:02}").parse().expect("a March date");
    NewSlot {
        start: SlotStart::new(date, 8 * 60 + 15 * of_day).expect("within the day"),
        duration_minutes: 15,
    }
}

/// The search a booking makes: cardiology, all of the slots' month.
fn ers_query() -> SlotQuery {
    SlotQuery {
        specialty: "CARDIOLOGY".parse().expect("a specialty code"),
        clinic_type: None,
        from: "2031-03-01".parse().expect("a date"),
        to: "2031-03-28".parse().expect("a date"),
        provider: None,
        limit: SLOTS_OFFERED,
    }
}

/// Whether patient `index` has a Summary Care Record loaded (nine in ten: 65 million SCRs
/// against some 70 million people registered with a GP, 2018).
fn has_summary(index: usize) -> bool {
    index % 10 != 9
}

/// A synthetic summary for patient `index`, `change` telling versions apart.
fn summary(index: usize, change: u64) -> ScrContent {
    const ALLERGIES: [&str; 4] = [
        "Penicillin: anaphylaxis",
        "Latex: contact dermatitis",
        "Peanut: urticaria",
        "Aspirin: bronchospasm",
    ];
    const REPEATS: [&str; 4] = [
        "Ramipril 5mg capsules, one daily",
        "Atorvastatin 20mg tablets, one at night",
        "Metformin 500mg tablets, one twice daily",
        "Salbutamol 100 micrograms inhaler, two puffs as needed",
    ];
    let entry = |text: &str| ScrEntryInput {
        code: None,
        text: text.to_owned(),
    };
    ScrContent {
        allergies: vec![entry(ALLERGIES[index % ALLERGIES.len()])],
        repeat_medications: vec![entry(REPEATS[(index / 4) % REPEATS.len()])],
        acute_medications: vec![entry(&format!(
            "Amoxicillin 500mg capsules, course {change}"
        ))],
        ..ScrContent::default()
    }
}

fn outcome<T>(op: Op, response: Result<Result<T, Refusal>, ClientError>) -> Outcome {
    match response {
        Ok(Ok(_)) => Outcome::Done,
        Ok(Err(refusal)) if expected(op, refusal.code) => {
            Outcome::Expected(refusal.code.as_str().to_owned())
        }
        Ok(Err(refusal)) => Outcome::Failed(refusal.code.as_str().to_owned()),
        Err(ClientError::Goodbye(goodbye)) => Outcome::Failed(goodbye.code.as_str().to_owned()),
        Err(_) => Outcome::Failed("CONNECTION_LOST".to_owned()),
    }
}

/// The outcome of a one-request operation whose reply is not needed: only the response's head
/// is decoded (most of a generator's decoding was of patients it then dropped).
fn outcome_of_body(op: Op, response: Result<ResponseBody, ClientError>) -> Outcome {
    let done = response.and_then(|body| {
        body.outcome()
            .map_err(|error| ClientError::Lost(error.to_string()))
    });
    outcome(op, done)
}

/// An operation stopped after `requests` by an answer that is not the one it needed: a refusal
/// or lost connection as such, another reply as `UNEXPECTED_REPLY`.
fn stopped(op: Op, response: Result<Response, ClientError>, requests: u64) -> Done {
    let outcome = match response {
        Ok(Ok(_)) => Outcome::Failed("UNEXPECTED_REPLY".to_owned()),
        other => outcome(op, other),
    };
    Done { outcome, requests }
}

impl Workload {
    /// The first `population` patients of the population of `seed`.
    pub fn new(seed: u64, population: usize) -> Self {
        Self {
            seed,
            numbers: nhs_numbers().take(population.max(HOT_PATIENTS)).collect(),
            registrations: AtomicU64::new(0),
            gp_records: (0..GP_RECORDS as u64)
                .map(|number| GpRecord::new(seed, number))
                .collect(),
        }
    }

    /// Patient `index` once loaded: registered at the demo GP's practice (those who moved
    /// there, see [`moved`], unrestricted).
    pub fn patient(&self, index: usize) -> Patient {
        let mut patient = patient_at(self.seed, index as u64, self.numbers[index]);
        patient.general_practitioner =
            Some(demo_ids::RIVERSIDE.parse().expect("demo practice code"));
        if moved(index) {
            patient.restricted = false;
        }
        patient
    }

    /// The requests loading patient `index`: one, or for a patient who moved, two (loaded at
    /// Hillview, then registered at the demo practice by Hillview's GP).
    pub fn load_requests(&self, index: usize) -> Vec<WireRequest> {
        let patient = self.patient(index);
        if !moved(index) {
            return vec![gp_request(Operation::PdsLoad { patient })];
        }
        let mut at_hillview = patient.clone();
        at_hillview.general_practitioner =
            Some(demo_ids::HILLVIEW.parse().expect("Hillview's code"));
        vec![
            gp_request(Operation::PdsLoad {
                patient: at_hillview,
            }),
            previous_practice_request(Operation::PdsUpdate {
                patient,
                expected_version: 1,
            }),
        ]
    }

    /// The request loading patient `index`'s summary, if they have one.
    pub fn summary_request(&self, index: usize) -> Option<WireRequest> {
        has_summary(index).then(|| {
            gp_request(Operation::ScrUpdate {
                nhs_number: self.numbers[index],
                expected_version: 0,
                content: summary(index, 0),
            })
        })
    }

    /// The requests publishing the bookable services and their slots: a twentieth of the
    /// population in slots (at least 2,000), spread over the services.
    pub fn ers_setup_requests(&self) -> Vec<WireRequest> {
        let total = (self.numbers.len() / 20).max(2_000);
        let per_service = total
            .div_ceil(ERS_SERVICES as usize)
            .min(SLOTS_PER_SERVICE_MAX);
        let publication = spine_domain::ers::operations::SLOTS_PER_PUBLICATION_MAX;
        let mut requests = Vec::new();
        for number in 0..ERS_SERVICES {
            let service = ers_service(number);
            let id = service.id;
            requests.push(appointments_request(Operation::ErsPublishService {
                service,
            }));
            for first in (0..per_service).step_by(publication) {
                let slots = (first..per_service.min(first + publication))
                    .map(ers_slot)
                    .collect();
                requests.push(appointments_request(Operation::ErsPublishSlots {
                    service: id,
                    slots,
                }));
            }
        }
        requests
    }

    /// Runs one `op` on `client`, choosing with `random`.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    pub async fn run(
        self: &Arc<Self>,
        op: Op,
        client: &ClientSet,
        random: &mut SplitMix64,
    ) -> Done {
        let any = |random: &mut SplitMix64| random.below(self.numbers.len() as u64) as usize;
        let one = |response| Done {
            outcome: outcome_of_body(op, response),
            requests: 1,
        };
        match op {
            Op::Retrieve => {
                let nhs_number = self.numbers[any(random)];
                one(client
                    .call_body(gp_request(Operation::PdsRetrieve { nhs_number }))
                    .await)
            }
            Op::SearchExact | Op::SearchFuzzy => {
                let patient = self.patient(any(random));
                let query = if op == Op::SearchExact {
                    exact_trace(&patient)
                } else {
                    fuzzy_trace(&patient)
                };
                one(client
                    .call_body(gp_request(Operation::PdsSearch { query }))
                    .await)
            }
            Op::Update | Op::UpdateContended => {
                let index = if op == Op::Update {
                    // Cold patients: past the hot ones.
                    HOT_PATIENTS + random.below((self.numbers.len() - HOT_PATIENTS) as u64) as usize
                } else {
                    random.below(HOT_PATIENTS as u64) as usize
                };
                let value = format!("07700 9{:05}", random.below(100_000));
                self.read_then_write(op, client, index, |mut patient| {
                    if let Some(contact) = patient.telecom.first_mut() {
                        contact.value = value;
                    }
                    Operation::PdsUpdate {
                        expected_version: patient.version,
                        patient,
                    }
                })
                .await
            }
            Op::DeathNotification => {
                let index = HOT_PATIENTS + any(random) % (self.numbers.len() - HOT_PATIENTS);
                self.read_then_write(op, client, index, |patient| {
                    Operation::PdsDeathNotification {
                        nhs_number: patient.nhs_number,
                        expected_version: patient.version,
                        death: Death {
                            date: "2026-11-01".parse().expect("a date"),
                            time_s: None,
                            notification: DeathNotificationStatus::Informal,
                        },
                    }
                })
                .await
            }
            Op::Create => {
                let registration = self.registrations.fetch_add(1, Ordering::Relaxed);
                // New people: another population's records, so the trace rarely finds them.
                let mut patient = patient_at(
                    self.seed.wrapping_add(0x5EED),
                    registration,
                    self.numbers[0],
                );
                patient.general_practitioner =
                    Some(demo_ids::RIVERSIDE.parse().expect("demo practice code"));
                one(client
                    .call_body(gp_request(Operation::PdsCreate { patient }))
                    .await)
            }
            Op::AuditTrail => {
                let nhs_number = self.numbers[any(random)];
                one(client
                    .call_body(privacy_officer_request(Operation::AuditTrail {
                        nhs_number,
                        limit: 20,
                    }))
                    .await)
            }
            Op::ScrView => {
                let nhs_number = self.numbers[any(random)];
                one(client
                    .call_body(gp_request(Operation::ScrView {
                        nhs_number,
                        permission_to_view: true,
                    }))
                    .await)
            }
            Op::ScrUpdate => {
                self.update_summary(client, any(random), random.next_u64())
                    .await
            }
            Op::EpsPrescription => self.prescription_journey(client, any(random)).await,
            Op::ErsBooking => self.booking_journey(client, any(random), random).await,
            Op::Gp2gpTransfer => {
                self.record_transfer(client, any(random), random.next_u64())
                    .await
            }
        }
    }

    /// Patient `index` rounded down to one who joined the demo practice from Hillview
    /// ([`moved`]): Hillview's GP, the previous practice, sends
    /// their 1 MiB record (one of the workload's four, picked by `seed`) in four chunks, and
    /// the demo GP downloads it,
    /// checks it and acknowledges delivery. Stops at the first refusal.
    async fn record_transfer(&self, client: &ClientSet, index: usize, seed: u64) -> Done {
        use spine_domain::gp2gp::CHUNK_BYTES;
        let op = Op::Gp2gpTransfer;
        let index = index - index % MOVED_EVERY;
        let record = &self.gp_records[(seed % GP_RECORDS as u64) as usize];
        let document = &record.bytes;
        let start = previous_practice_request(Operation::Gp2gpStart {
            patient: self.numbers[index],
            document_size: document.len() as u64,
            document_sha256: record.sha256,
        });
        let transfer = match client.call(start).await {
            Ok(Ok(Reply::Transfer(status))) => status.transfer.id(),
            other => return stopped(op, other, 1),
        };
        let mut requests = 1;
        for (index, bytes) in (0..).zip(document.chunks(CHUNK_BYTES as usize)) {
            requests += 1;
            let send = previous_practice_request(Operation::Gp2gpSendChunk {
                transfer,
                index,
                bytes: bytes.to_vec(),
            });
            match client.call(send).await {
                Ok(Ok(Reply::Transfer(_))) => {}
                other => return stopped(op, other, requests),
            }
        }
        let mut received = Vec::with_capacity(document.len());
        for index in 0..document.len().div_ceil(CHUNK_BYTES as usize) as u32 {
            requests += 1;
            let fetch = gp_request(Operation::Gp2gpFetchChunk { transfer, index });
            match client.call(fetch).await {
                Ok(Ok(Reply::Chunk { bytes, .. })) => received.extend_from_slice(&bytes),
                other => return stopped(op, other, requests),
            }
        }
        // What came back is compared with what was sent; only a different record is hashed
        // (and the server refuses its digest).
        let received_sha256 = if received == *document {
            record.sha256
        } else {
            Sha256Hash::of(&received)
        };
        let acknowledge = gp_request(Operation::Gp2gpAcknowledge {
            transfer,
            document_sha256: received_sha256,
        });
        Done {
            outcome: outcome(op, client.call(acknowledge).await),
            requests: requests + 1,
        }
    }

    /// Refers patient `index` to the cardiology services, searches free slots and books one
    /// picked at random (another when a concurrent booking took it, up to three), or defers to
    /// a provider when none is free.
    async fn booking_journey(
        &self,
        client: &ClientSet,
        index: usize,
        random: &mut SplitMix64,
    ) -> Done {
        let op = Op::ErsBooking;
        let refer = gp_request(Operation::ErsCreateReferral {
            referral: NewReferral {
                patient: self.numbers[index],
                specialty: "CARDIOLOGY".parse().expect("a specialty code"),
                priority: Priority::Routine,
                shortlist: (0..ERS_SERVICES).map(|n| ers_service(n).id).collect(),
            },
        });
        let ubrn = match client.call(refer).await {
            Ok(Ok(Reply::Referral(referral))) => referral.ubrn(),
            other => return stopped(op, other, 1),
        };
        let search = gp_request(Operation::ErsSearchSlots { query: ers_query() });
        let found = match client.call(search).await {
            Ok(Ok(Reply::FreeSlots(found))) => found,
            other => return stopped(op, other, 2),
        };
        let mut requests = 2;
        if found.is_empty() {
            let service = ers_service(random.below(u64::from(ERS_SERVICES)) as u32).id;
            let defer = gp_request(Operation::ErsUpdateReferral {
                ubrn,
                action: ReferralAction::DeferToProvider { service },
            });
            let response = client.call(defer).await;
            return Done {
                outcome: outcome(op, response),
                requests: requests + 1,
            };
        }
        let first = random.below(found.len() as u64) as usize;
        for attempt in 0..found.len().min(BOOKING_ATTEMPTS_MAX) {
            let free = &found[(first + attempt) % found.len()];
            requests += 1;
            let book = gp_request(Operation::ErsBook {
                ubrn,
                slot: free.slot.id(),
                service: free.service.id,
            });
            match client.call(book).await {
                Ok(Err(refusal)) if refusal.code == ErrorCode::SlotNotAvailable => {}
                response => {
                    return Done {
                        outcome: outcome(op, response),
                        requests,
                    };
                }
            }
        }
        Done {
            outcome: Outcome::Expected(ErrorCode::SlotNotAvailable.as_str().to_owned()),
            requests,
        }
    }

    /// Issues a prescription for patient `index` as the GP, then, as the pharmacist, releases,
    /// dispenses and claims it; stops at the first refusal.
    async fn prescription_journey(&self, client: &ClientSet, index: usize) -> Done {
        let op = Op::EpsPrescription;
        let pharmacy: OdsCode = "FY001".parse().expect("demo pharmacy code");
        let issue = gp_request(Operation::EpsCreate {
            prescription: NewPrescription {
                patient: self.numbers[index],
                nominated_pharmacy: None,
                items: vec![NewLineItem {
                    code: "317972000".parse().expect("a dm+d code"),
                    description: "Amoxicillin 250mg capsules".into(),
                    quantity: 21,
                    unit: "capsule".into(),
                    dosage: "One capsule three times a day".into(),
                }],
            },
        });
        let id = match client.call(issue).await {
            Ok(Ok(Reply::Prescription(issued))) => issued.id,
            other => return stopped(op, other, 1),
        };
        let steps = [
            EpsAction::Release {
                pharmacy: pharmacy.clone(),
            },
            EpsAction::Dispense {
                pharmacy: pharmacy.clone(),
                lines: vec![(0, 21)],
            },
            EpsAction::Claim { pharmacy },
        ];
        let mut requests = 1;
        for action in steps {
            requests += 1;
            let step = pharmacist_request(Operation::EpsUpdate { id, action });
            match client.call(step).await {
                Ok(Ok(_)) => {}
                failed => return stopped(op, failed, requests),
            }
        }
        Done {
            outcome: Outcome::Done,
            requests,
        }
    }

    /// Views patient `index`'s summary, then writes a changed one at the version read (the
    /// first version when there is none).
    async fn update_summary(&self, client: &ClientSet, index: usize, change: u64) -> Done {
        let op = Op::ScrUpdate;
        let nhs_number = self.numbers[index];
        let read = client
            .call(gp_request(Operation::ScrView {
                nhs_number,
                permission_to_view: true,
            }))
            .await;
        let expected_version = match read {
            Ok(Ok(Reply::Scr(record))) => record.version,
            Ok(Err(refusal)) if refusal.code == ErrorCode::ResourceNotFound => 0,
            other => return stopped(op, other, 1),
        };
        let response = client
            .call(gp_request(Operation::ScrUpdate {
                nhs_number,
                expected_version,
                content: summary(index, change),
            }))
            .await;
        Done {
            outcome: outcome(op, response),
            requests: 2,
        }
    }

    /// Reads patient `index`, then writes what `change` makes of it at the version read.
    async fn read_then_write(
        &self,
        op: Op,
        client: &ClientSet,
        index: usize,
        change: impl FnOnce(Patient) -> Operation,
    ) -> Done {
        let nhs_number = self.numbers[index];
        let read = client
            .call(gp_request(Operation::PdsRetrieve { nhs_number }))
            .await;
        let current = match read {
            Ok(Ok(Reply::Patient(patient))) => patient,
            other => return stopped(op, other, 1),
        };
        // The read returns what may be disclosed; a restricted patient's hidden fields stay
        // as they are on the server.
        let response = client.call(gp_request(change(current))).await;
        Done {
            outcome: outcome(op, response),
            requests: 2,
        }
    }
}

/// Why the population could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("loading {what} {index}: {reason}")]
pub struct LoadError {
    /// What was being loaded: `patient`, or an `e-RS publication` of services and slots.
    pub what: &'static str,
    /// Which one.
    pub index: usize,
    /// The refusal or the connection's failure.
    pub reason: String,
}

/// Loads the population and their summaries over `clients`, 512 requests in flight, counting
/// patients on `progress`, then publishes the bookable services and slots; returns the
/// requests sent. A patient or summary already there (from
/// an earlier run against the same server) counts as loaded.
pub async fn load_population(
    workload: &Arc<Workload>,
    clients: &Arc<ClientSet>,
    progress: &indicatif::ProgressBar,
) -> Result<u64, LoadError> {
    let next = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..512 {
        let (workload, client, next, sent, progress) = (
            Arc::clone(workload),
            Arc::clone(clients),
            Arc::clone(&next),
            Arc::clone(&sent),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= workload.numbers.len() {
                    return Ok(());
                }
                let failed = |reason: String| LoadError {
                    what: "patient",
                    index,
                    reason,
                };
                // Already there: the patient's number is in use; the move was made, so
                // Hillview's GP no longer has the relationship; the summary has a version.
                let loads = workload.load_requests(index);
                let loaded_before = [ErrorCode::InvalidValue, ErrorCode::AccessDenied];
                let requests = loads.into_iter().zip(loaded_before).chain(
                    workload
                        .summary_request(index)
                        .map(|summary| (summary, ErrorCode::ResourceVersionMismatch)),
                );
                for (request, loaded_before) in requests {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match client.call(request).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(refusal)) if refusal.code == loaded_before => {}
                        Ok(Err(refusal)) => return Err(failed(refusal.to_string())),
                        Err(error) => return Err(failed(error.to_string())),
                    }
                }
                progress.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|error| LoadError {
            what: "patient",
            index: 0,
            reason: format!("a loading task panicked: {error}"),
        })??;
    }
    // The bookable services and their slots (published again by a later run: more slots).
    let client = clients;
    for (index, request) in workload.ers_setup_requests().into_iter().enumerate() {
        sent.fetch_add(1, Ordering::Relaxed);
        let failed = |reason: String| LoadError {
            what: "e-RS publication",
            index,
            reason,
        };
        match client.call(request).await {
            Ok(Ok(_)) => {}
            Ok(Err(refusal)) => return Err(failed(refusal.to_string())),
            Err(error) => return Err(failed(error.to_string())),
        }
    }
    Ok(sent.load(Ordering::Relaxed))
}
