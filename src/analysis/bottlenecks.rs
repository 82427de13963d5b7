//! Ranked bottlenecks: shares of CPU time per function and component from
//! the days' profiles, each with its 95 % interval, severity classes, and
//! Amdahl estimates of what a remedy from the catalog would save.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::attribution::{component_of, function_of};
use super::measured::DayBenchmark;
use super::plan::{RemedyEstimate, assign_weeks};
use super::remedies::{RemedyCatalog, Risk};
use super::roofline::Roofline;
use crate::profile::FoldedStacks;
use crate::stats::{kish_effective_n, samples_for_half_width, two_sided_z, wilson_interval};

pub const SEVERITY_RULE: &str = "share of the recorded CPU time: CRITICAL > 25 %, HIGH 15–25 %, MEDIUM 5–15 %, LOW < 5 %; the class of the measured share comes with the classes its 95 % interval spans, and a class is stated as settled only when the whole interval lies in it";
pub const AMDAHL_FORMULA: &str = "overall speed-up = 1 / ((1 − p) + p / s), p = share of the recorded CPU time, s = the remedy's assumed speed-up of that share; the estimate is at the measured p and s = √(low × high), its range from the low end of p's 95 % interval with the low s to the high end with the high s";
pub const SHARE_RULE: &str = "each recorded sample stands for 1 / (its profile's effective rate) seconds of CPU, so the shares of merged profiles are shares of CPU time; samples lost (CPU time × effective rate − recorded samples, and the `[unattributed]` stack of older profiles) are in no share and are reported apart; each share's 95 % interval is Wilson's score interval at the effective sample count (Σw)² / Σw² (Kish: the sample count itself when all profiles share one rate)";
/// A share is wanted to within ± this many percentage points, at
/// [`SHARE_CONFIDENCE`]: enough to tell the severity classes apart.
pub const PRECISION_PP: f64 = 5.0;
pub const PRECISION_RULE: &str = "stated precision: ±5 percentage points at 95 %; a listed share whose interval is wider says how many samples it needs, the fewest n at which its Wilson interval would be ±5 points (≈ z² p (1 − p) / E²), and the CPU-seconds of profiling that takes at the profiles' rate";
/// Coverage of every share's interval.
pub const SHARE_CONFIDENCE: f64 = 0.95;
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
    /// The class of a share in %; `SEVERITY_RULE` says the same.
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

/// A share in %, its 95 % interval, and the severity classes they give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareEstimate {
    pub share_pct: f64,
    pub ci95_pct: [f64; 2],
    /// The class of the measured share.
    pub severity: Severity,
    /// The classes of the interval's low and high ends: every class between
    /// them is possible.
    pub severity_range: [Severity; 2],
    /// True only when the whole interval lies in one class.
    pub severity_settled: bool,
}

impl ShareEstimate {
    /// A share `p` (fraction) measured over `effective_samples`.
    pub fn new(p: f64, effective_samples: f64) -> Self {
        let [lo, hi] = wilson_interval(p, effective_samples, share_z());
        let severity_range = [Severity::of(100.0 * lo), Severity::of(100.0 * hi)];
        Self {
            share_pct: 100.0 * p,
            ci95_pct: [100.0 * lo, 100.0 * hi],
            severity: Severity::of(100.0 * p),
            severity_range,
            severity_settled: severity_range[0] == severity_range[1],
        }
    }

    fn half_width_pp(&self) -> f64 {
        (self.ci95_pct[1] - self.ci95_pct[0]) / 2.0
    }
}

fn share_z() -> f64 {
    two_sided_z(SHARE_CONFIDENCE)
}

/// How many more samples a share needs for the stated precision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SampleShortfall {
    /// Half the width of the share's 95 % interval now, in points.
    pub half_width_pp: f64,
    /// Effective samples the interval rests on now.
    pub effective_samples: f64,
    /// Effective samples at which it would be ±[`PRECISION_PP`].
    pub samples_needed: u64,
    /// Samples still to record (raw, at the profiles' mix of rates).
    pub more_samples: u64,
    /// CPU-seconds of profiling those take at `rate_hz`.
    pub more_cpu_s: f64,
    /// Recorded samples per CPU-second of the profiles together.
    pub rate_hz: f64,
}

