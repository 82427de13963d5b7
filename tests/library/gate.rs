//! The regression gate against planted truth, at the settings we ship and
//! under the noise a real night has. Every night here goes through the
//! code `campaign run` uses: the run count from `plan_night`, each run a
//! report of its own pooled by slot with `DailyReport::pooled` (a lost
//! child or a failed run included), the machine's history written by
//! `HistoryEntry::from_report` and read back into the night-noise
//! estimate, and `judge_night` (first comparison, common shift, A/A
//! control, confirming re-run, outcome). Interleaved nights go through
//! `Schedule::interleaved` and the sitting's pairing by slot.
//!
//! Noise, on the log scale, of case c in run r of night n:
//! `common night offset + the case's own night offset + the run's offset
//! shared by every case of it (one process) + the machine's drift at that
//! slot + run-to-run noise`. The synthetic day is shaped like Day 1 of
//! the default campaign: two benchmarks of four cases, each case with a
//! latency and a throughput headline: 16 comparisons, 8 cases.

use std::collections::BTreeMap;

use campaign::analysis::{
    CompareSettings, Comparison, ExperimentVerdict, HistoryEntry, NightNoise, NightOutcome,
    NightRecord, NightRequest, PairedSeries, compare_paired, judge_night, paired_series,
    plan_night,
};
use campaign::model::{
    BenchmarkResult, CampaignInfo, DailyReport, DaySummary, Environment, IterationPlan,
    MetricReport, RunSettings, Status,
};
use campaign::runner::{Arm, Schedule, SittingRuns, Slot};
use campaign::stats::{MetricRecorder, ProvisionalRule, ValueKind, summarize};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const BENCHMARKS: [&str; 2] = ["ttft", "decode"];
const CASES_PER_BENCHMARK: usize = 4;
const CASES: usize = 8;
const COMPARISONS: usize = 16;
/// Nights per scenario.
const TRIALS: usize = 300;
/// Nights of history before each judged night (the nightly job's own).
const HISTORY: usize = 10;
/// The planted case: `decode[case=2]`.
const PLANTED: usize = 6;

fn case_name(c: usize) -> String {
    format!(
        "{}[case={}]",
        BENCHMARKS[c / CASES_PER_BENCHMARK],
        c % CASES_PER_BENCHMARK
    )
}

/// A headline metric of one run whose mean is `value` (a run contributes
/// its headline means): one summary is built, then only its mean changes.
fn metric(unit: &str, higher_is_better: bool, value: f64) -> MetricReport {
    static SUMMARY: std::sync::OnceLock<campaign::stats::Summary> = std::sync::OnceLock::new();
    let mut summary = SUMMARY
        .get_or_init(|| {
            let mut recorder = MetricRecorder::new(ValueKind::Quantity, 100);
            recorder.record(1.0);
            summarize(&recorder).expect("a value was recorded")
        })
        .clone();
    summary.mean = value;
    MetricReport {
        unit: unit.into(),
        higher_is_better,
        description: String::new(),
        summary,
        raw_samples: vec![value],
        raw_samples_truncated: false,
        rejected_samples: 0,
    }
}

/// One case of one run that took `latency_ms` (throughput is its inverse).
fn result(c: usize, latency_ms: f64, status: Status) -> BenchmarkResult {
    let throughput = 1000.0 / latency_ms;
    let ok = status == Status::Ok;
    BenchmarkResult {
        case_id: case_name(c),
        benchmark: BENCHMARKS[c / CASES_PER_BENCHMARK].into(),
        kind: "synthetic".into(),
        case: Some(format!("case={}", c % CASES_PER_BENCHMARK)),
        status,
        error: (!ok).then(|| "planted failure".to_string()),
        mean_ms: None,
        p50_ms: None,
        p99_ms: None,
        latency_metric: Some("latency_ms".into()),
        throughput: None,
        throughput_unit: None,
        throughput_metric: Some("items_per_s".into()),
        parameters: serde_json::Value::Null,
        context: serde_json::Value::Null,
        plan: IterationPlan {
            warmup: 0,
            iterations: 1,
            time_budget_s: None,
            timeout_s: 1.0,
            scale: 1.0,
        },
        warmup_completed: 0,
        iterations_completed: 1,
        elapsed_s: latency_ms * 20.0 / 1000.0,
        peak_rss_mib: None,
        run_values: if ok {
            BTreeMap::from([
                ("latency_ms".to_string(), vec![latency_ms]),
                ("items_per_s".to_string(), vec![throughput]),
            ])
        } else {
            BTreeMap::new()
        },
        run_slots: Vec::new(),
        failed_runs: Vec::new(),
        metrics: if ok {
            BTreeMap::from([
                ("latency_ms".to_string(), metric("ms", false, latency_ms)),
                (
                    "items_per_s".to_string(),
                    metric("items/s", true, throughput),
                ),
            ])
        } else {
            BTreeMap::new()
        },
        series: BTreeMap::new(),
        setup: BTreeMap::new(),
        targets: Vec::new(),
        conclusion: None,
        warnings: Vec::new(),
    }
}

fn environment() -> Environment {
    static ENV: std::sync::OnceLock<Environment> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Environment::capture("cpu".into(), 1, "f32".into()))
        .clone()
}

/// One run's report, as a child prints it.
fn report(results: Vec<BenchmarkResult>, night: usize) -> DailyReport {
    let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::days(night as i64);
    DailyReport {
        schema_version: 1,
        run_id: format!("night {night}"),
        campaign: CampaignInfo {
            name: "synthetic".into(),
            description: String::new(),
            file: String::new(),
        },
        day: 1,
        day_title: "gate".into(),
        started_at: at,
        finished_at: at,
        quick: false,
        interrupted: false,
        environment: environment(),
        settings: RunSettings {
            threads: 1,
            device: "cpu".into(),
            dtype: "f32".into(),
            seed: 0,
            max_raw_samples: 100,
            quick_factor: 1.0,
            provisional_rule: ProvisionalRule::current(),
            only: Vec::new(),
            runs: 1,
            run_order_seed: 0,
            against_bin: None,
            separate_processes: true,
        },
        summary: DaySummary::default(),
        scaling: Vec::new(),
        parity: Vec::new(),
        peers: Vec::new(),
        profiles: Vec::new(),
        results,
        warnings: Vec::new(),
    }
}

/// The noise of a machine's nights, all SDs on the log scale.
#[derive(Debug, Clone, Copy)]
struct Machine {
    /// Run-to-run noise of one case.
    within: f64,
    /// The night's offset shared by every case.
    night_common: f64,
    /// Each case's own night offset.
    night_case: f64,
    /// Each run's (process's) offset shared by every case of it.
    round: f64,
    /// Amplitude of the machine's drift over a night's slots.
    drift: f64,
}

