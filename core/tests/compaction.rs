//! Compacting a stopped data directory: superseded versions go, everything a shard needs
//! stays. After `compact_data_dir` the engine opens (its audit chain checked from the
//! checkpoint), every patient reads at its latest version, a retry of a write whose record was
//! superseded answers as the first time did (its outcome pins the record), and every shard's
//! whole audit chain verifies. A serving engine compacts the same way in the background, never
//! while a backup pins its files, and a backup of a compacted directory checks and restores.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use spine_core::Patient;
use spine_core::access::directory_file::demo_ids;
use spine_core::backup::control::{self, ControlSocket};
use spine_core::backup::{check, restore, take};
use spine_core::compaction::compact_data_dir;
use spine_core::engine::{CompactionSettings, Engine, EngineConfig, EngineHandle};
use spine_core::request::{Operation, Request, Response};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::ShardIndexes;
use spine_storage::Log;
use spine_storage::io::paced::Pace;

/// The common engine (no compaction while it serves) with a short outcome ring, so that most
/// superseded versions are past it.
fn small_ring(dir: &std::path::Path) -> EngineConfig {
    let mut config = config(dir);
    config.outcome_slots = 256;
    config
}

/// Updates each of `patients` (loaded) twice; their latest versions, and the last patient's
/// first update with its answer (superseded, its outcome still in the ring).
fn updated_twice(
    handle: &EngineHandle,
    patients: &[Patient],
) -> (Vec<Patient>, (Request, Response)) {
    let mut latest = Vec::new();
    let mut recent_update = None;
    for (at, patient) in patients.iter().enumerate() {
        let mut current = patient_reply(retrieve(handle, demo_ids::GP, patient.nhs_number));
        for round in 0..2 {
            current.names[0].given = vec![format!("Renamed{round}")];
            let update = request(
                demo_ids::GP,
                Operation::PdsUpdate {
                    patient: current.clone(),
                    expected_version: current.version,
                },
            );
            let reply = submit(handle, update.clone());
            if at + 1 == patients.len() && round == 0 {
                recent_update = Some((update, reply.clone()));
            }
            current = patient_reply(reply);
        }
        latest.push(current);
    }
    (latest, recent_update.unwrap())
}

/// Each of `latest` reads back as it is.
fn serves_latest(handle: &EngineHandle, latest: &[Patient]) {
    for patient in latest {
        assert_eq!(
            &patient_reply(retrieve(handle, demo_ids::GP, patient.nhs_number)),
            patient
        );
    }
}

/// Every shard's whole audit chain verifies, read from the log alone.
fn chains_verify(config: &EngineConfig) {
    for shard in 0..config.shards {
        let mut log_config = config.log_config(shard);
        log_config.use_checkpoint = false;
        let (log, _) = Log::open_read_only(log_config, Arc::new(ShardIndexes)).unwrap();
        verify_chain(&log, None).unwrap();
    }
}

/// The compacted segment files of every shard.
fn compacted_files(data: &Path) -> usize {
    (0..2)
        .flat_map(|shard| std::fs::read_dir(data.join(format!("shard-{shard}"))).unwrap())
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "cseg")
        })
        .count()
}

/// A backup of the engine serving `data`, taken through its control socket (holding the cut
/// while it copies) into `dir/backup`, holding compacted segments and checked.
fn backed_up(handle: &EngineHandle, data: &Path, dir: &Path) -> std::path::PathBuf {
    let socket = ControlSocket::start(data, handle.clone()).unwrap();
    let served = control::request_cut(data, 2).unwrap().unwrap();
    let backup = dir.join("backup");
    let taken = take::take(
        data,
        &served.extents,
        take::Source::Online,
        &backup,
        None,
        &mut Pace::unlimited(),
    )
    .unwrap();
    drop(served);
    drop(socket);
    assert!(
        taken
            .manifest
            .files
            .iter()
            .any(|file| file.path.ends_with(".cseg")),
        "the compacted segments are in the backup"
    );
    assert_eq!(
        check::check(&backup, &taken.manifest).unwrap(),
        Vec::<String>::new()
    );
    backup
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
    let (latest, recent_update) = updated_twice(&handle, &patients);
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
    serves_latest(&handle, &latest);
    // The last patient's first update is superseded; its outcome is still in the ring.
    let (update, reply) = recent_update;
    assert_eq!(submit(&handle, update), reply, "a retry answers as before");
    drop(handle);
    engine.shutdown().unwrap();

    chains_verify(&engine_config);
}

#[test]
fn a_serving_engine_compacts_in_the_background_but_not_while_a_backup_pins_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut engine_config = small_ring(&data);
    engine_config.compaction = Some(CompactionSettings {
        rate: None,
        interval: Duration::from_millis(50),
        min_dropped_percent: 25,
    });
    let engine = Engine::start(engine_config.clone()).unwrap();
    let handle = engine.handle();
    let pins = handle.pin_files();
    let patients = population(92, 2000);
    load(&handle, &patients);
    let (latest, (update, reply)) = updated_twice(&handle, &patients);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(compacted_files(&data), 0, "nothing compacted while pinned");
    drop(pins);
    let waited = std::time::Instant::now();
    while compacted_files(&data) == 0 {
        assert!(waited.elapsed() < Duration::from_secs(60), "no compaction");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = handle.stats();
    assert!(
        stats.iter().map(|shard| shard.compactions).sum::<u64>() > 0,
        "{stats:?}"
    );
    assert!(
        stats.iter().all(|shard| shard.compaction_bytes_reclaimed
            <= shard.compactions * engine_config.segment_size)
    );
    serves_latest(&handle, &latest);
    assert_eq!(
        submit(&handle, update.clone()),
        reply,
        "a retry answers as before"
    );
    // A backup of the compacted directory, held while it copies, checks.
    let backup = backed_up(&handle, &data, dir.path());
    let restored = dir.path().join("restored");
    restore::restore(&backup, &restored, &mut Pace::unlimited()).unwrap();
    drop(handle);
    engine.shutdown().unwrap();
    let engine = Engine::start(small_ring(&restored)).unwrap();
    let handle = engine.handle();
    serves_latest(&handle, &latest);
    drop(handle);
    engine.shutdown().unwrap();
    let engine = Engine::start(engine_config.clone()).unwrap();
    let handle = engine.handle();
    serves_latest(&handle, &latest);
    assert_eq!(
        submit(&handle, update),
        reply,
        "a retry after a restart too"
    );
    drop(handle);
    engine.shutdown().unwrap();
    chains_verify(&engine_config);
}
