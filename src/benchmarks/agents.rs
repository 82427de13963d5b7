//! `agent_task_latency`: producers feed the agents pool, each job compresses
//! one block (real CPU work through the compression component). Measured
//! per task: queue wait (submitted → an agent starts it), service time and
//! end-to-end latency; tasks/s per iteration. Every task must run exactly
//! once: a lost or repeated task fails the benchmark.
//!
//! Loads: `closed` (each producer waits for its task before the next, so
//! concurrency = producers) and `open:RATE` (Poisson arrivals at RATE
//! tasks/s in total, whatever the agents manage: queueing shows).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::Deserialize;
use serde_json::json;

use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Headline, MetricDef, Observations,
    PreparedBenchmark,
};
use crate::campaign::ResolvedModel;
use crate::components::agents::{AgentPool, QueueKind};
use crate::components::compression::{BlockCodec, Codec, CodecKind};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Load {
    Closed,
    Open { per_s: f64 },
}

impl Load {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "closed" => Ok(Self::Closed),
            other => other
                .strip_prefix("open:")
                .and_then(|r| r.parse::<f64>().ok())
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|per_s| Self::Open { per_s })
                .ok_or_else(|| format!("unknown load {other:?}: use \"closed\" or \"open:RATE\" (tasks per second, e.g. open:2000)")),
        }
    }

    fn label(self) -> String {
        match self {
            Self::Closed => "closed".into(),
            Self::Open { per_s } => format!("open:{per_s}"),
        }
    }
}

fn default_queues() -> Vec<QueueKind> {
    vec![
        QueueKind::TokioMpsc,
        QueueKind::MutexDeque,
        QueueKind::LockFree,
    ]
}

fn default_loads() -> Vec<String> {
    vec!["closed".into(), "open:2000".into()]
}

fn default_producers() -> usize {
    2
}

fn default_workers() -> usize {
    4
}

fn default_tasks() -> usize {
    2000
}

