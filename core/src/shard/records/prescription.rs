//! Kind 7, a prescription: the payload's types at version 1, field for field as
//! `core/RECORDS.md` gives them, written from the domain's [`Prescription`] and read straight
//! back into it ([`super::read_fields`]: every action and every nominated release reads one).

use std::borrow::Cow;

use serde::Serialize;
use serde::de::SeqAccess;
use spine_domain::codes::CodeList;
use uuid::Uuid;

use super::read_fields::{Fields, ReadStruct};
use super::stored_list::StoredList;
use super::{MalformedRecord, read_into, versioned};
use crate::NhsNumber;
use crate::eps::{DmdCode, Prescription, PrescriptionId, prescription as domain};
use crate::pds::values::OdsCode;
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(prescription: &Prescription) -> Vec<u8> {
    PrescriptionRecord::from(prescription).encode()
}

/// The record in `payload`, checked against the invariants every stored prescription keeps
/// ([`Prescription::validate`]).
pub fn decode(payload: &[u8]) -> Result<Prescription, MalformedRecord> {
    read_into(
        RecordKind::Prescription,
        PAYLOAD_VERSION,
        payload,
        |prescription: &Prescription| prescription.validate().map_err(|error| error.to_string()),
    )
}

/// `Prescription`, the payload after its version byte, as it is written.
#[derive(Serialize)]
#[serde(rename = "Prescription")]
pub struct PrescriptionRecord<'a> {
    id: PrescriptionId,
    patient: NhsNumber,
    prescriber: Uuid,
    organisation: Cow<'a, OdsCode>,
    nominated_pharmacy: Option<Cow<'a, OdsCode>>,
    items: StoredList<'a, domain::LineItem, LineItem<'a>>,
    status: u32,
    dispenser: Option<Cow<'a, OdsCode>>,
    cancellation_pending: bool,
    created_ms: u64,
    version: u32,
    history: StoredList<'a, domain::StatusChange, StatusChange<'a>>,
}

impl<'a> From<&'a Prescription> for PrescriptionRecord<'a> {
    fn from(prescription: &'a Prescription) -> Self {
        Self {
            id: prescription.id,
            patient: prescription.patient,
            prescriber: prescription.prescriber,
            organisation: Cow::Borrowed(&prescription.organisation),
            nominated_pharmacy: prescription.nominated_pharmacy.as_ref().map(Cow::Borrowed),
            items: StoredList::Domain(&prescription.items),
            status: prescription.status.index(),
            dispenser: prescription.dispenser.as_ref().map(Cow::Borrowed),
            cancellation_pending: prescription.cancellation_pending,
            created_ms: prescription.created_ms,
            version: prescription.version,
            history: StoredList::Domain(&prescription.history),
        }
    }
}

impl PrescriptionRecord<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }
}

/// `LineItem`.
#[derive(Serialize)]
struct LineItem<'a> {
    code: DmdCode,
    description: Cow<'a, str>,
    quantity: u32,
    unit: Cow<'a, str>,
    dosage: Cow<'a, str>,
    dispensed: u32,
}

impl<'a> From<&'a domain::LineItem> for LineItem<'a> {
    fn from(item: &'a domain::LineItem) -> Self {
        Self {
            code: item.code,
            description: Cow::Borrowed(&item.description),
            quantity: item.quantity,
            unit: Cow::Borrowed(&item.unit),
            dosage: Cow::Borrowed(&item.dosage),
            dispensed: item.dispensed,
        }
    }
}

/// `StatusChange`.
#[derive(Serialize)]
struct StatusChange<'a> {
    action: u32,
    from: u32,
    to: u32,
    by: Option<Cow<'a, OdsCode>>,
    at_ms: u64,
}

impl<'a> From<&'a domain::StatusChange> for StatusChange<'a> {
    fn from(change: &'a domain::StatusChange) -> Self {
        Self {
            action: change.action.index(),
            from: change.from.index(),
            to: change.to.index(),
            by: change.by.as_ref().map(Cow::Borrowed),
            at_ms: change.at_ms,
        }
    }
}

