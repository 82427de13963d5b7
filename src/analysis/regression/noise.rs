//! Night-to-night noise: how much a series moves from one night to the
//! next on this machine when nothing changed, estimated from the stored
//! history of earlier nights.
//!
//! A night compared with a stored baseline differs from it by the two
//! nights' own offsets as well as by any change: a machine runs warmer or
//! busier one night than another, and no number of runs inside one night
//! averages that away. The offset has two parts: one every case shares
//! (the night's *common shift*, taken out of the comparison before it is
//! tested, see `common.rs`) and one of the series alone (its *residual*),
//! which enters each verdict as a variance.
//!
//! What a verdict needs is the variance of the difference between two
//! nights' mean log values when nothing changed, and the history shows
//! exactly that: per series, the differences Δ of consecutive nights'
//! means (oriented so that above 0 is worse), each holding both nights'
//! offsets and both nights' sampling. A pair of nights' common part, per
//! time-like metric, is the median of Δ over that metric's cases; a
//! series' residual is Δ less it.
//! The variance is the mean square of those differences, winsorized at
//! three robust SDs (1.4826 × the median absolute difference) so that a
//! real change between two nights (a step in the series) costs one
//! difference rather than inflating the estimate for a month; reported as
//! the SD of one night's mean, √(mean square ÷ 2). Nights that wander
//! together (a warmer rack, a slower week) make consecutive nights differ
//! by σ·√(1 − φ) only, while a baseline saved weeks ago differs from
//! tonight by σ: the SDs are divided by √(1 − φ̂), φ̂ read from the
//! differences themselves (their lag-1 correlation is −(1 − φ)/2).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::stats::median;

/// Differences between consecutive nights needed before a series' night
/// noise is called known: 7 nights in the history.
pub const MIN_NIGHT_DIFFERENCES: usize = 6;
/// The most recent nights the estimate looks back over.
pub const MAX_HISTORY_NIGHTS: usize = 30;
/// Cases of a metric needed in a pair of nights to estimate its common part.
const MIN_COMMON_SERIES: usize = 3;

pub const NIGHT_NOISE_RULE: &str = "from the last 30 nights of this machine's history (full runs of 3 or more separate runs): per series, the differences of consecutive nights' mean log values, oriented so that above 0 is worse; a pair of nights' common part, per time-like metric, is the median difference over that metric's cases (from 3), a series' residual is its difference less that; night SD = √(mean square of the differences ÷ 2), each difference winsorized at 3 × 1.4826 × the median absolute difference; known from 6 differences (7 nights) on, with 2/3 of the differences as its degrees of freedom; nights that wander together differ less from one night to the next than from an older baseline, so every SD is divided by √(1 − φ), φ = 1 + 2 × the lag-1 correlation of the winsorized residual differences pooled over the series, from 0 to 0.9";

/// One series of one earlier night, as the history keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesNight {
    /// Mean of the night's log run values.
    pub mean_log: f64,
    /// SD of the night's log run values (`None` in older history lines).
    pub sd_log: Option<f64>,
    pub runs: u32,
    /// A time or a rate: moves with the machine's speed, so it takes part
    /// in the night's common shift.
    pub time_like: bool,
    /// A rate (higher is better) moves against a time: its differences
    /// are turned round before the night's common part is taken.
    #[serde(default)]
    pub higher_is_better: bool,
}

/// One earlier night: its series by `case metric` key.
#[derive(Debug, Clone)]
pub struct NightRecord {
    pub recorded_at: DateTime<Utc>,
    pub git_commit: String,
    pub series: BTreeMap<String, SeriesNight>,
}

/// One series' night-to-night noise: the SD of one night's mean log
/// value about the series' level, its own offset and its runs' sampling
/// together (two nights differ with twice its variance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesNoise {
    /// Differences between consecutive nights it rests on.
    pub differences: usize,
    /// With the night's common shift taken out, in %.
    pub residual_sd_pct: Option<f64>,
    /// With it left in, in %.
    pub total_sd_pct: Option<f64>,
}

/// A night SD for a verdict: on the log scale, with the degrees of
/// freedom of its estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NightSd {
    pub sd: f64,
    pub dof: f64,
}

