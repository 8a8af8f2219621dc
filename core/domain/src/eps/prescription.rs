//! The prescription record: what a prescriber sends ([`NewPrescription`]), its rules, the
//! record the service keeps ([`Prescription`]) with its expiry and the
//! invariants every stored one keeps.

use serde::{Deserialize, Serialize};

use super::dmd_code::DmdCode;
use super::prescription_id::PrescriptionId;
use super::state::EpsActionKind;
use super::status::PrescriptionStatus;
use crate::pds::nhs_number::NhsNumber;
use crate::pds::values::OdsCode;

/// Line items on one prescription, at most (the EPS limit: more go on further prescriptions).
pub const ITEMS_MAX: usize = 4;
/// Largest quantity of one item. The specification sets none; a bound catches typing slips.
pub const QUANTITY_MAX: u32 = 1_000_000;
/// Bytes in a description, unit or dosage instruction, at most (a bound on record size).
pub const TEXT_BYTES_MAX: usize = 256;
/// Status changes kept in a record's history; older ones are dropped (the audit trail keeps
/// everything).
pub const HISTORY_MAX: usize = 32;
/// Days after issue when a prescription not yet dispensed expires. NHS prescriptions are valid
/// for six months; 180 days stands for that (controlled drugs' 28 days are not modelled).
pub const EXPIRY_DAYS: u64 = 180;
/// [`EXPIRY_DAYS`] in milliseconds.
pub const EXPIRY_MS: u64 = EXPIRY_DAYS * 24 * 60 * 60 * 1000;

/// One medicine as the prescriber orders it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLineItem {
    /// The medicine's dm+d code.
    pub code: DmdCode,
    /// The medicine's name as prescribed (`Amoxicillin 250mg capsules`).
    pub description: String,
    /// How much to supply, in `unit`s: 1 to [`QUANTITY_MAX`].
    pub quantity: u32,
    /// The unit of `quantity` (`capsule`, `ml`).
    pub unit: String,
    /// The dosage instruction (`One capsule three times a day`).
    pub dosage: String,
}

/// One medicine on a prescription, with how much of it has been supplied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The medicine's dm+d code.
    pub code: DmdCode,
    /// The medicine's name as prescribed.
    pub description: String,
    /// How much to supply, in `unit`s.
    pub quantity: u32,
    /// The unit of `quantity`.
    pub unit: String,
    /// The dosage instruction.
    pub dosage: String,
    /// How much the dispenser has supplied so far: never more than `quantity`.
    pub dispensed: u32,
}

impl From<NewLineItem> for LineItem {
    fn from(item: NewLineItem) -> Self {
        Self {
            code: item.code,
            description: item.description,
            quantity: item.quantity,
            unit: item.unit,
            dosage: item.dosage,
            dispensed: 0,
        }
    }
}

impl LineItem {
    /// Whether the item has been supplied in full.
    pub fn is_fully_dispensed(&self) -> bool {
        self.dispensed == self.quantity
    }
}

/// What a prescriber sends: the patient, an optional nominated pharmacy, and the items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPrescription {
    /// The patient.
    pub patient: NhsNumber,
    /// The pharmacy the patient has nominated, if any: its dispensing system downloads the
    /// prescription without the patient bringing a token.
    pub nominated_pharmacy: Option<OdsCode>,
    /// The medicines: 1 to [`ITEMS_MAX`].
    pub items: Vec<NewLineItem>,
}

/// A change of status, or an action that left the status as it was (a cancellation marked
/// pending, a further partial supply), in a prescription's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// What was done.
    pub action: EpsActionKind,
    /// The status before.
    pub from: PrescriptionStatus,
    /// The status after.
    pub to: PrescriptionStatus,
    /// The organisation that acted; `None` is kept for changes the service makes itself.
    pub by: Option<OdsCode>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The record the service keeps for one prescription. Change it only through
