//! Every damage FORMAT.md lists gives its documented outcome, against both io backends.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use spine_storage::format::{RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, record_size};
use spine_storage::{BackendChoice, Log, OpenError, ReadError};

const PAYLOAD: usize = 100;
/// Records of 100-byte payload are 144 bytes.
const RECORD: usize = record_size(PAYLOAD);

/// A log of `batches` batches of one record each (appended one at a time), closed, with
/// checkpoints removed so that opening scans every record.
fn written_log(dir: &Path, backend: BackendChoice, records: u64) {
    let (log, _) = Log::open(config(dir, backend)).unwrap();
    append_records(&log, 1, records, PAYLOAD);
    log.close().unwrap();
    remove_checkpoints(dir);
}

fn flip_bit(path: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 0x04;
    file.write_all_at(&byte, offset).unwrap();
}

/// Offset of the `n`th record (0-based) of a segment.
fn record_offset(n: usize) -> u64 {
    (SEGMENT_HEADER_SIZE + n * RECORD) as u64
}

#[test]
fn a_truncated_last_segment_loses_only_the_cut_record() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        written_log(dir.path(), backend, 5);
        let segment = &segments(dir.path())[0];
        // Cut the file in the middle of the fifth record's payload.
        let cut = record_offset(4) + RECORD_HEADER_SIZE as u64 + 10;
        OpenOptions::new()
            .write(true)
            .open(segment)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        let torn = report.torn_tail.expect("the cut record is a torn tail");
        assert_eq!(torn.offset, record_offset(4));
        assert_eq!(report.records, 4);
        assert_eq!(log.last_position().index, 4);
        // The log goes on from where it was cut, and the new record survives reopening.
        append_records(&log, 100, 1, PAYLOAD);
        assert_eq!(log.read(5, |v| v.key()).unwrap(), Some(Some(key(100))));
        drop(log);
        remove_checkpoints(dir.path());
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        assert!(report.torn_tail.is_none());
        assert_eq!(log.last_position().index, 5);
    }
}

#[test]
fn a_bit_flip_in_the_last_record_is_cut_off_as_a_torn_tail() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        written_log(dir.path(), backend, 5);
        let segment = &segments(dir.path())[0];
        flip_bit(segment, record_offset(4) + 60);
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        let torn = report
            .torn_tail
            .expect("damage in the last batch is a torn tail");
        assert_eq!(torn.reason, "checksum mismatch");
        assert_eq!(torn.bytes_discarded, RECORD as u64);
        assert_eq!(log.last_position().index, 4);
        for k in 1..=4 {
            assert_eq!(
                log.get(key(k), |v| v.payload().to_vec()).unwrap(),
                Some(payload_for(k, PAYLOAD))
            );
        }
    }
}

#[test]
fn a_bit_flip_before_the_tail_refuses_to_open_naming_segment_and_offset() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        written_log(dir.path(), backend, 5);
        let segment = segments(dir.path())[0].clone();
        flip_bit(&segment, record_offset(2) + 70);
        let error = Log::open(config(dir.path(), backend))
            .err()
            .expect("corruption refuses to open");
        match &error {
            OpenError::Corrupt {
                segment: named,
                offset,
                reason,
            } => {
                assert_eq!(named, &segment);
                assert_eq!(*offset, record_offset(2));
                assert_eq!(*reason, "checksum mismatch");
            }
            other => panic!("expected Corrupt, got {other}"),
        }
        assert!(
            error
                .to_string()
                .contains(&format!("offset {}", record_offset(2))),
            "{error}"
        );
    }
}

#[test]
fn a_bit_flip_in_a_full_segment_refuses_to_open() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        written_log(dir.path(), backend, 300);
        let all = segments(dir.path());
        assert!(all.len() >= 3);
        flip_bit(&all[1], record_offset(0) + 20);
        let error = Log::open(config(dir.path(), backend))
            .err()
            .expect("corruption refuses to open");
        assert!(
            matches!(&error, OpenError::Corrupt { segment, offset, .. } if segment == &all[1] && *offset == record_offset(0)),
            "{error}"
        );
    }
}

#[test]
fn a_bit_flip_under_a_checkpoint_is_caught_by_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    append_records(&log, 1, 5, PAYLOAD);
    log.close().unwrap();
    let segment = segments(dir.path())[0].clone();
    flip_bit(&segment, record_offset(1) + 70);
    let (log, report) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    assert!(report.checkpoint.is_some());
    let error = log.get(key(2), |_| ()).unwrap_err();
    assert!(
        matches!(&error, ReadError::Corrupt { offset, .. } if *offset == record_offset(1)),
        "{error}"
    );
    assert!(log.get(key(3), |_| ()).unwrap().is_some());
}

#[test]
fn a_missing_segment_refuses_to_open() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        written_log(dir.path(), backend, 300);
        let all = segments(dir.path());
        fs::remove_file(&all[1]).unwrap();
        let error = Log::open(config(dir.path(), backend))
            .err()
            .expect("a gap refuses to open");
        assert!(matches!(error, OpenError::SegmentMissing { .. }), "{error}");
    }
}

#[test]
fn a_missing_first_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    written_log(dir.path(), BackendChoice::Portable, 300);
    fs::remove_file(&segments(dir.path())[0]).unwrap();
    let error = Log::open(config(dir.path(), BackendChoice::Portable))
        .err()
        .unwrap();
    assert!(
        matches!(error, OpenError::SegmentMissing { first_index: 1, .. }),
        "{error}"
    );
}

#[test]
fn a_missing_last_segment_is_caught_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    append_records(&log, 1, 300, PAYLOAD);
    log.close().unwrap();
    let all = segments(dir.path());
    fs::remove_file(all.last().unwrap()).unwrap();
    let error = Log::open(config(dir.path(), BackendChoice::Portable))
        .err()
        .unwrap();
    assert!(matches!(error, OpenError::SegmentMissing { .. }), "{error}");
}

#[test]
fn a_damaged_segment_header_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    written_log(dir.path(), BackendChoice::Portable, 300);
    flip_bit(&segments(dir.path())[0], 17);
    let error = Log::open(config(dir.path(), BackendChoice::Portable))
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            OpenError::Corrupt {
                offset: 0,
                reason: "segment header is damaged",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_damaged_checkpoint_is_ignored_and_the_log_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    append_records(&log, 1, 50, PAYLOAD);
    log.close().unwrap();
    let checkpoint = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .unwrap();
    flip_bit(&checkpoint, 30);
    let (log, report) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    assert!(report.checkpoint.is_none());
    assert_eq!(report.records_scanned, 50);
    assert_eq!(log.key_count(), 50);
}

#[test]
fn an_unwritten_prepared_segment_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    written_log(dir.path(), BackendChoice::Portable, 5);
    // What a crash between renaming the spare into place and its first write leaves.
    let name = dir.path().join("00000000000000000006.seg");
    fs::write(&name, vec![0u8; 16 * 1024]).unwrap();
    let (log, report) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    assert_eq!(report.records, 5);
    assert!(!name.exists());
    append_records(&log, 6, 1, PAYLOAD);
}
