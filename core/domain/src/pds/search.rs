//! PDS search (trace): the query, its validation against the specification's rules, how a
//! record matches it and with what score, and the index keys that find candidates (sans-IO).
//!
//! Every search the specification allows names a date of birth (a non-fuzzy search needs family
//! name and birth date; each fuzzy combination includes birth date), so one index answers them
//! all: for every name of a patient (family and first given, usual and historic), the name's
//! Soundex code followed by the birth date. A lookup reads the codes of the searched names over
//! the birth-date range, and each candidate is then checked against the whole query.
//!
//! Soundex reads a name left to right, so the code of a wildcard's literal prefix is a prefix of
//! the code of every name it matches: wildcard searches use the same index.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::patient::{AddressUse, Gender, NameUse, Patient};
use super::values::{Date, OdsCode, Postcode};

/// Results a search returns at most (the specification's `_max-results` upper bound).
pub const RESULTS_MAX: usize = 50;
/// Characters in a searched name, at most (the specification: "Max 35 characters").
pub const SEARCH_NAME_CHARS_MAX: usize = 35;
/// Literal characters before a wildcard, at least (the specification: "not in the first two
/// characters").
pub const WILDCARD_PREFIX_MIN: usize = 2;
/// Width of a birth-date range, at most, in days: a bound on the index entries one search
/// reads (ten years).
pub const BIRTH_RANGE_DAYS_MAX: u32 = 3_653;

/// A name as searched: text with optional `*` wildcards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamePattern(String);

impl NamePattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern has a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.0.contains('*')
    }

    /// The text before the first wildcard.
    fn literal_prefix(&self) -> &str {
        self.0.split('*').next().unwrap_or("")
    }

    /// Whether `name` matches, case-insensitively, `*` standing for any run of characters.
    pub fn matches(&self, name: &str) -> bool {
        glob_matches(&fold(&self.0), &fold(name))
    }
}

impl From<&str> for NamePattern {
    fn from(text: &str) -> Self {
        Self(text.to_owned())
    }
}

impl From<String> for NamePattern {
    fn from(text: String) -> Self {
        Self(text)
    }
}

/// An inclusive range of dates (`eq` gives a one-day range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    /// First date in the range.
    pub from: Date,
    /// Last date in the range.
    pub to: Date,
}

impl DateRange {
    /// A range of one day.
    pub fn on(date: Date) -> Self {
        Self {
            from: date,
            to: date,
        }
    }

    /// Whether `date` lies in the range.
    pub fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }
}

/// A postcode as searched: a full postcode, or a prefix with a trailing `*` (`LS*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostcodePattern {
    /// A whole postcode.
    Exact(Postcode),
    /// The first characters of a postcode (spaces ignored), at least two.
    Prefix(String),
}

impl PostcodePattern {
    fn matches(&self, postcode: &Postcode) -> bool {
        match self {
            PostcodePattern::Exact(wanted) => wanted == postcode,
            PostcodePattern::Prefix(prefix) => postcode
                .as_str()
                .replace(' ', "")
                .starts_with(&prefix.replace(' ', "").to_ascii_uppercase()),
        }
    }
}

/// A search, with the options the specification defines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Family name.
    pub family: Option<NamePattern>,
    /// Given name (matches the first given name).
    pub given: Option<NamePattern>,
    /// Gender.
    pub gender: Option<Gender>,
    /// Date of birth, or a range of dates.
    pub birth_date: Option<DateRange>,
    /// Date of death, or a range of dates.
    pub death_date: Option<DateRange>,
    /// Postcode of an address.
    pub postcode: Option<PostcodePattern>,
    /// Registered GP practice.
    pub general_practitioner: Option<OdsCode>,
    /// `_fuzzy-match`: homophones, transposed names and history.
    pub fuzzy: bool,
    /// `_exact-match`: only results with score 1.0.
    pub exact_match: bool,
    /// `_history`: also match previous names and addresses (always on in fuzzy mode).
    pub history: bool,
    /// `_max-results`: 1 to 50.
    pub max_results: u8,
}

