//! Spine core's domain: the services' types and rules, access control, audit, and the
//! requests and answers, with no engine, storage, async runtime or sockets (this crate depends
//! on none of them, so the compiler keeps it pure). See `ARCHITECTURE.md` section 5.
//!
//! Where things are:
//! - [`request`]: what callers send and get back, with the error codes.
//! - [`pds`]: the Personal Demographics Service: NHS numbers, the patient record, search rules
//!   and scoring, and synthetic populations.
//! - [`access`]: the directory of users, role profiles, organisations and systems, and the
//!   checks made on every request.
//! - [`audit`]: audit events and the tamper-evident chain they form.
//! - [`scr`]: the Summary Care Record: its content, consent, and who may see and change it.
//! - [`ers`]: the e-Referral Service: referrals, services, slots and the booking's rules.
//! - [`eps`]: the Electronic Prescription Service: prescription ids, the record and its rules,
//!   and the dispensing state machine.
//! - [`gp2gp`]: GP2GP record transfers: chunks, the transfer record, its steps and the check of
//!   the whole document.
//! - [`restricted`]: how a restricted patient's practice is withheld where it stands as an
//!   organisation in another record.
//! - [`codes`]: the number of every code list's value, for the wire and the log alike.
//! - [`routing`]: a key's home shard, the function clients route by.
#![warn(missing_docs, unreachable_pub)]

pub mod access;
pub mod audit;
pub mod codes;
mod digits;
pub mod eps;
pub mod ers;
pub mod gp2gp;
pub mod pds;
pub mod planted;
pub mod request;
pub mod restricted;
pub mod routing;
pub mod scr;
mod serialize_as_str;

pub use pds::nhs_number::{NhsNumber, NhsNumberError, Region};
pub use pds::patient::{Patient, PatientError};
