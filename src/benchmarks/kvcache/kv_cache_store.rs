//! `kv_cache_store`: how fast the hot tier stores blocks, against memcpy of
//! the same bytes in the same block-sized chunks, measured in the same
//! iteration.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::kv_geometry::{GeometryParams, cache_error, gb_per_s, geometry_context, random_bytes};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, scratch_folder, timed_chunked_memcpy,
};
use crate::campaign::bounds::Tokens;
use crate::components::kvcache::{KvGeometry, TieredKvCache, TieredKvCacheConfig, block_key};
use crate::machine::checked_product;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreParams {
    geometry: GeometryParams,
    /// Tokens stored per iteration.
    tokens: Tokens,
}

const KV_CACHE_STORE_STORE_MS: MetricDef =
    MetricDef::duration_ms("store_ms", "storing every block of the iteration's tokens");
const STORE_GB_PER_S: MetricDef =
    MetricDef::quantity("store_gb_per_s", "GB/s", true, "bytes stored ÷ store time");
const STORE_TOKENS_PER_S: MetricDef = MetricDef::quantity(
    "store_tokens_per_s",
    "tokens/s",
    true,
    "tokens stored ÷ store time",
);
const MEMCPY_GB_PER_S: MetricDef = MetricDef::quantity(
    "memcpy_gb_per_s",
    "GB/s",
    true,
    "reference: memcpy of the same bytes in the same block-sized chunks into a pre-touched buffer, same iteration",
);
const STORE_FRACTION_OF_MEMCPY: MetricDef = MetricDef::quantity(
    "store_fraction_of_memcpy",
    "ratio",
    true,
    "store GB/s ÷ memcpy GB/s of the same iteration",
);

pub struct KvCacheStore;

impl Kind for KvCacheStore {
    type Params = StoreParams;

    fn name(&self) -> &'static str {
        "kv_cache_store"
    }

    fn description(&self) -> &'static str {
        "tokens/s and GB/s stored into the hot tier, against memcpy of the same bytes"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            KV_CACHE_STORE_STORE_MS,
            STORE_GB_PER_S,
            STORE_TOKENS_PER_S,
            MEMCPY_GB_PER_S,
            STORE_FRACTION_OF_MEMCPY,
        ]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(KV_CACHE_STORE_STORE_MS.name),
            throughput: Some(STORE_GB_PER_S.name),
        }
    }

    fn check(&self, p: &StoreParams, models: &Models) -> Result<(), ParamProblem> {
        p.geometry.resolve(models).map(|_| ())
    }

    fn planned_cases(&self, p: &StoreParams) -> usize {
        p.geometry.block_tokens.len()
    }

    /// Every case holds the tokens' blocks twice (source and memcpy
    /// copy); an iteration adds a hot tier that holds them all.
    fn memory(&self, p: &StoreParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let geometries = p.geometry.resolve(models)?;
        let per_case = |g: &KvGeometry| {
            let tokens = p.tokens.get().div_ceil(g.block_tokens as u64) * g.block_tokens as u64;
            checked_product(&[tokens, g.bytes_per_token() as u64])
        };
        let total = geometries
            .iter()
            .try_fold(0u64, |acc, g| acc.checked_add(per_case(g)?.checked_mul(2)?));
        let largest = geometries.iter().filter_map(per_case).max().unwrap_or(0);
        let bytes = total.and_then(|t| t.checked_add(largest)).ok_or_else(|| {
            ParamProblem::at(
                "tokens",
                "tokens × bytes per token does not fit in 64 bits",
                "store fewer tokens",
            )
        })?;
        Ok(MemoryNeed::new(
            bytes,
            format!(
                "{} tokens × bytes per token, twice per block size, plus one hot tier",
                p.tokens
            ),
        ))
    }

    fn prepare(
        &self,
        p: StoreParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let tokens = p.tokens.usize();
        let geometries = p
            .geometry
            .resolve(&ctx.models)
            .map_err(|e| BenchmarkError::Params(e.message))?;
        let scratch = scratch_folder(&ctx.scratch_dir, "kv_cache_store-")?;
        let cases = geometries
            .into_iter()
            .map(|geometry| {
                let blocks = tokens.div_ceil(geometry.block_tokens);
                Box::new(StoreCase {
                    geometry,
                    blocks,
                    source: random_bytes(ctx.settings.seed, blocks * geometry.block_bytes()),
                    // Touched once here, so that no memcpy pays page faults.
                    copy: vec![1u8; blocks * geometry.block_bytes()],
                    scratch: std::sync::Arc::clone(&scratch),
                    iteration: 0,
                }) as Box<dyn BenchmarkCase>
            })
            .collect();
        Ok(PreparedBenchmark::new(cases).with_context(json!({ "tokens_per_iteration": tokens })))
    }
}

struct StoreCase {
    geometry: KvGeometry,
    blocks: usize,
    source: Vec<u8>,
    copy: Vec<u8>,
    scratch: std::sync::Arc<tempfile::TempDir>,
    iteration: u64,
}

impl BenchmarkCase for StoreCase {
    fn label(&self) -> String {
        format!("block_tokens={}", self.geometry.block_tokens)
    }

    fn parameters(&self) -> serde_json::Value {
        let mut p = geometry_context(&self.geometry);
        p["blocks"] = json!(self.blocks);
        p["tokens"] = json!(self.blocks * self.geometry.block_tokens);
        p
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        self.iteration += 1;
        let cold_path = self
            .scratch
            .path()
            .join(format!("store-{}.kv", self.iteration));
        // Hot tier sized for every block: this measures storing, not eviction.
        let mut cache = TieredKvCache::open(&TieredKvCacheConfig::new(
            self.geometry,
            self.blocks,
            cold_path.clone(),
        ))
        .map_err(cache_error)?;
        let bytes = self.source.len();
        let block = self.geometry.block_bytes();

        // Alternate which copy runs first, so neither always finds the
        // caches warmed (or flushed) by the other.
        let memcpy_first = self.iteration.is_multiple_of(2);
        let mut memcpy = Duration::ZERO;
        if memcpy_first {
            memcpy = timed_chunked_memcpy(&mut self.copy, &self.source, block);
        }
        let started = Instant::now();
        for (i, chunk) in self.source.chunks_exact(block).enumerate() {
            cache
                .put(block_key(None, &[self.iteration as u32, i as u32]), chunk)
                .map_err(cache_error)?;
        }
        let store = started.elapsed();
        if !memcpy_first {
            memcpy = timed_chunked_memcpy(&mut self.copy, &self.source, block);
        }

        drop(cache);
        let _ = std::fs::remove_file(cold_path);
        let store_gbps = gb_per_s(bytes, store);
        let memcpy_gbps = gb_per_s(bytes, memcpy);
        obs.duration(&KV_CACHE_STORE_STORE_MS, store);
        obs.value(&STORE_GB_PER_S, store_gbps);
        obs.value(
            &STORE_TOKENS_PER_S,
            (self.blocks * self.geometry.block_tokens) as f64 / store.as_secs_f64(),
        );
        obs.value(&MEMCPY_GB_PER_S, memcpy_gbps);
        obs.value(&STORE_FRACTION_OF_MEMCPY, store_gbps / memcpy_gbps);
        Ok(())
    }
}
