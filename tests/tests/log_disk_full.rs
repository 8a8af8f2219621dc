//! Disk-full test: fill a real, small tmpfs with a log until the kernel answers ENOSPC, and check
//! that the log stops (fail-stop) instead of losing or corrupting data, and that reopening gives
//! back every acknowledged record.
//!
//! Needs root (to mount). Set `SPINE_SKIP_MOUNT_TESTS=1` to skip it where mounting is impossible.

// A panic is how a test reports a failure, helpers included (clippy exempts only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use spine_storage::{AppendError, Key, Log, NewRecord};
use spine_tests::{CRASH_RECORD_KIND, crash_key, crash_log_config, payload_for_key};

const TMPFS_SIZE: &str = "2m";
const SEGMENT_SIZE: u64 = 256 * 1024;
const ENOSPC: i32 = 28;
/// Far more appends than 2 MiB can hold: reaching it means ENOSPC never came.
const APPENDS_MAX: u32 = 100_000;

/// A tmpfs mounted on a fresh temporary directory; unmounted on drop, also when a test panics.
struct TmpfsMount {
    point: tempfile::TempDir,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size`; `Err` with the reason if `mount` fails.
    fn new(size: &str) -> Result<Self, String> {
        let point = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(point.path())
            .output()
            .map_err(|error| format!("running mount: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Self { point })
    }

    fn path(&self) -> &Path {
        self.point.path()
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Runs before the TempDir field is dropped, so the directory is empty when it is removed.
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !matches!(unmounted, Ok(status) if status.success()) {
            eprintln!(
                "umount {} failed ({unmounted:?}); detaching it lazily",
                self.path().display()
            );
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Mounts the tmpfs, or `None` when mounting fails and `SPINE_SKIP_MOUNT_TESTS=1` says to skip.
fn mount_or_skip() -> Option<TmpfsMount> {
    match TmpfsMount::new(TMPFS_SIZE) {
        Ok(mount) => Some(mount),
        Err(reason) if std::env::var("SPINE_SKIP_MOUNT_TESTS").as_deref() == Ok("1") => {
            println!("log_disk_full: SKIPPED (SPINE_SKIP_MOUNT_TESTS=1): {reason}");
            None
        }
        Err(reason) => panic!(
            "this test mounts a tmpfs and needs root (CAP_SYS_ADMIN): {reason}\n\
             set SPINE_SKIP_MOUNT_TESTS=1 to skip it where mounting is impossible"
        ),
    }
}

fn record(counter: u32) -> (Key, NewRecord) {
    let key = Key::new(crash_key(1, counter).unwrap()).unwrap();
    let payload = payload_for_key(key.get());
    (key, NewRecord::put(key, CRASH_RECORD_KIND, payload))
}

/// Asserts that `error` is a fail-stop caused by ENOSPC.
fn assert_enospc_fail_stop(error: &AppendError, what: &str) {
    match error {
        AppendError::FailStop { cause } => assert_eq!(
            cause.raw_os_error(),
            Some(ENOSPC),
            "{what}: fail-stop, but not caused by ENOSPC: {cause}"
        ),
        other => panic!("{what}: expected a fail-stop caused by ENOSPC, got {other:?}"),
    }
}

/// Asserts that every acknowledged `(index, key)` reads back whole, by index and by key.
fn assert_acknowledged_readable(log: &Log, acked: &[(u64, Key)]) {
    for &(index, key) in acked {
        let expected = payload_for_key(key.get());
        let by_index = log
            .read(index, |view| (view.key(), view.payload() == expected))
            .unwrap();
        assert_eq!(
            by_index,
            Some((Some(key), true)),
            "acknowledged record {index} is lost or damaged"
        );
        let by_key = log.get(key, |view| view.position().index).unwrap();
        assert_eq!(
            by_key,
            Some(index),
            "get({}) lost record {index}",
            key.get()
        );
    }
}

/// Appends records `*counter`, `*counter + 1`, ... until one fails, adding each acknowledged
/// one to `acked`; returns the failure.
fn append_until_error(log: &Log, counter: &mut u32, acked: &mut Vec<(u64, Key)>) -> AppendError {
    loop {
        assert!(*counter < APPENDS_MAX, "{counter} appends and no ENOSPC");
        let (key, record) = record(*counter);
        *counter += 1;
        match log.append_blocking(record) {
            Ok(position) => acked.push((position.index, key)),
            Err(error) => return error,
        }
    }
}

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn full_disk_stops_the_log_and_keeps_acknowledged_records() {
    let Some(mount) = mount_or_skip() else {
        return;
    };
    let config = crash_log_config(mount.path().join("log"), SEGMENT_SIZE);
    let (log, _) = Log::open(config.clone()).unwrap();

    // Fill the disk; every append before the first failure was acknowledged.
    let mut acked = Vec::new();
    let mut counter = 1;
    let first_error = append_until_error(&log, &mut counter, &mut acked);
    println!(
        "log_disk_full: {} appends acknowledged, then: {first_error}",
        acked.len()
    );
    assert!(!acked.is_empty(), "the very first append failed");
    assert_enospc_fail_stop(&first_error, "the first failed append");
    assert!(
        log.failure().is_some(),
        "the log does not report its failure"
    );

    // Fail-stop: every later append fails the same way, whatever its size.
    for attempt in 0..5 {
        let (_, mut record) = record(counter);
        counter += 1;
        if attempt == 0 {
            record.payload = bytes::Bytes::new();
        }
        let error = log.append_blocking(record).unwrap_err();
        assert_enospc_fail_stop(&error, &format!("append {attempt} after the failure"));
    }
    // Reads keep working while the log is stopped.
    assert_acknowledged_readable(&log, &acked);
    log.close().unwrap();

    // The disk is still full: reopening must still work and give everything back; appending
    // fails again at the latest when the log needs a new segment.
    let (log, report) = Log::open(config.clone()).unwrap_or_else(|error| {
        panic!(
            "STORAGE DESIGN QUESTION: reopening a log on a full disk fails: {error}\n\
             (all {} acknowledged records are on disk)",
            acked.len()
        )
    });
    assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
    assert!(log.last_position().index >= acked.last().unwrap().0);
    assert_acknowledged_readable(&log, &acked);
    let before = acked.len();
    let error = append_until_error(&log, &mut counter, &mut acked);
    assert_enospc_fail_stop(&error, "appending after reopening on the full disk");
    println!(
        "log_disk_full: reopened on the full disk ({} records, {} segments): {} more appends, \
         then {error}",
        report.records,
        report.segments,
        acked.len() - before
    );
    log.close().unwrap();

    // With space again (the tmpfs grown), a reopened log appends across new segments. 8 MiB
    // leaves room for the checkpoint written at close too (its primary index alone is ~1 MiB).
    let grown = Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(mount.path())
        .status()
        .unwrap();
    assert!(grown.success(), "growing the tmpfs failed: {grown}");
    let (log, _) = Log::open(config).unwrap();
    let before = acked.len();
    for _ in 0..2000 {
        let (key, record) = record(counter);
        counter += 1;
        let position = log.append_blocking(record).unwrap();
        acked.push((position.index, key));
    }
    assert_acknowledged_readable(&log, &acked);
    println!(
        "log_disk_full: with space again, {} more appends; {} acknowledged in all are readable",
        acked.len() - before,
        acked.len()
    );
    log.close().unwrap();
}
