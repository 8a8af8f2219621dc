//! Nothing that changes the answer to "who has seen my record" can be rewritten undetected.
//! Each field of each audit event on disk is rewritten in turn, the record's CRC made valid
//! again (as a forger with write access would), and the audit verification (`spine verify`'s)
//! and the engine's own check at start must both find it; the verification names the damaged
//! event's log index, segment and offset.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::*;
use spine_core::access::Justification;
use spine_core::access::directory_file::demo_ids;
use spine_core::audit::chain::ChainRecord;
use spine_core::engine::{Engine, EngineError};
use spine_core::request::Operation;
use spine_core::shard::audit_queries::verify_chain;
use spine_core::shard::record_layout::{self, KIND_AUDIT, ShardIndexes};
use spine_storage::Log;
use spine_storage::log::record::{self, RecordHeader};

/// Patients with several events each: loads, retrievals by the GP, and emergency accesses
/// that raise privacy alerts.
fn workload(dir: &Path) {
    let engine = Engine::start(one_shard(dir)).unwrap();
    let handle = engine.handle();
    let patients = population(11, 5);
    load(&handle, &patients);
    for round in 0..3 {
        for patient in &patients {
            retrieve(&handle, demo_ids::GP, patient.nhs_number).unwrap();
            if round == 1 {
                let mut emergency = request(
                    demo_ids::HOSPITAL_DOCTOR,
                    Operation::PdsRetrieve {
                        nhs_number: patient.nhs_number,
                    },
                );
                emergency.justification = Justification::Emergency {
                    reason: "unconscious in A&E".into(),
                };
                submit(&handle, emergency).unwrap();
            }
        }
    }
    drop(handle);
    engine.shutdown().unwrap();
}

/// One way to rewrite an audit record: its name, and the change (false if it does not apply
/// to this record).
type Rewrite = (
    &'static str,
    fn(&mut RecordHeader, &mut Vec<u8>, &HashMap<u64, u64>) -> bool,
);

fn trail_of(payload: &[u8]) -> u64 {
    ChainRecord::parse(payload).unwrap().trail
}

fn set_trail(payload: &mut [u8], trail: u64) {
    payload[72..80].copy_from_slice(&trail.to_le_bytes());
}

const REWRITES: &[Rewrite] = &[
    ("sequence number", |_, payload, _| {
        payload[0] ^= 1;
        true
    }),
    ("previous hash", |_, payload, _| {
        payload[20] ^= 0x40;
        true
    }),
    ("own hash", |_, payload, _| {
        payload[50] ^= 0x40;
        true
    }),
    ("trail link cut to none", |_, payload, _| {
        let linked = trail_of(payload) != 0;
        set_trail(payload, 0);
        linked
    }),
    ("trail link skipping an event", |_, payload, trails| {
        let trail = trail_of(payload);
        match trails.get(&trail) {
            Some(&skip_to) if trail != 0 => {
                set_trail(payload, skip_to);
                true
            }
            _ => false,
        }
    }),
    ("trail link to a later event", |header, payload, _| {
        set_trail(payload, header.position.index + 1);
        true
    }),
    ("event byte", |_, payload, _| {
        let middle = 80 + (payload.len() - 80) / 2;
        payload[middle] ^= 0x01;
        true
    }),
    ("key", |header, _, _| {
        header.key ^= 1;
        header.key != 0
    }),
    ("kind", |header, _, _| {
        header.kind = record_layout::KIND_OUTCOME;
        true
    }),
];

#[test]
#[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
fn every_rewrite_of_every_audit_field_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    workload(&original);
    // A restart checks the chain from its checkpoint on (the checkpoint vouches for what came
    // before): without one it checks all of it, so each rewrite must stop it.
    remove_checkpoints(&original);
    let segment = segment_files(&original).pop().unwrap();
    let segment_name = segment.file_name().unwrap().to_string_lossy().into_owned();
    let bytes = fs::read(&segment).unwrap();
    let audit: Vec<(usize, RecordHeader)> = records_of(&bytes)
        .into_iter()
        .filter(|&(_, _, kind, _)| kind == KIND_AUDIT)
        .map(|(offset, _, _, _)| (offset, record::decode(&bytes[offset..], u32::MAX).unwrap()))
        .collect();
    assert!(audit.len() >= 20, "{} audit events", audit.len());
    let trails: HashMap<u64, u64> = audit
        .iter()
        .map(|(offset, header)| {
            let payload = record::payload(&bytes[*offset..], header);
            (header.position.index, trail_of(payload))
        })
        .collect();
    assert!(
        trails.values().filter(|&&trail| trail != 0).count() >= 12,
        "patients have trails of several events"
    );
    {
        let (log, _) =
            Log::open_read_only(one_shard(&original).log_config(0), Arc::new(ShardIndexes))
                .unwrap();
        verify_chain(&log, None).expect("the untouched audit verifies");
    }

    let mut rewrites = 0;
    for (offset, header) in &audit {
        for (name, rewrite) in REWRITES {
            let mut forged_header = *header;
            let mut payload = record::payload(&bytes[*offset..], header).to_vec();
            if !rewrite(&mut forged_header, &mut payload, &trails) {
                continue;
            }
            rewrites += 1;
            let index = header.position.index;
            let mut forged = Vec::new();
            record::encode(&mut forged, &forged_header, &payload);
            let mut tampered = bytes.clone();
            tampered[*offset..*offset + forged.len()].copy_from_slice(&forged);
            let copy = dir.path().join("copy");
            copy_dir(&original, &copy);
            fs::write(copy.join("shard-0").join(&segment_name), &tampered).unwrap();

            let (log, _) =
                Log::open_read_only(one_shard(&copy).log_config(0), Arc::new(ShardIndexes))
                    .unwrap();
            let error = verify_chain(&log, None)
                .expect_err(&format!(
                    "{name} of the event at log index {index} rewritten"
                ))
                .to_string();
            drop(log);
            // A rewritten header hides the event from the chain: the break shows at the next
            // event. Everything else is named where it was made.
            if *name != "kind" {
                assert!(
                    error.contains(&format!(
                        "log index {index} (segment {segment_name} offset {offset})"
                    )),
                    "{name} at {index}: {error}"
                );
            }
            match Engine::start(one_shard(&copy)) {
                Err(EngineError::Audit { shard: 0, .. }) => {}
                Err(other) => panic!("{name} at {index}: the start failed otherwise: {other}"),
                Ok(_) => panic!("{name} at {index}: the engine started over a forged audit"),
            }
            fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(rewrites > 8 * audit.len(), "{rewrites} rewrites");
}
