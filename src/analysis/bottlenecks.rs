//! Ranked bottlenecks: sample shares per function and component from the
//! day's profiles, severity classes, and Amdahl estimates of what a remedy
//! from the catalog would save.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::attribution::{component_of, function_of};
use super::measured::{DayBenchmark, ExperimentVerdict, MeasuredRemedy};
use super::remedies::{RemedyCatalog, Risk};
use super::roofline::Roofline;
use crate::profile::FoldedStacks;

pub const SEVERITY_RULE: &str =
    "share of all profiled samples: CRITICAL > 25 %, HIGH 15–25 %, MEDIUM 5–15 %, LOW < 5 %";
pub const AMDAHL_FORMULA: &str = "overall speed-up = 1 / ((1 − p) + p / s), p = share of samples, s = the remedy's assumed speed-up of that share";
pub const ROI_FORMULA: &str = "ROI = time saved per run (s) ÷ effort (days); time saved = profiled time × (1 − 1 / overall speed-up), at s = √(low × high)";

/// Functions below this share are not listed.
const MIN_SHARE_PCT: f64 = 0.5;
const MAX_LISTED: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn of(share_pct: f64) -> Self {
        if share_pct > 25.0 {
            Self::Critical
        } else if share_pct >= 15.0 {
            Self::High
        } else if share_pct >= 5.0 {
            Self::Medium
        } else {
            Self::Low
        }
    }
}

/// One benchmark's profile, as the analysis used it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileEvidence {
    pub day: u32,
    pub benchmark: String,
    pub samples: u64,
    pub folded_path: String,
    /// Measured wall time of the benchmark's unprofiled pass.
    pub measured_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// Benchmarks whose profiles hold this function's samples, with counts.
    pub benchmarks: BTreeMap<String, u64>,
    pub samples: u64,
    pub total_samples: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bottleneck {
    pub rank: usize,
    pub component: String,
    pub function: String,
    /// Samples charged to this function (its own and its plumbing's) ÷ all.
    pub share_pct: f64,
    /// Samples with this function anywhere on the stack ÷ all.
    pub total_share_pct: f64,
    pub severity: Severity,
    pub remedy: Option<String>,
    /// Overall speed-up by Amdahl at the middle of the assumed range.
    pub estimated_speedup: Option<f64>,
    pub estimated_speedup_range: Option<[f64; 2]>,
    pub assumed_remedy_speedup: Option<[f64; 2]>,
    pub speedup_source: Option<String>,
    pub time_saved_s_per_run: Option<f64>,
    /// Seconds saved per run per day of effort.
    pub estimated_roi: Option<f64>,
    pub effort_days: Option<f64>,
    pub risk: Option<Risk>,
    pub evidence: Evidence,
}

/// One remedy applied to every function it matches: the share it acts on
/// is the sum of theirs, so estimates of functions sharing a remedy are not
/// added up twice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemedyEstimate {
    pub remedy: String,
    pub components: Vec<String>,
    /// Functions it applies to, largest share first.
    pub functions: Vec<String>,
    pub share_pct: f64,
    pub samples: u64,
    pub assumed_remedy_speedup: [f64; 2],
    pub speedup_source: String,
    pub estimated_speedup: f64,
    pub estimated_speedup_range: [f64; 2],
    pub time_saved_s_per_run: f64,
    pub estimated_roi: f64,
    pub effort_days: f64,
    pub risk: Risk,
    /// The measured time per run ÷ the estimated overall speed-up.
    #[serde(default)]
    pub estimated_after_s: f64,
    /// 1: low risk and an ROI at least [`WEEK1_ROI_FRACTION`] of the best
    /// (and, when measured, a gain shown); 2: everything else.
    #[serde(default)]
    pub week: u8,
    /// The profiled benchmarks whose samples this remedy acts on: what an
    /// experiment runs unless its toggle names benchmarks.
    #[serde(default)]
    pub evidence_benchmarks: Vec<DayBenchmark>,
    /// The experiment's figures, where one ran: then the speed-up, time
    /// saved, ROI and "after" above are measured, not assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<MeasuredRemedy>,
}

/// Week 1 or 2 for every remedy of a plan sorted by ROI.
pub fn assign_weeks(plan: &mut [RemedyEstimate]) {
    let best_roi = plan.iter().map(|r| r.estimated_roi).fold(0.0, f64::max);
    for r in plan {
        let shown = r
            .measured
            .as_ref()
            .is_none_or(|m| m.verdict == ExperimentVerdict::Gain);
        r.week = if r.risk == Risk::Low && shown && r.estimated_roi >= WEEK1_ROI_FRACTION * best_roi
        {
            1
        } else {
            2
        };
    }
}