/// One benchmark's profile, as the analysis used it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileEvidence {
    pub day: u32,
    pub benchmark: String,
    /// Samples recorded (the lost ones are in `lost_samples`).
    pub samples: u64,
    pub folded_path: String,
    /// Measured wall time of the benchmark's unprofiled pass.
    pub measured_s: f64,
    /// The rate the profile was sampled at: each of its samples stands for
    /// 1 / this seconds of CPU. 0 in analyses written before it was kept.
    #[serde(default)]
    pub rate_hz: f64,
    /// Samples the sampler lost (its report's count, or the `[unattributed]`
    /// stack of an older profile).
    #[serde(default)]
    pub lost_samples: u64,
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
    /// CPU time charged to this function (its own and its plumbing's) ÷
    /// all recorded CPU time.
    pub share_pct: f64,
    /// 95 % interval of `share_pct`; absent from older analyses.
    #[serde(default)]
    pub share_ci95_pct: Option<[f64; 2]>,
    /// CPU time with this function anywhere on the stack ÷ all.
    pub total_share_pct: f64,
    /// The class of the measured share.
    pub severity: Severity,
    /// The classes the interval spans, low end's first.
    #[serde(default)]
    pub severity_range: Option<[Severity; 2]>,
    /// The whole interval lies in `severity`'s class.
    #[serde(default)]
    pub severity_settled: bool,
    /// What the share needs to be known to ±[`PRECISION_PP`]; `None` when
    /// it already is.
    #[serde(default)]
    pub precision_shortfall: Option<SampleShortfall>,
    pub remedy: Option<String>,
    /// Overall speed-up by Amdahl at the measured share and the middle of
    /// the assumed range.
    pub estimated_speedup: Option<f64>,
    /// From the share's interval and the assumed range together.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentShare {
    pub component: String,
    pub samples: u64,
    pub share_pct: f64,
    #[serde(default)]
    pub share_ci95_pct: Option<[f64; 2]>,
    pub severity: Severity,
    #[serde(default)]
    pub severity_range: Option<[Severity; 2]>,
    #[serde(default)]
    pub severity_settled: bool,
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
    /// Recorded samples: the shares are of these.
    pub total_samples: u64,
    /// Kish's effective count of the recorded samples, which the shares'
    /// intervals rest on.
    #[serde(default)]
    pub effective_samples: Option<f64>,
    /// Recorded samples per CPU-second of the profiles together.
    #[serde(default)]
    pub sample_rate_hz: Option<f64>,
    /// Samples the sampler lost: in no share.
    #[serde(default)]
    pub lost_samples: u64,
    /// The lost samples' CPU time ÷ all profiled CPU time, in %.
    #[serde(default)]
    pub lost_share_pct: Option<f64>,
    /// Measured time of the profiled benchmarks: the "run" ROI refers to.
    #[serde(rename = "baseline_s")]
    pub profiled_time_s: f64,
    #[serde(default)]
    pub share_rule: String,
    #[serde(default)]
    pub precision_rule: String,
    pub severity_rule: String,
    pub amdahl_formula: String,
    pub roi_formula: String,
    pub remedies_file: String,
    pub components: Vec<ComponentShare>,
    pub identified_bottlenecks: Vec<Bottleneck>,
    /// Remedies of the catalog that match profiled functions, by ROI.
    pub remedy_plan: Vec<RemedyEstimate>,
    /// What to do first and what it gives together (from `remedy_plan`;
    /// set again whenever experiments replace its estimates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<super::plan::PlanDecision>,
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
    /// Recorded samples.
    pub total_samples: u64,
    pub effective_samples: f64,
    pub sample_rate_hz: f64,
    pub lost_samples: u64,
    pub lost_share_pct: f64,
    pub profiled_time_s: f64,
    /// What the listing left out, which profiles could not be used, and
    /// which shares are short of the stated precision.
    pub notes: Vec<String>,
}

