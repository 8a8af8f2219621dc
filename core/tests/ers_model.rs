//! The e-RS booking rules against a deliberately simple model: random interleavings of several
//! referrals competing for a few slots, each booking following the two-step protocol (begin at
//! the referral, book at the slot, then confirm or abort at the referral), with replays of the
//! slot's steps, releases done late, and steps the state does not allow.
//!
//! Checked after every step: the outcome (accepted, or the refusal's code) is the model's; a
//! refusal changes nothing; each accepted change steps the version by exactly one; the records
//! read back as written; every booked referral's slot is held by that referral's booking id;
//! and every held slot is held by a booking its referral still names, or one whose release is
//! queued. At the end, with every pending booking resolved and every release done, the held
//! slots are exactly the booked referrals' slots.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use proptest::prelude::*;
use spine_core::ers::referral::{self, HISTORY_MAX, PriorState, Priority, Referral, ReferralState};
use spine_core::ers::slot::{self, BookingRef, Slot, SlotId, SlotStart};
use spine_core::ers::{BookingRefusal, ServiceId, Ubrn};
use spine_core::shard::ers::ReferralRecord;
use spine_core::shard::records;
use uuid::Uuid;

const SERVICES: [ServiceId; 3] = [ServiceId(100), ServiceId(200), ServiceId(300)];
/// Each slot's service, by index into `SERVICES`. Nobody shortlists the last service.
const SLOT_SERVICES: [usize; 4] = [0, 0, 1, 2];
/// Each referral's shortlist, by index into `SERVICES`.
const SHORTLISTS: [&[usize]; 3] = [&[0, 1], &[0], &[1, 0]];

#[derive(Clone, Debug)]
enum Op {
    /// Begin a booking (or a rebooking) of a slot, naming a service (maybe not the slot's).
    Begin {
        referral: usize,
        slot: usize,
        service: usize,
        rebook: bool,
    },
    /// The slot's step of the referral's pending booking.
    Book {
        referral: usize,
    },
    /// The slot's step again (a repair), once the first has answered.
    ReplayBook {
        referral: usize,
    },
    /// The referral's last step: confirm if the slot booked it, abort if not.
    Resolve {
        referral: usize,
    },
    CancelBooking {
        referral: usize,
    },
    CancelReferral {
        referral: usize,
    },
    Defer {
        referral: usize,
        service: usize,
        free: usize,
    },
    /// A queued release done at its slot.
    Release {
        pick: usize,
    },
    /// A release done before, again.
    ReplayRelease {
        pick: usize,
    },
    /// Confirm or abort with a booking id nobody has.
    Stray {
        referral: usize,
        confirm: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let referral = 0..SHORTLISTS.len();
    prop_oneof![
        4 => (referral.clone(), 0..SLOT_SERVICES.len(), 0..SERVICES.len(), any::<bool>(), 0..4u8)
            .prop_map(|(referral, slot, service, rebook, honest)| Op::Begin {
                referral,
                slot,
                // Mostly the slot's own service; sometimes another.
                service: if honest > 0 { SLOT_SERVICES[slot] } else { service },
                rebook,
            }),
        4 => referral.clone().prop_map(|referral| Op::Book { referral }),
        1 => referral.clone().prop_map(|referral| Op::ReplayBook { referral }),
        4 => referral.clone().prop_map(|referral| Op::Resolve { referral }),
        1 => referral.clone().prop_map(|referral| Op::CancelBooking { referral }),
        1 => referral.clone().prop_map(|referral| Op::CancelReferral { referral }),
        1 => (referral.clone(), 0..SERVICES.len(), 0..2usize)
            .prop_map(|(referral, service, free)| Op::Defer { referral, service, free }),
        2 => any::<usize>().prop_map(|pick| Op::Release { pick }),
        1 => any::<usize>().prop_map(|pick| Op::ReplayRelease { pick }),
        1 => (referral, any::<bool>()).prop_map(|(referral, confirm)| Op::Stray { referral, confirm }),
    ]
}

// ---- The model: flat state, rules written out once more, codes as plain strings. ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Unbooked,
    Booked,
    Deferred(ServiceId),
    Cancelled,
}

