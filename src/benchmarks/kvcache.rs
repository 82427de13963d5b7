//! KV cache kinds: how fast the hot tier stores blocks (against memcpy of
//! the same bytes, measured in the same iteration), and how a decoding
//! trace behaves once the context outgrows the hot tier (against raw reads
//! and writes of the same slots, measured in the same iteration).

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use super::params::{self, ParamProblem};
use super::{
    BenchContext, BenchmarkCase, BenchmarkError, BenchmarkKind, Headline, MetricDef, Observations,
    PreparedBenchmark, scratch_folder, timed_chunked_memcpy,
};
use crate::campaign::ResolvedModel;
use crate::components::blockio::{AlignedBuf, IoMode, open_block_file};
use crate::components::kvcache::{
    BlockKey, ColdBlockEncoding, KvCacheError, KvDType, KvGeometry, Tier, TieredKvCache,
    TieredKvCacheConfig, block_key,
};

const GB: f64 = 1e9;
const MB: f64 = 1e6;

fn default_dtype() -> KvDType {
    KvDType::F16
}

fn default_block_tokens() -> Vec<usize> {
    vec![16]
}

/// The cache's shape: from a model of the campaign, or written out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeometryParams {
    model: Option<String>,
    layers: Option<usize>,
    kv_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_dtype")]
    dtype: KvDType,
    /// One case per block size.
    #[serde(default = "default_block_tokens")]
    block_tokens: Vec<usize>,
}

