//! The Electronic Prescription Service as one shard runs it. A prescription lives on its
//! patient's home shard (its id is allocated so), so the patient's audit trail holds every
//! prescribing and dispensing event; each change goes through [`crate::eps::apply`], and a
//! refused one writes nothing but its audit event.

use bytes::Bytes;
use spine_storage::NewRecord;

use super::id_allocation::AllocatedId;
use super::outcomes::WriteOutcome;
use super::store::Store;
use super::{Context, record_layout, records, unavailable};
use crate::access::Activity;
use crate::audit::event::{AccessAlert, AuditAction};
use crate::eps::{
    EpsAction, EpsActionKind, EpsErrorCode, NewPrescription, Prescription, PrescriptionId,
    PrescriptionStatus, apply,
};
use crate::request::{ErrorCode, Refusal, Reply, Request};

/// Prescriptions one nominated release returns, at most (the national service's limit).
pub const RELEASE_LIMIT_MAX: u8 = 25;

fn audit_action(kind: EpsActionKind) -> AuditAction {
    match kind {
        EpsActionKind::Cancel => AuditAction::EpsCancel,
        EpsActionKind::Release => AuditAction::EpsRelease,
        EpsActionKind::Return => AuditAction::EpsReturn,
        EpsActionKind::Dispense => AuditAction::EpsDispense,
        EpsActionKind::NotDispensed => AuditAction::EpsNotDispensed,
        EpsActionKind::Withdraw => AuditAction::EpsWithdraw,
        EpsActionKind::Claim => AuditAction::EpsClaim,
    }
}

fn error_code(code: EpsErrorCode) -> ErrorCode {
    match code {
        EpsErrorCode::InvalidStateTransition => ErrorCode::PrescriptionInvalidStateTransition,
        EpsErrorCode::WithAnotherDispenser => ErrorCode::PrescriptionWithAnotherDispenser,
        EpsErrorCode::ItemNotFound => ErrorCode::ItemNotFound,
        EpsErrorCode::InvalidValue => ErrorCode::InvalidValue,
    }
}

