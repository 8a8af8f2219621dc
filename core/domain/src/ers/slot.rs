//! Appointment slots, the search for free ones, and the slot's side of a booking.
//!
//! The slot's shard is the one place that decides who has a slot: [`book_slot`] and
//! [`release_slot`] are its decisions, pure functions from the slot as stored to the slot to
//! store. Both are idempotent for the booking that asked, so a booking interrupted between
//! the slot's shard and the referral's can be replayed without harm.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::refusal::BookingRefusal;
use super::service::{ClinicType, Service, ServiceId, Specialty};
use super::ubrn::Ubrn;
use crate::pds::values::{Date, OdsCode};

/// Minutes in a day: a slot starts at minute 0 to 1439 of its date.
const MINUTES_PER_DAY: u16 = 24 * 60;
/// Longest slot accepted, in minutes (a whole working day).
pub const SLOT_MINUTES_MAX: u16 = 8 * 60;
/// Longest date range a slot search may cover, in days (about three months), so that one
/// search reads a bounded part of the schedule.
pub const QUERY_DAYS_MAX: u32 = 92;
/// Most slots one search may return (the specification's `_count` range is 1–100).
pub const QUERY_LIMIT_MAX: u32 = 100;

/// Why a slot or a slot search is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotError {
    /// Not a slot id (digits only, as `11000021`).
    #[error("{0:?} is not a slot id (digits only)")]
    Id(String),
    /// A start time past the end of the day.
    #[error("slot start minute {minute} is past the end of the day (0 to 1439)")]
    StartOutOfDay {
        /// Minutes since midnight given.
        minute: u16,
    },
    /// A duration of zero, or longer than any slot.
    #[error("slot duration of {minutes} minutes is outside 1 to {SLOT_MINUTES_MAX}")]
    Duration {
        /// Minutes given.
        minutes: u16,
    },
    /// A slot that would end after midnight: a slot lies within one date, so that searching
    /// by date finds all of it.
    #[error("slot starting at minute {start} for {minutes} minutes runs past midnight")]
    PastMidnight {
        /// Start, in minutes since midnight.
        start: u16,
        /// Duration in minutes.
        minutes: u16,
    },
    /// A search whose range ends before it starts.
    #[error("slot search ends on {to}, before it starts on {from}")]
    QueryBackwards {
        /// First day.
        from: Date,
        /// Last day.
        to: Date,
    },
    /// A search over too many days.
    #[error("slot search covers {days} days; at most {max} are allowed")]
    QueryTooLong {
        /// Days covered, both ends included.
        days: u32,
        /// The limit.
        max: u32,
    },
    /// A search limit outside 1 to 100.
    #[error("slot search limit is {limit}; it must be 1 to {QUERY_LIMIT_MAX}")]
    QueryLimit {
        /// The limit given.
        limit: u32,
    },
}

/// The id of a slot (`11000021` in the specification's examples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SlotId(pub u64);

impl FromStr for SlotId {
    type Err = SlotError;

    /// Digits only: `u64`'s own parser would also take a leading `+`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SlotError::Id(text.to_owned()));
        }
        text.parse()
            .map(Self)
            .map_err(|_| SlotError::Id(text.to_owned()))
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Slots one service can have published, in all: a slot's id is its service's id and its
/// number within the service (24 bits), so a slot names its service and so its shard.
pub const SLOTS_PER_SERVICE_MAX: u32 = 1 << 24;

impl SlotId {
    /// The id of the `number`th slot published for `service`.
    pub fn of_service(service: ServiceId, number: u32) -> Self {
        assert!(
            number < SLOTS_PER_SERVICE_MAX,
            "slot number {number} overflows its service's part of the id"
        );
        Self(u64::from(service.0) << 24 | u64::from(number))
    }

    /// The service whose slot this is, by the id's layout (an id published by this server
    /// always names its own service; any other id finds no slot).
    pub fn service(self) -> Option<ServiceId> {
        u32::try_from(self.0 >> 24).ok().map(ServiceId)
    }
}

/// When a slot starts: a date and the minutes since its midnight, ordered by time. Local time
/// of the provider, as the schedule is published; there is no time zone arithmetic here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "(Date, u16)", into = "(Date, u16)")]
pub struct SlotStart {
    date: Date,
    minute: u16,
}

