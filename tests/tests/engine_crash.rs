//! Crash test of the engine: SIGKILL a process that is updating and reading patients (the
//! `spine-engine-writer` binary; see its docs for the protocol), at random moments, many times
//! on the same data directory, and check after every kill that recovery lost no acknowledged
//! update and no audit event of an answered read, applied no update by halves, and that every
//! shard's audit chain still verifies.
//!
//! Environment: `SPINE_ENGINE_CRASH_ROUNDS` (default 8) and `SPINE_CRASH_SEED` (default
//! random, printed at the start so a failure can be replayed).

// A panic is how a test reports a failure, helpers included (clippy exempts only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_core::NhsNumber;
use spine_core::audit::event::{AuditAction, AuditOutcome};
use spine_core::shard::audit_queries::{patient_trail, verify_chain};
use spine_core::shard::keys::{ShardIndexes, patient_key};
use spine_core::{Patient, shard};
use spine_storage::Log;
use spine_tests::engine_crash_config;
use spine_tests::killed::run_until_killed;

const DEFAULT_ROUNDS: u64 = 8;
const PATIENTS: usize = 64;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the writer acknowledged in one run.
#[derive(Default)]
struct Acks {
    /// Per patient: the highest version and counter an acknowledged update produced.
    updates: HashMap<NhsNumber, (u32, u64)>,
    /// Per patient: answered reads (each has a durable audit event).
    reads: HashMap<NhsNumber, usize>,
}

#[test]
fn the_engine_keeps_acknowledged_updates_and_audit_events_across_sigkills() {
    let rounds = std::env::var("SPINE_ENGINE_CRASH_ROUNDS")
        .ok()
        .map_or(DEFAULT_ROUNDS, |value| value.parse().unwrap());
    let seed = std::env::var("SPINE_CRASH_SEED")
        .ok()
        .map_or_else(rand::random, |value| value.parse().unwrap());
    println!("engine_crash: {rounds} rounds, seed {seed} (replay with SPINE_CRASH_SEED={seed})");
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut highest: HashMap<NhsNumber, (u32, u64)> = HashMap::new();
    let mut reads_total: HashMap<NhsNumber, usize> = HashMap::new();
    let (mut updates_acked, mut reads_acked) = (0, 0);
    for round in 0..rounds {
        let run_for = Duration::from_millis(rng.random_range(100..=600));
        let acks = run_writer(dir.path(), rng.random(), run_for);
        updates_acked += acks.updates.len();
        for (nhs, (version, count)) in acks.updates {
            let entry = highest.entry(nhs).or_default();
            *entry = (entry.0.max(version), entry.1.max(count));
        }
        for (nhs, reads) in acks.reads {
            reads_acked += reads;
            *reads_total.entry(nhs).or_default() += reads;
        }
        let events = check(dir.path(), &highest, &reads_total);
        println!(
            "round {round}: {} ms, {} patients updated so far, {events} audit events verified",
            run_for.as_millis(),
            highest.len()
        );
    }
    println!(
        "engine_crash summary: {rounds} rounds, {updates_acked} patients with acknowledged \
         updates, {reads_acked} acknowledged reads, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(reads_acked > 0, "no read was ever acknowledged");
    assert!(!highest.is_empty(), "no update was ever acknowledged");
}

/// Opens each shard's log as the engine would after the crash, and checks every patient's
/// record and trail against what was acknowledged. Returns the audit events verified.
fn check(
    dir: &Path,
    highest: &HashMap<NhsNumber, (u32, u64)>,
    reads: &HashMap<NhsNumber, usize>,
) -> usize {
    let config = engine_crash_config(dir);
    let logs: Vec<Log> = (0..config.shards)
        .map(|shard| {
            Log::open_with(config.log_config(shard), Arc::new(ShardIndexes))
                .unwrap()
                .0
        })
        .collect();
    let mut events = 0;
    for log in &logs {
        events += verify_chain(log, None).unwrap().sequence as usize;
    }
    let numbers: Vec<NhsNumber> = spine_core::pds::synthetic::nhs_numbers()
        .take(PATIENTS)
        .collect();
    for nhs in numbers {
        let log = &logs[shard::shard_of(nhs.value(), config.shards)];
        let Some(patient) = log
            .get(patient_key(nhs), |view| {
                Patient::decode(view.payload()).unwrap()
            })
            .unwrap()
        else {
            assert!(
                !highest.contains_key(&nhs),
                "{nhs}: an updated patient is gone"
            );
            continue;
        };
        let counter = |text: &str| -> u64 { text.trim_start_matches("count ").parse().unwrap() };
        let (telecom, line) = (
            counter(&patient.telecom[0].value),
            counter(&patient.addresses[0].lines[0]),
        );
        assert_eq!(telecom, line, "{nhs}: an update was applied by halves");
        assert_eq!(
            u64::from(patient.version),
            telecom + 1,
            "{nhs}: versions and counters disagree"
        );
        if let Some(&(version, count)) = highest.get(&nhs) {
            assert!(
                patient.version >= version && telecom >= count,
                "{nhs}: acknowledged version {version} (count {count}) lost: found {}",
                patient.version
            );
        }
        let trail = patient_trail(log, nhs, usize::MAX).unwrap();
        let retrieves = trail
            .iter()
            .filter(|event| {
                event.action == AuditAction::PdsRetrieve && event.outcome == AuditOutcome::Allowed
            })
            .count();
        let answered = reads.get(&nhs).copied().unwrap_or(0);
        assert!(
            retrieves >= answered,
            "{nhs}: {answered} reads were answered but only {retrieves} audit events survive"
        );
        let updates = trail
            .iter()
            .filter(|event| {
                event.action == AuditAction::PdsUpdate && event.outcome == AuditOutcome::Allowed
            })
            .count();
        // An event is written before its change, so a crash may leave an event whose change
        // was cut off, never a change without its event.
        assert!(
            updates as u64 >= telecom,
            "{nhs}: {telecom} updates applied but only {updates} audit events survive"
        );
    }
    for log in logs {
        log.close().unwrap();
    }
    events
}

/// Runs the writer until it is ready, lets it work for `run_for`, SIGKILLs it and returns what
/// it acknowledged.
fn run_writer(dir: &Path, seed: u64, run_for: Duration) -> Acks {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spine-engine-writer"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["--patients", &PATIENTS.to_string()])
        .args(["--seed", &seed.to_string()]);
    run_until_killed(command, READY_TIMEOUT, run_for, parse_line)
        .unwrap_or_else(|error| panic!("the writer: {error}"))
}

/// One `read <nhs>` or `update <nhs> <version> <count>` line.
fn parse_line(acks: &mut Acks, line: &str) -> Result<(), String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let nhs = |text: &str| -> Result<NhsNumber, String> {
        text.parse()
            .map_err(|_| format!("bad NHS number in {line:?}"))
    };
    match fields[..] {
        ["read", number] => *acks.reads.entry(nhs(number)?).or_default() += 1,
        ["update", number, version, count] => {
            let (Ok(version), Ok(count)) = (version.parse::<u32>(), count.parse::<u64>()) else {
                return Err(format!("malformed line {line:?}"));
            };
            let entry = acks.updates.entry(nhs(number)?).or_default();
            *entry = (entry.0.max(version), entry.1.max(count));
        }
        _ => return Err(format!("unexpected line from the writer: {line:?}")),
    }
    Ok(())
}
