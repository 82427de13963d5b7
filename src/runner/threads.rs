//! Cases of one benchmark at several thread counts. candle sizes its
//! quantized-matmul worker pool once per process, so a thread count cannot
//! change between cases of one process: the cases at this process's count
//! run here, and each other count runs in a child `campaign run --threads N`
//! restricted to that benchmark, whose results join this day's.

use std::path::Path;

use super::CancelFlag;
use super::child::ChildCommand;
use super::sitting::{Arm, run_child};
use crate::benchmarks::ConfiguredBenchmark;
use crate::campaign::{Benchmark, Campaign};
use crate::components::inference::DeviceSpec;
use crate::model::BenchmarkResult;

/// What a child run repeats of its parent's run.
pub struct ChildSettings<'a> {
    pub day: u32,
    pub quick: bool,
    pub device: DeviceSpec,
    pub scratch_dir: &'a Path,
    pub model_cache_dir: &'a Path,
}

/// Where a benchmark's cases run: whether any runs in this process, and
/// the other thread counts its cases ask for, one child each (none for a
/// benchmark without a `threads` grid, and none in a child, which never
/// starts children of its own).
pub fn thread_plan(
    configured: &ConfiguredBenchmark,
    process_threads: usize,
    is_child: bool,
) -> (bool, Vec<usize>) {
    let mut counts = configured.case_threads();
    let here = counts.is_empty() || counts.contains(&process_threads);
    counts.retain(|t| *t != process_threads);
    counts.sort_unstable();
    counts.dedup();
    if is_child {
        counts.clear();
    }
    (here, counts)
}

/// Runs the benchmark's cases at `threads` in a child process and returns
/// their results, or why there are none.
pub fn run_at_threads(
    campaign: &Campaign,
    opts: &ChildSettings<'_>,
    spec: &Benchmark,
    threads: usize,
    interrupt: &CancelFlag,
) -> Result<Vec<BenchmarkResult>, String> {
    let name = &spec.name;
    let fail = |why: String| format!("{name}: the cases at {threads} thread(s) did not run: {why}");
    let program = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let out = tempfile::Builder::new()
        .prefix(&format!(".threads-{threads}-"))
        .tempdir_in(opts.scratch_dir)
        .or_else(|_| {
            std::fs::create_dir_all(opts.scratch_dir)?;
            tempfile::Builder::new().tempdir_in(opts.scratch_dir)
        })
        .map_err(|e| {
            fail(format!(
                "no working folder in {}: {e}",
                opts.scratch_dir.display()
            ))
        })?;
    share_model_cache(opts.model_cache_dir, out.path());
    let toggle_json = match &campaign.toggle {
        Some(toggle) => Some(serde_json::to_string(toggle).map_err(|e| fail(e.to_string()))?),
        None => None,
    };
    let command = ChildCommand {
        only: vec![name.clone()],
        threads: Some(threads as u64),
        quick: opts.quick,
        device: Some(opts.device),
        toggle_json,
        thread_child: true,
        ..ChildCommand::new(opts.day, &campaign.path, out.path())
    };
    let child = run_child(Arm::Candidate, &program, &command, interrupt)
        .map_err(|e| fail(e.to_string()))?;
    Ok(child
        .report
        .results
        .into_iter()
        .filter(|r| r.benchmark == *name)
        .collect())
}

/// Lets a child run whose results folder is `out` load the models this
/// run already generated, instead of writing them again.
pub fn share_model_cache(cache: &Path, out: &Path) {
    #[cfg(unix)]
    {
        let cache = std::path::absolute(cache).unwrap_or_else(|_| cache.to_path_buf());
        let _ = std::fs::create_dir_all(&cache);
        let _ = std::os::unix::fs::symlink(cache, out.join("model_cache"));
    }
    #[cfg(not(unix))]
    let _ = (cache, out);
}
