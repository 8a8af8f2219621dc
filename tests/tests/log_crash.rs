//! Crash test: SIGKILL a process that is appending to the log, at random moments, many times on
//! the same log directory, and check after every kill that recovery kept every acknowledged
//! record, exposes no partial record, and keeps the log dense.
//!
//! The writer is the `spine-log-writer` binary (see its docs for the protocol). A kill leaves
//! the page cache intact, so this tests the log's own crash handling (torn batches, half-done
//! rolls and checkpoints), not power loss.
//!
//! Environment: `SPINE_CRASH_ROUNDS` (default 100) and `SPINE_CRASH_SEED` (default random,
//! printed at the start so a failure can be replayed).

// A panic is how a test reports a failure, helpers included (clippy exempts only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_storage::{Key, Log};
use spine_tests::killed::run_until_killed;
use spine_tests::{CRASH_RECORD_KIND, crash_log_config, payload_for_key};

/// Small segments, so that the writer rolls to a new segment every few hundred records.
const SEGMENT_SIZE: u64 = 64 * 1024;
const APPENDERS: usize = 8;
/// Small, so that a writer killed after a few hundred appends has written background
/// checkpoints, and sometimes is killed while writing one.
const CHECKPOINT_INTERVAL: u64 = 256;
const DEFAULT_ROUNDS: u64 = 100;
/// How long the writer may take to open the log before the round counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not an unsigned integer")),
    )
}

#[test]
fn log_keeps_acknowledged_records_across_sigkills() {
    let rounds = env_u64("SPINE_CRASH_ROUNDS").unwrap_or(DEFAULT_ROUNDS);
    let seed = env_u64("SPINE_CRASH_SEED").unwrap_or_else(rand::random);
    println!("log_crash: {rounds} rounds, seed {seed} (replay with SPINE_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut history = History::default();
    let mut uring_available = true;
    let (mut acks_total, mut torn_tails) = (0usize, 0usize);
    let mut files = DirStats::default();

    for round in 0..rounds {
        let wanted = if round % 2 == 0 {
            "io-uring"
        } else {
            "portable"
        };
        let backend = if wanted == "io-uring" && !uring_available {
            "auto"
        } else {
            wanted
        };
        let run_for = Duration::from_millis(rng.random_range(5..=60));
        // The writer's seed is the high half of its keys: a different one per round keeps
        // every key in the directory unique.
        let writer_seed = (seed as u32).wrapping_add(round as u32);
        let acks = match run_writer(dir.path(), backend, writer_seed, run_for) {
            Ok(acks) => acks,
            Err(stderr)
                if backend == "io-uring" && stderr.contains("io_uring backend unavailable") =>
            {
                println!(
                    "log_crash: NOTE io_uring is unavailable here, io-uring rounds use \
                     --backend auto instead: {}",
                    stderr.trim()
                );
                uring_available = false;
                run_writer(dir.path(), "auto", writer_seed, run_for).unwrap()
            }
            Err(stderr) => panic!("round {round}: the writer did not start:\n{stderr}"),
        };
        files.after_kill(dir.path(), history.keys.len() as u64 - 1);
        // Every fourth check rebuilds the indexes by a full scan instead of loading the newest
        // checkpoint, so both ways of recovering are checked against the same acks.
        let use_checkpoint = round % 4 != 3;
        let checked = history.check(dir.path(), &acks, use_checkpoint);
        acks_total += acks.len();
        torn_tails += usize::from(checked.torn_tail.is_some());
        println!(
            "round {round:3}: {backend:8} {:2} ms, {:5} acks, last index {:7}, checkpoint {}, \
             torn tail: {}",
            run_for.as_millis(),
            acks.len(),
            checked.last,
            if use_checkpoint { "used" } else { "ignored" },
            checked.torn_tail.as_deref().unwrap_or("none"),
        );
    }
    println!(
        "log_crash summary: {rounds} rounds, {acks_total} acks, {} records in the log, \
         {torn_tails} torn tails cut off, {} segments, {} rounds with a background checkpoint, \
         {} with a checkpoint cut short, io_uring {}, {:.1} s",
        history.keys.len() - 1,
        files.segments,
        files.rounds_with_checkpoint,
        files.rounds_with_partial_checkpoint,
        if uring_available {
            "used"
        } else {
            "unavailable (auto used)"
        },
        started.elapsed().as_secs_f64(),
    );
    assert!(acks_total > 0, "no append was ever acknowledged");
}

/// Evidence, from the file names the log uses, that the writer rolled segments and wrote
/// checkpoints before it was killed. Statistics only: the checks do not depend on file names.
#[derive(Default)]
struct DirStats {
    segments: usize,
    rounds_with_checkpoint: usize,
    rounds_with_partial_checkpoint: usize,
}

impl DirStats {
    /// `last_checked`: the last index when the previous check closed the log (and wrote its
    /// checkpoint); a newer checkpoint was written by the writer in the background.
    fn after_kill(&mut self, dir: &Path, last_checked: u64) {
        let mut newest_checkpoint = 0;
        let mut partial = false;
        self.segments = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".seg") {
                self.segments += 1;
            } else if name.ends_with(".ckpt.tmp") {
                partial = true;
            } else if let Some(index) = name
                .strip_prefix("checkpoint-")
                .and_then(|rest| rest.strip_suffix(".ckpt"))
                .and_then(|index| index.parse::<u64>().ok())
            {
                newest_checkpoint = newest_checkpoint.max(index);
            }
        }
        self.rounds_with_checkpoint += usize::from(newest_checkpoint > last_checked);
        self.rounds_with_partial_checkpoint += usize::from(partial);
    }
}

