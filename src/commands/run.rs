use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::nightly::read_history;
use super::{CommandError, day_exit_code, exit, open_toggled_campaign};
use super::{run_analysis, run_calibration, run_roadmap, write_json};
use crate::analysis::{
    CompareSettings, Comparison, DEFAULT_THRESHOLD_PCT, GateDesign, HistoryEntry, Pairing,
    compare_paired, compare_reports, confirm_with_rerun, label_persistence, paired_series,
    regressed_benchmarks, runs_for_verdicts,
};
use crate::benchmarks::planned_comparisons;
use crate::campaign::bounds::Threads;
use crate::campaign::{BenchmarkSpec, Campaign, DayStep, Toggle};
use crate::components::inference::DeviceSpec;
use crate::model::{BenchmarkResult, DailyReport};
use crate::output::{OutputError, OutputLayout, write_atomically};
use crate::report::{
    DayArtifacts, Exporter, HtmlPage, JsonReport, render_bottleneck_table, render_calibration,
    render_comparison_table, render_summary_table, write_artifact, write_day_artifacts,
};
use crate::runner::{
    Arm, CancelFlag, ChildRun, ProfileOptions, ProfileSelection, RunOptions, SilentProgress,
    abba_schedule, configure_threads, console_progress, install_interrupt_handler, run_child,
    run_day, select_benchmarks,
};

#[derive(Debug, Clone)]
pub struct RunArgs {
    pub campaign: PathBuf,
    pub day: u32,
    pub out: Option<PathBuf>,
    pub quick: bool,
    pub only: Vec<String>,
    pub json: bool,
    pub device: Option<DeviceSpec>,
    pub threads: Option<Threads>,
    pub profile: bool,
    pub profile_hz: Option<u32>,
    pub runs: Option<u32>,
    pub save_baseline: Option<String>,
    pub baseline: Option<String>,
    pub against_bin: Option<PathBuf>,
    pub advisory: bool,
    pub threshold_pct: Option<f64>,
    /// Started by a parent run for the cases of one thread count: no
    /// children of its own, no `after` steps.
    pub thread_child: bool,
    /// Profile nothing (an experiment's runs measure only).
    pub no_profile: bool,
    /// An experiment's toggled side.
    pub toggle: Option<Toggle>,
    /// An experiment's run: no `after` steps.
    pub measure_only: bool,
}

impl RunArgs {
    fn makes_verdicts(&self) -> bool {
        self.baseline.is_some() || self.save_baseline.is_some() || self.against_bin.is_some()
    }
}

