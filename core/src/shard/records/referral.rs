//! Kind 10, a referral with the slot releases it still owes: the payload's types at version
//! 1, field for field as `core/RECORDS.md` gives them, and their conversions to and from the
//! shard's [`ReferralRecord`] (which holds the domain's [`Referral`]).

use std::borrow::Cow;

use super::versioned;
use serde::{Deserialize, Serialize};
use spine_domain::codes::CodeList;
use uuid::Uuid;

use super::stored_list::{StoredElement, StoredList};
use super::{MalformedRecord, code, read};
use crate::NhsNumber;
use crate::ers::referral::{self as domain, HistoryEntry, ReferralParts};
use crate::ers::{Booking, Referral, ServiceId, SlotId, Specialty, Ubrn};
use crate::pds::values::OdsCode;
use crate::shard::ers::{RELEASES_OWED_MAX, ReferralRecord};
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(record: &ReferralRecord) -> Vec<u8> {
    ReferralRecordPayload::from(record).encode()
}

/// The record in `payload`: the referral checked against the rules every transition keeps
/// ([`Referral::from_parts`]), and at most [`RELEASES_OWED_MAX`] releases owed.
pub fn decode(payload: &[u8]) -> Result<ReferralRecord, MalformedRecord> {
    read(
        RecordKind::Referral,
        PAYLOAD_VERSION,
        payload,
        ReferralRecordPayload::into_domain,
        |record| {
            if record.releasing.len() > RELEASES_OWED_MAX {
                return Err(format!("{} slot releases owed", record.releasing.len()));
            }
            Ok(())
        },
    )
}

/// `ReferralRecord`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
#[serde(rename = "ReferralRecord")]
pub struct ReferralRecordPayload<'a> {
    referral: ReferralPayload<'a>,
    releasing: StoredList<'a, Booking, BookingPayload>,
}

impl<'a> From<&'a ReferralRecord> for ReferralRecordPayload<'a> {
    fn from(record: &'a ReferralRecord) -> Self {
        let referral = &record.referral;
        Self {
            referral: ReferralPayload {
                ubrn: referral.ubrn(),
                patient: referral.patient(),
                referrer: Cow::Borrowed(referral.referrer()),
                specialty: Cow::Borrowed(referral.specialty()),
                priority: referral.priority().index(),
                shortlist: Cow::Borrowed(referral.shortlist()),
                state: StatePayload::from(referral.state()),
                booking: referral.booking().map(BookingPayload::from),
                version: referral.version(),
                history: StoredList::Domain(referral.history()),
            },
            releasing: StoredList::Domain(&record.releasing),
        }
    }
}

impl ReferralRecordPayload<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Result<ReferralRecord, String> {
        let stored = self.referral;
        let referral = Referral::from_parts(ReferralParts {
            ubrn: stored.ubrn,
            patient: stored.patient,
            referrer: stored.referrer.into_owned(),
            specialty: stored.specialty.into_owned(),
            priority: code(stored.priority)?,
            shortlist: stored.shortlist.into_owned(),
            state: stored.state.into_domain(),
            booking: stored.booking.map(BookingPayload::into_booking),
            version: stored.version,
            history: stored.history.into_domain("history")?,
        })?;
        Ok(ReferralRecord {
            referral,
            releasing: self.releasing.into_domain("releasing")?,
        })
    }
}

/// `Referral`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Referral")]
struct ReferralPayload<'a> {
    ubrn: Ubrn,
    patient: NhsNumber,
    referrer: Cow<'a, OdsCode>,
    specialty: Cow<'a, Specialty>,
    priority: u32,
    shortlist: Cow<'a, [ServiceId]>,
    state: StatePayload,
    booking: Option<BookingPayload>,
    version: u32,
    history: StoredList<'a, HistoryEntry, HistoryEntryPayload>,
}

/// `Booking`.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename = "Booking")]
pub struct BookingPayload {
    booking_id: Uuid,
    slot: SlotId,
    service: ServiceId,
}

impl From<&Booking> for BookingPayload {
    fn from(booking: &Booking) -> Self {
        Self {
            booking_id: booking.booking_id,
            slot: booking.slot,
            service: booking.service,
        }
    }
}

