//! Append groups are atomic on disk: a log cut at any byte — at every record boundary and
//! inside every record, in every segment — opens with exactly the groups that were whole before
//! the cut, never a part of one, and reports the valid records it cut with an incomplete group.
//!
//! A crash can only leave a prefix of what was written (followed by zeros, since segments are
//! zero-filled): cutting at a point in an earlier segment is the crash that happened while that
//! segment was the last, so the later segments are removed for that case.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use spine_storage::format::{SEGMENT_HEADER_SIZE, record_size};
use spine_storage::{BackendChoice, Log, LogConfig, NewRecord};

/// Group sizes written, in order: singles, pairs and larger turns, enough to fill more than one
/// 16 KiB segment so that the rule "a group never spans segments" is exercised too.
const GROUPS: [usize; 14] = [1, 3, 2, 5, 1, 4, 6, 2, 1, 7, 3, 1, 5, 2];
const PAYLOAD: usize = 400;

fn config(dir: &Path) -> LogConfig {
    let mut config = common::config(dir, BackendChoice::Portable);
    config.checkpoint_interval_records = 0;
    config.checkpoint_on_close = false;
    config.use_checkpoint = false;
    config
}

/// One record of the written log: its index, segment file and byte range there, and the index
/// of the last record of its group.
#[derive(Clone, Debug)]
struct Written {
    index: u64,
    segment: usize,
    offset: usize,
    group_last: u64,
}

/// Writes the groups and returns each record's place, read back from the segment files.
fn write_log(dir: &Path) -> Vec<Written> {
    let (log, _) = Log::open(config(dir)).unwrap();
    let mut next_key = 1u64;
    let mut group_of = Vec::new();
    for &size in &GROUPS {
        let records: Vec<NewRecord> = (next_key..next_key + size as u64)
            .map(|k| NewRecord::put(key(k), 1, payload_for(k, PAYLOAD)))
            .collect();
        next_key += size as u64;
        let last = pollster::block_on(log.append_batch(records)).unwrap();
        group_of.extend(std::iter::repeat_n(last.index, size));
    }
    for index in 1..=log.last_position().index {
        let ends = log.read(index, |view| view.ends_group()).unwrap().unwrap();
        assert_eq!(
            ends,
            group_of[index as usize - 1] == index,
            "record {index}"
        );
    }
    log.close().unwrap();
    // Every segment holds whole groups, records back to back from the header on.
    let mut written = Vec::new();
    let mut index = 1u64;
    for (segment, path) in segments(dir).iter().enumerate() {
        let first: u64 = path.file_stem().unwrap().to_string_lossy().parse().unwrap();
        assert_eq!(first, index, "segment {segment} starts a group");
        assert!(index == 1 || group_of[index as usize - 2] == index - 1);
        let size = fs::metadata(path).unwrap().len() as usize;
        let mut offset = SEGMENT_HEADER_SIZE;
        while index as usize <= group_of.len() && offset + record_size(PAYLOAD) <= size {
            // Stop where the next group does not fit: it went to the next segment.
            let group_last = group_of[index as usize - 1];
            let group_start = index == 1 || group_of[index as usize - 2] == index - 1;
            let group_bytes = (group_last - index + 1) as usize * record_size(PAYLOAD);
            if group_start && offset + group_bytes > size {
                break;
            }
            written.push(Written {
                index,
                segment,
                offset,
                group_last,
            });
            offset += record_size(PAYLOAD);
            index += 1;
        }
    }
    assert_eq!(written.len(), group_of.len(), "every record was found");
    assert!(
        written.last().unwrap().segment >= 1,
        "the log spans segments"
    );
    written
}

/// Copies the log in `from` to `to`, keeping the bytes before `cut` in segment `segment`,
/// zeroing the rest of it, and leaving out the later segments.
fn cut_copy(from: &Path, to: &Path, segment: usize, cut: usize) {
    fs::create_dir_all(to).unwrap();
    for (ordinal, path) in segments(from).iter().enumerate() {
        if ordinal > segment {
            break;
        }
        let mut bytes = fs::read(path).unwrap();
        if ordinal == segment {
            bytes[cut..].fill(0);
        }
        fs::write(to.join(path.file_name().unwrap()), bytes).unwrap();
    }
}

#[test]
fn a_log_cut_anywhere_keeps_whole_groups_only() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let written = write_log(&original);
    let mut cases = 0;
    for (position, record) in written.iter().enumerate() {
        // At the record's start, inside its header, inside its payload, and just before its
        // end: all leave the record incomplete.
        for into in [0, 20, 100, record_size(PAYLOAD) - 8] {
            let cut = record.offset + into;
            let copy = dir.path().join(format!("cut-{position}-{into}"));
            cut_copy(&original, &copy, record.segment, cut);
            // Whole before the cut: the records before this one. Kept: up to the last group end
            // among them.
            let kept = written[..position]
                .iter()
                .rev()
                .find(|before| before.group_last == before.index)
                .map_or(0, |before| before.index);
            let cut_valid = (record.index - 1) - kept;
            let (log, report) = Log::open(config(&copy)).unwrap();
            assert_eq!(
                log.last_position().index,
                kept,
                "cut at record {} + {into} bytes",
                record.index
            );
            for index in 1..=kept {
                assert_eq!(
                    log.read(index, |view| view.payload().to_vec()).unwrap(),
                    Some(payload_for(index, PAYLOAD)),
                    "record {index} kept whole"
                );
            }
            assert_eq!(
                log.read(kept + 1, |_| ()).unwrap(),
                None,
                "nothing of the cut group is readable"
            );
            match &report.torn_tail {
                Some(torn) => assert_eq!(
                    torn.valid_records_discarded, cut_valid,
                    "cut at record {} + {into}: {torn:?}",
                    record.index
                ),
                None => assert!(
                    cut_valid == 0 && into == 0,
                    "a cut inside a record or a group is reported (record {} + {into})",
                    record.index
                ),
            }
            // The log goes on from the cut, and the next open agrees without cutting again.
            let next = NewRecord::put(key(9_000), 1, payload_for(9_000, PAYLOAD));
            let appended = log.append_blocking(next).unwrap();
            assert_eq!(appended.index, kept + 1);
            log.close().unwrap();
            let (log, report) = Log::open(config(&copy)).unwrap();
            assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
            assert_eq!(log.last_position().index, kept + 1);
            drop(log);
            fs::remove_dir_all(&copy).unwrap();
            cases += 1;
        }
    }
    assert_eq!(cases, written.len() * 4);
}
