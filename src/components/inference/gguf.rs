//! GGUF files (llama.cpp's format) through candle's quantized Llama. A file is inspected first, from its header, metadata and
//! tensor table only, so a truncated file, an architecture candle cannot run
//! or a tensor type it cannot read is refused with its reason before a single
//! weight is read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama;

use super::architecture::MatmulFacts;
use super::gguf_metadata::{metadata_str, metadata_u64};
use super::native_llama::{MatmulKernels, NativeLlama};
use super::qmatmul::Isa;
use super::{InferenceError, ModelArchitecture, Quantization, TextTokenizer, WeightsFacts};

/// The GGUF architectures this build runs, as `general.architecture` names
/// them. Qwen2 is not among them although candle has a quantized Qwen2: its
/// weights keep the KV cache inside and cannot be cloned, so two generations
/// could not share one loaded model.
pub const GGUF_FAMILIES: &[&str] = &["llama"];

/// candle's quantized Llama builds its rotary tables for this many positions.
const LLAMA_ROPE_POSITIONS: usize = quantized_llama::MAX_SEQ_LEN;

/// The first bytes of every GGUF file.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Whether `path` is a GGUF file (by its magic, whatever its name).
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file()
        && File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == GGUF_MAGIC
}

/// What a GGUF file holds, read without loading its weights.
#[derive(Debug, Clone)]
pub struct GgufModelInfo {
    pub path: PathBuf,
    /// `general.architecture`: one of [`GGUF_FAMILIES`].
    pub family: String,
    pub architecture: ModelArchitecture,
    pub weights: WeightsFacts,
    /// Whether the metadata describes a vocabulary (`tokenizer.ggml.*`).
    pub has_tokenizer: bool,
}

