//! The NHS number: ten digits, the last a modulus-11 check digit over the first nine.
//!
//! One scheme is shared by the UK nations, each issuing from its own ranges ([`Region`]).
//! Scotland's CHI numbers start with the holder's date of birth as `DDMMYY`, so a CHI number
//! whose first six digits are no date is invalid although its check digit may agree.
//! 9xxxxxxxxx numbers are never issued to people: Spine core's synthetic data uses them.
//!
//! Parsing accepts the forms people write (`943 476 5919`, `943-476-5919`, surrounding spaces)
//! and rejects anything else with an error that says what is wrong. Checked against the
//! reference implementation's test vectors (`core/tests/nhs_number_vectors.rs`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::values::Date;

/// The largest value a ten-digit number can have.
const NHS_NUMBER_MAX: u64 = 9_999_999_999;
/// Weights of the nine identifier digits, first to last.
const CHECK_WEIGHTS: [u64; 9] = [10, 9, 8, 7, 6, 5, 4, 3, 2];

/// A valid NHS number: ten digits whose check digit agrees (and, in Scotland's range, whose
/// first six digits are a date). Invalid values cannot be represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct NhsNumber(u64);

/// Why a string or integer is not a valid NHS number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NhsNumberError {
    /// Nothing but spaces or hyphens.
    #[error("NHS number is empty")]
    Empty,
    /// A character other than a digit, a space or a hyphen.
    #[error("NHS number contains {character:?} at position {position}; only digits are allowed")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position in the input, counting characters from 0.
        position: usize,
    },
    /// Not ten digits.
    #[error("NHS number has {digits} digits; it must have 10")]
    WrongLength {
        /// Digits found.
        digits: usize,
    },
    /// More than ten digits' worth (from an integer).
    #[error("{value} is larger than any 10-digit NHS number")]
    TooLarge {
        /// The value.
        value: u64,
    },
    /// The first nine digits give a check value of 10, which no digit can match: no NHS number
    /// starts with these nine digits.
    #[error("no valid NHS number starts with these nine digits (their check value is 10)")]
    NoCheckDigit,
    /// The last digit is not the check digit of the first nine.
    #[error("NHS number check digit is {found}, but the first nine digits require {expected}")]
    CheckDigitMismatch {
        /// The check digit the first nine digits give.
        expected: u8,
        /// The last digit as given.
        found: u8,
    },
    /// In Scotland's range, the first six digits must be the date of birth (`DDMMYY`).
    #[error("Scottish CHI number does not start with a date of birth (DDMMYY)")]
    ImpossibleChiDate,
}

/// Where a number's range is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    /// England, Wales and the Isle of Man: 400 000 0000–499 999 9999 and 600 000 0000–799 999 9999.
    EnglandWalesIsleOfMan,
    /// Scotland's CHI numbers: 010 000 0000–311 299 9999.
    Scotland,
    /// Northern Ireland's Health and Care numbers: 320 000 0000–399 999 9999.
    NorthernIreland,
    /// The Republic of Ireland's Individual Health Identifiers: 800 000 0000–859 999 9999.
    Eire,
    /// Never issued to people; for test and synthetic patients: 900 000 0000–999 999 9999.
    Synthetic,
    /// Not allocated to anyone (or not to be issued, like 5xxxxxxxxx).
    Unallocated,
}

/// Inclusive ranges of each region, lowest first.
const REGION_RANGES: [(u64, u64, Region); 6] = [
    (100_000_000, 3_112_999_999, Region::Scotland),
    (3_200_000_000, 3_999_999_999, Region::NorthernIreland),
    (4_000_000_000, 4_999_999_999, Region::EnglandWalesIsleOfMan),
    (6_000_000_000, 7_999_999_999, Region::EnglandWalesIsleOfMan),
    (8_000_000_000, 8_599_999_999, Region::Eire),
    (9_000_000_000, NHS_NUMBER_MAX, Region::Synthetic),
];

