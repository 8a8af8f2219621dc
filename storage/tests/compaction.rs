//! Compaction: what it reclaims, what it keeps, and every state a crash during one can leave
//! (`storage/FORMAT.md`, "Compaction"): before the rename (a temporary copy), after it (both
//! files), a checkpoint older than the compaction, a damaged copy, and a compacted segment
//! left as the log's last.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use spine_storage::index::secondary::NoSecondaryKeys;
use spine_storage::io::paced::Pace;
use spine_storage::{BackendChoice, CompactError, Compacted, Log, LogConfig, NewRecord, OpenError};

/// Keys cycle through this many, so most records are superseded.
const KEYS: u64 = 20;
const RECORDS: u64 = 1000;
/// Records of this kind have no key; the tests' `keep` keeps them.
const UNKEYED_KIND: u8 = 9;

fn config(dir: &Path, use_checkpoint: bool) -> LogConfig {
    let mut config = common::config(dir, BackendChoice::Portable);
    config.use_checkpoint = use_checkpoint;
    config
}

fn open(dir: &Path, use_checkpoint: bool) -> Log {
    Log::open(config(dir, use_checkpoint)).unwrap().0
}

/// Whether record `n` has no key.
fn unkeyed(n: u64) -> bool {
    n.is_multiple_of(7)
}

/// Record `n` (from 1): every seventh has no key, the rest update key `n % KEYS + 1`.
fn record(n: u64) -> NewRecord {
    if unkeyed(n) {
        NewRecord::unkeyed(UNKEYED_KIND, payload_for(n, 64))
    } else {
        NewRecord::put(key(n % KEYS + 1), 1, payload_for(n, 64))
    }
}

/// A log of `RECORDS` records over several segments, closed.
fn written(dir: &Path) {
    let log = open(dir, true);
    for n in 1..=RECORDS {
        let position = log.append_blocking(record(n)).unwrap();
        assert_eq!(position.index, n);
    }
    log.close().unwrap();
}

/// Whether record `n` is its key's latest.
fn latest_of(n: u64) -> bool {
    !unkeyed(n) && !(n + 1..=RECORDS).any(|later| !unkeyed(later) && later % KEYS == n % KEYS)
}

/// Every record that reads back by index, with its payload.
fn readable(log: &Log) -> BTreeMap<u64, Vec<u8>> {
    (1..=log.last_position().index)
        .filter_map(|index| {
            log.read(index, |view| view.payload().to_vec())
                .unwrap()
                .map(|payload| (index, payload))
        })
        .collect()
}

/// Each key's latest record index.
fn latest(log: &Log) -> BTreeMap<u64, u64> {
    (1..=KEYS)
        .filter_map(|k| {
            log.get(key(k), |view| view.position().index)
                .unwrap()
                .map(|index| (k, index))
        })
        .collect()
}

fn keep_unkeyed(view: &spine_storage::RecordView<'_>) -> bool {
    view.kind() == UNKEYED_KIND
}

/// Compacts the sealed segment starting at `first_index`, keeping unkeyed records, at no rate
/// limit, whatever it drops.
fn compact(log: &Log, first_index: u64) -> Result<Compacted, CompactError> {
    log.compact_segment(first_index, &keep_unkeyed, &mut Pace::unlimited(), 1)
}

/// Compacts every sealed segment, keeping unkeyed records; returns the file bytes before and
/// after.
fn compact_all(log: &Log) -> (u64, u64) {
    let (mut before, mut after) = (0, 0);
    for sealed in log.sealed_segments() {
        let done = compact(log, sealed.first_index).unwrap();
        before += done.bytes_before;
        after += done.bytes_after;
    }
    (before, after)
}

fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    found.sort();
    found
}

