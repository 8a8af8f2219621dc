//! Damage done to a stopped machine's files after a seed's last check, and what must then
//! hold: a latent sector corruption (one flipped bit in a durable record) that a full
//! verification must report, and a forged audit record (a trail link rewritten, its CRC made
//! valid again, as someone with write access would) that the audit verification must report.

use std::sync::Arc;

use spine_core::NhsNumber;
use spine_core::access::directory_file::demo_ids;
use spine_core::audit::chain::ChainRecord;
use spine_core::pds::synthetic::SplitMix64;
use spine_core::request::{Operation, Reply};
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::{KIND_AUDIT, ShardIndexes};
use spine_storage::log::record;

use crate::checks::ask_each;
use crate::model::{Model, Violation, violation};
use crate::world::World;

/// Where an audit record's trail link lies in its payload (`core/domain/src/audit/chain.rs`).
const TRAIL_LINK: std::ops::Range<usize> = 72..80;

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
    let shard_indexes = std::sync::Arc::new(spine_core::shard::record_layout::ShardIndexes);
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

/// An audit record chosen to forge, after a checkpoint: its trail links to the patient's
/// event `skipped`, from before the checkpoint, and the forgery links it one event further
/// back, to `skip_to`, hiding `skipped` from "who has seen my record". A restart checks only
/// what follows its checkpoint, so only the record's hash (which covers its trail link) can
/// show the forgery there; a full verification also sees the trail no longer lead to the
/// patient's previous event.
#[derive(Debug)]
pub struct Forgery {
    shard: usize,
    segment: std::path::PathBuf,
    offset: u64,
    index: u64,
    skipped: u64,
    skip_to: u64,
}

impl Forgery {
    /// What was forged, without the directory (which differs between runs of one seed).
    pub fn describe(&self) -> String {
        format!(
            "shard {} record {} relinked from {} to {}",
            self.shard, self.index, self.skipped, self.skip_to
        )
    }
}

/// Checkpoints every shard, then has every patient read once more, so that each has an audit
/// event after the checkpoint linked to one before it; picks one of those whose patient has
/// two events before the checkpoint (`None` if no patient has).
pub fn pick_forgery(
    world: &World,
    model: &mut Model,
    random: &mut SplitMix64,
) -> Result<Option<Forgery>, Violation> {
    let mut checkpointed = Vec::with_capacity(world.shards());
    for shard in 0..world.shards() {
        if let Err(error) = world.checkpoint(shard) {
            return violation!("shard {shard}'s checkpoint failed: {error}");
        }
        checkpointed.push(world.with_log(shard, |log| log.last_position().index));
    }
    let numbers: Vec<NhsNumber> = model.patients.keys().copied().collect();
    let read = |nhs_number| Operation::PdsRetrieve { nhs_number };
    ask_each(world, model, random, numbers, demo_ids::GP, read)?;
    let trail_of = |log: &spine_storage::Log, index: u64| {
        log.read(index, |view| {
            (view.kind() == KIND_AUDIT)
                .then(|| ChainRecord::parse(view.payload()).map(|chained| chained.trail))
                .flatten()
        })
        .ok()
        .flatten()
        .flatten()
    };
    let mut candidates = Vec::new();
    for (shard, &checkpointed) in checkpointed.iter().enumerate() {
        world.with_log(shard, |log| {
            for index in checkpointed + 1..=log.last_position().index {
                let Some(skipped) = trail_of(log, index) else {
                    continue;
                };
                if skipped == 0 || skipped > checkpointed {
                    continue;
                }
                if let Some(skip_to) = trail_of(log, skipped).filter(|&to| to != 0)
                    && let Some((segment, offset)) = log.record_place(index)
                {
                    candidates.push(Forgery {
                        shard,
                        segment,
                        offset,
                        index,
                        skipped,
                        skip_to,
                    });
                }
            }
        });
    }
    if candidates.is_empty() {
        return Ok(None);
    }
    let chosen = random.below(candidates.len() as u64) as usize;
    Ok(Some(candidates.swap_remove(chosen)))
}

/// Forges the chosen record in the stopped machine's files (its trail relinked, its CRC made
/// valid again); then the restart (`reopen`) must refuse to start and a full verification
/// must report it. The original bytes are put back afterwards.
pub fn forged_trail_is_found(
    root: &std::path::Path,
    forgery: &Forgery,
    reopen: impl FnOnce() -> Result<World, Violation>,
) -> Result<(), Violation> {
    use std::os::unix::fs::FileExt;
    let io_failed = |error: std::io::Error| {
        Violation(format!("forging {}: {error}", forgery.segment.display()))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&forgery.segment)
        .map_err(io_failed)?;
    let mut length = [0u8; 4];
    let length_at = forgery.offset + spine_storage::format::RECORD_PAYLOAD_LEN_OFFSET as u64;
    file.read_exact_at(&mut length, length_at)
        .map_err(io_failed)?;
    let size = spine_storage::format::record_size(u32::from_le_bytes(length) as usize);
    let mut original = vec![0u8; size];
    file.read_exact_at(&mut original, forgery.offset)
        .map_err(io_failed)?;
    let Ok(header) = record::decode(&original, u32::MAX) else {
        return violation!(
            "the audit record at log index {} does not decode",
            forgery.index
        );
    };
    let mut payload = record::payload(&original, &header).to_vec();
    payload[TRAIL_LINK].copy_from_slice(&forgery.skip_to.to_le_bytes());
    let mut forged = Vec::with_capacity(original.len());
    record::encode(&mut forged, &header, &payload);
    file.write_all_at(&forged, forgery.offset)
        .map_err(io_failed)?;
    file.sync_data().map_err(io_failed)?;

    // The restart's world holds the logs: it stops before the full verification opens them.
    let restarted = reopen().map(World::crash).is_ok();
    let mut config =
        crate::world::log_config(root, forgery.shard, spine_storage::SimulatedDisk::new());
    config.use_checkpoint = false;
    let verified = match spine_storage::Log::open_read_only(config, Arc::new(ShardIndexes)) {
        Ok((log, _)) => verify_chain(&log, None).is_ok(),
        Err(error) => {
            return violation!("opening the forged log of shard {}: {error}", forgery.shard);
        }
    };
    file.write_all_at(&original, forgery.offset)
        .map_err(io_failed)?;
    file.sync_data().map_err(io_failed)?;
    if restarted {
        return violation!(
            "the machine restarted over a forged audit: {}",
            forgery.describe()
        );
    }
    if verified {
        return violation!(
            "a full verification passed a forged audit: {}",
            forgery.describe()
        );
    }
    Ok(())
}
