//! The int8 codec against memcpy (below), and the hot-tier get of one 16-token block of the default model's KV (f16),
//! rotating over 1 024 cached blocks, against memcpy of one block rotating
//! over a source of the same total size (so both miss the CPU caches
//! alike), measured in the same run.

use std::hint::black_box;

use campaign::components::kvcache::{
    Int8Block, Int8Scratch, KvDType, KvGeometry, TieredKvCache, TieredKvCacheConfig, block_key,
    dequantize_int8, dequantize_int8_from, quantize_int8, quantize_int8_into,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A 16-token f16 block of the default campaign's model (6 layers, 2 KV
/// heads of 64): 48 KiB.
const DEFAULT_MODEL_BLOCK: KvGeometry = KvGeometry {
    layers: 6,
    kv_heads: 2,
    head_dim: 64,
    dtype: KvDType::F16,
    block_tokens: 16,
};

fn hot_tier(c: &mut Criterion) {
    let geometry = DEFAULT_MODEL_BLOCK;
    let dir = tempfile::TempDir::new().expect("temporary folder");
    let mut cache = TieredKvCache::open(&TieredKvCacheConfig::new(
        geometry,
        1024,
        dir.path().join("cold.kv"),
    ))
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

/// The int8 codec on one 16-token block of the default model's KV (f16),
/// scalar and vectorised, encode and decode, against memcpy of the same
/// bytes in the same run: `cargo bench --bench kvcache -- int8`.
fn int8_codec(c: &mut Criterion) {
    let geometry = DEFAULT_MODEL_BLOCK;
    let bytes = geometry.block_bytes();
    // Finite f16 values spread over a few orders of magnitude.
    let block: Vec<u8> = (0..bytes / 2)
        .flat_map(|i| half::f16::from_f32(((i * 7919) % 2003) as f32 / 311.0 - 3.2).to_le_bytes())
        .collect();
    let groups = bytes / 2 / geometry.group_len();
    let mut out = vec![0u8; bytes];
    let mut scratch = Int8Scratch::default();
    let mut encoded = Vec::new();
    quantize_int8_into(
        &block,
        geometry.dtype,
        geometry.group_len(),
        &mut scratch,
        &mut encoded,
    )
    .expect("whole groups");
    let decoded_block = Int8Block::decode(&encoded, groups).expect("encoded block");

    let mut group = c.benchmark_group("int8_codec");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("reference_memcpy", |b| {
        b.iter(|| out.copy_from_slice(black_box(&block)));
    });
    group.bench_function("encode_scalar", |b| {
        let mut payload = Vec::with_capacity(encoded.len());
        b.iter(|| {
            payload.clear();
            quantize_int8(black_box(&block), geometry.dtype, geometry.group_len())
                .expect("whole groups")
                .encode_into(&mut payload);
        });
    });
    group.bench_function("encode_vectorised", |b| {
        let mut payload = Vec::with_capacity(encoded.len());
        b.iter(|| {
            payload.clear();
            quantize_int8_into(
                black_box(&block),
                geometry.dtype,
                geometry.group_len(),
                &mut scratch,
                &mut payload,
            )
            .expect("whole groups");
        });
    });
    group.bench_function("decode_scalar", |b| {
        b.iter(|| {
            let q = Int8Block::decode(black_box(&encoded), groups).expect("encoded block");
            dequantize_int8(&q, geometry.dtype, &mut out);
        });
    });
    group.bench_function("decode_vectorised", |b| {
        b.iter(|| {
            dequantize_int8_from(
                black_box(&encoded),
                groups,
                geometry.dtype,
                &mut scratch,
                &mut out,
            )
            .expect("encoded block")
        });
    });
    black_box(decoded_block);
    group.finish();
}

criterion_group!(benches, hot_tier, int8_codec);
criterion_main!(benches);
