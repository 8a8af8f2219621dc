//! The golden data directory (redb's backward-compatibility tests are the model): a small data
//! directory written once, on 2026-12-03, by the code as it was before the log's payloads got a
//! schema of their own, and checked in (`tests/golden/data-v1/`). Every commit opens a copy,
//! verifies it (recovery and the audit chain), starts the real engine over it, and asks it the
//! same questions as when it was written: each answer must be the same, byte for byte
//! (`tests/golden/answers-v1.txt`). So a change that reorders an enum, adds a field or moves a
//! record kind cannot silently misread what is already on disk.
//!
//! The directory holds every record kind a shard writes: patients (one restricted, one
//! deceased, one created with an allocated number), audit events, a privacy alert, write
//! outcomes, turn metadata, Summary Care Record versions, prescriptions, an e-RS service, its
//! slots and a booked referral, a GP2GP transfer and its chunk, and a previous registration;
//! and an index checkpoint.
//!
//! It is written and queried through the shard's state machine with a clock the test sets
//! (not the wall clock), one shard, so that every answer, audit times included, is the same on
//! every run. `SPINE_WRITE_GOLDEN=1 cargo test -p spine-core --test golden_fixture -- --ignored`
//! writes it; it refuses to overwrite one (a new format gets a new fixture beside the old).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use common::copy_dir;

use spine_core::access::directory_file::{demo, demo_caller, demo_ids};
use spine_core::access::{Directory, Justification};
use spine_core::coordinator::{Coordinator, ShardLinks};
use spine_core::engine::{Engine, EngineConfig};
use spine_core::eps::{EpsAction, NewLineItem, NewPrescription, PrescriptionId};
use spine_core::ers::{
    NewReferral, NewSlot, Priority, Service, ServiceId, SlotQuery, SlotStart, Ubrn,
};
use spine_core::gp2gp::{Sha256Hash, TransferId};
use spine_core::pds::patient::{
    ContactPoint, ContactSystem, ContactUse, Death, DeathNotificationStatus, Period,
};
use spine_core::pds::synthetic::{Population, exact_trace, patient_at};
use spine_core::request::{Operation, Refusal, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput, ScrPermission};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::{self, ShardIndexes};
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState};
use spine_core::{NhsNumber, Patient};
use spine_storage::{Log, LogConfig};
use tokio::sync::oneshot;
use uuid::Uuid;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/data-v1");
const ANSWERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/answers-v1.txt");
/// The clock while the fixture was written: 2026-12-03T09:00:00Z, moving a minute a step.
const WRITTEN_MS: u64 = 1_764_752_400_000;
/// The clock while it is queried: an hour later.
const QUERIED_MS: u64 = WRITTEN_MS + 3_600_000;
/// Segments small enough to check in (the engine's default is far larger).
const SEGMENT_BYTES: u64 = 512 * 1024;

fn engine_config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.shards = 1;
    config.pin_threads = false;
    config.segment_size = SEGMENT_BYTES;
    config.expected_keys_per_shard = 1 << 10;
    // The fixture is every record as written.
    config.compaction = None;
    config
}

fn log_config(dir: &Path) -> LogConfig {
    let mut config = engine_config(dir).log_config(0);
    // Checkpoints only when the fixture is closed.
    config.checkpoint_interval_records = 0;
    config
}

/// One shard over its real log, driven in this thread: a request runs through the real
/// coordinators, whose inputs this queues and runs as turns at the clock's time.
struct OneShard {
    log: Log,
    state: RefCell<ShardState>,
    inbox: RefCell<VecDeque<(ShardInput, oneshot::Sender<ShardOutput>)>>,
    directory: Arc<Directory>,
    now_ms: std::cell::Cell<u64>,
}

impl ShardLinks for OneShard {
    fn shard_count(&self) -> usize {
        1
    }

    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn send(
        &self,
        shard: usize,
        input: ShardInput,
    ) -> Result<oneshot::Receiver<ShardOutput>, Refusal> {
        assert_eq!(shard, 0, "one shard");
        let (reply, answer) = oneshot::channel();
        self.inbox.borrow_mut().push_back((input, reply));
        Ok(answer)
    }
}