/// `campaign run`: returns the exit status after the report is written.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    let (campaign, layout) =
        open_toggled_campaign(&args.campaign, args.out.as_deref(), args.toggle.as_ref())?;
    let mut options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        device: args.device,
        threads: args.threads,
        model_cache_dir: layout.model_cache(),
        scratch_dir: layout.scratch(),
        profile: ProfileOptions {
            selection: if args.profile {
                ProfileSelection::All
            } else if args.no_profile {
                ProfileSelection::Off
            } else {
                ProfileSelection::AsCampaignSays
            },
            frequency_hz: args.profile_hz,
            raw_dir: layout.raw_profiles(),
            flame_dir: layout.flame_graphs(),
        },
        runs: 1,
        run_id: OutputLayout::run_id(&chrono::Utc::now()),
        thread_child: args.thread_child,
    };
    let selected = select_benchmarks(&campaign, &options)?;
    if let Some(device) = args.device {
        device.ensure_compiled()?;
    }
    configure_threads(
        args.threads
            .unwrap_or(campaign.file.settings().threads)
            .usize(),
    );
    // A missing baseline fails now, not after an hour of benchmarks.
    let baseline = args
        .baseline
        .as_deref()
        .map(|name| load_baseline(&layout, name, args.day))
        .transpose()?;
    let (runs, design) = plan_runs(&selected, args, baseline.as_ref())?;
    options.runs = runs;
    if let Some(design) = &design {
        eprintln!("verdict design: {}", design.describe());
    }
    let interrupt = install_interrupt_handler()?;
    if options_have_no_benchmarks(&campaign, &options) {
        run_day_steps(&campaign, &layout, args, &interrupt)?;
        return Ok(exit::OK);
    }
    if let Some(other) = &args.against_bin {
        return run_interleaved(&campaign, &layout, args, &options, other, &interrupt);
    }

    let mut progress = console_progress();
    let mut write_failures = Vec::new();
    // Streamed for CI to tail under a name that says it is incomplete;
    // renamed once the day is over, so a crash never leaves a
    // `results.jsonl` that looks whole. The run id keeps two runs started
    // together into one folder from writing into each other's stream.
    let jsonl_path = layout.ci_file(&format!("results.jsonl.{}.partial", options.run_id));
    let mut jsonl = std::fs::File::create(&jsonl_path).map_err(|source| OutputError::Write {
        path: jsonl_path.clone(),
        source,
    })?;
    let measured = run_day(
        &campaign,
        &options,
        &interrupt,
        progress.as_mut(),
        &mut |result| {
            let path = layout.metrics_path(args.day, &options.run_id, result);
            let written = serde_json::to_vec_pretty(result)
                .map_err(OutputError::from)
                .and_then(|bytes| write_atomically(&path, &bytes));
            if let Err(e) = written {
                write_failures.push(e.to_string());
            }
            // One line per result as soon as it exists, for CI to tail.
            let line = serde_json::to_string(result).map_err(|e| e.to_string());
            if let Err(e) = line.and_then(|l| writeln!(jsonl, "{l}").map_err(|e| e.to_string())) {
                write_failures.push(format!("{}: {e}", jsonl_path.display()));
            }
        },
    );
    drop(jsonl);
    let mut report = measured.inspect_err(|_| {
        let _ = std::fs::remove_file(&jsonl_path);
    })?;
    report.warnings.extend(write_failures);
    // The stream is replaced by results.jsonl, written with the day's
    // other files from the finished report.
    let _ = std::fs::remove_file(&jsonl_path);
    finish_day(
        &campaign,
        &layout,
        args,
        report,
        &interrupt,
        |report| match &baseline {
            Some((name, base)) if !report.interrupted => Some(compare_with_rerun(
                &campaign, &options, &interrupt, report, base, name, args,
            ))
            .transpose(),
            _ => Ok(None),
        },
    )
}

