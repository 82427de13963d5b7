use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use pprof::protos::Message;

use super::{FoldedStacks, ProfileError};
use crate::machine::process_cpu_seconds;

/// What the notes measured: the timer tops out near 250 Hz on the kernels
/// this runs on, and 199 Hz stays clear of it and of 100 Hz periodic work.
pub const DEFAULT_PROFILE_HZ: u32 = 199;
/// The most a campaign may ask for; what it gets is capped by
/// [`delivered_rate`].
pub const MAX_PROFILE_HZ: u32 = 1000;

/// CPU time the rate probe spins for: about 60 samples at 250 Hz, so the
/// measured rate is good to a few per cent, for a fraction of a second
/// once per process.
const PROBE_CPU_S: f64 = 0.3;

/// A running sampler. pprof allows one per process: the runner profiles one
/// benchmark at a time.
pub struct CpuSampler {
    guard: pprof::ProfilerGuard<'static>,
    frequency_hz: u32,
    started: Instant,
    cpu_at_start_s: Option<f64>,
}

/// What a finished sampler collected.
pub struct CpuProfile {
    /// The samples the profiler recorded, and nothing else: the samples it
    /// lost are counted in `lost_samples`, not drawn as a stack.
    pub folded: FoldedStacks,
    /// The pprof protobuf (gzip not applied), for `go tool pprof` and speedscope.
    pub pprof: Vec<u8>,
    /// The rate the timer was set to.
    pub frequency_hz: u32,
    pub duration_s: f64,
    /// The process's CPU time (user + system) while sampling.
    pub cpu_s: Option<f64>,
    /// Samples the profiler recorded.
    pub recorded_samples: u64,
    /// CPU time × frequency − recorded samples, when positive: samples
    /// lost (taken inside the unwinder, or while the profiler was busy).
    pub lost_samples: u64,
}

impl CpuProfile {
    /// The lost samples' share of all the CPU time's samples (recorded and
    /// lost), in %; unknown without the CPU time.
    pub fn lost_share_pct(&self) -> Option<f64> {
        self.cpu_s?;
        let all = self.recorded_samples + self.lost_samples;
        (all > 0).then(|| 100.0 * self.lost_samples as f64 / all as f64)
    }
}

/// The sampling rate the profiler delivers on this machine, measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveredRate {
    /// Recorded samples per second of process CPU time, with the timer
    /// asked for [`MAX_PROFILE_HZ`].
    pub delivered_hz: f64,
    /// What the probe ran on.
    pub probe_cpu_s: f64,
    pub probe_samples: u64,
}

fn profiler(frequency_hz: u32) -> Result<pprof::ProfilerGuard<'static>, ProfileError> {
    pprof::ProfilerGuardBuilder::default()
        .frequency(frequency_hz.clamp(1, MAX_PROFILE_HZ) as i32)
        // Only the unwinder's own library: a sample taken while a
        // thread is inside libgcc's unwinder (a panic unwinding) would
        // re-enter it while its caches are half updated. Samples in
        // libc, the vDSO or libpthread are unwound and kept: on Linux,
        // libgcc finds their frame tables without taking a lock
        // (no frames are registered at run time, and glibc ≥ 2.35
        // offers the lock-free _dl_find_object). Whatever is still
        // lost is counted from the CPU time.
        .blocklist(&["libgcc"])
        .build()
        .map_err(|e| ProfileError::Start(e.to_string()))
}

/// The rate the sampler delivers here, measured once per process and kept:
/// the timer asked for [`MAX_PROFILE_HZ`] while this thread spins for
/// [`PROBE_CPU_S`] of CPU time. Kernels fire the profiling timer from
/// their scheduler tick, so it cannot deliver more than the tick rate per
/// CPU-second whatever it is asked for; the probe finds that ceiling.
/// Must not be called while a [`CpuSampler`] runs (one profiler per process).
pub fn delivered_rate() -> Result<DeliveredRate, ProfileError> {
    static MEASURED: OnceLock<Result<DeliveredRate, String>> = OnceLock::new();
    MEASURED
        .get_or_init(|| probe().map_err(|e| e.to_string()))
        .clone()
        .map_err(ProfileError::Probe)
}

