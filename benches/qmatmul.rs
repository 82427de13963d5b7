//! Our quantized matrix kernels, one type at a time, against the two
//! references measured in the same run: a memcpy of the bytes the kernel
//! streams (the memory-bandwidth floor of a decode step) and candle's own
//! quantized matmul of the same GGML tensor. Decode is one token (matrix ×
//! vector), prefill 128 tokens. The matrix is 4096 × 4096 (16 M weights,
//! larger than this machine's L2 and, at 8 bits, than half its L3), the
//! shape of a 7B model's attention projections.
//!
//! A second group runs one decode step's products over a whole model of
//! SmolLM2-135M's shape (30 layers and the output head, ~150 MB at q8_0:
//! far past the caches) packed in one arena as a model is, beside a plain
//! read of the same arrays: the share of the machine's read bandwidth a
//! decode step reaches.
//!
//! `RAYON_NUM_THREADS=1 cargo bench --bench qmatmul` (then `=2`).

use std::hint::black_box;

use campaign::components::inference::qmatmul::{
    Isa, NativeType, PackedBody, PackedMatrix, QuantizedActivations, Scales, WeightArena,
};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ROWS: usize = 4096;
const COLS: usize = 4096;

fn weights() -> Tensor {
    // Deterministic, not constant: every block gets its own scale.
    let values: Vec<f32> = (0..ROWS * COLS)
        .map(|i| ((i.wrapping_mul(2_654_435_761) % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    Tensor::from_vec(values, (ROWS, COLS), &Device::Cpu).expect("tensor")
}

fn kernels(c: &mut Criterion) {
    let w = weights();
    for (ty, dtype) in [
        (NativeType::Q8_0, GgmlDType::Q8_0),
        (NativeType::Q4_0, GgmlDType::Q4_0),
        (NativeType::Q4_1, GgmlDType::Q4_1),
        (NativeType::Q4K, GgmlDType::Q4K),
        (NativeType::Q6K, GgmlDType::Q6K),
    ] {
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        let packed = PackedMatrix::pack(ty, ROWS, COLS, &q.data().expect("data")).expect("pack");
        let candle = QMatMul::from_qtensor(q).expect("qmatmul");
        let streamed = packed.streamed_bytes();
        for tokens in [1usize, 128] {
            let phase = if tokens == 1 { "decode" } else { "prefill_128" };
            let mut group = c.benchmark_group(format!("{}/{phase}", ty.name()));
            group.throughput(Throughput::Bytes(streamed as u64));
            group.sample_size(20);
            if tokens == 1 {
                let source = vec![1u8; streamed];
                let mut target = vec![0u8; streamed];
                group.bench_function("memcpy_streamed_bytes", |b| {
                    b.iter(|| {
                        target.copy_from_slice(black_box(&source));
                        black_box(&target);
                    })
                });
            }
            let x: Vec<f32> = (0..tokens * COLS).map(|i| (i % 17) as f32 - 8.0).collect();
            let input = Tensor::from_vec(x.clone(), (tokens, COLS), &Device::Cpu).expect("x");
            group.bench_function("candle", |b| {
                b.iter(|| black_box(candle.forward(&input).expect("forward")))
            });
            let mut out = vec![0f32; tokens * ROWS];
            for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
                group.bench_function(format!("native_{}", isa.name()), |b| {
                    b.iter(|| {
                        let a = QuantizedActivations::quantize(black_box(&x), tokens, COLS);
                        packed.matmul_with(isa, &a, &mut out);
                        black_box(&out);
                    })
                });
            }
            group.finish();
        }
    }
}

/// `(rows, cols)` of every product of one decode step of SmolLM2-135M:
/// per layer q, k, v, o, gate, up and down, then the tied output head.
fn smollm2_135m_products() -> Vec<(usize, usize)> {
    let layer = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let mut shapes: Vec<_> = (0..30).flat_map(|_| layer).collect();
    shapes.push((49152, 576));
    shapes
}

/// Sums every byte the kernels stream, 8 at a time: the read the decode
/// step cannot beat.
fn read_all(m: &PackedMatrix) -> u64 {
    fn words<T>(items: &[T]) -> u64 {
        // SAFETY: any initialised bytes read as u64 words; the unaligned
        // ends are left out (at most 14 bytes per array).
        let (_, words, _) = unsafe { items.align_to::<u64>() };
        words.iter().fold(0u64, |a, &w| a.wrapping_add(w))
    }
    let scales = |s: &Scales| match s {
        Scales::F32(d) => words(d),
        Scales::Super { q, d } => words(q).wrapping_add(words(d)),
    };
    match &m.body {
        PackedBody::Q8 { qs, d } => words(qs).wrapping_add(words(d)),
        PackedBody::Q4 { qs, d, m } => words(qs)
            .wrapping_add(scales(d))
            .wrapping_add(m.as_ref().map_or(0, scales)),
        PackedBody::Q6 { ql, qh, s } => words(ql).wrapping_add(words(qh)).wrapping_add(scales(s)),
    }
}

fn decode_step(c: &mut Criterion) {
    for (ty, dtype) in [
        (NativeType::Q8_0, GgmlDType::Q8_0),
        (NativeType::Q4_0, GgmlDType::Q4_0),
    ] {
        let mut arena = WeightArena::for_model();
        let matrices: Vec<PackedMatrix> = smollm2_135m_products()
            .into_iter()
            .enumerate()
            .map(|(i, (rows, cols))| {
                let values: Vec<f32> = (0..rows * cols)
                    .map(|j| {
                        let h = (j + i * 7919).wrapping_mul(2_654_435_761) % 2001;
                        (h as f32 - 1000.0) / 1000.0
                    })
                    .collect();
                let w = Tensor::from_vec(values, (rows, cols), &Device::Cpu).expect("tensor");
                let q = QTensor::quantize(&w, dtype).expect("quantize");
                PackedMatrix::pack_in(&mut arena, ty, rows, cols, &q.data().expect("data"))
                    .expect("pack")
            })
            .collect();
        let streamed: usize = matrices.iter().map(PackedMatrix::streamed_bytes).sum();
        let inputs: Vec<QuantizedActivations> = [576usize, 1536]
            .into_iter()
            .map(|cols| {
                let x: Vec<f32> = (0..cols).map(|i| (i % 17) as f32 - 8.0).collect();
                QuantizedActivations::quantize(&x, 1, cols)
            })
            .collect();
        let mut outs: Vec<Vec<f32>> = matrices.iter().map(|m| vec![0f32; m.rows]).collect();
        let mut group = c.benchmark_group(format!("{}/decode_step_smollm2_135m", ty.name()));
        group.throughput(Throughput::Bytes(streamed as u64));
        group.sample_size(20);
        group.bench_function("read_streamed_bytes", |b| {
            b.iter(|| {
                black_box(
                    matrices
                        .iter()
                        .fold(0u64, |a, m| a.wrapping_add(read_all(m))),
                )
            })
        });
        group.bench_function("native", |b| {
            b.iter(|| {
                for (m, out) in matrices.iter().zip(outs.iter_mut()) {
                    let x = if m.cols == 576 {
                        &inputs[0]
                    } else {
                        &inputs[1]
                    };
                    m.matmul(x, out);
                }
                black_box(&outs);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, kernels, decode_step);
criterion_main!(benches);