impl SlotStart {
    /// The start, if `minute` is within the day (0 to 1439).
    pub fn new(date: Date, minute: u16) -> Result<Self, SlotError> {
        if minute >= MINUTES_PER_DAY {
            return Err(SlotError::StartOutOfDay { minute });
        }
        Ok(Self { date, minute })
    }

    /// The date.
    pub fn date(self) -> Date {
        self.date
    }

    /// Minutes since midnight.
    pub fn minute(self) -> u16 {
        self.minute
    }

    /// Days from 1970-01-01 to the date.
    pub fn day_number(self) -> i64 {
        day_number(self.date)
    }
}

impl TryFrom<(Date, u16)> for SlotStart {
    type Error = SlotError;

    fn try_from((date, minute): (Date, u16)) -> Result<Self, Self::Error> {
        Self::new(date, minute)
    }
}

impl From<SlotStart> for (Date, u16) {
    fn from(start: SlotStart) -> Self {
        (start.date, start.minute)
    }
}

impl fmt::Display for SlotStart {
    /// `2021-07-11T12:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}T{:02}:{:02}",
            self.date,
            self.minute / 60,
            self.minute % 60
        )
    }
}

/// Who holds a slot: the referral and the booking attempt that took it. The booking id joins
/// the slot's record to the referral's, so either side can be checked against the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BookingRef {
    /// The referral.
    pub ubrn: Ubrn,
    /// The booking attempt, chosen by the referral's side when it began the booking.
    pub booking_id: Uuid,
}

/// An appointment slot of a service. Who holds it changes only through [`book_slot`] and
/// [`release_slot`], so its fields are read through methods. A stored one is rebuilt with
/// [`Slot::new`], which checks the duration, and [`Slot::with_stored_holders`] (its payload
/// in the log is `spine-core`'s, `shard/records/slot.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    id: SlotId,
    service: ServiceId,
    start: SlotStart,
    duration_minutes: u16,
    booking: Option<BookingRef>,
    /// The booking that last released the slot, so that its release can be replayed and its
    /// booking cannot be (see [`BookingRefusal::BookingReleased`]).
    released: Option<Uuid>,
}

impl Slot {
    /// A free slot, if its duration is 1 to 480 minutes and it ends by midnight.
    pub fn new(
        id: SlotId,
        service: ServiceId,
        start: SlotStart,
        duration_minutes: u16,
    ) -> Result<Self, SlotError> {
        let slot = Self {
            id,
            service,
            start,
            duration_minutes,
            booking: None,
            released: None,
        };
        slot.validate()?;
        Ok(slot)
    }

    fn validate(&self) -> Result<(), SlotError> {
        let minutes = self.duration_minutes;
        if minutes == 0 || minutes > SLOT_MINUTES_MAX {
            return Err(SlotError::Duration { minutes });
        }
        let start = self.start.minute;
        if start + minutes > MINUTES_PER_DAY {
            return Err(SlotError::PastMidnight { start, minutes });
        }
        Ok(())
    }

    /// The slot's id.
    pub fn id(&self) -> SlotId {
        self.id
    }

    /// The service it belongs to.
    pub fn service(&self) -> ServiceId {
        self.service
    }

    /// When it starts.
    pub fn start(&self) -> SlotStart {
        self.start
    }

    /// How long it lasts, in minutes.
    pub fn duration_minutes(&self) -> u16 {
        self.duration_minutes
    }

    /// Who holds it; `None` when it is free.
    pub fn booking(&self) -> Option<&BookingRef> {
        self.booking.as_ref()
    }

    /// Whether no booking holds it.
    pub fn is_free(&self) -> bool {
        self.booking.is_none()
    }

    /// The slot as a search offers it to anyone: without who holds it or last released it
    /// (another patient's booking is not theirs to see).
    pub fn offered(&self) -> Slot {
        Slot {
            booking: None,
            released: None,
            ..self.clone()
        }
    }

    /// The booking that last released it, if any.
    pub fn released(&self) -> Option<Uuid> {
        self.released
    }

