//! The privacy officer's queries: every access to one patient ("who has seen my record"), read
//! newest first along the links between that patient's events, and the alerts raised by users
//! of one organisation, from the alert index. Both read durable events only, and are audited.

use std::collections::HashMap;

use super::alerts;
use super::meta::ShardMeta;
use super::record_layout;
use super::store::{Store, Stored};
use super::{Context, unavailable};
use crate::access::Activity;
use crate::audit::chain::{ChainHead, ChainRecord, ChainVerifier, GENESIS, TamperError};
use crate::audit::event::{AuditAction, AuditEvent, AuditOutcome};
use crate::pds::nhs_number::NhsNumber;
use crate::pds::values::OdsCode;
use crate::request::{AUDIT_QUERY_LIMIT_MAX, ErrorCode, Refusal, Reply, Request, Response};

/// Splits an audit record's payload into the link to the patient's previous event and the
/// decoded event.
pub fn parse_audit_payload(payload: &[u8]) -> Option<(u64, AuditEvent)> {
    let record = ChainRecord::parse(payload)?;
    Some((record.trail, record.decode_event().ok()?))
}

/// Why a shard's audit trail could not be read or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Read(#[from] spine_storage::ReadError),
    /// A record the audit depends on is damaged or does not fit the chain.
    #[error("log index {index}{}: {problem}", place.as_ref().map(|place| format!(" ({place})")).unwrap_or_default())]
    Damaged {
        /// The record's log index.
        index: u64,
        /// Its segment and offset, where the store has files.
        place: Option<String>,
        /// What is wrong with it.
        problem: AuditProblem,
    },
    /// The chain does not end where the trusted head says.
    #[error(transparent)]
    Tampered(#[from] TamperError),
}

/// What is wrong with one record of a shard's audit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditProblem {
    /// The audit record breaks the chain (changed, missing, moved).
    #[error(transparent)]
    Chain(TamperError),
    /// The record is too short to be an audit record, or its event does not decode.
    #[error("audit record does not decode")]
    Undecodable,
    /// The audit record is filed under a key other than its patient's (or has a key when it
    /// names no patient), so the trail query would not find it.
    #[error("audit event {sequence} is filed under the wrong key")]
    WrongKey {
        /// The event's chain sequence number.
        sequence: u64,
    },
    /// The event's trail link skips or invents events of its patient.
    #[error(
        "audit event {sequence} links its patient's trail to log index {found}, not {expected}"
    )]
    TrailLink {
        /// The event's chain sequence number.
        sequence: u64,
        /// The link stored.
        found: u64,
        /// The index of the patient's previous event (0: none).
        expected: u64,
    },
    /// The event's trail link leads to a record that is not an earlier event of its patient.
    #[error(
        "audit event {sequence} links its patient's trail to log index {found}, which is not an earlier event of that patient"
    )]
    TrailTarget {
        /// The event's chain sequence number.
        sequence: u64,
        /// The link stored.
        found: u64,
    },
    /// A turn's metadata names a chain head other than the chain's at that point.
    #[error(
        "the turn's metadata says the audit chain ends at event {found}, but it ends at event {expected} there"
    )]
    MetaHead {
        /// The sequence number the metadata names.
        found: u64,
        /// The chain's sequence number at that point.
        expected: u64,
    },
    /// The turn's metadata record does not decode.
    #[error("shard metadata record does not decode")]
    MetaUndecodable,
    /// A privacy alert's copy of its event differs from the event (or names no event).
    #[error("privacy alert does not match the audit event at log index {audit_index}")]
    AlertCopy {
        /// The log index the alert names.
        audit_index: u64,
    },
    /// The index finds a patient's trail somewhere other than their latest event.
    #[error("the index starts {nhs_number}'s trail at {found:?}, not at their latest event")]
    TrailHead {
        /// The patient.
        nhs_number: NhsNumber,
        /// The index the key finds.
        found: Option<u64>,
    },
}

