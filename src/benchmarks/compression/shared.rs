//! What the compression kinds share (`compression_ratio`,
//! `compression_throughput`): their inputs, parameters and cases. Every
//! round trip is verified byte for byte; a mismatch fails the benchmark,
//! never a number.
//!
//! Inputs, generated from the campaign seed or read from a file:
//! - `token_ids`: u32 token ids with Zipf-distributed frequencies (s = 1.1
//!   over a 32 000-token vocabulary), the shape of natural-language streams;
//! - `kv_block`: real f16 K and V of layer 0 of a campaign model for a
//!   seeded prompt (computed by the inference component);
//! - `json_logs`: request log lines as an inference server writes them;
//! - `file:PATH`: any file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::Deserialize;
use serde_json::json;

use crate::benchmarks::{
    BenchContext, BenchmarkCase, BenchmarkError, MemoryNeed, MetricDef, Models, Observations,
    ParamProblem, PreparedBenchmark, model_folder, timed_chunked_memcpy,
};
use crate::campaign::bounds::{Kib, Mib};
use crate::components::compression::{BlockCodec, Codec, CodecKind, Lz4Format, train_dictionary};
use crate::components::inference::layer0_kv_f16;
use crate::machine::checked_product;

/// Bytes of separate sample data a zstd dictionary is trained on.
const DICTIONARY_SAMPLE_BYTES: usize = 1 << 20;
/// Largest trained dictionary.
const DICTIONARY_MAX_BYTES: usize = 64 * 1024;

/// A data set to compress.
#[derive(Debug, Clone, PartialEq)]
enum Input {
    TokenIds,
    KvBlock,
    JsonLogs,
    File(PathBuf),
}

impl Input {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "token_ids" => Ok(Self::TokenIds),
            "kv_block" => Ok(Self::KvBlock),
            "json_logs" => Ok(Self::JsonLogs),
            other => other
                .strip_prefix("file:")
                .map(|p| Self::File(PathBuf::from(p)))
                .ok_or_else(|| {
                    format!(
                        "unknown input {other:?}: use token_ids, kv_block, json_logs or file:PATH"
                    )
                }),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::TokenIds => "token_ids".into(),
            Self::KvBlock => "kv_block".into(),
            Self::JsonLogs => "json_logs".into(),
            Self::File(p) => format!(
                "file:{}",
                p.file_name().map_or_else(
                    || p.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
        }
    }
}

fn default_model() -> String {
    "default".to_string()
}

fn default_block_kib() -> Kib {
    Kib::new_const(64)
}

fn default_input_mib() -> Mib {
    Mib::new_const(4)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionParams {
    inputs: Vec<String>,
    codecs: Vec<Codec>,
    /// Bytes generated per input (files are read whole, up to this size).
    #[serde(default = "default_input_mib")]
    input_mib: Mib,
    /// Data is compressed in independent blocks of this size, as a cache
    /// or a store compresses it.
    #[serde(default = "default_block_kib")]
    block_kib: Kib,
    /// The model whose activations make `kv_block` inputs.
    #[serde(default = "default_model")]
    model: String,
    /// How `lz4` lays out a block: `frame` (an LZ4 frame per block) or
    /// `block` (the block API, reused table and buffer). Both carry a CRC-32C.
    #[serde(default)]
    lz4_format: Lz4Format,
}

pub(super) fn check_params(p: &CompressionParams, models: &Models) -> Result<(), ParamProblem> {
    if p.inputs.is_empty() {
        return Err(ParamProblem::at(
            "inputs",
            "inputs lists nothing to compress",
            "e.g. inputs = [\"token_ids\", \"kv_block\", \"json_logs\"]",
        ));
    }
    for (i, input) in p.inputs.iter().enumerate() {
        let at = format!("inputs[{i}]");
        match Input::parse(input) {
            Err(message) => {
                return Err(ParamProblem::at(
                    &at,
                    message,
                    "e.g. inputs = [\"token_ids\", \"file:data/sample.bin\"]",
                ));
            }
            Ok(Input::KvBlock) if !models.contains_key(&p.model) => {
                return Err(ParamProblem::at(
                    "model",
                    format!(
                        "kv_block needs a model; no model named {:?} in [models]",
                        p.model
                    ),
                    "define [models.default] or set model",
                ));
            }
            Ok(Input::File(path)) if !path.is_file() => {
                return Err(ParamProblem::at(
                    &at,
                    format!("input file {} does not exist", path.display()),
                    "paths are relative to the current directory",
                ));
            }
            Ok(Input::File(path)) if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) => {
                return Err(ParamProblem::at(
                    &at,
                    format!(
                        "input file {} is empty: there is nothing to compress",
                        path.display()
                    ),
                    "give a file with data in it",
                ));
            }
            Ok(_) => {}
        }
    }
    if p.codecs.is_empty() {
        return Err(ParamProblem::at(
            "codecs",
            "codecs lists no codec",
            "e.g. codecs = [\"zstd:3\", \"lz4\", \"snappy\"]",
        ));
    }
    if p.block_kib.get() > p.input_mib.get() * 1024 {
        return Err(ParamProblem::at(
            "block_kib",
            format!(
                "found {} KiB; allowed: a block no larger than the input ({} MiB)",
                p.block_kib, p.input_mib
            ),
            "e.g. block_kib = 64, input_mib = 4",
        ));
    }
    Ok(())
}