struct Estimate {
    overall: f64,
    range: [f64; 2],
    saved_s: f64,
    roi: f64,
}

/// Amdahl at the measured share and the middle of the assumed speed-up,
/// with the range the share's interval and the assumed range span together.
fn estimate(
    share: &ShareEstimate,
    [low, high]: [f64; 2],
    profiled_time_s: f64,
    effort_days: f64,
) -> Estimate {
    let p = share.share_pct / 100.0;
    let [p_low, p_high] = share.ci95_pct.map(|pct| pct / 100.0);
    let overall = amdahl(p, (low * high).sqrt());
    let saved_s = profiled_time_s * (1.0 - 1.0 / overall);
    // Low share with low s … high share with high s; taken over all four
    // corners so that an assumed slow-down (s < 1) is bounded as well.
    let corners = [
        amdahl(p_low, low),
        amdahl(p_low, high),
        amdahl(p_high, low),
        amdahl(p_high, high),
    ];
    Estimate {
        overall,
        range: [
            corners.iter().copied().fold(f64::INFINITY, f64::min),
            corners.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ],
        saved_s,
        roi: saved_s / effort_days,
    }
}

/// CPU-seconds the samples stand for, and the samples themselves.
#[derive(Debug, Clone, Copy, Default)]
struct Weighed {
    cpu_s: f64,
    samples: u64,
}

impl Weighed {
    fn add(&mut self, samples: u64, seconds_per_sample: f64) {
        self.samples += samples;
        self.cpu_s += samples as f64 * seconds_per_sample;
    }
}

/// What was charged to one function: in all, per benchmark (samples), and
/// per component (CPU-seconds).
#[derive(Default)]
struct Charged {
    all: Weighed,
    benchmarks: BTreeMap<String, u64>,
    components: BTreeMap<&'static str, f64>,
}

/// A ranked function: name, what it was charged, benchmarks, component.
struct RankedFunction {
    function: String,
    charged: Weighed,
    benchmarks: BTreeMap<String, u64>,
    component: &'static str,
}

/// A remedy and the ranked functions it applies to.
type PlanEntry<'c, 'r> = (&'c crate::analysis::Remedy, Vec<&'r RankedFunction>);

/// The profiles merged: every sample weighed by its profile's rate.
#[derive(Default)]
struct Merged {
    recorded: Weighed,
    lost: Weighed,
    /// (samples, seconds per sample) of each profile, for Kish's n.
    groups: Vec<(f64, f64)>,
    functions: BTreeMap<String, Charged>,
    /// CPU-seconds with the function anywhere on the stack.
    on_stack_s: BTreeMap<String, f64>,
    components: BTreeMap<&'static str, Weighed>,
    /// Measured time of the benchmarks whose profiles were used.
    profiled_time_s: f64,
    notes: Vec<String>,
}

