//! The referral: a patient's request to be seen by one of the services on its shortlist, and
//! the referral's side of booking a slot at one of them.
//!
//! Every transition is a pure function from the referral as stored to the next version of it,
//! or a refusal that changes nothing and names the state the referral is in. The version steps
//! by exactly one per accepted change, so the shard can use it for optimistic concurrency (the
//! specification's `If-Match` on `ReferralRequest/{ubrn}/_history/{version}`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::refusal::BookingRefusal;
use super::service::{ServiceId, Specialty};
use super::slot::SlotId;
use super::ubrn::Ubrn;
use crate::NhsNumber;
use crate::pds::values::OdsCode;

/// Most services a shortlist may hold (the specification's limit for A011 and A031).
pub const SHORTLIST_MAX: usize = 20;
/// Most entries the referral keeps in its history; older ones are dropped. The audit trail
/// keeps everything; this is the referral's own recent story, bounded so the record is.
pub const HISTORY_MAX: usize = 32;

/// How soon the patient must be seen (the specification's `eRS-Priority-1` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// `ROUTINE`.
    Routine,
    /// `URGENT`.
    Urgent,
    /// `TWO_WEEK_WAIT`: suspected cancer, to be seen within two weeks.
    TwoWeekWait,
}

/// A priority code that is not one of the specification's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an e-RS priority (ROUTINE, URGENT or TWO_WEEK_WAIT)")]
pub struct PriorityError(pub String);

impl Priority {
    /// The specification's code.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Routine => "ROUTINE",
            Priority::Urgent => "URGENT",
            Priority::TwoWeekWait => "TWO_WEEK_WAIT",
        }
    }
}

impl FromStr for Priority {
    type Err = PriorityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ROUTINE" => Ok(Priority::Routine),
            "URGENT" => Ok(Priority::Urgent),
            "TWO_WEEK_WAIT" => Ok(Priority::TwoWeekWait),
            _ => Err(PriorityError(text.to_owned())),
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A booking of a slot for a referral: the attempt's id, which also names it in the slot's
/// record ([`super::slot::BookingRef`]), the slot and the slot's service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Booking {
    /// The booking attempt's id, unique to it.
    pub booking_id: Uuid,
    /// The slot.
    pub slot: SlotId,
    /// The slot's service.
    pub service: ServiceId,
}

/// Where a referral was before a booking began, and returns to if the slot refuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PriorState {
    /// Not booked.
    Unbooked,
    /// Deferred to the provider of a service.
    DeferredToProvider {
        /// The service.
        service: ServiceId,
    },
    /// Booked (a rebooking): the old booking stays in [`Referral::booking`] until the new one
    /// is confirmed.
    Booked,
}

/// Where a referral is in booking. The codes are the specification's `eRS-ReferralState-1`
/// codes, except `BOOKING_PENDING`, which e-RS has no need for (it books synchronously).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReferralState {
    /// Awaiting a booking (`NOT_BOOKED`).
    Unbooked,
    /// The slot's shard is being asked for a slot (`BOOKING_PENDING`). Resolved by
    /// [`confirm_booking`] or [`abort_booking`] and by nothing else, so that a failure between
    /// the two shards is always repaired, never left.
    BookingPending {
        /// The booking asked for.
        booking: Booking,
        /// The state to return to if the slot refuses it.
        prior: PriorState,
    },
    /// Booked (`BOOKED`): [`Referral::booking`] says where.
    Booked,
    /// No slot was free, so the provider is asked to arrange one (`DEFERRED_TO_PROVIDER`).
    DeferredToProvider {
        /// The service whose provider arranges it.
        service: ServiceId,
    },
    /// Cancelled (`CANCELLED_REFERRAL`): final.
    Cancelled,
}

impl ReferralState {
    /// The state's code, as messages and the wire name it.
    pub fn code(&self) -> &'static str {
        match self {
            ReferralState::Unbooked => "NOT_BOOKED",
            ReferralState::BookingPending { .. } => "BOOKING_PENDING",
            ReferralState::Booked => "BOOKED",
            ReferralState::DeferredToProvider { .. } => "DEFERRED_TO_PROVIDER",
            ReferralState::Cancelled => "CANCELLED_REFERRAL",
        }
    }
}

/// What an accepted transition did, as the history keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReferralEvent {
    /// The referral was created.
    Created,
    /// A booking (or rebooking) began.
    BookingBegun(Booking),
    /// The slot's shard booked it.
    BookingConfirmed(Booking),
    /// The slot's shard refused it.
    BookingAborted(Booking),
    /// The booking was cancelled; its slot is to be released.
    BookingCancelled(Booking),
    /// Deferred to the provider of a service.
    DeferredToProvider(ServiceId),
    /// The referral was cancelled, releasing its booking if it had one.
    Cancelled {
        /// The booking whose slot is to be released.
        released: Option<Booking>,
    },
}

