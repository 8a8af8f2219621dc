//! Kind 4, a write's outcome in the ring: the payload's types at version 2 (written) and
//! version 1 (still read), field for field as `core/RECORDS.md` gives them, and their
//! conversions to and from the shard's [`OutcomeRecord`]. A refusal's code is stored as its
//! number in the error-code list (`spine_domain::codes`), the number the wire carries too.

use std::borrow::Cow;

use super::versioned;
use serde::{Deserialize, Serialize};
use spine_domain::codes::CodeList;
use uuid::Uuid;

use crate::pds::nhs_number::NhsNumber;
use crate::request::{ErrorCode, Refusal};
use crate::shard::outcomes::{OutcomeRecord, StoredOutcome, Written};
use crate::shard::record_layout;

/// Version 2 names the written record by its key (any service's); version 1, still read,
/// named a patient.
pub const PAYLOAD_VERSION: u8 = 2;
const PAYLOAD_VERSION_PATIENT_ONLY: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(record: &OutcomeRecord) -> Vec<u8> {
    OutcomeRecordPayload::from(record).encode()
}

/// The outcome in `payload`, at version 2 or 1; `None` for bytes that are neither (including
/// an error code no list holds, and bytes left over): the shard treats those as damage or as
/// no outcome, as `core/RECORDS.md` says.
pub fn decode(payload: &[u8]) -> Option<OutcomeRecord> {
    if let Some(record) = versioned::decode::<OutcomeRecordPayload<'_>>(PAYLOAD_VERSION, payload) {
        return record.into_domain();
    }
    let old: PatientOutcomeRecord<'_> = versioned::decode(PAYLOAD_VERSION_PATIENT_ONLY, payload)?;
    Some(OutcomeRecord {
        request_id: old.request_id,
        fingerprint: old.fingerprint,
        sequence: old.sequence,
        outcome: match old.outcome {
            Ok((nhs_number, index)) => Ok(Written {
                key: record_layout::patient_key(nhs_number).get(),
                index,
            }),
            Err(refusal) => Err(refusal.into_domain()?),
        },
    })
}

/// `OutcomeRecord`, the payload after its version byte (version 2).
#[derive(Serialize, Deserialize)]
#[serde(rename = "OutcomeRecord")]
pub struct OutcomeRecordPayload<'a> {
    request_id: Uuid,
    fingerprint: u64,
    sequence: u64,
    outcome: OutcomePayload<'a>,
}

/// What the outcome record keeps (public so that `core/tests/records_doc.rs` can trace both
/// variants).
pub type OutcomePayload<'a> = Result<WrittenPayload, RefusalPayload<'a>>;

impl<'a> From<&'a OutcomeRecord> for OutcomeRecordPayload<'a> {
    fn from(record: &'a OutcomeRecord) -> Self {
        Self {
            request_id: record.request_id,
            fingerprint: record.fingerprint,
            sequence: record.sequence,
            outcome: match &record.outcome {
                Ok(written) => Ok(WrittenPayload {
                    key: written.key,
                    index: written.index,
                }),
                Err(refusal) => Err(RefusalPayload {
                    code: refusal.code.index(),
                    message: Cow::Borrowed(&refusal.message),
                }),
            },
        }
    }
}

impl OutcomeRecordPayload<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Option<OutcomeRecord> {
        let outcome: StoredOutcome = match self.outcome {
            Ok(written) => Ok(Written {
                key: written.key,
                index: written.index,
            }),
            Err(refusal) => Err(refusal.into_domain()?),
        };
        Some(OutcomeRecord {
            request_id: self.request_id,
            fingerprint: self.fingerprint,
            sequence: self.sequence,
            outcome,
        })
    }
}

/// `Written`.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Written")]
pub struct WrittenPayload {
    key: u64,
    index: u64,
}

/// `Refusal`: the code's number, and the message as the requester got it.
#[derive(Serialize, Deserialize)]
#[serde(rename = "Refusal")]
pub struct RefusalPayload<'a> {
    code: u32,
    message: Cow<'a, str>,
}

impl RefusalPayload<'_> {
    fn into_domain(self) -> Option<Refusal> {
        Some(Refusal {
            code: ErrorCode::try_from_index(self.code)?,
            message: self.message.into_owned(),
        })
    }
}

/// `PatientOutcomeRecord`: version 1's layout, read, never written.
#[derive(Deserialize)]
#[serde(rename = "PatientOutcomeRecord")]
struct PatientOutcomeRecord<'a> {
    request_id: Uuid,
    fingerprint: u64,
    sequence: u64,
    #[serde(borrow)]
    outcome: Result<(NhsNumber, u64), RefusalPayload<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: StoredOutcome) -> OutcomeRecord {
        OutcomeRecord {
            request_id: Uuid::from_u128(5),
            fingerprint: 7,
            sequence: 3,
            outcome,
        }
    }

    #[test]
    fn both_outcomes_round_trip() {
        let written = record(Ok(Written {
            key: 1 << 56,
            index: 4,
        }));
        let refused = record(Err(Refusal::new(
            ErrorCode::InvalidResourceId,
            "no such id",
        )));
        for outcome in [written, refused] {
            let payload = encode(&outcome);
            assert_eq!(payload[0], PAYLOAD_VERSION);
            assert_eq!(decode(&payload), Some(outcome));
        }
    }

    #[test]
    fn version_1_outcomes_still_read() {
        let nhs: NhsNumber = "9000000009".parse().expect("valid");
        let old = versioned::encode(
            PAYLOAD_VERSION_PATIENT_ONLY,
            &(
                Uuid::from_u128(5),
                7u64,
                3u64,
                Ok::<_, (u32, &str)>((nhs, 42u64)),
            ),
        );
        let read = decode(&old).expect("version 1 decodes");
        let expected = record(Ok(Written {
            key: record_layout::patient_key(nhs).get(),
            index: 42,
        }));
        assert_eq!(read, expected);
        assert_eq!(decode(&encode(&read)), Some(read));
    }

    #[test]
    fn an_unknown_error_code_or_bytes_left_over_are_no_outcome() {
        let unknown = versioned::encode(
            PAYLOAD_VERSION,
            &(
                Uuid::from_u128(5),
                7u64,
                3u64,
                Err::<(u64, u64), _>((32u32, "no")),
            ),
        );
        assert_eq!(decode(&unknown), None);
        let mut longer = encode(&record(Ok(Written { key: 1, index: 2 })));
        longer.push(0);
        assert_eq!(decode(&longer), None);
    }
}
