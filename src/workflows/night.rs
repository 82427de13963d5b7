//! `campaign run`'s night: measuring the day (in this process, in
//! separate runs, or interleaved with another build), writing its report
//! and artifacts, comparing it with a baseline or the machine's earlier
//! nights, storing it, saving a baseline, the day's `after` steps and
//! `--bisect-on-regression`. What it shows between its steps goes to a
//! [`NightOutput`] the command supplies.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{
    BisectArgs, CommandError, ExperimentArgs, day_exit_code, exit, open_toggled_campaign,
    run_analysis, run_bisect, run_calibration, run_experiments, run_roadmap,
};
use crate::analysis::{
    CompareSettings, Comparison, DEFAULT_THRESHOLD_PCT, HistoryEntry, NightNoise, NightOutcome,
    NightPlan, NightRecord, NightRequest, PlanRefusal, compare_paired, judge_night,
    label_persistence, night_control, paired_series, plan_night,
};
use crate::benchmarks::planned_comparisons;
use crate::campaign::bounds::Threads;
use crate::campaign::{Benchmark, Campaign, DayStep, Toggle};
use crate::components::inference::DeviceSpec;
use crate::model::{BenchmarkResult, DailyReport};
use crate::output::{OutputError, OutputLayout};
use crate::report::{
    DayArtifacts, Exporter, HtmlPage, JsonFile, JsonReport, render_bottleneck_table,
    render_calibration, render_comparison_table, render_summary_table, write_day_artifacts,
    write_rendered,
};
use crate::runner::{
    Arm, ArmLabels, CancelFlag, ChildCommand, LostRunCost, ProfileOptions, ProfileSelection,
    RunOptions, SelectedBenchmark, Sitting, SittingError, configure_threads, console_progress,
    install_interrupt_handler, run_day, select_benchmarks,
};
use crate::store::HistoryFile;

/// Where a night's output goes. The night hands it over at the points it
/// reaches them, between its steps: what it measured before it compares
/// (a night killed later has shown that), then the comparison, the html
/// page, a saved baseline, each `after` step's result. The command prints
/// it; the workflow only chooses when. Progress, warnings and errors of
/// the steps go to stderr from the workflow, as in the other workflows.
pub trait NightOutput {
    /// The measured day, once its report is on disk: its summary table,
    /// the report's path and the report file's text (`--json` prints it).
    fn measured(&self, table: &str, report_path: &Path, json: &str);
    /// A thread child's report, the report file's text, for its parent to
    /// read: the child prints nothing else.
    fn child_report(&self, json: &str);
    /// The day's warnings and each result's, after the measured day.
    fn warnings(&self, report: &DailyReport);
    /// Human-readable results: the comparison table, the html page, a
    /// saved baseline, an `after` step's result.
    fn say(&self, text: &str);
    /// `--bisect-on-regression`'s finished bisect: its text and the path
    /// of its Markdown file.
    fn bisected(&self, text: &str, markdown: &Path);
}

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
    /// Where a child run writes its profiles: its parent's folders.
    pub raw_profiles_dir: Option<PathBuf>,
    pub flame_graphs_dir: Option<PathBuf>,
    /// `--store`: where finished nights are written.
    pub store: Option<String>,
    /// `--bisect-on-regression GOOD`: bisect a confirmed regression from
    /// this revision to HEAD.
    pub bisect_on_regression: Option<String>,
    /// A fleet shard's class of machine (`campaign fleet run`).
    pub machine_class: Option<String>,
    /// The fleet shard this night runs as: its stored night replaces the
    /// shard's earlier one.
    pub shard: Option<crate::store::ShardMark>,
}

impl RunArgs {
    /// A plain run of `day` of `campaign`: every option at its default.
    pub fn new(campaign: PathBuf, day: u32) -> Self {
        Self {
            campaign,
            day,
            out: None,
            quick: false,
            only: Vec::new(),
            json: false,
            device: None,
            threads: None,
            profile: false,
            profile_hz: None,
            runs: None,
            save_baseline: None,
            baseline: None,
            against_bin: None,
            advisory: false,
            threshold_pct: None,
            thread_child: false,
            no_profile: false,
            toggle: None,
            measure_only: false,
            raw_profiles_dir: None,
            flame_graphs_dir: None,
            store: None,
            bisect_on_regression: None,
            machine_class: None,
            shard: None,
        }
    }

