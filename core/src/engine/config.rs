//! The engine's settings, with defaults for one machine.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use spine_storage::{BackendChoice, LogConfig};

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where each shard keeps its log (`shard-N/`) and where `access.json` is.
    pub data_dir: PathBuf,
    /// Shards, one per core (default: the cores available).
    pub shards: usize,
    /// Pin each shard's thread to its own core.
    pub pin_threads: bool,
    /// Requests waiting for one shard, at most; more are refused with `SERVICE_UNAVAILABLE`.
    /// Default 65,536. Worst-case memory: the channel's slots are allocated up front,
    /// `shards × inbox_capacity ×` [`EngineConfig::inbox_slot_bytes`] (a few hundred bytes
    /// each: 2 shards take tens of MiB); the requests' own bytes are bounded by the server's
    /// byte budget for requests in flight (`in_flight_bytes_max`), not by this count.
    pub inbox_capacity: usize,
    /// Records one turn may append, at most; a turn stops taking requests before it would
    /// pass this. Default 8,192.
    pub turn_records_max: usize,
    /// Encoded bytes one turn's records may take, at most (a turn's first request is always
    /// taken, so a turn may reach [`EngineConfig::input_bytes_max`] when that is larger); never
    /// more than a segment holds. Default 64 MiB (a default segment). With
    /// `turns_in_flight_max` it bounds each shard's log append queue: worst-case memory
    /// `shards × turns_in_flight_max × max(turn_bytes_cap, input_bytes_max)`, 512 MiB for 2
    /// shards at the defaults.
    pub turn_bytes_cap: usize,
    /// Turns whose batch may be in flight at once on one shard. Default 4.
    pub turns_in_flight_max: usize,
    /// Each shard's log segment size, in bytes.
    pub segment_size: u64,
    /// The io backend of the logs.
    pub backend: BackendChoice,
    /// Records between index checkpoints (0: none in the background).
    pub checkpoint_interval_records: u64,
    /// Keys each shard's primary index is sized for up front (it grows past this).
    pub expected_keys_per_shard: usize,
    /// How long a log batch may wait for more records.
    pub batch_delay: Duration,
    /// Nine-digit stems NHS numbers are allocated from.
    pub nhs_stems: Range<u64>,
    /// Write outcomes each shard remembers for idempotent retries. Default 16,384; a fixed
    /// size that fills with use, not a client's to grow (outside the memory budget's table).
    pub outcome_slots: usize,
    /// Index entries one search may read on one shard. Default 20,000: a search's candidates
    /// (tens of bytes each) live only while it runs on the shard's thread, one at a time.
    pub search_candidates_max: usize,
    /// Compaction of the logs' sealed segments while the engine serves (`None`: none; the
    /// default settings otherwise).
    pub compaction: Option<super::compactor::CompactionSettings>,
    /// Makes every shard's log fail on purpose; for tests only (default none).
    pub fault_injection: Option<spine_storage::FaultInjection>,
}

