use super::*;
use crate::gp2gp::chunk::CHUNK_BYTES;
use crate::gp2gp::completion::{Completion, complete};
use crate::gp2gp::transfer::tests::practice;

const SENDER: &str = "A81001";
const RECEIVER: &str = "B82002";
const STRANGER: &str = "C83003";
const CHUNK: usize = CHUNK_BYTES as usize;

fn document() -> Vec<u8> {
    (0..2 * CHUNK + 10).map(|i| (i * 7 % 253) as u8).collect()
}

fn new_transfer(document: &[u8]) -> NewTransfer {
    NewTransfer {
        patient: "9434765919".parse().unwrap(),
        from_practice: practice(SENDER),
        to_practice: practice(RECEIVER),
        document_size: document.len() as u64,
        document_sha256: Sha256Hash::of(document),
    }
}

fn id() -> TransferId {
    TransferId::new(7).unwrap()
}

fn started(document: &[u8]) -> Transfer {
    start(id(), new_transfer(document), 1_000).unwrap()
}

fn accepted(outcome: Result<ChunkOutcome, TransferRefusal>) -> Transfer {
    match outcome {
        Ok(ChunkOutcome::Accepted(transfer)) => transfer,
        other => panic!("{other:?}"),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, TransferRefusal>) -> &'static str {
    result.unwrap_err().code().as_str()
}

