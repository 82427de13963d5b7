//! Which block the hot tier gives up when it is full.
//!
//! LRU is what most paged KV caches do, and it is the worst possible policy
//! for attention: every decode step reads the sequence's whole window in
//! order, so once the window is larger than the hot tier each read evicts
//! the block the next step needs first, and the hot tier never hits.
//! [`EvictionPolicy::TinyLfu`] keeps LRU order inside the hot tier but
//! guards the door: a block is admitted only if it has been used more
//! often than the block it would evict (Einziger, Friedman & Manes,
//! "TinyLFU: A Highly Efficient Cache Admission Policy", 2017). A scan then
//! passes through the cold tier without flushing the hot one, and blocks
//! read by several sequences (a shared prompt prefix) win their place.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::BlockKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EvictionPolicy {
    /// Least recently used; every store and every cold read enters the hot tier.
    #[default]
    Lru,
    /// LRU with TinyLFU admission: a new or cold block enters the hot tier
    /// only when it has been used more often than the LRU victim; otherwise
    /// it stays (or is written) cold.
    TinyLfu,
}

/// How often each block was used lately: TinyLFU's frequency estimate.
///
/// Written by hand rather than taken from a caching crate (moka, quick_cache)
/// because those own their entries and evict on their own; here the hot tier
/// is a slot arena whose victims must first be written to disk, so only the
/// admission decision is borrowed. Counts are exact (one map entry per block
/// seen, the same order of memory as the cold tier's index) instead of a
/// count-min sketch, and they are halved every `10 × capacity` uses, as in
/// the paper, so that old popularity fades.
#[derive(Debug, Default)]
pub struct AccessFrequency {
    counts: HashMap<BlockKey, u32>,
    uses: u64,
    reset_every: u64,
}

impl AccessFrequency {
    pub fn new(hot_blocks: usize) -> Self {
        Self {
            counts: HashMap::new(),
            uses: 0,
            reset_every: 10 * hot_blocks.max(1) as u64,
        }
    }

    pub fn record(&mut self, key: BlockKey) {
        let count = self.counts.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        self.uses += 1;
        // The paper halves every 10 × the cache's size; the sample here is
        // at least 10 × the blocks tracked, so that a window longer than
        // the hot tier is not cut by a halving in mid-read: blocks read
        // equally often would otherwise look unequal by where the cut fell,
        // and the hot tier would churn between them.
        if self.uses >= self.reset_every.max(10 * self.counts.len() as u64) {
            self.uses = 0;
            self.counts.retain(|_, c| {
                *c /= 2;
                *c > 0
            });
        }
    }

    pub fn estimate(&self, key: BlockKey) -> u32 {
        self.counts.get(&key).copied().unwrap_or(0)
    }

    /// TinyLFU's rule: the candidate enters only if strictly more popular
    /// than the victim (a tie keeps the block already in place).
    pub fn admits(&self, candidate: BlockKey, victim: BlockKey) -> bool {
        self.estimate(candidate) > self.estimate(victim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_needs_strictly_more_uses_and_counts_age() {
        let mut f = AccessFrequency::new(1);
        f.record(1);
        f.record(2);
        assert!(!f.admits(1, 2), "a tie keeps the incumbent");
        f.record(1);
        assert!(f.admits(1, 2));
        assert!(!f.admits(2, 1));
        // Three blocks tracked: counts halve after 10 × 3 uses. 1 had 2
        // and 2 had 1; twenty-seven uses of 3 make thirty in all.
        for _ in 0..26 {
            f.record(3);
        }
        assert_eq!((f.estimate(1), f.estimate(2), f.estimate(3)), (2, 1, 26));
        f.record(3);
        assert_eq!((f.estimate(1), f.estimate(2), f.estimate(3)), (1, 0, 13));
    }
}
