//! Kind 1, a patient's demographic record: the payload's types at version 1, field for field as
//! `core/RECORDS.md` gives them, written from the domain's [`Patient`] and read back into it
//! (so a change to the domain's types cannot change what is stored, nor how a year of stored
//! records is read).
//!
//! The types here are the written form, borrowing the domain record's texts (no copy);
//! [`read`] reads the same form straight into the domain's types, and [`passed_over`] reads
//! only what the withholding of a restricted patient's practice needs.

use std::borrow::Cow;

use serde::Serialize;
use spine_domain::codes::CodeList;

use super::stored_list::StoredList;
use super::{MalformedRecord, versioned};
use crate::NhsNumber;
use crate::pds::patient::{self as domain, Patient};
use crate::pds::values::{Date, OdsCode, Postcode};
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(patient: &Patient) -> Vec<u8> {
    PatientRecord::from(patient).encode()
}

/// The record in `payload`, checked against the record's rules ([`Patient::validate`]).
pub fn decode(payload: &[u8]) -> Result<Patient, MalformedRecord> {
    super::read_into(
        RecordKind::Patient,
        PAYLOAD_VERSION,
        payload,
        |patient: &Patient| patient.validate().map_err(|error| error.to_string()),
    )
}

/// What the withholding of a restricted patient's practice needs of their record
/// (`shard/restricted.rs`): whether it is restricted, and the practice.
#[derive(Debug, PartialEq, Eq)]
pub struct Restriction {
    /// Whether the record is restricted.
    pub restricted: bool,
    /// The registered practice, if any.
    pub general_practitioner: Option<OdsCode>,
}

/// The [`Restriction`] of the record in `payload`, read without building the record: every
/// reply about a patient's summary, referral or transfer asks for it, after a full read of the
/// same record for the access check, and the fields before the two it needs are passed over
/// with their texts borrowed, never allocated. The record's rules are not checked here (the
/// full read checks them); its shape is, as strictly as [`decode`] checks it.
pub fn restriction(payload: &[u8]) -> Result<Restriction, MalformedRecord> {
    let shape: passed_over::Patient<'_> = versioned::decode_exact(PAYLOAD_VERSION, payload)
        .map_err(|reason| MalformedRecord::of(RecordKind::Patient, reason))?;
    Ok(Restriction {
        restricted: shape.restricted,
        general_practitioner: shape.general_practitioner,
    })
}

mod passed_over;
mod read;

/// `Patient`, the payload after its version byte, built from the domain's record to write it
/// (borrowing its texts); [`read`] reads it straight into the domain's.
#[derive(Serialize)]
#[serde(rename = "Patient")]
pub struct PatientRecord<'a> {
    nhs_number: NhsNumber,
    version: u32,
    names: StoredList<'a, domain::HumanName, HumanName<'a>>,
    gender: u32,
    birth_date: Option<Date>,
    deceased: Option<Death>,
    addresses: StoredList<'a, domain::Address, Address<'a>>,
    telecom: StoredList<'a, domain::ContactPoint, ContactPoint<'a>>,
    general_practitioner: Option<Cow<'a, OdsCode>>,
    restricted: bool,
}

impl<'a> From<&'a Patient> for PatientRecord<'a> {
    fn from(patient: &'a Patient) -> Self {
        Self {
            nhs_number: patient.nhs_number,
            version: patient.version,
            names: StoredList::Domain(&patient.names),
            gender: patient.gender.index(),
            birth_date: patient.birth_date,
            deceased: patient.deceased.map(Death::from),
            addresses: StoredList::Domain(&patient.addresses),
            telecom: StoredList::Domain(&patient.telecom),
            general_practitioner: patient.general_practitioner.as_ref().map(Cow::Borrowed),
            restricted: patient.restricted,
        }
    }
}

impl PatientRecord<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }
}

/// `HumanName`.
#[derive(Serialize)]
struct HumanName<'a> {
    name_use: u32,
    prefix: Option<Cow<'a, str>>,
    given: Cow<'a, [String]>,
    family: Cow<'a, str>,
    suffix: Option<Cow<'a, str>>,
    period: Period,
}

impl<'a> From<&'a domain::HumanName> for HumanName<'a> {
    fn from(name: &'a domain::HumanName) -> Self {
        Self {
            name_use: name.name_use.index(),
            prefix: name.prefix.as_deref().map(Cow::Borrowed),
            given: Cow::Borrowed(&name.given),
            family: Cow::Borrowed(&name.family),
            suffix: name.suffix.as_deref().map(Cow::Borrowed),
            period: name.period.into(),
        }
    }
}

/// `Period`: either end may be open.
#[derive(Clone, Copy, Serialize)]
struct Period {
    start: Option<Date>,
    end: Option<Date>,
}

impl From<domain::Period> for Period {
    fn from(period: domain::Period) -> Self {
        Self {
            start: period.start,
            end: period.end,
        }
    }
}

/// `Death`.
#[derive(Clone, Copy, Serialize)]
struct Death {
    date: Date,
    time_s: Option<u32>,
    notification: u32,
}

impl From<domain::Death> for Death {
    fn from(death: domain::Death) -> Self {
        Self {
            date: death.date,
            time_s: death.time_s,
            notification: death.notification.index(),
        }
    }
}

/// `Address`.
#[derive(Serialize)]
struct Address<'a> {
    address_use: u32,
    lines: Cow<'a, [String]>,
    postcode: Option<Cow<'a, Postcode>>,
    period: Period,
}

