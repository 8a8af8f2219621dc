//! The Summary Care Record as one shard runs it: the record lives beside the patient's
//! demographic record (same home shard, so the registered practice that decides who may
//! change it is read in the same turn), one version per change, each linking to the last.

use bytes::Bytes;
use spine_storage::NewRecord;

use super::outcomes::WriteOutcome;
use super::store::Store;
use super::{Context, record_layout, records, unavailable};
use crate::access::{AccessError, Activity};
use crate::audit::event::{AccessAlert, AuditAction};
use crate::pds::nhs_number::NhsNumber;
use crate::request::{ErrorCode, Refusal, Reply, Request, Response};
use crate::scr::access::{check_change, check_view};
use crate::scr::record::{Author, HISTORY_LIMIT_MAX, ScrContent, ScrPermission, SummaryCareRecord};

/// A view's record and the alert it raises.
type Viewable<'r> = ((u64, SummaryCareRecord), Option<(AccessAlert, &'r str)>);

impl<S: Store> Context<'_, S> {
    /// The patient's current Summary Care Record and its log index, through the overlay.
    fn scr(&self, nhs_number: NhsNumber) -> Result<Option<(u64, SummaryCareRecord)>, Refusal> {
        match self.latest(record_layout::scr_key(nhs_number), |index, payload| {
            records::scr::decode(payload).map(|record| (index, record))
        })? {
            None => Ok(None),
            Some(Ok(found)) => Ok(Some(found)),
            Some(Err(error)) => Err(unavailable(format!(
                "the Summary Care Record of {nhs_number} does not decode: {error}"
            ))),
        }
    }

    /// An earlier version, by its log index (a version still in flight is in the overlay).
    fn scr_version(&self, index: u64) -> Result<SummaryCareRecord, Refusal> {
        let decoded = match self.shard.superseded.get(&index) {
            Some(version) => Some(records::scr::decode(&version.payload)),
            None => self
                .store
                .read(index, |stored| records::scr::decode(stored.payload))
                .map_err(unavailable)?,
        };
        match decoded {
            Some(Ok(record)) => Ok(record),
            Some(Err(error)) => Err(unavailable(format!(
                "the Summary Care Record version at {index} does not decode: {error}"
            ))),
            None => Err(unavailable(format!(
                "the Summary Care Record version at {index} is missing"
            ))),
        }
    }

    fn access_denied(
        &mut self,
        request: &Request,
        action: AuditAction,
        nhs_number: NhsNumber,
        denied: AccessError,
    ) -> Refusal {
        self.refuse(
            request,
            action,
            Some(nhs_number),
            Refusal::new(ErrorCode::AccessDenied, denied),
        )
    }

    /// The checks of a view and a history: role, patient, relationship and permission to
    /// view, consent, and a record to show.
    fn scr_viewable<'r>(
        &mut self,
        request: &'r Request,
        nhs_number: NhsNumber,
        permission_to_view: bool,
    ) -> Result<Viewable<'r>, Refusal> {
        let action = AuditAction::ScrView;
        let profile = self.authorise(request, Activity::ScrView, action, Some(nhs_number))?;
        let patient = self.existing(request, action, nhs_number)?;
        let alert = match check_view(
            &profile,
            patient.general_practitioner.as_ref(),
            permission_to_view,
            &request.justification,
        ) {
            Ok(alert) => alert,
            Err(denied) => return Err(self.access_denied(request, action, nhs_number, denied)),
        };
        let refusal = match self.scr(nhs_number)? {
            Some((_, record)) if record.permission == ScrPermission::No => Refusal::new(
                ErrorCode::NoPatientConsent,
                format!("patient {nhs_number} has opted out of the Summary Care Record"),
            ),
            Some(found) => return Ok((found, alert)),
            None => Refusal::new(
                ErrorCode::ResourceNotFound,
                format!("patient {nhs_number} has no Summary Care Record"),
            ),
        };
        Err(self.refuse(request, action, Some(nhs_number), refusal))
    }

    /// Audits an allowed view.
    fn audit_view(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        alert: Option<(AccessAlert, &str)>,
    ) {
        self.audit_allowed(request, nhs_number, AuditAction::ScrView, alert);
    }

    pub(super) fn scr_view(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        permission_to_view: bool,
    ) -> Response {
        let ((_, record), alert) = self.scr_viewable(request, nhs_number, permission_to_view)?;
        self.audit_view(request, nhs_number, alert);
        Ok(Reply::Scr(record))
    }

    pub(super) fn scr_history(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        permission_to_view: bool,
        limit: u32,
    ) -> Response {
        if !(1..=HISTORY_LIMIT_MAX).contains(&limit) {
            return Err(self.refuse(
                request,
                AuditAction::ScrView,
                Some(nhs_number),
                Refusal::new(
                    ErrorCode::InvalidValue,
                    format!("limit {limit}: it must be 1 to {HISTORY_LIMIT_MAX}"),
                ),
            ));
        }
        let ((_, current), alert) = self.scr_viewable(request, nhs_number, permission_to_view)?;
        let mut versions = vec![current];
        while versions.len() < limit as usize {
            let previous = versions.last().map_or(0, |record| record.previous_index);
            if previous == 0 {
                break;
            }
            let record = self.scr_version(previous)?;
            // Versions before an opt-out are never shown while it stands; the first
            // version of a record whose consent was given back starts a fresh history.
            if record.permission == ScrPermission::No {
                break;
            }
            versions.push(record);
        }
        self.audit_view(request, nhs_number, alert);
        Ok(Reply::ScrVersions(versions))
    }

    /// The checks of a change: role, patient, registered practice; returns the current
    /// record (an empty one at version 0 when there is none) and its log index.
    fn scr_changeable(
        &mut self,
        request: &Request,
        action: AuditAction,
        activity: Activity,
        nhs_number: NhsNumber,
    ) -> Result<(u64, SummaryCareRecord, Author), Refusal> {
        let profile = self.authorise(request, activity, action, Some(nhs_number))?;
        let patient = self.existing(request, action, nhs_number)?;
        if let Err(denied) = check_change(&profile, patient.general_practitioner.as_ref()) {
            return Err(self.access_denied(request, action, nhs_number, denied));
        }
        let author = Author {
            user: request.caller.user,
            organisation: profile.organisation.clone(),
            at_ms: self.now_ms,
        };
        let (index, current) = self
            .scr(nhs_number)?
            .unwrap_or_else(|| (0, SummaryCareRecord::empty(nhs_number, &author)));
        Ok((index, current, author))
    }

    pub(super) fn scr_update(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        expected_version: u32,
        content: &ScrContent,
    ) -> WriteOutcome {
        let action = AuditAction::ScrUpdate;
        let (index, current, author) =
            self.scr_changeable(request, action, Activity::ScrUpdate, nhs_number)?;
        let refusal = if let Err(error) = content.validate() {
            Some(Refusal::new(ErrorCode::InvalidValue, error))
        } else if current.permission == ScrPermission::No {
            Some(Refusal::new(
                ErrorCode::NoPatientConsent,
                format!(
                    "patient {nhs_number} has opted out of the Summary Care Record; record \
                     their consent before a summary"
                ),
            ))
        } else if current.version != expected_version {
            Some(Refusal::new(
                ErrorCode::ResourceVersionMismatch,
                format!(
                    "the Summary Care Record of {nhs_number} is at version {}, not {expected_version}",
                    current.version
                ),
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return Err(self.refuse(request, action, Some(nhs_number), refusal));
        }
        let next = current.with_content(content, &author, index);
        self.write_scr(request, action, next)
    }

    pub(super) fn scr_set_permission(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        permission: ScrPermission,
    ) -> WriteOutcome {
        let action = AuditAction::ScrConsent;
        let (index, current, author) =
            self.scr_changeable(request, action, Activity::ScrUpdate, nhs_number)?;
        let next = current.with_permission(permission, &author, index);
        self.write_scr(request, action, next)
    }

    /// Writes a version after its audit event.
    fn write_scr(
        &mut self,
        request: &Request,
        action: AuditAction,
        record: SummaryCareRecord,
    ) -> WriteOutcome {
        let written = self.write_audited(
            request,
            action,
            record.nhs_number,
            None,
            NewRecord::put(
                record_layout::scr_key(record.nhs_number),
                record_layout::KIND_SCR,
                Bytes::from(records::scr::encode(&record)),
            ),
        );
        Ok((Reply::Scr(record), written))
    }
}
