//! What a Llama-family model is, independent of its file format: its
//! sizes, the tensors each format must hold, and what its weights cost.

use candle_core::DType;
use candle_transformers::models::llama::LlamaConfig;
use serde::Serialize;

use super::InferenceError;

/// The numbers of a Llama-family model that benchmarks and reports need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ModelArchitecture {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

impl ModelArchitecture {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Number of weights, counted from the tensor shapes the model loads.
    pub fn parameter_count(&self) -> usize {
        expected_tensors(self)
            .iter()
            .map(|(_, shape)| shape.iter().product::<usize>())
            .sum()
    }

    pub(super) fn from_llama_config(c: &LlamaConfig) -> Self {
        Self {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_hidden_layers: c.num_hidden_layers,
            num_attention_heads: c.num_attention_heads,
            num_key_value_heads: c.num_key_value_heads(),
            max_position_embeddings: c.max_position_embeddings,
            tie_word_embeddings: c.tie_word_embeddings.unwrap_or(false),
        }
    }
}

/// Weights, counted in closed form with checked arithmetic: the sizes come
/// from a user's file and may not fit (`None` then). Equals
/// [`ModelArchitecture::parameter_count`] for every model that fits.
pub fn checked_parameter_count(a: &ModelArchitecture) -> Option<u64> {
    let n = |v: usize| u64::try_from(v).ok();
    let (h, i, v, l) = (
        n(a.hidden_size)?,
        n(a.intermediate_size)?,
        n(a.vocab_size)?,
        n(a.num_hidden_layers)?,
    );
    let kv = n(a.num_key_value_heads)?.checked_mul(h.checked_div(n(a.num_attention_heads)?)?)?;
    // Two norms, q and o (h×h), k and v (kv×h), gate, up and down (i×h).
    let per_layer = [
        h.checked_mul(2)?,
        h.checked_mul(h)?.checked_mul(2)?,
        kv.checked_mul(h)?.checked_mul(2)?,
        i.checked_mul(h)?.checked_mul(3)?,
    ]
    .iter()
    .try_fold(0u64, |acc, x| acc.checked_add(*x))?;
    let embeddings = v
        .checked_mul(h)?
        .checked_mul(if a.tie_word_embeddings { 1 } else { 2 })?;
    per_layer
        .checked_mul(l)?
        .checked_add(embeddings)?
        .checked_add(h)
}

/// The memory a model needs while it is built and loaded: its weights at
/// `dtype`, or, for a synthetic model, the f32 weights it is generated in
/// and the copy written out (× 2).
pub fn model_memory(
    a: &ModelArchitecture,
    dtype: DType,
    synthetic: bool,
) -> Result<crate::machine::MemoryNeed, InferenceError> {
    let too_large = || {
        InferenceError::InvalidConfig(
            "the model's sizes multiply to more weights than 64 bits can count".into(),
        )
    };
    if a.num_attention_heads == 0 {
        return Err(InferenceError::InvalidConfig(
            "num_attention_heads is 0; allowed: at least 1".into(),
        ));
    }
    let parameters = checked_parameter_count(a).ok_or_else(too_large)?;
    let (bytes_per, copies, how) = if synthetic {
        (4, 2, "f32 generated, then written: × 2")
    } else {
        (dtype.size_in_bytes() as u64, 1, "at the campaign's dtype")
    };
    let weights =
        crate::machine::checked_product(&[parameters, bytes_per, copies]).ok_or_else(too_large)?;
    // candle builds its rotary cos/sin tables for every position up front
    // (an f32 angle table, then cos and sin): 3 × positions × head_dim/2 × 4.
    let positions = u64::try_from(a.max_position_embeddings).map_err(|_| too_large())?;
    let half_head = u64::try_from(a.head_dim() / 2).map_err(|_| too_large())?;
    let rope =
        crate::machine::checked_product(&[positions, half_head, 4, 3]).ok_or_else(too_large)?;
    let bytes = weights.checked_add(rope).ok_or_else(too_large)?;
    Ok(crate::machine::MemoryNeed::new(
        bytes,
        format!(
            "{parameters} parameters × {bytes_per} bytes, {how}; \
             rotary tables 3 × {positions} positions × {half_head} × 4 bytes"
        ),
    ))
}