/// Week 1 takes low-risk remedies whose ROI is at least this fraction of
/// the best remedy's.
pub const WEEK1_ROI_FRACTION: f64 = 0.5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentShare {
    pub component: String,
    pub samples: u64,
    pub share_pct: f64,
    pub severity: Severity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissedTarget {
    pub day: u32,
    #[serde(rename = "benchmark_name")]
    pub case_id: String,
    pub target: String,
    pub threshold: f64,
    pub measured: f64,
    /// measured ÷ threshold − 1, in %.
    pub gap_pct: f64,
}

/// A measured headline of a result, for the roadmap's table of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadlineFigure {
    pub day: u32,
    #[serde(rename = "benchmark_name")]
    pub case_id: String,
    pub kind: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BottleneckAnalysis {
    pub generated_at: DateTime<Utc>,
    pub campaign: String,
    pub days: Vec<u32>,
    pub reports: Vec<String>,
    pub profiles: Vec<ProfileEvidence>,
    pub total_samples: u64,
    /// Measured time of the profiled benchmarks: the "run" ROI refers to.
    #[serde(rename = "baseline_s")]
    pub profiled_time_s: f64,
    pub severity_rule: String,
    pub amdahl_formula: String,
    pub roi_formula: String,
    pub remedies_file: String,
    pub components: Vec<ComponentShare>,
    pub identified_bottlenecks: Vec<Bottleneck>,
    /// Remedies of the catalog that match profiled functions, by ROI.
    pub remedy_plan: Vec<RemedyEstimate>,
    pub missed_targets: Vec<MissedTarget>,
    /// Each case's measured headline (JSON `baseline`, its old name).
    #[serde(rename = "baseline")]
    pub headlines: Vec<HeadlineFigure>,
    pub roofline: Option<Roofline>,
    pub notes: Vec<String>,
}

/// Amdahl's law.
pub fn amdahl(p: f64, s: f64) -> f64 {
    1.0 / ((1.0 - p) + p / s)
}

/// Everything the ranking needs besides the profiles.
pub struct RankingInputs<'a> {
    pub profiles: &'a [(ProfileEvidence, FoldedStacks)],
    pub catalog: &'a RemedyCatalog,
}

/// What [`rank_bottlenecks`] found.
pub struct Ranking {
    pub components: Vec<ComponentShare>,
    /// By share, largest first.
    pub bottlenecks: Vec<Bottleneck>,
    /// By ROI, largest first.
    pub remedy_plan: Vec<RemedyEstimate>,
    pub total_samples: u64,
    pub profiled_time_s: f64,
    /// What the listing left out.
    pub notes: Vec<String>,
}

struct Estimate {
    overall: f64,
    range: [f64; 2],
    saved_s: f64,
    roi: f64,
}

fn estimate(p: f64, [low, high]: [f64; 2], profiled_time_s: f64, effort_days: f64) -> Estimate {
    let overall = amdahl(p, (low * high).sqrt());
    let saved_s = profiled_time_s * (1.0 - 1.0 / overall);
    Estimate {
        overall,
        range: [amdahl(p, low), amdahl(p, high)],
        saved_s,
        roi: saved_s / effort_days,
    }
}