fn gguf_error(path: &Path, problem: impl Into<String>) -> InferenceError {
    InferenceError::Gguf {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn open(path: &Path) -> Result<(Content, BufReader<File>, u64), InferenceError> {
    let file = File::open(path).map_err(|source| InferenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| InferenceError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut reader = BufReader::new(file);
    let content = read_header(path, &mut reader)?;
    Ok((content, reader, file_len))
}

/// The header of a GGUF stream; `path` names it in errors. Its declared
/// sizes are checked first, without building anything (see `gguf_scan`).
fn read_header<R: Read + Seek>(path: &Path, reader: &mut R) -> Result<Content, InferenceError> {
    super::gguf_scan::scan_header(reader).map_err(|problem| {
        gguf_error(path, format!("is not a readable GGUF file: it {problem}"))
    })?;
    Content::read(reader).map_err(|e| {
        let text = e.to_string();
        if text.contains("unknown dtype for tensor") {
            gguf_error(
                path,
                format!(
                    "holds a tensor type candle cannot read ({text}); supported types: {}",
                    Quantization::allowed()
                ),
            )
        } else {
            gguf_error(
                path,
                format!("is not a readable GGUF file (truncated or corrupt header?): {text}"),
            )
        }
    })
}

/// Reads a GGUF file's header and checks everything candle will need.
pub fn inspect_gguf(path: &Path) -> Result<GgufModelInfo, InferenceError> {
    let (content, _, file_len) = open(path)?;
    inspect_content(path, &content, file_len)
}

fn inspect_content(
    path: &Path,
    content: &Content,
    file_len: u64,
) -> Result<GgufModelInfo, InferenceError> {
    let family = metadata_str(content, "general.architecture")
        .ok_or_else(|| gguf_error(path, "has no general.architecture in its metadata"))?
        .to_string();
    if !GGUF_FAMILIES.contains(&family.as_str()) {
        return Err(gguf_error(
            path,
            format!(
                "has architecture {family:?}, which this build cannot run; supported: {} (Llama, SmolLM2, TinyLlama and Mistral files say \"llama\")",
                GGUF_FAMILIES.join(", ")
            ),
        ));
    }
    // Every key candle's loader reads without a default.
    let needed = |key: &str| -> Result<u64, InferenceError> {
        let full = format!("{family}.{key}");
        if !content.metadata.contains_key(&full) {
            return Err(gguf_error(path, format!("has no metadata key {full}")));
        }
        Ok(metadata_u64(content, &full).unwrap_or(0))
    };
    let hidden = needed("embedding_length")?;
    let layers = needed("block_count")?;
    let heads = needed("attention.head_count")?;
    needed("attention.layer_norm_rms_epsilon")?;
    needed("rope.dimension_count")?;
    let kv_heads =
        metadata_u64(content, &format!("{family}.attention.head_count_kv")).unwrap_or(heads);
    let context = metadata_u64(content, &format!("{family}.context_length"));
    if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
        return Err(gguf_error(
            path,
            format!(
                "has {heads} attention heads, {kv_heads} KV heads and embedding length {hidden}; allowed: heads ≥ 1 dividing the embedding length, KV heads ≥ 1 dividing the heads"
            ),
        ));
    }

    // Sizes, types and bounds of every tensor.
    let mut tensor_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes_by_type: BTreeMap<Quantization, u64> = BTreeMap::new();
    let (mut parameters, mut file_bytes, mut memory_bytes, mut per_forward) =
        (0u64, 0u64, 0u64, 0u64);
    let mut native_extra = 0u64;
    let tied = !content.tensor_infos.contains_key("output.weight");
    for (name, info) in &content.tensor_infos {
        let q = Quantization::from_ggml(info.ggml_dtype).ok_or_else(|| {
            gguf_error(
                path,
                format!(
                    "tensor {name} has type {:?}, which a model cannot hold; supported: {}",
                    info.ggml_dtype,
                    Quantization::allowed()
                ),
            )
        })?;
        // Counted here with checks: the shape comes from the file.
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d as u64))
            .ok_or_else(|| {
                gguf_error(
                    path,
                    format!("tensor {name} has more weights than 64 bits can count"),
                )
            })?;
        let block = q.block_len() as u64;
        if !elems.is_multiple_of(block) {
            return Err(gguf_error(
                path,
                format!(
                    "tensor {name} has {elems} weights, not a multiple of {q}'s block of {block}"
                ),
            ));
        }
        let bytes = (elems / block).checked_mul(info.ggml_dtype.type_size() as u64);
        let end = content
            .tensor_data_offset
            .checked_add(info.offset)
            .and_then(|o| o.checked_add(bytes?));
        if end.is_none_or(|end| end > file_len) {
            return Err(gguf_error(
                path,
                format!(
                    "is truncated: tensor {name} ends at byte {}, the file has {file_len} bytes",
                    end.map_or_else(|| "beyond 2^64".to_string(), |e| e.to_string())
                ),
            ));
        }
        // Within the file; the sums saturate (tensors of a crafted file may overlap).
        let bytes = bytes.unwrap_or(0);
        *tensor_types.entry(q.name().to_string()).or_default() += 1;
        let by_type = bytes_by_type.entry(q).or_default();
        *by_type = by_type.saturating_add(bytes);
        parameters = parameters.saturating_add(elems);
        file_bytes = file_bytes.saturating_add(bytes);
        let loaded = if q.stays_quantized() {
            bytes
        } else {
            elems.saturating_mul(4)
        };
        // Our kernels' layout of the matrices they run (the larger of the
        // two paths is what loading may need).
        native_extra = native_extra.saturating_add(
            super::native_llama::native_type(info.ggml_dtype)
                .filter(|_| info.shape.rank() == 2)
                .map_or(0, |ty| ty.packed_bytes(bytes).saturating_sub(bytes)),
        );
        if name == "token_embd.weight" {
            // The embedding table is widened to f32 for lookups, and kept as
            // stored when it doubles as the output matrix.
            memory_bytes = memory_bytes
                .saturating_add(elems.saturating_mul(4))
                .saturating_add(if tied { loaded } else { 0 });
            if tied {
                per_forward = per_forward.saturating_add(loaded);
            }
        } else {
            memory_bytes = memory_bytes.saturating_add(loaded);
            if info.shape.rank() == 2 {
                per_forward = per_forward.saturating_add(loaded);
            }
        }
    }

    let shape = |name: &str| {
        content
            .tensor_infos
            .get(name)
            .map(|i| i.shape.dims().to_vec())
    };
    let embedding = shape("token_embd.weight")
        .ok_or_else(|| gguf_error(path, "has no tensor token_embd.weight"))?;
    let intermediate = shape("blk.0.ffn_gate.weight")
        .ok_or_else(|| gguf_error(path, "has no tensor blk.0.ffn_gate.weight"))?;
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let architecture = ModelArchitecture {
        vocab_size: embedding.first().copied().unwrap_or(0),
        hidden_size: as_usize(hidden),
        intermediate_size: intermediate.first().copied().unwrap_or(0),
        num_hidden_layers: as_usize(layers),
        num_attention_heads: as_usize(heads),
        num_key_value_heads: as_usize(kv_heads),
        max_position_embeddings: context.map_or(LLAMA_ROPE_POSITIONS, |c| {
            as_usize(c).min(LLAMA_ROPE_POSITIONS)
        }),
        tie_word_embeddings: tied,
    };
    let problems: Vec<String> = super::architecture::gguf_tensors(&architecture)
        .into_iter()
        .filter_map(|(name, want)| match shape(&name) {
            None => Some(format!("missing tensor {name}")),
            Some(have) if have != want => Some(format!(
                "tensor {name} has shape {have:?}, the metadata implies {want:?}"
            )),
            Some(_) => None,
        })
        .collect();
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(5);
        let mut text = problems.into_iter().take(5).collect::<Vec<_>>().join("; ");
        if more > 0 {
            text.push_str(&format!(" (and {more} more)"));
        }
        return Err(gguf_error(path, text));
    }
    // The type that holds most of the weights names the file, as llama.cpp's
    // "mostly Q4_1" does; the full census is kept beside it.
    let quantization = bytes_by_type
        .iter()
        .filter(|(q, _)| **q != Quantization::F32 || bytes_by_type.len() == 1)
        .max_by_key(|(_, bytes)| **bytes)
        .map_or(Quantization::F32, |(q, _)| *q);
    // cos and sin tables: positions × head_dim / 2 f32 values each.
    let rope_bytes = (architecture.max_position_embeddings as u64)
        .saturating_mul(architecture.head_dim() as u64 / 2)
        .saturating_mul(2 * 4);
    Ok(GgufModelInfo {
        has_tokenizer: content.metadata.contains_key("tokenizer.ggml.tokens"),
        path: path.to_path_buf(),
        family: family.clone(),
        weights: WeightsFacts {
            format: "gguf".into(),
            family,
            quantization: quantization.name().to_string(),
            tensor_types,
            parameters,
            stored_bytes: file_bytes,
            bytes_per_forward: per_forward,
            memory_bytes: memory_bytes
                .saturating_add(native_extra)
                .saturating_add(rope_bytes),
            matmul: None,
        },
        architecture,
    })
}

