//! The transfer's steps, each a pure function from the transfer as stored to the next transfer,
//! an answer that needs no write, or a refusal that changes nothing. Completion, which reads the
//! chunks back, is in [`super::completion`].
//!
//! Each step checks, in this order: who asks (a practice that is not a party learns nothing
//! about the transfer's state), the state, then the step's own values. Times only move
//! forward: a step at an earlier `now_ms` than the last change (a clock stepped back across a
//! restart) keeps the later time rather than refusing.

use super::chunk::{DOCUMENT_BYTES_MAX, chunk_count, chunk_key_value, chunk_offset, chunk_size};
use super::hash::Sha256Hash;
use super::refusal::TransferRefusal;
use super::transfer::{CancelledBy, NewTransfer, Party, Transfer, TransferId, TransferState};
use crate::pds::values::OdsCode;

/// How long a transfer may sit unchanged before [`expire`] may end it: eight days, the period
/// after which GP2GP's guidance has the practices fall back to a printed record. A bound keeps
/// an abandoned upload, or a document nobody collects, from holding up to 100 MiB of patient
/// data on the Spine for ever.
pub const TRANSFER_IDLE_MS_MAX: u64 = 8 * 24 * 60 * 60 * 1000;

/// What an upload of a chunk did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// The chunk is new. Write its log record (the bytes, under
    /// [`super::chunk_key_value`]) and then this transfer, in the same log write, and
    /// acknowledge once that write is durable. If every chunk is now held, the transfer
    /// [awaits completion](Transfer::awaits_completion).
    Accepted(Transfer),
    /// The same bytes are held already: a resend after an acknowledgement was lost. Write
    /// nothing, and acknowledge again (as every response, once the log is durable up to now, so
    /// never before the first upload's write).
    AlreadyHeld,
}

/// A chunk the receiving practice may download: where to find it and what it must be. The
/// engine checks the bytes it reads against `size` and `sha256` before sending them, so that a
/// damaged log never reaches a practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkDownload {
    /// The chunk.
    pub chunk_index: u32,
    /// The key value of its log record.
    pub key_value: u64,
    /// Where it starts in the document.
    pub offset: u64,
    /// Its length.
    pub size: u32,
    /// Its digest, recorded when it was accepted.
    pub sha256: Sha256Hash,
}

/// What a delivery acknowledgement did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acknowledgement {
    /// The document is delivered, now and only now: store this transfer and report the
    /// delivery (audit, the sending practice's notification).
    Delivered(Transfer),
    /// It was delivered before: a repeated acknowledgement. Write nothing and report nothing
    /// new; answer the receiver with success.
    AlreadyDelivered,
}

/// What a cancellation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancellation {
    /// The transfer is ended: store this transfer. Its chunks may be removed.
    Cancelled(Transfer),
    /// It was cancelled before (by either party, or by expiry). Write nothing.
    AlreadyCancelled,
}

/// A new transfer, `Sending` with no chunk held. The engine chooses `id` (unique on its shard)
/// and has checked, before this, that the patient's registration in PDS has moved from
/// `from_practice` to `to_practice` and that the caller speaks for `from_practice`. A retried
/// start is made idempotent by the engine's request ids, as for every create.
pub fn start(id: TransferId, new: NewTransfer, now_ms: u64) -> Result<Transfer, TransferRefusal> {
    if new.document_size == 0 {
        return Err(TransferRefusal::DocumentEmpty);
    }
    if new.document_size > DOCUMENT_BYTES_MAX {
        return Err(TransferRefusal::DocumentTooLarge {
            size: new.document_size,
            max: DOCUMENT_BYTES_MAX,
        });
    }
    if new.document_sha256.is_zero() {
        return Err(TransferRefusal::ZeroDigest);
    }
    if new.from_practice == new.to_practice {
        return Err(TransferRefusal::SamePractice {
            practice: new.from_practice,
        });
    }
    let count = chunk_count(new.document_size);
    Ok(Transfer {
        id,
        patient: new.patient,
        from_practice: new.from_practice,
        to_practice: new.to_practice,
        document_size: new.document_size,
        document_sha256: new.document_sha256,
        chunks: vec![None; count as usize],
        state: TransferState::Sending,
        created_ms: now_ms,
        updated_ms: now_ms,
    })
}

