//! The shard state machine against a model, driven directly (no threads, no files): random
//! turns of loads, creates, retrieves, updates with right and wrong versions, death
//! notifications, searches and retries, with turns left in flight (the overlay) and crashes
//! that lose every turn not yet durable.
//!
//! Checked after every durable turn: each response is the model's; no response to anyone
//! carries a restricted patient's address, telecom or GP practice; a retry gets its first
//! outcome. At the end: the audit chain verifies and ends at the shard's head, and each
//! patient's trail has exactly one event per audited, acknowledged operation on them.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::{HashMap, VecDeque};

use std::sync::Arc;

use proptest::prelude::*;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo, demo_caller, demo_ids};
use spine_core::pds::search::{self, DateRange, SearchQuery};
use spine_core::pds::synthetic::{nhs_numbers, patient_at};
use spine_core::request::{ErrorCode, Operation, Reply, Request, Response};
use spine_core::shard::audit_queries::{patient_trail, verify_chain};
use spine_core::shard::store::MemoryStore;
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState, Turn};
use spine_core::storage::Position;
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

const PATIENTS: usize = 6;

#[derive(Clone, Debug)]
enum Op {
    Load(usize),
    Create(usize),
    Retrieve(usize),
    /// Update patient `.0` against its version plus `.1` (so -1 and +1 are stale), renaming
    /// them with `.2`.
    Update(usize, i8, u8),
    Death(usize, i8),
    Search(usize),
    /// Retry the `.0`th acknowledged write (modulo how many there are).
    Retry(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let patient = 0..PATIENTS;
    prop_oneof![
        2 => patient.clone().prop_map(Op::Load),
        1 => patient.clone().prop_map(Op::Create),
        3 => patient.clone().prop_map(Op::Retrieve),
        4 => (patient.clone(), -1i8..=1, any::<u8>()).prop_map(|(p, v, n)| Op::Update(p, v, n)),
        1 => (patient.clone(), -1i8..=0).prop_map(|(p, v)| Op::Death(p, v)),
        2 => patient.prop_map(Op::Search),
        1 => any::<usize>().prop_map(Op::Retry),
    ]
}

/// A step of the run: a turn of operations, making the oldest turn in flight durable, or a
/// crash that loses every turn in flight.
#[derive(Clone, Debug)]
enum Step {
    Turn(Vec<Op>),
    Durable,
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => prop::collection::vec(op(), 1..5).prop_map(Step::Turn),
        3 => Just(Step::Durable),
        1 => Just(Step::Crash),
    ]
}

/// The base record of patient `i`: registered at the demo GP's practice, every third one
/// restricted.
fn base(numbers: &[NhsNumber], i: usize) -> Patient {
    let mut patient = patient_at(11, i as u64, numbers[i]);
    patient.general_practitioner = Some("Y90001".parse().unwrap());
    patient.restricted = i.is_multiple_of(3);
    patient
}

fn request(id: u128, operation: Operation) -> Request {
    Request {
        id: Uuid::from_u128(id),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    }
}

/// What the model knows.
#[derive(Clone, Default)]
struct Model {
    /// Patients by NHS number, as the shard sees them (durable plus in flight).
    patients: HashMap<NhsNumber, Patient>,
    /// Audited operations per patient.
    audited: HashMap<NhsNumber, usize>,
}

/// An input with what its output must be (checked when its turn is durable).
enum Expect {
    Response(Response),
    /// A create: a patient with a new number and these demographics.
    Created(Patient),
    /// Search candidates: exactly these numbers.
    Candidates(Vec<NhsNumber>),
    /// The first outcome of a retried write.
    SameAs(Response),
}

struct InFlight {
    turn: Turn,
    /// Per input: its expected output, and the request if it is a first write (acknowledged,
    /// and so retryable, once the turn is durable).
    expects: Vec<(Expect, Option<Request>)>,
    /// The model once this turn is durable.
    model_after: Model,
}

struct Harness {
    store: MemoryStore,
    shard: ShardState,
    numbers: Vec<NhsNumber>,
    in_flight: VecDeque<InFlight>,
    /// The model as of the last durable turn.
    durable: Model,
    /// The model the next turn starts from.
    current: Model,
    /// Acknowledged writes and their responses, for retries.
    acknowledged: Vec<(Request, Response)>,
    next_id: u128,
}

