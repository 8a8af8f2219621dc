//! The e-Referral Service's part of the benchmark: the services the hospital publishes, their
//! slots, the GP's referrals, and which slot each booking asks for.
//!
//! # Contention
//!
//! Most bookings ask for a slot of their own, as patients choosing from a long list of free
//! slots mostly do; some race for the same slot, as patients offered the same soonest slot do.
//! Of every [`BLOCK`] bookings the last [`CONTENDERS`] ask for one slot between them, so that
//! slot shard decides a race: one wins, the others are refused `SLOT_NOT_AVAILABLE`, an answer
//! the service gives in normal operation and the benchmark counts apart from failures. Each
//! refused booking still costs what a booking costs up to the slot's decision (the referral's
//! shard begins the booking and aborts it when the slot's shard says no).

use anyhow::{Result, ensure};
use spine_core::NhsNumber;
use spine_core::ers::operations::SLOTS_PER_PUBLICATION_MAX;
use spine_core::ers::{
    NewReferral, NewSlot, Priority, Service, ServiceId, Slot, SlotId, SlotStart, Ubrn,
};
use spine_core::pds::synthetic::SplitMix64;
use spine_core::pds::values::Date;
use spine_core::request::Operation;

/// Services the hospital publishes: enough that their slots (each service's live on one
/// shard) spread over the shards, and few enough to fit on one referral's shortlist (at most
/// 20), so any referral may book any slot.
pub const SERVICES: u32 = 16;

/// The first service's id; the others follow.
const FIRST_SERVICE: u32 = 31_000;

/// Bookings in one block: the first `BLOCK - CONTENDERS` ask for a slot each, the rest race
/// for one (see the module's documentation). Three in sixteen bookings are then refused.
pub const BLOCK: usize = 16;

/// Bookings of a block that race for the same slot.
pub const CONTENDERS: usize = 4;

const _: () = assert!(CONTENDERS >= 2 && CONTENDERS <= BLOCK);

/// Slot starts a service cycles through: 28 days of March 2031, 40 fifteen-minute slots a day
/// from 08:00. A service publishing more has several clinics at once.
const DAYS: usize = 28;
const SLOTS_A_DAY: usize = 40;

/// Service `number` (0 to [`SERVICES`]): a cardiology clinic of the demo hospital.
pub fn service(number: u32) -> Service {
    Service {
        id: ServiceId(FIRST_SERVICE + number),
        name: format!("City General Cardiology Clinic {}", number + 1),
        provider: "Y9H01".parse().expect("the demo hospital's code"),
        specialty: "CARDIOLOGY".parse().expect("a specialty code"),
        clinic_type: "GENERAL".parse().expect("a clinic type code"),
    }
}

/// A routine cardiology referral of `patient`, every service on its shortlist.
pub fn new_referral(patient: NhsNumber) -> NewReferral {
    NewReferral {
        patient,
        specialty: "CARDIOLOGY".parse().expect("a specialty code"),
        priority: Priority::Routine,
        shortlist: (0..SERVICES).map(|number| service(number).id).collect(),
    }
}

/// The `n`th slot a service publishes.
fn new_slot(n: usize) -> NewSlot {
    let (day, of_day) = ((n / SLOTS_A_DAY) % DAYS, n % SLOTS_A_DAY);
    let date = Date::new(2031, 3, day as u8 + 1).expect("a day of March");
    NewSlot {
        start: SlotStart::new(date, 8 * 60 + 15 * of_day as u16).expect("within the day"),
        duration_minutes: 15,
    }
}

/// Slots that `bookings` bookings, in blocks as [`pair`] makes them, ask for.
pub fn slots_needed(bookings: usize) -> usize {
    let whole = bookings / BLOCK * (BLOCK - CONTENDERS + 1);
    let rest = bookings % BLOCK;
    // A short last block: its contenders (if it reaches them) share one slot.
    whole + rest.min(BLOCK - CONTENDERS) + usize::from(rest > BLOCK - CONTENDERS)
}

/// Publications, as the appointments manager sends them, of at least `count` slots spread
/// evenly over the services (each at most [`SLOTS_PER_PUBLICATION_MAX`] slots).
pub fn publications(count: usize) -> Vec<Operation> {
    let per_service = count.div_ceil(SERVICES as usize);
    (0..SERVICES)
        .flat_map(|number| {
            (0..per_service)
                .step_by(SLOTS_PER_PUBLICATION_MAX)
                .map(move |first| Operation::ErsPublishSlots {
                    service: service(number).id,
                    slots: (first..per_service.min(first + SLOTS_PER_PUBLICATION_MAX))
                        .map(new_slot)
                        .collect(),
                })
        })
        .collect()
}

