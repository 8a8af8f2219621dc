//! The offline tools and the data directory's promises, through the real `spine` binary:
//! `spine verify` writes nothing and fails on any damage (a torn tail included), only opening
//! for service cuts a torn tail; `spine stats` counts every record kind; a data directory keeps
//! its shard count and refuses another; a data directory an engine wrote in process (a
//! benchmark's) serves the demo client.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineConfig};
use spine_core::pds::synthetic::Population;
use spine_core::request::{Operation, Reply, Request};
use uuid::Uuid;

use common::snapshot;

const SHARDS: usize = 2;

fn engine_config(dir: &Path, shards: usize) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.shards = shards;
    config.pin_threads = false;
    config.segment_size = 1 << 20;
    config.expected_keys_per_shard = 1 << 10;
    config
}

/// A data directory with some patients loaded and retrieved, the engine stopped.
fn data_dir_with_patients(dir: &Path) {
    let engine = Engine::start(engine_config(dir, SHARDS)).unwrap();
    let handle = engine.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for mut patient in Population::new(5).take(20) {
        patient.general_practitioner = Some("Y90001".parse().unwrap());
        let nhs_number = patient.nhs_number;
        for operation in [
            Operation::PdsLoad { patient },
            Operation::PdsRetrieve { nhs_number },
        ] {
            let request = Request {
                id: Uuid::new_v4(),
                caller: demo_caller(demo_ids::GP),
                justification: Justification::None,
                operation,
            };
            let reply = runtime.block_on(handle.submit(request));
            assert!(matches!(reply, Ok(Reply::Patient(_))), "{reply:?}");
        }
    }
    drop(handle);
    engine.shutdown().unwrap();
}

fn spine(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spine"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The last segment of shard 0 and the offset of its last record's payload.
fn last_record_payload(dir: &Path) -> (PathBuf, usize) {
    let log_dir = dir.join("shard-0");
    let mut segments: Vec<PathBuf> = fs::read_dir(&log_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    segments.sort();
    let segment = segments.pop().unwrap();
    let bytes = fs::read(&segment).unwrap();
    let mut offset = spine_storage::format::SEGMENT_HEADER_SIZE;
    let mut last = None;
    while let Ok(header) = spine_storage::log::record::decode(&bytes[offset..], u32::MAX) {
        last = Some(offset);
        offset += header.record_size();
    }
    (
        segment,
        last.unwrap() + spine_storage::format::RECORD_HEADER_SIZE,
    )
}

#[test]
fn verify_writes_nothing_and_fails_on_a_torn_tail_that_only_serving_cuts() {
    let dir = tempfile::tempdir().unwrap();
    data_dir_with_patients(dir.path());
    let verified = spine(&["verify"], dir.path());
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert_eq!(stdout(&verified).matches("audit chain of").count(), SHARDS);

    // As a crash leaves it: no checkpoint written at close. Then one byte of the last batch
    // flipped: acknowledged data damaged, or a tail torn; the log cannot tell which.
    for entry in fs::read_dir(dir.path().join("shard-0")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "ckpt") {
            fs::remove_file(path).unwrap();
        }
    }
    let (segment, payload) = last_record_payload(dir.path());
    let mut bytes = fs::read(&segment).unwrap();
    bytes[payload] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();
    let before = snapshot(dir.path());
    for _ in 0..2 {
        let found = spine(&["verify"], dir.path());
        let text = stdout(&found);
        assert_eq!(found.status.code(), Some(1), "{text}");
        assert!(
            text.contains("shard 0: DAMAGED: torn tail at") && text.contains("checksum mismatch"),
            "{text}"
        );
        assert!(String::from_utf8_lossy(&found.stderr).contains("1 problems found"));
        assert_eq!(snapshot(dir.path()), before, "verify wrote nothing");
    }
    // Opening for service cuts it and says what it cut; verify passes after that.
    let engine = Engine::start(engine_config(dir.path(), SHARDS)).unwrap();
    let torn = engine.recoveries()[0]
        .torn_tail
        .clone()
        .expect("cut and reported");
    assert_eq!(torn.segment, segment);
    engine.shutdown().unwrap();
    let verified = spine(&["verify"], dir.path());
    assert!(verified.status.success(), "{}", stdout(&verified));
}

#[test]
fn stats_counts_every_record_kind() {
    let dir = tempfile::tempdir().unwrap();
    data_dir_with_patients(dir.path());
    let output = spine(&["stats"], dir.path());
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header.len(),
        1 + 13 + 2,
        "shard, thirteen kinds, unknown, records: {text}"
    );
    for line in lines {
        let cells: Vec<u64> = line
            .split_whitespace()
            .map(|cell| cell.parse().unwrap())
            .collect();
        let (kinds, total) = cells[1..].split_at(cells.len() - 3);
        assert_eq!(kinds.len(), 13);
        assert_eq!(
            kinds.iter().sum::<u64>() + total[0],
            total[1],
            "the columns add up to the records: {line}"
        );
        assert_eq!(total[0], 0, "no record of an unknown kind");
        let column = |name: &str| kinds[header.iter().position(|h| *h == name).unwrap() - 1];
        assert!(column("patients") > 0 && column("audit") > 0 && column("turns") > 0);
    }
}

#[test]
fn a_data_directory_keeps_its_shard_count() {
    let dir = tempfile::tempdir().unwrap();
    data_dir_with_patients(dir.path());
    assert_eq!(
        fs::read_to_string(dir.path().join("SHARDS")).unwrap(),
        "2\n"
    );
    for other in [1, 3] {
        let refused = Engine::start(engine_config(dir.path(), other))
            .err()
            .unwrap();
        let message = refused.to_string();
        assert!(
            message.contains("written with 2 shards, not ") && message.contains(&other.to_string()),
            "{message}"
        );
        assert!(!dir.path().join("shard-2").exists(), "nothing was created");
        let served = Command::new(env!("CARGO_BIN_EXE_spine"))
            .args(["serve", "--no-quic", "--shards", &other.to_string()])
            .args(["--tls-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&served.stderr);
        assert_eq!(served.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("written with 2 shards"), "{stderr}");
    }
    // Without --shards, the recorded count is used.
    let verified = spine(&["verify"], dir.path());
    assert_eq!(stdout(&verified).matches("audit chain of").count(), SHARDS);
}

#[test]
fn a_data_directory_an_engine_wrote_in_process_serves_the_demo_client() {
    let dir = tempfile::tempdir().unwrap();
    data_dir_with_patients(dir.path());
    let server = common::Spine::start(dir.path());
    let demo = common::identity(dir.path(), spine_net::pki::DEMO_CLIENT);
    let nhs_number = Population::new(5).next().unwrap().nhs_number;
    common::runtime().block_on(async {
        let client = common::connect(server.addr, &demo).await.unwrap();
        let answer = client
            .call(common::request(Operation::PdsRetrieve { nhs_number }))
            .await
            .unwrap();
        assert!(matches!(answer, Ok(Reply::Patient(_))), "{answer:?}");
    });
}
