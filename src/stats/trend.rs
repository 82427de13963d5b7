//! Least-squares trend of a series over time, with the 95 % confidence
//! interval of its slope (Student's t with n − 2 degrees of freedom).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearTrend {
    /// Change of y per unit of x.
    pub slope: f64,
    pub intercept: f64,
    pub slope_ci95_low: f64,
    pub slope_ci95_high: f64,
    pub points: usize,
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
    })
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
}