impl GeometryParams {
    fn resolve(
        &self,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<Vec<KvGeometry>, ParamProblem> {
        let (layers, kv_heads, head_dim) =
            match (&self.model, self.layers, self.kv_heads, self.head_dim) {
                (Some(name), None, None, None) => {
                    let m = models.get(name).ok_or_else(|| {
                        ParamProblem::at(
                            "model",
                            format!("no model named {name:?} in [models]"),
                            "define it or give layers, kv_heads and head_dim",
                        )
                    })?;
                    let a = &m.architecture;
                    (a.num_hidden_layers, a.num_key_value_heads, a.head_dim())
                }
                (None, Some(l), Some(k), Some(h)) => (l, k, h),
                _ => {
                    return Err(ParamProblem::at(
                        "model",
                        "give either `model` or all of `layers`, `kv_heads` and `head_dim`",
                        "e.g. layers = 32, kv_heads = 32, head_dim = 128",
                    ));
                }
            };
        if self.block_tokens.is_empty() {
            return Err(ParamProblem::at(
                "block_tokens",
                "block_tokens lists no block size",
                "e.g. block_tokens = [16]",
            ));
        }
        self.block_tokens
            .iter()
            .map(|&block_tokens| {
                let g = KvGeometry {
                    layers,
                    kv_heads,
                    head_dim,
                    dtype: self.dtype,
                    block_tokens,
                };
                g.check().map(|()| g).map_err(|e| {
                    ParamProblem::at(
                        "block_tokens",
                        e.to_string(),
                        "every size must be at least 1",
                    )
                })
            })
            .collect()
    }
}

fn geometry_context(g: &KvGeometry) -> serde_json::Value {
    json!({
        "geometry": g,
        "bytes_per_token": g.bytes_per_token(),
        "bytes_per_token_formula": "2 × layers × kv_heads × head_dim × dtype bytes",
        "block_bytes": g.block_bytes(),
    })
}

/// Deterministic block contents: the bytes are stored and compared, not interpreted.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Random but finite values of the block's dtype, so that int8 quantization
/// sees real numbers (random bytes would include NaN bit patterns).
fn random_values(seed: u64, len: usize, dtype: KvDType) -> Vec<u8> {
    let raw = random_bytes(seed, len / dtype.bytes() * 4);
    let values = raw.chunks_exact(4).map(|c| {
        (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32 / u32::MAX as f32) * 2.0 - 1.0
    });
    match dtype {
        KvDType::F32 => values.flat_map(f32::to_le_bytes).collect(),
        KvDType::F16 => values
            .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        KvDType::Bf16 => values
            .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

fn gb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / GB / elapsed.as_secs_f64()
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MB / elapsed.as_secs_f64()
}

fn cache_error(e: KvCacheError) -> BenchmarkError {
    BenchmarkError::Component(e.to_string())
}

// ---------------------------------------------------------------- store

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreParams {
    geometry: GeometryParams,
    /// Tokens stored per iteration.
    tokens: usize,
}

pub struct KvCacheStore;

impl BenchmarkKind for KvCacheStore {
    fn name(&self) -> &'static str {
        "kv_cache_store"
    }

    fn description(&self) -> &'static str {
        "tokens/s and GB/s stored into the hot tier, against memcpy of the same bytes"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms("store_ms", "storing every block of the iteration's tokens"),
            MetricDef::quantity("store_gb_per_s", "GB/s", true, "bytes stored ÷ store time"),
            MetricDef::quantity(
                "store_tokens_per_s",
                "tokens/s",
                true,
                "tokens stored ÷ store time",
            ),
            MetricDef::quantity(
                "memcpy_gb_per_s",
                "GB/s",
                true,
                "reference: memcpy of the same bytes in the same block-sized chunks into a pre-touched buffer, same iteration",
            ),
            MetricDef::quantity(
                "store_fraction_of_memcpy",
                "ratio",
                true,
                "store GB/s ÷ memcpy GB/s of the same iteration",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "store_ms",
            throughput: "store_gb_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: StoreParams = params::parse(params)?;
        p.geometry.resolve(models)?;
        if p.tokens == 0 {
            return Err(ParamProblem::at(
                "tokens",
                "tokens must be at least 1",
                "e.g. tokens = 4096",
            ));
        }
        Ok(())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: StoreParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let geometries = p
            .geometry
            .resolve(&ctx.models)
            .map_err(|e| BenchmarkError::Params(e.message))?;
        let scratch = scratch_folder(&ctx.scratch_dir, "kv_cache_store-")?;
        let cases = geometries
            .into_iter()
            .map(|geometry| {
                let blocks = p.tokens.div_ceil(geometry.block_tokens);
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
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({ "tokens_per_iteration": p.tokens }),
            cases,
            warnings: Vec::new(),
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        Ok(params::parse::<StoreParams>(params)?
            .geometry
            .block_tokens
            .len())
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
        let mut cache = TieredKvCache::open(&TieredKvCacheConfig {
            geometry: self.geometry,
            hot_blocks: self.blocks,
            cold_path: cold_path.clone(),
            cold_encoding: ColdBlockEncoding::Raw,
            cold_io: IoMode::Buffered,
        })
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
        obs.duration("store_ms", store);
        obs.value("store_gb_per_s", store_gbps);
        obs.value(
            "store_tokens_per_s",
            (self.blocks * self.geometry.block_tokens) as f64 / store.as_secs_f64(),
        );
        obs.value("memcpy_gb_per_s", memcpy_gbps);
        obs.value("store_fraction_of_memcpy", store_gbps / memcpy_gbps);
        Ok(())
    }
}

// ---------------------------------------------------------------- access

fn one() -> usize {
    1
}

fn direct() -> IoMode {
    IoMode::Direct
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessParams {
    geometry: GeometryParams,
    /// Tokens per sequence at the end of the trace.
    context_tokens: usize,
    /// Hot-tier capacity in tokens (rounded up to whole blocks).
    hot_tokens: usize,
    #[serde(default = "one")]
    sequences: usize,
    /// Leading tokens every sequence shares (their blocks are stored once).
    #[serde(default)]
    shared_prefix_tokens: usize,
    /// The last tokens of each sequence, generated one per step; each step
    /// reads the sequence's whole window of full blocks, as attention does.
    decode_steps: usize,
    #[serde(default)]
    cold_encoding: ColdBlockEncoding,
    #[serde(default = "direct")]
    cold_io: IoMode,
}

pub struct KvCacheAccess;

impl BenchmarkKind for KvCacheAccess {
    fn name(&self) -> &'static str {
        "kv_cache_access"
    }

    fn description(&self) -> &'static str {
        "a decoding trace over the tiered cache: hit rates, evictions, hot vs cold block-fetch latency, bytes moved, cold MB/s against raw I/O of the same slots"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        const METRICS: &[MetricDef] = &[
            MetricDef::duration_ms(
                "step_ms",
                "one decode step of one sequence: append a token, read its whole window",
            ),
            MetricDef::duration_ms(
                "block_fetch_hot_ms",
                "fetching one block found in the hot tier",
            ),
            MetricDef::duration_ms(
                "block_fetch_cold_ms",
                "fetching one block from disk: read, checksum, decode, promote",
            ),
            MetricDef::quantity(
                "hot_hit_rate_pct",
                "%",
                true,
                "fetches served by the hot tier",
            ),
            MetricDef::quantity(
                "cold_hit_rate_pct",
                "%",
                false,
                "fetches served by the cold tier",
            ),
            MetricDef::quantity(
                "evictions",
                "blocks",
                false,
                "blocks moved from hot to cold",
            ),
            MetricDef::quantity(
                "eviction_writes",
                "blocks",
                false,
                "evictions that wrote (the rest were already on disk)",
            ),
            MetricDef::quantity(
                "promotions",
                "blocks",
                false,
                "cold blocks moved back to the hot tier",
            ),
            MetricDef::quantity(
                "shared_prefix_hits",
                "blocks",
                true,
                "stores skipped because another sequence holds the same prefix block",
            ),
            MetricDef::quantity("bytes_read_mib", "MiB", false, "read from the cold file"),
            MetricDef::quantity(
                "bytes_written_mib",
                "MiB",
                false,
                "written to the cold file",
            ),
            MetricDef::quantity(
                "cold_disk_mib",
                "MiB",
                false,
                "size of the cold file at the end of the trace",
            ),
            MetricDef::quantity(
                "cold_read_mb_per_s",
                "MB/s",
                true,
                "bytes read ÷ time in cold fetches",
            ),
            MetricDef::quantity(
                "raw_read_mb_per_s",
                "MB/s",
                true,
                "reference: plain reads of the slots of one step's window, in the same order, from the same cold file, same I/O mode, same iteration",
            ),
            MetricDef::quantity(
                "cold_read_fraction_of_raw",
                "ratio",
                true,
                "cold read MB/s ÷ raw read MB/s",
            ),
            MetricDef::quantity(
                "cold_write_mb_per_s",
                "MB/s",
                true,
                "bytes written ÷ time in stores that evicted with a write",
            ),
            MetricDef::quantity(
                "raw_write_mb_per_s",
                "MB/s",
                true,
                "reference: plain writes of as many slots, same I/O mode, same iteration",
            ),
            MetricDef::quantity(
                "cold_write_fraction_of_raw",
                "ratio",
                true,
                "cold write MB/s ÷ raw write MB/s",
            ),
            MetricDef::quantity(
                "int8_max_abs_error",
                "value",
                false,
                "int8 cold tier: largest |original − reconstructed| over every value of every cold fetch",
            ),
            MetricDef::quantity(
                "int8_rms_error",
                "value",
                false,
                "int8 cold tier: root mean square of (original − reconstructed) over the same values",
            ),
        ];
        METRICS
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: "step_ms",
            throughput: "cold_read_mb_per_s",
        }
    }

    fn check(
        &self,
        params: &toml::Table,
        models: &BTreeMap<String, ResolvedModel>,
    ) -> Result<(), ParamProblem> {
        let p: AccessParams = params::parse(params)?;
        let geometries = p.geometry.resolve(models)?;
        let largest_block = geometries.iter().map(|g| g.block_tokens).max().unwrap_or(1);
        if p.sequences == 0 {
            return Err(ParamProblem::at(
                "sequences",
                "sequences must be at least 1",
                "e.g. sequences = 2",
            ));
        }
        if p.decode_steps == 0 || p.decode_steps > p.context_tokens {
            return Err(ParamProblem::at(
                "decode_steps",
                "decode_steps must be between 1 and context_tokens",
                "e.g. decode_steps = 32",
            ));
        }
        if p.shared_prefix_tokens > p.context_tokens - p.decode_steps {
            return Err(ParamProblem::at(
                "shared_prefix_tokens",
                "the shared prefix must fit in the prompt (context_tokens − decode_steps)",
                "lower shared_prefix_tokens",
            ));
        }
        if p.hot_tokens < largest_block {
            return Err(ParamProblem::at(
                "hot_tokens",
                format!("hot_tokens must hold at least one block ({largest_block} tokens)"),
                "raise hot_tokens",
            ));
        }
        Ok(())
    }

    fn prepare(
        &self,
        params: &toml::Table,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
        let p: AccessParams =
            params::parse(params).map_err(|e| BenchmarkError::Params(e.message))?;
        let geometries = p
            .geometry
            .resolve(&ctx.models)
            .map_err(|e| BenchmarkError::Params(e.message))?;
        if p.cold_io == IoMode::Direct {
            crate::components::blockio::direct_io_supported(&ctx.scratch_dir).map_err(|why| {
                BenchmarkError::Component(format!("cold_io = \"direct\" is not possible here ({why}); set cold_io = \"buffered\" and read the figures as page-cache figures"))
            })?;
        }
        let scratch = scratch_folder(&ctx.scratch_dir, "kv_cache_access-")?;
        let mut warnings = Vec::new();
        if p.cold_io == IoMode::Buffered {
            warnings.push("cold_io = buffered: the page cache is dropped after the prefill, but later cold reads may be served from it; use direct for device figures".to_string());
        }
        let cases = geometries
            .into_iter()
            .map(|geometry| {
                let pool = (0..8u64)
                    .map(|i| {
                        random_values(
                            ctx.settings.seed ^ i,
                            geometry.block_bytes(),
                            geometry.dtype,
                        )
                    })
                    .collect();
                Box::new(AccessCase {
                    geometry,
                    hot_blocks: p.hot_tokens.div_ceil(geometry.block_tokens),
                    context_tokens: p.context_tokens,
                    sequences: p.sequences,
                    shared_prefix_tokens: p.shared_prefix_tokens,
                    decode_steps: p.decode_steps,
                    cold_encoding: p.cold_encoding,
                    cold_io: p.cold_io,
                    pool,
                    scratch: std::sync::Arc::clone(&scratch),
                    iteration: 0,
                }) as Box<dyn BenchmarkCase>
            })
            .collect();
        Ok(PreparedBenchmark {
            setup: Vec::new(),
            context: json!({
                "context_tokens": p.context_tokens,
                "hot_tokens": p.hot_tokens,
                "sequences": p.sequences,
                "shared_prefix_tokens": p.shared_prefix_tokens,
                "decode_steps": p.decode_steps,
                "cold_encoding": p.cold_encoding,
                "cold_io": p.cold_io,
            }),
            cases,
            warnings,
        })
    }

    fn planned_cases(&self, params: &toml::Table) -> Result<usize, ParamProblem> {
        Ok(params::parse::<AccessParams>(params)?
            .geometry
            .block_tokens
            .len())
    }
}

struct AccessCase {
    geometry: KvGeometry,
    hot_blocks: usize,
    context_tokens: usize,
    sequences: usize,
    shared_prefix_tokens: usize,
    decode_steps: usize,
    cold_encoding: ColdBlockEncoding,
    cold_io: IoMode,
    /// Block contents, chosen by key: stored, fetched back and compared.
    pool: Vec<Vec<u8>>,
    scratch: std::sync::Arc<tempfile::TempDir>,
    iteration: u64,
}

/// Compares lossy cold blocks with the originals they were written from.
#[derive(Default)]
struct ReconstructionError {
    max_abs: f64,
    sum_squares: f64,
    values: u64,
}

impl ReconstructionError {
    fn add(&mut self, original: &[u8], restored: &[u8], dtype: KvDType) {
        let width = dtype.bytes();
        for (a, b) in original
            .chunks_exact(width)
            .zip(restored.chunks_exact(width))
        {
            let diff = f64::from(dtype.decode(a)) - f64::from(dtype.decode(b));
            self.max_abs = self.max_abs.max(diff.abs());
            self.sum_squares += diff * diff;
            self.values += 1;
        }
    }

