//! Spine core's engine: one shard per core over the storage log, the domain services (PDS, SCR,
//! EPS, e-Referrals, GP2GP), access control and audit. See `DESIGN.md` sections 4–5.
//!
//! Built on [`spine_storage`]; the engine itself is the subject of issue 3 and not written yet.
#![warn(missing_docs, unreachable_pub)]

pub use spine_storage as storage;
