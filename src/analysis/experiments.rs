//! Experiments: a remedy's toggle measured against the campaign as it is.
//! Both sides run the same benchmarks alternately in one sitting, and the
//! verdict comes from the regression gate's paired statistics (Wilcoxon's
//! signed-rank test on the pairs' log ratios, the Hodges–Lehmann interval
//! of their Walsh averages), so "this remedy pays" means what "this got
//! slower" means in a nightly comparison. The roadmap then uses the
//! measured speed-up instead of the catalog's assumption.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::measured::{DayBenchmark, ExperimentVerdict, MeasuredRemedy};
use super::plan::{RemedyEstimate, assign_weeks};
use super::regression::{
    ChangeState, CompareSettings, Comparison, MetricChange, PairedSeries, compare_paired,
    paired_series,
};
use crate::campaign::Toggle;
use crate::model::{DailyReport, Status};
use crate::stats::median;

/// How the time of one run of an experiment's benchmarks is formed.
pub const TIME_FORMULA: &str = "time of a run = Σ over cases of w × t, t = the case's headline latency mean (or 1 ÷ its headline throughput mean), w = the baseline's median elapsed seconds of the case ÷ its median t: the baseline side's measured time, and the toggled side's time for the same work";
/// How the measured speed-up is stated.
pub const SPEEDUP_FORMULA: &str = "measured speed-up = the paired Hodges–Lehmann estimate (median of the Walsh averages of the pairs' log time ratios), inverted; ci95 = its Walsh-average interval, inverted; p = Wilcoxon signed-rank test on the same log ratios; the ratio of the two sides' median times is given beside it as ratio_of_medians";
/// How the speed-up on the benchmarks becomes one on all profiled time.
pub const PROFILED_FORMULA: &str = "overall speed-up on the profiled time = T ÷ ((T − Tₑ) + Tₑ ÷ s), T = all profiled time, Tₑ = the profiled time of the experiment's benchmarks, s = the measured speed-up";

/// The case name of the experiment's time series.
pub const TIME_SERIES: &str = "time of the experiment's benchmarks";

/// One case's headline, baseline against toggled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseEffect {
    pub case: String,
    pub benchmark: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub baseline_median: Option<f64>,
    pub toggled_median: Option<f64>,
    /// > 1 is better, whichever way the metric points.
    pub speedup: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub q_value: Option<f64>,
    pub state: ChangeState,
}

/// The speed-up carried over to all profiled time of the analysis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfiledEffect {
    pub profiled_time_s: f64,
    pub benchmarks_time_s: f64,
    pub overall_speedup: f64,
    pub ci95: Option<[f64; 2]>,
    pub formula: String,
}

/// One remedy's experiment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Experiment {
    pub remedy: String,
    pub toggle: Toggle,
    pub toggle_description: String,
    pub measured_at: DateTime<Utc>,
    pub quick: bool,
    pub benchmarks: Vec<DayBenchmark>,
    pub order_seed: u64,
    /// The run order, `baseline` or `toggled` per slot.
    pub order: Vec<String>,
    #[serde(flatten)]
    pub measurement: Measurement,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_profiled_time: Option<ProfiledEffect>,
    /// The toggled models' outputs against the untoggled ones', for a
    /// toggle that can change them (`Toggle::can_change_outputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quality: Vec<super::QualityVerdict>,
    pub warnings: Vec<String>,
}

/// `experiments.json`: every remedy measured in this results folder, the
/// latest experiment of each.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExperimentsFile {
    pub campaign: String,
    pub time_formula: String,
    pub speedup_formula: String,
    pub profiled_formula: String,
    pub experiments: Vec<Experiment>,
}

impl ExperimentsFile {
    pub fn new(campaign: &str) -> Self {
        Self {
            campaign: campaign.to_string(),
            time_formula: TIME_FORMULA.into(),
            speedup_formula: SPEEDUP_FORMULA.into(),
            profiled_formula: PROFILED_FORMULA.into(),
            experiments: Vec::new(),
        }
    }

    /// Keeps the latest experiment of each remedy.
    pub fn upsert(&mut self, experiment: Experiment) {
        self.experiments.retain(|e| e.remedy != experiment.remedy);
        self.experiments.push(experiment);
    }

    pub fn find(&self, remedy: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.remedy == remedy)
    }
}

