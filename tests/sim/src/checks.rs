//! What must hold after every restart, and exactly at the end of a seed.
//!
//! After a restart (with requests still unknown): every shard's log ends where a turn ended;
//! every shard's audit chain verifies from the first record; the e-RS repair settles what the crash cut off between shards; each patient's
//! version counts every acknowledged update and at most the unknown ones (nothing acknowledged
//! lost, nothing applied twice). At the end, with every request answered: each version is
//! exactly the acknowledged updates; each patient's trail holds at least one allowed read per
//! read answered. After each restart and at the end: each GP2GP transfer is where its answers
//! put it; no slot is booked by two referrals, no booking is left pending, and every slot is
//! free or held by the referral that names it.

use std::collections::{BTreeMap, BTreeSet};

use spine_core::access::directory_file::demo_ids;
use spine_core::audit::event::{AuditAction, AuditOutcome};
use spine_core::coordinator::Coordinator;
use spine_core::ers::{SlotId, SlotQuery};
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{AUDIT_QUERY_LIMIT_MAX, Operation, Reply, Response};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::KIND_META;
use spine_core::{NhsNumber, Patient};

use crate::clients::{complete, drive};
use crate::model::{Model, Violation, violation};
use crate::workload::request;
use crate::world::World;

/// The checks after a restart, before new requests; unknown requests may still be retried.
pub fn after_restart(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<(), Violation> {
    for shard in 0..world.shards() {
        if let Err(error) = world.with_log(shard, |log| verify_chain(log, None)) {
            return violation!("shard {shard}'s audit chain does not verify: {error}");
        }
        // Every turn whole or absent: a turn's metadata record closes it, so the log ends
        // with one (or is empty).
        let last = world.with_log(shard, |log| {
            let index = log.last_position().index;
            (index > 0).then(|| (index, log.read(index, |view| view.kind()).ok().flatten()))
        });
        if let Some((index, kind)) = last
            && kind != Some(KIND_META)
        {
            return violation!(
                "shard {shard}'s log ends inside a turn: its last record ({index}) is of kind \
                 {kind:?}, not the turn's metadata"
            );
        }
    }
    let repaired = complete(world, Coordinator::new(world).repair_referrals())?;
    world.trace.note(format_args!("repair {repaired:?}"));
    // Each unknown update may or may not have been applied.
    let unknown = unknown_per_patient(model, |operation| match operation {
        Operation::PdsUpdate { patient, .. } => Some(patient.nhs_number),
        _ => None,
    });
    for (nhs_number, patient) in read_every_patient(world, model, random)? {
        let known = &model.patients[&nhs_number];
        let acknowledged = known.base_version + known.updates_applied.len() as u32;
        let at_most = acknowledged + unknown.get(&nhs_number).copied().unwrap_or(0);
        if !(acknowledged..=at_most).contains(&patient.version) {
            return violation!(
                "patient {nhs_number} is at version {} after a restart: {} acknowledged \
                 updates say at least {acknowledged}, unknown ones allow at most {at_most}",
                patient.version,
                known.updates_applied.len()
            );
        }
    }
    let unknown_summaries = unknown_per_patient(model, |operation| match operation {
        Operation::ScrUpdate { nhs_number, .. } => Some(*nhs_number),
        _ => None,
    });
    check_summaries(world, model, random, &unknown_summaries)?;
    check_transfers(world, model, random)?;
    check_bookings(world, model, random)
}

/// Each transfer started is where its answers so far put it (see `gp2gp.rs`).
fn check_transfers(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<(), Violation> {
    let statuses = model.transfers.statuses(random);
    for answer in drive(world, model, statuses)? {
        match answer {
            Ok(Reply::Transfer(status)) => model.transfers.settled(&status)?,
            other => return violation!("the status of a transfer started: {other:?}"),
        }
    }
    Ok(())
}

/// Each Summary Care Record written is at a version between its acknowledged updates and
/// those plus the unknown ones (exactly the acknowledged ones when `unknown` is empty).
fn check_summaries(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
    unknown: &BTreeMap<NhsNumber, u32>,
) -> Result<(), Violation> {
    let written: Vec<NhsNumber> = model
        .patients
        .iter()
        .filter(|(_, known)| !known.scr_updates_applied.is_empty())
        .map(|(&nhs_number, _)| nhs_number)
        .collect();
    let view = |nhs_number| Operation::ScrView {
        nhs_number,
        permission_to_view: true,
    };
    for (nhs_number, answer) in ask_each(world, model, random, written, demo_ids::GP, view)? {
        let Ok(Reply::Scr(record)) = answer else {
            return violation!("patient {nhs_number}'s summary cannot be read: {answer:?}");
        };
        let acknowledged = model.patients[&nhs_number].scr_updates_applied.len() as u32;
        let at_most = acknowledged + unknown.get(&nhs_number).copied().unwrap_or(0);
        if !(acknowledged..=at_most).contains(&record.version) {
            return violation!(
                "patient {nhs_number}'s summary is at version {}: {acknowledged} updates were \
                 acknowledged, at most {at_most} may have been applied",
                record.version
            );
        }
    }
    Ok(())
}

/// The exact checks once every request has its answer.
pub fn at_end(world: &World, model: &mut Model, random: &mut SplitMix64) -> Result<(), Violation> {
    after_restart(world, model, random)?;
    let unknown = model.unknown();
    drive(world, model, unknown)?;
    for (nhs_number, patient) in read_every_patient(world, model, random)? {
        let known = &model.patients[&nhs_number];
        let expected = known.base_version + known.updates_applied.len() as u32;
        if patient.version != expected {
            return violation!(
                "patient {nhs_number} is at version {}, but {} updates were acknowledged \
                 over version {}",
                patient.version,
                known.updates_applied.len(),
                known.base_version
            );
        }
    }
    check_summaries(world, model, random, &BTreeMap::new())?;
    check_transfers(world, model, random)?;
    check_trails(world, model, random)?;
    check_bookings(world, model, random)
}

/// Asks one question per patient in `numbers` as `user`, and pairs each patient with its answer.
pub fn ask_each(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
    numbers: Vec<NhsNumber>,
    user: uuid::Uuid,
    question: impl Fn(NhsNumber) -> Operation,
) -> Result<Vec<(NhsNumber, Response)>, Violation> {
    let requests = numbers
        .iter()
        .map(|&nhs_number| request(random, user, question(nhs_number)))
        .collect();
    let answers = drive(world, model, requests)?;
    Ok(numbers.into_iter().zip(answers).collect())
}

/// Unknown requests per patient, of the kind `patient_of` names a patient for.
fn unknown_per_patient(
    model: &Model,
    patient_of: impl Fn(&Operation) -> Option<NhsNumber>,
) -> BTreeMap<NhsNumber, u32> {
    let mut unknown = BTreeMap::new();
    for request in model.unknown() {
        if let Some(nhs_number) = patient_of(&request.operation) {
            *unknown.entry(nhs_number).or_insert(0) += 1;
        }
    }
    unknown
}

fn read_every_patient(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<Vec<(NhsNumber, Patient)>, Violation> {
    let numbers: Vec<NhsNumber> = model.patients.keys().copied().collect();
    let read = |nhs_number| Operation::PdsRetrieve { nhs_number };
    ask_each(world, model, random, numbers, demo_ids::GP, read)?
        .into_iter()
        .map(|(nhs_number, answer)| match answer {
            Ok(Reply::Patient(patient)) => Ok((nhs_number, patient)),
            other => violation!("patient {nhs_number} cannot be read: {other:?}"),
        })
        .collect()
}

/// Every read answered was audited before it was disclosed: the trail holds at least as many
/// allowed reads (reads whose answer a crash cut off may be there too).
fn check_trails(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<(), Violation> {
    let numbers: Vec<NhsNumber> = model.patients.keys().copied().collect();
    let trail = |nhs_number| Operation::AuditTrail {
        nhs_number,
        limit: AUDIT_QUERY_LIMIT_MAX,
    };
    let officer = demo_ids::PRIVACY_OFFICER;
    for (nhs_number, answer) in ask_each(world, model, random, numbers, officer, trail)? {
        let events = match answer {
            Ok(Reply::AuditEvents(events)) => events,
            other => return violation!("patient {nhs_number}'s trail cannot be read: {other:?}"),
        };
        let reads = events
            .iter()
            .filter(|event| {
                event.action == AuditAction::PdsRetrieve && event.outcome == AuditOutcome::Allowed
            })
            .count();
        let disclosed = model.patients[&nhs_number].reads_disclosed as usize;
        if reads < disclosed && events.len() < AUDIT_QUERY_LIMIT_MAX as usize {
            return violation!(
                "patient {nhs_number}: {disclosed} reads were answered, the trail holds {reads}"
            );
        }
    }
    Ok(())
}

/// No slot is held by two referrals, the repair left no booking pending, and every slot is
/// held by the referral that names it or free.
fn check_bookings(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<(), Violation> {
    let reads = model
        .referrals
        .iter()
        .map(|&ubrn| {
            request(
                random,
                demo_ids::GP,
                Operation::ErsRetrieveReferral { ubrn },
            )
        })
        .collect();
    let answers: Vec<Response> = drive(world, model, reads)?;
    let mut holders = BTreeMap::new();
    for answer in answers {
        let referral = match answer {
            Ok(Reply::Referral(referral)) => referral,
            other => return violation!("a referral cannot be read: {other:?}"),
        };
        if referral.pending().is_some() {
            return violation!(
                "referral {} still has a booking pending after the repair",
                referral.ubrn()
            );
        }
        if let Some(booking) = referral.booking()
            && let Some(other) = holders.insert(booking.slot, referral.ubrn())
        {
            return violation!(
                "slot {:?} is booked by referrals {other} and {}",
                booking.slot,
                referral.ubrn()
            );
        }
    }
    // Every slot is either held by the referral that names it or offered as free: a slot
    // held by a booking no referral names is lost to every patient.
    let query = SlotQuery {
        specialty: "CARDIOLOGY".parse().expect("a valid specialty"),
        clinic_type: None,
        from: "2031-03-01".parse().expect("a valid date"),
        to: "2031-03-31".parse().expect("a valid date"),
        provider: None,
        limit: 100,
    };
    let search = request(random, demo_ids::GP, Operation::ErsSearchSlots { query });
    let free: BTreeSet<SlotId> = match drive(world, model, vec![search])?.pop() {
        Some(Ok(Reply::FreeSlots(free))) => free.iter().map(|free| free.slot.id()).collect(),
        other => return violation!("the free slots cannot be searched: {other:?}"),
    };
    for slot in &model.slots {
        let id = slot.id();
        match (holders.get(&id), free.contains(&id)) {
            (Some(ubrn), true) => {
                return violation!("slot {id} is booked by referral {ubrn} and offered as free");
            }
            (None, false) => {
                return violation!(
                    "slot {id} is neither free nor held by a referral that names it"
                );
            }
            _ => {}
        }
    }
    world.trace.note(format_args!(
        "bookings held={} free={}",
        holders.len(),
        free.len()
    ));
    Ok(())
}