fn merge(profiles: &[(ProfileEvidence, FoldedStacks)]) -> Merged {
    let mut m = Merged::default();
    for (evidence, stacks) in profiles {
        if !(evidence.rate_hz.is_finite() && evidence.rate_hz > 0.0) {
            m.notes.push(format!(
                "day {} {}: left out, its sampling rate is unknown (its samples cannot be weighed against the others')",
                evidence.day, evidence.benchmark
            ));
            continue;
        }
        let seconds_per_sample = 1.0 / evidence.rate_hz;
        m.profiled_time_s += evidence.measured_s;
        let mut stacks = stacks.clone();
        // Older profiles kept their lost samples both in the report and as
        // a stack: the larger count is the lost samples, never both.
        let lost = stacks.take_lost().max(evidence.lost_samples);
        m.lost.add(lost, seconds_per_sample);
        let recorded = stacks.total_samples();
        m.recorded.add(recorded, seconds_per_sample);
        m.groups.push((recorded as f64, seconds_per_sample));
        for (frames, count) in stacks.stacks() {
            let component = component_of(&frames);
            m.components
                .entry(component)
                .or_default()
                .add(count, seconds_per_sample);
            let Some(function) = function_of(&frames) else {
                continue;
            };
            let entry = m.functions.entry(function.to_string()).or_default();
            entry.all.add(count, seconds_per_sample);
            *entry
                .benchmarks
                .entry(evidence.benchmark.clone())
                .or_default() += count;
            *entry.components.entry(component).or_default() += count as f64 * seconds_per_sample;
        }
        for f in stacks.functions() {
            *m.on_stack_s.entry(f.function).or_default() +=
                f.total_samples as f64 * seconds_per_sample;
        }
    }
    m
}