/// [`super::state::apply`], which keeps its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prescription {
    /// The short-form id; its [`PrescriptionId::key_value`] is the storage key.
    pub id: PrescriptionId,
    /// The patient.
    pub patient: NhsNumber,
    /// The prescribing user.
    pub prescriber: uuid::Uuid,
    /// The prescriber's organisation: the only one that may cancel.
    pub organisation: OdsCode,
    /// The patient's nominated pharmacy, if any.
    pub nominated_pharmacy: Option<OdsCode>,
    /// The medicines: 1 to [`ITEMS_MAX`].
    pub items: Vec<LineItem>,
    /// The status as stored. Read [`Prescription::effective_status`], which also knows expiry.
    pub status: PrescriptionStatus,
    /// The pharmacy that holds (or held, once claimed) the prescription; set exactly when
    /// [`PrescriptionStatus::has_dispenser`].
    pub dispenser: Option<OdsCode>,
    /// The prescriber asked to cancel while a pharmacy held the prescription: a return makes
    /// it cancelled rather than ready to dispense again.
    pub cancellation_pending: bool,
    /// When it was issued, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Version: 1 at issue, plus 1 for every accepted action.
    pub version: u32,
    /// The latest changes, oldest first, at most [`HISTORY_MAX`].
    pub history: Vec<StatusChange>,
}

/// Why a new prescription breaks the rules, or bytes are not a prescription record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrescriptionError {
    /// No items.
    #[error("a prescription needs at least one item")]
    NoItems,
    /// More items than one prescription may hold.
    #[error("a prescription has {items} items; it may have at most {ITEMS_MAX}")]
    TooManyItems {
        /// Items given.
        items: usize,
    },
    /// A quantity of 0 or above [`QUANTITY_MAX`].
    #[error("item index {item}: quantity {quantity} is outside 1 to {QUANTITY_MAX}")]
    QuantityOutOfRange {
        /// The item's index, counting from 0.
        item: usize,
        /// The quantity.
        quantity: u32,
    },
    /// An empty description, unit or dosage.
    #[error("item index {item}: {field} must not be empty")]
    EmptyText {
        /// The item's index, counting from 0.
        item: usize,
        /// `description`, `unit` or `dosage`.
        field: &'static str,
    },
    /// A description, unit or dosage over [`TEXT_BYTES_MAX`] bytes.
    #[error("item index {item}: {field} has {bytes} bytes; at most {TEXT_BYTES_MAX} are allowed")]
    TextTooLong {
        /// The item's index, counting from 0.
        item: usize,
        /// `description`, `unit` or `dosage`.
        field: &'static str,
        /// Its length in bytes.
        bytes: usize,
    },
    /// The id was not allocated for the prescribing organisation.
    #[error("prescription id {id} is not one of {organisation}'s (its organisation part is {})", id.organisation_part())]
    IdNotFromOrganisation {
        /// The id.
        id: PrescriptionId,
        /// The prescribing organisation.
        organisation: OdsCode,
    },
    /// The record breaks an invariant every stored prescription keeps.
    #[error("{0}")]
    BrokenInvariant(String),
}