#[test]
fn compaction_keeps_what_is_needed_and_reclaims_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let keys_before = latest(&log);
    let sealed = log.sealed_segments();
    assert!(sealed.len() >= 3, "the log spans several segments");
    let (before, after) = compact_all(&log);
    assert!(after * 3 < before, "{before} bytes became {after}");
    assert_eq!(latest(&log), keys_before, "every key's latest record stays");
    let kept = readable(&log);
    let last_sealed = log.sealed_segments().last().unwrap().last_index;
    for n in 1..=RECORDS {
        let must = unkeyed(n) || latest_of(n) || n > last_sealed;
        let segment_end = sealed.iter().any(|s| s.last_index == n);
        if must || segment_end {
            assert_eq!(kept.get(&n), Some(&payload_for(n, 64)), "record {n}");
        } else {
            assert!(!kept.contains_key(&n), "superseded record {n} was kept");
        }
    }
    // The full segments are gone, the compacted ones named for them.
    assert_eq!(files_ending(dir.path(), ".cseg").len(), sealed.len());
    assert_eq!(files_ending(dir.path(), ".seg").len(), 1);
    // Appends go on; reopening with the checkpoint and with a full scan gives the same log.
    log.append_blocking(record(RECORDS + 1)).unwrap();
    let readable_now = readable(&log);
    let latest_now = latest(&log);
    log.close().unwrap();
    for use_checkpoint in [true, false] {
        let (log, report) = Log::open(config(dir.path(), use_checkpoint)).unwrap();
        assert_eq!(report.checkpoint.is_some(), use_checkpoint);
        assert_eq!(readable(&log), readable_now);
        assert_eq!(latest(&log), latest_now);
        log.close().unwrap();
    }
}

#[test]
fn compacting_again_drops_what_became_superseded() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let first = log.sealed_segments()[0].clone();
    compact(&log, first.first_index).unwrap();
    log.checkpoint().unwrap();
    let stale: Vec<(PathBuf, Vec<u8>)> = files_ending(dir.path(), ".ckpt")
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    // The second round keeps nothing but what the log needs: the unkeyed records go.
    let again = log
        .compact_segment(first.first_index, &|_| false, &mut Pace::unlimited(), 1)
        .unwrap();
    assert!(again.records_kept < again.records_before);
    let expected = readable(&log);
    assert!(
        (first.first_index..=first.last_index)
            .all(|n| !unkeyed(n) || n == first.last_index || !expected.contains_key(&n))
    );
    log.close().unwrap();
    // A checkpoint from before the second round no longer matches the segment: it is not
    // used, and the scan finds the same log.
    for path in files_ending(dir.path(), ".ckpt") {
        fs::remove_file(path).unwrap();
    }
    for (path, bytes) in &stale {
        fs::write(path, bytes).unwrap();
    }
    let (log, report) = Log::open(config(dir.path(), true)).unwrap();
    assert_eq!(report.checkpoint, None, "the stale checkpoint was used");
    assert_eq!(readable(&log), expected);
    log.close().unwrap();
}

#[test]
fn a_crash_before_the_rename_leaves_the_segment_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let expected = readable(&log);
    let first = log.sealed_segments()[0].first_index;
    log.close().unwrap();
    // A compaction killed while writing its copy leaves part of it.
    let temporary = dir.path().join(format!("{first:020}.cseg.tmp"));
    fs::write(&temporary, b"SPINELOG part of a compacted copy").unwrap();
    let log = open(dir.path(), true);
    assert!(
        !temporary.exists(),
        "the unfinished copy is removed at open"
    );
    assert_eq!(readable(&log), expected);
    log.close().unwrap();
}

#[test]
fn a_crash_after_the_rename_uses_the_compacted_copy() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let sealed = log.sealed_segments()[0].clone();
    let full_bytes = fs::read(&sealed.path).unwrap();
    let done = compact(&log, sealed.first_index).unwrap();
    let expected = readable(&log);
    log.close().unwrap();
    // Killed after the rename, before the full segment was removed: both files are there.
    fs::write(&sealed.path, &full_bytes).unwrap();
    let (log, _) =
        Log::open_read_only(config(dir.path(), true), Arc::new(NoSecondaryKeys)).unwrap();
    assert_eq!(
        readable(&log),
        expected,
        "verification reads the compacted copy"
    );
    drop(log);
    assert!(
        sealed.path.exists(),
        "opening for reading only removes nothing"
    );
    for use_checkpoint in [false, true] {
        let log = open(dir.path(), use_checkpoint);
        assert!(
            !sealed.path.exists(),
            "the replaced segment is removed at open"
        );
        assert!(done.path.exists());
        assert_eq!(readable(&log), expected);
        log.close().unwrap();
    }
}

