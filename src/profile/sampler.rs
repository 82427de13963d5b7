use std::time::Instant;

use pprof::protos::Message;

use super::{FoldedStacks, ProfileError};

/// pprof's default; the timer tops out near 250 Hz on the kernels this was
/// measured on, so asking for more mostly adds nothing.
pub const DEFAULT_PROFILE_HZ: u32 = 99;
pub const MAX_PROFILE_HZ: u32 = 1000;

/// A running sampler. pprof allows one per process: the runner profiles one
/// benchmark at a time.
pub struct CpuSampler {
    guard: pprof::ProfilerGuard<'static>,
    frequency_hz: u32,
    started: Instant,
}

/// What a finished sampler collected.
pub struct CpuProfile {
    pub folded: FoldedStacks,
    /// The pprof protobuf (gzip not applied), for `go tool pprof` and speedscope.
    pub pprof: Vec<u8>,
    pub frequency_hz: u32,
    pub duration_s: f64,
}

impl CpuSampler {
    pub fn start(frequency_hz: u32) -> Result<Self, ProfileError> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(frequency_hz.clamp(1, MAX_PROFILE_HZ) as i32)
            // Samples taken inside these libraries would unwind through
            // signal frames that crash some unwinders.
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| ProfileError::Start(e.to_string()))?;
        Ok(Self {
            guard,
            frequency_hz,
            started: Instant::now(),
        })
    }

    /// Builds the profile. The report must be built before the guard is
    /// dropped: dropping it discards the samples.
    pub fn finish(self) -> Result<CpuProfile, ProfileError> {
        let duration_s = self.started.elapsed().as_secs_f64();
        let report = self
            .guard
            .report()
            .build()
            .map_err(|e| ProfileError::Build(e.to_string()))?;
        let pprof = report
            .pprof()
            .map_err(|e| ProfileError::Build(e.to_string()))?
            .encode_to_vec();
        let folded = FoldedStacks::from_stacks(report.data.iter().map(|(frames, count)| {
            // Frame 0 is the innermost; inlined symbols within a frame are
            // listed innermost first too.
            let mut stack = vec![frames.thread_name_or_id()];
            for frame in frames.frames.iter().rev() {
                for symbol in frame.iter().rev() {
                    stack.push(symbol.name());
                }
            }
            (stack, u64::try_from(*count).unwrap_or(0))
        }));
        drop(self.guard);
        Ok(CpuProfile {
            folded,
            pprof,
            frequency_hz: self.frequency_hz,
            duration_s,
        })
    }
}
