//! When each request is meant to be sent (sans-IO): Poisson arrivals at the profile's rate,
//! deterministic from a seed. A rate that changes over the run (the daily curve) is followed
//! by thinning: candidates arrive at the highest rate and each is kept with probability
//! rate(t) / highest rate.

use spine_domain::pds::synthetic::SplitMix64;

/// A source of intended send times, in seconds from the start of the run.
#[derive(Clone, Debug)]
pub struct Schedule<F> {
    random: SplitMix64,
    /// The intended rate at a time (seconds) of the run.
    rate: F,
    /// An upper bound of `rate` over the run.
    highest: f64,
    duration: f64,
    now: f64,
}

/// A uniform draw in (0, 1].
fn uniform(random: &mut SplitMix64) -> f64 {
    ((random.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

impl<F: Fn(f64) -> f64> Schedule<F> {
    /// Arrivals over `duration` seconds at `rate(t)` a second, never above `highest`.
    pub fn new(seed: u64, duration: f64, highest: f64, rate: F) -> Self {
        assert!(highest > 0.0, "a schedule needs a positive rate");
        Self {
            random: SplitMix64::new(seed),
            rate,
            highest,
            duration,
            now: 0.0,
        }
    }
}

impl<F: Fn(f64) -> f64> Iterator for Schedule<F> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        loop {
            // Exponential gap at the highest rate, then keep the candidate with the ratio.
            self.now += -uniform(&mut self.random).ln() / self.highest;
            if self.now >= self.duration {
                return None;
            }
            let rate = (self.rate)(self.now);
            assert!(
                rate <= self.highest * (1.0 + 1e-9),
                "rate {rate} above the schedule's bound {}",
                self.highest
            );
            if uniform(&mut self.random) * self.highest <= rate {
                return Some(self.now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn a_steady_schedule_keeps_its_rate_and_is_poisson(
            seed in any::<u64>(),
            rate in 50.0f64..5_000.0,
        ) {
            let duration = 20.0;
            let times: Vec<f64> = Schedule::new(seed, duration, rate, |_| rate).collect();
            let expected = rate * duration;
            let count = times.len() as f64;
            // Within 5 standard deviations of a Poisson count.
            prop_assert!((count - expected).abs() < 5.0 * expected.sqrt(),
                "{count} arrivals, {expected} expected");
            prop_assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
            let gaps: Vec<f64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let variance = gaps.iter().map(|gap| (gap - mean).powi(2)).sum::<f64>()
                / gaps.len() as f64;
            // Exponential gaps: mean 1/rate, coefficient of variation 1.
            prop_assert!((mean * rate - 1.0).abs() < 0.1, "mean gap {mean}");
            let cv = variance.sqrt() / mean;
            prop_assert!((cv - 1.0).abs() < 0.1, "coefficient of variation {cv}");
        }

        #[test]
        fn a_changing_rate_is_followed(seed in any::<u64>()) {
            // Low for the first half, four times higher for the second.
            let duration = 20.0;
            let rate = |t: f64| if t < 10.0 { 250.0 } else { 1_000.0 };
            let times: Vec<f64> = Schedule::new(seed, duration, 1_000.0, rate).collect();
            let first = times.iter().filter(|&&t| t < 10.0).count() as f64;
            let second = times.len() as f64 - first;
            prop_assert!((first - 2_500.0).abs() < 5.0 * 2_500f64.sqrt(), "{first}");
            prop_assert!((second - 10_000.0).abs() < 5.0 * 10_000f64.sqrt(), "{second}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<f64> = Schedule::new(7, 2.0, 100.0, |_| 100.0).collect();
        let b: Vec<f64> = Schedule::new(7, 2.0, 100.0, |_| 100.0).collect();
        let c: Vec<f64> = Schedule::new(8, 2.0, 100.0, |_| 100.0).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
