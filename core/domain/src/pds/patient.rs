//! A patient's demographic record, as the Personal Demographics Service holds it, with the
//! specification's limits and the restricted-patient rule (its payload in the log is
//! `spine-core`'s, `shard/records/patient/`).
//!
//! Field names follow the PDS FHIR specification (`../shared/specs/pds/`): names with a `use`,
//! `given` (at most 5, each at most 35 characters) and `family` (at most 35); gender; birth
//! date; deceased date with the death notification status; addresses (at most 5 lines) with
//! postcode and period; telecom; at most one general practitioner (an ODS code); the restricted
//! flag (security code `R`); and the version.

use serde::{Deserialize, Serialize};

use super::nhs_number::NhsNumber;
use super::values::{Date, OdsCode, Postcode};

/// Given names in one name, at most (PDS `HumanName.given` maxItems).
pub const GIVEN_NAMES_MAX: usize = 5;
/// Characters in a given or family name, at most (PDS maxLength).
pub const NAME_CHARS_MAX: usize = 35;
/// Lines in an address, at most (PDS `Address.line` maxItems).
pub const ADDRESS_LINES_MAX: usize = 5;
/// Characters in an address line, prefix, suffix or telecom value, at most. The specification
/// sets none; a bound keeps every record small.
pub const TEXT_CHARS_MAX: usize = 128;
/// Names, addresses or telecom entries in one record, at most (a bound on record size).
pub const ENTRIES_MAX: usize = 16;

/// How a name is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameUse {
    /// The name the patient uses now.
    Usual,
    /// A temporary name.
    Temp,
    /// A nickname.
    Nickname,
    /// A previous name.
    Old,
    /// A maiden name.
    Maiden,
}

/// A period; either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// First day, if known.
    pub start: Option<Date>,
    /// Last day, if it has ended.
    pub end: Option<Date>,
}

/// One of the patient's names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HumanName {
    /// How the name is used.
    pub name_use: NameUse,
    /// Title, such as `Mrs`.
    pub prefix: Option<String>,
    /// Given names, first first.
    pub given: Vec<String>,
    /// Family name.
    pub family: String,
    /// Suffix, such as `MBE`.
    pub suffix: Option<String>,
    /// When the name was in use.
    pub period: Period,
}

/// Administrative gender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Other.
    Other,
    /// Not known.
    Unknown,
}

/// How an address is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddressUse {
    /// Home address.
    Home,
    /// Work address.
    Work,
    /// Temporary address.
    Temp,
    /// Billing address.
    Billing,
}

/// A postal address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// How it is used.
    pub address_use: AddressUse,
    /// Premises, street, locality, town, county: at most 5 lines.
    pub lines: Vec<String>,
    /// The postcode, if the address has one.
    pub postcode: Option<Postcode>,
    /// When the patient lived there; a previous address has an end.
    pub period: Period,
}

/// A means of contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactSystem {
    /// Telephone.
    Phone,
    /// Fax.
    Fax,
    /// Email.
    Email,
    /// Something else.
    Other,
}

/// Where a contact point reaches the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactUse {
    /// At home.
    Home,
    /// At work.
    Work,
    /// Temporarily.
    Temp,
    /// On a mobile device.
    Mobile,
}

/// A telephone number, email address or similar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPoint {
    /// What kind.
    pub system: ContactSystem,
    /// The number or address.
    pub value: String,
    /// Where it reaches the patient.
    pub contact_use: ContactUse,
    /// When it is valid.
    pub period: Period,
}

/// How a death was notified (PDS `deathNotificationStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeathNotificationStatus {
    /// Code `1`: notified by a local NHS organisation such as a GP or trust.
    Informal,
    /// Code `2`: notified by the Registrar of Deaths.
    Formal,
}

/// The patient's death, as notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Death {
    /// Date of death.
    pub date: Date,
    /// Time of death in seconds after midnight (UTC), if known.
    pub time_s: Option<u32>,
    /// How the death was notified.
    pub notification: DeathNotificationStatus,
}

