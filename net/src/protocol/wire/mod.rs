//! The request schema of `spine/1`, of its own: what a request body holds, field for field, with
//! raw values (an NHS number as the integer, an ODS code as the string, a code list's value as
//! its index), decoded whole before any value is judged.
//!
//! The engine's types ([`spine_domain`]) are not what travels: a request is decoded into these
//! types, then converted explicitly ([`Request::into_domain`]) into the domain's, each value
//! checked by its domain type and a refusal naming the field it concerns ([`InvalidField`]).
//! So a bad value is answered on its own request with its specific code, and reordering a
//! domain enum or adding a field to a domain type cannot change what is on the wire: the
//! variant order is written here, every code list's numbers once in `spine_domain::codes`,
//! and both are pinned by the golden tests (`net/tests/golden/messages-v1.txt`).
//!
//! Strings are `Cow`: borrowed from the domain value when a client encodes (no copy), owned
//! when the server decodes (moved into the domain value, as many allocations as a direct
//! decode would make).

mod codes;
mod envelope;
mod eps;
mod ers;
mod invalid_field;
mod list;
mod operation;
mod pds;
mod scr;
mod values;

pub use envelope::Request;
pub use invalid_field::InvalidField;

#[cfg(test)]
mod tests;