fn open(store: &MemoryStore) -> ShardState {
    let mut config = ShardConfig::new(0, 1);
    config.outcome_slots = 1_000;
    ShardState::open(config, Arc::new(demo()), store).unwrap()
}

/// The version a client sends: the current one (version 1 if there is none yet) plus
/// `offset`, so that -1 and +1 are stale.
fn expected_version(current: Option<&Patient>, offset: i8) -> u32 {
    let version = current.map_or(1, |patient| patient.version);
    (i64::from(version) + i64::from(offset)).max(0) as u32
}

/// The refusal of a change made against `expected_version` of a record now at another.
fn stale(current: &Patient, expected_version: u32) -> Response {
    Err(spine_core::request::Refusal::new(
        ErrorCode::ResourceVersionMismatch,
        format!(
            "the record is at version {}, not {expected_version}",
            current.version
        ),
    ))
}

/// Panics if a response discloses a restricted patient's location fields.
fn check_disclosure(response: &Response, model: &Model) {
    let patients: Vec<&Patient> = match response {
        Ok(Reply::Patient(patient)) => vec![patient],
        Ok(Reply::Matches(found)) => found.iter().map(|found| &found.patient).collect(),
        _ => Vec::new(),
    };
    for patient in patients {
        let restricted = patient.restricted
            || model
                .patients
                .get(&patient.nhs_number)
                .is_some_and(|known| known.restricted);
        if restricted {
            assert!(
                patient.addresses.is_empty()
                    && patient.telecom.is_empty()
                    && patient.general_practitioner.is_none(),
                "restricted patient {} disclosed with location fields",
                patient.nhs_number
            );
        }
    }
}

impl Harness {
    fn new() -> Self {
        let store = MemoryStore::new();
        let shard = open(&store);
        Self {
            store,
            shard,
            numbers: nhs_numbers().take(PATIENTS).collect(),
            in_flight: VecDeque::new(),
            durable: Model::default(),
            current: Model::default(),
            acknowledged: Vec::new(),
            next_id: 1,
        }
    }

    fn id(&mut self) -> u128 {
        self.next_id += 1;
        self.next_id
    }

