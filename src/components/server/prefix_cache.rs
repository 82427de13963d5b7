//! Reuse of the KV cache of a shared prompt prefix across requests (what
//! vLLM calls automatic prefix caching): a request whose prompt begins
//! with blocks a recent request computed resumes from there and prefills
//! only the rest. Blocks are `block_tokens` long and named by a hash chain
//! over the tokens from the start (the rule of
//! [`cacheable_block_keys`], shared with the workload's own analysis).
//!
//! What is kept is a session's KV cache at a block boundary (a
//! [`SessionSnapshot`]: candle's tensors are shared, so taking one copies
//! nothing). A snapshot cannot be cut shorter (candle keeps its caches
//! private), so the cache takes them where reuse will start: at the end of
//! each prompt's full blocks, and where a prompt leaves a prefix that an
//! earlier prompt had (the second request of a group computes the shared
//! part once more and leaves it behind; the third resumes from it).
//! Memory is bounded by the bytes those snapshots hold; the least recently
//! used goes first.
//!
//! Written by hand: the policy is twenty lines over a hash map, and what
//! it stores (candle sessions) no caching crate knows.

use std::collections::HashMap;

use crate::components::inference::SessionSnapshot;
use crate::components::kvcache::{BlockKey, cacheable_block_keys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixCacheConfig {
    pub block_tokens: usize,
    /// Bytes of KV the snapshots may hold; 0 turns the cache off.
    pub capacity_bytes: u64,
    /// KV bytes of one token of one sequence (the model's).
    pub bytes_per_token: u64,
}

struct Entry<'m> {
    snapshot: SessionSnapshot<'m>,
    /// The keys of its blocks, first to last.
    keys: Vec<BlockKey>,
    bytes: u64,
    last_used: u64,
}

/// Counts since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixCacheCounts {
    pub requests: u64,
    pub hits: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub evictions: u64,
}

pub struct PrefixCache<'m> {
    config: PrefixCacheConfig,
    /// By the key of the entry's last block (a chain: it names the whole
    /// prefix).
    entries: HashMap<BlockKey, Entry<'m>>,
    /// How many entries hold each block: where a prompt leaves what an
    /// earlier prompt had.
    held: HashMap<BlockKey, usize>,
    used_bytes: u64,
    clock: u64,
    counts: PrefixCacheCounts,
}

/// How one prompt is prefilled: from a snapshot (or the start), stopping
/// at each of `stops` (token positions, increasing, short of the prompt's
/// end) to leave a snapshot there.
pub struct PrefillPlan<'m> {
    pub resume: Option<SessionSnapshot<'m>>,
    pub stops: Vec<usize>,
    keys: Vec<BlockKey>,
}

impl PrefillPlan<'_> {
    /// Prompt tokens the request does not compute.
    pub fn cached_tokens(&self) -> usize {
        self.resume.as_ref().map_or(0, SessionSnapshot::position)
    }
}

impl<'m> PrefixCache<'m> {
    pub fn new(config: PrefixCacheConfig) -> Self {
        Self {
            config,
            entries: HashMap::new(),
            held: HashMap::new(),
            used_bytes: 0,
            clock: 0,
            counts: PrefixCacheCounts::default(),
        }
    }

    pub fn counts(&self) -> PrefixCacheCounts {
        self.counts
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Whether it keeps anything (a budget and a block size).
    pub fn enabled(&self) -> bool {
        self.config.capacity_bytes > 0 && self.config.block_tokens > 0
    }

    /// The plan for `prompt`, counted as one request.
    pub fn plan(&mut self, prompt: &[u32]) -> PrefillPlan<'m> {
        self.counts.requests += 1;
        self.counts.prompt_tokens += prompt.len() as u64;
        if !self.enabled() {
            return PrefillPlan {
                resume: None,
                stops: Vec::new(),
                keys: Vec::new(),
            };
        }
        let block = self.config.block_tokens;
        let keys = cacheable_block_keys(prompt, block);
        self.clock += 1;
        // The deepest entry that is a prefix of this prompt.
        let resume_blocks = (1..=keys.len())
            .rev()
            .find(|&j| self.entries.contains_key(&keys[j - 1]))
            .unwrap_or(0);
        let resume = (resume_blocks > 0)
            .then(|| self.entries.get_mut(&keys[resume_blocks - 1]))
            .flatten()
            .map(|entry| {
                entry.last_used = self.clock;
                entry.snapshot.clone()
            });
        if let Some(snapshot) = &resume {
            self.counts.hits += 1;
            self.counts.cached_tokens += snapshot.position() as u64;
        }
        // Where this prompt leaves what an earlier one had.
        let shared_blocks = keys
            .iter()
            .take_while(|k| self.held.contains_key(*k))
            .count();
        let mut stops = Vec::new();
        if shared_blocks > resume_blocks && shared_blocks < keys.len() {
            stops.push(shared_blocks * block);
        }
        if keys.len() > resume_blocks {
            stops.push(keys.len() * block);
        }
        PrefillPlan {
            resume,
            stops,
            keys,
        }
    }

    /// Keeps `snapshot`, taken at `plan`'s stop `position`.
    pub fn insert(&mut self, plan: &PrefillPlan<'m>, snapshot: SessionSnapshot<'m>) {
        let block = self.config.block_tokens;
        let blocks = snapshot.position() / block.max(1);
        if !self.enabled() || blocks == 0 || blocks > plan.keys.len() {
            return;
        }
        let keys = plan.keys[..blocks].to_vec();
        let last = keys[blocks - 1];
        if self.entries.contains_key(&last) {
            return;
        }
        // Its KV, and the attention masks candle keeps beside it (one byte
        // per query × key of each prefill chunk; the chunks of a prefix
        // hold at most position² of them).
        let position = snapshot.position() as u64;
        let bytes = position
            .saturating_mul(self.config.bytes_per_token)
            .saturating_add(position.saturating_mul(position));
        if bytes > self.config.capacity_bytes {
            return;
        }
        while self.used_bytes + bytes > self.config.capacity_bytes {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.evict(victim);
        }
        self.clock += 1;
        for key in &keys {
            *self.held.entry(*key).or_default() += 1;
        }
        self.used_bytes += bytes;
        self.entries.insert(
            last,
            Entry {
                snapshot,
                keys,
                bytes,
                last_used: self.clock,
            },
        );
    }

    fn evict(&mut self, last: BlockKey) {
        let Some(entry) = self.entries.remove(&last) else {
            return;
        };
        self.counts.evictions += 1;
        self.used_bytes -= entry.bytes;
        for key in entry.keys {
            if let Some(n) = self.held.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.held.remove(&key);
                }
            }
        }
    }
}
