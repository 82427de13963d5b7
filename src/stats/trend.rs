//! Least-squares trend of a series over time, with the 95 % confidence
//! interval of its slope (Student's t with n − 2 degrees of freedom); the
//! growth rule a leak verdict uses; the drift of a series' median between
//! its first and last window.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::median;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearTrend {
    /// Change of y per unit of x.
    pub slope: f64,
    pub intercept: f64,
    pub slope_ci95_low: f64,
    pub slope_ci95_high: f64,
    pub points: usize,
    /// The centroid every slope in the interval passes through.
    pub mean_x: f64,
    pub mean_y: f64,
}

impl LinearTrend {
    /// True when the interval lies wholly above zero: the series rises
    /// beyond what its scatter explains.
    pub fn rises(&self) -> bool {
        self.slope_ci95_low > 0.0
    }
}

/// Fits y = a + b·x. Needs at least three points and some spread in x.
pub fn linear_trend(x: &[f64], y: &[f64]) -> Option<LinearTrend> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (x, y) = (&x[..n], &y[..n]);
    let nf = n as f64;
    let mean_x = x.iter().sum::<f64>() / nf;
    let mean_y = y.iter().sum::<f64>() / nf;
    let sxx: f64 = x.iter().map(|v| (v - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - mean_x) * (b - mean_y))
        .sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let residual_ss: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (b - intercept - slope * a).powi(2))
        .sum();
    let slope_se = (residual_ss / (nf - 2.0) / sxx).sqrt();
    let t = StudentsT::new(0.0, 1.0, nf - 2.0)
        .map(|d| d.inverse_cdf(0.975))
        .ok()?;
    Some(LinearTrend {
        slope,
        intercept,
        slope_ci95_low: slope - t * slope_se,
        slope_ci95_high: slope + t * slope_se,
        points: n,
        mean_x,
        mean_y,
    })
}

/// A series sampled over a run: its trend per minute and how much the
/// fitted line grows over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Growth {
    /// Slope in units per minute.
    pub per_minute: LinearTrend,
    pub duration_s: f64,
}

impl Growth {
    /// Fits `(seconds since start, value)` samples; none with fewer than
    /// three or no spread in time.
    pub fn fit(samples: &[(f64, f64)]) -> Option<Self> {
        let minutes: Vec<f64> = samples.iter().map(|(t, _)| t / 60.0).collect();
        let values: Vec<f64> = samples.iter().map(|(_, v)| *v).collect();
        let per_minute = linear_trend(&minutes, &values)?;
        Some(Self {
            per_minute,
            duration_s: samples.last().map_or(0.0, |(t, _)| *t),
        })
    }

    /// Slope × duration: the growth the fitted line gives over the run.
    pub fn fitted_growth(&self) -> f64 {
        self.per_minute.slope * self.duration_s / 60.0
    }

    /// The fitted value at `t_s` seconds, and the lowest and highest value
    /// a line through the centroid with a slope in the 95 % interval gives
    /// there: `(fitted, low, high)`.
    pub fn band_at(&self, t_s: f64) -> (f64, f64, f64) {
        let t = self.per_minute;
        let dx = t_s / 60.0 - t.mean_x;
        let (a, b) = (
            t.mean_y + t.slope_ci95_low * dx,
            t.mean_y + t.slope_ci95_high * dx,
        );
        (t.intercept + t.slope * t_s / 60.0, a.min(b), a.max(b))
    }

    /// Growth is real when the slope's interval lies above zero, the slope
    /// exceeds `min_slope_per_minute`, and the fitted growth exceeds
    /// `min_growth` (so a steep but brief rise does not count).
    pub fn exceeds(&self, min_slope_per_minute: f64, min_growth: f64) -> bool {
        self.per_minute.rises()
            && self.per_minute.slope > min_slope_per_minute
            && self.fitted_growth() > min_growth
    }
}

/// The median of a series' first window against its last.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowDrift {
    pub window_s: f64,
    pub first_window_p50: Option<f64>,
    pub last_window_p50: Option<f64>,
    /// (last ÷ first − 1) × 100.
    pub drift_pct: Option<f64>,
}

