//! Runs one day: each benchmark on its own worker thread, with its timeout,
//! Ctrl-C handling, and per-result callbacks so results can be written as
//! soon as they exist.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::execute::{CaseOutcome, WorkerEvent, in_compute_pool, run_worker, thread_name};
use super::profiling::{self, ProfileOptions};
use super::results::BenchmarkFrame;
use super::{CancelFlag, Progress, SilentProgress};
use crate::benchmarks::{BenchContext, ConfiguredBenchmark};
use crate::campaign::{Benchmark, Campaign, CampaignError, Settings};
use crate::model::Environment;
use crate::model::QUICK_FACTOR;
use crate::model::{
    BenchmarkResult, CampaignInfo, DailyReport, DaySummary, IterationPlan, ProfileRecord,
    RunSettings, SCHEMA_VERSION, Status,
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
    let inputs = DayInputs {
        campaign,
        opts,
        interrupt,
    };
    let mut run = DayRun::start(inputs, progress, on_result);
    for selected in benchmarks {
        run.run_benchmark(selected);
    }
    Ok(run.report(&day.title))
}

/// What a day's run works from: its campaign, the command's resolved
/// options and the Ctrl-C flag.
#[derive(Clone, Copy)]
struct DayInputs<'a> {
    campaign: &'a Campaign,
    opts: &'a RunOptions,
    interrupt: &'a CancelFlag,
}

/// One day's run, a benchmark at a time. The fields are what the day has
/// gathered so far, so that the report can be assembled from them however
/// many benchmarks ran.
struct DayRun<'a, 'p> {
    inputs: DayInputs<'a>,
    progress: &'p mut dyn Progress,
    on_result: &'p mut dyn FnMut(&BenchmarkResult),
    ctx: BenchContext,
    started_at: DateTime<Utc>,
    results: Vec<BenchmarkResult>,
    warnings: Vec<String>,
    profiles: Vec<ProfileRecord>,
}

impl<'a, 'p> DayRun<'a, 'p> {
    fn start(
        inputs: DayInputs<'a>,
        progress: &'p mut dyn Progress,
        on_result: &'p mut dyn FnMut(&BenchmarkResult),
    ) -> Self {
        let opts = inputs.opts;
        let ctx = BenchContext::for_campaign(
            inputs.campaign,
            opts.settings.clone(),
            opts.model_cache_dir.clone(),
            opts.scratch_dir.clone(),
        );
        Self {
            inputs,
            progress,
            on_result,
            ctx,
            started_at: Utc::now(),
            results: Vec::new(),
            warnings: Vec::new(),
            profiles: Vec::new(),
        }
    }

    /// The benchmark's cases at this process's thread count, measured and
    /// profiled here, then those at its other thread counts in children.
    fn run_benchmark(&mut self, selected: &SelectedBenchmark<'_>) {
        let opts = self.inputs.opts;
        if self.inputs.interrupt.is_cancelled() {
            let result = unmeasured(
                selected,
                opts.quick,
                Status::Interrupted,
                "not run: interrupted before it started".into(),
            );
            (self.on_result)(&result);
            self.results.push(result);
            return;
        }
        let process_threads = opts.settings.threads.usize();
        let (here, elsewhere) =
            super::threads::thread_plan(&selected.configured, process_threads, opts.thread_child);
        if here {
            let measured = self.measure(selected);
            self.profile(selected, &measured);
            self.results.extend(measured);
        }
        self.run_thread_children(selected.spec, &elsewhere);
    }