/// Writes a measured day's report and artifacts, compares it (after the
/// report is safe on disk), records the night in the history, and runs
/// the day's `after` steps; returns the exit status.
fn finish_day(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
    mut report: DailyReport,
    interrupt: &CancelFlag,
    compare: impl FnOnce(&DailyReport) -> Result<Option<Comparison>, CommandError>,
) -> Result<u8, CommandError> {
    // Analyses that belong in the day report are made once it is measured.
    report.scaling = crate::analysis::scaling_curves(&report.results);
    report.parity = crate::analysis::served_parity(&report.results);
    // The machine's measured limits, when `campaign calibrate` has run here.
    report.environment.calibration = std::fs::read(layout.calibration())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    // The report first: without it nothing of the night is kept.
    let path = write_artifact(layout, &JsonReport, &report)?;

    let table = render_summary_table(&report);
    if args.thread_child {
        // The parent prints these results in its own table; this report
        // lives in a working folder that is removed.
        let json = serde_json::to_string_pretty(&report).map_err(OutputError::from)?;
        println!("{json}");
        return Ok(day_exit_code(&report.summary, report.interrupted));
    }
    if args.json {
        eprintln!("{table}\nreport: {}", path.display());
        let json = serde_json::to_string_pretty(&report).map_err(OutputError::from)?;
        println!("{json}");
    } else {
        println!("{table}\nreport: {}", path.display());
    }
    print_warnings(&report);
    let mut code = day_exit_code(&report.summary, report.interrupted);

    let history_path = layout.history(&report.environment.machine_key(), report.day);
    let mut comparison = compare(&report)?;
    if let Some(comparison) = &mut comparison {
        comparison.current = path.display().to_string();
        label_persistence(comparison, &read_history(&history_path)?);
        say(args, &render_comparison_table(comparison));
        write_json(&layout.ci_file("comparison.json"), comparison)?;
        if comparison.fails_the_night() && code == exit::OK {
            code = exit::REGRESSION;
        }
    }
    if !report.interrupted {
        let mut entry = HistoryEntry::from_report(&report, &path.display().to_string());
        if let Some(c) = &comparison {
            entry = entry.with_comparison(c);
        }
        append_history(&history_path, &entry)?;
    }
    let written = write_day_artifacts(
        layout,
        DayArtifacts {
            report: &report,
            comparison: comparison.as_ref(),
        },
    );
    if let Some((_, html)) = written.files.iter().find(|(f, _)| *f == HtmlPage.format()) {
        say(args, &format!("html: {}", html.display()));
    }
    let mut failures = written.failures;
    if let Err(e) = super::index::write_campaign_index(layout, &report.campaign.name) {
        failures.push(format!("campaign index not written: {e}"));
    }
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    if !failures.is_empty() && code == exit::OK {
        // The measurements are safe in the report; the night's output is not whole.
        code = exit::USAGE;
    }
    if let Some(name) = &args.save_baseline {
        save_baseline(layout, args, &report, name)?;
    }
    if report.interrupted || args.thread_child || args.measure_only {
        return Ok(code);
    }
    run_day_steps(campaign, layout, args, interrupt)?;
    if args.advisory && code == exit::REGRESSION {
        eprintln!("advisory run: exit 0 instead of 3");
        code = exit::OK;
    }
    Ok(code)
}

fn save_baseline(
    layout: &OutputLayout,
    args: &RunArgs,
    report: &DailyReport,
    name: &str,
) -> Result<(), CommandError> {
    if report.interrupted {
        eprintln!("warning: not saved as baseline {name}: the run was interrupted");
        return Ok(());
    }
    let target = layout.baseline(name, args.day);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    write_json(&target, report)?;
    say(args, &format!("baseline {name}: {}", target.display()));
    Ok(())
}

