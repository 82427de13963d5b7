use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Config, Llama, LlamaConfig};

use super::architecture::expected_tensors;
use super::gguf::{GgufModelInfo, GgufWeights, inspect_gguf, is_gguf, load_gguf, load_gguf_bytes};
use super::gguf_writer::{GgufSpec, write_gguf};
use super::native_llama::MatmulKernels;
use super::{InferenceError, ModelArchitecture, Quantization, TextTokenizer, WeightsFacts};

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

    /// `tokenizer.json` in the folder, or why there is none.
    fn tokenizer(&self) -> Result<TextTokenizer, String> {
        tokenizer_beside(&self.config_path)
            .unwrap_or_else(|| Err(format!("{} has no tokenizer.json", self.path.display())))
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
    /// Why the model has no tokenizer (`None`: it has one).
    pub missing_tokenizer: Option<String>,
}

/// Bytes read from each end of a weights file for its fingerprint.
const FINGERPRINT_SPAN_BYTES: u64 = 1 << 20;

/// A fingerprint of a model's weights: xxh3 over each weights file's name,
/// size, first and last MiB (a GGUF file or a folder's `.safetensors` and
/// `.gguf` files, in name order). Sampled rather than whole, because a
/// real model is gigabytes read at every run; the header and tensor index
/// at the start and the last tensors' bytes change with any re-export or
/// re-quantization. `None` when no weights file can be read.
pub fn weights_fingerprint(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut files: Vec<std::path::PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e == "safetensors" || e == "gguf")
            })
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut read_any = false;
    for file in files {
        let Ok(mut f) = std::fs::File::open(&file) else {
            continue;
        };
        let Ok(size) = f.metadata().map(|m| m.len()) else {
            continue;
        };
        hasher.update(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.update(&size.to_le_bytes());
        let mut buf = Vec::new();
        let _ = (&mut f).take(FINGERPRINT_SPAN_BYTES).read_to_end(&mut buf);
        if size > FINGERPRINT_SPAN_BYTES
            && f.seek(SeekFrom::Start(
                size.saturating_sub(FINGERPRINT_SPAN_BYTES)
                    .max(FINGERPRINT_SPAN_BYTES),
            ))
            .is_ok()
        {
            let _ = f.read_to_end(&mut buf);
        }
        hasher.update(&buf);
        read_any = true;
    }
    read_any.then(|| format!("{:016x}", hasher.digest()))
}