/// (booking id, slot index, service).
type MBooking = (u128, usize, ServiceId);

#[derive(Clone, Debug, PartialEq, Eq)]
struct MReferral {
    /// Where the referral is, or returns to if a pending booking is refused.
    base: Base,
    pending: Option<MBooking>,
    booking: Option<MBooking>,
    version: u32,
    shortlist: Vec<ServiceId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MSlot {
    service: ServiceId,
    /// (referral index, booking id).
    holder: Option<(usize, u128)>,
    last_released: Option<u128>,
}

type Outcome = Result<(), &'static str>;

const BAD_STATE: &str = "INVALID_REQUEST_STATE";

impl MReferral {
    fn step(&mut self) {
        self.version += 1;
    }

    fn begin(&mut self, booking: MBooking, rebook: bool) -> Outcome {
        let allowed = if rebook {
            self.base == Base::Booked
        } else {
            matches!(self.base, Base::Unbooked | Base::Deferred(_))
        };
        if !allowed || self.pending.is_some() {
            return Err(BAD_STATE);
        }
        if !self.shortlist.contains(&booking.2) {
            return Err("SERVICE_NOT_ON_SHORTLIST");
        }
        self.pending = Some(booking);
        self.step();
        Ok(())
    }

    fn resolve(&mut self, id: u128, confirm: bool) -> Result<Option<MBooking>, &'static str> {
        let Some(pending) = self.pending else {
            return Err(BAD_STATE);
        };
        if pending.0 != id {
            return Err("BOOKING_MISMATCH");
        }
        self.pending = None;
        self.step();
        if !confirm {
            return Ok(None);
        }
        self.base = Base::Booked;
        Ok(self.booking.replace(pending))
    }

    fn cancel_booking(&mut self) -> Result<Option<MBooking>, &'static str> {
        if self.base != Base::Booked || self.pending.is_some() {
            return Err(BAD_STATE);
        }
        self.base = Base::Unbooked;
        self.step();
        Ok(self.booking.take())
    }

    fn cancel_referral(&mut self) -> Result<Option<MBooking>, &'static str> {
        if self.base == Base::Cancelled || self.pending.is_some() {
            return Err(BAD_STATE);
        }
        self.base = Base::Cancelled;
        self.step();
        Ok(self.booking.take())
    }

    fn defer(&mut self, service: ServiceId, free: usize) -> Outcome {
        if self.base != Base::Unbooked || self.pending.is_some() {
            return Err(BAD_STATE);
        }
        if !self.shortlist.contains(&service) {
            return Err("SERVICE_NOT_ON_SHORTLIST");
        }
        if free > 0 {
            return Err("SLOTS_CURRENTLY_AVAILABLE");
        }
        self.base = Base::Deferred(service);
        self.step();
        Ok(())
    }
}

impl MSlot {
    fn book(&mut self, referral: usize, id: u128, service: ServiceId) -> Outcome {
        if service != self.service {
            return Err("INAPPROPRIATE_SLOT");
        }
        match self.holder {
            Some(holder) if holder == (referral, id) => Ok(()),
            Some(_) => Err("SLOT_NOT_AVAILABLE"),
            None if self.last_released == Some(id) => Err("SLOT_NOT_AVAILABLE"),
            None => {
                self.holder = Some((referral, id));
                Ok(())
            }
        }
    }

    fn release(&mut self, id: u128) -> Outcome {
        match self.holder {
            Some((_, held)) if held == id => {
                self.holder = None;
                self.last_released = Some(id);
                Ok(())
            }
            _ if self.last_released == Some(id) => Ok(()),
            _ => Err("INVALID_STATE"),
        }
    }
}

// ---- The system under test, and the driver that follows the protocol. ----

/// Where a referral's own client is in the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Begun; the slot's step not yet taken.
    NeedBook,
    /// The slot answered: `true` if it booked.
    NeedResolve(bool),
}

struct World {
    referrals: Vec<Referral>,
    slots: Vec<Slot>,
    phases: Vec<Phase>,
    model_referrals: Vec<MReferral>,
    model_slots: Vec<MSlot>,
    /// Releases owed: (slot index, booking id).
    releases: Vec<(usize, u128)>,
    released: Vec<(usize, u128)>,
    next_id: u128,
}