    fn finish(&self) -> Option<(f64, f64)> {
        (self.values > 0).then(|| (self.max_abs, (self.sum_squares / self.values as f64).sqrt()))
    }
}

/// One sequence of the trace: its tokens and the keys of its full blocks.
struct Sequence {
    tokens: Vec<u32>,
    keys: Vec<BlockKey>,
}

impl AccessCase {
    fn token(&self, sequence: usize, position: usize) -> u32 {
        if position < self.shared_prefix_tokens {
            position as u32
        } else {
            ((sequence as u32 + 1) << 24) | position as u32
        }
    }

    fn block_for(&self, key: BlockKey) -> &[u8] {
        &self.pool[(key % self.pool.len() as u64) as usize]
    }

    /// Appends one token; when it completes a block, stores the block.
    fn append(
        &self,
        cache: &mut TieredKvCache,
        seq: &mut Sequence,
        token: u32,
    ) -> Result<Option<Duration>, BenchmarkError> {
        seq.tokens.push(token);
        let b = self.geometry.block_tokens;
        if !seq.tokens.len().is_multiple_of(b) {
            return Ok(None);
        }
        let key = block_key(
            seq.keys.last().copied(),
            &seq.tokens[seq.tokens.len() - b..],
        );
        seq.keys.push(key);
        let writes_before = cache.stats().eviction_writes;
        let started = Instant::now();
        cache.put(key, self.block_for(key)).map_err(cache_error)?;
        let elapsed = started.elapsed();
        Ok((cache.stats().eviction_writes > writes_before).then_some(elapsed))
    }

