//! The models a campaign names, resolved: a folder on disk or a synthetic
//! configuration, with the architecture read from it.

use std::path::PathBuf;

use crate::components::inference::{
    MatmulKernels, ModelArchitecture, Quantization, SyntheticLlamaConfig, WeightsFacts,
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
    /// Whose kernels compute the matrix products of quantized weights.
    pub matmul: MatmulKernels,
    /// `planted_token_flip_pct` as a share, 0 to 1.
    pub planted_token_flip: f64,
}

impl ResolvedModel {
    /// Whether its weights are quantized when loaded (a GGUF file, a
    /// synthetic model written as GGUF, or `quantize`): what `matmul`
    /// applies to.
    pub fn is_quantized(&self) -> bool {
        self.gguf.is_some()
            || self.quantize.is_some()
            || self
                .synthetic
                .as_ref()
                .is_some_and(|s| s.quantization.is_some())
    }
}
