use std::path::PathBuf;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::{BlockKey, ColdBlockEncoding, ColdTier, Int8Codec, KvCacheError, KvGeometry};
use crate::components::blockio::IoMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TieredKvCacheConfig {
    pub geometry: KvGeometry,
    /// Blocks the hot tier holds; its memory is allocated once, up front.
    pub hot_blocks: usize,
    pub cold_path: PathBuf,
    pub cold_encoding: ColdBlockEncoding,
    pub cold_io: IoMode,
    /// The int8 codec's implementation (for `cold_encoding = "int8"`).
    #[serde(default)]
    pub int8_codec: Int8Codec,
}

/// Where a block was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Hot,
    Cold,
}

/// Counters of what the cache did; read by benchmarks, never timed here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    pub stores: u64,
    /// Stores of a block already cached (a shared prefix): no copy made.
    pub shared_prefix_hits: u64,
    pub hot_hits: u64,
    pub cold_hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Evictions that had to write the block (the rest were already on disk).
    pub eviction_writes: u64,
    pub promotions: u64,
    /// Cold reads not promoted because no hot slot could be freed.
    pub promotions_skipped: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

/// The hot tier is one preallocated arena of `hot_blocks` slots: storing a
/// block is a copy into a slot; once the pool is full, the LRU list reuses
/// its nodes, so the steady state allocates nothing.
pub struct TieredKvCache {
    geometry: KvGeometry,
    arena: Vec<u8>,
    free: Vec<usize>,
    lru: LruCache<BlockKey, usize>,
    cold: ColdTier,
    stats: CacheStats,
}

impl TieredKvCache {
    pub fn open(config: &TieredKvCacheConfig) -> Result<Self, KvCacheError> {
        config.geometry.check()?;
        let capacity = std::num::NonZeroUsize::new(config.hot_blocks)
            .ok_or_else(|| KvCacheError::Geometry("hot_blocks must be at least 1".into()))?;
        let mut cold = ColdTier::open(
            &config.cold_path,
            config.geometry,
            config.cold_encoding,
            config.cold_io,
        )?;
        cold.set_int8_codec(config.int8_codec);
        let block = config.geometry.block_bytes();
        let mut arena = vec![0u8; block * config.hot_blocks];
        // Touch every page now so that the first stores do not pay page faults.
        for page in arena.chunks_mut(4096) {
            page[0] = 1;
            page[0] = std::hint::black_box(0);
        }
        Ok(Self {
            geometry: config.geometry,
            arena,
            free: (0..config.hot_blocks).rev().collect(),
            lru: LruCache::new(capacity),
            cold,
            stats: CacheStats::default(),
        })
    }

    pub fn geometry(&self) -> &KvGeometry {
        &self.geometry
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    pub fn hot_len(&self) -> usize {
        self.lru.len()
    }

    pub fn cold_len(&self) -> usize {
        self.cold.len()
    }

    pub fn cold_disk_bytes(&self) -> u64 {
        self.cold.disk_bytes()
    }

    pub fn cold_tier(&self) -> &ColdTier {
        &self.cold
    }

    pub fn contains(&self, key: BlockKey) -> bool {
        self.lru.contains(&key) || self.cold.contains(key)
    }

    fn slot_range(&self, slot: usize) -> std::ops::Range<usize> {
        let block = self.geometry.block_bytes();
        slot * block..(slot + 1) * block
    }

    /// A hot slot for a new block: a free one while the pool fills, then
    /// the least recently used block's, once that block is safely on disk.
    /// The victim stays in the LRU until [`Self::insert`] replaces it, so a
    /// failed write (a full disk) changes nothing and loses nothing.
    fn claim_slot(&mut self) -> Result<usize, KvCacheError> {
        if let Some(slot) = self.free.pop() {
            return Ok(slot);
        }
        let (&victim, &slot) = self.lru.peek_lru().ok_or(KvCacheError::HotTierFull {
            capacity: self.lru.cap().get(),
        })?;
        let written = self
            .cold
            .write(victim, &self.arena[self.slot_range(slot)])?;
        self.stats.evictions += 1;
        if written > 0 {
            self.stats.eviction_writes += 1;
            self.stats.bytes_written += written as u64;
        }
        Ok(slot)
    }

    /// Records a block in a claimed slot. Once the pool is full, `push`
    /// drops the LRU victim and reuses its node: no allocation per block.
    fn insert(&mut self, key: BlockKey, slot: usize) {
        self.lru.push(key, slot);
    }

    /// Stores a full block. A key already cached is a shared prefix: it is
    /// marked recently used and not copied again.
    pub fn put(&mut self, key: BlockKey, block: &[u8]) -> Result<(), KvCacheError> {
        if block.len() != self.geometry.block_bytes() {
            return Err(KvCacheError::BlockSize {
                got: block.len(),
                expected: self.geometry.block_bytes(),
            });
        }
        if self.lru.promote(&key) || self.cold.contains(key) {
            self.stats.shared_prefix_hits += 1;
            return Ok(());
        }
        let slot = self.claim_slot()?;
        let range = self.slot_range(slot);
        self.arena[range].copy_from_slice(block);
        self.insert(key, slot);
        self.stats.stores += 1;
        Ok(())
    }

    /// Copies a block into `out`. A cold block is verified, then promoted
    /// to the hot tier. `None` when the cache does not hold the key.
    pub fn get(&mut self, key: BlockKey, out: &mut [u8]) -> Result<Option<Tier>, KvCacheError> {
        if let Some(&slot) = self.lru.get(&key) {
            out.copy_from_slice(&self.arena[self.slot_range(slot)]);
            self.stats.hot_hits += 1;
            return Ok(Some(Tier::Hot));
        }
        let Some(read) = self.cold.read(key, out)? else {
            self.stats.misses += 1;
            return Ok(None);
        };
        self.stats.cold_hits += 1;
        self.stats.bytes_read += read as u64;
        // Promotion is an optimisation: when no hot slot can be freed (the
        // eviction's write failed, e.g. a full disk) the block is still
        // returned, and stays cold.
        match self.claim_slot() {
            Ok(slot) => {
                let range = self.slot_range(slot);
                self.arena[range].copy_from_slice(out);
                self.insert(key, slot);
                self.stats.promotions += 1;
            }
            Err(_) => self.stats.promotions_skipped += 1,
        }
        Ok(Some(Tier::Cold))
    }

    /// Writes every hot block that is not on disk yet and syncs the file:
    /// after a clean close, reopening the cold file finds every block.
    pub fn close(mut self) -> Result<(), KvCacheError> {
        let blocks: Vec<(BlockKey, usize)> = self.lru.iter().map(|(k, s)| (*k, *s)).collect();
        for (key, slot) in blocks {
            let range = self.slot_range(slot);
            let written = self.cold.write(key, &self.arena[range])?;
            self.stats.bytes_written += written as u64;
        }
        self.cold.sync()
    }

    /// Drops the cold file from the page cache (see [`ColdTier::drop_page_cache`]).
    pub fn drop_cold_page_cache(&self) -> Result<(), KvCacheError> {
        self.cold.drop_page_cache()
    }
}
