//! The night's common shift: how far every case moved together between
//! the baseline's night and this one. A machine that runs 6 % slower
//! tonight slows every case of a metric about alike; tested case by case
//! that is N regressions, and it says nothing about the code. So, metric
//! by metric (one metric's cases share a kind of work, and so their
//! sensitivity to the machine; two metrics of one case need not move
//! together: more work per iteration moves its time and not its rate), the
//! median of the cases' shifts is taken out of each time-like series before
//! it is tested, and reported once, as the machine's, with its interval. A
//! case that moved beyond the common shift still stands out.

use serde::{Deserialize, Serialize};

use crate::stats::median;

/// Cases needed before a common shift is estimated (with fewer, one
/// changed case would be most of the median).
pub const MIN_COMMON_CASES: usize = 3;

pub const COMMON_SHIFT_RULE: &str = "per time-like metric, the median over its cases of their Hodges–Lehmann shifts (oriented so that above 1 is worse), from 3 cases on; its interval from the order statistics of the cases' shifts (95 % from 6 cases on; with 3 to 5 cases the smallest and largest shift, whose coverage is 1 − 2^(1−n)), widened by the night-to-night SD of the common shift when the history gives it; the night is a machine shift when that interval lies wholly beyond the threshold; the shift is taken out of every time-like series before it is tested";

/// One case's shift between the nights, for the common shift.
#[derive(Debug, Clone, Copy)]
pub struct CaseShift {
    /// Worse-oriented log shift (above 0 is worse).
    pub shift: f64,
    /// Its sampling variance.
    pub variance: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineShiftState {
    /// Inside the threshold band, or not beyond what nights vary here.
    Within,
    /// Every case slower together, beyond the threshold and the
    /// night-to-night noise: the machine changed, or a change slowed
    /// every case, and a stored baseline cannot tell which.
    Slower,
    /// Every case faster together, likewise.
    Faster,
}

/// The shift every case of one metric shares tonight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineShift {
    pub rule: String,
    /// The metric whose cases moved together.
    pub metric: String,
    /// Cases it rests on.
    pub cases: usize,
    /// This night ÷ the baseline's, common to every case; above 1 is worse.
    pub ratio: f64,
    /// Over the cases' shifts, widened by the night-to-night noise when
    /// known (95 % from 6 cases; see `ci_coverage` below that).
    pub ratio_ci95: Option<[f64; 2]>,
    /// The coverage of that interval before widening: 0.95 or more from 6
    /// cases, 1 − 2^(1−n) for the range of n = 3 to 5 cases.
    #[serde(default)]
    pub ci_coverage: f64,
    /// SD of the common shift from one night to the next on this machine.
    pub night_sd_pct: Option<f64>,
    /// Sampling SE of the median (its share of each series' verdict), in %.
    pub sampling_se_pct: f64,
    pub threshold_pct: f64,
    pub state: MachineShiftState,
    pub reason: String,
}

impl MachineShift {
    /// The worse-oriented log shift taken out of each time-like series.
    pub fn shift_log(&self) -> f64 {
        self.ratio.ln()
    }

    pub fn sampling_se_log(&self) -> f64 {
        self.sampling_se_pct / 100.0
    }
}

/// The common shift of one metric's cases; `threshold` and `night_sd` on
/// the log scale. `None` with fewer than [`MIN_COMMON_CASES`] cases.
pub fn common_shift(
    metric: &str,
    cases: &[CaseShift],
    threshold: f64,
    night_sd: Option<f64>,
) -> Option<MachineShift> {
    let n = cases.len();
    if n < MIN_COMMON_CASES {
        return None;
    }
    let mut shifts: Vec<f64> = cases.iter().map(|c| c.shift).collect();
    shifts.sort_by(f64::total_cmp);
    let shift = median(&shifts)?;
    // The median of n estimates of one variance varies π/2 times as much
    // as their mean; with unequal variances the steadier cases decide the
    // median, so their typical (median) variance is the one that counts.
    let variances: Vec<f64> = cases.iter().map(|c| c.variance).collect();
    let typical = median(&variances)?;
    let sampling_se = (std::f64::consts::FRAC_PI_2 * typical / n as f64).sqrt();
    // Fewer than 6 cases have no 95 % interval of their median; their range
    // is the widest order-statistic interval, and says its coverage.
    let (k, coverage) = match median_interval_rank(n) {
        Some(k) => (k, interval_coverage(n, k)),
        None => (1, 1.0 - 2f64.powi(1 - n as i32)),
    };
    let night = night_sd.map_or(0.0, |s| 1.96 * std::f64::consts::SQRT_2 * s);
    let widen = |d: f64| (d * d + night * night).sqrt();
    let (lo, hi) = (
        shift - widen(shift - shifts[k - 1]),
        shift + widen(shifts[n - k] - shift),
    );
    let (state, reason) = match (lo, hi) {
        (lo, _) if lo > threshold => (
            MachineShiftState::Slower,
            "every case moved slower together, beyond the threshold and the night-to-night noise: the machine changed, or a change slowed every case; a stored baseline cannot tell which (compare the builds with --against-bin)".into(),
        ),
        (_, hi) if hi < -threshold => (
            MachineShiftState::Faster,
            "every case moved faster together, beyond the threshold and the night-to-night noise: the machine changed, or a change sped every case up".into(),
        ),
        _ => (
            MachineShiftState::Within,
            "within the threshold or the night-to-night noise".into(),
        ),
    };
    Some(MachineShift {
        rule: COMMON_SHIFT_RULE.into(),
        metric: metric.to_string(),
        cases: n,
        ratio: shift.exp(),
        ratio_ci95: Some([lo.exp(), hi.exp()]),
        ci_coverage: coverage,
        night_sd_pct: night_sd.map(|s| s * 100.0),
        sampling_se_pct: sampling_se * 100.0,
        threshold_pct: (threshold.exp() - 1.0) * 100.0,
        state,
        reason,
    })
}