/// A booking to make: which referral asks for which slot.
#[derive(Clone, Copy, Debug)]
pub struct Booking {
    pub ubrn: Ubrn,
    pub slot: SlotId,
    pub service: ServiceId,
}

impl Booking {
    pub fn operation(&self) -> Operation {
        Operation::ErsBook {
            ubrn: self.ubrn,
            slot: self.slot,
            service: self.service,
        }
    }
}

/// The bookings of `referrals`, in blocks of [`BLOCK`]: a slot each, but for the last
/// [`CONTENDERS`] of a block, which share one. The slots are shuffled first (with `seed`), so
/// that bookings made at about the same time ask for slots of different services, and so of
/// every shard. Contenders are adjacent, so dealing the bookings round-robin gives them to
/// different tasks at about the same place in their turn: they race.
pub fn pair(referrals: Vec<Ubrn>, mut slots: Vec<Slot>, seed: u64) -> Result<Vec<Booking>> {
    ensure!(
        slots.len() >= slots_needed(referrals.len()),
        "{} slots published for {} bookings, which need {}",
        slots.len(),
        referrals.len(),
        slots_needed(referrals.len())
    );
    let mut random = SplitMix64::new(seed);
    for last in (1..slots.len()).rev() {
        slots.swap(last, random.below(last as u64 + 1) as usize);
    }
    let mut slots = slots.into_iter().map(|slot| (slot.id(), slot.service()));
    let mut shared = None;
    let mut bookings = Vec::with_capacity(referrals.len());
    for (position, ubrn) in referrals.into_iter().enumerate() {
        let of_block = position % BLOCK;
        let slot = if of_block < BLOCK - CONTENDERS {
            slots.next()
        } else {
            if of_block == BLOCK - CONTENDERS {
                shared = slots.next();
            }
            shared
        };
        let (slot, service) = slot.expect("enough slots, checked above");
        bookings.push(Booking {
            ubrn,
            slot,
            service,
        });
    }
    Ok(bookings)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

    use std::collections::HashMap;

    use super::*;

    fn slots(count: usize) -> Vec<Slot> {
        (0..count)
            .map(|n| {
                let service = service(n as u32 % SERVICES).id;
                let new = new_slot(n);
                Slot::new(
                    SlotId::of_service(service, n as u32),
                    service,
                    new.start,
                    new.duration_minutes,
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_block_of_bookings_has_its_contenders_share_one_slot() {
        for count in [0, 1, 12, 13, 15, 16, 17, 100, 1000] {
            let referrals: Vec<Ubrn> = (1..=count as u64)
                .map(|n| Ubrn::try_from(n).unwrap())
                .collect();
            let needed = slots_needed(count);
            let bookings = pair(referrals, slots(needed), 3).unwrap();
            assert_eq!(bookings.len(), count);
            let mut askers: HashMap<SlotId, Vec<usize>> = HashMap::new();
            for (position, booking) in bookings.iter().enumerate() {
                askers.entry(booking.slot).or_default().push(position);
            }
            assert_eq!(askers.len(), needed, "every slot published is asked for");
            let contended = askers.values().filter(|positions| positions.len() > 1);
            for positions in contended {
                assert!(positions.len() <= CONTENDERS);
                assert!(positions.windows(2).all(|pair| pair[1] == pair[0] + 1));
                assert_eq!(positions[0] % BLOCK, BLOCK - CONTENDERS);
            }
            let refused: usize = askers.values().map(|positions| positions.len() - 1).sum();
            assert_eq!(refused, count - needed);
        }
        assert!(pair(vec![Ubrn::try_from(1).unwrap()], Vec::new(), 3).is_err());
    }

    #[test]
    fn publications_cover_the_slots_needed_within_the_limits() {
        for count in [1, 99, 1600, 1601, 123_456] {
            let published: usize = publications(count)
                .iter()
                .map(|operation| match operation {
                    Operation::ErsPublishSlots { slots, .. } => {
                        assert!((1..=SLOTS_PER_PUBLICATION_MAX).contains(&slots.len()));
                        slots.len()
                    }
                    other => panic!("{other:?}"),
                })
                .sum();
            assert!(published >= count);
            assert!(published < count + SERVICES as usize);
        }
    }

    #[test]
    fn referrals_are_valid_and_shortlist_every_service() {
        let patient = spine_core::pds::synthetic::nhs_numbers().next().unwrap();
        let referral = new_referral(patient);
        assert_eq!(referral.shortlist.len(), SERVICES as usize);
        for number in 0..SERVICES {
            service(number).validate().unwrap();
        }
        for n in 0..DAYS * SLOTS_A_DAY + 1 {
            new_slot(n);
        }
    }
}
