//! `planted_work`: a synthetic workload with known properties, for checking
//! the tool itself on this machine. Its time is split between two named
//! functions in a known ratio (does the profiler and the bottleneck ranking
//! find that split?), and it can be slowed down by a known factor (does the
//! regression detector flag it, and only it?).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Headline, MetricDef, Observations,
    PreparedBenchmark,
};
use crate::campaign::ResolvedModel;

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

fn default_units() -> u64 {
    2_000_000
}
fn default_split() -> f64 {
    60.0
}
fn default_slowdown() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlantedParams {
    /// Units of work per iteration, split between the two functions.
    #[serde(default = "default_units")]
    work_units: u64,
    /// Percentage of the units done by `planted_hotspot_major`.
    #[serde(default = "default_split")]
    major_pct: f64,
    /// Multiplies the work of every iteration (a planted regression).
    #[serde(default = "default_slowdown")]
    slowdown: f64,
}

pub struct PlantedWork;

impl BenchmarkKind for PlantedWork {
    fn name(&self) -> &'static str {
        "planted_work"
    }

    fn description(&self) -> &'static str {
        "synthetic work split between planted_hotspot_major and planted_hotspot_minor in a known ratio, optionally slowed by a known factor: checks profiles and regression verdicts"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("iteration_ms", "one iteration: both functions"),
            MetricDef::quantity(
                "units_per_s",
                "units/s",
                true,
                "work units done ÷ iteration time",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "iteration_ms",
            throughput: "units_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        _models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: PlantedParams = params::parse(params)?;
        if !(0.0..=100.0).contains(&p.major_pct) {
            return Err(ParamProblem::at(
                "major_pct",
                "major_pct is a percentage between 0 and 100",
                "e.g. major_pct = 60",
            ));
        }
        if !(p.slowdown.is_finite() && p.slowdown > 0.0) || p.work_units == 0 {
            return Err(ParamProblem::at(
                "slowdown",
                "slowdown must be a positive factor and work_units at least 1",
                "e.g. slowdown = 2.0",
            ));
        }
        Ok(())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        _ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: PlantedParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let total = (p.work_units as f64 * p.slowdown).round() as u64;
        let major = (total as f64 * p.major_pct / 100.0).round() as u64;
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({
                "functions": ["planted_hotspot_major", "planted_hotspot_minor"],
                "major_pct": p.major_pct,
                "slowdown": p.slowdown,
            }),
            cases: vec![Box::new(PlantedCase {
                work_units: p.work_units,
                major,
                minor: total - major,
                state: 0x2545_F491_4F6C_DD1D,
            })],
            warnings: Vec::new(),
        })
    }
}

struct PlantedCase {
    /// Before the slowdown: a slowed run keeps the case's name.
    work_units: u64,
    major: u64,
    minor: u64,
    state: u64,
}

impl BenchmarkCase for PlantedCase {
    fn label(&self) -> String {
        format!("units={}", self.work_units)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({"major_units": self.major, "minor_units": self.minor})
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let started = Instant::now();
        self.state = planted_hotspot_major(self.major, self.state);
        self.state = planted_hotspot_minor(self.minor, self.state);
        let elapsed = started.elapsed();
        obs.duration("iteration_ms", elapsed);
        obs.value(
            "units_per_s",
            (self.major + self.minor) as f64 / elapsed.as_secs_f64(),
        );
        Ok(())
    }
}
