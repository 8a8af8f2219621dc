//! One patient's Summary Care Record and what a practice sends to change it.
//!
//! Each entry keeps who recorded it, for which organisation and when. An update sends the
//! whole summary ([`ScrContent`]); an entry that was already there, with the same code and
//! text in the same section, keeps its original provenance, and only new entries take the
//! updater's. Every accepted update or consent change is a new version; the record links to
//! its previous version's place in the log, so the history is read back without a scan (its
//! payload in the log is `spine-core`'s, `shard/records/scr.rs`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pds::nhs_number::NhsNumber;
use crate::pds::values::OdsCode;

/// Entries one section may hold, at most.
pub const SECTION_ENTRIES_MAX: usize = 64;
/// Bytes of an entry's text, at most.
pub const ENTRY_TEXT_BYTES_MAX: usize = 512;
/// Versions one history request may return, at most.
pub const HISTORY_LIMIT_MAX: u32 = 100;

/// The patient's consent preference for sharing their SCR (the specification's
/// `SCR-ACSPermission`: `Yes` is legacy and read as `Ask`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScrPermission {
    /// The record may be shared; each view needs the patient's permission to view, or
    /// emergency access.
    #[default]
    Ask,
    /// The patient has opted out: no record is kept or shown.
    No,
}

/// The four sections of a summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScrSection {
    /// Allergies.
    Allergies,
    /// Adverse reactions.
    AdverseReactions,
    /// Acute (short-course) medications.
    AcuteMedications,
    /// Repeat medications.
    RepeatMedications,
}

impl ScrSection {
    /// Every section, in the order records list them.
    pub const ALL: [ScrSection; 4] = [
        ScrSection::Allergies,
        ScrSection::AdverseReactions,
        ScrSection::AcuteMedications,
        ScrSection::RepeatMedications,
    ];

    /// The section's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            ScrSection::Allergies => "allergies",
            ScrSection::AdverseReactions => "adverse reactions",
            ScrSection::AcuteMedications => "acute medications",
            ScrSection::RepeatMedications => "repeat medications",
        }
    }
}

/// One entry as a practice sends it: an optional SNOMED CT / dm+d concept id and the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrEntryInput {
    /// The coded concept, if the entry is coded.
    pub code: Option<u64>,
    /// What a clinician reads (for a medication: drug, dose and directions).
    pub text: String,
}

/// The summary a practice sends: every section whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrContent {
    /// Allergies.
    pub allergies: Vec<ScrEntryInput>,
    /// Adverse reactions.
    pub adverse_reactions: Vec<ScrEntryInput>,
    /// Acute medications.
    pub acute_medications: Vec<ScrEntryInput>,
    /// Repeat medications.
    pub repeat_medications: Vec<ScrEntryInput>,
}

impl ScrContent {
    /// The entries of one section.
    pub fn section(&self, section: ScrSection) -> &[ScrEntryInput] {
        match section {
            ScrSection::Allergies => &self.allergies,
            ScrSection::AdverseReactions => &self.adverse_reactions,
            ScrSection::AcuteMedications => &self.acute_medications,
            ScrSection::RepeatMedications => &self.repeat_medications,
        }
    }

    /// Checks the limits; the error names the section and entry.
    pub fn validate(&self) -> Result<(), ScrError> {
        for section in ScrSection::ALL {
            let entries = self.section(section);
            check_section(
                section,
                entries.iter().map(|entry| (entry.code, &*entry.text)),
            )?;
        }
        Ok(())
    }
}

/// A section's limits: its number of entries, and each entry's text and code.
fn check_section<'a>(
    section: ScrSection,
    entries: impl ExactSizeIterator<Item = (Option<u64>, &'a str)>,
) -> Result<(), ScrError> {
    if entries.len() > SECTION_ENTRIES_MAX {
        return Err(ScrError::TooManyEntries {
            section: section.name(),
            count: entries.len(),
        });
    }
    for (position, (code, text)) in entries.enumerate() {
        if text.trim().is_empty() || text.len() > ENTRY_TEXT_BYTES_MAX {
            return Err(ScrError::BadText {
                section: section.name(),
                position,
                bytes: text.len(),
            });
        }
        if let Some(code) = code
            && !(100_000..=999_999_999_999_999_999).contains(&code)
        {
            return Err(ScrError::BadCode {
                section: section.name(),
                position,
                code,
            });
        }
    }
    Ok(())
}