/// The check value of nine identifier digits: 0–9 is the check digit, 10 means none exists.
/// `None` unless there are exactly nine ASCII digits.
pub fn check_value(identifier: &str) -> Option<u8> {
    let digits = identifier.as_bytes();
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let stem = digits
        .iter()
        .fold(0, |stem, digit| stem * 10 + u64::from(digit - b'0'));
    Some(check_value_of_stem(stem))
}

/// The check value of the identifier whose nine digits (leading zeros included) are `stem`:
/// 0–9 is the check digit, 10 means none exists. Arithmetic on the integer, because every
/// patient record decoded validates its number, and formatting it as text first allocated.
///
/// # Panics
/// If `stem` has more than nine digits.
pub fn check_value_of_stem(stem: u64) -> u8 {
    assert!(
        stem < 1_000_000_000,
        "an identifier has nine digits: {stem}"
    );
    let mut rest = stem;
    let mut weighted = 0;
    // The last digit carries the last weight.
    for weight in CHECK_WEIGHTS.iter().rev() {
        weighted += rest % 10 * weight;
        rest /= 10;
    }
    match 11 - weighted % 11 {
        11 => 0,
        check => check as u8,
    }
}

impl Region {
    /// The region whose range holds a ten-digit value, whether or not it is a valid number.
    pub fn of(value: u64) -> Region {
        REGION_RANGES
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&value))
            .map_or(Region::Unallocated, |&(_, _, region)| region)
    }
}

/// Whether `DDMMYY` is a date in some century (29 February counts when YY could be a leap year).
/// Read in the 2000s, where a year is leap exactly when YY is a multiple of 4 (2000 is leap).
fn is_chi_date(value: u64) -> bool {
    let date = value / 10_000;
    let (day, month, year) = (date / 10_000, date / 100 % 100, date % 100);
    // All three are below 100 here, since `value` has at most ten digits.
    Date::new(2000 + year as u16, month as u8, day as u8).is_some()
}

impl NhsNumber {
    /// Validates a ten-digit value.
    fn from_value(value: u64) -> Result<Self, NhsNumberError> {
        if value > NHS_NUMBER_MAX {
            return Err(NhsNumberError::TooLarge { value });
        }
        let expected = check_value_of_stem(value / 10);
        let found = (value % 10) as u8;
        if expected == 10 {
            return Err(NhsNumberError::NoCheckDigit);
        }
        if expected != found {
            return Err(NhsNumberError::CheckDigitMismatch { expected, found });
        }
        if Region::of(value) == Region::Scotland && !is_chi_date(value) {
            return Err(NhsNumberError::ImpossibleChiDate);
        }
        Ok(Self(value))
    }

    /// The number as an integer (what the storage engine keys records by).
    pub fn value(self) -> u64 {
        self.0
    }

    /// The region whose range holds the number.
    pub fn region(self) -> Region {
        Region::of(self.0)
    }

    /// The number as `943 476 5919`, the way it is printed for people.
    pub fn spaced(self) -> String {
        let digits = self.to_string();
        format!("{} {} {}", &digits[..3], &digits[3..6], &digits[6..])
    }
}

impl FromStr for NhsNumber {
    type Err = NhsNumberError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        use crate::digits::{DigitsError, parse_grouped_digits};
        match parse_grouped_digits(input, 10) {
            Ok(value) => Self::from_value(value),
            Err(DigitsError::Empty) => Err(NhsNumberError::Empty),
            Err(DigitsError::InvalidCharacter {
                character,
                position,
            }) => Err(NhsNumberError::InvalidCharacter {
                character,
                position,
            }),
            Err(DigitsError::WrongLength { digits }) => Err(NhsNumberError::WrongLength { digits }),
        }
    }
}

impl TryFrom<&str> for NhsNumber {
    type Error = NhsNumberError;

