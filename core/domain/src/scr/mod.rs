//! The Summary Care Record (SCR): a short clinical summary per patient — allergies, adverse
//! reactions, acute and repeat medications — kept by the patient's registered practice and
//! viewed by clinicians elsewhere (A&E, out of hours, pharmacies).
//!
//! - `record.rs`: the record, its entries with their provenance, the patient's consent
//!   preference, and the limits on what a practice may send.
//! - `access.rs`: who may view and change it, and when a view raises a privacy alert.
//!
//! The shard side (storage, versions, audit) is in `shard/scr.rs`.

pub mod access;
pub mod record;
