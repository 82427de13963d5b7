//! A night against a stored baseline, judged as shipped: the first
//! comparison, a confirming re-run of the suspect benchmarks (separate
//! processes, the same night), and the outcome. `campaign run` calls this
//! with a re-run that starts child processes; the gate's tests call it
//! with simulated nights, so both judge by the same code.

use std::collections::BTreeSet;

use super::{
    CompareSettings, Comparison, NightNoise, compare_reports, compare_rerun, confirm_with_rerun,
    find,
};
use crate::model::DailyReport;

/// Judges `tonight` against `baseline`. `rerun` measures the given
/// benchmarks again (the same runs, in new processes) and returns their
/// report, or `None` when it could not (interrupted, nothing measured):
/// a regression the re-run did not confirm is not one.
pub fn judge_night(
    baseline: &DailyReport,
    tonight: &DailyReport,
    (baseline_name, tonight_name): (&str, &str),
    settings: &CompareSettings,
    night: &NightNoise,
    rerun: impl FnOnce(&[String]) -> Option<DailyReport>,
) -> Comparison {
    let mut comparison = compare_reports(
        baseline,
        tonight,
        baseline_name,
        tonight_name,
        settings,
        night,
    );
    let suspects = regressed_benchmarks(&comparison, tonight);
    if suspects.is_empty() {
        return comparison;
    }
    let second =
        rerun(&suspects).map(|again| compare_rerun(baseline, &again, &comparison, settings, night));
    confirm_with_rerun(&mut comparison, second.as_ref());
    comparison
}

/// Benchmarks with a regression: what a confirming re-run must repeat.
pub fn regressed_benchmarks(comparison: &Comparison, report: &DailyReport) -> Vec<String> {
    comparison
        .regressions()
        .filter_map(|c| find(report, &c.case).map(|r| r.benchmark.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