impl ReadStruct for Prescription {
    const FIELDS: usize = 12;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(Prescription {
            id: fields.next::<PrescriptionId>()?,
            patient: fields.next::<NhsNumber>()?,
            prescriber: fields.next::<Uuid>()?,
            organisation: fields.next::<OdsCode>()?,
            nominated_pharmacy: fields.next::<Option<OdsCode>>()?,
            items: fields.next_list("items")?,
            status: fields.next_code()?,
            dispenser: fields.next::<Option<OdsCode>>()?,
            cancellation_pending: fields.next()?,
            created_ms: fields.next()?,
            version: fields.next()?,
            history: fields.next_list("history")?,
        })
    }
}

impl ReadStruct for domain::LineItem {
    const FIELDS: usize = 6;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(domain::LineItem {
            code: fields.next::<DmdCode>()?,
            description: fields.next::<String>()?,
            quantity: fields.next()?,
            unit: fields.next::<String>()?,
            dosage: fields.next::<String>()?,
            dispensed: fields.next()?,
        })
    }
}

impl ReadStruct for domain::StatusChange {
    const FIELDS: usize = 5;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(domain::StatusChange {
            action: fields.next_code()?,
            from: fields.next_code()?,
            to: fields.next_code()?,
            by: fields.next::<Option<OdsCode>>()?,
            at_ms: fields.next()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eps::{EpsAction, EpsActionKind, PrescriptionStatus, state};
    use crate::eps::{NewLineItem, NewPrescription};

    fn issued() -> Prescription {
        let item = |quantity| NewLineItem {
            code: "39732311000001104".parse().expect("a dm+d code"),
            description: "Amoxicillin 250mg capsules".into(),
            quantity,
            unit: "capsule".into(),
            dosage: "One capsule three times a day".into(),
        };
        Prescription::issue(
            NewPrescription {
                patient: "9000000009".parse().expect("valid"),
                nominated_pharmacy: Some("FCG71".parse().expect("an ODS code")),
                items: vec![item(21), item(14)],
            },
            "04F4C2-A99968-7F717P".parse().expect("an id"),
            Uuid::from_u128(7),
            "A99968".parse().expect("an ODS code"),
            0,
        )
        .expect("a valid prescription")
    }

    #[test]
    fn a_record_round_trips_with_its_history() {
        let prescription = issued();
        let payload = encode(&prescription);
        assert_eq!(payload[0], PAYLOAD_VERSION);
        assert_eq!(decode(&payload), Ok(prescription.clone()));
        let release = EpsAction::Release {
            pharmacy: "FCG71".parse().expect("an ODS code"),
        };
        let released = state::apply(&prescription, &release, 5).expect("released");
        assert_eq!(released.history[0].action, EpsActionKind::Release);
        assert_eq!(released.status, PrescriptionStatus::WithDispenser);
        assert_eq!(decode(&encode(&released)), Ok(released));
    }

    #[test]
    fn damage_is_refused_and_named() {
        let prescription = issued();
        let payload = encode(&prescription);
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert_eq!(
            message(&[9]),
            "stored prescription record is malformed: unknown encoding version 9"
        );
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut record = PrescriptionRecord::from(&prescription);
        record.status = 9;
        assert!(
            message(&record.encode()).ends_with("prescription_status: 9 is not one of 0 ToBeDispensed, 1 WithDispenser, 2 WithDispenserActive, 3 Expired, 4 Cancelled, 5 Dispensed, 6 NotDispensed, 7 Claimed, 8 NotClaimed"),
        );
        let mut broken = prescription;
        broken.items[0].dispensed = 22;
        assert_eq!(
            message(&encode(&broken)),
            "stored prescription record is malformed: item index 0: 22 dispensed of 21 prescribed"
        );
    }
}