/// Compares the medians of `(seconds since start, value)` samples in
/// `[0, w]` and `[duration − w, duration]`, where `w` is `window_s` but at
/// most a quarter of the run, so the two windows never overlap.
pub fn window_drift(samples: &[(f64, f64)], window_s: f64, duration_s: f64) -> WindowDrift {
    let window_s = window_s.min(duration_s / 4.0);
    let window_median = |from: f64, to: f64| {
        let inside: Vec<f64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, v)| *v)
            .collect();
        median(&inside)
    };
    let first = window_median(0.0, window_s);
    let last = window_median(duration_s - window_s, duration_s);
    WindowDrift {
        window_s,
        first_window_p50: first,
        last_window_p50: last,
        drift_pct: first.zip(last).map(|(f, l)| (l / f - 1.0) * 100.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_has_a_zero_width_interval() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [1.0, 3.0, 5.0, 7.0];
        let t = linear_trend(&x, &y).unwrap();
        assert!((t.slope - 2.0).abs() < 1e-12);
        assert!((t.intercept - 1.0).abs() < 1e-12);
        assert!((t.slope_ci95_high - t.slope_ci95_low).abs() < 1e-9);
        assert!(t.rises());
    }

    #[test]
    fn interval_matches_the_textbook_formula() {
        // A flat series with alternating ±1 noise; residual SE by hand.
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        let y: Vec<f64> = (0..6)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let t = linear_trend(&x, &y).unwrap();
        let sxx = 17.5;
        let slope = (x.iter().zip(&y).map(|(a, b)| (a - 2.5) * b).sum::<f64>()) / sxx;
        assert!((t.slope - slope).abs() < 1e-12);
        // t(0.975, 4 dof) = 2.776445…
        let rss: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (b - t.intercept - slope * a).powi(2))
            .sum();
        let half = 2.776_445_105 * (rss / 4.0 / sxx).sqrt();
        assert!((t.slope_ci95_high - (slope + half)).abs() < 1e-6);
        assert!(!t.rises(), "noise this large must not count as a rise");
    }

    #[test]
    fn too_few_points_or_no_spread_give_nothing() {
        assert!(linear_trend(&[1.0, 2.0], &[1.0, 2.0]).is_none());
        assert!(linear_trend(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
    }

    /// (t in s, value) every 10 s for 10 minutes: a line plus ±`noise`.
    fn series(per_minute: f64, noise: f64) -> Vec<(f64, f64)> {
        (0..=60)
            .map(|i| {
                let t = f64::from(i) * 10.0;
                let wobble = if i % 2 == 0 { noise } else { -noise };
                (t, 100.0 + per_minute * t / 60.0 + wobble)
            })
            .collect()
    }

    #[test]
    fn growth_counts_only_a_steady_rise_past_both_thresholds() {
        let leaking = Growth::fit(&series(2.0, 0.5)).unwrap();
        assert!((leaking.fitted_growth() - 20.0).abs() < 0.5);
        assert!(leaking.exceeds(1.0, 10.0));
        // Each threshold on its own can hold it back.
        assert!(!leaking.exceeds(3.0, 10.0));
        assert!(!leaking.exceeds(1.0, 25.0));
        // A flat series with scatter is no growth at any threshold.
        assert!(!Growth::fit(&series(0.0, 3.0)).unwrap().exceeds(0.0, 0.0));
        assert!(Growth::fit(&series(2.0, 0.0)[..2]).is_none());
        // The band pinches to the fit at the centroid and widens away from it.
        let (fit, low, high) = leaking.band_at(300.0);
        assert!((high - low).abs() < 1e-9 && (fit - low).abs() < 1e-6);
        let (fit, low, high) = leaking.band_at(0.0);
        assert!(low < fit && fit < high);
    }

    #[test]
    fn drift_compares_the_medians_of_the_two_end_windows() {
        // 10 ms for the first half of a 100 s run, 12 ms after.
        let samples: Vec<(f64, f64)> = (0..=100)
            .map(|t| (f64::from(t), if t < 50 { 10.0 } else { 12.0 }))
            .collect();
        let drift = window_drift(&samples, 20.0, 100.0);
        assert_eq!(drift.first_window_p50, Some(10.0));
        assert_eq!(drift.last_window_p50, Some(12.0));
        assert!((drift.drift_pct.unwrap() - 20.0).abs() < 1e-9);
        // A window longer than a quarter of the run is cut to a quarter.
        assert_eq!(window_drift(&samples, 90.0, 100.0).window_s, 25.0);
        assert_eq!(window_drift(&[], 10.0, 0.0).drift_pct, None);
    }
}
