//! Storage kinds over the embedded blob store: write latency per value size
//! and commit mode, and read latency per value size and key distribution
//! with the hit ratio of the cache in front. Every read is compared with
//! the value written for its key; a mismatch fails the benchmark.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Headline, MetricDef, Observations,
    PreparedBenchmark, scratch_folder,
};
use crate::campaign::ResolvedModel;
use crate::components::storage::{BlobStore, CommitMode, ReadSource, StorageError};

/// The value stored under `key`: the key, then a pattern derived from it,
/// so that a read can be checked without keeping every value in memory.
fn value_for(key: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend(key.to_le_bytes().iter().copied().cycle().take(len.min(8)));
    out.extend((8..len).map(|i| (key.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8));
}

fn store_error(e: StorageError) -> BenchmarkError {
    BenchmarkError::Component(e.to_string())
}

fn default_value_kib() -> Vec<usize> {
    vec![1, 16, 256]
}

fn check_sizes(value_kib: &[usize], ops: usize) -> Result<(), ParamProblem> {
    if value_kib.is_empty() || value_kib.contains(&0) {
        return Err(ParamProblem::at(
            "value_kib",
            "value_kib must list sizes of at least 1 KiB",
            "e.g. value_kib = [1, 16, 256]",
        ));
    }
    if ops == 0 {
        return Err(ParamProblem::at(
            "ops",
            "ops must be at least 1",
            "e.g. ops = 200",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- write

fn default_commit() -> Vec<CommitMode> {
    vec![CommitMode::Durable, CommitMode::NonDurable]
}

fn default_write_ops() -> usize {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    #[serde(default = "default_value_kib")]
    value_kib: Vec<usize>,
    #[serde(default = "default_commit")]
    commit: Vec<CommitMode>,
    /// Puts per timed iteration.
    #[serde(default = "default_write_ops")]
    ops: usize,
    /// Folder of the database files; default: the run's scratch folder.
    dir: Option<PathBuf>,
}

pub struct StorageWrite;

impl BenchmarkKind for StorageWrite {
    fn name(&self) -> &'static str {
        "storage_write"
    }

    fn description(&self) -> &'static str {
        "put latency and throughput per value size, durable vs non-durable commits"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("put_ms", "one put in its own transaction, commit included"),
            MetricDef::quantity("ops_per_s", "ops/s", true, "puts ÷ time spent in put"),
            MetricDef::quantity(
                "mb_per_s",
                "MB/s",
                true,
                "value bytes written ÷ time spent in put",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "put_ms",
            throughput: "ops_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        _models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: WriteParams = params::parse(params)?;
        check_sizes(&p.value_kib, p.ops)?;
        if p.commit.is_empty() {
            return Err(ParamProblem::at(
                "commit",
                "commit lists no mode",
                "e.g. commit = [\"durable\", \"non_durable\"]",
            ));
        }
        Ok(())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: WriteParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let folder = scratch_folder(
            p.dir.as_deref().unwrap_or(&ctx.scratch_dir),
            "storage_write-",
        )?;
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for &kib in &p.value_kib {
            for &mode in &p.commit {
                let path = folder.path().join(format!("write-{kib}k-{mode:?}.redb"));
                cases.push(Box::new(WriteCase {
                    store: BlobStore::open(&path, 0).map_err(store_error)?,
                    value_bytes: kib * 1024,
                    mode,
                    ops: p.ops,
                    next_key: 0,
                    value: Vec::new(),
                    _folder: Arc::clone(&folder),
                }));
            }
        }
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({ "database": "redb", "folder": folder.path().display().to_string() }),
            cases,
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        let p: WriteParams = params::parse(params)?;
        Ok(p.value_kib.len() * p.commit.len())
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
            obs.duration("put_ms", took);
            self.next_key += 1;
        }
        let elapsed = in_puts.as_secs_f64();
        obs.value("ops_per_s", self.ops as f64 / elapsed);
        obs.value(
            "mb_per_s",
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

// ---------------------------------------------------------------- read

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

fn default_keys() -> usize {
    1000
}

fn default_read_ops() -> usize {
    1000
}

fn default_cache_entries() -> usize {
    100
}

fn default_zipf_s() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    #[serde(default = "default_value_kib")]
    value_kib: Vec<usize>,
    #[serde(default = "default_distributions")]
    distribution: Vec<KeyDistribution>,
    #[serde(default = "default_zipf_s")]
    zipf_s: f64,
    /// Keys written before timing starts.
    #[serde(default = "default_keys")]
    keys: usize,
    /// Entries in the LRU cache in front of the database; 0 for none.
    #[serde(default = "default_cache_entries")]
    cache_entries: usize,
    #[serde(default = "default_read_ops")]
    ops: usize,
    dir: Option<PathBuf>,
}

pub struct StorageRead;

impl BenchmarkKind for StorageRead {
    fn name(&self) -> &'static str {
        "storage_read"
    }

    fn description(&self) -> &'static str {
        "get latency per value size and key distribution, with the hit ratio of the cache in front"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("get_ms", "one get, from the cache or the database"),
            MetricDef::quantity("ops_per_s", "ops/s", true, "gets ÷ time spent in get"),
            MetricDef::quantity(
                "cache_hit_ratio_pct",
                "%",
                true,
                "gets served by the cache in the iteration",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "get_ms",
            throughput: "ops_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        _models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: ReadParams = params::parse(params)?;
        check_sizes(&p.value_kib, p.ops)?;
        if p.keys == 0 || p.distribution.is_empty() {
            return Err(ParamProblem::at(
                "keys",
                "keys must be at least 1 and distribution must list one",
                "e.g. keys = 1000, distribution = [\"uniform\", \"zipfian\"]",
            ));
        }
        if !(p.zipf_s.is_finite() && p.zipf_s > 0.0) {
            return Err(ParamProblem::at(
                "zipf_s",
                "zipf_s must be a positive number",
                "e.g. zipf_s = 1.0",
            ));
        }
        Ok(())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: ReadParams = params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let folder = scratch_folder(
            p.dir.as_deref().unwrap_or(&ctx.scratch_dir),
            "storage_read-",
        )?;
        let zipf = Zipf::new(p.keys as f64, p.zipf_s)
            .map_err(|e| BenchmarkError::Params(format!("zipf_s: {e}")))?;
        let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
        for &kib in &p.value_kib {
            for &distribution in &p.distribution {
                // One database per case: redb allows one handle per file,
                // and a shared cache would carry one case's hits into the next.
                let path = folder
                    .path()
                    .join(format!("read-{kib}k-{distribution:?}.redb"));
                preload(&path, p.keys as u64, kib * 1024)?;
                cases.push(Box::new(ReadCase {
                    store: BlobStore::open(&path, p.cache_entries).map_err(store_error)?,
                    value_bytes: kib * 1024,
                    keys: p.keys as u64,
                    distribution,
                    zipf,
                    ops: p.ops,
                    rng: ChaCha8Rng::seed_from_u64(ctx.settings.seed ^ kib as u64),
                    out: Vec::new(),
                    expected: Vec::new(),
                    _folder: Arc::clone(&folder),
                }));
            }
        }
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({
                "database": "redb",
                "keys": p.keys,
                "cache_entries": p.cache_entries,
                "zipf_s": p.zipf_s,
                "page_cache": "the database files were just written: reads that miss the LRU cache are mostly served by the OS page cache",
            }),
            cases,
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        let p: ReadParams = params::parse(params)?;
        Ok(p.value_kib.len() * p.distribution.len())
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
            obs.duration("get_ms", took);
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
        obs.value("ops_per_s", self.ops as f64 / elapsed);
        obs.value("cache_hit_ratio_pct", hits as f64 * 100.0 / self.ops as f64);
        Ok(())
    }
}
