//! What must hold after every restart, and exactly at the end of a seed.
//!
//! After a restart (with requests still unknown): every shard's audit chain verifies from the
//! first record; the e-RS repair settles what the crash cut off between shards; each patient's
//! version counts every acknowledged update and at most the unknown ones (nothing acknowledged
//! lost, nothing applied twice). At the end, with every request answered: each version is
//! exactly the acknowledged updates; each patient's trail holds at least one allowed read per
//! read answered; no slot is booked by two referrals and no booking is left pending.

use std::collections::BTreeMap;

use spine_core::access::directory_file::demo_ids;
use spine_core::audit::event::{AuditAction, AuditOutcome};
use spine_core::coordinator::Coordinator;
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{AUDIT_QUERY_LIMIT_MAX, Operation, Reply, Response};
use spine_core::shard::audit_queries::verify_chain;
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
    check_summaries(world, model, random, &unknown_summaries)
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
    check_trails(world, model, random)?;
    check_bookings(world, model, random)
}

/// Asks one question per patient in `numbers` as `user`, and pairs each patient with its answer.
fn ask_each(
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

/// No slot is held by two referrals, and the repair left no booking pending.
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
    world
        .trace
        .note(format_args!("bookings held={}", holders.len()));
    Ok(())
}

/// Where a latent corruption was put: a byte of a durable record, before the log's last
/// append group (a flip in the last group is indistinguishable from a torn write, and
/// `storage/FORMAT.md` says recovery cuts it as one).
#[derive(Debug)]
pub struct Corruption {
    shard: usize,
    segment: std::path::PathBuf,
    offset: u64,
    index: u64,
}

impl Corruption {
    /// Where, without the directory (which differs between runs of one seed).
    pub fn describe(&self) -> String {
        format!(
            "shard {} record {} offset {}",
            self.shard, self.index, self.offset
        )
    }
}

/// Picks a byte of a durable record of some shard to corrupt; `None` when no shard has a
/// record before its last group.
pub fn pick_corruption(world: &World, random: &mut SplitMix64) -> Option<Corruption> {
    let shard = random.below(world.shards() as u64) as usize;
    world.with_log(shard, |log| {
        let last = log.last_position().index;
        // The last record of the group before the last one.
        let before_last_group = (1..last)
            .rev()
            .find(|&index| matches!(log.read(index, |view| view.ends_group()), Ok(Some(true))))?;
        let index = 1 + random.below(before_last_group);
        let size = log
            .read(index, |view| {
                spine_storage::format::RECORD_HEADER_SIZE + view.payload().len()
            })
            .ok()??;
        let (segment, start) = log.record_place(index)?;
        Some(Corruption {
            shard,
            segment,
            offset: start + random.below(size as u64),
            index,
        })
    })
}

/// Flips one bit of the chosen byte in the stopped machine's files.
pub fn corrupt(corruption: &Corruption, random: &mut SplitMix64) -> Result<(), Violation> {
    use std::os::unix::fs::FileExt;
    let mut flip = || -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&corruption.segment)?;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, corruption.offset)?;
        byte[0] ^= 1 << random.below(8);
        file.write_all_at(&byte, corruption.offset)?;
        file.sync_data()
    };
    match flip() {
        Ok(()) => Ok(()),
        Err(error) => violation!("corrupting {}: {error}", corruption.segment.display()),
    }
}

/// After a latent corruption, a full verification of the damaged log reports it.
pub fn verification_finds(
    root: &std::path::Path,
    corruption: &Corruption,
) -> Result<(), Violation> {
    let mut config =
        crate::world::log_config(root, corruption.shard, spine_storage::SimulatedDisk::new());
    config.use_checkpoint = false;
    let shard_indexes = std::sync::Arc::new(spine_core::shard::keys::ShardIndexes);
    match spine_storage::Log::open_read_only(config, shard_indexes) {
        Err(spine_storage::OpenError::Corrupt { .. }) => {}
        Ok((_, report)) => {
            return violation!(
                "a flipped bit in record {} of shard {} (offset {}) went unseen by a full \
                 verification: {report:?}",
                corruption.index,
                corruption.shard,
                corruption.offset
            );
        }
        Err(error) => return violation!("verifying a corrupted log: {error}"),
    }
    Ok(())
}

/// After a latent corruption, the restarted machine either refuses to start or answers every
/// patient as the model says (or with an error): never with wrong data.
pub fn answers_after_corruption(
    corruption: &Corruption,
    opened: Result<World, Violation>,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<(), Violation> {
    // The machine may refuse to start (it found the damage): that is the safe outcome.
    let Ok(world) = opened else {
        return Ok(());
    };
    let numbers: Vec<NhsNumber> = model.patients.keys().copied().collect();
    let read = |nhs_number| Operation::PdsRetrieve { nhs_number };
    for (nhs_number, answer) in ask_each(&world, model, random, numbers, demo_ids::GP, read)? {
        let known = &model.patients[&nhs_number];
        let expected = known.base_version + known.updates_applied.len() as u32;
        if let Ok(Reply::Patient(patient)) = answer
            && (patient.version != expected || patient.telecom != known.latest.telecom)
        {
            return violation!(
                "after a flipped bit in record {} of shard {}, patient {nhs_number} is \
                 answered at version {} with {:?}; the model says version {expected} with {:?}",
                corruption.index,
                corruption.shard,
                patient.version,
                patient.telecom,
                known.latest.telecom
            );
        }
    }
    world.crash();
    Ok(())
}
