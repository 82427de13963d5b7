//! The regression gate against planted truth, at the settings we ship: the
//! run count the design check chooses, the default threshold, the same-night
//! re-run and the A/A control, over many seeded synthetic nights (no real
//! benchmark, so the test is fast and exact). The synthetic day is shaped
//! like Day 1 of the default campaign: two benchmarks of four cases, each
//! case with a latency and a throughput headline: 16 comparisons.

use std::collections::BTreeMap;

use campaign::analysis::{
    CompareSettings, Comparison, PairedSeries, Pairing, compare_paired, compare_reports,
    confirm_with_rerun, regressed_benchmarks, runs_for_verdicts,
};
use campaign::model::Environment;
use campaign::model::IterationPlan;
use campaign::model::{
    BenchmarkResult, CampaignInfo, DailyReport, DaySummary, MetricReport, RunSettings, Status,
};
use campaign::stats::{MetricRecorder, ProvisionalRule, ValueKind, summarize};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const BENCHMARKS: [&str; 2] = ["ttft", "decode"];
const CASES_PER_BENCHMARK: usize = 4;
const COMPARISONS: usize = 16;
const TRIALS: usize = 200;

fn metric(unit: &str, higher_is_better: bool, values: &[f64]) -> MetricReport {
    let mut recorder = MetricRecorder::new(ValueKind::Quantity, 100);
    values.iter().for_each(|v| recorder.record(*v));
    MetricReport {
        unit: unit.into(),
        higher_is_better,
        description: String::new(),
        summary: summarize(&recorder).expect("values were recorded"),
        raw_samples: values.to_vec(),
        raw_samples_truncated: false,
        rejected_samples: 0,
    }
}

/// One case whose runs took `latency_ms` each (throughput is its inverse).
fn result(benchmark: &str, case: usize, latency_ms: &[f64]) -> BenchmarkResult {
    let throughput: Vec<f64> = latency_ms.iter().map(|l| 1000.0 / l).collect();
    BenchmarkResult {
        case_id: format!("{benchmark}[case={case}]"),
        benchmark: benchmark.into(),
        kind: "synthetic".into(),
        case: Some(format!("case={case}")),
        status: Status::Ok,
        error: None,
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
        elapsed_s: 0.0,
        peak_rss_mib: None,
        run_values: BTreeMap::from([
            ("latency_ms".to_string(), latency_ms.to_vec()),
            ("items_per_s".to_string(), throughput.clone()),
        ]),
        metrics: BTreeMap::from([
            ("latency_ms".to_string(), metric("ms", false, latency_ms)),
            (
                "items_per_s".to_string(),
                metric("items/s", true, &throughput),
            ),
        ]),
        series: BTreeMap::new(),
        setup: BTreeMap::new(),
        targets: Vec::new(),
        conclusion: None,
        warnings: Vec::new(),
    }
}

fn report(results: Vec<BenchmarkResult>, runs: usize) -> DailyReport {
    let now = chrono::Utc::now();
    DailyReport {
        schema_version: 1,
        run_id: "synthetic".into(),
        campaign: CampaignInfo {
            name: "synthetic".into(),
            description: String::new(),
            file: String::new(),
        },
        day: 1,
        day_title: "gate".into(),
        started_at: now,
        finished_at: now,
        quick: false,
        interrupted: false,
        environment: Environment::capture("cpu".into(), 1, "f32".into()),
        settings: RunSettings {
            threads: 1,
            device: "cpu".into(),
            dtype: "f32".into(),
            seed: 0,
            max_raw_samples: 100,
            quick_factor: 1.0,
            provisional_rule: ProvisionalRule::current(),
            only: Vec::new(),
            runs: runs as u32,
            run_order_seed: 0,
            against_bin: None,
        },
        summary: DaySummary::default(),
        scaling: Vec::new(),
        parity: Vec::new(),
        profiles: Vec::new(),
        results,
        warnings: Vec::new(),
    }
}

/// A night of `runs` runs: every case's runs vary by log-normal noise of
/// SD `noise`; `slowdown(benchmark, case, run)` multiplies a run's latency.
struct Night<'a> {
    runs: usize,
    noise: f64,
    slowdown: &'a dyn Fn(usize, usize, usize) -> f64,
}

