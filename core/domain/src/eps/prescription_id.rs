//! The short-form prescription id, `XXXXXX-XXXXXX-XXXXXC` (the EPS specification's
//! `groupIdentifier`, system `https://fhir.nhs.uk/Id/prescription-order-number`):
//!
//! - 6 hexadecimal digits, a random number generated where the prescription is made;
//! - the prescribing organisation's ODS code, zero-padded from the start to 6 characters
//!   (`A12BC` becomes `0A12BC`);
//! - 5 hexadecimal digits, the organisation's sequence number (00000 to FFFFF, then round again);
//! - a check character by ISO/IEC 7064 MOD 37-2 over the 17 characters before it, hyphens left
//!   out, from the alphabet `0`–`9`, `A`–`Z`, `+`.
//!
//! The specification's pattern allows only hexadecimal digits in the middle part, but its text
//! says the part is the ODS code, and ODS codes use every letter (`Y12345`, `FCG71`): parsing
//! accepts any letter or digit there, so that every id [`PrescriptionId::new`] makes parses back.
//! Parsing accepts either case and keeps the canonical upper-case form. Checked against every
//! short id in the specification's examples.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::pds::values::OdsCode;

/// Characters in the text form, hyphens included.
const TEXT_CHARS: usize = 20;
/// Positions of the two hyphens in the text form.
const HYPHENS: [usize; 2] = [6, 13];
/// Characters of the organisation part.
const ORGANISATION_CHARS: usize = 6;
/// The random part is below this (6 hexadecimal digits).
const RANDOM_LIMIT: u32 = 1 << 24;
/// The serial part is below this (5 hexadecimal digits).
const SERIAL_LIMIT: u32 = 1 << 20;
/// The MOD 37-2 alphabet: a character's value is its index.
const CHECK_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+";

/// A valid short-form prescription id. Invalid ids cannot be represented: the check character
/// is computed, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct PrescriptionId {
    random: u32,
    /// Upper-case ASCII letters and digits.
    organisation: [u8; ORGANISATION_CHARS],
    serial: u32,
}

/// Why a prescription id could not be made or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrescriptionIdError {
    /// Not 20 characters.
    #[error(
        "prescription id has {chars} characters; it must have 20 (XXXXXX-XXXXXX-XXXXXC, hyphens included)"
    )]
    WrongLength {
        /// Characters found.
        chars: usize,
    },
    /// Something other than a hyphen where one belongs.
    #[error("prescription id has {found:?} at position {position}, where a hyphen belongs")]
    MissingHyphen {
        /// The position (6 or 13), counting characters from 0.
        position: usize,
        /// What is there instead.
        found: char,
    },
    /// A character the part it is in cannot hold.
    #[error(
        "prescription id has {character:?} at position {position}; only {allowed} are allowed there"
    )]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position, counting characters from 0.
        position: usize,
        /// What the part holds: hexadecimal digits, letters and digits, or check characters.
        allowed: &'static str,
    },
    /// The last character is not the check character of the 17 before it.
    #[error(
        "prescription id check character is {found:?}, but the rest of the id requires {expected:?}"
    )]
    CheckCharacterMismatch {
        /// The check character the id requires.
        expected: char,
        /// The last character as given (upper case).
        found: char,
    },
    /// A random part that needs more than 6 hexadecimal digits.
    #[error("random part {random:#x} does not fit in 6 hexadecimal digits")]
    RandomTooLarge {
        /// The value.
        random: u32,
    },
    /// A serial that needs more than 5 hexadecimal digits.
    #[error("serial {serial:#x} does not fit in 5 hexadecimal digits")]
    SerialTooLarge {
        /// The value.
        serial: u32,
    },
    /// An ODS code longer than the 6 characters the id has room for.
    #[error("ODS code {code} has more than 6 characters; a prescription id holds at most 6")]
    OrganisationTooLong {
        /// The code.
        code: String,
    },
}

/// A MOD 37-2 character's value: its index in [`CHECK_ALPHABET`] (`c` is upper case).
fn check_value(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A'..=b'Z' => u32::from(c - b'A') + 10,
        _ => 36,
    }
}

/// The ISO/IEC 7064 MOD 37-2 check character of `body` (upper-case letters and digits): the
/// one that makes the weighted sum of all characters, weights powers of 2, a multiple of 37.
/// Because 37 is prime and larger than the alphabet, every single-character change and every
/// swap of two adjacent different characters changes the check.
fn check_character(body: &[u8]) -> u8 {
    let sum = body
        .iter()
        .fold(0, |sum, &c| (sum + check_value(c)) * 2 % 37);
    CHECK_ALPHABET[((38 - sum) % 37) as usize]
}

