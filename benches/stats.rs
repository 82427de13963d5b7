//! The measurement core's own cost: recording one sample must stay far below
//! the latencies it records. Reference in the same run: pushing the same
//! value into a preallocated Vec (the cheapest possible recorder).

use std::hint::black_box;

use campaign::stats::{MetricRecorder, ValueKind, summarize};
use criterion::{Criterion, criterion_group, criterion_main};

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_one_sample");
    group.bench_function("reference_vec_push", |b| {
        let mut v = Vec::with_capacity(1 << 24);
        b.iter(|| {
            if v.len() == v.capacity() {
                v.clear();
            }
            v.push(black_box(12.345_f64));
        });
    });
    group.bench_function("metric_recorder", |b| {
        let mut r = MetricRecorder::new(ValueKind::DurationMs, 10_000);
        b.iter(|| r.record(black_box(12.345)));
    });
    group.finish();
}

fn summary(c: &mut Criterion) {
    let mut r = MetricRecorder::new(ValueKind::DurationMs, 10_000);
    (0..10_000).for_each(|i| r.record(1.0 + f64::from(i % 977) * 0.01));
    c.bench_function("summarize_10k_samples", |b| {
        b.iter(|| summarize(black_box(&r)))
    });
}

criterion_group!(benches, record, summary);
criterion_main!(benches);
