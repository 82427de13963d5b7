//! Real activations of a model for workloads that need tensor data shaped
//! like an inference server's (e.g. KV-cache blocks to compress).

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};

use super::{InferenceError, ModelFolder};

/// Computes layer 0's K and V from a model's own weights: embedding,
/// RMSNorm with the layer's gain, then the k and v projections. The
/// weights are loaded once, so projecting many sequences is cheap.
pub struct Layer0KvProjector {
    embed: Tensor,
    gain: Tensor,
    k_t: Tensor,
    v_t: Tensor,
    device: Device,
}

impl Layer0KvProjector {
    /// Reads the four tensors from a model folder or a GGUF file.
    pub fn open(path: &Path) -> Result<Self, InferenceError> {
        if super::is_gguf(path) {
            return Self::open_gguf(path);
        }
        let folder = ModelFolder::open(path)?;
        // SAFETY: read-only mapping of the model files, as in `LoadedModel::load`.
        let weights =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&folder.weight_files) }?;
        let device = Device::Cpu;
        let get = |name: &str| -> Result<Tensor, InferenceError> {
            Ok(weights.load(name, &device)?.to_dtype(DType::F32)?)
        };
        Ok(Self {
            embed: get("model.embed_tokens.weight")?,
            gain: get("model.layers.0.input_layernorm.weight")?,
            k_t: get("model.layers.0.self_attn.k_proj.weight")?.t()?,
            v_t: get("model.layers.0.self_attn.v_proj.weight")?.t()?,
            device,
        })
    }

    /// The same tensors under llama.cpp's names, widened to f32. (GGUF's k
    /// rows are permuted within each head for interleaved RoPE: the values
    /// are the same, in another order.)
    fn open_gguf(path: &Path) -> Result<Self, InferenceError> {
        let file = std::fs::File::open(path).map_err(|source| InferenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = std::io::BufReader::new(file);
        let content = candle_core::quantized::gguf_file::Content::read(&mut reader)?;
        let device = Device::Cpu;
        let mut get = |name: &str| -> Result<Tensor, InferenceError> {
            Ok(content
                .tensor(&mut reader, name, &device)?
                .dequantize(&device)?)
        };
        Ok(Self {
            embed: get("token_embd.weight")?,
            gain: get("blk.0.attn_norm.weight")?,
            k_t: get("blk.0.attn_k.weight")?.t()?,
            v_t: get("blk.0.attn_v.weight")?.t()?,
            device,
        })
    }

    /// K and V of layer 0 for `tokens` (before rotary embedding), as f16
    /// bytes laid out [K rows..., V rows...], each row `kv_heads × head_dim`
    /// values.
    pub fn project_f16(&self, tokens: &[u32]) -> Result<Vec<u8>, InferenceError> {
        let ids = Tensor::from_vec(tokens.to_vec(), tokens.len(), &self.device)?;
        let x = self.embed.index_select(&ids, 0)?;
        let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + 1e-5)?.sqrt()?;
        let x = x.broadcast_div(&rms)?.broadcast_mul(&self.gain)?;
        let k = x.matmul(&self.k_t)?;
        let v = x.matmul(&self.v_t)?;
        let kv = Tensor::cat(&[k, v], 0)?.to_dtype(DType::F16)?;
        let values: Vec<half::f16> = kv.flatten_all()?.to_vec1()?;
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// [`Layer0KvProjector::project_f16`] for one sequence.
pub fn layer0_kv_f16(folder: &Path, tokens: &[u32]) -> Result<Vec<u8>, InferenceError> {
    Layer0KvProjector::open(folder)?.project_f16(tokens)
}
