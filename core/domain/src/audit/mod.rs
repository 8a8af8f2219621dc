//! The audit of every disclosure and change of patient data: what an event records
//! ([`event`]) and the tamper-evident chain the events form ([`chain`]).
//!
//! Both are sans-IO: the engine stores the chained records in its log and releases a response
//! only when the record of its disclosure is durable.

pub mod chain;
pub mod event;
