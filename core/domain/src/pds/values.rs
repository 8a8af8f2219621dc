//! Small validated values of a demographic record: calendar dates, UK postcodes and ODS codes.
//! Each is a newtype constructed by parsing, so an invalid value cannot be represented.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a date, postcode or ODS code did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not `YYYY-MM-DD`, or no such day.
    #[error("{0:?} is not a date of the form YYYY-MM-DD")]
    Date(String),
    /// Not a UK postcode.
    #[error("{0:?} is not a UK postcode")]
    Postcode(String),
    /// Not an ODS organisation code (1 to 10 upper-case letters and digits).
    #[error("{0:?} is not an ODS organisation code")]
    OdsCode(String),
}

/// A calendar date, ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "(u16, u8, u8)", into = "(u16, u8, u8)")]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// The date, if it exists (years 1000 to 2999, as the PDS accepts).
    pub fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        let exists = (1000..=2999).contains(&year) && day >= 1 && day <= days_in_month(year, month);
        exists.then_some(Self { year, month, day })
    }

    /// Year, month (1–12), day (1–31).
    pub fn parts(self) -> (u16, u8, u8) {
        (self.year, self.month, self.day)
    }
}

impl TryFrom<(u16, u8, u8)> for Date {
    type Error = ValueError;

    fn try_from((year, month, day): (u16, u8, u8)) -> Result<Self, Self::Error> {
        Self::new(year, month, day)
            .ok_or_else(|| ValueError::Date(format!("{year:04}-{month:02}-{day:02}")))
    }
}

impl From<Date> for (u16, u8, u8) {
    fn from(date: Date) -> Self {
        date.parts()
    }
}

impl FromStr for Date {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ValueError::Date(text.to_owned());
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && [0, 1, 2, 3, 5, 6, 8, 9]
                .iter()
                .all(|&i| bytes[i].is_ascii_digit());
        if !shaped {
            return Err(invalid());
        }
        let number =
            |range: std::ops::Range<usize>| text[range].parse::<u16>().map_err(|_| invalid());
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        Self::new(year, month as u8, day as u8).ok_or_else(invalid)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// A UK postcode, kept upper case with one space before the inward code (`LS1 6AE`), so that
/// search compares like with like.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Postcode(String);

impl Postcode {
    /// The outward code (`LS1`), the part before the space.
    pub fn outward(&self) -> &str {
        &self.0[..self.0.len() - 4]
    }

    /// The postcode as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Postcode {
    type Err = ValueError;

    /// Accepts any case and spacing; checks the shape `A9 9AA`, `A99 9AA`, `AA9 9AA`,
    /// `AA99 9AA`, `A9A 9AA` or `AA9A 9AA`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let bytes = compact.as_bytes();
        let (outward, inward) = bytes.split_at(bytes.len().saturating_sub(3));
        let inward_ok = inward.len() == 3
            && inward[0].is_ascii_digit()
            && inward[1].is_ascii_uppercase()
            && inward[2].is_ascii_uppercase();
        let outward_ok = (2..=4).contains(&outward.len())
            && outward[0].is_ascii_uppercase()
            && outward.iter().all(u8::is_ascii_alphanumeric)
            && outward.iter().any(u8::is_ascii_digit);
        if !(inward_ok && outward_ok) {
            return Err(ValueError::Postcode(text.to_owned()));
        }
        let split = compact.len() - 3;
        Ok(Self(format!("{} {}", &compact[..split], &compact[split..])))
    }
}

impl Postcode {
    /// Whether `text` is already in the kept form (upper case, one space before the inward
    /// code, a valid shape), as every stored postcode is.
    fn is_normalised(text: &str) -> bool {
        let bytes = text.as_bytes();
        let Some(space) = bytes.len().checked_sub(4) else {
            return false;
        };
        let (outward, rest) = bytes.split_at(space);
        let inward = &rest[1..];
        rest[0] == b' '
            && (2..=4).contains(&outward.len())
            && outward[0].is_ascii_uppercase()
            && outward
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && outward.iter().any(u8::is_ascii_digit)
            && inward[0].is_ascii_digit()
            && inward[1].is_ascii_uppercase()
            && inward[2].is_ascii_uppercase()
    }
}

