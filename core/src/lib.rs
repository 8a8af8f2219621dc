//! Spine core's engine: one shard per core over the storage log, running the domain services,
//! access control and audit of `spine-domain` (re-exported here under their old paths). See
//! `ARCHITECTURE.md` sections 4–5.
//!
//! Where things are:
//! - [`engine`]: the running engine: pinned shard threads, their inboxes and loops.
//! - [`compaction`]: compacting a stopped data directory's logs (what each shard keeps is
//!   [`shard::retention`]).
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

pub mod backup;
pub mod compaction;
pub mod coordinator;
pub mod engine;
pub mod shard;

// The domain (`spine-domain`), under the paths it has always had here.
pub use spine_domain::{
    NhsNumber, NhsNumberError, Patient, PatientError, Region, access, audit, eps, ers, gp2gp, pds,
    planted, request, restricted, scr,
};
pub use spine_storage as storage;