/// Why a summary is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScrError {
    /// A section over [`SECTION_ENTRIES_MAX`].
    #[error("{section}: {count} entries; at most {SECTION_ENTRIES_MAX} are allowed")]
    TooManyEntries {
        /// The section.
        section: &'static str,
        /// Entries sent.
        count: usize,
    },
    /// An entry's text is empty or over [`ENTRY_TEXT_BYTES_MAX`].
    #[error(
        "{section} entry {position}: its text has {bytes} bytes; it must be 1 to \
         {ENTRY_TEXT_BYTES_MAX} and not blank"
    )]
    BadText {
        /// The section.
        section: &'static str,
        /// The entry's position, from 0.
        position: usize,
        /// The text's length.
        bytes: usize,
    },
    /// A code that cannot be a SNOMED CT concept id (6 to 18 digits).
    #[error("{section} entry {position}: {code} is not a SNOMED CT concept id (6 to 18 digits)")]
    BadCode {
        /// The section.
        section: &'static str,
        /// The entry's position, from 0.
        position: usize,
        /// The code sent.
        code: u64,
    },
}

/// One entry of a stored record, with its provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrEntry {
    /// The coded concept, if any.
    pub code: Option<u64>,
    /// The text.
    pub text: String,
    /// The user who recorded it.
    pub author: Uuid,
    /// The organisation they recorded it for.
    pub organisation: OdsCode,
    /// When (milliseconds since the Unix epoch).
    pub recorded_ms: u64,
}

/// A patient's Summary Care Record at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryCareRecord {
    /// Whose.
    pub nhs_number: NhsNumber,
    /// 1 for the first, one more for each change.
    pub version: u32,
    /// The patient's consent preference.
    pub permission: ScrPermission,
    /// Allergies.
    pub allergies: Vec<ScrEntry>,
    /// Adverse reactions.
    pub adverse_reactions: Vec<ScrEntry>,
    /// Acute medications.
    pub acute_medications: Vec<ScrEntry>,
    /// Repeat medications.
    pub repeat_medications: Vec<ScrEntry>,
    /// Who made this version.
    pub updated_by: Uuid,
    /// For which organisation.
    pub updated_organisation: OdsCode,
    /// When (milliseconds since the Unix epoch).
    pub updated_ms: u64,
    /// The log index of the previous version; 0 for the first.
    pub previous_index: u64,
}

/// Who makes a change, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    /// The user.
    pub user: Uuid,
    /// Their organisation.
    pub organisation: OdsCode,
    /// When (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

impl SummaryCareRecord {
    /// Withholds `practice` wherever the record names it (see `shard::restricted`).
    pub fn withhold_practice(&mut self, practice: &OdsCode) {
        use crate::restricted::withhold;
        withhold(&mut self.updated_organisation, practice);
        for entries in [
            &mut self.allergies,
            &mut self.adverse_reactions,
            &mut self.acute_medications,
            &mut self.repeat_medications,
        ] {
            for entry in entries {
                withhold(&mut entry.organisation, practice);
            }
        }
    }

    /// An empty record for a patient (what a consent change before any summary creates).
    pub fn empty(nhs_number: NhsNumber, author: &Author) -> Self {
        Self {
            nhs_number,
            version: 0,
            permission: ScrPermission::Ask,
            allergies: Vec::new(),
            adverse_reactions: Vec::new(),
            acute_medications: Vec::new(),
            repeat_medications: Vec::new(),
            updated_by: author.user,
            updated_organisation: author.organisation.clone(),
            updated_ms: author.at_ms,
            previous_index: 0,
        }
    }

    /// The entries of one section.
    pub fn section(&self, section: ScrSection) -> &[ScrEntry] {
        match section {
            ScrSection::Allergies => &self.allergies,
            ScrSection::AdverseReactions => &self.adverse_reactions,
            ScrSection::AcuteMedications => &self.acute_medications,
            ScrSection::RepeatMedications => &self.repeat_medications,
        }
    }

    /// The next version with `content` (validated by the caller), written by `author`, the
    /// current version being at log index `current_index`. Entries already present keep
    /// their provenance.
    pub fn with_content(&self, content: &ScrContent, author: &Author, current_index: u64) -> Self {
        let carry = |section: ScrSection| -> Vec<ScrEntry> {
            let before = self.section(section);
            content
                .section(section)
                .iter()
                .map(|input| {
                    before
                        .iter()
                        .find(|old| old.code == input.code && old.text == input.text)
                        .cloned()
                        .unwrap_or_else(|| ScrEntry {
                            code: input.code,
                            text: input.text.clone(),
                            author: author.user,
                            organisation: author.organisation.clone(),
                            recorded_ms: author.at_ms,
                        })
                })
                .collect()
        };
        Self {
            allergies: carry(ScrSection::Allergies),
            adverse_reactions: carry(ScrSection::AdverseReactions),
            acute_medications: carry(ScrSection::AcuteMedications),
            repeat_medications: carry(ScrSection::RepeatMedications),
            ..self.next_version(author, current_index)
        }
    }