#[test]
fn a_damaged_compacted_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let first = log.sealed_segments()[0].first_index;
    let done = compact(&log, first).unwrap();
    log.close().unwrap();
    let mut bytes = fs::read(&done.path).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x08;
    fs::write(&done.path, &bytes).unwrap();
    match Log::open(config(dir.path(), false)) {
        Err(OpenError::Corrupt { segment, .. }) => assert_eq!(segment, done.path),
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a damaged compacted segment opened"),
    }
    // Shortened (a lost write at its end): refused too, never extended like a full segment.
    bytes[at] ^= 0x08;
    fs::write(&done.path, &bytes[..bytes.len() - 8]).unwrap();
    assert!(matches!(
        Log::open(config(dir.path(), false)),
        Err(OpenError::Corrupt { .. })
    ));
}

#[test]
fn a_compacted_segment_left_last_is_followed_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let sealed = log.sealed_segments();
    let last_sealed = sealed.last().unwrap().clone();
    compact(&log, last_sealed.first_index).unwrap();
    log.close().unwrap();
    // Make the log's last segment one that was prepared but never written (its records
    // gone with it, as if they had never been appended), so the compacted one is last.
    let last = files_ending(dir.path(), ".seg").pop().unwrap();
    let size = fs::metadata(&last).unwrap().len();
    fs::write(&last, vec![0u8; size as usize]).unwrap();
    for path in files_ending(dir.path(), ".ckpt") {
        fs::remove_file(path).unwrap();
    }
    let log = open(dir.path(), true);
    assert!(!last.exists(), "the never-written segment is removed");
    assert_eq!(log.last_position().index, last_sealed.last_index);
    let next = last_sealed.last_index + 1;
    for n in next..next + 100 {
        assert_eq!(log.append_blocking(record(n)).unwrap().index, n);
    }
    let expected = readable(&log);
    let compacted = fs::read(files_ending(dir.path(), ".cseg").pop().unwrap()).unwrap();
    log.close().unwrap();
    let log = open(dir.path(), false);
    assert_eq!(readable(&log), expected);
    let compacted_after = fs::read(files_ending(dir.path(), ".cseg").pop().unwrap()).unwrap();
    assert_eq!(
        compacted, compacted_after,
        "a compacted segment is never written to"
    );
    log.close().unwrap();
}

#[test]
fn a_pinned_log_is_not_compacted_until_the_pin_goes() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), true);
    let first = log.sealed_segments()[0].clone();
    let files_before = files_ending(dir.path(), ".seg");
    let pin = log.pin_files();
    let refused = compact(&log, first.first_index);
    assert!(matches!(refused, Err(CompactError::Pinned)), "{refused:?}");
    assert_eq!(files_ending(dir.path(), ".seg"), files_before);
    assert!(files_ending(dir.path(), ".cseg").is_empty());
    drop(pin);
    let done = compact(&log, first.first_index).unwrap();
    assert!(done.records_kept < done.records_before);
    log.close().unwrap();
}

#[test]
fn a_segment_with_too_little_to_drop_is_left_alone_and_a_stopped_compaction_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = open(dir.path(), false);
    let first = log.sealed_segments()[0].clone();
    // Opened by a scan: every supersession of the segment's records is counted.
    assert!(
        first.superseded > 0 && first.superseded < first.records,
        "{first:?}"
    );
    let droppable = first.records
        - (first.first_index..=first.last_index)
            .filter(|&n| unkeyed(n) || latest_of(n) || n == first.last_index)
            .count() as u64;
    let left = log
        .compact_segment(
            first.first_index,
            &keep_unkeyed,
            &mut Pace::unlimited(),
            droppable + 1,
        )
        .unwrap();
    assert_eq!(left.records_kept, left.records_before);
    assert_eq!(left.path, first.path);
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stopped = log.compact_segment(
        first.first_index,
        &keep_unkeyed,
        &mut Pace::cancellable(None, cancel),
        droppable,
    );
    assert!(matches!(stopped, Err(CompactError::Stopped)), "{stopped:?}");
    assert!(files_ending(dir.path(), ".cseg").is_empty());
    assert!(files_ending(dir.path(), ".cseg.tmp").is_empty());
    let done = log
        .compact_segment(
            first.first_index,
            &keep_unkeyed,
            &mut Pace::unlimited(),
            droppable,
        )
        .unwrap();
    assert_eq!(done.records_before - done.records_kept, droppable);
    assert_eq!(
        log.sealed_segments()[0].superseded,
        0,
        "counted afresh after a compaction"
    );
    log.close().unwrap();
}

