//! Runs one benchmark on a worker thread: preparation, then each case's
//! warm-up and timed iterations, streaming events back to the day loop.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::CancelFlag;
use crate::benchmarks::{
    BenchContext, BenchmarkCase, Conclusion, ConfiguredBenchmark, MetricCatalog, MetricDef,
    Observations,
};
use crate::machine::rss;
use crate::model::IterationPlan;
use crate::stats::MetricRecorder;

/// What the worker tells the day loop.
pub(super) enum WorkerEvent {
    Prepared {
        setup: Vec<(&'static str, f64)>,
        context: serde_json::Value,
        cases: Vec<(String, serde_json::Value)>,
        warnings: Vec<String>,
        skipped: Option<String>,
    },
    PrepareFailed(String),
    CaseStarted(usize),
    WarmupDone,
    /// One timed iteration's observations, sent as soon as it ends so that
    /// nothing measured is lost if the worker is later abandoned.
    Measured(Observations),
    /// Judgements over the whole case, from [`BenchmarkCase::conclude`].
    Concluded(Conclusion),
    CaseFinished(CaseEnd),
}

/// How a case's loop ended.
pub(super) struct CaseEnd {
    pub error: Option<String>,
    pub cancelled: bool,
    /// Peak resident memory of the process while the case ran, when the
    /// kernel lets the peak be reset at its start (Linux).
    pub peak_rss_bytes: Option<u64>,
}

/// Everything measured in one case so far, held by the day loop.
pub(super) struct CaseOutcome {
    pub recorders: BTreeMap<&'static str, MetricRecorder>,
    /// Metrics the case recorded that its kind does not declare: a defect
    /// of the kind (a misspelt name would otherwise be reported with no
    /// unit and the wrong direction), so the case fails and names them.
    undeclared: BTreeSet<&'static str>,
    pub series: BTreeMap<&'static str, Vec<Vec<f64>>>,
    pub warmup_completed: u32,
    pub iterations_completed: u32,
    pub started: Instant,
    pub elapsed: Duration,
    pub error: Option<String>,
    pub cancelled: bool,
    pub peak_rss_bytes: Option<u64>,
    pub conclusion: Option<Conclusion>,
}

impl CaseOutcome {
    pub fn new() -> Self {
        Self {
            recorders: BTreeMap::new(),
            undeclared: BTreeSet::new(),
            series: BTreeMap::new(),
            warmup_completed: 0,
            iterations_completed: 0,
            started: Instant::now(),
            elapsed: Duration::ZERO,
            error: None,
            cancelled: false,
            peak_rss_bytes: None,
            conclusion: None,
        }
    }

    pub fn record(&mut self, catalog: &MetricCatalog, observations: Observations, max_raw: usize) {
        let (values, series) = observations.into_parts();
        for (metric, value) in values {
            let Some(def) = catalog.metric(metric) else {
                self.undeclared.insert(metric);
                continue;
            };
            recorder(&mut self.recorders, def, max_raw).record(value);
        }
        for (metric, values) in series {
            let Some(def) = catalog.metric(metric) else {
                self.undeclared.insert(metric);
                continue;
            };
            let r = recorder(&mut self.recorders, def, max_raw);
            values.iter().for_each(|v| r.record(*v));
            self.series.entry(metric).or_default().push(values);
        }
        self.iterations_completed += 1;
        self.elapsed = self.started.elapsed();
    }