    /// The reference for the cold tier's speed, in the same I/O mode:
    /// plain reads of the slots of the last sequence's window, in the same
    /// order from the same file (so the same working set and access
    /// pattern), and plain writes of as many slots of the same size to a new
    /// file. Only the cache's own work (checksums, encoding, copies,
    /// bookkeeping) differs.
    fn raw_reference(
        &self,
        cache: &TieredKvCache,
        window: &[BlockKey],
    ) -> Result<(f64, f64), BenchmarkError> {
        let io = |e: std::io::Error| BenchmarkError::Component(format!("raw reference I/O: {e}"));
        let slot = cache.cold_tier().slot_bytes();
        let mut buf = AlignedBuf::zeroed(slot);
        let cold = open_block_file(cache.cold_tier().path(), self.cold_io, false).map_err(io)?;
        if self.cold_io == IoMode::Buffered {
            crate::components::blockio::drop_page_cache(&cold).map_err(io)?;
        }
        let offsets: Vec<u64> = window
            .iter()
            .filter_map(|key| cache.cold_tier().slot_of(*key))
            .map(|s| cache.cold_tier().slot_offset(s))
            .collect();
        let slots = offsets.len().max(1);
        let started = Instant::now();
        for offset in &offsets {
            cold.read_exact_at(&mut buf, *offset).map_err(io)?;
        }
        let read = mb_per_s((offsets.len() * slot) as u64, started.elapsed());

        buf.fill(0x5a);
        let path = self
            .scratch
            .path()
            .join(format!("raw-{}.bin", self.iteration));
        let file = open_block_file(&path, self.cold_io, true).map_err(io)?;
        let started = Instant::now();
        for i in 0..slots {
            file.write_all_at(&buf, (i * slot) as u64).map_err(io)?;
        }
        file.sync_data().map_err(io)?;
        let write = mb_per_s((slots * slot) as u64, started.elapsed());
        drop(file);
        let _ = std::fs::remove_file(path);
        Ok((read, write))
    }
}

impl BenchmarkCase for AccessCase {
    fn label(&self) -> String {
        format!("block_tokens={}", self.geometry.block_tokens)
    }

