//! A tiered KV cache, as an inference server with long contexts keeps it:
//! recent blocks in a bounded RAM pool (hot tier), older ones in a file on
//! disk (cold tier), least-recently-used blocks moving from hot to cold.
//!
//! Blocks are fixed-size: `block_tokens` tokens of K and V for every layer.
//! Full blocks are immutable, so a block promoted back from disk keeps its
//! cold copy and a second eviction costs no write.

mod belady;
mod block_key;
mod cold;
mod error;
mod geometry;
mod paging;
mod policy;
mod quant;
mod quant_avx2;
mod tiered;

pub use belady::{TraceAccess, belady_hits};
pub use block_key::{BlockKey, block_key, cacheable_block_keys};
pub use cold::{ColdBlockEncoding, ColdTier};
pub use error::KvCacheError;
pub use geometry::{KvDType, KvGeometry};
pub use paging::{KvBlock, paged_blocks};
pub use policy::{AccessFrequency, EvictionPolicy};
pub use quant::{
    Int8Block, Int8Codec, Int8Scratch, QuantizationError, dequantize_int8, dequantize_int8_from,
    quantize_int8, quantize_int8_into,
};
pub use tiered::{CacheStats, Tier, TieredKvCache, TieredKvCacheConfig};
