//! The default model: a real Llama architecture whose weights come from a
//! seeded RNG instead of training. It is written to disk as safetensors once
//! and then loaded like any downloaded model, so the load path is exercised
//! on every run and a real model can replace it without code changes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ModelArchitecture;
use super::architecture::expected_tensors;
use super::gguf_writer::{GgufSpec, write_gguf};
use super::synthetic_tokenizer::{MIN_VOCAB, SyntheticTokenizer};
use super::{InferenceError, Quantization};

/// Bumped whenever the generator changes, so that cached models generated
/// by an older algorithm are not reused (2: tokenizer files added; 3: the
/// GGUF pre-tokenizer named as llama.cpp knows it).
const GENERATOR_VERSION: u32 = 3;

/// Standard deviation of the generated weights (the usual Llama init).
const INIT_STD: f64 = 0.02;

/// The shape of a synthetic Llama model, as written in a campaign file.
/// Field names follow Hugging Face's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticLlamaConfig {
    pub seed: u64,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f32,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Write the model as a GGUF file with weights of this type (`q8_0`,
    /// `q4_k`, …) instead of f32 safetensors. A matrix whose rows are not a
    /// multiple of the type's block falls back to q8_0, then f16, as
    /// llama.cpp's quantizer does; the report lists the types in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

fn default_rope_theta() -> f32 {
    10_000.0
}

fn default_rms_norm_eps() -> f64 {
    1e-5
}

/// The subset of Hugging Face's `config.json` that candle's Llama reads.
#[derive(Serialize)]
struct HfLlamaConfigJson<'a> {
    architectures: [&'a str; 1],
    model_type: &'a str,
    hidden_size: usize,
    intermediate_size: usize,
    vocab_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    max_position_embeddings: usize,
    rms_norm_eps: f64,
    rope_theta: f32,
    tie_word_embeddings: bool,
    torch_dtype: &'a str,
    campaign_synthetic_seed: u64,
}

impl SyntheticLlamaConfig {
    /// Checks the shape rules of the Llama architecture.
    pub fn check(&self) -> Result<(), InferenceError> {
        let problem = if [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.num_key_value_heads,
            self.max_position_embeddings,
        ]
        .contains(&0)
        {
            Some("every size must be at least 1".to_string())
        } else if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            Some(format!(
                "hidden_size ({}) must be a multiple of num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ))
        } else if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            Some(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ))
        } else if !(self.hidden_size / self.num_attention_heads).is_multiple_of(2) {
            Some(format!(
                "head dimension hidden_size / num_attention_heads = {} must be even for rotary embeddings",
                self.hidden_size / self.num_attention_heads
            ))
        } else {
            None
        };
        problem.map_or(Ok(()), |p| Err(InferenceError::InvalidConfig(p)))
    }

    pub fn architecture(&self) -> ModelArchitecture {
        ModelArchitecture {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            // candle's quantized Llama has rotary tables for 4096 positions.
            max_position_embeddings: if self.quantization.is_some() {
                self.max_position_embeddings
                    .min(candle_transformers::models::quantized_llama::MAX_SEQ_LEN)
            } else {
                self.max_position_embeddings
            },
            tie_word_embeddings: self.tie_word_embeddings,
        }
    }

    /// Why the generated model has no tokenizer (`None`: it has one).
    pub fn missing_tokenizer(&self) -> Option<String> {
        (self.vocab_size < MIN_VOCAB).then(|| {
            format!(
                "a synthetic model gets a tokenizer only with vocab_size ≥ {MIN_VOCAB}; this one has {}",
                self.vocab_size
            )
        })
    }

    /// A name that changes whenever anything that shapes the weights changes.
    fn folder_name(&self) -> String {
        let canonical = serde_json::to_string(self).unwrap_or_default();
        format!(
            "synthetic-llama-{:016x}",
            fnv1a64(format!("v{GENERATOR_VERSION}:{canonical}").as_bytes())
        )
    }

    fn config_json(&self) -> Result<String, InferenceError> {
        let json = HfLlamaConfigJson {
            architectures: ["LlamaForCausalLM"],
            model_type: "llama",
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            vocab_size: self.vocab_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads: self.num_attention_heads,
            num_key_value_heads: self.num_key_value_heads,
            max_position_embeddings: self.max_position_embeddings,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta,
            tie_word_embeddings: self.tie_word_embeddings,
            torch_dtype: "float32",
            campaign_synthetic_seed: self.seed,
        };
        serde_json::to_string_pretty(&json)
            .map_err(|e| InferenceError::InvalidConfig(format!("cannot encode config.json: {e}")))
    }

    /// Draws every tensor from one ChaCha stream in a fixed order, so the
    /// same config gives the same bytes on every machine and thread count.
    fn generate_tensors(&self) -> Result<HashMap<String, Tensor>, InferenceError> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // A uniform distribution with this half-width has standard deviation INIT_STD.
        let half_width = (INIT_STD * 3f64.sqrt()) as f32;
        let mut tensors = HashMap::new();
        for (name, shape) in expected_tensors(&self.architecture()) {
            let len: usize = shape.iter().product();
            let values: Vec<f32> = if shape.len() == 1 {
                // RMSNorm gains start at one, as in a freshly initialised model.
                vec![1.0; len]
            } else {
                (0..len)
                    .map(|_| rng.random_range(-half_width..half_width))
                    .collect()
            };
            tensors.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
        }
        Ok(tensors)
    }
}

