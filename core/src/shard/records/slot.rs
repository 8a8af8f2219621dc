//! Kind 9, an appointment slot: the payload's types at version 1, field for field as
//! `core/RECORDS.md` gives them, and their conversions to and from the domain's [`Slot`].

use super::versioned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MalformedRecord, read};
use crate::ers::slot::BookingRef as DomainBookingRef;
use crate::ers::{ServiceId, Slot, SlotId, SlotStart, Ubrn};
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(slot: &Slot) -> Vec<u8> {
    SlotRecord::from(slot).encode()
}

/// The slot in `payload`, its duration checked as a published one's is (1 to 480 minutes,
/// ending by midnight).
pub fn decode(payload: &[u8]) -> Result<Slot, MalformedRecord> {
    read(
        RecordKind::Slot,
        PAYLOAD_VERSION,
        payload,
        SlotRecord::into_domain,
        |_| Ok(()),
    )
}

/// `Slot`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Slot")]
pub struct SlotRecord {
    id: SlotId,
    service: ServiceId,
    start: SlotStart,
    duration_minutes: u16,
    booking: Option<BookingRef>,
    released: Option<Uuid>,
}

impl From<&Slot> for SlotRecord {
    fn from(slot: &Slot) -> Self {
        Self {
            id: slot.id(),
            service: slot.service(),
            start: slot.start(),
            duration_minutes: slot.duration_minutes(),
            booking: slot.booking().map(|booking| BookingRef {
                ubrn: booking.ubrn,
                booking_id: booking.booking_id,
            }),
            released: slot.released(),
        }
    }
}

impl SlotRecord {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Result<Slot, String> {
        let free = Slot::new(self.id, self.service, self.start, self.duration_minutes)
            .map_err(|error| error.to_string())?;
        let booking = self.booking.map(|booking| DomainBookingRef {
            ubrn: booking.ubrn,
            booking_id: booking.booking_id,
        });
        Ok(free.with_stored_holders(booking, self.released))
    }
}

/// `BookingRef`.
#[derive(Serialize, Deserialize)]
struct BookingRef {
    ubrn: Ubrn,
    booking_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ers::slot::book_slot;

    fn slot() -> Slot {
        let start = SlotStart::new("2027-01-04".parse().expect("a date"), 540).expect("a start");
        Slot::new(SlotId(11_000 << 24 | 21), ServiceId(11_000), start, 30).expect("a slot")
    }

    #[test]
    fn free_and_booked_slots_round_trip() {
        let free = slot();
        let payload = encode(&free);
        assert_eq!(payload[0], PAYLOAD_VERSION);
        assert_eq!(decode(&payload), Ok(free.clone()));
        let ubrn = Ubrn::try_from(123_456_789_012).expect("a UBRN");
        let booked = book_slot(&free, ubrn, Uuid::from_u128(7), ServiceId(11_000)).expect("booked");
        assert_eq!(decode(&encode(&booked)), Ok(booked));
    }

    #[test]
    fn damage_is_refused_and_named() {
        let payload = encode(&slot());
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut record = SlotRecord::from(&slot());
        record.duration_minutes = 0;
        assert_eq!(
            message(&record.encode()),
            "stored slot record is malformed: slot duration of 0 minutes is outside 1 to 480"
        );
    }
}