pub fn describe_model(path: &Path) -> Result<ModelDescription, InferenceError> {
    if is_gguf(path) {
        let info = inspect_gguf(path)?;
        let beside = path.with_file_name("tokenizer.json");
        return Ok(ModelDescription {
            architecture: info.architecture,
            gguf: Some(info.weights),
            missing_tokenizer: (!info.has_tokenizer && !beside.is_file()).then(|| {
                format!(
                    "{} has no tokenizer in its metadata and there is no {}",
                    path.display(),
                    beside.display()
                )
            }),
        });
    }
    if path.is_file() {
        return Err(InferenceError::NotAModel {
            path: path.to_path_buf(),
        });
    }
    let folder = ModelFolder::open(path)?;
    let tokenizer = folder.path.join("tokenizer.json");
    Ok(ModelDescription {
        architecture: ModelArchitecture::from_llama_config(&folder.llama_config()?),
        gguf: None,
        missing_tokenizer: (!tokenizer.is_file())
            .then(|| format!("there is no {}", tokenizer.display())),
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
    /// A planted loss of quality, 0 to 1: the share of positions whose
    /// most likely next token is replaced by another (chosen by a hash of
    /// the position and the token, so the same everywhere), to check that
    /// a quality verdict catches a known loss. 0 for every real run.
    pub planted_token_flip: f64,
}

impl LoadedModel {
    /// Loads a folder (config.json + safetensors, at `dtype`) or a GGUF file
    /// (with our matrix kernels).
    pub fn load(path: &Path, device: &Device, dtype: DType) -> Result<Self, InferenceError> {
        Self::load_with(path, device, dtype, MatmulKernels::default())
    }

    /// As [`load`](Self::load), with the kernels of a GGUF model's matrix
    /// products chosen (a safetensors model ignores `matmul`).
    pub fn load_with(
        path: &Path,
        device: &Device,
        dtype: DType,
        matmul: MatmulKernels,
    ) -> Result<Self, InferenceError> {
        if is_gguf(path) {
            let gguf = load_gguf(path, device, matmul)?;
            let tokenizer = gguf.tokenizer.or_else(|why| {
                tokenizer_beside(path).ok_or(format!(
                    "{why}, and there is no tokenizer.json beside {}",
                    path.display()
                ))?
            });
            return Ok(Self::from_gguf(
                gguf.weights,
                gguf.info,
                tokenizer,
                device,
                path,
            ));
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
        drop(checked_tensors(&folder, &architecture)?);
        // SAFETY: as in `checked_tensors`: a read-only mapping that assumes
        // nobody truncates the files while the model is alive.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&folder.weight_files, dtype, device)? };
        let config = llama_config.into_config(false);
        let model = Llama::load(vb, &config)?;
        Ok(Self {
            backend: Backend::Safetensors { model, config },
            weights: WeightsFacts::safetensors(&architecture, dtype),
            architecture,
            tokenizer: folder.tokenizer(),
            device: device.clone(),
            dtype,
            path: folder.path,
            planted_token_flip: 0.0,
        })
    }

    /// A loaded GGUF image: candle's quantized models compute in f32.
    fn from_gguf(
        weights: GgufWeights,
        info: GgufModelInfo,
        tokenizer: Result<TextTokenizer, String>,
        device: &Device,
        path: &Path,
    ) -> Self {
        Self {
            backend: Backend::Gguf(weights),
            architecture: info.architecture,
            weights: info.weights,
            tokenizer,
            device: device.clone(),
            dtype: DType::F32,
            path: path.to_path_buf(),
            planted_token_flip: 0.0,
        }
    }

    /// Loads a safetensors folder and quantizes its weights in memory to
    /// `quantization` through the GGUF path (the same bytes a GGUF file of
    /// these weights would hold), so one model can be measured at several
    /// weight types without files.
    pub fn load_quantized(
        path: &Path,
        device: &Device,
        quantization: Quantization,
    ) -> Result<Self, InferenceError> {
        Self::load_quantized_with(path, device, quantization, MatmulKernels::default())
    }

    /// As [`load_quantized`](Self::load_quantized), with the kernels of the
    /// matrix products chosen.
    pub fn load_quantized_with(
        path: &Path,
        device: &Device,
        quantization: Quantization,
        matmul: MatmulKernels,
    ) -> Result<Self, InferenceError> {
        if is_gguf(path) {
            return Err(InferenceError::InvalidConfig(format!(
                "{} is a GGUF file, already stored as its own weight types; `quantize` applies to safetensors folders",
                path.display()
            )));
        }
        let folder = ModelFolder::open(path)?;
        let llama_config = folder.llama_config()?;
        if llama_config.rope_scaling.is_some() {
            return Err(InferenceError::InvalidConfig(format!(
                "{}: rope_scaling is set, and candle's quantized Llama has no rope scaling; measure this model unquantized",
                folder.config_path.display()
            )));
        }
        let architecture = ModelArchitecture::from_llama_config(&llama_config);
        let tensors = checked_tensors(&folder, &architecture)?;
        let spec = GgufSpec {
            architecture,
            rope_theta: llama_config.rope_theta,
            rms_norm_eps: llama_config.rms_norm_eps,
            name: folder.path.display().to_string(),
            tokenizer: Vec::new(),
        };
        let mut image = std::io::Cursor::new(Vec::new());
        write_gguf(
            &spec,
            |name| Ok(Some(tensors.load(name, &Device::Cpu)?)),
            quantization,
            &mut image,
        )?;
        drop(tensors);
        let mut gguf = load_gguf_bytes(&folder.path, image.into_inner(), device, matmul)?;
        gguf.info.weights.format = "safetensors, quantized in memory".into();
        Ok(Self::from_gguf(
            gguf.weights,
            gguf.info,
            folder.tokenizer(),
            device,
            &folder.path,
        ))
    }
}

/// Opens a folder's safetensors after checking that every tensor the
/// architecture needs is there with its shape (candle panics otherwise).
fn checked_tensors(
    folder: &ModelFolder,
    architecture: &ModelArchitecture,
) -> Result<candle_core::safetensors::MmapedSafetensors, InferenceError> {
    // SAFETY: the files are memory-mapped read-only; like every mmap
    // loader this assumes nobody truncates them while the model is alive.
    let tensors =
        unsafe { candle_core::safetensors::MmapedSafetensors::multi(&folder.weight_files) }
            .map_err(|e| InferenceError::TensorMismatch {
                path: folder.path.clone(),
                problems: format!("cannot read safetensors: {e}"),
            })?;
    let problems: Vec<String> = expected_tensors(architecture)
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
    Ok(tensors)
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
    fn the_weights_fingerprint_follows_the_bytes_at_either_end_and_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.gguf");
        let mut bytes = vec![7u8; 3 << 20];
        std::fs::write(&file, &bytes).unwrap();
        let first = weights_fingerprint(&file).unwrap();
        assert_eq!(weights_fingerprint(&file).unwrap(), first);
        for at in [10, bytes.len() - 10] {
            bytes[at] ^= 1;
            std::fs::write(&file, &bytes).unwrap();
            assert_ne!(weights_fingerprint(&file).unwrap(), first, "byte {at}");
            bytes[at] ^= 1;
        }
        // A folder: its weights files, not its other files.
        let folder = dir.path().join("m");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("model.safetensors"), b"weights").unwrap();
        let before = weights_fingerprint(&folder).unwrap();
        std::fs::write(folder.join("README.md"), b"notes").unwrap();
        assert_eq!(weights_fingerprint(&folder).unwrap(), before);
        std::fs::write(folder.join("model.safetensors"), b"weightz").unwrap();
        assert_ne!(weights_fingerprint(&folder).unwrap(), before);
        assert_eq!(weights_fingerprint(&dir.path().join("none")), None);
    }
}