/// What the history says about night-to-night noise on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NightNoise {
    pub rule: String,
    /// Earlier nights the estimate rests on.
    pub nights: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_night: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_night: Option<DateTime<Utc>>,
    /// Distinct commits among those nights.
    pub commits: usize,
    /// Lag-1 correlation of the series' night offsets (0 to 0.9): the
    /// series' SDs are divided by √(1 − it), because consecutive nights
    /// that wander together differ less than tonight and an old baseline.
    #[serde(default)]
    pub night_autocorrelation: f64,
    /// By time-like metric: SD of the common night offset its cases share, in %.
    #[serde(default)]
    pub common_sd_pct: BTreeMap<String, f64>,
    /// By `case metric`.
    pub series: BTreeMap<String, SeriesNoise>,
}

impl NightNoise {
    /// Nothing known: no history, or a comparison of two files.
    pub fn unknown() -> Self {
        Self {
            rule: NIGHT_NOISE_RULE.into(),
            ..Self::default()
        }
    }

    /// Estimates the noise from earlier nights, in any order.
    pub fn estimate(history: &[NightRecord]) -> Self {
        let mut nights: Vec<&NightRecord> = history.iter().collect();
        nights.sort_by_key(|n| n.recorded_at);
        let nights = &nights[nights.len().saturating_sub(MAX_HISTORY_NIGHTS)..];
        let mut commits: Vec<&str> = nights.iter().map(|n| n.git_commit.as_str()).collect();
        commits.sort_unstable();
        commits.dedup();
        // Per series: (difference, residual) per pair of nights.
        let mut per_series: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        let mut common: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for pair in nights.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            let differences: Vec<(&str, f64, bool)> = after
                .series
                .iter()
                .filter_map(|(key, b)| {
                    let a = before.series.get(key)?;
                    // Oriented so that above 0 is worse: a slower night
                    // moves a time up and a rate down alike.
                    let d = b.mean_log - a.mean_log;
                    let worse = if b.higher_is_better { -d } else { d };
                    Some((key.as_str(), worse, a.time_like && b.time_like))
                })
                .collect();
            let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for (key, d, _) in differences.iter().filter(|d| d.2) {
                by_metric.entry(metric_of(key)).or_default().push(*d);
            }
            let shared: BTreeMap<&str, f64> = by_metric
                .into_iter()
                .filter(|(_, ds)| ds.len() >= MIN_COMMON_SERIES)
                .filter_map(|(metric, ds)| Some((metric, median(&ds)?)))
                .collect();
            for (metric, c) in &shared {
                common.entry(metric).or_default().push(*c);
            }
            for (key, d, time_like) in differences {
                let residual = match shared.get(metric_of(key)) {
                    Some(c) if time_like => d - c,
                    _ => d,
                };
                per_series.entry(key).or_default().push((d, residual));
            }
        }
        let wander = wander_of(per_series.values().map(|d| d.iter().map(|x| x.1).collect()));
        let inflation = 1.0 / (1.0 - wander).sqrt();
        let series = per_series
            .into_iter()
            .map(|(key, diffs)| {
                let known = diffs.len() >= MIN_NIGHT_DIFFERENCES;
                let sd = |pick: fn(&(f64, f64)) -> f64| {
                    known
                        .then(|| night_sd(&diffs.iter().map(pick).collect::<Vec<_>>()))
                        .flatten()
                        .map(|s| s * inflation * 100.0)
                };
                (
                    key.to_string(),
                    SeriesNoise {
                        differences: diffs.len(),
                        residual_sd_pct: sd(|d| d.1),
                        total_sd_pct: sd(|d| d.0),
                    },
                )
            })
            .collect();
        Self {
            rule: NIGHT_NOISE_RULE.into(),
            nights: nights.len(),
            first_night: nights.first().map(|n| n.recorded_at),
            last_night: nights.last().map(|n| n.recorded_at),
            commits: commits.len(),
            night_autocorrelation: wander,
            common_sd_pct: common
                .into_iter()
                .filter(|(_, cs)| cs.len() >= MIN_NIGHT_DIFFERENCES)
                .filter_map(|(metric, cs)| Some((metric.to_string(), night_sd(&cs)? * 100.0)))
                .collect(),
            series,
        }
    }

    /// A series' night SD: its residual when the night's common shift is
    /// taken out of the comparison, else its whole offset. `None` while
    /// the history is too short.
    pub fn sd_log(&self, key: &str, common_removed: bool) -> Option<NightSd> {
        let s = self.series.get(key)?;
        let pct = if common_removed {
            s.residual_sd_pct
        } else {
            s.total_sd_pct
        };
        pct.map(|p| NightSd {
            sd: p / 100.0,
            dof: dof(s.differences),
        })
    }

    /// The SD of one metric's common night offset, on the log scale.
    pub fn common_sd_log(&self, metric: &str) -> Option<f64> {
        self.common_sd_pct.get(metric).map(|p| p / 100.0)
    }

    /// Whether any series' night noise is known.
    pub fn is_known(&self) -> bool {
        self.series.values().any(|s| s.total_sd_pct.is_some())
    }

    /// Nights still needed before the noise is known.
    pub fn nights_missing(&self) -> usize {
        (MIN_NIGHT_DIFFERENCES + 1).saturating_sub(self.nights)
    }
}

