//! `campaign experiment` (and the `experiments` day step): measures the
//! remedies that carry a toggle. For each one, the benchmarks it acts on
//! run as the campaign is (baseline) and toggled, each run a child
//! `campaign run` of this binary, in a seeded ABBA order in one sitting;
//! the statistics are the regression gate's, on pairs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{CommandError, exit};
use crate::analysis::{
    BottleneckAnalysis, CompareSettings, DEFAULT_THRESHOLD_PCT, DayBenchmark, Experiment,
    ExperimentVerdict, ExperimentsFile, GateDesign, Pairing, Remedy, RemedyCatalog, RemedyEstimate,
    by_day, measure, on_profiled_time, runs_for_verdicts,
};
use crate::analysis::{
    DEFAULT_QUALITY_MARGINS, QualityMargins, QualityVerdict, judge_quality, judge_served_quality,
};
use crate::benchmarks::{
    BenchContext, QUALITY_PROMPTS, QUALITY_SERVED_PROMPTS, QUALITY_TOKENS, ServedOutput,
    compare_outputs, compare_served, planned_comparisons, quality_prompts,
};
use crate::campaign::{Benchmark, Campaign, Toggle, load_campaign_toggled};
use crate::model::DailyReport;
use crate::output::{OutputError, OutputLayout};
use crate::runner::{
    Arm, ArmLabels, CancelFlag, ChildCommand, LostRunCost, Sitting, SittingError, SlotRun,
};

/// What an experiment run is asked for.
#[derive(Debug, Clone, Default)]
pub struct ExperimentArgs {
    pub campaign: PathBuf,
    pub out: Option<PathBuf>,
    /// Substrings of remedy texts; empty: every planned remedy with a toggle.
    pub remedy: Vec<String>,
    pub remedies: Option<PathBuf>,
    pub runs: Option<u32>,
    pub quick: bool,
    pub threshold_pct: Option<f64>,
}

/// One remedy to measure, with the benchmarks its experiment runs.
struct Planned<'c> {
    remedy: &'c Remedy,
    toggle: Toggle,
    benchmarks: Vec<DayBenchmark>,
}

/// Runs the experiments and writes `experiments.json` (keeping earlier
/// experiments of other remedies); returns the file, its path and the exit
/// status (4 when an experiment measured nothing, 130 when interrupted).
pub fn run_experiments(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &ExperimentArgs,
    interrupt: &CancelFlag,
) -> Result<(ExperimentsFile, PathBuf, u8), CommandError> {
    let resolved = RemedyCatalog::resolve(args.remedies.as_deref(), &campaign.remedies_path())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let analysis = read_analysis(layout);
    let planned = plan_experiments(campaign, &resolved.catalog, analysis.as_ref(), args)?;
    let pairs = experiment_pairs(args.runs)?;
    let path = layout.experiments();
    let mut file = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<ExperimentsFile>(&b).ok())
        .unwrap_or_else(|| ExperimentsFile::new(campaign.name()));
    let settings = CompareSettings {
        threshold_pct: args.threshold_pct.unwrap_or(DEFAULT_THRESHOLD_PCT),
        overrides: super::threshold_overrides(campaign),
    };
    let mut code = exit::OK;
    for plan in &planned {
        if interrupt.is_cancelled() {
            break;
        }
        let experiment = run_one(campaign, layout, args, plan, pairs, interrupt, &settings)?;
        let mut experiment = with_profiled_time(experiment, analysis.as_ref());
        if plan.toggle.can_change_outputs() && !interrupt.is_cancelled() {
            let margins = plan
                .remedy
                .quality
                .or(resolved.catalog.quality)
                .unwrap_or(DEFAULT_QUALITY_MARGINS);
            match measure_quality(campaign, layout, plan, margins) {
                Ok(verdicts) => experiment.quality = verdicts,
                Err(e) => experiment
                    .warnings
                    .push(format!("quality not measured: {e}")),
            }
        }
        if experiment.measurement.verdict == ExperimentVerdict::NotMeasured {
            code = exit::BENCHMARK_FAILED;
        }
        file.upsert(experiment);
        // Written after each remedy: an interrupted sitting keeps the rest.
        crate::report::JsonFile::write(&path, &file)?;
    }
    if interrupt.is_cancelled() {
        code = exit::INTERRUPTED;
    }
    Ok((file, path, code))
}