impl OneShard {
    fn open(dir: &Path, now_ms: u64) -> Self {
        let (log, report) = Log::open_with(log_config(dir), Arc::new(ShardIndexes)).unwrap();
        assert!(report.torn_tail.is_none(), "{report:?}");
        let directory = Arc::new(demo());
        let config = engine_config(dir);
        let shard_config = ShardConfig {
            outcome_slots: config.outcome_slots,
            ..ShardConfig::new(0, 1)
        };
        let state = ShardState::open(shard_config, Arc::clone(&directory), &log).unwrap();
        Self {
            log,
            state: RefCell::new(state),
            inbox: RefCell::default(),
            directory,
            now_ms: std::cell::Cell::new(now_ms),
        }
    }

    /// Runs every queued input as one turn; false if none was queued.
    fn run_turn(&self) -> bool {
        let queued: Vec<_> = self.inbox.borrow_mut().drain(..).collect();
        if queued.is_empty() {
            return false;
        }
        let (inputs, replies): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
        let mut state = self.state.borrow_mut();
        let turn = state.execute(&self.log, self.now_ms.get(), inputs);
        let records = turn.records.len();
        if records > 0 {
            let last = pollster::block_on(self.log.append_batch(turn.records)).unwrap();
            state.durable(turn.number, turn.first_index, records, last);
        }
        for (reply, output) in replies.into_iter().zip(turn.outputs) {
            let _ = reply.send(output);
        }
        true
    }

    /// Submits `request` and runs turns until it is answered; the clock then moves a minute.
    fn submit(&self, request: Request) -> Response {
        let coordinator = Coordinator::new(self);
        let mut future = std::pin::pin!(coordinator.submit(request));
        let mut context = Context::from_waker(Waker::noop());
        let response = loop {
            if let Poll::Ready(response) = future.as_mut().poll(&mut context) {
                break response;
            }
            assert!(self.run_turn(), "a request waits for nothing");
        };
        self.now_ms.set(self.now_ms.get() + 60_000);
        response
    }

    fn close(self) {
        drop(self.state);
        self.log.close().unwrap();
    }
}

/// The request named `name`, from `user`: its id is fixed by its name (FNV-1a), so a step
/// keeps its id however the steps around it change.
fn request(name: &str, user: Uuid, operation: Operation) -> Request {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    Request {
        id: Uuid::from_u128(0x5350_494e_4547_4f4c_0000_0000_0000_0000 | u128::from(hash)),
        caller: demo_caller(user),
        justification: Justification::None,
        operation,
    }
}

fn code(text: &str) -> spine_core::pds::values::OdsCode {
    text.parse().unwrap()
}

/// The patients the fixture loads: the third is restricted.
fn patients() -> Vec<Patient> {
    Population::new(20_261_203)
        .take(5)
        .enumerate()
        .map(|(index, mut patient)| {
            patient.general_practitioner = Some(code(demo_ids::RIVERSIDE));
            patient.restricted = index == 2;
            patient
        })
        .collect()
}

fn service() -> Service {
    Service {
        id: ServiceId(41_000),
        name: "Golden cardiology clinic".into(),
        provider: code("Y9H01"),
        specialty: "CARDIOLOGY".parse().unwrap(),
        clinic_type: "GENERAL".parse().unwrap(),
    }
}

fn slot_on(day: u8, minute: u16) -> NewSlot {
    NewSlot {
        start: SlotStart::new(format!("2027-01-{day:02}").parse().unwrap(), minute).unwrap(),
        duration_minutes: 20,
    }
}

/// The document the fixture's GP2GP transfer carries.
fn document() -> Vec<u8> {
    (0..1500u32).map(|byte| (byte * 7 % 251) as u8).collect()
}