/// The night's run count and, when it makes verdicts, its design: checked
/// before anything is measured. An explicit `--runs` that can never
/// declare a regression is refused with the count that could; without
/// `--runs`, the fewest runs that declare one even with an overlapping
/// pair are chosen.
fn plan_runs(
    selected: &[&BenchmarkSpec],
    args: &RunArgs,
    baseline: Option<&(String, DailyReport)>,
) -> Result<(u32, Option<GateDesign>), CommandError> {
    let explicit = args.runs.map(|r| r as usize);
    if !args.makes_verdicts() {
        return Ok((args.runs.unwrap_or(1), None));
    }
    let planned = planned_comparisons(selected);
    let refuse = |design: &GateDesign, needed: Option<usize>, advice: String| {
        CommandError::Design(format!(
            "{}\n  help: {}",
            design.describe(),
            needed.map_or(advice, |n| format!(
                "--runs {n} would; or leave --runs out and the night chooses it"
            ))
        ))
    };
    if args.against_bin.is_some() {
        let needed = runs_for_verdicts(Pairing::Paired, planned, None);
        let n = explicit.or(needed).unwrap_or(crate::analysis::MAX_RUNS);
        let design = GateDesign::paired(n, planned);
        if !design.can_declare {
            return Err(refuse(
                &design,
                needed,
                "select fewer benchmarks with --only".into(),
            ));
        }
        return Ok((n as u32, Some(design)));
    }
    let mut designs = Vec::new();
    let mut n = explicit.unwrap_or(0);
    if let Some((name, base)) = baseline {
        let names: Vec<&str> = selected.iter().map(|s| s.name.get_ref().as_str()).collect();
        let compared: Vec<&BenchmarkResult> = base
            .results
            .iter()
            .filter(|r| names.contains(&r.benchmark.as_str()) && !r.run_values.is_empty())
            .collect();
        let m = compared.iter().map(|r| r.run_values.len()).sum::<usize>();
        let baseline_runs = compared
            .iter()
            .flat_map(|r| r.run_values.values().map(Vec::len))
            .min()
            .ok_or_else(|| {
                CommandError::Design(format!(
                    "baseline {name:?} has no run-level values for the selected benchmarks of day {}\n  help: re-record it with `campaign run --day {} --save-baseline {name}`",
                    args.day, args.day
                ))
            })?;
        let needed = runs_for_verdicts(Pairing::Unpaired, m, Some(baseline_runs));
        let rerecord = runs_for_verdicts(Pairing::Unpaired, m, None).unwrap_or(baseline_runs);
        let advice = format!(
            "baseline {name:?} has only {baseline_runs} runs; re-record it with `--save-baseline {name}` (it chooses {rerecord} runs)"
        );
        let chosen = explicit.or(needed).unwrap_or(crate::analysis::MAX_RUNS);
        let design = GateDesign::unpaired(baseline_runs, chosen, m);
        if !design.can_declare {
            return Err(refuse(&design, needed, advice));
        }
        n = n.max(chosen);
        designs.push(design);
    }
    if args.save_baseline.is_some() {
        let needed = runs_for_verdicts(Pairing::Unpaired, planned, None);
        let chosen = explicit.unwrap_or_else(|| n.max(needed.unwrap_or(crate::analysis::MAX_RUNS)));
        let design = GateDesign::unpaired(chosen, chosen, planned);
        if !design.can_declare {
            return Err(refuse(
                &design,
                needed,
                "select fewer benchmarks with --only".into(),
            ));
        }
        n = n.max(chosen);
        designs.push(design);
    }
    Ok((n as u32, designs.into_iter().next()))
}

