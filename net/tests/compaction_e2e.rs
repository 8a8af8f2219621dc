//! `spine compact` through the real binary, killed with SIGKILL at many moments of its work:
//! after each kill `spine verify` passes the directory as it was left (old segments, new ones,
//! or both, never half of one), a rerun finishes the compaction, and the core then serves
//! every patient at its latest version.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spine_core::Patient;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineConfig, EngineHandle};
use spine_core::pds::synthetic::Population;
use spine_core::request::{Operation, Reply, Request};
use spine_net::pki::DEMO_CLIENT;
use uuid::Uuid;

use common::{
    Spine, connect, identity, killed_after, path, patient, request, runtime, spine, text,
};

/// As the demo GP, the engine's answer, which must be a patient.
fn submit(
    runtime: &tokio::runtime::Runtime,
    handle: &EngineHandle,
    operation: Operation,
) -> Patient {
    let request = Request {
        id: Uuid::new_v4(),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    };
    match runtime.block_on(handle.submit(request)) {
        Ok(Reply::Patient(patient)) => patient,
        other => panic!("expected a patient, got {other:?}"),
    }
}

/// A stopped two-shard data directory of 1 MiB segments (`spine serve` writes 64 MiB ones)
/// holding `count` patients, each updated twice; their latest versions.
fn superseded_versions(data: &Path, count: usize) -> Vec<Patient> {
    let mut config = EngineConfig::new(data);
    config.shards = 2;
    config.pin_threads = false;
    config.segment_size = 1 << 20;
    // Left for `spine compact`.
    config.compaction = None;
    let engine = Engine::start(config).unwrap();
    let handle = engine.handle();
    let runtime = runtime();
    let mut latest = Vec::new();
    for mut person in Population::new(47).take(count) {
        person.general_practitioner = Some("Y90001".parse().unwrap());
        let mut current = submit(&runtime, &handle, Operation::PdsLoad { patient: person });
        for round in 0..2 {
            current.names[0].given = vec![format!("Renamed{round}")];
            let update = Operation::PdsUpdate {
                expected_version: current.version,
                patient: current,
            };
            current = submit(&runtime, &handle, update);
        }
        latest.push(current);
    }
    drop(handle);
    engine.shutdown().unwrap();
    latest
}

/// The names in `dir`'s shard directories that end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> usize {
    (0..2)
        .flat_map(|shard| fs::read_dir(dir.join(format!("shard-{shard}"))).unwrap())
        .filter(|entry| {
            let entry = entry.as_ref().unwrap();
            entry.file_name().to_str().unwrap().ends_with(suffix)
        })
        .count()
}

fn copy_dir(from: &Path, to: &Path) {
    let copied = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(copied.success());
}

#[test]
fn a_compaction_killed_at_any_moment_leaves_a_directory_that_verifies_and_finishes_on_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine");
    let latest = superseded_versions(&pristine, 1500);
    let work = dir.path().join("work");
    let (mut mid_copy, mut some_committed) = (0, 0);
    for step in 0..10u64 {
        if work.exists() {
            fs::remove_dir_all(&work).unwrap();
        }
        copy_dir(&pristine, &work);
        // At 1 MiB a second, read and written, each shard's segment takes about two seconds.
        let args = ["compact", "--data-dir", path(&work), "--rate", "1MiB"];
        killed_after(&args, Duration::from_millis(40 + step * 450));
        mid_copy += usize::from(files_ending(&work, ".cseg.tmp") > 0);
        some_committed += usize::from(files_ending(&work, ".cseg") > 0);
        let verified = spine(&["verify", "--data-dir", path(&work)]);
        assert!(
            verified.status.success(),
            "step {step}: {}",
            text(&verified)
        );
        if step % 3 == 0 {
            let rerun = spine(&["compact", "--data-dir", path(&work)]);
            assert!(rerun.status.success(), "step {step}: {}", text(&rerun));
            assert_eq!(files_ending(&work, ".cseg.tmp"), 0);
            let verified = spine(&["verify", "--data-dir", path(&work)]);
            assert!(
                verified.status.success(),
                "step {step}: {}",
                text(&verified)
            );
        }
    }
    println!(
        "compaction_e2e: of 10 kills, {mid_copy} left a copy half-written, {some_committed} came after a commit"
    );
    assert!(mid_copy > 0, "some kills fell while a copy was written");
    assert!(
        some_committed > 0,
        "some kills fell after a copy was committed"
    );

    let rerun = spine(&["compact", "--data-dir", path(&work)]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(
        files_ending(&work, ".seg"),
        2,
        "only each shard's open segment is full"
    );
    let server = Spine::start(&work);
    let demo = identity(&work, DEMO_CLIENT);
    runtime().block_on(async {
        let client = connect(server.addr, &demo).await.unwrap();
        for expected in &latest {
            let reply = client
                .call(request(Operation::PdsRetrieve {
                    nhs_number: expected.nhs_number,
                }))
                .await
                .unwrap();
            assert_eq!(&patient(reply), expected);
        }
    });
}
