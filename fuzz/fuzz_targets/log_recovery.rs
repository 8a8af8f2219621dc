//! Recovery of an arbitrary log image: a segment whose header is valid and whose records are the
//! input (or, when the first byte is odd, a segment that is the input whole) opened read-only.
//! Never a panic: the log opens or says why not, and every record it reports is readable.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use spine_storage::log::record;
use spine_storage::{Log, LogConfig, NoSecondaryKeys};

/// The smallest segment that holds a record of `PAYLOAD_MAX` bytes, in whole pages.
const SEGMENT_SIZE: u64 = 16 * 1024;
const PAYLOAD_MAX: u32 = 4096;
/// The name of a log's first segment, as `storage/FORMAT.md` gives it.
const FIRST_SEGMENT: &str = "00000000000000000001.seg";

/// One directory for every input, in memory where the machine has a tmpfs: a new directory and a
/// disk write per input would cost more than the recovery under test.
fn log_dir() -> &'static PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        };
        dir.expect("a temporary directory")
    });
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| dir.path().to_path_buf())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut image = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let mut image = record::encode_segment_header(1, SEGMENT_SIZE).to_vec();
        image.extend_from_slice(rest);
        image
    };
    image.truncate(SEGMENT_SIZE as usize);
    image.resize(SEGMENT_SIZE as usize, 0);
    let dir = log_dir();
    std::fs::write(dir.join(FIRST_SEGMENT), &image).expect("the segment written");
    let mut config = LogConfig::new(dir);
    config.segment_size = SEGMENT_SIZE;
    config.payload_bytes_max = PAYLOAD_MAX;
    config.use_checkpoint = false;
    let Ok((log, report)) = Log::open_read_only(config, Arc::new(NoSecondaryKeys)) else {
        return;
    };
    let last = log.last_position().index;
    assert_eq!(report.records, last);
    for index in 1..=last {
        let read = log.read(index, |view| view.position().index);
        assert_eq!(
            read.ok().flatten(),
            Some(index),
            "record {index} reads back"
        );
    }
});
