//! The PDS operations as one shard runs them: each checks access, reads through the overlay,
//! appends the record and its audit event to the turn, and answers.

use bytes::Bytes;
use spine_storage::NewRecord;

use super::outcomes::WriteOutcome;
use super::record_layout;
use super::records;
use super::registrations::PreviousPractice;
use super::store::Store;
use super::{Context, unavailable};
use crate::access::{self, Activity, RoleProfile};
use crate::audit::event::{AuditAction, AuditOutcome};
use crate::pds::nhs_number::{NhsNumber, check_value_of_stem};
use crate::pds::patient::{Death, Patient};
use crate::pds::search::{self, Score, SearchQuery};
use crate::request::{ErrorCode, Refusal, Reply, Request, Response, SearchMatch};

/// NHS number stems tried per allocation before giving up (a full or misconfigured range).
const ALLOCATION_ATTEMPTS_MAX: u64 = 100_000;

impl<S: Store> Context<'_, S> {
    /// Checks `activity` for the caller; a refusal is audited.
    pub(super) fn authorise(
        &mut self,
        request: &Request,
        activity: Activity,
        action: AuditAction,
        patient: Option<NhsNumber>,
    ) -> Result<RoleProfile, Refusal> {
        match self
            .shard
            .directory
            .authorise(&request.caller, activity)
            .cloned()
        {
            Ok(profile) => Ok(profile),
            Err(denied) => Err(self.refuse(
                request,
                action,
                patient,
                Refusal::new(ErrorCode::AccessDenied, denied),
            )),
        }
    }

    /// Audits a refusal and returns it.
    pub(super) fn refuse(
        &mut self,
        request: &Request,
        action: AuditAction,
        patient: Option<NhsNumber>,
        refusal: Refusal,
    ) -> Refusal {
        let outcome = AuditOutcome::Refused {
            code: refusal.code.as_str().to_owned(),
        };
        self.audit(request, patient, action, None, outcome, None);
        refusal
    }

    /// The patient's current record, through the overlay.
    fn patient(&self, nhs_number: NhsNumber) -> Result<Option<Patient>, Refusal> {
        match self.latest(record_layout::patient_key(nhs_number), |_, payload| {
            records::patient::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(patient)) => Ok(Some(patient)),
            Some(Err(error)) => Err(unavailable(format!(
                "the record of {nhs_number} does not decode: {error}"
            ))),
        }
    }

    pub(super) fn existing(
        &mut self,
        request: &Request,
        action: AuditAction,
        nhs_number: NhsNumber,
    ) -> Result<Patient, Refusal> {
        match self.patient(nhs_number)? {
            Some(patient) => Ok(patient),
            None => Err(self.refuse(
                request,
                action,
                Some(nhs_number),
                Refusal::new(
                    ErrorCode::ResourceNotFound,
                    format!("no patient has NHS number {nhs_number}"),
                ),
            )),
        }
    }

    /// Writes `patient` after its audit event; returns what may be disclosed and where the
    /// record went.
    fn write_patient(
        &mut self,
        request: &Request,
        action: AuditAction,
        patient: &Patient,
        alert: Option<(crate::audit::event::AccessAlert, &str)>,
    ) -> WriteOutcome {
        let payload = records::patient::encode(patient);
        let written = self.write_audited(
            request,
            action,
            patient.nhs_number,
            alert,
            NewRecord::put(
                record_layout::patient_key(patient.nhs_number),
                record_layout::KIND_PATIENT,
                Bytes::from(payload),
            ),
        );
        Ok((Reply::Patient(patient.disclosable()), written))
    }

    pub(super) fn retrieve(&mut self, request: &Request, nhs_number: NhsNumber) -> Response {
        let action = AuditAction::PdsRetrieve;
        self.authorise(request, Activity::PdsRetrieve, action, Some(nhs_number))?;
        let patient = self.existing(request, action, nhs_number)?;
        self.audit(
            request,
            Some(nhs_number),
            action,
            None,
            AuditOutcome::Allowed,
            None,
        );
        Ok(Reply::Patient(patient.into_disclosable()))
    }

    pub(super) fn load(&mut self, request: &Request, patient: &Patient) -> WriteOutcome {
        let action = AuditAction::PdsCreate;
        let nhs_number = patient.nhs_number;
        self.authorise(request, Activity::PdsCreate, action, Some(nhs_number))?;
        if self.patient(nhs_number)?.is_some() {
            return Err(self.refuse(
                request,
                action,
                Some(nhs_number),
                Refusal::new(
                    ErrorCode::InvalidValue,
                    format!("NHS number {nhs_number} is already in use"),
                ),
            ));
        }
        let mut patient = patient.clone();
        patient.version = 1;
        self.valid(request, action, &patient)?;
        self.write_patient(request, action, &patient, None)
    }

    fn valid(
        &mut self,
        request: &Request,
        action: AuditAction,
        patient: &Patient,
    ) -> Result<(), Refusal> {
        match patient.validate() {
            Ok(()) => Ok(()),
            Err(error) => Err(self.refuse(
                request,
                action,
                Some(patient.nhs_number),
                Refusal::new(ErrorCode::InvalidValue, error),
            )),
        }
    }

    /// The relationship check for changes; returns the alert a justification raises.
    pub(super) fn relationship<'r>(
        &mut self,
        request: &'r Request,
        profile: &RoleProfile,
        current: &Patient,
        action: AuditAction,
    ) -> Result<Option<(crate::audit::event::AccessAlert, &'r str)>, Refusal> {
        access::check_relationship(
            profile,
            current.general_practitioner.as_ref(),
            &request.justification,
        )
        .map_err(|denied| {
            self.refuse(
                request,
                action,
                Some(current.nhs_number),
                Refusal::new(ErrorCode::AccessDenied, denied),
            )
        })
    }

    fn check_version(
        &mut self,
        request: &Request,
        action: AuditAction,
        current: &Patient,
        expected_version: u32,
    ) -> Result<(), Refusal> {
        if current.version == expected_version {
            return Ok(());
        }
        Err(self.refuse(
            request,
            action,
            Some(current.nhs_number),
            Refusal::new(
                ErrorCode::ResourceVersionMismatch,
                format!(
                    "the record is at version {}, not {expected_version}",
                    current.version
                ),
            ),
        ))
    }

    pub(super) fn update(
        &mut self,
        request: &Request,
        patient: &Patient,
        expected_version: u32,
    ) -> WriteOutcome {
        let action = AuditAction::PdsUpdate;
        let nhs_number = patient.nhs_number;
        let profile = self.authorise(request, Activity::PdsUpdate, action, Some(nhs_number))?;
        let current = self.existing(request, action, nhs_number)?;
        let alert = self.relationship(request, &profile, &current, action)?;
        self.check_version(request, action, &current, expected_version)?;
        let mut next = patient.clone();
        next.version = current.version + 1;
        let forbidden = if current.deceased.is_some() && next.deceased != current.deceased {
            Some("the date of death cannot be changed once set; use a death notification")
        } else if current.deceased.is_none() && next.deceased.is_some() {
            Some("a death is recorded by a death notification, not an update")
        } else if current.restricted && !next.restricted {
            Some("only the restricted-records service can lift the restriction")
        } else if current.restricted
            && (!next.addresses.is_empty()
                || !next.telecom.is_empty()
                || next.general_practitioner.is_some())
        {
            Some(
                "the address, telecom and GP practice of a restricted patient cannot be changed here",
            )
        } else {
            None
        };
        if let Some(reason) = forbidden {
            return Err(self.refuse(
                request,
                action,
                Some(nhs_number),
                Refusal::new(ErrorCode::ForbiddenUpdate, reason),
            ));
        }
        if current.restricted {
            // The caller never saw these fields; keep them as they are.
            next.addresses = current.addresses;
            next.telecom = current.telecom;
            next.general_practitioner = current.general_practitioner.clone();
        }
        self.valid(request, action, &next)?;
        let left = current
            .general_practitioner
            .filter(|practice| next.general_practitioner.as_ref() != Some(practice));
        let written = self.write_patient(request, action, &next, alert)?;
        if let Some(practice) = left {
            // The practice left behind is the one GP2GP lets send the record on.
            let previous = PreviousPractice {
                practice,
                left_at_version: next.version,
            };
            self.shard.push(
                self.turn,
                NewRecord::put(
                    record_layout::registration_key(nhs_number),
                    record_layout::KIND_REGISTRATION,
                    Bytes::from(previous.encode()),
                ),
            );
        }
        Ok(written)
    }

    pub(super) fn death(
        &mut self,
        request: &Request,
        nhs_number: NhsNumber,
        expected_version: u32,
        death: &Death,
    ) -> WriteOutcome {
        let action = AuditAction::PdsDeathNotification;
        let profile = self.authorise(
            request,
            Activity::PdsDeathNotification,
            action,
            Some(nhs_number),
        )?;
        let current = self.existing(request, action, nhs_number)?;
        let alert = self.relationship(request, &profile, &current, action)?;
        self.check_version(request, action, &current, expected_version)?;
        if current.deceased.is_some() {
            return Err(self.refuse(
                request,
                action,
                Some(nhs_number),
                Refusal::new(ErrorCode::ForbiddenUpdate, "a death is already recorded"),
            ));
        }
        let mut next = current;
        next.version += 1;
        next.deceased = Some(*death);
        self.valid(request, action, &next)?;
        self.write_patient(request, action, &next, alert)
    }

    /// Creates a patient with a newly allocated NHS number, unless a trace found them.
    pub(super) fn create(&mut self, request: &Request, duplicates: usize) -> Response {
        if let Some(previous) = self.previous_outcome(request) {
            return previous;
        }
        let outcome = self.create_new(request, duplicates);
        self.remember(request, outcome)
    }

    fn create_new(&mut self, request: &Request, duplicates: usize) -> WriteOutcome {
        let action = AuditAction::PdsCreate;
        let crate::request::Operation::PdsCreate { patient } = &request.operation else {
            return Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "a create step carried another operation",
            ));
        };
        self.authorise(request, Activity::PdsCreate, action, None)?;
        let duplicate = match duplicates {
            0 => None,
            1 => Some((
                ErrorCode::SingleMatch,
                "a matching patient is already registered",
            )),
            _ => Some((
                ErrorCode::MultipleMatches,
                "several matching patients are already registered",
            )),
        };
        if let Some((code, message)) = duplicate {
            return Err(self.refuse(request, action, None, Refusal::new(code, message)));
        }
        let nhs_number = self.allocate()?;
        let mut patient = patient.clone();
        patient.nhs_number = nhs_number;
        patient.version = 1;
        if let Err(error) = patient.validate() {
            return Err(self.refuse(
                request,
                action,
                None,
                Refusal::new(ErrorCode::InvalidValue, error),
            ));
        }
        self.write_patient(request, action, &patient, None)
    }

    /// The next free, valid NHS number in the configured range whose home is this shard.
    fn allocate(&mut self) -> Result<NhsNumber, Refusal> {
        let stems = self.shard.config.nhs_stems.clone();
        for _ in 0..ALLOCATION_ATTEMPTS_MAX {
            let stem = self.shard.meta.nhs_cursor;
            if !stems.contains(&stem) {
                break;
            }
            self.shard.meta.nhs_cursor += 1;
            let check = check_value_of_stem(stem);
            if check == 10 {
                continue; // no number has this stem
            }
            let value = stem * 10 + u64::from(check);
            if super::shard_of(value, self.shard.config.shards) != self.shard.config.shard {
                continue;
            }
            let Ok(nhs_number) = NhsNumber::try_from(value) else {
                continue;
            };
            if self.patient(nhs_number)?.is_none() {
                return Ok(nhs_number);
            }
        }
        Err(Refusal::new(
            ErrorCode::ServiceUnavailable,
            "no free NHS number left in the configured range",
        ))
    }

    /// This shard's matches for a validated query, best first; at most `limit`.
    pub(super) fn search_local(
        &self,
        query: &SearchQuery,
        limit: usize,
    ) -> Result<Vec<(NhsNumber, Score)>, Refusal> {
        let too_many = || {
            Refusal::new(
                ErrorCode::TooManyMatches,
                "too many patients match; add criteria or narrow the ranges",
            )
        };
        let budget = self.shard.config.search_candidates_max;
        let mut candidates = Vec::new();
        for range in search::index_ranges(query) {
            let left = budget - candidates.len();
            let found = self.store.secondary_range(
                record_layout::INDEX_NAME_BIRTH,
                &range.from,
                &range.to,
                left + 1,
            );
            if found.len() > left {
                return Err(too_many());
            }
            candidates.extend(found);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut matches = Vec::new();
        for key in candidates {
            let Ok(nhs_number) = NhsNumber::try_from(key.get() & ((1 << 56) - 1)) else {
                continue;
            };
            let Some(patient) = self.patient(nhs_number)? else {
                continue;
            };
            if let Some(score) = search::score(query, &patient) {
                matches.push((nhs_number, score));
                if matches.len() > limit {
                    return Err(too_many());
                }
            }
        }
        matches.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(matches)
    }

    /// Reads, audits and returns the chosen matches at home here.
    pub(super) fn disclose(
        &mut self,
        request: &Request,
        matches: &[(NhsNumber, Score)],
    ) -> Response {
        let crate::request::Operation::PdsSearch { query } = &request.operation else {
            return Err(Refusal::new(
                ErrorCode::ServiceUnavailable,
                "a disclose step carried another operation",
            ));
        };
        let mut disclosed = Vec::with_capacity(matches.len());
        for &(nhs_number, score) in matches {
            // The record may have changed since it matched: the rules apply to what is sent.
            let Some(patient) = self.patient(nhs_number)? else {
                continue;
            };
            if query.excludes_restricted() && patient.restricted {
                continue;
            }
            self.audit(
                request,
                Some(nhs_number),
                AuditAction::PdsSearchResult,
                None,
                AuditOutcome::Allowed,
                None,
            );
            disclosed.push(SearchMatch {
                score,
                patient: patient.into_disclosable(),
            });
        }
        Ok(Reply::Matches(disclosed))
    }
}
