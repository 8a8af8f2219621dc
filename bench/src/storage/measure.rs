//! What every engine shares: the payload, the keys, latency histograms and the timed loops.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Payload bytes of every record.
pub const PAYLOAD_SIZE: usize = 256;

/// Keys per appender: appender `a` writes keys `a * KEYS_PER_APPENDER + 1` onwards, so keys are
/// unique across appenders without coordination. No appender gets near a billion appends.
const KEYS_PER_APPENDER: u64 = 1_000_000_000;

/// Random keys drawn before a read run and cycled through, so that drawing them is not timed.
/// 2^20 keys (8 MiB) are far more than the CPU caches hold, so a second pass over them is no
/// cheaper than the first.
const READ_KEYS_COUNT: usize = 1 << 20;

/// Keys per read chunk: the deadline is checked once per chunk, and spine's `get_many` takes a
/// chunk at a time.
pub const READ_CHUNK: usize = 256;

/// Seed of the random read keys, fixed so that runs read the same keys.
const READ_SEED: u64 = 0x5EED_5B1E;

/// The payload of every record. Its first byte is what reads add up to prove they read it.
pub fn payload() -> Vec<u8> {
    (0..PAYLOAD_SIZE)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(7))
        .collect()
}

/// The first payload byte, which reads add up; 0 for an empty payload, which the checksum check
/// then catches.
pub fn first_byte(payload: &[u8]) -> u64 {
    payload.first().map_or(0, |&byte| u64::from(byte))
}

/// The `index`-th key of appender `appender`.
pub fn appender_key(appender: usize, index: u64) -> u64 {
    assert!(index < KEYS_PER_APPENDER);
    appender as u64 * KEYS_PER_APPENDER + index + 1
}

/// Random keys in `1..=records`, the same on every run.
pub fn random_keys(records: u64) -> Vec<u64> {
    assert!(records > 0);
    let mut rng = StdRng::seed_from_u64(READ_SEED);
    (0..READ_KEYS_COUNT)
        .map(|_| rng.random_range(1..=records))
        .collect()
}

/// Latencies in nanoseconds.
pub struct Latency(Histogram<u64>);

impl Latency {
    /// Nanoseconds the histogram holds; longer waits are recorded as this.
    const NANOS_MAX: u64 = 600_000_000_000;

    pub fn new() -> Self {
        // Three significant digits: 0.1 % resolution, about 200 KiB per histogram.
        let histogram = Histogram::new_with_bounds(1, Self::NANOS_MAX, 3);
        // The bounds are constants that `new_with_bounds` accepts (low >= 1, high >= 2 * low).
        Self(histogram.unwrap_or_else(|error| panic!("histogram bounds: {error}")))
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    /// Records `count` operations of `latency` each (a chunk's latency divided among its reads).
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.0.saturating_record_n(nanos.max(1), count);
    }

    pub fn add(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        self.0
            .add(&other.0)
            .unwrap_or_else(|error| panic!("histograms with equal bounds: {error}"));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn p50_us(&self) -> f64 {
        self.quantile_us(0.50)
    }

    pub fn p99_us(&self) -> f64 {
        self.quantile_us(0.99)
    }

    fn quantile_us(&self, quantile: f64) -> f64 {
        self.0.value_at_quantile(quantile) as f64 / 1_000.0
    }
}

/// Operations done in a timed run.
pub struct Measured {
    /// Operations that count towards throughput: for appends, those acknowledged by the deadline.
    pub ops: u64,
    /// The time they took: for appends, the fixed duration.
    pub elapsed: Duration,
    /// Latency of every operation, including appends that ended after the deadline.
    pub latency: Latency,
}

impl Measured {
    /// A fixed-duration run of appenders, from their latencies and the appends each acknowledged
    /// by the deadline. Appends still waiting at the deadline are not counted as throughput: one
    /// writer left starving in a lock (SQLite's busy handler can leave one waiting for seconds)
    /// would otherwise stretch the run and understate the rate of every other writer. Their wait
    /// still shows in the latencies.
    pub fn appenders(duration: Duration, per_appender: &[(Latency, u64)]) -> Self {
        let mut latency = Latency::new();
        let mut ops = 0;
        for (appender_latency, appender_ops) in per_appender {
            latency.add(appender_latency);
            ops += appender_ops;
        }
        assert!(ops <= latency.count());
        Self {
            ops,
            elapsed: duration,
            latency,
        }
    }

    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes (10^6 bytes) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.ops_per_s() * PAYLOAD_SIZE as f64 / 1e6
    }
}

/// Runs `appenders` OS threads for `duration`; thread `a` calls its appender, made by
/// `make(a)`, with keys `appender_key(a, 0)`, `appender_key(a, 1)`, ... and times each call.
///
/// The appenders are made before the clock starts, so opening connections is not timed.
pub fn run_appender_threads<A>(
    appenders: usize,
    duration: Duration,
    make: impl Fn(usize) -> Result<A>,
) -> Result<Measured>
where
    A: FnMut(u64) -> Result<()> + Send,
{
    assert!(appenders > 0);
    let workers = (0..appenders).map(make).collect::<Result<Vec<A>>>()?;
    let deadline = Instant::now() + duration;
    let per_appender = thread::scope(|scope| {
        let threads: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(appender, mut append)| {
                scope.spawn(move || -> Result<(Latency, u64)> {
                    let mut latency = Latency::new();
                    let mut in_time = 0;
                    let mut index = 0;
                    while Instant::now() < deadline {
                        let key = appender_key(appender, index);
                        let call = Instant::now();
                        append(key).with_context(|| format!("appending key {key}"))?;
                        let done = Instant::now();
                        latency.record(done - call);
                        in_time += u64::from(done <= deadline);
                        index += 1;
                    }
                    Ok((latency, in_time))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Measured::appenders(duration, &per_appender))
}

/// Reads `keys` on this thread, a chunk of [`READ_CHUNK`] at a time and cycling through them,
/// until `duration` has passed. `read_chunk` reads every key of its chunk, records latencies and
/// returns the sum of the payloads' first bytes, which must come to one first byte per read: a
/// read that found nothing or the wrong bytes fails the run.
pub fn read_loop<K>(
    duration: Duration,
    keys: &[K],
    mut read_chunk: impl FnMut(&[K], &mut Latency) -> Result<u64>,
) -> Result<Measured> {
    assert!(!keys.is_empty());
    let mut latency = Latency::new();
    let mut reads: u64 = 0;
    let mut checksum: u64 = 0;
    let started = Instant::now();
    let deadline = started + duration;
    let mut chunks = keys.chunks(READ_CHUNK).cycle();
    while Instant::now() < deadline {
        let Some(chunk) = chunks.next() else {
            unreachable!("cycling a non-empty slice never ends");
        };
        checksum = checksum.wrapping_add(read_chunk(chunk, &mut latency)?);
        reads += chunk.len() as u64;
    }
    let elapsed = started.elapsed();
    ensure!(
        latency.count() == reads,
        "{reads} reads but {} latencies recorded",
        latency.count()
    );
    let expected = reads.wrapping_mul(first_byte(&payload()));
    ensure!(
        checksum == expected,
        "reads summed to {checksum}, expected {expected}: some read returned the wrong bytes"
    );
    Ok(Measured {
        ops: reads,
        elapsed,
        latency,
    })
}
