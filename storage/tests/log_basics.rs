//! The log's everyday behaviour, against both io backends.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::sync::Arc;

use common::*;
use spine_storage::{AppendError, BackendChoice, BackendKind, Log, NewRecord, OpenError};

fn each_backend(test: impl Fn(BackendChoice)) {
    for backend in BACKENDS {
        test(backend);
    }
}

#[test]
fn the_chosen_backend_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    assert_eq!(report.backend, BackendKind::Portable);
    assert_eq!(log.backend(), BackendKind::Portable);
    drop(log);
    let (log, report) = Log::open(config(dir.path(), BackendChoice::IoUring)).unwrap();
    assert_eq!(report.backend, BackendKind::IoUring);
    drop(log);
    let (_log, report) = Log::open(config(dir.path(), BackendChoice::Auto)).unwrap();
    assert_eq!(
        report.backend,
        BackendKind::IoUring,
        "auto prefers io_uring where it works"
    );
}

#[test]
fn appends_are_readable_by_position_and_key_across_segments_and_reopen() {
    each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        assert_eq!(report.records, 0);
        append_records(&log, 1, 300, 200);
        assert!(
            segments(dir.path()).len() > 3,
            "300 records of 240 bytes fill several 16 KiB segments"
        );
        let check = |log: &Log| {
            assert_eq!(log.last_position().index, 300);
            for k in 1..=300u64 {
                let by_key = log
                    .get(key(k), |view| {
                        (view.position().index, view.payload().to_vec())
                    })
                    .unwrap();
                assert_eq!(by_key, Some((k, payload_for(k, 200))));
                let by_index = log.read(k, |view| view.key()).unwrap();
                assert_eq!(by_index, Some(Some(key(k))));
            }
            assert_eq!(log.read(301, |_| ()).unwrap(), None);
            assert_eq!(log.read(0, |_| ()).unwrap(), None);
        };
        check(&log);
        log.close().unwrap();
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        assert!(report.checkpoint.is_some(), "close writes a checkpoint");
        assert_eq!(report.records_scanned, 0);
        check(&log);
        append_records(&log, 301, 5, 10);
        assert_eq!(log.last_position().index, 305);
    });
}

#[test]
fn concurrent_appenders_all_get_distinct_durable_positions() {
    each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), backend)).unwrap();
        let log = Arc::new(log);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let mut positions: Vec<u64> = runtime.block_on(async {
            let tasks: Vec<_> = (0..64u64)
                .map(|task| {
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let mut mine = Vec::new();
                        for i in 0..20u64 {
                            let k = task * 1000 + i + 1;
                            let position = log
                                .append(NewRecord::put(key(k), 2, payload_for(k, 50)))
                                .await
                                .unwrap();
                            mine.push(position.index);
                        }
                        mine
                    })
                })
                .collect();
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all
        });
        positions.sort_unstable();
        assert_eq!(positions, (1..=1280).collect::<Vec<_>>());
        let stats = log.stats();
        assert_eq!(stats.records, 1280);
        assert!(
            stats.batches < 1280,
            "concurrent appends share flushes (group commit)"
        );
    });
}

#[test]
fn deletes_remove_keys_and_updates_replace_them() {
    each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(config(dir.path(), backend)).unwrap();
        append_records(&log, 1, 10, 20);
        log.append_blocking(NewRecord::delete(key(3), 9)).unwrap();
        log.append_blocking(NewRecord::put(key(4), 1, &b"new"[..]))
            .unwrap();
        log.append_blocking(NewRecord::unkeyed(5, &b"audit"[..]))
            .unwrap();
        let verify = |log: &Log| {
            assert_eq!(log.get(key(3), |_| ()).unwrap(), None);
            assert_eq!(
                log.get(key(4), |v| v.payload().to_vec()).unwrap(),
                Some(b"new".to_vec())
            );
            assert_eq!(log.read(11, |v| v.is_delete()).unwrap(), Some(true));
            assert_eq!(
                log.read(13, |v| (v.key(), v.kind())).unwrap(),
                Some((None, 5))
            );
            assert_eq!(log.key_count(), 9);
        };
        verify(&log);
        drop(log);
        remove_checkpoints(dir.path());
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        assert_eq!(report.records_scanned, 13);
        verify(&log);
    });
}