impl SearchQuery {
    /// A query with no criteria, the default options and 50 results at most.
    pub fn new() -> Self {
        Self {
            family: None,
            given: None,
            gender: None,
            birth_date: None,
            death_date: None,
            postcode: None,
            general_practitioner: None,
            fuzzy: false,
            exact_match: false,
            history: false,
            max_results: RESULTS_MAX as u8,
        }
    }

    /// Whether restricted patients must be left out: the search used a location field.
    pub fn excludes_restricted(&self) -> bool {
        self.postcode.is_some() || self.general_practitioner.is_some()
    }

    fn searches_history(&self) -> bool {
        self.fuzzy || self.history
    }
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a query breaks the specification's rules (`INVALID_SEARCH_DATA`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// A non-fuzzy search needs at least family name and date of birth.
    #[error("a non-fuzzy search needs at least family name and date of birth")]
    NonFuzzyMinimum,
    /// A fuzzy search needs one of the specification's combinations.
    #[error(
        "a fuzzy search needs given name, family name and date of birth; or family name, date of \
         birth, gender and postcode; or given name, date of birth, gender and postcode"
    )]
    FuzzyCombination,
    /// Wildcards are not allowed in fuzzy mode.
    #[error("wildcards cannot be used in a fuzzy search")]
    WildcardInFuzzy,
    /// A wildcard in the first two characters.
    #[error("{field}: a wildcard needs at least {WILDCARD_PREFIX_MIN} characters before it")]
    WildcardTooEarly {
        /// The field.
        field: &'static str,
    },
    /// A name that is empty, too long or not a name.
    #[error("{field}: {reason}")]
    BadName {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `_max-results` outside 1 to 50.
    #[error("_max-results must be 1 to {RESULTS_MAX}, not {0}")]
    MaxResults(u8),
    /// A date range that ends before it starts, or is wider than allowed.
    #[error("{field}: {reason}")]
    BadRange {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `_exact-match` with wildcards or fuzzy mode, which can never score 1.0.
    #[error("_exact-match cannot be combined with wildcards or a fuzzy search")]
    ExactWithWildcardOrFuzzy,
}

/// Checks `query` against the specification's search rules.
pub fn validate(query: &SearchQuery) -> Result<(), SearchError> {
    if query.max_results == 0 || usize::from(query.max_results) > RESULTS_MAX {
        return Err(SearchError::MaxResults(query.max_results));
    }
    for (field, pattern) in [("family", &query.family), ("given", &query.given)] {
        if let Some(pattern) = pattern {
            check_name_pattern(field, pattern, query.fuzzy)?;
        }
    }
    if let Some(PostcodePattern::Prefix(prefix)) = &query.postcode {
        if query.fuzzy {
            return Err(SearchError::WildcardInFuzzy);
        }
        let letters = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).count();
        if letters < WILDCARD_PREFIX_MIN || letters != prefix.trim().replace(' ', "").len() {
            return Err(SearchError::WildcardTooEarly { field: "postcode" });
        }
    }
    if let Some(range) = query.birth_date {
        check_range("birthdate", range)?;
    }
    if let Some(range) = query.death_date
        && range.to < range.from
    {
        return Err(SearchError::BadRange {
            field: "death-date",
            reason: "the range ends before it starts".into(),
        });
    }
    let has_wildcard = [&query.family, &query.given]
        .into_iter()
        .flatten()
        .any(NamePattern::has_wildcard)
        || matches!(query.postcode, Some(PostcodePattern::Prefix(_)));
    if query.exact_match && (query.fuzzy || has_wildcard) {
        return Err(SearchError::ExactWithWildcardOrFuzzy);
    }
    let (family, given, birth) = (
        query.family.is_some(),
        query.given.is_some(),
        query.birth_date.is_some(),
    );
    let (gender, postcode) = (query.gender.is_some(), query.postcode.is_some());
    if query.fuzzy {
        let allowed = (given && family && birth)
            || (family && birth && gender && postcode)
            || (given && birth && gender && postcode);
        if !allowed {
            return Err(SearchError::FuzzyCombination);
        }
    } else if !(family && birth) {
        return Err(SearchError::NonFuzzyMinimum);
    }
    Ok(())
}