/// Runs the writer on `dir` until it is ready, lets it append for `run_for`, SIGKILLs it and
/// returns the `(index, key)` pairs it acknowledged. `Err` (with its stderr) if it did not
/// start or stopped by itself.
fn run_writer(
    dir: &Path,
    backend: &str,
    seed: u32,
    run_for: Duration,
) -> Result<Vec<(u64, u64)>, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spine-log-writer"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["--backend", backend])
        .args(["--appenders", &APPENDERS.to_string()])
        .args(["--segment-size", &SEGMENT_SIZE.to_string()])
        .args(["--checkpoint-interval", &CHECKPOINT_INTERVAL.to_string()])
        .args(["--seed", &seed.to_string()]);
    run_until_killed(command, READY_TIMEOUT, run_for, parse_ack)
}

/// One `ack <index> <key>` line.
fn parse_ack(acks: &mut Vec<(u64, u64)>, line: &str) -> Result<(), String> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields[..] {
        ["ack", index, key] => match (index.parse(), key.parse()) {
            (Ok(index), Ok(key)) => {
                acks.push((index, key));
                Ok(())
            }
            _ => Err(format!("malformed ack line {line:?}")),
        },
        _ => Err(format!("unexpected line from the writer: {line:?}")),
    }
}

/// What the checks saw in all rounds so far.
struct History {
    /// `keys[index]`: the key of the record at that index, as first seen (`keys[0]` unused).
    /// A record, once visible after recovery, must never change or disappear.
    keys: Vec<u64>,
    highest_acked: u64,
}

impl Default for History {
    fn default() -> Self {
        Self {
            keys: vec![0],
            highest_acked: 0,
        }
    }
}

/// What one check found.
struct Checked {
    last: u64,
    torn_tail: Option<String>,
}

/// A record as read back, compared outside the read lock.
struct Seen {
    index: u64,
    key: Option<Key>,
    kind: u8,
    delete: bool,
    payload_ok: bool,
}

fn seen(view: spine_storage::RecordView<'_>) -> Seen {
    Seen {
        index: view.position().index,
        key: view.key(),
        kind: view.kind(),
        delete: view.is_delete(),
        payload_ok: view
            .key()
            .is_some_and(|key| view.payload() == payload_for_key(key.get())),
    }
}

impl History {
    /// Opens the log after a kill and checks it against the acks and the earlier rounds.
    fn check(&mut self, dir: &Path, acks: &[(u64, u64)], use_checkpoint: bool) -> Checked {
        let mut config = crash_log_config(dir, SEGMENT_SIZE);
        config.use_checkpoint = use_checkpoint;
        let (log, report) =
            Log::open(config).unwrap_or_else(|error| panic!("reopening after a kill: {error}"));
        let last = log.last_position().index;
        assert_eq!(report.records, last, "the report disagrees with the log");
        let highest_acked = acks.iter().map(|&(index, _)| index).max().unwrap_or(0);
        self.highest_acked = self.highest_acked.max(highest_acked);
        assert!(
            last >= self.highest_acked,
            "last index {last} is below the highest acknowledged index {}",
            self.highest_acked
        );
        let known = self.keys.len() as u64 - 1;
        assert!(
            last >= known,
            "last index {last} is below {known}, the last index seen in an earlier round"
        );

        // (b), (c): every index up to the last reads back whole and correct, and its key leads
        // back to it (keys are unique).
        for index in 1..=last {
            let record = log
                .read(index, seen)
                .unwrap_or_else(|error| panic!("index {index}: {error}"))
                .unwrap_or_else(|| panic!("index {index} is missing, last is {last}"));
            assert_eq!(record.index, index, "read({index}) gave another record");
            let key = record
                .key
                .unwrap_or_else(|| panic!("index {index} has no key"));
            assert!(
                record.kind == CRASH_RECORD_KIND && !record.delete && record.payload_ok,
                "index {index} (key {}) is not the record that was written",
                key.get()
            );
            match self.keys.get(index as usize) {
                Some(&earlier) => assert_eq!(
                    earlier,
                    key.get(),
                    "index {index} changed its key since an earlier round"
                ),
                None => self.keys.push(key.get()),
            }
            let by_key = log.get(key, |view| view.position().index).unwrap();
            assert_eq!(by_key, Some(index), "get({}) disagrees", key.get());
        }
        assert!(log.read(last + 1, seen).unwrap().is_none());

        // (a): every acknowledged record is there, under its index and its key (its content was
        // checked above, since its index is at most `last`).
        for &(index, key) in acks {
            assert_eq!(
                self.keys.get(index as usize),
                Some(&key),
                "acknowledged record {index} (key {key}) is lost or replaced"
            );
        }
        log.close().unwrap();
        Checked {
            last,
            torn_tail: report
                .torn_tail
                .map(|tail| format!("{} bytes, {}", tail.bytes_discarded, tail.reason)),
        }
    }
}
