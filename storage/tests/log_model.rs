//! Property test: random sequences of append / delete / read / reopen / crash agree with a simple
//! model, against both io backends.
//!
//! Invariants checked:
//! - every acknowledged record reads back by position, whole and unchanged;
//! - `get` returns each key's latest record and nothing for deleted keys;
//! - the secondary index holds exactly the model's derived keys;
//! - reopening (with or without a checkpoint) and crashing (opening a copy of the directory
//!   taken while the log runs) lose nothing acknowledged;
//! - compacting a sealed segment keeps exactly each key's latest record, every delete, the
//!   segment's last record and the records the caller keeps (here: salt divisible by 3), and
//!   drops the rest, which read as absent by index from then on, reopened or not.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use spine_storage::io::paced::Pace;
use spine_storage::{
    BackendChoice, Log, LogConfig, NewRecord, RecordView, SecondaryKey, SecondaryKeys,
};

/// Small, so keys collide and are updated and deleted often.
const KEY_SPACE: u64 = 24;
const PAYLOAD_BYTES_MAX: usize = 700;

#[derive(Clone, Debug)]
enum Operation {
    Put {
        key: u64,
        length: usize,
        salt: u8,
    },
    Delete {
        key: u64,
    },
    Read {
        index: u64,
    },
    Get {
        key: u64,
    },
    Reopen {
        use_checkpoint: bool,
    },
    Crash,
    Checkpoint,
    /// Compacts the sealed segment at this position (modulo their number), if there is one.
    Compact {
        nth: usize,
    },
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        10 => (1..=KEY_SPACE, 0..=PAYLOAD_BYTES_MAX, any::<u8>()).prop_map(|(key, length, salt)| Operation::Put { key, length, salt }),
        2 => (1..=KEY_SPACE).prop_map(|key| Operation::Delete { key }),
        3 => (0u64..200).prop_map(|index| Operation::Read { index }),
        3 => (1..=KEY_SPACE).prop_map(|key| Operation::Get { key }),
        1 => any::<bool>().prop_map(|use_checkpoint| Operation::Reopen { use_checkpoint }),
        1 => Just(Operation::Crash),
        1 => Just(Operation::Checkpoint),
        2 => (0usize..8).prop_map(|nth| Operation::Compact { nth }),
    ]
}

/// The secondary key: the payload's first byte (the salt), so updates move keys between buckets.
struct Salt;

impl SecondaryKeys for Salt {
    fn index_count(&self) -> usize {
        1
    }

    fn extract(&self, record: &RecordView<'_>, out: &mut Vec<SecondaryKey>) {
        if let Some(&salt) = record.payload().first() {
            out.push(SecondaryKey {
                index: 0,
                key: vec![salt % 4],
            });
        }
    }
}

fn payload(key: u64, length: usize, salt: u8) -> Vec<u8> {
    let mut bytes = payload_for(key ^ u64::from(salt) << 32, length);
    if let Some(first) = bytes.first_mut() {
        *first = salt;
    }
    bytes
}

/// What the caller of a compaction keeps beyond what the log keeps.
fn kept_by_caller(payload: &[u8]) -> bool {
    payload.first().is_some_and(|salt| salt % 3 == 0)
}

#[derive(Default)]
struct Model {
    /// By log index: (key, payload, deleted).
    records: Vec<(u64, Vec<u8>, bool)>,
    /// Indices a compaction dropped.
    dropped: BTreeSet<u64>,
    /// Key -> index of its latest record, for keys not deleted.
    latest: BTreeMap<u64, u64>,
}

struct Harness {
    backend: BackendChoice,
    root: tempfile::TempDir,
    generation: usize,
    log: Option<Log>,
}

impl Harness {
    fn dir(&self) -> PathBuf {
        self.root.path().join(format!("log-{}", self.generation))
    }

    fn config(&self, use_checkpoint: bool) -> LogConfig {
        let mut config = config(&self.dir(), self.backend);
        config.segment_size = 8 * 1024;
        config.payload_bytes_max = PAYLOAD_BYTES_MAX as u32;
        config.checkpoint_interval_records = 7;
        config.use_checkpoint = use_checkpoint;
        config
    }

    fn open(&mut self, use_checkpoint: bool) {
        let (log, _) = Log::open_with(self.config(use_checkpoint), Arc::new(Salt)).expect("open");
        self.log = Some(log);
    }

    fn log(&self) -> &Log {
        self.log.as_ref().expect("open")
    }
}

