//! The models a campaign names, resolved: a folder on disk or a synthetic
//! configuration, with the architecture read from it.

use std::path::PathBuf;

use crate::components::inference::{
    ModelArchitecture, Quantization, SyntheticLlamaConfig, WeightsFacts,
};

/// A model named in the campaign, with its source resolved.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub name: String,
    /// Set for models loaded from disk: a folder or a GGUF file (resolved
    /// against the campaign file).
    pub folder: Option<PathBuf>,
    /// Set for synthetic models.
    pub synthetic: Option<SyntheticLlamaConfig>,
    pub architecture: ModelArchitecture,
    /// What a GGUF file's header says about its weights.
    pub gguf: Option<WeightsFacts>,
    /// Why the model has no tokenizer (`None`: it has one).
    pub missing_tokenizer: Option<String>,
    /// Quantize the folder's weights in memory when loading.
    pub quantize: Option<Quantization>,
}