#[test]
fn an_oversized_record_gets_a_specific_error() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    let error = log
        .append_blocking(NewRecord::put(key(1), 1, vec![0u8; 2049]))
        .unwrap_err();
    assert!(
        matches!(
            error,
            AppendError::RecordTooLarge {
                size: 2049,
                max: 2048
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "record payload of 2049 bytes exceeds the maximum of 2048 bytes"
    );
    log.append_blocking(NewRecord::put(key(1), 1, vec![0u8; 2048]))
        .unwrap();
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    let error = Log::open(config(dir.path(), BackendChoice::Portable))
        .err()
        .unwrap();
    assert!(matches!(error, OpenError::Locked { .. }), "{error}");
}

#[test]
fn impossible_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = config(dir.path(), BackendChoice::Portable);
    bad.segment_size = 1000;
    let error = Log::open(bad).err().unwrap();
    assert!(matches!(error, OpenError::InvalidConfig { .. }), "{error}");
}

#[test]
fn secondary_indexes_follow_updates_and_survive_reopen() {
    each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Log::open_with(config(dir.path(), backend), Arc::new(FirstByte))
                .unwrap()
                .0
        };
        let log = open();
        log.append_blocking(NewRecord::put(key(1), 1, &b"apple"[..]))
            .unwrap();
        log.append_blocking(NewRecord::put(key(2), 1, &b"avocado"[..]))
            .unwrap();
        log.append_blocking(NewRecord::put(key(3), 1, &b"banana"[..]))
            .unwrap();
        log.append_blocking(NewRecord::put(key(2), 1, &b"blueberry"[..]))
            .unwrap();
        log.append_blocking(NewRecord::delete(key(3), 1)).unwrap();
        let verify = |log: &Log| {
            assert_eq!(log.secondary_prefix(0, b"a", 10), vec![key(1)]);
            assert_eq!(log.secondary_prefix(0, b"b", 10), vec![key(2)]);
            assert_eq!(log.secondary_range(0, b"a", None, 10), vec![key(1), key(2)]);
        };
        verify(&log);
        drop(log);
        verify(&open());
        remove_checkpoints(dir.path());
        verify(&open());
    });
}

#[test]
fn background_checkpoints_read_while_writing_recover_correctly() {
    each_backend(background_checkpoints_recover);
}

fn background_checkpoints_recover(backend: BackendChoice) {
    {
        let root = tempfile::tempdir().unwrap();
        let live = root.path().join("live");
        let mut background = config(&live, backend);
        background.checkpoint_interval_records = 50;
        background.checkpoint_on_close = false;
        let (log, _) = Log::open_with(background, Arc::new(FirstByte)).unwrap();
        for round in 0..4u64 {
            for k in 1..=60u64 {
                let first = [b'a' + ((k + round) % 3) as u8];
                log.append_blocking(NewRecord::put(
                    key(k),
                    1,
                    [&first[..], &payload_for(k, 30)].concat(),
                ))
                .unwrap();
            }
            log.append_blocking(NewRecord::delete(key(round + 1), 1))
                .unwrap();
        }
        // Background checkpoints are requested every 50 records; wait (bounded) for the last one.
        // The checkpointer runs at the lowest priority, so on a machine whose cores are all
        // busy (a build beside the tests) it can wait many seconds: the bound is generous.
        let total = log.last_position().index;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while log.stats().checkpoints < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "no background checkpoint within 120 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let image = root.path().join("image");
        crash_image(&live, &image);
        let (recovered, report) =
            Log::open_with(config(&image, backend), Arc::new(FirstByte)).unwrap();
        assert!(
            report.checkpoint.is_some(),
            "the background checkpoint is used"
        );
        assert!(report.records_scanned < total);
        assert_eq!(recovered.last_position().index, total);
        for k in 1..=60u64 {
            let expected = log.get(key(k), |v| v.payload().to_vec()).unwrap();
            assert_eq!(
                recovered.get(key(k), |v| v.payload().to_vec()).unwrap(),
                expected
            );
        }
        for bucket in [b"a", b"b", b"c"] {
            assert_eq!(
                recovered.secondary_prefix(0, bucket, 100),
                log.secondary_prefix(0, bucket, 100)
            );
        }
    }
}