const QUIET: Machine = Machine {
    within: 0.02,
    night_common: 0.0,
    night_case: 0.0,
    round: 0.0,
    drift: 0.0,
};

/// One night on the machine: its offsets, drawn once and shared by the
/// night's first runs and its re-run.
struct Night {
    number: usize,
    common: f64,
    per_case: [f64; CASES],
    drift_phase: f64,
    slots_used: usize,
}

impl Night {
    fn new(machine: &Machine, number: usize, rng: &mut ChaCha8Rng) -> Self {
        let normal = |sd: f64| Normal::new(0.0, sd).expect("a valid SD");
        let mut per_case = [0.0; CASES];
        for x in &mut per_case {
            *x = normal(machine.night_case).sample(rng);
        }
        Self {
            number,
            common: normal(machine.night_common).sample(rng),
            per_case,
            drift_phase: rng.random_range(0.0..std::f64::consts::TAU),
            slots_used: 0,
        }
    }
}

/// What happens to a night's runs besides noise.
#[derive(Debug, Clone, Copy, Default)]
struct Mishaps {
    /// This timed run's child leaves no report.
    lost_slot: Option<u32>,
    /// The planted case fails in this timed run.
    failed_slot: Option<u32>,
}

/// Measures `runs` separate runs of the night (only the benchmarks in
/// `only`, when given) with `factor(case)` planted, pooled as the runner
/// pools its children.
fn measure(
    machine: &Machine,
    night: &mut Night,
    runs: usize,
    factor: &dyn Fn(usize) -> f64,
    only: Option<&[String]>,
    mishaps: Mishaps,
    rng: &mut ChaCha8Rng,
) -> DailyReport {
    let normal = |sd: f64| Normal::new(0.0, sd).expect("a valid SD");
    let mut reports = Vec::new();
    let mut lost = Vec::new();
    for slot in 0..runs as u32 {
        let position = night.slots_used as f64;
        night.slots_used += 1;
        let round = normal(machine.round).sample(rng);
        // A swing of ±drift over about 18 slots: a few runs of one day.
        let drift = machine.drift * (0.35 * position + night.drift_phase).sin();
        let results: Vec<BenchmarkResult> = (0..CASES)
            .filter(|c| {
                only.is_none_or(|o| o.iter().any(|b| b == BENCHMARKS[c / CASES_PER_BENCHMARK]))
            })
            .map(|c| {
                let base = 10.0 * (c % CASES_PER_BENCHMARK + 1) as f64;
                let log = night.common
                    + night.per_case[c]
                    + round
                    + drift
                    + normal(machine.within).sample(rng);
                let status = if mishaps.failed_slot == Some(slot) && c == PLANTED {
                    Status::Failed
                } else {
                    Status::Ok
                };
                result(c, base * log.exp() * factor(c), status)
            })
            .collect();
        if mishaps.lost_slot == Some(slot) {
            lost.push((slot, "the child was killed by a signal".to_string()));
        } else {
            reports.push((slot, report(results, night.number)));
        }
    }
    let refs: Vec<(u32, &DailyReport)> = reports.iter().map(|(s, r)| (*s, r)).collect();
    let mut pooled = DailyReport::pooled(&refs, &lost).expect("at least one run");
    pooled.settings.runs = runs as u32;
    pooled
}

/// The nightly workflow's plan: the baseline saved once, then each night
/// against it.
fn shipped_runs() -> (usize, usize) {
    let save = plan_night(&NightRequest {
        saves: Some(COMPARISONS),
        ..Default::default()
    })
    .expect("a design exists")
    .expect("a night that saves makes verdicts")
    .runs;
    let nightly = plan_night(&NightRequest {
        baseline: Some((COMPARISONS, save)),
        ..Default::default()
    })
    .expect("a design exists")
    .expect("a night against a baseline makes verdicts")
    .runs;
    (save, nightly)
}

/// A scenario: the machine, how much history the night has, its mishaps.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    machine: Machine,
    history: usize,
    mishaps: Mishaps,
}

/// What the nights of one scenario gave.
#[derive(Debug, Default)]
struct Tally {
    /// Nights that failed (exit 3) on the planted case, and only on it.
    caught: usize,
    /// Nights that failed on anything else.
    false_failures: usize,
    /// Nights too noisy to tell (exit 5).
    too_noisy: usize,
    /// Null comparisons of the first comparison, and those with p < 0.01.
    null_comparisons: usize,
    null_below_1pct: usize,
    /// Nights whose pooled report counted a failed run.
    failed_runs_counted: usize,
}

/// One judged night: baseline, history, tonight and its re-run.
fn night(
    scenario: &Scenario,
    factor: &dyn Fn(usize) -> f64,
    rng: &mut ChaCha8Rng,
) -> (Comparison, DailyReport) {
    night_wandering(scenario, factor, rng, None)
}

/// [`night`], the nights' common offsets an AR(1) of correlation `phi`
/// (stationary SD `night_common`) when given.
fn night_wandering(
    scenario: &Scenario,
    factor: &dyn Fn(usize) -> f64,
    rng: &mut ChaCha8Rng,
    phi: Option<f64>,
) -> (Comparison, DailyReport) {
    let sd = scenario.machine.night_common;
    let mut commons: Vec<f64> = Vec::new();
    if let Some(phi) = phi {
        let start = Normal::new(0.0, sd).expect("sd").sample(rng);
        let innovation = Normal::new(0.0, sd * (1.0 - phi * phi).sqrt()).expect("sd");
        let mut x = start;
        for _ in 0..=scenario.history + 1 {
            commons.push(x);
            x = phi * x + innovation.sample(rng);
        }
    }
    // Each case's own offset wanders too, at its own SD.
    let case_sd = scenario.machine.night_case;
    let mut per_case: Vec<[f64; CASES]> = Vec::new();
    if let Some(phi) = phi {
        let innovation = Normal::new(0.0, case_sd * (1.0 - phi * phi).sqrt()).expect("sd");
        let mut x = [0.0; CASES];
        for v in &mut x {
            *v = Normal::new(0.0, case_sd).expect("sd").sample(rng);
        }
        for _ in 0..=scenario.history + 1 {
            per_case.push(x);
            for v in &mut x {
                *v = phi * *v + innovation.sample(rng);
            }
        }
    }
    let common_of = |n: usize, night: &mut Night| {
        if let Some(c) = commons.get(n) {
            night.common = *c;
        }
        if let Some(c) = per_case.get(n) {
            night.per_case = *c;
        }
    };
    let (save_runs, runs) = shipped_runs();
    let machine = &scenario.machine;
    let none = |_: usize| 1.0;
    let mut baseline_night = Night::new(machine, 0, rng);
    common_of(0, &mut baseline_night);
    let baseline = measure(
        machine,
        &mut baseline_night,
        save_runs,
        &none,
        None,
        Mishaps::default(),
        rng,
    );
    let history: Vec<NightRecord> = (1..=scenario.history)
        .filter_map(|n| {
            let mut past = Night::new(machine, n, rng);
            common_of(n, &mut past);
            let r = measure(
                machine,
                &mut past,
                runs,
                &none,
                None,
                Mishaps::default(),
                rng,
            );
            HistoryEntry::from_report(&r, "past").night_record()
        })
        .collect();
    let noise = NightNoise::estimate(&history);
    let mut tonight_night = Night::new(machine, scenario.history + 1, rng);
    common_of(scenario.history + 1, &mut tonight_night);
    let tonight = measure(
        machine,
        &mut tonight_night,
        runs,
        factor,
        None,
        scenario.mishaps,
        rng,
    );
    let settings = CompareSettings::default();
    let comparison = judge_night(
        &baseline,
        &tonight,
        ("base", "tonight"),
        &settings,
        &noise,
        |suspects| {
            Some(measure(
                machine,
                &mut tonight_night,
                runs,
                factor,
                Some(suspects),
                Mishaps::default(),
                rng,
            ))
        },
    );
    (comparison, tonight)
}