/// Each toggled model's outputs against the untoggled one's on the fixed
/// prompt set, and each served target's toggled outputs against its
/// untoggled ones (outside every timed region: after the speed runs, in
/// this process), judged against `margins`.
fn measure_quality(
    campaign: &Campaign,
    layout: &OutputLayout,
    plan: &Planned<'_>,
    margins: QualityMargins,
) -> Result<Vec<QualityVerdict>, CommandError> {
    let toggle = &plan.toggle;
    let toggled =
        load_campaign_toggled(&campaign.path, &crate::benchmarks::Registry, Some(toggle))?;
    let mut verdicts = Vec::new();
    for name in campaign.models.keys() {
        if !toggle.changes_models() || toggle.model.as_ref().is_some_and(|m| m != name) {
            continue;
        }
        eprintln!("  quality: {name}, untoggled against toggled, {QUALITY_PROMPTS} prompts");
        let (_, reference) = super::load_named_model(campaign, layout, name)?;
        let (_, candidate) = super::load_named_model(&toggled, layout, name)?;
        let prompts = quality_prompts(reference.architecture.vocab_size);
        let per_prompt = compare_outputs(&reference, &candidate, &prompts, QUALITY_TOKENS)
            .map_err(|e| CommandError::Usage(format!("model {name:?}: {e}")))?;
        verdicts.push(judge_quality(name, &per_prompt, QUALITY_TOKENS, margins));
    }
    if toggle.changes_served_target() {
        let untoggled = specs(campaign, &plan.benchmarks);
        let toggled_specs = specs(&toggled, &plan.benchmarks);
        for (reference, candidate) in untoggled.into_iter().zip(toggled_specs) {
            let name = &reference.name;
            let (Some(a), Some(b)) = (
                served_outputs(campaign, layout, reference)?,
                served_outputs(&toggled, layout, candidate)?,
            ) else {
                continue;
            };
            let per_prompt = compare_served(&a, &b, QUALITY_TOKENS)
                .map_err(|e| CommandError::Usage(format!("benchmark {name:?}: {e}")))?;
            verdicts.push(judge_served_quality(
                name,
                &per_prompt,
                QUALITY_TOKENS,
                margins,
            ));
        }
    }
    Ok(verdicts)
}

/// The quality prompts' outputs from the endpoint of `spec`; `None` when
/// it runs in-process.
fn served_outputs(
    campaign: &Campaign,
    layout: &OutputLayout,
    spec: &Benchmark,
) -> Result<Option<Vec<ServedOutput>>, CommandError> {
    let name = &spec.name;
    let ctx = BenchContext::for_campaign(
        campaign,
        campaign.settings.clone(),
        layout.model_cache(),
        layout.scratch(),
    );
    let served = crate::benchmarks::ConfiguredBenchmark::of(spec)
        .served_outputs(&ctx)
        .map_err(|e| CommandError::Usage(format!("benchmark {name:?}: {e}")))?;
    if served.is_some() {
        eprintln!(
            "  quality: {name} ({}), {QUALITY_SERVED_PROMPTS} prompts served",
            campaign.path.display()
        );
    }
    Ok(served)
}

/// The pairs of each experiment: `--runs`, refused (exit 2) when that many
/// could never declare a gain or a loss, else the fewest that declare one
/// even with an overlapping pair. The verdict is one comparison (the time).
fn experiment_pairs(runs: Option<u32>) -> Result<usize, CommandError> {
    let needed = runs_for_verdicts(Pairing::Paired, 1, None);
    let Some(runs) = runs else {
        return Ok(needed.unwrap_or(crate::analysis::MIN_RUNS));
    };
    let design = GateDesign::paired(runs as usize, 1);
    if design.can_declare {
        return Ok(runs as usize);
    }
    Err(CommandError::Design(format!(
        "--runs {runs}: {}\n  help: {}",
        design.describe(),
        needed.map_or("no count within the limit would".into(), |n| format!(
            "--runs {n} would (the fewest pairs that declare one even with an overlapping pair); or leave --runs out"
        ))
    )))
}