#[test]
fn a_batch_gets_consecutive_positions_in_order_and_is_bounded() {
    each_backend(|backend| {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path(), backend);
        config.appends_pending_max = 64;
        let (log, _) = Log::open(config).unwrap();
        append_records(&log, 1, 3, 10);
        // Each larger than one write (8 KiB), the second too large for what is left of the
        // first segment (16 KiB): it goes whole to the next one. Consecutive and in order.
        for first in [10, 30] {
            let records: Vec<NewRecord> = (first..first + 20)
                .map(|k| NewRecord::put(key(k), 1, payload_for(k, 500)))
                .collect();
            let last = pollster::block_on(log.append_batch(records)).unwrap();
            assert_eq!(last.index, first - 10 + 23);
        }
        assert_eq!(segments(dir.path()).len(), 2);
        let too_big: Vec<NewRecord> = (100..131)
            .map(|k| NewRecord::put(key(k), 1, payload_for(k, 500)))
            .collect();
        let error = pollster::block_on(log.append_batch(too_big)).unwrap_err();
        assert!(
            matches!(
                error,
                AppendError::BatchBytesTooLarge {
                    bytes: 16_864,
                    max: 16_320
                }
            ),
            "a batch is one group, and a group never spans segments: {error}"
        );
        for (k, index) in (10..30).chain(30..50).zip(4..44) {
            let found = log
                .get(key(k), |view| {
                    (view.position().index, view.payload().to_vec())
                })
                .unwrap();
            assert_eq!(found, Some((index, payload_for(k, 500))));
        }
        let error = pollster::block_on(log.append_batch(Vec::new())).unwrap_err();
        assert!(matches!(error, AppendError::EmptyBatch), "{error}");
        let too_many = (1..=65)
            .map(|k| NewRecord::put(key(k), 1, vec![1]))
            .collect();
        let error = pollster::block_on(log.append_batch(too_many)).unwrap_err();
        assert!(
            matches!(
                error,
                AppendError::BatchTooLarge {
                    records: 65,
                    max: 64
                }
            ),
            "{error}"
        );
        let oversized = vec![NewRecord::put(key(1), 1, vec![0u8; 2049])];
        let error = pollster::block_on(log.append_batch(oversized)).unwrap_err();
        assert!(
            matches!(error, AppendError::RecordTooLarge { .. }),
            "{error}"
        );
        assert_eq!(
            log.last_position().index,
            43,
            "a refused batch appends nothing"
        );
    });
}

#[test]
fn batches_queued_without_waiting_keep_their_order_or_are_refused_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), BackendChoice::Portable);
    config.appends_pending_max = 8;
    let (log, _) = Log::open(config).unwrap();
    let batch = |first: u64| -> Vec<NewRecord> {
        (first..first + 4)
            .map(|k| NewRecord::put(key(k), 1, payload_for(k, 20)))
            .collect()
    };
    // Permits come back only after a flush; queueing in a tight loop outruns flushes and must
    // meet a full queue.
    let mut pending = Vec::new();
    let mut refused = None;
    for attempt in 0..10_000u64 {
        match log.try_append_batch(batch(1 + attempt * 4)) {
            Ok(batch) => pending.push(batch),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let error = refused.expect("a tight loop fills an 8-append queue");
    assert!(
        matches!(error, AppendError::QueueFull { records: 4 }),
        "{error}"
    );
    let queued = pending.len() as u64;
    let lasts: Vec<u64> = pending
        .into_iter()
        .rev()
        .map(|batch| pollster::block_on(batch.durable()).unwrap().index)
        .collect();
    let expected: Vec<u64> = (1..=queued).rev().map(|batch| batch * 4).collect();
    assert_eq!(
        lasts, expected,
        "batches keep the order they were queued in"
    );
    for k in 1..=queued * 4 {
        let index = log.get(key(k), |view| view.position().index).unwrap();
        assert_eq!(index, Some(k));
    }
    let next = log.try_append_batch(batch(100_000)).unwrap();
    let next = pollster::block_on(next.durable()).unwrap();
    assert_eq!(next.index, queued * 4 + 4);
}
