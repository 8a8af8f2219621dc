//! The patient record's structs read straight into the domain's types
//! ([`super::super::read_fields`]), in the order [`super::PatientRecord`] writes them (the
//! round-trip tests keep the two in step).

use serde::de::SeqAccess;

use super::super::read_fields::{Fields, ReadStruct};
use crate::NhsNumber;
use crate::pds::patient::{Address, ContactPoint, Death, HumanName, Patient, Period};
use crate::pds::values::{Date, OdsCode, Postcode};

impl ReadStruct for Patient {
    const FIELDS: usize = 10;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(Patient {
            nhs_number: fields.next::<NhsNumber>()?,
            version: fields.next()?,
            names: fields.next_list("names")?,
            gender: fields.next_code()?,
            birth_date: fields.next::<Option<Date>>()?,
            deceased: fields.next_optional("deceased: ")?,
            addresses: fields.next_list("addresses")?,
            telecom: fields.next_list("telecom")?,
            general_practitioner: fields.next::<Option<OdsCode>>()?,
            restricted: fields.next()?,
        })
    }
}

impl ReadStruct for HumanName {
    const FIELDS: usize = 6;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(HumanName {
            name_use: fields.next_code()?,
            prefix: fields.next::<Option<String>>()?,
            given: fields.next::<Vec<String>>()?,
            family: fields.next::<String>()?,
            suffix: fields.next::<Option<String>>()?,
            period: read_period(fields)?,
        })
    }
}

impl ReadStruct for Death {
    const FIELDS: usize = 3;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(Death {
            date: fields.next::<Date>()?,
            time_s: fields.next::<Option<u32>>()?,
            notification: fields.next_code()?,
        })
    }
}

impl ReadStruct for Address {
    const FIELDS: usize = 4;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(Address {
            address_use: fields.next_code()?,
            lines: fields.next::<Vec<String>>()?,
            postcode: fields.next::<Option<Postcode>>()?,
            period: read_period(fields)?,
        })
    }
}

impl ReadStruct for ContactPoint {
    const FIELDS: usize = 4;

    fn read<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Self, A::Error> {
        Ok(ContactPoint {
            system: fields.next_code()?,
            value: fields.next::<String>()?,
            contact_use: fields.next_code()?,
            period: read_period(fields)?,
        })
    }
}

/// `Period`, a struct of its two ends (either may be open): no code in it to refuse.
#[inline]
fn read_period<'de, A: SeqAccess<'de>>(fields: &mut Fields<'_, A>) -> Result<Period, A::Error> {
    let (start, end) = fields.next::<(Option<Date>, Option<Date>)>()?;
    Ok(Period { start, end })
}
