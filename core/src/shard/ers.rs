//! The e-Referral Service as one shard runs it: services and their slots live on the
//! service's shard, referrals on their patient's (the UBRN is allocated so), and a booking is
//! the two-step exchange that [`crate::ers`] describes. This file is each shard's side of a
//! step; the engine's `ers.rs` carries the steps between shards.
//!
//! A referral's record also lists the bookings whose slots it still owes a release (a
//! cancellation or rebooking records that first, then asks the slot's shard), so a release a
//! failure cut off is found again; a referral with such a debt, or a booking pending, is in
//! the repair index, which a restart walks.

use std::sync::Arc;

use bytes::Bytes;
use spine_storage::NewRecord;
use uuid::Uuid;

use super::id_allocation::AllocatedId;
use super::outcomes::{WriteOutcome, Written};
use super::store::Store;
use super::{Context, record_layout, records, unavailable};
use crate::access::{Activity, RoleProfile};
use crate::audit::event::{AccessAlert, AuditAction, AuditOutcome};
use crate::ers::operations::SLOTS_PER_PUBLICATION_MAX;
use crate::ers::referral::{self, ReferralState};
use crate::ers::slot::{SLOTS_PER_SERVICE_MAX, book_slot, release_slot};
use crate::ers::{
    Booking, BookingRefusal, FreeSlot, NewReferral, NewSlot, Referral, ReferralAction, Service,
    ServiceId, Slot, SlotId, SlotQuery, Ubrn,
};
use crate::pds::nhs_number::NhsNumber;
use crate::request::{ErrorCode, Refusal, Reply, Request, Response};

/// Slot releases one referral may owe at once. Each request settles its own, so more than one
/// means repeated failures; past this the referral takes no change until a repair.
pub const RELEASES_OWED_MAX: usize = 8;
/// Services of one specialty one shard reads for a search, at most.
pub const SERVICES_PER_SEARCH_MAX: usize = 1_000;

/// A service as its shard stores it (`records::service`): the entry, how many slots it has
/// published (the next slot's number) and the numbers of the last publication (what a retried
/// publication answers with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRecord {
    /// The service.
    pub service: Service,
    /// Slots published so far.
    pub slots_published: u32,
    /// The slot numbers the last publication gave (empty for a service just published).
    pub last_publication: std::ops::Range<u32>,
}

/// A referral as its shard stores it (`records::referral`), with the slot releases it still
/// owes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralRecord {
    /// The referral.
    pub referral: Referral,
    /// Bookings the referral no longer holds whose slots are not yet known to be released.
    pub releasing: Vec<Booking>,
}

impl ReferralRecord {
    /// Whether a restart must finish something: a pending booking or an owed release.
    pub fn needs_repair(&self) -> bool {
        self.referral.pending().is_some() || !self.releasing.is_empty()
    }
}

/// One step on a referral's shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferralStep {
    /// Begin (or resume) the request's booking (an `ErsBook`): the booking id is the request
    /// id, so a retry resumes the same booking.
    Begin,
    /// Record the slot's shard's decision on `booking`.
    Finish {
        /// The booking.
        booking: Booking,
        /// Whether the slot's shard booked it.
        booked: Result<(), Refusal>,
    },
    /// Book `booking_id`'s slot again if it is still pending (a repair's replay, which
    /// checks first, since its list of pending bookings may be stale by now).
    Resume {
        /// The booking the repair found pending.
        booking_id: Uuid,
    },
    /// The request's change that takes no slot (an `ErsUpdateReferral`), with the free slots
    /// the deferral's service has (only a deferral reads it).
    Change {
        /// Free slots of the service deferred to.
        free_slots: usize,
    },
    /// These bookings' slots are released (or were never held): the referral owes them no
    /// more.
    Released {
        /// The bookings.
        booking_ids: Vec<Uuid>,
    },
}

