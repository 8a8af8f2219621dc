//! The Electronic Prescription Service: prescriptions sent by prescribers to a central store,
//! downloaded (released) by a pharmacy, dispensed, and claimed for payment, with the prescriber
//! able to cancel until the pharmacy has acted. Pure domain logic, without storage or network:
//! the shards keep [`Prescription`]s under [`PrescriptionId::key_value`], and every change goes
//! through [`state::apply`].
//!
//! - [`prescription_id`]: the short-form id `XXXXXX-XXXXXX-XXXXXC` and its MOD 37-2 check.
//! - [`dmd_code`]: a medicine's dm+d (SNOMED CT) code and its Verhoeff check digit.
//! - [`status`]: the business status codes `0001` to `0009`.
//! - [`prescription`]: what a prescriber sends, its rules, the record kept, expiry, and its
//!   encoding in the log.
//! - [`state`]: the state machine (actions, refusals, and the full transition table).

pub mod dmd_code;
pub mod prescription;
pub mod prescription_id;
pub mod state;
pub mod status;

pub use dmd_code::{DmdCode, DmdCodeError};
pub use prescription::{
    LineItem, NewLineItem, NewPrescription, Prescription, PrescriptionError, StatusChange,
};
pub use prescription_id::{PrescriptionId, PrescriptionIdError};
pub use state::{EpsAction, EpsActionKind, EpsErrorCode, EpsRefusal, apply};
pub use status::PrescriptionStatus;