/// `document` uploaded in full and completed.
fn completed(document: &[u8]) -> Transfer {
    let mut transfer = started(document);
    for (index, chunk) in document.chunks(CHUNK).enumerate() {
        let upload = accept_chunk(&transfer, &practice(SENDER), index as u32, chunk, 2_000);
        transfer = accepted(upload);
    }
    match complete(&transfer, document.chunks(CHUNK), 3_000).unwrap() {
        Completion::Complete(transfer) => transfer,
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_checks_size_digest_and_practices() {
    let document = document();
    let transfer = started(&document);
    assert_eq!(transfer.state(), TransferState::Sending);
    assert_eq!(transfer.chunk_count(), 3);
    assert_eq!(transfer.held_count(), 0);
    assert_eq!(transfer.created_ms(), 1_000);
    assert_eq!(missing_chunks(&transfer, 10), [0, 1, 2]);
    assert_eq!(missing_chunks(&transfer, 2), [0, 1]);
    let refused = |change: &dyn Fn(&mut NewTransfer)| {
        let mut new = new_transfer(&document);
        change(&mut new);
        let refusal = start(id(), new, 1_000).unwrap_err();
        (refusal.code().as_str(), refusal.to_string())
    };
    assert_eq!(
        refused(&|new| new.document_size = 0),
        ("DOCUMENT_EMPTY", "the document is empty".into())
    );
    assert_eq!(
        refused(&|new| new.document_size = DOCUMENT_BYTES_MAX + 1),
        (
            "DOCUMENT_TOO_LARGE",
            "the document has 104857601 bytes; at most 104857600 are allowed".into()
        )
    );
    assert_eq!(
        refused(&|new| new.document_sha256 = Sha256Hash::from_bytes([0; 32])),
        ("INVALID_VALUE", "the document digest is all zeros".into())
    );
    assert_eq!(
        refused(&|new| new.to_practice = practice(SENDER)),
        (
            "SAME_PRACTICE",
            "practice A81001 cannot transfer a record to itself".into()
        )
    );
    let largest = NewTransfer {
        document_size: DOCUMENT_BYTES_MAX,
        ..new_transfer(&document)
    };
    assert_eq!(start(id(), largest, 0).unwrap().chunk_count(), 400);
}

#[test]
fn chunks_are_accepted_once_and_never_change() {
    let document = document();
    let sender = practice(SENDER);
    let transfer = started(&document);
    let last = &document[2 * CHUNK..];
    let one = accepted(accept_chunk(&transfer, &sender, 2, last, 1_500));
    assert_eq!(one.held_count(), 1);
    assert_eq!(one.chunk_sha256(2), Some(Sha256Hash::of(last)));
    assert_eq!(one.updated_ms(), 1_500);
    assert_eq!(missing_chunks(&one, 10), [0, 1]);
    // The same bytes again: a success that changes nothing.
    assert_eq!(
        accept_chunk(&one, &sender, 2, last, 1_600),
        Ok(ChunkOutcome::AlreadyHeld)
    );
    // Other bytes: refused.
    let mut other = last.to_vec();
    other[0] ^= 1;
    let conflict = accept_chunk(&one, &sender, 2, &other, 1_600).unwrap_err();
    assert_eq!(conflict.code().as_str(), "CHUNK_CONFLICT");
    assert_eq!(
        conflict.to_string(),
        "transfer 7: chunk 2 is already held with other bytes"
    );
    // A clock stepped back does not move the record's time back.
    let two = accepted(accept_chunk(&one, &sender, 0, &document[..CHUNK], 900));
    assert_eq!(two.updated_ms(), 1_500);
    assert!(!two.awaits_completion());
    let three = accepted(accept_chunk(
        &two,
        &sender,
        1,
        &document[CHUNK..2 * CHUNK],
        2_000,
    ));
    assert!(three.awaits_completion());
    assert_eq!(missing_chunks(&three, 10), Vec::<u32>::new());
}

#[test]
fn uploads_with_the_wrong_index_length_practice_or_state_are_refused() {
    let document = document();
    let sender = practice(SENDER);
    let transfer = started(&document);
    let full = &document[..CHUNK];
    assert_eq!(
        accept_chunk(&transfer, &sender, 3, &full[..10], 0)
            .unwrap_err()
            .to_string(),
        "transfer 7 has 3 chunks; there is no chunk 3"
    );
    assert_eq!(
        code(accept_chunk(&transfer, &sender, u32::MAX, full, 0)),
        "CHUNK_INDEX_OUT_OF_RANGE"
    );
    assert_eq!(
        accept_chunk(&transfer, &sender, 2, full, 0)
            .unwrap_err()
            .to_string(),
        "transfer 7: chunk 2 must be 10 bytes, not 262144"
    );
    assert_eq!(
        code(accept_chunk(&transfer, &sender, 0, &full[1..], 0)),
        "CHUNK_LENGTH_MISMATCH"
    );
    assert_eq!(
        accept_chunk(&transfer, &practice(RECEIVER), 0, full, 0)
            .unwrap_err()
            .to_string(),
        "practice B82002 may not upload a chunk of transfer 7"
    );
    let cancelled = match cancel(&transfer, &sender, 0).unwrap() {
        Cancellation::Cancelled(transfer) => transfer,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        accept_chunk(&cancelled, &sender, 0, full, 0)
            .unwrap_err()
            .to_string(),
        "cannot upload a chunk of transfer 7: it is CANCELLED"
    );
}

#[test]
fn a_resend_after_completion_or_delivery_is_still_a_success() {
    let document = document();
    let complete = completed(&document);
    let sender = practice(SENDER);
    assert_eq!(
        accept_chunk(&complete, &sender, 0, &document[..CHUNK], 5_000),
        Ok(ChunkOutcome::AlreadyHeld)
    );
    let mut other = document[..CHUNK].to_vec();
    other[9] ^= 1;
    assert_eq!(
        code(accept_chunk(&complete, &sender, 0, &other, 5_000)),
        "CHUNK_CONFLICT"
    );
    let hash = Sha256Hash::of(&document);
    let Ok(Acknowledgement::Delivered(delivered)) =
        acknowledge(&complete, &practice(RECEIVER), hash, 6_000)
    else {
        panic!("not delivered")
    };
    assert_eq!(
        accept_chunk(&delivered, &sender, 2, &document[2 * CHUNK..], 7_000),
        Ok(ChunkOutcome::AlreadyHeld)
    );
}

#[test]
fn downloads_only_by_the_receiver_of_a_complete_transfer() {
    let document = document();
    let receiver = practice(RECEIVER);
    let transfer = started(&document);
    assert_eq!(
        check_download(&transfer, &receiver, 0)
            .unwrap_err()
            .to_string(),
        "cannot download a chunk of transfer 7: it is SENDING"
    );
    let complete = completed(&document);
    let download = check_download(&complete, &receiver, 2).unwrap();
    assert_eq!(
        download,
        ChunkDownload {
            chunk_index: 2,
            key_value: 7 << 9 | 2,
            offset: 2 * CHUNK as u64,
            size: 10,
            sha256: Sha256Hash::of(&document[2 * CHUNK..]),
        }
    );
    assert_eq!(
        code(check_download(&complete, &receiver, 3)),
        "CHUNK_INDEX_OUT_OF_RANGE"
    );
    assert_eq!(
        code(check_download(&complete, &practice(SENDER), 0)),
        "NOT_PARTICIPANT"
    );
    assert_eq!(
        code(check_download(&complete, &practice(STRANGER), 0)),
        "NOT_PARTICIPANT"
    );
    let Ok(Acknowledgement::Delivered(delivered)) =
        acknowledge(&complete, &receiver, Sha256Hash::of(&document), 6_000)
    else {
        panic!("not delivered")
    };
    assert_eq!(
        check_download(&delivered, &receiver, 0)
            .unwrap_err()
            .to_string(),
        "cannot download a chunk of transfer 7: it is DELIVERED"
    );
}

#[test]
fn delivery_happens_once_and_only_for_the_declared_document() {
    let document = document();
    let receiver = practice(RECEIVER);
    let hash = Sha256Hash::of(&document);
    let sending = started(&document);
    assert_eq!(
        acknowledge(&sending, &receiver, hash, 0)
            .unwrap_err()
            .to_string(),
        "cannot acknowledge transfer 7: it is SENDING"
    );
    let complete = completed(&document);
    assert_eq!(
        code(acknowledge(&complete, &practice(SENDER), hash, 0)),
        "NOT_PARTICIPANT"
    );
    let wrong = acknowledge(&complete, &receiver, Sha256Hash::of(b"other"), 0).unwrap_err();
    assert_eq!(wrong.code().as_str(), "DOCUMENT_HASH_MISMATCH");
    assert_eq!(
        wrong.to_string(),
        "transfer 7: the document's SHA-256 is not the one declared at the start"
    );
    let Ok(Acknowledgement::Delivered(delivered)) = acknowledge(&complete, &receiver, hash, 6_000)
    else {
        panic!("not delivered")
    };
    assert_eq!(delivered.state(), TransferState::Delivered);
    assert_eq!(delivered.updated_ms(), 6_000);
    assert_eq!(
        acknowledge(&delivered, &receiver, hash, 7_000),
        Ok(Acknowledgement::AlreadyDelivered)
    );
    assert_eq!(
        code(acknowledge(
            &delivered,
            &receiver,
            Sha256Hash::of(b"other"),
            0
        )),
        "DOCUMENT_HASH_MISMATCH"
    );
}

#[test]
fn either_party_cancels_before_delivery_and_nobody_after() {
    let document = document();
    let sending = started(&document);
    assert_eq!(
        code(cancel(&sending, &practice(STRANGER), 0)),
        "NOT_PARTICIPANT"
    );
    for (who, by) in [
        (SENDER, CancelledBy::SendingPractice),
        (RECEIVER, CancelledBy::ReceivingPractice),
    ] {
        for transfer in [started(&document), completed(&document)] {
            let Ok(Cancellation::Cancelled(cancelled)) = cancel(&transfer, &practice(who), 9_000)
            else {
                panic!("not cancelled")
            };
            assert_eq!(cancelled.state(), TransferState::Cancelled(by));
            assert_eq!(cancelled.updated_ms(), 9_000);
            for again in [SENDER, RECEIVER] {
                assert_eq!(
                    cancel(&cancelled, &practice(again), 9_500),
                    Ok(Cancellation::AlreadyCancelled)
                );
            }
            assert_eq!(
                code(check_download(&cancelled, &practice(RECEIVER), 0)),
                "INVALID_STATE"
            );
        }
    }
    let complete = completed(&document);
    let Ok(Acknowledgement::Delivered(delivered)) =
        acknowledge(&complete, &practice(RECEIVER), Sha256Hash::of(&document), 0)
    else {
        panic!("not delivered")
    };
    assert_eq!(
        cancel(&delivered, &practice(SENDER), 0)
            .unwrap_err()
            .to_string(),
        "cannot cancel transfer 7: it is DELIVERED"
    );
}

#[test]
fn transfers_expire_only_after_the_idle_limit() {
    let document = document();
    let transfer = started(&document);
    let early = transfer.updated_ms() + TRANSFER_IDLE_MS_MAX - 1;
    assert_eq!(
        expire(&transfer, early).unwrap_err(),
        TransferRefusal::NotIdle {
            transfer: id(),
            idle_ms: TRANSFER_IDLE_MS_MAX - 1,
            idle_ms_max: TRANSFER_IDLE_MS_MAX,
        }
    );
    // A clock behind the record's time is not idle at all.
    assert_eq!(code(expire(&transfer, 0)), "TRANSFER_NOT_IDLE");
    let expired = expire(&transfer, early + 1).unwrap();
    assert_eq!(
        expired.state(),
        TransferState::Cancelled(CancelledBy::Expiry)
    );
    assert_eq!(code(expire(&expired, u64::MAX)), "INVALID_STATE");
    let complete = completed(&document);
    assert!(expire(&complete, complete.updated_ms() + TRANSFER_IDLE_MS_MAX).is_ok());
}
