//! Why a booking step is refused, and the code that goes on the wire.
//!
//! Codes are the e-RS specification's where it has one for the case (the 422 tables of A016
//! book-or-defer, A031 change-shortlist and A036 cancel-referral); the few it lacks are named
//! in the same style and marked as this project's own.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::referral::PriorityError;
use super::service::{ServiceError, ServiceId};
use super::slot::{SlotError, SlotId};
use super::ubrn::{Ubrn, UbrnError};

/// The codes a booking refusal carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErsErrorCode {
    /// A value breaks the rules: a malformed UBRN, code, name, slot or slot query (spec).
    InvalidValue,
    /// A value that is not one of a field's legal values: an unknown priority (spec).
    InvalidCode,
    /// A mandatory value is missing: an empty shortlist (spec).
    MissingValue,
    /// A list is longer than allowed: a shortlist of more than 20 services (spec).
    TooManyItems,
    /// A service appears twice on a shortlist (spec).
    DuplicateService,
    /// A referral, slot or service that does not exist (spec).
    ReferenceNotFound,
    /// The referral is not in a state that allows the step (spec).
    InvalidRequestState,
    /// The slot is not in a state that allows the step: releasing a free slot, or a slot another
    /// booking holds (spec).
    InvalidState,
    /// The slot is already booked (spec: "Slot is no longer available").
    SlotNotAvailable,
    /// The slot belongs to another service than the booking names (spec).
    InappropriateSlot,
    /// Deferral to the provider while the service has free slots (spec).
    SlotsCurrentlyAvailable,
    /// The service is not on the referral's shortlist (this project's own).
    ServiceNotOnShortlist,
    /// A confirm or abort for another booking than the one pending (this project's own).
    BookingMismatch,
}

impl ErsErrorCode {
    /// The code as it is written on the wire and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            ErsErrorCode::InvalidValue => "INVALID_VALUE",
            ErsErrorCode::InvalidCode => "INVALID_CODE",
            ErsErrorCode::MissingValue => "MISSING_VALUE",
            ErsErrorCode::TooManyItems => "TOO_MANY_ITEMS",
            ErsErrorCode::DuplicateService => "DUPLICATE_SERVICE",
            ErsErrorCode::ReferenceNotFound => "REFERENCE_NOT_FOUND",
            ErsErrorCode::InvalidRequestState => "INVALID_REQUEST_STATE",
            ErsErrorCode::InvalidState => "INVALID_STATE",
            ErsErrorCode::SlotNotAvailable => "SLOT_NOT_AVAILABLE",
            ErsErrorCode::InappropriateSlot => "INAPPROPRIATE_SLOT",
            ErsErrorCode::SlotsCurrentlyAvailable => "SLOTS_CURRENTLY_AVAILABLE",
            ErsErrorCode::ServiceNotOnShortlist => "SERVICE_NOT_ON_SHORTLIST",
            ErsErrorCode::BookingMismatch => "BOOKING_MISMATCH",
        }
    }
}

