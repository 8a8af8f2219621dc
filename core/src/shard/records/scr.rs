//! Kind 6, a patient's Summary Care Record at one version: the payload's types at version 1,
//! field for field as `core/RECORDS.md` gives them, and their conversions to and from the
//! domain's [`SummaryCareRecord`].

use std::borrow::Cow;

use super::versioned;
use serde::{Deserialize, Serialize};
use spine_domain::codes::CodeList;
use uuid::Uuid;

use super::stored_list::{StoredElement, StoredList};
use super::{MalformedRecord, code, read};
use crate::NhsNumber;
use crate::pds::values::OdsCode;
use crate::scr::record::{self as domain, SummaryCareRecord};
use crate::shard::record_layout::RecordKind;

/// The payload version this code writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The record's payload: the version byte, then the record.
pub fn encode(record: &SummaryCareRecord) -> Vec<u8> {
    ScrRecord::from(record).encode()
}

/// The record in `payload`, its sections checked against the limits every summary was checked
/// against when it was written (a stored record that breaks one is damage, not a summary to
/// show).
pub fn decode(payload: &[u8]) -> Result<SummaryCareRecord, MalformedRecord> {
    read(
        RecordKind::Scr,
        PAYLOAD_VERSION,
        payload,
        ScrRecord::into_domain,
        |record| {
            record
                .validate()
                .map_err(|error| format!("breaks a limit: {error}"))
        },
    )
}

/// `SummaryCareRecord`, the payload after its version byte.
#[derive(Serialize, Deserialize)]
#[serde(rename = "SummaryCareRecord")]
pub struct ScrRecord<'a> {
    nhs_number: NhsNumber,
    version: u32,
    permission: u32,
    allergies: StoredList<'a, domain::ScrEntry, ScrEntry<'a>>,
    adverse_reactions: StoredList<'a, domain::ScrEntry, ScrEntry<'a>>,
    acute_medications: StoredList<'a, domain::ScrEntry, ScrEntry<'a>>,
    repeat_medications: StoredList<'a, domain::ScrEntry, ScrEntry<'a>>,
    updated_by: Uuid,
    updated_organisation: Cow<'a, OdsCode>,
    updated_ms: u64,
    previous_index: u64,
}

impl<'a> From<&'a SummaryCareRecord> for ScrRecord<'a> {
    fn from(record: &'a SummaryCareRecord) -> Self {
        Self {
            nhs_number: record.nhs_number,
            version: record.version,
            permission: record.permission.index(),
            allergies: StoredList::Domain(&record.allergies),
            adverse_reactions: StoredList::Domain(&record.adverse_reactions),
            acute_medications: StoredList::Domain(&record.acute_medications),
            repeat_medications: StoredList::Domain(&record.repeat_medications),
            updated_by: record.updated_by,
            updated_organisation: Cow::Borrowed(&record.updated_organisation),
            updated_ms: record.updated_ms,
            previous_index: record.previous_index,
        }
    }
}

impl ScrRecord<'_> {
    /// The payload: the version byte, then the record.
    pub fn encode(&self) -> Vec<u8> {
        versioned::encode(PAYLOAD_VERSION, self)
    }

    fn into_domain(self) -> Result<SummaryCareRecord, String> {
        Ok(SummaryCareRecord {
            nhs_number: self.nhs_number,
            version: self.version,
            permission: code(self.permission)?,
            allergies: self.allergies.into_domain("allergies")?,
            adverse_reactions: self.adverse_reactions.into_domain("adverse_reactions")?,
            acute_medications: self.acute_medications.into_domain("acute_medications")?,
            repeat_medications: self.repeat_medications.into_domain("repeat_medications")?,
            updated_by: self.updated_by,
            updated_organisation: self.updated_organisation.into_owned(),
            updated_ms: self.updated_ms,
            previous_index: self.previous_index,
        })
    }
}

/// `ScrEntry`.
#[derive(Serialize, Deserialize)]
struct ScrEntry<'a> {
    code: Option<u64>,
    text: Cow<'a, str>,
    author: Uuid,
    organisation: Cow<'a, OdsCode>,
    recorded_ms: u64,
}

impl<'a> From<&'a domain::ScrEntry> for ScrEntry<'a> {
    fn from(entry: &'a domain::ScrEntry) -> Self {
        Self {
            code: entry.code,
            text: Cow::Borrowed(&entry.text),
            author: entry.author,
            organisation: Cow::Borrowed(&entry.organisation),
            recorded_ms: entry.recorded_ms,
        }
    }
}

impl<'a> StoredElement<'a, domain::ScrEntry> for ScrEntry<'a> {
    fn into_domain(self) -> Result<domain::ScrEntry, String> {
        Ok(domain::ScrEntry {
            code: self.code,
            text: self.text.into_owned(),
            author: self.author,
            organisation: self.organisation.into_owned(),
            recorded_ms: self.recorded_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scr::record::{Author, ScrContent, ScrEntryInput, ScrPermission};

    fn author(user: u128, at_ms: u64) -> Author {
        Author {
            user: Uuid::from_u128(user),
            organisation: "Y90001".parse().expect("an ODS code"),
            at_ms,
        }
    }

    fn record() -> SummaryCareRecord {
        let nhs: NhsNumber = "9000000009".parse().expect("valid");
        let entry = |text: &str| ScrEntryInput {
            code: Some(91_936_005),
            text: text.into(),
        };
        SummaryCareRecord::empty(nhs, &author(1, 10)).with_content(
            &ScrContent {
                allergies: vec![entry("Penicillin: rash"), entry("Latex")],
                repeat_medications: vec![ScrEntryInput {
                    code: None,
                    text: "Ramipril 5mg daily".into(),
                }],
                ..ScrContent::default()
            },
            &author(2, 20),
            77,
        )
    }

    #[test]
    fn a_record_round_trips_and_damage_is_named() {
        let record = record();
        let payload = encode(&record);
        assert_eq!(payload[0], PAYLOAD_VERSION);
        assert_eq!(decode(&payload), Ok(record.clone()));
        let opted_out = record.with_permission(ScrPermission::No, &author(3, 30), 90);
        assert_eq!(decode(&encode(&opted_out)), Ok(opted_out));

        let message = |bytes: &[u8]| decode(bytes).expect_err("damaged").to_string();
        assert_eq!(
            message(&[9, 1]),
            "stored scr record is malformed: unknown encoding version 9"
        );
        let mut longer = payload.clone();
        longer.push(0);
        assert_eq!(
            message(&longer),
            "stored scr record is malformed: 1 bytes after the record"
        );
        let mut stored = ScrRecord::from(&record);
        stored.permission = 2;
        assert_eq!(
            message(&stored.encode()),
            "stored scr record is malformed: scr_permission: 2 is not one of 0 Ask, 1 No"
        );
    }

    #[test]
    fn a_stored_record_breaking_a_limit_is_damage() {
        let mut record = record();
        record.allergies[0].code = Some(7);
        let error = decode(&encode(&record)).expect_err("code 7 is no concept");
        assert_eq!(
            error.to_string(),
            "stored scr record is malformed: breaks a limit: allergies entry 0: 7 is not a \
             SNOMED CT concept id (6 to 18 digits)"
        );
    }
}
