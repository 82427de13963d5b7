//! One-sided confidence bounds of a mean, for non-inferiority verdicts.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// A mean with its one-sided bounds at one confidence level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanBounds {
    pub mean: f64,
    /// The mean is above this with the stated confidence.
    pub lower: f64,
    /// The mean is below this with the stated confidence.
    pub upper: f64,
}

/// Student's t bounds of the mean of `values` at one-sided `confidence`
/// (each bound alone holds with that probability). `None` below 2 values
/// or with a non-finite one. Values that are all equal have both bounds at
/// the mean.
pub fn one_sided_mean_bounds(values: &[f64], confidence: f64) -> Option<MeanBounds> {
    let n = values.len();
    if n < 2 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let nf = n as f64;
    let mean = values.iter().sum::<f64>() / nf;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    let t = StudentsT::new(0.0, 1.0, nf - 1.0)
        .ok()?
        .inverse_cdf(confidence);
    let half = t * (var / nf).sqrt();
    Some(MeanBounds {
        mean,
        lower: mean - half,
        upper: mean + half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_the_t_quantile() {
        // n = 4, mean 2.5, sd = 1.2910; t(0.95, 3) = 2.3534.
        let b = one_sided_mean_bounds(&[1.0, 2.0, 3.0, 4.0], 0.95).unwrap();
        assert!((b.mean - 2.5).abs() < 1e-12);
        let half = 2.353_363_4 * (1.666_666_7f64 / 4.0).sqrt();
        assert!((b.upper - (2.5 + half)).abs() < 1e-6, "{b:?}");
        assert!((b.lower - (2.5 - half)).abs() < 1e-6, "{b:?}");
        let flat = one_sided_mean_bounds(&[0.0; 5], 0.95).unwrap();
        assert_eq!((flat.lower, flat.upper), (0.0, 0.0));
        assert!(one_sided_mean_bounds(&[1.0], 0.95).is_none());
        assert!(one_sided_mean_bounds(&[1.0, f64::NAN], 0.95).is_none());
    }
}
