//! The small values many messages carry: NHS numbers, ODS codes, dates and postcodes, each
//! raw on the wire and checked by its domain type here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::pds::nhs_number::NhsNumber;
use spine_domain::pds::values::{self, OdsCode, Postcode};

use super::InvalidField;
use super::invalid_field::Checked;

/// An NHS number as the ten digits' integer.
pub(super) fn nhs_number(raw: u64) -> Checked<NhsNumber> {
    NhsNumber::try_from(raw).map_err(|error| InvalidField::id("nhs_number", error))
}

/// An ODS code as its text.
pub(super) fn ods_code(raw: Cow<'_, str>) -> Checked<OdsCode> {
    OdsCode::try_from(raw.into_owned()).map_err(|error| InvalidField::value("ods_code", error))
}

/// A postcode as its text, in any case and spacing (kept normalised).
pub(super) fn postcode(raw: Cow<'_, str>) -> Checked<Postcode> {
    Postcode::try_from(raw.into_owned()).map_err(|error| InvalidField::value("postcode", error))
}

/// The text of a value the domain keeps as text.
pub(super) fn text<T: AsRef<str> + ?Sized>(value: &T) -> Cow<'_, str> {
    Cow::Borrowed(value.as_ref())
}

/// A calendar date: `(u16 year, u8 month, u8 day)`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl From<values::Date> for Date {
    fn from(date: values::Date) -> Self {
        let (year, month, day) = date.parts();
        Self { year, month, day }
    }
}

impl Date {
    /// The date, if there is such a day.
    pub(super) fn into_domain(self) -> Checked<values::Date> {
        values::Date::try_from((self.year, self.month, self.day))
            .map_err(|error| InvalidField::value("date", error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spine_domain::request::ErrorCode;

    #[test]
    fn each_value_is_checked_by_its_domain_type_and_named() {
        assert_eq!(nhs_number(9_000_000_009).unwrap().value(), 9_000_000_009);
        let refused = nhs_number(9_000_000_008).unwrap_err();
        assert_eq!(
            (refused.field, refused.code),
            ("nhs_number", ErrorCode::InvalidResourceId)
        );
        assert!(refused.reason.contains("check digit"), "{refused}");

        assert_eq!(ods_code("Y90001".into()).unwrap().as_str(), "Y90001");
        assert_eq!(ods_code("y90001".into()).unwrap_err().field, "ods_code");
        assert_eq!(postcode("ls16ae".into()).unwrap().as_str(), "LS1 6AE");
        assert_eq!(postcode("LS".into()).unwrap_err().field, "postcode");

        let leap_day = Date {
            year: 2024,
            month: 2,
            day: 29,
        };
        assert_eq!(leap_day.into_domain().unwrap().parts(), (2024, 2, 29));
        let refused = Date {
            year: 2023,
            month: 2,
            day: 29,
        }
        .into_domain()
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "date: \"2023-02-29\" is not a date of the form YYYY-MM-DD"
        );
    }
}