/// The audited accesses to one patient, newest first, at most `limit`, following the links
/// from the patient's latest event. A link that does not lead back to an earlier event of the
/// same patient is reported as damage, never followed.
pub fn patient_trail<S: Store>(
    store: &S,
    nhs_number: NhsNumber,
    limit: usize,
) -> Result<Vec<AuditEvent>, AuditReadError> {
    let key = record_layout::audit_key(nhs_number);
    let mut events = Vec::new();
    let mut next = store.index_of(key)?;
    while let Some(index) = next.filter(|&index| index > 0) {
        if events.len() == limit {
            break;
        }
        let damaged = |problem| AuditReadError::Damaged {
            index,
            place: store.place(index),
            problem,
        };
        let (sequence, previous, event) = store
            .read(index, |stored| {
                let record = ChainRecord::parse(stored.payload).filter(|_| {
                    stored.kind == record_layout::KIND_AUDIT && stored.key == Some(key)
                })?;
                Some((record.sequence, record.trail, record.decode_event().ok()?))
            })?
            .flatten()
            .ok_or_else(|| damaged(AuditProblem::Undecodable))?;
        if previous >= index || event.patient != Some(nhs_number) {
            return Err(damaged(AuditProblem::TrailTarget {
                sequence,
                found: previous,
            }));
        }
        events.push(event);
        next = Some(previous);
    }
    Ok(events)
}

/// Verifies a shard's whole audit, in log order, against `head` if one is trusted; returns the
/// chain's head. Reads every record of the log. See [`verify_audit_from`].
pub fn verify_chain<S: Store>(
    store: &S,
    head: Option<ChainHead>,
) -> Result<ChainHead, AuditReadError> {
    verify_audit_from(store, 1, head)
}

/// Verifies a shard's audit from log index `from` on (1: all of it); returns the chain's head.
///
/// Checks each audit event's place in the chain (sequence, hash over the event and its trail
/// link, link to the event before), that it is filed under its patient's key, and that its trail
/// link leads to the patient's previous event, so that no event can be hidden from "who has seen
/// my record"; each turn's metadata names the chain's head at that point; each privacy alert
/// copies its event; and the index finds each patient's trail at their latest event. From an
/// index after 1 (after a restart, from the checkpoint on) the chain continues from the head the
/// metadata before `from` names, and a patient's first link in range must lead to an earlier
/// event of theirs (that it is the very latest before `from` only a check from 1 shows).
///
/// Keeps one entry per patient with an event in range (about 40 bytes each).
pub fn verify_audit_from<S: Store>(
    store: &S,
    from: u64,
    head: Option<ChainHead>,
) -> Result<ChainHead, AuditReadError> {
    let from = from.max(1);
    let mut audit = AuditVerifier::new(store, chain_head_before(store, from)?, from);
    for index in from..=store.last_index() {
        let checked = store.read(index, |stored| audit.check(stored))?;
        if let Some(Err(problem)) = checked {
            return Err(audit.damaged(index, problem));
        }
    }
    audit.finish(head)
}

/// The chain's head just before `from`: as the last audit event before it ends the chain, or
/// the last turn's metadata names it, whichever is later (genesis if neither). The event
/// counts as well as the metadata because compaction drops superseded metadata records (see
/// `shard::retention`), never audit events.
fn chain_head_before<S: Store>(store: &S, from: u64) -> Result<ChainHead, AuditReadError> {
    for index in (1..from).rev() {
        let head = store.read(index, |stored| match stored.kind {
            record_layout::KIND_META => Some(
                ShardMeta::decode(stored.payload)
                    .map(|meta| meta.chain_head())
                    .ok_or(AuditProblem::MetaUndecodable),
            ),
            record_layout::KIND_AUDIT => Some(
                ChainRecord::parse(stored.payload)
                    .map(|record| ChainHead {
                        sequence: record.sequence,
                        hash: record.hash,
                    })
                    .ok_or(AuditProblem::Undecodable),
            ),
            _ => None,
        })?;
        match head.flatten() {
            Some(Ok(head)) => return Ok(head),
            Some(Err(problem)) => {
                return Err(AuditReadError::Damaged {
                    index,
                    place: store.place(index),
                    problem,
                });
            }
            None => {}
        }
    }
    Ok(ChainHead {
        sequence: 0,
        hash: GENESIS,
    })
}

/// The checks of [`verify_audit_from`], one record at a time.
struct AuditVerifier<'s, S> {
    store: &'s S,
    chain: ChainVerifier,
    from: u64,
    /// Each patient's latest event seen so far, by log index.
    latest: HashMap<NhsNumber, u64>,
}