fn check_name_pattern(
    field: &'static str,
    pattern: &NamePattern,
    fuzzy: bool,
) -> Result<(), SearchError> {
    let text = pattern.as_str();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(SearchError::BadName {
            field,
            reason: "empty",
        });
    }
    if chars > SEARCH_NAME_CHARS_MAX {
        return Err(SearchError::BadName {
            field,
            reason: "longer than 35 characters",
        });
    }
    if !text.chars().any(char::is_alphabetic) {
        return Err(SearchError::BadName {
            field,
            reason: "has no letters",
        });
    }
    if let Some(at) = text.find('*') {
        if fuzzy {
            return Err(SearchError::WildcardInFuzzy);
        }
        if text[..at].chars().count() < WILDCARD_PREFIX_MIN {
            return Err(SearchError::WildcardTooEarly { field });
        }
    }
    Ok(())
}

fn check_range(field: &'static str, range: DateRange) -> Result<(), SearchError> {
    if range.to < range.from {
        return Err(SearchError::BadRange {
            field,
            reason: "the range ends before it starts".into(),
        });
    }
    let days = day_number(range.to) - day_number(range.from);
    if days > i64::from(BIRTH_RANGE_DAYS_MAX) {
        return Err(SearchError::BadRange {
            field,
            reason: format!("a range of {days} days is wider than {BIRTH_RANGE_DAYS_MAX}"),
        });
    }
    Ok(())
}

/// Days since 0000-03-01 in the proleptic Gregorian calendar (for range widths).
fn day_number(date: Date) -> i64 {
    let (year, month, day) = date.parts();
    let (year, month) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    365 * year + year / 4 - year / 100 + year / 400 + (153 * month + 2) / 5 + i64::from(day) - 1
}

/// Upper case with accents and punctuation kept: the PDS compares names case-insensitively.
fn fold(text: &str) -> String {
    text.trim().to_uppercase()
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // Classic greedy matching with one backtrack point: linear for patterns like ours.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// A name's Soundex code packed in 16 bits: the first letter (0–25) and up to three digits
/// (1–6, 0 where the name ran out), so codes sort like their text. `None` for a name with no
/// ASCII letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Soundex(u16);

impl Soundex {
    /// The code of `name`.
    pub fn of(name: &str) -> Option<Self> {
        let (first, digits) = soundex_parts(name)?;
        Some(Self::pack(first, &digits))
    }

    fn pack(first: u8, digits: &[u8]) -> Self {
        let mut value = u16::from(first - b'A');
        for position in 0..3 {
            value = value * 7 + u16::from(digits.get(position).copied().unwrap_or(0));
        }
        Self(value)
    }

    /// The codes of every name starting with `prefix`: a range of packed codes.
    fn prefix_range(prefix: &str) -> Option<(Soundex, Soundex)> {
        let (first, digits) = soundex_parts(prefix)?;
        if digits.len() >= 3 {
            let code = Self::pack(first, &digits);
            return Some((code, code));
        }
        // Unknown digits after the prefix's own: from all zeros to all sixes.
        let mut low = digits.clone();
        let mut high = digits;
        low.resize(3, 0);
        high.resize(3, 6);
        Some((Self::pack(first, &low), Self::pack(first, &high)))
    }

    /// The packed value.
    pub fn value(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Soundex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = char::from(b'A' + (self.0 / 343) as u8);
        let digits = [(self.0 / 49) % 7, (self.0 / 7) % 7, self.0 % 7];
        write!(f, "{letter}")?;
        digits.iter().try_for_each(|digit| write!(f, "{digit}"))
    }
}

/// The first letter and up to three digits of American Soundex (H and W do not separate
/// letters of the same code; vowels do).
fn soundex_parts(name: &str) -> Option<(u8, Vec<u8>)> {
    let mut letters = name
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_uppercase());
    let first = letters.next()?;
    let code = |letter: u8| match letter {
        b'B' | b'F' | b'P' | b'V' => 1,
        b'C' | b'G' | b'J' | b'K' | b'Q' | b'S' | b'X' | b'Z' => 2,
        b'D' | b'T' => 3,
        b'L' => 4,
        b'M' | b'N' => 5,
        b'R' => 6,
        _ => 0,
    };
    let mut digits = Vec::with_capacity(3);
    let mut previous = code(first);
    for letter in letters {
        if digits.len() == 3 {
            break;
        }
        let digit = code(letter);
        if digit != 0 && digit != previous {
            digits.push(digit);
        }
        if letter != b'H' && letter != b'W' {
            previous = digit;
        }
    }
    Some((first, digits))
}