    fn parameters(&self) -> serde_json::Value {
        let mut p = geometry_context(&self.geometry);
        p["hot_blocks"] = json!(self.hot_blocks);
        p["hot_bytes"] = json!(self.hot_blocks * self.geometry.block_bytes());
        p["context_bytes_per_sequence"] =
            json!(self.context_tokens * self.geometry.bytes_per_token());
        p
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        self.iteration += 1;
        let cold_path = self
            .scratch
            .path()
            .join(format!("cold-{}.kv", self.iteration));
        let mut cache = TieredKvCache::open(&TieredKvCacheConfig {
            geometry: self.geometry,
            hot_blocks: self.hot_blocks,
            cold_path: cold_path.clone(),
            cold_encoding: self.cold_encoding,
            cold_io: self.cold_io,
        })
        .map_err(cache_error)?;
        let mut write_time = Duration::ZERO;
        let prompt = self.context_tokens - self.decode_steps;
        let mut sequences: Vec<Sequence> = (0..self.sequences)
            .map(|_| Sequence {
                tokens: Vec::with_capacity(self.context_tokens),
                keys: Vec::new(),
            })
            .collect();
        for (s, seq) in sequences.iter_mut().enumerate() {
            for position in 0..prompt {
                write_time += self
                    .append(&mut cache, seq, self.token(s, position))?
                    .unwrap_or_default();
            }
        }
        if self.cold_io == IoMode::Buffered {
            cache.drop_cold_page_cache().map_err(cache_error)?;
        }

        let mut out = vec![0u8; self.geometry.block_bytes()];
        let mut cold_read_time = Duration::ZERO;
        let (mut hot, mut cold) = (0u64, 0u64);
        let verify = self.cold_encoding == ColdBlockEncoding::Raw;
        let mut error = ReconstructionError::default();
        for step in 0..self.decode_steps {
            for (s, seq) in sequences.iter_mut().enumerate() {
                let started = Instant::now();
                write_time += self
                    .append(&mut cache, seq, self.token(s, prompt + step))?
                    .unwrap_or_default();
                for &key in &seq.keys {
                    let fetch_start = Instant::now();
                    let tier = cache.get(key, &mut out).map_err(cache_error)?;
                    let fetch = fetch_start.elapsed();
                    match tier {
                        Some(Tier::Hot) => {
                            hot += 1;
                            obs.duration("block_fetch_hot_ms", fetch);
                        }
                        Some(Tier::Cold) => {
                            cold += 1;
                            cold_read_time += fetch;
                            obs.duration("block_fetch_cold_ms", fetch);
                            if !verify {
                                error.add(self.block_for(key), &out, self.geometry.dtype);
                            }
                        }
                        None => {
                            return Err(BenchmarkError::Component(format!(
                                "block {key:#x} was stored but the cache lost it"
                            )));
                        }
                    }
                    if verify && out != self.block_for(key) {
                        return Err(BenchmarkError::Component(format!(
                            "block {key:#x} came back with different bytes"
                        )));
                    }
                }
                obs.duration("step_ms", started.elapsed());
            }
        }

        if let Some((max_abs, rms)) = error.finish() {
            obs.value("int8_max_abs_error", max_abs);
            obs.value("int8_rms_error", rms);
        }
        let stats = cache.stats().clone();
        let fetches = (hot + cold).max(1) as f64;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        obs.value("hot_hit_rate_pct", hot as f64 * 100.0 / fetches);
        obs.value("cold_hit_rate_pct", cold as f64 * 100.0 / fetches);
        obs.value("evictions", stats.evictions as f64);
        obs.value("eviction_writes", stats.eviction_writes as f64);
        obs.value("promotions", stats.promotions as f64);
        obs.value("shared_prefix_hits", stats.shared_prefix_hits as f64);
        obs.value("bytes_read_mib", mib(stats.bytes_read));
        obs.value("bytes_written_mib", mib(stats.bytes_written));
        obs.value("cold_disk_mib", mib(cache.cold_disk_bytes()));

        let last_window = sequences.last().map_or(&[][..], |q| q.keys.as_slice());
        let (raw_read, raw_write) = self.raw_reference(&cache, last_window)?;
        obs.value("raw_read_mb_per_s", raw_read);
        obs.value("raw_write_mb_per_s", raw_write);
        if stats.bytes_read > 0 {
            let cold_read = mb_per_s(stats.bytes_read, cold_read_time);
            obs.value("cold_read_mb_per_s", cold_read);
            obs.value("cold_read_fraction_of_raw", cold_read / raw_read);
        }
        if stats.bytes_written > 0 && !write_time.is_zero() {
            let cold_write = mb_per_s(stats.bytes_written, write_time);
            obs.value("cold_write_mb_per_s", cold_write);
            obs.value("cold_write_fraction_of_raw", cold_write / raw_write);
        }
        drop(cache);
        let _ = std::fs::remove_file(cold_path);
        Ok(())
    }
}