/// `code` zero-padded from the start to 6 characters, if it fits.
fn organisation_part(code: &OdsCode) -> Option<[u8; ORGANISATION_CHARS]> {
    let bytes = code.as_str().as_bytes();
    let padding = ORGANISATION_CHARS.checked_sub(bytes.len())?;
    let mut part = [b'0'; ORGANISATION_CHARS];
    part[padding..].copy_from_slice(bytes);
    Some(part)
}

impl PrescriptionId {
    /// The id for a random number (below 2^24), the prescribing organisation and its serial
    /// number (below 2^20).
    pub fn new(
        random: u32,
        organisation: &OdsCode,
        serial: u32,
    ) -> Result<Self, PrescriptionIdError> {
        if random >= RANDOM_LIMIT {
            return Err(PrescriptionIdError::RandomTooLarge { random });
        }
        if serial >= SERIAL_LIMIT {
            return Err(PrescriptionIdError::SerialTooLarge { serial });
        }
        let organisation = organisation_part(organisation).ok_or_else(|| {
            PrescriptionIdError::OrganisationTooLong {
                code: organisation.to_string(),
            }
        })?;
        Ok(Self {
            random,
            organisation,
            serial,
        })
    }

    /// The random part (below 2^24).
    pub fn random(&self) -> u32 {
        self.random
    }

    /// The serial part (below 2^20).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The organisation part as it stands in the id: 6 characters, zero-padded from the start.
    pub fn organisation_part(&self) -> &str {
        std::str::from_utf8(&self.organisation).expect("ASCII letters and digits by construction")
    }

    /// Whether the organisation part is `organisation`'s code (zero-padded).
    pub fn is_from(&self, organisation: &OdsCode) -> bool {
        organisation_part(organisation) == Some(self.organisation)
    }

    /// The storage key: `(random << 20) | serial`, 44 bits. The organisation part is left out;
    /// whoever allocates ids must keep the pair (random, serial) unique.
    pub fn key_value(&self) -> u64 {
        (u64::from(self.random) << 20) | u64::from(self.serial)
    }

    /// The 17 characters the check character covers, upper case.
    fn body(&self) -> [u8; 17] {
        let mut body = [0u8; 17];
        let hex = |value: u32, shift: u32| b"0123456789ABCDEF"[(value >> shift & 0xF) as usize];
        for (i, slot) in body[..6].iter_mut().enumerate() {
            *slot = hex(self.random, 4 * (5 - i as u32));
        }
        body[6..12].copy_from_slice(&self.organisation);
        for (i, slot) in body[12..].iter_mut().enumerate() {
            *slot = hex(self.serial, 4 * (4 - i as u32));
        }
        body
    }
}

impl FromStr for PrescriptionId {
    type Err = PrescriptionIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let chars = text.chars().count();
        if chars != TEXT_CHARS {
            return Err(PrescriptionIdError::WrongLength { chars });
        }
        let (mut random, mut serial) = (0u32, 0u32);
        let mut organisation = [0u8; ORGANISATION_CHARS];
        let mut found = b'0';
        for (position, character) in text.chars().enumerate() {
            let invalid = |allowed| PrescriptionIdError::InvalidCharacter {
                character,
                position,
                allowed,
            };
            let upper = character.to_ascii_uppercase();
            match position {
                _ if HYPHENS.contains(&position) => {
                    if character != '-' {
                        return Err(PrescriptionIdError::MissingHyphen {
                            position,
                            found: character,
                        });
                    }
                }
                0..=5 | 14..=18 => {
                    let digit = upper
                        .to_digit(16)
                        .ok_or_else(|| invalid("hexadecimal digits"))?;
                    if position <= 5 {
                        random = random << 4 | digit;
                    } else {
                        serial = serial << 4 | digit;
                    }
                }
                7..=12 => {
                    if !upper.is_ascii_alphanumeric() {
                        return Err(invalid("letters and digits (the ODS code)"));
                    }
                    organisation[position - 7] = upper as u8;
                }
                _ => {
                    if !(upper.is_ascii_alphanumeric() || upper == '+') {
                        return Err(invalid("check characters (0-9, A-Z, +)"));
                    }
                    found = upper as u8;
                }
            }
        }
        let id = Self {
            random,
            organisation,
            serial,
        };
        let expected = check_character(&id.body());
        if found != expected {
            return Err(PrescriptionIdError::CheckCharacterMismatch {
                expected: char::from(expected),
                found: char::from(found),
            });
        }
        Ok(id)
    }
}

