//! Helpers shared by the end-to-end and crash tests in `tests/tests/`.
//!
//! The crash test's writer process and its checker agree on what every record must contain
//! without talking to each other: a record's key determines its payload ([`payload_for_key`]),
//! so the checker can verify any record it finds, acknowledged or not, from the key alone.

use std::path::PathBuf;

pub mod killed;

use spine_storage::LogConfig;

/// The record kind the crash writer uses for every record.
pub const CRASH_RECORD_KIND: u8 = 1;

/// Largest payload the crash writer produces, in bytes.
pub const CRASH_PAYLOAD_MAX: usize = 600;

/// Largest payload the crash logs accept: above [`CRASH_PAYLOAD_MAX`] so that no append is
/// refused, and small so that small segments (256 KiB) pass the log's configuration check.
pub const CRASH_PAYLOAD_BYTES_MAX: u32 = 1024;

/// The configuration of a crash-test log. The writer and the checker must agree on it, recovery
/// in particular on `payload_bytes_max`, so both take it from here.
pub fn crash_log_config(dir: impl Into<PathBuf>, segment_size: u64) -> LogConfig {
    let mut config = LogConfig::new(dir);
    config.segment_size = segment_size;
    config.payload_bytes_max = CRASH_PAYLOAD_BYTES_MAX;
    config
}

/// The splitmix64 finaliser: a bijection on `u64` that scatters its input well.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `counter`-th key (counter from 1) of the run with `seed`, or `None` for the one input
/// that maps to 0 (reserved: "no key").
///
/// `seed` takes the high 32 bits and `counter` the low 32 bits of the input of [`mix64`], a
/// bijection, so keys are unique across runs with different seeds (below 2^32) as long as a run
/// appends fewer than 2^32 records; scattering them exercises the hash index like real keys.
pub fn crash_key(seed: u32, counter: u32) -> Option<u64> {
    Some(mix64((u64::from(seed) << 32) | u64::from(counter))).filter(|&key| key != 0)
}

/// The payload a crash-test record with `key` must have: length `0..=CRASH_PAYLOAD_MAX` and
/// bytes from an xorshift stream, both derived from the key alone.
pub fn payload_for_key(key: u64) -> Vec<u8> {
    let len = (mix64(key ^ 0x5eed) % (CRASH_PAYLOAD_MAX as u64 + 1)) as usize;
    // xorshift64 must not start at 0; `| 1` keeps it non-zero.
    let mut state = mix64(key) | 1;
    let mut payload = Vec::with_capacity(len + 8);
    while payload.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        payload.extend_from_slice(&state.to_le_bytes());
    }
    payload.truncate(len);
    payload
}

/// The engine configuration of the engine crash test: two unpinned shards with small segments
/// and frequent background checkpoints, so that kills land during rolls and checkpoints. No
/// compaction: the checker counts every version an update wrote. The writer and the checker
/// must agree on it.
pub fn engine_crash_config(dir: impl Into<PathBuf>) -> spine_core::engine::EngineConfig {
    let mut config = spine_core::engine::EngineConfig::new(dir);
    config.shards = 2;
    config.pin_threads = false;
    config.segment_size = 1 << 20;
    config.checkpoint_interval_records = 2_000;
    config.expected_keys_per_shard = 1 << 10;
    config.compaction = None;
    config
}

/// Waits for the first of a crash test child's workers to end (they run until killed, so one
/// ending means it failed), and returns how it ended.
pub async fn first_to_end(
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(anyhow::anyhow!("a worker panicked: {error}")),
        None => Ok(()),
    }
}

/// Waits for the printer thread of [`print_lines`] and returns how it ended.
pub fn join_printer(printer: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match printer.join() {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("the printer panicked")),
    }
}

/// Prints `ready`, then every line a crash test's child sends, flushing as they come, until
/// every sender is gone (what [`killed::run_until_killed`] reads).
pub fn print_lines(mut lines: tokio::sync::mpsc::Receiver<String>) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::{BufWriter, Write};
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let write_error = "writing to stdout";
    writeln!(out, "ready").context(write_error)?;
    out.flush().context(write_error)?;
    while let Some(line) = lines.blocking_recv() {
        writeln!(out, "{line}").context(write_error)?;
        while let Ok(line) = lines.try_recv() {
            writeln!(out, "{line}").context(write_error)?;
        }
        out.flush().context(write_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_deterministic_and_bounded() {
        let mut lengths = std::collections::HashSet::new();
        for counter in 1..2000 {
            let key = crash_key(7, counter).unwrap();
            let payload = payload_for_key(key);
            assert_eq!(payload, payload_for_key(key));
            assert!(payload.len() <= CRASH_PAYLOAD_MAX);
            lengths.insert(payload.len());
        }
        // The lengths really vary, so records of many sizes are written.
        assert!(lengths.len() > 500, "{} distinct lengths", lengths.len());
    }

    #[test]
    fn keys_differ_between_seeds() {
        assert_ne!(crash_key(1, 1), crash_key(2, 1));
        assert_ne!(crash_key(1, 1), crash_key(1, 2));
    }
}
