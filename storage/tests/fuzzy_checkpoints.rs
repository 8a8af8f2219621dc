//! Background checkpoints are read from the live indexes while the writer goes on: here a
//! writer thread rewrites every key each round with another secondary key and deletes a tenth
//! of them (a deletion shifts other keys back in the primary table), the table growing from 16
//! slots, with a checkpoint asked for every 2,000 records. Meanwhile images of the directory
//! are taken as a crash would leave it; each must open (from its newest checkpoint, mostly one
//! read while records were written after it) to exactly the indexes the records up to its last
//! one give.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::*;
use spine_storage::{BackendChoice, Log, NewRecord};

const KEYS: u64 = 30_000;
const ROUNDS: u64 = 5;
const BUCKETS: u64 = 5;

fn record(round: u64, k: u64) -> NewRecord {
    let first = b'a' + ((k * 7 + round) % BUCKETS) as u8;
    NewRecord::put(
        key(k),
        1,
        [&[first][..], &payload_for(k + round, 24)].concat(),
    )
}

/// Every record the writer appends, in log order: a key and the round that rewrote it, or
/// `None` for its deletion.
fn schedule() -> Vec<(u64, Option<u64>)> {
    let mut records = Vec::new();
    for round in 0..ROUNDS {
        records.extend((1..=KEYS).map(|k| (k, Some(round))));
        records.extend(
            (1..=KEYS)
                .filter(|k| (k + round) % 10 == 0)
                .map(|k| (k, None)),
        );
    }
    records
}

/// Checks that `recovered` holds what the first records of `schedule` give, up to its last.
fn assert_indexes_of_the_records(recovered: &Log, schedule: &[(u64, Option<u64>)]) {
    let last = recovered.last_position().index as usize;
    let mut latest = std::collections::HashMap::new();
    for &(k, round) in &schedule[..last] {
        latest.insert(k, round);
    }
    let mut buckets = vec![Vec::new(); BUCKETS as usize];
    for k in 1..=KEYS {
        let expected = latest.get(&k).copied().flatten().map(|round| {
            let payload = record(round, k).payload.to_vec();
            buckets[usize::from(payload[0] - b'a')].push(key(k));
            payload
        });
        let found = recovered
            .get(key(k), |view| view.payload().to_vec())
            .unwrap();
        assert_eq!(found, expected, "key {k} after {last} records");
    }
    for (bucket, keys) in buckets.iter().enumerate() {
        let prefix = [b'a' + bucket as u8];
        let entries = recovered.secondary_prefix(0, &prefix, KEYS as usize + 1);
        assert_eq!(&entries, keys, "bucket {bucket} after {last} records");
    }
}

/// Copies a log directory that is being written as a crash would leave it: checkpoints first
/// (what they cover is on disk by then), then the segments newest first, so that each copied
/// segment but the newest is sealed and whole (a segment created after the listing is simply
/// not in the image, a tail a crash cut).
fn image_while_writing(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let mut names: Vec<String> = fs::read_dir(from)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".ckpt") || name.ends_with(".seg"))
        .collect();
    names.sort_by_key(|name| (!name.ends_with(".ckpt"), std::cmp::Reverse(name.clone())));
    for name in names {
        match fs::copy(from.join(&name), to.join(&name)) {
            Ok(_) => {}
            // A checkpoint replaced meanwhile: the image does not have it.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("copying {name}: {error}"),
        }
    }
}

#[test]
fn checkpoints_read_while_keys_change_recover_the_indexes_of_their_records() {
    let root = tempfile::tempdir().unwrap();
    let live_dir = root.path().join("live");
    let mut background = config(&live_dir, BackendChoice::Portable);
    background.segment_size = 1 << 20;
    background.expected_keys = 16;
    background.checkpoint_interval_records = 2_000;
    background.checkpoint_on_close = false;
    let (live, _) = Log::open_with(background, Arc::new(FirstByte)).unwrap();
    let live = Arc::new(live);
    let records = schedule();
    let writer = {
        let (live, records) = (Arc::clone(&live), records.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for chunk in records.chunks(500) {
                let batch = chunk
                    .iter()
                    .map(|&(k, round)| match round {
                        Some(round) => record(round, k),
                        None => NewRecord::delete(key(k), 1),
                    })
                    .collect();
                runtime.block_on(live.append_batch(batch)).unwrap();
            }
        })
    };
    let mut fuzzy_openings = 0;
    for image_number in 0.. {
        let writing = !writer.is_finished();
        let image = root.path().join(format!("image-{image_number}"));
        image_while_writing(&live_dir, &image);
        let (recovered, report) = open_image(&image);
        assert_indexes_of_the_records(&recovered, &records);
        fuzzy_openings +=
            usize::from(writing && report.checkpoint.is_some() && report.records_scanned > 0);
        drop(recovered);
        fs::remove_dir_all(&image).unwrap();
        if !writing {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert!(
        fuzzy_openings >= 2,
        "only {fuzzy_openings} images opened from a checkpoint with records after it"
    );
    let live = Arc::into_inner(live).expect("the writer is done");
    live.close().unwrap();
}

fn open_image(dir: &Path) -> (Log, spine_storage::RecoveryReport) {
    let mut opened = config(dir, BackendChoice::Portable);
    opened.segment_size = 1 << 20;
    opened.checkpoint_on_close = false;
    opened.checkpoint_interval_records = 0;
    Log::open_with(opened, Arc::new(FirstByte)).unwrap()
}