impl TryFrom<String> for Postcode {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        // Records read back from the log hold normalised postcodes: keep the string as it is.
        if Self::is_normalised(&text) {
            return Ok(Self(text));
        }
        text.parse()
    }
}

crate::serialize_as_str::serialize_as_str!(Postcode, OdsCode);

impl From<Postcode> for String {
    fn from(postcode: Postcode) -> Self {
        postcode.0
    }
}

impl fmt::Display for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organisation code from the Organisation Data Service (a GP practice's, for example
/// `A81001`): 1 to 10 upper-case letters and digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct OdsCode(String);

/// Longest ODS code accepted.
const ODS_CODE_BYTES_MAX: usize = 10;

impl OdsCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl OdsCode {
    fn is_valid(text: &str) -> bool {
        (1..=ODS_CODE_BYTES_MAX).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    }
}

impl FromStr for OdsCode {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.to_owned().try_into()
    }
}

impl TryFrom<String> for OdsCode {
    type Error = ValueError;

    /// Keeps the string it checked (one is decoded for every request and most records).
    fn try_from(text: String) -> Result<Self, Self::Error> {
        if !Self::is_valid(&text) {
            return Err(ValueError::OdsCode(text));
        }
        Ok(Self(text))
    }
}

impl From<OdsCode> for String {
    fn from(code: OdsCode) -> Self {
        code.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_postcodes_are_kept_and_others_normalised() {
        for text in [
            "LS1 6AE", "M1 1AA", "SW1A 1AA", "B33 8TH", "CR2 6XH", "DN55 1PT",
        ] {
            assert!(Postcode::is_normalised(text), "{text}");
            let kept = Postcode::try_from(text.to_owned()).unwrap();
            assert_eq!(kept, text.parse::<Postcode>().unwrap());
        }
        for text in [
            "ls1 6ae", "LS16AE", "LS1  6AE", "1S1 6AE", "LSA 6AE", "LS1 6A1", "L 6AE",
        ] {
            assert!(!Postcode::is_normalised(text), "{text}");
        }
        assert_eq!(
            Postcode::try_from("ls16ae".to_owned()).unwrap().as_str(),
            "LS1 6AE"
        );
    }

    #[test]
    fn dates_must_exist() {
        assert_eq!(
            "2010-10-22".parse::<Date>().unwrap().to_string(),
            "2010-10-22"
        );
        assert!("2000-02-29".parse::<Date>().is_ok());
        assert!("1900-02-29".parse::<Date>().is_err());
        assert!("2010-13-01".parse::<Date>().is_err());
        assert!("2010-1-01".parse::<Date>().is_err());
        assert!("2010-10-22T00:00:00".parse::<Date>().is_err());
        assert!("2010-10-21".parse::<Date>().unwrap() < "2010-10-22".parse::<Date>().unwrap());
    }

    #[test]
    fn postcodes_are_normalised_and_checked() {
        for (input, normal) in [
            ("ls16ae", "LS1 6AE"),
            ("LS1 6AE", "LS1 6AE"),
            (" sw1a  1aa ", "SW1A 1AA"),
            ("M1 1AE", "M1 1AE"),
            ("B33 8TH", "B33 8TH"),
            ("CR2 6XH", "CR2 6XH"),
            ("W1A 0AX", "W1A 0AX"),
        ] {
            let postcode: Postcode = input.parse().unwrap();
            assert_eq!(postcode.as_str(), normal);
        }
        assert_eq!("LS1 6AE".parse::<Postcode>().unwrap().outward(), "LS1");
        for bad in ["", "LS1", "123 456", "LS1 6A1", "LS1X 6AEE", "L-1 6AE"] {
            assert!(bad.parse::<Postcode>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ods_codes_are_upper_case_alphanumerics() {
        assert_eq!("A81001".parse::<OdsCode>().unwrap().as_str(), "A81001");
        for bad in ["", "a81001", "A81 001", "A8100100000"] {
            assert!(bad.parse::<OdsCode>().is_err(), "{bad:?}");
        }
    }
}