/// Component shares, ranked bottlenecks and the remedy plan.
pub fn rank_bottlenecks(inputs: &RankingInputs<'_>) -> Ranking {
    let merged = merge(inputs.profiles);
    let profiled_time_s = merged.profiled_time_s;
    let all_s = merged.recorded.cpu_s + merged.lost.cpu_s;
    let lost_share_pct = if all_s > 0.0 {
        100.0 * merged.lost.cpu_s / all_s
    } else {
        0.0
    };
    let total_s = merged.recorded.cpu_s;
    if merged.recorded.samples == 0 || total_s <= 0.0 {
        return Ranking {
            components: Vec::new(),
            bottlenecks: Vec::new(),
            remedy_plan: Vec::new(),
            total_samples: 0,
            effective_samples: 0.0,
            sample_rate_hz: 0.0,
            lost_samples: merged.lost.samples,
            lost_share_pct,
            profiled_time_s,
            notes: merged.notes,
        };
    }
    let effective_samples = kish_effective_n(merged.groups.iter().copied());
    let sample_rate_hz = merged.recorded.samples as f64 / total_s;
    // Raw samples per effective one: unequal rates make each sample count
    // for less than one.
    let design_effect = merged.recorded.samples as f64 / effective_samples;
    let share = |cpu_s: f64| ShareEstimate::new(cpu_s / total_s, effective_samples);
    let shortfall = |s: &ShareEstimate| -> Option<SampleShortfall> {
        if s.half_width_pp() <= PRECISION_PP {
            return None;
        }
        let needed = samples_for_half_width(s.share_pct / 100.0, PRECISION_PP / 100.0, share_z());
        let more_samples =
            ((needed as f64 - effective_samples).max(0.0) * design_effect).ceil() as u64;
        Some(SampleShortfall {
            half_width_pp: s.half_width_pp(),
            effective_samples,
            samples_needed: needed,
            more_samples,
            more_cpu_s: more_samples as f64 / sample_rate_hz,
            rate_hz: sample_rate_hz,
        })
    };

    let mut component_shares: Vec<(ComponentShare, f64)> = merged
        .components
        .iter()
        .map(|(component, w)| {
            let s = share(w.cpu_s);
            (
                ComponentShare {
                    component: component.to_string(),
                    samples: w.samples,
                    share_pct: s.share_pct,
                    share_ci95_pct: Some(s.ci95_pct),
                    severity: s.severity,
                    severity_range: Some(s.severity_range),
                    severity_settled: s.severity_settled,
                },
                w.cpu_s,
            )
        })
        .collect();
    component_shares.sort_by(|a, b| b.1.total_cmp(&a.1));

    let mut ranked: Vec<RankedFunction> = merged
        .functions
        .into_iter()
        .map(|(function, charged)| {
            let component = charged
                .components
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(super::attribution::OTHER, |(c, _)| *c);
            RankedFunction {
                function,
                charged: charged.all,
                benchmarks: charged.benchmarks,
                component,
            }
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.charged
            .cpu_s
            .total_cmp(&a.charged.cpu_s)
            .then(a.function.cmp(&b.function))
    });

    let mut plan: Vec<PlanEntry<'_, '_>> = Vec::new();
    for f in &ranked {
        let Some(remedy) = inputs.catalog.find(f.component, &f.function) else {
            continue;
        };
        match plan.iter_mut().find(|(r, _)| std::ptr::eq(*r, remedy)) {
            Some((_, functions)) => functions.push(f),
            None => plan.push((remedy, vec![f])),
        }
    }
    let mut remedy_plan: Vec<RemedyEstimate> = plan
        .into_iter()
        .map(|(remedy, functions)| {
            let samples: u64 = functions.iter().map(|f| f.charged.samples).sum();
            let s = share(functions.iter().map(|f| f.charged.cpu_s).sum());
            let e = estimate(&s, remedy.speedup, profiled_time_s, remedy.effort_days);
            let mut components: Vec<String> =
                functions.iter().map(|f| f.component.to_string()).collect();
            components.dedup();
            let mut evidence_benchmarks: Vec<DayBenchmark> = inputs
                .profiles
                .iter()
                .filter(|(e, _)| {
                    functions
                        .iter()
                        .any(|f| f.benchmarks.contains_key(&e.benchmark))
                })
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
                functions: functions.iter().map(|f| f.function.clone()).collect(),
                share_pct: s.share_pct,
                share_ci95_pct: Some(s.ci95_pct),
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
    let pct = |cpu_s: f64| 100.0 * cpu_s / total_s;
    let listed = ranked
        .iter()
        .take(MAX_LISTED)
        .take_while(|f| pct(f.charged.cpu_s) >= MIN_SHARE_PCT)
        .count();
    let unlisted: Vec<RankedFunction> = ranked.split_off(listed);
    let mut notes = merged.notes;
    if !unlisted.is_empty() {
        notes.push(format!(
            "{} functions with {:.1} % of the CPU time together are not listed (each below {MIN_SHARE_PCT} %, or past the first {MAX_LISTED}); remedy estimates include them",
            unlisted.len(),
            pct(unlisted.iter().map(|f| f.charged.cpu_s).sum())
        ));
    }

    let bottlenecks: Vec<Bottleneck> = ranked
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let s = share(f.charged.cpu_s);
            let remedy = inputs.catalog.find(f.component, &f.function);
            let estimate = remedy.map(|r| estimate(&s, r.speedup, profiled_time_s, r.effort_days));
            Bottleneck {
                rank: i + 1,
                component: f.component.to_string(),
                total_share_pct: pct(merged
                    .on_stack_s
                    .get(&f.function)
                    .copied()
                    .unwrap_or(f.charged.cpu_s)),
                share_pct: s.share_pct,
                share_ci95_pct: Some(s.ci95_pct),
                severity: s.severity,
                severity_range: Some(s.severity_range),
                severity_settled: s.severity_settled,
                precision_shortfall: shortfall(&s),
                function: f.function,
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
                    benchmarks: f.benchmarks,
                    samples: f.charged.samples,
                    total_samples: merged.recorded.samples,
                },
            }
        })
        .collect();
    notes.extend(precision_note(&bottlenecks, effective_samples));
    Ranking {
        components: component_shares.into_iter().map(|(c, _)| c).collect(),
        bottlenecks,
        remedy_plan,
        total_samples: merged.recorded.samples,
        effective_samples,
        sample_rate_hz,
        lost_samples: merged.lost.samples,
        lost_share_pct,
        profiled_time_s,
        notes,
    }
}

