use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Config, Llama, LlamaConfig};
use serde::Serialize;

use super::gguf::{GgufWeights, inspect_gguf, is_gguf, load_gguf};
use super::{InferenceError, TextTokenizer};

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

    fn from_llama_config(c: &LlamaConfig) -> Self {
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

/// The tensors a GGUF Llama or Qwen2 file must hold (llama.cpp's names;
/// the shapes in candle's row-major order), checked before candle loads it.
pub(super) fn gguf_tensors(a: &ModelArchitecture) -> Vec<(String, Vec<usize>)> {
    let (h, i, v) = (a.hidden_size, a.intermediate_size, a.vocab_size);
    let kv = a.num_key_value_heads * a.head_dim();
    let mut tensors = vec![
        ("token_embd.weight".to_string(), vec![v, h]),
        ("output_norm.weight".to_string(), vec![h]),
    ];
    if !a.tie_word_embeddings {
        tensors.push(("output.weight".to_string(), vec![v, h]));
    }
    for layer in 0..a.num_hidden_layers {
        let p = format!("blk.{layer}");
        tensors.extend([
            (format!("{p}.attn_norm.weight"), vec![h]),
            (format!("{p}.ffn_norm.weight"), vec![h]),
            (format!("{p}.attn_q.weight"), vec![h, h]),
            (format!("{p}.attn_k.weight"), vec![kv, h]),
            (format!("{p}.attn_v.weight"), vec![kv, h]),
            (format!("{p}.attn_output.weight"), vec![h, h]),
            (format!("{p}.ffn_gate.weight"), vec![i, h]),
            (format!("{p}.ffn_up.weight"), vec![i, h]),
            (format!("{p}.ffn_down.weight"), vec![h, i]),
        ]);
    }
    tensors
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
    /// Bytes the loaded model holds: quantized types stay as stored; f32,
    /// f16 and bf16 weights of a GGUF file and its embedding table are
    /// widened to f32 by candle; plus the rotary tables.
    pub memory_bytes: u64,
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
        }
    }
}

/// A model folder in Hugging Face layout: `config.json` and `*.safetensors`.
#[derive(Debug, Clone)]
pub struct ModelFolder {
    pub path: PathBuf,
    pub config_path: PathBuf,
    pub weight_files: Vec<PathBuf>,
}

impl ModelFolder {
    pub fn open(path: &Path) -> Result<Self, InferenceError> {
        if !path.is_dir() {
            return Err(InferenceError::MissingFolder {
                path: path.to_path_buf(),
            });
        }
        let config_path = path.join("config.json");
        if !config_path.is_file() {
            return Err(InferenceError::MissingFile {
                path: path.to_path_buf(),
                what: "config.json",
            });
        }
        let entries = std::fs::read_dir(path).map_err(|source| InferenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut weight_files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "safetensors"))
            .collect();
        weight_files.sort();
        if weight_files.is_empty() {
            return Err(InferenceError::MissingFile {
                path: path.to_path_buf(),
                what: "*.safetensors file",
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            config_path,
            weight_files,
        })
    }

    fn llama_config(&self) -> Result<LlamaConfig, InferenceError> {
        let text =
            std::fs::read_to_string(&self.config_path).map_err(|source| InferenceError::Io {
                path: self.config_path.clone(),
                source,
            })?;
        serde_json::from_str(&text).map_err(|source| InferenceError::Config {
            path: self.config_path.clone(),
            source,
        })
    }
}

/// A model on disk, described from its header alone (`config.json`, or a
/// GGUF file's metadata and tensor table): cheap enough for validation.
#[derive(Debug, Clone)]
pub struct ModelDescription {
    pub architecture: ModelArchitecture,
    /// Set for GGUF files, whose weight types are fixed by the file.
    pub gguf: Option<WeightsFacts>,
}

pub fn describe_model(path: &Path) -> Result<ModelDescription, InferenceError> {
    if is_gguf(path) {
        let info = inspect_gguf(path)?;
        return Ok(ModelDescription {
            architecture: info.architecture,
            gguf: Some(info.weights),
        });
    }
    if path.is_file() {
        return Err(InferenceError::NotAModel {
            path: path.to_path_buf(),
        });
    }
    let folder = ModelFolder::open(path)?;
    Ok(ModelDescription {
        architecture: ModelArchitecture::from_llama_config(&folder.llama_config()?),
        gguf: None,
    })
}

