//! Change points in one metric's series of nights: where its level moved
//! and stayed moved, found over the whole series rather than by comparing
//! a few nights with the few before them.
//!
//! The detector is binary segmentation, as E-divisive is, with a rank
//! statistic in place of the energy distance so that a single odd night
//! moves it by one rank whatever its size:
//! 1. the series is taken in logs (a step is a ratio), and its noise is
//!    estimated from consecutive nights: σ = 1.4826 × MAD of the
//!    differences ÷ √2, which a step costs one difference and a spike two;
//!    a night more than 3 σ from the running median of five is a spike and
//!    that median stands in for it in everything below (a step, which the
//!    running median follows within two nights, is left whole);
//! 2. in a segment of at least 2 × [`MIN_SEGMENT_NIGHTS`] nights, every
//!    split leaving that many nights on each side is scored by the
//!    standardized Wilcoxon rank-sum of the nights before it, and the
//!    segment's statistic is the largest |z|;
//! 3. its p-value is the share of random orders of the segment's nights
//!    (permutations, sequentially stopped after [`STOP_EXCEEDANCES`]
//!    exceedances, at most [`MAX_PERMUTATIONS`]) whose largest |z| is as
//!    large; below [`CHANGE_ALPHA`] the segment has a change;
//! 4. the change is placed at the split that fits two levels best (least
//!    squares);
//! 5. the placed split's own rank-sum test must keep p < [`CHANGE_ALPHA`]
//!    with the three nights around it left out (its p-value is the larger
//!    of the two), so that odd nights next to a split cannot make it;
//! 6. a straight line that fits the segment at least as well as the best
//!    two or three levels makes it a creep, not a step, and the segment is
//!    not split further (a slow drift would otherwise be cut into an
//!    alert storm of small steps);
//! 7. both sides are searched again, until no segment has a change;
//! 8. two or more change points in a row one way that a level, a ramp and
//!    a level, joined, fit as well (BIC) are one creep: a drift between
//!    plateaus.
//!
//! The whole series is searched each time a night arrives, so a point
//! near its end is checked again as later nights come: one with fewer
//! than [`CONFIRM_NIGHTS`] nights after it is *provisional*, and the last
//! nights, too few to be a segment, are only watched.
//!
//! Why by hand: no maintained crate offers a permutation-tested,
//! rank-based binary segmentation (the `changepoint` crate fits
//! parametric models with a penalty and no significance).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::stats::median;

/// Nights a level must hold on each side of a change point.
pub const MIN_SEGMENT_NIGHTS: usize = 5;
/// Nights after a change point before it is confirmed rather than
/// provisional (it may still move or vanish as nights arrive).
pub const CONFIRM_NIGHTS: usize = 10;
/// Permutation p-value below which a segment has a change.
pub const CHANGE_ALPHA: f64 = 0.01;
/// Most random orders drawn to test one segment.
pub const MAX_PERMUTATIONS: usize = 1999;
/// Exceedances after which the permutation test stops early (Besag and
/// Clifford's sequential p-value, exceedances ÷ orders drawn).
pub const STOP_EXCEEDANCES: usize = 20;
/// Noise SDs from the running median of five beyond which a night is a
/// spike.
const CLIP_SDS: f64 = 3.0;
/// The smallest step the detector finds in 90 % of series is the larger
/// of [`MDE_LOCATE_SDS`] noise SDs (below it the step is found but often
/// placed more than a night off) and [`MDE_POWER_SDS`] × √(1/n₁ + 1/n₂)
/// noise SDs for n₁ and n₂ nights at its levels (it binds within about 12
/// nights of the series' ends); both calibrated by the seeded histories of
/// this module's tests, which plant steps at 0.9–1.4 × it in mid-series
/// and 5–12 nights from the end and hold it to 90 %.
pub const MDE_LOCATE_SDS: f64 = 2.5;
pub const MDE_POWER_SDS: f64 = 8.0;

