//! Runs one day: each benchmark on its own worker thread, with its timeout,
//! Ctrl-C handling, and per-result callbacks so results can be written as
//! soon as they exist.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::execute::{CaseOutcome, WorkerEvent, in_compute_pool, run_worker, thread_name};
use super::profiling::{self, ProfileOptions};
use super::results::BenchmarkFrame;
use super::{CancelFlag, Progress, SilentProgress};
use crate::benchmarks::{BenchContext, ConfiguredBenchmark};
use crate::campaign::{Benchmark, Campaign, CampaignError, Settings};
use crate::model::Environment;
use crate::model::QUICK_FACTOR;
use crate::model::{
    BenchmarkResult, CampaignInfo, DailyReport, DaySummary, RunSettings, SCHEMA_VERSION, Status,
};
use crate::stats::ProvisionalRule;

/// After a timeout, how long a worker gets to reach its next iteration
/// boundary before the day moves on without it.
const ABANDON_GRACE: Duration = Duration::from_secs(10);

/// How often the day loop wakes to check Ctrl-C and the timeout.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub day: u32,
    pub quick: bool,
    pub only: Vec<String>,
    /// The campaign's settings with the command line's overrides, resolved
    /// once by the command: every step of the run reads its threads and
    /// device here.
    pub settings: Settings,
    pub model_cache_dir: std::path::PathBuf,
    pub scratch_dir: std::path::PathBuf,
    pub profile: ProfileOptions,
    /// This run's id, in the names of its report and profile files.
    pub run_id: String,
    /// A child started for the cases of one thread count: it runs them
    /// and starts no children of its own.
    pub thread_child: bool,
}

/// A benchmark the day runs: its campaign entry and its kind with the
/// params validation configured.
#[derive(Debug, Clone)]
pub struct SelectedBenchmark<'c> {
    pub spec: &'c Benchmark,
    pub configured: ConfiguredBenchmark,
}

impl<'c> SelectedBenchmark<'c> {
    /// `spec` with the kind and params its campaign's validation
    /// configured (see [`ConfiguredBenchmark::of`]).
    pub fn of(spec: &'c Benchmark) -> Self {
        Self {
            spec,
            configured: ConfiguredBenchmark::of(spec).clone(),
        }
    }
}

/// Picks the benchmarks of the day that `--only` selects.
pub fn select_benchmarks<'c>(
    campaign: &'c Campaign,
    opts: &RunOptions,
) -> Result<Vec<&'c Benchmark>, CampaignError> {
    let day = campaign.day(opts.day)?;
    let all: Vec<&Benchmark> = day.benchmarks.iter().collect();
    let names = || {
        all.iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if all.is_empty() && day.after.is_empty() {
        return Err(CampaignError::EmptyDay {
            path: campaign.path.clone(),
            day: opts.day,
            title: day.title.clone(),
        });
    }
    let unknown: Vec<&String> = opts
        .only
        .iter()
        .filter(|o| !all.iter().any(|b| b.name == **o))
        .collect();
    if !unknown.is_empty() {
        return Err(CampaignError::NoSuchBenchmark {
            path: campaign.path.clone(),
            day: opts.day,
            names: unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            available: names(),
        });
    }
    Ok(all
        .into_iter()
        .filter(|b| opts.only.is_empty() || opts.only.contains(&b.name))
        .collect())
}

