//! A failed write or flush stops the log: that batch and every later append fail until the log
//! is reopened, and nothing acknowledged before is lost. The failure is injected into a real
//! backend here; `tests/tests/log_disk_full.rs` fills a real small file system.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_storage::{AppendError, FaultInjection, Log, NewRecord};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn fail_stop_case(os_error: i32, write_reaches_disk: bool) {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let mut faulty = config(dir.path(), backend);
        faulty.fault_injection = Some(FaultInjection {
            fail_after_batches: 10,
            os_error,
            write_reaches_disk,
        });
        let (log, _) = Log::open(faulty).unwrap();
        append_records(&log, 1, 10, 100);
        let error = log
            .append_blocking(NewRecord::put(key(11), 1, payload_for(11, 100)))
            .unwrap_err();
        let AppendError::FailStop { cause } = &error else {
            panic!("expected FailStop, got {error}")
        };
        assert_eq!(cause.raw_os_error(), Some(os_error));
        assert!(log.failure().is_some());
        for k in 12..15 {
            let later = log
                .append_blocking(NewRecord::put(key(k), 1, payload_for(k, 100)))
                .unwrap_err();
            assert!(matches!(later, AppendError::FailStop { .. }), "{later}");
        }
        // Reads of what was acknowledged still work while stopped.
        assert_eq!(
            log.get(key(10), |v| v.payload().to_vec()).unwrap(),
            Some(payload_for(10, 100))
        );
        drop(log);
        let (log, report) = Log::open(config(dir.path(), backend)).unwrap();
        let expected = if write_reaches_disk { 11 } else { 10 };
        assert_eq!(
            report.records, expected,
            "the failed batch may or may not be there, nothing else changes"
        );
        for k in 1..=10 {
            assert_eq!(
                log.get(key(k), |v| v.payload().to_vec()).unwrap(),
                Some(payload_for(k, 100))
            );
        }
        append_records(&log, 20, 3, 100);
    }
}

#[test]
fn a_failed_write_stops_the_log_until_reopened() {
    fail_stop_case(ENOSPC, false);
}

#[test]
fn a_failed_flush_stops_the_log_until_reopened() {
    fail_stop_case(EIO, true);
}

#[test]
fn the_error_message_says_what_happened_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut faulty = config(dir.path(), spine_storage::BackendChoice::Portable);
    faulty.fault_injection = Some(FaultInjection {
        fail_after_batches: 0,
        os_error: ENOSPC,
        write_reaches_disk: false,
    });
    let (log, _) = Log::open(faulty).unwrap();
    let error = log
        .append_blocking(NewRecord::unkeyed(1, &b"x"[..]))
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("must be reopened") && text.contains("No space left on device"),
        "{text}"
    );
}
