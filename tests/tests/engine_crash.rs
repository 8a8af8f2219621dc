//! Crash test of the engine: SIGKILL a process that is updating and reading patients and issuing
//! prescriptions (the `spine-engine-writer` binary; see its docs for the protocol), at random
//! moments, many times on the same data directory, and check after every kill that recovery
//! lost no acknowledged update and no audit event of an answered read, applied no update by
//! halves, and that every shard's audit chain still verifies. Each run first sends again, with
//! their ids, the requests the kill left unanswered; after a last run that only retries, every
//! effect is checked to have happened exactly once: each update applied at most once and never
//! when its retry was told `RESOURCE_VERSION_MISMATCH`, one prescription per request, and one
//! audit event per effect. A second test does the same with the engine compacting its sealed
//! segments every few milliseconds while it serves, so that kills land during compactions too.
//!
//! Environment: `SPINE_ENGINE_CRASH_ROUNDS` (default 8) and `SPINE_CRASH_SEED` (default
//! random, printed at the start so a failure can be replayed).

// A panic is how a test reports a failure, helpers included (clippy exempts only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_core::NhsNumber;
use spine_core::audit::event::{AuditAction, AuditOutcome};
use spine_core::shard::audit_queries::{patient_trail, verify_chain};
use spine_core::shard::record_layout::{
    KIND_PATIENT, KIND_PRESCRIPTION, ShardIndexes, patient_key,
};
use spine_core::{Patient, shard};
use spine_storage::Log;
use spine_tests::engine_crash_config;
use spine_tests::killed::run_until_killed;
use uuid::Uuid;

const DEFAULT_ROUNDS: u64 = 8;
const PATIENTS: usize = 64;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the writer sent and acknowledged in one run.
#[derive(Default)]
struct Acks {
    /// Per patient: the highest version and counter an acknowledged update produced.
    updates: HashMap<NhsNumber, (u32, u64)>,
    /// Per patient: answered reads (each has a durable audit event).
    reads: HashMap<NhsNumber, usize>,
    /// Requests sent, by id: their retry line (`update <JSON>` or `issue <JSON>`).
    sent: HashMap<Uuid, String>,
    /// Updates acknowledged, or applied when retried.
    applied: HashSet<Uuid>,
    /// Updates whose retry was told `RESOURCE_VERSION_MISMATCH`: never applied.
    mismatched: HashSet<Uuid>,
    /// Prescriptions issued, by the request id: the prescription's id.
    issued: HashMap<Uuid, String>,
}

/// Everything the runs so far sent and were told.
#[derive(Default)]
struct History {
    sent: HashMap<Uuid, String>,
    applied: HashSet<Uuid>,
    mismatched: HashSet<Uuid>,
    issued: HashMap<Uuid, String>,
}

impl History {
    fn add(&mut self, acks: Acks) {
        self.sent.extend(acks.sent);
        self.applied.extend(acks.applied);
        self.mismatched.extend(acks.mismatched);
        for (request, prescription) in acks.issued {
            if let Some(earlier) = self.issued.insert(request, prescription.clone()) {
                assert_eq!(
                    earlier, prescription,
                    "request {request} was answered with two prescriptions"
                );
            }
        }
    }

    /// The retry lines of the requests sent and never answered.
    fn unanswered(&self) -> String {
        self.sent
            .iter()
            .filter(|(id, _)| {
                !self.applied.contains(id)
                    && !self.mismatched.contains(id)
                    && !self.issued.contains_key(id)
            })
            .map(|(_, line)| format!("{line}\n"))
            .collect()
    }
}

/// What the rounds of one crash test sent, were told and found.
struct Rounds {
    history: History,
    highest: HashMap<NhsNumber, (u32, u64)>,
    updates_acked: usize,
    reads_acked: usize,
    /// Compacted copies a kill left unfinished (removed at the next open).
    killed_mid_copy: usize,
}

