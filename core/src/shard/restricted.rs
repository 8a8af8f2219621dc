//! A restricted patient's practice never leaves the core. Their record's address, telecom and
//! practice are dropped from every Patient reply (`Patient::into_disclosable`); the practice can
//! also stand in other records as an organisation: who updated the Summary Care Record or
//! recorded its entries, who referred, between which practices a GP2GP transfer runs. Every
//! reply about a restricted patient passes through here, and each organisation field holding
//! their practice reads [`WITHHELD`] instead, except for a caller of that practice itself.
//! Prescriptions are the exception: a prescription names its prescriber by law, and its id
//! (the NHS short form) embeds the prescriber's ODS code, so a dispenser always learns it.
//!
//! The replacement is made on the way out, after the outcome was stored, so a retried request
//! gets the same answer withheld the same way.

use super::store::Store;
use super::{Context, unavailable};
use crate::NhsNumber;
use crate::pds::values::OdsCode;
use crate::request::{Reply, Request, Response};

pub use crate::restricted::WITHHELD;

impl<S: Store> Context<'_, S> {
    /// The practice to withhold from `request`'s caller in a reply about `patient`: theirs if
    /// the record is restricted and the caller is not of that practice.
    fn practice_withheld(
        &self,
        request: &Request,
        patient: NhsNumber,
    ) -> Result<Option<OdsCode>, crate::request::Refusal> {
        let record = self.latest(
            crate::shard::record_layout::patient_key(patient),
            |_, payload| crate::shard::records::patient::restriction(payload),
        )?;
        let record = match record {
            None => return Ok(None),
            Some(Ok(record)) => record,
            Some(Err(error)) => return Err(unavailable(format!("{patient}: {error}"))),
        };
        let caller = self.caller_organisation(&request.caller);
        Ok(record
            .general_practitioner
            .filter(|practice| record.restricted && practice.as_str() != caller))
    }

    /// `response` with a restricted patient's practice withheld wherever it stands.
    pub(super) fn withhold_restricted(&self, request: &Request, response: Response) -> Response {
        let mut reply = response?;
        match &mut reply {
            Reply::Scr(record) => {
                if let Some(practice) = self.practice_withheld(request, record.nhs_number)? {
                    record.withhold_practice(&practice);
                }
            }
            Reply::ScrVersions(records) => {
                for record in records {
                    if let Some(practice) = self.practice_withheld(request, record.nhs_number)? {
                        record.withhold_practice(&practice);
                    }
                }
            }
            Reply::Referral(referral) => {
                if let Some(practice) = self.practice_withheld(request, referral.patient())? {
                    referral.withhold_practice(&practice);
                }
            }
            Reply::Transfer(status) => {
                if let Some(practice) =
                    self.practice_withheld(request, status.transfer.patient())?
                {
                    status.transfer.withhold_practice(&practice);
                }
            }
            // Patients are disclosed without it already; audit events go to privacy officers
            // only; a prescription names its prescriber by law, in its id as well (the NHS
            // short form embeds the prescriber's ODS code); the rest name no patient.
            Reply::Patient(_)
            | Reply::Prescription(_)
            | Reply::Prescriptions(_)
            | Reply::Matches(_)
            | Reply::AuditEvents(_)
            | Reply::Service(_)
            | Reply::Slots(_)
            | Reply::FreeSlots(_)
            | Reply::Chunk { .. }
            | Reply::Route(_) => {}
        }
        Ok(reply)
    }
}