fn ubrn(index: usize) -> Ubrn {
    Ubrn::try_from(70_000 + index as u64).unwrap()
}

fn slot_index(id: SlotId) -> usize {
    id.0 as usize
}

fn code(result: &Result<impl Sized, BookingRefusal>) -> Result<(), &'static str> {
    match result {
        Ok(_) => Ok(()),
        Err(refusal) => Err(refusal.code().as_str()),
    }
}

impl World {
    fn new() -> Self {
        let date = "2025-03-03".parse().unwrap();
        let slots = SLOT_SERVICES
            .iter()
            .enumerate()
            .map(|(index, &service)| {
                let start = SlotStart::new(date, 9 * 60 + 15 * index as u16).unwrap();
                Slot::new(SlotId(index as u64), SERVICES[service], start, 15).unwrap()
            })
            .collect();
        let referrals: Vec<Referral> = SHORTLISTS
            .iter()
            .enumerate()
            .map(|(index, shortlist)| {
                referral::create(
                    ubrn(index),
                    "9000000009".parse().unwrap(),
                    "A81001".parse().unwrap(),
                    "CARDIOLOGY".parse().unwrap(),
                    Priority::Routine,
                    shortlist.iter().map(|&s| SERVICES[s]).collect(),
                )
                .unwrap()
            })
            .collect();
        let model_referrals = SHORTLISTS
            .iter()
            .map(|shortlist| MReferral {
                base: Base::Unbooked,
                pending: None,
                booking: None,
                version: 1,
                shortlist: shortlist.iter().map(|&s| SERVICES[s]).collect(),
            })
            .collect();
        let model_slots = SLOT_SERVICES
            .iter()
            .map(|&service| MSlot {
                service: SERVICES[service],
                holder: None,
                last_released: None,
            })
            .collect();
        World {
            phases: vec![Phase::Idle; referrals.len()],
            referrals,
            slots,
            model_referrals,
            model_slots,
            releases: Vec::new(),
            released: Vec::new(),
            next_id: 1,
        }
    }

    /// Applies a referral transition and its model; checks they agree and the version rule.
    fn referral_step(
        &mut self,
        index: usize,
        real: impl FnOnce(&Referral) -> Result<Referral, BookingRefusal>,
        model: impl FnOnce(&mut MReferral) -> Result<Option<MBooking>, &'static str>,
    ) -> Result<(), TestCaseError> {
        let before = self.referrals[index].clone();
        let result = real(&before);
        let mut next_model = self.model_referrals[index].clone();
        let expected = model(&mut next_model);
        prop_assert_eq!(code(&result), expected.map(|_| ()), "referral {}", index);
        match result {
            Ok(after) => {
                prop_assert_eq!(after.version(), before.version() + 1);
                prop_assert!(after.history().len() <= HISTORY_MAX);
                // Every state a transition reaches is stored and read back as it was.
                let stored = ReferralRecord {
                    referral: after.clone(),
                    releasing: Vec::new(),
                };
                let read = records::referral::decode(&records::referral::encode(&stored));
                prop_assert_eq!(read, Ok(stored));
                let released = referral::released_booking(&before, &after)
                    .map(|b| (slot_index(b.slot), b.booking_id.as_u128()));
                let expected_release = expected.unwrap_or_default().map(|(id, slot, _)| (slot, id));
                prop_assert_eq!(released, expected_release);
                self.releases.extend(released);
                self.referrals[index] = after;
                self.model_referrals[index] = next_model;
            }
            Err(refusal) => {
                if let BookingRefusal::ReferralInvalidState { state, .. } = refusal {
                    prop_assert_eq!(state, before.state().code());
                    prop_assert!(refusal.to_string().ends_with(state));
                }
            }
        }
        Ok(())
    }