/// Runs the writer on one data directory `rounds` times, each SIGKILLed at a random moment
/// (compacting every `compact_every_ms` if given), checking after each kill; the last run only
/// retries, so that afterwards every request sent has its answer.
fn crash_rounds(data: &Path, retries: &Path, compact_every_ms: Option<u64>) -> Rounds {
    let rounds = std::env::var("SPINE_ENGINE_CRASH_ROUNDS")
        .ok()
        .map_or(DEFAULT_ROUNDS, |value| value.parse().unwrap());
    let seed = std::env::var("SPINE_CRASH_SEED")
        .ok()
        .map_or_else(rand::random, |value| value.parse().unwrap());
    println!("engine_crash: {rounds} rounds, seed {seed} (replay with SPINE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut reads_total: HashMap<NhsNumber, usize> = HashMap::new();
    let mut done = Rounds {
        history: History::default(),
        highest: HashMap::new(),
        updates_acked: 0,
        reads_acked: 0,
        killed_mid_copy: 0,
    };
    for round in 0..=rounds {
        let unanswered = done.history.unanswered();
        std::fs::write(retries, &unanswered).unwrap();
        let run = Run {
            seed: rng.random(),
            run_for: Duration::from_millis(rng.random_range(100..=600)),
            retry_only: round == rounds,
            compact_every_ms,
        };
        let acks = run_writer(data, retries, &run);
        done.killed_mid_copy += files_ending(data, ".cseg.tmp");
        done.updates_acked += acks.updates.len();
        for (nhs, &(version, count)) in &acks.updates {
            let entry = done.highest.entry(*nhs).or_default();
            *entry = (entry.0.max(version), entry.1.max(count));
        }
        for (nhs, &reads) in &acks.reads {
            done.reads_acked += reads;
            *reads_total.entry(*nhs).or_default() += reads;
        }
        done.history.add(acks);
        let events = check(data, &done.highest, &reads_total);
        println!(
            "round {round}: {} ms, {} retried, {} patients updated so far, {events} audit events \
             verified",
            run.run_for.as_millis(),
            unanswered.lines().count(),
            done.highest.len()
        );
    }
    assert_eq!(
        done.history.unanswered(),
        "",
        "every request has its answer after the retries"
    );
    assert!(done.reads_acked > 0, "no read was ever acknowledged");
    assert!(!done.highest.is_empty(), "no update was ever acknowledged");
    done
}

#[test]
fn the_engine_keeps_acknowledged_updates_and_audit_events_across_sigkills() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let done = crash_rounds(&data, &dir.path().join("retries"), None);
    let (updates, prescriptions) = check_exactly_once(&data, &done.history);
    println!(
        "engine_crash summary: {} patients with acknowledged updates, {} acknowledged reads, \
         {updates} updates and {prescriptions} prescriptions each applied once, {} updates \
         refused on retry and never applied, {:.1} s",
        done.updates_acked,
        done.reads_acked,
        done.history.mismatched.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(prescriptions > 0, "no prescription was ever issued");
}

/// The same, with the engine compacting its sealed segments while it serves, so that kills
/// also land during compactions. Superseded versions go, so the count of versions applied is
/// not checked; every acknowledged update, read and audit event is, after every kill.
#[test]
fn the_engine_keeps_what_it_acknowledged_across_sigkills_while_it_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let done = crash_rounds(&data, &dir.path().join("retries"), Some(20));
    let compacted = files_ending(&data, ".cseg");
    println!(
        "engine_crash with compaction: {compacted} compacted segments at the end, {} copies \
         left unfinished by a kill",
        done.killed_mid_copy
    );
    assert!(compacted > 0, "no segment was ever compacted");
}

/// Files of the shards' log directories whose names end with `suffix`.
fn files_ending(data: &Path, suffix: &str) -> usize {
    (0..2)
        .filter_map(|shard| std::fs::read_dir(data.join(format!("shard-{shard}"))).ok())
        .flatten()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_str().unwrap().ends_with(suffix)
        })
        .count()
}

/// Every shard's log, opened as the engine would after a crash.
fn open_logs(dir: &Path) -> Vec<Log> {
    let config = engine_crash_config(dir);
    (0..config.shards)
        .map(|shard| {
            Log::open_with(config.log_config(shard), Arc::new(ShardIndexes))
                .unwrap()
                .0
        })
        .collect()
}

/// The request id an update wrote into the telecom (`count N by <id>`), if any.
fn update_id(patient: &Patient) -> Option<Uuid> {
    let (_, id) = patient.telecom[0].value.split_once(" by ")?;
    Some(id.parse().unwrap())
}

