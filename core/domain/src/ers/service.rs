//! Services a patient can be referred to: their ids, specialties, clinic types and the
//! directory entry that ties a service to its provider.
//!
//! Specialties (`CARDIOLOGY`, `UROLOGY`) and clinic types (`HEART_FAILURE`) are reference data
//! in the specification (code systems `SPECIALTY` and `CLINIC-TYPE`, fetched with A004), not
//! fixed lists, so they are kept as validated codes rather than enums: a new code in the
//! reference data needs no new release.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::pds::values::OdsCode;

/// Longest specialty or clinic type code accepted. The specification sets none; the longest
/// codes in its reference data are well under this.
pub const CODE_BYTES_MAX: usize = 64;
/// Longest service name accepted, in characters.
pub const SERVICE_NAME_CHARS_MAX: usize = 200;

/// Why a service id, code or service entry is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Not a service id (digits only, at most 4294967295, as `11000`).
    #[error("{0:?} is not an e-RS service id (digits only, at most 4294967295)")]
    Id(String),
    /// Not a reference-data code of the given kind.
    #[error(
        "{text:?} is not an e-RS {kind} code (1 to {CODE_BYTES_MAX} upper-case letters, \
         digits and underscores, starting with a letter)"
    )]
    Code {
        /// `specialty` or `clinic type`.
        kind: &'static str,
        /// The text given.
        text: String,
    },
    /// A text field that must have content is empty or only spaces.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
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
    /// A text field holds a control character (a line break, for example), which no name has.
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// Which field.
        field: &'static str,
    },
}

/// The id e-RS gives a service (`11000` in the specification's examples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceId(pub u32);

impl FromStr for ServiceId {
    type Err = ServiceError;

    /// Digits only: `u32`'s own parser would also take a leading `+`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::Id(text.to_owned()));
        }
        text.parse()
            .map(Self)
            .map_err(|_| ServiceError::Id(text.to_owned()))
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether `text` has the shape of a reference-data code: `[A-Z][A-Z0-9_]*`, bounded.
fn is_code(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=CODE_BYTES_MAX).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A validated reference-data code type: parsing checks the shape, serde goes through parsing.
macro_rules! reference_code {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        crate::serialize_as_str::serialize_as_str!($name);

        impl $name {
            /// The code as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ServiceError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.to_owned().try_into()
            }
        }

        impl TryFrom<String> for $name {
            type Error = ServiceError;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                if !is_code(&text) {
                    return Err(ServiceError::Code { kind: $kind, text });
                }
                Ok(Self(text))
            }
        }

        impl From<$name> for String {
            fn from(code: $name) -> Self {
                code.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

reference_code!(
    /// A specialty code from the `SPECIALTY` code system (`CARDIOLOGY`, `UROLOGY`).
    Specialty,
    "specialty"
);

reference_code!(
    /// A clinic type code from the `CLINIC-TYPE` code system (`HEART_FAILURE`), which narrows
    /// a specialty.
    ClinicType,
    "clinic type"
);

/// A directly bookable service: what a slot belongs to and a shortlist names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service's id.
    pub id: ServiceId,
    /// Its name as patients see it (`Forthright Cardiology Business Service`).
    pub name: String,
    /// The organisation that provides it (an NHS trust's ODS code, for example `R69`).
    pub provider: OdsCode,
    /// Its specialty.
    pub specialty: Specialty,
    /// Its clinic type within the specialty.
    pub clinic_type: ClinicType,
}

/// Checks that a name has content, no control characters and at most `max` characters.
fn check_name(field: &'static str, text: &str, max: usize) -> Result<(), ServiceError> {
    if text.trim().is_empty() {
        return Err(ServiceError::Empty { field });
    }
    if text.chars().any(char::is_control) {
        return Err(ServiceError::ControlCharacter { field });
    }
    // Characters never outnumber bytes: most names pass without being counted.
    if text.len() > max {
        let chars = text.chars().count();
        if chars > max {
            return Err(ServiceError::TooLong { field, chars, max });
        }
    }
    Ok(())
}

impl Service {
    /// Checks the fields the types do not: the name's length and content.
    pub fn validate(&self) -> Result<(), ServiceError> {
        check_name("service.name", &self.name, SERVICE_NAME_CHARS_MAX)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cardiology() -> Service {
        Service {
            id: ServiceId(11000),
            name: "Forthright Cardiology Business Service".into(),
            provider: "R69".parse().unwrap(),
            specialty: "CARDIOLOGY".parse().unwrap(),
            clinic_type: "HEART_FAILURE".parse().unwrap(),
        }
    }

    #[test]
    fn service_ids_are_digits() {
        assert_eq!("11000".parse::<ServiceId>(), Ok(ServiceId(11000)));
        assert_eq!(ServiceId(11000).to_string(), "11000");
        for bad in ["", "+5", "-1", "11 000", "4294967296", "S11000"] {
            assert_eq!(
                bad.parse::<ServiceId>(),
                Err(ServiceError::Id(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn codes_are_checked_and_say_their_kind() {
        for code in ["CARDIOLOGY", "UROLOGY", "HEART_FAILURE", "ENT_2"] {
            assert_eq!(code.parse::<Specialty>().unwrap().as_str(), code);
            assert_eq!(code.parse::<ClinicType>().unwrap().to_string(), code);
        }
        assert_eq!(
            "cardiology".parse::<Specialty>().unwrap_err().to_string(),
            "\"cardiology\" is not an e-RS specialty code (1 to 64 upper-case letters, digits \
             and underscores, starting with a letter)"
        );
        for bad in ["", "_X", "1ST", "HEART FAILURE", &"A".repeat(65)] {
            assert_eq!(
                bad.parse::<ClinicType>(),
                Err(ServiceError::Code {
                    kind: "clinic type",
                    text: bad.into()
                })
            );
        }
        assert!(serde_json::from_str::<Specialty>("\"cardiology\"").is_err());
    }

    #[test]
    fn service_names_are_bounded_and_plain() {
        let mut service = cardiology();
        assert_eq!(service.validate(), Ok(()));
        service.name = "é".repeat(SERVICE_NAME_CHARS_MAX);
        assert_eq!(service.validate(), Ok(()));
        service.name.push('x');
        assert_eq!(
            service.validate(),
            Err(ServiceError::TooLong {
                field: "service.name",
                chars: 201,
                max: 200
            })
        );
        service.name = "  ".into();
        assert_eq!(
            service.validate(),
            Err(ServiceError::Empty {
                field: "service.name"
            })
        );
        service.name = "Cardiology\nClinic".into();
        assert_eq!(
            service.validate().unwrap_err().to_string(),
            "service.name contains a control character"
        );
    }
}