impl<S: Store> Context<'_, S> {
    /// The prescription with `id`, through the overlay (a record under the same key with
    /// another organisation part is not it).
    fn prescription(&self, id: PrescriptionId) -> Result<Option<Prescription>, Refusal> {
        match self.latest(record_layout::prescription_key(id), |_, payload| {
            records::prescription::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(prescription)) => Ok((prescription.id == id).then_some(prescription)),
            Some(Err(error)) => Err(unavailable(format!(
                "prescription {id} does not decode: {error}"
            ))),
        }
    }

    /// A new id from the prescriber's organisation whose key is free and at home here, derived
    /// from the request id (a retry that missed the outcome ring gets the same one).
    pub(super) fn eps_create(&mut self, request: &Request, new: &NewPrescription) -> WriteOutcome {
        let action = AuditAction::EpsPrescribe;
        let patient = Some(new.patient);
        let profile = self.authorise(request, Activity::EpsPrescribe, action, patient)?;
        let current = self.existing(request, action, new.patient)?;
        let alert = self.relationship(request, &profile, &current, action)?;
        let issued = self
            .allocate_id(request, |bits| {
                let (random, serial) =
                    ((bits & 0xFF_FFFF) as u32, ((bits >> 24) & 0xF_FFFF) as u32);
                PrescriptionId::new(random, &profile.organisation, serial)
                    .map_err(|error| Refusal::new(ErrorCode::InvalidValue, error))
            })
            .and_then(|id| {
                Prescription::issue(
                    new.clone(),
                    id,
                    request.caller.user,
                    profile.organisation.clone(),
                    self.now_ms,
                )
                .map_err(|error| Refusal::new(ErrorCode::InvalidValue, error))
            });
        match issued {
            Ok(prescription) => self.write_prescription(request, action, prescription, alert),
            Err(refusal) if refusal.code == ErrorCode::ServiceUnavailable => Err(refusal),
            Err(refusal) => Err(self.refuse(request, action, patient, refusal)),
        }
    }

    pub(super) fn eps_update(
        &mut self,
        request: &Request,
        id: PrescriptionId,
        change: &EpsAction,
    ) -> WriteOutcome {
        let action = audit_action(change.kind());
        let activity = match change {
            EpsAction::Cancel { .. } => Activity::EpsPrescribe,
            _ => Activity::EpsDispense,
        };
        let profile = self.authorise(request, activity, action, None)?;
        if change.organisation() != &profile.organisation {
            let refusal = Refusal::new(
                ErrorCode::AccessDenied,
                format!(
                    "the action names {} but role profile {:?} is held at {}",
                    change.organisation(),
                    profile.id,
                    profile.organisation
                ),
            );
            return Err(self.refuse(request, action, None, refusal));
        }
        let Some(current) = self.prescription(id)? else {
            let refusal = Refusal::new(
                ErrorCode::PrescriptionNotFound,
                format!("no prescription has id {id}"),
            );
            return Err(self.refuse(request, action, None, refusal));
        };
        match apply(&current, change, self.now_ms) {
            Ok(next) => self.write_prescription(request, action, next, None),
            Err(refused) => {
                let refusal = Refusal::new(error_code(refused.code), refused.message);
                Err(self.refuse(request, action, Some(current.patient), refusal))
            }
        }
    }

    /// Releases to the caller's pharmacy up to `limit` prescriptions nominated to it that wait
    /// here; the caller (the coordinator) asks the shards in turn for what is still wanted.
    pub(super) fn eps_release_nominated(
        &mut self,
        request: &Request,
        limit: usize,
    ) -> Result<Vec<Prescription>, Refusal> {
        let action = AuditAction::EpsRelease;
        let profile = self.authorise(request, Activity::EpsDispense, action, None)?;
        let pharmacy = profile.organisation;
        let (from, to) = record_layout::organisation_index_range(pharmacy.as_str());
        // The index holds what is durable; some of it may have moved on in a turn in flight,
        // so read a few more than wanted and check each through the overlay.
        let candidates = self.store.secondary_range(
            record_layout::INDEX_NOMINATED,
            &from,
            &to,
            limit.saturating_mul(2),
        );
        let release = EpsAction::Release {
            pharmacy: pharmacy.clone(),
        };
        let mut released = Vec::with_capacity(limit);
        for key in candidates {
            if released.len() == limit {
                break;
            }
            let current =
                match self.latest(key, |_, payload| records::prescription::decode(payload))? {
                    Some(Ok(prescription)) => prescription,
                    Some(Err(error)) => {
                        return Err(unavailable(format!(
                            "a nominated prescription does not decode: {error}"
                        )));
                    }
                    None => continue,
                };
            if current.status != PrescriptionStatus::ToBeDispensed
                || current.nominated_pharmacy.as_ref() != Some(&pharmacy)
            {
                continue;
            }
            // An expired one is refused by the state machine: skipped, not released.
            if let Ok(next) = apply(&current, &release, self.now_ms) {
                let (reply, _) = self.write_prescription(request, action, next, None)?;
                if let Reply::Prescription(prescription) = reply {
                    released.push(prescription);
                }
            }
        }
        Ok(released)
    }

    /// Writes a prescription after its audit event.
    fn write_prescription(
        &mut self,
        request: &Request,
        action: AuditAction,
        prescription: Prescription,
        alert: Option<(AccessAlert, &str)>,
    ) -> WriteOutcome {
        let written = self.write_audited(
            request,
            action,
            prescription.patient,
            alert,
            NewRecord::put(
                record_layout::prescription_key(prescription.id),
                record_layout::KIND_PRESCRIPTION,
                Bytes::from(records::prescription::encode(&prescription)),
            ),
        );
        Ok((Reply::Prescription(prescription), written))
    }
}

impl AllocatedId for PrescriptionId {
    const NAME: &'static str = "prescription id";
    // No domain bytes: the ids issued before the helper was shared were derived so.
    const DOMAIN: &'static [u8] = b"";
    fn home_value(&self) -> u64 {
        self.key_value()
    }
    fn key(&self) -> spine_storage::Key {
        record_layout::prescription_key(*self)
    }
}