    /// The input for `op` and what it must produce, updating the model.
    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    fn plan(&mut self, op: &Op, writes: &mut Vec<Request>) -> (ShardInput, Expect) {
        let numbers = self.numbers.clone();
        let id = self.id();
        let model = &mut self.current;
        let not_found = |nhs: NhsNumber| {
            Err(spine_core::request::Refusal::new(
                ErrorCode::ResourceNotFound,
                format!("no patient has NHS number {nhs}"),
            ))
        };
        match *op {
            Op::Load(i) => {
                let patient = base(&numbers, i);
                let nhs = patient.nhs_number;
                let request = request(
                    id,
                    Operation::PdsLoad {
                        patient: patient.clone(),
                    },
                );
                *model.audited.entry(nhs).or_default() += 1;
                let expect = match model.patients.entry(nhs) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        Expect::Response(Err(spine_core::request::Refusal::new(
                            ErrorCode::InvalidValue,
                            format!("NHS number {nhs} is already in use"),
                        )))
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(patient.clone());
                        Expect::Response(Ok(Reply::Patient(patient.into_disclosable())))
                    }
                };
                writes.push(request.clone());
                (ShardInput::Execute(request), expect)
            }
            Op::Create(i) => {
                let mut patient = base(&numbers, i);
                patient.names[0].family = format!("Created{i}");
                let request = request(
                    id,
                    Operation::PdsCreate {
                        patient: patient.clone(),
                    },
                );
                writes.push(request.clone());
                (
                    ShardInput::Create {
                        request,
                        duplicates: 0,
                    },
                    Expect::Created(patient),
                )
            }
            Op::Retrieve(i) => {
                let nhs = numbers[i];
                *model.audited.entry(nhs).or_default() += 1;
                let expect = match model.patients.get(&nhs) {
                    Some(patient) => Ok(Reply::Patient(patient.clone().into_disclosable())),
                    None => not_found(nhs),
                };
                let request = request(id, Operation::PdsRetrieve { nhs_number: nhs });
                (ShardInput::Execute(request), Expect::Response(expect))
            }
            Op::Update(i, offset, name) => {
                let nhs = numbers[i];
                *model.audited.entry(nhs).or_default() += 1;
                let current = model.patients.get(&nhs).cloned();
                let expected_version = expected_version(current.as_ref(), offset);
                // The client's copy: what it was shown, renamed.
                let mut change = current
                    .clone()
                    .unwrap_or_else(|| base(&numbers, i))
                    .into_disclosable();
                change.names[0].given = vec![format!("Given{name}")];
                let expect = match current {
                    None => not_found(nhs),
                    Some(current) if current.version != expected_version => {
                        stale(&current, expected_version)
                    }
                    Some(current) => {
                        let mut next = change.clone();
                        next.version = current.version + 1;
                        if current.restricted {
                            next.addresses = current.addresses.clone();
                            next.telecom = current.telecom.clone();
                            next.general_practitioner = current.general_practitioner.clone();
                        }
                        model.patients.insert(nhs, next.clone());
                        Ok(Reply::Patient(next.into_disclosable()))
                    }
                };
                let request = request(
                    id,
                    Operation::PdsUpdate {
                        patient: change,
                        expected_version,
                    },
                );
                writes.push(request.clone());
                (ShardInput::Execute(request), Expect::Response(expect))
            }
            Op::Death(i, offset) => {
                let nhs = numbers[i];
                *model.audited.entry(nhs).or_default() += 1;
                let death = spine_core::pds::patient::Death {
                    date: "2026-01-02".parse().unwrap(),
                    time_s: None,
                    notification: spine_core::pds::patient::DeathNotificationStatus::Formal,
                };
                let current = model.patients.get(&nhs).cloned();
                let expected_version = expected_version(current.as_ref(), offset);
                let expect = match current {
                    None => not_found(nhs),
                    Some(current) if current.version != expected_version => {
                        stale(&current, expected_version)
                    }
                    Some(current) if current.deceased.is_some() => {
                        Err(spine_core::request::Refusal::new(
                            ErrorCode::ForbiddenUpdate,
                            "a death is already recorded",
                        ))
                    }
                    Some(mut current) => {
                        current.version += 1;
                        current.deceased = Some(death);
                        model.patients.insert(nhs, current.clone());
                        Ok(Reply::Patient(current.into_disclosable()))
                    }
                };
                let request = request(
                    id,
                    Operation::PdsDeathNotification {
                        nhs_number: nhs,
                        expected_version,
                        death,
                    },
                );
                writes.push(request.clone());
                (ShardInput::Execute(request), Expect::Response(expect))
            }
            Op::Search(i) => {
                let target = base(&numbers, i);
                let mut query = SearchQuery::new();
                query.family = Some(target.names[0].family.as_str().into());
                query.birth_date = target.birth_date.map(DateRange::on);
                query.history = true;
                // Candidates are found through the durable indexes; the model's durable patients
                // are exactly those, scored against what the shard sees now.
                let mut expected: Vec<NhsNumber> = self
                    .durable
                    .patients
                    .keys()
                    .filter(|nhs| {
                        model
                            .patients
                            .get(nhs)
                            .is_some_and(|patient| search::score(&query, patient).is_some())
                            && self.durable.patients.get(nhs).is_some_and(|patient| {
                                search::index_keys(patient).iter().any(|key| {
                                    search::index_ranges(&query).iter().any(|range| {
                                        range.from.as_slice() <= key.as_slice()
                                            && key.as_slice() < range.to.as_slice()
                                    })
                                })
                            })
                    })
                    .copied()
                    .collect();
                expected.sort();
                (
                    ShardInput::SearchLocal {
                        query: Arc::new(query),
                        limit: 50,
                    },
                    Expect::Candidates(expected),
                )
            }
            Op::Retry(j) => {
                let Some((request, response)) = (!self.acknowledged.is_empty())
                    .then(|| self.acknowledged[j % self.acknowledged.len()].clone())
                else {
                    return self.plan(&Op::Retrieve(0), writes);
                };
                let input = match &request.operation {
                    Operation::PdsCreate { .. } => ShardInput::Create {
                        request,
                        duplicates: 0,
                    },
                    _ => ShardInput::Execute(request),
                };
                (input, Expect::SameAs(response))
            }
        }
    }

    fn turn(&mut self, ops: &[Op]) {
        let mut inputs = Vec::new();
        let mut expects = Vec::new();
        for op in ops {
            let mut writes = Vec::new();
            let (input, expect) = self.plan(op, &mut writes);
            inputs.push(input);
            expects.push((expect, writes.pop()));
        }
        let turn = self.shard.execute(&self.store, 1_000, inputs);
        // Creates allocate numbers the model learns from the outputs.
        for (output, (expect, _)) in turn.outputs.iter().zip(&expects) {
            if let (Expect::Created(_), ShardOutput::Response(Ok(Reply::Patient(created)))) =
                (expect, output)
            {
                let nhs = created.nhs_number;
                *self.current.audited.entry(nhs).or_default() += 1;
                self.current.patients.insert(nhs, created.clone());
            }
        }
        self.in_flight.push_back(InFlight {
            turn,
            expects,
            model_after: self.current.clone(),
        });
    }

    fn make_durable(&mut self) {
        let Some(flight) = self.in_flight.pop_front() else {
            return;
        };
        let InFlight {
            turn,
            expects,
            model_after,
        } = flight;
        let records = turn.records.len();
        self.store.apply(turn.records);
        if records > 0 {
            let last = Position {
                term: 1,
                index: turn.first_index + records as u64 - 1,
            };
            self.shard
                .durable(turn.number, turn.first_index, records, last);
        }
        for (output, (expect, write)) in turn.outputs.into_iter().zip(expects) {
            let response = match (output, expect) {
                (ShardOutput::Response(response), Expect::Response(expected)) => {
                    check_disclosure(&response, &model_after);
                    assert_eq!(response, expected);
                    response
                }
                (ShardOutput::Response(response), Expect::SameAs(first)) => {
                    assert_eq!(response, first, "a retry gets the first outcome");
                    continue;
                }
                (ShardOutput::Response(response), Expect::Created(wanted)) => {
                    let Ok(Reply::Patient(created)) = &response else {
                        panic!("create failed: {response:?}");
                    };
                    assert_eq!(created.names, wanted.clone().into_disclosable().names);
                    assert_eq!(created.version, 1);
                    check_disclosure(&response, &model_after);
                    response
                }
                (ShardOutput::Candidates(found), Expect::Candidates(expected)) => {
                    let mut found: Vec<NhsNumber> =
                        found.unwrap().into_iter().map(|(nhs, _)| nhs).collect();
                    found.sort();
                    assert_eq!(found, expected, "search candidates");
                    continue;
                }
                (output, _) => panic!("unexpected output {output:?}"),
            };
            // A write is acknowledged now: a retry of it must get this response.
            if let Some(request) = write {
                self.acknowledged.push((request, response));
            }
        }
        self.durable = model_after;
    }

    fn crash(&mut self) {
        self.in_flight.clear();
        self.current = self.durable.clone();
        self.shard = open(&self.store);
    }

    fn finish(&mut self) {
        while !self.in_flight.is_empty() {
            self.make_durable();
        }
        let head = verify_chain(&self.store, Some(self.shard.chain_head())).unwrap();
        assert_eq!(head, self.shard.chain_head());
        for (nhs, count) in &self.durable.audited {
            let trail = patient_trail(&self.store, *nhs, 10_000).unwrap();
            assert_eq!(trail.len(), *count, "audit events of {nhs}");
            assert!(trail.iter().all(|event| event.patient == Some(*nhs)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_shard_agrees_with_the_model(steps in prop::collection::vec(step(), 1..40)) {
        let mut harness = Harness::new();
        for step in &steps {
            match step {
                Step::Turn(ops) => {
                    harness.turn(ops);
                    // At most three turns in flight, as the engine allows four.
                    while harness.in_flight.len() > 3 {
                        harness.make_durable();
                    }
                }
                Step::Durable => harness.make_durable(),
                Step::Crash => harness.crash(),
            }
        }
        harness.finish();
    }
}
