//! SHA-256 digests of a whole document and of each chunk.
//!
//! The digests are plain SHA-256 of the bytes, with no domain tag: the sending practice computes
//! the document's with any standard tool, and a receiving practice can check what it
//! reassembled the same way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes in a SHA-256 digest.
pub const SHA256_BYTES: usize = 32;

/// A SHA-256 digest. Shown and parsed as 64 lower-case hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sha256Hash([u8; SHA256_BYTES]);

/// Text that is not 64 hexadecimal digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 digest is 64 hexadecimal digits; {length} characters given, or not all hex")]
pub struct Sha256HashError {
    /// Characters given.
    pub length: usize,
}

impl Sha256Hash {
    /// The digest whose bytes these are.
    pub const fn from_bytes(bytes: [u8; SHA256_BYTES]) -> Self {
        Self(bytes)
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; SHA256_BYTES] {
        &self.0
    }

    /// Whether every byte is zero: what a sender that never filled the field in sends. No
    /// document is known to have this digest, so refusing it refuses no real document.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; SHA256_BYTES]
    }
}

/// A running SHA-256 over bytes given in pieces, for a document read chunk by chunk without
/// holding all of it.
#[derive(Clone, Default)]
pub(crate) struct Sha256Stream(Sha256);

impl Sha256Stream {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> Sha256Hash {
        Sha256Hash(self.0.finalize().into())
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hash({self})")
    }
}

impl FromStr for Sha256Hash {
    type Err = Sha256HashError;

    /// Accepts upper or lower case, since tools print both.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = Sha256HashError { length: text.len() };
        if text.len() != 2 * SHA256_BYTES {
            return Err(error);
        }
        let mut bytes = [0u8; SHA256_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let digit = |b: u8| char::from(b).to_digit(16);
            let (high, low) = digit(pair[0]).zip(digit(pair[1])).ok_or(error.clone())?;
            // Both digits are below 16, so the byte fits.
            *byte = (high * 16 + low) as u8;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2's example: SHA-256 of "abc".
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_are_plain_sha256_and_read_back_from_hex() {
        let digest = Sha256Hash::of(b"abc");
        assert_eq!(digest.to_string(), ABC);
        assert_eq!(ABC.parse::<Sha256Hash>(), Ok(digest));
        assert_eq!(ABC.to_uppercase().parse::<Sha256Hash>(), Ok(digest));
        let mut stream = Sha256Stream::default();
        stream.update(b"a");
        stream.update(b"bc");
        assert_eq!(stream.finish(), digest);
        assert!(!digest.is_zero());
        assert!(Sha256Hash::from_bytes([0; 32]).is_zero());
    }

    #[test]
    fn text_that_is_not_64_hex_digits_is_refused() {
        for text in [
            "",
            "ab",
            &ABC[1..],
            &format!("{ABC}0"),
            &ABC.replace('b', "g"),
        ] {
            assert_eq!(
                text.parse::<Sha256Hash>(),
                Err(Sha256HashError { length: text.len() }),
                "{text}"
            );
        }
        // A multi-byte character must not split a pair mid-character.
        let odd = format!("é{}", &ABC[2..]);
        assert!(odd.parse::<Sha256Hash>().is_err());
    }
}