/// The requests that write the fixture, in order, each with its name. Some need what an
/// earlier answer allocated: `known` holds those answers by name.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn writes(known: &BTreeMap<&'static str, Response>) -> Vec<(&'static str, Request)> {
    let patients = patients();
    let number = |index: usize| patients[index].nhs_number;
    let mut steps = Vec::new();
    let mut add = |name: &'static str, user: Uuid, operation: Operation| {
        steps.push((name, request(name, user, operation)));
    };
    for (index, patient) in patients.iter().enumerate() {
        let name = [
            "load 0",
            "load 1",
            "load 2 (restricted)",
            "load 3",
            "load 4",
        ][index];
        let patient = patient.clone();
        add(name, demo_ids::GP, Operation::PdsLoad { patient });
    }
    let mut created = patient_at(99, 0, number(0));
    created.general_practitioner = Some(code(demo_ids::RIVERSIDE));
    add(
        "create",
        demo_ids::GP,
        Operation::PdsCreate { patient: created },
    );
    let mut updated = patients[0].clone();
    updated.telecom = vec![ContactPoint {
        system: ContactSystem::Phone,
        value: "07700 900123".into(),
        contact_use: ContactUse::Mobile,
        period: Period::default(),
    }];
    add(
        "update 0",
        demo_ids::GP,
        Operation::PdsUpdate {
            patient: updated,
            expected_version: 1,
        },
    );
    add(
        "retrieve 1",
        demo_ids::GP,
        Operation::PdsRetrieve {
            nhs_number: number(1),
        },
    );
    add(
        "death of 4",
        demo_ids::GP,
        Operation::PdsDeathNotification {
            nhs_number: number(4),
            expected_version: 1,
            death: Death {
                date: "2026-11-30".parse().unwrap(),
                time_s: Some(3_600),
                notification: DeathNotificationStatus::Formal,
            },
        },
    );
    // Patient 3 moves to Hillview and back: Hillview is left their previous practice.
    let mut away = patients[3].clone();
    away.general_practitioner = Some(code(demo_ids::HILLVIEW));
    add(
        "move 3 away",
        demo_ids::GP,
        Operation::PdsUpdate {
            patient: away,
            expected_version: 1,
        },
    );
    let mut back = patients[3].clone();
    back.version = 2;
    add(
        "move 3 back",
        demo_ids::SECOND_GP,
        Operation::PdsUpdate {
            patient: back,
            expected_version: 2,
        },
    );
    let allergy = |text: &str| ScrEntryInput {
        code: Some(91_936_005),
        text: text.into(),
    };
    for (name, expected_version, text) in [
        ("summary 0 v1", 0, "Allergy to penicillin"),
        ("summary 0 v2", 1, "Allergy to penicillin (anaphylaxis)"),
    ] {
        let content = ScrContent {
            allergies: vec![allergy(text)],
            ..ScrContent::default()
        };
        add(
            name,
            demo_ids::GP,
            Operation::ScrUpdate {
                nhs_number: number(0),
                expected_version,
                content,
            },
        );
    }
    add(
        "summary 1 opted out",
        demo_ids::GP,
        Operation::ScrSetPermission {
            nhs_number: number(1),
            permission: ScrPermission::No,
        },
    );
    let mut emergency = request(
        "emergency retrieve 0",
        demo_ids::HOSPITAL_DOCTOR,
        Operation::PdsRetrieve {
            nhs_number: number(0),
        },
    );
    emergency.justification = Justification::Emergency {
        reason: "unconscious in A&E".into(),
    };
    steps.push(("emergency retrieve 0", emergency));
    // Emergency access to a summary raises a privacy alert.
    let mut emergency = request(
        "emergency summary view 0",
        demo_ids::HOSPITAL_DOCTOR,
        Operation::ScrView {
            nhs_number: number(0),
            permission_to_view: false,
        },
    );
    emergency.justification = Justification::Emergency {
        reason: "unconscious in A&E".into(),
    };
    steps.push(("emergency summary view 0", emergency));
    let mut add = |name: &'static str, user: Uuid, operation: Operation| {
        steps.push((name, request(name, user, operation)));
    };
    for (name, patient, nominated) in [
        ("prescribe 0 nominated", number(0), true),
        ("prescribe 1", number(1), false),
    ] {
        add(
            name,
            demo_ids::GP,
            Operation::EpsCreate {
                prescription: NewPrescription {
                    patient,
                    nominated_pharmacy: nominated.then(|| code("FY001")),
                    items: vec![NewLineItem {
                        code: "317972000".parse().unwrap(),
                        description: "Amoxicillin 250mg capsules".into(),
                        quantity: 21,
                        unit: "capsule".into(),
                        dosage: "One capsule three times a day".into(),
                    }],
                },
            },
        );
    }
    if let Some(Ok(Reply::Prescription(second))) = known.get("prescribe 1") {
        let id = second.id;
        let pharmacy = code("FY002");
        add(
            "release 1",
            demo_ids::SECOND_PHARMACIST,
            Operation::EpsUpdate {
                id,
                action: EpsAction::Release {
                    pharmacy: pharmacy.clone(),
                },
            },
        );
        add(
            "dispense 1 in part",
            demo_ids::SECOND_PHARMACIST,
            Operation::EpsUpdate {
                id,
                action: EpsAction::Dispense {
                    pharmacy,
                    lines: vec![(0, 7)],
                },
            },
        );
    }
    add(
        "publish service",
        demo_ids::APPOINTMENTS_MANAGER,
        Operation::ErsPublishService { service: service() },
    );
    add(
        "publish slots",
        demo_ids::APPOINTMENTS_MANAGER,
        Operation::ErsPublishSlots {
            service: service().id,
            slots: vec![slot_on(4, 510), slot_on(4, 540), slot_on(5, 600)],
        },
    );
    add(
        "refer 0",
        demo_ids::GP,
        Operation::ErsCreateReferral {
            referral: NewReferral {
                patient: number(0),
                specialty: "CARDIOLOGY".parse().unwrap(),
                priority: Priority::Urgent,
                shortlist: vec![service().id],
            },
        },
    );
    if let (Some(Ok(Reply::Referral(referral))), Some(Ok(Reply::Slots(slots)))) =
        (known.get("refer 0"), known.get("publish slots"))
    {
        add(
            "book 0",
            demo_ids::GP,
            Operation::ErsBook {
                ubrn: referral.ubrn(),
                slot: slots[1].id(),
                service: service().id,
            },
        );
    }
    add(
        "transfer 3 start",
        demo_ids::SECOND_GP,
        Operation::Gp2gpStart {
            patient: number(3),
            document_size: document().len() as u64,
            document_sha256: Sha256Hash::of(&document()),
        },
    );
    if let Some(transfer) = transfer_of(known) {
        add(
            "transfer 3 chunk",
            demo_ids::SECOND_GP,
            Operation::Gp2gpSendChunk {
                transfer,
                index: 0,
                bytes: document(),
            },
        );
    }
    steps
}

