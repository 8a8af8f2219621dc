//! Backups in process: a cut read through the serving engine's control socket, copied,
//! checked against its manifest and restored into a data directory the engine serves; the
//! socket answers nothing but a cut; a backup never goes inside what it copies.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::backup::control::{self, ControlSocket};
use spine_core::backup::{BackupError, Pace, check, restore, take};

/// `take::take` at no rate limit.
fn back_up(
    data: &Path,
    cut: &[spine_storage::LogExtent],
    source: take::Source,
    to: &Path,
    since: Option<&Path>,
) -> Result<take::Taken, BackupError> {
    take::take(data, cut, source, to, since, &mut Pace::new(None))
}

/// `restore::restore` at no rate limit.
fn restore_into(backup: &Path, data: &Path) {
    restore::restore(backup, data, &mut Pace::new(None)).unwrap();
}

#[test]
fn a_cut_through_the_control_socket_is_copied_checked_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start(&data);
    let handle = engine.handle();
    let mut patients = population(71, 65);
    let later = patients.split_off(60);
    load(&handle, &patients);
    let socket = ControlSocket::start(&data, handle.clone()).unwrap();
    let served = control::request_cut(&data, 2)
        .unwrap()
        .expect("a core answers");
    assert!(
        served.held < std::time::Duration::from_secs(1),
        "{:?}",
        served.held
    );
    let cut = served.extents;
    assert_eq!(cut.len(), 2);
    assert!(cut.iter().all(|extent| extent.last.index > 0));

    let backup = dir.path().join("backup");
    let manifest = back_up(&data, &cut, take::Source::Online, &backup, None)
        .unwrap()
        .manifest;
    assert!(manifest.online);
    assert_eq!(manifest.positions[1].index, cut[1].last.index);
    assert_eq!(
        check::check(&backup, &manifest).unwrap(),
        Vec::<String>::new()
    );
    // Written after the cut: not in the backup.
    load(&handle, &later);
    drop(socket);
    drop(handle);
    engine.shutdown().unwrap();

    let restored = dir.path().join("restored");
    restore_into(&backup, &restored);
    let engine = start(&restored);
    let handle = engine.handle();
    for patient in &patients {
        assert_eq!(
            patient_reply(retrieve(&handle, demo_ids::GP, patient.nhs_number)).names,
            patient.names
        );
    }
    for patient in &later {
        let refused = refusal(retrieve(&handle, demo_ids::GP, patient.nhs_number));
        assert_eq!(
            refused.code,
            spine_core::request::ErrorCode::ResourceNotFound
        );
    }
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn the_control_socket_answers_cut_and_hold_only_and_is_absent_when_no_core_serves() {
    let dir = tempfile::tempdir().unwrap();
    assert!(control::request_cut(dir.path(), 2).unwrap().is_none());
    let engine = start(dir.path());
    let socket = ControlSocket::start(dir.path(), engine.handle()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(socket.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(control::PRIVATE_DIR_PREFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    let ask = |bytes: &[u8]| {
        let mut stream = UnixStream::connect(socket.path()).unwrap();
        stream.write_all(bytes).unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        line
    };
    assert!(ask(b"status\n").contains(r#"{"error":"unknown request \"status\\n\""#));
    assert!(ask(&[b'x'; 200]).contains(r#"the requests are \"cut\" and \"hold\""#));
    assert!(ask(b"cut\n").starts_with(r#"{"held_us":"#));
    // Each hold keeps its connection (and the files pinned) until the client closes it.
    let hold = || {
        let mut stream = UnixStream::connect(socket.path()).unwrap();
        stream.write_all(b"hold\n").unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        (stream, line)
    };
    let mut holds: Vec<UnixStream> = (0..control::HOLDS_MAX)
        .map(|_| {
            let (stream, line) = hold();
            assert!(line.starts_with(r#"{"held_us":"#), "{line}");
            stream
        })
        .collect();
    let (_, refused) = hold();
    assert!(refused.contains("backups hold cuts already"), "{refused}");
    holds.pop();
    let waited = std::time::Instant::now();
    loop {
        let (stream, line) = hold();
        if line.starts_with(r#"{"held_us":"#) {
            holds.push(stream);
            break;
        }
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "{line}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(holds);
    assert!(
        control::request_cut(dir.path(), 3).is_err(),
        "the shard count is checked"
    );
    let path = socket.path().to_path_buf();
    drop(socket);
    assert!(!path.exists(), "the socket file goes with the socket");
    engine.shutdown().unwrap();
}

#[test]
fn a_backup_is_never_taken_into_the_directory_it_copies() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path());
    let cut = engine.handle().backup_cut().unwrap();
    let inside = dir.path().join("backup");
    let refused = back_up(dir.path(), &cut, take::Source::Online, &inside, None).unwrap_err();
    assert!(
        matches!(refused, BackupError::Unsupported { .. }),
        "{refused}"
    );
    assert!(!inside.exists());
    engine.shutdown().unwrap();
}

/// Loads `patients` all at once (so they share batches), as the GP.
fn load_at_once(engine: &spine_core::engine::EngineHandle, patients: &[spine_core::Patient]) {
    let loads = patients.iter().map(|patient| {
        engine.submit(request(
            demo_ids::GP,
            spine_core::request::Operation::PdsLoad {
                patient: patient.clone(),
            },
        ))
    });
    for answer in pollster::block_on(futures_util::future::join_all(loads)) {
        patient_reply(answer);
    }
}

#[test]
fn an_incremental_backup_links_the_segments_unchanged_since_the_one_before() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = spine_core::engine::Engine::start(small_segments(&data)).unwrap();
    let handle = engine.handle();
    let mut first = population(73, 4_000);
    let second = first.split_off(3_000);
    load_at_once(&handle, &first);
    let full = dir.path().join("full");
    let cut = handle.backup_cut().unwrap();
    assert!(
        cut.iter().all(|extent| extent.segments.len() > 1),
        "sealed segments to link: {cut:?}"
    );
    back_up(&data, &cut, take::Source::Online, &full, None).unwrap();
    load_at_once(&handle, &second);
    let incremental = dir.path().join("incremental");
    let cut = handle.backup_cut().unwrap();
    let taken = back_up(&data, &cut, take::Source::Online, &incremental, Some(&full)).unwrap();
    drop(handle);
    engine.shutdown().unwrap();

    let manifest = &taken.manifest;
    let segments = manifest
        .files
        .iter()
        .filter(|entry| entry.path.ends_with(".seg"))
        .count();
    assert!(
        taken.linked > 0 && taken.linked < segments,
        "{} of {segments}",
        taken.linked
    );
    assert_eq!(manifest.since.as_deref(), Some(full.to_str().unwrap()));
    assert_eq!(
        check::check(&incremental, manifest).unwrap(),
        Vec::<String>::new()
    );
    let shared = manifest
        .files
        .iter()
        .filter(|entry| {
            let inode = |top: &std::path::Path| {
                std::fs::metadata(top.join(&entry.path))
                    .map(|metadata| metadata.ino())
                    .ok()
            };
            inode(&full).is_some() && inode(&full) == inode(&incremental)
        })
        .count();
    assert_eq!(
        shared, taken.linked,
        "linked segments are the full backup's files"
    );

    let restored = dir.path().join("restored");
    restore_into(&incremental, &restored);
    let engine = spine_core::engine::Engine::start(small_segments(&restored)).unwrap();
    for patient in first.iter().step_by(37).chain(&second) {
        patient_reply(retrieve(&engine.handle(), demo_ids::GP, patient.nhs_number));
    }
    engine.shutdown().unwrap();
}

/// The engine's test settings with segments small enough that 1,500 patients fill several.
fn small_segments(dir: &Path) -> spine_core::engine::EngineConfig {
    let mut config = config(dir);
    config.segment_size = 320 << 10;
    config
}

#[test]
fn an_offline_backup_keeps_its_checkpoints_and_restores_to_serve_from_them() {
    use spine_core::shard::record_layout::ShardIndexes;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start(&data);
    let patients = population(75, 40);
    load(&engine.handle(), &patients);
    engine.shutdown().unwrap();
    let cut: Vec<_> = (0..2)
        .map(|shard| {
            let (log, _) = spine_storage::Log::open_read_only(
                config(&data).log_config(shard),
                std::sync::Arc::new(ShardIndexes),
            )
            .unwrap();
            log.hold_writes().extent().unwrap()
        })
        .collect();
    let backup = dir.path().join("backup");
    let manifest = back_up(&data, &cut, take::Source::Offline, &backup, None)
        .unwrap()
        .manifest;
    assert!(!manifest.online);
    let checkpoints = manifest
        .files
        .iter()
        .filter(|entry| entry.path.ends_with(".ckpt"))
        .count();
    assert_eq!(
        checkpoints, 2,
        "the checkpoint written at close, of each shard"
    );

    let restored = dir.path().join("restored");
    restore_into(&backup, &restored);
    let engine = start(&restored);
    let report = &engine.recoveries()[0];
    assert!(report.checkpoint.is_some(), "{report:?}");
    for patient in &patients {
        patient_reply(retrieve(&engine.handle(), demo_ids::GP, patient.nhs_number));
    }
    engine.shutdown().unwrap();
}
