//! A campaign's targets judged against what a run measured. Done as each
//! result is built (the console and the streamed files show it at once),
//! so it lives with the targets, below the runner.

use super::Target;
use crate::model::{MetricReport, SetupValue, TargetVerdict, Verdict};
use std::collections::BTreeMap;

/// Checks each target against the measured summaries. A target whose metric
/// was not measured is `not_measured`, never silently met.
pub fn evaluate_targets(
    targets: &[Target],
    metrics: &BTreeMap<String, MetricReport>,
    setup: &BTreeMap<String, SetupValue>,
) -> Vec<TargetVerdict> {
    targets
        .iter()
        .map(|t| {
            let (measured, provisional) = match (metrics.get(&t.metric), setup.get(&t.metric)) {
                (Some(m), _) => (
                    m.summary.stat(&t.stat),
                    m.summary
                        .provisional
                        .iter()
                        .any(|p| p == &t.stat || (t.stat == "p999" && p == "p99.9")),
                ),
                (None, Some(s)) => (Some(s.value), false),
                (None, None) => (None, false),
            };
            let verdict = match measured {
                Some(v) if t.comparison.holds(v, t.threshold) => Verdict::Met,
                Some(_) => Verdict::Missed,
                None => Verdict::NotMeasured,
            };
            TargetVerdict {
                target: t.to_string(),
                metric: t.metric.clone(),
                stat: t.stat.clone(),
                threshold: t.threshold,
                measured,
                verdict,
                provisional,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{MetricRecorder, ValueKind, summarize};

    fn metric(values: &[f64]) -> MetricReport {
        let mut r = MetricRecorder::new(ValueKind::DurationMs, 100);
        values.iter().for_each(|v| r.record(*v));
        MetricReport {
            unit: "ms".into(),
            higher_is_better: false,
            description: String::new(),
            summary: summarize(&r).unwrap(),
            raw_samples: r.raw_samples().to_vec(),
            raw_samples_truncated: false,
            rejected_samples: 0,
        }
    }

    #[test]
    fn verdicts_compare_the_named_statistic() {
        let metrics = BTreeMap::from([("ttft_ms".to_string(), metric(&[10.0, 20.0, 30.0]))]);
        let targets: Vec<Target> = ["ttft_ms.max < 25", "ttft_ms.p50 <= 20", "tpot_ms.mean < 1"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        let v = evaluate_targets(&targets, &metrics, &BTreeMap::new());
        assert_eq!(v[0].verdict, Verdict::Missed);
        assert_eq!(v[0].measured, Some(30.0));
        assert_eq!(v[1].verdict, Verdict::Met);
        assert!(
            v[1].provisional,
            "p50 needs 7 samples to be firm; 3 were measured"
        );
        assert!(
            !v[0].provisional,
            "min and max are exact, never provisional"
        );
        assert_eq!(v[2].verdict, Verdict::NotMeasured);
    }
}