/// After every request has its answer: each update request applied at most once, and exactly
/// when it was acknowledged (or applied on retry); one prescription per issuing request; one
/// audit event per effect. Returns the updates and prescriptions found.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn check_exactly_once(dir: &Path, history: &History) -> (usize, usize) {
    let logs = open_logs(dir);
    let mut applied: HashMap<Uuid, usize> = HashMap::new();
    let mut versions: HashMap<NhsNumber, u64> = HashMap::new();
    let mut prescriptions = HashSet::new();
    let mut prescriptions_of: HashMap<NhsNumber, usize> = HashMap::new();
    for log in &logs {
        for index in 1..=log.last_position().index {
            log.read(index, |view| match view.kind() {
                KIND_PATIENT => {
                    let patient =
                        spine_core::shard::records::patient::decode(view.payload()).unwrap();
                    if let Some(id) = update_id(&patient) {
                        *applied.entry(id).or_default() += 1;
                        *versions.entry(patient.nhs_number).or_default() += 1;
                    }
                }
                KIND_PRESCRIPTION => {
                    let prescription =
                        spine_core::shard::records::prescription::decode(view.payload()).unwrap();
                    if prescriptions.insert(prescription.id.to_string()) {
                        *prescriptions_of.entry(prescription.patient).or_default() += 1;
                    }
                }
                _ => {}
            })
            .unwrap();
        }
    }
    for (id, times) in &applied {
        assert_eq!(*times, 1, "update {id} was applied {times} times");
        assert!(
            history.applied.contains(id),
            "update {id} took effect but was never acknowledged, nor applied on its retry"
        );
    }
    for id in &history.applied {
        assert!(applied.contains_key(id), "acknowledged update {id} is gone");
    }
    for id in &history.mismatched {
        assert!(
            !applied.contains_key(id),
            "update {id} took effect, yet its retry was told RESOURCE_VERSION_MISMATCH"
        );
    }
    let issuing = history
        .sent
        .values()
        .filter(|line| line.starts_with("issue "))
        .count();
    assert_eq!(
        prescriptions.len(),
        issuing,
        "one prescription per issuing request"
    );
    let answered: HashSet<&String> = history.issued.values().collect();
    assert_eq!(
        answered.len(),
        issuing,
        "each request got its own prescription"
    );
    let config = engine_crash_config(dir);
    for nhs in spine_core::pds::synthetic::nhs_numbers().take(PATIENTS) {
        let log = &logs[shard::shard_of(nhs.value(), config.shards)];
        let trail = patient_trail(log, nhs, usize::MAX).unwrap();
        let allowed = |action| {
            trail
                .iter()
                .filter(|event| event.action == action && event.outcome == AuditOutcome::Allowed)
                .count()
        };
        let updated = versions.get(&nhs).copied().unwrap_or(0) as usize;
        assert_eq!(
            allowed(AuditAction::PdsUpdate),
            updated,
            "{nhs}: one audit event per update applied"
        );
        assert_eq!(
            allowed(AuditAction::EpsPrescribe),
            prescriptions_of.get(&nhs).copied().unwrap_or(0),
            "{nhs}: one audit event per prescription"
        );
    }
    for log in logs {
        log.close().unwrap();
    }
    (applied.len(), prescriptions.len())
}

/// Opens each shard's log as the engine would after the crash, and checks every patient's
/// record and trail against what was acknowledged. Returns the audit events verified.
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn check(
    dir: &Path,
    highest: &HashMap<NhsNumber, (u32, u64)>,
    reads: &HashMap<NhsNumber, usize>,
) -> usize {
    let config = engine_crash_config(dir);
    let logs = open_logs(dir);
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
                spine_core::shard::records::patient::decode(view.payload()).unwrap()
            })
            .unwrap()
        else {
            assert!(
                !highest.contains_key(&nhs),
                "{nhs}: an updated patient is gone"
            );
            continue;
        };
        let counter = |text: &str| -> u64 {
            let text = text.trim_start_matches("count ");
            text.split(' ').next().unwrap().parse().unwrap()
        };
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
        // A turn is atomic on disk: an update and its audit event survive together or not.
        assert_eq!(
            updates as u64, telecom,
            "{nhs}: {telecom} updates applied, {updates} audit events of updates survive"
        );
    }
    for log in logs {
        log.close().unwrap();
    }
    events
}

/// Runs the writer until it is ready, lets it work for `run_for`, SIGKILLs it and returns what
/// it acknowledged.
/// One run of the writer.
struct Run {
    seed: u64,
    run_for: Duration,
    retry_only: bool,
    compact_every_ms: Option<u64>,
}

fn run_writer(dir: &Path, retries: &Path, run: &Run) -> Acks {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spine-engine-writer"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["--patients", &PATIENTS.to_string()])
        .args(["--seed", &run.seed.to_string()])
        .arg("--retries")
        .arg(retries);
    if run.retry_only {
        command.arg("--retry-only");
    }
    if let Some(ms) = run.compact_every_ms {
        command.args(["--compact-every-ms", &ms.to_string()]);
    }
    run_until_killed(command, READY_TIMEOUT, run.run_for, parse_line)
        .unwrap_or_else(|error| panic!("the writer: {error}"))
}

/// One line of the writer's protocol (see its docs).
fn parse_line(acks: &mut Acks, line: &str) -> Result<(), String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let nhs = |text: &str| -> Result<NhsNumber, String> {
        text.parse()
            .map_err(|_| format!("bad NHS number in {line:?}"))
    };
    let id = |text: &str| -> Result<Uuid, String> {
        text.parse()
            .map_err(|_| format!("bad request id in {line:?}"))
    };
    if let Some(sent) = line.strip_prefix("send ") {
        let (_, json) = sent
            .split_once(' ')
            .ok_or_else(|| format!("malformed line {line:?}"))?;
        let request: spine_core::request::Request =
            serde_json::from_str(json).map_err(|error| format!("{line:?}: {error}"))?;
        acks.sent.insert(request.id, sent.to_owned());
        return Ok(());
    }
    match fields[..] {
        ["read", number] => *acks.reads.entry(nhs(number)?).or_default() += 1,
        ["retried", request, "applied"] => {
            acks.applied.insert(id(request)?);
        }
        ["retried", request, "mismatch"] => {
            acks.mismatched.insert(id(request)?);
        }
        ["retried", request, "issued", prescription] | ["issue", request, prescription] => {
            acks.issued.insert(id(request)?, prescription.to_owned());
        }
        ["update", number, version, count, request] => {
            acks.applied.insert(id(request)?);
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
