//! Reading fixed-width identifiers written as digits, the way people write them: NHS numbers
//! (`943 476 5919`) and UBRNs (`0000-0007-0000`) alike allow spaces and hyphens between digits.

/// Why text is not `width` digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigitsError {
    /// Nothing but spaces or hyphens.
    Empty,
    /// A character other than a digit, a space or a hyphen, at `position` (in characters).
    InvalidCharacter { character: char, position: usize },
    /// Another number of digits.
    WrongLength { digits: usize },
}

/// The value of `input`'s digits, which must number exactly `width` (at most 19, so the value
/// fits a `u64`); spaces and hyphens between them are ignored.
pub(crate) fn parse_grouped_digits(input: &str, width: usize) -> Result<u64, DigitsError> {
    assert!(width <= 19, "{width} digits may not fit a u64");
    let mut value = 0u64;
    let mut digits = 0usize;
    for (position, character) in input.chars().enumerate() {
        match character {
            '0'..='9' => {
                digits += 1;
                // Past `width` digits only the count matters; do not overflow meanwhile.
                if digits <= width {
                    value = value * 10 + u64::from(character as u8 - b'0');
                }
            }
            ' ' | '-' => {}
            _ => {
                return Err(DigitsError::InvalidCharacter {
                    character,
                    position,
                });
            }
        }
    }
    match digits {
        0 => Err(DigitsError::Empty),
        n if n == width => Ok(value),
        _ => Err(DigitsError::WrongLength { digits }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_read_through_spaces_and_hyphens() {
        assert_eq!(parse_grouped_digits(" 0000 0007-0000 ", 12), Ok(70_000));
        assert_eq!(parse_grouped_digits(" - ", 3), Err(DigitsError::Empty));
        assert_eq!(
            parse_grouped_digits("12x", 3),
            Err(DigitsError::InvalidCharacter {
                character: 'x',
                position: 2
            })
        );
        assert_eq!(
            parse_grouped_digits(&"9".repeat(40), 10),
            Err(DigitsError::WrongLength { digits: 40 })
        );
    }
}