impl EngineConfig {
    /// Defaults: one shard per available core, pinned; synthetic NHS numbers.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let defaults = spine_storage::LogConfig::new("");
        Self {
            data_dir: data_dir.into(),
            shards: cores,
            pin_threads: true,
            inbox_capacity: 65_536,
            turn_records_max: 8_192,
            turn_bytes_cap: usize::MAX,
            turns_in_flight_max: 4,
            segment_size: defaults.segment_size,
            // io_uring runs a buffered file's write and `fdatasync` on a kernel worker thread:
            // one more thread to wake per batch, beside the shard and its log writer. On the
            // 2-core machine the portable backend measured faster in the log's benchmark and
            // under the load generator (bench/RESULTS.md); io_uring stays a choice.
            backend: BackendChoice::Portable,
            // A turn writes a few records per request: checkpoint every few million requests.
            checkpoint_interval_records: 10_000_000,
            expected_keys_per_shard: 1 << 16,
            // A turn already gathers its requests' records into one batch; waiting a little
            // longer than the log's default for the next turns costs some latency and saves
            // flushes: under the load generator at 70,000 operations a second, 600 µs took a
            // sixth less CPU than 250 µs (bench/RESULTS.md).
            batch_delay: Duration::from_micros(600),
            nhs_stems: 900_000_000..crate::pds::synthetic::POPULATION_FIRST_STEM,
            outcome_slots: 16_384,
            search_candidates_max: 20_000,
            compaction: Some(super::compactor::CompactionSettings::default()),
            fault_injection: None,
        }
    }

    /// The log configuration of shard `shard` (offline tools open a stopped engine's logs
    /// with it, and the shard's secondary indexes, `shard::record_layout::ShardIndexes`).
    pub fn log_config(&self, shard: usize) -> LogConfig {
        let mut log = LogConfig::new(self.data_dir.join(format!("shard-{shard}")));
        log.segment_size = self.segment_size;
        log.backend = self.backend;
        log.checkpoint_interval_records = self.checkpoint_interval_records;
        log.expected_keys = self.expected_keys_per_shard;
        log.batch_delay = self.batch_delay;
        // The largest record a shard writes is a patient, which the record's limits keep well
        // under this.
        log.payload_bytes_max = 256 * 1024;
        // Room for every turn that may be in flight, so queueing a turn's batch never waits.
        // Its memory is not this count times the payload limit (32,772 × 256 KiB = 8 GiB): a
        // turn's records take at most `turn_bytes_max` (or one request's, when larger), so the
        // queue holds at most `log_queue_bytes_max` bytes.
        log.appends_pending_max = self.turns_in_flight_max * (self.turn_records_max + 1);
        log.batch_records_max = log.batch_records_max.max(self.turn_records_max);
        log.fault_injection = self.fault_injection;
        log
    }

    /// Encoded bytes one turn's records may take: a turn is one append group of its shard's
    /// log, durable whole or not at all, and a group never spans segments; and no more than
    /// `turn_bytes_cap`.
    pub fn turn_bytes_max(&self) -> usize {
        (self.segment_size as usize)
            .saturating_sub(spine_storage::format::SEGMENT_HEADER_SIZE)
            .min(self.turn_bytes_cap)
    }

    /// Encoded bytes the records of one request may take, at most (a GP2GP chunk with its
    /// transfer's records): a turn takes its first request whatever its size.
    pub fn input_bytes_max() -> usize {
        super::shard_thread::input_bytes_max()
    }

    /// Bytes the records of one shard's log append queue take, at most: `turns_in_flight_max`
    /// turns, each of `turn_bytes_max` (or one request's records, when larger).
    pub fn log_queue_bytes_max(&self) -> u64 {
        let turn = self.turn_bytes_max().max(Self::input_bytes_max());
        self.turns_in_flight_max as u64 * turn as u64
    }

    /// Bytes one slot of a shard's inbox takes (allocated when the engine starts): the
    /// envelope of a request and the channel's sequence stamp.
    pub fn inbox_slot_bytes() -> usize {
        super::shard_thread::envelope_bytes() + std::mem::size_of::<usize>()
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(format!("shards must be 1 to 1024, not {}", self.shards));
        }
        if self.inbox_capacity == 0 {
            return Err("inbox_capacity must be at least 1".into());
        }
        // A search discloses up to 50 patients in one input: two records each, and the meta.
        if self.turn_records_max < 128 {
            return Err("turn_records_max must be at least 128".into());
        }
        if self.turns_in_flight_max == 0 {
            return Err("turns_in_flight_max must be at least 1".into());
        }
        if self.outcome_slots == 0 {
            return Err("outcome_slots must be at least 1".into());
        }
        if self.nhs_stems.is_empty() || self.nhs_stems.end > 1_000_000_000 {
            return Err("nhs_stems must be a non-empty range of nine-digit stems".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shards_log_queue_holds_its_turns_in_flight_of_a_segments_room_at_most() {
        let mut config = EngineConfig::new("unused");
        let room = (64 << 20) - spine_storage::format::SEGMENT_HEADER_SIZE as u64;
        assert_eq!(config.log_queue_bytes_max(), 4 * room);
        // A cap below one request's records: a turn still takes its first request.
        config.turn_bytes_cap = 1;
        assert_eq!(
            config.log_queue_bytes_max(),
            4 * EngineConfig::input_bytes_max() as u64
        );
        // A search's disclosure of 50 matches is the largest: 101 records of 16 KiB.
        assert_eq!(EngineConfig::input_bytes_max(), 101 * 16 * 1024);
        assert!(EngineConfig::inbox_slot_bytes() > std::mem::size_of::<usize>());
    }
}