/// One entry of a referral's history: the version an event made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The version the event made.
    pub version: u32,
    /// What happened.
    pub event: ReferralEvent,
}

/// A referral. It changes only through the transitions in this module, which keep its rules
/// (a valid shortlist, a booking exactly when booked or rebooking), so its fields are read
/// through methods; one rebuilt from its fields ([`Referral::from_parts`]) is checked against
/// those rules. serde alone (a message) checks only each field's own type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    ubrn: Ubrn,
    patient: NhsNumber,
    referrer: OdsCode,
    specialty: Specialty,
    priority: Priority,
    shortlist: Vec<ServiceId>,
    state: ReferralState,
    booking: Option<Booking>,
    version: u32,
    history: Vec<HistoryEntry>,
}

/// A referral's fields, each as [`Referral`] holds it, to rebuild one stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralParts {
    /// The UBRN.
    pub ubrn: Ubrn,
    /// The patient referred.
    pub patient: NhsNumber,
    /// The referring organisation.
    pub referrer: OdsCode,
    /// The specialty referred to.
    pub specialty: Specialty,
    /// How soon the patient must be seen.
    pub priority: Priority,
    /// The services the patient may choose from.
    pub shortlist: Vec<ServiceId>,
    /// Where the referral is in booking.
    pub state: ReferralState,
    /// The confirmed booking.
    pub booking: Option<Booking>,
    /// The version.
    pub version: u32,
    /// The latest changes, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl Referral {
    /// Withholds `practice` as the referrer (see `shard::restricted`).
    pub fn withhold_practice(&mut self, practice: &OdsCode) {
        crate::restricted::withhold(&mut self.referrer, practice);
    }

    /// The referral's UBRN.
    pub fn ubrn(&self) -> Ubrn {
        self.ubrn
    }

    /// The patient referred.
    pub fn patient(&self) -> NhsNumber {
        self.patient
    }

    /// The referring practice.
    pub fn referrer(&self) -> &OdsCode {
        &self.referrer
    }

    /// The specialty referred to.
    pub fn specialty(&self) -> &Specialty {
        &self.specialty
    }

    /// How soon the patient must be seen.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The services the patient may choose from: 1 to 20, distinct.
    pub fn shortlist(&self) -> &[ServiceId] {
        &self.shortlist
    }

    /// Where the referral is in booking.
    pub fn state(&self) -> &ReferralState {
        &self.state
    }

    /// The confirmed booking: present when booked, and while a rebooking is pending.
    pub fn booking(&self) -> Option<&Booking> {
        self.booking.as_ref()
    }

    /// The booking pending at the slot's shard, if any.
    pub fn pending(&self) -> Option<&Booking> {
        match &self.state {
            ReferralState::BookingPending { booking, .. } => Some(booking),
            _ => None,
        }
    }

    /// The version: 1 when created, one more for each accepted change.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The most recent changes, oldest first (at most [`HISTORY_MAX`]).
    pub fn history(&self) -> &[HistoryEntry] {
        &self.history
    }

    /// Whether the referral names `booking_id`, confirmed or pending. A slot held by a booking
    /// its referral does not name is left over from a release that was lost, and is released.
    pub fn holds_booking(&self, booking_id: Uuid) -> bool {
        [self.booking.as_ref(), self.pending()]
            .into_iter()
            .flatten()
            .any(|booking| booking.booking_id == booking_id)
    }

    /// A referral rebuilt from its fields (as a stored record holds them), if it keeps the
    /// rules every transition keeps ([`Referral::check`]).
    pub fn from_parts(parts: ReferralParts) -> Result<Self, String> {
        let referral = Self {
            ubrn: parts.ubrn,
            patient: parts.patient,
            referrer: parts.referrer,
            specialty: parts.specialty,
            priority: parts.priority,
            shortlist: parts.shortlist,
            state: parts.state,
            booking: parts.booking,
            version: parts.version,
            history: parts.history,
        };
        referral.check()?;
        Ok(referral)
    }

    /// The rules every transition keeps, for records read back.
    fn check(&self) -> Result<(), String> {
        check_shortlist(&self.shortlist).map_err(|refusal| refusal.to_string())?;
        let must_have_booking = match self.state {
            ReferralState::Booked => true,
            ReferralState::BookingPending { prior, .. } => prior == PriorState::Booked,
            _ => false,
        };
        if must_have_booking != self.booking.is_some() {
            return Err(format!(
                "a {} referral {} a booking",
                self.state.code(),
                if must_have_booking {
                    "must have"
                } else {
                    "cannot have"
                }
            ));
        }
        if self.version == 0 || self.history.len() > HISTORY_MAX {
            return Err(format!(
                "version {} with {} history entries",
                self.version,
                self.history.len()
            ));
        }
        Ok(())
    }

    /// A refusal of `action` because of the referral's state.
    fn invalid_state(&self, action: &'static str) -> BookingRefusal {
        BookingRefusal::ReferralInvalidState {
            ubrn: self.ubrn,
            action,
            state: self.state.code(),
        }
    }

    /// A refusal unless `service` is on the shortlist.
    fn check_shortlisted(&self, service: ServiceId) -> Result<(), BookingRefusal> {
        if !self.shortlist.contains(&service) {
            return Err(BookingRefusal::NotOnShortlist {
                ubrn: self.ubrn,
                service,
            });
        }
        Ok(())
    }

    /// The next version: `state` and `booking` set, `event` added to the history.
    fn next(
        &self,
        state: ReferralState,
        booking: Option<Booking>,
        event: ReferralEvent,
    ) -> Result<Referral, BookingRefusal> {
        let version = self
            .version
            .checked_add(1)
            .ok_or(BookingRefusal::VersionExhausted { ubrn: self.ubrn })?;
        let mut history = self.history.clone();
        if history.len() >= HISTORY_MAX {
            history.drain(..=history.len() - HISTORY_MAX);
        }
        history.push(HistoryEntry { version, event });
        Ok(Referral {
            state,
            booking,
            version,
            history,
            ..self.clone()
        })
    }
}

