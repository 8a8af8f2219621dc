//! Operations through one shard's state machine, no engine, log or clock around it, for
//! counting their instructions under valgrind, which the machine's noise does not touch:
//!
//! ```sh
//! cargo build --release -p spine-bench --example shard_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/shard_instructions pds_retrieve 2000
//! ```
//!
//! Subtract a run of `none 0` (the set-up alone) and divide by the count: instructions an
//! operation. Cases: `pds_retrieve`, `pds_update`, `scr_view`, `scr_update`, `eps_create`.
//! The set-up loads 200 synthetic patients registered at the demo practice, each with a
//! five-entry summary; operations run as the demo GP in turns of 50 over a `MemoryStore`.
//! Valgrind hides the CPU's SHA extensions, so the audit chain's hashing is a larger share of
//! these counts than of the real CPU's work.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo, demo_caller, demo_ids};
use spine_core::eps::{NewLineItem, NewPrescription};
use spine_core::pds::synthetic::Population;
use spine_core::request::{Operation, Request};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::shard::store::MemoryStore;
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState};
use spine_core::storage::Position;
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

const PATIENTS: usize = 200;
const TURN_INPUTS: usize = 50;

/// The shard, its store and the next request id.
struct Bench {
    shard: ShardState,
    store: MemoryStore,
    next_id: u128,
}

impl Bench {
    fn request(&mut self, operation: Operation) -> Request {
        self.next_id += 1;
        Request {
            id: Uuid::from_u128(self.next_id),
            caller: demo_caller(demo_ids::GP),
            justification: Justification::None,
            operation,
        }
    }

    /// One turn of `operations`, its records made durable at once.
    fn turn(&mut self, operations: Vec<Operation>) -> Result<()> {
        let inputs = operations
            .into_iter()
            .map(|operation| ShardInput::Execute(self.request(operation)))
            .collect();
        let turn = self.shard.execute(&self.store, 1_000, inputs);
        for output in &turn.outputs {
            if let ShardOutput::Response(Err(refusal)) = output {
                bail!("refused: {refusal:?}");
            }
        }
        let records = turn.records.len();
        if records > 0 {
            let (number, first) = (turn.number, turn.first_index);
            self.store.apply(turn.records);
            let last = Position {
                term: 1,
                index: first + records as u64 - 1,
            };
            self.shard.durable(number, first, records, last);
        }
        Ok(())
    }
}

fn entry(text: &str) -> ScrEntryInput {
    ScrEntryInput {
        code: Some(91_936_005),
        text: text.into(),
    }
}

fn summary() -> ScrContent {
    ScrContent {
        allergies: vec![entry("Penicillin: rash"), entry("Latex")],
        acute_medications: vec![entry("Amoxicillin 500mg capsules, three times a day")],
        repeat_medications: vec![
            entry("Ramipril 5mg capsules, once a day"),
            entry("Atorvastatin 20mg tablets"),
        ],
        ..ScrContent::default()
    }
}

fn prescription(patient: NhsNumber) -> Result<NewPrescription> {
    Ok(NewPrescription {
        patient,
        nominated_pharmacy: Some("FY001".parse().context("a demo pharmacy")?),
        items: vec![NewLineItem {
            code: "39732311000001104".parse().context("a dm+d code")?,
            description: "Amoxicillin 250mg capsules".into(),
            quantity: 21,
            unit: "capsule".into(),
            dosage: "One capsule three times a day".into(),
        }],
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, case, count] = args.as_slice() else {
        bail!("usage: shard_instructions CASE COUNT");
    };
    let count: usize = count.parse().context("COUNT")?;
    let (mut bench, patients) = set_up()?;
    // Each patient's record and summary versions, for the updates' expected versions.
    let mut versions = vec![(1u32, 1u32); PATIENTS];
    let mut done = 0;
    while done < count {
        let mut operations = Vec::with_capacity(TURN_INPUTS);
        for which in (done..count.min(done + TURN_INPUTS)).map(|n| n % PATIENTS) {
            let serial = done + operations.len();
            operations.push(operation(
                case,
                &patients[which],
                &mut versions[which],
                serial,
            )?);
        }
        ensure!(!operations.is_empty(), "a turn with no operation");
        done += operations.len();
        bench.turn(operations)?;
    }
    Ok(())
}

/// The shard with the patients loaded, each with a summary.
fn set_up() -> Result<(Bench, Vec<Patient>)> {
    let mut config = ShardConfig::new(0, 1);
    config.outcome_slots = 1_000;
    let store = MemoryStore::default();
    let shard = ShardState::open(config, Arc::new(demo()), &store).context("opening the shard")?;
    let mut bench = Bench {
        shard,
        store,
        next_id: 0,
    };
    let practice: spine_core::pds::values::OdsCode =
        demo_ids::RIVERSIDE.parse().context("the demo practice")?;
    let patients: Vec<Patient> = Population::new(3)
        .take(PATIENTS)
        .map(|mut patient| {
            patient.general_practitioner = Some(practice.clone());
            patient.restricted = false;
            patient
        })
        .collect();
    for chunk in patients.chunks(TURN_INPUTS) {
        let loads = chunk
            .iter()
            .map(|patient| Operation::PdsLoad {
                patient: patient.clone(),
            })
            .collect();
        bench.turn(loads)?;
    }
    for chunk in patients.chunks(TURN_INPUTS) {
        let summaries = chunk
            .iter()
            .map(|patient| Operation::ScrUpdate {
                nhs_number: patient.nhs_number,
                expected_version: 0,
                content: summary(),
            })
            .collect();
        bench.turn(summaries)?;
    }
    Ok((bench, patients))
}

/// Operation number `serial` of `case` on `patient`, whose record and summary versions are
/// `versions`.
fn operation(
    case: &str,
    patient: &Patient,
    (patient_version, summary_version): &mut (u32, u32),
    serial: usize,
) -> Result<Operation> {
    let nhs_number = patient.nhs_number;
    Ok(match case {
        "pds_retrieve" => Operation::PdsRetrieve { nhs_number },
        "pds_update" => {
            let mut patient = patient.clone();
            patient.version = *patient_version;
            let telecom = patient.telecom.first_mut().context("a telecom entry")?;
            telecom.value = format!("07700 9{:05}", serial % 100_000);
            *patient_version += 1;
            Operation::PdsUpdate {
                patient,
                expected_version: *patient_version - 1,
            }
        }
        "scr_view" => Operation::ScrView {
            nhs_number,
            permission_to_view: true,
        },
        "scr_update" => {
            *summary_version += 1;
            Operation::ScrUpdate {
                nhs_number,
                expected_version: *summary_version - 1,
                content: summary(),
            }
        }
        "eps_create" => Operation::EpsCreate {
            prescription: prescription(nhs_number)?,
        },
        other => bail!("unknown case {other}"),
    })
}