    /// This slot as it was stored: held by `booking`, last released by `released` (neither
    /// bears on the rules [`Slot::new`] checks).
    pub fn with_stored_holders(self, booking: Option<BookingRef>, released: Option<Uuid>) -> Self {
        Self {
            booking,
            released,
            ..self
        }
    }
}

/// The slot's shard's decision on a booking: the slot as it must be stored, or why not.
///
/// `service` is the service the referral's side believes the slot belongs to (it checked that
/// service against the shortlist), so a slot of another service is refused. Booking a slot
/// the same booking already holds is success with the slot unchanged, so a repair can replay
/// the request; a slot held by any other booking is refused, which is what keeps a slot from
/// being booked twice however many referrals race for it.
pub fn book_slot(
    slot: &Slot,
    ubrn: Ubrn,
    booking_id: Uuid,
    service: ServiceId,
) -> Result<Slot, BookingRefusal> {
    if slot.service != service {
        return Err(BookingRefusal::WrongService {
            slot: slot.id,
            requested: service,
            actual: slot.service,
        });
    }
    let wanted = BookingRef { ubrn, booking_id };
    match slot.booking {
        Some(held) if held == wanted => Ok(slot.clone()),
        Some(_) => Err(BookingRefusal::SlotAlreadyBooked { slot: slot.id }),
        None if slot.released == Some(booking_id) => Err(BookingRefusal::BookingReleased {
            slot: slot.id,
            booking_id,
        }),
        None => Ok(Slot {
            booking: Some(wanted),
            ..slot.clone()
        }),
    }
}

/// The slot's shard's decision on a release: the slot as it must be stored, or why not.
///
/// Only the booking that holds the slot can release it. Releasing again with the booking that
/// released it last is success with the slot unchanged (a replay); releasing a free slot, or
/// one another booking holds, is refused.
pub fn release_slot(slot: &Slot, booking_id: Uuid) -> Result<Slot, BookingRefusal> {
    match slot.booking {
        Some(held) if held.booking_id == booking_id => Ok(Slot {
            booking: None,
            released: Some(booking_id),
            ..slot.clone()
        }),
        _ if slot.released == Some(booking_id) => Ok(slot.clone()),
        Some(_) => Err(BookingRefusal::SlotHeldByAnother {
            slot: slot.id,
            booking_id,
        }),
        None => Err(BookingRefusal::SlotNotBooked {
            slot: slot.id,
            booking_id,
        }),
    }
}

/// A search for free slots: of a specialty, between two dates (both included), optionally at
/// one provider and of one clinic type, at most `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotQuery {
    /// The specialty the slots' services must have.
    pub specialty: Specialty,
    /// The clinic type the slots' services must have, if any is asked for.
    pub clinic_type: Option<ClinicType>,
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
    /// The provider the slots' services must belong to, if any is asked for.
    pub provider: Option<OdsCode>,
    /// Most slots to return: 1 to 100.
    pub limit: u32,
}