    /// The benchmark's results from its unprofiled pass in this process.
    fn measure(&mut self, selected: &SelectedBenchmark<'_>) -> Vec<BenchmarkResult> {
        let (quick, interrupt) = (self.inputs.opts.quick, self.inputs.interrupt);
        // A panic in the day loop itself (a bug) fails this benchmark, with
        // its message, and the day goes on.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_benchmark(
                selected,
                &self.ctx,
                quick,
                interrupt,
                &mut *self.progress,
                &mut *self.on_result,
            )
        }));
        let (measured, abandoned) = match run {
            Ok(done) => done,
            Err(payload) => {
                let message = format!(
                    "the runner failed: {}",
                    crate::panics::describe(payload.as_ref())
                );
                let failed = unmeasured(selected, quick, Status::Failed, message);
                (self.on_result)(&failed);
                (vec![failed], None)
            }
        };
        if let Some(message) = abandoned {
            self.warnings.push(message);
        }
        measured
    }

    /// A second, silent pass under the sampler when the benchmark is
    /// profiled, so that sampling never weighs on the reported numbers.
    fn profile(&mut self, selected: &SelectedBenchmark<'_>, measured: &[BenchmarkResult]) {
        let DayInputs {
            campaign,
            opts,
            interrupt,
        } = self.inputs;
        let spec = selected.spec;
        if !opts.profile.selection.profiles(spec.profile) || interrupt.is_cancelled() {
            return;
        }
        let name = &spec.name;
        let hz = opts
            .profile
            .frequency_hz
            .or(spec.profile_hz.map(|hz| hz.get() as u32))
            .unwrap_or(crate::profile::DEFAULT_PROFILE_HZ);
        self.progress.note(&format!(
            "{name}: profiling pass at {hz} Hz (the results above come from the unprofiled pass)"
        ));
        match profiling::start(name, hz) {
            Ok(sampler) => {
                if let Some(warning) = &sampler.warning {
                    self.progress.note(warning);
                    self.warnings.push(warning.clone());
                }
                let (profiled, abandoned) =
                    run_silently(selected, &self.ctx, opts.quick, interrupt);
                self.warnings.extend(abandoned);
                self.profiles.push(profiling::finish(
                    sampler,
                    &profiling::ProfiledBenchmark {
                        benchmark: name,
                        day: opts.day,
                        run_id: &opts.run_id,
                        campaign: campaign.name(),
                    },
                    &opts.profile,
                    measured,
                    &profiled,
                ));
            }
            Err(e) => self.warnings.push(format!("{name}: not profiled: {e}")),
        }
    }

    /// The cases of `spec` at each of `counts` threads, one child process
    /// per count; a warning for each count that did not run.
    fn run_thread_children(&mut self, spec: &Benchmark, counts: &[usize]) {
        let DayInputs {
            campaign,
            opts,
            interrupt,
        } = self.inputs;
        for &threads in counts {
            if interrupt.is_cancelled() {
                break;
            }
            self.progress.note(&format!(
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
                    child_results.iter().for_each(&mut *self.on_result);
                    self.results.extend(child_results);
                }
                Err(message) => self.warnings.push(message),
            }
        }
    }

    /// The day's report from what it gathered, stamped with the machine it
    /// ran on and the settings it ran with.
    fn report(self, day_title: &str) -> DailyReport {
        let DayInputs {
            campaign,
            opts,
            interrupt,
        } = self.inputs;
        let settings = &opts.settings;
        let environment = Environment::capture(
            settings.device.to_string(),
            settings.threads.usize(),
            settings.dtype.name().to_string(),
        );
        DailyReport {
            schema_version: SCHEMA_VERSION,
            run_id: opts.run_id.clone(),
            campaign: CampaignInfo {
                name: campaign.name().to_string(),
                description: campaign.description.clone(),
                file: campaign.path.display().to_string(),
            },
            day: opts.day,
            day_title: day_title.to_string(),
            started_at: self.started_at,
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
            summary: DaySummary::of(&self.results),
            // Filled in by the analysis once the day is over.
            scaling: Vec::new(),
            parity: Vec::new(),
            peers: Vec::new(),
            profiles: self.profiles,
            results: self.results,
            warnings: self.warnings,
        }
    }
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
    let frame = BenchmarkFrame {
        name,
        kind,
        catalog: configured.catalog(),
        targets: &spec.targets,
        plan: &plan,
        setup: Default::default(),
        context: serde_json::Value::Null,
        warnings: Vec::new(),
    };
    let mut sink = ResultSink {
        progress,
        on_result,
        results: Vec::new(),
    };
    let cancel = CancelFlag::new();
    let (worker, events) = match spawn_worker(name, configured, ctx, &plan, &cancel) {
        Ok(spawned) => spawned,
        Err(e) => {
            let result =
                frame.unmeasured(None, Status::Failed, format!("cannot start a thread: {e}"));
            sink.emit(result);
            return (sink.results, None);
        }
    };
    let mut supervisor = BenchmarkSupervisor::new(
        frame,
        ctx.settings.max_raw_samples.usize(),
        interrupt,
        cancel,
        sink,
    );
    supervisor.watch(&events);
    if supervisor.abandoned.is_none() {
        // The channel closed, so the worker has returned or is returning.
        let _ = worker.join();
    }
    supervisor.finish()
}

