//! PDS's messages: a patient record, a death and a search, as they travel.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::pds::{patient, search};

use super::codes::{CodeList, FromWireIndex};
use super::invalid_field::Checked;
use super::invalid_field::{Within, optional};
use super::list::List;
use super::values::{self, Date, text};

/// `Patient`: a whole demographic record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Patient<'a> {
    nhs_number: u64,
    version: u32,
    names: List<'a, patient::HumanName, HumanName<'a>>,
    gender: u32,
    birth_date: Option<Date>,
    deceased: Option<Death>,
    addresses: List<'a, patient::Address, Address<'a>>,
    telecom: List<'a, patient::ContactPoint, ContactPoint<'a>>,
    general_practitioner: Option<Cow<'a, str>>,
    restricted: bool,
}

impl<'a> From<&'a patient::Patient> for Patient<'a> {
    fn from(patient: &'a patient::Patient) -> Self {
        Self {
            nhs_number: patient.nhs_number.value(),
            version: patient.version,
            names: List::Domain(&patient.names),
            gender: patient.gender.index(),
            birth_date: patient.birth_date.map(Date::from),
            deceased: patient.deceased.map(Death::from),
            addresses: List::Domain(&patient.addresses),
            telecom: List::Domain(&patient.telecom),
            general_practitioner: patient.general_practitioner.as_ref().map(text),
            restricted: patient.restricted,
        }
    }
}

impl Patient<'_> {
    pub(super) fn into_domain(self) -> Checked<patient::Patient> {
        Ok(patient::Patient {
            nhs_number: values::nhs_number(self.nhs_number).at("nhs_number")?,
            version: self.version,
            names: self.names.into_domain("names", HumanName::into_domain)?,
            gender: patient::Gender::from_index(self.gender).at("gender")?,
            birth_date: optional(self.birth_date, Date::into_domain).at("birth_date")?,
            deceased: optional(self.deceased, Death::into_domain).at("deceased")?,
            addresses: self
                .addresses
                .into_domain("addresses", Address::into_domain)?,
            telecom: self
                .telecom
                .into_domain("telecom", ContactPoint::into_domain)?,
            general_practitioner: optional(self.general_practitioner, values::ods_code)
                .at("general_practitioner")?,
            restricted: self.restricted,
        })
    }
}

/// `HumanName`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HumanName<'a> {
    name_use: u32,
    prefix: Option<Cow<'a, str>>,
    given: Cow<'a, [String]>,
    family: Cow<'a, str>,
    suffix: Option<Cow<'a, str>>,
    period: Period,
}

impl<'a> From<&'a patient::HumanName> for HumanName<'a> {
    fn from(name: &'a patient::HumanName) -> Self {
        Self {
            name_use: name.name_use.index(),
            prefix: name.prefix.as_ref().map(text),
            given: Cow::Borrowed(&name.given),
            family: text(&name.family),
            suffix: name.suffix.as_ref().map(text),
            period: name.period.into(),
        }
    }
}

impl HumanName<'_> {
    fn into_domain(self) -> Checked<patient::HumanName> {
        Ok(patient::HumanName {
            name_use: patient::NameUse::from_index(self.name_use).at("name_use")?,
            prefix: self.prefix.map(Cow::into_owned),
            given: self.given.into_owned(),
            family: self.family.into_owned(),
            suffix: self.suffix.map(Cow::into_owned),
            period: self.period.into_domain().at("period")?,
        })
    }
}

/// `Period`: either end may be open.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Period {
    start: Option<Date>,
    end: Option<Date>,
}

impl From<patient::Period> for Period {
    fn from(period: patient::Period) -> Self {
        Self {
            start: period.start.map(Date::from),
            end: period.end.map(Date::from),
        }
    }
}

impl Period {
    fn into_domain(self) -> Checked<patient::Period> {
        Ok(patient::Period {
            start: optional(self.start, Date::into_domain).at("start")?,
            end: optional(self.end, Date::into_domain).at("end")?,
        })
    }
}

/// `Death`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct Death {
    date: Date,
    time_s: Option<u32>,
    notification: u32,
}

impl From<patient::Death> for Death {
    fn from(death: patient::Death) -> Self {
        Self {
            date: death.date.into(),
            time_s: death.time_s,
            notification: death.notification.index(),
        }
    }
}

impl Death {
    pub(super) fn into_domain(self) -> Checked<patient::Death> {
        Ok(patient::Death {
            date: self.date.into_domain().at("date")?,
            time_s: self.time_s,
            notification: patient::DeathNotificationStatus::from_index(self.notification)
                .at("notification")?,
        })
    }
}

/// `Address`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Address<'a> {
    address_use: u32,
    lines: Cow<'a, [String]>,
    postcode: Option<Cow<'a, str>>,
    period: Period,
}

impl<'a> From<&'a patient::Address> for Address<'a> {
    fn from(address: &'a patient::Address) -> Self {
        Self {
            address_use: address.address_use.index(),
            lines: Cow::Borrowed(&address.lines),
            postcode: address
                .postcode
                .as_ref()
                .map(|postcode| text(postcode.as_str())),
            period: address.period.into(),
        }
    }
}