impl BookingPayload {
    fn into_booking(self) -> Booking {
        Booking {
            booking_id: self.booking_id,
            slot: self.slot,
            service: self.service,
        }
    }
}

impl StoredElement<'_, Booking> for BookingPayload {
    fn into_domain(self) -> Result<Booking, String> {
        Ok(self.into_booking())
    }
}

/// `ReferralState`: the variants in this order are the stored numbers (public so that
/// `core/tests/records_doc.rs` can trace every variant).
#[derive(Serialize, Deserialize)]
#[serde(rename = "ReferralState")]
#[expect(missing_docs)] // The variants are documented in core/RECORDS.md.
pub enum StatePayload {
    Unbooked,
    BookingPending {
        booking: BookingPayload,
        prior: PriorPayload,
    },
    Booked,
    DeferredToProvider {
        service: ServiceId,
    },
    Cancelled,
}

impl From<&domain::ReferralState> for StatePayload {
    fn from(state: &domain::ReferralState) -> Self {
        use domain::ReferralState as State;
        match state {
            State::Unbooked => Self::Unbooked,
            State::BookingPending { booking, prior } => Self::BookingPending {
                booking: booking.into(),
                prior: prior.into(),
            },
            State::Booked => Self::Booked,
            State::DeferredToProvider { service } => Self::DeferredToProvider { service: *service },
            State::Cancelled => Self::Cancelled,
        }
    }
}

impl StatePayload {
    fn into_domain(self) -> domain::ReferralState {
        use domain::ReferralState as State;
        match self {
            Self::Unbooked => State::Unbooked,
            Self::BookingPending { booking, prior } => State::BookingPending {
                booking: booking.into_booking(),
                prior: prior.into_domain(),
            },
            Self::Booked => State::Booked,
            Self::DeferredToProvider { service } => State::DeferredToProvider { service },
            Self::Cancelled => State::Cancelled,
        }
    }
}

/// `PriorState`: the variants in this order are the stored numbers (public for the trace).
#[derive(Serialize, Deserialize)]
#[serde(rename = "PriorState")]
#[expect(missing_docs)] // The variants are documented in core/RECORDS.md.
pub enum PriorPayload {
    Unbooked,
    DeferredToProvider { service: ServiceId },
    Booked,
}

impl From<&domain::PriorState> for PriorPayload {
    fn from(prior: &domain::PriorState) -> Self {
        use domain::PriorState as Prior;
        match prior {
            Prior::Unbooked => Self::Unbooked,
            Prior::DeferredToProvider { service } => Self::DeferredToProvider { service: *service },
            Prior::Booked => Self::Booked,
        }
    }
}

impl PriorPayload {
    fn into_domain(self) -> domain::PriorState {
        use domain::PriorState as Prior;
        match self {
            Self::Unbooked => Prior::Unbooked,
            Self::DeferredToProvider { service } => Prior::DeferredToProvider { service },
            Self::Booked => Prior::Booked,
        }
    }
}

/// `HistoryEntry`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "HistoryEntry")]
struct HistoryEntryPayload {
    version: u32,
    event: EventPayload,
}

impl From<&HistoryEntry> for HistoryEntryPayload {
    fn from(entry: &HistoryEntry) -> Self {
        Self {
            version: entry.version,
            event: EventPayload::from(&entry.event),
        }
    }
}

impl StoredElement<'_, HistoryEntry> for HistoryEntryPayload {
    fn into_domain(self) -> Result<HistoryEntry, String> {
        Ok(HistoryEntry {
            version: self.version,
            event: self.event.into_domain(),
        })
    }
}

/// `ReferralEvent`: the variants in this order are the stored numbers (public for the
/// trace).
#[derive(Serialize, Deserialize)]
#[serde(rename = "ReferralEvent")]
#[expect(missing_docs)] // The variants are documented in core/RECORDS.md.
pub enum EventPayload {
    Created,
    BookingBegun(BookingPayload),
    BookingConfirmed(BookingPayload),
    BookingAborted(BookingPayload),
    BookingCancelled(BookingPayload),
    DeferredToProvider(ServiceId),
    Cancelled { released: Option<BookingPayload> },
}