fn tally(scenario: &Scenario, planted: f64, seed: u64) -> Tally {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let factor = move |c: usize| if c == PLANTED { planted } else { 1.0 };
    let mut t = Tally::default();
    for _ in 0..TRIALS {
        let (c, tonight) = night(scenario, &factor, &mut rng);
        assert_eq!(c.design.comparisons, COMPARISONS, "{}", scenario.name);
        t.failed_runs_counted += usize::from(tonight.summary.failed_runs > 0);
        for change in c.changes.iter().filter(|x| x.case != case_name(PLANTED)) {
            if let Some(p) = change.p_value {
                t.null_comparisons += 1;
                t.null_below_1pct += usize::from(p < 0.01);
            }
        }
        match c.outcome {
            NightOutcome::Regression => {
                if planted != 1.0 && c.regressions().all(|x| x.case == case_name(PLANTED)) {
                    t.caught += 1;
                } else {
                    t.false_failures += 1;
                }
            }
            NightOutcome::TooNoisy => t.too_noisy += 1,
            NightOutcome::Pass => {}
        }
    }
    eprintln!(
        "{:<34} ×{planted}: caught {:>3}, false failures {:>2}, too noisy {:>3}, null p < 0.01: {} of {} ({:.2} %)",
        scenario.name,
        t.caught,
        t.false_failures,
        t.too_noisy,
        t.null_below_1pct,
        t.null_comparisons,
        100.0 * t.null_below_1pct as f64 / t.null_comparisons.max(1) as f64
    );
    t
}

/// The noise a real night has, each scenario on top of 2 % run noise and
/// a 1 % night offset of each case of its own.
fn scenarios() -> Vec<Scenario> {
    let machine = Machine {
        night_case: 0.01,
        ..QUIET
    };
    let with = |name, m: Machine| Scenario {
        name,
        machine: m,
        history: HISTORY,
        mishaps: Mishaps::default(),
    };
    vec![
        with(
            "night offsets 1 %",
            Machine {
                night_common: 0.01,
                ..machine
            },
        ),
        with(
            "night offsets 3 %",
            Machine {
                night_common: 0.03,
                ..machine
            },
        ),
        with(
            "night offsets 5 %",
            Machine {
                night_common: 0.05,
                ..machine
            },
        ),
        Scenario {
            history: 0,
            ..with(
                "night offsets 5 %, no history",
                Machine {
                    night_common: 0.05,
                    ..machine
                },
            )
        },
        with(
            "round-shared 3 %",
            Machine {
                round: 0.03,
                night_common: 0.03,
                ..machine
            },
        ),
        with(
            "round-shared 5 %",
            Machine {
                round: 0.05,
                night_common: 0.03,
                ..machine
            },
        ),
        with(
            "drift ±20 % over the slots",
            Machine {
                drift: 0.2,
                night_common: 0.03,
                ..machine
            },
        ),
        Scenario {
            mishaps: Mishaps {
                lost_slot: Some(2),
                failed_slot: None,
            },
            ..with(
                "a lost child",
                Machine {
                    night_common: 0.03,
                    round: 0.03,
                    ..machine
                },
            )
        },
        Scenario {
            mishaps: Mishaps {
                lost_slot: None,
                failed_slot: Some(4),
            },
            ..with(
                "a failed run",
                Machine {
                    night_common: 0.03,
                    round: 0.03,
                    ..machine
                },
            )
        },
    ]
}

#[test]
fn the_shipped_plan_can_declare_a_one_case_regression() {
    let (save, nightly) = shipped_runs();
    // The workflow saves 7 runs and runs 6 against them each night.
    assert_eq!((save, nightly), (7, 6));
    let design = campaign::analysis::GateDesign::unpaired(save, nightly, COMPARISONS);
    assert!(
        design.declarable_overlap >= Some(1),
        "{}",
        design.describe()
    );
}

#[test]
fn aa_nights_do_not_fail_under_a_real_nights_noise() {
    for (i, scenario) in scenarios().iter().enumerate() {
        let t = tally(scenario, 1.0, 100 + i as u64);
        assert!(
            t.false_failures * 100 <= TRIALS,
            "{}: {} of {TRIALS} A/A nights failed",
            scenario.name,
            t.false_failures
        );
        if scenario.history > 0 {
            // p-values that know the night's noise: null p < 0.01 within
            // twice its nominal rate.
            assert!(
                t.null_below_1pct * 100 <= 2 * t.null_comparisons,
                "{}: {} of {} null p < 0.01",
                scenario.name,
                t.null_below_1pct,
                t.null_comparisons
            );
        }
        if scenario.mishaps.failed_slot.is_some() || scenario.mishaps.lost_slot.is_some() {
            assert_eq!(
                t.failed_runs_counted, TRIALS,
                "every failed or lost run is counted"
            );
        } else {
            assert_eq!(t.failed_runs_counted, 0);
        }
    }
}

#[test]
fn a_doubled_case_fails_the_night_under_a_real_nights_noise() {
    for (i, scenario) in scenarios().iter().enumerate() {
        let t = tally(scenario, 2.0, 200 + i as u64);
        assert!(
            t.caught * 100 >= TRIALS * 99,
            "{}: caught on {} of {TRIALS} nights",
            scenario.name,
            t.caught
        );
        assert_eq!(t.false_failures, 0, "{}", scenario.name);
    }
}

#[test]
fn a_change_inside_the_threshold_is_never_declared() {
    // 3 % slower at 0.5 % noise: significant, but its interval lies inside
    // the 5 % threshold every night (a threshold of 0 would fail them).
    let scenario = Scenario {
        name: "3 % planted, 0.5 % noise",
        machine: Machine {
            within: 0.005,
            ..QUIET
        },
        history: HISTORY,
        mishaps: Mishaps::default(),
    };
    let t = tally(&scenario, 1.03, 300);
    assert_eq!((t.caught, t.false_failures), (0, 0));
}

