//! A turn is atomic on disk. Each turn that writes is one append group of its shard's log,
//! ending with the turn's metadata record; a log cut at any record boundary (and inside any
//! record) of the last turns reopens with whole turns only: the engine starts, its last record
//! is a turn's metadata record, and the audit chain verifies.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;
use std::thread;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::Engine;
use spine_core::eps::NewPrescription;
use spine_core::request::{Operation, Reply};
use spine_core::shard::record_layout::KIND_META;

const WORKERS: usize = 4;
const ROUNDS: usize = 8;
/// Records at the end of the log cut at: the last several turns.
const CUT_RECORDS: usize = 40;

/// Runs a mixed workload from several threads at once, so turns gather several inputs.
fn workload(dir: &Path) {
    let engine = Engine::start(one_shard(dir)).unwrap();
    let handle = engine.handle();
    let patients = population(7, 12);
    load(&handle, &patients);
    thread::scope(|scope| {
        for worker in 0..WORKERS {
            let handle = handle.clone();
            let patients = &patients;
            scope.spawn(move || {
                for round in 0..ROUNDS {
                    let patient = &patients[(worker * ROUNDS + round) % patients.len()];
                    let mut current =
                        patient_reply(retrieve(&handle, demo_ids::GP, patient.nhs_number));
                    current.telecom[0].value = format!("worker {worker} round {round}");
                    let expected_version = current.version;
                    // A conflict with another worker is an answer too.
                    let _ = submit(
                        &handle,
                        request(
                            demo_ids::GP,
                            Operation::PdsUpdate {
                                patient: current,
                                expected_version,
                            },
                        ),
                    );
                    let issued = submit(
                        &handle,
                        request(
                            demo_ids::GP,
                            Operation::EpsCreate {
                                prescription: NewPrescription {
                                    patient: patient.nhs_number,
                                    nominated_pharmacy: None,
                                    items: vec![amoxicillin()],
                                },
                            },
                        ),
                    );
                    assert!(matches!(issued, Ok(Reply::Prescription(_))), "{issued:?}");
                }
            });
        }
    });
    engine.shutdown().unwrap();
}

#[test]
fn every_turn_is_one_group_and_a_cut_log_keeps_whole_turns() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    workload(&original);
    // Checkpoints would let open skip the scan; the cut must be scanned.
    remove_checkpoints(&original);
    let files = segment_files(&original);
    let last_segment = files.last().unwrap().clone();
    let bytes = fs::read(&last_segment).unwrap();
    let records = records_of(&bytes);
    // Each group ends with the turn's metadata record, and holds no other.
    let mut metas_in_group = 0;
    let mut groups = 0;
    for &(_, _, kind, ends) in &records {
        metas_in_group += usize::from(kind == KIND_META);
        if ends {
            assert_eq!(
                kind, KIND_META,
                "a turn's group ends with its metadata record"
            );
            assert_eq!(metas_in_group, 1, "one turn per group");
            metas_in_group = 0;
            groups += 1;
        }
    }
    assert!(records.last().unwrap().3, "the log ends with a whole turn");
    let multi_record_groups = records.len() - groups;
    assert!(
        multi_record_groups > 0 && groups > 10,
        "turns of several records were written"
    );

    let first_cut = records.len().saturating_sub(CUT_RECORDS);
    for (position, &(offset, size, _, _)) in records.iter().enumerate().skip(first_cut) {
        for into in [0, size / 2] {
            let copy = dir.path().join(format!("cut-{position}-{into}"));
            copy_dir(&original, &copy);
            let mut cut = bytes.clone();
            cut[offset + into..].fill(0);
            fs::write(
                copy.join("shard-0").join(last_segment.file_name().unwrap()),
                cut,
            )
            .unwrap();
            let engine = Engine::start(one_shard(&copy)).unwrap();
            let handle = engine.handle();
            for chain in handle.verify_audit() {
                chain.unwrap();
            }
            drop(handle);
            engine.shutdown().unwrap();
            let reopened = records_of(&fs::read(segment_files(&copy).last().unwrap()).unwrap());
            let &(_, _, kind, ends) = reopened.last().unwrap();
            assert!(
                kind == KIND_META && ends,
                "cut at record {position} + {into}: the log ends with a whole turn"
            );
            let whole_turns_before = records[..position].iter().filter(|r| r.3).count();
            let turns_after = reopened.iter().filter(|r| r.3).count();
            // The engine may write a turn of its own on start (repairs); never fewer turns.
            assert!(
                turns_after >= whole_turns_before,
                "cut at record {position} + {into}: {turns_after} turns < {whole_turns_before}"
            );
            fs::remove_dir_all(&copy).unwrap();
        }
    }
}