fn probe() -> Result<DeliveredRate, ProfileError> {
    let no_cpu_time = || ProfileError::Probe("the process's CPU time cannot be read".into());
    let guard = profiler(MAX_PROFILE_HZ)?;
    let start = process_cpu_seconds().ok_or_else(no_cpu_time)?;
    let mut spent = 0.0;
    let mut x = 0x9e37_79b9_u64;
    while spent < PROBE_CPU_S {
        // Arithmetic only: no allocation or system call for the sampler
        // to land in, between the CPU-time readings.
        for _ in 0..200_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).rotate_left(7));
        }
        spent = process_cpu_seconds().ok_or_else(no_cpu_time)? - start;
    }
    let report = guard
        .report()
        .build_unresolved()
        .map_err(|e| ProfileError::Build(e.to_string()))?;
    let samples: u64 = report
        .data
        .values()
        .map(|count| u64::try_from(*count).unwrap_or(0))
        .sum();
    drop(guard);
    Ok(DeliveredRate {
        delivered_hz: samples as f64 / spent,
        probe_cpu_s: spent,
        probe_samples: samples,
    })
}

impl CpuSampler {
    pub fn start(frequency_hz: u32) -> Result<Self, ProfileError> {
        let frequency_hz = frequency_hz.clamp(1, MAX_PROFILE_HZ);
        let guard = profiler(frequency_hz)?;
        Ok(Self {
            guard,
            frequency_hz,
            started: Instant::now(),
            cpu_at_start_s: process_cpu_seconds(),
        })
    }

    /// Builds the profile. The report must be built before the guard is
    /// dropped: dropping it discards the samples.
    pub fn finish(self) -> Result<CpuProfile, ProfileError> {
        let duration_s = self.started.elapsed().as_secs_f64();
        let cpu_s = process_cpu_seconds()
            .zip(self.cpu_at_start_s)
            .map(|(now, then)| (now - then).max(0.0));
        // Named from the unresolved samples, whose frames keep their
        // instruction pointers: the shared library of each frame comes from
        // its address. The resolved report gives the protobuf.
        let unresolved = self
            .guard
            .report()
            .build_unresolved()
            .map_err(|e| ProfileError::Build(e.to_string()))?;
        let mut modules = ModuleNames::default();
        // Each sample's stack, root first and thread name first: every
        // frame's symbols (inlined ones too), tagged with the shared library
        // it lies in. Mirrors pprof's own resolution: the signal handler's
        // frame and the trampoline after it are dropped, and so are frames
        // without a symbol.
        let folded = FoldedStacks::from_stacks(unresolved.data.iter().map(|(frames, count)| {
            let name =
                &frames.thread_name[..frames.thread_name_length.min(frames.thread_name.len())];
            let thread = if name.is_empty() {
                format!("{:?}", frames.thread_id)
            } else {
                String::from_utf8_lossy(name).into_owned()
            };
            let mut inner_first: Vec<String> = Vec::new();
            let mut walk = frames.frames.iter();
            while let Some(frame) = walk.next() {
                // Innermost first within the frame, as backtrace lists inlined symbols.
                let mut symbols = Vec::new();
                let mut in_handler = false;
                backtrace::resolve_frame(frame, |symbol| {
                    let name = symbol
                        .name()
                        .map_or_else(|| "Unknown".to_string(), |n| format!("{n:#}"));
                    in_handler |= name == "perf_signal_handler";
                    symbols.push(qualified(name, symbol.filename()));
                });
                if in_handler {
                    walk.next();
                    continue;
                }
                let library = modules.shared_library(frame.ip());
                inner_first.extend(symbols.into_iter().map(|s| match &library {
                    Some(library) => format!("{s} [{library}]"),
                    None => s,
                }));
            }
            let stack: Vec<String> = std::iter::once(thread)
                .chain(inner_first.into_iter().rev())
                .collect();
            (stack, u64::try_from(*count).unwrap_or(0))
        }));
        let pprof = self
            .guard
            .report()
            .build()
            .and_then(|report| report.pprof())
            .map_err(|e| ProfileError::Build(e.to_string()))?
            .encode_to_vec();
        drop(self.guard);
        let recorded_samples = folded.total_samples();
        let expected = cpu_s.map(|cpu| (cpu * f64::from(self.frequency_hz)).round() as u64);
        let lost_samples = expected.map_or(0, |e| e.saturating_sub(recorded_samples));
        Ok(CpuProfile {
            folded,
            pprof,
            frequency_hz: self.frequency_hz,
            duration_s,
            cpu_s,
            recorded_samples,
            lost_samples,
        })
    }
}