/// Cases this makes: one per input × codec.
pub(super) fn case_count(p: &CompressionParams) -> usize {
    p.inputs.len() * p.codecs.len()
}

/// Each case holds its input four times (data, compressed blocks, the
/// restored block and the memcpy copy); a dictionary sample is on top.
pub(super) fn memory(p: &CompressionParams) -> Result<MemoryNeed, ParamProblem> {
    let input = p.input_mib.get() << 20;
    let bytes = checked_product(&[input, 4, case_count(p) as u64])
        .and_then(|b| b.checked_add(DICTIONARY_SAMPLE_BYTES as u64))
        .ok_or_else(|| {
            ParamProblem::at(
                "input_mib",
                "input_mib × cases does not fit in 64 bits",
                "lower input_mib",
            )
        })?;
    Ok(MemoryNeed::new(
        bytes,
        format!(
            "{} MiB × 4 copies × {} cases (inputs × codecs)",
            p.input_mib,
            case_count(p)
        ),
    ))
}

fn token_ids(seed: u64, bytes: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let zipf = Zipf::new(32_000.0, 1.1)
        .expect("a 32 000-word vocabulary with s = 1.1 is a valid Zipf law");
    (0..bytes / 4)
        .flat_map(|_| (zipf.sample(&mut rng) as u32 - 1).to_le_bytes())
        .collect()
}

fn json_logs(seed: u64, bytes: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = String::with_capacity(bytes + 256);
    let mut id: u64 = rng.random();
    let mut ts: u64 = 1_795_000_000_000;
    while text.len() < bytes {
        ts += rng.random_range(1..50);
        id = id.wrapping_add(1);
        let prompt = rng.random_range(16..4096);
        let output = rng.random_range(1..512);
        let ttft = rng.random_range(20.0..2000.0_f64);
        let status = if rng.random_ratio(1, 50) {
            "error"
        } else {
            "ok"
        };
        let _ = writeln!(
            text,
            r#"{{"ts":{ts},"request_id":"req-{id:016x}","model":"llama-16m","prompt_tokens":{prompt},"output_tokens":{output},"ttft_ms":{ttft:.3},"tpot_ms":{:.3},"status":"{status}"}}"#,
            ttft / 40.0
        );
    }
    text.truncate(bytes);
    text.into_bytes()
}

fn kv_blocks(
    ctx: &BenchContext,
    model: &str,
    seed: u64,
    bytes: usize,
) -> Result<Vec<u8>, BenchmarkError> {
    let (resolved, folder) = model_folder(ctx, model)?;
    let vocab = resolved.architecture.vocab_size as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(bytes);
    // Prompts of 256 tokens until the input is full.
    while data.len() < bytes {
        let tokens: Vec<u32> = (0..256).map(|_| rng.random_range(0..vocab)).collect();
        data.extend(layer0_kv_f16(&folder, &tokens)?);
    }
    data.truncate(bytes);
    Ok(data)
}

