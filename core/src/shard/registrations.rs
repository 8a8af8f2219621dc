//! A patient's registration history, as much of it as a rule needs: the practice they were
//! registered at before their current one. GP2GP lets only that practice start a transfer of
//! the patient's record (a legitimate relationship: the record leaves the practice that held
//! it for the one the patient has joined). Written in the turn that changes the patient's
//! practice, keyed by [`super::record_layout::registration_key`].

use serde::{Deserialize, Serialize};

use super::records::versioned;
use crate::pds::values::OdsCode;

/// Version byte in front of every previous-practice record.
pub const ENCODING_VERSION: u8 = 1;

/// The practice a patient left for the one they are registered at now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousPractice {
    /// The practice they left.
    pub practice: OdsCode,
    /// The patient record's version that moved them away from it.
    pub left_at_version: u32,
}

/// A registration record that does not decode: damage, or a layout this code does not know.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("registration record does not decode: {reason}")]
pub struct RegistrationError {
    /// What is wrong with the bytes.
    pub reason: String,
}

impl PreviousPractice {
    /// The record's bytes: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(ENCODING_VERSION, self)
    }

    /// Reads a record written by [`PreviousPractice::encode`].
    pub fn decode(payload: &[u8]) -> Result<Self, RegistrationError> {
        versioned::decode_exact(ENCODING_VERSION, payload)
            .map_err(|reason| RegistrationError { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PreviousPractice {
        PreviousPractice {
            practice: "Y90002".parse().expect("an ODS code"),
            left_at_version: 2,
        }
    }

    #[test]
    fn records_round_trip() {
        let bytes = record().encode();
        assert_eq!(PreviousPractice::decode(&bytes), Ok(record()));
    }

    #[test]
    fn damaged_records_are_told_apart() {
        let bytes = record().encode();
        assert!(PreviousPractice::decode(&bytes[1..]).is_err());
        assert!(PreviousPractice::decode(&[]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(PreviousPractice::decode(&longer).is_err());
        let mut bad_code = bytes;
        // The code's first letter, lower-cased: not an ODS code.
        bad_code[2] = b'y';
        assert!(PreviousPractice::decode(&bad_code).is_err());
    }
}
