//! Scaling curves from the results of `scaling` benchmarks: throughput and
//! p99 per level, both relative to the first level, and the knee.

use crate::benchmarks::find_kind;
use crate::model::{
    BenchmarkResult, CaseParams, ScalingCaseParams, ScalingCurve, ScalingLevel, Status,
};

/// The knee is the first level whose throughput is within this fraction of
/// the best throughput measured (at least 95 % of it).
pub const KNEE_TOLERANCE: f64 = 0.05;

/// One curve per (benchmark, dimension), levels in ascending order.
pub fn scaling_curves(results: &[BenchmarkResult]) -> Vec<ScalingCurve> {
    let mut curves: Vec<ScalingCurve> = Vec::new();
    for r in results.iter().filter(|r| {
        r.status == Status::Ok && find_kind(&r.kind).is_some_and(|k| k.scaling_levels())
    }) {
        let (Some(ScalingCaseParams { dimension, level }), Some(throughput)) = (
            ScalingCaseParams::from_parameters(&r.parameters),
            r.throughput,
        ) else {
            continue;
        };
        let level = ScalingLevel {
            level,
            throughput,
            throughput_unit: r.throughput_unit.clone().unwrap_or_default(),
            p99_ms: r.p99_ms,
            p99_provisional: r.p99_is_provisional(),
            throughput_vs_first: 1.0,
            p99_vs_first: None,
        };
        match curves
            .iter_mut()
            .find(|c| c.benchmark == r.benchmark && c.dimension == dimension)
        {
            Some(curve) => curve.levels.push(level),
            None => curves.push(ScalingCurve {
                benchmark: r.benchmark.clone(),
                dimension: dimension.to_string(),
                levels: vec![level],
                knee: None,
                knee_rule: format!(
                    "the knee is the first level whose throughput is within {:.0} % of the best level's; none when that is the last level",
                    KNEE_TOLERANCE * 100.0
                ),
            }),
        }
    }
    for curve in &mut curves {
        curve.levels.sort_by_key(|l| l.level);
        let (first_tp, first_p99) = (curve.levels[0].throughput, curve.levels[0].p99_ms);
        for l in &mut curve.levels {
            l.throughput_vs_first = l.throughput / first_tp;
            l.p99_vs_first = l.p99_ms.zip(first_p99).map(|(p, f)| p / f);
        }
        let best = curve
            .levels
            .iter()
            .map(|l| l.throughput)
            .fold(f64::MIN, f64::max);
        let last = curve.levels.len() - 1;
        curve.knee = curve
            .levels
            .iter()
            .position(|l| l.throughput >= best * (1.0 - KNEE_TOLERANCE))
            .filter(|i| *i < last)
            .map(|i| curve.levels[i].level);
    }
    curves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(level: u64, throughput: f64, p99: f64) -> BenchmarkResult {
        let json = serde_json::json!({
            "benchmark_name": format!("s[concurrency={level}]"), "benchmark": "s", "kind": "scaling",
            "case": null, "status": "ok", "error": null, "mean_ms": null, "p50_ms": null,
            "p99_ms": p99, "latency_metric": "e2e_ms", "throughput": throughput,
            "throughput_unit": "tokens/s", "throughput_metric": "output_tokens_per_s",
            "parameters": {"dimension": "concurrency", "level": level}, "context": null,
            "plan": {"warmup": 0, "iterations": 1, "time_budget_s": null, "timeout_s": 1.0, "scale": 1.0},
            "warmup_completed": 0, "iterations_completed": 1, "elapsed_s": 1.0,
            "metrics": {}, "series": {}, "setup": {}, "targets": [], "warnings": []
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn knee_is_the_first_level_near_the_best() {
        let results = [
            result(4, 290.0, 30.0),
            result(1, 100.0, 10.0),
            result(2, 180.0, 12.0),
            result(8, 300.0, 60.0),
        ];
        let curves = scaling_curves(&results);
        assert_eq!(curves.len(), 1);
        let c = &curves[0];
        assert_eq!(
            c.levels.iter().map(|l| l.level).collect::<Vec<_>>(),
            [1, 2, 4, 8]
        );
        assert_eq!(c.knee, Some(4));
        assert!((c.levels[3].throughput_vs_first - 3.0).abs() < 1e-12);
        assert_eq!(c.levels[3].p99_vs_first, Some(6.0));
    }

    #[test]
    fn within_five_percent_means_at_least_95_percent_of_the_best() {
        let knee = |second: f64| {
            scaling_curves(&[
                result(1, 50.0, 10.0),
                result(2, second, 10.0),
                result(4, 100.0, 10.0),
            ])[0]
                .knee
        };
        assert_eq!(knee(95.0), Some(2));
        assert_eq!(knee(95.1), Some(2));
        // 94.9 % of the best: 5.4 % short of it, so not yet the knee.
        assert_eq!(knee(94.9), None);
    }

    #[test]
    fn still_rising_curve_has_no_knee() {
        let curves = scaling_curves(&[result(1, 100.0, 10.0), result(2, 200.0, 10.0)]);
        assert_eq!(curves[0].knee, None);
    }
}