impl From<&domain::ReferralEvent> for EventPayload {
    fn from(event: &domain::ReferralEvent) -> Self {
        use domain::ReferralEvent as Event;
        match event {
            Event::Created => Self::Created,
            Event::BookingBegun(booking) => Self::BookingBegun(booking.into()),
            Event::BookingConfirmed(booking) => Self::BookingConfirmed(booking.into()),
            Event::BookingAborted(booking) => Self::BookingAborted(booking.into()),
            Event::BookingCancelled(booking) => Self::BookingCancelled(booking.into()),
            Event::DeferredToProvider(service) => Self::DeferredToProvider(*service),
            Event::Cancelled { released } => Self::Cancelled {
                released: released.as_ref().map(BookingPayload::from),
            },
        }
    }
}

impl EventPayload {
    fn into_domain(self) -> domain::ReferralEvent {
        use domain::ReferralEvent as Event;
        match self {
            Self::Created => Event::Created,
            Self::BookingBegun(booking) => Event::BookingBegun(booking.into_booking()),
            Self::BookingConfirmed(booking) => Event::BookingConfirmed(booking.into_booking()),
            Self::BookingAborted(booking) => Event::BookingAborted(booking.into_booking()),
            Self::BookingCancelled(booking) => Event::BookingCancelled(booking.into_booking()),
            Self::DeferredToProvider(service) => Event::DeferredToProvider(service),
            Self::Cancelled { released } => Event::Cancelled {
                released: released.map(BookingPayload::into_booking),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ers::Priority;

    const SERVICE: ServiceId = ServiceId(11_000);

    fn booking(n: u128) -> Booking {
        Booking {
            booking_id: Uuid::from_u128(n),
            slot: SlotId::of_service(SERVICE, 1),
            service: SERVICE,
        }
    }

    /// A referral in each state, each with its history, one owing a release.
    fn records() -> Vec<ReferralRecord> {
        let created = domain::create(
            Ubrn::try_from(70_000).expect("a UBRN"),
            "9000000009".parse().expect("an NHS number"),
            "Y90001".parse().expect("a code"),
            "CARDIOLOGY".parse().expect("a specialty"),
            Priority::TwoWeekWait,
            vec![SERVICE, ServiceId(12_000)],
        )
        .expect("created");
        let slot = SlotId::of_service(SERVICE, 1);
        let pending =
            domain::begin_booking(&created, slot, SERVICE, booking(1).booking_id).expect("begun");
        let booked = domain::confirm_booking(&pending, booking(1).booking_id).expect("booked");
        let rebooking = domain::begin_rebooking(&booked, slot, SERVICE, booking(2).booking_id)
            .expect("rebooking");
        let deferred = domain::defer_to_provider(&created, ServiceId(12_000), 0).expect("deferred");
        let cancelled = domain::cancel_referral(&booked).expect("cancelled");
        [created, pending, booked, rebooking, deferred]
            .into_iter()
            .map(|referral| ReferralRecord {
                referral,
                releasing: Vec::new(),
            })
            .chain([ReferralRecord {
                referral: cancelled,
                releasing: vec![booking(1)],
            }])
            .collect()
    }

    #[test]
    fn every_state_round_trips() {
        for record in records() {
            let payload = encode(&record);
            assert_eq!(payload[0], PAYLOAD_VERSION);
            assert_eq!(decode(&payload), Ok(record));
        }
    }

    #[test]
    fn damage_is_refused_and_named() {
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        let mut owing = records().remove(0);
        owing.releasing = vec![booking(3); RELEASES_OWED_MAX + 1];
        assert_eq!(
            message(&encode(&owing)),
            "stored referral record is malformed: 9 slot releases owed"
        );
        let record = records().remove(0);
        let mut payload = ReferralRecordPayload::from(&record);
        payload.referral.priority = 3;
        assert_eq!(
            message(&payload.encode()),
            "stored referral record is malformed: priority: 3 is not one of 0 Routine, 1 Urgent, \
             2 TwoWeekWait"
        );
        let mut payload = ReferralRecordPayload::from(&record);
        payload.referral.booking = Some(BookingPayload::from(&booking(1)));
        assert_eq!(
            message(&payload.encode()),
            "stored referral record is malformed: a NOT_BOOKED referral cannot have a booking"
        );
    }
}