    fn makes_verdicts(&self) -> bool {
        self.baseline.is_some() || self.save_baseline.is_some() || self.against_bin.is_some()
    }
}

/// `campaign run`'s night: returns the exit status after the report is
/// written; what it shows goes to `out` as the night reaches it.
pub fn run_night(args: &RunArgs, out: &dyn NightOutput) -> Result<u8, CommandError> {
    let started = std::time::SystemTime::now();
    // A mistyped --store is a usage error before measuring, not after.
    if let Some(store) = &args.store {
        crate::store::StoreLocation::parse(store)?;
    }
    let (campaign, layout) =
        open_toggled_campaign(&args.campaign, args.out.as_deref(), args.toggle.as_ref())?;
    // `--store`, else the campaign's `[store]`, checked before measuring too.
    let store = match &args.store {
        Some(store) => Some(store.clone()),
        None => campaign.store()?,
    };
    if let Some(store) = &store {
        crate::store::StoreLocation::parse(store)?;
    }
    let options = RunOptions {
        day: args.day,
        quick: args.quick,
        only: args.only.clone(),
        settings: campaign
            .settings
            .clone()
            .overridden(args.threads, args.device),
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
            raw_dir: args
                .raw_profiles_dir
                .clone()
                .unwrap_or_else(|| layout.raw_profiles()),
            flame_dir: args
                .flame_graphs_dir
                .clone()
                .unwrap_or_else(|| layout.flame_graphs()),
        },
        run_id: OutputLayout::run_id(&chrono::Utc::now()),
        thread_child: args.thread_child,
    };
    let selected = select_benchmarks(&campaign, &options)?;
    if let Some(device) = args.device {
        device.ensure_compiled()?;
    }
    configure_threads(options.settings.threads.usize());
    // A missing baseline fails now, not after an hour of benchmarks.
    let baseline = args
        .baseline
        .as_deref()
        .map(|name| load_baseline(&layout, name, args.day))
        .transpose()?;
    let plan = plan_runs(&selected, args, baseline.as_ref())?;
    if let Some(plan) = &plan {
        eprintln!("verdict design: {}", plan.design.describe());
    }
    let runs = plan
        .as_ref()
        .map_or(args.runs.unwrap_or(1) as usize, |p| p.runs);
    let interrupt = install_interrupt_handler()?;
    if options_have_no_benchmarks(&campaign, &options) {
        run_day_steps(&campaign, &layout, args, &options, &interrupt, out)?;
        return Ok(exit::OK);
    }
    let night = Night {
        campaign: &campaign,
        layout: &layout,
        args,
        options: &options,
        interrupt: &interrupt,
        store: store.as_deref(),
        out,
    };
    let code = if let Some(other) = &args.against_bin {
        night.interleaved(other, runs)?
    } else if runs > 1 {
        night.separate_runs(runs, baseline.as_ref())?
    } else {
        night.in_this_process()?
    };
    // After any night that confirmed a regression (an advisory one too);
    // a missed target alone is no regression.
    if !interrupt.is_cancelled()
        && let Some(good) = &args.bisect_on_regression
    {
        bisect_the_regression(&campaign, &layout, args, good, started, &interrupt, out);
    }
    Ok(code)
}

