//! Kind 7, a prescription: the payload's types at version 1, field for field as
//! `core/RECORDS.md` gives them, and their conversions to and from the domain's
//! [`Prescription`].

use std::borrow::Cow;

use super::versioned;
use serde::{Deserialize, Serialize};
use spine_domain::codes::CodeList;
use uuid::Uuid;

use super::stored_list::{StoredElement, StoredList};
use super::{MalformedRecord, code, read};
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
    read(
        RecordKind::Prescription,
        PAYLOAD_VERSION,
        payload,
        PrescriptionRecord::into_domain,
        |record| record.validate().map_err(|error| error.to_string()),
    )
}

/// `Prescription`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
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

    fn into_domain(self) -> Result<Prescription, String> {
        Ok(Prescription {
            id: self.id,
            patient: self.patient,
            prescriber: self.prescriber,
            organisation: self.organisation.into_owned(),
            nominated_pharmacy: self.nominated_pharmacy.map(Cow::into_owned),
            items: self.items.into_domain("items")?,
            status: code(self.status)?,
            dispenser: self.dispenser.map(Cow::into_owned),
            cancellation_pending: self.cancellation_pending,
            created_ms: self.created_ms,
            version: self.version,
            history: self.history.into_domain("history")?,
        })
    }
}

/// `LineItem`.
#[derive(Serialize, Deserialize)]
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

impl<'a> StoredElement<'a, domain::LineItem> for LineItem<'a> {
    fn into_domain(self) -> Result<domain::LineItem, String> {
        Ok(domain::LineItem {
            code: self.code,
            description: self.description.into_owned(),
            quantity: self.quantity,
            unit: self.unit.into_owned(),
            dosage: self.dosage.into_owned(),
            dispensed: self.dispensed,
        })
    }
}

/// `StatusChange`.
#[derive(Serialize, Deserialize)]
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

impl<'a> StoredElement<'a, domain::StatusChange> for StatusChange<'a> {
    fn into_domain(self) -> Result<domain::StatusChange, String> {
        Ok(domain::StatusChange {
            action: code(self.action)?,
            from: code(self.from)?,
            to: code(self.to)?,
            by: self.by.map(Cow::into_owned),
            at_ms: self.at_ms,
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
