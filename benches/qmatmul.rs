//! Our quantized matrix kernels, one type at a time, against the two
//! references measured in the same run: a memcpy of the bytes the kernel
//! streams (the memory-bandwidth floor of a decode step) and candle's own
//! quantized matmul of the same GGML tensor. Decode is one token (matrix ×
//! vector), prefill 128 tokens. The matrix is 4096 × 4096 (16 M weights,
//! larger than this machine's L2 and, at 8 bits, than half its L3), the
//! shape of a 7B model's attention projections.
//!
//! `RAYON_NUM_THREADS=1 cargo bench --bench qmatmul` (then `=2`).

use std::hint::black_box;

use campaign::components::inference::qmatmul::{
    Isa, NativeType, PackedMatrix, QuantizedActivations,
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

criterion_group!(benches, kernels);
criterion_main!(benches);
