//! The Personal Demographics Service: one record per person, keyed by the NHS number.

pub mod nhs_number;