/// Runs `benchmarks` (the day's that [`select_benchmarks`] picked, each
/// with its configured kind) and returns the day's report. Never fails
/// once started: failures are results.
pub fn run_day(
    campaign: &Campaign,
    benchmarks: &[SelectedBenchmark<'_>],
    opts: &RunOptions,
    interrupt: &CancelFlag,
    progress: &mut dyn Progress,
    on_result: &mut dyn FnMut(&BenchmarkResult),
) -> Result<DailyReport, CampaignError> {
    let day = campaign.day(opts.day)?;
    let settings = opts.settings.clone();
    let ctx = BenchContext::for_campaign(
        campaign,
        settings.clone(),
        opts.model_cache_dir.clone(),
        opts.scratch_dir.clone(),
    );
    let started_at = Utc::now();
    let mut results = Vec::new();
    let mut warnings = Vec::new();
    let mut profiles = Vec::new();
    for selected in benchmarks {
        let spec = selected.spec;
        if interrupt.is_cancelled() {
            let result = unmeasured(
                selected,
                opts.quick,
                Status::Interrupted,
                "not run: interrupted before it started".into(),
            );
            on_result(&result);
            results.push(result);
            continue;
        }
        let process_threads = settings.threads.usize();
        let (here, elsewhere) =
            super::threads::thread_plan(&selected.configured, process_threads, opts.thread_child);
        if !here {
            let (done, problems) = run_thread_children(
                campaign, opts, spec, &elsewhere, interrupt, progress, on_result,
            );
            results.extend(done);
            warnings.extend(problems);
            continue;
        }
        // A panic in the day loop itself (a bug) fails this benchmark, with
        // its message, and the day goes on.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_benchmark(
                selected,
                &ctx,
                opts.quick,
                interrupt,
                progress,
                &mut *on_result,
            )
        }));
        let (measured, abandoned) = match run {
            Ok(done) => done,
            Err(payload) => {
                let message = format!(
                    "the runner failed: {}",
                    crate::panics::describe(payload.as_ref())
                );
                let failed = unmeasured(selected, opts.quick, Status::Failed, message);
                on_result(&failed);
                (vec![failed], None)
            }
        };
        if let Some(message) = abandoned {
            warnings.push(message);
        }
        if opts.profile.selection.profiles(spec.profile) && !interrupt.is_cancelled() {
            let name = &spec.name;
            let hz = opts
                .profile
                .frequency_hz
                .or(spec.profile_hz.map(|hz| hz.get() as u32))
                .unwrap_or(crate::profile::DEFAULT_PROFILE_HZ);
            progress.note(&format!(
                "{name}: profiling pass at {hz} Hz (the results above come from the unprofiled pass)"
            ));
            match profiling::start(name, hz) {
                Ok(sampler) => {
                    if let Some(warning) = &sampler.warning {
                        progress.note(warning);
                        warnings.push(warning.clone());
                    }
                    let (profiled, abandoned) = run_silently(selected, &ctx, opts.quick, interrupt);
                    warnings.extend(abandoned);
                    profiles.push(profiling::finish(
                        sampler,
                        &profiling::ProfiledBenchmark {
                            benchmark: name,
                            day: opts.day,
                            run_id: &opts.run_id,
                            campaign: campaign.name(),
                        },
                        &opts.profile,
                        &measured,
                        &profiled,
                    ));
                }
                Err(e) => warnings.push(format!("{name}: not profiled: {e}")),
            }
        }
        results.extend(measured);
        let (done, problems) = run_thread_children(
            campaign, opts, spec, &elsewhere, interrupt, progress, on_result,
        );
        results.extend(done);
        warnings.extend(problems);
    }
    let environment = Environment::capture(
        settings.device.to_string(),
        settings.threads.usize(),
        settings.dtype.name().to_string(),
    );
    Ok(DailyReport {
        schema_version: SCHEMA_VERSION,
        run_id: opts.run_id.clone(),
        campaign: CampaignInfo {
            name: campaign.name().to_string(),
            description: campaign.description.clone(),
            file: campaign.path.display().to_string(),
        },
        day: opts.day,
        day_title: day.title.clone(),
        started_at,
        finished_at: Utc::now(),
        quick: opts.quick,
        interrupted: interrupt.is_cancelled(),
        environment,
        settings: RunSettings {
            threads: settings.threads.usize(),
            device: settings.device.to_string(),
            dtype: settings.dtype.name().to_string(),
            seed: settings.seed,
            max_raw_samples: settings.max_raw_samples.usize(),
            quick_factor: if opts.quick { QUICK_FACTOR } else { 1.0 },
            provisional_rule: ProvisionalRule::current(),
            only: opts.only.clone(),
            runs: 1,
            run_order_seed: 0,
            against_bin: None,
            separate_processes: false,
        },
        summary: DaySummary::of(&results),
        // Filled in by the analysis once the day is over.
        scaling: Vec::new(),
        parity: Vec::new(),
        peers: Vec::new(),
        profiles,
        results,
        warnings,
    })
}