/// Birth date as `yyyymmdd`: ordered like the date, and `+ 1` is a valid exclusive bound.
fn date_key(date: Date) -> u32 {
    let (year, month, day) = date.parts();
    u32::from(year) * 10_000 + u32::from(month) * 100 + u32::from(day)
}

/// Bytes in a name-and-birth index key.
pub const INDEX_KEY_BYTES: usize = 6;

/// The index key of one name of a patient born on `birth`.
pub fn index_key(code: Soundex, birth: Date) -> [u8; INDEX_KEY_BYTES] {
    let mut key = [0u8; INDEX_KEY_BYTES];
    key[..2].copy_from_slice(&code.value().to_be_bytes());
    key[2..].copy_from_slice(&date_key(birth).to_be_bytes());
    key
}

/// The index keys of `patient`: one per distinct Soundex code among the family and first given
/// names of every name it has held, each with the birth date. None without a birth date: every
/// search needs one.
pub fn index_keys(patient: &Patient) -> Vec<[u8; INDEX_KEY_BYTES]> {
    let Some(birth) = patient.birth_date else {
        return Vec::new();
    };
    let mut codes: Vec<Soundex> = patient
        .names
        .iter()
        .flat_map(|name| {
            std::iter::once(name.family.as_str()).chain(name.given.first().map(String::as_str))
        })
        .filter_map(Soundex::of)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
        .into_iter()
        .map(|code| index_key(code, birth))
        .collect()
}

/// One lookup in the name-and-birth index: keys from `from` to `to`, `to` exclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRange {
    /// First key.
    pub from: [u8; INDEX_KEY_BYTES],
    /// End key, exclusive.
    pub to: [u8; INDEX_KEY_BYTES],
}

/// The index ranges whose entries are the candidates for `query` (a validated query).
pub fn index_ranges(query: &SearchQuery) -> Vec<IndexRange> {
    let Some(birth) = query.birth_date else {
        return Vec::new();
    };
    let (first_day, end_day) = (date_key(birth.from), date_key(birth.to) + 1);
    let mut code_ranges: Vec<(Soundex, Soundex)> = Vec::new();
    let mut add = |pattern: &NamePattern| {
        let range = if pattern.has_wildcard() {
            Soundex::prefix_range(pattern.literal_prefix())
        } else {
            Soundex::of(pattern.as_str()).map(|code| (code, code))
        };
        code_ranges.extend(range);
    };
    if query.fuzzy {
        // Transposed names: the given name may be filed as a family name and back, and every
        // name of a patient is in the index, so each searched name's code finds them.
        query
            .family
            .iter()
            .chain(query.given.iter())
            .for_each(&mut add);
    } else if let Some(family) = &query.family {
        add(family);
    }
    code_ranges.sort_unstable();
    code_ranges.dedup();
    let mut ranges = Vec::new();
    for (low, high) in code_ranges {
        for code in low.value()..=high.value() {
            let mut from = [0u8; INDEX_KEY_BYTES];
            from[..2].copy_from_slice(&code.to_be_bytes());
            let mut to = from;
            from[2..].copy_from_slice(&first_day.to_be_bytes());
            to[2..].copy_from_slice(&end_day.to_be_bytes());
            ranges.push(IndexRange { from, to });
        }
    }
    ranges
}

/// A match's score in thousandths: 1000 is an exact match.
pub type Score = u16;

/// The score of an exact match.
pub const SCORE_EXACT: Score = 1000;

