//! Property test: a power cut during the last batch's write may leave any subset of its sectors
//! on disk, in any order. Whatever subset survives, the log opens, keeps every acknowledged
//! record, exposes only whole append groups of the torn batch (a prefix of its groups, never
//! part of one), and stays consistent when appended to and reopened again (the torn bytes were
//! zeroed, not merely skipped).
//!
//! A SIGKILL cannot produce such tears (the page cache survives a process), so the test writes
//! the torn batch itself, with the log's own encoder, where the next batch would have gone.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use common::*;
use proptest::prelude::*;
use spine_storage::format::{RECORD_FLAG_GROUP_END, SEGMENT_HEADER_SIZE, record_size};
use spine_storage::log::record::{Position, RecordHeader, encode};
use spine_storage::{BackendChoice, Log, LogConfig, NewRecord};

/// The unit a disk writes atomically.
const SECTOR: usize = 512;
/// Keys of the torn batch start here, above the acknowledged ones.
const TORN_KEY_BASE: u64 = 1_000;

fn config(dir: &std::path::Path, use_checkpoint: bool) -> LogConfig {
    let mut config = common::config(dir, BackendChoice::Portable);
    config.segment_size = 64 * 1024;
    config.use_checkpoint = use_checkpoint;
    config
}

#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn run(
    acked_lengths: Vec<usize>,
    torn_lengths: Vec<usize>,
    group_ends: Vec<bool>,
    sector_kept: Vec<bool>,
    use_checkpoint: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let acked = acked_lengths.len() as u64;
    {
        let (log, _) = Log::open(config(dir.path(), true)).unwrap();
        for (i, &length) in acked_lengths.iter().enumerate() {
            let k = i as u64 + 1;
            log.append_blocking(NewRecord::put(key(k), 1, payload_for(k, length)))
                .unwrap();
        }
        log.close().unwrap();
    }
    // The torn batch, encoded as the writer would have, right after the last acknowledged record.
    let write_offset =
        SEGMENT_HEADER_SIZE + acked_lengths.iter().map(|&l| record_size(l)).sum::<usize>();
    let mut batch = Vec::new();
    // Whether torn record j ends its group; a batch always ends with a group's last record.
    let ends_group = |j: usize| j + 1 == torn_lengths.len() || group_ends[j % group_ends.len()];
    for (j, &length) in torn_lengths.iter().enumerate() {
        let k = TORN_KEY_BASE + j as u64;
        let header = RecordHeader {
            payload_len: length as u32,
            position: Position {
                term: 1,
                index: acked + 1 + j as u64,
            },
            key: k,
            kind: 1,
            flags: if ends_group(j) {
                RECORD_FLAG_GROUP_END
            } else {
                0
            },
            batch_offset: j as u32,
        };
        encode(&mut batch, &header, &payload_for(k, length));
    }
    let segment = OpenOptions::new()
        .write(true)
        .open(&segments(dir.path())[0])
        .unwrap();
    let batch_end = write_offset + batch.len();
    let mut sector_start = write_offset - write_offset % SECTOR;
    let mut sector_index = 0;
    while sector_start < batch_end {
        let from = sector_start.max(write_offset);
        let to = (sector_start + SECTOR).min(batch_end);
        if sector_kept[sector_index % sector_kept.len()] {
            segment
                .write_all_at(&batch[from - write_offset..to - write_offset], from as u64)
                .unwrap();
        }
        sector_start += SECTOR;
        sector_index += 1;
    }
    drop(segment);

    let (log, _) = Log::open(config(dir.path(), use_checkpoint)).unwrap();
    let last = log.last_position().index;
    prop_assert!(
        last >= acked,
        "an acknowledged record was lost: {last} < {acked}"
    );
    prop_assert!(last <= acked + torn_lengths.len() as u64);
    prop_assert!(
        last == acked || ends_group((last - acked - 1) as usize),
        "the log ends inside a group of the torn batch, at {last}"
    );
    for index in 1..=last {
        let (expected_key, length) = if index <= acked {
            (index, acked_lengths[index as usize - 1])
        } else {
            let j = (index - acked - 1) as usize;
            (TORN_KEY_BASE + j as u64, torn_lengths[j])
        };
        let read = log
            .read(index, |v| (v.key().map(|k| k.get()), v.payload().to_vec()))
            .unwrap();
        prop_assert_eq!(
            read,
            Some((Some(expected_key), payload_for(expected_key, length)))
        );
    }
    // The log goes on after the tear, and a later recovery agrees.
    log.append_blocking(NewRecord::put(key(5_000), 1, payload_for(5_000, 300)))
        .unwrap();
    drop(log);
    let (log, report) = Log::open(config(dir.path(), false)).unwrap();
    prop_assert!(
        report.torn_tail.is_none(),
        "the torn bytes were zeroed at the first recovery"
    );
    prop_assert_eq!(log.last_position().index, last + 1);
    prop_assert_eq!(
        log.get(key(5_000), |v| v.position().index).unwrap(),
        Some(last + 1)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_tear_of_the_last_batch_loses_nothing_acknowledged(
        acked_lengths in proptest::collection::vec(0usize..1000, 1..20),
        torn_lengths in proptest::collection::vec(0usize..1000, 1..20),
        group_ends in proptest::collection::vec(any::<bool>(), 1..8),
        sector_kept in proptest::collection::vec(any::<bool>(), 1..64),
        use_checkpoint in any::<bool>(),
    ) {
        run(acked_lengths, torn_lengths, group_ends, sector_kept, use_checkpoint)?;
    }
}
