//! The hot path of the tiered KV cache allocates nothing per block: the
//! test binary's allocator counts every heap allocation, per thread, so
//! that the tests running beside this one are not counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use campaign::components::kvcache::{
    KvDType, KvGeometry, TieredKvCache, TieredKvCacheConfig, block_key,
};

struct Counting;

thread_local! {
    // A const-initialised `Cell` has no destructor and needs no lazy
    // registration, so the allocator can touch it without allocating.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn steady_state_stores_and_hot_reads_do_not_allocate_per_block() {
    let geometry = KvGeometry {
        layers: 2,
        kv_heads: 2,
        head_dim: 16,
        dtype: KvDType::F16,
        block_tokens: 4,
    };
    let dir = tempfile::TempDir::new().unwrap();
    let mut cache = TieredKvCache::open(&TieredKvCacheConfig::new(
        geometry,
        32,
        dir.path().join("cold.kv"),
    ))
    .unwrap();
    let block = vec![3u8; geometry.block_bytes()];
    let keys: Vec<u64> = (0..2048u32).map(|i| block_key(None, &[i])).collect();
    let mut out = vec![0u8; geometry.block_bytes()];
    // Fill the pool (its LRU nodes are allocated once, here).
    for key in &keys[..32] {
        cache.put(*key, &block).unwrap();
    }

    let hot_reads = allocations_during(|| {
        for _ in 0..10 {
            for key in &keys[..32] {
                assert!(cache.get(*key, &mut out).unwrap().is_some());
            }
        }
    });
    assert_eq!(hot_reads, 0, "320 hot reads allocated");

    // 2 016 stores, each evicting a block to disk. The cold tier's index
    // grows by doubling, so a handful of allocations is expected; one per
    // block would be 2 016.
    let stores = allocations_during(|| {
        for key in &keys[32..] {
            cache.put(*key, &block).unwrap();
        }
    });
    assert_eq!(cache.stats().evictions, 2016);
    assert!(stores < 32, "{stores} allocations for 2016 evicting stores");
}