/// What the statistics of one experiment found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Complete pairs (one baseline and one toggled run each).
    pub runs_per_side: usize,
    /// The design of the verdict, as the gate words it.
    pub design: String,
    pub baseline_time_s: Option<f64>,
    pub toggled_time_s: Option<f64>,
    /// The paired estimate of the speed-up (> 1: the toggle is faster):
    /// the estimate that belongs to `ci95` and `p_value`.
    pub measured_speedup: Option<f64>,
    /// Median baseline time ÷ median toggled time: descriptive only.
    #[serde(default)]
    pub ratio_of_medians: Option<f64>,
    /// The threshold the verdict judged against, in % (the largest of
    /// the experiment's benchmarks' thresholds).
    #[serde(default)]
    pub threshold_pct: Option<f64>,
    pub ci95: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    pub verdict: ExperimentVerdict,
    pub reason: String,
    pub cases: Vec<CaseEffect>,
}

/// One complete pair of an experiment: (pair number, baseline run,
/// toggled run).
pub type ExperimentPair<'a> = (u32, &'a DailyReport, &'a DailyReport);

/// Per complete pair, the time series of the experiment's benchmarks
/// ([`TIME_FORMULA`]).
fn time_series(pairs: &[ExperimentPair<'_>]) -> PairedSeries {
    let baseline: Vec<&DailyReport> = pairs.iter().map(|p| p.1).collect();
    let t = |report: &DailyReport, case: &str| -> Option<f64> {
        let r = report
            .results
            .iter()
            .find(|r| r.case_id == case && r.status == Status::Ok)?;
        let mean = |m: &Option<String>| Some(r.metrics.get(m.as_ref()?)?.summary.mean);
        mean(&r.latency_metric)
            .or_else(|| mean(&r.throughput_metric).map(|x| 1.0 / x))
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let cases: Vec<String> = baseline
        .first()
        .map(|r| r.results.iter().map(|c| c.case_id.clone()).collect())
        .unwrap_or_default();
    let weights: Vec<(String, f64)> = cases
        .into_iter()
        .filter_map(|case| {
            let ts: Vec<f64> = baseline.iter().filter_map(|r| t(r, &case)).collect();
            let elapsed: Vec<f64> = baseline
                .iter()
                .filter_map(|r| r.results.iter().find(|c| c.case_id == case))
                .filter(|c| c.status == Status::Ok)
                .map(|c| c.elapsed_s)
                .collect();
            let w = median(&elapsed)? / median(&ts)?;
            w.is_finite().then_some((case, w))
        })
        .collect();
    let mut series = PairedSeries {
        case: TIME_SERIES.into(),
        benchmark: "experiment".into(),
        metric: "time_s".into(),
        unit: "s".into(),
        higher_is_better: false,
        pairs: Vec::new(),
    };
    if weights.is_empty() {
        return series;
    }
    let total = |report: &DailyReport| -> Option<f64> {
        weights
            .iter()
            .map(|(case, w)| Some(w * t(report, case)?))
            .sum()
    };
    series.pairs = pairs
        .iter()
        .filter_map(|(_, a, b)| Some((total(a)?, total(b)?)))
        .collect();
    series
}

/// The speed-up (> 1 better) of a paired change and its interval: the
/// paired Hodges–Lehmann ratio and its interval, oriented so that above 1
/// is better, so the estimate always lies inside its own interval.
fn paired_speedup(change: &MetricChange) -> (Option<f64>, Option<[f64; 2]>) {
    let invert = !change.higher_is_better;
    let ratio = change
        .ratio
        .filter(|r| r.is_finite() && *r > 0.0)
        .map(|r| if invert { 1.0 / r } else { r });
    let ci = change.ratio_ci95.map(|[lo, hi]| {
        if invert {
            [1.0 / hi, 1.0 / lo]
        } else {
            [lo, hi]
        }
    });
    (ratio, ci)
}

fn change_of<'c>(comparison: &'c Comparison, case: &str, metric: &str) -> Option<&'c MetricChange> {
    comparison
        .changes
        .iter()
        .find(|c| c.case == case && c.metric == metric)
}