/// A patient's demographic record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    /// The patient's NHS number; the record's key.
    pub nhs_number: NhsNumber,
    /// Version, incremented by every change; updates must name the version they change.
    pub version: u32,
    /// Names: at least one, and at most one in `Usual` use.
    pub names: Vec<HumanName>,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth.
    pub birth_date: Option<Date>,
    /// Death, once notified.
    pub deceased: Option<Death>,
    /// Current and previous addresses.
    pub addresses: Vec<Address>,
    /// Telephone numbers and email addresses.
    pub telecom: Vec<ContactPoint>,
    /// The registered GP practice.
    pub general_practitioner: Option<OdsCode>,
    /// A restricted ("sensitive") record, security code `R`: its address, telecom and GP practice
    /// never leave the core.
    pub restricted: bool,
}

/// Why a record breaks the specification's rules, or bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatientError {
    /// A record needs at least one name.
    #[error("a patient record needs at least one name")]
    NoName,
    /// More than one name in `Usual` use.
    #[error("a patient record may have only one usual name")]
    SeveralUsualNames,
    /// Too many entries in a list.
    #[error("{field} has {count} entries; at most {max} are allowed")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// Entries given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A text field is too long.
    #[error("{field} is {chars} characters long; at most {max} are allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Characters given.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A text field that must have content is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A period ends before it starts.
    #[error("{field} period ends before it starts")]
    PeriodBackwards {
        /// Which field.
        field: &'static str,
    },
    /// The date of death is before the date of birth.
    #[error("date of death is before the date of birth")]
    DeathBeforeBirth,
    /// A time of death past the end of the day.
    #[error("time of death is past the end of the day")]
    TimeOutOfDay,
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), PatientError> {
    // Characters never outnumber bytes: most texts pass without being counted.
    if !text.is_empty() && text.len() <= max {
        return Ok(());
    }
    let chars = text.chars().count();
    if chars == 0 {
        return Err(PatientError::Empty { field });
    }
    if chars > max {
        return Err(PatientError::TooLong { field, chars, max });
    }
    Ok(())
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), PatientError> {
    if count > max {
        return Err(PatientError::TooMany { field, count, max });
    }
    Ok(())
}

fn check_period(field: &'static str, period: &Period) -> Result<(), PatientError> {
    match (period.start, period.end) {
        (Some(start), Some(end)) if end < start => Err(PatientError::PeriodBackwards { field }),
        _ => Ok(()),
    }
}

impl HumanName {
    fn validate(&self) -> Result<(), PatientError> {
        check_count("name.given", self.given.len(), GIVEN_NAMES_MAX)?;
        for given in &self.given {
            check_text("name.given", given, NAME_CHARS_MAX)?;
        }
        check_text("name.family", &self.family, NAME_CHARS_MAX)?;
        for (field, text) in [("name.prefix", &self.prefix), ("name.suffix", &self.suffix)] {
            if let Some(text) = text {
                check_text(field, text, TEXT_CHARS_MAX)?;
            }
        }
        check_period("name", &self.period)
    }
}

impl Patient {
    /// Checks the specification's rules and this project's bounds.
    pub fn validate(&self) -> Result<(), PatientError> {
        if self.names.is_empty() {
            return Err(PatientError::NoName);
        }
        if self
            .names
            .iter()
            .filter(|name| name.name_use == NameUse::Usual)
            .count()
            > 1
        {
            return Err(PatientError::SeveralUsualNames);
        }
        check_count("name", self.names.len(), ENTRIES_MAX)?;
        self.names.iter().try_for_each(HumanName::validate)?;
        check_count("address", self.addresses.len(), ENTRIES_MAX)?;
        for address in &self.addresses {
            check_count("address.line", address.lines.len(), ADDRESS_LINES_MAX)?;
            for line in &address.lines {
                check_text("address.line", line, TEXT_CHARS_MAX)?;
            }
            check_period("address", &address.period)?;
        }
        check_count("telecom", self.telecom.len(), ENTRIES_MAX)?;
        for contact in &self.telecom {
            check_text("telecom.value", &contact.value, TEXT_CHARS_MAX)?;
            check_period("telecom", &contact.period)?;
        }
        if let Some(death) = &self.deceased {
            if self.birth_date.is_some_and(|birth| death.date < birth) {
                return Err(PatientError::DeathBeforeBirth);
            }
            if death.time_s.is_some_and(|seconds| seconds >= 86_400) {
                return Err(PatientError::TimeOutOfDay);
            }
        }
        Ok(())
    }

