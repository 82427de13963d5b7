//! Curves of a headline latency along the parameter a kind sweeps (prompt
//! length, block size, value size, requests in flight), grouped as the kind
//! declares with [`SweepAxis`]: one curve per benchmark and series.

use crate::benchmarks::{SweepAxis, find_kind};
use crate::model::{DailyReport, Status};

/// One curve: a benchmark's headline latency p50 against its swept
/// parameter, points in ascending order of the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCurve {
    /// The benchmark, with the values of the parameters that split its
    /// cases into series (`serving (closed)`).
    pub series: String,
    pub metric: String,
    pub axis: SweepAxis,
    /// (parameter value, p50 in ms).
    pub points: Vec<(f64, f64)>,
}

/// Every curve of two or more points in the day's successful results.
pub fn sweep_curves(report: &DailyReport) -> Vec<SweepCurve> {
    let mut curves: Vec<SweepCurve> = Vec::new();
    for r in report.results.iter().filter(|r| r.status == Status::Ok) {
        let Some(axis) = find_kind(&r.kind).and_then(|k| k.sweep_axis()) else {
            continue;
        };
        let (Some(x), Some(p50), Some(metric)) = (
            r.parameters[axis.parameter].as_f64(),
            r.p50_ms,
            &r.latency_metric,
        ) else {
            continue;
        };
        let split: Vec<String> = axis
            .series_by
            .iter()
            .filter_map(|key| match &r.parameters[*key] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            })
            .collect();
        let series = if split.is_empty() {
            r.benchmark.clone()
        } else {
            format!("{} ({})", r.benchmark, split.join(", "))
        };
        match curves
            .iter_mut()
            .find(|c| c.series == series && c.metric == *metric)
        {
            Some(curve) => curve.points.push((x, p50)),
            None => curves.push(SweepCurve {
                series,
                metric: metric.clone(),
                axis,
                points: vec![(x, p50)],
            }),
        }
    }
    curves.retain(|c| c.points.len() >= 2);
    for curve in &mut curves {
        curve.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    curves
}

/// The empirical distribution of one result's headline latency samples:
/// (value, fraction of samples ≤ value), ascending.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCdf {
    pub case_id: String,
    pub metric: String,
    pub unit: String,
    pub points: Vec<(f64, f64)>,
}

/// The curves a day's page draws, computed here so that the writer only
/// draws: the sweep curves, and the latency CDF of every result with two
/// or more headline samples, in the report's order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DayCurves {
    pub sweeps: Vec<SweepCurve>,
    pub cdfs: Vec<LatencyCdf>,
}

/// The curves of `report`'s page.
pub fn day_curves(report: &DailyReport) -> DayCurves {
    let cdfs = report
        .results
        .iter()
        .filter_map(|r| {
            let metric = r.latency_metric.as_ref()?;
            let m = r.metrics.get(metric)?;
            (m.raw_samples.len() >= 2).then(|| LatencyCdf {
                case_id: r.case_id.clone(),
                metric: metric.clone(),
                unit: m.unit.clone(),
                points: crate::stats::empirical_cdf(&m.raw_samples),
            })
        })
        .collect();
    DayCurves {
        sweeps: sweep_curves(report),
        cdfs,
    }
}
