//! [`super::PatientRecord`]'s layout with every field but the last two read and dropped: tuples
//! stand for the structs (postcard writes both as their fields in order), `&str` for texts.
//! `restriction_reads_what_the_record_holds` keeps it in step with the record.

use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

use crate::pds::values::{Date, OdsCode};

type Period = (Option<Date>, Option<Date>);
/// `HumanName`: use, prefix, given names, family name, suffix, period.
type HumanName<'a> = (
    u32,
    Option<&'a str>,
    Texts<'a>,
    &'a str,
    Option<&'a str>,
    Period,
);
/// `Death`: date, time, notification.
type Death = (Date, Option<u32>, u32);
/// `Address`: use, lines, postcode, period.
type Address<'a> = (u32, Texts<'a>, Option<&'a str>, Period);
/// `ContactPoint`: system, value, use, period.
type ContactPoint<'a> = (u32, &'a str, u32, Period);
type Texts<'a> = Dropped<&'a str>;

#[derive(serde::Deserialize)]
pub(super) struct Patient<'a> {
    _nhs_number: u64,
    _version: u32,
    #[serde(borrow)]
    _names: Dropped<HumanName<'a>>,
    _gender: u32,
    _birth_date: Option<Date>,
    _deceased: Option<Death>,
    #[serde(borrow)]
    _addresses: Dropped<Address<'a>>,
    #[serde(borrow)]
    _telecom: Dropped<ContactPoint<'a>>,
    pub(super) general_practitioner: Option<OdsCode>,
    pub(super) restricted: bool,
}

/// A list whose elements are read, checked for shape, and dropped: nothing is kept.
pub(super) struct Dropped<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Dropped<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(Dropped(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Dropped<T> {
    type Value = Self;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut list: A) -> Result<Self, A::Error> {
        while list.next_element::<T>()?.is_some() {}
        Ok(self)
    }
}
