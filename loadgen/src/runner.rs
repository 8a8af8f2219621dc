//! The open-model run: requests are sent on the schedule whatever the answers do, each
//! measured from its intended send time, so a stalled server shows as latency instead of
//! slowing the sender down (no coordinated omission). A bound on requests in flight keeps the
//! generator's memory bounded; what it keeps from being sent is counted as dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use spine_core::pds::synthetic::SplitMix64;
use spine_net::client::Client;
use tokio::time::Instant;

use crate::measure::Measurement;
use crate::model::{Mix, NATIONAL_PEAK_PER_S, Op};
use crate::schedule::Schedule;
use crate::workload::{Done, Workload};

/// Something that carries out operations: the network workload, or a stand-in in tests of
/// the accounting.
pub trait Driver: Send + Sync + 'static {
    /// Carries out `op`, choosing what it needs with a generator seeded by `seed`.
    fn run(self: Arc<Self>, op: Op, seed: u64) -> Pin<Box<dyn Future<Output = Done> + Send>>;
}

/// The workload over connections to a server, used round-robin.
pub struct NetworkDriver {
    workload: Arc<Workload>,
    clients: Vec<Client>,
    next: AtomicUsize,
}

impl NetworkDriver {
    /// Operations of `workload` over `clients` (at least one).
    pub fn new(workload: Arc<Workload>, clients: Vec<Client>) -> Self {
        assert!(!clients.is_empty(), "at least one connection");
        Self {
            workload,
            clients,
            next: AtomicUsize::new(0),
        }
    }
}

impl Driver for NetworkDriver {
    fn run(self: Arc<Self>, op: Op, seed: u64) -> Pin<Box<dyn Future<Output = Done> + Send>> {
        Box::pin(async move {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
            let mut random = SplitMix64::new(seed);
            self.workload
                .run(op, &self.clients[slot], &mut random)
                .await
        })
    }
}

/// The intended rate at a time (seconds) of the run.
pub type RateFn = Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct RunConfig {
    /// How long.
    pub duration: Duration,
    /// The intended rate over the run.
    pub rate: RateFn,
    /// The highest rate `rate` reaches.
    pub highest: f64,
    /// The operations and their shares.
    pub mix: Mix,
    /// Seed of the schedule and of every choice.
    pub seed: u64,
    /// Operations in flight at most; one more is dropped.
    pub in_flight_max: usize,
}