/// The weights as candle holds them.
pub(super) enum Backend {
    Safetensors { model: Llama, config: Config },
    Gguf(GgufWeights),
}

/// A model ready for forward passes.
pub struct LoadedModel {
    pub(super) backend: Backend,
    pub architecture: ModelArchitecture,
    pub weights: WeightsFacts,
    /// The model's own tokenizer, when it has one.
    pub tokenizer: Result<TextTokenizer, String>,
    pub device: Device,
    /// The type of activations and of the KV cache (f32 for GGUF models:
    /// candle's quantized models compute in f32).
    pub dtype: DType,
    /// The folder or GGUF file it was loaded from.
    pub path: PathBuf,
}

impl LoadedModel {
    /// Loads a folder (config.json + safetensors, at `dtype`) or a GGUF file.
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self, InferenceError> {
        if is_gguf(path) {
            let gguf = load_gguf(path, device)?;
            let tokenizer = gguf.tokenizer.or_else(|why| {
                tokenizer_beside(path).ok_or(format!(
                    "{why}, and there is no tokenizer.json beside {}",
                    path.display()
                ))?
            });
            return Ok(Self {
                backend: Backend::Gguf(gguf.weights),
                architecture: gguf.info.architecture,
                weights: gguf.info.weights,
                tokenizer,
                device: device.clone(),
                dtype: DType::F32,
                path: path.to_path_buf(),
            });
        }
        if path.is_file() {
            return Err(InferenceError::NotAModel {
                path: path.to_path_buf(),
            });
        }
        let folder = ModelFolder::open(path)?;
        let llama_config = folder.llama_config()?;
        let architecture = ModelArchitecture::from_llama_config(&llama_config);
        if architecture.num_attention_heads == 0
            || !architecture
                .hidden_size
                .is_multiple_of(architecture.num_attention_heads)
        {
            return Err(InferenceError::InvalidConfig(format!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                folder.config_path.display(),
                architecture.hidden_size,
                architecture.num_attention_heads
            )));
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap
        // loader this assumes nobody truncates them while the model is alive.
        let tensors =
            unsafe { candle_core::safetensors::MmapedSafetensors::multi(&folder.weight_files) }
                .map_err(|e| InferenceError::TensorMismatch {
                    path: folder.path.clone(),
                    problems: format!("cannot read safetensors: {e}"),
                })?;
        let problems: Vec<String> = expected_tensors(&architecture)
            .into_iter()
            .filter_map(|(name, shape)| match tensors.get(&name) {
                Err(_) => Some(format!("missing tensor {name}")),
                Ok(view) if view.shape() != shape.as_slice() => Some(format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    view.shape()
                )),
                Ok(_) => None,
            })
            .collect();
        if !problems.is_empty() {
            let shown: Vec<_> = problems.iter().take(5).cloned().collect();
            let more = problems.len().saturating_sub(shown.len());
            return Err(InferenceError::TensorMismatch {
                path: folder.path.clone(),
                problems: if more > 0 {
                    format!("{} (and {more} more)", shown.join("; "))
                } else {
                    shown.join("; ")
                },
            });
        }
        drop(tensors);
        // SAFETY: as above.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&folder.weight_files, dtype, device)? };
        let config = llama_config.into_config(false);
        let model = Llama::load(vb, &config)?;
        let tokenizer = tokenizer_beside(&folder.path.join("config.json")).unwrap_or_else(|| {
            Err(format!("{} has no tokenizer.json", folder.path.display()))
        });
        Ok(Self {
            backend: Backend::Safetensors { model, config },
            weights: WeightsFacts::safetensors(&architecture, dtype),
            architecture,
            tokenizer,
            device: device.clone(),
            dtype,
            path: folder.path,
        })
    }
}

/// `tokenizer.json` in the folder of `file`, when there is one.
fn tokenizer_beside(file: &Path) -> Option<Result<TextTokenizer, String>> {
    let path = file.with_file_name("tokenizer.json");
    path.is_file()
        .then(|| TextTokenizer::from_file(&path).map_err(|e| e.to_string()))
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