/// Starts the worker thread of benchmark `name`, which prepares it, runs
/// its cases and reports each step on the returned channel.
fn spawn_worker(
    name: &str,
    configured: &ConfiguredBenchmark,
    ctx: &BenchContext,
    plan: &IterationPlan,
    cancel: &CancelFlag,
) -> std::io::Result<(thread::JoinHandle<()>, Receiver<WorkerEvent>)> {
    let (events_tx, events) = mpsc::channel();
    let (configured, ctx, plan, cancel) = (
        configured.clone(),
        ctx.clone(),
        plan.clone(),
        cancel.clone(),
    );
    let thread = thread_name(name);
    thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            in_compute_pool(&thread, || {
                run_worker(configured, ctx, plan, cancel, events_tx)
            })
        })
        .map(|worker| (worker, events))
}

/// Where a benchmark's results go as soon as each exists: the progress
/// display, the caller's callback (which writes it out), and the list the
/// benchmark returns.
struct ResultSink<'p> {
    progress: &'p mut dyn Progress,
    on_result: &'p mut dyn FnMut(&BenchmarkResult),
    results: Vec<BenchmarkResult>,
}

impl ResultSink<'_> {
    fn emit(&mut self, result: BenchmarkResult) {
        self.progress.case_finished(&result);
        (self.on_result)(&result);
        self.results.push(result);
    }
}

/// The supervision of one benchmark's worker: its events become results,
/// and its timeout and Ctrl-C cancel it. The fields are what the event
/// loop has learnt so far, so that `finish` can account for every case
/// however the loop ended.
struct BenchmarkSupervisor<'a, 'p> {
    frame: BenchmarkFrame<'a>,
    max_raw_samples: usize,
    interrupt: &'a CancelFlag,
    /// Tells the worker to stop at its next iteration boundary.
    cancel: CancelFlag,
    sink: ResultSink<'p>,
    started: Instant,
    timeout: Duration,
    /// Each case's label and parameters, once the benchmark is prepared.
    cases: Vec<(String, serde_json::Value)>,
    /// The first case the worker has not started.
    next_case: usize,
    /// The case in progress and what it has measured so far.
    current: Option<(usize, CaseOutcome)>,
    timed_out_at: Option<Instant>,
    interrupted: bool,
    /// The day's warning when the worker did not stop after its timeout.
    abandoned: Option<String>,
}

impl<'a, 'p> BenchmarkSupervisor<'a, 'p> {
    /// Starts the benchmark's clock: the worker is already running.
    fn new(
        frame: BenchmarkFrame<'a>,
        max_raw_samples: usize,
        interrupt: &'a CancelFlag,
        cancel: CancelFlag,
        sink: ResultSink<'p>,
    ) -> Self {
        // The campaign bounds timeout_s to a week; anything else is a bug,
        // and a long wait is safer than a panic on the day loop.
        let timeout = Duration::try_from_secs_f64(frame.plan.timeout_s).unwrap_or(Duration::MAX);
        Self {
            frame,
            max_raw_samples,
            interrupt,
            cancel,
            sink,
            started: Instant::now(),
            timeout,
            cases: Vec::new(),
            next_case: 0,
            current: None,
            timed_out_at: None,
            interrupted: false,
            abandoned: None,
        }
    }

    /// The result of case `index` from what its worker measured.
    fn emit_measured(&mut self, index: usize, outcome: CaseOutcome, timeout_error: Option<String>) {
        let (label, parameters) = &self.cases[index];
        let result =
            self.frame
                .measured(label, parameters, outcome, self.interrupted, timeout_error);
        self.sink.emit(result);
    }

    fn timeout_message(&self) -> String {
        format!(
            "timed out after {:.1} s (timeout_s = {}); iterations completed before it are summarised",
            self.started.elapsed().as_secs_f64(),
            self.frame.plan.timeout_s
        )
    }

    /// Handles the worker's events until its channel closes or, after a
    /// timeout, the worker is abandoned.
    fn watch(&mut self, events: &Receiver<WorkerEvent>) {
        loop {
            match events.recv_timeout(POLL) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !self.check_deadlines() {
                break;
            }
        }
    }