impl Night<'_> {
    fn measure(&self, rng: &mut ChaCha8Rng, only: Option<&[String]>) -> DailyReport {
        let normal = Normal::new(0.0, self.noise).expect("a valid SD");
        let mut results = Vec::new();
        for (b, benchmark) in BENCHMARKS.iter().enumerate() {
            if only.is_some_and(|o| !o.iter().any(|x| x == benchmark)) {
                continue;
            }
            for case in 0..CASES_PER_BENCHMARK {
                // Cases differ in scale, as prompt lengths do.
                let base = 10.0 * (case + 1) as f64;
                let runs: Vec<f64> = (0..self.runs)
                    .map(|r| base * normal.sample(rng).exp() * (self.slowdown)(b, case, r))
                    .collect();
                results.push(result(benchmark, case, &runs));
            }
        }
        report(results, self.runs)
    }
}

/// What the shipped gate decides about one night against a baseline night:
/// the first comparison, a re-run of the suspect benchmarks, and the exit.
fn gate(baseline: &DailyReport, tonight: &Night<'_>, rng: &mut ChaCha8Rng) -> Comparison {
    let settings = CompareSettings::default();
    let current = tonight.measure(rng, None);
    let mut comparison = compare_reports(baseline, &current, "base", "tonight", &settings);
    let suspects = regressed_benchmarks(&comparison, &current);
    if !suspects.is_empty() {
        let rerun = tonight.measure(rng, Some(&suspects));
        let second = compare_reports(baseline, &rerun, "base", "re-run", &settings);
        confirm_with_rerun(&mut comparison, &second);
    }
    comparison
}

fn shipped_runs() -> usize {
    runs_for_verdicts(Pairing::Unpaired, COMPARISONS, None).expect("a design exists")
}

/// Over `TRIALS` seeded nights: (nights failed by a regression in the
/// planted case, nights failed by a regression anywhere else).
fn trials(noise: f64, planted: f64, seed: u64) -> (usize, usize) {
    let runs = shipped_runs();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let none = |_: usize, _: usize, _: usize| 1.0;
    let slowed = move |b: usize, c: usize, _: usize| if (b, c) == (1, 2) { planted } else { 1.0 };
    let (mut hits, mut false_alarms) = (0, 0);
    for _ in 0..TRIALS {
        let baseline = Night {
            runs,
            noise,
            slowdown: &none,
        }
        .measure(&mut rng, None);
        let tonight = Night {
            runs,
            noise,
            slowdown: &slowed,
        };
        let c = gate(&baseline, &tonight, &mut rng);
        assert_eq!(c.design.comparisons, COMPARISONS);
        if !c.fails_the_night() {
            continue;
        }
        let planted_case = c.regressions().all(|x| x.case == "decode[case=2]");
        if planted != 1.0 && planted_case {
            hits += 1;
        } else {
            false_alarms += 1;
        }
    }
    eprintln!(
        "noise {noise}, planted ×{planted}, {runs} runs a side: {hits} of {TRIALS} nights caught, {false_alarms} false alarms"
    );
    (hits, false_alarms)
}

#[test]
fn the_shipped_design_can_declare_a_one_case_regression() {
    let runs = shipped_runs();
    let design = campaign::analysis::GateDesign::unpaired(runs, runs, COMPARISONS);
    assert!(design.can_declare, "{}", design.describe());
    assert!(
        design.declarable_overlap >= Some(1),
        "{}",
        design.describe()
    );
}

#[test]
fn aa_nights_raise_no_false_regression() {
    for (noise, seed) in [(0.02, 1), (0.05, 2)] {
        let (_, false_alarms) = trials(noise, 1.0, seed);
        assert_eq!(
            false_alarms, 0,
            "noise {noise}: {false_alarms} false alarms"
        );
    }
}

#[test]
fn a_doubled_case_fails_the_night_and_nothing_else_does() {
    let (hits, false_alarms) = trials(0.05, 2.0, 3);
    assert!(hits * 100 >= TRIALS * 95, "{hits} of {TRIALS}");
    assert_eq!(false_alarms, 0);
}

#[test]
fn a_ten_percent_slowdown_with_two_percent_noise_is_caught() {
    let (hits, false_alarms) = trials(0.02, 1.10, 4);
    assert!(hits * 100 >= TRIALS * 80, "{hits} of {TRIALS}");
    assert_eq!(false_alarms, 0);
}