fn transfer_of(known: &BTreeMap<&'static str, Response>) -> Option<TransferId> {
    match known.get("transfer 3 start") {
        Some(Ok(Reply::Transfer(status))) => Some(status.transfer.id()),
        _ => None,
    }
}

fn prescription_of(known: &BTreeMap<&'static str, Response>, name: &str) -> PrescriptionId {
    match known.get(name) {
        Some(Ok(Reply::Prescription(prescription))) => prescription.id,
        other => panic!("{name}: {other:?}"),
    }
}

fn ubrn_of(known: &BTreeMap<&'static str, Response>) -> Ubrn {
    match known.get("refer 0") {
        Some(Ok(Reply::Referral(referral))) => referral.ubrn(),
        other => panic!("refer 0: {other:?}"),
    }
}

/// The questions asked of the fixture (reads, writes over it, refusals, and retries of its
/// writes, which must get their first answers from the outcomes stored in it).
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn queries(
    known: &BTreeMap<&'static str, Response>,
    writes: &[(&'static str, Request)],
) -> Vec<(&'static str, Request)> {
    let patients = patients();
    let number = |index: usize| patients[index].nhs_number;
    let retrieve = |index: usize| Operation::PdsRetrieve {
        nhs_number: number(index),
    };
    let transfer = transfer_of(known).expect("the transfer started");
    let mut asked = Vec::new();
    let mut ask = |name: &'static str, user: Uuid, operation: Operation| {
        asked.push((name, request(name, user, operation)));
    };
    ask(
        "trail of 0",
        demo_ids::PRIVACY_OFFICER,
        Operation::AuditTrail {
            nhs_number: number(0),
            limit: 100,
        },
    );
    ask(
        "alerts of the practice",
        demo_ids::PRIVACY_OFFICER,
        Operation::PrivacyAlerts {
            organisation: code("Y9H01"),
            limit: 10,
        },
    );
    ask("retrieve 0", demo_ids::GP, retrieve(0));
    ask("retrieve 2 (restricted)", demo_ids::GP, retrieve(2));
    ask("retrieve 4 (deceased)", demo_ids::GP, retrieve(4));
    ask("retrieve 3 (moved back)", demo_ids::GP, retrieve(3));
    ask(
        "retrieve an unknown number",
        demo_ids::GP,
        Operation::PdsRetrieve {
            nhs_number: "9999999999".parse::<NhsNumber>().unwrap(),
        },
    );
    ask(
        "search for 1",
        demo_ids::GP,
        Operation::PdsSearch {
            query: exact_trace(&patients[1]),
        },
    );
    ask(
        "stale update of 0",
        demo_ids::GP,
        Operation::PdsUpdate {
            patient: patients[0].clone(),
            expected_version: 1,
        },
    );
    ask(
        "summary of 0",
        demo_ids::GP,
        Operation::ScrView {
            nhs_number: number(0),
            permission_to_view: true,
        },
    );
    ask(
        "summary history of 0",
        demo_ids::GP,
        Operation::ScrHistory {
            nhs_number: number(0),
            permission_to_view: true,
            limit: 10,
        },
    );
    ask(
        "summary of 1 (opted out)",
        demo_ids::GP,
        Operation::ScrView {
            nhs_number: number(1),
            permission_to_view: true,
        },
    );
    ask(
        "claim 1",
        demo_ids::SECOND_PHARMACIST,
        Operation::EpsUpdate {
            id: prescription_of(known, "prescribe 1"),
            action: EpsAction::Claim {
                pharmacy: code("FY002"),
            },
        },
    );
    ask(
        "release nominated",
        demo_ids::PHARMACIST,
        Operation::EpsReleaseNominated { limit: 5 },
    );
    ask(
        "cancel 0 while held",
        demo_ids::GP,
        Operation::EpsUpdate {
            id: prescription_of(known, "prescribe 0 nominated"),
            action: EpsAction::Cancel {
                organisation: code(demo_ids::RIVERSIDE),
            },
        },
    );
    ask(
        "referral 0",
        demo_ids::GP,
        Operation::ErsRetrieveReferral {
            ubrn: ubrn_of(known),
        },
    );
    ask(
        "free slots",
        demo_ids::GP,
        Operation::ErsSearchSlots {
            query: SlotQuery {
                specialty: "CARDIOLOGY".parse().unwrap(),
                clinic_type: None,
                from: "2027-01-01".parse().unwrap(),
                to: "2027-01-31".parse().unwrap(),
                provider: None,
                limit: 10,
            },
        },
    );
    ask(
        "rename service",
        demo_ids::APPOINTMENTS_MANAGER,
        Operation::ErsPublishService {
            service: Service {
                name: "Golden cardiology clinic (renamed)".into(),
                ..service()
            },
        },
    );
    ask(
        "publish more slots",
        demo_ids::APPOINTMENTS_MANAGER,
        Operation::ErsPublishSlots {
            service: service().id,
            slots: vec![slot_on(6, 480)],
        },
    );
    ask(
        "transfer 3 status",
        demo_ids::GP,
        Operation::Gp2gpStatus { transfer },
    );
    ask(
        "transfer 3 download",
        demo_ids::GP,
        Operation::Gp2gpFetchChunk { transfer, index: 0 },
    );
    ask(
        "transfer 3 acknowledge",
        demo_ids::GP,
        Operation::Gp2gpAcknowledge {
            transfer,
            document_sha256: Sha256Hash::of(&document()),
        },
    );
    // Retries of the fixture's writes, with their ids.
    for (name, retried) in writes {
        let retry = match *name {
            "create" => "retry create",
            "update 0" => "retry update 0",
            "summary 0 v2" => "retry summary 0 v2",
            "prescribe 1" => "retry prescribe 1",
            "refer 0" => "retry refer 0",
            "transfer 3 start" => "retry transfer 3 start",
            _ => continue,
        };
        asked.push((retry, retried.clone()));
    }
    asked
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn encoded(response: &Response) -> String {
    hex(&postcard::to_allocvec(response).unwrap())
}

/// The answers file: `write:name<TAB>hex` for the fixture's writes, then `query:name<TAB>hex`
/// for the questions asked of it.
fn parse_answers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, hex) = line.split_once('\t').expect("name<TAB>hex");
            (name.to_string(), hex.to_string())
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}