    /// Applies a slot decision and its model; checks they agree and replays change nothing.
    fn slot_step(
        &mut self,
        index: usize,
        real: impl FnOnce(&Slot) -> Result<Slot, BookingRefusal>,
        model: impl FnOnce(&mut MSlot) -> Outcome,
    ) -> Result<bool, TestCaseError> {
        let result = real(&self.slots[index]);
        let before_model = self.model_slots[index].clone();
        let expected = model(&mut self.model_slots[index]);
        prop_assert_eq!(code(&result), expected, "slot {}", index);
        if let Ok(after) = result {
            if self.model_slots[index].holder == before_model.holder {
                prop_assert_eq!(&after, &self.slots[index], "a replay changes nothing");
            }
            let payload = spine_core::shard::records::slot::encode(&after);
            prop_assert_eq!(
                spine_core::shard::records::slot::decode(&payload),
                Ok(after.clone())
            );
            self.slots[index] = after;
        }
        Ok(expected.is_ok())
    }

    fn book(&mut self, index: usize) -> Result<(), TestCaseError> {
        let pending = *self.referrals[index].pending().unwrap();
        let (slot, id) = (slot_index(pending.slot), pending.booking_id);
        let booked = self.slot_step(
            slot,
            |s| slot::book_slot(s, ubrn(index), id, pending.service),
            |m| m.book(index, id.as_u128(), pending.service),
        )?;
        self.phases[index] = Phase::NeedResolve(booked);
        Ok(())
    }

    fn resolve(&mut self, index: usize, booked: bool) -> Result<(), TestCaseError> {
        let id = self.referrals[index].pending().unwrap().booking_id;
        let real = move |r: &Referral| {
            if booked {
                referral::confirm_booking(r, id)
            } else {
                referral::abort_booking(r, id)
            }
        };
        self.referral_step(index, real, |m| m.resolve(id.as_u128(), booked))?;
        self.phases[index] = Phase::Idle;
        Ok(())
    }

