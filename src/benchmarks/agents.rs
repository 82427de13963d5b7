//! `agent_task_latency`: producers feed the agents pool, each job compresses
//! one block (real CPU work through the compression component). Measured
//! per task: queue wait (submitted → an agent starts it), service time and
//! end-to-end latency; tasks/s per iteration. Every task must run exactly
//! once: a lost or repeated task fails the benchmark.
//!
//! Loads: `closed` (each producer waits for its task before the next, so
//! concurrency = producers) and `open:RATE` (Poisson arrivals at RATE
//! tasks/s in total, whatever the agents manage: queueing shows).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::Deserialize;
use serde_json::json;

use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark,
};
use crate::campaign::bounds::{Count, Kib, Parallel, Rate, Threads};
use crate::components::agents::{AgentPool, ChannelImpl, QueueKind};
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
            other => {
                let rate = other
                    .strip_prefix("open:")
                    .and_then(|r| r.trim().parse::<f64>().ok())
                    .ok_or_else(|| format!("found {other:?}; allowed: \"closed\" or \"open:RATE\" (tasks per second, e.g. open:2000)"))?;
                Rate::check(rate)
                    .map(|r| Self::Open { per_s: r.get() })
                    .map_err(|e| format!("open:RATE: {e}"))
            }
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

fn default_producers() -> Parallel {
    Parallel::new_const(2)
}

fn default_workers() -> Parallel {
    Parallel::new_const(4)
}

fn default_tasks() -> Count {
    Count::new_const(2000)
}

fn default_block_kib() -> Kib {
    Kib::new_const(16)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentParams {
    #[serde(default = "default_queues")]
    queues: Vec<QueueKind>,
    #[serde(default = "default_loads")]
    loads: Vec<String>,
    #[serde(default = "default_producers")]
    producers: Parallel,
    /// Agents (async worker tasks) taking jobs from the queue.
    #[serde(default = "default_workers")]
    workers: Parallel,
    /// OS threads of the tokio runtime; default: the campaign's threads.
    runtime_threads: Option<Threads>,
    /// Tasks per timed iteration.
    #[serde(default = "default_tasks")]
    tasks: Count,
    /// Bytes each job compresses.
    #[serde(default = "default_block_kib")]
    block_kib: Kib,
    /// The channel of the `tokio_mpsc` queue: `mpsc` (tokio's, one
    /// receiver the agents share behind a lock) or `mpmc` (async-channel,
    /// a receiver per agent).
    #[serde(default)]
    channel: ChannelImpl,
}

/// The loads, parsed; problems at `loads[i]`.
fn loads(p: &AgentParams) -> Result<Vec<Load>, ParamProblem> {
    p.loads
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Load::parse(l).map_err(|m| {
                ParamProblem::at(
                    &format!("loads[{i}]"),
                    m,
                    "e.g. loads = [\"closed\", \"open:2000\"]",
                )
            })
        })
        .collect()
}

/// Bytes each task's timeline keeps: four 8-byte stamps and a counter.
const TIMELINE_BYTES_PER_TASK: u64 = 40;

const QUEUE_WAIT_MS: MetricDef =
    MetricDef::duration_ms("queue_wait_ms", "task submitted → an agent starts it");
const SERVICE_MS: MetricDef = MetricDef::duration_ms(
    "service_ms",
    "an agent starts the task → it is done (one block compressed)",
);
const AGENT_TASK_E2E_MS: MetricDef = MetricDef::duration_ms("e2e_ms", "task submitted → done");
const TASKS_PER_S: MetricDef = MetricDef::quantity(
    "tasks_per_s",
    "tasks/s",
    true,
    "tasks ÷ (first submission → last completion)",
);

pub struct AgentTaskLatency;

impl Kind for AgentTaskLatency {
    type Params = AgentParams;

    fn name(&self) -> &'static str {
        "agent_task_latency"
    }

    fn description(&self) -> &'static str {
        "queue wait and end-to-end latency of agent tasks per queue implementation, closed and open (Poisson) loops"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[QUEUE_WAIT_MS, SERVICE_MS, AGENT_TASK_E2E_MS, TASKS_PER_S]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(AGENT_TASK_E2E_MS.name),
            throughput: Some(TASKS_PER_S.name),
        }
    }

    fn check(&self, p: &AgentParams, _models: &Models) -> Result<(), ParamProblem> {
        for (field, empty) in [
            ("queues", p.queues.is_empty()),
            ("loads", p.loads.is_empty()),
        ] {
            if empty {
                return Err(ParamProblem::at(
                    field,
                    "found an empty list; allowed: at least one entry",
                    "omit it for every queue and both loads",
                ));
            }
        }
        loads(p).map(|_| ())
    }

    fn planned_cases(&self, p: &AgentParams) -> usize {
        p.queues.len() * p.loads.len()
    }

    fn memory(&self, p: &AgentParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let block = p.block_kib.get() * 1024;
        Ok(MemoryNeed::new(
            p.tasks.get() * TIMELINE_BYTES_PER_TASK + block * (1 + p.workers.get()),
            format!(
                "{} tasks × {TIMELINE_BYTES_PER_TASK} bytes of timeline, one block per agent",
                p.tasks
            ),
        ))
    }

    fn prepare(
        &self,
        p: AgentParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let loads = loads(&p).map_err(|e| BenchmarkError::Params(e.message))?;
        let block_bytes = p.block_kib.usize() * 1024;
        let mut block = vec![0u8; block_bytes];
        // Half random, half zeros: compressible, but not trivially.
        ChaCha8Rng::seed_from_u64(ctx.settings.seed).fill_bytes(&mut block[..block_bytes / 2]);
        let block = Arc::new(block);
        let runtime_threads = p
            .runtime_threads
            .map_or(ctx.settings.threads.usize(), Threads::usize);
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for &queue in &p.queues {
            for &load in &loads {
                cases.push(Box::new(AgentCase {
                    queue,
                    channel: p.channel,
                    load,
                    producers: p.producers.usize(),
                    workers: p.workers.usize(),
                    runtime_threads,
                    tasks: p.tasks.usize(),
                    block: Arc::clone(&block),
                    seed: ctx.settings.seed,
                    iteration: 0,
                }));
            }
        }
        Ok(PreparedBenchmark::new(cases).with_context(json!({
            "producers": p.producers,
            "workers": p.workers,
            "runtime_threads": runtime_threads,
            "tasks_per_iteration": p.tasks,
            "job": format!("lz4-compress {} KiB", p.block_kib),
            "channel": p.channel,
        })))
    }
}

struct AgentCase {
    queue: QueueKind,
    channel: ChannelImpl,
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
        let pool = AgentPool::start(
            self.queue,
            self.channel,
            self.workers,
            self.runtime_threads,
            job,
        )
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
                    h.join().unwrap_or_else(|payload| {
                        Err(BenchmarkError::Component(crate::panics::describe_joined(
                            "a producer",
                            payload.as_ref(),
                        )))
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
            obs.value(&QUEUE_WAIT_MS, ms(start.saturating_sub(submitted)));
            obs.value(&SERVICE_MS, ms(finish.saturating_sub(start)));
            obs.value(&AGENT_TASK_E2E_MS, ms(finish.saturating_sub(submitted)));
        }
        obs.value(&TASKS_PER_S, self.tasks as f64 / wall.as_secs_f64());
        Ok(())
    }
}
