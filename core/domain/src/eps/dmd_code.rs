//! A medicine's code from the NHS Dictionary of medicines and devices (dm+d): a SNOMED CT
//! concept id (system `http://snomed.info/sct`).
//!
//! A SNOMED CT id has 6 to 18 digits. The last is a Verhoeff check digit over the others; the
//! two before it are the partition identifier, which says what kind of component the id names:
//! `00` a concept of the international release, `10` a concept in a namespace (the UK's dm+d
//! codes, such as `39732311000001104`, end `…10` + check digit). Descriptions and relationships
//! have other partitions and are not medicines. Checked against every SNOMED CT code in the EPS
//! specification's examples.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Fewest digits in a SNOMED CT id.
const DIGITS_MIN: usize = 6;
/// Most digits in a SNOMED CT id.
const DIGITS_MAX: usize = 18;
/// Partition identifiers of concepts: short form (international) and long form (namespaced).
const CONCEPT_PARTITIONS: [u8; 2] = [0, 10];

/// The dihedral group D5's multiplication table, on which Verhoeff's scheme rests.
const DIHEDRAL: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
/// Verhoeff's permutation, applied once per position.
const STEP: [u8; 10] = [1, 5, 7, 6, 2, 8, 3, 0, 9, 4];
/// The permutation applied at each position modulo 8: `STEP` to the power of the position.
/// Computed rather than typed out, since a slip in a typed table passes most codes unnoticed.
const PERMUTATION: [[u8; 10]; 8] = {
    let mut table = [[0u8; 10]; 8];
    let mut digit = 0;
    while digit < 10 {
        table[0][digit] = digit as u8;
        digit += 1;
    }
    let mut row = 1;
    while row < 8 {
        let mut digit = 0;
        while digit < 10 {
            table[row][digit] = STEP[table[row - 1][digit] as usize];
            digit += 1;
        }
        row += 1;
    }
    table
};
/// Inverses in D5.
const INVERSE: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// The Verhoeff check digit to append to `body`.
fn verhoeff_check_digit(mut body: u64) -> u8 {
    let mut check = 0u8;
    // Digits from the right; the check digit will take position 0.
    let mut position = 1;
    loop {
        let digit = (body % 10) as usize;
        check = DIHEDRAL[check as usize][PERMUTATION[position % 8][digit] as usize];
        body /= 10;
        position += 1;
        if body == 0 {
            return INVERSE[check as usize];
        }
    }
}

/// Decimal digits in `value`.
fn digit_count(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// A valid dm+d (SNOMED CT) concept id: 6 to 18 digits, a concept's partition, and a check
/// digit that agrees. Invalid codes cannot be represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct DmdCode(u64);

/// Why a string or integer is not a dm+d concept id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DmdCodeError {
    /// Nothing at all.
    #[error("dm+d code is empty")]
    Empty,
    /// A character other than a digit.
    #[error("dm+d code contains {character:?} at position {position}; only digits are allowed")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position, counting characters from 0.
        position: usize,
    },
    /// A leading zero, which no SNOMED CT id has.
    #[error("dm+d code starts with 0; SNOMED CT ids never do")]
    LeadingZero,
    /// Too few or too many digits.
    #[error("dm+d code has {digits} digits; a SNOMED CT id has 6 to 18")]
    WrongLength {
        /// Digits found.
        digits: usize,
    },
    /// The last digit is not the Verhoeff check digit of the others.
    #[error("dm+d code check digit is {found}, but the digits before it require {expected}")]
    CheckDigitMismatch {
        /// The check digit the other digits give.
        expected: u8,
        /// The last digit as given.
        found: u8,
    },
    /// The id names a description, relationship or other component, not a concept.
    #[error(
        "dm+d code has partition identifier {partition:02}, which is not a concept's (00 or 10)"
    )]
    NotAConcept {
        /// The two digits before the check digit.
        partition: u8,
    },
}

impl DmdCode {
    /// Validates an integer.
    fn from_value(value: u64) -> Result<Self, DmdCodeError> {
        let digits = digit_count(value);
        if !(DIGITS_MIN..=DIGITS_MAX).contains(&digits) {
            return Err(DmdCodeError::WrongLength { digits });
        }
        let expected = verhoeff_check_digit(value / 10);
        let found = (value % 10) as u8;
        if expected != found {
            return Err(DmdCodeError::CheckDigitMismatch { expected, found });
        }
        let partition = (value / 10 % 100) as u8;
        if !CONCEPT_PARTITIONS.contains(&partition) {
            return Err(DmdCodeError::NotAConcept { partition });
        }
        Ok(Self(value))
    }

    /// The code as an integer.
    pub fn value(self) -> u64 {
        self.0
    }
}

impl FromStr for DmdCode {
    type Err = DmdCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some((position, character)) =
            text.chars().enumerate().find(|(_, c)| !c.is_ascii_digit())
        {
            return Err(DmdCodeError::InvalidCharacter {
                character,
                position,
            });
        }
        // All ASCII digits from here: bytes are characters.
        match text.len() {
            0 => Err(DmdCodeError::Empty),
            _ if text.starts_with('0') => Err(DmdCodeError::LeadingZero),
            digits if digits > DIGITS_MAX => Err(DmdCodeError::WrongLength { digits }),
            _ => {
                let value = text
                    .bytes()
                    .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
                Self::from_value(value)
            }
        }
    }
}

