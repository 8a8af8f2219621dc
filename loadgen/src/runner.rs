//! The open-model run: requests are sent on the schedule whatever the answers do, each
//! measured from its intended send time, so a stalled server shows as latency instead of
//! slowing the sender down (no coordinated omission). A bound on requests in flight keeps the
//! generator's memory bounded; what it keeps from being sent is counted as dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use spine_domain::pds::synthetic::SplitMix64;
use spine_net::client_set::ClientSet;
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

/// The workload over connections to a server, each request routed to its home shard's core.
pub struct NetworkDriver {
    workload: Arc<Workload>,
    clients: Arc<ClientSet>,
}

impl NetworkDriver {
    /// Operations of `workload` over `clients`.
    pub fn new(workload: Arc<Workload>, clients: Arc<ClientSet>) -> Self {
        Self { workload, clients }
    }
}

impl Driver for NetworkDriver {
    fn run(self: Arc<Self>, op: Op, seed: u64) -> Pin<Box<dyn Future<Output = Done> + Send>> {
        Box::pin(async move {
            let mut random = SplitMix64::new(seed);
            self.workload.run(op, &self.clients, &mut random).await
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

/// Sends in a row, at most, before the runner lets the runtime's other tasks run.
const SENDS_BETWEEN_YIELDS: u32 = 64;

/// A uniform draw in [0, 1).
fn uniform(random: &mut SplitMix64) -> f64 {
    (random.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// An operation that ended.
#[derive(Clone, Debug)]
pub struct Ended {
    /// Which operation.
    pub op: Op,
    /// How it went.
    pub done: Done,
    /// From its intended send time (or its actual one, if that was earlier) to its end.
    pub latency: Duration,
    /// When it ended, from the start of the run.
    pub at: Duration,
}

/// Where a run's counts go: straight into a [`Measurement`], or to the thread that measures
/// the run of several client threads.
pub trait Tally {
    /// One operation was due.
    fn offered(&mut self);
    /// One operation was due but not sent: too many in flight.
    fn dropped(&mut self);
    /// One operation ended.
    fn ended(&mut self, ended: Ended);
}

impl Tally for Measurement {
    fn offered(&mut self) {
        self.offered += 1;
    }

    fn dropped(&mut self) {
        self.dropped += 1;
    }

    fn ended(&mut self, ended: Ended) {
        let Ended {
            op,
            done,
            latency,
            at,
        } = ended;
        self.record(op, done.requests, done.outcome, latency, at);
    }
}

/// Runs `config` with `driver` from now and measures it.
pub async fn run<D: Driver>(driver: Arc<D>, config: &RunConfig) -> Measurement {
    let mut measurement = Measurement::default();
    run_into(driver, config, Instant::now(), &mut measurement).await;
    measurement.finish();
    measurement
}

/// Runs `config` with `driver` from `start` (a moment shared by every client thread), counting
/// into `tally`.
pub async fn run_into<D: Driver>(
    driver: Arc<D>,
    config: &RunConfig,
    start: Instant,
    tally: &mut impl Tally,
) {
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
    let ended = |(op, done, from, to): (Op, Done, Instant, Instant)| Ended {
        op,
        done,
        latency: to - from,
        at: to.saturating_duration_since(start),
    };
    let mut sent_without_waiting = 0;
    while let Some(&offset) = schedule.peek() {
        let intended = start + Duration::from_secs_f64(offset);
        // Timers are coarse: wait only when the next send is well ahead (taking completions
        // meanwhile). A late send still counts from its intended time.
        if intended > Instant::now() + Duration::from_millis(1) {
            sent_without_waiting = 0;
            tokio::select! {
                () = tokio::time::sleep_until(intended) => {}
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    tally.ended(ended(done));
                    continue;
                }
            }
        }
        // Behind schedule, this loop would never wait: let the runtime's other tasks (the
        // connections' readers and writers) run now and then, or the sends pile up unsent.
        sent_without_waiting += 1;
        if sent_without_waiting % SENDS_BETWEEN_YIELDS == 0 {
            tokio::task::yield_now().await;
        }
        schedule.next();
        tally.offered();
        if in_flight.len() >= config.in_flight_max {
            tally.dropped();
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
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            tally.ended(ended(done));
        }
    }
    while let Some(done) = in_flight.next().await {
        tally.ended(ended(done));
    }
}

/// The progress line of a run: rate carried and intended, p99 so far, failures, drops.
pub fn show(
    progress: &ProgressBar,
    measurement: &Measurement,
    elapsed: Duration,
    config: &RunConfig,
) {
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

/// Steps a steady rate up from the national peak (doubling) until the objective breaks, then
/// narrows between the last rate that met it and the first that did not (three halvings).
/// Throughout, a rate misses only if it misses twice in a row: one miss may be the machine's,
/// not the server's. `measure` runs one step: a rate, and the step's number (to vary the seed).
/// Returns every step; the highest that met the objective is the answer.
pub fn find_max(
    mut measure: impl FnMut(f64, u64) -> Measurement,
    objective: Objective,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut try_once = |rate: f64, steps: &mut Vec<Step>| {
        let measurement = measure(rate, steps.len() as u64);
        let met = objective.met_by(&measurement);
        steps.push(Step {
            rate,
            measurement,
            met,
        });
        met
    };
    // Shared machines stall now and then: a rate misses only if it misses twice.
    let mut try_rate =
        |rate: f64, steps: &mut Vec<Step>| try_once(rate, steps) || try_once(rate, steps);
    let mut rate = NATIONAL_PEAK_PER_S;
    let mut passed: Option<f64> = None;
    let mut failed: Option<f64> = None;
    for _ in 0..12 {
        if try_rate(rate, &mut steps) {
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
            if try_rate(middle, &mut steps) {
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
        let measurement = run(driver, &config).await;
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
        let measurement = run(driver, &steady(5_000.0, 2)).await;
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
        let measurement = run(driver, &config).await;
        assert!(measurement.dropped > 900, "{} dropped", measurement.dropped);
        assert_eq!(
            measurement.completed + measurement.dropped,
            measurement.offered,
            "every offered request is either answered or dropped"
        );
    }

    /// A measurement of operations all `latency_ms` long.
    fn measured(latency_ms: u64) -> Measurement {
        let mut measurement = Measurement::default();
        measurement.offered = 100;
        for _ in 0..100 {
            let done = Done {
                outcome: Outcome::Done,
                requests: 1,
            };
            measurement.ended(Ended {
                op: Op::Retrieve,
                done,
                latency: Duration::from_millis(latency_ms),
                at: Duration::ZERO,
            });
        }
        measurement
    }

    #[test]
    fn find_max_doubles_then_narrows_and_forgives_one_miss() {
        let objective = Objective {
            max_p99_ms: 10.0,
            max_error_rate: 0.001,
        };
        // A server that carries 50,000/s, and misses once, by chance, at 14,000/s while
        // doubling and once at 42,000/s while narrowing.
        let mut tried = Vec::new();
        let steps = find_max(
            |rate, step| {
                tried.push(rate);
                let unlucky = (rate == 14_000.0 && step == 2) || (rate == 42_000.0 && step == 7);
                measured(if rate <= 50_000.0 && !unlucky { 2 } else { 30 })
            },
            objective,
        );
        assert_eq!(
            tried,
            vec![
                3_500.0, 7_000.0, 14_000.0, 14_000.0, 28_000.0, 56_000.0, 56_000.0, 42_000.0,
                42_000.0, 49_000.0, 52_500.0, 52_500.0
            ]
        );
        let best = steps
            .iter()
            .filter(|step| step.met)
            .map(|step| step.rate)
            .fold(0.0, f64::max);
        assert_eq!(best, 49_000.0);
        assert_eq!(steps.len(), tried.len());
    }
}