pub const CHANGE_POINT_RULE: &str = "binary segmentation of the series' log values: a segment has a change when the largest standardized Wilcoxon rank-sum |z| over its splits (5 or more nights each side) has a permutation p < 0.01 (up to 1999 random orders, stopped after 20 exceedances) and the placed split's own rank-sum test keeps p < 0.01 with the three nights around it left out; a night more than 3 noise SDs from the running median of 5 is a spike and that median stands in for it; the change is placed where two levels fit best (least squares); a segment a straight line fits at least as well as two or three levels is a creep and is not split, and so are two or more change points in a row one way that a level, a ramp and a level, joined, fit as well by BIC; noise SD = 1.4826 × MAD of consecutive differences ÷ √2; smallest step found 90 % of the time with n1 and n2 nights at its levels = SD ÷ √(1 − φ) × max(2.5, 8 × √(1/n1 + 1/n2)), φ the lag-1 correlation of the nights about their levels (creeps left out; 0 to 0.9); a change point with fewer than 10 nights after it is provisional; two or more last nights beyond 3 noise SDs of the level before, one way, are watched";

/// One change point: the first night at the new level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// Index of the first night at the new level (oldest night is 0).
    pub night: usize,
    /// Median of the level after over the level before, less 1, in %.
    pub shift_pct: f64,
    pub p_value: f64,
    /// Nights at the level before and after (to the neighbouring change
    /// points or the series' ends).
    pub nights_before: usize,
    pub nights_after: usize,
    /// The smallest step found 90 % of the time with these nights on
    /// each side at this series' noise (its nights' own SD: wandering
    /// together counted), in %.
    pub mde_pct: f64,
    /// Fewer than [`CONFIRM_NIGHTS`] nights after it: later nights may
    /// move it or take it away.
    pub provisional: bool,
    /// Smaller than the practical threshold ([`SeriesChanges::mark_minor`]):
    /// listed, never an alert.
    #[serde(default)]
    pub minor: bool,
}

/// A stretch of nights whose level moved steadily rather than in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Creep {
    pub first_night: usize,
    pub last_night: usize,
    /// Fitted change per night, in %.
    pub slope_pct_per_night: f64,
    /// Fitted change across the creep, in %: from its first night to its
    /// last for a segment a line fits, and from the level before to the
    /// level after for change points merged into one (the joined ramp).
    pub total_pct: f64,
    pub p_value: f64,
    /// Its total is smaller than the practical threshold: listed, never
    /// an alert.
    #[serde(default)]
    pub minor: bool,
}

/// The last nights, when two or more of them in a row, the last among
/// them, sit more than 3 noise SDs off the level before them on one side
/// and no tested change accounts for them yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailShift {
    pub first_night: usize,
    pub shift_pct: f64,
    /// Smaller than the practical threshold: listed, never an alert.
    #[serde(default)]
    pub minor: bool,
}

/// What the detector found in one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SeriesChanges {
    pub nights: usize,
    /// Night-to-night noise SD of the series, in % (`None` for fewer than
    /// three nights).
    pub noise_sd_pct: Option<f64>,
    /// Lag-1 correlation of the nights about their levels, 0 to 0.9 (`None`
    /// for fewer than three nights): how much nights wander together. The
    /// MDEs count it; the noise SD above does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub night_autocorrelation: Option<f64>,
    /// The smallest step found 90 % of the time in the middle of this
    /// series, in %.
    pub mid_series_mde_pct: Option<f64>,
    pub change_points: Vec<ChangePoint>,
    pub creeps: Vec<Creep>,
    pub tail: Option<TailShift>,
}

impl SeriesChanges {
    /// Marks every change smaller than `threshold_pct` (a step's shift, a
    /// creep's total, a watched tail's shift) as minor. The detector tests
    /// significance only: over enough quiet nights it finds steps far
    /// below anything a team would act on (a +0.45 % step at a night noise
    /// of 0.36 % has been seen here), and nights that wander together
    /// (a warmer rack, a slower week) are not the independent draws its
    /// permutation test assumes. The comparison is the gate's: |ln(1 + x)|
    /// against ln(1 + threshold), so a fall and a rise of one ratio are
    /// judged alike. Minor change points in a row one way whose product
    /// reaches the threshold are none of them minor: a staircase of small
    /// steps adds up. A size that is not a number is never minor.
    pub fn mark_minor(&mut self, threshold_pct: f64) {
        let limit = (threshold_pct / 100.0).ln_1p();
        let log_size = |pct: f64| (pct / 100.0).ln_1p();
        let minor = |pct: f64| log_size(pct).abs() < limit;
        for cp in &mut self.change_points {
            cp.minor = minor(cp.shift_pct);
        }
        // Minor steps in a row one way that add up to the threshold are a
        // staircase, none of them minor. A step past the threshold ends a
        // run: it is an alert of its own, and the wiggle beside it is not.
        let mut run_start = 0;
        while run_start < self.change_points.len() {
            let first = &self.change_points[run_start];
            if !first.minor {
                run_start += 1;
                continue;
            }
            let sign = first.shift_pct.signum();
            let run_end = (run_start + 1..self.change_points.len())
                .find(|&k| {
                    let cp = &self.change_points[k];
                    !cp.minor || cp.shift_pct.signum() != sign
                })
                .unwrap_or(self.change_points.len());
            let run = &mut self.change_points[run_start..run_end];
            let total: f64 = run.iter().map(|cp| log_size(cp.shift_pct)).sum();
            if total.abs() >= limit {
                for cp in run {
                    cp.minor = false;
                }
            }
            run_start = run_end;
        }
        for creep in &mut self.creeps {
            creep.minor = minor(creep.total_pct);
        }
        if let Some(tail) = &mut self.tail {
            tail.minor = minor(tail.shift_pct);
        }
    }
}