impl TryFrom<u64> for DmdCode {
    type Error = DmdCodeError;

    fn try_from(value: u64) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

impl From<DmdCode> for u64 {
    fn from(code: DmdCode) -> Self {
        code.0
    }
}

impl fmt::Display for DmdCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every SNOMED CT code in the EPS specification's examples: medicines (dm+d), dose forms,
    /// routes and units. All must verify.
    const SPEC_CODES: [&str; 28] = [
        "13892511000001100",
        "15517911000001104",
        "16076005",
        "258682000",
        "258773002",
        "26643006",
        "317972000",
        "320567001",
        "321080004",
        "322341003",
        "323888003",
        "324252006",
        "330286001",
        "3317411000001100",
        "3318611000001103",
        "33633005",
        "34206005",
        "373784005",
        "374372000",
        "381511000001101",
        "385024007",
        "39113611000001102",
        "39732311000001104",
        "422145002",
        "428673006",
        "5417311000001105",
        "732936001",
        "763158003",
    ];

    #[test]
    fn the_specifications_codes_verify() {
        for text in SPEC_CODES {
            let code: DmdCode = text.parse().unwrap();
            assert_eq!(code.to_string(), text);
            assert_eq!(DmdCode::try_from(code.value()), Ok(code));
        }
    }

    #[test]
    fn the_permutation_table_is_verhoeffs() {
        // The published table, for comparison with the computed one.
        assert_eq!(PERMUTATION[1], STEP);
        assert_eq!(PERMUTATION[4], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0]);
        assert_eq!(PERMUTATION[7], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]);
        // Verhoeff's own example: 236 has check digit 3.
        assert_eq!(verhoeff_check_digit(236), 3);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let parse = |text: &str| text.parse::<DmdCode>();
        assert_eq!(parse(""), Err(DmdCodeError::Empty));
        assert_eq!(
            parse("3242 52006"),
            Err(DmdCodeError::InvalidCharacter {
                character: ' ',
                position: 4
            })
        );
        assert_eq!(parse("0324252006"), Err(DmdCodeError::LeadingZero));
        assert_eq!(parse("12345"), Err(DmdCodeError::WrongLength { digits: 5 }));
        assert_eq!(
            parse("1234567890123456789012"),
            Err(DmdCodeError::WrongLength { digits: 22 })
        );
        assert_eq!(
            parse("324252007"),
            Err(DmdCodeError::CheckDigitMismatch {
                expected: 6,
                found: 7
            })
        );
        assert_eq!(
            parse("324252007").unwrap_err().to_string(),
            "dm+d code check digit is 7, but the digits before it require 6"
        );
        // 1234567011: a valid check digit, but partition 01 (a description).
        let description = 123_456_701 * 10 + u64::from(verhoeff_check_digit(123_456_701));
        assert_eq!(
            DmdCode::try_from(description),
            Err(DmdCodeError::NotAConcept { partition: 1 })
        );
        assert_eq!(
            DmdCode::try_from(u64::MAX),
            Err(DmdCodeError::WrongLength { digits: 20 })
        );
        assert_eq!(
            serde_json::from_str::<DmdCode>("324252006")
                .unwrap()
                .value(),
            324_252_006
        );
        assert!(serde_json::from_str::<DmdCode>("324252007").is_err());
    }

    proptest! {
        /// Every body has exactly one valid check digit, and changing one digit of a valid id
        /// or swapping two adjacent different digits is caught (Verhoeff's guarantees).
        #[test]
        fn single_errors_and_adjacent_swaps_are_caught(item in 1000u64..1_000_000_000_000_000, long in any::<bool>(), at in 0usize..20, delta in 1u64..10) {
            let body = item * 100 + if long { 10 } else { 0 };
            let value = body * 10 + u64::from(verhoeff_check_digit(body));
            prop_assert!(DmdCode::try_from(value).is_ok());
            let valid = (0..10).filter(|check| DmdCode::try_from(body * 10 + check).is_ok()).count();
            prop_assert_eq!(valid, 1);
            let digits = digit_count(value);
            let place = 10u64.pow((at % (digits - 1)) as u32);
            let digit = value / place % 10;
            let changed = value - digit * place + (digit + delta) % 10 * place;
            prop_assert!(DmdCode::try_from(changed).is_err(), "{} -> {}", value, changed);
            let next = value / (place * 10) % 10;
            // Not a swap that would put a zero in front (a shorter number, not a swap).
            let top = place * 10 == 10u64.pow(digits as u32 - 1);
            if next != digit && !(top && digit == 0) {
                let swapped = value - digit * place - next * place * 10 + next * place + digit * place * 10;
                prop_assert!(DmdCode::try_from(swapped).is_err(), "{} -> {}", value, swapped);
            }
        }
    }
}
