//! One request's path through every component, as a server that offloads
//! KV would take it: generation on the shared model, the sequence's layer-0
//! K/V projected from the weights and cut into blocks, the blocks kept in
//! the tiered KV cache, compressed, and written to the blob store.
//!
//! Each stage is its own call, so a driver can time them one by one; the
//! stages share the cache and the store between agents (behind locks, as
//! the components are single-writer) and give each agent its own codec.

use std::sync::{Arc, Mutex};

use super::compression::{BlockCodec, CompressionError};
use super::inference::{GenerationSession, InferenceError, Layer0KvProjector, LoadedModel};
use super::kvcache::{KvBlock, KvCacheError, KvGeometry, TieredKvCache, paged_blocks};
use super::storage::{BlobStore, CommitMode, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum KvOffloadError {
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    KvCache(#[from] KvCacheError),
    #[error(transparent)]
    Compression(#[from] CompressionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the {0} lock was poisoned by a panic in another agent")]
    Poisoned(&'static str),
    #[error("the pipeline has no codec; give it at least one")]
    NoCodec,
}

/// The components a request goes through, shared by every agent.
pub struct KvOffloadPipeline {
    model: Arc<LoadedModel>,
    projector: Layer0KvProjector,
    geometry: KvGeometry,
    cache: Mutex<TieredKvCache>,
    store: Mutex<BlobStore>,
    codecs: Vec<Mutex<BlockCodec>>,
}

impl KvOffloadPipeline {
    /// `geometry` must be the projector's: one layer of the model's KV heads.
    /// Agent `i` compresses with codec `i % codecs.len()`.
    pub fn new(
        model: Arc<LoadedModel>,
        projector: Layer0KvProjector,
        geometry: KvGeometry,
        cache: TieredKvCache,
        store: BlobStore,
        codecs: Vec<BlockCodec>,
    ) -> Result<Self, KvOffloadError> {
        if codecs.is_empty() {
            return Err(KvOffloadError::NoCodec);
        }
        Ok(Self {
            model,
            projector,
            geometry,
            cache: Mutex::new(cache),
            store: Mutex::new(store),
            codecs: codecs.into_iter().map(Mutex::new).collect(),
        })
    }

    /// The prompt followed by `output_tokens` greedily generated tokens.
    pub fn generate(
        &self,
        prompt: &[u32],
        output_tokens: usize,
    ) -> Result<Vec<u32>, KvOffloadError> {
        let mut sequence = prompt.to_vec();
        sequence.extend(GenerationSession::greedy_continuation(
            &self.model,
            prompt,
            output_tokens,
        )?);
        Ok(sequence)
    }

    /// The sequence's layer-0 K/V (f16), cut into the cache's full blocks.
    pub fn extract_blocks(&self, sequence: &[u32]) -> Result<Vec<KvBlock>, KvOffloadError> {
        let kv = self.projector.project_f16(sequence)?;
        Ok(paged_blocks(&kv, sequence, &self.geometry)?)
    }

    pub fn cache_blocks(&self, blocks: &[KvBlock]) -> Result<(), KvOffloadError> {
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| KvOffloadError::Poisoned("KV cache"))?;
        for block in blocks {
            cache.put(block.key, &block.bytes)?;
        }
        Ok(())
    }

    /// Each block compressed with `agent`'s codec, under the same key.
    pub fn compress_blocks(
        &self,
        agent: usize,
        blocks: &[KvBlock],
    ) -> Result<Vec<KvBlock>, KvOffloadError> {
        let mut codec = self.codecs[agent % self.codecs.len()]
            .lock()
            .map_err(|_| KvOffloadError::Poisoned("codec"))?;
        blocks
            .iter()
            .map(|block| {
                let mut bytes = Vec::new();
                codec.compress(&block.bytes, &mut bytes)?;
                Ok(KvBlock {
                    key: block.key,
                    bytes,
                })
            })
            .collect()
    }

    /// Writes without waiting for the disk: a server's KV offload is a
    /// cache, lost blocks are recomputed.
    pub fn store_blocks(&self, blocks: &[KvBlock]) -> Result<(), KvOffloadError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| KvOffloadError::Poisoned("blob store"))?;
        for block in blocks {
            store.put(block.key, &block.bytes, CommitMode::NonDurable)?;
        }
        Ok(())
    }
}
