//! `planted_work`: a synthetic workload with known properties, for checking
//! the tool itself on this machine. Its time is split between named
//! functions (does the profiler and the bottleneck ranking find that
//! split?), one of which spends its time inside libc's `memcpy` (are
//! samples in shared libraries counted?), and it can be slowed down by a
//! known factor (does the regression detector flag it, and only it?).
//! Each case measures the true split with timers around the three calls
//! and reports it as `conclusion.time_share_pct`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::{
    BenchContext, BenchmarkCase, BenchmarkError, Conclusion, Headline, Kind, MemoryNeed, MetricDef,
    Models, Observations, ParamProblem, PreparedBenchmark,
};
use crate::campaign::bounds::{Count, Factor, Percent};
use crate::model::{Findings, TimeShareFindings};

/// The same arithmetic per unit in both functions, so work shares are time
/// shares. A macro, not a helper function: a helper would be a frame of its
/// own and take the samples the two named functions are there to collect.
macro_rules! spin {
    ($units:expr, $state:expr) => {{
        let mut state: u64 = $state;
        for _ in 0..$units {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state = std::hint::black_box(state);
        }
        state
    }};
}

#[inline(never)]
pub fn planted_hotspot_major(units: u64, state: u64) -> u64 {
    spin!(units, state)
}

#[inline(never)]
pub fn planted_hotspot_minor(units: u64, state: u64) -> u64 {
    spin!(units, state ^ 0x9E37_79B9_7F4A_7C15)
}

/// Copies `bytes` from `from` into `to` in blocks of the buffers' size:
/// the time is spent in libc's `memcpy`, called from this frame.
#[inline(never)]
pub fn planted_hotspot_libc(to: &mut [u8], from: &[u8], bytes: usize) {
    let block = to.len().min(from.len());
    let mut left = bytes;
    while left > 0 && block > 0 {
        let n = left.min(block);
        // A copy of a run-time length is a call to libc's memcpy.
        to[..n].copy_from_slice(&from[..n]);
        std::hint::black_box(&mut *to);
        left -= n;
    }
}

/// The copy buffers: larger than the caches, so each call is a long
/// stretch inside memcpy.
const COPY_BYTES: usize = 8 << 20;

/// The first copy of a case, before its speed is known.
const PROBE_BYTES: usize = 256 << 10;

/// Most blocks one iteration copies: a bound on the loop should the CPU
/// clock not advance (at 12 GB/s, 10 000 blocks are about 7 s).
const MAX_COPY_BLOCKS: usize = 10_000;

/// The clock the parts are timed on, chosen once per case so one case
/// never adds durations of two clocks: the thread's CPU clock, the one a
/// CPU profiler samples, or the wall clock where the CPU clock cannot be
/// read (then the shares count waits for a core too, and the report says so).
#[derive(Debug, Clone, Copy)]
enum PartClock {
    ThreadCpu,
    Wall { origin: Instant },
}

impl PartClock {
    fn choose() -> Self {
        match crate::machine::thread_cpu_time() {
            Some(_) => Self::ThreadCpu,
            None => Self::Wall {
                origin: Instant::now(),
            },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ThreadCpu => "the thread's CPU clock (the one a CPU-time profiler samples)",
            Self::Wall { .. } => "the wall clock (the thread's CPU clock cannot be read here)",
        }
    }

    /// The time on this clock; an error if the CPU clock, readable when
    /// the case was prepared, stops being readable.
    fn now(self) -> Result<Duration, BenchmarkError> {
        match self {
            Self::ThreadCpu => crate::machine::thread_cpu_time().ok_or_else(|| {
                BenchmarkError::Component(
                    "the thread's CPU clock could not be read (CLOCK_THREAD_CPUTIME_ID)".into(),
                )
            }),
            Self::Wall { origin } => Ok(origin.elapsed()),
        }
    }
}

