//! The Summary Care Record in one shard, driven directly: versions written in turns still in
//! flight (not yet durable) are read back whole — the current one from the overlay and the
//! replaced ones by their log index — and a crash that loses them loses them together.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::sync::Arc;

use spine_core::NhsNumber;
use spine_core::access::Justification;
use spine_core::access::directory_file::{demo, demo_caller, demo_ids};
use spine_core::pds::synthetic::Population;
use spine_core::request::{Operation, Reply, Request, Response};
use spine_core::scr::record::{ScrContent, ScrEntryInput};
use spine_core::shard::store::MemoryStore;
use spine_core::shard::{ShardConfig, ShardInput, ShardOutput, ShardState, Turn};
use spine_core::storage::Position;
use uuid::Uuid;

fn request(id: u128, operation: Operation) -> Request {
    Request {
        id: Uuid::from_u128(id),
        caller: demo_caller(demo_ids::GP),
        justification: Justification::None,
        operation,
    }
}

fn run(shard: &mut ShardState, store: &MemoryStore, request: Request) -> (Turn, Response) {
    let mut turn = shard.execute(store, 1_000, vec![ShardInput::Execute(request)]);
    let Some(ShardOutput::Response(response)) = turn.outputs.pop() else {
        panic!("one response");
    };
    (turn, response)
}

fn durable(shard: &mut ShardState, store: &mut MemoryStore, turn: Turn) {
    let records = turn.records.len();
    store.apply(turn.records);
    let last = Position {
        term: 1,
        index: turn.first_index + records as u64 - 1,
    };
    shard.durable(turn.number, turn.first_index, records, last);
}

fn update(id: u128, nhs_number: NhsNumber, version: u32, text: &str) -> Request {
    request(
        id,
        Operation::ScrUpdate {
            nhs_number,
            expected_version: version,
            content: ScrContent {
                allergies: vec![ScrEntryInput {
                    code: None,
                    text: text.into(),
                }],
                ..ScrContent::default()
            },
        },
    )
}

fn history(id: u128, nhs_number: NhsNumber) -> Request {
    request(
        id,
        Operation::ScrHistory {
            nhs_number,
            permission_to_view: true,
            limit: 10,
        },
    )
}

fn texts(response: &Response) -> Vec<String> {
    let Ok(Reply::ScrVersions(versions)) = response else {
        panic!("versions: {response:?}");
    };
    versions
        .iter()
        .map(|version| version.allergies[0].text.clone())
        .collect()
}

#[test]
fn history_reads_versions_still_in_flight() {
    let mut store = MemoryStore::default();
    let mut config = ShardConfig::new(0, 1);
    config.outcome_slots = 100;
    let mut shard = ShardState::open(config.clone(), Arc::new(demo()), &store).unwrap();
    let mut patient = Population::new(3).next().unwrap();
    patient.general_practitioner = Some("Y90001".parse().unwrap());
    let nhs = patient.nhs_number;
    let (loaded, _) = run(
        &mut shard,
        &store,
        request(1, Operation::PdsLoad { patient }),
    );
    durable(&mut shard, &mut store, loaded);

    // Three versions, each in its own turn, none durable yet.
    let mut turns = Vec::new();
    for (version, text) in ["first", "second", "third"].into_iter().enumerate() {
        let (turn, response) = run(
            &mut shard,
            &store,
            update(10 + version as u128, nhs, version as u32, text),
        );
        assert!(response.is_ok(), "{response:?}");
        turns.push(turn);
    }
    let (read, response) = run(&mut shard, &store, history(20, nhs));
    assert_eq!(texts(&response), ["third", "second", "first"]);
    turns.push(read);

    // Durable one by one, in order: the same history at every step.
    let mut queue: std::collections::VecDeque<Turn> = turns.into();
    for number in 0..4 {
        let turn = queue.pop_front().unwrap();
        durable(&mut shard, &mut store, turn);
        let (read, response) = run(&mut shard, &store, history(30 + number as u128, nhs));
        assert_eq!(texts(&response), ["third", "second", "first"]);
        queue.push_back(read);
    }
    for turn in queue {
        durable(&mut shard, &mut store, turn);
    }

    // A crash loses a version in flight, and the shard reopened has the durable ones.
    let (lost, response) = run(&mut shard, &store, update(40, nhs, 3, "lost"));
    assert!(response.is_ok());
    drop(lost);
    let mut reopened = ShardState::open(config, Arc::new(demo()), &store).unwrap();
    let (_, response) = run(&mut reopened, &store, history(41, nhs));
    assert_eq!(texts(&response), ["third", "second", "first"]);
}