fn default_block_kib() -> usize {
    16
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentParams {
    #[serde(default = "default_queues")]
    queues: Vec<QueueKind>,
    #[serde(default = "default_loads")]
    loads: Vec<String>,
    #[serde(default = "default_producers")]
    producers: usize,
    /// Agents (async worker tasks) taking jobs from the queue.
    #[serde(default = "default_workers")]
    workers: usize,
    /// OS threads of the tokio runtime; default: the campaign's threads.
    runtime_threads: Option<usize>,
    /// Tasks per timed iteration.
    #[serde(default = "default_tasks")]
    tasks: usize,
    /// Bytes each job compresses.
    #[serde(default = "default_block_kib")]
    block_kib: usize,
}

fn check(params: &toml::Table) -> Result<(AgentParams, Vec<Load>), ParamProblem> {
    let p: AgentParams = params::parse(params)?;
    let loads = p
        .loads
        .iter()
        .map(|l| Load::parse(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| ParamProblem::at("loads", m, "e.g. loads = [\"closed\", \"open:2000\"]"))?;
    if p.queues.is_empty() || loads.is_empty() {
        return Err(ParamProblem::at(
            "queues",
            "queues and loads must each list at least one",
            "omit them for every queue and both loads",
        ));
    }
    if p.producers == 0
        || p.workers == 0
        || p.tasks == 0
        || p.block_kib == 0
        || p.runtime_threads == Some(0)
    {
        return Err(ParamProblem::at(
            "producers",
            "producers, workers, runtime_threads, tasks and block_kib must be at least 1",
            "e.g. producers = 2, workers = 4",
        ));
    }
    Ok((p, loads))
}

pub struct AgentTaskLatency;

impl BenchmarkKind for AgentTaskLatency {
    fn name(&self) -> &'static str {
        "agent_task_latency"
    }

    fn description(&self) -> &'static str {
        "queue wait and end-to-end latency of agent tasks per queue implementation, closed and open (Poisson) loops"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("queue_wait_ms", "task submitted → an agent starts it"),
            MetricDef::duration_ms(
                "service_ms",
                "an agent starts the task → it is done (one block compressed)",
            ),
            MetricDef::duration_ms("e2e_ms", "task submitted → done"),
            MetricDef::quantity(
                "tasks_per_s",
                "tasks/s",
                true,
                "tasks ÷ (first submission → last completion)",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "e2e_ms",
            throughput: "tasks_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        _models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        check(params).map(|_| ())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let (p, loads) = check(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let mut block = vec![0u8; p.block_kib * 1024];
        // Half random, half zeros: compressible, but not trivially.
        ChaCha8Rng::seed_from_u64(ctx.settings.seed).fill_bytes(&mut block[..p.block_kib * 512]);
        let block = Arc::new(block);
        let runtime_threads = p.runtime_threads.unwrap_or(ctx.settings.threads.max(1));
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for &queue in &p.queues {
            for &load in &loads {
                cases.push(Box::new(AgentCase {
                    queue,
                    load,
                    producers: p.producers,
                    workers: p.workers,
                    runtime_threads,
                    tasks: p.tasks,
                    block: Arc::clone(&block),
                    seed: ctx.settings.seed,
                    iteration: 0,
                }));
            }
        }
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({
                "producers": p.producers,
                "workers": p.workers,
                "runtime_threads": runtime_threads,
                "tasks_per_iteration": p.tasks,
                "job": format!("lz4-compress {} KiB", p.block_kib),
            }),
            cases,
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        let p: AgentParams = params::parse(params)?;
        Ok(p.queues.len() * p.loads.len())
    }
}

struct AgentCase {
    queue: QueueKind,
    load: Load,
    producers: usize,
    workers: usize,
    runtime_threads: usize,
    tasks: usize,
    block: Arc<Vec<u8>>,
    seed: u64,
    iteration: u64,
}

/// One task in flight: its id and, for a closed loop, the channel its
/// producer waits on. Submission times are in the timeline.
struct TaskMessage {
    id: usize,
    done: Option<mpsc::SyncSender<()>>,
}

/// One codec and output buffer per agent; agent `i` only locks slot `i`.
type AgentCodecs = Vec<Mutex<(BlockCodec, Vec<u8>)>>;

/// Per-task timestamps, written by agents without locks.
struct Timeline {
    origin: Instant,
    submitted_ns: Vec<AtomicU64>,
    started_ns: Vec<AtomicU64>,
    finished_ns: Vec<AtomicU64>,
    runs: Vec<AtomicU32>,
}

impl Timeline {
    fn new(tasks: usize) -> Self {
        let zeros = || (0..tasks).map(|_| AtomicU64::new(0)).collect();
        Self {
            origin: Instant::now(),
            submitted_ns: zeros(),
            started_ns: zeros(),
            finished_ns: zeros(),
            runs: (0..tasks).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn since(&self, t: Instant) -> u64 {
        t.duration_since(self.origin).as_nanos() as u64
    }
}

impl AgentCase {
    fn produce(
        &self,
        pool: &AgentPool<TaskMessage>,
        producer: usize,
        timeline: &Timeline,
    ) -> Result<(), BenchmarkError> {
        let submit_err =
            |e: crate::components::agents::AgentsError| BenchmarkError::Component(e.to_string());
        let ids = (producer..self.tasks).step_by(self.producers);
        match self.load {
            Load::Closed => {
                let (done_tx, done_rx) = mpsc::sync_channel(1);
                for id in ids {
                    let submitted = Instant::now();
                    timeline.submitted_ns[id].store(timeline.since(submitted), Ordering::Relaxed);
                    pool.submit(TaskMessage {
                        id,
                        done: Some(done_tx.clone()),
                    })
                    .map_err(submit_err)?;
                    done_rx.recv().map_err(|_| {
                        BenchmarkError::Component(format!("task {id} never completed"))
                    })?;
                }
            }
            Load::Open { per_s } => {
                let mut rng =
                    ChaCha8Rng::seed_from_u64(self.seed ^ self.iteration ^ producer as u64);
                let gaps = Exp::new(per_s / self.producers as f64)
                    .map_err(|e| BenchmarkError::Params(e.to_string()))?;
                let mut next = Instant::now();
                for id in ids {
                    next += Duration::from_secs_f64(gaps.sample(&mut rng));
                    // Sleep most of the gap, spin the rest: OS sleeps are
                    // too coarse for sub-millisecond Poisson gaps.
                    while let Some(left) = next.checked_duration_since(Instant::now()) {
                        if left > Duration::from_micros(200) {
                            std::thread::sleep(left - Duration::from_micros(100));
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    let submitted = Instant::now();
                    timeline.submitted_ns[id].store(timeline.since(submitted), Ordering::Relaxed);
                    pool.submit(TaskMessage { id, done: None })
                        .map_err(submit_err)?;
                }
            }
        }
        Ok(())
    }
}

impl BenchmarkCase for AgentCase {
    fn label(&self) -> String {
        format!("{}/{}", self.queue.name(), self.load.label())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "queue": self.queue,
            "load": self.load.label(),
            "producers": self.producers,
            "workers": self.workers,
            "tasks": self.tasks,
        })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        self.iteration += 1;
        let timeline = Arc::new(Timeline::new(self.tasks));
        let codecs: Arc<AgentCodecs> = Arc::new(
            (0..self.workers)
                .map(|_| {
                    BlockCodec::new(
                        Codec {
                            kind: CodecKind::Lz4,
                            level: 0,
                        },
                        None,
                    )
                    .map(|c| Mutex::new((c, Vec::new())))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| BenchmarkError::Component(e.to_string()))?,
        );
        let job = {
            let (timeline, codecs, block) = (
                Arc::clone(&timeline),
                Arc::clone(&codecs),
                Arc::clone(&self.block),
            );
            Arc::new(move |agent: usize, task: TaskMessage| {
                let started = Instant::now();
                if let Ok(mut slot) = codecs[agent].lock() {
                    let (codec, out) = &mut *slot;
                    let _ = codec.compress(&block, out);
                }
                let finished = Instant::now();
                timeline.started_ns[task.id].store(timeline.since(started), Ordering::Relaxed);
                timeline.finished_ns[task.id].store(timeline.since(finished), Ordering::Relaxed);
                timeline.runs[task.id].fetch_add(1, Ordering::Relaxed);
                if let Some(done) = task.done {
                    let _ = done.send(());
                }
            })
        };
        let pool = AgentPool::start(self.queue, self.workers, self.runtime_threads, job)
            .map_err(|e| BenchmarkError::Component(e.to_string()))?;
        let started = Instant::now();
        let produced: Vec<Result<(), BenchmarkError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.producers)
                .map(|producer| {
                    let (pool, timeline, this) = (&pool, &*timeline, &*self);
                    scope.spawn(move || this.produce(pool, producer, timeline))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(BenchmarkError::Component("a producer panicked".into()))
                    })
                })
                .collect()
        });
        pool.shutdown()
            .map_err(|e| BenchmarkError::Component(e.to_string()))?;
        let wall = started.elapsed();
        produced.into_iter().collect::<Result<Vec<()>, _>>()?;

        for (id, runs) in timeline.runs.iter().enumerate() {
            let runs = runs.load(Ordering::Relaxed);
            if runs != 1 {
                return Err(BenchmarkError::Component(format!(
                    "task {id} ran {runs} times; every task must run exactly once"
                )));
            }
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        for id in 0..self.tasks {
            let submitted = timeline.submitted_ns[id].load(Ordering::Relaxed);
            let start = timeline.started_ns[id].load(Ordering::Relaxed);
            let finish = timeline.finished_ns[id].load(Ordering::Relaxed);
            obs.value("queue_wait_ms", ms(start.saturating_sub(submitted)));
            obs.value("service_ms", ms(finish.saturating_sub(start)));
            obs.value("e2e_ms", ms(finish.saturating_sub(submitted)));
        }
        obs.value("tasks_per_s", self.tasks as f64 / wall.as_secs_f64());
        Ok(())
    }
}