/// Finds change points and creeps in a series of nightly values (oldest
/// first). Values that are not finite and positive are left out, and
/// indices refer to the series as given.
pub fn detect_changes(values: &[f64]) -> SeriesChanges {
    let kept: Vec<usize> = (0..values.len())
        .filter(|&i| values[i].is_finite() && values[i] > 0.0)
        .collect();
    let logs: Vec<f64> = kept.iter().map(|&i| values[i].ln()).collect();
    let mut found = detect_in_logs(&logs);
    for cp in &mut found.change_points {
        cp.night = kept[cp.night];
    }
    for creep in &mut found.creeps {
        creep.first_night = kept[creep.first_night];
        creep.last_night = kept[creep.last_night];
    }
    if let Some(tail) = &mut found.tail {
        tail.first_night = kept[tail.first_night];
    }
    found.nights = values.len();
    found
}

/// The smallest step (in log units) found 90 % of the time with `before`
/// and `after` nights at its two levels and noise SD `sd_log`.
pub fn minimum_detectable_step_log(sd_log: f64, before: usize, after: usize) -> f64 {
    let (b, a) = (before.max(1) as f64, after.max(1) as f64);
    sd_log * MDE_LOCATE_SDS.max(MDE_POWER_SDS * (1.0 / b + 1.0 / a).sqrt())
}

fn pct(log: f64) -> f64 {
    log.exp_m1() * 100.0
}

/// σ from consecutive differences, robust to a step (one difference) and a
/// spike (two).
pub fn noise_sd_log(logs: &[f64]) -> Option<f64> {
    if logs.len() < 3 {
        return None;
    }
    let diffs: Vec<f64> = logs.windows(2).map(|w| w[1] - w[0]).collect();
    let center = median(&diffs)?;
    let deviations: Vec<f64> = diffs.iter().map(|d| (d - center).abs()).collect();
    let mad = median(&deviations)?;
    // Most nights equal to the one before (a count, a rounded value): the
    // MAD is 0 though the series moves; the mean absolute deviation,
    // scaled to an SD for normal noise, still sees the moves.
    let spread = if mad > 0.0 {
        1.4826 * mad
    } else {
        deviations.iter().sum::<f64>() / deviations.len() as f64
            * (std::f64::consts::PI / 2.0).sqrt()
    };
    Some(spread / std::f64::consts::SQRT_2)
}

