//! Writing a Llama model as a llama.cpp-style GGUF file at a chosen
//! quantization: the synthetic model's GGUF form, and a safetensors model
//! quantized in memory.

use candle_core::quantized::{QTensor, gguf_file};
use candle_core::{DType, Tensor};

use super::architecture::{expected_tensors, gguf_name};
use super::{InferenceError, ModelArchitecture, Quantization};

/// The type a matrix with rows of `row_len` weights is stored in: the one
/// asked for when its block divides the row, else q8_0, else f16.
fn storage_type(wanted: Quantization, row_len: usize) -> Quantization {
    [wanted, Quantization::Q8_0, Quantization::F16]
        .into_iter()
        .find(|q| row_len.is_multiple_of(q.block_len()))
        .unwrap_or(Quantization::F32)
}

/// Hugging Face's q and k projections rotate halves of each head; GGUF's
/// Llama rotates interleaved pairs. llama.cpp's converter reorders the rows
/// of each head so both give the same attention; this is its `permute`.
fn permute_for_interleaved_rope(w: &Tensor, heads: usize) -> Result<Tensor, InferenceError> {
    let (rows, cols) = w.dims2()?;
    let head_dim = rows / heads;
    Ok(w.reshape((heads, 2, head_dim / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// What a GGUF file says about its model besides the tensors.
pub(super) struct GgufSpec {
    pub architecture: ModelArchitecture,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    /// `general.name`.
    pub name: String,
    /// `tokenizer.*` keys, when the model has a vocabulary to write.
    pub tokenizer: Vec<(&'static str, gguf_file::Value)>,
}

/// Writes Hugging Face Llama weights (`tensor` gives each by its Hugging
/// Face name, as f32 or any float type) as a llama.cpp-style GGUF file:
/// llama.cpp's tensor names and metadata keys, q/k rows permuted for
/// interleaved RoPE, norms in f32 and every matrix at `quantization`.
pub(super) fn write_gguf<W: std::io::Write + std::io::Seek>(
    spec: &GgufSpec,
    tensor: impl Fn(&str) -> Result<Option<Tensor>, InferenceError>,
    quantization: Quantization,
    writer: &mut W,
) -> Result<(), InferenceError> {
    let a = &spec.architecture;
    let mut named: Vec<(String, QTensor)> = Vec::new();
    for (hf_name, _) in expected_tensors(a) {
        let Some(tensor) = tensor(&hf_name)? else {
            continue;
        };
        let tensor = tensor.to_dtype(DType::F32)?;
        let gguf_name = gguf_name(&hf_name);
        let tensor = if hf_name.ends_with("q_proj.weight") {
            permute_for_interleaved_rope(&tensor, a.num_attention_heads)?
        } else if hf_name.ends_with("k_proj.weight") {
            permute_for_interleaved_rope(&tensor, a.num_key_value_heads)?
        } else {
            tensor
        };
        let q = if tensor.rank() == 1 {
            Quantization::F32
        } else {
            storage_type(quantization, tensor.dims()[tensor.rank() - 1])
        };
        named.push((gguf_name, QTensor::quantize(&tensor, q.ggml())?));
    }
    let u32_of = |v: usize| gguf_file::Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let mut metadata: Vec<(&str, gguf_file::Value)> = vec![
        (
            "general.architecture",
            gguf_file::Value::String("llama".into()),
        ),
        ("general.name", gguf_file::Value::String(spec.name.clone())),
        (
            "general.file_type",
            gguf_file::Value::U32(quantization.llama_file_type()),
        ),
        ("general.quantization_version", gguf_file::Value::U32(2)),
        ("llama.vocab_size", u32_of(a.vocab_size)),
        ("llama.context_length", u32_of(a.max_position_embeddings)),
        ("llama.embedding_length", u32_of(a.hidden_size)),
        ("llama.block_count", u32_of(a.num_hidden_layers)),
        ("llama.feed_forward_length", u32_of(a.intermediate_size)),
        ("llama.attention.head_count", u32_of(a.num_attention_heads)),
        (
            "llama.attention.head_count_kv",
            u32_of(a.num_key_value_heads),
        ),
        ("llama.rope.dimension_count", u32_of(a.head_dim())),
        (
            "llama.rope.freq_base",
            gguf_file::Value::F32(spec.rope_theta),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(spec.rms_norm_eps as f32),
        ),
    ];
    metadata.extend(spec.tokenizer.iter().cloned());
    let metadata_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(writer, &metadata_refs, &tensor_refs)?;
    Ok(())
}