fn default_units() -> Count {
    Count::new_const(2_000_000)
}
fn default_split() -> Percent {
    Percent::new_const(60.0)
}
fn default_slowdown() -> Factor {
    Factor::new_const(1.0)
}
fn default_libc_pct() -> Percent {
    Percent::new_const(0.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantedParams {
    /// Units of work per iteration, split between the two functions.
    #[serde(default = "default_units")]
    work_units: Count,
    /// Percentage of the units done by `planted_hotspot_major`.
    #[serde(default = "default_split")]
    major_pct: Percent,
    /// Multiplies the work of every iteration (a planted regression).
    #[serde(default = "default_slowdown")]
    slowdown: Factor,
    /// Share of each iteration's time, in %, spent copying memory with
    /// libc's memcpy from `planted_hotspot_libc` (each iteration copies
    /// until the copy is that share of its own CPU time; the measured share
    /// is reported).
    #[serde(default = "default_libc_pct")]
    libc_pct: Percent,
    /// A planted fault: the case panics on this call of its iteration
    /// (warm-up calls counted), to check that a panic becomes a failed
    /// benchmark with its message while the day goes on.
    #[serde(default)]
    panic_at_iteration: Option<Count>,
}

const ITERATION_MS: MetricDef =
    MetricDef::duration_ms("iteration_ms", "one iteration: both functions");
const UNITS_PER_S: MetricDef = MetricDef::quantity(
    "units_per_s",
    "units/s",
    true,
    "work units done ÷ iteration time",
);

pub struct PlantedWork;

impl Kind for PlantedWork {
    type Params = PlantedParams;

    fn name(&self) -> &'static str {
        "planted_work"
    }

    fn description(&self) -> &'static str {
        "synthetic work split between planted_hotspot_major, planted_hotspot_minor and (memcpy in libc) planted_hotspot_libc in known shares, optionally slowed by a known factor: checks profiles and regression verdicts"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[ITERATION_MS, UNITS_PER_S]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(ITERATION_MS.name),
            throughput: Some(UNITS_PER_S.name),
        }
    }

    fn check(&self, p: &PlantedParams, _models: &Models) -> Result<(), ParamProblem> {
        if p.libc_pct.get() >= 100.0 {
            return Err(ParamProblem::at(
                "libc_pct",
                format!(
                    "found {}; allowed: a percentage from 0 up to (not including) 100",
                    p.libc_pct
                ),
                "e.g. libc_pct = 25",
            ));
        }
        Ok(())
    }

    fn planned_cases(&self, _p: &PlantedParams) -> usize {
        1
    }

    fn memory(&self, p: &PlantedParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        Ok(if p.libc_pct.get() > 0.0 {
            MemoryNeed::new(2 * COPY_BYTES as u64, "two copy buffers of 8 MiB")
        } else {
            MemoryNeed::small()
        })
    }

    fn prepare(
        &self,
        p: PlantedParams,
        _ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let total = (p.work_units.get() as f64 * p.slowdown.get()).round() as u64;
        let major = (total as f64 * p.major_pct.get() / 100.0).round() as u64;
        let copies = p.libc_pct.get() > 0.0;
        let clock = PartClock::choose();
        let buffer = |fill: u8| {
            if copies {
                vec![fill; COPY_BYTES]
            } else {
                Vec::new()
            }
        };
        let (from, to) = (buffer(0x5A), buffer(0));
        let mut functions = vec!["planted_hotspot_major", "planted_hotspot_minor"];
        if copies {
            functions.push("planted_hotspot_libc");
        }
        let context = json!({
            "functions": functions,
            "major_pct": p.major_pct.get(),
            "libc_pct": p.libc_pct.get(),
            "parts_clock": clock.name(),
            "copy_sizing": "each iteration copies until the copy has taken libc_pct of the iteration's time on the parts' clock, in blocks of up to 8 MiB sized from the copy's speed so far (a 256 KiB probe first)",
            "slowdown": p.slowdown.get(),
        });
        Ok(PreparedBenchmark::new(vec![Box::new(PlantedCase {
            work_units: p.work_units.get(),
            major,
            minor: total - major,
            state: 0x2545_F491_4F6C_DD1D,
            libc_fraction: p.libc_pct.get() / 100.0,
            copies,
            clock,
            copy_bytes_per_s: None,
            from,
            to,
            timed: [Duration::ZERO; 3],
            total: Duration::ZERO,
            calls: 0,
            panic_at_call: p.panic_at_iteration.map(Count::get),
        })])
        .with_context(context))
    }
}