fn detect_in_logs(logs: &[f64]) -> SeriesChanges {
    let n = logs.len();
    let Some(sd) = noise_sd_log(logs) else {
        return SeriesChanges {
            nights: n,
            ..Default::default()
        };
    };
    if sd <= 0.0 {
        // Every night the same: nothing moved.
        return SeriesChanges {
            nights: n,
            noise_sd_pct: Some(0.0),
            ..Default::default()
        };
    }
    let clipped = despike(logs, sd);
    let mut search = Search {
        logs: &clipped,
        fit: PrefixSums::new(&clipped),
        splits: Vec::new(),
        creeps: Vec::new(),
    };
    search.segment(0, n);
    search.splits.sort_by_key(|s| s.0);
    let (splits, mut creeps) = (search.splits, search.creeps);
    let splits = merge_creeps(splits, n, &search.fit, sd, &mut creeps);
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(splits.iter().map(|s| s.0))
        .chain(std::iter::once(n))
        .collect();
    // The MDE is stated in the nights' own SD: consecutive differences
    // read σ·√(1 − φ) when nights wander together (lag-1 correlation φ),
    // and a step at the MDE so read was found 3 times in 4, not 9 in 10.
    let wander = level_autocorrelation(&clipped, &bounds, &creeps);
    let mde_sd = sd / (1.0 - wander).sqrt();
    let change_points = splits
        .iter()
        .enumerate()
        .map(|(k, &(night, p_value))| {
            let (start, end) = (bounds[k], bounds[k + 2]);
            let before = median(&logs[start..night]).unwrap_or(0.0);
            let after = median(&logs[night..end]).unwrap_or(0.0);
            let (nights_before, nights_after) = (night - start, end - night);
            ChangePoint {
                night,
                shift_pct: pct(after - before),
                p_value,
                nights_before,
                nights_after,
                mde_pct: pct(minimum_detectable_step_log(
                    mde_sd,
                    nights_before,
                    nights_after,
                )),
                provisional: n - night < CONFIRM_NIGHTS,
                minor: false,
            }
        })
        .collect();
    let last_level_start = bounds[bounds.len() - 2];
    creeps.sort_by_key(|c| c.first_night);
    SeriesChanges {
        nights: n,
        noise_sd_pct: Some(pct(sd)),
        night_autocorrelation: Some(wander),
        mid_series_mde_pct: Some(pct(minimum_detectable_step_log(mde_sd, n / 2, n - n / 2))),
        change_points,
        creeps,
        tail: tail_shift(logs, last_level_start, sd),
    }
}

/// Lag-1 correlation of the nights about their levels (between the change
/// points, leaving out creeps, whose slope is not noise), from 0 to 0.9:
/// negative correlation reads the SD high, not low, and leaves the MDE as
/// it is; above 0.9 the nights are a level that has not settled.
fn level_autocorrelation(logs: &[f64], bounds: &[usize], creeps: &[Creep]) -> f64 {
    let in_creep = |i: usize| {
        creeps
            .iter()
            .any(|c| (c.first_night..=c.last_night).contains(&i))
    };
    let (mut lagged, mut squares) = (0.0, 0.0);
    for level in bounds.windows(2) {
        // Runs of nights of this level outside every creep.
        let nights: Vec<usize> = (level[0]..level[1]).collect();
        for run in nights.split(|&i| in_creep(i)).filter(|run| run.len() >= 3) {
            let run = &logs[run[0]..run[0] + run.len()];
            let mean = run.iter().sum::<f64>() / run.len() as f64;
            let residuals: Vec<f64> = run.iter().map(|x| x - mean).collect();
            squares += residuals.iter().map(|r| r * r).sum::<f64>();
            lagged += residuals.windows(2).map(|w| w[0] * w[1]).sum::<f64>();
        }
    }
    if squares > 0.0 {
        (lagged / squares).clamp(0.0, 0.9)
    } else {
        0.0
    }
}