/// Samples charged to one function: in all, per benchmark, per component.
type Charged = (u64, BTreeMap<String, u64>, BTreeMap<&'static str, u64>);
/// A remedy and the (function, samples, component, benchmarks) it applies to.
type PlanEntry<'c> = (
    &'c crate::analysis::Remedy,
    Vec<(String, u64, &'static str, Vec<String>)>,
);

/// Component shares, ranked bottlenecks and the remedy plan.
pub fn rank_bottlenecks(inputs: &RankingInputs<'_>) -> Ranking {
    let mut merged = FoldedStacks::default();
    let mut charged: BTreeMap<String, Charged> = BTreeMap::new();
    let mut components: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (evidence, stacks) in inputs.profiles {
        merged.merge(stacks);
        for (frames, count) in stacks.stacks() {
            let component = component_of(&frames);
            *components.entry(component).or_default() += count;
            let Some(function) = function_of(&frames) else {
                continue;
            };
            let entry = charged.entry(function.to_string()).or_default();
            entry.0 += count;
            *entry.1.entry(evidence.benchmark.clone()).or_default() += count;
            *entry.2.entry(component).or_default() += count;
        }
    }
    let total = merged.total_samples();
    let profiled_time_s: f64 = inputs.profiles.iter().map(|(e, _)| e.measured_s).sum();
    if total == 0 {
        return Ranking {
            components: Vec::new(),
            bottlenecks: Vec::new(),
            remedy_plan: Vec::new(),
            total_samples: 0,
            profiled_time_s,
            notes: Vec::new(),
        };
    }
    let pct = |n: u64| 100.0 * n as f64 / total as f64;
    let totals: BTreeMap<String, u64> = merged
        .functions()
        .into_iter()
        .map(|f| (f.function, f.total_samples))
        .collect();

    let mut component_shares: Vec<ComponentShare> = components
        .into_iter()
        .map(|(component, samples)| ComponentShare {
            component: component.to_string(),
            samples,
            share_pct: pct(samples),
            severity: Severity::of(pct(samples)),
        })
        .collect();
    component_shares.sort_by_key(|c| std::cmp::Reverse(c.samples));

    let mut ranked: Vec<(String, u64, BTreeMap<String, u64>, &'static str)> = charged
        .into_iter()
        .map(|(function, (samples, benchmarks, by_component))| {
            let component = by_component
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map_or(super::attribution::OTHER, |(c, _)| c);
            (function, samples, benchmarks, component)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut plan: Vec<PlanEntry<'_>> = Vec::new();
    for (function, samples, benchmarks, component) in &ranked {
        let Some(remedy) = inputs.catalog.find(component, function) else {
            continue;
        };
        let entry = (
            function.clone(),
            *samples,
            *component,
            benchmarks.keys().cloned().collect(),
        );
        match plan.iter_mut().find(|(r, _)| std::ptr::eq(*r, remedy)) {
            Some((_, functions)) => functions.push(entry),
            None => plan.push((remedy, vec![entry])),
        }
    }
    let mut remedy_plan: Vec<RemedyEstimate> = plan
        .into_iter()
        .map(|(remedy, functions)| {
            let samples: u64 = functions.iter().map(|f| f.1).sum();
            let e = estimate(
                pct(samples) / 100.0,
                remedy.speedup,
                profiled_time_s,
                remedy.effort_days,
            );
            let mut components: Vec<String> = functions.iter().map(|f| f.2.to_string()).collect();
            components.dedup();
            let mut evidence_benchmarks: Vec<DayBenchmark> = inputs
                .profiles
                .iter()
                .filter(|(e, _)| functions.iter().any(|f| f.3.contains(&e.benchmark)))
                .map(|(e, _)| DayBenchmark {
                    day: e.day,
                    benchmark: e.benchmark.clone(),
                })
                .collect();
            evidence_benchmarks.sort();
            evidence_benchmarks.dedup();
            RemedyEstimate {
                remedy: remedy.remedy.clone(),
                components,
                functions: functions.into_iter().map(|f| f.0).collect(),
                share_pct: pct(samples),
                samples,
                assumed_remedy_speedup: remedy.speedup,
                speedup_source: remedy.source.clone(),
                estimated_speedup: e.overall,
                estimated_speedup_range: e.range,
                time_saved_s_per_run: e.saved_s,
                estimated_roi: e.roi,
                effort_days: remedy.effort_days,
                risk: remedy.risk,
                estimated_after_s: profiled_time_s / e.overall,
                week: 2,
                evidence_benchmarks,
                measured: None,
            }
        })
        .collect();
    remedy_plan.sort_by(|a, b| b.estimated_roi.total_cmp(&a.estimated_roi));
    assign_weeks(&mut remedy_plan);
    // Only the listing is cut; the remedy plan above counted every function.
    let listed = ranked
        .iter()
        .take(MAX_LISTED)
        .take_while(|(_, samples, _, _)| pct(*samples) >= MIN_SHARE_PCT)
        .count();
    let unlisted: Vec<_> = ranked.split_off(listed);
    let unlisted_samples: u64 = unlisted.iter().map(|f| f.1).sum();
    let listing_note = (!unlisted.is_empty()).then(|| {
        format!(
            "{} functions with {:.1} % of the samples together are not listed (each below {MIN_SHARE_PCT} %, or past the first {MAX_LISTED}); remedy estimates include them",
            unlisted.len(),
            pct(unlisted_samples)
        )
    });

    let bottlenecks = ranked
        .into_iter()
        .enumerate()
        .map(|(i, (function, samples, benchmarks, component))| {
            let share_pct = pct(samples);
            let p = share_pct / 100.0;
            let remedy = inputs.catalog.find(component, &function);
            let estimate = remedy.map(|r| estimate(p, r.speedup, profiled_time_s, r.effort_days));
            Bottleneck {
                rank: i + 1,
                component: component.to_string(),
                total_share_pct: pct(totals.get(&function).copied().unwrap_or(samples)),
                function,
                share_pct,
                severity: Severity::of(share_pct),
                remedy: remedy.map(|r| r.remedy.clone()),
                estimated_speedup: estimate.as_ref().map(|e| e.overall),
                estimated_speedup_range: estimate.as_ref().map(|e| e.range),
                assumed_remedy_speedup: remedy.map(|r| r.speedup),
                speedup_source: remedy.map(|r| r.source.clone()),
                time_saved_s_per_run: estimate.as_ref().map(|e| e.saved_s),
                estimated_roi: estimate.as_ref().map(|e| e.roi),
                effort_days: remedy.map(|r| r.effort_days),
                risk: remedy.map(|r| r.risk),
                evidence: Evidence {
                    benchmarks,
                    samples,
                    total_samples: total,
                },
            }
        })
        .collect();
    Ranking {
        components: component_shares,
        bottlenecks,
        remedy_plan,
        total_samples: total,
        profiled_time_s,
        notes: listing_note.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amdahl_and_severity() {
        assert!((amdahl(0.5, 2.0) - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(amdahl(0.0, 10.0), 1.0);
        assert_eq!(Severity::of(30.0), Severity::Critical);
        assert_eq!(Severity::of(25.0), Severity::High);
        assert_eq!(Severity::of(15.0), Severity::High);
        assert_eq!(Severity::of(14.9), Severity::Medium);
        assert_eq!(Severity::of(4.9), Severity::Low);
    }

    #[test]
    fn ranking_charges_plumbing_to_callers_and_applies_the_catalog() {
        let stacks = FoldedStacks::parse(
            "t;run;a;core::iter::next 60\nt;run;b 30\nt;run;gemm_kernel 10\n",
            std::path::Path::new("x"),
        )
        .unwrap();
        let catalog: RemedyCatalog = toml::from_str(
            r#"[[remedy]]
function_contains = "a"
remedy = "do less"
speedup = [2.0, 2.0]
effort_days = 2.0
risk = "low"
source = "test"
"#,
        )
        .unwrap();
        let evidence = ProfileEvidence {
            day: 1,
            benchmark: "bench".into(),
            samples: 100,
            folded_path: "x".into(),
            measured_s: 10.0,
        };
        let profiles = [(evidence, stacks)];
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &profiles,
            catalog: &catalog,
        });
        let (components, ranked, total, baseline) = (
            r.components,
            r.bottlenecks,
            r.total_samples,
            r.profiled_time_s,
        );
        assert_eq!(r.remedy_plan.len(), 1);
        assert_eq!(r.remedy_plan[0].functions, ["a"]);
        assert_eq!((total, baseline), (100, 10.0));
        let names: Vec<&str> = ranked.iter().map(|b| b.function.as_str()).collect();
        assert_eq!(names, ["a", "b", "gemm_kernel"]);
        assert_eq!(ranked[0].share_pct, 60.0);
        assert_eq!(ranked[0].severity, Severity::Critical);
        // p = 0.6, s = 2: 1 / 0.7; saved = 10 × (1 − 0.7) = 3 s; ROI 1.5 s/day.
        assert!((ranked[0].estimated_speedup.unwrap() - 1.0 / 0.7).abs() < 1e-12);
        assert!((ranked[0].estimated_roi.unwrap() - 1.5).abs() < 1e-12);
        assert!(ranked[1].remedy.is_none());
        assert_eq!(ranked[2].component, "inference/matmul");
        assert_eq!(components[0].component, "other");
        assert_eq!(components[0].samples, 90);
    }

    #[test]
    fn a_remedy_counts_every_function_it_matches_even_unlisted_ones() {
        // 40 % in one function, 60 % spread over 200 functions of 0.3 %.
        let mut text = String::from("t;run;hot 400\n");
        for i in 0..200 {
            text.push_str(&format!("t;run;cold_{i} 3\n"));
        }
        let stacks = FoldedStacks::parse(&text, std::path::Path::new("x")).unwrap();
        let catalog: RemedyCatalog = toml::from_str(
            r#"[[remedy]]
function_contains = "cold_"
remedy = "batch the cold calls"
speedup = [2.0, 2.0]
effort_days = 1.0
risk = "low"
source = "test"
"#,
        )
        .unwrap();
        let evidence = ProfileEvidence {
            day: 1,
            benchmark: "bench".into(),
            samples: 1000,
            folded_path: "x".into(),
            measured_s: 10.0,
        };
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &[(evidence, stacks)],
            catalog: &catalog,
        });
        assert_eq!(r.bottlenecks.len(), 1, "only the hot function is listed");
        assert_eq!(r.remedy_plan[0].share_pct, 60.0);
        assert_eq!(r.remedy_plan[0].functions.len(), 200);
        assert!(
            r.notes[0].starts_with("200 functions with 60.0 %"),
            "{:?}",
            r.notes
        );
    }
}