/// What the fixture's writes were answered, decoded by today's code.
fn written_answers(answers: &[(String, String)]) -> BTreeMap<&'static str, Response> {
    let mut known = BTreeMap::new();
    // The names are the writes' own (`writes` gives each its `&'static str`), found in rounds
    // as the answers that later steps need become known.
    loop {
        let before = known.len();
        for (name, _) in writes(&known) {
            let Some((_, hex)) = answers
                .iter()
                .find(|(line, _)| line.strip_prefix("write:") == Some(name))
            else {
                continue;
            };
            let response: Response = postcard::from_bytes(&unhex(hex))
                .unwrap_or_else(|error| panic!("the answer to {name} no longer decodes: {error}"));
            known.insert(name, response);
        }
        if known.len() == before {
            return known;
        }
    }
}

/// Asks the fixture's questions of a copy; their names and answers.
fn ask_a_copy(known: &BTreeMap<&'static str, Response>) -> Vec<(&'static str, Response)> {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(Path::new(FIXTURE), copy.path());
    let shard = OneShard::open(copy.path(), QUERIED_MS);
    let writes = writes(known);
    let answers = queries(known, &writes)
        .into_iter()
        .map(|(name, request)| (name, shard.submit(request)))
        .collect();
    shard.close();
    answers
}