impl TryFrom<String> for PrescriptionId {
    type Error = PrescriptionIdError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Serialised as its text, written straight from the id (not built as a `String` first).
impl Serialize for PrescriptionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl From<PrescriptionId> for String {
    fn from(id: PrescriptionId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for PrescriptionId {
    /// The canonical form: upper case, with hyphens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        let check = check_character(&body);
        let text = |range: std::ops::Range<usize>| {
            std::str::from_utf8(&body[range]).expect("ASCII by construction")
        };
        write!(
            f,
            "{}-{}-{}{}",
            text(0..6),
            text(6..12),
            text(12..17),
            char::from(check)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every distinct short id in the EPS specification's examples.
    const SPEC_IDS: [&str; 12] = [
        "04F4C2-A99968-7F717P",
        "24F5DA-A83008-7EFE6Z",
        "76787C-C81007-00001G",
        "FB6EC1-A83008-DC0346",
        "A0548B-A99968-451485",
        "CDF34E-A99968-4FF3BQ",
        "A96909-A99968-11EBAL",
        "819851-A83008-2EFE34",
        "63DE8C-C81007-00001O",
        "1E5135-A99968-4595BT",
        "0A446C-A99968-4CC380",
        "060CC0-A83008-5A2E6T",
    ];

    #[test]
    fn the_specifications_ids_verify_and_print_back() {
        for text in SPEC_IDS {
            let id: PrescriptionId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
            assert_eq!(text.to_ascii_lowercase().parse::<PrescriptionId>(), Ok(id));
        }
        let id: PrescriptionId = "04F4C2-A99968-7F717P".parse().unwrap();
        assert_eq!(id.random(), 0x04F4C2);
        assert_eq!(id.serial(), 0x7F717);
        assert_eq!(id.organisation_part(), "A99968");
        assert_eq!(id.key_value(), 0x04F4C2 << 20 | 0x7F717);
        assert!(id.is_from(&"A99968".parse().unwrap()));
        assert_eq!(
            PrescriptionId::new(0x04F4C2, &"A99968".parse().unwrap(), 0x7F717),
            Ok(id)
        );
    }

    #[test]
    fn the_specifications_altered_release_example_fails_its_check() {
        // Release.yaml's example changes the first digit of 04F4C2-A99968-7F717P and keeps
        // its check character.
        assert_eq!(
            "03F4C2-A99968-7F717P".parse::<PrescriptionId>(),
            Err(PrescriptionIdError::CheckCharacterMismatch {
                expected: 'Y',
                found: 'P'
            })
        );
    }

    #[test]
    fn short_ods_codes_are_zero_padded_from_the_start() {
        let id = PrescriptionId::new(0xABCDEF, &"A12BC".parse().unwrap(), 1).unwrap();
        assert_eq!(id.organisation_part(), "0A12BC");
        assert!(id.to_string().starts_with("ABCDEF-0A12BC-00001"));
        assert!(id.is_from(&"A12BC".parse().unwrap()));
        assert!(!id.is_from(&"A12BD".parse().unwrap()));
        assert_eq!(id.to_string().parse::<PrescriptionId>(), Ok(id));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let parse = |text: &str| text.parse::<PrescriptionId>();
        assert_eq!(
            parse("04F4C2-A99968-7F717"),
            Err(PrescriptionIdError::WrongLength { chars: 19 })
        );
        assert_eq!(
            parse("04F4C2A99968-7F717PX"),
            Err(PrescriptionIdError::MissingHyphen {
                position: 6,
                found: 'A'
            })
        );
        assert_eq!(
            parse("04F4G2-A99968-7F717P"),
            Err(PrescriptionIdError::InvalidCharacter {
                character: 'G',
                position: 4,
                allowed: "hexadecimal digits"
            })
        );
        assert_eq!(
            parse("04F4C2-A99968-7F717P")
                .map(|id| id.to_string())
                .as_deref(),
            Ok("04F4C2-A99968-7F717P")
        );
        assert_eq!(
            parse("04F4C2-A99968-7F717*").unwrap_err().to_string(),
            "prescription id has '*' at position 19; only check characters (0-9, A-Z, +) are allowed there"
        );
        assert_eq!(
            parse("04F4C2-A99968-7F717Q").unwrap_err().to_string(),
            "prescription id check character is 'Q', but the rest of the id requires 'P'"
        );
        // Counted in characters, not bytes.
        assert_eq!(
            parse("04F4C2-A99968-7F717é"),
            Err(PrescriptionIdError::InvalidCharacter {
                character: 'é',
                position: 19,
                allowed: "check characters (0-9, A-Z, +)"
            })
        );
        let ods: OdsCode = "A99968".parse().unwrap();
        assert_eq!(
            PrescriptionId::new(1 << 24, &ods, 0),
            Err(PrescriptionIdError::RandomTooLarge { random: 1 << 24 })
        );
        assert_eq!(
            PrescriptionId::new(0, &ods, 1 << 20),
            Err(PrescriptionIdError::SerialTooLarge { serial: 1 << 20 })
        );
        assert_eq!(
            PrescriptionId::new(0, &"RXX1234".parse().unwrap(), 0),
            Err(PrescriptionIdError::OrganisationTooLong {
                code: "RXX1234".into()
            })
        );
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id: PrescriptionId = "04F4C2-A99968-7F717P".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"04F4C2-A99968-7F717P\""
        );
        assert_eq!(
            serde_json::from_str::<PrescriptionId>("\"04f4c2-a99968-7f717p\"").unwrap(),
            id
        );
        assert!(serde_json::from_str::<PrescriptionId>("\"04F4C2-A99968-7F717Q\"").is_err());
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<PrescriptionId>(&bytes).unwrap(), id);
    }

    /// Any ODS code of 1 to 6 upper-case letters and digits.
    fn ods_code() -> impl Strategy<Value = OdsCode> {
        "[A-Z0-9]{1,6}".prop_map(|text| text.parse().unwrap())
    }

    /// The characters position `position` of the text form may hold, upper case.
    fn alphabet(position: usize) -> &'static [u8] {
        match position {
            0..=5 | 14..=18 => b"0123456789ABCDEF",
            7..=12 => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            _ => CHECK_ALPHABET,
        }
    }

