//! The kinds that time the in-process engine's forward passes: time to
//! first token, token generation, memory growth over generations, and
//! llama.cpp's `llama-bench` tests run on this engine.

mod first_token_latency;
mod llama_bench;
mod memory_growth;
mod token_generation;

pub(super) use first_token_latency::FirstTokenLatency;
pub(super) use llama_bench::LlamaBench;
pub(super) use memory_growth::MemoryGrowth;
pub(super) use token_generation::TokenGeneration;
