//! In-process LLM inference on candle: a Llama-architecture model loaded from
//! a local folder (`config.json` + `*.safetensors`), or a synthetic one that
//! is generated deterministically from a seed, written to disk once, and then
//! loaded through exactly the same code path.

mod activations;
mod batching;
mod device;
mod error;
mod loader;
mod session;
mod synthetic;

pub use activations::{Layer0KvProjector, layer0_kv_f16};
pub use batching::{BatchEvents, ServeEvents, ServeRequest, serve_static_batches};
pub use device::DeviceSpec;
pub use error::InferenceError;
pub use loader::{
    LoadedModel, ModelArchitecture, ModelFolder, checked_parameter_count, model_memory,
    read_architecture,
};
pub use session::GenerationSession;
pub use synthetic::{SyntheticLlamaConfig, materialize_synthetic_model};
