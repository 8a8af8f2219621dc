//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::path::Path;

use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineConfig, EngineHandle};
use spine_core::pds::synthetic::{Population, SplitMix64};
use spine_core::request::{Operation, Refusal, Reply, Request, Response};
use spine_core::{NhsNumber, Patient};
use uuid::Uuid;

/// A small engine: two shards, unpinned, small segments.
pub fn config(dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.shards = 2;
    config.pin_threads = false;
    config.segment_size = 1 << 20;
    config.expected_keys_per_shard = 1 << 10;
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