fn load_input(
    input: &Input,
    p: &CompressionParams,
    ctx: &BenchContext,
    seed: u64,
) -> Result<Vec<u8>, BenchmarkError> {
    let bytes = p.input_mib.usize() << 20;
    Ok(match input {
        Input::TokenIds => token_ids(seed, bytes),
        Input::JsonLogs => json_logs(seed, bytes),
        Input::KvBlock => kv_blocks(ctx, &p.model, seed, bytes)?,
        Input::File(path) => {
            let mut data = std::fs::read(path).map_err(|e| {
                BenchmarkError::Component(format!("cannot read input {}: {e}", path.display()))
            })?;
            data.truncate(bytes);
            data
        }
    })
}

/// Prepares one case per input × codec; dictionaries are trained on a
/// separate sample of the same input (another seed, or the file's tail).
pub(super) fn prepare_cases(
    p: &CompressionParams,
    ctx: &BenchContext,
    speed: bool,
) -> Result<PreparedBenchmark, BenchmarkError> {
    let block = p.block_kib.usize() * 1024;
    let mut cases: Vec<Box<dyn BenchmarkCase>> = Vec::new();
    for text in &p.inputs {
        let input = Input::parse(text).map_err(BenchmarkError::Params)?;
        let data = load_input(&input, p, ctx, ctx.settings.seed)?;
        if data.is_empty() {
            return Err(BenchmarkError::Component(format!(
                "input {} is empty: there is nothing to compress",
                input.label()
            )));
        }
        let needs_dictionary = p.codecs.iter().any(|c| c.kind == CodecKind::ZstdDict);
        let dictionary = if needs_dictionary {
            let sample = match &input {
                Input::File(_) => data.clone(),
                _ => load_input(&input, p, ctx, ctx.settings.seed ^ 0xd1c7)?,
            };
            let sample = &sample[..sample.len().min(DICTIONARY_SAMPLE_BYTES)];
            let chunks: Vec<&[u8]> = sample.chunks(block.min(4096)).collect();
            Some(
                train_dictionary(&chunks, DICTIONARY_MAX_BYTES)
                    .map_err(|e| BenchmarkError::Component(e.to_string()))?,
            )
        } else {
            None
        };
        for codec in &p.codecs {
            let engine = BlockCodec::new(*codec, dictionary.as_deref())
                .map_err(|e| BenchmarkError::Component(e.to_string()))?
                .with_lz4_format(p.lz4_format);
            cases.push(Box::new(CompressionCase {
                input: input.label(),
                data: data.clone(),
                block,
                engine,
                dictionary_bytes: if codec.kind == CodecKind::ZstdDict {
                    dictionary.as_ref().map_or(0, Vec::len)
                } else {
                    0
                },
                compressed: Vec::new(),
                restored: Vec::new(),
                copy: vec![1u8; data.len()],
                speed,
            }));
        }
    }
    Ok(PreparedBenchmark::new(cases).with_context(json!({
        "input_bytes": p.input_mib.get() << 20,
        "block_bytes": block,
        "inputs": p.inputs,
        "lz4_format": p.lz4_format,
        "dictionary": { "sample_bytes": DICTIONARY_SAMPLE_BYTES, "max_bytes": DICTIONARY_MAX_BYTES, "trained_on": "a separate sample of the same input (another seed; a file trains on itself)" },
    })))
}

struct CompressionCase {
    input: String,
    data: Vec<u8>,
    block: usize,
    engine: BlockCodec,
    dictionary_bytes: usize,
    /// Compressed blocks, one after another, with their lengths.
    compressed: Vec<(Vec<u8>, usize)>,
    restored: Vec<u8>,
    copy: Vec<u8>,
    speed: bool,
}

impl BenchmarkCase for CompressionCase {
    fn label(&self) -> String {
        format!("{}/{}", self.input, self.engine.codec())
    }

    fn parameters(&self) -> serde_json::Value {
        json!({
            "input": self.input,
            "codec": self.engine.codec(),
            "input_bytes": self.data.len(),
            "block_bytes": self.block,
            "dictionary_bytes": self.dictionary_bytes,
        })
    }