    #[expect(clippy::too_many_lines)] // On the long-function list: it only shrinks.
    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Begin {
                referral: index,
                slot,
                service,
                rebook,
            } => {
                let id = Uuid::from_u128(self.next_id);
                self.next_id += 1;
                let (slot_id, service) = (SlotId(slot as u64), SERVICES[service]);
                let begin = if rebook {
                    referral::begin_rebooking
                } else {
                    referral::begin_booking
                };
                let version = self.referrals[index].version();
                self.referral_step(
                    index,
                    |r| begin(r, slot_id, service, id),
                    |m| {
                        m.begin((id.as_u128(), slot, service), rebook)
                            .map(|()| None)
                    },
                )?;
                if self.referrals[index].version() != version {
                    self.phases[index] = Phase::NeedBook;
                }
                // Begun or not, a pending referral's client is mid-protocol.
                prop_assert_eq!(
                    self.referrals[index].pending().is_some(),
                    self.phases[index] != Phase::Idle
                );
            }
            Op::Book { referral: index } if self.phases[index] == Phase::NeedBook => {
                self.book(index)?;
            }
            Op::ReplayBook { referral: index }
                if matches!(self.phases[index], Phase::NeedResolve(_)) =>
            {
                self.book(index)?;
            }
            Op::Resolve { referral: index } => {
                if let Phase::NeedResolve(booked) = self.phases[index] {
                    self.resolve(index, booked)?;
                }
            }
            Op::CancelBooking { referral: index } => {
                self.referral_step(index, referral::cancel_booking, MReferral::cancel_booking)?;
            }
            Op::CancelReferral { referral: index } => {
                self.referral_step(index, referral::cancel_referral, MReferral::cancel_referral)?;
            }
            Op::Defer {
                referral: index,
                service,
                free,
            } => {
                let service = SERVICES[service];
                self.referral_step(
                    index,
                    |r| referral::defer_to_provider(r, service, free),
                    |m| m.defer(service, free).map(|()| None),
                )?;
            }
            Op::Release { pick } if !self.releases.is_empty() => {
                let (slot, id) = self.releases.remove(pick % self.releases.len());
                let done = self.slot_step(
                    slot,
                    |s| slot::release_slot(s, Uuid::from_u128(id)),
                    |m| m.release(id),
                )?;
                prop_assert!(done, "an owed release is always accepted");
                self.released.push((slot, id));
            }
            Op::ReplayRelease { pick } if !self.released.is_empty() => {
                let (slot, id) = self.released[pick % self.released.len()];
                self.slot_step(
                    slot,
                    |s| slot::release_slot(s, Uuid::from_u128(id)),
                    |m| m.release(id),
                )?;
            }
            Op::Stray {
                referral: index,
                confirm,
            } => {
                let stray = u128::MAX - self.next_id;
                let id = Uuid::from_u128(stray);
                self.referral_step(
                    index,
                    |r| {
                        if confirm {
                            referral::confirm_booking(r, id)
                        } else {
                            referral::abort_booking(r, id)
                        }
                    },
                    |m| m.resolve(stray, confirm),
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The real records, seen through the model's eyes, agree with the model; and the booking
    /// invariants hold.
    fn check(&self) -> Result<(), TestCaseError> {
        let flat = |b: &referral::Booking| (b.booking_id.as_u128(), slot_index(b.slot), b.service);
        for (index, (real, model)) in self.referrals.iter().zip(&self.model_referrals).enumerate() {
            let base = match *real.state() {
                ReferralState::Unbooked
                | ReferralState::BookingPending {
                    prior: PriorState::Unbooked,
                    ..
                } => Base::Unbooked,
                ReferralState::Booked
                | ReferralState::BookingPending {
                    prior: PriorState::Booked,
                    ..
                } => Base::Booked,
                ReferralState::DeferredToProvider { service }
                | ReferralState::BookingPending {
                    prior: PriorState::DeferredToProvider { service },
                    ..
                } => Base::Deferred(service),
                ReferralState::Cancelled => Base::Cancelled,
            };
            prop_assert_eq!(base, model.base, "referral {}", index);
            prop_assert_eq!(real.pending().map(flat), model.pending);
            prop_assert_eq!(real.booking().map(flat), model.booking);
            prop_assert_eq!(real.version(), model.version);

            // A booked referral's slot is held by that referral's booking id.
            if let Some(booking) = real.booking() {
                let held = self.slots[slot_index(booking.slot)].booking();
                prop_assert_eq!(
                    held,
                    Some(&BookingRef {
                        ubrn: real.ubrn(),
                        booking_id: booking.booking_id
                    }),
                    "referral {} booked at slot {}",
                    index,
                    booking.slot
                );
            }
        }
        for (index, (real, model)) in self.slots.iter().zip(&self.model_slots).enumerate() {
            let holder = real.booking().map(|held| {
                let referral = (held.ubrn.value() - 70_000) as usize;
                (referral, held.booking_id.as_u128())
            });
            prop_assert_eq!(holder, model.holder, "slot {}", index);
            // A held slot is held by a booking its referral names, or one owed a release.
            if let Some((referral, id)) = holder {
                let named = self.referrals[referral].holds_booking(Uuid::from_u128(id));
                prop_assert!(
                    named || self.releases.contains(&(index, id)),
                    "slot {} held by booking {} nobody names",
                    index,
                    id
                );
            }
        }
        Ok(())
    }

    /// Finishes every booking in flight and every owed release.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for index in 0..self.referrals.len() {
            if self.phases[index] == Phase::NeedBook {
                self.book(index)?;
            }
            if let Phase::NeedResolve(booked) = self.phases[index] {
                self.resolve(index, booked)?;
            }
        }
        while !self.releases.is_empty() {
            self.apply(&Op::Release { pick: 0 })?;
        }
        self.check()?;
        let mut booked: Vec<(Ubrn, Uuid, SlotId)> = self
            .referrals
            .iter()
            .filter_map(|r| r.booking().map(|b| (r.ubrn(), b.booking_id, b.slot)))
            .collect();
        let mut held: Vec<(Ubrn, Uuid, SlotId)> = self
            .slots
            .iter()
            .filter_map(|s| s.booking().map(|b| (b.ubrn, b.booking_id, s.id())))
            .collect();
        booked.sort();
        held.sort();
        prop_assert_eq!(
            booked,
            held,
            "held slots are exactly the booked referrals' slots"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ers_booking_agrees_with_the_model_and_never_double_books(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op)?;
            world.check()?;
        }
        world.settle()?;
    }
}