impl<'s, S: Store> AuditVerifier<'s, S> {
    fn new(store: &'s S, start: ChainHead, from: u64) -> Self {
        Self {
            store,
            chain: ChainVerifier::new(start),
            from,
            latest: HashMap::new(),
        }
    }

    fn damaged(&self, index: u64, problem: AuditProblem) -> AuditReadError {
        AuditReadError::Damaged {
            index,
            place: self.store.place(index),
            problem,
        }
    }

    fn check(&mut self, stored: Stored<'_>) -> Result<(), AuditProblem> {
        match stored.kind {
            record_layout::KIND_AUDIT => self.check_event(stored),
            record_layout::KIND_META => {
                let meta =
                    ShardMeta::decode(stored.payload).ok_or(AuditProblem::MetaUndecodable)?;
                let head = self.chain.head();
                if meta.chain_head() != head {
                    return Err(AuditProblem::MetaHead {
                        found: meta.chain_sequence,
                        expected: head.sequence,
                    });
                }
                Ok(())
            }
            record_layout::KIND_ALERT => self.check_alert(stored),
            _ => Ok(()),
        }
    }

    fn check_event(&mut self, stored: Stored<'_>) -> Result<(), AuditProblem> {
        let record = ChainRecord::parse(stored.payload).ok_or(AuditProblem::Undecodable)?;
        self.chain.check(&record).map_err(AuditProblem::Chain)?;
        let event = record
            .decode_event()
            .map_err(|_| AuditProblem::Undecodable)?;
        let sequence = record.sequence;
        let Some(patient) = event.patient else {
            if stored.key.is_some() {
                return Err(AuditProblem::WrongKey { sequence });
            }
            if record.trail != 0 {
                return Err(AuditProblem::TrailLink {
                    sequence,
                    found: record.trail,
                    expected: 0,
                });
            }
            return Ok(());
        };
        let key = record_layout::audit_key(patient);
        if stored.key != Some(key) {
            return Err(AuditProblem::WrongKey { sequence });
        }
        match self.latest.insert(patient, stored.index) {
            Some(expected) if expected != record.trail => Err(AuditProblem::TrailLink {
                sequence,
                found: record.trail,
                expected,
            }),
            Some(_) => Ok(()),
            None if self.from == 1 && record.trail != 0 => Err(AuditProblem::TrailLink {
                sequence,
                found: record.trail,
                expected: 0,
            }),
            // From a checkpoint on, a first event in range may be the patient's first of all.
            None if record.trail == 0 => Ok(()),
            None => {
                let found = record.trail;
                let earlier_event = found < self.from
                    && self
                        .store
                        .read(found, |target| {
                            target.kind == record_layout::KIND_AUDIT && target.key == Some(key)
                        })
                        .ok()
                        .flatten()
                        .unwrap_or(false);
                if earlier_event {
                    Ok(())
                } else {
                    Err(AuditProblem::TrailTarget { sequence, found })
                }
            }
        }
    }

    fn check_alert(&self, stored: Stored<'_>) -> Result<(), AuditProblem> {
        let alert = alerts::decode(stored.payload).ok_or(AuditProblem::Undecodable)?;
        let audit_index = alert.audit_index;
        let matches = audit_index < stored.index
            && self
                .store
                .read(audit_index, |event| {
                    event.kind == record_layout::KIND_AUDIT
                        && ChainRecord::parse(event.payload)
                            .is_some_and(|record| record.event == alert.event)
                })
                .ok()
                .flatten()
                .unwrap_or(false);
        if matches {
            Ok(())
        } else {
            Err(AuditProblem::AlertCopy { audit_index })
        }
    }

    fn finish(self, head: Option<ChainHead>) -> Result<ChainHead, AuditReadError> {
        for (&nhs_number, &last) in &self.latest {
            let found = self.store.index_of(record_layout::audit_key(nhs_number))?;
            if found != Some(last) {
                return Err(self.damaged(
                    found.unwrap_or(last),
                    AuditProblem::TrailHead { nhs_number, found },
                ));
            }
        }
        Ok(self.chain.finish(head)?)
    }
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
        let (from, to) = record_layout::organisation_index_range(organisation.as_str());
        let alert_keys = self.store.secondary_range(
            record_layout::INDEX_ALERTS_BY_ORGANISATION,
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
