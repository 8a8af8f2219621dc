//! GP2GP as one shard runs it: a transfer and its chunks live on the patient's shard (the id
//! is allocated so), each step goes through [`crate::gp2gp`], and an answer leaves only once
//! what it acknowledges is durable (as every answer does).
//!
//! A chunk's record is appended before the transfer record that names it, so a crash that
//! cuts a turn short can lose a chunk only together with the acknowledgement of it. When the
//! last chunk arrives the shard checks the whole document in the same turn (reading every
//! chunk back: through the overlay for those still in flight, from the log for the rest); a
//! crash before that leaves a transfer that awaits completion, and whichever step reads it
//! next completes it. Audited: the start, the completion, every download (a disclosure), the
//! delivery and a cancellation; uploads are not (the sender holds the record already). A
//! transfer that has ended (delivered, failed or cancelled) has its chunks deleted.

use bytes::Bytes;
use spine_storage::NewRecord;

use super::id_allocation::AllocatedId;
use super::outcomes::WriteOutcome;
use super::registrations::PreviousPractice;
use super::store::Store;
use super::{Context, record_layout, records, unavailable};
use crate::access::{Activity, RoleProfile};
use crate::audit::event::{AuditAction, AuditOutcome};
use crate::gp2gp::{
    self, Acknowledgement, Cancellation, ChunkOutcome, CompletionError, DocumentCheck, NewTransfer,
    Sha256Hash, Transfer, TransferId,
};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::values::OdsCode;
use crate::request::{ErrorCode, Refusal, Reply, Request, Response, TransferStatus};

/// The reply naming a transfer: its state and the chunks it still needs.
pub(super) fn status_reply(transfer: &Transfer) -> Reply {
    Reply::Transfer(TransferStatus {
        missing: gp2gp::missing_chunks(transfer, gp2gp::CHUNK_COUNT_MAX as usize),
        transfer: transfer.clone(),
    })
}

