//! `storage_read`: get latency per value size and key distribution from
//! the embedded blob store, with the hit ratio of the LRU cache in front.
//! Every read is compared with the value written for its key.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::shared::{check_sizes, default_value_kib, largest_value, store_error, value_for};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, SweepAxis, scratch_folder,
};
use crate::campaign::bounds::{Count, Entries, Kib, Shape};
use crate::components::storage::{BlobStore, CommitMode, ReadSource};
use crate::machine::checked_product;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyDistribution {
    Uniform,
    /// Key k+1 is (k+1)^-s as likely as key 0.
    Zipfian,
}

fn default_distributions() -> Vec<KeyDistribution> {
    vec![KeyDistribution::Uniform, KeyDistribution::Zipfian]
}

fn default_keys() -> Count {
    Count::new_const(1000)
}

fn default_read_ops() -> Count {
    Count::new_const(1000)
}

fn default_cache_entries() -> Entries {
    Entries::new_const(100)
}

fn default_zipf_s() -> Shape {
    Shape::new_const(1.0)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    #[serde(default = "default_value_kib")]
    value_kib: Vec<Kib>,
    #[serde(default = "default_distributions")]
    distribution: Vec<KeyDistribution>,
    #[serde(default = "default_zipf_s")]
    zipf_s: Shape,
    /// Keys written before timing starts.
    #[serde(default = "default_keys")]
    keys: Count,
    /// Entries in the LRU cache in front of the database; 0 for none.
    #[serde(default = "default_cache_entries")]
    cache_entries: Entries,
    #[serde(default = "default_read_ops")]
    ops: Count,
    dir: Option<PathBuf>,
}

const GET_MS: MetricDef =
    MetricDef::duration_ms("get_ms", "one get, from the cache or the database");
const STORAGE_READ_OPS_PER_S: MetricDef =
    MetricDef::quantity("ops_per_s", "ops/s", true, "gets ÷ time spent in get");
const CACHE_HIT_RATIO_PCT: MetricDef = MetricDef::quantity(
    "cache_hit_ratio_pct",
    "%",
    true,
    "gets served by the cache in the iteration",
);

pub struct StorageRead;

impl Kind for StorageRead {
    type Params = ReadParams;

    fn name(&self) -> &'static str {
        "storage_read"
    }

    fn description(&self) -> &'static str {
        "get latency per value size and key distribution, with the hit ratio of the cache in front"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[GET_MS, STORAGE_READ_OPS_PER_S, CACHE_HIT_RATIO_PCT]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(GET_MS.name),
            throughput: Some(STORAGE_READ_OPS_PER_S.name),
        }
    }

    fn sweep_axis(&self) -> Option<SweepAxis> {
        Some(SweepAxis {
            parameter: "value_bytes",
            title: "value size (bytes)",
            series_by: &["distribution"],
        })
    }

    fn check(&self, p: &ReadParams, _models: &Models) -> Result<(), ParamProblem> {
        check_sizes(&p.value_kib)?;
        if p.distribution.is_empty() {
            return Err(ParamProblem::at(
                "distribution",
                "found an empty list; allowed: uniform, zipfian or both",
                "e.g. distribution = [\"uniform\", \"zipfian\"]",
            ));
        }
        Ok(())
    }

    fn planned_cases(&self, p: &ReadParams) -> usize {
        p.value_kib.len() * p.distribution.len()
    }

    /// The LRU cache full of the largest values, per case (each case has
    /// its own store); the database files are on disk.
    fn memory(&self, p: &ReadParams, _models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let cases = self.planned_cases(p) as u64;
        let bytes = checked_product(&[
            p.cache_entries.get() + 2,
            largest_value(&p.value_kib),
            cases,
        ])
        .ok_or_else(|| {
            ParamProblem::at(
                "cache_entries",
                "cache_entries × value size does not fit in 64 bits",
                "lower cache_entries",
            )
        })?;
        Ok(MemoryNeed::new(
            bytes,
            format!(
                "({} cache entries + 2 buffers) × the largest value × {cases} cases",
                p.cache_entries
            ),
        ))
    }

    fn prepare(
        &self,
        p: ReadParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let folder = scratch_folder(
            p.dir.as_deref().unwrap_or(&ctx.scratch_dir),
            "storage_read-",
        )?;
        let keys = p.keys.get();
        let zipf = Zipf::new(keys as f64, p.zipf_s.get())
            .map_err(|e| BenchmarkError::Params(format!("zipf_s: {e}")))?;
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for kib in &p.value_kib {
            let kib = kib.usize();
            for &distribution in &p.distribution {
                // One database per case: redb allows one handle per file,
                // and a shared cache would carry one case's hits into the next.
                let path = folder
                    .path()
                    .join(format!("read-{kib}k-{distribution:?}.redb"));
                preload(&path, keys, kib * 1024)?;
                cases.push(Box::new(ReadCase {
                    store: BlobStore::open(&path, p.cache_entries.usize()).map_err(store_error)?,
                    value_bytes: kib * 1024,
                    keys,
                    distribution,
                    zipf,
                    ops: p.ops.usize(),
                    rng: ChaCha8Rng::seed_from_u64(ctx.settings.seed ^ kib as u64),
                    out: Vec::new(),
                    expected: Vec::new(),
                    _folder: Arc::clone(&folder),
                }));
            }
        }
        Ok(PreparedBenchmark::new(cases).with_context(json!({
            "database": "redb",
            "keys": p.keys,
            "cache_entries": p.cache_entries,
            "zipf_s": p.zipf_s,
            "page_cache": "the database files were just written: reads that miss the LRU cache are mostly served by the OS page cache",
        })))
    }
}