/// The sending practice uploads chunk `chunk_index`. A chunk, once accepted, never changes: the
/// same bytes again are [`ChunkOutcome::AlreadyHeld`], in any state that still has the chunks
/// (so a resend whose acknowledgement was lost after the transfer completed still succeeds),
/// and other bytes are refused with `CHUNK_CONFLICT`.
pub fn accept_chunk(
    transfer: &Transfer,
    practice: &OdsCode,
    chunk_index: u32,
    bytes: &[u8],
    now_ms: u64,
) -> Result<ChunkOutcome, TransferRefusal> {
    const ACTION: &str = "upload a chunk of";
    transfer.require(practice, Party::SendingPractice, ACTION)?;
    if matches!(
        transfer.state,
        TransferState::Failed | TransferState::Cancelled(_)
    ) {
        return Err(transfer.invalid_state(ACTION));
    }
    let expected = transfer.chunk_size_of(chunk_index)?;
    if bytes.len() != expected as usize {
        return Err(TransferRefusal::ChunkLengthMismatch {
            transfer: transfer.id,
            index: chunk_index,
            expected,
            found: bytes.len(),
        });
    }
    let digest = Sha256Hash::of(bytes);
    match transfer.chunk_sha256(chunk_index) {
        Some(held) if held == digest => return Ok(ChunkOutcome::AlreadyHeld),
        Some(_) => {
            return Err(TransferRefusal::ChunkConflict {
                transfer: transfer.id,
                index: chunk_index,
            });
        }
        None => {}
    }
    // Only a Sending transfer lacks chunks; the check keeps that true if states are added.
    if transfer.state != TransferState::Sending {
        return Err(transfer.invalid_state(ACTION));
    }
    let mut next = transfer.touched(now_ms);
    next.chunks[chunk_index as usize] = Some(digest);
    assert_eq!(next.held_count(), transfer.held_count() + 1);
    Ok(ChunkOutcome::Accepted(next))
}

/// The first `limit` chunks not yet held, in index order: what a sending practice resends to
/// resume after a broken connection or a restart of either side. Empty once every chunk is
/// held. The engine bounds `limit` by what one response may carry; at most
/// [`super::CHUNK_COUNT_MAX`] indexes are ever returned.
pub fn missing_chunks(transfer: &Transfer, limit: usize) -> Vec<u32> {
    let missing: Vec<u32> = (0..transfer.chunk_count())
        .filter(|&index| transfer.chunk_sha256(index).is_none())
        .take(limit)
        .collect();
    assert!(missing.len() <= limit);
    missing
}

/// The receiving practice asks for chunk `chunk_index`. Downloads are allowed only while the
/// transfer is `Complete`: not before, since the document's digest is not yet checked, and not
/// after delivery, since the receiver has acknowledged holding the whole document, the Spine's
/// copy has done its job (the engine may remove it), and a read after that would be a second
/// disclosure of the record for no purpose. Downloads repeat freely until then (each read is
/// audited by the engine), so a receiver resumes by downloading what it lacks.
pub fn check_download(
    transfer: &Transfer,
    practice: &OdsCode,
    chunk_index: u32,
) -> Result<ChunkDownload, TransferRefusal> {
    const ACTION: &str = "download a chunk of";
    transfer.require(practice, Party::ReceivingPractice, ACTION)?;
    if transfer.state != TransferState::Complete {
        return Err(transfer.invalid_state(ACTION));
    }
    let size = transfer.chunk_size_of(chunk_index)?;
    let sha256 = transfer
        .chunk_sha256(chunk_index)
        .expect("a Complete transfer holds every chunk (checked on decode)");
    Ok(ChunkDownload {
        chunk_index,
        key_value: chunk_key_value(transfer.id, chunk_index),
        offset: chunk_offset(chunk_index),
        size,
        sha256,
    })
}

