//! A profiled second pass of a benchmark: the reported results come from
//! the first, unprofiled pass; the profile and the profiler's measured
//! overhead come from this one.

use std::path::{Path, PathBuf};

use crate::model::{BenchmarkResult, ProfileOverhead, ProfileRecord};
use crate::output::write_atomically;
use crate::profile::{CpuSampler, FlameGraphTitle, render_flamegraph};

/// Which benchmarks get a profiled pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileSelection {
    /// Those with `profile = true` in the campaign.
    AsCampaignSays,
    /// Every benchmark (`--profile`).
    All,
    /// None (a confirming re-run: its profile would replace the night's).
    Off,
}

impl ProfileSelection {
    pub fn profiles(self, spec_says: bool) -> bool {
        match self {
            Self::AsCampaignSays => spec_says,
            Self::All => true,
            Self::Off => false,
        }
    }
}

/// Where profiles go and how often to sample.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    pub selection: ProfileSelection,
    /// Overrides each benchmark's `profile_hz`.
    pub frequency_hz: Option<u32>,
    pub raw_dir: PathBuf,
    pub flame_dir: PathBuf,
}

pub(super) fn start(frequency_hz: u32) -> Result<CpuSampler, String> {
    CpuSampler::start(frequency_hz).map_err(|e| e.to_string())
}

/// What a profile is of: its files are named and titled after it.
pub(super) struct ProfiledBenchmark<'a> {
    pub benchmark: &'a str,
    pub day: u32,
    pub run_id: &'a str,
    pub campaign: &'a str,
}

/// Writes the profile's files and builds its record.
pub(super) fn finish(
    sampler: CpuSampler,
    of: &ProfiledBenchmark<'_>,
    options: &ProfileOptions,
    unprofiled: &[BenchmarkResult],
    profiled: &[BenchmarkResult],
) -> ProfileRecord {
    let ProfiledBenchmark {
        benchmark,
        day,
        run_id,
        campaign,
    } = *of;
    let mut record = ProfileRecord {
        benchmark: benchmark.to_string(),
        frequency_hz: 0,
        samples: 0,
        duration_s: 0.0,
        folded_path: None,
        pprof_path: None,
        flamegraph_path: None,
        overhead: overhead(unprofiled, profiled),
        cpu_s: None,
        unattributed_samples: 0,
        error: None,
    };
    let profile = match sampler.finish() {
        Ok(p) => p,
        Err(e) => {
            record.error = Some(e.to_string());
            return record;
        }
    };
    record.frequency_hz = profile.frequency_hz;
    record.samples = profile.folded.total_samples();
    record.duration_s = profile.duration_s;
    record.cpu_s = profile.cpu_s;
    record.unattributed_samples = profile.unattributed_samples;
    let write = |path: PathBuf, bytes: &[u8]| -> Result<String, String> {
        write_atomically(&path, bytes).map_err(|e| e.to_string())?;
        Ok(path.display().to_string())
    };
    let mut errors = Vec::new();
    // Each run's own files: a later day or run never overwrites the
    // profile an earlier report points to.
    let file = |dir: &Path, ext: &str| dir.join(format!("day_{day}_{run_id}_{benchmark}.{ext}"));
    match write(
        file(&options.raw_dir, "folded"),
        profile.folded.to_text().as_bytes(),
    ) {
        Ok(p) => record.folded_path = Some(p),
        Err(e) => errors.push(e),
    }
    match write(file(&options.raw_dir, "pb"), &profile.pprof) {
        Ok(p) => record.pprof_path = Some(p),
        Err(e) => errors.push(e),
    }
    let title = FlameGraphTitle {
        title: format!(
            "{benchmark} — day {day} — {} samples",
            profile.folded.total_samples()
        ),
        subtitle: Some(format!(
            "campaign {campaign}; pprof at {} Hz over {:.1} s",
            profile.frequency_hz, profile.duration_s
        )),
    };
    match render_flamegraph(&profile.folded, &title)
        .map_err(|e| e.to_string())
        .and_then(|svg| write(file(&options.flame_dir, "svg"), &svg))
    {
        Ok(p) => record.flamegraph_path = Some(p),
        Err(e) => errors.push(format!("flame graph: {e}")),
    }
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    record
}

/// Case by case, the headline metric without and with the profiler.
fn overhead(unprofiled: &[BenchmarkResult], profiled: &[BenchmarkResult]) -> Vec<ProfileOverhead> {
    unprofiled
        .iter()
        .filter_map(|base| {
            let with = profiled.iter().find(|p| p.case_id == base.case_id)?;
            if let (Some(metric), Some(a), Some(b)) =
                (&base.latency_metric, base.mean_ms, with.mean_ms)
            {
                return Some(ProfileOverhead {
                    case: base.case_id.clone(),
                    metric: metric.clone(),
                    unprofiled_mean: a,
                    profiled_mean: b,
                    slowdown: b / a,
                });
            }
            let (metric, a, b) = (
                base.throughput_metric.as_ref()?,
                base.throughput?,
                with.throughput?,
            );
            Some(ProfileOverhead {
                case: base.case_id.clone(),
                metric: metric.clone(),
                unprofiled_mean: a,
                profiled_mean: b,
                slowdown: a / b,
            })
        })
        .collect()
}
