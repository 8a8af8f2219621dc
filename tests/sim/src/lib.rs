//! `spine-sim`: Spine core in one thread, from one seed, over a disk that loses power.
//!
//! Each shard's real state machine ([`spine_core::shard::ShardState`]) runs over its real log
//! ([`spine_storage::Log`], on real files) whose io backend is a
//! [`spine_storage::SimulatedDisk`]; the real cross-shard coordinators
//! ([`spine_core::coordinator::Coordinator`]) run as futures the simulator polls; the clock is
//! the simulator's. The seed decides everything that is decided: which request is sent, which
//! client moves first, which shard runs a turn with how many inputs, when the clock moves,
//! when a checkpoint is taken, and which fault meets which write (a power loss that keeps none,
//! a prefix or a subset of the write's sectors; a flush that fails with `EIO` or `ENOSPC`,
//! with its bytes on the disk or not; a kill between turns). After each crash the machine is
//! reopened as a restart would, and checked against a reference model built from the answers
//! alone (see `checks.rs` and `model.rs`).
//!
//! Where things are:
//! - `world.rs`: the shards, their logs and disks, the queues between them, the clock.
//! - `clients.rs`: requests as coordinator futures, polled in the seed's order.
//! - `workload.rs`: the set-up and the request mix, retries with their ids included.
//! - `gp2gp.rs`: the GP2GP transfers' steps, and what their answers promise.
//! - `model.rs`: what the answers promise, checked as each answer arrives.
//! - `checks.rs`: what must hold after each restart, and exactly at the end.
//! - `damage.rs`: a flipped bit and a forged audit record in the stopped machine's files, and
//!   what must find them.
//! - `run.rs`: one seed from set-up to the last check.
//! - `trace.rs`: the hashed trace that makes a run comparable with its replay.

mod checks;
mod clients;
mod damage;
mod gp2gp;
mod model;
mod run;
mod trace;
mod workload;
pub mod world;

pub use run::{Plant, SeedReport, SimFailure, SimOptions, run_seed};
