//! Privacy alerts in the log: each names the organisation of the user who raised it (what the
//! alert index is keyed by), the audit event's log index, and a copy of the event.

use serde::{Deserialize, Serialize};

use super::records::versioned;

/// Version byte in front of every alert record.
pub const ENCODING_VERSION: u8 = 1;

/// One alert record, borrowed from its bytes.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord<'a> {
    /// The user's organisation (ODS code).
    pub organisation: &'a str,
    /// Log index of the audit event that raised it.
    pub audit_index: u64,
    /// The encoded audit event.
    pub event: &'a [u8],
}

impl AlertRecord<'_> {
    /// The record's bytes: a version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(ENCODING_VERSION, self)
    }
}

/// Reads an alert record; `None` if the bytes are not one.
pub fn decode(payload: &[u8]) -> Option<AlertRecord<'_>> {
    versioned::decode(ENCODING_VERSION, payload)
}

/// The organisation an alert record is filed under.
pub fn organisation_of(payload: &[u8]) -> Option<&str> {
    decode(payload).map(|record| record.organisation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_records_round_trip() {
        let record = AlertRecord {
            organisation: "Y9H01",
            audit_index: 42,
            event: &[1, 2, 3],
        };
        let bytes = record.encode();
        assert_eq!(decode(&bytes), Some(record));
        assert_eq!(organisation_of(&bytes), Some("Y9H01"));
        assert_eq!(decode(&bytes[1..]), None);
    }
}