/// Two or more change points in a row one way are a drift cut into steps
/// when a level, a ramp and a level, joined, fit their nights at least as well by
/// the Bayesian information criterion (residual squares ÷ σ² plus ln n per
/// parameter: 2k + 1 for k steps (a level each, a night each), 4 for the
/// joined ramp (its first level, its change, its first and last night)); they
/// become one creep, placed where that fit puts the ramp. A staircase of
/// real steps has flat levels between them and stays.
fn merge_creeps(
    splits: Vec<(usize, f64)>,
    n: usize,
    fit: &PrefixSums,
    sd: f64,
    creeps: &mut Vec<Creep>,
) -> Vec<(usize, f64)> {
    if splits.is_empty() || sd <= 0.0 {
        return splits;
    }
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(splits.iter().map(|s| s.0))
        .chain(std::iter::once(n))
        .collect();
    let sign = |k: usize| {
        (fit.mean(bounds[k + 1], bounds[k + 2]) - fit.mean(bounds[k], bounds[k + 1])).signum()
    };
    let mut kept = Vec::new();
    let mut k = 0;
    while k < splits.len() {
        let mut last = k;
        while last + 1 < splits.len() && sign(last + 1) == sign(k) {
            last += 1;
        }
        let (start, end) = (bounds[k], bounds[last + 2]);
        // Two or more steps one way: a drift cut into steps fits a level,
        // a ramp joined to both and a level as well, with fewer parameters (BIC).
        let steps = last - k + 1;
        let (first, last_night, ramp_cost, change) = creep_span(fit, start, end);
        let step_cost: f64 = (k..=last + 1)
            .map(|level| fit.level_cost(bounds[level], bounds[level + 1]))
            .sum();
        let penalty = ((end - start) as f64).ln() * sd * sd;
        let ramp_bic = ramp_cost + 4.0 * penalty;
        let steps_bic = step_cost + (2 * steps + 1) as f64 * penalty;
        if steps >= 2 && ramp_bic <= steps_bic && change != 0.0 && change.signum() == sign(k) {
            let p_value = splits[k..=last].iter().map(|s| s.1).fold(0.0, f64::max);
            // The ramp climbs D over its nights and the night after it.
            let slope = change / (last_night - first + 2) as f64;
            creeps.push(Creep {
                first_night: first,
                last_night,
                slope_pct_per_night: pct(slope),
                total_pct: pct(change),
                p_value,
                minor: false,
            });
        } else {
            kept.extend_from_slice(&splits[k..=last]);
        }
        k = last + 1;
    }
    kept
}

/// Where a level, a ramp of at least [`MIN_SEGMENT_NIGHTS`] nights and a
/// level, joined, fit `[a, b)` best: the ramp's first and last night, the
/// residual squares and the change D from the first level to the second
/// (log units). Joined, because a line free to start and end away from
/// its levels is a step with a slope beside it: on nights that wander
/// together it fit a 26 % step and a 3 % wander as well as the two steps
/// did, and the step was lost inside a "creep" of 3 %.
fn creep_span(fit: &PrefixSums, a: usize, b: usize) -> (usize, usize, f64, f64) {
    let m = MIN_SEGMENT_NIGHTS;
    (a..b)
        .flat_map(|s| (s + m..=b).map(move |e| (s, e)))
        .map(|(s, e)| {
            let (cost, change) = fit.ramp_fit(a, s, e, b);
            (s, e - 1, cost, change)
        })
        .min_by(|x, y| x.2.total_cmp(&y.2))
        .unwrap_or((a, b - 1, fit.line_cost(a, b), 0.0))
}

/// The last nights after the last testable split, when all of them sit
/// beyond 3 σ of the level before them on the same side.
fn tail_shift(logs: &[f64], level_start: usize, sd: f64) -> Option<TailShift> {
    let n = logs.len();
    let first = n
        .saturating_sub(MIN_SEGMENT_NIGHTS - 1)
        .max(level_start + 1);
    let level = median(&logs[level_start..first])?;
    let off = |x: f64| {
        let d = x - level;
        if d.abs() > CLIP_SDS * sd {
            d.signum()
        } else {
            0.0
        }
    };
    let side = off(*logs.last()?);
    if side == 0.0 {
        return None;
    }
    // Back from the last night while nights sit off the same way: a start
    // earlier than the last few nights, too weak yet to test, is where it
    // began.
    let start = (level_start + 1..n)
        .rev()
        .take_while(|&i| off(logs[i]) == side)
        .last()
        .unwrap_or(n);
    // One odd night is a spike until another joins it.
    if n - start < 2 {
        return None;
    }
    let shifted = median(&logs[start..])?;
    let level = median(&logs[level_start..start]).unwrap_or(level);
    Some(TailShift {
        first_night: start,
        shift_pct: pct(shifted - level),
        minor: false,
    })
}

/// The series with each single odd night (more than [`CLIP_SDS`] noise
/// SDs from the running median of five) replaced by that median: a spike
/// then moves neither the tests nor the placement, while a step, which
/// the running median follows within two nights, is left whole.
fn despike(logs: &[f64], sd: f64) -> Vec<f64> {
    let n = logs.len();
    (0..n)
        .map(|i| {
            let window = &logs[i.saturating_sub(2)..(i + 3).min(n)];
            let level = median(window).unwrap_or(logs[i]);
            if (logs[i] - level).abs() > CLIP_SDS * sd {
                level
            } else {
                logs[i]
            }
        })
        .collect()
}

