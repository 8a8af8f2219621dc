//! The value a decode refused, kept so that the protocol can answer it on its own request.
//!
//! Validated types (an NHS number, a postcode, a date, ...) refuse bad values while they are
//! deserialised. The binary encoding keeps no message for such a refusal (postcard, like most
//! serde formats built for speed, drops serde's custom error text), so without this the server
//! could only tell that the bytes were "not a request" and close the connection. Each type
//! notes what it refused and why; a decoder run inside [`decoding`] gets the first refusal back,
//! with the code and the field it concerns.

use std::cell::RefCell;
use std::fmt::Display;

use crate::request::ErrorCode;

/// A value a validated type refused while it was decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedValue {
    /// The kind of field: `nhs_number`, `postcode`, `ods_code`, `date`, ...
    pub field: &'static str,
    /// The code to answer with: `INVALID_RESOURCE_ID` for identifiers, `INVALID_VALUE` else.
    pub code: ErrorCode,
    /// Why the value was refused, naming the value.
    pub reason: String,
}

impl Display for RejectedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

thread_local! {
    /// The first refusal since the current [`decoding`] began (one per thread: a decode runs on
    /// one thread from start to end).
    static REJECTED: RefCell<Option<RejectedValue>> = const { RefCell::new(None) };
}

/// Runs `decode` and returns its result with the first value a validated type refused during
/// it, if any.
pub fn decoding<T>(decode: impl FnOnce() -> T) -> (T, Option<RejectedValue>) {
    REJECTED.with(|rejected| rejected.borrow_mut().take());
    let decoded = decode();
    (
        decoded,
        REJECTED.with(|rejected| rejected.borrow_mut().take()),
    )
}

/// Notes that a value of `field` was refused with `error` (the first refusal is kept), and
/// passes the error on. Outside [`decoding`] the note is simply replaced by the next one.
pub(crate) fn rejected<E: Display>(field: &'static str, code: ErrorCode, error: E) -> E {
    REJECTED.with(|rejected| {
        let mut rejected = rejected.borrow_mut();
        if rejected.is_none() {
            *rejected = Some(RejectedValue {
                field,
                code,
                reason: error.to_string(),
            });
        }
    });
    error
}

/// Notes a refused identifier (see [`rejected`]).
pub(crate) fn rejected_id<E: Display>(field: &'static str, error: E) -> E {
    rejected(field, ErrorCode::InvalidResourceId, error)
}

/// Notes a refused value (see [`rejected`]).
pub(crate) fn rejected_value<E: Display>(field: &'static str, error: E) -> E {
    rejected(field, ErrorCode::InvalidValue, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NhsNumber;
    use crate::pds::values::{Date, Postcode};

    #[test]
    fn a_decode_returns_the_first_value_refused_in_it() {
        // 943 476 5871 fails its check digit (943 476 5870 is valid).
        let bytes = postcard::to_allocvec(&9_434_765_871u64).expect("serialises");
        let (decoded, rejected) = decoding(|| postcard::from_bytes::<NhsNumber>(&bytes));
        assert!(decoded.is_err());
        let rejected = rejected.expect("the NHS number was refused");
        assert_eq!(rejected.field, "nhs_number");
        assert_eq!(rejected.code, ErrorCode::InvalidResourceId);
        assert!(rejected.reason.contains("check digit"), "{rejected}");

        let bytes = postcard::to_allocvec(&(2024u16, 2u8, 30u8)).expect("serialises");
        let (decoded, rejected) = decoding(|| postcard::from_bytes::<Date>(&bytes));
        assert!(decoded.is_err());
        assert_eq!(rejected.expect("refused").field, "date");

        let bytes = postcard::to_allocvec("LS1 4HR").expect("serialises");
        let (decoded, rejected) = decoding(|| postcard::from_bytes::<Postcode>(&bytes));
        assert!(decoded.is_ok());
        assert_eq!(rejected, None, "a valid value leaves nothing behind");
    }
}