#[test]
fn only_benjamini_hochberg_keeps_this_comparison_from_being_declared() {
    // Seven runs a side, one case with U = 3 (p = 14 / 3432 = 0.0041 < 0.01)
    // whose interval lies far beyond the threshold; over 16 comparisons its
    // q is 0.065 ≥ 0.05. Without the correction it would be declared.
    let baseline_runs = [10.0, 10.01, 10.02, 10.03, 10.04, 10.05, 13.5];
    let tonight_runs = [13.0, 13.1, 13.2, 16.0, 16.1, 16.2, 16.3];
    let steady = [10.0, 10.01, 10.02, 10.03, 10.04, 10.05, 10.06];
    let night_of = |runs: &dyn Fn(usize) -> [f64; 7]| -> DailyReport {
        let reports: Vec<DailyReport> = (0..7)
            .map(|slot| {
                report(
                    (0..CASES)
                        .map(|c| result(c, runs(c)[slot], Status::Ok))
                        .collect(),
                    0,
                )
            })
            .collect();
        let refs: Vec<(u32, &DailyReport)> = reports
            .iter()
            .enumerate()
            .map(|(s, r)| (s as u32, r))
            .collect();
        DailyReport::pooled(&refs, &[]).unwrap()
    };
    // Only the latency moved: the planted case's throughput is steady, so
    // this is the night's one small p.
    let steady_throughput = |mut r: DailyReport| {
        for x in r
            .results
            .iter_mut()
            .filter(|x| x.case_id == case_name(PLANTED))
        {
            x.run_values.insert(
                "items_per_s".into(),
                steady.iter().map(|v| 1000.0 / v).collect(),
            );
        }
        r
    };
    let baseline = steady_throughput(night_of(&|c| {
        if c == PLANTED { baseline_runs } else { steady }
    }));
    let tonight = steady_throughput(night_of(&|c| {
        if c == PLANTED { tonight_runs } else { steady }
    }));
    let c = judge_night(
        &baseline,
        &tonight,
        ("base", "tonight"),
        &CompareSettings::default(),
        &NightNoise::unknown(),
        |_| Some(tonight.clone()),
    );
    let planted = c
        .changes
        .iter()
        .find(|x| x.case == case_name(PLANTED) && x.metric == "latency_ms")
        .unwrap();
    let (p, q) = (planted.p_value.unwrap(), planted.q_value.unwrap());
    assert!((p - 14.0 / 3432.0).abs() < 1e-9, "p = {p}");
    assert!(q >= 0.05, "q = {q}");
    let [lo, _] = planted.ratio_ci95.unwrap();
    assert!(lo > 1.05, "the interval clears the threshold: {lo}");
    assert_eq!(c.outcome, NightOutcome::Pass, "{:#?}", c.changes);
}

#[test]
fn the_reported_blind_spot_fails_the_night_four_times_in_five() {
    // A machine with every kind of night noise. Each trial measures a
    // night twice from the same random draws: once as it is, to read the
    // blind spot the gate reports for the planted series, and once with
    // exactly that change planted. The reported blind spot is right when
    // the night fails on it four times in five.
    let scenario = Scenario {
        name: "the reported blind spot",
        machine: Machine {
            within: 0.02,
            night_common: 0.03,
            night_case: 0.01,
            round: 0.02,
            drift: 0.0,
        },
        history: HISTORY,
        mishaps: Mishaps::default(),
    };
    let mut seeds = ChaCha8Rng::seed_from_u64(400);
    let trials = 2 * TRIALS;
    let (mut caught, mut reported) = (0, Vec::new());
    for _ in 0..trials {
        let seed: u64 = seeds.random();
        let (aa, _) = night(&scenario, &|_| 1.0, &mut ChaCha8Rng::seed_from_u64(seed));
        let mde = aa
            .changes
            .iter()
            .find(|x| x.case == case_name(PLANTED) && x.metric == "latency_ms")
            .and_then(|x| x.mde_pct)
            .expect("a blind spot for the planted series");
        reported.push(mde);
        let factor = move |c: usize| if c == PLANTED { 1.0 + mde / 100.0 } else { 1.0 };
        let (c, _) = night(&scenario, &factor, &mut ChaCha8Rng::seed_from_u64(seed));
        caught += usize::from(
            c.outcome == NightOutcome::Regression
                && c.regressions().any(|x| x.case == case_name(PLANTED)),
        );
    }
    reported.sort_by(f64::total_cmp);
    eprintln!(
        "planted each night's reported blind spot (median {:.2} %, {:.2}–{:.2} %): the night failed on {caught} of {trials}",
        reported[trials / 2],
        reported[0],
        reported[trials - 1]
    );
    assert!(
        (trials * 75 / 100..=trials * 85 / 100).contains(&caught),
        "failed on {caught} of {trials} nights at their reported blind spot (80 ± 5 % expected)"
    );
}

/// One interleaved sitting through the shipped schedule: each timed slot
/// one run (its own process: round noise) on a drifting machine, the
/// candidate arm slowed by `factor(case)`, the run in slot `lost` lost.
fn sitting(
    machine: &Machine,
    pairs: usize,
    factor: &dyn Fn(usize) -> f64,
    only: Option<&[String]>,
    lost: Option<u32>,
    number: usize,
    rng: &mut ChaCha8Rng,
) -> SittingRuns {
    let schedule = Schedule::interleaved(pairs, rng.random());
    let mut night = Night::new(machine, number, rng);
    let mut runs = SittingRuns::default();
    let timed: Vec<Slot> = schedule.timed().copied().collect();
    for slot in &timed {
        let arm_factor = |c: usize| {
            if slot.arm == Arm::Candidate {
                factor(c)
            } else {
                1.0
            }
        };
        let one = measure(
            machine,
            &mut night,
            1,
            &arm_factor,
            only,
            Mishaps::default(),
            rng,
        );
        if lost == Some(slot.index) {
            runs.lost.push((*slot, "killed".into()));
        } else {
            runs.reports.push((*slot, one));
        }
    }
    runs
}

/// Interleaved nights through the sitting's schedule and pairing: slots of
/// a seeded ABBA order, each run its own process (round noise), the
/// machine drifting over the slots, a lost run dropping only its pair.
/// The pairs of an interleaved night of the synthetic day, as shipped.
fn interleaved_pairs() -> usize {
    plan_night(&NightRequest {
        interleaved: Some(COMPARISONS),
        ..Default::default()
    })
    .expect("a design exists")
    .expect("an interleaved night makes verdicts")
    .runs
}