/// How well `patient` matches `query`; `None` when it does not. The record is the current,
/// undisclosed one: the caller applies the restricted-patient rules.
pub fn score(query: &SearchQuery, patient: &Patient) -> Option<Score> {
    if query.excludes_restricted() && patient.restricted {
        return None;
    }
    let mut score = f64::from(SCORE_EXACT);
    if let Some(range) = query.birth_date
        && !patient
            .birth_date
            .is_some_and(|birth| range.contains(birth))
    {
        return None;
    }
    score *= names_factor(query, patient)?;
    if let Some(gender) = query.gender
        && patient.gender != gender
    {
        return None;
    }
    if let Some(pattern) = &query.postcode {
        score *= postcode_factor(query, pattern, patient)?;
    }
    // In fuzzy mode death date and GP practice only lower the score; otherwise they filter.
    let death_matches = query.death_date.is_none_or(|range| {
        patient
            .deceased
            .as_ref()
            .is_some_and(|death| range.contains(death.date))
    });
    let practice_matches = query
        .general_practitioner
        .as_ref()
        .is_none_or(|wanted| patient.general_practitioner.as_ref() == Some(wanted));
    for matches in [death_matches, practice_matches] {
        if !matches {
            if !query.fuzzy {
                return None;
            }
            score *= 0.9;
        }
    }
    let score = score.round() as Score;
    (!query.exact_match || score == SCORE_EXACT).then_some(score)
}

/// Factor for the names: 1 for the usual name matching as written; lower for a historic name,
/// a homophone or transposed names; `None` when no name matches.
fn names_factor(query: &SearchQuery, patient: &Patient) -> Option<f64> {
    if query.family.is_none() && query.given.is_none() {
        return Some(1.0);
    }
    let wildcard_or_exact = |pattern: &Option<NamePattern>, value: Option<&str>| match pattern {
        None => true,
        Some(pattern) => value.is_some_and(|value| pattern.matches(value)),
    };
    let phonetic = |pattern: &Option<NamePattern>, value: Option<&str>| match pattern {
        None => true,
        Some(pattern) => value.is_some_and(|value| {
            pattern.matches(value) || Soundex::of(pattern.as_str()) == Soundex::of(value)
        }),
    };
    let mut best: Option<f64> = None;
    for name in &patient.names {
        let current = matches!(
            name.name_use,
            NameUse::Usual | NameUse::Nickname | NameUse::Temp
        );
        if !current && !query.searches_history() {
            continue;
        }
        let history_factor = if current { 1.0 } else { 0.9 };
        let family = Some(name.family.as_str());
        let given = name.given.first().map(String::as_str);
        let factor = if wildcard_or_exact(&query.family, family)
            && wildcard_or_exact(&query.given, given)
        {
            Some(1.0)
        } else if query.fuzzy && phonetic(&query.family, family) && phonetic(&query.given, given) {
            Some(0.8)
        } else if query.fuzzy && phonetic(&query.family, given) && phonetic(&query.given, family) {
            Some(0.7)
        } else {
            None
        };
        if let Some(factor) = factor {
            let factor = factor * history_factor;
            best = Some(best.map_or(factor, |best: f64| best.max(factor)));
        }
    }
    best
}