/// Inlined frames are named by the debug info without their module path
/// (`copy_nonoverlapping<u8>`); the crate their source file belongs to is
/// put in front (`core::copy_nonoverlapping<u8>`), so that rules about
/// crates apply to them as to the frames the symbol table names in full.
fn qualified(name: String, file: Option<&std::path::Path>) -> String {
    let unqualified = !name.contains("::") && !name.starts_with('<');
    match file.and_then(crate_of) {
        Some(krate) if unqualified => format!("{krate}::{name}"),
        _ => name,
    }
}

/// The crate a source file belongs to: the standard library's
/// (`…/library/core/src/…`), a registry crate's (`…/rayon-core-1.12.1/src/…`,
/// named with `_`), or this crate's own.
fn crate_of(file: &std::path::Path) -> Option<String> {
    let parts: Vec<&str> = file.iter().filter_map(|p| p.to_str()).collect();
    let src = parts.iter().rposition(|p| *p == "src")?;
    let folder = *parts.get(src.checked_sub(1)?)?;
    if src >= 2 && parts[src - 2] == "library" {
        return Some(folder.to_string());
    }
    if file.starts_with(env!("CARGO_MANIFEST_DIR")) || !file.is_absolute() {
        return Some(env!("CARGO_CRATE_NAME").to_string());
    }
    // `name-1.2.3`: the name is what precedes the version.
    let version_at = folder
        .match_indices('-')
        .map(|(i, _)| i)
        .find(|i| folder[i + 1..].starts_with(|c: char| c.is_ascii_digit()))?;
    Some(folder[..version_at].replace('-', "_"))
}

/// Which shared library an address lies in, by `dladdr`: `None` for the
/// program itself. Resolved after sampling, never in the signal handler.
#[derive(Default)]
struct ModuleNames {
    by_base: HashMap<usize, Option<String>>,
    program_base: Option<usize>,
}

impl ModuleNames {
    fn base_and_name(addr: *const libc::c_void) -> Option<(usize, String)> {
        // SAFETY: dladdr only reads the loader's tables and fills `info`.
        let info = unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            (libc::dladdr(addr, &mut info) != 0).then_some(info)
        }?;
        let name = if info.dli_fname.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null dli_fname is a NUL-terminated path owned
            // by the loader for the life of the process.
            unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
                .to_string_lossy()
                .into_owned()
        };
        Some((info.dli_fbase as usize, name))
    }

    fn shared_library(&mut self, addr: *mut libc::c_void) -> Option<String> {
        let program = *self.program_base.get_or_insert_with(|| {
            let here = ModuleNames::base_and_name as *const libc::c_void;
            Self::base_and_name(here).map_or(0, |(base, _)| base)
        });
        let (base, name) = Self::base_and_name(addr)?;
        if base == program {
            return None;
        }
        self.by_base
            .entry(base)
            .or_insert_with(|| {
                let file = name.rsplit('/').next().unwrap_or(&name).to_string();
                (!file.is_empty()).then_some(file)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn inlined_frames_get_the_crate_of_their_source_file() {
        let core = Path::new("/rustc/0123abcd/library/core/src/ptr/mod.rs");
        assert_eq!(
            qualified("copy_nonoverlapping<u8>".into(), Some(core)),
            "core::copy_nonoverlapping<u8>"
        );
        let rayon = Path::new(
            "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/rayon-core-1.12.1/src/join/mod.rs",
        );
        assert_eq!(
            qualified("join_context".into(), Some(rayon)),
            "rayon_core::join_context"
        );
        let ours = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/benchmarks/planted.rs"
        ));
        assert_eq!(qualified("spin".into(), Some(ours)), "campaign::spin");
        // Names that already carry a path, and frames without a file, stay.
        assert_eq!(qualified("a::b".into(), Some(core)), "a::b");
        assert_eq!(qualified("memcpy".into(), None), "memcpy");
    }
}
