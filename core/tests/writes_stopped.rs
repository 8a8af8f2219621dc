//! A shard whose log fails (a full disk here) answers every write, and every read that must be
//! audited, with `WRITES_STOPPED`: a code that says retrying will not help until an operator
//! acts, unlike `SERVICE_UNAVAILABLE`. The engine's stats say which shard stopped.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::Engine;
use spine_core::request::{ErrorCode, Operation};
use spine_storage::FaultInjection;

/// Linux's "No space left on device".
const ENOSPC: i32 = 28;

#[test]
fn a_full_disk_stops_writes_with_a_code_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.shards = 1;
    // Enough batches for the start-up and two loads, then ENOSPC.
    config.fault_injection = Some(FaultInjection {
        fail_after_batches: 3,
        os_error: ENOSPC,
        write_reaches_disk: false,
    });
    let engine = Engine::start(config).unwrap();
    let handle = engine.handle();
    let patients = population(3, 8);
    let mut stopped = 0;
    for patient in &patients {
        let loaded = submit(
            &handle,
            request(
                demo_ids::GP,
                Operation::PdsLoad {
                    patient: patient.clone(),
                },
            ),
        );
        if let Err(refusal) = loaded {
            assert_eq!(refusal.code, ErrorCode::WritesStopped, "{refusal}");
            assert!(
                refusal.message.contains("No space left on device"),
                "{refusal}"
            );
            stopped += 1;
        }
    }
    assert!(stopped > 0, "the disk filled up");
    assert!(handle.stats()[0].writes_stopped);
    // A read is audited, so it is refused the same way, and so is a retry of a write.
    let read = refusal(retrieve(&handle, demo_ids::GP, patients[0].nhs_number));
    assert_eq!(read.code, ErrorCode::WritesStopped);
    assert_eq!(ErrorCode::WritesStopped.as_str(), "WRITES_STOPPED");
}