/// The listed shares wider than the stated precision, and what the one
/// that needs the most samples needs: with that many, every listed share
/// would be within it.
fn precision_note(bottlenecks: &[Bottleneck], effective_samples: f64) -> Option<String> {
    let short: Vec<(&Bottleneck, &SampleShortfall)> = bottlenecks
        .iter()
        .filter_map(|b| Some((b, b.precision_shortfall.as_ref()?)))
        .collect();
    let (worst, need) = short.iter().max_by_key(|(_, s)| s.samples_needed)?;
    let [lo, hi] = worst.share_ci95_pct.unwrap_or([worst.share_pct; 2]);
    Some(format!(
        "precision: {} of the {} listed shares are wider than ±{PRECISION_PP} points (95 %) with {effective_samples:.0} effective samples; `{}` at {:.1} % ({lo:.1}–{hi:.1} %) needs {} effective samples: {} more, about {:.1} CPU-s of profiling at {:.0} Hz",
        short.len(),
        bottlenecks.len(),
        worst.function,
        worst.share_pct,
        need.samples_needed,
        need.more_samples,
        need.more_cpu_s,
        need.rate_hz,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{UNATTRIBUTED_FRAME, UNATTRIBUTED_THREAD};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Binomial, Distribution};
    use std::path::Path;

    fn no_catalog() -> RemedyCatalog {
        toml::from_str("remedy = []").unwrap()
    }

    fn evidence(benchmark: &str, samples: u64, rate_hz: f64) -> ProfileEvidence {
        ProfileEvidence {
            day: 1,
            benchmark: benchmark.into(),
            samples,
            folded_path: "x".into(),
            measured_s: 10.0,
            rate_hz,
            lost_samples: 0,
        }
    }

    fn share_of<'a>(r: &'a Ranking, function: &str) -> &'a Bottleneck {
        r.bottlenecks
            .iter()
            .find(|b| b.function == function)
            .unwrap_or_else(|| panic!("{function} not ranked"))
    }

    /// A share planted at 30 % measured as 13 of 57 samples: 22.8 %, HIGH
    /// by its point, but its interval reaches from MEDIUM to CRITICAL, so
    /// the class is not settled; from 171 of 570 it is CRITICAL, settled.
    #[test]
    fn severity_comes_with_the_classes_its_interval_spans() {
        let few = ShareEstimate::new(13.0 / 57.0, 57.0);
        assert_eq!(few.severity, Severity::High);
        assert_eq!(few.severity_range, [Severity::Medium, Severity::Critical]);
        assert!(!few.severity_settled);
        let [lo, hi] = few.ci95_pct;
        assert!(
            (lo - 13.84).abs() < 0.05 && (hi - 35.21).abs() < 0.05,
            "{lo} {hi}"
        );
        let many = ShareEstimate::new(171.0 / 570.0, 570.0);
        assert_eq!(many.severity, Severity::Critical);
        assert_eq!(many.severity_range, [Severity::Critical; 2]);
        assert!(many.severity_settled);
        assert!(SEVERITY_RULE.contains("settled only when the whole interval lies in it"));
        assert!(PRECISION_RULE.contains(&format!("±{PRECISION_PP:.0} percentage points at 95 %")));
    }

    /// Seeded binomial draws of a share planted at 30 % (CRITICAL): the
    /// interval covers it in ≥ 93 % of trials at 57 and at 570 samples; at
    /// 57 the class is stated as settled in few trials, and the range of
    /// classes holds the true class in nearly all; at 570 mostly settled.
    #[test]
    fn severity_is_settled_only_when_the_samples_allow_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x0030_0057);
        let truth = Severity::of(30.0);
        let contains = |[low, high]: [Severity; 2], class: Severity| {
            // Severity is declared from CRITICAL down: a lower index is a
            // higher class.
            (high as u8) <= (class as u8) && (class as u8) <= (low as u8)
        };
        let trials = 4000;
        let mut settled_at = Vec::new();
        for n in [57_u64, 570] {
            let draws = Binomial::new(n, 0.3).unwrap();
            let (mut covered, mut settled, mut range_holds, mut settled_wrong) = (0, 0, 0, 0);
            for _ in 0..trials {
                let s = ShareEstimate::new(draws.sample(&mut rng) as f64 / n as f64, n as f64);
                covered += usize::from(s.ci95_pct[0] <= 30.0 && 30.0 <= s.ci95_pct[1]);
                settled += usize::from(s.severity_settled);
                settled_wrong += usize::from(s.severity_settled && s.severity != truth);
                range_holds += usize::from(contains(s.severity_range, truth));
            }
            let rate = |k: usize| k as f64 / trials as f64;
            assert!(rate(covered) >= 0.93, "n {n}: coverage {}", rate(covered));
            assert!(rate(range_holds) >= 0.97, "n {n}: {}", rate(range_holds));
            assert!(
                rate(settled_wrong) <= 0.01,
                "n {n}: {}",
                rate(settled_wrong)
            );
            settled_at.push(rate(settled));
        }
        assert!(settled_at[0] < 0.25, "settled at n = 57: {}", settled_at[0]);
        assert!(settled_at[1] > 0.6, "settled at n = 570: {}", settled_at[1]);
    }

    /// 10 CPU-s at 100 Hz (f 60 %, g 40 %) and 10 CPU-s at 200 Hz (f 20 %,
    /// g 80 %): f has 40 % of the CPU time, though 33 % of the samples.
    #[test]
    fn merged_profiles_are_weighed_by_their_rates() {
        let slow = FoldedStacks::parse("t;f 600\nt;g 400\n", Path::new("a")).unwrap();
        let fast = FoldedStacks::parse("t;f 400\nt;g 1600\n", Path::new("b")).unwrap();
        let profiles = [
            (evidence("slow", 1000, 100.0), slow),
            (evidence("fast", 2000, 200.0), fast),
        ];
        let catalog = no_catalog();
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &profiles,
            catalog: &catalog,
        });
        let (f, g) = (share_of(&r, "f"), share_of(&r, "g"));
        assert!((f.share_pct - 40.0).abs() < 1e-9, "{}", f.share_pct);
        assert!((g.share_pct - 60.0).abs() < 1e-9, "{}", g.share_pct);
        assert_eq!(r.bottlenecks[0].function, "g");
        assert_eq!((f.evidence.samples, r.total_samples), (1000, 3000));
        assert!((r.effective_samples - 400.0 / 0.15).abs() < 1e-6);
        assert!((r.sample_rate_hz - 150.0).abs() < 1e-9);
        let [lo, hi] = f.share_ci95_pct.unwrap();
        let expected = wilson_interval(0.4, 400.0 / 0.15, share_z());
        assert!((lo - 100.0 * expected[0]).abs() < 1e-9 && (hi - 100.0 * expected[1]).abs() < 1e-9);
        // Components are weighed the same way.
        assert!((r.components[0].share_pct - 100.0).abs() < 1e-9);
    }

    /// An older profile kept 300 lost samples as an `[unattributed]`
    /// stack (and its report counted them too): the shares are of the 100
    /// recorded samples, and the lost share is its own figure.
    #[test]
    fn lost_samples_are_apart_from_the_shares() {
        let text =
            format!("t;main;f 75\nt;main;g 25\n{UNATTRIBUTED_THREAD};{UNATTRIBUTED_FRAME} 300\n");
        let stacks = FoldedStacks::parse(&text, Path::new("old")).unwrap();
        let mut old = evidence("old", 400, 1000.0);
        old.lost_samples = 300;
        let catalog = no_catalog();
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &[(old, stacks)],
            catalog: &catalog,
        });
        let names: Vec<&str> = r.bottlenecks.iter().map(|b| b.function.as_str()).collect();
        assert_eq!(names, ["f", "g"]);
        assert!((share_of(&r, "f").share_pct - 75.0).abs() < 1e-9);
        assert!(
            r.components
                .iter()
                .all(|c| c.component != super::super::attribution::UNATTRIBUTED)
        );
        assert_eq!((r.total_samples, r.lost_samples), (100, 300));
        assert!((r.lost_share_pct - 75.0).abs() < 1e-9);
        // A new profile counts its lost samples in its record only.
        let stacks = FoldedStacks::parse("t;main;f 75\nt;main;g 25\n", Path::new("new")).unwrap();
        let mut new = evidence("new", 100, 199.0);
        new.lost_samples = 20;
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &[(new, stacks)],
            catalog: &catalog,
        });
        assert_eq!((r.total_samples, r.lost_samples), (100, 20));
        assert!((r.lost_share_pct - 100.0 * 20.0 / 120.0).abs() < 1e-9);
    }

    /// The Amdahl range spans the share's interval with the assumed range:
    /// low share × low s … high share × high s.
    #[test]
    fn the_amdahl_range_uses_the_shares_interval() {
        let share = ShareEstimate::new(13.0 / 57.0, 57.0);
        let e = estimate(&share, [1.5, 3.0], 10.0, 1.0);
        let [lo, hi] = share.ci95_pct.map(|p| p / 100.0);
        assert!((e.range[0] - amdahl(lo, 1.5)).abs() < 1e-12);
        assert!((e.range[1] - amdahl(hi, 3.0)).abs() < 1e-12);
        assert!((e.overall - amdahl(13.0 / 57.0, 4.5_f64.sqrt())).abs() < 1e-12);
        // Wider than the assumed range alone gives at the measured share.
        assert!(e.range[0] < amdahl(13.0 / 57.0, 1.5) && e.range[1] > amdahl(13.0 / 57.0, 3.0));
    }

    /// 57 samples at 199 Hz: a 30 % share is ±12 points, so it says how
    /// many samples ±5 needs and how long that is to profile; 5700
    /// samples need nothing more.
    #[test]
    fn a_short_profile_says_how_many_more_samples_it_needs() {
        let catalog = no_catalog();
        let rank = |f: u64, g: u64| {
            let stacks =
                FoldedStacks::parse(&format!("t;f {f}\nt;g {g}\n"), Path::new("p")).unwrap();
            rank_bottlenecks(&RankingInputs {
                profiles: &[(evidence("p", f + g, 199.0), stacks)],
                catalog: &catalog,
            })
        };
        let short = rank(17, 40);
        let f = share_of(&short, "f");
        let need = f.precision_shortfall.as_ref().unwrap();
        let planning = share_z().powi(2) * 0.2982 * 0.7018 / 0.0025;
        assert!(
            (need.samples_needed as f64 - planning).abs() < 0.03 * planning,
            "{need:?}"
        );
        assert_eq!(need.more_samples, need.samples_needed - 57);
        assert!((need.more_cpu_s - need.more_samples as f64 / 199.0).abs() < 1e-9);
        assert!(need.half_width_pp > 11.0, "{need:?}");
        let note = short
            .notes
            .iter()
            .find(|n| n.starts_with("precision:"))
            .unwrap();
        assert!(
            note.contains("2 of the 2 listed shares") && note.contains("CPU-s"),
            "{note}"
        );
        let long = rank(1700, 4000);
        assert!(
            long.bottlenecks
                .iter()
                .all(|b| b.precision_shortfall.is_none())
        );
        assert!(long.notes.iter().all(|n| !n.starts_with("precision:")));
    }

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
            rate_hz: 199.0,
            lost_samples: 0,
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
        assert!((ranked[0].share_pct - 60.0).abs() < 1e-9);
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
            rate_hz: 199.0,
            lost_samples: 0,
        };
        let r = rank_bottlenecks(&RankingInputs {
            profiles: &[(evidence, stacks)],
            catalog: &catalog,
        });
        assert_eq!(r.bottlenecks.len(), 1, "only the hot function is listed");
        assert!((r.remedy_plan[0].share_pct - 60.0).abs() < 1e-9);
        assert_eq!(r.remedy_plan[0].functions.len(), 200);
        assert!(
            r.notes[0].starts_with("200 functions with 60.0 % of the CPU time"),
            "{:?}",
            r.notes
        );
    }
}