/// `--bisect-on-regression GOOD`: the night's confirmed regressions,
/// bisected from GOOD to the checkout's HEAD on their benchmarks alone. A
/// bisect that cannot run is said, and the night keeps its exit status.
fn bisect_the_regression(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
    good: &str,
    started: std::time::SystemTime,
    interrupt: &CancelFlag,
    out: &dyn NightOutput,
) {
    let path = layout.ci_file("comparison.json");
    // This night's comparison only: an older file is another night's.
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= started);
    let comparison: Option<Comparison> = std::fs::read(&path)
        .ok()
        .filter(|_| fresh)
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(comparison) = comparison.filter(|c| c.regressions().next().is_some()) else {
        eprintln!("no bisect: the night confirmed no regression");
        return;
    };
    let names: Vec<String> = campaign
        .day(args.day)
        .map(|d| d.benchmarks.iter().map(|b| b.name.clone()).collect())
        .unwrap_or_default();
    let mut only: Vec<String> = comparison
        .regressions()
        .filter_map(|c| {
            let name = c.case.split('[').next().unwrap_or(&c.case);
            names.iter().find(|n| n.as_str() == name).cloned()
        })
        .collect();
    only.sort();
    only.dedup();
    // Follow the largest regression the night confirmed.
    let metric = comparison
        .regressions()
        .filter_map(|c| {
            let r = c.ratio?;
            Some((c, if c.higher_is_better { 1.0 / r } else { r }))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| format!("{} {}", c.case, c.metric));
    eprintln!(
        "bisecting the regression from {good} to HEAD ({})",
        metric.as_deref().unwrap_or("the largest regression")
    );
    let bisect = BisectArgs {
        campaign: args.campaign.clone(),
        out: args.out.clone(),
        day: args.day,
        good: good.to_string(),
        bad: "HEAD".into(),
        repo: None,
        build: None,
        binary: None,
        only,
        metric,
        quick: args.quick,
        threads: args.threads,
        campaign_from_each_commit: false,
        threshold_pct: args.threshold_pct,
        json: false,
    };
    let written = run_bisect(campaign, layout, &bisect, interrupt)
        .and_then(|report| Ok(crate::report::write_bisect(layout, &report)?));
    match written {
        Ok(written) => out.bisected(&written.text, &written.markdown_path),
        Err(e) => eprintln!("warning: the bisect did not run: {e}"),
    }
}

/// One `campaign run` and what every step of it needs.
struct Night<'a> {
    campaign: &'a Campaign,
    layout: &'a OutputLayout,
    args: &'a RunArgs,
    options: &'a RunOptions,
    interrupt: &'a CancelFlag,
    /// The results store the night is written to (`None`: the results
    /// folder's).
    store: Option<&'a str>,
    out: &'a dyn NightOutput,
}

