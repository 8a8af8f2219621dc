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

/// A patient who moved from Riverside (the demo GP's practice) to Hillview (the second demo
/// GP's), so Riverside is their previous practice and sends their record.
fn moved_patient(handle: &EngineHandle) -> Patient {
    let mut patient = population(71, 1).remove(0);
    patient.version = 1;
    load(handle, std::slice::from_ref(&patient));
    move_practice(handle, demo_ids::GP, &patient, "Y90002")
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
    let patient = moved_patient(&handle);
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

fn start_as(
    handle: &EngineHandle,
    user: uuid::Uuid,
    patient: NhsNumber,
) -> Result<TransferStatus, spine_core::request::Refusal> {
    let document = b"a GP record";
    let operation = Operation::Gp2gpStart {
        patient,
        document_size: document.len() as u64,
        document_sha256: Sha256Hash::of(document),
    };
    submit(handle, request(user, operation)).map(|reply| match reply {
        Reply::Transfer(status) => status,
        other => panic!("expected a transfer, got {other:?}"),
    })
}

/// The caller's refusals of `Gp2gpStart` on `patient`'s trail.
fn refused_starts(handle: &EngineHandle, patient: NhsNumber, caller: &str) -> usize {
    let trail = Operation::AuditTrail {
        nhs_number: patient,
        limit: 100,
    };
    privacy_officer_events(handle, trail)
        .iter()
        .filter(|event| {
            event.action == spine_core::audit::event::AuditAction::Gp2gpStart
                && event.organisation == caller
                && event.outcome
                    == spine_core::audit::event::AuditOutcome::Refused {
                        code: "ACCESS_DENIED".into(),
                    }
        })
        .count()
}

#[test]
fn only_the_previous_practice_starts_a_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::start(dir.path());
    let handle = engine.handle();
    let mut patients = population(72, 2);
    for patient in &mut patients {
        patient.version = 1;
    }
    // Registered at Hillview from the start: no practice had their record before.
    patients[0].general_practitioner = Some("Y90002".parse().unwrap());
    // Registered at a third practice, then at Hillview (a Hillview GP, self-claimed).
    patients[1].general_practitioner = Some("Y90003".parse().unwrap());
    load(&handle, &patients);
    let never_moved = patients[0].nhs_number;
    let moved_in = {
        let mut moved = patients[1].clone();
        moved.general_practitioner = Some("Y90002".parse().unwrap());
        let update = spine_core::request::Request {
            justification: spine_core::access::Justification::SelfClaimed {
                reason: "the patient has registered with us".into(),
            },
            ..request(
                demo_ids::SECOND_GP,
                Operation::PdsUpdate {
                    patient: moved,
                    expected_version: 1,
                },
            )
        };
        patient_reply(submit(&handle, update))
    };

    // Riverside is neither patient's previous practice.
    for patient in [never_moved, moved_in.nhs_number] {
        let refused = start_as(&handle, demo_ids::GP, patient).unwrap_err();
        assert_eq!(refused.code, ErrorCode::AccessDenied);
        assert!(
            !refused.message.contains("Y900"),
            "the refusal names no practice: {}",
            refused.message
        );
        assert_eq!(refused_starts(&handle, patient, "Y90001"), 1, "audited");
    }

    // Back to Riverside, by Hillview: Hillview is now the previous practice and sends;
    // Riverside, where the patient is, cannot send to itself.
    let back = move_practice(&handle, demo_ids::SECOND_GP, &moved_in, "Y90001");
    assert_eq!(back.version, 3);
    let started = start_as(&handle, demo_ids::SECOND_GP, back.nhs_number).unwrap();
    assert_eq!(started.transfer.state(), TransferState::Sending);
    let to_itself = start_as(&handle, demo_ids::GP, back.nhs_number).unwrap_err();
    assert_eq!(to_itself.code, ErrorCode::InvalidValue);

    // The rule holds across a restart: the previous practice is read from the log.
    drop(handle);
    engine.shutdown().unwrap();
    let engine = common::start(dir.path());
    let handle = engine.handle();
    assert!(start_as(&handle, demo_ids::SECOND_GP, back.nhs_number).is_ok());
    let refused = start_as(&handle, demo_ids::SECOND_GP, never_moved).unwrap_err();
    assert_eq!(
        refused.code,
        ErrorCode::InvalidValue,
        "Hillview is their practice"
    );
    engine.shutdown().unwrap();
}