/// 64-bit FNV-1a. Written out because the cache folder name must stay the
/// same across Rust releases, which `std`'s `DefaultHasher` does not promise.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Returns the path to load the synthetic model from (its folder, or the
/// GGUF file in it), generating it on first use. The folder is built under
/// a temporary name and renamed into place, so an interrupted generation
/// never leaves a half-written model behind.
pub fn materialize_synthetic_model(
    config: &SyntheticLlamaConfig,
    cache_dir: &Path,
) -> Result<PathBuf, InferenceError> {
    config.check()?;
    let folder = cache_dir.join(config.folder_name());
    let weights_file = if config.quantization.is_some() {
        "model.gguf"
    } else {
        "model.safetensors"
    };
    let load_path = |folder: &Path| {
        if config.quantization.is_some() {
            folder.join(weights_file)
        } else {
            folder.to_path_buf()
        }
    };
    if folder.join("config.json").is_file() && folder.join(weights_file).is_file() {
        return Ok(load_path(&folder));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InferenceError::Io { path, source }
    };
    fs::create_dir_all(cache_dir).map_err(io(cache_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(".synthetic-")
        .tempdir_in(cache_dir)
        .map_err(io(cache_dir))?;
    let dir = staging.path();
    fs::write(dir.join("config.json"), config.config_json()?).map_err(io(dir))?;
    let tokenizer = if config.vocab_size >= MIN_VOCAB {
        let tokenizer = SyntheticTokenizer::train(config.vocab_size)?;
        fs::write(dir.join("tokenizer.json"), &tokenizer.json).map_err(io(dir))?;
        fs::write(dir.join("tokenizer_config.json"), tokenizer.config_json()).map_err(io(dir))?;
        Some(tokenizer)
    } else {
        None
    };
    let tensors = config.generate_tensors()?;
    match config.quantization {
        None => candle_core::safetensors::save(&tensors, dir.join(weights_file))?,
        Some(q) => {
            let path = dir.join(weights_file);
            let file = fs::File::create(&path).map_err(io(&path))?;
            let mut writer = std::io::BufWriter::new(file);
            let spec = GgufSpec {
                architecture: config.architecture(),
                rope_theta: config.rope_theta,
                rms_norm_eps: config.rms_norm_eps,
                name: format!("campaign synthetic llama (seed {})", config.seed),
                tokenizer: tokenizer
                    .as_ref()
                    .map(SyntheticTokenizer::gguf_metadata)
                    .unwrap_or_default(),
            };
            write_gguf(&spec, |name| Ok(tensors.get(name).cloned()), q, &mut writer)?;
            std::io::Write::flush(&mut writer).map_err(io(&path))?;
        }
    }
    let staged = staging.keep();
    if let Err(source) = fs::rename(&staged, &folder) {
        // Another process may have finished the same model first.
        let _ = fs::remove_dir_all(&staged);
        if !folder.join(weights_file).is_file() {
            return Err(InferenceError::Io {
                path: folder,
                source,
            });
        }
    }
    Ok(load_path(&folder))
}