    fn handle(&mut self, event: WorkerEvent) {
        let plan = self.frame.plan;
        match event {
            WorkerEvent::Prepared {
                setup,
                context,
                cases: info,
                warnings,
                skipped,
            } => {
                self.frame.setup = BenchmarkFrame::setup_values(&self.frame.catalog, &setup);
                self.frame.context = context;
                self.frame.warnings = warnings;
                self.cases = info;
                if let Some(reason) = skipped {
                    let result = self.frame.unmeasured(None, Status::Skipped, reason);
                    self.sink.emit(result);
                }
            }
            WorkerEvent::PrepareFailed(error) => {
                let result = self.frame.unmeasured(
                    None,
                    Status::Failed,
                    format!("preparing failed: {error}"),
                );
                self.sink.emit(result);
            }
            WorkerEvent::CaseStarted(index) => {
                self.next_case = index + 1;
                if let Some((label, _)) = self.cases.get(index) {
                    self.sink
                        .progress
                        .case_started(label, plan.warmup, plan.iterations);
                }
                self.current = Some((index, CaseOutcome::new()));
            }
            WorkerEvent::WarmupDone => {
                if let Some((_, outcome)) = &mut self.current {
                    outcome.warmup_completed += 1;
                }
                self.sink.progress.iteration_done();
            }
            WorkerEvent::Measured(observations) => {
                if let Some((_, outcome)) = &mut self.current {
                    outcome.record(&self.frame.catalog, observations, self.max_raw_samples);
                }
                self.sink.progress.iteration_done();
            }
            WorkerEvent::Concluded(conclusion) => {
                if let Some((_, outcome)) = &mut self.current {
                    outcome.conclusion = Some(conclusion);
                }
            }
            WorkerEvent::CaseFinished(end) => {
                if let Some((index, mut outcome)) = self.current.take() {
                    outcome.finish(end);
                    let timeout_error = (self.timed_out_at.is_some() && outcome.cancelled)
                        .then(|| self.timeout_message());
                    self.emit_measured(index, outcome, timeout_error);
                }
            }
        }
    }

    /// Passes Ctrl-C and the timeout on to the worker; false once the
    /// worker has had its grace after the timeout and is abandoned.
    fn check_deadlines(&mut self) -> bool {
        let plan = self.frame.plan;
        if !self.interrupted && self.interrupt.is_cancelled() {
            self.interrupted = true;
            self.cancel.cancel();
        }
        if self.timed_out_at.is_none() && self.started.elapsed() > self.timeout {
            self.timed_out_at = Some(Instant::now());
            self.cancel.cancel();
            self.sink.progress.note(&format!(
                "{}: timeout_s = {} reached; stopping at the next iteration boundary",
                self.frame.name, plan.timeout_s
            ));
        }
        if self
            .timed_out_at
            .is_some_and(|t| t.elapsed() > ABANDON_GRACE)
        {
            self.abandoned = Some(format!(
                "benchmark {} did not stop within {} s of its timeout; its thread was left running and may slow the benchmarks after it",
                self.frame.name,
                ABANDON_GRACE.as_secs()
            ));
            return false;
        }
        true
    }

    /// The results of every case, including those the loop never saw end,
    /// and the abandonment warning if any.
    fn finish(mut self) -> (Vec<BenchmarkResult>, Option<String>) {
        self.keep_abandoned_case();
        self.list_unstarted_cases();
        if self.sink.results.is_empty() {
            self.report_nothing_reported();
        }
        (self.sink.results, self.abandoned)
    }

    /// The case in progress when the worker was abandoned keeps what it measured.
    fn keep_abandoned_case(&mut self) {
        if let Some((index, mut outcome)) = self.current.take() {
            outcome.elapsed = outcome.started.elapsed();
            let timeout_message = self.timeout_message();
            self.emit_measured(index, outcome, Some(timeout_message));
        }
    }

    /// Cases that never started are listed, so the report shows what is missing.
    fn list_unstarted_cases(&mut self) {
        let plan = self.frame.plan;
        for (label, parameters) in self.cases.iter().skip(self.next_case) {
            let (status, error) = if self.timed_out_at.is_some() {
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
            let result = self
                .frame
                .unmeasured(Some((label, parameters)), status, error);
            self.sink.emit(result);
        }
    }

    /// A benchmark always leaves a result, saying why it has no other.
    fn report_nothing_reported(&mut self) {
        let message = if self.timed_out_at.is_some() {
            self.timeout_message()
        } else if self.interrupted {
            "interrupted while preparing".to_string()
        } else {
            "the benchmark ended without reporting anything".to_string()
        };
        let status = if self.timed_out_at.is_none() && self.interrupted {
            Status::Interrupted
        } else {
            Status::Failed
        };
        let result = self.frame.unmeasured(None, status, message);
        self.sink.emit(result);
    }
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