/// Measures one experiment from its complete pairs, each one report of
/// all its benchmarks per side. The verdict judges the time against the
/// largest threshold among the experiment's benchmarks (a gain must
/// clear every threshold its parts are held to); each case against its own.
pub fn measure(pairs: &[ExperimentPair<'_>], settings: &CompareSettings) -> Measurement {
    let time = time_series(pairs);
    let base_runs: Vec<(u32, &DailyReport)> = pairs.iter().map(|p| (p.0, p.1)).collect();
    let toggled_runs: Vec<(u32, &DailyReport)> = pairs.iter().map(|p| (p.0, p.2)).collect();
    let (pooled_base, pooled_toggled) = (
        DailyReport::pooled(&base_runs, &[]),
        DailyReport::pooled(&toggled_runs, &[]),
    );
    let (Some(pooled_base), Some(pooled_toggled)) = (pooled_base, pooled_toggled) else {
        return Measurement {
            baseline_time_s: None,
            toggled_time_s: None,
            measured_speedup: None,
            ratio_of_medians: None,
            threshold_pct: None,
            ci95: None,
            p_value: None,
            verdict: ExperimentVerdict::NotMeasured,
            reason: "no complete pair of runs".into(),
            runs_per_side: 0,
            design: String::new(),
            cases: Vec::new(),
        };
    };
    let threshold_pct = pooled_base
        .results
        .iter()
        .map(|r| settings.threshold_pct(&r.benchmark))
        .reduce(f64::max)
        .unwrap_or(settings.threshold_pct);
    let time_settings = CompareSettings {
        threshold_pct,
        overrides: BTreeMap::new(),
    };
    // The verdict is one comparison (the time); the cases are described
    // with the same statistics, corrected among themselves.
    let verdict_cmp = compare_paired(
        std::slice::from_ref(&time),
        &pooled_base,
        &pooled_toggled,
        "baseline",
        "toggled",
        &time_settings,
    );
    let case_cmp = compare_paired(
        &paired_series(pairs),
        &pooled_base,
        &pooled_toggled,
        "baseline",
        "toggled",
        settings,
    );
    let (a, b): (Vec<f64>, Vec<f64>) = time.pairs.iter().copied().unzip();
    let change = change_of(&verdict_cmp, TIME_SERIES, "time_s");
    let (measured_speedup, ci95) = change.map_or((None, None), paired_speedup);
    let (base_med, tog_med) = (median(&a), median(&b));
    let ratio_of_medians = match (base_med, tog_med) {
        (Some(x), Some(y)) if y > 0.0 => Some(x / y),
        _ => None,
    };
    let verdict = match (change, ci95) {
        (None, _) | (_, None) => ExperimentVerdict::NotMeasured,
        (Some(c), _) if c.state == ChangeState::Improved => ExperimentVerdict::Gain,
        (Some(c), _) if c.state == ChangeState::Regressed => ExperimentVerdict::Loss,
        _ if !verdict_cmp.design.can_declare => ExperimentVerdict::Undeclarable,
        (_, Some([lo, hi])) if lo <= 1.0 && hi >= 1.0 => ExperimentVerdict::NoGainShown,
        (Some(c), _)
            if c.p_value
                .is_some_and(|p| p < super::regression::P_THRESHOLD) =>
        {
            ExperimentVerdict::BelowThreshold
        }
        _ => ExperimentVerdict::Inconclusive,
    };
    let cases = case_cmp
        .changes
        .iter()
        .map(|c| {
            let (speedup, ci95) = paired_speedup(c);
            CaseEffect {
                case: c.case.clone(),
                benchmark: pooled_base
                    .results
                    .iter()
                    .find(|r| r.case_id == c.case)
                    .map_or_else(String::new, |r| r.benchmark.clone()),
                metric: c.metric.clone(),
                unit: c.unit.clone(),
                higher_is_better: c.higher_is_better,
                baseline_median: c.baseline_median,
                toggled_median: c.current_median,
                speedup,
                ci95,
                p_value: c.p_value,
                q_value: c.q_value,
                state: c.state,
            }
        })
        .collect();
    Measurement {
        baseline_time_s: base_med,
        toggled_time_s: tog_med,
        measured_speedup,
        ratio_of_medians,
        threshold_pct: Some(threshold_pct),
        ci95,
        p_value: change.and_then(|c| c.p_value),
        verdict,
        reason: change.map_or_else(|| "no time series".into(), |c| c.reason.clone()),
        runs_per_side: time.pairs.len(),
        design: verdict_cmp.design.describe(),
        cases,
    }
}

/// The measured speed-up of some benchmarks as one on all profiled time.
pub fn on_profiled_time(
    speedup: f64,
    ci95: Option<[f64; 2]>,
    profiled_time_s: f64,
    benchmarks_time_s: f64,
) -> Option<ProfiledEffect> {
    let t = profiled_time_s;
    let te = benchmarks_time_s.min(t);
    if !(t > 0.0 && te > 0.0 && speedup > 0.0) {
        return None;
    }
    let overall = |s: f64| t / ((t - te) + te / s);
    Some(ProfiledEffect {
        profiled_time_s: t,
        benchmarks_time_s: te,
        overall_speedup: overall(speedup),
        ci95: ci95.map(|[lo, hi]| [overall(lo), overall(hi)]),
        formula: PROFILED_FORMULA.into(),
    })
}

/// Replaces the assumed speed-up of every remedy that has an experiment by
/// the measured one carried to all profiled time of this analysis (where
/// it profiled the experiment's benchmarks, whose measured time is in
/// `profiles`; elsewhere the estimate stays), recomputes time saved, ROI,
/// "after" and the weeks, and re-sorts the plan by ROI. Remedies without
/// an experiment keep their estimate (and say so).
pub fn apply_measurements(
    plan: &mut [RemedyEstimate],
    profiles: &[super::ProfileEvidence],
    profiled_time_s: f64,
    experiments: &ExperimentsFile,
) {
    let per_benchmark: BTreeMap<(u32, &str), f64> = profiles
        .iter()
        .map(|p| ((p.day, p.benchmark.as_str()), p.measured_s))
        .collect();
    for r in plan.iter_mut() {
        let Some(e) = experiments.find(&r.remedy) else {
            continue;
        };
        let m = &e.measurement;
        let Some(speedup) = m.measured_speedup.filter(|s| s.is_finite() && *s > 0.0) else {
            continue;
        };
        // The share of this analysis's time the experiment's benchmarks
        // took (not the one of the analysis the experiment saw, which
        // may be older or absent). Without it, the measured speed-up
        // says nothing about the rest of the time: the overall figures
        // stay the estimate rather than claim the benchmark's gain for all.
        let benchmarks_time_s: f64 = e
            .benchmarks
            .iter()
            .filter_map(|b| per_benchmark.get(&(b.day, b.benchmark.as_str())))
            .sum();
        let effect = on_profiled_time(speedup, m.ci95, profiled_time_s, benchmarks_time_s);
        if let Some(p) = &effect {
            r.estimated_speedup = p.overall_speedup;
            if let Some(ci) = p.ci95 {
                r.estimated_speedup_range = ci;
            }
            r.time_saved_s_per_run = profiled_time_s * (1.0 - 1.0 / p.overall_speedup);
            r.estimated_roi = r.time_saved_s_per_run / r.effort_days;
            r.estimated_after_s = profiled_time_s / p.overall_speedup;
        }
        r.measured = Some(MeasuredRemedy {
            speedup,
            ci95: m.ci95,
            p_value: m.p_value,
            verdict: m.verdict,
            overall_speedup: effect.as_ref().map(|p| p.overall_speedup),
            overall_ci95: effect.as_ref().and_then(|p| p.ci95),
            runs_per_side: m.runs_per_side,
            benchmarks: e.benchmarks.clone(),
            toggle: e.toggle_description.clone(),
            measured_at: e.measured_at,
            // A toggle that can change outputs and has no verdict (the
            // measurement failed, or reached no model) is not a win.
            quality: super::worst_quality(&e.quality).or(e
                .toggle
                .can_change_outputs()
                .then_some(super::QualityState::NotMeasured)),
        });
    }
    plan.sort_by(|a, b| b.estimated_roi.total_cmp(&a.estimated_roi));
    assign_weeks(plan);
}

/// Benchmarks by day, in the order given.
pub fn by_day(benchmarks: &[DayBenchmark]) -> BTreeMap<u32, Vec<String>> {
    let mut days: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for b in benchmarks {
        let names = days.entry(b.day).or_default();
        if !names.contains(&b.benchmark) {
            names.push(b.benchmark.clone());
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{ProfileEvidence, QualityState, Risk};

    fn plan_of(name: &str) -> RemedyEstimate {
        RemedyEstimate {
            remedy: name.into(),
            components: vec!["c".into()],
            functions: vec!["f".into()],
            share_pct: 50.0,
            share_ci95_pct: None,
            samples: 100,
            assumed_remedy_speedup: [1.5, 2.0],
            speedup_source: "test".into(),
            estimated_speedup: 1.2,
            estimated_speedup_range: [1.1, 1.3],
            time_saved_s_per_run: 10.0 * (1.0 - 1.0 / 1.2),
            estimated_roi: 10.0 * (1.0 - 1.0 / 1.2),
            effort_days: 1.0,
            risk: Risk::Low,
            estimated_after_s: 10.0 / 1.2,
            week: 1,
            evidence_benchmarks: Vec::new(),
            measured: None,
        }
    }

    /// A gain of ×2 on day 1's benchmark `b` (of an analysis that saw it
    /// take 5 of 10 s: the plan uses the analysis it is given instead).
    fn experiment(name: &str, toggle: Toggle) -> Experiment {
        Experiment {
            remedy: name.into(),
            toggle,
            toggle_description: "t".into(),
            measured_at: Utc::now(),
            quick: false,
            benchmarks: vec![DayBenchmark {
                day: 1,
                benchmark: "b".into(),
            }],
            order_seed: 1,
            order: Vec::new(),
            measurement: Measurement {
                runs_per_side: 9,
                design: "paired".into(),
                baseline_time_s: Some(2.0),
                toggled_time_s: Some(1.0),
                measured_speedup: Some(2.0),
                ratio_of_medians: Some(2.0),
                threshold_pct: Some(5.0),
                ci95: Some([1.8, 2.2]),
                p_value: Some(0.001),
                verdict: ExperimentVerdict::Gain,
                reason: "planted".into(),
                cases: Vec::new(),
            },
            on_profiled_time: on_profiled_time(2.0, Some([1.8, 2.2]), 10.0, 5.0),
            quality: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn toggle(param: Option<&str>, model_option: Option<&str>) -> Toggle {
        Toggle {
            param: param.map(str::to_string),
            setting: None,
            model_option: model_option.map(str::to_string),
            model: None,
            value: toml::Value::Boolean(true),
            benchmarks: Vec::new(),
        }
    }

    /// The plan after `e`, with an analysis of 10 s in which day 1's `b`
    /// took `benchmark_s` (not profiled: `None`).
    fn applied(e: Experiment, benchmark_s: Option<f64>) -> RemedyEstimate {
        let mut file = ExperimentsFile::new("c");
        file.upsert(e);
        let mut plan = [plan_of("r")];
        let profiles: Vec<ProfileEvidence> = benchmark_s
            .into_iter()
            .map(|measured_s| ProfileEvidence {
                day: 1,
                benchmark: "b".into(),
                samples: 100,
                folded_path: String::new(),
                measured_s,
                rate_hz: 100.0,
                lost_samples: 0,
            })
            .collect();
        apply_measurements(&mut plan, &profiles, 10.0, &file);
        let [r] = plan;
        r
    }

    /// Benchmarks that took 5 of 10 profiled seconds, twice as fast:
    /// 10 ÷ (5 + 5/2) = ×1.333 on all of it, and the plan says so.
    #[test]
    fn a_measured_gain_is_carried_to_the_profiled_time_by_its_share() {
        let r = applied(experiment("r", toggle(Some("p"), None)), Some(5.0));
        let m = r.measured.as_ref().unwrap();
        assert_eq!(m.overall_speedup, Some(10.0 / 7.5));
        assert!((r.estimated_speedup - 10.0 / 7.5).abs() < 1e-12);
        assert!((r.estimated_after_s - 7.5).abs() < 1e-12);
        assert_eq!(m.quality, None);
        assert!(m.is_win());
    }

    /// Without the benchmarks' share in this analysis (whatever the
    /// experiment's own analysis said), the benchmark's ×2 is not the
    /// overall speed-up: the plan keeps its estimate and says it is one;
    /// and the share is this analysis's, not the experiment's.
    #[test]
    fn an_unprofiled_experiment_leaves_the_overall_estimate_alone() {
        let r = applied(experiment("r", toggle(Some("p"), None)), Some(2.0));
        // 10 ÷ (8 + 2/2) = ×1.111.
        assert_eq!(
            r.measured.as_ref().unwrap().overall_speedup,
            Some(10.0 / 9.0)
        );
        let r = applied(experiment("r", toggle(Some("p"), None)), None);
        let m = r.measured.as_ref().unwrap();
        assert_eq!(m.speedup, 2.0);
        assert_eq!(m.overall_speedup, None);
        assert_eq!(r.estimated_speedup, 1.2);
        assert_eq!(r.estimated_speedup_range, [1.1, 1.3]);
        assert!((r.estimated_after_s - 10.0 / 1.2).abs() < 1e-12);
    }

    /// A toggle that can change outputs is a win only with a verdict that
    /// quality holds: none reached (the measurement failed) is not one.
    #[test]
    fn an_output_changing_gain_without_a_quality_verdict_is_not_a_win() {
        let r = applied(experiment("r", toggle(None, Some("quantize"))), Some(5.0));
        let m = r.measured.as_ref().unwrap();
        assert_eq!(m.quality, Some(QualityState::NotMeasured));
        assert!(!m.is_win());
        assert_eq!(r.week, 2);
    }
}
