//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use spine_storage::{
    BackendChoice, Key, Log, LogConfig, NewRecord, RecordView, SecondaryKey, SecondaryKeys,
};

/// Both real backends: every test that takes a backend runs against each.
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::IoUring, BackendChoice::Portable];

/// A small-segment configuration so tests cross segment boundaries quickly.
pub fn config(dir: &Path, backend: BackendChoice) -> LogConfig {
    let mut config = LogConfig::new(dir);
    config.segment_size = 16 * 1024;
    config.payload_bytes_max = 2048;
    config.batch_bytes_max = 8 * 1024;
    config.backend = backend;
    config.expected_keys = 64;
    config
}

pub fn key(value: u64) -> Key {
    Key::new(value).expect("test keys are non-zero")
}

/// The payload test records carry: a function of the key alone, so a reader can check it.
pub fn payload_for(key: u64, length: usize) -> Vec<u8> {
    let mut state = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Appends `count` records with keys `first..first + count`, payload length `length`.
pub fn append_records(log: &Log, first: u64, count: u64, length: usize) {
    for k in first..first + count {
        log.append_blocking(NewRecord::put(key(k), 1, payload_for(k, length)))
            .expect("append");
    }
}

/// Segment files of a log directory, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    found.sort();
    found
}

/// Removes checkpoints so that opening scans every record.
pub fn remove_checkpoints(dir: &Path) {
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "ckpt") {
            fs::remove_file(path).expect("remove checkpoint");
        }
    }
}

/// Copies every file of a log directory, as a crash would leave it (the page cache survives a
/// process crash, so what the running log has written is what a new process finds).
pub fn crash_image(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create crash image dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "LOCK" {
            continue;
        }
        match fs::copy(entry.path(), to.join(name)) {
            Ok(_) => {}
            // A checkpoint replaced while copying: the image simply does not have it.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("copy: {error}"),
        }
    }
}

/// Derives one secondary key: the first byte of the payload, as a surname-like bucket.
pub struct FirstByte;

impl SecondaryKeys for FirstByte {
    fn index_count(&self) -> usize {
        1
    }

    fn extract(&self, record: &RecordView<'_>, out: &mut Vec<SecondaryKey>) {
        if let Some(&first) = record.payload().first() {
            out.push(SecondaryKey {
                index: 0,
                key: vec![first],
            });
        }
    }
}
