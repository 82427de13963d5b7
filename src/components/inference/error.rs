use std::path::PathBuf;

/// What can go wrong while building, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "model folder {path} does not exist; set `path` in the campaign's [models] table to a folder with config.json and *.safetensors, or to a .gguf file"
    )]
    MissingFolder { path: PathBuf },

    #[error(
        "model folder {path} has no {what}; a Llama-family model needs config.json and at least one *.safetensors file"
    )]
    MissingFile { path: PathBuf, what: &'static str },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a Llama-family config.json: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),

    #[error("model in {path} does not match its config.json: {problems}")]
    TensorMismatch { path: PathBuf, problems: String },

    #[error(
        "device {device} is not available in this build: rebuild with `cargo build --release --features {feature}`"
    )]
    DeviceNotCompiled {
        device: String,
        feature: &'static str,
    },

    #[error("unknown device {0:?}: use cpu, cuda, cuda:N or metal")]
    UnknownDevice(String),

    #[error(
        "sequence of {needed} positions exceeds the model's max_position_embeddings ({limit}); shorten the prompt or output, or raise max_position_embeddings"
    )]
    SequenceTooLong { needed: usize, limit: usize },

    #[error("{0}")]
    WorkerPanicked(String),

    #[error("GGUF file {path} {problem}")]
    Gguf { path: PathBuf, problem: String },

    #[error(
        "{path} is neither a GGUF file nor a model folder; `path` takes a folder with config.json and *.safetensors, or a .gguf file"
    )]
    NotAModel { path: PathBuf },

    #[error("tokenizer {path}: {problem}")]
    Tokenizer { path: PathBuf, problem: String },

    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}
