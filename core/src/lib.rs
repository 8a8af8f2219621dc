//! Spine core's engine: one shard per core over the storage log, the domain services, access
//! control and audit. See `ARCHITECTURE.md` sections 4–5.
//!
//! Where things are:
//! - [`engine`]: the running engine: pinned shard threads, their inboxes and loops.
//! - [`coordinator`]: the requests that span shards (create, search, alerts, nominated
//!   release, slot search and booking, and the booking's repair), over any [`coordinator::ShardLinks`]:
//!   the engine's inboxes, or the simulator's queues.
//! - [`shard`]: one shard's logic as a sans-IO state machine over a [`shard::store::Store`]
//!   (the log, or an in-memory model), with its record layout, idempotency and audit queries.
//! - [`request`]: what callers send and get back, with the error codes.
//! - [`pds`]: the Personal Demographics Service: NHS numbers, the patient record, search rules
//!   and scoring, and synthetic populations.
//! - [`access`]: the directory of users, role profiles, organisations and systems, and the
//!   checks made on every request.
//! - [`audit`]: audit events and the tamper-evident chain they form.
//! - [`scr`]: the Summary Care Record: its content, consent, and who may see and change it.
//! - [`ers`]: the e-Referral Service's booking: referrals, services, slots, and the two-step
//!   booking between a slot's shard and a referral's.
//! - [`eps`]: the Electronic Prescription Service: prescription ids, the record and its rules,
//!   and the dispensing state machine.
//! - [`gp2gp`]: GP2GP record transfers: chunks, the transfer record, its steps and the check of
//!   the whole document.
#![warn(missing_docs, unreachable_pub)]

pub mod access;
pub mod audit;
pub mod coordinator;
mod digits;
pub mod engine;
pub mod eps;
pub mod ers;
pub mod gp2gp;
pub mod pds;
pub mod planted;
pub mod rejected_value;
pub mod request;
pub mod scr;
mod serialize_as_str;
pub mod shard;
mod versioned;

pub use pds::nhs_number::{NhsNumber, NhsNumberError, Region};
pub use pds::patient::{Patient, PatientError};
pub use spine_storage as storage;
