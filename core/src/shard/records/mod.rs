//! The log's record payloads as a schema of their own (`core/RECORDS.md`): for each kind that
//! holds a domain value, the payload's types at each version it is read at, written field for
//! field, with the conversions to and from the domain's types. A code list's value is stored
//! as its number (`spine_domain::codes`), so reordering a domain enum or adding a field to a
//! domain type changes nothing stored.
//!
//! The other kinds are the shard's own bookkeeping, whose types are their payloads already:
//! the alert (`shard/alerts.rs`), the turn's metadata (`shard/meta.rs`) and the previous
//! practice (`shard/registrations.rs`); the audit event is encoded by hand
//! (`crate::audit::event`), a chunk is raw bytes. All but those two use [`versioned`].
//!
//! The kinds' numbers, keys and indexes are [`super::record_layout`]'s.

pub mod outcome;
pub mod patient;
pub mod prescription;
mod read_fields;
pub mod referral;
pub mod scr;
pub mod service;
pub mod slot;
mod stored_list;
pub mod transfer;
pub mod versioned;

use spine_domain::codes::CodeList;

use super::record_layout::RecordKind;

/// Bytes that are not a record of their kind at a version this code reads, or a record that
/// breaks its type's rules: damage, since no encoder of ours writes either.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stored {kind} record is malformed: {reason}")]
pub struct MalformedRecord {
    /// The record kind's name ([`RecordKind::name`]).
    pub kind: &'static str,
    /// What is wrong, naming the field where one is to blame.
    pub reason: String,
}

impl MalformedRecord {
    /// A `kind` record that is malformed for `reason`.
    fn of(kind: RecordKind, reason: String) -> Self {
        Self {
            kind: kind.name(),
            reason,
        }
    }
}

/// The domain's value of a `kind` payload: its version byte `version`, then the stored form
/// `R` with no byte left over, converted by `into_domain` and checked by `validate` (a stored
/// value that breaks its type's rules is damage all the same).
fn read<R, D>(
    kind: RecordKind,
    version: u8,
    payload: &[u8],
    into_domain: impl FnOnce(R) -> Result<D, String>,
    validate: impl FnOnce(&D) -> Result<(), String>,
) -> Result<D, MalformedRecord>
where
    R: for<'de> serde::Deserialize<'de>,
{
    let malformed = |reason| MalformedRecord::of(kind, reason);
    let stored: R = versioned::decode_exact(version, payload).map_err(malformed)?;
    let value = into_domain(stored).map_err(malformed)?;
    validate(&value).map_err(malformed)?;
    Ok(value)
}

/// [`read`] for a kind read straight into its domain type `T` ([`read_fields`]), with no
/// stored form to convert.
fn read_into<T: read_fields::ReadStruct>(
    kind: RecordKind,
    version: u8,
    payload: &[u8],
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, MalformedRecord> {
    let malformed = |reason| MalformedRecord::of(kind, reason);
    let value: T = read_fields::decode(version, payload).map_err(malformed)?;
    validate(&value).map_err(malformed)?;
    Ok(value)
}

/// The code list value stored as `index`, or what is wrong with it.
fn code<T: CodeList>(index: u32) -> Result<T, String> {
    T::try_from_index(index)
        .ok_or_else(|| format!("{}: {index} is not one of {}", T::NAME, T::listing()))
}