#[test]
fn compaction_while_writes_go_on_loses_no_write_and_reopens_the_same() {
    let dir = tempfile::tempdir().unwrap();
    written(dir.path());
    let log = Arc::new(open(dir.path(), true));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for n in RECORDS + 1..=RECORDS * 3 {
                log.append_blocking(record(n)).unwrap();
            }
        })
    };
    // A reader reads every key's latest record meanwhile: each read finds a record of its key
    // (through the old segment, the pending copy or the compacted one).
    let reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while Arc::strong_count(&log) > 2 {
                for k in 1..=KEYS {
                    let found = log.get(key(k), |view| view.key()).unwrap();
                    assert_eq!(found, Some(Some(key(k))), "key {k}");
                    reads += 1;
                }
            }
            reads
        })
    };
    let mut rounds = 0;
    while !writer.is_finished() || rounds < 2 {
        for sealed in log.sealed_segments() {
            compact(&log, sealed.first_index).unwrap();
        }
        rounds += 1;
    }
    writer.join().unwrap();
    // The writer's handle is gone: the reader stops at its next round.
    assert!(reader.join().unwrap() > 0);
    // Every key's latest record is the last one written for it.
    let last = RECORDS * 3;
    let expected: BTreeMap<u64, u64> = (1..=KEYS)
        .map(|k| {
            let n = (1..=last)
                .rev()
                .find(|&n| !unkeyed(n) && n % KEYS + 1 == k)
                .unwrap();
            (k, n)
        })
        .collect();
    assert_eq!(latest(&log), expected);
    let readable_now = readable(&log);
    assert!(
        (1..=last)
            .filter(|&n| unkeyed(n))
            .all(|n| readable_now.contains_key(&n))
    );
    let log = Arc::into_inner(log).unwrap();
    log.close().unwrap();
    for use_checkpoint in [true, false] {
        let (log, _) = Log::open(config(dir.path(), use_checkpoint)).unwrap();
        assert_eq!(latest(&log), expected);
        assert_eq!(readable(&log), readable_now);
        log.close().unwrap();
    }
}

/// Waits until the log has written `count` checkpoints in all.
fn wait_for_checkpoints(log: &Log, count: u64) {
    let waited = std::time::Instant::now();
    while log.stats().checkpoints < count {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "no background checkpoint: {:?}",
            log.stats()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_background_checkpoint_after_compactions_matches_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut background = config(dir.path(), true);
    background.checkpoint_interval_records = 250;
    // Only the background checkpoints: none from the live state at close.
    background.checkpoint_on_close = false;
    let log = Log::open(background.clone()).unwrap().0;
    for n in 1..=RECORDS {
        log.append_blocking(record(n)).unwrap();
    }
    wait_for_checkpoints(&log, 1);
    for sealed in log.sealed_segments() {
        compact(&log, sealed.first_index).unwrap();
    }
    let before = log.stats().checkpoints;
    for n in RECORDS + 1..=RECORDS * 2 {
        log.append_blocking(record(n)).unwrap();
    }
    wait_for_checkpoints(&log, before + 1);
    let written = readable(&log);
    let keys = latest(&log);
    log.close().unwrap();
    // The background checkpoint matches the compacted segments: opening loads it.
    let (log, report) = Log::open(background).unwrap();
    assert!(report.checkpoint.is_some(), "{report:?}");
    assert!(report.records_scanned < RECORDS, "{report:?}");
    assert_eq!(readable(&log), written);
    assert_eq!(latest(&log), keys);
    log.close().unwrap();
}

#[test]
fn a_compaction_asks_for_a_checkpoint_that_matches_it() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let mut background = config(&live, true);
    // No checkpoint from the interval within this test: only the compaction asks for one.
    background.checkpoint_interval_records = 1_000_000;
    background.checkpoint_on_close = false;
    let log = Log::open(background).unwrap().0;
    for n in 1..=RECORDS {
        log.append_blocking(record(n)).unwrap();
    }
    assert_eq!(log.stats().checkpoints, 0);
    let sealed = log.sealed_segments();
    compact(&log, sealed[0].first_index).unwrap();
    wait_for_checkpoints(&log, 1);
    let written = readable(&log);
    // A crash now: the image opens from the checkpoint, which lists the compacted segment.
    let image = root.path().join("image");
    common::crash_image(&live, &image);
    let (opened, report) = Log::open(config(&image, true)).unwrap();
    assert!(report.checkpoint.is_some(), "{report:?}");
    assert_eq!(report.records_scanned, 0, "{report:?}");
    assert_eq!(readable(&opened), written);
    drop(opened);
    log.close().unwrap();
}