/// `--against-bin`: this build and another run the day alternately as
/// child processes; the verdicts come from the pairs.
fn run_interleaved(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
    options: &RunOptions,
    other: &Path,
    interrupt: &CancelFlag,
) -> Result<u8, CommandError> {
    let this = std::env::current_exe().map_err(|e| {
        CommandError::AgainstBin(format!("cannot find this program's own path: {e}"))
    })?;
    if !other.is_file() {
        return Err(CommandError::AgainstBin(format!(
            "--against-bin {}: no such program\n  help: pass the path of another build of campaign, e.g. target/release/campaign from another checkout",
            other.display()
        )));
    }
    let pairs = options.runs as usize;
    let seed = campaign.file.settings().seed ^ crate::runner::RUN_ORDER_SALT;
    let schedule = abba_schedule(pairs, seed);
    let root = layout.scratch().join("interleaved");
    let mut runs: Vec<ChildRun> = Vec::new();
    let mut warnings = Vec::new();
    for (slot, build) in schedule.iter().enumerate() {
        if interrupt.is_cancelled() {
            break;
        }
        let program = match build {
            Arm::Reference => other,
            Arm::Candidate => this.as_path(),
        };
        eprintln!(
            "interleaved run {} of {}: {} ({})",
            slot + 1,
            schedule.len(),
            match build {
                Arm::Reference => "the other build",
                Arm::Candidate => "this build",
            },
            program.display()
        );
        let out = root.join(format!("run_{slot}"));
        let child_args = child_arguments(args, &out, layout)?;
        let outcome = run_child(*build, program, &child_args, interrupt);
        let _ = std::fs::remove_dir_all(&out);
        match outcome {
            Ok(run) if run.exit_code == Some(i32::from(exit::USAGE)) => {
                return Err(CommandError::AgainstBin(format!(
                    "{} refused the day (exit 2; its message is above)",
                    program.display()
                )));
            }
            Ok(run) => runs.push(run),
            Err(e) => warnings.push(format!("interleaved run {}: {e}", slot + 1)),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let side = |b: Arm| -> Vec<&DailyReport> {
        runs.iter()
            .filter(|r| r.arm == b)
            .map(|r| &r.report)
            .collect()
    };
    let (others, these) = (side(Arm::Reference), side(Arm::Candidate));
    if others.is_empty() || these.is_empty() {
        return Err(CommandError::Interleave(format!(
            "no run of {} produced a report; nothing to compare",
            if others.is_empty() {
                "the other build"
            } else {
                "this build"
            }
        )));
    }
    let (Some(mut report), Some(other_report)) =
        (DailyReport::pooled(&these), DailyReport::pooled(&others))
    else {
        return Err(CommandError::Interleave("no runs to pool".into()));
    };
    report.run_id = options.run_id.clone();
    report.interrupted |= interrupt.is_cancelled();
    report.settings.runs = pairs as u32;
    report.settings.run_order_seed = seed;
    report.settings.against_bin = Some(other.display().to_string());
    report.warnings.extend(warnings);
    let series = paired_series(&others, &these);
    let settings = compare_settings(campaign, args);
    let comparison = compare_paired(
        &series,
        &other_report,
        &report,
        &format!("{} (interleaved)", other.display()),
        "this build",
        &settings,
    );
    finish_day(campaign, layout, args, report, interrupt, |_| {
        Ok(Some(comparison))
    })
}

/// The arguments of one interleaved child: the same day, one run, its
/// report on stdout; only flags every build of `campaign` understands.
fn child_arguments(
    args: &RunArgs,
    out: &Path,
    layout: &OutputLayout,
) -> Result<Vec<String>, CommandError> {
    let mut a = super::child_run_arguments(args.day, &args.campaign, out, layout)?;
    if args.quick {
        a.push("--quick".into());
    }
    if !args.only.is_empty() {
        a.push("--only".into());
        a.push(args.only.join(","));
    }
    if let Some(t) = args.threads {
        a.extend(["--threads".into(), t.to_string()]);
    }
    if let Some(d) = args.device {
        a.extend(["--device".into(), d.to_string()]);
    }
    Ok(a)
}

/// One line per finished run in the machine's append-only history.
fn append_history(path: &Path, entry: &HistoryEntry) -> Result<(), CommandError> {
    let write_err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let line = serde_json::to_string(entry).map_err(OutputError::from)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_err)?;
    writeln!(file, "{line}").map_err(write_err)?;
    Ok(())
}

fn load_baseline(
    layout: &OutputLayout,
    name: &str,
    day: u32,
) -> Result<(String, DailyReport), CommandError> {
    let path = layout.baseline(name, day);
    let bytes = std::fs::read(&path).map_err(|_| {
        CommandError::Analysis(format!(
            "baseline {name:?} has no report for day {day} ({} is missing)\n  help: create it with `campaign run --day {day} --save-baseline {name}`",
            path.display()
        ))
    })?;
    let report = serde_json::from_slice(&bytes)
        .map_err(|e| CommandError::Analysis(format!("{}: {e}", path.display())))?;
    Ok((name.to_string(), report))
}

/// Compares with the baseline; a regression counts only if a same-night
/// re-run of its benchmark regresses too.
fn compare_with_rerun(
    campaign: &Campaign,
    options: &RunOptions,
    interrupt: &CancelFlag,
    report: &DailyReport,
    baseline: &DailyReport,
    name: &str,
    args: &RunArgs,
) -> Result<Comparison, CommandError> {
    let settings = compare_settings(campaign, args);
    let mut comparison = compare_reports(baseline, report, name, "this run", &settings);
    let suspects = regressed_benchmarks(&comparison, report);
    if suspects.is_empty() {
        return Ok(comparison);
    }
    eprintln!(
        "re-running {} to confirm the regression (a verdict needs it twice)",
        suspects.join(", ")
    );
    let rerun_options = RunOptions {
        only: suspects,
        profile: ProfileOptions {
            selection: ProfileSelection::Off,
            ..options.profile.clone()
        },
        ..options.clone()
    };
    let rerun = run_day(
        campaign,
        &rerun_options,
        interrupt,
        &mut SilentProgress,
        &mut |_| {},
    )?;
    let second = compare_reports(baseline, &rerun, name, "re-run", &settings);
    confirm_with_rerun(&mut comparison, &second);
    Ok(comparison)
}

/// The threshold from --threshold-pct, else the default; per-benchmark
/// overrides from the campaign's `regression_threshold_pct`.
fn compare_settings(campaign: &Campaign, args: &RunArgs) -> CompareSettings {
    let overrides = campaign
        .file
        .days
        .iter()
        .flat_map(|d| &d.get_ref().benchmarks)
        .filter_map(|b| {
            let b = b.get_ref();
            b.regression_threshold_pct
                .map(|t| (b.name.get_ref().clone(), t.get()))
        })
        .collect();
    CompareSettings {
        threshold_pct: args.threshold_pct.unwrap_or(DEFAULT_THRESHOLD_PCT),
        overrides,
    }
}

/// Human-readable output: stdout, or stderr when stdout carries --json.
fn say(args: &RunArgs, text: &str) {
    if args.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

/// The day's `after` steps, in order.
fn run_day_steps(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
    interrupt: &CancelFlag,
) -> Result<(), CommandError> {
    let day = campaign.day(args.day)?;
    for step in &day.after {
        match step {
            DayStep::Calibrate => {
                let threads = args
                    .threads
                    .unwrap_or(campaign.file.settings().threads)
                    .usize();
                let (calibration, path) = run_calibration(campaign, layout, args.quick, threads)?;
                say(
                    args,
                    &format!(
                        "{}\ncalibration: {}",
                        render_calibration(&calibration),
                        path.display()
                    ),
                );
            }
            DayStep::Analyze => {
                let days = day
                    .analyze_days
                    .clone()
                    .unwrap_or_else(|| format!("1-{}", args.day));
                let (analysis, path) = run_analysis(campaign, layout, &days, None)?;
                say(
                    args,
                    &format!(
                        "{}\nanalysis: {}",
                        render_bottleneck_table(&analysis),
                        path.display()
                    ),
                );
            }
            DayStep::Experiments => {
                let options = super::ExperimentArgs {
                    campaign: args.campaign.clone(),
                    out: args.out.clone(),
                    quick: args.quick,
                    ..Default::default()
                };
                let (file, path, _) =
                    super::run_experiments(campaign, layout, &options, interrupt)?;
                say(
                    args,
                    &format!(
                        "{}\nexperiments: {}",
                        crate::report::render_experiments(&file),
                        path.display()
                    ),
                );
            }
            DayStep::Roadmap => {
                let path = run_roadmap(layout)?;
                say(args, &format!("roadmap: {}", path.display()));
            }
        }
    }
    Ok(())
}

fn options_have_no_benchmarks(campaign: &Campaign, options: &RunOptions) -> bool {
    select_benchmarks(campaign, options).is_ok_and(|b| b.is_empty())
}

/// Day warnings, then each result's, prefixed with its name. Provisional
/// percentiles are counted in one line: in a --quick run every case has them.
fn print_warnings(report: &DailyReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for result in &report.results {
        for warning in &result.warnings {
            eprintln!("warning: {}: {warning}", result.case_id);
        }
    }
    let provisional = report
        .results
        .iter()
        .flat_map(|r| &r.targets)
        .filter(|t| t.provisional)
        .count();
    if provisional > 0 {
        eprintln!(
            "warning: {provisional} target verdicts rest on provisional percentiles (too few samples for the rule in settings.provisional_rule); run without --quick or add iterations"
        );
    }
}