#[test]
fn the_reported_blind_spot_is_what_the_gate_detects_four_nights_in_five() {
    // Plant exactly the reported minimum detectable effect and count how
    // often the first comparison declares it.
    let runs = shipped_runs();
    let noise = 0.03;
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let none = |_: usize, _: usize, _: usize| 1.0;
    let probe = |rng: &mut ChaCha8Rng| {
        let night = Night {
            runs,
            noise,
            slowdown: &none,
        };
        let (a, b) = (night.measure(rng, None), night.measure(rng, None));
        compare_reports(&a, &b, "a", "b", &CompareSettings::default())
    };
    let reported = probe(&mut rng);
    let mdes: Vec<f64> = reported.changes.iter().filter_map(|c| c.mde_pct).collect();
    assert_eq!(mdes.len(), COMPARISONS);
    let mde = mdes.iter().sum::<f64>() / mdes.len() as f64;
    let slowed = move |b: usize, c: usize, _: usize| {
        if (b, c) == (0, 1) {
            1.0 + mde / 100.0
        } else {
            1.0
        }
    };
    let mut declared = 0;
    for _ in 0..TRIALS {
        let baseline = Night {
            runs,
            noise,
            slowdown: &none,
        }
        .measure(&mut rng, None);
        let tonight = Night {
            runs,
            noise,
            slowdown: &slowed,
        }
        .measure(&mut rng, None);
        let c = compare_reports(&baseline, &tonight, "a", "b", &CompareSettings::default());
        declared += usize::from(
            c.regressions()
                .any(|x| x.case == "ttft[case=1]" && x.metric == "latency_ms"),
        );
    }
    eprintln!(
        "planted the reported MDE {mde:.2} % (noise 3 %): declared on {declared} of {TRIALS} nights"
    );
    // 80 % by construction, within the sampling error of 200 nights and
    // of the noise estimated from one night.
    assert!(
        (TRIALS * 60 / 100..=TRIALS * 97 / 100).contains(&declared),
        "MDE {mde:.2} %: declared on {declared} of {TRIALS} nights"
    );
}

#[test]
fn an_alternating_machine_makes_the_night_advisory() {
    let runs = shipped_runs();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let none = |_: usize, _: usize, _: usize| 1.0;
    let baseline = Night {
        runs,
        noise: 0.02,
        slowdown: &none,
    }
    .measure(&mut rng, None);
    // Every second run of the night is twice as slow, in every case; and
    // one case is also truly slower, which the gate sees but must not
    // fail the night for.
    let alternating = |b: usize, c: usize, r: usize| {
        let load = if r % 2 == 1 { 2.0 } else { 1.0 };
        load * if (b, c) == (0, 0) { 3.0 } else { 1.0 }
    };
    let c = gate(
        &baseline,
        &Night {
            runs,
            noise: 0.02,
            slowdown: &alternating,
        },
        &mut rng,
    );
    let control = c.control.as_ref().expect("an unpaired night has a control");
    assert!(control.can_fire);
    assert!(c.advisory, "{control:#?}");
    assert!(!c.fails_the_night());
    // A steady night at the same noise is not advisory.
    let steady = gate(
        &baseline,
        &Night {
            runs,
            noise: 0.02,
            slowdown: &none,
        },
        &mut rng,
    );
    assert!(!steady.advisory, "{:#?}", steady.control);
}

/// Interleaved nights: pairs of (other build, this build) runs that share
/// the machine's drift, which cancels in each pair.
fn paired_trials(planted: f64, seed: u64) -> (usize, usize) {
    let pairs = runs_for_verdicts(Pairing::Paired, COMPARISONS, None).expect("a design");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise: Normal<f64> = Normal::new(0.0, 0.02).expect("a valid SD");
    let (mut hits, mut false_alarms) = (0, 0);
    let empty = report(Vec::new(), pairs);
    for _ in 0..TRIALS {
        let mut series = Vec::new();
        for (b, benchmark) in BENCHMARKS.iter().enumerate() {
            for case in 0..CASES_PER_BENCHMARK {
                let factor = if (b, case) == (1, 2) { planted } else { 1.0 };
                // The machine drifts by up to ±20 % over the night.
                let pairs: Vec<(f64, f64)> = (0..pairs)
                    .map(|p| {
                        let drift = 1.0 + 0.2 * ((p as f64) * 0.7).sin();
                        let a = 10.0 * drift * noise.sample(&mut rng).exp();
                        let b = 10.0 * drift * factor * noise.sample(&mut rng).exp();
                        (a, b)
                    })
                    .collect();
                for (metric, hib) in [("latency_ms", false), ("items_per_s", true)] {
                    let values = if hib {
                        pairs
                            .iter()
                            .map(|(a, b)| (1000.0 / a, 1000.0 / b))
                            .collect()
                    } else {
                        pairs.clone()
                    };
                    series.push(PairedSeries {
                        case: format!("{benchmark}[case={case}]"),
                        benchmark: benchmark.to_string(),
                        metric: metric.into(),
                        unit: String::new(),
                        higher_is_better: hib,
                        pairs: values,
                    });
                }
            }
        }
        let c = compare_paired(
            &series,
            &empty,
            &empty,
            "other",
            "this",
            &CompareSettings::default(),
        );
        assert_eq!(c.design.comparisons, COMPARISONS);
        if c.fails_the_night() {
            if planted != 1.0 && c.regressions().all(|x| x.case == "decode[case=2]") {
                hits += 1;
            } else {
                false_alarms += 1;
            }
        }
    }
    eprintln!(
        "interleaved, planted ×{planted}, {pairs} pairs: {hits} of {TRIALS} nights caught, {false_alarms} false alarms"
    );
    (hits, false_alarms)
}

