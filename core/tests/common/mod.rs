//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineConfig, EngineHandle};
use spine_core::pds::synthetic::{Population, SplitMix64};
use spine_core::request::{Operation, Refusal, Reply, Request, Response};
use spine_core::{NhsNumber, Patient};
use spine_storage::format::SEGMENT_HEADER_SIZE;
use spine_storage::log::record;
use uuid::Uuid;

/// A small engine: two shards, unpinned, small segments, no compaction while it serves (tests
/// read superseded versions back; `compaction.rs` turns it on).
pub fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.shards = 2;
    config.pin_threads = false;
    config.segment_size = 1 << 20;
    config.expected_keys_per_shard = 1 << 10;
    config.compaction = None;
    config
}

pub fn start(dir: &Path) -> Engine {
    Engine::start(config(dir)).expect("engine starts")
}

pub fn request(user: Uuid, operation: Operation) -> Request {
    Request {
        id: Uuid::new_v4(),
        caller: demo_caller(user),
        justification: Justification::None,
        operation,
    }
}

pub fn submit(engine: &EngineHandle, request: Request) -> Response {
    pollster::block_on(engine.submit(request))
}

/// Submits as the GP and expects a patient back.
pub fn patient_reply(response: Response) -> Patient {
    match response {
        Ok(Reply::Patient(patient)) => patient,
        other => panic!("expected a patient, got {other:?}"),
    }
}

pub fn refusal(response: Response) -> Refusal {
    match response {
        Err(refusal) => refusal,
        Ok(reply) => panic!("expected a refusal, got {reply:?}"),
    }
}

/// `count` synthetic patients registered at the demo GP's practice, unrestricted.
pub fn population(seed: u64, count: usize) -> Vec<Patient> {
    Population::new(seed)
        .take(count)
        .map(|mut patient| {
            patient.general_practitioner = Some("Y90001".parse().expect("code"));
            patient
        })
        .collect()
}

/// Loads `patients` as the GP.
pub fn load(engine: &EngineHandle, patients: &[Patient]) {
    for patient in patients {
        let loaded = patient_reply(submit(
            engine,
            request(
                demo_ids::GP,
                Operation::PdsLoad {
                    patient: patient.clone(),
                },
            ),
        ));
        assert_eq!(loaded.nhs_number, patient.nhs_number);
    }
}

/// Registers `patient` (as the engine holds them, at `patient.version`) at practice `to`
/// instead, as `user` (a user of their current practice); the record as it now stands. The
/// practice they leave becomes their previous one, which may send their record by GP2GP.
pub fn move_practice(engine: &EngineHandle, user: Uuid, patient: &Patient, to: &str) -> Patient {
    let mut moved = patient.clone();
    moved.general_practitioner = Some(to.parse().expect("an ODS code"));
    patient_reply(submit(
        engine,
        request(
            user,
            Operation::PdsUpdate {
                patient: moved,
                expected_version: patient.version,
            },
        ),
    ))
}

pub fn retrieve(engine: &EngineHandle, user: Uuid, nhs_number: NhsNumber) -> Response {
    submit(engine, request(user, Operation::PdsRetrieve { nhs_number }))
}

pub fn random(seed: u64) -> SplitMix64 {
    SplitMix64::new(seed)
}

/// The audit events a privacy officer's query returns (a trail or an organisation's alerts).
pub fn privacy_officer_events(
    engine: &EngineHandle,
    operation: Operation,
) -> Vec<spine_core::audit::event::AuditEvent> {
    match submit(engine, request(demo_ids::PRIVACY_OFFICER, operation)) {
        Ok(Reply::AuditEvents(events)) => events,
        other => panic!("expected audit events, got {other:?}"),
    }
}

/// The shard's log directory and its segment files, oldest first.
pub fn segment_files(data_dir: &Path) -> Vec<PathBuf> {
    let log_dir = data_dir.join("shard-0");
    let mut files: Vec<PathBuf> = fs::read_dir(&log_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

/// Every record of one segment: (offset, size, kind, ends its group).
pub fn records_of(bytes: &[u8]) -> Vec<(usize, usize, u8, bool)> {
    let mut found = Vec::new();
    let mut offset = SEGMENT_HEADER_SIZE;
    while let Ok(header) = record::decode(&bytes[offset..], u32::MAX) {
        let ends = header.flags & spine_storage::format::RECORD_FLAG_GROUP_END != 0;
        found.push((offset, header.record_size(), header.kind, ends));
        offset += header.record_size();
    }
    found
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// One shard with no periodic checkpoint, so that opening it scans (and checks) every record.
pub fn one_shard(dir: &Path) -> EngineConfig {
    let mut config = config(dir);
    config.shards = 1;
    config.checkpoint_interval_records = 0;
    config
}

/// A prescription's usual item.
pub fn amoxicillin() -> spine_core::eps::NewLineItem {
    spine_core::eps::NewLineItem {
        code: "317972000".parse().expect("a dm+d code"),
        description: "Amoxicillin 250mg capsules".into(),
        quantity: 21,
        unit: "capsule".into(),
        dosage: "One capsule three times a day".into(),
    }
}

/// Removes shard 0's checkpoints, so that opening it scans every record.
pub fn remove_checkpoints(data_dir: &Path) {
    for entry in fs::read_dir(data_dir.join("shard-0")).expect("the shard's directory") {
        let path = entry.expect("a directory entry").path();
        if path.to_string_lossy().contains("checkpoint-") {
            fs::remove_file(path).expect("a checkpoint removed");
        }
    }
}