/// Sums for least-squares costs of any segment in O(1).
struct PrefixSums {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    sum_xy: Vec<f64>,
}

impl PrefixSums {
    fn new(y: &[f64]) -> Self {
        let mut sum = vec![0.0; y.len() + 1];
        let mut sum_sq = vec![0.0; y.len() + 1];
        let mut sum_xy = vec![0.0; y.len() + 1];
        for (i, v) in y.iter().enumerate() {
            sum[i + 1] = sum[i] + v;
            sum_sq[i + 1] = sum_sq[i] + v * v;
            sum_xy[i + 1] = sum_xy[i] + v * i as f64;
        }
        Self {
            sum,
            sum_sq,
            sum_xy,
        }
    }

    /// Residual sum of squares of one level over `[a, b)`.
    fn level_cost(&self, a: usize, b: usize) -> f64 {
        let n = (b - a) as f64;
        let s = self.sum[b] - self.sum[a];
        (self.sum_sq[b] - self.sum_sq[a] - s * s / n).max(0.0)
    }

    /// Centred sums of the line through `[a, b)`: (Sxx, Sxy), with x the
    /// night's index.
    fn line_sums(&self, a: usize, b: usize) -> (f64, f64) {
        let n = (b - a) as f64;
        let (a_f, b_f) = (a as f64, b as f64);
        // Σ i and Σ i² over a..b in closed form.
        let sum_to = |k: f64| (k - 1.0) * k / 2.0;
        let sq_to = |k: f64| (k - 1.0) * k * (2.0 * k - 1.0) / 6.0;
        let sx = sum_to(b_f) - sum_to(a_f);
        let sxx = sq_to(b_f) - sq_to(a_f);
        let sy = self.sum[b] - self.sum[a];
        let sxy = self.sum_xy[b] - self.sum_xy[a];
        ((sxx - sx * sx / n).max(0.0), sxy - sx * sy / n)
    }

    /// Residual sum of squares of a straight line over `[a, b)`.
    fn line_cost(&self, a: usize, b: usize) -> f64 {
        let (vxx, vxy) = self.line_sums(a, b);
        let level = self.level_cost(a, b);
        if vxx <= 0.0 {
            return level;
        }
        (level - vxy * vxy / vxx).max(0.0)
    }

    /// Least-squares fit over `[a, b)` of a level, a ramp over the nights
    /// `[s, e)` and a level, joined where they meet: night i is
    /// L₁ + D·r(i), r = 0 before `s`, (i − s + 1) ÷ (e − s + 1) on the
    /// ramp and 1 from `e`. (residual squares, D), D in log units.
    fn ramp_fit(&self, a: usize, s: usize, e: usize, b: usize) -> (f64, f64) {
        let n = (b - a) as f64;
        let k = (e - s) as f64;
        let w = k + 1.0;
        let after = (b - e) as f64;
        let sr = k / 2.0 + after;
        let srr = k * (2.0 * k + 1.0) / (6.0 * w) + after;
        let ramp_y = self.sum[e] - self.sum[s];
        let ramp_iy = self.sum_xy[e] - self.sum_xy[s];
        let sry = (ramp_iy - (s as f64 - 1.0) * ramp_y) / w + (self.sum[b] - self.sum[e]);
        let sy = self.sum[b] - self.sum[a];
        let vrr = srr - sr * sr / n;
        let vry = sry - sr * sy / n;
        let level = self.level_cost(a, b);
        if vrr <= 0.0 {
            return (level, 0.0);
        }
        ((level - vry * vry / vrr).max(0.0), vry / vrr)
    }

    /// Slope of the least-squares line over `[a, b)`.
    fn line_slope(&self, a: usize, b: usize) -> f64 {
        let (vxx, vxy) = self.line_sums(a, b);
        if vxx <= 0.0 { 0.0 } else { vxy / vxx }
    }

    fn mean(&self, a: usize, b: usize) -> f64 {
        (self.sum[b] - self.sum[a]) / (b - a) as f64
    }

    /// Best single split of `[a, b)` with `m` nights each side: (split, cost).
    fn best_split(&self, a: usize, b: usize, m: usize) -> Option<(usize, f64)> {
        (a + m..=b.checked_sub(m)?)
            .map(|t| (t, self.level_cost(a, t) + self.level_cost(t, b)))
            .min_by(|x, y| x.1.total_cmp(&y.1))
    }