/// Checks one item's quantity and texts.
fn check_item(
    item: usize,
    quantity: u32,
    texts: [(&'static str, &str); 3],
) -> Result<(), PrescriptionError> {
    if !(1..=QUANTITY_MAX).contains(&quantity) {
        return Err(PrescriptionError::QuantityOutOfRange { item, quantity });
    }
    for (field, text) in texts {
        if text.is_empty() {
            return Err(PrescriptionError::EmptyText { item, field });
        }
        if text.len() > TEXT_BYTES_MAX {
            return Err(PrescriptionError::TextTooLong {
                item,
                field,
                bytes: text.len(),
            });
        }
    }
    Ok(())
}

/// Checks the number of items.
fn check_count(items: usize) -> Result<(), PrescriptionError> {
    match items {
        0 => Err(PrescriptionError::NoItems),
        1..=ITEMS_MAX => Ok(()),
        _ => Err(PrescriptionError::TooManyItems { items }),
    }
}

/// Checks the count of items and each item's quantity and texts, given as (quantity,
/// description, unit, dosage): the rules a new prescription and a stored one share.
fn check_items<'a>(
    items: impl ExactSizeIterator<Item = (u32, &'a str, &'a str, &'a str)>,
) -> Result<(), PrescriptionError> {
    check_count(items.len())?;
    for (index, (quantity, description, unit, dosage)) in items.enumerate() {
        check_item(
            index,
            quantity,
            [
                ("description", description),
                ("unit", unit),
                ("dosage", dosage),
            ],
        )?;
    }
    Ok(())
}

impl NewPrescription {
    /// Checks the rules: 1 to [`ITEMS_MAX`] items, each with a quantity of 1 to
    /// [`QUANTITY_MAX`] and a description, unit and dosage of 1 to [`TEXT_BYTES_MAX`] bytes.
    /// The first rule broken is reported.
    pub fn validate(&self) -> Result<(), PrescriptionError> {
        check_items(self.items.iter().map(|item| {
            (
                item.quantity,
                item.description.as_str(),
                item.unit.as_str(),
                item.dosage.as_str(),
            )
        }))
    }
}

impl Prescription {
    /// The record for a new prescription, status `0001 To Be Dispensed`, version 1: after
    /// [`NewPrescription::validate`], and only if `id` was allocated for `organisation`.
    pub fn issue(
        new: NewPrescription,
        id: PrescriptionId,
        prescriber: uuid::Uuid,
        organisation: OdsCode,
        now_ms: u64,
    ) -> Result<Prescription, PrescriptionError> {
        new.validate()?;
        if !id.is_from(&organisation) {
            return Err(PrescriptionError::IdNotFromOrganisation { id, organisation });
        }
        Ok(Prescription {
            id,
            patient: new.patient,
            prescriber,
            organisation,
            nominated_pharmacy: new.nominated_pharmacy,
            items: new.items.into_iter().map(LineItem::from).collect(),
            status: PrescriptionStatus::ToBeDispensed,
            dispenser: None,
            cancellation_pending: false,
            created_ms: now_ms,
            version: 1,
            history: Vec::new(),
        })
    }

    /// Whether the prescription has expired at `now_ms`: still `0001` or `0002` more than
    /// [`EXPIRY_DAYS`] after issue. Once a pharmacy has supplied something (`0003`) it no
    /// longer expires: the dispensing it started must be able to finish.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(
            self.status,
            PrescriptionStatus::ToBeDispensed | PrescriptionStatus::WithDispenser
        ) && now_ms.saturating_sub(self.created_ms) > EXPIRY_MS
    }

    /// The status at `now_ms`: `0004 Expired` if [`Prescription::is_expired`], else the stored
    /// one. Expiry is not written back; nothing needs to run for a prescription to expire.
    pub fn effective_status(&self, now_ms: u64) -> PrescriptionStatus {
        if self.is_expired(now_ms) {
            PrescriptionStatus::Expired
        } else {
            self.status
        }
    }

    /// Whether every item has been supplied in full.
    pub fn is_fully_dispensed(&self) -> bool {
        self.items.iter().all(LineItem::is_fully_dispensed)
    }

    /// The invariants every stored record keeps (its payload in the log is `spine-core`'s,
    /// `shard/records/prescription.rs`, which checks them when a record is read).
    pub fn validate(&self) -> Result<(), PrescriptionError> {
        check_items(self.items.iter().map(|item| {
            (
                item.quantity,
                item.description.as_str(),
                item.unit.as_str(),
                item.dosage.as_str(),
            )
        }))?;
        for (index, item) in self.items.iter().enumerate() {
            if item.dispensed > item.quantity {
                return Err(PrescriptionError::BrokenInvariant(format!(
                    "item index {index}: {} dispensed of {} prescribed",
                    item.dispensed, item.quantity
                )));
            }
        }
        if self.status.has_dispenser() != self.dispenser.is_some() {
            return Err(PrescriptionError::BrokenInvariant(format!(
                "status {} with dispenser {:?}",
                self.status, self.dispenser
            )));
        }
        if self.history.len() > HISTORY_MAX {
            return Err(PrescriptionError::BrokenInvariant(format!(
                "{} history entries; at most {HISTORY_MAX} are kept",
                self.history.len()
            )));
        }
        if !self.id.is_from(&self.organisation) {
            return Err(PrescriptionError::IdNotFromOrganisation {
                id: self.id,
                organisation: self.organisation.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Amoxicillin, as in the specification's examples.
    pub(crate) fn amoxicillin(quantity: u32) -> NewLineItem {
        NewLineItem {
            code: "39732311000001104".parse().unwrap(),
            description: "Amoxicillin 250mg capsules".into(),
            quantity,
            unit: "capsule".into(),
            dosage: "One capsule three times a day".into(),
        }
    }

    /// A new prescription of `quantities` of amoxicillin for the PDS sandbox's patient.
    pub(crate) fn new_prescription(quantities: &[u32]) -> NewPrescription {
        NewPrescription {
            patient: "9000000009".parse().unwrap(),
            nominated_pharmacy: Some("FCG71".parse().unwrap()),
            items: quantities.iter().map(|&q| amoxicillin(q)).collect(),
        }
    }

    /// The specification's example id, issued by A99968 at time 0.
    pub(crate) fn issued(quantities: &[u32]) -> Prescription {
        Prescription::issue(
            new_prescription(quantities),
            "04F4C2-A99968-7F717P".parse().unwrap(),
            uuid::Uuid::from_u128(7),
            "A99968".parse().unwrap(),
            0,
        )
        .unwrap()
    }

    #[test]
    fn issue_starts_at_to_be_dispensed_version_1() {
        let prescription = issued(&[21, 14]);
        assert_eq!(prescription.status, PrescriptionStatus::ToBeDispensed);
        assert_eq!(prescription.version, 1);
        assert_eq!(prescription.dispenser, None);
        assert!(prescription.history.is_empty());
        assert_eq!(prescription.items.len(), 2);
        assert!(prescription.items.iter().all(|item| item.dispensed == 0));
    }

    #[test]
    fn each_rule_has_its_error() {
        let check = |new: NewPrescription| new.validate();
        assert_eq!(
            check(new_prescription(&[])),
            Err(PrescriptionError::NoItems)
        );
        assert_eq!(
            check(new_prescription(&[1; 5])),
            Err(PrescriptionError::TooManyItems { items: 5 })
        );
        assert!(check(new_prescription(&[1, 1, 1, 1_000_000])).is_ok());
        assert_eq!(
            check(new_prescription(&[1, 0])),
            Err(PrescriptionError::QuantityOutOfRange {
                item: 1,
                quantity: 0
            })
        );
        assert_eq!(
            check(new_prescription(&[1_000_001]))
                .unwrap_err()
                .to_string(),
            "item index 0: quantity 1000001 is outside 1 to 1000000"
        );
        let mut new = new_prescription(&[1, 1, 1]);
        new.items[2].unit.clear();
        assert_eq!(
            check(new.clone()),
            Err(PrescriptionError::EmptyText {
                item: 2,
                field: "unit"
            })
        );
        new.items[2].unit = "capsule".into();
        new.items[1].dosage = "x".repeat(257);
        assert_eq!(
            check(new.clone()).unwrap_err().to_string(),
            "item index 1: dosage has 257 bytes; at most 256 are allowed"
        );
        new.items[1].dosage = "é".repeat(128);
        assert!(check(new).is_ok());
    }

    #[test]
    fn issue_checks_the_rules_and_the_ids_organisation() {
        let id: PrescriptionId = "04F4C2-A99968-7F717P".parse().unwrap();
        let issue = |new, organisation: &str| {
            Prescription::issue(new, id, uuid::Uuid::nil(), organisation.parse().unwrap(), 0)
        };
        assert_eq!(
            issue(new_prescription(&[]), "A99968"),
            Err(PrescriptionError::NoItems)
        );
        assert_eq!(
            issue(new_prescription(&[1]), "A83008")
                .unwrap_err()
                .to_string(),
            "prescription id 04F4C2-A99968-7F717P is not one of A83008's (its organisation part is A99968)"
        );
    }

    #[test]
    fn expiry_is_more_than_180_days_while_not_yet_dispensing() {
        let mut prescription = issued(&[1]);
        prescription.created_ms = 1_000;
        let limit = 1_000 + EXPIRY_MS;
        assert_eq!(
            prescription.effective_status(limit),
            PrescriptionStatus::ToBeDispensed
        );
        assert_eq!(
            prescription.effective_status(limit + 1),
            PrescriptionStatus::Expired
        );
        // A clock behind the issue time does not expire anything.
        assert_eq!(
            prescription.effective_status(0),
            PrescriptionStatus::ToBeDispensed
        );
        prescription.status = PrescriptionStatus::WithDispenserActive;
        assert_eq!(
            prescription.effective_status(u64::MAX),
            PrescriptionStatus::WithDispenserActive
        );
    }

    #[test]
    fn a_broken_invariant_is_named() {
        let mut broken = issued(&[21, 14]);
        broken.validate().expect("as issued");
        broken.items[0].dispensed = 22;
        assert_eq!(
            broken.validate(),
            Err(PrescriptionError::BrokenInvariant(
                "item index 0: 22 dispensed of 21 prescribed".into()
            ))
        );
        broken.items[0].dispensed = 0;
        broken.status = PrescriptionStatus::WithDispenser;
        assert!(broken.validate().is_err());
    }
}
