//! The traffic model: the national rates, the daily curve, the operation mix and the profiles,
//! derived from published figures in `loadgen/MODEL.md` (which gives the sources and the
//! derivations).

use std::path::Path;

/// Published national peak: 3,500 messages a second (NHS Digital, October 2018).
pub const NATIONAL_PEAK_PER_S: f64 = 3_500.0;
/// Published busy day: 47 million transactions (2019), an average of about 544 a second.
pub const NATIONAL_DAY_MESSAGES: f64 = 47_000_000.0;
/// Seconds in a day.
pub const DAY_SECONDS: f64 = 86_400.0;

/// The share of a day's traffic in each hour (00:00–01:00 first), summing to 1: low at night,
/// rising from 07:00, highest in surgery and pharmacy hours (08:00–18:30), an evening tail.
pub const DAILY_CURVE: [f64; 24] = [
    0.010, 0.007, 0.006, 0.006, 0.007, 0.010, 0.018, 0.036, 0.064, 0.080, 0.084, 0.082, 0.076,
    0.078, 0.080, 0.078, 0.072, 0.060, 0.044, 0.032, 0.024, 0.019, 0.015, 0.012,
];

/// What a request does, as the mix weighs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Retrieve a patient by NHS number.
    Retrieve,
    /// Trace by family name and date of birth.
    SearchExact,
    /// Fuzzy trace by given and family name (misspelt) and date of birth.
    SearchFuzzy,
    /// Change a patient's demographics (read-modify-write at the known version).
    Update,
    /// Change one of a few "hot" patients many clients change at once: these must conflict.
    UpdateContended,
    /// Register a new patient.
    Create,
    /// Record a death.
    DeathNotification,
    /// A privacy officer reads a patient's audit trail.
    AuditTrail,
    /// A clinician views a Summary Care Record, with the patient's permission.
    ScrView,
    /// The registered practice updates a Summary Care Record (read, then write at the version).
    ScrUpdate,
    /// A prescription's journey: the GP issues it, the pharmacy releases, dispenses and claims
    /// it (four requests).
    EpsPrescription,
    /// A referral's booking: the GP refers, searches free slots and books one (trying another
    /// when a concurrent booking took it), or defers to the provider when none is free.
    ErsBooking,
    /// A GP2GP transfer of a 1 MiB record: the previous practice starts it and uploads four
    /// chunks, the new practice downloads them and acknowledges delivery (ten requests).
    Gp2gpTransfer,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 13] = [
        Op::Retrieve,
        Op::SearchExact,
        Op::SearchFuzzy,
        Op::Update,
        Op::UpdateContended,
        Op::Create,
        Op::DeathNotification,
        Op::AuditTrail,
        Op::ScrView,
        Op::ScrUpdate,
        Op::EpsPrescription,
        Op::ErsBooking,
        Op::Gp2gpTransfer,
    ];

    /// The operation's name in reports and mix files.
    pub fn name(self) -> &'static str {
        match self {
            Op::Retrieve => "pds_retrieve",
            Op::SearchExact => "pds_search_exact",
            Op::SearchFuzzy => "pds_search_fuzzy",
            Op::Update => "pds_update",
            Op::UpdateContended => "pds_update_contended",
            Op::Create => "pds_create",
            Op::DeathNotification => "pds_death_notification",
            Op::AuditTrail => "audit_trail",
            Op::ScrView => "scr_view",
            Op::ScrUpdate => "scr_update",
            Op::EpsPrescription => "eps_prescription",
            Op::ErsBooking => "ers_booking",
            Op::Gp2gpTransfer => "gp2gp_transfer",
        }
    }
}

/// Operations with their shares of the traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    weights: Vec<(Op, f64)>,
    total: f64,
}

/// Why a mix file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    /// The file could not be read.
    #[error("{0}")]
    Read(String),
    /// An unknown operation, a negative weight, or no weight at all.
    #[error("{0}")]
    Invalid(String),
}

impl Mix {
    /// The national mix (see `MODEL.md`): reads dominate; traces next; changes, registrations
    /// and deaths in proportion to their published daily counts.
    pub fn national() -> Self {
        Self::new(vec![
            (Op::Retrieve, 0.553),
            (Op::SearchExact, 0.20),
            (Op::SearchFuzzy, 0.03),
            (Op::Update, 0.12),
            (Op::UpdateContended, 0.015),
            (Op::Create, 0.01),
            (Op::DeathNotification, 0.004),
            (Op::AuditTrail, 0.001),
            (Op::ScrView, 0.02),
            (Op::ScrUpdate, 0.005),
            (Op::EpsPrescription, 0.04),
            (Op::ErsBooking, 0.002),
            (Op::Gp2gpTransfer, 0.000_05),
        ])
        .expect("the national mix is valid")
    }

    /// A mix of these weights (any positive scale).
    pub fn new(weights: Vec<(Op, f64)>) -> Result<Self, MixError> {
        if let Some((op, weight)) = weights
            .iter()
            .find(|(_, weight)| weight.is_nan() || *weight < 0.0)
        {
            return Err(MixError::Invalid(format!(
                "{}: weight {weight} must be zero or more",
                op.name()
            )));
        }
        let total: f64 = weights.iter().map(|(_, weight)| weight).sum();
        if total <= 0.0 {
            return Err(MixError::Invalid("a mix needs a positive weight".into()));
        }
        Ok(Self { weights, total })
    }

