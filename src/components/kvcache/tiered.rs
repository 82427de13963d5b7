use std::path::PathBuf;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::policy::AccessFrequency;
use super::{
    BlockKey, ColdBlockEncoding, ColdTier, EvictionPolicy, Int8Codec, KvCacheError, KvGeometry,
};
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
    /// Which block leaves the hot tier when it is full.
    #[serde(default)]
    pub eviction: EvictionPolicy,
    /// Cold reads of [`TieredKvCache::get_cold_many`] kept in flight.
    #[serde(default = "one")]
    pub cold_queue_depth: usize,
}

fn one() -> usize {
    1
}

impl TieredKvCacheConfig {
    /// Raw blocks on buffered I/O, the scalar codec, LRU, reads at depth 1.
    pub fn new(geometry: KvGeometry, hot_blocks: usize, cold_path: PathBuf) -> Self {
        Self {
            geometry,
            hot_blocks,
            cold_path,
            cold_encoding: ColdBlockEncoding::Raw,
            cold_io: IoMode::Buffered,
            int8_codec: Int8Codec::default(),
            eviction: EvictionPolicy::default(),
            cold_queue_depth: 1,
        }
    }
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
    /// Stores and cold reads the eviction policy kept out of the hot tier
    /// (a stored block is then written straight to the cold tier).
    #[serde(default)]
    pub admissions_declined: u64,
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
    eviction: EvictionPolicy,
    frequency: AccessFrequency,
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
        cold.set_queue_depth(config.cold_queue_depth)?;
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
            eviction: config.eviction,
            frequency: AccessFrequency::new(config.hot_blocks),
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

    /// Counts a use of a block, for policies that weigh frequency.
    fn record_use(&mut self, key: BlockKey) {
        if self.eviction == EvictionPolicy::TinyLfu {
            self.frequency.record(key);
        }
    }

    /// A hot slot for `candidate`: a free one while the pool fills, then
    /// the least recently used block's, once that block is safely on disk.
    /// `None` when the policy keeps the candidate out. The victim stays in
    /// the LRU until [`Self::insert`] replaces it, so a failed write (a
    /// full disk) changes nothing and loses nothing.
    fn claim_slot(&mut self, candidate: BlockKey) -> Result<Option<usize>, KvCacheError> {
        if let Some(slot) = self.free.pop() {
            return Ok(Some(slot));
        }
        let (&victim, &slot) = self.lru.peek_lru().ok_or(KvCacheError::HotTierFull {
            capacity: self.lru.cap().get(),
        })?;
        if self.eviction == EvictionPolicy::TinyLfu && !self.frequency.admits(candidate, victim) {
            self.stats.admissions_declined += 1;
            return Ok(None);
        }
        let written = self
            .cold
            .write(victim, &self.arena[self.slot_range(slot)])?;
        self.stats.evictions += 1;
        if written > 0 {
            self.stats.eviction_writes += 1;
            self.stats.bytes_written += written as u64;
        }
        Ok(Some(slot))
    }

    /// Records a block in a claimed slot. Once the pool is full, `push`
    /// drops the LRU victim and reuses its node: no allocation per block.
    fn insert(&mut self, key: BlockKey, slot: usize) {
        self.lru.push(key, slot);
    }

    /// Stores a full block. A key already cached is a shared prefix: it is
    /// marked recently used and not copied again. A block the policy keeps
    /// out of the hot tier is written to the cold tier at once.
    pub fn put(&mut self, key: BlockKey, block: &[u8]) -> Result<(), KvCacheError> {
        if block.len() != self.geometry.block_bytes() {
            return Err(KvCacheError::BlockSize {
                got: block.len(),
                expected: self.geometry.block_bytes(),
            });
        }
        self.record_use(key);
        if self.lru.promote(&key) || self.cold.contains(key) {
            self.stats.shared_prefix_hits += 1;
            return Ok(());
        }
        match self.claim_slot(key)? {
            Some(slot) => {
                let range = self.slot_range(slot);
                self.arena[range].copy_from_slice(block);
                self.insert(key, slot);
            }
            None => {
                let written = self.cold.write(key, block)?;
                self.stats.bytes_written += written as u64;
            }
        }
        self.stats.stores += 1;
        Ok(())
    }

    /// Copies a block into `out`. A cold block is verified, then promoted
    /// to the hot tier if the policy admits it. `None` when the cache does
    /// not hold the key.
    pub fn get(&mut self, key: BlockKey, out: &mut [u8]) -> Result<Option<Tier>, KvCacheError> {
        if self.get_hot(key, out) {
            return Ok(Some(Tier::Hot));
        }
        let Some(read) = self.cold.read(key, out)? else {
            self.stats.misses += 1;
            return Ok(None);
        };
        self.after_cold_read(key, read, out);
        Ok(Some(Tier::Cold))
    }

    /// Copies a block into `out` if the hot tier holds it.
    pub fn get_hot(&mut self, key: BlockKey, out: &mut [u8]) -> bool {
        let Some(&slot) = self.lru.get(&key) else {
            return false;
        };
        out.copy_from_slice(&self.arena[self.slot_range(slot)]);
        self.record_use(key);
        self.stats.hot_hits += 1;
        true
    }

    /// Reads blocks from the cold tier at its queue depth (the blocks a
    /// decode step needs are known in advance, so their reads need not
    /// wait for each other); block `i` goes to the `i`-th block-sized chunk
    /// of `out`. Each block found is then promoted as [`Self::get`] does.
    /// Returns whether each key was found.
    pub fn get_cold_many(
        &mut self,
        keys: &[BlockKey],
        out: &mut [u8],
    ) -> Result<Vec<bool>, KvCacheError> {
        let reads = self.cold.read_many(keys, out)?;
        let block = self.geometry.block_bytes();
        let mut found = Vec::with_capacity(keys.len());
        for (i, (&key, read)) in keys.iter().zip(reads).enumerate() {
            match read {
                Some(read) => {
                    self.after_cold_read(key, read, &out[i * block..(i + 1) * block]);
                    found.push(true);
                }
                None => {
                    self.stats.misses += 1;
                    found.push(false);
                }
            }
        }
        Ok(found)
    }

    fn after_cold_read(&mut self, key: BlockKey, read: usize, block: &[u8]) {
        self.record_use(key);
        self.stats.cold_hits += 1;
        self.stats.bytes_read += read as u64;
        // Promotion is an optimisation: when no hot slot can be freed (the
        // eviction's write failed, e.g. a full disk) the block is still
        // returned, and stays cold.
        match self.claim_slot(key) {
            Ok(Some(slot)) => {
                let range = self.slot_range(slot);
                self.arena[range].copy_from_slice(block);
                self.insert(key, slot);
                self.stats.promotions += 1;
            }
            Ok(None) => {}
            Err(_) => self.stats.promotions_skipped += 1,
        }
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
