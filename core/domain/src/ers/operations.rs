//! What callers send to the e-Referral Service and what they get back, as the request types
//! carry them: new slots, new referrals, the changes a referrer makes, and a free slot found.

use serde::{Deserialize, Serialize};

use super::referral::{self, Priority, Referral};
use super::refusal::BookingRefusal;
use super::service::{Service, ServiceId, Specialty};
use super::slot::{Slot, SlotStart};
use crate::NhsNumber;

/// Slots one publication may add, at most (a provider publishes a clinic's week at a time).
pub const SLOTS_PER_PUBLICATION_MAX: usize = 100;

/// A slot to publish; the server gives it its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSlot {
    /// When it starts.
    pub start: SlotStart,
    /// How long it lasts, in minutes (1 to 480, ending by midnight).
    pub duration_minutes: u16,
}

/// A referral to create; the server gives it its UBRN, and the referrer is the caller's
/// organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReferral {
    /// The patient referred.
    pub patient: NhsNumber,
    /// The specialty referred to.
    pub specialty: Specialty,
    /// How soon the patient must be seen.
    pub priority: Priority,
    /// The services the patient may choose from (1 to 20, no repeats).
    pub shortlist: Vec<ServiceId>,
}

/// A change a referrer makes to a referral that needs no slot to be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferralAction {
    /// Cancel the booked appointment; the referral stays open, unbooked.
    CancelBooking,
    /// Hand the referral to a shortlisted service to book when it has no free slot.
    DeferToProvider {
        /// The service.
        service: ServiceId,
    },
    /// Cancel the referral (and its appointment, if booked).
    Cancel,
}

impl ReferralAction {
    /// The referral after the action, given how many free slots the deferral's service has
    /// (only a deferral looks at it).
    pub fn apply(self, referral: &Referral, free_slots: usize) -> Result<Referral, BookingRefusal> {
        match self {
            ReferralAction::CancelBooking => referral::cancel_booking(referral),
            ReferralAction::DeferToProvider { service } => {
                referral::defer_to_provider(referral, service, free_slots)
            }
            ReferralAction::Cancel => referral::cancel_referral(referral),
        }
    }
}

/// A free slot a search found, with the service it belongs to (what a patient chooses by).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeSlot {
    /// The slot.
    pub slot: Slot,
    /// Its service.
    pub service: Service,
}