fn read_analysis(layout: &OutputLayout) -> Option<BottleneckAnalysis> {
    let bytes = std::fs::read(layout.bottleneck_analysis()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The remedies to measure: those `--remedy` selects (each must have a
/// toggle), else every remedy of the analysis's plan that has one.
fn plan_experiments<'c>(
    campaign: &Campaign,
    catalog: &'c RemedyCatalog,
    analysis: Option<&BottleneckAnalysis>,
    args: &ExperimentArgs,
) -> Result<Vec<Planned<'c>>, CommandError> {
    let toggled: Vec<&Remedy> = catalog
        .remedies
        .iter()
        .filter(|r| r.toggle.is_some())
        .collect();
    let names = || {
        toggled
            .iter()
            .map(|r| format!("  {}", r.remedy))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let chosen: Vec<&Remedy> = if args.remedy.is_empty() {
        let plan = analysis.map_or(&[][..], |a| a.remedy_plan.as_slice());
        toggled
            .iter()
            .copied()
            .filter(|r| plan.iter().any(|p| p.remedy == r.remedy))
            .collect()
    } else {
        toggled
            .iter()
            .copied()
            .filter(|r| args.remedy.iter().any(|t| r.remedy.contains(t.as_str())))
            .collect()
    };
    if chosen.is_empty() {
        return Err(CommandError::Usage(if args.remedy.is_empty() {
            format!(
                "no remedy of the last analysis's plan has a toggle (or there is no analysis under {})\n  help: run `campaign analyze` first, or choose remedies with --remedy TEXT; remedies with a toggle:\n{}",
                campaign.name(),
                names()
            )
        } else {
            format!(
                "--remedy {}: no remedy with a toggle contains that text; remedies with a toggle:\n{}",
                args.remedy.join(", "),
                names()
            )
        }));
    }
    let mut planned = Vec::new();
    for remedy in chosen {
        let Some(mut toggle) = remedy.toggle.clone() else {
            continue;
        };
        let benchmarks = if toggle.benchmarks.is_empty() {
            analysis
                .and_then(|a| a.remedy_plan.iter().find(|p| p.remedy == remedy.remedy))
                .map(|p: &RemedyEstimate| p.evidence_benchmarks.clone())
                .unwrap_or_default()
        } else {
            named_benchmarks(campaign, &toggle.benchmarks)
        };
        // Chosen by name, a remedy that cannot run is an error; chosen by
        // the plan, it is skipped with the reason and the others run.
        let refuse = |e: CommandError| -> Result<(), CommandError> {
            if args.remedy.is_empty() {
                eprintln!("warning: experiment of {:?} skipped: {e}", remedy.remedy);
                Ok(())
            } else {
                Err(e)
            }
        };
        if benchmarks.is_empty() {
            refuse(CommandError::Usage(format!(
                "remedy {:?}: its toggle names no benchmark of this campaign and no analysis gives its evidence\n  help: add benchmarks = [\"NAME\"] to its toggle, or run `campaign analyze` first",
                remedy.remedy
            )))?;
            continue;
        }
        if toggle.benchmarks.is_empty() {
            toggle.benchmarks = benchmarks.iter().map(|b| b.benchmark.clone()).collect();
            // Evidence is sorted by day first: a name profiled on two days
            // is not next to its twin.
            toggle.benchmarks.sort_unstable();
            toggle.benchmarks.dedup();
        }
        // The toggled campaign must load before anything runs.
        if let Err(e) =
            load_campaign_toggled(&campaign.path, &crate::benchmarks::Registry, Some(&toggle))
        {
            refuse(e.into())?;
            continue;
        }
        planned.push(Planned {
            remedy,
            toggle,
            benchmarks,
        });
    }
    Ok(planned)
}

/// Every (day, benchmark) of the campaign with one of these names.
fn named_benchmarks(campaign: &Campaign, names: &[String]) -> Vec<DayBenchmark> {
    campaign
        .benchmarks()
        .filter(|(_, b)| names.contains(&b.name))
        .map(|(day, b)| DayBenchmark {
            day,
            benchmark: b.name.clone(),
        })
        .collect()
}

/// The specs of an experiment's benchmarks.
fn specs<'c>(campaign: &'c Campaign, benchmarks: &[DayBenchmark]) -> Vec<&'c Benchmark> {
    campaign
        .benchmarks()
        .filter(|(day, b)| {
            benchmarks
                .iter()
                .any(|x| x.day == *day && x.benchmark == b.name)
        })
        .map(|(_, b)| b)
        .collect()
}