impl Address<'_> {
    fn into_domain(self) -> Checked<patient::Address> {
        Ok(patient::Address {
            address_use: patient::AddressUse::from_index(self.address_use).at("address_use")?,
            lines: self.lines.into_owned(),
            postcode: optional(self.postcode, values::postcode).at("postcode")?,
            period: self.period.into_domain().at("period")?,
        })
    }
}

/// `ContactPoint`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ContactPoint<'a> {
    system: u32,
    value: Cow<'a, str>,
    contact_use: u32,
    period: Period,
}

impl<'a> From<&'a patient::ContactPoint> for ContactPoint<'a> {
    fn from(contact: &'a patient::ContactPoint) -> Self {
        Self {
            system: contact.system.index(),
            value: text(&contact.value),
            contact_use: contact.contact_use.index(),
            period: contact.period.into(),
        }
    }
}

impl ContactPoint<'_> {
    fn into_domain(self) -> Checked<patient::ContactPoint> {
        Ok(patient::ContactPoint {
            system: patient::ContactSystem::from_index(self.system).at("system")?,
            value: self.value.into_owned(),
            contact_use: patient::ContactUse::from_index(self.contact_use).at("contact_use")?,
            period: self.period.into_domain().at("period")?,
        })
    }
}

/// `SearchQuery`: the criteria and options of a trace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct SearchQuery<'a> {
    family: Option<Cow<'a, str>>,
    given: Option<Cow<'a, str>>,
    gender: Option<u32>,
    birth_date: Option<DateRange>,
    death_date: Option<DateRange>,
    postcode: Option<PostcodePattern<'a>>,
    general_practitioner: Option<Cow<'a, str>>,
    fuzzy: bool,
    exact_match: bool,
    history: bool,
    max_results: u8,
}

impl<'a> From<&'a search::SearchQuery> for SearchQuery<'a> {
    fn from(query: &'a search::SearchQuery) -> Self {
        Self {
            family: query.family.as_ref().map(|name| text(name.as_str())),
            given: query.given.as_ref().map(|name| text(name.as_str())),
            gender: query.gender.map(|gender| gender.index()),
            birth_date: query.birth_date.map(DateRange::from),
            death_date: query.death_date.map(DateRange::from),
            postcode: query.postcode.as_ref().map(PostcodePattern::from),
            general_practitioner: query.general_practitioner.as_ref().map(text),
            fuzzy: query.fuzzy,
            exact_match: query.exact_match,
            history: query.history,
            max_results: query.max_results,
        }
    }
}

impl SearchQuery<'_> {
    pub(super) fn into_domain(self) -> Checked<search::SearchQuery> {
        let pattern = |name: Cow<'_, str>| search::NamePattern::from(name.into_owned());
        Ok(search::SearchQuery {
            family: self.family.map(pattern),
            given: self.given.map(pattern),
            gender: optional(self.gender, patient::Gender::from_index).at("gender")?,
            birth_date: optional(self.birth_date, DateRange::into_domain).at("birth_date")?,
            death_date: optional(self.death_date, DateRange::into_domain).at("death_date")?,
            postcode: optional(self.postcode, PostcodePattern::into_domain).at("postcode")?,
            general_practitioner: optional(self.general_practitioner, values::ods_code)
                .at("general_practitioner")?,
            fuzzy: self.fuzzy,
            exact_match: self.exact_match,
            history: self.history,
            max_results: self.max_results,
        })
    }
}

/// `DateRange`: inclusive.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct DateRange {
    from: Date,
    to: Date,
}

impl From<search::DateRange> for DateRange {
    fn from(range: search::DateRange) -> Self {
        Self {
            from: range.from.into(),
            to: range.to.into(),
        }
    }
}

impl DateRange {
    fn into_domain(self) -> Checked<search::DateRange> {
        Ok(search::DateRange {
            from: self.from.into_domain().at("from")?,
            to: self.to.into_domain().at("to")?,
        })
    }
}

/// `PostcodePattern`: a whole postcode, or a prefix (checked by the search rules).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum PostcodePattern<'a> {
    Exact(Cow<'a, str>),
    Prefix(Cow<'a, str>),
}

impl<'a> From<&'a search::PostcodePattern> for PostcodePattern<'a> {
    fn from(pattern: &'a search::PostcodePattern) -> Self {
        match pattern {
            search::PostcodePattern::Exact(postcode) => Self::Exact(text(postcode.as_str())),
            search::PostcodePattern::Prefix(prefix) => Self::Prefix(text(prefix)),
        }
    }
}

impl PostcodePattern<'_> {
    fn into_domain(self) -> Checked<search::PostcodePattern> {
        Ok(match self {
            Self::Exact(postcode) => search::PostcodePattern::Exact(values::postcode(postcode)?),
            Self::Prefix(prefix) => search::PostcodePattern::Prefix(prefix.into_owned()),
        })
    }
}
