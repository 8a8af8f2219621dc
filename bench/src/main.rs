//! `spine-bench`: benchmarks of Spine core against the engines a user would pick instead.
//!
//! Exit status: 0 when every benchmark ran; 1 when one failed (the error and its causes are
//! printed); 2 for bad arguments.

mod machine;
mod net;
mod pds;
mod storage;

/// mimalloc rather than the system allocator: allocation and freeing took about a tenth of the
/// CPU at 42,000 operations a second, and with it p50 fell by a third (`bench/RESULTS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "spine-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Spine's log against redb and SQLite at equal durability (every acknowledged append is
    /// fsync-durable): durable appends, random reads, and recovery time.
    Storage(storage::StorageArgs),
    /// The engine in process, with audit on, on all shards: PDS retrieve, update and search
    /// (exact and fuzzy) over a synthetic population, the Summary Care Record's update and
    /// view, prescriptions issued and dispensed, e-Referral bookings, GP2GP record uploads and
    /// downloads (and one 100 MiB transfer end to end), and the memory used per patient.
    Pds(pds::PdsArgs),
    /// PDS retrieves over the network through the real server, over TLS and QUIC: throughput
    /// and latency at 1, 16 and 256 outstanding, p99 at a fixed rate, and TLS handshakes a
    /// second.
    Net(net::NetArgs),
}

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the error and its causes on one line, without a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Storage(args) => storage::run(args)?,
        Command::Pds(args) => pds::run(args)?,
        Command::Net(args) => net::run(args)?,
    }
    Ok(ExitCode::SUCCESS)
}
