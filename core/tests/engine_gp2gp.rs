//! GP2GP through the engine: a transfer delivered once, one whose chunks are not the declared
//! document (failed), and one cancelled; the chunks of each go when it ends.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

mod common;

use common::*;
use spine_core::access::directory_file::demo_ids;
use spine_core::engine::EngineHandle;
use spine_core::gp2gp::{CHUNK_BYTES, Sha256Hash, TransferId, TransferState};
use spine_core::request::{ErrorCode, Operation, Reply, Response, TransferStatus};
use spine_core::{NhsNumber, Patient};

fn status(response: Response) -> TransferStatus {
    match response {
        Ok(Reply::Transfer(status)) => status,
        other => panic!("expected a transfer, got {other:?}"),
    }
}

/// Keys in every shard's primary index.
fn keys(handle: &EngineHandle) -> usize {
    handle.stats().iter().map(|shard| shard.keys).sum()
}

/// A patient registered at Hillview (the second demo GP's practice), so the demo GP's
/// practice, Riverside, is the previous one and sends.
fn moved_patient() -> Patient {
    let mut patient = population(71, 1).remove(0);
    patient.general_practitioner = Some("Y90002".parse().unwrap());
    patient
}

fn start(handle: &EngineHandle, patient: NhsNumber, document: &[u8]) -> TransferId {
    let started = status(submit(
        handle,
        request(
            demo_ids::GP,
            Operation::Gp2gpStart {
                patient,
                document_size: document.len() as u64,
                document_sha256: Sha256Hash::of(document),
            },
        ),
    ));
    started.transfer.id()
}

fn upload(handle: &EngineHandle, transfer: TransferId, document: &[u8]) -> TransferStatus {
    let mut last = None;
    for (index, bytes) in (0..).zip(document.chunks(CHUNK_BYTES as usize)) {
        let send = Operation::Gp2gpSendChunk {
            transfer,
            index,
            bytes: bytes.to_vec(),
        };
        last = Some(status(submit(handle, request(demo_ids::GP, send))));
    }
    last.unwrap()
}

#[test]
fn ended_transfers_keep_no_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::start(dir.path());
    let handle = engine.handle();
    let patient = moved_patient();
    load(&handle, std::slice::from_ref(&patient));
    let document: Vec<u8> = (0..2 * CHUNK_BYTES as usize + 100)
        .map(|n| (n % 251) as u8)
        .collect();
    let chunks = 3;

    // Delivered: the three chunks' keys come and go.
    let before = keys(&handle);
    let transfer = start(&handle, patient.nhs_number, &document);
    let complete = upload(&handle, transfer, &document);
    assert_eq!(complete.transfer.state(), TransferState::Complete);
    let with_chunks = keys(&handle);
    assert!(with_chunks >= before + chunks, "{before} -> {with_chunks}");
    let acknowledge = Operation::Gp2gpAcknowledge {
        transfer,
        document_sha256: Sha256Hash::of(&document),
    };
    let delivered = status(submit(&handle, request(demo_ids::SECOND_GP, acknowledge)));
    assert_eq!(delivered.transfer.state(), TransferState::Delivered);
    assert_eq!(
        keys(&handle),
        with_chunks - chunks,
        "the chunks are deleted"
    );
    let late = submit(
        &handle,
        request(
            demo_ids::SECOND_GP,
            Operation::Gp2gpFetchChunk { transfer, index: 0 },
        ),
    );
    assert_eq!(refusal(late).code, ErrorCode::InvalidRequestState);

    // Failed: the chunks are not the document declared.
    let mut declared = document.clone();
    declared[0] ^= 1;
    let failing = start(&handle, patient.nhs_number, &declared);
    let before_failure = keys(&handle);
    let failed = upload(&handle, failing, &document);
    assert_eq!(failed.transfer.state(), TransferState::Failed);
    assert_eq!(
        keys(&handle),
        before_failure,
        "a failed transfer keeps no chunk"
    );

    // Cancelled part way: the chunks held go.
    let cancelling = start(&handle, patient.nhs_number, &document);
    let started = keys(&handle);
    let first = Operation::Gp2gpSendChunk {
        transfer: cancelling,
        index: 0,
        bytes: document[..CHUNK_BYTES as usize].to_vec(),
    };
    status(submit(&handle, request(demo_ids::GP, first)));
    assert_eq!(keys(&handle), started + 1, "one chunk held");
    let cancel = Operation::Gp2gpCancel {
        transfer: cancelling,
    };
    let cancelled = status(submit(&handle, request(demo_ids::SECOND_GP, cancel)));
    assert!(matches!(
        cancelled.transfer.state(),
        TransferState::Cancelled(_)
    ));
    assert_eq!(keys(&handle), started, "the chunk is deleted");
    engine.shutdown().unwrap();
}
