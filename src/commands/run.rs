use std::path::{Path, PathBuf};

use super::{CommandError, day_exit_code};
use std::io::Write as _;

use super::{exit, run_analysis, run_calibration, run_roadmap, write_json};
use crate::analysis::{
    ChangeState, CompareSettings, Comparison, DEFAULT_THRESHOLD_PCT, HistoryEntry, compare_reports,
};
use crate::campaign::{Campaign, DayStep, load_campaign};
use crate::components::inference::DeviceSpec;
use crate::report::render_html;
use crate::report::{
    DailyReport, JsonExporter, OutputError, OutputLayout, render_bottleneck_table,
    render_calibration, render_comparison_table, render_csv, render_junit, render_summary_markdown,
    render_summary_table, write_atomically,
};
use crate::runner::{
    ProfileOptions, RunOptions, SilentProgress, configure_threads, console_progress,
    install_interrupt_handler, run_day, select_benchmarks,
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
    pub threads: Option<usize>,
    pub profile: bool,
    pub profile_hz: Option<u32>,
    pub runs: Option<u32>,
    pub save_baseline: Option<String>,
    pub baseline: Option<String>,
    pub advisory: bool,
    pub threshold_pct: Option<f64>,
}

/// Separate runs when a baseline is saved or compared and --runs is not given.
const DEFAULT_VERDICT_RUNS: u32 = 5;

/// `campaign run`: returns the exit status after the report is written.
pub fn run(args: &RunArgs) -> Result<u8, CommandError> {
    let (campaign, layout) = open_campaign(&args.campaign, args.out.as_deref())?;
    let options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        device: args.device,
        threads: args.threads,
        model_cache_dir: layout.model_cache(),
        scratch_dir: layout.scratch(),
        profile: ProfileOptions {
            all: args.profile,
            frequency_hz: args.profile_hz,
            raw_dir: layout.raw_profiles(),
            flame_dir: layout.flame_graphs(),
        },
        runs: args
            .runs
            .unwrap_or(if args.baseline.is_some() || args.save_baseline.is_some() {
                DEFAULT_VERDICT_RUNS
            } else {
                1
            }),
    };
    select_benchmarks(&campaign, &options)?;
    if let Some(device) = args.device {
        device.ensure_compiled()?;
    }
    configure_threads(
        args.threads
            .unwrap_or(campaign.file.settings().threads)
            .max(1),
    );
    // A missing baseline fails now, not after an hour of benchmarks.
    let baseline = args
        .baseline
        .as_deref()
        .map(|name| load_baseline(&layout, name, args.day))
        .transpose()?;
    let interrupt = install_interrupt_handler()?;
    if options_have_no_benchmarks(&campaign, &options) {
        run_day_steps(&campaign, &layout, args)?;
        return Ok(super::exit::OK);
    }

    let mut progress = console_progress();
    let day_started = chrono::Utc::now();
    let mut write_failures = Vec::new();
    let jsonl_path = layout.ci_file("results.jsonl");
    let mut jsonl = std::fs::File::create(&jsonl_path).map_err(|source| OutputError::Write {
        path: jsonl_path.clone(),
        source,
    })?;
    let mut report = run_day(
        &campaign,
        &options,
        &interrupt,
        progress.as_mut(),
        &mut |result| {
            let path = layout.metrics_path(args.day, &day_started, result);
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
    )?;
    report.warnings.extend(write_failures);
    // The machine's measured limits, when `campaign calibrate` has run here.
    report.environment.calibration = std::fs::read(layout.calibration())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let path = layout.write_report(&report, &JsonExporter)?;

    let table = render_summary_table(&report);
    if args.json {
        eprintln!("{table}\nreport: {}", path.display());
        let json =
            serde_json::to_string_pretty(&report).map_err(crate::report::OutputError::from)?;
        println!("{json}");
    } else {
        println!("{table}\nreport: {}", path.display());
    }
    print_warnings(&report);
    let mut code = day_exit_code(&report.summary, report.interrupted);
    write_atomically(
        &layout.ci_file("results.csv"),
        render_csv(&report).as_bytes(),
    )?;
    if !report.interrupted {
        append_history(&layout, &report, &path)?;
    }

    let comparison = match &baseline {
        Some((name, base)) if !report.interrupted => {
            let mut comparison =
                compare_with_rerun(&campaign, &options, &interrupt, &report, base, name, args)?;
            comparison.current = path.display().to_string();
            say(args, &render_comparison_table(&comparison));
            write_json(&layout.ci_file("comparison.json"), &comparison)?;
            if comparison.regressions().next().is_some() && !comparison.advisory && code == exit::OK
            {
                code = exit::TARGET_MISSED;
            }
            Some(comparison)
        }
        _ => None,
    };
    write_atomically(
        &layout.ci_file("junit.xml"),
        render_junit(&report, comparison.as_ref()).as_bytes(),
    )?;
    write_atomically(
        &layout.ci_file("summary.md"),
        render_summary_markdown(&report, comparison.as_ref()).as_bytes(),
    )?;
    let html = render_html(
        &report,
        comparison.as_ref(),
        &OutputLayout::flame_graph_href,
    );
    let html_path = layout.write_html(args.day, &html)?;
    say(args, &format!("html: {}", html_path.display()));
    if let Some(name) = &args.save_baseline {
        if report.interrupted {
            eprintln!("warning: not saved as baseline {name}: the run was interrupted");
        } else {
            let target = layout.baseline(name, args.day);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|source| OutputError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            write_json(&target, &report)?;
            say(args, &format!("baseline {name}: {}", target.display()));
        }
    }
    if report.interrupted {
        return Ok(code);
    }
    run_day_steps(&campaign, &layout, args)?;
    if args.advisory && code == exit::TARGET_MISSED {
        eprintln!("advisory run: exit 0 instead of 3");
        code = exit::OK;
    }
    Ok(code)
}