/// Days from 1970-01-01 to `date` (negative before), by the proleptic Gregorian calendar.
pub fn day_number(date: Date) -> i64 {
    // Howard Hinnant's days_from_civil: years start in March, so the leap day comes last.
    let (year, month, day) = date.parts();
    let (month, day) = (i64::from(month), i64::from(day));
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl SlotQuery {
    /// Checks the range runs forwards over at most 92 days and the limit is 1 to 100.
    pub fn validate(&self) -> Result<(), SlotError> {
        if self.to < self.from {
            return Err(SlotError::QueryBackwards {
                from: self.from,
                to: self.to,
            });
        }
        // Both dates are in years 1000 to 2999, so the count fits a u32 comfortably.
        let days = (day_number(self.to) - day_number(self.from) + 1) as u32;
        if days > QUERY_DAYS_MAX {
            return Err(SlotError::QueryTooLong {
                days,
                max: QUERY_DAYS_MAX,
            });
        }
        if !(1..=QUERY_LIMIT_MAX).contains(&self.limit) {
            return Err(SlotError::QueryLimit { limit: self.limit });
        }
        Ok(())
    }

    /// Whether `slot`, of `service`, is one this search finds: free, of that service, and the
    /// service and date as asked. A slot given with another service than its own never matches.
    pub fn matches(&self, slot: &Slot, service: &Service) -> bool {
        slot.is_free()
            && slot.service == service.id
            && service.specialty == self.specialty
            && self
                .clinic_type
                .as_ref()
                .is_none_or(|clinic_type| *clinic_type == service.clinic_type)
            && self
                .provider
                .as_ref()
                .is_none_or(|provider| *provider == service.provider)
            && (self.from..=self.to).contains(&slot.start.date)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ers::refusal::ErsErrorCode;
    use crate::ers::service::tests::cardiology;

    pub(crate) fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    pub(crate) fn slot(id: u64, service: u32) -> Slot {
        let start = SlotStart::new(date("2021-07-11"), 12 * 60).unwrap();
        Slot::new(SlotId(id), ServiceId(service), start, 60).unwrap()
    }

    fn ubrn() -> Ubrn {
        "000000070000".parse().unwrap()
    }

    fn query() -> SlotQuery {
        SlotQuery {
            specialty: "CARDIOLOGY".parse().unwrap(),
            clinic_type: None,
            from: date("2021-07-01"),
            to: date("2021-07-31"),
            provider: None,
            limit: 20,
        }
    }

    #[test]
    fn slots_are_checked() {
        let start = SlotStart::new(date("2021-07-11"), 23 * 60).unwrap();
        assert_eq!(start.to_string(), "2021-07-11T23:00");
        assert_eq!(
            SlotStart::new(date("2021-07-11"), 1440),
            Err(SlotError::StartOutOfDay { minute: 1440 })
        );
        let new = |minutes| Slot::new(SlotId(1), ServiceId(1), start, minutes);
        assert!(new(60).is_ok());
        assert_eq!(new(0), Err(SlotError::Duration { minutes: 0 }));
        assert_eq!(
            new(481).unwrap_err().to_string(),
            "slot duration of 481 minutes is outside 1 to 480"
        );
        assert_eq!(
            new(61).unwrap_err().to_string(),
            "slot starting at minute 1380 for 61 minutes runs past midnight"
        );
        assert_eq!("11000021".parse::<SlotId>(), Ok(SlotId(11000021)));
        assert_eq!(
            "USRN-1".parse::<SlotId>().unwrap_err().to_string(),
            "\"USRN-1\" is not a slot id (digits only)"
        );
    }

    #[test]
    fn booking_takes_a_free_slot_once_and_replays_are_harmless() {
        let free = slot(11000021, 11000);
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let booked = book_slot(&free, ubrn(), first, ServiceId(11000)).unwrap();
        assert_eq!(
            booked.booking(),
            Some(&BookingRef {
                ubrn: ubrn(),
                booking_id: first
            })
        );
        assert!(!booked.is_free());
        // The same booking again: success, nothing changes.
        assert_eq!(
            book_slot(&booked, ubrn(), first, ServiceId(11000)),
            Ok(booked.clone())
        );
        // Another booking, even of the same referral: refused.
        let refused = book_slot(&booked, ubrn(), second, ServiceId(11000)).unwrap_err();
        assert_eq!(
            refused,
            BookingRefusal::SlotAlreadyBooked { slot: free.id() }
        );
        assert_eq!(refused.code(), ErsErrorCode::SlotNotAvailable);
        assert_eq!(refused.to_string(), "slot 11000021 is no longer available");
        // A slot of another service than the referral checked: refused.
        let wrong = book_slot(&free, ubrn(), first, ServiceId(12000)).unwrap_err();
        assert_eq!(wrong.code(), ErsErrorCode::InappropriateSlot);
        assert_eq!(
            wrong.to_string(),
            "slot 11000021 belongs to service 11000, not service 12000"
        );
    }

    #[test]
    fn only_the_holder_releases_and_a_released_booking_is_spent() {
        let (first, second) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let free = slot(11000021, 11000);
        let booked = book_slot(&free, ubrn(), first, ServiceId(11000)).unwrap();

        let held = release_slot(&booked, second).unwrap_err();
        assert_eq!(held.code(), ErsErrorCode::InvalidState);
        assert_eq!(
            held.to_string(),
            format!("slot 11000021 is held by another booking than {second}")
        );
        let not_booked = release_slot(&free, first).unwrap_err();
        assert_eq!(not_booked.code(), ErsErrorCode::InvalidState);
        assert_eq!(
            not_booked.to_string(),
            format!("slot 11000021 is not booked, so booking {first} cannot release it")
        );

        let released = release_slot(&booked, first).unwrap();
        assert!(released.is_free());
        assert_eq!(release_slot(&released, first), Ok(released.clone()));
        assert!(release_slot(&released, second).is_err());

        // A late replay of the released booking cannot take the slot back ...
        let late = book_slot(&released, ubrn(), first, ServiceId(11000)).unwrap_err();
        assert_eq!(late.code(), ErsErrorCode::SlotNotAvailable);
        assert_eq!(
            late.to_string(),
            format!("booking {first} was released from slot 11000021 and cannot book it again")
        );
        // ... but another booking can have it, and the old release still replays harmlessly.
        let rebooked = book_slot(&released, ubrn(), second, ServiceId(11000)).unwrap();
        assert_eq!(release_slot(&rebooked, first), Ok(rebooked.clone()));
    }

    #[test]
    fn queries_are_bounded() {
        assert_eq!(query().validate(), Ok(()));
        let mut backwards = query();
        backwards.to = date("2021-06-30");
        assert_eq!(
            backwards.validate().unwrap_err().to_string(),
            "slot search ends on 2021-06-30, before it starts on 2021-07-01"
        );
        let mut long = query();
        // 2024 is a leap year: 1 January to 1 April is 92 days, to 2 April 93.
        long.from = date("2024-01-01");
        long.to = date("2024-04-01");
        assert_eq!(long.validate(), Ok(()));
        long.to = date("2024-04-02");
        assert_eq!(
            long.validate(),
            Err(SlotError::QueryTooLong { days: 93, max: 92 })
        );
        long.from = date("1999-12-31");
        long.to = date("2000-01-01");
        assert_eq!(long.validate(), Ok(()));
        for (limit, ok) in [(0, false), (1, true), (100, true), (101, false)] {
            let mut limited = query();
            limited.limit = limit;
            assert_eq!(limited.validate().is_ok(), ok, "{limit}");
        }
        let mut limited = query();
        limited.limit = 0;
        assert_eq!(
            limited.validate().unwrap_err().to_string(),
            "slot search limit is 0; it must be 1 to 100"
        );
    }

    #[test]
    fn queries_match_free_slots_of_the_service_asked_for() {
        let service = cardiology();
        let free = slot(11000021, 11000);
        assert!(query().matches(&free, &service));

        let booked = book_slot(&free, ubrn(), Uuid::from_u128(1), ServiceId(11000)).unwrap();
        assert!(!query().matches(&booked, &service), "booked");
        assert!(!query().matches(&slot(1, 12000), &service), "other service");

        let mut other = query();
        other.specialty = "UROLOGY".parse().unwrap();
        assert!(!other.matches(&free, &service), "specialty");
        let mut other = query();
        other.clinic_type = Some("HEART_FAILURE".parse().unwrap());
        assert!(other.matches(&free, &service));
        other.clinic_type = Some("ARRHYTHMIA".parse().unwrap());
        assert!(!other.matches(&free, &service), "clinic type");
        let mut other = query();
        other.provider = Some("R69".parse().unwrap());
        assert!(other.matches(&free, &service));
        other.provider = Some("RR8".parse().unwrap());
        assert!(!other.matches(&free, &service), "provider");
        let mut other = query();
        other.from = date("2021-07-11");
        other.to = date("2021-07-11");
        assert!(other.matches(&free, &service), "both ends included");
        other.from = date("2021-07-12");
        other.to = date("2021-07-31");
        assert!(!other.matches(&free, &service), "dates");
    }

    #[test]
    fn day_numbers_agree_with_the_calendar() {
        assert_eq!(day_number(date("1970-01-01")), 0);
        assert_eq!(
            day_number(date("2000-03-01")) - day_number(date("2000-02-28")),
            2
        );
        assert_eq!(
            day_number(date("1900-03-01")) - day_number(date("1900-02-28")),
            1
        );
        assert_eq!(
            day_number(date("2025-01-01")) - day_number(date("2024-01-01")),
            366
        );
    }
}