/// How much nights wander together: the lag-1 correlation φ of the
/// series' night offsets, pooled over the series, from 0 to 0.9. Read
/// from the consecutive differences themselves (each winsorized at three
/// robust SDs of its series, so a step costs one difference): for AR(1)
/// nights their lag-1 correlation is −(1 − φ)/2, so φ = 1 + 2 ρ. The SD of
/// consecutive differences reads σ·√(1 − φ); a baseline saved weeks ago
/// differs from tonight by the nights' own SD σ.
fn wander_of(series: impl Iterator<Item = Vec<f64>>) -> f64 {
    let (mut lagged, mut squares) = (0.0, 0.0);
    for differences in series {
        if differences.len() < MIN_NIGHT_DIFFERENCES {
            continue;
        }
        let Some(cap) = winsorizing_cap(&differences) else {
            continue;
        };
        let capped: Vec<f64> = differences.iter().map(|d| d.clamp(-cap, cap)).collect();
        squares += capped.iter().map(|d| d * d).sum::<f64>();
        lagged += capped.windows(2).map(|w| w[0] * w[1]).sum::<f64>();
    }
    if squares > 0.0 {
        (1.0 + 2.0 * lagged / squares).clamp(0.0, 0.9)
    } else {
        0.0
    }
}

/// Three robust SDs of a series' differences (1.4826 × their median
/// absolute value): past it a difference is a step, not noise.
fn winsorizing_cap(differences: &[f64]) -> Option<f64> {
    let abs: Vec<f64> = differences.iter().map(|d| d.abs()).collect();
    median(&abs).map(|m| 3.0 * 1.4826 * m)
}

/// The metric of a `case metric` key (metric names hold no space).
fn metric_of(key: &str) -> &str {
    key.rsplit_once(' ').map_or(key, |(_, metric)| metric)
}

/// The degrees of freedom of a variance from n successive differences
/// (neighbouring differences share a night, so they count for less).
fn dof(differences: usize) -> f64 {
    (2.0 * differences as f64 / 3.0).max(1.0)
}