fn postcode_factor(
    query: &SearchQuery,
    pattern: &PostcodePattern,
    patient: &Patient,
) -> Option<f64> {
    let mut best: Option<f64> = None;
    for address in &patient.addresses {
        let current = address.address_use == AddressUse::Home && address.period.end.is_none();
        if !current && !query.searches_history() {
            continue;
        }
        if address
            .postcode
            .as_ref()
            .is_some_and(|postcode| pattern.matches(postcode))
        {
            let factor = if current { 1.0 } else { 0.9 };
            best = Some(best.map_or(factor, |best: f64| best.max(factor)));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soundex(name: &str) -> String {
        Soundex::of(name)
            .map(|code| code.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn soundex_follows_the_american_rules() {
        // Reference codes from the US National Archives' description of Soundex.
        for (name, code) in [
            ("Robert", "R163"),
            ("Rupert", "R163"),
            ("Rubin", "R150"),
            ("Ashcraft", "A261"),
            ("Ashcroft", "A261"),
            ("Tymczak", "T522"),
            ("Pfister", "P236"),
            ("Honeyman", "H555"),
            ("Smith", "S530"),
            ("Smythe", "S530"),
            ("Lee", "L000"),
        ] {
            assert_eq!(soundex(name), code, "{name}");
        }
        assert_eq!(Soundex::of("123"), None);
    }

    #[test]
    fn a_prefix_code_range_covers_every_name_with_that_prefix() {
        for (prefix, names) in [
            ("Sm", &["Smith", "Smythe", "Smart", "Sm"][..]),
            ("Ash", &["Ashcroft", "Ashby", "Ash"][..]),
            ("Ro", &["Robert", "Rowe", "Ro"][..]),
        ] {
            let (low, high) = Soundex::prefix_range(prefix).expect("letters");
            for name in names {
                let code = Soundex::of(name).expect("letters");
                assert!(low <= code && code <= high, "{name} under {prefix}*");
            }
        }
    }

    #[test]
    fn wildcards_match_runs_of_characters_case_insensitively() {
        let pattern = NamePattern::from("Sm*th");
        assert!(pattern.matches("SMITH"));
        assert!(pattern.matches("smyth"));
        assert!(!pattern.matches("Smythe"));
        assert!(NamePattern::from("Ann*").matches("Annabel"));
        assert!(NamePattern::from("Jones").matches("jones"));
        assert!(!NamePattern::from("Jones").matches("Jonesy"));
    }

    #[test]
    fn the_specifications_search_rules_are_enforced() {
        let birth = DateRange::on(Date::new(2010, 10, 22).expect("date"));
        let mut query = SearchQuery::new();
        query.family = Some("Smith".into());
        assert_eq!(validate(&query), Err(SearchError::NonFuzzyMinimum));
        query.birth_date = Some(birth);
        assert_eq!(validate(&query), Ok(()));
        query.family = Some("S*".into());
        assert_eq!(
            validate(&query),
            Err(SearchError::WildcardTooEarly { field: "family" })
        );
        query.family = Some("Sm*".into());
        assert_eq!(validate(&query), Ok(()));
        query.fuzzy = true;
        assert_eq!(validate(&query), Err(SearchError::WildcardInFuzzy));
        query.family = Some("Smith".into());
        assert_eq!(validate(&query), Err(SearchError::FuzzyCombination));
        query.given = Some("Jane".into());
        assert_eq!(validate(&query), Ok(()));
        query.max_results = 51;
        assert_eq!(validate(&query), Err(SearchError::MaxResults(51)));
        query.max_results = 10;
        query.birth_date = Some(DateRange {
            from: Date::new(1900, 1, 1).expect("date"),
            to: Date::new(2000, 1, 1).expect("date"),
        });
        assert!(matches!(
            validate(&query),
            Err(SearchError::BadRange { .. })
        ));
    }

    #[test]
    fn previous_names_and_addresses_match_only_with_history() {
        let mut patient = crate::pds::patient::tests::jane_smith();
        let mut maiden = patient.names[0].clone();
        maiden.name_use = NameUse::Maiden;
        maiden.family = "Jones".into();
        patient.names.push(maiden);
        let mut old_home = patient.addresses[0].clone();
        old_home.postcode = Some("M1 1AA".parse().unwrap());
        old_home.period.end = Some(Date::new(2019, 12, 31).unwrap());
        patient.addresses.push(old_home);

        let mut query = SearchQuery::new();
        query.family = Some("Jones".into());
        query.birth_date = patient.birth_date.map(DateRange::on);
        assert_eq!(
            score(&query, &patient),
            None,
            "no history: current names only"
        );
        query.history = true;
        assert_eq!(
            score(&query, &patient),
            Some(900),
            "a previous name scores lower"
        );

        query.family = Some("Smith".into());
        query.history = false;
        query.postcode = Some(PostcodePattern::Exact("M1 1AA".parse().unwrap()));
        assert_eq!(score(&query, &patient), None);
        query.history = true;
        assert_eq!(score(&query, &patient), Some(900));
        query.postcode = Some(PostcodePattern::Prefix("LS".into()));
        assert_eq!(
            score(&query, &patient),
            Some(SCORE_EXACT),
            "the current home by prefix"
        );
        // Every name the patient held is indexed, so the previous name finds the candidate.
        let keys = index_keys(&patient);
        let jones = index_key(Soundex::of("Jones").unwrap(), patient.birth_date.unwrap());
        assert!(keys.contains(&jones));
    }

    #[test]
    fn day_numbers_count_days() {
        let day = |y, m, d| day_number(Date::new(y, m, d).expect("date"));
        assert_eq!(day(2000, 3, 1) - day(2000, 2, 28), 2);
        assert_eq!(day(2001, 1, 1) - day(2000, 1, 1), 366);
        assert_eq!(day(1901, 1, 1) - day(1900, 1, 1), 365);
    }
}
