//! `storage_write`: put latency and throughput into the embedded blob
//! store per value size, durable against non-durable commits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use super::shared::{check_sizes, default_value_kib, largest_value, store_error, value_for};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis, scratch_folder,
};
use crate::campaign::bounds::{Count, Kib};
use crate::components::storage::{BlobStore, CommitMode};

fn default_commit() -> Vec<CommitMode> {
    vec![CommitMode::Durable, CommitMode::NonDurable]
}

fn default_write_ops() -> Count {
    Count::new_const(100)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    #[serde(default = "default_value_kib")]
    value_kib: Vec<Kib>,
    #[serde(default = "default_commit")]
    commit: Vec<CommitMode>,
    /// Puts per timed iteration.
    #[serde(default = "default_write_ops")]
    ops: Count,
    /// Folder of the database files; default: the run's scratch folder.
    dir: Option<PathBuf>,
}

const PUT_MS: MetricDef =
    MetricDef::duration_ms("put_ms", "one put in its own transaction, commit included");
const STORAGE_WRITE_OPS_PER_S: MetricDef =
    MetricDef::quantity("ops_per_s", "ops/s", true, "puts ÷ time spent in put");
const STORAGE_WRITE_MB_PER_S: MetricDef = MetricDef::quantity(
    "mb_per_s",
    "MB/s",
    true,
    "value bytes written ÷ time spent in put",
);

pub struct StorageWrite;

impl Kind for StorageWrite {
    type Params = WriteParams;

    fn name(&self) -> &'static str {
        "storage_write"
    }

    fn description(&self) -> &'static str {
        "put latency and throughput per value size, durable vs non-durable commits"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[PUT_MS, STORAGE_WRITE_OPS_PER_S, STORAGE_WRITE_MB_PER_S]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(PUT_MS.name),
            throughput: Some(STORAGE_WRITE_OPS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(SweepAxis {
            parameter: "value_bytes",
            title: "value size (bytes)",
            series_by: &["commit"],
        })
    }

    fn check(&self, p: &WriteParams, _models: &Models) -> Result<(), ParamProblem> {
        check_sizes(&p.value_kib)?;
        if p.commit.is_empty() {
            return Err(ParamProblem::at(
                "commit",
                "found an empty list; allowed: durable, non_durable or both",
                "e.g. commit = [\"durable\", \"non_durable\"]",
            ));
        }
        Ok(())
    }

    fn planned_cases(&self, p: &WriteParams) -> usize {
        p.value_kib.len() * p.commit.len()
    }

    /// One value buffer; the values themselves go to disk.
    fn memory(&self, p: &WriteParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        Ok(MemoryNeed::new(
            largest_value(&p.value_kib) * 2,
            "the largest value, twice (buffer and transaction)",
        ))
    }

    fn prepare(
        &self,
        p: WriteParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let folder = scratch_folder(
            p.dir.as_deref().unwrap_or(&ctx.scratch_dir),
            "storage_write-",
        )?;
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for kib in &p.value_kib {
            for &mode in &p.commit {
                let path = folder.path().join(format!("write-{kib}k-{mode:?}.redb"));
                cases.push(Box::new(WriteCase {
                    store: BlobStore::open(&path, 0).map_err(store_error)?,
                    value_bytes: kib.usize() * 1024,
                    mode,
                    ops: p.ops.usize(),
                    next_key: 0,
                    value: Vec::new(),
                    _folder: Arc::clone(&folder),
                }));
            }
        }
        Ok(PreparedBenchmark::new(cases).with_context(
            json!({ "database": "redb", "folder": folder.path().display().to_string() }),
        ))
    }
}

struct WriteCase {
    store: BlobStore,
    value_bytes: usize,
    mode: CommitMode,
    ops: usize,
    next_key: u64,
    value: Vec<u8>,
    _folder: Arc<tempfile::TempDir>,
}

impl BenchmarkCase for WriteCase {
    fn label(&self) -> String {
        format!(
            "{}k/{}",
            self.value_bytes / 1024,
            serde_plain_mode(self.mode)
        )
    }

    fn parameters(&self) -> serde_json::Value {
        json!({ "value_bytes": self.value_bytes, "commit": self.mode, "ops_per_iteration": self.ops })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        // Throughput counts only time inside `put`, not value generation.
        let mut in_puts = std::time::Duration::ZERO;
        for _ in 0..self.ops {
            value_for(self.next_key, self.value_bytes, &mut self.value);
            let op = Instant::now();
            self.store
                .put(self.next_key, &self.value, self.mode)
                .map_err(store_error)?;
            let took = op.elapsed();
            in_puts += took;
            obs.duration(&PUT_MS, took);
            self.next_key += 1;
        }
        let elapsed = in_puts.as_secs_f64();
        obs.value(&STORAGE_WRITE_OPS_PER_S, self.ops as f64 / elapsed);
        obs.value(
            &STORAGE_WRITE_MB_PER_S,
            (self.ops * self.value_bytes) as f64 / 1e6 / elapsed,
        );
        Ok(())
    }
}

fn serde_plain_mode(mode: CommitMode) -> &'static str {
    match mode {
        CommitMode::Durable => "durable",
        CommitMode::NonDurable => "non_durable",
    }
}
