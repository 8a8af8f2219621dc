//! Spine core's engine: one shard per core over the storage log, the domain services (PDS, SCR,
//! EPS, e-Referrals, GP2GP), access control and audit. See `DESIGN.md` sections 4–5.
//!
//! Where things are:
//! - [`pds`]: the Personal Demographics Service; so far its identifier ([`NhsNumber`]) and its
//!   record ([`Patient`]).
//! - [`audit`]: audit events and the tamper-evident chain they form (sans-IO).
//!
//! The engine (shards, routing, batching), the rest of PDS and access control are the subject
//! of issue 3 and follow.
#![warn(missing_docs, unreachable_pub)]

pub mod access;
pub mod audit;
pub mod engine;
pub mod pds;
pub mod request;
pub mod shard;

pub use pds::nhs_number::{NhsNumber, NhsNumberError, Region};
pub use pds::patient::{Patient, PatientError};
pub use spine_storage as storage;