#[test]
fn the_golden_fixture_opens_verifies_and_answers_as_when_it_was_written() {
    let golden = parse_answers(&std::fs::read_to_string(ANSWERS).unwrap());
    let known = written_answers(&golden);
    assert!(
        known.len() >= 20,
        "the writes' answers decode: {}",
        known.len()
    );
    // Recovery and the audit chain, read-only, over the fixture itself.
    {
        let mut config = log_config(Path::new(FIXTURE));
        config.use_checkpoint = false;
        let (log, report) = Log::open_read_only(config, Arc::new(ShardIndexes)).unwrap();
        assert!(report.torn_tail.is_none(), "{report:?}");
        verify_chain(&log, None).expect("the fixture's audit chain verifies");
        let kinds: std::collections::BTreeSet<u8> = (1..=log.last_position().index)
            .map(|index| log.read(index, |view| view.kind()).unwrap().unwrap())
            .collect();
        assert_eq!(
            kinds,
            (record_layout::KIND_PATIENT..=record_layout::KIND_REGISTRATION).collect(),
            "the fixture holds every record kind"
        );
    }
    // The real engine starts over a copy (its start checks the audit since the checkpoint).
    {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(Path::new(FIXTURE), copy.path());
        let engine = Engine::start(engine_config(copy.path())).unwrap();
        let patient = patients()[0].nhs_number;
        let handle = engine.handle();
        let read = request(
            "the engine's retrieve",
            demo_ids::GP,
            Operation::PdsRetrieve {
                nhs_number: patient,
            },
        );
        match pollster::block_on(handle.submit(read)) {
            Ok(Reply::Patient(found)) => assert_eq!(found.version, 2),
            other => panic!("the engine over the fixture: {other:?}"),
        }
        drop(handle);
        engine.shutdown().unwrap();
    }
    let expected: BTreeMap<&str, &str> = golden
        .iter()
        .filter_map(|(name, hex)| Some((name.strip_prefix("query:")?, hex.as_str())))
        .collect();
    let mut checked = 0;
    for (name, answer) in ask_a_copy(&known) {
        let Some(golden_hex) = expected.get(name) else {
            panic!("no golden answer for {name}");
        };
        let now = encoded(&answer);
        if now != *golden_hex {
            let then: Result<Response, _> = postcard::from_bytes(&unhex(golden_hex));
            panic!("{name}: answered\n  {answer:?}\nwhen written it was\n  {then:?}");
        }
        checked += 1;
    }
    assert!(checked >= 25, "{checked} answers compared");
}

/// Writes the fixture and its answers; refuses to overwrite them. Run once, by hand.
#[test]
#[ignore = "writes the checked-in fixture: run by hand with SPINE_WRITE_GOLDEN=1"]
fn write_the_golden_fixture() {
    if std::env::var_os("SPINE_WRITE_GOLDEN").is_none() {
        return;
    }
    let fixture = PathBuf::from(FIXTURE);
    assert!(
        !fixture.exists() && !Path::new(ANSWERS).exists(),
        "the fixture exists: a new format gets a new fixture beside it"
    );
    let shard = OneShard::open(&fixture, WRITTEN_MS);
    let mut known = BTreeMap::new();
    let mut lines = String::from(
        "# Answers of the golden fixture (tests/golden_fixture.rs): write:name or query:name,\n\
         # a tab, and the postcard hex of the Response. Written once with the fixture; never\n\
         # edit.\n",
    );
    // In rounds: a step that needs an earlier answer appears once that answer is known.
    loop {
        let steps: Vec<_> = writes(&known)
            .into_iter()
            .filter(|(name, _)| !known.contains_key(name))
            .collect();
        if steps.is_empty() {
            break;
        }
        for (name, request) in steps {
            let answer = shard.submit(request);
            assert!(answer.is_ok(), "{name}: {answer:?}");
            let _ = writeln!(lines, "write:{name}\t{}", encoded(&answer));
            known.insert(name, answer);
        }
    }
    // Close with a checkpoint, so the fixture holds one.
    shard.log.checkpoint().unwrap();
    shard.close();
    for entry in std::fs::read_dir(fixture.join("shard-0")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".spare") || name == "LOCK" {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, answer) in ask_a_copy(&known) {
        let _ = writeln!(lines, "query:{name}\t{}", encoded(&answer));
    }
    std::fs::write(ANSWERS, lines).unwrap();
}
