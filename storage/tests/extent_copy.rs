//! A log copied by its extent while appends go on opens at exactly the extent's position: every
//! record up to it readable and unchanged, no torn tail, nothing after it.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::*;
use spine_storage::index::secondary::NoSecondaryKeys;
use spine_storage::{BackendChoice, Log, LogExtent, NewRecord};

/// Records appended one by one before the groups: more than a segment holds.
const PLAIN: u64 = 80;

/// Copies every segment of `extent` into `to`: its used bytes, then zeros to its size.
fn copy(extent: &LogExtent, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for segment in &extent.segments {
        let bytes = fs::read(&segment.path).unwrap();
        let mut copied = bytes[..segment.used_bytes as usize].to_vec();
        copied.resize(segment.size as usize, 0);
        fs::write(to.join(segment.path.file_name().unwrap()), copied).unwrap();
    }
}

#[test]
fn a_copy_by_extent_taken_under_appends_opens_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(config(dir.path(), BackendChoice::Portable)).unwrap();
    let log = Arc::new(log);
    append_records(&log, 1, PLAIN, 300);
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            let mut key_value = 1_000;
            while !stop.load(Ordering::Relaxed) {
                // Groups of three, so that a cut inside a group would show.
                let group = (0..3)
                    .map(|n| NewRecord::put(key(key_value + n), 1, payload_for(key_value + n, 200)))
                    .collect();
                pollster::block_on(log.append_batch(group)).unwrap();
                key_value += 3;
            }
            key_value
        })
    };
    let copies = tempfile::tempdir().unwrap();
    let mut extents = Vec::new();
    for copy_number in 0..5 {
        thread::sleep(std::time::Duration::from_millis(5));
        let extent = log.hold_writes().extent().unwrap();
        assert!(
            extent.segments.len() > 1,
            "the test means to cross segments"
        );
        copy(&extent, &copies.path().join(copy_number.to_string()));
        extents.push(extent);
    }
    stop.store(true, Ordering::Relaxed);
    let last_key = appender.join().unwrap();
    assert!(
        last_key > 1_000,
        "appends went on while the extents were read"
    );

    for (copy_number, extent) in extents.iter().enumerate() {
        let mut config = config(
            &copies.path().join(copy_number.to_string()),
            BackendChoice::Portable,
        );
        config.use_checkpoint = false;
        let (copy, report) = Log::open_read_only(config, Arc::new(NoSecondaryKeys)).unwrap();
        assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
        assert_eq!(copy.last_position(), extent.last);
        assert_eq!(extent.last.index % 3, PLAIN % 3, "whole groups only");
        for index in 1..=extent.last.index {
            let original = log.read(index, |record| record.payload().to_vec()).unwrap();
            let copied = copy
                .read(index, |record| record.payload().to_vec())
                .unwrap();
            assert!(copied.is_some(), "record {index}");
            assert_eq!(original, copied, "record {index}");
        }
        assert_eq!(copy.read(extent.last.index + 1, |_| ()).unwrap(), None);
    }
}