/// One remedy's sitting: `pairs` baseline and toggled runs in a seeded
/// ABBA order after an untimed warm-up run of each, paired by their pair
/// number (a lost run costs only its own pair).
fn run_one(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &ExperimentArgs,
    plan: &Planned<'_>,
    pairs: usize,
    interrupt: &CancelFlag,
    settings: &CompareSettings,
) -> Result<Experiment, CommandError> {
    let labels = ArmLabels {
        names: [arm_name(Arm::Reference), arm_name(Arm::Candidate)],
        programs_named: false,
        // Under the experiment's own heading line.
        indent: "  ",
        timed: "run",
        lost: LostRunCost::Pair,
    };
    let sitting = Sitting::interleaved(pairs, layout.scratch().join("experiment"), labels)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let days = by_day(&plan.benchmarks);
    let planned_cases = planned_comparisons(&specs(campaign, &plan.benchmarks));
    eprintln!(
        "experiment: {} — {} on {} ({} pairs, {} cases)",
        plan.remedy.remedy,
        plan.toggle.describe(),
        plan.benchmarks
            .iter()
            .map(|b| format!("day {} {}", b.day, b.benchmark))
            .collect::<Vec<_>>()
            .join(", "),
        pairs,
        planned_cases
    );
    let toggle_json = serde_json::to_string(&plan.toggle).map_err(OutputError::from)?;
    // Each slot runs one child per day of the experiment, each in its own
    // folder inside the slot's, and merges their reports into the slot's.
    let outcome = sitting.run(interrupt, |turn| -> Result<SlotRun, CommandError> {
        let slot = turn.slot();
        let mut day_reports = Vec::new();
        for (day, names) in &days {
            let out = turn.folder().join(format!("day_{day}"));
            let mut child = sitting_child(args, campaign, layout, &out, *day, names)?;
            if slot.arm == Arm::Candidate {
                child.toggle_json = Some(toggle_json.clone());
            }
            match turn.run(child).map_err(refused)? {
                SlotRun::Report(report) => day_reports.push((*day, *report)),
                SlotRun::Lost(why) => return Ok(SlotRun::Lost(format!("day {day}: {why}"))),
            }
        }
        Ok(SlotRun::Report(Box::new(merged(day_reports))))
    })?;
    let warnings = sitting.warnings(&outcome);
    Ok(Experiment {
        remedy: plan.remedy.remedy.clone(),
        toggle: plan.toggle.clone(),
        toggle_description: plan.toggle.describe(),
        measured_at: Utc::now(),
        quick: args.quick,
        benchmarks: plan.benchmarks.clone(),
        order_seed: sitting.seed().unwrap_or_default(),
        order: sitting
            .schedule()
            .arms()
            .into_iter()
            .map(|a| arm_name(a).to_string())
            .collect(),
        measurement: measure(&outcome.pairs(), settings),
        on_profiled_time: None,
        quality: Vec::new(),
        warnings,
    })
}

/// A child that refused its day stops the experiment (exit 2), named by
/// its side and day.
fn refused(e: SittingError) -> CommandError {
    match e {
        SittingError::Refused { arm, day, .. } => CommandError::Usage(format!(
            "the {} run of day {day} was refused (exit 2; its message is above)",
            arm_name(arm)
        )),
        e => CommandError::Usage(e.to_string()),
    }
}

fn arm_name(arm: Arm) -> &'static str {
    match arm {
        Arm::Reference => "baseline",
        Arm::Candidate => "toggled",
    }
}

/// The reports of one run's days as one: case ids carry their day when
/// the experiment spans several days (names are unique only per day).
fn merged(mut reports: Vec<(u32, DailyReport)>) -> DailyReport {
    let several = reports.len() > 1;
    let (_, mut first) = reports.remove(0);
    if several {
        for r in &mut first.results {
            r.case_id = format!("day {} {}", first.day, r.case_id);
        }
    }
    for (day, report) in reports {
        first
            .results
            .extend(report.results.into_iter().map(|mut r| {
                r.case_id = format!("day {day} {}", r.case_id);
                r
            }));
        first.warnings.extend(report.warnings);
    }
    first
}

/// One child: the day's chosen benchmarks, one run, unprofiled, its
/// report on stdout.
fn sitting_child(
    args: &ExperimentArgs,
    campaign: &Campaign,
    layout: &OutputLayout,
    out: &Path,
    day: u32,
    names: &[String],
) -> Result<ChildCommand, CommandError> {
    Ok(ChildCommand {
        only: names.to_vec(),
        no_profile: true,
        measure_only: true,
        quick: args.quick,
        ..super::sitting_child(day, &campaign.path, out, layout)?
    })
}

/// Carries an experiment's speed-up over to all profiled time of the
/// analysis, when the analysis profiled its benchmarks.
fn with_profiled_time(mut e: Experiment, analysis: Option<&BottleneckAnalysis>) -> Experiment {
    let (Some(a), Some(s)) = (analysis, e.measurement.measured_speedup) else {
        return e;
    };
    let per_benchmark: BTreeMap<(u32, &str), f64> = a
        .profiles
        .iter()
        .map(|p| ((p.day, p.benchmark.as_str()), p.measured_s))
        .collect();
    let te: f64 = e
        .benchmarks
        .iter()
        .filter_map(|b| per_benchmark.get(&(b.day, b.benchmark.as_str())))
        .sum();
    e.on_profiled_time = on_profiled_time(s, e.measurement.ci95, a.profiled_time_s, te);
    e
}