fn check_everything(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.last_position().index, model.records.len() as u64);
    for (at, (key_value, bytes, deleted)) in model.records.iter().enumerate() {
        let index = at as u64 + 1;
        if model.dropped.contains(&index) {
            prop_assert_eq!(log.read(index, |_| ()).unwrap(), None, "dropped {}", index);
            continue;
        }
        let read = log
            .read(at as u64 + 1, |v| {
                (
                    v.key().map(|k| k.get()),
                    v.payload().to_vec(),
                    v.is_delete(),
                )
            })
            .unwrap();
        prop_assert_eq!(read, Some((Some(*key_value), bytes.clone(), *deleted)));
    }
    let mut buckets: BTreeMap<u8, BTreeSet<u64>> = BTreeMap::new();
    for k in 1..=KEY_SPACE {
        let got = log.get(key(k), |v| v.position().index).unwrap();
        prop_assert_eq!(got, model.latest.get(&k).copied());
        if let Some(&index) = model.latest.get(&k) {
            let bytes = &model.records[index as usize - 1].1;
            if let Some(&salt) = bytes.first() {
                buckets.entry(salt % 4).or_default().insert(k);
            }
        }
    }
    for bucket in 0..4u8 {
        let found: BTreeSet<u64> = log
            .secondary_prefix(0, &[bucket], 1000)
            .into_iter()
            .map(|k| k.get())
            .collect();
        prop_assert_eq!(found, buckets.remove(&bucket).unwrap_or_default());
    }
    Ok(())
}

fn run(backend: BackendChoice, operations: Vec<Operation>) -> Result<(), TestCaseError> {
    let mut harness = Harness {
        backend,
        root: tempfile::tempdir().unwrap(),
        generation: 0,
        log: None,
    };
    harness.open(true);
    let mut model = Model::default();
    for operation in operations {
        match operation {
            Operation::Put {
                key: k,
                length,
                salt,
            } => {
                let bytes = payload(k, length, salt);
                let position = harness
                    .log()
                    .append_blocking(NewRecord::put(key(k), 1, bytes.clone()))
                    .unwrap();
                model.records.push((k, bytes, false));
                prop_assert_eq!(position.index, model.records.len() as u64);
                model.latest.insert(k, position.index);
            }
            Operation::Delete { key: k } => {
                harness
                    .log()
                    .append_blocking(NewRecord::delete(key(k), 2))
                    .unwrap();
                model.records.push((k, Vec::new(), true));
                model.latest.remove(&k);
            }
            Operation::Read { index } => {
                let read = harness.log().read(index, |v| v.payload().to_vec()).unwrap();
                let expected = index
                    .checked_sub(1)
                    .and_then(|i| model.records.get(i as usize))
                    .filter(|_| !model.dropped.contains(&index))
                    .map(|r| r.1.clone());
                prop_assert_eq!(read, expected);
            }
            Operation::Get { key: k } => {
                let got = harness.log().get(key(k), |v| v.position().index).unwrap();
                prop_assert_eq!(got, model.latest.get(&k).copied());
            }
            Operation::Reopen { use_checkpoint } => {
                harness.log.take().unwrap().close().unwrap();
                harness.open(use_checkpoint);
                check_everything(harness.log(), &model)?;
            }
            Operation::Crash => {
                let from = harness.dir();
                harness.generation += 1;
                crash_image(&from, &harness.dir());
                // The crashed process's log is dropped only after its image was taken.
                drop(harness.log.take());
                harness.open(true);
                check_everything(harness.log(), &model)?;
            }
            Operation::Checkpoint => {
                harness.log().checkpoint().unwrap();
            }
            Operation::Compact { nth } => compact(harness.log(), &mut model, nth)?,
        }
    }
    check_everything(harness.log(), &model)
}

/// Compacts the `nth` sealed segment (modulo their number) and checks it kept exactly what
/// the model says it must.
fn compact(log: &Log, model: &mut Model, nth: usize) -> Result<(), TestCaseError> {
    let sealed = log.sealed_segments();
    if sealed.is_empty() {
        return Ok(());
    }
    let at = nth % sealed.len();
    let first = sealed[at].first_index;
    let end = sealed[at].last_index + 1;
    let in_range: Vec<u64> = (first..end)
        .filter(|index| !model.dropped.contains(index))
        .collect();
    let last = in_range.last().copied();
    let expected_kept: BTreeSet<u64> = in_range
        .iter()
        .copied()
        .filter(|&index| {
            let (key_value, bytes, deleted) = &model.records[index as usize - 1];
            Some(index) == last
                || *deleted
                || model.latest.get(key_value) == Some(&index)
                || kept_by_caller(bytes)
        })
        .collect();
    let done = log
        .compact_segment(
            first,
            &|view| kept_by_caller(view.payload()),
            &mut Pace::unlimited(),
            1,
        )
        .unwrap();
    prop_assert_eq!(done.records_before, in_range.len() as u64);
    prop_assert_eq!(done.records_kept, expected_kept.len() as u64);
    for index in in_range {
        if !expected_kept.contains(&index) {
            model.dropped.insert(index);
        }
    }
    check_everything(log, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn io_uring_log_agrees_with_the_model(operations in proptest::collection::vec(operation(), 1..120)) {
        run(BackendChoice::IoUring, operations)?;
    }

    #[test]
    fn portable_log_agrees_with_the_model(operations in proptest::collection::vec(operation(), 1..120)) {
        run(BackendChoice::Portable, operations)?;
    }
}
