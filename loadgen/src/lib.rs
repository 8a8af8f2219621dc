//! `spine-loadgen`: reproduces national traffic against a Spine core server and reports how
//! much it carried and at what latency. See `loadgen/MODEL.md` for the traffic model and its
//! sources, and `ARCHITECTURE.md` section 7.
//!
//! Where things are:
//! - [`embedded`]: the server a run with no `--target` starts in this process (feature
//!   `embedded-server`, on by default).
//! - [`model`]: national rates, the daily curve, the operation mix, the profiles.
//! - [`schedule`]: Poisson send times at the profile's rate (sans-IO).
//! - [`measure`]: what a run counts: offered, completed, failed by code, dropped; histograms.
//! - [`workload`]: the requests each operation sends, over a synthetic population.
//! - [`runner`]: the open-model run against a server, and finding the highest rate.
//! - [`pool`]: the client threads, each with its connections and its share of the schedule.
//! - [`report`]: the text table, the JSON file and the plots.
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "embedded-server")]
pub mod embedded;
pub mod measure;
pub mod model;
pub mod pool;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod workload;