/// Writes every key once: non-durable puts, then one durable commit that
/// persists them all.
fn preload(path: &std::path::Path, keys: u64, value_bytes: usize) -> Result<(), BenchmarkError> {
    let mut store = BlobStore::open(path, 0).map_err(store_error)?;
    let mut value = Vec::new();
    for key in 0..keys {
        value_for(key, value_bytes, &mut value);
        let mode = if key + 1 == keys {
            CommitMode::Durable
        } else {
            CommitMode::NonDurable
        };
        store.put(key, &value, mode).map_err(store_error)?;
    }
    Ok(())
}

struct ReadCase {
    store: BlobStore,
    value_bytes: usize,
    keys: u64,
    distribution: KeyDistribution,
    zipf: Zipf<f64>,
    ops: usize,
    rng: ChaCha8Rng,
    out: Vec<u8>,
    expected: Vec<u8>,
    _folder: Arc<tempfile::TempDir>,
}

impl BenchmarkCase for ReadCase {
    fn label(&self) -> String {
        let distribution = match self.distribution {
            KeyDistribution::Uniform => "uniform",
            KeyDistribution::Zipfian => "zipfian",
        };
        format!("{}k/{distribution}", self.value_bytes / 1024)
    }

    fn parameters(&self) -> serde_json::Value {
        json!({ "value_bytes": self.value_bytes, "distribution": self.distribution, "ops_per_iteration": self.ops })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let mut hits = 0usize;
        // Throughput counts only time inside `get`, not key drawing or checks.
        let mut in_gets = std::time::Duration::ZERO;
        for _ in 0..self.ops {
            let key = match self.distribution {
                KeyDistribution::Uniform => self.rng.random_range(0..self.keys),
                KeyDistribution::Zipfian => (self.zipf.sample(&mut self.rng) as u64)
                    .saturating_sub(1)
                    .min(self.keys - 1),
            };
            let op = Instant::now();
            let source = self.store.get(key, &mut self.out).map_err(store_error)?;
            let took = op.elapsed();
            in_gets += took;
            obs.duration(&GET_MS, took);
            match source {
                Some(ReadSource::Cache) => hits += 1,
                Some(ReadSource::Database) => {}
                None => {
                    return Err(BenchmarkError::Component(format!(
                        "key {key} was written but is missing"
                    )));
                }
            }
            value_for(key, self.value_bytes, &mut self.expected);
            if self.out != self.expected {
                return Err(BenchmarkError::Component(format!(
                    "key {key} read back different bytes"
                )));
            }
        }
        let elapsed = in_gets.as_secs_f64();
        obs.value(&STORAGE_READ_OPS_PER_S, self.ops as f64 / elapsed);
        obs.value(&CACHE_HIT_RATIO_PCT, hits as f64 * 100.0 / self.ops as f64);
        Ok(())
    }
}