/// The receiving practice acknowledges that it holds the whole document, giving the SHA-256 of
/// what it reassembled, so that only the declared document can be acknowledged. `Complete`
/// becomes `Delivered` once; a repeat of the acknowledgement (its answer lost) is
/// [`Acknowledgement::AlreadyDelivered`], never a second delivery.
pub fn acknowledge(
    transfer: &Transfer,
    practice: &OdsCode,
    document_sha256: Sha256Hash,
    now_ms: u64,
) -> Result<Acknowledgement, TransferRefusal> {
    const ACTION: &str = "acknowledge";
    transfer.require(practice, Party::ReceivingPractice, ACTION)?;
    if !matches!(
        transfer.state,
        TransferState::Complete | TransferState::Delivered
    ) {
        return Err(transfer.invalid_state(ACTION));
    }
    if document_sha256 != transfer.document_sha256 {
        return Err(TransferRefusal::DocumentHashMismatch {
            transfer: transfer.id,
        });
    }
    if transfer.state == TransferState::Delivered {
        return Ok(Acknowledgement::AlreadyDelivered);
    }
    let mut next = transfer.touched(now_ms);
    next.state = TransferState::Delivered;
    Ok(Acknowledgement::Delivered(next))
}

/// Either party ends the transfer before delivery: the sender withdraws it, or the receiver
/// rejects it. A delivered transfer cannot be cancelled (the receiver has the record), nor a
/// failed one (it is already over, for another reason).
pub fn cancel(
    transfer: &Transfer,
    practice: &OdsCode,
    now_ms: u64,
) -> Result<Cancellation, TransferRefusal> {
    const ACTION: &str = "cancel";
    let by = match transfer.party(practice) {
        Some(Party::SendingPractice) => CancelledBy::SendingPractice,
        Some(Party::ReceivingPractice) => CancelledBy::ReceivingPractice,
        None => return Err(transfer.not_participant(practice, ACTION)),
    };
    match transfer.state {
        TransferState::Cancelled(_) => Ok(Cancellation::AlreadyCancelled),
        TransferState::Delivered | TransferState::Failed => Err(transfer.invalid_state(ACTION)),
        TransferState::Sending | TransferState::Complete => {
            let mut next = transfer.touched(now_ms);
            next.state = TransferState::Cancelled(by);
            Ok(Cancellation::Cancelled(next))
        }
    }
}

/// Ends a transfer nobody has moved for [`TRANSFER_IDLE_MS_MAX`]: an upload abandoned, or a
/// document never collected. The engine's sweep calls it; the practices are told as for a
/// cancellation.
pub fn expire(transfer: &Transfer, now_ms: u64) -> Result<Transfer, TransferRefusal> {
    if transfer.state.is_final() {
        return Err(transfer.invalid_state("expire"));
    }
    let idle_ms = now_ms.saturating_sub(transfer.updated_ms);
    if idle_ms < TRANSFER_IDLE_MS_MAX {
        return Err(TransferRefusal::NotIdle {
            transfer: transfer.id,
            idle_ms,
            idle_ms_max: TRANSFER_IDLE_MS_MAX,
        });
    }
    let mut next = transfer.touched(now_ms);
    next.state = TransferState::Cancelled(CancelledBy::Expiry);
    Ok(next)
}

impl Transfer {
    /// A refusal unless `practice` plays `party`.
    fn require(
        &self,
        practice: &OdsCode,
        party: Party,
        action: &'static str,
    ) -> Result<(), TransferRefusal> {
        if self.party(practice) != Some(party) {
            return Err(self.not_participant(practice, action));
        }
        Ok(())
    }

    fn not_participant(&self, practice: &OdsCode, action: &'static str) -> TransferRefusal {
        TransferRefusal::NotParticipant {
            transfer: self.id,
            practice: practice.clone(),
            action,
        }
    }

    pub(super) fn invalid_state(&self, action: &'static str) -> TransferRefusal {
        TransferRefusal::InvalidState {
            transfer: self.id,
            action,
            state: self.state.code(),
        }
    }

    /// The length of chunk `chunk_index`, or a refusal if the document has no such chunk.
    fn chunk_size_of(&self, chunk_index: u32) -> Result<u32, TransferRefusal> {
        chunk_size(self.document_size, chunk_index).ok_or(TransferRefusal::ChunkIndexOutOfRange {
            transfer: self.id,
            index: chunk_index,
            count: self.chunk_count(),
        })
    }

    /// A copy to change, stamped with the time of the change.
    pub(super) fn touched(&self, now_ms: u64) -> Transfer {
        Transfer {
            updated_ms: self.updated_ms.max(now_ms),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests;
