//! `kv_cache_access`: how a decoding trace behaves once the context
//! outgrows the hot tier: hit rates, evictions, hot and cold block-fetch
//! latency, bytes moved, and cold-tier speed against raw reads and writes
//! of the same slots, measured in the same iteration.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use super::kv_geometry::{GeometryParams, cache_error, geometry_context, mb_per_s, random_values};
use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, Headline, Kind, MemoryNeed, MetricDef, Models,
    Observations, ParamProblem, PreparedBenchmark, scratch_folder,
};
use crate::campaign::bounds::{OptionalTokens, Parallel, QueueDepth, Tokens};
use crate::components::blockio::{AlignedBuf, IoMode, ReadPool, open_block_file};
use crate::components::kvcache::{
    BlockKey, ColdBlockEncoding, EvictionPolicy, Int8Codec, KvDType, KvGeometry, Tier,
    TieredKvCache, TieredKvCacheConfig, TraceAccess, belady_hits, block_key,
};
use crate::machine::checked_product;

fn one() -> Parallel {
    Parallel::new_const(1)
}

fn no_prefix() -> OptionalTokens {
    OptionalTokens::new_const(0)
}

fn depth_one() -> QueueDepth {
    QueueDepth::new_const(1)
}

fn direct() -> IoMode {
    IoMode::Direct
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessParams {
    geometry: GeometryParams,
    /// Tokens per sequence at the end of the trace.
    context_tokens: Tokens,
    /// Hot-tier capacity in tokens (rounded up to whole blocks).
    hot_tokens: Tokens,
    #[serde(default = "one")]
    sequences: Parallel,
    /// Leading tokens every sequence shares (their blocks are stored once).
    #[serde(default = "no_prefix")]
    shared_prefix_tokens: OptionalTokens,
    /// The last tokens of each sequence, generated one per step; each step
    /// reads the sequence's whole window of full blocks, as attention does.
    decode_steps: Tokens,
    #[serde(default)]
    cold_encoding: ColdBlockEncoding,
    #[serde(default = "direct")]
    cold_io: IoMode,
    /// The int8 codec's implementation: `scalar` or `vectorised` (the same
    /// bytes on disk).
    #[serde(default)]
    int8_codec: Int8Codec,
    /// The hot tier's policy: `lru` or `tinylfu` (LRU with frequency-based
    /// admission, which a scan does not flush).
    #[serde(default)]
    eviction: EvictionPolicy,
    /// Cold reads in flight during a step: 1 reads each block when it is
    /// needed; more reads the step's cold blocks together, that many at once.
    #[serde(default = "depth_one")]
    cold_queue_depth: QueueDepth,
}

const STEP_MS: MetricDef = MetricDef::duration_ms(
    "step_ms",
    "one decode step of one sequence: append a token, read its whole window",
);
const BLOCK_FETCH_HOT_MS: MetricDef = MetricDef::duration_ms(
    "block_fetch_hot_ms",
    "fetching one block found in the hot tier",
);
const BLOCK_FETCH_COLD_MS: MetricDef = MetricDef::duration_ms(
    "block_fetch_cold_ms",
    "fetching one block from disk: read, checksum, decode, promote (at a queue depth above 1, a batch's time ÷ its blocks)",
);
const HOT_HIT_RATE_PCT: MetricDef = MetricDef::quantity(
    "hot_hit_rate_pct",
    "%",
    true,
    "fetches served by the hot tier",
);
const BELADY_HIT_RATE_PCT: MetricDef = MetricDef::quantity(
    "belady_hit_rate_pct",
    "%",
    true,
    "the best hot hit rate any policy could reach on this iteration's trace with the same hot tier (Belady's MIN, computed offline)",
);
const HOT_HIT_RATE_FRACTION_OF_BELADY: MetricDef = MetricDef::quantity(
    "hot_hit_rate_fraction_of_belady",
    "ratio",
    true,
    "hot hit rate ÷ Belady's optimal hit rate",
);
const ADMISSIONS_DECLINED: MetricDef = MetricDef::quantity(
    "admissions_declined",
    "blocks",
    false,
    "stores and cold reads the eviction policy kept out of the hot tier",
);
const COLD_HIT_RATE_PCT: MetricDef = MetricDef::quantity(
    "cold_hit_rate_pct",
    "%",
    false,
    "fetches served by the cold tier",
);
const EVICTIONS: MetricDef = MetricDef::quantity(
    "evictions",
    "blocks",
    false,
    "blocks moved from hot to cold",
);
const EVICTION_WRITES: MetricDef = MetricDef::quantity(
    "eviction_writes",
    "blocks",
    false,
    "evictions that wrote (the rest were already on disk)",
);
const PROMOTIONS: MetricDef = MetricDef::quantity(
    "promotions",
    "blocks",
    false,
    "cold blocks moved back to the hot tier",
);
const SHARED_PREFIX_HITS: MetricDef = MetricDef::quantity(
    "shared_prefix_hits",
    "blocks",
    true,
    "stores skipped because another sequence holds the same prefix block",
);
const BYTES_READ_MIB: MetricDef =
    MetricDef::quantity("bytes_read_mib", "MiB", false, "read from the cold file");
const BYTES_WRITTEN_MIB: MetricDef = MetricDef::quantity(
    "bytes_written_mib",
    "MiB",
    false,
    "written to the cold file",
);
const COLD_DISK_MIB: MetricDef = MetricDef::quantity(
    "cold_disk_mib",
    "MiB",
    false,
    "size of the cold file at the end of the trace",
);
const COLD_READ_MB_PER_S: MetricDef = MetricDef::quantity(
    "cold_read_mb_per_s",
    "MB/s",
    true,
    "bytes read ÷ time in cold fetches",
);
const RAW_READ_MB_PER_S: MetricDef = MetricDef::quantity(
    "raw_read_mb_per_s",
    "MB/s",
    true,
    "reference: plain reads of the cold slots of a decode step (every sequence's window), in the same order, from the same cold file, same I/O mode and queue depth; four passes spread over the iteration's decode steps",
);
const COLD_READ_FRACTION_OF_RAW: MetricDef = MetricDef::quantity(
    "cold_read_fraction_of_raw",
    "ratio",
    true,
    "cold read MB/s ÷ raw read MB/s",
);
const COLD_WRITE_MB_PER_S: MetricDef = MetricDef::quantity(
    "cold_write_mb_per_s",
    "MB/s",
    true,
    "bytes written ÷ time in stores that evicted with a write",
);
const RAW_WRITE_MB_PER_S: MetricDef = MetricDef::quantity(
    "raw_write_mb_per_s",
    "MB/s",
    true,
    "reference: plain writes of as many slots, same I/O mode, same iteration",
);
const COLD_WRITE_FRACTION_OF_RAW: MetricDef = MetricDef::quantity(
    "cold_write_fraction_of_raw",
    "ratio",
    true,
    "cold write MB/s ÷ raw write MB/s",
);
const INT8_MAX_ABS_ERROR: MetricDef = MetricDef::quantity(
    "int8_max_abs_error",
    "value",
    false,
    "int8 cold tier: largest |original − reconstructed| over every value of every cold fetch",
);
const INT8_RMS_ERROR: MetricDef = MetricDef::quantity(
    "int8_rms_error",
    "value",
    false,
    "int8 cold tier: root mean square of (original − reconstructed) over the same values",
);

pub struct KvCacheAccess;

impl Kind for KvCacheAccess {
    type Params = AccessParams;

    fn name(&self) -> &'static str {
        "kv_cache_access"
    }

    fn description(&self) -> &'static str {
        "a decoding trace over the tiered cache: hit rates, evictions, hot vs cold block-fetch latency, bytes moved, cold MB/s against raw I/O of the same slots"
    }

    fn metrics(&self) -> &'static [MetricDef] {
        &[
            STEP_MS,
            BLOCK_FETCH_HOT_MS,
            BLOCK_FETCH_COLD_MS,
            HOT_HIT_RATE_PCT,
            BELADY_HIT_RATE_PCT,
            HOT_HIT_RATE_FRACTION_OF_BELADY,
            ADMISSIONS_DECLINED,
            COLD_HIT_RATE_PCT,
            EVICTIONS,
            EVICTION_WRITES,
            PROMOTIONS,
            SHARED_PREFIX_HITS,
            BYTES_READ_MIB,
            BYTES_WRITTEN_MIB,
            COLD_DISK_MIB,
            COLD_READ_MB_PER_S,
            RAW_READ_MB_PER_S,
            COLD_READ_FRACTION_OF_RAW,
            COLD_WRITE_MB_PER_S,
            RAW_WRITE_MB_PER_S,
            COLD_WRITE_FRACTION_OF_RAW,
            INT8_MAX_ABS_ERROR,
            INT8_RMS_ERROR,
        ]
    }

    fn headline(&self) -> Headline {
        Headline {
            latency: Some(STEP_MS.name),
            throughput: Some(COLD_READ_MB_PER_S.name),
        }
    }

    fn check(&self, p: &AccessParams, models: &Models) -> Result<(), ParamProblem> {
        let geometries = p.geometry.resolve(models)?;
        let largest_block = geometries.iter().map(|g| g.block_tokens).max().unwrap_or(1) as u64;
        let (context, steps) = (p.context_tokens.get(), p.decode_steps.get());
        if steps > context {
            return Err(ParamProblem::at(
                "decode_steps",
                format!("found {steps}; allowed: from 1 to context_tokens ({context})"),
                "e.g. decode_steps = 32",
            ));
        }
        if p.shared_prefix_tokens.get() > context - steps {
            return Err(ParamProblem::at(
                "shared_prefix_tokens",
                format!(
                    "found {}; allowed: up to the prompt, context_tokens − decode_steps = {}",
                    p.shared_prefix_tokens,
                    context - steps
                ),
                "lower shared_prefix_tokens",
            ));
        }
        if p.hot_tokens.get() < largest_block {
            return Err(ParamProblem::at(
                "hot_tokens",
                format!(
                    "found {}; allowed: at least one block ({largest_block} tokens)",
                    p.hot_tokens
                ),
                "raise hot_tokens",
            ));
        }
        Ok(())
    }

    fn planned_cases(&self, p: &AccessParams) -> usize {
        p.geometry.block_tokens.len()
    }

    /// The hot tier, and eight blocks of contents per block size. The
    /// cold file (sequences × context × bytes per token) is on disk.
    fn memory(&self, p: &AccessParams, models: &Models) -> Result<MemoryNeed, ParamProblem> {
        let geometries = p.geometry.resolve(models)?;
        let bytes = geometries.iter().try_fold(0u64, |acc, g| {
            let hot_tokens =
                p.hot_tokens.get().div_ceil(g.block_tokens as u64) * g.block_tokens as u64;
            let hot = checked_product(&[hot_tokens, g.bytes_per_token() as u64])?;
            let pool = checked_product(&[8, g.block_bytes() as u64])?;
            acc.checked_add(hot.max(pool))?.checked_add(pool)
        });
        let bytes = bytes.ok_or_else(|| {
            ParamProblem::at(
                "hot_tokens",
                "hot_tokens × bytes per token does not fit in 64 bits",
                "lower hot_tokens",
            )
        })?;
        Ok(MemoryNeed::new(
            bytes,
            format!(
                "a hot tier of {} tokens and 8 blocks of contents per block size",
                p.hot_tokens
            ),
        ))
    }

    fn prepare(
        &self,
        p: AccessParams,
        ctx: &BenchContext,
    ) -> Result<PreparedBenchmark, BenchmarkError> {
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
                    hot_blocks: p.hot_tokens.usize().div_ceil(geometry.block_tokens),
                    context_tokens: p.context_tokens.usize(),
                    sequences: p.sequences.usize(),
                    shared_prefix_tokens: p.shared_prefix_tokens.usize(),
                    decode_steps: p.decode_steps.usize(),
                    cold_encoding: p.cold_encoding,
                    cold_io: p.cold_io,
                    int8_codec: p.int8_codec,
                    eviction: p.eviction,
                    cold_queue_depth: p.cold_queue_depth.usize(),
                    pool,
                    scratch: std::sync::Arc::clone(&scratch),
                    iteration: 0,
                }) as Box<dyn BenchmarkCase>
            })
            .collect();
        Ok(PreparedBenchmark::new(cases)
            .with_context(json!({
                "context_tokens": p.context_tokens,
                "hot_tokens": p.hot_tokens,
                "sequences": p.sequences,
                "shared_prefix_tokens": p.shared_prefix_tokens,
                "decode_steps": p.decode_steps,
                "cold_encoding": p.cold_encoding,
                "cold_io": p.cold_io,
                "int8_codec": p.int8_codec,
                "eviction": p.eviction,
                "cold_queue_depth": p.cold_queue_depth,
            }))
            .with_warnings(warnings))
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
    int8_codec: Int8Codec,
    eviction: EvictionPolicy,
    cold_queue_depth: usize,
    /// Block contents, chosen by key: stored, fetched back and compared.
    pool: Vec<Vec<u8>>,
    scratch: std::sync::Arc<tempfile::TempDir>,
    iteration: u64,
}

