//! A profiled second pass of a benchmark: the reported results come from
//! the first, unprofiled pass; the profile and the profiler's measured
//! overhead come from this one.

use std::path::{Path, PathBuf};

use crate::model::{BenchmarkResult, ProfileOverhead, ProfileRecord};
use crate::output::write_atomically;
use crate::profile::{CpuSampler, FlameGraphTitle, delivered_rate, render_flamegraph};

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

/// A sampler started at the effective rate, and how that rate was chosen.
pub(super) struct StartedSampler {
    sampler: CpuSampler,
    rate: SamplingRate,
    /// For the day's warnings: the requested rate was above the delivered
    /// one, or the delivered one could not be measured.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct SamplingRate {
    requested_hz: u32,
    effective_hz: u32,
    delivered_hz: Option<f64>,
}

/// The requested rate, capped at the delivered one: samples asked for
/// beyond it would never be taken, and counting them as lost would make
/// the lost share the largest "function" of every profile.
fn capped(requested_hz: u32, delivered_hz: f64) -> SamplingRate {
    let effective_hz = if f64::from(requested_hz) <= delivered_hz {
        requested_hz
    } else {
        // The timer takes whole hertz: below the ceiling, not at its noise.
        (delivered_hz.floor() as u32).max(1)
    };
    SamplingRate {
        requested_hz,
        effective_hz,
        delivered_hz: Some(delivered_hz),
    }
}

fn cap_warning(benchmark: &str, rate: SamplingRate) -> Option<String> {
    let delivered = rate.delivered_hz?;
    (rate.effective_hz < rate.requested_hz).then(|| {
        format!(
            "{benchmark}: profile_hz {} Hz is above the {delivered:.0} Hz the profiler delivers on this machine (measured); sampled at {} Hz instead",
            rate.requested_hz, rate.effective_hz
        )
    })
}

/// Starts a sampler at `requested_hz`, capped at the rate measured to be
/// delivered here.
pub(super) fn start(benchmark: &str, requested_hz: u32) -> Result<StartedSampler, String> {
    let (rate, warning) = match delivered_rate() {
        Ok(measured) => {
            let rate = capped(requested_hz, measured.delivered_hz);
            (rate, cap_warning(benchmark, rate))
        }
        Err(e) => (
            SamplingRate {
                requested_hz,
                effective_hz: requested_hz,
                delivered_hz: None,
            },
            Some(format!(
                "{benchmark}: sampled at {requested_hz} Hz, not checked against the delivered rate: {e}"
            )),
        ),
    };
    let sampler = CpuSampler::start(rate.effective_hz).map_err(|e| e.to_string())?;
    Ok(StartedSampler {
        sampler,
        rate,
        warning,
    })
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
    started: StartedSampler,
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
    let StartedSampler { sampler, rate, .. } = started;
    let mut record = ProfileRecord {
        benchmark: benchmark.to_string(),
        requested_hz: Some(rate.requested_hz),
        effective_hz: rate.effective_hz,
        delivered_hz: rate.delivered_hz,
        samples: 0,
        duration_s: 0.0,
        folded_path: None,
        pprof_path: None,
        flamegraph_path: None,
        overhead: overhead(unprofiled, profiled),
        cpu_s: None,
        lost_samples: 0,
        lost_share_pct: None,
        error: None,
    };
    let profile = match sampler.finish() {
        Ok(p) => p,
        Err(e) => {
            record.error = Some(e.to_string());
            return record;
        }
    };
    record.effective_hz = profile.frequency_hz;
    record.samples = profile.recorded_samples;
    record.duration_s = profile.duration_s;
    record.cpu_s = profile.cpu_s;
    record.lost_samples = profile.lost_samples;
    record.lost_share_pct = profile.lost_share_pct();
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
            profile.recorded_samples
        ),
        subtitle: Some(format!(
            "campaign {campaign}; pprof at {} Hz over {:.1} s{}",
            profile.frequency_hz,
            profile.duration_s,
            profile
                .lost_share_pct()
                .filter(|pct| *pct > 0.0)
                .map_or(String::new(), |pct| format!(
                    "; {pct:.1} % of the samples lost (not drawn)"
                ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_above_the_delivered_one_is_capped_and_warned() {
        let rate = capped(1000, 249.6);
        assert_eq!((rate.requested_hz, rate.effective_hz), (1000, 249));
        let warning = cap_warning("decode", rate).unwrap();
        assert!(
            warning.contains("1000 Hz") && warning.contains("250 Hz") && warning.contains("249 Hz"),
            "{warning}"
        );
        // The default stays as it is, without a word.
        let rate = capped(199, 249.6);
        assert_eq!(rate.effective_hz, 199);
        assert_eq!(cap_warning("decode", rate), None);
        assert_eq!(capped(5, 0.4).effective_hz, 1);
    }
}
