//! A write's stored outcome that cannot be read is damage, never an empty slot: forgetting it
//! would let a retry of the write run a second time. Reopening the shard refuses the log, and a
//! shard already open refuses the retry instead of running it again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on any unexpected error.

use std::sync::Arc;

use spine_core::access::Justification;
use spine_core::access::directory_file::{demo, demo_caller, demo_ids};
use spine_core::pds::synthetic::{nhs_numbers, patient_at};
use spine_core::request::{ErrorCode, Operation, Reply, Request};
use spine_core::shard::record_layout::{KIND_META, KIND_OUTCOME};
use spine_core::shard::store::MemoryStore;
use spine_core::shard::{ShardConfig, ShardError, ShardInput, ShardOutput, ShardState};
use spine_core::storage::{NewRecord, Position};
use uuid::Uuid;

fn open(store: &MemoryStore) -> Result<ShardState, ShardError> {
    ShardState::open(ShardConfig::new(0, 1), Arc::new(demo()), store)
}

fn load(id: u128) -> Request {
    let number = nhs_numbers().nth(3).unwrap();
    Request {
        id: Uuid::from_u128(id),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation: Operation::PdsLoad {
            patient: patient_at(1, 3, number),
        },
    }
}

/// Runs `request` as one turn, made durable in `store`; its output and its records.
fn run(
    shard: &mut ShardState,
    store: &mut MemoryStore,
    request: Request,
) -> (ShardOutput, Vec<NewRecord>) {
    let turn = shard.execute(&*store, 1_000, vec![ShardInput::Execute(request)]);
    let records = turn.records.clone();
    if !records.is_empty() {
        let last = Position {
            term: 1,
            index: turn.first_index + records.len() as u64 - 1,
        };
        store.apply(turn.records);
        shard.durable(turn.number, turn.first_index, records.len(), last);
    }
    let output = turn.outputs.into_iter().next().expect("one output");
    (output, records)
}

/// A store holding one acknowledged load whose outcome record was then overwritten by bytes
/// that are no outcome, followed by the shard's metadata again (so a reopening reads the
/// outcome while rebuilding its ring, not while replaying a turn cut short).
fn damaged_store() -> (MemoryStore, ShardState) {
    let mut store = MemoryStore::new();
    let mut shard = open(&store).unwrap();
    let (output, records) = run(&mut shard, &mut store, load(7));
    assert!(
        matches!(output, ShardOutput::Response(Ok(Reply::Patient(_)))),
        "{output:?}"
    );
    let outcome = records
        .iter()
        .find(|record| record.kind == KIND_OUTCOME)
        .expect("an outcome");
    let meta = records
        .iter()
        .find(|record| record.kind == KIND_META)
        .expect("metadata");
    store.apply(vec![
        NewRecord::put(outcome.key.unwrap(), KIND_OUTCOME, vec![0xEE; 9]),
        meta.clone(),
    ]);
    (store, shard)
}

#[test]
fn a_shard_does_not_open_over_an_outcome_it_cannot_read() {
    let (store, _) = damaged_store();
    match open(&store) {
        Err(ShardError::Damaged { what, .. }) => assert_eq!(what, "write outcome"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("opened over a damaged outcome: a retry could run twice"),
    }
}

#[test]
fn a_retry_whose_outcome_cannot_be_read_is_refused_not_run_again() {
    let (mut store, mut shard) = damaged_store();
    let (output, records) = run(&mut shard, &mut store, load(7));
    let ShardOutput::Response(Err(refusal)) = output else {
        panic!("the retry was answered {output:?}");
    };
    assert_eq!(refusal.code, ErrorCode::ServiceUnavailable, "{refusal}");
    assert!(refusal.message.contains("not run again"), "{refusal}");
    assert!(
        records.iter().all(|record| record.kind != KIND_OUTCOME),
        "nothing was written for it"
    );
}