fn raw_io(e: std::io::Error) -> BenchmarkError {
    BenchmarkError::Component(format!("raw reference I/O: {e}"))
}

/// Plain reads of the cold file beside the cache's: its own descriptor,
/// read pool and buffers, and the bytes and time of its passes.
struct RawReadReference {
    file: std::fs::File,
    reader: ReadPool,
    bufs: AlignedBuf,
    bytes: u64,
    time: Duration,
}

/// Raw read passes per iteration, spread over the decode steps so that the
/// reference sees the device as the cache's reads do (a shared or virtual
/// disk drifts within seconds).
const RAW_READ_PASSES: usize = 4;

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

    /// Appends one token; when it completes a block, stores the block
    /// (and notes the store in the trace). The time is returned when the
    /// store wrote to the cold tier.
    fn append(
        &self,
        cache: &mut TieredKvCache,
        seq: &mut Sequence,
        token: u32,
        trace: &mut Vec<TraceAccess>,
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
        trace.push(TraceAccess {
            key,
            counted: false,
        });
        let written_before = cache.stats().bytes_written;
        let started = Instant::now();
        cache.put(key, self.block_for(key)).map_err(cache_error)?;
        let elapsed = started.elapsed();
        Ok((cache.stats().bytes_written > written_before).then_some(elapsed))
    }

    /// Checks a fetched block against what was stored: the same bytes for
    /// raw blocks, a measured error for int8 ones.
    fn check_fetched(
        &self,
        key: BlockKey,
        fetched: &[u8],
        tier: Tier,
        error: &mut ReconstructionError,
    ) -> Result<(), BenchmarkError> {
        if self.cold_encoding == ColdBlockEncoding::Raw {
            if fetched != self.block_for(key) {
                return Err(BenchmarkError::Component(format!(
                    "block {key:#x} came back with different bytes"
                )));
            }
        } else if tier == Tier::Cold {
            error.add(self.block_for(key), fetched, self.geometry.dtype);
        }
        Ok(())
    }

    /// One pass of the read reference: plain reads of the cold slots of
    /// one decode step (every sequence's window), in the same order, from
    /// the same file, in the same I/O mode and at the same queue depth. So
    /// the same working set and access pattern: only the cache's own work
    /// (checksums, decoding, copies, bookkeeping) differs. Returns the
    /// bytes read and the time taken.
    fn raw_read_pass(
        &self,
        cache: &TieredKvCache,
        reference: &mut RawReadReference,
        step: &[BlockKey],
    ) -> Result<(), BenchmarkError> {
        let cold = cache.cold_tier();
        let slot = cold.slot_bytes();
        let offsets: Vec<Option<u64>> = step
            .iter()
            .filter_map(|key| cold.slot_of(*key))
            .map(|s| Some(cold.slot_offset(s)))
            .collect();
        if reference.bufs.len() < offsets.len() * slot {
            reference.bufs = AlignedBuf::zeroed(offsets.len() * slot);
        }
        if self.cold_io == IoMode::Buffered {
            crate::components::blockio::drop_page_cache(&reference.file).map_err(raw_io)?;
        }
        let started = Instant::now();
        reference.reader.read_each(
            &reference.file,
            &offsets,
            &mut reference.bufs,
            slot,
            &mut [],
            0,
            |_, _, _| Ok(()),
            raw_io,
        )?;
        reference.time += started.elapsed();
        reference.bytes += (offsets.len() * slot) as u64;
        Ok(())
    }

    /// The reference for the cold tier's writes: plain writes of `slots`
    /// slots of the same size to a new file, in the same I/O mode, synced.
    fn raw_write_mb_per_s(&self, slot: usize, slots: usize) -> Result<f64, BenchmarkError> {
        let mut buf = AlignedBuf::zeroed(slot);
        buf.fill(0x5a);
        let path = self
            .scratch
            .path()
            .join(format!("raw-{}.bin", self.iteration));
        let file = open_block_file(&path, self.cold_io, true).map_err(raw_io)?;
        let started = Instant::now();
        for i in 0..slots {
            file.write_all_at(&buf, (i * slot) as u64).map_err(raw_io)?;
        }
        file.sync_data().map_err(raw_io)?;
        let write = mb_per_s((slots * slot) as u64, started.elapsed());
        drop(file);
        let _ = std::fs::remove_file(path);
        Ok(write)
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
            cold_encoding: self.cold_encoding,
            cold_io: self.cold_io,
            int8_codec: self.int8_codec,
            eviction: self.eviction,
            cold_queue_depth: self.cold_queue_depth,
            ..TieredKvCacheConfig::new(self.geometry, self.hot_blocks, cold_path.clone())
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
        // Every use of a block, for Belady's optimum computed afterwards.
        let mut trace = Vec::new();
        for (s, seq) in sequences.iter_mut().enumerate() {
            for position in 0..prompt {
                write_time += self
                    .append(&mut cache, seq, self.token(s, position), &mut trace)?
                    .unwrap_or_default();
            }
        }
        if self.cold_io == IoMode::Buffered {
            cache.drop_cold_page_cache().map_err(cache_error)?;
        }

        let mut reference = RawReadReference {
            file: open_block_file(cache.cold_tier().path(), self.cold_io, false).map_err(raw_io)?,
            reader: ReadPool::new(self.cold_queue_depth).map_err(raw_io)?,
            bufs: AlignedBuf::zeroed(0),
            bytes: 0,
            time: Duration::ZERO,
        };
        let pass_every = self.decode_steps.div_ceil(RAW_READ_PASSES).max(1);
        let block = self.geometry.block_bytes();
        let mut out = vec![0u8; block];
        let mut batch = Vec::new();
        let mut missing = Vec::new();
        let mut cold_read_time = Duration::ZERO;
        let (mut hot, mut cold) = (0u64, 0u64);
        let mut error = ReconstructionError::default();
        let lost = |key: BlockKey| {
            BenchmarkError::Component(format!("block {key:#x} was stored but the cache lost it"))
        };
        for step in 0..self.decode_steps {
            for (s, seq) in sequences.iter_mut().enumerate() {
                let started = Instant::now();
                write_time += self
                    .append(&mut cache, seq, self.token(s, prompt + step), &mut trace)?
                    .unwrap_or_default();
                trace.extend(
                    seq.keys
                        .iter()
                        .map(|&key| TraceAccess { key, counted: true }),
                );
                if self.cold_queue_depth == 1 {
                    for &key in &seq.keys {
                        let fetch_start = Instant::now();
                        let tier = cache.get(key, &mut out).map_err(cache_error)?;
                        let fetch = fetch_start.elapsed();
                        let tier = tier.ok_or_else(|| lost(key))?;
                        if tier == Tier::Hot {
                            hot += 1;
                            obs.duration(&BLOCK_FETCH_HOT_MS, fetch);
                        } else {
                            cold += 1;
                            cold_read_time += fetch;
                            obs.duration(&BLOCK_FETCH_COLD_MS, fetch);
                        }
                        self.check_fetched(key, &out, tier, &mut error)?;
                    }
                } else {
                    // The window is known before it is read: hot blocks
                    // are copied, the cold ones read together.
                    missing.clear();
                    for &key in &seq.keys {
                        let fetch_start = Instant::now();
                        if cache.get_hot(key, &mut out) {
                            obs.duration(&BLOCK_FETCH_HOT_MS, fetch_start.elapsed());
                            hot += 1;
                            self.check_fetched(key, &out, Tier::Hot, &mut error)?;
                        } else {
                            missing.push(key);
                        }
                    }
                    if !missing.is_empty() {
                        batch.resize(missing.len() * block, 0);
                        let fetch_start = Instant::now();
                        let found = cache
                            .get_cold_many(&missing, &mut batch)
                            .map_err(cache_error)?;
                        let fetch = fetch_start.elapsed();
                        cold_read_time += fetch;
                        let per_block = fetch / missing.len() as u32;
                        for (i, (&key, found)) in missing.iter().zip(found).enumerate() {
                            if !found {
                                return Err(lost(key));
                            }
                            cold += 1;
                            obs.duration(&BLOCK_FETCH_COLD_MS, per_block);
                            let fetched = &batch[i * block..(i + 1) * block];
                            self.check_fetched(key, fetched, Tier::Cold, &mut error)?;
                        }
                    }
                }
                obs.duration(&STEP_MS, started.elapsed());
            }
            if (step + 1) % pass_every == 0 || step + 1 == self.decode_steps {
                let keys: Vec<BlockKey> = sequences.iter().flat_map(|q| q.keys.clone()).collect();
                self.raw_read_pass(&cache, &mut reference, &keys)?;
            }
        }

        if let Some((max_abs, rms)) = error.finish() {
            obs.value(&INT8_MAX_ABS_ERROR, max_abs);
            obs.value(&INT8_RMS_ERROR, rms);
        }
        let stats = cache.stats().clone();
        let fetches = (hot + cold).max(1) as f64;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        obs.value(&HOT_HIT_RATE_PCT, hot as f64 * 100.0 / fetches);
        obs.value(&COLD_HIT_RATE_PCT, cold as f64 * 100.0 / fetches);
        let (optimal_hits, counted) = belady_hits(&trace, self.hot_blocks);
        if counted > 0 {
            let optimal = optimal_hits as f64 * 100.0 / counted as f64;
            obs.value(&BELADY_HIT_RATE_PCT, optimal);
            if optimal > 0.0 {
                obs.value(
                    &HOT_HIT_RATE_FRACTION_OF_BELADY,
                    hot as f64 * 100.0 / fetches / optimal,
                );
            }
        }
        obs.value(&ADMISSIONS_DECLINED, stats.admissions_declined as f64);
        obs.value(&EVICTIONS, stats.evictions as f64);
        obs.value(&EVICTION_WRITES, stats.eviction_writes as f64);
        obs.value(&PROMOTIONS, stats.promotions as f64);
        obs.value(&SHARED_PREFIX_HITS, stats.shared_prefix_hits as f64);
        obs.value(&BYTES_READ_MIB, mib(stats.bytes_read));
        obs.value(&BYTES_WRITTEN_MIB, mib(stats.bytes_written));
        obs.value(&COLD_DISK_MIB, mib(cache.cold_disk_bytes()));

        let raw_read = mb_per_s(reference.bytes, reference.time);
        let slot = cache.cold_tier().slot_bytes();
        let window_slots = sequences.iter().map(|q| q.keys.len()).sum::<usize>();
        let raw_write = self.raw_write_mb_per_s(slot, window_slots.max(1))?;
        if reference.bytes > 0 {
            obs.value(&RAW_READ_MB_PER_S, raw_read);
        }
        obs.value(&RAW_WRITE_MB_PER_S, raw_write);
        if stats.bytes_read > 0 && reference.bytes > 0 {
            let cold_read = mb_per_s(stats.bytes_read, cold_read_time);
            obs.value(&COLD_READ_MB_PER_S, cold_read);
            obs.value(&COLD_READ_FRACTION_OF_RAW, cold_read / raw_read);
        }
        if stats.bytes_written > 0 && !write_time.is_zero() {
            let cold_write = mb_per_s(stats.bytes_written, write_time);
            obs.value(&COLD_WRITE_MB_PER_S, cold_write);
            obs.value(&COLD_WRITE_FRACTION_OF_RAW, cold_write / raw_write);
        }
        drop(cache);
        let _ = std::fs::remove_file(cold_path);
        Ok(())
    }
}