/// A real night's noise between interleaved runs: per process, across
/// nights, shared by the cases, and a drift over the slots.
const DRIFTING: Machine = Machine {
    within: 0.02,
    night_common: 0.05,
    night_case: 0.01,
    round: 0.03,
    drift: 0.2,
};

fn interleaved(planted: f64, lost: Option<u32>, seed: u64) -> (usize, usize) {
    let pairs = interleaved_pairs();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let machine = DRIFTING;
    let (mut hits, mut false_alarms) = (0, 0);
    for n in 0..TRIALS {
        let factor = |c: usize| if c == PLANTED { planted } else { 1.0 };
        let runs = sitting(&machine, pairs, &factor, None, lost, n, &mut rng);
        let complete = runs.pairs();
        assert_eq!(complete.len(), pairs - usize::from(lost.is_some()));
        let series: Vec<PairedSeries> = paired_series(&complete);
        let pooled = |arm: Arm| DailyReport::pooled(&runs.arm(arm), &runs.lost(arm)).unwrap();
        let c = compare_paired(
            &series,
            &pooled(Arm::Reference),
            &pooled(Arm::Candidate),
            "other",
            "this",
            &CompareSettings::default(),
        );
        assert_eq!(c.design.comparisons, COMPARISONS);
        if c.fails_the_night() {
            if planted != 1.0 && c.regressions().all(|x| x.case == case_name(PLANTED)) {
                hits += 1;
            } else {
                false_alarms += 1;
            }
        }
    }
    eprintln!(
        "interleaved ({pairs} pairs, lost slot {lost:?}), planted ×{planted}: {hits} of {TRIALS} caught, {false_alarms} false alarms"
    );
    (hits, false_alarms)
}

#[test]
fn interleaved_nights_cancel_drift_and_a_lost_run_costs_only_its_pair() {
    let (_, false_alarms) = interleaved(1.0, None, 7);
    assert!(false_alarms * 100 <= TRIALS, "{false_alarms} A/A failures");
    let (_, false_alarms) = interleaved(1.0, Some(5), 8);
    assert!(false_alarms * 100 <= TRIALS, "{false_alarms} A/A failures");
    let (hits, false_alarms) = interleaved(2.0, Some(5), 9);
    assert!(hits * 100 >= TRIALS * 99, "{hits} of {TRIALS}");
    assert!(
        false_alarms * 100 <= TRIALS,
        "{false_alarms} nights failed elsewhere"
    );
    let (hits, _) = interleaved(1.15, None, 10);
    assert!(hits * 100 >= TRIALS * 80, "{hits} of {TRIALS}");
}