    pub fn finish(&mut self, end: CaseEnd) {
        self.error = end.error;
        if !self.undeclared.is_empty() {
            let names: Vec<&str> = self.undeclared.iter().copied().collect();
            let undeclared = format!(
                "the kind recorded metrics it does not declare ({}); they were left out: a defect of the kind, whose metrics() must list them",
                names.join(", ")
            );
            self.error = Some(match self.error.take() {
                Some(error) => format!("{error}; {undeclared}"),
                None => undeclared,
            });
        }
        self.cancelled = end.cancelled;
        self.peak_rss_bytes = end.peak_rss_bytes;
        self.elapsed = self.started.elapsed();
    }
}

const WORKER_PREFIX: &str = "benchmark ";

fn take_panic_message() -> String {
    crate::panics::take_last().unwrap_or_else(|| "panicked".to_string())
}

pub(super) fn thread_name(benchmark: &str) -> String {
    crate::panics::install_hook();
    format!("{WORKER_PREFIX}{benchmark}")
}

/// Runs `work` on a worker of a fresh rayon pool of the run's thread
/// count. candle's parallel CPU ops then run on this thread and the pool's
/// others; from a thread outside the pool each op is handed over and
/// waited for (a futex wake and sleep per op) while the pool's workers spin
/// beside candle's own. Measured in docs/quantized-kernels.md ("Threads and
/// devices"). Without a pool (threads cannot start), the work runs here.
pub(super) fn in_compute_pool<R: Send>(name: &str, work: impl FnOnce() -> R + Send) -> R {
    let name = name.to_string();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(rayon::current_num_threads())
        .thread_name(move |i| format!("{name} #{i}"))
        .build();
    match pool {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// The body of a worker thread. Send errors mean the day loop stopped
/// listening (it abandoned a timed-out benchmark): the worker just ends.
pub(super) fn run_worker(
    configured: ConfiguredBenchmark,
    ctx: BenchContext,
    plan: IterationPlan,
    cancel: CancelFlag,
    events: Sender<WorkerEvent>,
) {
    let prepared = panic::catch_unwind(AssertUnwindSafe(|| configured.prepare(&ctx)));
    let prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let _ = events.send(WorkerEvent::PrepareFailed(e.to_string()));
            return;
        }
        Err(_) => {
            let _ = events.send(WorkerEvent::PrepareFailed(take_panic_message()));
            return;
        }
    };
    let cases_info = prepared
        .cases
        .iter()
        .map(|c| (c.label(), c.parameters()))
        .collect();
    if events
        .send(WorkerEvent::Prepared {
            setup: prepared.setup,
            context: prepared.context,
            cases: cases_info,
            warnings: prepared.warnings,
            skipped: prepared.skipped,
        })
        .is_err()
    {
        return;
    }
    for (index, mut case) in prepared.cases.into_iter().enumerate() {
        if cancel.is_cancelled() || events.send(WorkerEvent::CaseStarted(index)).is_err() {
            return;
        }
        let end = run_case(case.as_mut(), &plan, &cancel, &events);
        if events.send(WorkerEvent::CaseFinished(end)).is_err() {
            return;
        }
    }
}

/// Warm-up, then timed iterations until the count or the time budget is
/// reached, an iteration fails, or the run is cancelled.
fn run_case(
    case: &mut dyn BenchmarkCase,
    plan: &IterationPlan,
    cancel: &CancelFlag,
    events: &Sender<WorkerEvent>,
) -> CaseEnd {
    let iterate = |case: &mut dyn BenchmarkCase| -> Result<Observations, String> {
        let mut observations = Observations::new();
        match panic::catch_unwind(AssertUnwindSafe(|| case.run_iteration(&mut observations))) {
            Ok(Ok(())) => Ok(observations),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(take_panic_message()),
        }
    };
    let peak_reset = rss::reset_peak_resident();
    let end = |error, cancelled| CaseEnd {
        error,
        cancelled,
        peak_rss_bytes: peak_reset.then(rss::peak_resident_bytes).flatten(),
    };
    for _ in 0..plan.warmup {
        if cancel.is_cancelled() {
            return end(None, true);
        }
        if let Err(e) = iterate(case) {
            return end(Some(format!("warm-up iteration failed: {e}")), false);
        }
        if events.send(WorkerEvent::WarmupDone).is_err() {
            return end(None, true);
        }
    }
    case.start_timed();
    let budget = plan
        .time_budget_s
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let timed_start = Instant::now();
    let mut cancelled = false;
    for done in 0..plan.iterations {
        if cancel.is_cancelled() {
            cancelled = true;
            break;
        }
        if budget.is_some_and(|b| done > 0 && timed_start.elapsed() >= b) {
            break;
        }
        match iterate(case) {
            Ok(observations) => {
                if events.send(WorkerEvent::Measured(observations)).is_err() {
                    return end(None, true);
                }
            }
            Err(e) => return end(Some(e), false),
        }
    }
    match panic::catch_unwind(AssertUnwindSafe(|| case.conclude())) {
        Ok(Some(conclusion)) => {
            let failure = conclusion.failure.clone();
            if events.send(WorkerEvent::Concluded(conclusion)).is_err() {
                return end(None, true);
            }
            if failure.is_some() {
                return end(failure, cancelled);
            }
        }
        Ok(None) => {}
        Err(_) => {
            return end(
                Some(format!("concluding failed: {}", take_panic_message())),
                cancelled,
            );
        }
    }
    end(None, cancelled)
}

fn recorder<'a>(
    recorders: &'a mut BTreeMap<&'static str, MetricRecorder>,
    metric: &MetricDef,
    max_raw: usize,
) -> &'a mut MetricRecorder {
    recorders
        .entry(metric.name)
        .or_insert_with(|| MetricRecorder::new(metric.kind, max_raw))
}
