//! The Unique Booking Reference Number (UBRN): the twelve digits that name one referral in the
//! e-Referral Service (`000000070000` in the specification's sandbox).
//!
//! The specification types the UBRN as a string of digits and documents no check digit, so
//! none is invented here: any twelve decimal digits are a UBRN, leading zeros included.
//! Parsing accepts the forms people write (`0000 0007 0000`, `0000-0007-0000`, surrounding
//! spaces) and rejects anything else with an error that says what is wrong.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest value twelve digits can hold.
const UBRN_MAX: u64 = 999_999_999_999;
/// Digits in a UBRN.
const UBRN_DIGITS: usize = 12;

/// A UBRN: twelve decimal digits, kept as an integer.
///
/// Serialised as a `u64` (compact in postcard records, and the key the storage engine can use);
/// the wire form is [`Display`](fmt::Display)'s twelve digits with leading zeros, as the
/// specification writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Ubrn(u64);

/// Why a string or integer is not a UBRN.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UbrnError {
    /// Nothing but spaces or hyphens.
    #[error("UBRN is empty")]
    Empty,
    /// A character other than a digit, a space or a hyphen.
    #[error("UBRN contains {character:?} at position {position}; only digits are allowed")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position in the input, counting characters from 0.
        position: usize,
    },
    /// Not twelve digits.
    #[error("UBRN has {digits} digits; it must have 12")]
    WrongLength {
        /// Digits found.
        digits: usize,
    },
    /// More than twelve digits' worth (from an integer).
    #[error("{value} is larger than any 12-digit UBRN")]
    TooLarge {
        /// The value.
        value: u64,
    },
}

impl Ubrn {
    /// The UBRN as an integer.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Ubrn {
    type Error = UbrnError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        if value > UBRN_MAX {
            return Err(UbrnError::TooLarge { value });
        }
        Ok(Self(value))
    }
}

impl From<Ubrn> for u64 {
    fn from(ubrn: Ubrn) -> Self {
        ubrn.0
    }
}

impl FromStr for Ubrn {
    type Err = UbrnError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        use crate::digits::{DigitsError, parse_grouped_digits};
        parse_grouped_digits(input, UBRN_DIGITS)
            .map(Self)
            .map_err(|error| match error {
                DigitsError::Empty => UbrnError::Empty,
                DigitsError::InvalidCharacter {
                    character,
                    position,
                } => UbrnError::InvalidCharacter {
                    character,
                    position,
                },
                DigitsError::WrongLength { digits } => UbrnError::WrongLength { digits },
            })
    }
}

impl fmt::Display for Ubrn {
    /// Twelve digits, leading zeros kept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_ubrns_parse_and_keep_their_zeros() {
        for text in ["000000070000", "000000070001"] {
            let ubrn: Ubrn = text.parse().unwrap();
            assert_eq!(ubrn.to_string(), text);
        }
        let ubrn: Ubrn = " 0000 0007-0000 ".parse().unwrap();
        assert_eq!(ubrn.value(), 70_000);
        assert_eq!(Ubrn::try_from(70_000).unwrap(), ubrn);
        assert_eq!(u64::from(ubrn), 70_000);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(" - ".parse::<Ubrn>(), Err(UbrnError::Empty));
        assert_eq!(
            "00000007000X".parse::<Ubrn>(),
            Err(UbrnError::InvalidCharacter {
                character: 'X',
                position: 11
            })
        );
        assert_eq!(
            "70000".parse::<Ubrn>(),
            Err(UbrnError::WrongLength { digits: 5 })
        );
        assert_eq!(
            "1234567890123456789012345".parse::<Ubrn>(),
            Err(UbrnError::WrongLength { digits: 25 })
        );
        assert_eq!(
            Ubrn::try_from(1_000_000_000_000),
            Err(UbrnError::TooLarge {
                value: 1_000_000_000_000
            })
        );
        assert_eq!(
            UbrnError::WrongLength { digits: 5 }.to_string(),
            "UBRN has 5 digits; it must have 12"
        );
    }

    #[test]
    fn serde_is_the_integer_and_checks_it() {
        let ubrn: Ubrn = "000000070000".parse().unwrap();
        assert_eq!(serde_json::to_string(&ubrn).unwrap(), "70000");
        assert_eq!(serde_json::from_str::<Ubrn>("70000").unwrap(), ubrn);
        assert!(serde_json::from_str::<Ubrn>("1000000000000").is_err());
        let bytes = postcard::to_allocvec(&ubrn).unwrap();
        assert_eq!(postcard::from_bytes::<Ubrn>(&bytes).unwrap(), ubrn);
    }
}