/// A uniform draw in [0, 1).
fn uniform(random: &mut SplitMix64) -> f64 {
    (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `config` with `driver`, showing progress on `progress`.
pub async fn run<D: Driver>(
    driver: Arc<D>,
    config: &RunConfig,
    progress: &ProgressBar,
) -> Measurement {
    let start = Instant::now();
    let mut measurement = Measurement::default();
    // The operations in flight, polled by this task (one wake-up covers every completion that
    // arrived meanwhile); each reports when it ended.
    let mut in_flight = FuturesUnordered::new();
    let mut random = SplitMix64::new(config.seed ^ 0xA5A5_A5A5);
    let rate = Arc::clone(&config.rate);
    let mut schedule = Schedule::new(
        config.seed,
        config.duration.as_secs_f64(),
        config.highest,
        move |t| rate(t),
    )
    .peekable();
    let mut last_shown = start;
    let record = |measurement: &mut Measurement, (op, done, intended, ended): Ended| {
        let done: Done = done;
        measurement.record(
            op,
            done.requests,
            done.outcome,
            ended - intended,
            ended - start,
        );
    };
    while let Some(&offset) = schedule.peek() {
        let intended = start + Duration::from_secs_f64(offset);
        // Timers are coarse: wait only when the next send is well ahead (taking completions
        // meanwhile). A late send still counts from its intended time.
        if intended > Instant::now() + Duration::from_millis(1) {
            tokio::select! {
                () = tokio::time::sleep_until(intended) => {}
                Some(ended) = in_flight.next(), if !in_flight.is_empty() => {
                    record(&mut measurement, ended);
                    continue;
                }
            }
        }
        schedule.next();
        measurement.offered += 1;
        if in_flight.len() >= config.in_flight_max {
            measurement.dropped += 1;
            continue;
        }
        let op = config.mix.pick(uniform(&mut random));
        let seed = random.next_u64();
        let driver = Arc::clone(&driver);
        // Latency runs from the intended send time, or from the actual one when the timer's
        // coarseness sent it a little early: never shorter than the real round trip, never
        // hiding a late send.
        let start_of_request = intended.min(Instant::now());
        in_flight.push(async move {
            let done = driver.run(op, seed).await;
            (op, done, start_of_request, Instant::now())
        });
        while let Some(Some(ended)) = in_flight.next().now_or_never() {
            record(&mut measurement, ended);
        }
        if last_shown.elapsed() >= Duration::from_millis(250) {
            last_shown = Instant::now();
            show(progress, &measurement, start.elapsed(), config);
        }
    }
    while let Some(ended) = in_flight.next().await {
        record(&mut measurement, ended);
    }
    show(progress, &measurement, start.elapsed(), config);
    measurement
}

/// An operation that ended: what it was, how it went, when its latency counts from (its
/// intended send time, or its actual one if that was earlier) and when it ended.
type Ended = (Op, Done, Instant, Instant);

fn show(progress: &ProgressBar, measurement: &Measurement, elapsed: Duration, config: &RunConfig) {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    progress.set_position((elapsed.as_secs_f64() * 1000.0) as u64);
    progress.set_message(format!(
        "{:.0}/s intended {:.0}/s  p99 {:.2} ms  failed {}  dropped {}",
        (measurement.completed + measurement.failed) as f64 / seconds,
        (config.rate)(elapsed.as_secs_f64().min(config.duration.as_secs_f64())),
        measurement.latency.value_at_quantile(0.99) as f64 / 1000.0,
        measurement.failed,
        measurement.dropped,
    ));
}

/// A latency and error objective.
#[derive(Clone, Copy, Debug)]
pub struct Objective {
    /// 99th percentile latency, at most, in milliseconds.
    pub max_p99_ms: f64,
    /// Failed and dropped operations, at most, as a share of those offered.
    pub max_error_rate: f64,
}

impl Objective {
    /// Whether `measurement` meets the objective.
    pub fn met_by(&self, measurement: &Measurement) -> bool {
        measurement.latency.value_at_quantile(0.99) as f64 / 1000.0 <= self.max_p99_ms
            && measurement.error_rate() <= self.max_error_rate
    }
}

/// One rate tried by [`find_max`].
#[derive(Clone, Debug)]
pub struct Step {
    /// The rate, requests a second.
    pub rate: f64,
    /// What it measured.
    pub measurement: Measurement,
    /// Whether it met the objective.
    pub met: bool,
}

/// Steps a steady rate up from the national peak (doubling) until the objective breaks (twice
/// in a row at one rate: one miss may be the machine's, not the server's), then narrows between
/// the last rate that met it and the first that did not (three halvings). Returns every step;
/// the highest that met the objective is the answer.
pub async fn find_max<D: Driver>(
    driver: Arc<D>,
    base: &RunConfig,
    objective: Objective,
    progress: impl Fn(f64) -> ProgressBar,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let try_rate = |rate: f64, steps: &mut Vec<Step>| {
        let driver = Arc::clone(&driver);
        let config = RunConfig {
            rate: Arc::new(move |_| rate),
            highest: rate,
            seed: base.seed.wrapping_add(steps.len() as u64),
            ..base.clone()
        };
        let bar = progress(rate);
        async move {
            let measurement = run(driver, &config, &bar).await;
            bar.finish_and_clear();
            let met = objective.met_by(&measurement);
            (rate, measurement, met)
        }
    };
    let mut rate = NATIONAL_PEAK_PER_S;
    let mut passed: Option<f64> = None;
    let mut failed: Option<f64> = None;
    for _ in 0..12 {
        let (rate_tried, measurement, met) = try_rate(rate, &mut steps).await;
        steps.push(Step {
            rate: rate_tried,
            measurement,
            met,
        });
        // Shared machines stall now and then: a rate misses only if it misses twice.
        let met = met || {
            let (rate_tried, measurement, met) = try_rate(rate, &mut steps).await;
            steps.push(Step {
                rate: rate_tried,
                measurement,
                met,
            });
            met
        };
        if met {
            passed = Some(rate);
            rate *= 2.0;
        } else {
            failed = Some(rate);
            break;
        }
    }
    if let (Some(mut low), Some(mut high)) = (passed, failed) {
        for _ in 0..3 {
            let middle = (low + high) / 2.0;
            let (rate_tried, measurement, met) = try_rate(middle, &mut steps).await;
            steps.push(Step {
                rate: rate_tried,
                measurement,
                met,
            });
            if met {
                low = middle;
            } else {
                high = middle;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Outcome;

    /// A server that answers at once, except that everything arriving during a stall waits
    /// for its end.
    struct Stalling {
        start: Instant,
        stall: std::ops::Range<Duration>,
    }

    impl Driver for Stalling {
        fn run(self: Arc<Self>, _: Op, _: u64) -> Pin<Box<dyn Future<Output = Done> + Send>> {
            Box::pin(async move {
                let now = self.start.elapsed();
                if self.stall.contains(&now) {
                    tokio::time::sleep_until(self.start + self.stall.end).await;
                }
                Done {
                    outcome: Outcome::Done,
                    requests: 1,
                }
            })
        }
    }

    fn steady(rate: f64, seconds: u64) -> RunConfig {
        RunConfig {
            duration: Duration::from_secs(seconds),
            rate: Arc::new(move |_| rate),
            highest: rate,
            mix: Mix::national(),
            seed: 3,
            in_flight_max: 1_000_000,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_server_shows_as_latency_not_as_a_slower_sender() {
        let config = steady(1_000.0, 4);
        let driver = Arc::new(Stalling {
            start: Instant::now(),
            stall: Duration::from_secs(1)..Duration::from_secs(2),
        });
        let measurement = run(driver, &config, &ProgressBar::hidden()).await;
        // The schedule went on during the stall: about 4,000 offered, all completed.
        assert!(
            (3_800..4_200).contains(&measurement.offered),
            "{}",
            measurement.offered
        );
        assert_eq!(measurement.completed, measurement.offered);
        // A quarter of the requests waited for the stall's end: up to a second.
        let p50 = measurement.latency.value_at_quantile(0.50);
        let p90 = measurement.latency.value_at_quantile(0.90);
        let max = measurement.latency.max();
        assert!(
            p50 < 2_000,
            "p50 {p50} us: most requests were answered at once"
        );
        assert!(
            p90 > 500_000,
            "p90 {p90} us: the stalled quarter is in the tail"
        );
        assert!(
            (950_000..=1_050_000).contains(&max),
            "max {max} us: a full second"
        );
    }

    /// A server that always takes exactly `delay`.
    struct Steady {
        delay: Duration,
    }

    impl Driver for Steady {
        fn run(self: Arc<Self>, _: Op, _: u64) -> Pin<Box<dyn Future<Output = Done> + Send>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                Done {
                    outcome: Outcome::Done,
                    requests: 1,
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_latency_is_shorter_than_the_round_trip() {
        // Sends closer than the timer's resolution go out a little early: their latency must
        // still be the whole round trip, not the part after the intended time.
        let driver = Arc::new(Steady {
            delay: Duration::from_micros(500),
        });
        let measurement = run(driver, &steady(5_000.0, 2), &ProgressBar::hidden()).await;
        let shortest = measurement.latency.min();
        assert!(
            shortest >= 499,
            "a latency of {shortest} us, under the 500 us round trip"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requests_over_the_in_flight_bound_are_dropped_and_counted() {
        let mut config = steady(1_000.0, 3);
        config.in_flight_max = 10;
        let driver = Arc::new(Stalling {
            start: Instant::now(),
            stall: Duration::from_secs(1)..Duration::from_secs(2),
        });
        let measurement = run(driver, &config, &ProgressBar::hidden()).await;
        assert!(measurement.dropped > 900, "{} dropped", measurement.dropped);
        assert_eq!(
            measurement.completed + measurement.dropped,
            measurement.offered,
            "every offered request is either answered or dropped"
        );
    }
}
