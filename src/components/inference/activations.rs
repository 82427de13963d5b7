//! Real activations of a model for workloads that need tensor data shaped
//! like an inference server's (e.g. KV-cache blocks to compress).

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};

use super::{InferenceError, ModelFolder};

/// K and V of layer 0 for `tokens` (before rotary embedding), as f16
/// bytes laid out [K rows..., V rows...], each row `kv_heads × head_dim`
/// values. Computed from the model's own weights: embedding, RMSNorm with
/// the layer's gain, then the k and v projections.
pub fn layer0_kv_f16(folder: &Path, tokens: &[u32]) -> Result<Vec<u8>, InferenceError> {
    let folder = ModelFolder::open(folder)?;
    // SAFETY: read-only mapping of the model files, as in `LoadedModel::load`.
    let weights =
        unsafe { candle_core::safetensors::MmapedSafetensors::multi(&folder.weight_files) }?;
    let device = Device::Cpu;
    let get = |name: &str| -> Result<Tensor, InferenceError> {
        Ok(weights.load(name, &device)?.to_dtype(DType::F32)?)
    };
    let embed = get("model.embed_tokens.weight")?;
    let gain = get("model.layers.0.input_layernorm.weight")?;
    let ids = Tensor::from_vec(tokens.to_vec(), tokens.len(), &device)?;
    let x = embed.index_select(&ids, 0)?;
    let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?;
    let x = x.broadcast_div(&rms)?.broadcast_mul(&gain)?;
    let k = x.matmul(&get("model.layers.0.self_attn.k_proj.weight")?.t()?)?;
    let v = x.matmul(&get("model.layers.0.self_attn.v_proj.weight")?.t()?)?;
    let kv = Tensor::cat(&[k, v], 0)?.to_dtype(DType::F16)?;
    let values: Vec<half::f16> = kv.flatten_all()?.to_vec1()?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}