impl fmt::Display for ErsErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a booking step (on the slot's side or the referral's) was refused. A refusal changes
/// nothing. Messages never name another patient's referral or booking: a refusal goes back to
/// the caller who asked, who may not be entitled to know who holds a slot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookingRefusal {
    /// A malformed UBRN.
    #[error(transparent)]
    Ubrn(#[from] UbrnError),
    /// A malformed service id, code or service entry.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A malformed slot or slot query.
    #[error(transparent)]
    Slot(#[from] SlotError),
    /// An unknown priority code.
    #[error(transparent)]
    Priority(#[from] PriorityError),
    /// A referral needs at least one service on its shortlist.
    #[error("the shortlist is empty; a referral needs at least one service")]
    EmptyShortlist,
    /// More services than a shortlist may hold.
    #[error("the shortlist has {count} services; at most {max} are allowed")]
    ShortlistTooLong {
        /// Services given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A service named twice on a shortlist.
    #[error("service {service} appears more than once on the shortlist")]
    DuplicateService {
        /// The service.
        service: ServiceId,
    },
    /// The service is not on the referral's shortlist.
    #[error("service {service} is not on the shortlist of referral {ubrn}")]
    NotOnShortlist {
        /// The referral.
        ubrn: Ubrn,
        /// The service.
        service: ServiceId,
    },
    /// The step is not allowed in the referral's current state.
    #[error("cannot {action} referral {ubrn}: it is {state}")]
    ReferralInvalidState {
        /// The referral.
        ubrn: Ubrn,
        /// What was asked (`confirm a booking of`, `cancel`, ...), to read before the UBRN.
        action: &'static str,
        /// The current state's code (`BOOKED`, `BOOKING_PENDING`, ...).
        state: &'static str,
    },
    /// A confirm or abort names another booking than the one the referral has pending.
    #[error("booking {given} is not the booking pending on referral {ubrn} ({pending} is)")]
    BookingMismatch {
        /// The referral.
        ubrn: Ubrn,
        /// The booking id given.
        given: Uuid,
        /// The booking id pending (the caller's own referral, so safe to name).
        pending: Uuid,
    },
    /// A rebooking given the booking id the referral already holds: a booking id names one
    /// attempt only.
    #[error("booking {booking_id} is already referral {ubrn}'s; a new booking needs a new id")]
    BookingIdReused {
        /// The referral.
        ubrn: Ubrn,
        /// The booking id given.
        booking_id: Uuid,
    },
    /// The referral's version cannot step further (it has taken `u32::MAX` changes).
    #[error("referral {ubrn} has reached its last version and cannot change")]
    VersionExhausted {
        /// The referral.
        ubrn: Ubrn,
    },
    /// The slot is booked by another booking.
    #[error("slot {slot} is no longer available")]
    SlotAlreadyBooked {
        /// The slot.
        slot: SlotId,
    },
    /// The booking was released from this slot before, and a released booking is spent: a
    /// late replay must not take the slot back from whoever books it next.
    #[error("booking {booking_id} was released from slot {slot} and cannot book it again")]
    BookingReleased {
        /// The slot.
        slot: SlotId,
        /// The booking id.
        booking_id: Uuid,
    },
    /// The slot belongs to another service than the booking names.
    #[error("slot {slot} belongs to service {actual}, not service {requested}")]
    WrongService {
        /// The slot.
        slot: SlotId,
        /// The service the booking names.
        requested: ServiceId,
        /// The slot's service.
        actual: ServiceId,
    },
    /// Release of a slot that no booking holds.
    #[error("slot {slot} is not booked, so booking {booking_id} cannot release it")]
    SlotNotBooked {
        /// The slot.
        slot: SlotId,
        /// The booking id given.
        booking_id: Uuid,
    },
    /// Release of a slot another booking holds.
    #[error("slot {slot} is held by another booking than {booking_id}")]
    SlotHeldByAnother {
        /// The slot.
        slot: SlotId,
        /// The booking id given.
        booking_id: Uuid,
    },
    /// Deferral to the provider while the service has free slots: the patient should book one.
    #[error("service {service} has {free} free slots; book one instead of deferring")]
    SlotsCurrentlyAvailable {
        /// The service.
        service: ServiceId,
        /// Free slots the caller found.
        free: usize,
    },
    /// No such referral (for the integrator's lookups).
    #[error("no referral has UBRN {ubrn}")]
    ReferralNotFound {
        /// The UBRN asked for.
        ubrn: Ubrn,
    },
    /// No such slot (for the integrator's lookups).
    #[error("no slot has id {slot}")]
    SlotNotFound {
        /// The slot asked for.
        slot: SlotId,
    },
    /// No such service (for the integrator's lookups).
    #[error("no service has id {service}")]
    ServiceNotFound {
        /// The service asked for.
        service: ServiceId,
    },
}

impl BookingRefusal {
    /// The code to send with the message.
    pub fn code(&self) -> ErsErrorCode {
        match self {
            BookingRefusal::Ubrn(_)
            | BookingRefusal::Service(_)
            | BookingRefusal::Slot(_)
            | BookingRefusal::BookingIdReused { .. } => ErsErrorCode::InvalidValue,
            BookingRefusal::Priority(_) => ErsErrorCode::InvalidCode,
            BookingRefusal::EmptyShortlist => ErsErrorCode::MissingValue,
            BookingRefusal::ShortlistTooLong { .. } => ErsErrorCode::TooManyItems,
            BookingRefusal::DuplicateService { .. } => ErsErrorCode::DuplicateService,
            BookingRefusal::NotOnShortlist { .. } => ErsErrorCode::ServiceNotOnShortlist,
            BookingRefusal::ReferralInvalidState { .. }
            | BookingRefusal::VersionExhausted { .. } => ErsErrorCode::InvalidRequestState,
            BookingRefusal::BookingMismatch { .. } => ErsErrorCode::BookingMismatch,
            BookingRefusal::SlotAlreadyBooked { .. } | BookingRefusal::BookingReleased { .. } => {
                ErsErrorCode::SlotNotAvailable
            }
            BookingRefusal::WrongService { .. } => ErsErrorCode::InappropriateSlot,
            BookingRefusal::SlotNotBooked { .. } | BookingRefusal::SlotHeldByAnother { .. } => {
                ErsErrorCode::InvalidState
            }
            BookingRefusal::SlotsCurrentlyAvailable { .. } => ErsErrorCode::SlotsCurrentlyAvailable,
            BookingRefusal::ReferralNotFound { .. }
            | BookingRefusal::SlotNotFound { .. }
            | BookingRefusal::ServiceNotFound { .. } => ErsErrorCode::ReferenceNotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_screaming_snake_and_distinct() {
        let all = [
            ErsErrorCode::InvalidValue,
            ErsErrorCode::InvalidCode,
            ErsErrorCode::MissingValue,
            ErsErrorCode::TooManyItems,
            ErsErrorCode::DuplicateService,
            ErsErrorCode::ReferenceNotFound,
            ErsErrorCode::InvalidRequestState,
            ErsErrorCode::InvalidState,
            ErsErrorCode::SlotNotAvailable,
            ErsErrorCode::InappropriateSlot,
            ErsErrorCode::SlotsCurrentlyAvailable,
            ErsErrorCode::ServiceNotOnShortlist,
            ErsErrorCode::BookingMismatch,
        ];
        let mut names: Vec<&str> = all.iter().map(|code| code.as_str()).collect();
        for name in &names {
            assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(
            ErsErrorCode::SlotNotAvailable.to_string(),
            "SLOT_NOT_AVAILABLE"
        );
    }

    #[test]
    fn lookups_and_values_have_codes_and_messages() {
        let ubrn: Ubrn = "000000070000".parse().unwrap();
        let cases = [
            (
                BookingRefusal::ReferralNotFound { ubrn },
                "REFERENCE_NOT_FOUND",
                "no referral has UBRN 000000070000",
            ),
            (
                BookingRefusal::SlotNotFound {
                    slot: SlotId(11000021),
                },
                "REFERENCE_NOT_FOUND",
                "no slot has id 11000021",
            ),
            (
                BookingRefusal::ServiceNotFound {
                    service: ServiceId(11000),
                },
                "REFERENCE_NOT_FOUND",
                "no service has id 11000",
            ),
            (
                BookingRefusal::from(UbrnError::Empty),
                "INVALID_VALUE",
                "UBRN is empty",
            ),
            (
                BookingRefusal::from(ServiceError::Id("x".into())),
                "INVALID_VALUE",
                "\"x\" is not an e-RS service id (digits only, at most 4294967295)",
            ),
            (
                BookingRefusal::from(PriorityError("SOON".into())),
                "INVALID_CODE",
                "\"SOON\" is not an e-RS priority (ROUTINE, URGENT or TWO_WEEK_WAIT)",
            ),
            (
                BookingRefusal::VersionExhausted { ubrn },
                "INVALID_REQUEST_STATE",
                "referral 000000070000 has reached its last version and cannot change",
            ),
        ];
        for (refusal, code, message) in cases {
            assert_eq!(refusal.code().as_str(), code);
            assert_eq!(refusal.to_string(), message);
        }
    }
}