/// One line per finished run in the machine's append-only history.
fn append_history(
    layout: &OutputLayout,
    report: &DailyReport,
    report_path: &Path,
) -> Result<(), CommandError> {
    let path = layout.history(&report.environment.machine_key(), report.day);
    let write_err = |source| OutputError::Write {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let entry = HistoryEntry::from_report(report, &report_path.display().to_string());
    let line = serde_json::to_string(&entry).map_err(OutputError::from)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
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
            "baseline {name:?} has no report for day {day} ({} is missing)\n  help: create it with `campaign run --day {day} --runs 5 --save-baseline {name}`",
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
    interrupt: &crate::runner::CancelFlag,
    report: &DailyReport,
    baseline: &DailyReport,
    name: &str,
    args: &RunArgs,
) -> Result<Comparison, CommandError> {
    let settings = compare_settings(campaign, args, report.settings.seed);
    let mut comparison = compare_reports(baseline, report, name, "this run", &settings);
    let suspects: Vec<String> = comparison
        .regressions()
        .filter_map(|c| {
            report
                .results
                .iter()
                .find(|r| r.benchmark_name == c.case)
                .map(|r| r.benchmark.clone())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
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
            all: false,
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
    for change in comparison
        .changes
        .iter_mut()
        .filter(|c| c.state == ChangeState::Regressed)
    {
        let confirmed = second.changes.iter().any(|x| {
            x.case == change.case && x.metric == change.metric && x.state == ChangeState::Regressed
        });
        if confirmed {
            change.reason.push_str("; confirmed by a same-night re-run");
        } else {
            change.state = ChangeState::Inconclusive;
            change
                .reason
                .push_str("; did not persist in a same-night re-run");
        }
    }
    comparison.counts.clear();
    for c in &comparison.changes {
        *comparison.counts.entry(c.state).or_default() += 1;
    }
    Ok(comparison)
}

/// The threshold from --threshold-pct, else the default; per-benchmark
/// overrides from the campaign's `regression_threshold_pct`.
fn compare_settings(campaign: &Campaign, args: &RunArgs, seed: u64) -> CompareSettings {
    let overrides = campaign
        .file
        .days
        .iter()
        .flat_map(|d| &d.get_ref().benchmarks)
        .filter_map(|b| {
            let b = b.get_ref();
            b.regression_threshold_pct
                .map(|t| (b.name.get_ref().clone(), t))
        })
        .collect();
    CompareSettings {
        threshold_pct: args.threshold_pct.unwrap_or(DEFAULT_THRESHOLD_PCT),
        overrides,
        bootstrap_seed: seed,
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

/// Loads a campaign and prepares its results folder (`--out`, else the
/// campaign's output_dir, else `results/`).
pub fn open_campaign(
    path: &Path,
    out: Option<&Path>,
) -> Result<(Campaign, OutputLayout), CommandError> {
    let campaign = load_campaign(path)?;
    let out = out
        .map(Path::to_path_buf)
        .or_else(|| campaign.file.output_dir.clone())
        .unwrap_or_else(|| PathBuf::from("results"));
    let layout = OutputLayout::create(&out, &campaign.slug())?;
    Ok((campaign, layout))
}

/// The remedy catalog next to the campaign file.
pub fn default_remedies(campaign: &Campaign) -> PathBuf {
    campaign
        .path
        .parent()
        .unwrap_or(Path::new("."))
        .join("remedies.toml")
}

/// The day's `after` steps, in order.
fn run_day_steps(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
) -> Result<(), CommandError> {
    let day = campaign.day(args.day)?;
    for step in &day.after {
        match step {
            DayStep::Calibrate => {
                let (calibration, path) = run_calibration(campaign, layout, args.quick)?;
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
                let (analysis, path) =
                    run_analysis(campaign, layout, &days, &default_remedies(campaign))?;
                say(
                    args,
                    &format!(
                        "{}\nanalysis: {}",
                        render_bottleneck_table(&analysis),
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
fn print_warnings(report: &crate::report::DailyReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for result in &report.results {
        for warning in &result.warnings {
            eprintln!("warning: {}: {warning}", result.benchmark_name);
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
