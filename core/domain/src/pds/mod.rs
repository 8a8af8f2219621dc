//! The Personal Demographics Service: one record per person, keyed by the NHS number.
//!
//! - [`nhs_number`]: the identifier and its check digit.
//! - [`values`]: validated dates, postcodes and ODS codes.
//! - [`patient`]: the demographic record, its limits, the restricted-patient rule and its
//!   encoding in the log.
//! - [`synthetic`]: deterministic synthetic populations for tests, benchmarks and load.
//! - [`search`]: the search query, its rules, matching and scoring, and the index keys.

pub mod nhs_number;
pub mod patient;
pub mod search;
pub mod synthetic;
pub mod values;