/// The coverage of [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎] for the median of n values:
/// 1 − 2 P(Bin(n, ½) < k).
fn interval_coverage(n: usize, k: usize) -> f64 {
    let mut below = 0.0;
    let mut choose = 1.0f64;
    for j in 0..k {
        below += choose / 2f64.powi(n as i32);
        choose = choose * (n - j) as f64 / (j + 1) as f64;
    }
    1.0 - 2.0 * below
}

/// The rank k of the distribution-free 95 % interval of a median of n
/// values, [x₍ₖ₎, x₍ₙ₊₁₋ₖ₎]: the largest k with P(Bin(n, ½) < k) ≤ 2.5 %.
fn median_interval_rank(n: usize) -> Option<usize> {
    let mut below = 0.0;
    let mut k = 0;
    let mut choose = 1.0f64;
    let total = 2f64.powi(n as i32);
    for j in 0..n {
        below += choose / total;
        if below > 0.025 {
            break;
        }
        k = j + 1;
        choose = choose * (n - j) as f64 / (j + 1) as f64;
    }
    (k >= 1 && 2 * k <= n).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shifts(values: &[f64]) -> Vec<CaseShift> {
        values
            .iter()
            .map(|s| CaseShift {
                shift: *s,
                variance: 0.0001,
            })
            .collect()
    }

    #[test]
    fn the_median_interval_has_the_tables_ranks() {
        // n = 6: P(X = 0) = 1/64 ≤ 2.5 %; n = 8: P(X ≤ 1) = 9/256 > 2.5 %.
        assert_eq!(median_interval_rank(5), None);
        assert_eq!(median_interval_rank(6), Some(1));
        assert_eq!(median_interval_rank(8), Some(1));
        assert_eq!(median_interval_rank(9), Some(2));
        // n = 16: P(X ≤ 3) = 0.0106, P(X ≤ 4) = 0.0384.
        assert_eq!(median_interval_rank(16), Some(4));
    }

    #[test]
    fn a_night_that_moved_together_is_one_machine_shift_and_one_odd_case_does_not_move_it() {
        let t = 1.05f64.ln();
        let together = common_shift(
            "ms",
            &shifts(&[0.10, 0.11, 0.09, 0.10, 0.12, 0.10, 0.09, 0.11]),
            t,
            None,
        )
        .unwrap();
        assert_eq!(together.state, MachineShiftState::Slower);
        assert!((together.ratio - 0.10f64.exp()).abs() < 0.01);
        // One case 2× slower among seven that did not move.
        let one = common_shift(
            "ms",
            &shifts(&[0.0, 0.01, -0.01, 0.69, 0.0, 0.005, -0.005, 0.01]),
            t,
            None,
        )
        .unwrap();
        assert_eq!(one.state, MachineShiftState::Within);
        assert!(one.shift_log().abs() < 0.01);
        // The machine's night noise widens the interval: 10 % is within
        // nights that vary by 8 % SD.
        let noisy = common_shift(
            "ms",
            &shifts(&[0.10, 0.11, 0.09, 0.10, 0.12, 0.10, 0.09, 0.11]),
            t,
            Some(0.08),
        )
        .unwrap();
        assert_eq!(noisy.state, MachineShiftState::Within);
        assert!(common_shift("ms", &shifts(&[0.1, 0.1]), t, None).is_none());
        // Three cases: their range, at 75 % coverage.
        let three = common_shift("ms", &shifts(&[0.69, 0.70, 0.68]), t, None).unwrap();
        assert_eq!(three.state, MachineShiftState::Slower);
        assert!((three.ci_coverage - 0.75).abs() < 1e-12);
        assert!((interval_coverage(8, 1) - (1.0 - 2.0 / 256.0)).abs() < 1e-12);
    }
}
