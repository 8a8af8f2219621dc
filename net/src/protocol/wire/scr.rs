//! The Summary Care Record's message: a summary's content, as a practice sends it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use spine_domain::scr::record;

use super::values::text;

/// `ScrContent`: the four sections (their limits are checked by the SCR rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ScrContent<'a> {
    allergies: Vec<ScrEntryInput<'a>>,
    adverse_reactions: Vec<ScrEntryInput<'a>>,
    acute_medications: Vec<ScrEntryInput<'a>>,
    repeat_medications: Vec<ScrEntryInput<'a>>,
}

/// `ScrEntryInput`: an optional concept id and the text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ScrEntryInput<'a> {
    code: Option<u64>,
    text: Cow<'a, str>,
}

fn entries(section: &[record::ScrEntryInput]) -> Vec<ScrEntryInput<'_>> {
    section
        .iter()
        .map(|entry| ScrEntryInput {
            code: entry.code,
            text: text(&entry.text),
        })
        .collect()
}

fn domain_entries(section: Vec<ScrEntryInput<'_>>) -> Vec<record::ScrEntryInput> {
    section
        .into_iter()
        .map(|entry| record::ScrEntryInput {
            code: entry.code,
            text: entry.text.into_owned(),
        })
        .collect()
}

impl<'a> From<&'a record::ScrContent> for ScrContent<'a> {
    fn from(content: &'a record::ScrContent) -> Self {
        Self {
            allergies: entries(&content.allergies),
            adverse_reactions: entries(&content.adverse_reactions),
            acute_medications: entries(&content.acute_medications),
            repeat_medications: entries(&content.repeat_medications),
        }
    }
}

impl ScrContent<'_> {
    /// The content (nothing in it is a validated value).
    pub(super) fn into_domain(self) -> record::ScrContent {
        record::ScrContent {
            allergies: domain_entries(self.allergies),
            adverse_reactions: domain_entries(self.adverse_reactions),
            acute_medications: domain_entries(self.acute_medications),
            repeat_medications: domain_entries(self.repeat_medications),
        }
    }
}