/// Every tensor candle's `Llama::load` reads, with its shape. candle panics
/// on a missing tensor, so a folder is checked against this list first.
pub(super) fn expected_tensors(a: &ModelArchitecture) -> Vec<(String, Vec<usize>)> {
    let (h, i, v) = (a.hidden_size, a.intermediate_size, a.vocab_size);
    let kv = a.num_key_value_heads * a.head_dim();
    let mut tensors = vec![
        ("model.embed_tokens.weight".to_string(), vec![v, h]),
        ("model.norm.weight".to_string(), vec![h]),
    ];
    if !a.tie_word_embeddings {
        tensors.push(("lm_head.weight".to_string(), vec![v, h]));
    }
    for layer in 0..a.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        tensors.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![h, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    tensors
}

/// The tensors a GGUF Llama file must hold: the same as a safetensors
/// folder's, under llama.cpp's names (shapes in candle's row-major order).
pub(super) fn gguf_tensors(a: &ModelArchitecture) -> Vec<(String, Vec<usize>)> {
    expected_tensors(a)
        .into_iter()
        .map(|(name, shape)| (gguf_name(&name), shape))
        .collect()
}

/// llama.cpp's name of a Hugging Face Llama tensor.
pub(super) fn gguf_name(hf: &str) -> String {
    const RENAMES: [(&str, &str); 12] = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
        ("model.layers.", "blk."),
        (".input_layernorm.", ".attn_norm."),
        (".post_attention_layernorm.", ".ffn_norm."),
        (".self_attn.q_proj.", ".attn_q."),
        (".self_attn.k_proj.", ".attn_k."),
        (".self_attn.v_proj.", ".attn_v."),
        (".self_attn.o_proj.", ".attn_output."),
        (".mlp.gate_proj.", ".ffn_gate."),
        (".mlp.up_proj.", ".ffn_up."),
    ];
    let renamed = RENAMES
        .iter()
        .fold(hf.to_string(), |name, (from, to)| name.replace(from, to));
    renamed.replace(".mlp.down_proj.", ".ffn_down.")
}

/// What a model's weights are and cost, as every report records them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WeightsFacts {
    /// `safetensors` or `gguf`.
    pub format: String,
    /// The architecture family (`llama`, `qwen2`).
    pub family: String,
    /// The type that holds most of the weight bytes (`f32`, `q4_1`, …).
    pub quantization: String,
    /// How many tensors of each type the file holds.
    pub tensor_types: std::collections::BTreeMap<String, usize>,
    pub parameters: u64,
    /// Bytes of the weights as stored.
    pub stored_bytes: u64,
    /// Weight bytes one forward pass reads: every matrix as held in memory,
    /// except an embedding table that is only looked up (one row per token).
    pub bytes_per_forward: u64,
    /// Bytes the loaded model holds: quantized types stay as stored (our
    /// kernels' layout of them where it is larger); f32, f16 and bf16
    /// weights of a GGUF file and its embedding table are widened to f32
    /// by candle; plus the rotary tables.
    pub memory_bytes: u64,
    /// Whose kernels compute a GGUF model's matrix products (absent for
    /// safetensors models, which candle's f32/f16 GEMM runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matmul: Option<MatmulFacts>,
}

/// The quantized matrix products of a loaded GGUF model.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MatmulFacts {
    /// `native` (ours) or `candle`.
    pub kernels: String,
    /// Instruction set of our kernels on this CPU (`avx512vnni`, `avx2`,
    /// `portable`); absent for candle's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isa: Option<String>,
    /// Projections and output head on our kernels, of all of them.
    pub native_projections: usize,
    pub projections: usize,
    /// Weight types left to candle's kernels (no kernels of ours for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candle_types: Vec<String>,
    /// Why candle's kernels run although ours were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl WeightsFacts {
    /// Facts of a safetensors model loaded at `dtype`, from its shapes.
    pub fn safetensors(a: &ModelArchitecture, dtype: DType) -> Self {
        let size = dtype.size_in_bytes() as u64;
        let tensors = expected_tensors(a);
        let elems = |(_, shape): &(String, Vec<usize>)| shape.iter().product::<usize>() as u64;
        let parameters: u64 = tensors.iter().map(elems).sum();
        let per_forward: u64 = tensors
            .iter()
            .filter(|(name, shape)| {
                shape.len() == 2 && (a.tie_word_embeddings || name != "model.embed_tokens.weight")
            })
            .map(elems)
            .sum();
        let name = format!("{dtype:?}").to_lowercase();
        Self {
            format: "safetensors".into(),
            family: "llama".into(),
            quantization: name.clone(),
            tensor_types: [(name, tensors.len())].into_iter().collect(),
            parameters,
            stored_bytes: parameters * size,
            bytes_per_forward: per_forward * size,
            memory_bytes: parameters * size,
            matmul: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_count_matches_the_tensor_list_and_refuses_overflow() {
        let mut a = ModelArchitecture {
            vocab_size: 100,
            hidden_size: 8,
            intermediate_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            max_position_embeddings: 64,
            tie_word_embeddings: false,
        };
        assert_eq!(
            checked_parameter_count(&a),
            Some(a.parameter_count() as u64)
        );
        a.tie_word_embeddings = true;
        assert_eq!(
            checked_parameter_count(&a),
            Some(a.parameter_count() as u64)
        );
        a.num_hidden_layers = usize::MAX;
        assert_eq!(checked_parameter_count(&a), None);
        assert!(model_memory(&a, DType::F32, true).is_err());
    }
}
