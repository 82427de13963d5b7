//! The serving kinds: many requests against the in-process engine or an
//! endpoint (`full_inference`, `scaling`), the highest load that holds its
//! SLOs (`capacity`), a long steady load (`endurance`); the endpoint
//! target they share, traffic shapes and their report, and the quality
//! comparison on fixed prompts (in-process and served).

mod capacity;
mod endpoint_serving;
mod endpoint_target;
mod endurance;
mod full_inference;
mod quality;
mod traffic;
mod traffic_report;

pub(super) use capacity::Capacity;
pub(super) use endurance::Endurance;
pub(super) use full_inference::{FullInference, Scaling};
pub use quality::{
    PromptQuality, QUALITY_PROMPT_TOKENS, QUALITY_PROMPTS, QUALITY_SERVED_PROMPTS, QUALITY_TOKENS,
    ServedPromptQuality, compare_outputs, compare_served, quality_prompts,
};
