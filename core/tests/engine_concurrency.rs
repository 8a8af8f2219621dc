//! Concurrent read-modify-write updates of the same patients from many threads: none is lost
//! and none is half applied.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::thread;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::request::{ErrorCode, Operation, Reply};

const THREADS: usize = 8;
const INCREMENTS: usize = 25;
const PATIENTS: usize = 3;

/// The counter an update writes twice, into two fields, so a half-applied update would show.
fn counter(patient: &spine_core::Patient) -> (u64, u64) {
    let telecom = patient.telecom[0]
        .value
        .trim_start_matches("count ")
        .parse()
        .unwrap();
    let line = patient.addresses[0].lines[0]
        .trim_start_matches("count ")
        .parse()
        .unwrap();
    (telecom, line)
}

#[test]
fn concurrent_updates_are_never_lost_or_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let handle = engine.handle();
    let mut patients = population(21, PATIENTS);
    for patient in &mut patients {
        patient.restricted = false;
        patient.telecom[0].value = "count 0".into();
        patient.addresses[0].lines[0] = "count 0".into();
    }
    load(&handle, &patients);

    let conflicts: usize = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|worker| {
                let handle = handle.clone();
                let patients = &patients;
                scope.spawn(move || {
                    let mut conflicts = 0;
                    for round in 0..INCREMENTS {
                        let nhs_number = patients[(worker + round) % PATIENTS].nhs_number;
                        loop {
                            let mut current =
                                patient_reply(retrieve(&handle, demo_ids::GP, nhs_number));
                            let (count, _) = counter(&current);
                            let expected_version = current.version;
                            current.telecom[0].value = format!("count {}", count + 1);
                            current.addresses[0].lines[0] = format!("count {}", count + 1);
                            let update = request(
                                demo_ids::GP,
                                Operation::PdsUpdate {
                                    patient: current,
                                    expected_version,
                                },
                            );
                            match submit(&handle, update) {
                                Ok(Reply::Patient(_)) => break,
                                Err(refusal)
                                    if refusal.code == ErrorCode::ResourceVersionMismatch =>
                                {
                                    conflicts += 1;
                                }
                                other => panic!("update failed: {other:?}"),
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });

    let mut total = 0;
    for patient in &patients {
        let last = patient_reply(retrieve(&handle, demo_ids::GP, patient.nhs_number));
        let (telecom, line) = counter(&last);
        assert_eq!(
            telecom, line,
            "both fields of every update were applied together"
        );
        assert_eq!(
            u64::from(last.version),
            telecom + 1,
            "one version per applied update, each on top of the one before"
        );
        total += telecom;
    }
    assert_eq!(total as usize, THREADS * INCREMENTS, "no update was lost");
    // Eight threads on three patients must have collided; the test is meaningless otherwise.
    assert!(conflicts > 0, "no version conflict happened");
}