    /// The next version with the consent preference `permission`. Opting out clears the
    /// summary: a patient who dissents has no record kept (earlier versions stay in the log
    /// for audit, and are never shown while the dissent stands).
    pub fn with_permission(
        &self,
        permission: ScrPermission,
        author: &Author,
        current_index: u64,
    ) -> Self {
        let mut next = self.next_version(author, current_index);
        next.permission = permission;
        if permission == ScrPermission::No {
            next.allergies.clear();
            next.adverse_reactions.clear();
            next.acute_medications.clear();
            next.repeat_medications.clear();
        }
        next
    }

    fn next_version(&self, author: &Author, current_index: u64) -> Self {
        Self {
            version: self.version + 1,
            updated_by: author.user,
            updated_organisation: author.organisation.clone(),
            updated_ms: author.at_ms,
            previous_index: current_index,
            ..self.clone()
        }
    }

    /// Checks each section's limits, as an update's are checked when it is sent; the error
    /// names the section and entry.
    pub fn validate(&self) -> Result<(), ScrError> {
        for section in ScrSection::ALL {
            let entries = self.section(section);
            check_section(section, entries.iter().map(|e| (e.code, &*e.text)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author(user: u128, organisation: &str, at_ms: u64) -> Author {
        Author {
            user: Uuid::from_u128(user),
            organisation: organisation.parse().expect("code"),
            at_ms,
        }
    }

    fn entry(text: &str) -> ScrEntryInput {
        ScrEntryInput {
            code: Some(91936005),
            text: text.into(),
        }
    }

    #[test]
    fn entries_already_recorded_keep_their_provenance() {
        let nhs: NhsNumber = "9000000009".parse().expect("valid");
        let first = SummaryCareRecord::empty(nhs, &author(1, "Y90001", 10)).with_content(
            &ScrContent {
                allergies: vec![entry("Penicillin: rash")],
                ..ScrContent::default()
            },
            &author(1, "Y90001", 10),
            0,
        );
        assert_eq!(first.version, 1);
        let second = first.with_content(
            &ScrContent {
                allergies: vec![entry("Penicillin: rash"), entry("Latex")],
                ..ScrContent::default()
            },
            &author(2, "Y90001", 20),
            77,
        );
        assert_eq!(second.version, 2);
        assert_eq!(second.previous_index, 77);
        assert_eq!(second.allergies[0].author, Uuid::from_u128(1));
        assert_eq!(second.allergies[0].recorded_ms, 10);
        assert_eq!(second.allergies[1].author, Uuid::from_u128(2));
        second.validate().expect("within the limits");
    }

    #[test]
    fn dissent_clears_the_summary() {
        let nhs: NhsNumber = "9000000009".parse().expect("valid");
        let who = author(1, "Y90001", 10);
        let record = SummaryCareRecord::empty(nhs, &who).with_content(
            &ScrContent {
                repeat_medications: vec![entry("Ramipril 5mg daily")],
                ..ScrContent::default()
            },
            &who,
            0,
        );
        let opted_out = record.with_permission(ScrPermission::No, &who, 5);
        assert!(opted_out.repeat_medications.is_empty());
        assert_eq!(opted_out.version, 2);
    }

    #[test]
    fn limits_name_the_section_and_entry() {
        let mut content = ScrContent {
            adverse_reactions: vec![entry("ok"), entry("  ")],
            ..ScrContent::default()
        };
        let error = content.validate().expect_err("blank text");
        assert_eq!(
            error.to_string(),
            "adverse reactions entry 1: its text has 2 bytes; it must be 1 to 512 and not blank"
        );
        content.adverse_reactions = vec![ScrEntryInput {
            code: Some(12),
            text: "x".into(),
        }];
        assert!(matches!(
            content.validate(),
            Err(ScrError::BadCode { code: 12, .. })
        ));
        content.adverse_reactions = vec![entry("x"); SECTION_ENTRIES_MAX + 1];
        assert!(matches!(
            content.validate(),
            Err(ScrError::TooManyEntries { count: 65, .. })
        ));
    }
}