fn child_settings(opts: &RunOptions) -> super::threads::ChildSettings<'_> {
    super::threads::ChildSettings {
        day: opts.day,
        quick: opts.quick,
        device: opts.settings.device,
        scratch_dir: &opts.scratch_dir,
        model_cache_dir: &opts.model_cache_dir,
    }
}

/// The cases of `spec` at each of `counts` threads, one child process per
/// count; their results, and a warning for each count that did not run.
fn run_thread_children(
    campaign: &Campaign,
    opts: &RunOptions,
    spec: &Benchmark,
    counts: &[usize],
    interrupt: &CancelFlag,
    progress: &mut dyn Progress,
    on_result: &mut dyn FnMut(&BenchmarkResult),
) -> (Vec<BenchmarkResult>, Vec<String>) {
    let (mut results, mut warnings) = (Vec::new(), Vec::new());
    for &threads in counts {
        if interrupt.is_cancelled() {
            break;
        }
        progress.note(&format!(
            "{}: the cases at {threads} thread(s) run in a child process",
            spec.name
        ));
        match super::threads::run_at_threads(
            campaign,
            &child_settings(opts),
            spec,
            threads,
            interrupt,
        ) {
            Ok(child_results) => {
                child_results.iter().for_each(&mut *on_result);
                results.extend(child_results);
            }
            Err(message) => warnings.push(message),
        }
    }
    (results, warnings)
}

/// The result of a benchmark with nothing measured: Ctrl-C stopped it
/// before it started, or the runner failed around it.
fn unmeasured(
    selected: &SelectedBenchmark<'_>,
    quick: bool,
    status: Status,
    message: String,
) -> BenchmarkResult {
    let spec = selected.spec;
    let plan = super::iteration_plan(spec, quick);
    let frame = BenchmarkFrame {
        name: &spec.name,
        kind: selected.configured.kind(),
        catalog: selected.configured.catalog(),
        targets: &spec.targets,
        plan: &plan,
        setup: Default::default(),
        context: serde_json::Value::Null,
        warnings: Vec::new(),
    };
    frame.unmeasured(None, status, message)
}