impl Night<'_> {
    /// One run in this process, each result written as it finishes.
    fn in_this_process(&self) -> Result<u8, CommandError> {
        let (layout, options) = (self.layout, self.options);
        let benchmarks: Vec<SelectedBenchmark<'_>> = select_benchmarks(self.campaign, options)?
            .into_iter()
            .map(SelectedBenchmark::of)
            .collect();
        let mut progress = console_progress();
        let mut write_failures = Vec::new();
        // Streamed for CI to tail under a name that says it is incomplete;
        // renamed once the day is over, so a crash never leaves a
        // `results.jsonl` that looks whole. The run id keeps two runs
        // started together into one folder from writing into each other's
        // stream.
        let jsonl_path = layout.ci_file(&format!("results.jsonl.{}.partial", options.run_id));
        let mut jsonl =
            std::fs::File::create(&jsonl_path).map_err(|source| OutputError::Write {
                path: jsonl_path.clone(),
                source,
            })?;
        let measured = run_day(
            self.campaign,
            &benchmarks,
            options,
            self.interrupt,
            progress.as_mut(),
            &mut |result| {
                if let Err(e) = write_metrics_file(layout, self.args.day, &options.run_id, result) {
                    write_failures.push(e);
                }
                // One line per result as soon as it exists, for CI to tail.
                let line = serde_json::to_string(result).map_err(|e| e.to_string());
                if let Err(e) = line.and_then(|l| writeln!(jsonl, "{l}").map_err(|e| e.to_string()))
                {
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
        self.finish(report, |_, _| Ok(None))
    }

    /// `runs` separate runs of the day, each a child process, pooled into
    /// one report; against a baseline, judged with a confirming re-run
    /// that is separate processes too.
    fn separate_runs(
        &self,
        runs: usize,
        baseline: Option<&(String, DailyReport)>,
    ) -> Result<u8, CommandError> {
        let report = self.measure_in_children(&self.args.only, runs, true)?;
        for result in &report.results {
            if let Err(e) = write_metrics_file(self.layout, self.args.day, &report.run_id, result) {
                eprintln!("error: {e}");
            }
        }
        self.finish(report, |report, history| {
            let Some((name, base)) = baseline.filter(|_| !report.interrupted) else {
                return Ok(None);
            };
            let night = night_noise(history);
            let settings = compare_settings(self.campaign, self.args);
            Ok(Some(judge_night(
                base,
                report,
                (name, "this run"),
                &settings,
                &night,
                |suspects| {
                    eprintln!(
                        "re-running {} to confirm the regression (a verdict needs it twice): {runs} more separate runs",
                        suspects.join(", ")
                    );
                    match self.measure_in_children(suspects, runs, false) {
                        Ok(again) if !again.interrupted => Some(again),
                        Ok(_) => None,
                        Err(e) => {
                            eprintln!("warning: the confirming re-run did not run: {e}");
                            None
                        }
                    }
                },
            )))
        })
    }

    /// The day's benchmarks named in `only` (all when empty), `runs` times,
    /// each run a child `campaign run --runs 1` after an untimed warm-up
    /// child; the first timed run takes the profiles when `profiled`.
    fn measure_in_children(
        &self,
        only: &[String],
        runs: usize,
        profiled: bool,
    ) -> Result<DailyReport, CommandError> {
        let (args, layout) = (self.args, self.layout);
        let root = layout
            .scratch()
            .join(format!("runs_{}", self.options.run_id));
        let sitting =
            Sitting::repeated(runs, root).map_err(|e| CommandError::Usage(e.to_string()))?;
        let outcome = sitting.run(self.interrupt, |turn| {
            let slot = turn.slot();
            let mut child = sitting_child(args, only, turn.folder(), layout)?;
            if profiled && !slot.warmup && slot.index == 0 {
                self.profile_into(&mut child);
            } else {
                child.no_profile = true;
            }
            turn.run(child).map_err(refused)
        })?;
        let lost = outcome.lost(Arm::Candidate);
        let Some(mut report) = DailyReport::pooled(&outcome.arm(Arm::Candidate), &lost) else {
            return Err(CommandError::Interleave(format!(
                "no separate run produced a report{}",
                lost.first()
                    .map_or(String::new(), |(_, why)| format!(": {why}"))
            )));
        };
        report.run_id = self.options.run_id.clone();
        report.interrupted |= self.interrupt.is_cancelled();
        sitting.mark(&mut report);
        report.warnings.extend(sitting.warnings(&outcome));
        Ok(report)
    }

    /// The profiling flags of the run that takes the night's profiles:
    /// the user's choice, and this run's folders for the files.
    fn profile_into(&self, child: &mut ChildCommand) {
        child.profile = self.args.profile;
        child.no_profile = self.args.no_profile;
        child.profile_hz = self.args.profile_hz;
        child.raw_profiles_dir = Some(self.options.profile.raw_dir.clone());
        child.flame_graphs_dir = Some(self.options.profile.flame_dir.clone());
    }

    /// `--against-bin`: this build and another run the day alternately as
    /// child processes in a seeded ABBA order after a warm-up run of each;
    /// the verdicts come from the pairs, pair by pair.
    fn interleaved(&self, other: &Path, pairs: usize) -> Result<u8, CommandError> {
        let (args, layout) = (self.args, self.layout);
        if !other.is_file() {
            return Err(CommandError::AgainstBin(format!(
                "--against-bin {}: no such program\n  help: pass the path of another build of campaign, e.g. target/release/campaign from another checkout",
                other.display()
            )));
        }
        let root = layout
            .scratch()
            .join(format!("interleaved_{}", self.options.run_id));
        let labels = ArmLabels {
            names: ["the other build", "this build"],
            programs_named: true,
            indent: "",
            timed: "interleaved run",
            lost: LostRunCost::Alone,
        };
        let sitting = Sitting::interleaved(pairs, root, labels)
            .map_err(|e| CommandError::AgainstBin(e.to_string()))?
            .against(other.to_path_buf());
        let outcome = sitting.run(self.interrupt, |turn| {
            let child = sitting_child(args, &args.only, turn.folder(), layout)?;
            turn.run(child).map_err(refused)
        })?;
        let pooled = |arm: Arm| DailyReport::pooled(&outcome.arm(arm), &outcome.lost(arm));
        let (Some(mut report), Some(other_report)) =
            (pooled(Arm::Candidate), pooled(Arm::Reference))
        else {
            return Err(CommandError::Interleave(format!(
                "no run of {} produced a report; nothing to compare",
                if outcome.arm(Arm::Reference).is_empty() {
                    "the other build"
                } else {
                    "this build"
                }
            )));
        };
        report.run_id = self.options.run_id.clone();
        report.interrupted |= self.interrupt.is_cancelled();
        sitting.mark(&mut report);
        report.settings.against_bin = Some(other.display().to_string());
        report.warnings.extend(sitting.warnings(&outcome));
        // A run of the other build that failed fails the night too.
        for failed in other_report.results.iter().flat_map(|r| {
            r.failed_runs.iter().map(move |f| {
                format!(
                    "{} (the other build, run {}): {}",
                    r.case_id,
                    f.slot + 1,
                    f.reason
                )
            })
        }) {
            report.warnings.push(failed);
        }
        report.summary.failed_runs += other_report.summary.failed_runs;
        let series = paired_series(&outcome.pairs());
        let settings = compare_settings(self.campaign, args);
        let comparison = compare_paired(
            &series,
            &other_report,
            &report,
            &format!("{} (interleaved)", other.display()),
            "this build",
            &settings,
        );
        self.finish(report, |_, _| Ok(Some(comparison)))
    }

    /// Writes a measured day's report and artifacts, compares it (after
    /// the report is safe on disk, with the machine's history), records
    /// the night in the history, and runs the day's `after` steps;
    /// returns the exit status.
    fn finish(
        &self,
        mut report: DailyReport,
        compare: impl FnOnce(&DailyReport, &[HistoryEntry]) -> Result<Option<Comparison>, CommandError>,
    ) -> Result<u8, CommandError> {
        let (campaign, layout, args) = (self.campaign, self.layout, self.args);
        // Analyses that belong in the day report are made once it is measured.
        report.scaling = crate::analysis::scaling_curves(&report.results);
        report.parity = crate::analysis::served_parity(&report.results);
        report.peers = crate::analysis::peer_comparisons(&report.results);
        // Which weights the night measured, beside the machine it ran on.
        report.environment.model_files = crate::model::model_files(&report.results);
        report.environment.machine_class = args.machine_class.clone();
        // The machine's measured limits, when `campaign calibrate` has run here.
        report.environment.calibration = std::fs::read(layout.calibration())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        // The report first: without it nothing of the night is kept.
        let json = JsonReport::text(&report)?;
        let path = JsonReport.path(layout, &report);
        write_rendered(&path, json.as_bytes())?;
        // From here on the report is what the file holds, and its copies
        // (stdout, a baseline) are that file's bytes.
        let report = report;

        let table = render_summary_table(&report);
        if args.thread_child {
            // The parent prints these results in its own table; this
            // report lives in a working folder that is removed.
            self.out.child_report(&json);
            return Ok(day_exit_code(&report.summary, report.interrupted));
        }
        self.out.measured(&table, &path, &json);
        self.out.warnings(&report);
        let mut code = day_exit_code(&report.summary, report.interrupted);

        let history_file = HistoryFile::of(layout, &report.environment.machine_key(), report.day);
        // An experiment's runs are judged by the experiment, not against
        // the nights: they read and write no store.
        let history = if args.measure_only {
            history_file.read()?
        } else {
            crate::store::earlier_nights(self.store, layout, &report)?
        };
        let mut comparison = compare(&report, &history)?;
        if let Some(comparison) = &mut comparison {
            comparison.current = path.display().to_string();
            label_persistence(comparison, &history);
            self.out.say(&render_comparison_table(comparison));
            JsonFile::write(&layout.ci_file("comparison.json"), comparison)?;
            if code == exit::OK {
                code = match comparison.outcome {
                    NightOutcome::Regression => exit::REGRESSION,
                    NightOutcome::TooNoisy => exit::TOO_NOISY,
                    NightOutcome::Pass => exit::OK,
                };
            }
        }
        if self.interrupt.is_cancelled() && !report.interrupted {
            // Ctrl-C during the confirming re-run: the night's runs are
            // whole, its verdict is not.
            eprintln!("interrupted during the confirming re-run: its regressions stay unconfirmed");
            if code == exit::OK || code == exit::REGRESSION || code == exit::TOO_NOISY {
                code = exit::INTERRUPTED;
            }
        }
        let mut night_entry = None;
        if !report.interrupted {
            let mut entry = HistoryEntry::from_report(&report, &path.display().to_string());
            if let Some(c) = &comparison {
                entry = entry.with_comparison(c);
            }
            history_file.append(&entry)?;
            night_entry = Some(entry);
        }
        let curves = crate::analysis::day_curves(&report);
        let written = write_day_artifacts(
            layout,
            DayArtifacts {
                report: &report,
                comparison: comparison.as_ref(),
                curves: &curves,
            },
        );
        if let Some((_, html)) = written.files.iter().find(|(f, _)| *f == HtmlPage.format()) {
            self.out.say(&format!("html: {}", html.display()));
        }
        let mut failures = written.failures;
        if let Err(e) = crate::report::write_campaign_index(layout, &report.campaign.name) {
            failures.push(format!("campaign index not written: {e}"));
        }
        // Last, after the report, the history line and the CI files: a
        // store that cannot be reached loses none of them, and says so.
        if let Some(entry) = night_entry.filter(|_| !args.measure_only)
            && let Err(e) = crate::store::store_night(
                self.store,
                layout,
                &report,
                comparison.as_ref(),
                entry,
                args.shard.as_ref(),
            )
        {
            failures.push(format!("the night was not stored: {e}"));
        }
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        if !failures.is_empty() && code == exit::OK {
            // The measurements are safe in the report; the night's output is not whole.
            code = exit::USAGE;
        }
        if let Some(name) = &args.save_baseline {
            let settings = compare_settings(campaign, args);
            save_baseline(layout, args, &report, &json, name, &settings, self.out)?;
        }
        if report.interrupted
            || self.interrupt.is_cancelled()
            || args.thread_child
            || args.measure_only
        {
            return Ok(code);
        }
        run_day_steps(
            campaign,
            layout,
            args,
            self.options,
            self.interrupt,
            self.out,
        )?;
        if args.advisory && (code == exit::REGRESSION || code == exit::TOO_NOISY) {
            eprintln!("advisory run: exit 0 instead of {code}");
            code = exit::OK;
        }
        Ok(code)
    }
}

/// A child that refused the day stops the night, with exit 2 and the
/// program named, whichever build it was.
fn refused(e: SittingError) -> CommandError {
    CommandError::AgainstBin(e.to_string())
}

/// Each result's metrics file.
fn write_metrics_file(
    layout: &OutputLayout,
    day: u32,
    run_id: &str,
    result: &BenchmarkResult,
) -> Result<(), String> {
    JsonFile::write(&layout.metrics_path(day, run_id, result), result).map_err(|e| e.to_string())
}

/// The night-to-night noise the history of this machine gives.
fn night_noise(history: &[HistoryEntry]) -> NightNoise {
    let nights: Vec<NightRecord> = history
        .iter()
        .filter_map(HistoryEntry::night_record)
        .collect();
    NightNoise::estimate(&nights)
}

/// Saves tonight as baseline `name`, unless its runs drifted (the A/A
/// control fired) and a baseline from a steadier night already exists: a
/// drifting baseline would make every later night look changed. `json` is
/// the report's file ([`JsonReport::text`]), which the baseline copies.
fn save_baseline(
    layout: &OutputLayout,
    args: &RunArgs,
    report: &DailyReport,
    json: &str,
    name: &str,
    settings: &CompareSettings,
    out: &dyn NightOutput,
) -> Result<(), CommandError> {
    if report.interrupted {
        eprintln!("warning: not saved as baseline {name}: the run was interrupted");
        return Ok(());
    }
    let target = layout.baseline(name, args.day);
    let control = night_control(report, settings);
    if control.fired {
        let drift = control
            .splits
            .iter()
            .filter(|s| s.fired)
            .map(|s| format!("{} ×{:.3}", s.split.name(), s.drift_ratio.unwrap_or(1.0)))
            .collect::<Vec<_>>()
            .join(", ");
        if target.exists() {
            eprintln!(
                "warning: not saved as baseline {name}: tonight's runs drifted ({drift}); the previous baseline {} stays\n  help: save it on a quieter night",
                target.display()
            );
            return Ok(());
        }
        eprintln!(
            "warning: baseline {name} saved from a night whose runs drifted ({drift}); there was none to keep\n  help: save it again on a quieter night"
        );
    }
    // Baselines have always been written without the file's final
    // newline; their bytes stay as they were.
    write_rendered(&target, json.strip_suffix('\n').unwrap_or(json).as_bytes())?;
    out.say(&format!("baseline {name}: {}", target.display()));
    Ok(())
}

/// The night's plan when it makes verdicts ([`plan_night`]), checked
/// before anything is measured; a night that could never declare a
/// regression is refused with the count that could.
fn plan_runs(
    selected: &[&Benchmark],
    args: &RunArgs,
    baseline: Option<&(String, DailyReport)>,
) -> Result<Option<NightPlan>, CommandError> {
    if !args.makes_verdicts() {
        return Ok(None);
    }
    let planned = planned_comparisons(selected);
    let mut request = NightRequest {
        explicit_runs: args.runs.map(|r| r as usize),
        ..NightRequest::default()
    };
    if args.against_bin.is_some() {
        request.interleaved = Some(planned);
    }
    if let Some((name, base)) = baseline {
        let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
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
        request.baseline = Some((m, baseline_runs));
    }
    if args.save_baseline.is_some() {
        request.saves = Some(planned);
    }
    plan_night(&request).map_err(|refusal| refuse(&refusal, baseline.map(|(n, _)| n.as_str())))
}

/// A refused design in words, with the count or the baseline that would do.
fn refuse(refusal: &PlanRefusal, baseline: Option<&str>) -> CommandError {
    let advice = match (refusal.small_baseline, baseline) {
        (Some((runs, again)), Some(name)) => format!(
            "baseline {name:?} has only {runs} runs; re-record it with `--save-baseline {name}` (it chooses {again} runs)"
        ),
        _ => "select fewer benchmarks with --only".into(),
    };
    CommandError::Design(format!(
        "{}\n  help: {}",
        refusal.design.describe(),
        refusal.needed.map_or(advice, |n| format!(
            "--runs {n} would; or leave --runs out and the night chooses it"
        ))
    ))
}

/// One child of a sitting: the same day, one run, its report on stdout;
/// only flags every build of `campaign` understands.
fn sitting_child(
    args: &RunArgs,
    only: &[String],
    out: &Path,
    layout: &OutputLayout,
) -> Result<ChildCommand, CommandError> {
    Ok(ChildCommand {
        quick: args.quick,
        only: only.to_vec(),
        threads: args.threads.map(|t| t.get()),
        device: args.device,
        ..super::sitting_child(args.day, &args.campaign, out, layout)?
    })
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

/// The threshold from --threshold-pct, else the default; per-benchmark
/// overrides from the campaign's `regression_threshold_pct`.
fn compare_settings(campaign: &Campaign, args: &RunArgs) -> CompareSettings {
    CompareSettings {
        threshold_pct: args.threshold_pct.unwrap_or(DEFAULT_THRESHOLD_PCT),
        overrides: super::threshold_overrides(campaign),
    }
}

/// The day's `after` steps, in order.
fn run_day_steps(
    campaign: &Campaign,
    layout: &OutputLayout,
    args: &RunArgs,
    options: &RunOptions,
    interrupt: &CancelFlag,
    out: &dyn NightOutput,
) -> Result<(), CommandError> {
    let day = campaign.day(args.day)?;
    for step in &day.after {
        match step {
            DayStep::Calibrate => {
                let threads = options.settings.threads.usize();
                let (calibration, path) = run_calibration(campaign, layout, args.quick, threads)?;
                out.say(&format!(
                    "{}\ncalibration: {}",
                    render_calibration(&calibration),
                    path.display()
                ));
            }
            DayStep::Analyze => {
                let days = day
                    .analyze_days
                    .clone()
                    .unwrap_or_else(|| format!("1-{}", args.day));
                let (analysis, path) = run_analysis(campaign, layout, &days, None)?;
                out.say(&format!(
                    "{}\nanalysis: {}",
                    render_bottleneck_table(&analysis),
                    path.display()
                ));
            }
            DayStep::Experiments => {
                let options = ExperimentArgs {
                    campaign: args.campaign.clone(),
                    out: args.out.clone(),
                    quick: args.quick,
                    ..Default::default()
                };
                let (file, path, _) = run_experiments(campaign, layout, &options, interrupt)?;
                out.say(&format!(
                    "{}\nexperiments: {}",
                    crate::report::render_experiments(&file),
                    path.display()
                ));
            }
            DayStep::Roadmap => {
                let path = run_roadmap(layout)?;
                out.say(&format!("roadmap: {}", path.display()));
            }
        }
    }
    Ok(())
}

fn options_have_no_benchmarks(campaign: &Campaign, options: &RunOptions) -> bool {
    select_benchmarks(campaign, options).is_ok_and(|b| b.is_empty())
}