/// What a referral step asks of the engine next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferralAnswer {
    /// The request's answer.
    Done(Response),
    /// The booking is recorded as pending: ask the slot's shard to book it.
    BookSlot(Booking),
    /// Another booking is pending: settle it first (by asking the slot), then ask again.
    Settle(Booking),
    /// Recorded (releases forgotten); nothing to answer.
    Recorded,
}

/// A referral step's answer, with the releases the referral owes (to settle after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralOutcome {
    /// The answer.
    pub answer: ReferralAnswer,
    /// The referral, for the releases.
    pub ubrn: Ubrn,
    /// Slots to release.
    pub releasing: Vec<Booking>,
}

/// A decision on a slot, on its service's shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotStep {
    /// Book `booking`'s slot for referral `ubrn` (idempotent for that booking).
    Book {
        /// The referral.
        ubrn: Ubrn,
        /// The booking.
        booking: Booking,
    },
    /// Release `booking`'s slot (idempotent).
    Release {
        /// The booking.
        booking: Booking,
    },
    /// Count a service's free slots from today on, up to `limit`.
    CountFree {
        /// The service.
        service: ServiceId,
        /// Most to count.
        limit: usize,
    },
}

/// What a slot step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotAnswer {
    /// The booking holds the slot.
    Booked,
    /// The slot is free of the booking.
    Released,
    /// Free slots counted.
    Free(usize),
}

/// A referral a restart must finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairItem {
    /// The referral.
    pub ubrn: Ubrn,
    /// Its pending booking, if any.
    pub pending: Option<Booking>,
    /// Releases it owes.
    pub releasing: Vec<Booking>,
}

/// The alert a justification raises, with its reason (borrowed from the request).
type Alert<'r> = Option<(AccessAlert, &'r str)>;

/// The refusal of a change to a referral that owes the most slot releases it may.
fn owes_too_many(ubrn: Ubrn, owed: usize) -> Refusal {
    unavailable(format!(
        "referral {ubrn} owes {owed} slot releases; retry once they are repaired"
    ))
}

fn record_unavailable(what: &str, error: impl std::fmt::Display) -> Refusal {
    unavailable(format!("{what} does not decode: {error}"))
}