    fn try_from(input: &str) -> Result<Self, Self::Error> {
        input.parse()
    }
}

impl TryFrom<u64> for NhsNumber {
    type Error = NhsNumberError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

impl From<NhsNumber> for u64 {
    fn from(number: NhsNumber) -> Self {
        number.0
    }
}

impl fmt::Display for NhsNumber {
    /// Ten digits, leading zeros kept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:010}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_pds_sandbox_numbers_are_valid_and_synthetic() {
        for text in ["9000000009", "9000000025", "9000000033", "9111231130"] {
            let number: NhsNumber = text.parse().unwrap();
            assert_eq!(number.region(), Region::Synthetic);
            assert_eq!(number.to_string(), text);
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!("".parse::<NhsNumber>(), Err(NhsNumberError::Empty));
        assert_eq!(
            "943 476 591X".parse::<NhsNumber>(),
            Err(NhsNumberError::InvalidCharacter {
                character: 'X',
                position: 11
            })
        );
        assert_eq!(
            "12345".parse::<NhsNumber>(),
            Err(NhsNumberError::WrongLength { digits: 5 })
        );
        assert_eq!(
            "123456789012345678901234567890".parse::<NhsNumber>(),
            Err(NhsNumberError::WrongLength { digits: 30 })
        );
        assert_eq!(
            "9434765918".parse::<NhsNumber>(),
            Err(NhsNumberError::CheckDigitMismatch {
                expected: 9,
                found: 8
            })
        );
        assert_eq!(
            NhsNumberError::CheckDigitMismatch {
                expected: 9,
                found: 8
            }
            .to_string(),
            "NHS number check digit is 8, but the first nine digits require 9"
        );
        assert_eq!(
            NhsNumber::try_from(10_000_000_000),
            Err(NhsNumberError::TooLarge {
                value: 10_000_000_000
            })
        );
    }

    #[test]
    fn spaced_form_round_trips() {
        let number: NhsNumber = "9434765919".parse().unwrap();
        assert_eq!(number.spaced(), "943 476 5919");
        assert_eq!(number.spaced().parse::<NhsNumber>(), Ok(number));
    }

    proptest! {
        /// The arithmetic check value agrees with the scheme as written: each of the nine
        /// digits of the zero-padded text times its weight (10 down to 2), then 11 minus the
        /// sum modulo 11, with 11 read as 0.
        #[test]
        fn check_value_of_stem_follows_the_written_scheme(stem in 0u64..1_000_000_000) {
            let text = format!("{stem:09}");
            let sum: u32 = text.chars().zip((2..=10).rev()).map(|(digit, weight)| digit.to_digit(10).unwrap() * weight).sum();
            let expected = match 11 - sum % 11 { 11 => 0, check => check as u8 };
            prop_assert_eq!(check_value_of_stem(stem), expected);
            prop_assert_eq!(check_value(&text), Some(expected));
        }

        /// Every nine-digit identifier has exactly one valid completion, unless its check value
        /// is 10; and changing any one digit of a valid number makes it invalid (the property
        /// the modulus-11 scheme exists for).
        #[test]
        fn exactly_one_check_digit_and_single_digit_errors_are_caught(identifier in 900_000_000u64..=999_999_999, at in 0usize..10, delta in 1u64..10) {
            let valid: Vec<u64> = (0..10).map(|check| identifier * 10 + check).filter(|&v| NhsNumber::try_from(v).is_ok()).collect();
            let check = check_value(&identifier.to_string()).unwrap();
            prop_assert_eq!(valid.len(), usize::from(check != 10));
            if let Some(&value) = valid.first() {
                let place = 10u64.pow(at as u32);
                let digit = value / place % 10;
                let changed = value - digit * place + (digit + delta) % 10 * place;
                prop_assert!(NhsNumber::try_from(changed).is_err(), "{value} -> {changed}");
            }
        }
    }
}