/// The SD of one night's mean from n differences of consecutive nights:
/// √(mean square ÷ 2), each difference winsorized at three robust SDs.
fn night_sd(differences: &[f64]) -> Option<f64> {
    let n = differences.len();
    if n == 0 {
        return None;
    }
    let abs: Vec<f64> = differences.iter().map(|d| d.abs()).collect();
    let small_sample = if n > 1 {
        n as f64 / (n as f64 - 0.8)
    } else {
        1.0
    };
    let cap = winsorizing_cap(differences)? * small_sample;
    let mean_square = abs.iter().map(|d| d.min(cap).powi(2)).sum::<f64>() / n as f64;
    Some((mean_square / 2.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    /// `nights` nights of `cases` time-like series with a common offset
    /// of SD `common`, residual offsets of SD `residual`, 7 runs a night
    /// of SD `within`; `step` is added to series 0 from night `nights / 2`.
    fn history(
        nights: usize,
        cases: usize,
        common: f64,
        residual: f64,
        step: f64,
    ) -> Vec<NightRecord> {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let normal = |sd: f64| Normal::new(0.0, sd).unwrap();
        let within = 0.02;
        let start = chrono::Utc::now();
        (0..nights)
            .map(|k| {
                let shared = normal(common).sample(&mut rng);
                let series = (0..cases)
                    .map(|c| {
                        let mean = shared
                            + normal(residual).sample(&mut rng)
                            + normal(within / 7f64.sqrt()).sample(&mut rng)
                            + if c == 0 && k >= nights / 2 { step } else { 0.0 };
                        (
                            format!("case{c} ms"),
                            SeriesNight {
                                mean_log: mean,
                                sd_log: Some(within),
                                runs: 7,
                                time_like: true,
                                higher_is_better: false,
                            },
                        )
                    })
                    .collect();
                NightRecord {
                    recorded_at: start + chrono::Duration::days(k as i64),
                    git_commit: format!("c{k}"),
                    series,
                }
            })
            .collect()
    }

    #[test]
    fn the_common_and_residual_parts_are_told_apart() {
        let noise = NightNoise::estimate(&history(30, 8, 0.05, 0.01, 0.0));
        assert_eq!(noise.nights, 30);
        let common = noise.common_sd_pct["ms"];
        assert!((3.5..7.0).contains(&common), "common {common}");
        for c in 0..8 {
            let s = &noise.series[&format!("case{c} ms")];
            let residual = s.residual_sd_pct.unwrap();
            let total = s.total_sd_pct.unwrap();
            // The case's own 1 % and its runs' sampling (2 % ÷ √7).
            assert!(
                (0.8..2.0).contains(&residual),
                "case {c}: residual {residual}"
            );
            assert!(total > 3.5, "case {c}: total {total}");
        }
    }

    #[test]
    fn one_step_in_a_series_does_not_blind_it() {
        // A real 2× change between two nights: one large difference out
        // of 29, which the median of the differences ignores.
        let noise = NightNoise::estimate(&history(30, 8, 0.0, 0.01, 0.69));
        let s = &noise.series["case0 ms"];
        assert!(s.residual_sd_pct.unwrap() < 2.5, "{s:?}");
    }

    /// 30 nights of 8 series whose own offsets (SD 3 %) follow an AR(1)
    /// of correlation `phi`, with 7 runs of 2 % a night.
    fn wandering(phi: f64, seed: u64) -> NightNoise {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sd = 0.03;
        let innovation = Normal::new(0.0, sd * (1.0 - phi * phi).sqrt()).unwrap();
        let sampling = Normal::new(0.0, 0.02 / 7f64.sqrt()).unwrap();
        let mut offsets: Vec<f64> = (0..8)
            .map(|_| Normal::new(0.0, sd).unwrap().sample(&mut rng))
            .collect();
        let start = chrono::Utc::now();
        let nights: Vec<NightRecord> = (0..30)
            .map(|k| {
                let series = offsets
                    .iter_mut()
                    .enumerate()
                    .map(|(c, x)| {
                        *x = phi * *x + innovation.sample(&mut rng);
                        let night = SeriesNight {
                            mean_log: *x + sampling.sample(&mut rng),
                            sd_log: Some(0.02),
                            runs: 7,
                            time_like: true,
                            higher_is_better: false,
                        };
                        (format!("case{c} ms"), night)
                    })
                    .collect();
                NightRecord {
                    recorded_at: start + chrono::Duration::days(k),
                    git_commit: "c".into(),
                    series,
                }
            })
            .collect();
        NightNoise::estimate(&nights)
    }

    /// Consecutive nights that wander together differ by σ·√(1 − φ), not
    /// σ: read as it was, 3 % at φ 0.8 gave about 1.4 %, and a baseline
    /// saved weeks ago failed A/A nights (tests/library/gate.rs).
    #[test]
    fn nights_that_wander_together_read_their_own_sd() {
        let mean_sd = |noise: &NightNoise| {
            noise
                .series
                .values()
                .filter_map(|s| s.residual_sd_pct)
                .sum::<f64>()
                / 8.0
        };
        for seed in 0..5 {
            let independent = wandering(0.0, seed);
            assert!(independent.night_autocorrelation < 0.35, "{independent:?}");
            let wander = wandering(0.8, seed);
            assert!(wander.night_autocorrelation > 0.5, "{wander:?}");
            let sd = mean_sd(&wander);
            eprintln!(
                "seed {seed}: φ̂ {:.2}, SD {sd:.2} % (independent: φ̂ {:.2}, SD {:.2} %)",
                wander.night_autocorrelation,
                independent.night_autocorrelation,
                mean_sd(&independent)
            );
            assert!((1.9..4.5).contains(&sd), "seed {seed}: {sd} %");
        }
    }

    #[test]
    fn a_short_history_is_unknown() {
        let noise = NightNoise::estimate(&history(6, 8, 0.05, 0.01, 0.0));
        assert!(!noise.is_known());
        assert_eq!(noise.nights_missing(), 1);
        assert!(noise.sd_log("case0 ms", true).is_none());
        let known = NightNoise::estimate(&history(7, 8, 0.05, 0.01, 0.0));
        assert_eq!(known.sd_log("case0 ms", true).map(|s| s.dof), Some(4.0));
        assert!(known.is_known());
    }
}
