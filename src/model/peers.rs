//! Our engine beside a peer's on the same test and weights in one day, as
//! a day report stores it. Computed by `analysis::peer_comparisons`.

use serde::{Deserialize, Serialize};

/// One test (`pp512`, `tg128`) on one weights file at one thread count:
/// our case and the peer's, their tokens/s, and ours ÷ theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerComparison {
    pub test: String,
    /// The weights file both loaded.
    pub weights: String,
    /// Our side's name for the model (`[models.NAME]`): the file's own
    /// name (`model.gguf`) does not tell apart the models of a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub threads: Option<u32>,
    pub ours: String,
    pub peer: String,
    /// The peer's program (`llama-bench`).
    pub peer_program: String,
    /// Medians of each side's tokens/s samples.
    pub ours_tokens_per_s: f64,
    pub peer_tokens_per_s: f64,
    /// Ours ÷ the peer's: the Hodges–Lehmann estimate over the two sides'
    /// samples (on logs), with its distribution-free 95 % interval when
    /// the samples allow one.
    pub ratio: f64,
    pub ratio_ci95: Option<[f64; 2]>,
    pub samples: [usize; 2],
}

impl PeerComparison {
    /// The weights as a reader tells them apart: `q4_k (model.gguf)`.
    pub fn weights_label(&self) -> String {
        match &self.model {
            Some(model) if *model != self.weights => format!("{model} ({})", self.weights),
            _ => self.weights.clone(),
        }
    }
}