impl<S: Store> Context<'_, S> {
    fn service_record(&self, service: ServiceId) -> Result<Option<ServiceRecord>, Refusal> {
        match self.latest(record_layout::service_key(service), |_, payload| {
            records::service::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(record)) => Ok(Some(record)),
            Some(Err(error)) => Err(record_unavailable("a service", error)),
        }
    }

    fn slot(&self, slot: SlotId) -> Result<Option<Slot>, Refusal> {
        let Some(key) = record_layout::slot_key(slot) else {
            return Ok(None);
        };
        match self.latest(key, |_, payload| records::slot::decode(payload))? {
            None => Ok(None),
            Some(Ok(found)) => Ok((found.id() == slot).then_some(found)),
            Some(Err(error)) => Err(record_unavailable("a slot", error)),
        }
    }

    fn referral_record(&self, ubrn: Ubrn) -> Result<Option<ReferralRecord>, Refusal> {
        match self.latest(record_layout::referral_key(ubrn), |_, payload| {
            records::referral::decode(payload)
        })? {
            None => Ok(None),
            Some(Ok(record)) => Ok(Some(record)),
            Some(Err(error)) => Err(record_unavailable("a referral", error)),
        }
    }

    /// The caller's provider role, and the service it may publish for (its provider must be
    /// the caller's organisation).
    fn provider_profile(
        &mut self,
        request: &Request,
        provider: &crate::pds::values::OdsCode,
    ) -> Result<RoleProfile, Refusal> {
        let action = AuditAction::ErsPublish;
        let profile = self.authorise(request, Activity::ErsProvide, action, None)?;
        if &profile.organisation != provider {
            let refusal = Refusal::new(
                ErrorCode::AccessDenied,
                format!(
                    "the service is provided by {provider} but role profile {:?} is held at {}",
                    profile.id, profile.organisation
                ),
            );
            return Err(self.refuse(request, action, None, refusal));
        }
        Ok(profile)
    }

    /// Publishes a service, or renames it (its provider cannot change: the slots are its).
    pub(super) fn ers_publish_service(
        &mut self,
        request: &Request,
        service: &Service,
    ) -> WriteOutcome {
        let action = AuditAction::ErsPublish;
        if let Err(error) = service.validate() {
            let refusal = Refusal::new(ErrorCode::InvalidValue, error);
            return Err(self.refuse(request, action, None, refusal));
        }
        self.provider_profile(request, &service.provider)?;
        let record = match self.service_record(service.id)? {
            Some(existing) if existing.service.provider != service.provider => {
                let refusal = Refusal::new(
                    ErrorCode::AccessDenied,
                    format!(
                        "service {} is provided by {}, not {}",
                        service.id, existing.service.provider, service.provider
                    ),
                );
                return Err(self.refuse(request, action, None, refusal));
            }
            Some(existing) => ServiceRecord {
                service: service.clone(),
                last_publication: existing.slots_published..existing.slots_published,
                ..existing
            },
            None => ServiceRecord {
                service: service.clone(),
                slots_published: 0,
                last_publication: 0..0,
            },
        };
        let written = self.write_unkeyed_audited(
            request,
            action,
            NewRecord::put(
                record_layout::service_key(service.id),
                record_layout::KIND_SERVICE,
                Bytes::from(records::service::encode(&record)),
            ),
        );
        Ok((Reply::Service(record.service), written))
    }

    /// Publishes slots of a service; their ids number on from the service's last.
    pub(super) fn ers_publish_slots(
        &mut self,
        request: &Request,
        service: ServiceId,
        slots: &[NewSlot],
    ) -> WriteOutcome {
        let action = AuditAction::ErsPublish;
        if slots.is_empty() || slots.len() > SLOTS_PER_PUBLICATION_MAX {
            let refusal = Refusal::new(
                ErrorCode::InvalidValue,
                format!(
                    "a publication adds 1 to {SLOTS_PER_PUBLICATION_MAX} slots, not {}",
                    slots.len()
                ),
            );
            return Err(self.refuse(request, action, None, refusal));
        }
        let Some(mut record) = self.service_record(service)? else {
            let refusal = Refusal::from(BookingRefusal::ServiceNotFound { service });
            return Err(self.refuse(request, action, None, refusal));
        };
        self.provider_profile(request, &record.service.provider)?;
        let first = record.slots_published;
        let count = slots.len() as u32;
        if first + count > SLOTS_PER_SERVICE_MAX {
            let refusal = Refusal::new(
                ErrorCode::InvalidValue,
                format!(
                    "service {service} has published {first} slots; it may have {SLOTS_PER_SERVICE_MAX}"
                ),
            );
            return Err(self.refuse(request, action, None, refusal));
        }
        let mut published = Vec::with_capacity(slots.len());
        for (number, new) in (first..).zip(slots) {
            match Slot::new(
                SlotId::of_service(service, number),
                service,
                new.start,
                new.duration_minutes,
            ) {
                Ok(slot) => published.push(slot),
                Err(error) => {
                    let refusal = Refusal::from(BookingRefusal::from(error));
                    return Err(self.refuse(request, action, None, refusal));
                }
            }
        }
        record.slots_published = first + count;
        record.last_publication = first..first + count;
        let written = self.write_unkeyed_audited(
            request,
            action,
            NewRecord::put(
                record_layout::service_key(service),
                record_layout::KIND_SERVICE,
                Bytes::from(records::service::encode(&record)),
            ),
        );
        for slot in &published {
            let key = record_layout::slot_key(slot.id()).expect("published slot ids fit their key");
            self.shard.push(
                self.turn,
                NewRecord::put(
                    key,
                    record_layout::KIND_SLOT,
                    Bytes::from(records::slot::encode(slot)),
                ),
            );
        }
        Ok((Reply::Slots(published), written))
    }

    /// The slots a publication recorded in `record` gave, as they are now (a retried
    /// publication's answer).
    pub(super) fn published_slots(&self, record: &ServiceRecord) -> Result<Reply, Refusal> {
        let mut slots = Vec::with_capacity(record.last_publication.len());
        for number in record.last_publication.clone() {
            let id = SlotId::of_service(record.service.id, number);
            match self.slot(id)? {
                Some(slot) => slots.push(slot),
                None => return Err(unavailable(format!("published slot {id} is missing"))),
            }
        }
        Ok(Reply::Slots(slots))
    }

    /// Appends an audit event that names no patient, then the record; where the record went.
    fn write_unkeyed_audited(
        &mut self,
        request: &Request,
        action: AuditAction,
        record: NewRecord,
    ) -> Written {
        let key = record.key.expect("a changed record is keyed");
        self.audit(request, None, action, None, AuditOutcome::Allowed, None);
        let index = self.shard.push(self.turn, record);
        Written {
            key: key.get(),
            index,
        }
    }

    /// A new UBRN whose key is free and at home here, derived from the request id (a retry
    /// that missed the outcome ring gets the same one).
    /// The caller may act on the patient's referrals: the referrer role, and a legitimate
    /// relationship with the patient (as for prescriptions and summaries).
    fn referrer_access<'r>(
        &mut self,
        request: &'r Request,
        action: AuditAction,
        patient: NhsNumber,
    ) -> Result<(RoleProfile, Alert<'r>), Refusal> {
        let profile = self.authorise(request, Activity::ErsRefer, action, Some(patient))?;
        let current = self.existing(request, action, patient)?;
        let alert = self.relationship(request, &profile, &current, action)?;
        Ok((profile, alert))
    }

    pub(super) fn ers_create_referral(
        &mut self,
        request: &Request,
        new: &NewReferral,
    ) -> WriteOutcome {
        let action = AuditAction::ErsRefer;
        let (profile, alert) = self.referrer_access(request, action, new.patient)?;
        let ubrn = self.allocate_id(request, |bits| {
            Ok(Ubrn::try_from(bits % 1_000_000_000_000).expect("a value below 10^12 is a UBRN"))
        })?;
        match referral::create(
            ubrn,
            new.patient,
            profile.organisation.clone(),
            new.specialty.clone(),
            new.priority,
            new.shortlist.clone(),
        ) {
            Ok(referral) => {
                let record = ReferralRecord {
                    referral,
                    releasing: Vec::new(),
                };
                Ok(self.write_referral(request, action, record, alert))
            }
            Err(refused) => Err(self.refuse(request, action, Some(new.patient), refused.into())),
        }
    }

    /// The referral a request names, with access checked (and the alert a justification
    /// raises); refusals audited.
    fn referral_for<'r>(
        &mut self,
        request: &'r Request,
        action: AuditAction,
        ubrn: Ubrn,
    ) -> Result<(ReferralRecord, Alert<'r>), Refusal> {
        let Some(record) = self.referral_record(ubrn)? else {
            let refusal = Refusal::from(BookingRefusal::ReferralNotFound { ubrn });
            return Err(self.refuse(request, action, None, refusal));
        };
        let (_, alert) = self.referrer_access(request, action, record.referral.patient())?;
        Ok((record, alert))
    }

    pub(super) fn ers_retrieve_referral(&mut self, request: &Request, ubrn: Ubrn) -> Response {
        let action = AuditAction::ErsView;
        let (record, alert) = self.referral_for(request, action, ubrn)?;
        self.audit_allowed(request, record.referral.patient(), action, alert);
        Ok(Reply::Referral(record.referral))
    }

    /// One step on a referral here (see [`ReferralStep`]).
    pub(super) fn ers_referral_step(
        &mut self,
        request: &Arc<Request>,
        ubrn: Ubrn,
        step: ReferralStep,
    ) -> Result<ReferralOutcome, Refusal> {
        let answer = match step {
            ReferralStep::Begin => self.begin_booking(request, ubrn)?,
            ReferralStep::Finish { booking, booked } => {
                self.finish_booking(request, ubrn, booking, booked)?
            }
            ReferralStep::Resume { booking_id } => match self.referral_record(ubrn)? {
                Some(record) => match record.referral.pending() {
                    Some(pending) if pending.booking_id == booking_id => {
                        ReferralAnswer::BookSlot(*pending)
                    }
                    _ => ReferralAnswer::Recorded,
                },
                None => ReferralAnswer::Recorded,
            },
            ReferralStep::Change { free_slots } => {
                self.change_referral(request, ubrn, free_slots)?
            }
            ReferralStep::Released { booking_ids } => {
                self.forget_releases(ubrn, &booking_ids)?;
                ReferralAnswer::Recorded
            }
        };
        let releasing = self
            .referral_record(ubrn)?
            .map(|record| record.releasing)
            .unwrap_or_default();
        Ok(ReferralOutcome {
            answer,
            ubrn,
            releasing,
        })
    }

    fn begin_booking(&mut self, request: &Request, ubrn: Ubrn) -> Result<ReferralAnswer, Refusal> {
        if let Some(previous) = self.previous_outcome(request) {
            return Ok(ReferralAnswer::Done(previous));
        }
        let crate::request::Operation::ErsBook { slot, service, .. } = request.operation else {
            return Err(unavailable(
                "internal: a booking step for another operation",
            ));
        };
        let action = AuditAction::ErsBook;
        let (mut record, alert) = self.referral_for(request, action, ubrn)?;
        let referral = record.referral.clone();
        let booking_id = request.id;
        if let Some(pending) = referral.pending() {
            return Ok(if pending.booking_id == booking_id {
                ReferralAnswer::BookSlot(*pending)
            } else {
                ReferralAnswer::Settle(*pending)
            });
        }
        if referral
            .booking()
            .is_some_and(|held| held.booking_id == booking_id)
        {
            // Confirmed before, and the outcome ring has moved on: the same answer.
            return Ok(ReferralAnswer::Done(Ok(Reply::Referral(referral.clone()))));
        }
        // A confirmed rebooking owes one release more: room is kept for it.
        if record.releasing.len() >= RELEASES_OWED_MAX {
            return Err(owes_too_many(ubrn, record.releasing.len()));
        }
        let begun = if *referral.state() == ReferralState::Booked {
            referral::begin_rebooking(&referral, slot, service, booking_id)
        } else {
            referral::begin_booking(&referral, slot, service, booking_id)
        };
        let patient = referral.patient();
        match begun {
            Ok(next) => {
                let booking = *next.pending().expect("a begun booking is pending");
                record.referral = next;
                self.write_referral(request, action, record, alert);
                Ok(ReferralAnswer::BookSlot(booking))
            }
            Err(refused) => {
                let refusal = self.refuse(request, action, Some(patient), refused.into());
                Ok(ReferralAnswer::Done(Err(self.remembered(request, refusal))))
            }
        }
    }

    fn finish_booking(
        &mut self,
        request: &Request,
        ubrn: Ubrn,
        booking: Booking,
        booked: Result<(), Refusal>,
    ) -> Result<ReferralAnswer, Refusal> {
        let booking_id = booking.booking_id;
        let action = AuditAction::ErsBook;
        let Some(mut record) = self.referral_record(ubrn)? else {
            return Err(unavailable(format!("referral {ubrn} vanished mid-booking")));
        };
        let before = record.referral.clone();
        let response = match (&booked, before.pending()) {
            (Ok(()), Some(pending)) if pending.booking_id == booking_id => {
                let next = referral::confirm_booking(&before, booking_id)
                    .expect("a pending booking confirms");
                record
                    .releasing
                    .extend(referral::released_booking(&before, &next));
                record.referral = next;
                let (reply, _) = self.write_referral(request, action, record, None);
                Ok(reply)
            }
            (Err(refusal), Some(pending)) if pending.booking_id == booking_id => {
                let next =
                    referral::abort_booking(&before, booking_id).expect("a pending booking aborts");
                record.referral = next;
                let outcome = AuditOutcome::Refused {
                    code: refusal.code.as_str().to_owned(),
                };
                self.audit(request, Some(before.patient()), action, None, outcome, None);
                self.push_referral(&record);
                Err(refusal.clone())
            }
            // Settled already (by a repair, or an earlier finish): answer as it stands.
            (Ok(()), _) if before.holds_booking(booking_id) => Ok(Reply::Referral(before)),
            (Ok(()), _) => {
                // A replay of a booking settled otherwise (aborted, or confirmed and since
                // released) reached the slot late and took it: the referral owes the slot
                // back, durably with this turn, so the release survives a crash from here.
                let owed = record
                    .releasing
                    .iter()
                    .any(|owed| owed.booking_id == booking_id);
                if owed {
                    // Already owed: its release is on its way.
                } else if record.releasing.len() < RELEASES_OWED_MAX {
                    record.releasing.push(booking);
                    self.push_referral(&record);
                } else {
                    tracing::error!(
                        %ubrn, slot = %booking.slot,
                        "a slot taken by a late replay cannot be owed back: the referral owes                          the most releases it may"
                    );
                }
                Err(Refusal::new(
                    ErrorCode::InvalidRequestState,
                    format!("booking {booking_id} of referral {ubrn} was settled otherwise"),
                ))
            }
            (Err(refusal), _) => Err(refusal.clone()),
        };
        if request.operation.is_write() {
            // A duplicate of the request, finishing after its first copy: the first answer.
            if let Some(previous) = self.previous_outcome(request) {
                return Ok(ReferralAnswer::Done(previous));
            }
            return Ok(ReferralAnswer::Done(match response {
                Ok(reply) => Ok(self.remember_reply(request, reply, ubrn)?),
                Err(refusal) => Err(self.remembered(request, refusal)),
            }));
        }
        Ok(ReferralAnswer::Done(response))
    }

    fn change_referral(
        &mut self,
        request: &Request,
        ubrn: Ubrn,
        free_slots: usize,
    ) -> Result<ReferralAnswer, Refusal> {
        if let Some(previous) = self.previous_outcome(request) {
            return Ok(ReferralAnswer::Done(previous));
        }
        let crate::request::Operation::ErsUpdateReferral { action: change, .. } = request.operation
        else {
            return Err(unavailable("internal: a change step for another operation"));
        };
        let action = match change {
            ReferralAction::CancelBooking => AuditAction::ErsCancelBooking,
            ReferralAction::DeferToProvider { .. } => AuditAction::ErsDefer,
            ReferralAction::Cancel => AuditAction::ErsCancelReferral,
        };
        let (mut record, alert) = self.referral_for(request, action, ubrn)?;
        if let Some(pending) = record.referral.pending() {
            return Ok(ReferralAnswer::Settle(*pending));
        }
        if record.releasing.len() >= RELEASES_OWED_MAX {
            return Err(owes_too_many(ubrn, record.releasing.len()));
        }
        let before = record.referral.clone();
        let outcome = match change.apply(&before, free_slots) {
            Ok(next) => {
                record
                    .releasing
                    .extend(referral::released_booking(&before, &next));
                record.referral = next;
                Ok(self.write_referral(request, action, record, alert))
            }
            Err(refused) => {
                Err(self.refuse(request, action, Some(before.patient()), refused.into()))
            }
        };
        Ok(ReferralAnswer::Done(self.remember(request, outcome)))
    }

    /// Drops released bookings from the referral's debts (no audit event: the referral's
    /// change was audited when made; this only records the slot's side caught up).
    fn forget_releases(&mut self, ubrn: Ubrn, booking_ids: &[Uuid]) -> Result<(), Refusal> {
        let Some(mut record) = self.referral_record(ubrn)? else {
            return Ok(());
        };
        let owed = record.releasing.len();
        record
            .releasing
            .retain(|booking| !booking_ids.contains(&booking.booking_id));
        if record.releasing.len() != owed {
            self.push_referral(&record);
        }
        Ok(())
    }

    /// Appends a referral's record without an audit event (its change was audited).
    fn push_referral(&mut self, record: &ReferralRecord) {
        self.shard.push(
            self.turn,
            NewRecord::put(
                record_layout::referral_key(record.referral.ubrn()),
                record_layout::KIND_REFERRAL,
                Bytes::from(records::referral::encode(record)),
            ),
        );
    }

    /// Writes a referral after its audit event.
    fn write_referral(
        &mut self,
        request: &Request,
        action: AuditAction,
        record: ReferralRecord,
        alert: Alert<'_>,
    ) -> (Reply, Written) {
        let written = self.write_audited(
            request,
            action,
            record.referral.patient(),
            alert,
            NewRecord::put(
                record_layout::referral_key(record.referral.ubrn()),
                record_layout::KIND_REFERRAL,
                Bytes::from(records::referral::encode(&record)),
            ),
        );
        (Reply::Referral(record.referral), written)
    }

    /// Remembers a successful booking's reply, pointing at the referral as it now stands.
    fn remember_reply(
        &mut self,
        request: &Request,
        reply: Reply,
        ubrn: Ubrn,
    ) -> Result<Reply, Refusal> {
        let key = record_layout::referral_key(ubrn);
        let index = self
            .latest_index(key)
            .ok_or_else(|| unavailable(format!("referral {ubrn} vanished")))?;
        let written = Written {
            key: key.get(),
            index,
        };
        self.remember(request, Ok((reply, written)))
    }

    /// Remembers a refusal as the request's outcome and returns it.
    fn remembered(&mut self, request: &Request, refusal: Refusal) -> Refusal {
        match self.remember(request, Err(refusal)) {
            Err(refusal) => refusal,
            Ok(_) => unreachable!("a refusal is remembered as one"),
        }
    }

    /// One decision on a slot here (see [`SlotStep`]).
    pub(super) fn ers_slot_step(&mut self, step: SlotStep) -> Result<SlotAnswer, Refusal> {
        match step {
            SlotStep::Book { ubrn, booking } => {
                let Some(slot) = self.slot(booking.slot)? else {
                    return Err(BookingRefusal::SlotNotFound { slot: booking.slot }.into());
                };
                let next = book_slot(&slot, ubrn, booking.booking_id, booking.service)?;
                if next != slot {
                    self.push_slot(&next);
                }
                Ok(SlotAnswer::Booked)
            }
            SlotStep::Release { booking } => {
                let Some(slot) = self.slot(booking.slot)? else {
                    return Err(BookingRefusal::SlotNotFound { slot: booking.slot }.into());
                };
                let next = release_slot(&slot, booking.booking_id)?;
                if next != slot {
                    self.push_slot(&next);
                }
                Ok(SlotAnswer::Released)
            }
            SlotStep::CountFree { service, limit } => {
                let today = (self.now_ms / 86_400_000) as i64;
                let (from, to) = (
                    record_layout::free_slot_index_key(service, today, 0),
                    record_layout::free_slot_index_end(service),
                );
                let mut free = 0;
                for key in self.store.secondary_range(
                    record_layout::INDEX_FREE_SLOTS,
                    &from,
                    &to,
                    limit.saturating_mul(2),
                ) {
                    if free == limit {
                        break;
                    }
                    let slot = self.latest(key, |_, payload| records::slot::decode(payload))?;
                    if let Some(Ok(slot)) = slot
                        && slot.is_free()
                        && slot.service() == service
                    {
                        free += 1;
                    }
                }
                Ok(SlotAnswer::Free(free))
            }
        }
    }

    fn push_slot(&mut self, slot: &Slot) {
        let key = record_layout::slot_key(slot.id()).expect("a stored slot's id fits its key");
        self.shard.push(
            self.turn,
            NewRecord::put(
                key,
                record_layout::KIND_SLOT,
                Bytes::from(records::slot::encode(slot)),
            ),
        );
    }

    /// Free slots here matching `query` (checked by the engine), soonest first, at most its
    /// limit. The indexes hold what is durable; each slot is checked through the overlay.
    pub(super) fn ers_search_local(&mut self, query: &SlotQuery) -> Result<Vec<FreeSlot>, Refusal> {
        let specialty = record_layout::specialty_index_key(&query.specialty);
        let mut to = specialty;
        // The key just past this specialty's: the 8-byte prefix plus one, carried.
        for byte in to.iter_mut().rev() {
            let (next, carry) = byte.overflowing_add(1);
            *byte = next;
            if !carry {
                break;
            }
        }
        let limit = query.limit as usize;
        let (from_day, to_day) = (
            crate::ers::slot::day_number(query.from),
            crate::ers::slot::day_number(query.to),
        );
        let mut found = Vec::new();
        let services = self.store.secondary_range(
            record_layout::INDEX_SERVICES_BY_SPECIALTY,
            &specialty,
            &to,
            SERVICES_PER_SEARCH_MAX,
        );
        for key in services {
            let record = match self.latest(key, |_, payload| records::service::decode(payload))? {
                Some(Ok(record)) => record,
                Some(Err(error)) => return Err(record_unavailable("a service", error)),
                None => continue,
            };
            let service = record.service;
            let (from, to) = (
                record_layout::free_slot_index_key(service.id, from_day, 0),
                record_layout::free_slot_index_key(service.id, to_day + 1, 0),
            );
            for key in
                self.store
                    .secondary_range(record_layout::INDEX_FREE_SLOTS, &from, &to, limit)
            {
                if let Some(Ok(slot)) =
                    self.latest(key, |_, payload| records::slot::decode(payload))?
                    && query.matches(&slot, &service)
                {
                    found.push(FreeSlot {
                        slot: slot.offered(),
                        service: service.clone(),
                    });
                }
            }
        }
        found.sort_by_key(|free| (free.slot.start(), free.slot.id()));
        found.truncate(limit);
        Ok(found)
    }

    /// Referrals here with a booking pending or a release owed, at most `limit`.
    pub(super) fn ers_repair_list(&self, limit: usize) -> Result<Vec<RepairItem>, Refusal> {
        let mut to = record_layout::REPAIR_INDEX_KEY.to_vec();
        *to.last_mut().expect("one byte") += 1;
        let mut items = Vec::new();
        for key in self.store.secondary_range(
            record_layout::INDEX_REFERRALS_TO_REPAIR,
            record_layout::REPAIR_INDEX_KEY,
            &to,
            limit,
        ) {
            let record = match self.latest(key, |_, payload| records::referral::decode(payload))? {
                Some(Ok(record)) => record,
                Some(Err(error)) => return Err(record_unavailable("a referral", error)),
                None => continue,
            };
            if record.needs_repair() {
                items.push(RepairItem {
                    ubrn: record.referral.ubrn(),
                    pending: record.referral.pending().copied(),
                    releasing: record.releasing,
                });
            }
        }
        Ok(items)
    }
}

impl AllocatedId for Ubrn {
    const NAME: &'static str = "UBRN";
    const DOMAIN: &'static [u8] = b"ubrn";
    fn home_value(&self) -> u64 {
        self.value()
    }
    fn key(&self) -> spine_storage::Key {
        record_layout::referral_key(*self)
    }
}