impl<'a> From<&'a domain::Address> for Address<'a> {
    fn from(address: &'a domain::Address) -> Self {
        Self {
            address_use: address.address_use.index(),
            lines: Cow::Borrowed(&address.lines),
            postcode: address.postcode.as_ref().map(Cow::Borrowed),
            period: address.period.into(),
        }
    }
}

/// `ContactPoint`.
#[derive(Serialize)]
struct ContactPoint<'a> {
    system: u32,
    value: Cow<'a, str>,
    contact_use: u32,
    period: Period,
}

impl<'a> From<&'a domain::ContactPoint> for ContactPoint<'a> {
    fn from(contact: &'a domain::ContactPoint) -> Self {
        Self {
            system: contact.system.index(),
            value: Cow::Borrowed(&contact.value),
            contact_use: contact.contact_use.index(),
            period: contact.period.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pds::synthetic::{nhs_numbers, patient_at};

    #[test]
    fn synthetic_records_of_every_shape_round_trip() {
        for (index, nhs_number) in nhs_numbers().take(2_000).enumerate() {
            let patient = patient_at(11, index as u64, nhs_number);
            let payload = encode(&patient);
            assert_eq!(payload[0], PAYLOAD_VERSION);
            assert_eq!(decode(&payload), Ok(patient));
        }
    }

    /// `patient` with each optional field present or absent by `index`, so that a run of
    /// indexes meets every combination.
    fn with_optional_fields_varied(mut patient: Patient, index: usize) -> Patient {
        let date = |text: &str| text.parse::<Date>().expect("a date");
        let name = &mut patient.names[0];
        if index.is_multiple_of(3) {
            name.prefix = Some("Dr".into());
            name.suffix = Some("OBE".into());
            name.given.push("Ann".into());
            name.period.start = Some(date("2001-02-03"));
        }
        if index.is_multiple_of(5) {
            patient.deceased = Some(domain::Death {
                date: date("2026-11-30"),
                time_s: (index.is_multiple_of(10)).then_some(3_600),
                notification: domain::DeathNotificationStatus::Formal,
            });
        }
        if index.is_multiple_of(7) {
            patient.general_practitioner = None;
        }
        if index.is_multiple_of(4) {
            patient.addresses[0].postcode = None;
            patient.addresses[0].period.end = Some(date("2020-01-01"));
            patient.telecom.clear();
        }
        if index.is_multiple_of(11) {
            patient.birth_date = None;
            patient.addresses.clear();
        }
        assert_eq!(
            decode(&encode(&patient)),
            Ok(patient.clone()),
            "still valid"
        );
        patient
    }

    #[test]
    fn restriction_reads_what_the_record_holds() {
        let mut restricted = 0;
        for (index, nhs_number) in nhs_numbers().take(2_000).enumerate() {
            let mut patient =
                with_optional_fields_varied(patient_at(13, index as u64, nhs_number), index);
            // Every other record restricted, so that both flags meet every shape.
            patient.restricted = index.is_multiple_of(2);
            restricted += usize::from(patient.restricted);
            let payload = encode(&patient);
            assert_eq!(
                restriction(&payload),
                Ok(Restriction {
                    restricted: patient.restricted,
                    general_practitioner: patient.general_practitioner.clone(),
                }),
                "{patient:?}"
            );
            assert!(restriction(&payload[..payload.len() - 1]).is_err());
        }
        assert_eq!(restricted, 1_000);
        let mut longer = encode(&patient_at(13, 1, nhs_numbers().next().expect("a number")));
        longer.push(0);
        assert_eq!(
            restriction(&longer)
                .expect_err("a byte too many")
                .to_string(),
            "stored patient record is malformed: 1 bytes after the record"
        );
    }

    #[test]
    fn damage_is_refused_and_named() {
        let patient = patient_at(11, 3, nhs_numbers().next().expect("a number"));
        let payload = encode(&patient);
        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert_eq!(message(&[]), "stored patient record is malformed: empty");
        assert_eq!(
            message(&[9]),
            "stored patient record is malformed: unknown encoding version 9"
        );
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut longer = payload.clone();
        longer.push(0);
        assert_eq!(
            message(&longer),
            "stored patient record is malformed: 1 bytes after the record"
        );
    }

    #[test]
    fn a_code_past_its_list_or_a_broken_rule_is_damage() {
        let mut patient = patient_at(11, 5, nhs_numbers().next().expect("a number"));
        patient.names.truncate(1);
        let mut record = PatientRecord::from(&patient);
        record.gender = 4;
        let payload = record.encode();
        assert_eq!(
            decode(&payload).expect_err("no gender 4").to_string(),
            "stored patient record is malformed: gender: 4 is not one of 0 Male, 1 Female, \
             2 Other, 3 Unknown"
        );

        // The first name's use is the byte after the version byte, the NHS number, the
        // record's version and the list's count (one name).
        let mut payload = encode(&patient);
        let before =
            postcard::to_allocvec(&(patient.nhs_number.value(), patient.version)).expect("encodes");
        let at = 1 + before.len() + 1;
        let name_use = u8::try_from(patient.names[0].name_use.index()).expect("one byte");
        assert_eq!(payload[at], name_use, "the first name's use");
        payload[at] = 7;
        assert!(
            decode(&payload)
                .expect_err("no name use 7")
                .to_string()
                .ends_with("names[0]: name_use: 7 is not one of 0 Usual, 1 Temp, 2 Nickname, 3 Old, 4 Maiden"),
        );

        patient.names.clear();
        assert_eq!(
            decode(&encode(&patient)).expect_err("no name").to_string(),
            "stored patient record is malformed: a patient record needs at least one name"
        );
    }
}
