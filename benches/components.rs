//! Hot paths of the Day 2 components, each with a reference measured in
//! the same run:
//! - codec round trip of a 64 KiB log block vs memcpy of the same block;
//! - blob store get (cached, uncached) of 16 KiB vs memcpy of 16 KiB;
//! - queue push + pop through the agents pool vs a bare crossbeam push + pop.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use campaign::components::agents::{AgentPool, ChannelImpl, QueueKind};
use campaign::components::compression::BlockCodec;
use campaign::components::storage::{BlobStore, CommitMode};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn log_block() -> Vec<u8> {
    (0..2000)
        .map(|i| {
            format!(
                "{{\"request\":{i},\"tokens\":{},\"status\":\"ok\"}}\n",
                (i * 7919) % 4096
            )
        })
        .collect::<String>()
        .into_bytes()[..64 * 1024]
        .to_vec()
}

fn codecs(c: &mut Criterion) {
    let block = log_block();
    let mut group = c.benchmark_group("codec_round_trip_64k");
    group.throughput(Throughput::Bytes(block.len() as u64));
    let mut copy = vec![0u8; block.len()];
    group.bench_function("reference_memcpy", |b| {
        b.iter(|| copy.copy_from_slice(black_box(&block)))
    });
    for name in ["lz4", "snappy", "zstd:1", "zstd:3"] {
        let mut codec = BlockCodec::new(name.parse().expect("codec name"), None).expect("codec");
        let (mut packed, mut restored) = (Vec::new(), Vec::new());
        group.bench_function(name, |b| {
            b.iter(|| {
                codec
                    .compress(black_box(&block), &mut packed)
                    .expect("compress");
                codec
                    .decompress(&packed, block.len(), &mut restored)
                    .expect("decompress");
            })
        });
    }
    group.finish();
}

fn storage(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().expect("temporary folder");
    let value = vec![5u8; 16 * 1024];
    let mut uncached = BlobStore::open(&dir.path().join("u.redb"), 0).expect("store");
    for key in 0..256 {
        uncached
            .put(key, &value, CommitMode::NonDurable)
            .expect("put");
    }
    drop(uncached);
    let mut uncached = BlobStore::open(&dir.path().join("u.redb"), 0).expect("store");
    let mut cached = BlobStore::open(&dir.path().join("c.redb"), 256).expect("store");
    for key in 0..256 {
        cached
            .put(key, &value, CommitMode::NonDurable)
            .expect("put");
    }
    let mut out = Vec::new();
    let mut group = c.benchmark_group("blob_get_16k");
    group.throughput(Throughput::Bytes(value.len() as u64));
    let mut copy = vec![0u8; value.len()];
    group.bench_function("reference_memcpy", |b| {
        b.iter(|| copy.copy_from_slice(black_box(&value)))
    });
    let mut key = 0;
    group.bench_function("uncached", |b| {
        b.iter(|| {
            key = (key + 1) % 256;
            black_box(uncached.get(key, &mut out).expect("get"))
        })
    });
    group.bench_function("cached", |b| {
        b.iter(|| {
            key = (key + 1) % 256;
            black_box(cached.get(key, &mut out).expect("get"))
        })
    });
    group.bench_function("put_non_durable", |b| {
        b.iter_batched(
            || key + 1000,
            |k| {
                uncached
                    .put(k, &value, CommitMode::NonDurable)
                    .expect("put")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn queues(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_push_pop");
    let bare = crossbeam_queue::SegQueue::new();
    group.bench_function("reference_segqueue", |b| {
        b.iter(|| {
            bare.push(black_box(1u64));
            black_box(bare.pop())
        })
    });
    for kind in [
        QueueKind::TokioMpsc,
        QueueKind::MutexDeque,
        QueueKind::LockFree,
    ] {
        let done = Arc::new(AtomicU64::new(0));
        let job = {
            let done = Arc::clone(&done);
            Arc::new(move |_: usize, _: u64| {
                done.fetch_add(1, Ordering::Release);
            })
        };
        let pool = AgentPool::start(kind, ChannelImpl::default(), 1, 1, job).expect("pool");
        group.bench_function(kind.name(), |b| {
            b.iter(|| {
                let target = done.load(Ordering::Acquire) + 1;
                pool.submit(1).expect("submit");
                while done.load(Ordering::Acquire) < target {
                    std::hint::spin_loop();
                }
            })
        });
        pool.shutdown().expect("shutdown");
    }
    group.finish();
}

criterion_group!(benches, codecs, storage, queues);
criterion_main!(benches);
