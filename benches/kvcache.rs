//! Hot-tier get of one 16-token block of the default model's KV (f16),
//! rotating over 1 024 cached blocks, against memcpy of one block rotating
//! over a source of the same total size (so both miss the CPU caches
//! alike), measured in the same run.

use std::hint::black_box;

use campaign::components::blockio::IoMode;
use campaign::components::kvcache::{
    ColdBlockEncoding, KvDType, KvGeometry, TieredKvCache, TieredKvCacheConfig, block_key,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn hot_tier(c: &mut Criterion) {
    let geometry = KvGeometry {
        layers: 6,
        kv_heads: 2,
        head_dim: 64,
        dtype: KvDType::F16,
        block_tokens: 16,
    };
    let dir = tempfile::TempDir::new().expect("temporary folder");
    let mut cache = TieredKvCache::open(&TieredKvCacheConfig {
        geometry,
        hot_blocks: 1024,
        cold_path: dir.path().join("cold.kv"),
        cold_encoding: ColdBlockEncoding::Raw,
        cold_io: IoMode::Buffered,
    })
    .expect("cache opens");
    let block = vec![7u8; geometry.block_bytes()];
    let mut out = vec![0u8; geometry.block_bytes()];
    let keys: Vec<u64> = (0..1024u32).map(|i| block_key(None, &[i])).collect();
    for key in &keys {
        cache.put(*key, &block).expect("put");
    }

    let mut group = c.benchmark_group("hot_block");
    group.throughput(Throughput::Bytes(geometry.block_bytes() as u64));
    let source = vec![7u8; geometry.block_bytes() * keys.len()];
    let mut j = 0;
    group.bench_function("reference_memcpy", |b| {
        b.iter(|| {
            j = (j + 1) % keys.len();
            let start = j * geometry.block_bytes();
            out.copy_from_slice(black_box(&source[start..start + geometry.block_bytes()]));
        });
    });
    let mut i = 0;
    group.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(cache.get(keys[i], &mut out).expect("get"))
        });
    });
    group.finish();
}

criterion_group!(benches, hot_tier);
criterion_main!(benches);