    fn run_iteration(&mut self, obs: &mut Observations) -> Result<(), BenchmarkError> {
        let component = |e: crate::components::compression::CompressionError| {
            BenchmarkError::Component(e.to_string())
        };
        let blocks = self.data.len().div_ceil(self.block);
        self.compressed.resize_with(blocks, || (Vec::new(), 0));
        let started = Instant::now();
        for (chunk, (out, len)) in self.data.chunks(self.block).zip(self.compressed.iter_mut()) {
            self.engine.compress(chunk, out).map_err(component)?;
            *len = chunk.len();
        }
        let compress = started.elapsed();

        let mut decompress = Duration::ZERO;
        for (i, (compressed, len)) in self.compressed.iter().enumerate() {
            let started = Instant::now();
            self.engine
                .decompress(compressed, *len, &mut self.restored)
                .map_err(component)?;
            decompress += started.elapsed();
            let original = &self.data[i * self.block..i * self.block + len];
            if self.restored != original {
                return Err(BenchmarkError::Component(format!(
                    "{}: block {i} did not round-trip byte for byte",
                    self.engine.codec()
                )));
            }
        }

        let compressed_bytes: usize = self.compressed.iter().map(|(c, _)| c.len()).sum();
        let ratio = self.data.len() as f64 / compressed_bytes as f64;
        obs.value(&RATIO, ratio);
        obs.value(&COMPRESSED_BYTES, compressed_bytes as f64);
        obs.value(
            &SPACE_SAVING_PCT,
            100.0 * (1.0 - compressed_bytes as f64 / self.data.len() as f64),
        );
        if self.speed {
            let mb = self.data.len() as f64 / 1e6;
            let memcpy = timed_chunked_memcpy(&mut self.copy, &self.data, self.block);
            let memcpy_mbps = mb / memcpy.as_secs_f64();
            let (c, d) = (mb / compress.as_secs_f64(), mb / decompress.as_secs_f64());
            obs.value(&COMPRESS_MB_PER_S, c);
            obs.value(&DECOMPRESS_MB_PER_S, d);
            obs.value(&MEMCPY_MB_PER_S, memcpy_mbps);
            obs.value(&COMPRESS_FRACTION_OF_MEMCPY, c / memcpy_mbps);
            obs.value(&DECOMPRESS_FRACTION_OF_MEMCPY, d / memcpy_mbps);
            obs.duration(&COMPRESS_BLOCK_MS, compress.div_f64(blocks.max(1) as f64));
        }
        Ok(())
    }
}

pub(super) const RATIO: MetricDef = MetricDef::quantity(
    "ratio",
    "×",
    true,
    "original bytes ÷ compressed bytes, over all blocks",
);
pub(super) const COMPRESSED_BYTES: MetricDef = MetricDef::quantity(
    "compressed_bytes",
    "bytes",
    false,
    "sum of the compressed blocks, frame headers and checksums included",
);
pub(super) const SPACE_SAVING_PCT: MetricDef =
    MetricDef::quantity("space_saving_pct", "%", true, "1 − compressed ÷ original");
pub(super) const COMPRESS_MB_PER_S: MetricDef = MetricDef::quantity(
    "compress_mb_per_s",
    "MB/s",
    true,
    "input bytes ÷ time to compress every block",
);
pub(super) const DECOMPRESS_MB_PER_S: MetricDef = MetricDef::quantity(
    "decompress_mb_per_s",
    "MB/s",
    true,
    "input bytes ÷ time to decompress every block",
);
pub(super) const MEMCPY_MB_PER_S: MetricDef = MetricDef::quantity(
    "memcpy_mb_per_s",
    "MB/s",
    true,
    "reference: memcpy of the same bytes in the same block-sized chunks, same iteration",
);
pub(super) const COMPRESS_FRACTION_OF_MEMCPY: MetricDef = MetricDef::quantity(
    "compress_fraction_of_memcpy",
    "ratio",
    true,
    "compress MB/s ÷ memcpy MB/s",
);
pub(super) const DECOMPRESS_FRACTION_OF_MEMCPY: MetricDef = MetricDef::quantity(
    "decompress_fraction_of_memcpy",
    "ratio",
    true,
    "decompress MB/s ÷ memcpy MB/s",
);
pub(super) const COMPRESS_BLOCK_MS: MetricDef = MetricDef::duration_ms(
    "compress_block_ms",
    "mean time to compress one block in the iteration",
);