    /// Cost of the best three levels of `[a, b)`.
    fn best_three_levels(&self, a: usize, b: usize, m: usize) -> Option<f64> {
        (a + m..=b.checked_sub(2 * m)?)
            .filter_map(|t| {
                let rest = self.best_split(t, b, m)?.1;
                Some(self.level_cost(a, t) + rest)
            })
            .min_by(f64::total_cmp)
    }
}

struct Search<'a> {
    logs: &'a [f64],
    fit: PrefixSums,
    splits: Vec<(usize, f64)>,
    creeps: Vec<Creep>,
}

impl Search<'_> {
    fn segment(&mut self, a: usize, b: usize) {
        let m = MIN_SEGMENT_NIGHTS;
        if b - a < 2 * m {
            return;
        }
        let p_value = permutation_p(&self.logs[a..b], m, b - a - m);
        if p_value >= CHANGE_ALPHA {
            return;
        }
        let Some((split, two_levels)) = self.fit.best_split(a, b, m) else {
            return;
        };
        let levels = self
            .fit
            .best_three_levels(a, b, m)
            .map_or(two_levels, |three| three.min(two_levels));
        if self.fit.line_cost(a, b) <= levels {
            let slope = self.fit.line_slope(a, b);
            self.creeps.push(Creep {
                first_night: a,
                last_night: b - 1,
                slope_pct_per_night: pct(slope),
                total_pct: pct(slope * (b - a - 1) as f64),
                p_value,
                minor: false,
            });
            return;
        }
        // The placed split must hold without the three nights around it:
        // a single odd night there cannot make a change. Its own rank-sum
        // test, not the largest over splits, so that a change elsewhere in
        // the segment cannot carry it.
        let without_boundary: Vec<f64> = self.logs[a..b]
            .iter()
            .enumerate()
            .filter(|(i, _)| !(split - 1..=split + 1).contains(&(a + i)))
            .map(|(_, v)| *v)
            .collect();
        let at = split - a - 1;
        let p_value = p_value.max(permutation_p(&without_boundary, at, at));
        if p_value >= CHANGE_ALPHA {
            return;
        }
        self.splits.push((split, p_value));
        self.segment(a, split);
        self.segment(split, b);
    }
}

/// Ranks 1..=n, ties given their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Largest standardized rank-sum |z| over the splits `first..=last` (the
/// number of nights before the split); `scale[t]` is 1 ÷ the SD of the
/// rank sum before split `t`.
fn max_rank_z(ranks: &[f64], scale: &[f64], first: usize, last: usize) -> f64 {
    let n = ranks.len();
    let center = (n as f64 + 1.0) / 2.0;
    let mut cumulative = 0.0;
    let mut best = 0.0f64;
    for (t, r) in ranks.iter().enumerate().take(last.min(n)) {
        cumulative += r - center;
        let split = t + 1;
        if split >= first {
            best = best.max((cumulative * scale[split]).abs());
        }
    }
    best
}

/// Permutation p-value of the largest rank-sum |z| of a segment over the
/// splits `first..=last`, seeded by its values so that a series always
/// gets the same answer.
fn permutation_p(segment: &[f64], first: usize, last: usize) -> f64 {
    let n = segment.len();
    let mut r = ranks(segment);
    let nf = n as f64;
    let scale: Vec<f64> = (0..=n)
        .map(|t| {
            let (left, right) = (t as f64, nf - t as f64);
            let var = left * right * (nf + 1.0) / 12.0;
            if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 }
        })
        .collect();
    if first == 0 || last >= n || first > last {
        return 1.0;
    }
    let observed = max_rank_z(&r, &scale, first, last);
    if observed == 0.0 {
        return 1.0;
    }
    let seed = segment.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, v| {
        (h ^ v.to_bits()).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut exceed = 0;
    for drawn in 1..=MAX_PERMUTATIONS {
        r.shuffle(&mut rng);
        // A hair below, so that ties with the observed order count.
        if max_rank_z(&r, &scale, first, last) >= observed * (1.0 - 1e-12) {
            exceed += 1;
            if exceed == STOP_EXCEEDANCES {
                return exceed as f64 / drawn as f64;
            }
        }
    }
    (exceed + 1) as f64 / (MAX_PERMUTATIONS + 1) as f64
}

#[cfg(test)]
mod tests;