/// Runs one benchmark: the worker, the timeout, Ctrl-C and the results of
/// every case, measured or not; returns its results and, if its worker had
/// to be abandoned after a timeout, a warning for the day.
fn run_benchmark(
    selected: &SelectedBenchmark<'_>,
    ctx: &BenchContext,
    quick: bool,
    interrupt: &CancelFlag,
    progress: &mut dyn Progress,
    on_result: &mut dyn FnMut(&BenchmarkResult),
) -> (Vec<BenchmarkResult>, Option<String>) {
    let (spec, configured) = (selected.spec, &selected.configured);
    let name = spec.name.as_str();
    let kind = configured.kind();
    let plan = super::iteration_plan(spec, quick);
    progress.benchmark_started(name, kind.name());
    let mut frame = BenchmarkFrame {
        name,
        kind,
        catalog: configured.catalog(),
        targets: &spec.targets,
        plan: &plan,
        setup: Default::default(),
        context: serde_json::Value::Null,
        warnings: Vec::new(),
    };
    let mut emit = |result: BenchmarkResult,
                    results: &mut Vec<BenchmarkResult>,
                    progress: &mut dyn Progress| {
        progress.case_finished(&result);
        on_result(&result);
        results.push(result);
    };
    let mut results = Vec::new();

    let (events_tx, events) = mpsc::channel();
    let cancel = CancelFlag::new();
    let worker = {
        let (configured, ctx, plan, cancel) = (
            configured.clone(),
            ctx.clone(),
            plan.clone(),
            cancel.clone(),
        );
        let thread = thread_name(name);
        thread::Builder::new().name(thread.clone()).spawn(move || {
            in_compute_pool(&thread, || {
                run_worker(configured, ctx, plan, cancel, events_tx)
            })
        })
    };
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            let result =
                frame.unmeasured(None, Status::Failed, format!("cannot start a thread: {e}"));
            emit(result, &mut results, progress);
            return (results, None);
        }
    };

    let started = Instant::now();
    // The campaign bounds timeout_s to a week; anything else is a bug,
    // and a long wait is safer than a panic on the day loop.
    let timeout = Duration::try_from_secs_f64(plan.timeout_s).unwrap_or(Duration::MAX);
    let timeout_message = || {
        format!(
            "timed out after {:.1} s (timeout_s = {}); iterations completed before it are summarised",
            started.elapsed().as_secs_f64(),
            plan.timeout_s
        )
    };
    let mut cases: Vec<(String, serde_json::Value)> = Vec::new();
    let mut next_case = 0;
    let mut current: Option<(usize, CaseOutcome)> = None;
    let mut timed_out_at: Option<Instant> = None;
    let mut interrupted = false;
    let mut abandoned = None;
    loop {
        match events.recv_timeout(POLL) {
            Ok(WorkerEvent::Prepared {
                setup,
                context,
                cases: info,
                warnings,
                skipped,
            }) => {
                frame.setup = BenchmarkFrame::setup_values(&frame.catalog, &setup);
                frame.context = context;
                frame.warnings = warnings;
                cases = info;
                if let Some(reason) = skipped {
                    let result = frame.unmeasured(None, Status::Skipped, reason);
                    emit(result, &mut results, progress);
                }
            }
            Ok(WorkerEvent::PrepareFailed(error)) => {
                let result =
                    frame.unmeasured(None, Status::Failed, format!("preparing failed: {error}"));
                emit(result, &mut results, progress);
            }
            Ok(WorkerEvent::CaseStarted(index)) => {
                next_case = index + 1;
                if let Some((label, _)) = cases.get(index) {
                    progress.case_started(label, plan.warmup, plan.iterations);
                }
                current = Some((index, CaseOutcome::new()));
            }
            Ok(WorkerEvent::WarmupDone) => {
                if let Some((_, outcome)) = &mut current {
                    outcome.warmup_completed += 1;
                }
                progress.iteration_done();
            }
            Ok(WorkerEvent::Measured(observations)) => {
                if let Some((_, outcome)) = &mut current {
                    outcome.record(
                        &frame.catalog,
                        observations,
                        ctx.settings.max_raw_samples.usize(),
                    );
                }
                progress.iteration_done();
            }
            Ok(WorkerEvent::Concluded(conclusion)) => {
                if let Some((_, outcome)) = &mut current {
                    outcome.conclusion = Some(conclusion);
                }
            }
            Ok(WorkerEvent::CaseFinished(end)) => {
                if let Some((index, mut outcome)) = current.take() {
                    outcome.finish(end);
                    let timeout_error =
                        (timed_out_at.is_some() && outcome.cancelled).then(&timeout_message);
                    let (label, parameters) = &cases[index];
                    let result =
                        frame.measured(label, parameters, outcome, interrupted, timeout_error);
                    emit(result, &mut results, progress);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !interrupted && interrupt.is_cancelled() {
            interrupted = true;
            cancel.cancel();
        }
        if timed_out_at.is_none() && started.elapsed() > timeout {
            timed_out_at = Some(Instant::now());
            cancel.cancel();
            progress.note(&format!(
                "{name}: timeout_s = {} reached; stopping at the next iteration boundary",
                plan.timeout_s
            ));
        }
        if timed_out_at.is_some_and(|t| t.elapsed() > ABANDON_GRACE) {
            abandoned = Some(format!(
                "benchmark {name} did not stop within {} s of its timeout; its thread was left running and may slow the benchmarks after it",
                ABANDON_GRACE.as_secs()
            ));
            break;
        }
    }
    if abandoned.is_none() {
        // The channel closed, so the worker has returned or is returning.
        let _ = worker.join();
    }

    // The case in progress when the worker was abandoned keeps what it measured.
    if let Some((index, mut outcome)) = current.take() {
        outcome.elapsed = outcome.started.elapsed();
        let (label, parameters) = &cases[index];
        let result = frame.measured(
            label,
            parameters,
            outcome,
            interrupted,
            Some(timeout_message()),
        );
        emit(result, &mut results, progress);
    }
    // Cases that never started are listed, so the report shows what is missing.
    for (label, parameters) in cases.iter().skip(next_case) {
        let (status, error) = if timed_out_at.is_some() {
            (
                Status::Failed,
                format!(
                    "not run: the benchmark's timeout_s = {} ran out first",
                    plan.timeout_s
                ),
            )
        } else {
            (
                Status::Interrupted,
                "not run: interrupted before it started".to_string(),
            )
        };
        let result = frame.unmeasured(Some((label, parameters)), status, error);
        emit(result, &mut results, progress);
    }
    if results.is_empty() {
        let message = if timed_out_at.is_some() {
            timeout_message()
        } else if interrupted {
            "interrupted while preparing".to_string()
        } else {
            "the benchmark ended without reporting anything".to_string()
        };
        let status = if timed_out_at.is_none() && interrupted {
            Status::Interrupted
        } else {
            Status::Failed
        };
        let result = frame.unmeasured(None, status, message);
        emit(result, &mut results, progress);
    }
    (results, abandoned)
}

/// A pass whose results feed something else (a profile, run-level
/// values): no progress output and no result files.
fn run_silently(
    selected: &SelectedBenchmark<'_>,
    ctx: &BenchContext,
    quick: bool,
    interrupt: &CancelFlag,
) -> (Vec<BenchmarkResult>, Option<String>) {
    run_benchmark(
        selected,
        ctx,
        quick,
        interrupt,
        &mut SilentProgress,
        &mut |_| {},
    )
}

#[cfg(test)]
mod tests {
    //! The runner's timeout and Ctrl-C handling on a mock kind: no model,
    //! iterations of a known length, and a case that can be made to hang.
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::benchmarks::{
        BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models, Observations,
        ParamProblem, PreparedBenchmark,
    };

    #[derive(Debug, Clone, Deserialize)]
    struct MockParams {
        /// Each iteration sleeps this long.
        step_ms: u64,
        /// From this iteration on, an iteration never returns.
        #[serde(default)]
        hang_at: Option<u32>,
        /// Each iteration also records `stepms`, which the kind does not
        /// declare.
        #[serde(default)]
        misspelt: bool,
    }

    struct Mock;
    static MOCK: Mock = Mock;

    const STEP_MS: MetricDef = MetricDef::duration_ms("step_ms", "one sleep");
    /// Not in the mock's metrics: a kind can still record a constant it
    /// forgot to list, and the runner must refuse it.
    const STEPMS: MetricDef = MetricDef::duration_ms("stepms", "one sleep");

    impl Kind for Mock {
        type Params = MockParams;
        fn name(&self) -> &'static str {
            "mock"
        }
        fn description(&self) -> &'static str {
            "sleeps"
        }
        fn metrics(&self) -> &'static [MetricDef] {
            &[STEP_MS]
        }
        fn headline(&self) -> Headline {
            Headline {
                latency: Some(STEP_MS.name),
                throughput: None,
            }
        }
        fn planned_cases(&self, _: &MockParams) -> usize {
            2
        }
        fn memory(&self, _: &MockParams, _: &Models) -> Result<MemoryNeed, ParamProblem> {
            Ok(MemoryNeed::small())
        }
        fn prepare(
            &self,
            p: MockParams,
            _: &BenchContext,
        ) -> Result<PreparedBenchmark, BenchmarkError> {
            let case = |label: &str| -> Box<dyn BenchmarkCase> {
                Box::new(MockCase {
                    label: label.into(),
                    step: Duration::from_millis(p.step_ms),
                    hang_at: p.hang_at,
                    misspelt: p.misspelt,
                    done: 0,
                })
            };
            Ok(PreparedBenchmark::new(vec![case("first"), case("second")]))
        }
    }

    struct MockCase {
        label: String,
        step: Duration,
        hang_at: Option<u32>,
        misspelt: bool,
        done: u32,
    }

    impl BenchmarkCase for MockCase {
        fn label(&self) -> String {
            self.label.clone()
        }
        fn parameters(&self) -> serde_json::Value {
            serde_json::Value::Null
        }
        fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
            if self.hang_at.is_some_and(|at| self.done >= at) {
                // Deaf to cancellation, like a stuck system call.
                loop {
                    thread::sleep(Duration::from_secs(3600));
                }
            }
            thread::sleep(self.step);
            obs.duration(&STEP_MS, self.step);
            if self.misspelt {
                obs.duration(&STEPMS, self.step);
            }
            self.done += 1;
            Ok(())
        }
    }

    /// The kinds the runner's tests validate campaigns against: the mock
    /// alone.
    struct MockKinds;

    impl crate::campaign::KindCatalog for MockKinds {
        fn find(&self, name: &str) -> Option<&'static dyn crate::campaign::KindRules> {
            (name == "mock").then_some(&MOCK as &'static dyn crate::campaign::KindRules)
        }
        fn names(&self) -> Vec<&'static str> {
            vec!["mock"]
        }
    }

    /// A one-day campaign in `dir` whose benchmark `mock`, of the mock
    /// kind, has the given plan lines and params.
    fn mock_campaign(dir: &std::path::Path, plan: &str, params: &str) -> Campaign {
        let path = dir.join("c.toml");
        let text = format!(
            "name = \"m\"\n[[days]]\nnumber = 1\ntitle = \"mock\"\n[[days.benchmarks]]\nname = \"mock\"\nkind = \"mock\"\nwarmup = 0\n{plan}\n[days.benchmarks.params]\n{params}\n"
        );
        std::fs::write(&path, text).unwrap();
        crate::campaign::load_campaign(&path, &MockKinds).unwrap()
    }

    /// Runs the mock as benchmark `mock` of a one-day campaign with the
    /// given plan lines and params, Ctrl-C pressed after `interrupt_after`.
    fn run_mock(
        plan: &str,
        params: &str,
        interrupt_after: Option<Duration>,
    ) -> (Vec<BenchmarkResult>, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let campaign = mock_campaign(dir.path(), plan, params);
        let selected = SelectedBenchmark::of(&campaign.days[0].benchmarks[0]);
        let settings = campaign.settings.clone();
        let ctx = BenchContext {
            models: BTreeMap::new(),
            settings: settings.clone(),
            device: crate::components::inference::DeviceSpec::Cpu,
            model_cache_dir: dir.path().join("models"),
            scratch_dir: dir.path().join("scratch"),
            campaign_dir: dir.path().to_path_buf(),
        };
        let interrupt = CancelFlag::new();
        if let Some(after) = interrupt_after {
            let flag = interrupt.clone();
            thread::spawn(move || {
                thread::sleep(after);
                flag.cancel();
            });
        }
        run_benchmark(
            &selected,
            &ctx,
            false,
            &interrupt,
            &mut SilentProgress,
            &mut |_| {},
        )
    }

    #[test]
    fn a_day_runs_the_benchmarks_it_is_handed_with_their_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = mock_campaign(
            dir.path(),
            "iterations = 2\ntargets = [\"step_ms.p50 < 1e9\", \"step_ms.max<0\"]",
            "step_ms = 1",
        );
        // Handed the campaign's benchmark with another kind (the mock
        // with other params), the day runs that kind.
        let params: MockParams = toml::from_str("step_ms = 2").unwrap();
        let selected = [SelectedBenchmark {
            spec: &campaign.days[0].benchmarks[0],
            configured: ConfiguredBenchmark::new(&MOCK, params),
        }];
        let opts = RunOptions {
            day: 1,
            quick: false,
            only: Vec::new(),
            settings: campaign.settings.clone(),
            model_cache_dir: dir.path().join("models"),
            scratch_dir: dir.path().join("scratch"),
            profile: ProfileOptions {
                selection: crate::runner::ProfileSelection::Off,
                frequency_hz: None,
                raw_dir: dir.path().join("raw"),
                flame_dir: dir.path().join("flame"),
            },
            run_id: "test".into(),
            thread_child: false,
        };
        let mut seen = Vec::new();
        let report = run_day(
            &campaign,
            &selected,
            &opts,
            &CancelFlag::new(),
            &mut SilentProgress,
            &mut |r| seen.push(r.case_id.clone()),
        )
        .unwrap();
        assert_eq!(seen, ["mock[first]", "mock[second]"]);
        assert_eq!(report.results.len(), 2);
        for result in &report.results {
            assert_eq!(result.kind, "mock");
            assert_eq!(result.status, Status::Ok, "{:?}", result.error);
            assert_eq!(result.metrics["step_ms"].summary.count, 2);
            assert!(result.metrics["step_ms"].summary.min >= 2.0);
            // The campaign's targets, parsed once by validation, are
            // judged against what was measured.
            let verdicts: Vec<_> = result.targets.iter().map(|t| t.verdict).collect();
            assert_eq!(
                verdicts,
                [crate::model::Verdict::Met, crate::model::Verdict::Missed]
            );
            assert_eq!(result.targets[1].target, "step_ms.max < 0");
        }
        // Handed nothing, the day runs nothing.
        let report = run_day(
            &campaign,
            &[],
            &opts,
            &CancelFlag::new(),
            &mut SilentProgress,
            &mut |_| {},
        )
        .unwrap();
        assert!(report.results.is_empty());
    }

    #[test]
    fn a_timeout_stops_at_the_iteration_boundary_and_keeps_what_was_measured() {
        let (results, abandoned) =
            run_mock("iterations = 1000\ntimeout_s = 0.3", "step_ms = 20", None);
        assert!(abandoned.is_none());
        let [first, second] = &results[..] else {
            panic!("{} results", results.len());
        };
        assert_eq!(first.status, Status::Failed);
        assert!(first.error.as_deref().unwrap().contains("timed out"));
        let measured = first.metrics["step_ms"].summary.count;
        assert!(
            (3..1000).contains(&measured) && u64::from(first.iterations_completed) == measured,
            "{measured} iterations summarised"
        );
        assert_eq!(second.status, Status::Failed);
        assert!(second.error.as_deref().unwrap().contains("not run"));
    }

    #[test]
    fn ctrl_c_marks_the_case_interrupted_with_its_iterations_and_skips_the_rest() {
        let (results, _) = run_mock(
            "iterations = 1000",
            "step_ms = 20",
            Some(Duration::from_millis(300)),
        );
        let [first, second] = &results[..] else {
            panic!("{} results", results.len());
        };
        assert_eq!(first.status, Status::Interrupted);
        assert!(first.iterations_completed >= 3 && first.iterations_completed < 1000);
        assert_eq!(second.status, Status::Interrupted);
        assert_eq!(second.iterations_completed, 0);
    }

    #[test]
    fn a_metric_the_kind_does_not_declare_fails_the_case_and_is_named() {
        let (results, _) = run_mock("iterations = 3", "step_ms = 1\nmisspelt = true", None);
        for result in &results {
            assert_eq!(result.status, Status::Failed);
            let error = result.error.as_deref().unwrap();
            assert!(error.contains("does not declare (stepms)"), "{error}");
            assert_eq!(result.metrics["step_ms"].summary.count, 3);
            assert!(!result.metrics.contains_key("stepms"));
        }
        let (results, _) = run_mock("iterations = 3", "step_ms = 1", None);
        assert!(results.iter().all(|r| r.status == Status::Ok));
    }

    #[test]
    fn a_case_deaf_to_its_timeout_is_abandoned_with_its_iterations_kept() {
        let (results, abandoned) = run_mock(
            "iterations = 1000\ntimeout_s = 0.2",
            "step_ms = 10\nhang_at = 3",
            None,
        );
        assert!(abandoned.unwrap().contains("did not stop"));
        assert_eq!(results[0].status, Status::Failed);
        assert_eq!(results[0].iterations_completed, 3);
        assert_eq!(results[1].status, Status::Failed);
    }
}