    /// The name in `Usual` use, or else the first.
    pub fn usual_name(&self) -> Option<&HumanName> {
        self.names
            .iter()
            .find(|name| name.name_use == NameUse::Usual)
            .or(self.names.first())
    }

    /// The record as it may leave the core: for a restricted patient, without address,
    /// telecom and GP practice (they could lead to where the patient is).
    pub fn disclosable(&self) -> Patient {
        self.clone().into_disclosable()
    }

    /// [`Patient::disclosable`], consuming the record (no copy).
    pub fn into_disclosable(mut self) -> Patient {
        if self.restricted {
            self.addresses.clear();
            self.telecom.clear();
            self.general_practitioner = None;
        }
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The PDS sandbox's full record (9000000009), in this model.
    pub(crate) fn jane_smith() -> Patient {
        Patient {
            nhs_number: "9000000009".parse().unwrap(),
            version: 2,
            names: vec![HumanName {
                name_use: NameUse::Usual,
                prefix: Some("Mrs".into()),
                given: vec!["Jane".into()],
                family: "Smith".into(),
                suffix: Some("MBE".into()),
                period: Period {
                    start: Some("2020-01-01".parse().unwrap()),
                    end: None,
                },
            }],
            gender: Gender::Female,
            birth_date: Some("2010-10-22".parse().unwrap()),
            deceased: None,
            addresses: vec![Address {
                address_use: AddressUse::Home,
                lines: vec![
                    "1 Trevelyan Square".into(),
                    "Boar Lane".into(),
                    "City Centre".into(),
                    "Leeds".into(),
                    "West Yorkshire".into(),
                ],
                postcode: Some("LS1 6AE".parse().unwrap()),
                period: Period {
                    start: Some("2020-01-01".parse().unwrap()),
                    end: None,
                },
            }],
            telecom: vec![ContactPoint {
                system: ContactSystem::Phone,
                value: "01632960587".into(),
                contact_use: ContactUse::Home,
                period: Period::default(),
            }],
            general_practitioner: Some("Y12345".parse().unwrap()),
            restricted: false,
        }
    }

    #[test]
    fn the_sandbox_record_keeps_the_rules() {
        jane_smith().validate().unwrap();
    }

    #[test]
    fn restricted_records_never_disclose_where_the_patient_is() {
        let mut patient = jane_smith();
        assert_eq!(patient.disclosable(), patient);
        patient.restricted = true;
        let view = patient.disclosable();
        assert!(
            view.addresses.is_empty()
                && view.telecom.is_empty()
                && view.general_practitioner.is_none()
        );
        assert_eq!(view.names, patient.names);
        assert_eq!(view.birth_date, patient.birth_date);
    }

    #[test]
    fn the_specification_limits_give_specific_errors() {
        let mut patient = jane_smith();
        patient.names[0].given = vec!["A".into(); 6];
        assert_eq!(
            patient.validate(),
            Err(PatientError::TooMany {
                field: "name.given",
                count: 6,
                max: 5
            })
        );
        let mut patient = jane_smith();
        patient.names[0].family = "X".repeat(36);
        assert_eq!(
            patient.validate(),
            Err(PatientError::TooLong {
                field: "name.family",
                chars: 36,
                max: 35
            })
        );
        let mut patient = jane_smith();
        patient.names.clear();
        assert_eq!(patient.validate(), Err(PatientError::NoName));
        let mut patient = jane_smith();
        patient.names.push(patient.names[0].clone());
        assert_eq!(patient.validate(), Err(PatientError::SeveralUsualNames));
        let mut patient = jane_smith();
        patient.addresses[0].lines.push("Sixth line".into());
        assert_eq!(
            patient.validate(),
            Err(PatientError::TooMany {
                field: "address.line",
                count: 6,
                max: 5
            })
        );
        let mut patient = jane_smith();
        patient.deceased = Some(Death {
            date: "2001-01-01".parse().unwrap(),
            time_s: None,
            notification: DeathNotificationStatus::Formal,
        });
        assert_eq!(patient.validate(), Err(PatientError::DeathBeforeBirth));
        let mut patient = jane_smith();
        patient.addresses[0].period.end = Some("2019-12-31".parse().unwrap());
        assert_eq!(
            patient.validate(),
            Err(PatientError::PeriodBackwards { field: "address" })
        );
    }
}