/// Experiments: a remedy's toggle against the campaign as it is, at the
/// design `campaign experiment` ships, through the sitting's pairs, with
/// ±20 % drift over the slots, each run its own process, and a lost run.
fn experiment_trials(planted_speedup: f64, seed: u64) -> [usize; 5] {
    let pairs = campaign::analysis::runs_for_verdicts(campaign::analysis::Pairing::Paired, 1, None)
        .expect("a design");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let machine = Machine {
        within: 0.03,
        night_common: 0.0,
        night_case: 0.0,
        round: 0.02,
        drift: 0.2,
    };
    // [gain, loss, truth covered, ×1 covered, estimate outside its interval]
    let mut counts = [0; 5];
    for n in 0..TRIALS {
        let factor = |_: usize| 1.0 / planted_speedup;
        let only = ["ttft".to_string()];
        let runs = sitting(&machine, pairs, &factor, Some(&only), Some(3), n, &mut rng);
        let m = measure_experiment(&runs);
        assert_eq!(m.runs_per_side, pairs - 1);
        let [lo, hi] = m.ci95.expect("an interval from complete pairs");
        let s = m.measured_speedup.expect("an estimate");
        counts[0] += usize::from(m.verdict == ExperimentVerdict::Gain);
        counts[1] += usize::from(m.verdict == ExperimentVerdict::Loss);
        counts[2] += usize::from(lo <= planted_speedup && planted_speedup <= hi);
        counts[3] += usize::from(lo <= 1.0 && 1.0 <= hi);
        counts[4] += usize::from(!(lo <= s && s <= hi));
    }
    eprintln!(
        "experiment, planted ×{planted_speedup}, {pairs} pairs (one lost): gain {}, loss {}, truth covered {}, ×1 covered {}, estimate outside its interval {} of {TRIALS}",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
    counts
}

fn measure_experiment(runs: &SittingRuns) -> campaign::analysis::Measurement {
    campaign::analysis::measure(&runs.pairs(), &CompareSettings::default())
}

#[test]
fn an_experiment_measures_a_planted_speedup_inside_its_own_interval() {
    let [gain, loss, covered, _, outside] = experiment_trials(2.0, 11);
    assert_eq!(
        (gain, loss),
        (TRIALS, 0),
        "a halved time is a gain every time"
    );
    assert!(
        covered * 100 >= TRIALS * 90,
        "×2 inside the interval {covered} of {TRIALS}"
    );
    assert_eq!(
        outside, 0,
        "the speed-up is the estimate of its own interval"
    );

    let [gain, loss, covered, _, outside] = experiment_trials(1.0, 12);
    assert!(
        gain + loss <= TRIALS / 100,
        "{gain} gains, {loss} losses from a null toggle"
    );
    assert!(
        covered * 100 >= TRIALS * 90,
        "×1 inside the interval {covered} of {TRIALS}"
    );
    assert_eq!(outside, 0);

    // 10 % faster in 3 % noise and the machine's drift between the runs
    // of a pair: never a loss, the truth inside the interval, the estimate
    // inside its own interval (gains in some sittings: the drift between
    // two neighbouring slots is noise the pairs cannot cancel).
    let [gain, loss, covered, _, outside] = experiment_trials(1.10, 13);
    assert!(gain > 0, "{gain} of {TRIALS}");
    assert_eq!(loss, 0);
    assert!(covered * 100 >= TRIALS * 90, "{covered} of {TRIALS}");
    assert_eq!(outside, 0);
}

/// A history of commits on the simulated machine: from `planted_at` on,
/// the planted case is `slowdown` times slower; the commits in
/// `unbuildable` fail to build. Each sitting is a night of its own (its
/// offsets drawn afresh, its drift over its own slots); each timed run is
/// lost with probability `loss`.
struct PlantedHistory {
    machine: Machine,
    planted_at: Option<usize>,
    slowdown: f64,
    /// Each commit's build is this much slower or faster on every case,
    /// whatever it changed (code layout, alignment): noise between builds.
    build_offsets: Vec<f64>,
    unbuildable: Vec<usize>,
    loss: f64,
    night: Option<Night>,
    nights: usize,
    rng: ChaCha8Rng,
}

impl campaign::analysis::BisectBuilds for PlantedHistory {
    fn build(&mut self, index: usize) -> Result<(), String> {
        if self.unbuildable.contains(&index) {
            Err("planted build failure".into())
        } else {
            Ok(())
        }
    }

    fn run_slot(
        &mut self,
        candidate: usize,
        slot: &Slot,
    ) -> Result<campaign::runner::SlotRun, String> {
        use campaign::runner::SlotRun;
        // A sitting begins with the good build's warm-up.
        if slot.warmup && slot.arm == Arm::Reference {
            self.nights += 1;
            self.night = Some(Night::new(&self.machine, self.nights, &mut self.rng));
        }
        let commit = if slot.arm == Arm::Candidate {
            candidate
        } else {
            0
        };
        let slower = self.planted_at.is_some_and(|p| commit >= p);
        let offset = self.build_offsets[commit].exp();
        let factor = |c: usize| {
            offset
                * if slower && c == PLANTED {
                    self.slowdown
                } else {
                    1.0
                }
        };
        let night = self
            .night
            .as_mut()
            .expect("a sitting starts with a warm-up");
        let report = measure(
            &self.machine,
            night,
            1,
            &factor,
            None,
            Mishaps::default(),
            &mut self.rng,
        );
        if !slot.warmup && self.rng.random_bool(self.loss) {
            return Ok(SlotRun::Lost("the child was killed by a signal".into()));
        }
        Ok(SlotRun::Report(Box::new(report)))
    }
}

/// What the bisects of one scenario gave.
#[derive(Debug, Default)]
struct BisectTally {
    /// The planted commit named as the first bad one.
    found: usize,
    /// An unbuildable planted commit named among the ambiguous ones, with
    /// no other commit blamed.
    ambiguous_with_culprit: usize,
    /// Another commit blamed.
    wrong: usize,
    /// "No regression" or not measured.
    none: usize,
    /// An unbuildable commit named alone as the first bad one.
    blamed_unbuildable: usize,
    /// Bisects that measured more than ⌈log₂ N⌉ + 1 builds.
    over_budget: usize,
    most_builds: usize,
    pairs: usize,
}

/// Bisects over `trials` seeded histories of 16–64 commits with the
/// planted commit drawn at random (none for `slowdown` 1), at the settings
/// `campaign bisect` ships: the ends' pairs from the gate's interleaved
/// design, the steps' pairs from their own design.
fn bisect_trials(
    slowdown: f64,
    build_sd: f64,
    unbuildable: bool,
    trials: usize,
    seed: u64,
) -> BisectTally {
    use campaign::analysis::{BisectOutcome, BisectSettings, bisect};
    let ends_pairs = interleaved_pairs();
    let machine = DRIFTING;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = BisectTally::default();
    for _ in 0..trials {
        let n = rng.random_range(16..=64usize);
        let planted_at = (slowdown != 1.0).then(|| rng.random_range(1..=n));
        // One commit between the ends fails to build: sometimes the
        // planted one, sometimes the one before it.
        let broken = if unbuildable {
            let around = planted_at.map_or(n / 2, |p| p);
            vec![match rng.random_range(0..3) {
                0 => around.clamp(1, n - 1),
                1 => around.saturating_sub(1).clamp(1, n - 1),
                _ => rng.random_range(1..n),
            }]
        } else {
            Vec::new()
        };
        let normal = Normal::new(0.0, build_sd).expect("a valid SD");
        let build_offsets = (0..=n).map(|_| normal.sample(&mut rng)).collect();
        let mut history = PlantedHistory {
            machine,
            planted_at,
            slowdown,
            build_offsets,
            unbuildable: broken.clone(),
            loss: 0.02,
            night: None,
            nights: 0,
            rng: ChaCha8Rng::seed_from_u64(rng.random()),
        };
        let settings = BisectSettings {
            ends_pairs,
            metric: None,
            compare: CompareSettings::default(),
            seed: rng.random(),
        };
        let search = bisect(
            &mut history,
            n + 1,
            &settings,
            &campaign::runner::CancelFlag::new(),
        );
        let budget = (n as f64).log2().ceil() as usize + 1;
        tally.most_builds = tally.most_builds.max(search.builds_measured());
        tally.over_budget += usize::from(search.builds_measured() > budget);
        tally.pairs += search.steps.iter().map(|s| s.pairs).sum::<usize>();
        match search.outcome {
            BisectOutcome::FirstBad { commit, .. } => {
                if Some(commit) == planted_at {
                    tally.found += 1;
                } else {
                    tally.wrong += 1;
                }
                tally.blamed_unbuildable += usize::from(broken.contains(&commit));
            }
            BisectOutcome::Ambiguous { candidates, .. } => {
                if planted_at.is_some_and(|p| candidates.contains(&p)) {
                    tally.ambiguous_with_culprit += 1;
                } else {
                    tally.wrong += 1;
                }
            }
            BisectOutcome::NoRegression { .. } | BisectOutcome::NotMeasured { .. } => {
                tally.none += 1;
            }
            BisectOutcome::Interrupted => unreachable!("nothing interrupts a simulated bisect"),
        }
    }
    eprintln!(
        "bisect, planted ×{slowdown}, builds' own offsets SD {build_sd}, unbuildable commit {unbuildable}, {trials} histories of 16–64 commits: {tally:?}, {:.1} pairs per bisect",
        tally.pairs as f64 / trials as f64
    );
    tally
}

#[test]
fn bisect_finds_the_planted_commit_within_its_build_budget() {
    let trials = 200;
    for (build_sd, seed) in [(0.0, 21), (0.01, 24)] {
        let t = bisect_trials(1.25, build_sd, false, trials, seed);
        assert!(t.found * 100 >= trials * 95, "{t:?}");
        assert_eq!(t.over_budget, 0, "{t:?}");
        assert!(t.wrong * 100 <= trials, "{t:?}");
    }
}

#[test]
fn bisect_skips_a_commit_that_does_not_build_and_never_blames_it() {
    let trials = 200;
    let t = bisect_trials(1.25, 0.01, true, trials, 22);
    assert_eq!(t.blamed_unbuildable, 0, "{t:?}");
    assert!(
        (t.found + t.ambiguous_with_culprit) * 100 >= trials * 95,
        "{t:?}"
    );
    assert!(t.wrong * 100 <= trials, "{t:?}");
}

#[test]
fn bisect_of_an_aa_history_names_no_culprit() {
    let trials = 200;
    let t = bisect_trials(1.0, 0.01, false, trials, 23);
    assert_eq!(t.found + t.wrong + t.ambiguous_with_culprit, 0, "{t:?}");
    assert_eq!(t.none, trials);
}

/// Smaller regressions, for the record (`--nocapture`): how often the
/// shipped design names the wrong commit when the slowdown is near the
/// noise. Not asserted beyond "rarely wrong".
#[test]
fn bisect_of_smaller_regressions_is_rarely_wrong() {
    let trials = 200;
    for (slowdown, seed) in [(1.15, 25), (1.10, 26)] {
        let t = bisect_trials(slowdown, 0.01, false, trials, seed);
        assert!(t.wrong * 100 <= trials * 5, "×{slowdown}: {t:?}");
    }
}

// ---- Capacity under an SLO, against a server of known capacity ----
//
// An M/M/c server (c slots, exponential service, first come first
// served) in simulated time: a request's TTFT is its wait for a slot, and
// P(wait > t) at arrival rate λ is Erlang's C formula, so the rate at
// which p99 TTFT equals the SLO is known exactly. Every search runs the
// shipped plan (`CapacityPlan::default()`) through `search_capacity`; the
// queue makes successive requests' waits dependent, as a real server does.

use campaign::stats::{
    BrokenSlos, CapacityPlan, CapacityProbes, Judgement, Probe, ProbeDesign, RequestSlo,
    Saturation, search_capacity,
};

struct SimulatedServer {
    slots: usize,
    service_s: f64,
    rng: ChaCha8Rng,
    ttft_bound_s: f64,
    /// TTFT = the wait + this prefill floor + normal jitter of this
    /// standard deviation, as a real server's (0, 0: the wait alone); the
    /// SLO bounds the wait's part: TTFT ≤ floor + `ttft_bound_s`.
    prefill: (f64, f64),
}

impl SimulatedServer {
    /// P(wait > t) at arrival rate `rate` (Erlang C), for a stable queue.
    fn wait_exceeds(&self, rate: f64, t: f64) -> f64 {
        let c = self.slots as f64;
        let mu = 1.0 / self.service_s;
        let a = rate / mu;
        let rho = a / c;
        if rho >= 1.0 {
            return 1.0;
        }
        let mut term = 1.0;
        let mut sum = 0.0;
        for k in 0..self.slots {
            if k > 0 {
                term *= a / k as f64;
            }
            sum += term;
        }
        let last = term * a / c / (1.0 - rho);
        let erlang_c = last / (sum + last);
        // With jitter J ~ N(0, s) added, P(W + J > t) = C·E[exp(−θ(t − J))]
        // = C·exp(−θt + θ²s²/2), θ = cμ − λ (the floor cancels; J's own
        // tail past t, ≥ 10 s away, is nothing).
        let theta = c * mu - rate;
        let s = self.prefill.1;
        erlang_c * (-theta * t + theta * theta * s * s / 2.0).exp()
    }

    /// The rate at which P(TTFT > bound) = `share`.
    fn capacity(&self, share: f64) -> f64 {
        let (mut lo, mut hi) = (1e-9, self.slots as f64 / self.service_s);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if self.wait_exceeds(mid, self.ttft_bound_s) > share {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        (lo + hi) / 2.0
    }

    fn jitter(&mut self) -> f64 {
        if self.prefill.1 > 0.0 {
            rand_distr::StandardNormal.sample(&mut self.rng)
        } else {
            0.0
        }
    }

    fn service(&mut self) -> f64 {
        rand_distr::Exp::new(1.0 / self.service_s)
            .unwrap()
            .sample(&mut self.rng)
    }
}

impl CapacityProbes for SimulatedServer {
    type Error = std::convert::Infallible;

    /// 64 clients, each sending its next request when the last ends; the
    /// rate of the middle half of the completions, as the benchmark's.
    fn saturation(&mut self, requests: usize) -> Result<Saturation, Self::Error> {
        let clients = 64;
        let requests = requests.max(4 * clients);
        let mut finishes = Vec::with_capacity(requests);
        let mut free = vec![0.0f64; self.slots];
        let mut ready = vec![0.0f64; clients];
        let mut end = 0.0f64;
        for i in 0..requests {
            let client = i % clients;
            let slot = (0..self.slots)
                .min_by(|a, b| free[*a].total_cmp(&free[*b]))
                .unwrap();
            let start = free[slot].max(ready[client]);
            let finish = start + self.service();
            free[slot] = finish;
            ready[client] = finish;
            end = end.max(finish);
            finishes.push(finish);
        }
        finishes.sort_by(f64::total_cmp);
        let (q1, q3) = (requests / 4, requests * 3 / 4);
        Ok(Saturation {
            completed_per_s: (q3 - q1) as f64 / (finishes[q3] - finishes[q1]),
            requests,
            elapsed_s: end,
        })
    }

    fn probe(
        &mut self,
        rate: f64,
        design: &ProbeDesign,
        slos: &[RequestSlo],
    ) -> Result<Probe, Self::Error> {
        let gaps = rand_distr::Exp::new(rate).unwrap();
        let mut free = vec![0.0f64; self.slots];
        let (mut arrival, mut decided_at) = (0.0f64, 0.0f64);
        let (mut arrivals, mut finishes, mut broke) = (Vec::new(), Vec::new(), Vec::new());
        let mut waits = Vec::new();
        let mut judgement: Option<Judgement> = None;
        for i in 0..design.max_requests() {
            arrival += gaps.sample(&mut self.rng);
            let slot = (0..self.slots)
                .min_by(|a, b| free[*a].total_cmp(&free[*b]))
                .unwrap();
            let start = free[slot].max(arrival);
            let finish = start + self.service();
            free[slot] = finish;
            decided_at = decided_at.max(start);
            arrivals.push(arrival);
            finishes.push(finish);
            let ttft = start - arrival + self.prefill.0 + self.prefill.1 * self.jitter();
            broke.push(BrokenSlos::from(ttft > self.prefill.0 + self.ttft_bound_s));
            waits.push(ttft);
            let judged = (i + 1).saturating_sub(design.warmup_requests);
            if design.looks.contains(&judged)
                && let Some(j) = design.judge(
                    slos,
                    &broke[design.warmup_requests..],
                    &waits[design.warmup_requests..],
                    &[&waits[design.warmup_requests..]],
                )
            {
                judgement = Some(j);
                break;
            }
        }
        let judgement = judgement.expect("the last look always judges");
        let window = &arrivals[design.warmup_requests..];
        let (first, last) = (window[0], *window.last().unwrap());
        let span = (last - first).max(f64::MIN_POSITIVE);
        let last_finish = finishes[design.warmup_requests..]
            .iter()
            .fold(0.0f64, |m, f| m.max(*f));
        let achieved = window.len() as f64 / (last_finish - first);
        let good = broke[design.warmup_requests..]
            .iter()
            .filter(|b| **b == 0)
            .count();
        Ok(Probe {
            rate_per_s: rate,
            sent: arrivals.len(),
            elapsed_s: decided_at,
            window_s: [first, last],
            goodput_per_s: good as f64 / span,
            achieved_per_s: achieved,
            over_saturated: achieved < 0.9 * rate,
            judgement,
        })
    }
}

struct CapacityTrials {
    searches: usize,
    within_3_pct: usize,
    within_10_pct: usize,
    covered: usize,
    most_probes: usize,
    search_s: f64,
    grid_s: f64,
    worst_error: f64,
    errors: Vec<f64>,
}

fn capacity_trials(
    slots: usize,
    service_s: f64,
    ttft_bound_s: f64,
    prefill: (f64, f64),
    searches: u64,
) -> CapacityTrials {
    let slos = vec![RequestSlo {
        name: format!("ttft_ms p99 ≤ {}", (prefill.0 + ttft_bound_s) * 1e3),
        allowed_share: 0.01,
        bound: Some(prefill.0 + ttft_bound_s),
    }];
    let mut t = CapacityTrials {
        searches: searches as usize,
        within_3_pct: 0,
        within_10_pct: 0,
        covered: 0,
        most_probes: 0,
        search_s: 0.0,
        grid_s: 0.0,
        worst_error: 0.0,
        errors: Vec::new(),
    };
    for seed in 0..searches {
        let mut server = SimulatedServer {
            slots,
            service_s,
            rng: ChaCha8Rng::seed_from_u64(9000 + seed),
            ttft_bound_s,
            prefill,
        };
        let truth = server.capacity(0.01);
        let report = search_capacity(&mut server, slos.clone(), CapacityPlan::default()).unwrap();
        let r = &report.result;
        let error = r.capacity_per_s.map_or(f64::INFINITY, |c| c / truth - 1.0);
        t.worst_error = t.worst_error.max(error.abs());
        t.within_3_pct += usize::from(error.abs() <= 0.03);
        t.within_10_pct += usize::from(error.abs() <= 0.10);
        t.errors.push(error);
        let [lo, hi] = r.interval_per_s;
        let covered = !r.crossed && lo.is_none_or(|l| l <= truth) && hi.is_none_or(|h| h >= truth);
        t.covered += usize::from(covered);
        t.most_probes = t.most_probes.max(r.probes);
        t.search_s += r.search_s;
        t.grid_s += r.grid_s;
    }
    t
}

/// Against four servers (few and many slots, loose and tight SLOs; the
/// last with a TTFT of a 20 ms prefill floor with 0.5 ms of jitter under
/// its wait, where only about 2 % of requests queue at the capacity, so
/// the tail estimate's threshold falls in the floor), the shipped search's
/// estimate is within ±3 % of the truth in at least 95 of 100 seeded
/// searches, its 95 % interval covers the truth in at least 95, it never
/// measures more than 8 probes, and it takes under half the time of a
/// 10-point grid at the same requests per point. (The fourth server's
/// breaches come in rare, dense spells: before a probe's clustering was
/// floored by what the search measured at a higher rate, its interval
/// covered the truth in only 86 of 100.)
#[test]
fn capacity_search_brackets_a_known_capacity_and_its_interval_covers_it() {
    let mut failures = Vec::new();
    for (slots, service_ms, bound_ms, prefill_ms) in [
        (4, 20.0, 50.0, (0.0, 0.0)),
        (1, 10.0, 40.0, (0.0, 0.0)),
        (16, 50.0, 30.0, (0.0, 0.0)),
        (16, 50.0, 5.0, (20.0, 0.5)),
    ] {
        let prefill = (prefill_ms.0 / 1e3, prefill_ms.1 / 1e3);
        let t = capacity_trials(slots, service_ms / 1e3, bound_ms / 1e3, prefill, 100);
        let n = t.errors.len() as f64;
        let bias = t.errors.iter().sum::<f64>() / n;
        let sd = (t.errors.iter().map(|e| (e - bias).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let what = format!(
            "M/M/{slots}, service {service_ms} ms, prefill {prefill_ms:?} ms, p99 TTFT ≤ prefill + {bound_ms} ms: within ±3 % {}/{}, within ±10 % {}/{}, covered {}/{}, error mean {:+.2} % sd {:.2} % worst {:.1} %, most probes {}, search {:.0} s vs grid {:.0} s",
            t.within_3_pct,
            t.searches,
            t.within_10_pct,
            t.searches,
            t.covered,
            t.searches,
            100.0 * bias,
            100.0 * sd,
            100.0 * t.worst_error,
            t.most_probes,
            t.search_s,
            t.grid_s
        );
        println!("{what}");
        if !(t.within_3_pct * 100 >= t.searches * 95
            && t.covered * 100 >= t.searches * 95
            && t.most_probes <= 8
            && t.search_s * 2.0 < t.grid_s)
        {
            failures.push(what);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Nights whose offsets wander together (each case's own 3 % and the
/// common 3 % an AR(1) of correlation 0.8 across the nights, the baseline
/// saved before the history): consecutive nights differ less than tonight
/// and the baseline do, and a night SD read from consecutive differences
/// alone failed 20 of 300 A/A nights. Read with the nights' correlation,
/// they fail no more often than independent nights, and a doubled case
/// is still caught.
#[test]
fn nights_that_wander_together_fail_no_more_often_and_a_doubled_case_is_caught() {
    let scenario = Scenario {
        name: "offsets 3 % wandering, φ 0.8",
        machine: Machine {
            night_case: 0.03,
            night_common: 0.03,
            ..QUIET
        },
        history: HISTORY,
        mishaps: Mishaps::default(),
    };
    let judge = |planted: f64, seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let factor = move |c: usize| if c == PLANTED { planted } else { 1.0 };
        let (mut caught, mut false_failures, mut too_noisy) = (0, 0, 0);
        for _ in 0..TRIALS {
            let (c, _) = night_wandering(&scenario, &factor, &mut rng, Some(0.8));
            match c.outcome {
                NightOutcome::Regression
                    if planted != 1.0 && c.regressions().all(|x| x.case == case_name(PLANTED)) =>
                {
                    caught += 1
                }
                NightOutcome::Regression => false_failures += 1,
                NightOutcome::TooNoisy => too_noisy += 1,
                NightOutcome::Pass => {}
            }
        }
        eprintln!(
            "{} ×{planted}: caught {caught}, false failures {false_failures}, too noisy {too_noisy}",
            scenario.name
        );
        (caught, false_failures)
    };
    let (_, false_failures) = judge(1.0, 700);
    assert!(
        false_failures * 100 <= TRIALS,
        "{false_failures} of {TRIALS} A/A nights failed"
    );
    // A night that also declares another case counts as a false failure
    // here, at the A/A rate.
    let (caught, false_failures) = judge(2.0, 701);
    assert!(
        caught * 100 >= TRIALS * 99,
        "caught on {caught} of {TRIALS}"
    );
    assert!(
        false_failures * 100 <= TRIALS,
        "{false_failures} of {TRIALS} nights declared another case too"
    );
}
