//! What the two KV cache kinds share: the cache's geometry as a campaign
//! writes it, deterministic block contents, and rate helpers.

use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

use crate::benchmarks::{BenchmarkError, Models, ParamProblem};
use crate::campaign::bounds::Dimension;
use crate::components::kvcache::{KvCacheError, KvDType, KvGeometry};

const GB: f64 = 1e9;
const MB: f64 = 1e6;

fn default_dtype() -> KvDType {
    KvDType::F16
}

fn default_block_tokens() -> Vec<Dimension> {
    vec![Dimension::new_const(16)]
}

/// The cache's shape: from a model of the campaign, or written out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GeometryParams {
    model: Option<String>,
    layers: Option<Dimension>,
    kv_heads: Option<Dimension>,
    head_dim: Option<Dimension>,
    #[serde(default = "default_dtype")]
    dtype: KvDType,
    /// One case per block size.
    #[serde(default = "default_block_tokens")]
    pub block_tokens: Vec<Dimension>,
}

impl GeometryParams {
    /// One geometry per block size; problems are reported at
    /// `geometry.<field>`.
    pub fn resolve(&self, models: &Models) -> Result<Vec<KvGeometry>, ParamProblem> {
        let (layers, kv_heads, head_dim) =
            match (&self.model, self.layers, self.kv_heads, self.head_dim) {
                (Some(name), None, None, None) => {
                    let m = models.get(name).ok_or_else(|| {
                        ParamProblem::at(
                            "geometry.model",
                            format!("no model named {name:?} in [models]"),
                            "define it or give layers, kv_heads and head_dim",
                        )
                    })?;
                    let a = &m.architecture;
                    (a.num_hidden_layers, a.num_key_value_heads, a.head_dim())
                }
                (None, Some(l), Some(k), Some(h)) => (l.usize(), k.usize(), h.usize()),
                _ => {
                    return Err(ParamProblem::at(
                        "geometry",
                        "give either `model` or all of `layers`, `kv_heads` and `head_dim`",
                        "e.g. geometry = { layers = 32, kv_heads = 32, head_dim = 128 }",
                    ));
                }
            };
        if self.block_tokens.is_empty() {
            return Err(ParamProblem::at(
                "geometry.block_tokens",
                "found an empty list; allowed: at least one block size",
                "e.g. block_tokens = [16]",
            ));
        }
        self.block_tokens
            .iter()
            .enumerate()
            .map(|(i, block_tokens)| {
                let g = KvGeometry {
                    layers,
                    kv_heads,
                    head_dim,
                    dtype: self.dtype,
                    block_tokens: block_tokens.usize(),
                };
                g.check().map(|()| g).map_err(|e| {
                    ParamProblem::at(
                        &format!("geometry.block_tokens[{i}]"),
                        e.to_string(),
                        "use smaller sizes",
                    )
                })
            })
            .collect()
    }
}

pub(super) fn geometry_context(g: &KvGeometry) -> serde_json::Value {
    json!({
        "geometry": g,
        "bytes_per_token": g.bytes_per_token(),
        "bytes_per_token_formula": "2 × layers × kv_heads × head_dim × dtype bytes",
        "block_bytes": g.block_bytes(),
    })
}

/// Deterministic block contents: the bytes are stored and compared, not interpreted.
pub(super) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Random but finite values of the block's dtype, so that int8 quantization
/// sees real numbers (random bytes would include NaN bit patterns).
pub(super) fn random_values(seed: u64, len: usize, dtype: KvDType) -> Vec<u8> {
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

pub(super) fn gb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / GB / elapsed.as_secs_f64()
}

pub(super) fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MB / elapsed.as_secs_f64()
}

pub(super) fn cache_error(e: KvCacheError) -> BenchmarkError {
    BenchmarkError::Component(e.to_string())
}