/// A GGUF model, with its own KV cache inside (so one per generation:
/// cloning shares the weights).
#[derive(Clone)]
pub(super) enum GgufWeights {
    /// candle-transformers' quantized Llama, candle's kernels throughout.
    Candle(quantized_llama::ModelWeights),
    /// The same forward pass with our kernels for the matrix products.
    Native(NativeLlama),
}

impl GgufWeights {
    /// Logits of the last position; `position == 0` starts a new sequence.
    pub(super) fn forward(
        &mut self,
        input: &Tensor,
        position: usize,
    ) -> Result<Tensor, InferenceError> {
        Ok(match self {
            Self::Candle(m) => m.forward(input, position)?,
            Self::Native(m) => m.forward(input, position)?,
        })
    }
}

/// A GGUF model as loaded: weights, facts, and the tokenizer its metadata
/// describes (or why there is none).
pub(super) struct LoadedGguf {
    pub weights: GgufWeights,
    pub info: GgufModelInfo,
    pub tokenizer: Result<TextTokenizer, String>,
}

/// Loads a GGUF file after [`inspect_gguf`]'s checks.
pub(super) fn load_gguf(
    path: &Path,
    device: &Device,
    matmul: MatmulKernels,
) -> Result<LoadedGguf, InferenceError> {
    let (content, mut reader, file_len) = open(path)?;
    load_content(path, content, &mut reader, file_len, device, matmul)
}

/// Loads a GGUF image held in memory (a model quantized on load); `origin`
/// names it in errors.
pub(super) fn load_gguf_bytes(
    origin: &Path,
    bytes: Vec<u8>,
    device: &Device,
    matmul: MatmulKernels,
) -> Result<LoadedGguf, InferenceError> {
    let len = bytes.len() as u64;
    let mut reader = std::io::Cursor::new(bytes);
    let content = read_header(origin, &mut reader)?;
    load_content(origin, content, &mut reader, len, device, matmul)
}

fn load_content<R: Read + Seek>(
    path: &Path,
    content: Content,
    reader: &mut R,
    file_len: u64,
    device: &Device,
    matmul: MatmulKernels,
) -> Result<LoadedGguf, InferenceError> {
    let mut info = inspect_content(path, &content, file_len)?;
    // Read before the loader consumes the header.
    // The tokenizers crate unwraps inside some of its builders: a
    // vocabulary it cannot build is this file's problem, not the run's end.
    let tokenizer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        TextTokenizer::from_gguf(&content)
    }))
    .unwrap_or_else(|payload| {
        Err(format!(
            "its vocabulary could not be built: {}",
            crate::panics::describe(payload.as_ref())
        ))
    });
    let experts = metadata_u64(&content, "llama.expert_count").unwrap_or(0);
    let refusal = match matmul {
        MatmulKernels::Candle => None,
        MatmulKernels::Native if !device.is_cpu() => {
            Some("our kernels run on the CPU; this model is on another device".to_string())
        }
        MatmulKernels::Native if experts > 1 => Some(format!(
            "a mixture of {experts} experts runs on candle's quantized Llama"
        )),
        MatmulKernels::Native => None,
    };
    let weights = if matmul == MatmulKernels::Native && refusal.is_none() {
        let (model, coverage) = NativeLlama::from_gguf(&content, reader, device)?;
        info.weights.matmul = Some(MatmulFacts {
            kernels: MatmulKernels::Native.name().into(),
            isa: Some(Isa::best().name().into()),
            native_projections: coverage.native,
            projections: coverage.total,
            candle_types: coverage.fallback_types,
            reason: None,
        });
        GgufWeights::Native(model)
    } else {
        let projections = 1 + 7 * metadata_u64(&content, "llama.block_count").unwrap_or(0) as usize;
        info.weights.matmul = Some(MatmulFacts {
            kernels: MatmulKernels::Candle.name().into(),
            isa: None,
            native_projections: 0,
            projections,
            candle_types: Vec::new(),
            reason: refusal,
        });
        GgufWeights::Candle(quantized_llama::ModelWeights::from_gguf(
            content, reader, device,
        )?)
    };
    Ok(LoadedGguf {
        weights,
        info,
        tokenizer,
    })
}