    /// A mix from a TOML file of `operation = weight` lines (names as [`Op::name`]).
    pub fn from_file(path: &Path) -> Result<Self, MixError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| MixError::Read(format!("{}: {error}", path.display())))?;
        let table: std::collections::BTreeMap<String, f64> = toml::from_str(&text)
            .map_err(|error| MixError::Invalid(format!("{}: {error}", path.display())))?;
        let mut weights = Vec::new();
        for (name, weight) in table {
            let op = Op::ALL
                .into_iter()
                .find(|op| op.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
                    MixError::Invalid(format!(
                        "{}: unknown operation {name:?} (known: {})",
                        path.display(),
                        known.join(", ")
                    ))
                })?;
            weights.push((op, weight));
        }
        Self::new(weights)
    }

    /// The operation for a uniform draw `u` in `0..1`.
    pub fn pick(&self, u: f64) -> Op {
        let mut left = u * self.total;
        for &(op, weight) in &self.weights {
            if left < weight {
                return op;
            }
            left -= weight;
        }
        self.weights
            .iter()
            .rev()
            .find(|(_, weight)| *weight > 0.0)
            .map(|(op, _)| *op)
            .expect("a mix has a positive weight")
    }

    /// Each operation's share, from 0 to 1.
    pub fn shares(&self) -> Vec<(Op, f64)> {
        self.weights
            .iter()
            .map(|&(op, weight)| (op, weight / self.total))
            .collect()
    }
}

/// A named way of driving the server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    /// A whole day's curve compressed into the run: the rate follows [`DAILY_CURVE`], scaled so
    /// its peak hour runs at the national peak.
    NationalDay,
    /// The peak at its published rate, steady.
    NationalPeak,
    /// A multiple of the national peak, steady.
    Stress(f64),
}

impl Profile {
    /// The profile's name in reports.
    pub fn name(self) -> String {
        match self {
            Profile::NationalDay => "national-day".into(),
            Profile::NationalPeak => "national-peak".into(),
            Profile::Stress(multiple) => format!("stress-{multiple}x"),
        }
    }

    /// The intended rate (requests a second) at `fraction` (0 to 1) of the run.
    pub fn rate_at(self, fraction: f64) -> f64 {
        match self {
            Profile::NationalDay => {
                let peak_hour = DAILY_CURVE.iter().copied().fold(0.0, f64::max);
                let hour = ((fraction.clamp(0.0, 1.0) * 24.0) as usize).min(23);
                NATIONAL_PEAK_PER_S * DAILY_CURVE[hour] / peak_hour
            }
            Profile::NationalPeak => NATIONAL_PEAK_PER_S,
            Profile::Stress(multiple) => NATIONAL_PEAK_PER_S * multiple,
        }
    }

    /// The highest rate the profile reaches.
    pub fn peak_rate(self) -> f64 {
        match self {
            Profile::NationalDay | Profile::NationalPeak => NATIONAL_PEAK_PER_S,
            Profile::Stress(multiple) => NATIONAL_PEAK_PER_S * multiple,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_curve_is_a_day_and_its_peak_is_in_working_hours() {
        let total: f64 = DAILY_CURVE.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "the curve sums to {total}");
        let peak_hour = DAILY_CURVE
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(hour, _)| hour)
            .unwrap();
        assert!((8..18).contains(&peak_hour));
        // The curve's peak hour against the day's mean: about 2x; the published per-second
        // peak is 6.4–7x the mean (MODEL.md explains the difference).
        let ratio = DAILY_CURVE[peak_hour] * 24.0;
        assert!((1.5..2.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn the_mix_picks_each_operation_in_proportion() {
        let mix = Mix::national();
        let draws = 100_000;
        let mut counts = std::collections::HashMap::new();
        for i in 0..draws {
            *counts
                .entry(mix.pick((i as f64 + 0.5) / draws as f64))
                .or_insert(0) += 1;
        }
        for (op, share) in mix.shares() {
            let seen = f64::from(counts.get(&op).copied().unwrap_or(0)) / f64::from(draws);
            assert!(
                (seen - share).abs() < 0.001,
                "{}: {seen} vs {share}",
                op.name()
            );
        }
    }

    #[test]
    fn mix_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mix.toml");
        std::fs::write(&path, "pds_retrieve = 3\npds_update = 1\n").unwrap();
        let mix = Mix::from_file(&path).unwrap();
        assert_eq!(mix.pick(0.1), Op::Retrieve);
        assert_eq!(mix.pick(0.9), Op::Update);
        std::fs::write(&path, "pds_fly = 1\n").unwrap();
        let error = Mix::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("unknown operation \"pds_fly\""), "{error}");
        std::fs::write(&path, "pds_retrieve = 0\n").unwrap();
        assert!(Mix::from_file(&path).is_err());
    }

    #[test]
    fn profiles_run_at_their_rates() {
        assert_eq!(Profile::NationalPeak.rate_at(0.3), NATIONAL_PEAK_PER_S);
        assert_eq!(Profile::Stress(20.0).rate_at(0.9), 70_000.0);
        let noon = Profile::NationalDay.rate_at(10.5 / 24.0);
        assert_eq!(noon, NATIONAL_PEAK_PER_S, "the peak hour runs at the peak");
        assert!(Profile::NationalDay.rate_at(3.5 / 24.0) < 300.0);
    }
}
