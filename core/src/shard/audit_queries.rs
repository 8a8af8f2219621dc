//! The privacy officer's queries: every access to one patient ("who has seen my record"), read
//! newest first along the links between that patient's events, and the alerts raised by users
//! of one organisation, from the alert index. Both read durable events only, and are audited.

use super::alerts;
use super::keys;
use super::store::Store;
use super::{Context, unavailable};
use crate::access::Activity;
use crate::audit::chain::ChainRecord;
use crate::audit::event::{AuditAction, AuditEvent, AuditOutcome};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::values::OdsCode;
use crate::request::{AUDIT_QUERY_LIMIT_MAX, ErrorCode, Refusal, Reply, Request, Response};

/// Splits an audit record's payload into the link to the patient's previous event and the
/// decoded event.
pub fn parse_audit_payload(payload: &[u8]) -> Option<(u64, AuditEvent)> {
    let previous = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let record = ChainRecord::parse(payload.get(8..)?)?;
    Some((previous, record.decode_event().ok()?))
}

/// Why a shard's audit trail could not be read or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Read(#[from] spine_storage::ReadError),
    /// An audit record does not decode.
    #[error("audit record at index {0} does not decode")]
    Damaged(u64),
    /// The chain was tampered with.
    #[error(transparent)]
    Tampered(#[from] crate::audit::chain::TamperError),
}

/// The audited accesses to one patient, newest first, at most `limit`, following the links
/// from the patient's latest event.
pub fn patient_trail<S: Store>(
    store: &S,
    nhs_number: NhsNumber,
    limit: usize,
) -> Result<Vec<AuditEvent>, AuditReadError> {
    let mut events = Vec::new();
    let mut next = store.index_of(keys::audit_key(nhs_number))?;
    while let Some(index) = next.filter(|&index| index > 0) {
        if events.len() == limit {
            break;
        }
        let (previous, event) = store
            .read(index, |stored| parse_audit_payload(stored.payload))?
            .flatten()
            .ok_or(AuditReadError::Damaged(index))?;
        assert!(
            previous < index,
            "audit record {index} links forward to {previous}"
        );
        events.push(event);
        next = Some(previous);
    }
    Ok(events)
}

/// Verifies a shard's whole audit chain, in log order, against `head` if one is trusted;
/// returns the chain's head. Reads every record of the log.
pub fn verify_chain<S: Store>(
    store: &S,
    head: Option<crate::audit::chain::ChainHead>,
) -> Result<crate::audit::chain::ChainHead, AuditReadError> {
    let mut records = Vec::new();
    for index in 1..=store.last_index() {
        let audit = store.read(index, |stored| {
            (stored.kind == keys::KIND_AUDIT).then(|| stored.payload.get(8..).map(<[u8]>::to_vec))
        })?;
        match audit.flatten() {
            Some(Some(record)) => records.push(record),
            Some(None) => return Err(AuditReadError::Damaged(index)),
            None => {}
        }
    }
    let borrowed: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    Ok(crate::audit::chain::verify(&borrowed, head)?)
}

impl<S: Store> Context<'_, S> {
    /// Checks the caller may read the audit and the limit is in range; a refusal is audited.
    fn check_query(
        &mut self,
        request: &Request,
        patient: Option<NhsNumber>,
        limit: u32,
    ) -> Result<(), Refusal> {
        if let Err(denied) = self
            .shard
            .directory
            .authorise(&request.caller, Activity::AuditView)
        {
            let refusal = Refusal::new(ErrorCode::AccessDenied, denied);
            return Err(self.refuse_query(request, patient, refusal));
        }
        if (1..=AUDIT_QUERY_LIMIT_MAX).contains(&limit) {
            return Ok(());
        }
        let refusal = Refusal::new(
            ErrorCode::InvalidValue,
            format!("limit must be 1 to {AUDIT_QUERY_LIMIT_MAX}, not {limit}"),
        );
        Err(self.refuse_query(request, patient, refusal))
    }

    fn refuse_query(
        &mut self,
        request: &Request,
        patient: Option<NhsNumber>,
        refusal: Refusal,
    ) -> Refusal {
        let outcome = AuditOutcome::Refused {
            code: refusal.code.as_str().to_owned(),
        };
        self.audit(
            request,
            patient,
            AuditAction::AuditQuery,
            None,
            outcome,
            None,
        );
        refusal
    }

    pub(super) fn audit_trail(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        limit: u32,
    ) -> Response {
        self.check_query(request, Some(nhs_number), limit)?;
        let events = patient_trail(self.store, nhs_number, limit as usize).map_err(unavailable)?;
        self.audit(
            request,
            Some(nhs_number),
            AuditAction::AuditQuery,
            None,
            AuditOutcome::Allowed,
            None,
        );
        Ok(Reply::AuditEvents(events))
    }

    pub(super) fn privacy_alerts(
        &mut self,
        request: &Request,
        organisation: &OdsCode,
        limit: u32,
    ) -> Response {
        self.check_query(request, None, limit)?;
        let (from, to) = keys::organisation_index_range(organisation.as_str());
        let alert_keys = self.store.secondary_range(
            keys::INDEX_ALERTS_BY_ORGANISATION,
            &from,
            &to,
            limit as usize,
        );
        let mut events = Vec::with_capacity(alert_keys.len());
        for key in alert_keys {
            let event = self
                .store
                .get(key, |stored| {
                    alerts::decode(stored.payload)
                        .and_then(|alert| AuditEvent::decode(alert.event).ok())
                })
                .map_err(unavailable)?
                .flatten()
                .ok_or_else(|| unavailable(format!("alert {} does not decode", key.get())))?;
            events.push(event);
        }
        self.audit(
            request,
            None,
            AuditAction::AuditQuery,
            None,
            AuditOutcome::Allowed,
            None,
        );
        Ok(Reply::AuditEvents(events))
    }
}
