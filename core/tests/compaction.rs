//! Compacting a stopped data directory: superseded versions go, everything a shard needs
//! stays. After `compact_data_dir` the engine opens (its audit chain checked from the
//! checkpoint), every patient reads at its latest version, a retry of a write whose record was
//! superseded answers as the first time did (its outcome pins the record), and every shard's
//! whole audit chain verifies.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::sync::Arc;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::compaction::compact_data_dir;
use spine_core::engine::Engine;
use spine_core::request::Operation;
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::ShardIndexes;
use spine_storage::Log;
use spine_storage::io::paced::Pace;

/// The common engine with a short outcome ring, so that most superseded versions are past it.
fn small_ring(dir: &std::path::Path) -> spine_core::engine::EngineConfig {
    let mut config = config(dir);
    config.outcome_slots = 256;
    config
}

#[test]
fn a_compacted_data_directory_serves_what_it_served_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = Engine::start(small_ring(&data)).unwrap();
    let handle = engine.handle();
    let patients = population(91, 2000);
    load(&handle, &patients);
    // Each patient updated twice: two superseded versions each, and their turns' metadata.
    let mut latest = Vec::new();
    let mut recent_update = None;
    for (at, patient) in patients.iter().enumerate() {
        let mut current = patient_reply(retrieve(&handle, demo_ids::GP, patient.nhs_number));
        for round in 0..2 {
            current.names[0].given = vec![format!("Renamed{round}")];
            let update = request(
                demo_ids::GP,
                Operation::PdsUpdate {
                    patient: current.clone(),
                    expected_version: current.version,
                },
            );
            let reply = submit(&handle, update.clone());
            if at + 1 == patients.len() && round == 0 {
                recent_update = Some((update, reply.clone()));
            }
            current = patient_reply(reply);
        }
        latest.push(current);
    }
    drop(handle);
    engine.shutdown().unwrap();

    let engine_config = small_ring(&data);
    let mut rewritten = 0;
    let done = compact_data_dir(&engine_config, &mut Pace::unlimited(), |_, segment| {
        rewritten += usize::from(segment.records_kept < segment.records_before);
    })
    .unwrap();
    assert!(rewritten > 0, "{done:?}");
    for shard in &done {
        assert!(shard.records_kept < shard.records_before, "{shard:?}");
        assert!(shard.bytes_after * 2 < shard.bytes_before, "{shard:?}");
    }
    assert!(
        done.iter().any(|shard| shard.pinned > 0),
        "write outcomes pin records: {done:?}"
    );

    let engine = Engine::start(small_ring(&data)).unwrap();
    let handle = engine.handle();
    for patient in &latest {
        assert_eq!(
            &patient_reply(retrieve(&handle, demo_ids::GP, patient.nhs_number)),
            patient
        );
    }
    // The last patient's first update is superseded; its outcome is still in the ring.
    let (update, reply) = recent_update.unwrap();
    assert_eq!(submit(&handle, update), reply, "a retry answers as before");
    drop(handle);
    engine.shutdown().unwrap();

    for shard in 0..engine_config.shards {
        let mut log_config = engine_config.log_config(shard);
        log_config.use_checkpoint = false;
        let (log, _) = Log::open_read_only(log_config, Arc::new(ShardIndexes)).unwrap();
        verify_chain(&log, None).unwrap();
    }
}
