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
pub use sampler::{
    CpuProfile, CpuSampler, DEFAULT_PROFILE_HZ, DeliveredRate, MAX_PROFILE_HZ, delivered_rate,
};

use std::path::PathBuf;

/// The thread and frame under which profiles written before the lost
/// samples were counted apart kept them (CPU time × frequency − recorded
/// samples): reading such a profile takes that stack out again
/// ([`FoldedStacks::take_lost`]), so it is never ranked as a function.
pub const UNATTRIBUTED_THREAD: &str = "[unattributed]";
pub const UNATTRIBUTED_FRAME: &str = "[unattributed: CPU time the sampler could not record]";

/// The shared library a folded frame was tagged with (`memcpy [libc.so.6]`),
/// if any: frames of the program itself carry no tag.
pub fn shared_library_of(frame: &str) -> Option<&str> {
    let open = frame.rfind(" [")?;
    frame[open + 2..]
        .strip_suffix(']')
        .filter(|m| m.contains(".so") || m.starts_with("linux-vdso") || m.starts_with("ld-"))
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot start the CPU profiler: {0}")]
    Start(String),
    #[error("cannot build the CPU profile: {0}")]
    Build(String),
    #[error("cannot measure the rate the profiler delivers: {0}")]
    Probe(String),
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
