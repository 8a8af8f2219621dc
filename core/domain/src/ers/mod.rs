//! The e-Referral Service's booking (Choose and Book), as pure rules: referrals, their
//! shortlists of services, appointment slots and the booking of one by the other. No IO: the
//! engine's shards store the records and carry the messages.
//!
//! # Booking in two steps
//!
//! A slot belongs to a service, a referral to a patient, and the two live on different
//! shards. A booking therefore takes two steps, joined by a booking id the referral's side
//! chooses:
//!
//! 1. The referral's shard begins it ([`referral::begin_booking`] or
//!    [`referral::begin_rebooking`]): the referral goes to `BookingPending` with the booking id,
//!    slot and service, and is stored before anything else happens.
//! 2. The slot's shard decides it ([`slot::book_slot`]). It is the only place that writes the
//!    slot, one request at a time, so a slot is never booked twice however many clients race.
//! 3. The referral's shard records the decision: [`referral::confirm_booking`] if the slot
//!    was booked, [`referral::abort_booking`] (back to the state before) if it was refused.
//!
//! A failure between the steps leaves a pending referral, never a lost one: the repair (and
//! any later request on the referral) replays [`slot::book_slot`] with the pending id, which
//! is idempotent for the booking that holds the slot, and confirms or aborts by its answer. A
//! pending referral accepts no other step until it is resolved.
//!
//! A replay can come late: a duplicate of the request, or a repair working from a list taken
//! before the booking was settled, may reach the slot after the referral moved on. A slot
//! remembers only its last release, so such a replay is refused while its booking released
//! the slot last, but takes a slot that another booking has held and released since. Its
//! third step then finds the booking settled otherwise, and the referral records that it owes
//! the slot back, so it is released like any other (the repair also checks that a booking is
//! still pending before it replays it). The one gap: a crash after such a late replay took the
//! slot and before its third step leaves the slot held by a booking no referral names.
//!
//! Releasing goes the other way: the referral's shard first records that it no longer holds a
//! booking ([`referral::cancel_booking`], [`referral::cancel_referral`], or a confirmed
//! rebooking), then asks the slot's shard to [`slot::release_slot`] it
//! ([`referral::released_booking`] says which). If that second step is lost, the slot is held
//! by a booking its referral no longer names ([`referral::Referral::holds_booking`] is false):
//! the repair releases it. Releases replay harmlessly.
//!
//! # Files
//!
//! - [`ubrn`]: the Unique Booking Reference Number.
//! - [`service`]: service ids, specialty and clinic type codes, and the service entry.
//! - [`slot`]: slots, the search for free ones, and the slot's side ([`slot::book_slot`],
//!   [`slot::release_slot`]).
//! - [`referral`]: the referral, its states and its transitions.
//! - [`refusal`]: why a step is refused, and the code for the wire.
//! - [`operations`]: what requests carry (new slots and referrals, a referrer's changes) and
//!   what a slot search returns.

pub mod operations;
pub mod referral;
pub mod refusal;
pub mod service;
pub mod slot;
pub mod ubrn;

pub use operations::{FreeSlot, NewReferral, NewSlot, ReferralAction};
pub use referral::{Booking, Priority, Referral, ReferralState};
pub use refusal::{BookingRefusal, ErsErrorCode};
pub use service::{ClinicType, Service, ServiceId, Specialty};
pub use slot::{BookingRef, Slot, SlotId, SlotQuery, SlotStart};
pub use ubrn::Ubrn;
