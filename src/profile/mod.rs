//! CPU profiles: pprof's timer-based sampler, collapsed ("folded") stacks,
//! the pprof protobuf, and flame graphs rendered with inferno.
//!
//! pprof's own `flamegraph` feature is off on purpose: it pulls an older
//! inferno; the folded lines are built here from `report.data` instead.

mod flamegraph;
mod folded;
mod sampler;

pub use flamegraph::{FlameGraphTitle, render_differential, render_flamegraph};
pub use folded::{FoldedStacks, FunctionSamples};
pub use sampler::{CpuProfile, CpuSampler, DEFAULT_PROFILE_HZ, MAX_PROFILE_HZ};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot start the CPU profiler: {0}")]
    Start(String),
    #[error("cannot build the CPU profile: {0}")]
    Build(String),
    #[error(
        "the profile has no samples: profile for longer (seconds, not milliseconds) or raise profile_hz"
    )]
    Empty,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a folded stack line (expected `frame;frame;… COUNT`)")]
    Parse { path: PathBuf, line: usize },
    #[error("cannot render the flame graph: {0}")]
    Render(std::io::Error),
}