/// A refusal unless the shortlist has 1 to 20 services, all different.
fn check_shortlist(shortlist: &[ServiceId]) -> Result<(), BookingRefusal> {
    if shortlist.is_empty() {
        return Err(BookingRefusal::EmptyShortlist);
    }
    if shortlist.len() > SHORTLIST_MAX {
        return Err(BookingRefusal::ShortlistTooLong {
            count: shortlist.len(),
            max: SHORTLIST_MAX,
        });
    }
    for (index, service) in shortlist.iter().enumerate() {
        if shortlist[..index].contains(service) {
            return Err(BookingRefusal::DuplicateService { service: *service });
        }
    }
    Ok(())
}

/// A new referral, not booked, at version 1.
pub fn create(
    ubrn: Ubrn,
    patient: NhsNumber,
    referrer: OdsCode,
    specialty: Specialty,
    priority: Priority,
    shortlist: Vec<ServiceId>,
) -> Result<Referral, BookingRefusal> {
    check_shortlist(&shortlist)?;
    Ok(Referral {
        ubrn,
        patient,
        referrer,
        specialty,
        priority,
        shortlist,
        state: ReferralState::Unbooked,
        booking: None,
        version: 1,
        history: vec![HistoryEntry {
            version: 1,
            event: ReferralEvent::Created,
        }],
    })
}

/// Begins booking `slot` of `service` for a referral not booked or deferred to a provider.
/// The service must be on the shortlist; `booking_id` must be new (a v4 UUID).
pub fn begin_booking(
    referral: &Referral,
    slot: SlotId,
    service: ServiceId,
    booking_id: Uuid,
) -> Result<Referral, BookingRefusal> {
    let prior = match referral.state {
        ReferralState::Unbooked => PriorState::Unbooked,
        ReferralState::DeferredToProvider { service } => PriorState::DeferredToProvider { service },
        _ => return Err(referral.invalid_state("book")),
    };
    begin(referral, prior, slot, service, booking_id)
}

/// Begins moving a booked referral to `slot` of `service`. The old booking stays until the
/// new one is confirmed, so a refused rebooking leaves the patient's appointment as it was;
/// once confirmed, the old slot is released ([`released_booking`]).
pub fn begin_rebooking(
    referral: &Referral,
    slot: SlotId,
    service: ServiceId,
    booking_id: Uuid,
) -> Result<Referral, BookingRefusal> {
    if referral.state != ReferralState::Booked {
        return Err(referral.invalid_state("rebook"));
    }
    if referral.holds_booking(booking_id) {
        // The slot's shard would take it for a replay of the old booking.
        return Err(BookingRefusal::BookingIdReused {
            ubrn: referral.ubrn,
            booking_id,
        });
    }
    begin(referral, PriorState::Booked, slot, service, booking_id)
}