struct PlantedCase {
    /// Before the slowdown: a slowed run keeps the case's name.
    work_units: u64,
    major: u64,
    minor: u64,
    state: u64,
    /// libc_pct as a fraction.
    libc_fraction: f64,
    copies: bool,
    clock: PartClock,
    /// The copy's speed in the last iteration, to size the next one's.
    copy_bytes_per_s: Option<f64>,
    from: Vec<u8>,
    to: Vec<u8>,
    /// CPU time in each planted function over the timed iterations.
    timed: [Duration; 3],
    /// CPU time of the timed iterations.
    total: Duration,
    calls: u64,
    panic_at_call: Option<u64>,
}

const PLANTED: [&str; 3] = [
    "planted_hotspot_major",
    "planted_hotspot_minor",
    "planted_hotspot_libc",
];

impl BenchmarkCase for PlantedCase {
    fn label(&self) -> String {
        format!("units={}", self.work_units)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"major_units": self.major, "minor_units": self.minor})
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        self.calls += 1;
        if self.panic_at_call == Some(self.calls) {
            panic!("planted panic at iteration {}", self.calls);
        }
        let started = Instant::now();
        // The parts are timed on the thread's CPU clock, the one the
        // profiler samples: on a busy machine the wall clock also counts
        // the waits for a core, which no sample sees.
        let clock = self.clock;
        let c0 = clock.now()?;
        self.state = planted_hotspot_major(self.major, self.state);
        let c1 = clock.now()?;
        self.state = planted_hotspot_minor(self.minor, self.state);
        let c2 = clock.now()?;
        let mut c3 = c2;
        if self.copies {
            // Copy until the copy is libc_fraction of this iteration, the
            // warm-up's included: the profile samples every iteration.
            let spin = c2.saturating_sub(c0).as_secs_f64();
            let wanted = spin * self.libc_fraction / (1.0 - self.libc_fraction);
            let block = self.to.len().min(self.from.len());
            let mut copied = 0usize;
            for _ in 0..MAX_COPY_BLOCKS {
                let spent = c3.saturating_sub(c2).as_secs_f64();
                if spent >= wanted || block == 0 {
                    break;
                }
                // Sized from this iteration's rate once there is one, else
                // the last iteration's, else a small probe: a whole block
                // first would overshoot libc_pct when the spin is short.
                let rate = if copied > 0 && spent > 0.0 {
                    Some(copied as f64 / spent)
                } else {
                    self.copy_bytes_per_s
                };
                let bytes = rate.map_or(PROBE_BYTES.min(block), |bytes_per_s| {
                    (((wanted - spent) * bytes_per_s) as usize).clamp(1, block)
                });
                planted_hotspot_libc(&mut self.to, &self.from, bytes);
                copied += bytes;
                c3 = clock.now()?;
            }
            let spent = c3.saturating_sub(c2).as_secs_f64();
            if copied > 0 && spent > 0.0 {
                self.copy_bytes_per_s = Some(copied as f64 / spent);
            }
        }
        let elapsed = started.elapsed();
        let parts = [
            c1.saturating_sub(c0),
            c2.saturating_sub(c1),
            c3.saturating_sub(c2),
        ];
        for (slot, spent) in self.timed.iter_mut().zip(parts) {
            *slot += spent;
        }
        self.total += c3.saturating_sub(c0);
        obs.duration(&ITERATION_MS, elapsed);
        obs.value(
            &UNITS_PER_S,
            (self.major + self.minor) as f64 / elapsed.as_secs_f64(),
        );
        Ok(())
    }

    fn start_timed(&mut self) {
        self.timed = [Duration::ZERO; 3];
        self.total = Duration::ZERO;
    }

    fn conclude(&mut self) -> Option<Conclusion> {
        let total = self.total.as_secs_f64();
        if total <= 0.0 {
            return None;
        }
        let used = if self.copies { 3 } else { 2 };
        let shares = PLANTED[..used]
            .iter()
            .zip(self.timed)
            .map(|(name, spent)| (name.to_string(), 100.0 * spent.as_secs_f64() / total))
            .collect();
        Some(Conclusion {
            failure: None,
            findings: Findings::TimeShares(TimeShareFindings {
                time_share_pct: shares,
                time_share_rule: format!(
                    "each planted function's time on {} around its call over the timed iterations, ÷ the iterations' total time on that clock",
                    self.clock.name()
                ),
            }),
            warnings: Vec::new(),
        })
    }
}
