//! A value of a decoded request that its domain type refuses, with where it was.

use std::fmt;

use spine_domain::request::ErrorCode;

/// A value refused while a decoded request was converted into the domain's types: answered on
/// its own request with [`code`](Self::code), the message `<field>: <reason> (at <path>)`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidField {
    /// The kind of value, as `net/PROTOCOL.md`'s validation table names it: `nhs_number`,
    /// `date`, `ods_code`, `gender`, ...
    pub field: &'static str,
    /// Where in the request, from the request's top: `operation.patient.names[1].period.start`.
    pub path: String,
    /// `INVALID_RESOURCE_ID` for an identifier, `INVALID_VALUE` for any other value.
    pub code: ErrorCode,
    /// Why, naming the value.
    pub reason: String,
}

/// A conversion's result. The refusal is boxed so that every `Ok` stays as small as its value:
/// a valid request's conversion moves no refusal-sized results around.
pub(super) type Checked<T> = Result<T, Box<InvalidField>>;

impl InvalidField {
    /// A refused identifier of kind `field`.
    pub(super) fn id(field: &'static str, reason: impl fmt::Display) -> Box<Self> {
        Self::new(field, ErrorCode::InvalidResourceId, reason)
    }

    /// A refused value of kind `field`.
    pub(super) fn value(field: &'static str, reason: impl fmt::Display) -> Box<Self> {
        Self::new(field, ErrorCode::InvalidValue, reason)
    }

    fn new(field: &'static str, code: ErrorCode, reason: impl fmt::Display) -> Box<Self> {
        Box::new(Self {
            field,
            path: String::new(),
            code,
            reason: reason.to_string(),
        })
    }

    /// The same refusal, `segment` further from the request's top (built only on the way out
    /// of a refusal, so a valid request pays nothing for it).
    fn within(mut self: Box<Self>, segment: fmt::Arguments<'_>) -> Box<Self> {
        self.path = if self.path.is_empty() {
            segment.to_string()
        } else {
            format!("{segment}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

/// Naming where a conversion's refusal happened.
pub(super) trait Within<T> {
    /// The refusal, if any, inside the field `name`.
    fn at(self, name: &str) -> Checked<T>;
    /// The refusal, if any, inside element `index` of the list `name`.
    fn at_index(self, name: &str, index: usize) -> Checked<T>;
}

impl<T> Within<T> for Checked<T> {
    #[inline]
    fn at(self, name: &str) -> Checked<T> {
        self.map_err(|refusal| refusal.within(format_args!("{name}")))
    }

    #[inline]
    fn at_index(self, name: &str, index: usize) -> Checked<T> {
        self.map_err(|refusal| refusal.within(format_args!("{name}[{index}]")))
    }
}

/// Each element of `raw` converted by `convert`, a refusal naming the list `name` and the
/// element's index.
pub(super) fn each<R, T>(
    raw: Vec<R>,
    name: &str,
    mut convert: impl FnMut(R) -> Checked<T>,
) -> Checked<Vec<T>> {
    raw.into_iter()
        .enumerate()
        .map(|(index, element)| convert(element).at_index(name, index))
        .collect()
}

/// `raw` converted by `convert` if present.
pub(super) fn optional<R, T>(
    raw: Option<R>,
    convert: impl FnOnce(R) -> Checked<T>,
) -> Checked<Option<T>> {
    raw.map(convert).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_kind_reason_and_path_from_the_top() {
        let refused: Result<(), _> = Err(InvalidField::value("date", "\"2024-02-30\" is no day"));
        let refused = refused.at("start").at("period").at_index("names", 1);
        let refused = refused.at("patient").at("operation").unwrap_err();
        assert_eq!(refused.path, "operation.patient.names[1].period.start");
        assert_eq!(
            refused.to_string(),
            "date: \"2024-02-30\" is no day (at operation.patient.names[1].period.start)"
        );
        assert_eq!(refused.code, ErrorCode::InvalidValue);
        assert_eq!(
            InvalidField::id("ubrn", "too large").code,
            ErrorCode::InvalidResourceId
        );
    }
}