fn begin(
    referral: &Referral,
    prior: PriorState,
    slot: SlotId,
    service: ServiceId,
    booking_id: Uuid,
) -> Result<Referral, BookingRefusal> {
    referral.check_shortlisted(service)?;
    let booking = Booking {
        booking_id,
        slot,
        service,
    };
    referral.next(
        ReferralState::BookingPending { booking, prior },
        referral.booking,
        ReferralEvent::BookingBegun(booking),
    )
}

/// The pending booking, if it is `booking_id`; refusals otherwise.
fn pending_booking(
    referral: &Referral,
    booking_id: Uuid,
    action: &'static str,
) -> Result<(Booking, PriorState), BookingRefusal> {
    match referral.state {
        ReferralState::BookingPending { booking, prior } if booking.booking_id == booking_id => {
            Ok((booking, prior))
        }
        ReferralState::BookingPending { booking, .. } => Err(BookingRefusal::BookingMismatch {
            ubrn: referral.ubrn,
            given: booking_id,
            pending: booking.booking_id,
        }),
        _ => Err(referral.invalid_state(action)),
    }
}

/// Records that the slot's shard booked the pending booking `booking_id`: the referral is
/// booked there. After a rebooking, the old booking's slot is to be released.
pub fn confirm_booking(referral: &Referral, booking_id: Uuid) -> Result<Referral, BookingRefusal> {
    let (booking, _) = pending_booking(referral, booking_id, "confirm a booking of")?;
    referral.next(
        ReferralState::Booked,
        Some(booking),
        ReferralEvent::BookingConfirmed(booking),
    )
}

/// Records that the slot's shard refused the pending booking `booking_id` (or never booked
/// it): the referral returns to where it was before the booking began.
pub fn abort_booking(referral: &Referral, booking_id: Uuid) -> Result<Referral, BookingRefusal> {
    let (booking, prior) = pending_booking(referral, booking_id, "abort a booking of")?;
    let state = match prior {
        PriorState::Unbooked => ReferralState::Unbooked,
        PriorState::DeferredToProvider { service } => ReferralState::DeferredToProvider { service },
        PriorState::Booked => ReferralState::Booked,
    };
    referral.next(
        state,
        referral.booking,
        ReferralEvent::BookingAborted(booking),
    )
}

/// Cancels a booked referral's booking: it is not booked again, and the caller then releases
/// the slot ([`released_booking`]).
pub fn cancel_booking(referral: &Referral) -> Result<Referral, BookingRefusal> {
    let (ReferralState::Booked, Some(booking)) = (referral.state, referral.booking) else {
        return Err(referral.invalid_state("cancel the booking of"));
    };
    referral.next(
        ReferralState::Unbooked,
        None,
        ReferralEvent::BookingCancelled(booking),
    )
}

/// Defers an unbooked referral to the provider of `service`, which must be on the shortlist,
/// because no slot is free there: `free_slots` is how many free slots the caller found at the
/// service, and any is a refusal (the specification's rule: the patient books one instead).
pub fn defer_to_provider(
    referral: &Referral,
    service: ServiceId,
    free_slots: usize,
) -> Result<Referral, BookingRefusal> {
    if referral.state != ReferralState::Unbooked {
        return Err(referral.invalid_state("defer"));
    }
    referral.check_shortlisted(service)?;
    if free_slots > 0 {
        return Err(BookingRefusal::SlotsCurrentlyAvailable {
            service,
            free: free_slots,
        });
    }
    referral.next(
        ReferralState::DeferredToProvider { service },
        None,
        ReferralEvent::DeferredToProvider(service),
    )
}

/// Cancels a referral that is not booked, deferred or booked; a booking is released with it
/// ([`released_booking`]). A pending booking must be resolved first, so that its outcome is
/// known and its slot, if booked, released.
pub fn cancel_referral(referral: &Referral) -> Result<Referral, BookingRefusal> {
    match referral.state {
        ReferralState::Unbooked
        | ReferralState::DeferredToProvider { .. }
        | ReferralState::Booked => referral.next(
            ReferralState::Cancelled,
            None,
            ReferralEvent::Cancelled {
                released: referral.booking,
            },
        ),
        ReferralState::BookingPending { .. } | ReferralState::Cancelled => {
            Err(referral.invalid_state("cancel"))
        }
    }
}

/// The booking `before` held that `after` no longer names: its slot is to be released at the
/// slot's shard (after a confirmed rebooking, a cancelled booking or a cancelled referral).
pub fn released_booking(before: &Referral, after: &Referral) -> Option<Booking> {
    before
        .booking
        .filter(|booking| !after.holds_booking(booking.booking_id))
}

#[cfg(test)]
mod tests;