#[test]
fn interleaved_nights_cancel_drift_and_catch_a_slowdown() {
    assert_eq!(paired_trials(1.0, 7), (0, 0));
    let (hits, false_alarms) = paired_trials(1.10, 8);
    assert!(hits * 100 >= TRIALS * 80, "{hits} of {TRIALS}");
    assert_eq!(false_alarms, 0);
}

/// Experiments: a remedy's toggle against the campaign as it is, at the
/// design `campaign experiment` ships (the fewest pairs that declare one
/// comparison with an overlapping pair), with ±20 % drift over the sitting
/// and 3 % run noise. Each run is one report of two cases of different
/// scale, as a real benchmark's prompt lengths are.
fn experiment_trials(planted_speedup: f64, seed: u64) -> [usize; 4] {
    use campaign::analysis::{ExperimentVerdict, measure};
    let pairs = runs_for_verdicts(Pairing::Paired, 1, None).expect("a design");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise: Normal<f64> = Normal::new(0.0, 0.03).expect("a valid SD");
    // [gain, loss, interval covers the truth, interval includes 1]
    let mut counts = [0; 4];
    for _ in 0..TRIALS {
        let mut run = |drift: f64, factor: f64| {
            let results = (0..2)
                .map(|case| {
                    let latency =
                        10.0 * (case + 1) as f64 * drift * factor * noise.sample(&mut rng).exp();
                    let mut r = result("planted", case, &[latency]);
                    r.elapsed_s = latency * 20.0 / 1000.0;
                    r
                })
                .collect();
            report(results, 1)
        };
        let (mut baseline, mut toggled) = (Vec::new(), Vec::new());
        for p in 0..pairs {
            let drift = 1.0 + 0.2 * ((p as f64) * 0.7).sin();
            baseline.push(run(drift, 1.0));
            toggled.push(run(drift, 1.0 / planted_speedup));
        }
        let m = measure(
            &baseline.iter().collect::<Vec<_>>(),
            &toggled.iter().collect::<Vec<_>>(),
            &CompareSettings::default(),
        );
        assert_eq!(m.runs_per_side, pairs);
        let [lo, hi] = m.ci95.expect("an interval from complete pairs");
        counts[0] += usize::from(m.verdict == ExperimentVerdict::Gain);
        counts[1] += usize::from(m.verdict == ExperimentVerdict::Loss);
        counts[2] += usize::from(lo <= planted_speedup && planted_speedup <= hi);
        counts[3] += usize::from(lo <= 1.0 && 1.0 <= hi);
        if m.verdict == ExperimentVerdict::NoGainShown {
            assert!(lo <= 1.0 && 1.0 <= hi);
        }
    }
    eprintln!(
        "experiment, planted ×{planted_speedup}, {pairs} pairs: gain {}, loss {}, truth covered {}, ×1 covered {} of {TRIALS}",
        counts[0], counts[1], counts[2], counts[3]
    );
    counts
}

#[test]
fn an_experiment_measures_a_planted_speedup_and_shows_no_gain_for_a_null_toggle() {
    let [gain, loss, covered, _] = experiment_trials(2.0, 11);
    assert_eq!(
        (gain, loss),
        (TRIALS, 0),
        "a halved time is a gain every time"
    );
    assert!(
        covered * 100 >= TRIALS * 90,
        "×2 inside the interval {covered} of {TRIALS}"
    );

    let [gain, loss, covered, _] = experiment_trials(1.0, 12);
    assert!(
        gain + loss <= TRIALS / 100,
        "{gain} gains, {loss} losses from a null toggle"
    );
    assert!(
        covered * 100 >= TRIALS * 90,
        "×1 inside the interval {covered} of {TRIALS}"
    );

    // 10 % faster in 3 % noise: a gain in most sittings, never a loss.
    let [gain, loss, covered, _] = experiment_trials(1.10, 13);
    assert!(gain * 100 >= TRIALS * 50, "{gain} of {TRIALS}");
    assert_eq!(loss, 0);
    assert!(covered * 100 >= TRIALS * 90, "{covered} of {TRIALS}");
}
