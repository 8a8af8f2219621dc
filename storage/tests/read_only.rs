//! Opening for reading only writes nothing: a torn tail is reported, not cut; spares and
//! temporary checkpoints stay; no lock file or checkpoint appears; and a log a writer holds is
//! refused.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use spine_storage::index::secondary::NoSecondaryKeys;
use spine_storage::{AppendError, BackendChoice, Log, LogConfig, NewRecord, OpenError};

fn config(dir: &Path) -> LogConfig {
    let mut config = common::config(dir, BackendChoice::Portable);
    config.use_checkpoint = false;
    config
}

/// Every file of the directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

fn open_read_only(dir: &Path) -> Result<(Log, spine_storage::RecoveryReport), OpenError> {
    Log::open_read_only(config(dir), Arc::new(NoSecondaryKeys))
}

#[test]
fn a_torn_tail_is_reported_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (log, _) = Log::open(config(dir.path())).unwrap();
        append_records(&log, 1, 5, 100);
        let group: Vec<NewRecord> = (6..9)
            .map(|k| NewRecord::put(key(k), 1, payload_for(k, 100)))
            .collect();
        pollster::block_on(log.append_batch(group)).unwrap();
        log.close().unwrap();
    }
    // Damage the middle record of the last group (the last batch), leave a spare and a
    // temporary checkpoint as a crash would, and take the lock file away (a copy).
    let segment = segments(dir.path())[0].clone();
    let mut bytes = fs::read(&segment).unwrap();
    let record = 64 + 5 * 144 + 144 + 50;
    bytes[record] ^= 0x10;
    fs::write(&segment, &bytes).unwrap();
    fs::write(dir.path().join("7.seg.spare"), vec![0u8; 4096]).unwrap();
    fs::write(
        dir.path().join("checkpoint-00000000000000000003.ckpt.tmp"),
        b"partial",
    )
    .unwrap();
    fs::remove_file(dir.path().join("LOCK")).unwrap();
    let before = snapshot(dir.path());

    let (log, report) = open_read_only(dir.path()).unwrap();
    let torn = report.torn_tail.clone().expect("the damage is reported");
    assert_eq!(
        torn.offset,
        64 + 5 * 144,
        "from the damaged group's first record"
    );
    assert_eq!(torn.valid_records_discarded, 1);
    assert_eq!(torn.reason, "checksum mismatch");
    assert_eq!(
        log.last_position().index,
        5,
        "the whole groups before it are readable"
    );
    assert_eq!(
        log.get(key(5), |view| view.payload().to_vec()).unwrap(),
        Some(payload_for(5, 100))
    );
    let appended = log.append_blocking(NewRecord::put(key(99), 1, vec![1]));
    assert!(matches!(appended, Err(AppendError::Closed)), "{appended:?}");
    assert!(log.checkpoint().is_err(), "no checkpoint is written");
    log.close().unwrap();
    assert_eq!(
        snapshot(dir.path()),
        before,
        "not a byte changed, no file came or went"
    );

    // Opening for service is what cuts, and says so.
    let (log, report) = Log::open(config(dir.path())).unwrap();
    assert_eq!(report.torn_tail.unwrap().offset, torn.offset);
    assert_eq!(log.last_position().index, 5);
}

#[test]
fn a_log_open_for_writing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path())).unwrap();
    append_records(&log, 1, 2, 10);
    let refused = open_read_only(dir.path());
    assert!(
        matches!(refused, Err(OpenError::Locked { .. })),
        "{:?}",
        refused.err()
    );
    log.close().unwrap();
    let (reader, report) = open_read_only(dir.path()).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(reader.last_position().index, 2);
    // While a reader holds it, a writer is kept out too.
    let writer = Log::open(config(dir.path()));
    assert!(matches!(writer, Err(OpenError::Locked { .. })));
}
