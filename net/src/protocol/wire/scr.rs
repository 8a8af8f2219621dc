//! The Summary Care Record's message: a summary's content, as a practice sends it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::scr::record;

use super::invalid_field::Checked;
use super::list::List;
use super::values::text;

/// `ScrContent`: the four sections (their limits are checked by the SCR rules).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct ScrContent<'a> {
    allergies: Entries<'a>,
    adverse_reactions: Entries<'a>,
    acute_medications: Entries<'a>,
    repeat_medications: Entries<'a>,
}

type Entries<'a> = List<'a, record::ScrEntryInput, ScrEntryInput<'a>>;

/// `ScrEntryInput`: an optional concept id and the text.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ScrEntryInput<'a> {
    code: Option<u64>,
    text: Cow<'a, str>,
}

impl<'a> From<&'a record::ScrEntryInput> for ScrEntryInput<'a> {
    fn from(entry: &'a record::ScrEntryInput) -> Self {
        Self {
            code: entry.code,
            text: text(&entry.text),
        }
    }
}

#[allow(clippy::unnecessary_wraps)] // A list's conversion may refuse; this one never does.
fn domain_entry(entry: ScrEntryInput<'_>) -> Checked<record::ScrEntryInput> {
    Ok(record::ScrEntryInput {
        code: entry.code,
        text: entry.text.into_owned(),
    })
}

impl<'a> From<&'a record::ScrContent> for ScrContent<'a> {
    fn from(content: &'a record::ScrContent) -> Self {
        Self {
            allergies: List::Domain(&content.allergies),
            adverse_reactions: List::Domain(&content.adverse_reactions),
            acute_medications: List::Domain(&content.acute_medications),
            repeat_medications: List::Domain(&content.repeat_medications),
        }
    }
}

impl ScrContent<'_> {
    /// The content (nothing in it is a validated value).
    pub(super) fn into_domain(self) -> Checked<record::ScrContent> {
        Ok(record::ScrContent {
            allergies: self.allergies.into_domain("allergies", domain_entry)?,
            adverse_reactions: self
                .adverse_reactions
                .into_domain("adverse_reactions", domain_entry)?,
            acute_medications: self
                .acute_medications
                .into_domain("acute_medications", domain_entry)?,
            repeat_medications: self
                .repeat_medications
                .into_domain("repeat_medications", domain_entry)?,
        })
    }
}
