//! Crash test of e-RS booking across shards: SIGKILL a process that books, rebooks and
//! cancels appointments (the `spine-ers-booker` binary; see its docs for the protocol) at
//! random moments, many times on the same data directory, and check after every kill that the
//! restart settled every booking: none is left pending, no slot is booked twice, no slot is
//! held by a booking its referral no longer names, and every acknowledged booking or
//! cancellation not followed by another request on its referral holds.
//!
//! Environment: `SPINE_ERS_CRASH_ROUNDS` (default 6) and `SPINE_CRASH_SEED` (default random,
//! printed at the start so a failure can be replayed).

// A panic is how a test reports a failure, helpers included (clippy exempts only #[test] fns).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo_caller, demo_ids};
use spine_core::engine::{Engine, EngineHandle};
use spine_core::ers::{ReferralState, ServiceId, SlotId, SlotQuery, Ubrn};
use spine_core::request::{Operation, Reply, Request};
use spine_tests::engine_crash_config;
use spine_tests::killed::run_until_killed;
use uuid::Uuid;

const DEFAULT_ROUNDS: u64 = 6;
const SLOTS: u16 = 12;
const SERVICE: ServiceId = ServiceId(11_000);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the booker said of one referral: its state as last acknowledged, and whether a
/// request on it was unanswered when it was killed.
#[derive(Clone, Copy, Debug, Default)]
struct Known {
    /// `Some(Some(slot))` booked, `Some(None)` unbooked, `None` not said.
    state: Option<Option<SlotId>>,
    in_flight: bool,
}

#[derive(Default)]
struct Said {
    referrals: HashMap<Ubrn, Known>,
    acknowledged: usize,
}

#[test]
fn every_booking_cut_off_by_a_sigkill_is_settled_on_restart() {
    let rounds = std::env::var("SPINE_ERS_CRASH_ROUNDS")
        .ok()
        .map_or(DEFAULT_ROUNDS, |value| value.parse().unwrap());
    let seed = std::env::var("SPINE_CRASH_SEED")
        .ok()
        .map_or_else(rand::random, |value| value.parse().unwrap());
    println!("ers_crash: {rounds} rounds, seed {seed} (replay with SPINE_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    for round in 0..rounds {
        let run_for = Duration::from_millis(rng.random_range(100..=600));
        let said = run_booker(dir.path(), rng.random(), run_for);
        acknowledged += said.acknowledged;
        let booked = check(dir.path(), &said);
        println!(
            "round {round}: {} ms, {} answers, {booked} of {SLOTS} slots booked after the restart",
            run_for.as_millis(),
            said.acknowledged
        );
    }
    assert!(acknowledged > 0, "no booking was ever answered");
}

fn request(operation: Operation) -> Request {
    Request {
        id: Uuid::new_v4(),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    }
}

/// Restarts the engine on the data directory, lets it repair, and checks every referral and
/// slot against each other and against what the booker said. Returns the slots booked.
fn check(dir: &Path, said: &Said) -> usize {
    let engine = Engine::start(engine_crash_config(dir)).unwrap();
    let handle = engine.handle();
    wait_for_repair(&handle);
    let list = std::fs::read_to_string(dir.join("ers-setup-done")).unwrap();
    let referrals: Vec<Ubrn> = list.lines().map(|line| line.parse().unwrap()).collect();
    let mut held = HashSet::new();
    for ubrn in referrals {
        let submitted = submit(&handle, request(Operation::ErsRetrieveReferral { ubrn }));
        let Ok(Reply::Referral(referral)) = submitted else {
            panic!("{ubrn}: {submitted:?}")
        };
        let actual = match referral.state() {
            ReferralState::BookingPending { .. } => panic!("{ubrn} left pending: {referral:?}"),
            ReferralState::Booked => Some(referral.booking().unwrap().slot),
            _ => None,
        };
        if let Some(slot) = actual {
            assert!(held.insert(slot), "slot {slot} booked twice");
        }
        let known = said.referrals.get(&ubrn).copied().unwrap_or_default();
        if let (Some(state), false) = (known.state, known.in_flight) {
            assert_eq!(actual, state, "{ubrn}: the last acknowledged state is lost");
        }
    }
    let query = SlotQuery {
        specialty: "CARDIOLOGY".parse().unwrap(),
        clinic_type: None,
        from: "2031-03-01".parse().unwrap(),
        to: "2031-03-31".parse().unwrap(),
        provider: None,
        limit: 100,
    };
    let searched = submit(&handle, request(Operation::ErsSearchSlots { query }));
    let Ok(Reply::FreeSlots(free)) = searched else {
        panic!("search: {searched:?}")
    };
    let free: HashSet<SlotId> = free.into_iter().map(|free| free.slot.id()).collect();
    assert!(free.is_disjoint(&held), "a booked slot is offered as free");
    let all: HashSet<SlotId> = (0..u32::from(SLOTS))
        .map(|number| SlotId::of_service(SERVICE, number))
        .collect();
    let accounted: HashSet<SlotId> = free.union(&held).copied().collect();
    assert_eq!(
        accounted, all,
        "a slot is neither free nor held by a referral that names it"
    );
    engine.shutdown().unwrap();
    held.len()
}

fn submit(handle: &EngineHandle, request: Request) -> spine_core::request::Response {
    runtime().block_on(handle.submit(request))
}

/// Waits for the repair (the engine runs it on start too; running it again is harmless).
fn wait_for_repair(handle: &EngineHandle) {
    runtime().block_on(handle.repair_referrals()).unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the booker until it is ready, lets it work for `run_for`, SIGKILLs it and returns
/// what it said.
fn run_booker(dir: &Path, seed: u64, run_for: Duration) -> Said {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spine-ers-booker"));
    command
        .arg("--dir")
        .arg(dir)
        .args(["--slots", &SLOTS.to_string()])
        .args(["--seed", &seed.to_string()]);
    run_until_killed(command, READY_TIMEOUT, run_for, parse_line)
        .unwrap_or_else(|error| panic!("the booker: {error}"))
}

/// One line of the booker's protocol.
fn parse_line(said: &mut Said, line: &str) -> Result<(), String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let ubrn = |text: &str| -> Result<Ubrn, String> {
        text.parse().map_err(|_| format!("bad UBRN in {line:?}"))
    };
    let slot = |text: &str| -> Result<SlotId, String> {
        text.parse().map_err(|_| format!("bad slot in {line:?}"))
    };
    let (ubrn, change) = match fields[..] {
        ["state", number, "booked", id] => (ubrn(number)?, Some(Some(slot(id)?))),
        ["state", number, "unbooked"] => (ubrn(number)?, Some(None)),
        ["try", number] => {
            said.referrals.entry(ubrn(number)?).or_default().in_flight = true;
            return Ok(());
        }
        ["booked", number, id] => (ubrn(number)?, Some(Some(slot(id)?))),
        ["unbooked", number] => (ubrn(number)?, Some(None)),
        ["same", number] => (ubrn(number)?, None),
        _ => return Err(format!("unexpected line from the booker: {line:?}")),
    };
    let known = said.referrals.entry(ubrn).or_default();
    if let Some(state) = change {
        known.state = Some(state);
    }
    known.in_flight = false;
    if fields[0] != "state" {
        said.acknowledged += 1;
    }
    Ok(())
}
