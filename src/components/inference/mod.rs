//! In-process LLM inference on candle: a Llama-architecture model loaded from
//! a local folder (`config.json` + `*.safetensors`) or a GGUF file (quantized
//! weights, through candle's quantized models), or a synthetic one that is
//! generated deterministically from a seed, written to disk once (as
//! safetensors, or as GGUF at a chosen quantization), and then loaded through
//! exactly the same code path. Tokenizers come with the model.

mod activations;
mod architecture;
mod batching;
mod causal_softmax;
mod device;
mod error;
mod gguf;
mod gguf_metadata;
mod gguf_scan;
mod gguf_writer;
mod loader;
mod native_llama;
pub mod qmatmul;
mod quantization;
mod session;
mod synthetic;
mod synthetic_tokenizer;
mod tokenizer;

pub use activations::{Layer0KvProjector, layer0_kv_f16};
pub use architecture::{
    MatmulFacts, ModelArchitecture, WeightsFacts, checked_parameter_count, model_memory,
};
pub use batching::{BatchEvents, ServeEvents, ServeRequest, serve_static_batches};
pub use device::DeviceSpec;
pub use error::InferenceError;
pub use gguf::{GGUF_FAMILIES, GgufModelInfo, inspect_gguf, is_gguf};
pub use gguf_scan::{
    MAX_GGUF_ARRAY_ELEMENTS, MAX_GGUF_ENTRIES, MAX_GGUF_METADATA_ELEMENTS, MAX_GGUF_STRING_BYTES,
};
pub use loader::{LoadedModel, ModelDescription, ModelFolder, describe_model, weights_fingerprint};
pub use native_llama::MatmulKernels;
pub use quantization::Quantization;
pub use session::{GenerationSession, SessionSnapshot};
pub use synthetic::{SyntheticLlamaConfig, materialize_synthetic_model};
pub use synthetic_tokenizer::SyntheticTokenizer;
pub use tokenizer::{ChatMessage, MAX_TOKENIZER_FILE_BYTES, TextTokenizer};