impl<S: Store> Context<'_, S> {
    fn stored_transfer(&self, id: TransferId) -> Result<Option<Transfer>, Refusal> {
        match self.latest(record_layout::transfer_key(id), |_, payload| {
            records::transfer::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(transfer)) => Ok(Some(transfer)),
            Some(Err(error)) => Err(unavailable(format!(
                "transfer {id} does not decode: {error}"
            ))),
        }
    }

    /// The practice a patient was registered at before their current one, if they moved.
    fn previous_practice(&self, patient: NhsNumber) -> Result<Option<OdsCode>, Refusal> {
        match self.latest(record_layout::registration_key(patient), |_, payload| {
            PreviousPractice::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(previous)) => Ok(Some(previous.practice)),
            Some(Err(error)) => Err(unavailable(format!("{patient}: {error}"))),
        }
    }

    /// The caller's GP2GP role; a refusal is audited.
    fn gp2gp_profile(
        &mut self,
        request: &Request,
        action: AuditAction,
        patient: Option<NhsNumber>,
    ) -> Result<RoleProfile, Refusal> {
        self.authorise(request, Activity::Gp2gp, action, patient)
    }

    /// The transfer a request names, completed first if a crash left it awaiting that, with
    /// the caller's organisation.
    fn transfer_for(
        &mut self,
        request: &Request,
        action: AuditAction,
        id: TransferId,
    ) -> Result<(Transfer, OdsCode), Refusal> {
        let profile = self.gp2gp_profile(request, action, None)?;
        let Some(transfer) = self.stored_transfer(id)? else {
            let refusal = Refusal::new(
                ErrorCode::ReferenceNotFound,
                format!("no GP2GP transfer has id {id}"),
            );
            return Err(self.refuse(request, action, None, refusal));
        };
        let transfer = if transfer.awaits_completion() {
            self.complete(request, &transfer)?
        } else {
            transfer
        };
        Ok((transfer, profile.organisation))
    }

    /// A new transfer id, free and at home here, derived from the request id.
    /// Starts a transfer from the caller's practice to the one the patient is registered at.
    pub(super) fn gp2gp_start(
        &mut self,
        request: &Request,
        patient: NhsNumber,
        document_size: u64,
        document_sha256: Sha256Hash,
    ) -> WriteOutcome {
        let action = AuditAction::Gp2gpStart;
        let profile = self.gp2gp_profile(request, action, Some(patient))?;
        let current = self.existing(request, action, patient)?;
        let Some(registered) = current.general_practitioner.clone() else {
            let refusal = Refusal::new(
                ErrorCode::InvalidRequestState,
                format!("{patient} is not registered at a practice to send the record to"),
            );
            return Err(self.refuse(request, action, Some(patient), refusal));
        };
        // Sending to the practice the patient is at already is refused below, as a bad value.
        if registered != profile.organisation
            && self.previous_practice(patient)?.as_ref() != Some(&profile.organisation)
        {
            let refusal = Refusal::new(
                ErrorCode::AccessDenied,
                format!(
                    "only the practice {patient} was registered at before their current one may send their record"
                ),
            );
            return Err(self.refuse(request, action, Some(patient), refusal));
        }
        let new = NewTransfer {
            patient,
            from_practice: profile.organisation,
            to_practice: registered,
            document_size,
            document_sha256,
        };
        let id = self.allocate_id(request, |bits| {
            Ok(TransferId::new(bits % TransferId::MAX + 1).expect("1 to MAX is an id"))
        })?;
        match gp2gp::start(id, new, self.now_ms) {
            Ok(transfer) => {
                let written =
                    self.write_audited(request, action, patient, None, transfer_record(&transfer));
                Ok((status_reply(&transfer), written))
            }
            Err(refused) => Err(self.refuse(request, action, Some(patient), refused.into())),
        }
    }

    /// Accepts one chunk; completes the transfer when it was the last.
    pub(super) fn gp2gp_send_chunk(
        &mut self,
        request: &Request,
        id: TransferId,
        index: u32,
        bytes: &[u8],
    ) -> Response {
        // Only an access refusal is audited, under the transfer's sending.
        let action = AuditAction::Gp2gpStart;
        let (transfer, practice) = self.transfer_for(request, action, id)?;
        match gp2gp::accept_chunk(&transfer, &practice, index, bytes, self.now_ms) {
            Ok(ChunkOutcome::AlreadyHeld) => Ok(status_reply(&transfer)),
            Ok(ChunkOutcome::Accepted(next)) => {
                self.shard.push(
                    self.turn,
                    NewRecord::put(
                        record_layout::chunk_key(id, index),
                        record_layout::KIND_CHUNK,
                        Bytes::copy_from_slice(bytes),
                    ),
                );
                self.shard.push(self.turn, transfer_record(&next));
                let next = if next.awaits_completion() {
                    self.complete(request, &next)?
                } else {
                    next
                };
                Ok(status_reply(&next))
            }
            // Refusals of uploads are not audited: nothing was disclosed or changed.
            Err(refused) => Err(refused.into()),
        }
    }

    /// Checks the whole document of a transfer holding every chunk, and stores the result
    /// (audited). A chunk that does not match its own digest is damage in the log: refused as
    /// unavailable, changing nothing.
    fn complete(&mut self, request: &Request, transfer: &Transfer) -> Result<Transfer, Refusal> {
        let mut check = DocumentCheck::new(transfer).map_err(Refusal::from)?;
        while let Some(index) = check.next_index() {
            let key = record_layout::chunk_key(transfer.id(), index);
            match self.latest(key, |_, payload| check.add_chunk(payload))? {
                Some(Ok(())) => {}
                Some(Err(error)) => return Err(unavailable(error)),
                None => {
                    return Err(unavailable(format!(
                        "chunk {index} of transfer {} is missing from the log",
                        transfer.id()
                    )));
                }
            }
        }
        let completion = check
            .finish(self.now_ms)
            .map_err(|error: CompletionError| unavailable(error))?;
        let outcome = match completion.refusal() {
            None => AuditOutcome::Allowed,
            Some(refusal) => AuditOutcome::Refused {
                code: Refusal::from(refusal).code.as_str().to_owned(),
            },
        };
        let next = completion.transfer().clone();
        self.audit(
            request,
            Some(next.patient()),
            AuditAction::Gp2gpComplete,
            None,
            outcome,
            None,
        );
        self.shard.push(self.turn, transfer_record(&next));
        if next.state().is_final() {
            self.drop_chunks(&next);
        }
        Ok(next)
    }

    /// Deletes the chunks of a transfer that has ended (delivered, failed or cancelled): no
    /// one may read them any more, so their index entries go (the bytes stay in the log until
    /// it is compacted). Written after the transfer record that ends it, so a crash between
    /// leaves chunks of an ended transfer, never a live transfer without its chunks.
    fn drop_chunks(&mut self, transfer: &Transfer) {
        for index in 0..transfer.chunk_count() {
            if transfer.chunk_sha256(index).is_some() {
                let key = record_layout::chunk_key(transfer.id(), index);
                self.shard
                    .push(self.turn, NewRecord::delete(key, record_layout::KIND_CHUNK));
            }
        }
    }

    /// A transfer's state and missing chunks, for either practice.
    pub(super) fn gp2gp_status(&mut self, request: &Request, id: TransferId) -> Response {
        let (transfer, practice) = self.transfer_for(request, AuditAction::Gp2gpFetch, id)?;
        if transfer.party(&practice).is_none() {
            return Err(Refusal::new(
                ErrorCode::AccessDenied,
                format!("{practice} is not a party to transfer {id}"),
            ));
        }
        Ok(status_reply(&transfer))
    }

    /// One chunk of a complete transfer, for the receiving practice (audited).
    pub(super) fn gp2gp_fetch_chunk(
        &mut self,
        request: &Request,
        id: TransferId,
        index: u32,
    ) -> Response {
        let action = AuditAction::Gp2gpFetch;
        let (transfer, practice) = self.transfer_for(request, action, id)?;
        let patient = Some(transfer.patient());
        let download = match gp2gp::check_download(&transfer, &practice, index) {
            Ok(download) => download,
            Err(refused) => return Err(self.refuse(request, action, patient, refused.into())),
        };
        let key = record_layout::chunk_key(id, index);
        let bytes = self
            .latest(key, |_, payload| payload.to_vec())?
            .ok_or_else(|| unavailable(format!("chunk {index} of transfer {id} is missing")))?;
        if bytes.len() != download.size as usize || Sha256Hash::of(&bytes) != download.sha256 {
            return Err(unavailable(format!(
                "chunk {index} of transfer {id} is damaged in the log"
            )));
        }
        self.audit(request, patient, action, None, AuditOutcome::Allowed, None);
        Ok(Reply::Chunk { index, bytes })
    }

    /// The receiving practice's acknowledgement: delivered once.
    pub(super) fn gp2gp_acknowledge(
        &mut self,
        request: &Request,
        id: TransferId,
        document_sha256: Sha256Hash,
    ) -> Response {
        let action = AuditAction::Gp2gpDeliver;
        let (transfer, practice) = self.transfer_for(request, action, id)?;
        let patient = Some(transfer.patient());
        match gp2gp::acknowledge(&transfer, &practice, document_sha256, self.now_ms) {
            Ok(Acknowledgement::AlreadyDelivered) => Ok(status_reply(&transfer)),
            Ok(Acknowledgement::Delivered(next)) => {
                self.write_ended_transfer(request, action, &next);
                Ok(status_reply(&next))
            }
            Err(refused) => Err(self.refuse(request, action, patient, refused.into())),
        }
    }

    /// Either practice ends a transfer before delivery.
    pub(super) fn gp2gp_cancel(&mut self, request: &Request, id: TransferId) -> Response {
        let action = AuditAction::Gp2gpCancel;
        let (transfer, practice) = self.transfer_for(request, action, id)?;
        let patient = Some(transfer.patient());
        match gp2gp::cancel(&transfer, &practice, self.now_ms) {
            Ok(Cancellation::AlreadyCancelled) => Ok(status_reply(&transfer)),
            Ok(Cancellation::Cancelled(next)) => {
                self.write_ended_transfer(request, action, &next);
                Ok(status_reply(&next))
            }
            Err(refused) => Err(self.refuse(request, action, patient, refused.into())),
        }
    }

    /// Writes a transfer that has ended (delivered or cancelled) after its audit event, then
    /// drops its chunks.
    fn write_ended_transfer(
        &mut self,
        request: &Request,
        action: AuditAction,
        transfer: &Transfer,
    ) {
        self.write_audited(
            request,
            action,
            transfer.patient(),
            None,
            transfer_record(transfer),
        );
        self.drop_chunks(transfer);
    }
}

fn transfer_record(transfer: &Transfer) -> NewRecord {
    NewRecord::put(
        record_layout::transfer_key(transfer.id()),
        record_layout::KIND_TRANSFER,
        Bytes::from(records::transfer::encode(transfer)),
    )
}

impl AllocatedId for TransferId {
    const NAME: &'static str = "transfer id";
    const DOMAIN: &'static [u8] = b"gp2gp";
    fn home_value(&self) -> u64 {
        self.get()
    }
    fn key(&self) -> spine_storage::Key {
        record_layout::transfer_key(*self)
    }
}