    proptest! {
        #[test]
        fn ids_made_by_new_parse_back(random in 0u32..1 << 24, ods in ods_code(), serial in 0u32..1 << 20) {
            let id = PrescriptionId::new(random, &ods, serial).unwrap();
            let text = id.to_string();
            prop_assert_eq!(text.parse::<PrescriptionId>(), Ok(id));
            prop_assert_eq!(text.to_ascii_lowercase().parse::<PrescriptionId>(), Ok(id));
            prop_assert_eq!(id.key_value() >> 20, u64::from(random));
            prop_assert_eq!(id.key_value() & 0xF_FFFF, u64::from(serial));
            prop_assert!(id.is_from(&ods));
        }

        /// Changing any one character to another its part allows is caught.
        #[test]
        fn single_changes_are_caught(random in 0u32..1 << 24, ods in ods_code(), serial in 0u32..1 << 20, at in 0usize..18, pick in 0usize..1000) {
            let text = PrescriptionId::new(random, &ods, serial).unwrap().to_string();
            let position = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19][at];
            let mut bytes = text.clone().into_bytes();
            let others: Vec<u8> = alphabet(position).iter().copied().filter(|&c| c != bytes[position]).collect();
            bytes[position] = others[pick % others.len()];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(changed.parse::<PrescriptionId>().is_err(), "{} -> {}", text, changed);
        }

        /// Swapping two adjacent different characters (hyphens left out) is caught.
        #[test]
        fn adjacent_swaps_are_caught(random in 0u32..1 << 24, ods in ods_code(), serial in 0u32..1 << 20, at in 0usize..17) {
            let text = PrescriptionId::new(random, &ods, serial).unwrap().to_string();
            let mut compact: Vec<u8> = text.bytes().filter(|&c| c != b'-').collect();
            prop_assume!(compact[at] != compact[at + 1]);
            compact.swap(at, at + 1);
            let swapped = format!(
                "{}-{}-{}",
                String::from_utf8_lossy(&compact[..6]),
                String::from_utf8_lossy(&compact[6..12]),
                String::from_utf8_lossy(&compact[12..])
            );
            prop_assert!(swapped.parse::<PrescriptionId>().is_err(), "{} -> {}", text, swapped);
        }
    }
}
