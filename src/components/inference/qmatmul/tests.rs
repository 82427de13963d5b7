//! The kernels against a scalar reference of each block format (candle's
//! own dequantization, independent of our repacking), on shapes that hit
//! every tail, and every instruction-set variant against the portable one.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

/// Tolerance of a product, relative to `Σ |wᵢ · xᵢ|` over the row (plus
/// the constant terms of 4-bit blocks, see `constant_terms`): the
/// block sums are exact integers, and what remains is f32 rounding of at
/// most K/32 scaled partial sums.
const TOLERANCE: f64 = 1e-5;

const TYPES: [(NativeType, GgmlDType); 5] = [
    (NativeType::Q4_0, GgmlDType::Q4_0),
    (NativeType::Q4_1, GgmlDType::Q4_1),
    (NativeType::Q8_0, GgmlDType::Q8_0),
    (NativeType::Q4K, GgmlDType::Q4K),
    (NativeType::Q6K, GgmlDType::Q6K),
];

fn values(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // Some blocks all-zero, some with an outlier: both edge cases
            // of a block's scale.
            let v: f32 = rng.random_range(-1.0..1.0);
            let roll: f32 = rng.random();
            if roll < 0.01 {
                v * 40.0 * scale
            } else {
                v * scale
            }
        })
        .collect()
}

/// A GGML tensor of random weights as candle quantizes it, and candle's
/// own f32 reading of it.
fn ggml_weights(
    dtype: GgmlDType,
    rows: usize,
    cols: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<f32>) {
    let mut w = values(rng, rows * cols, 0.5);
    // One all-zero row: its scale is 0.
    if rows > 2 {
        w[cols..2 * cols].fill(0.0);
    }
    let t = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, dtype).unwrap();
    let bytes = q.data().unwrap().into_owned();
    let reference = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    (bytes, reference)
}

fn shapes(ty: NativeType) -> Vec<(usize, usize, usize)> {
    // (rows, cols, tokens): rows not a multiple of a chunk, K not a
    // multiple of 256 where the format allows, tokens around TILE and the
    // token tile of 64.
    let cols: &[usize] = match ty {
        NativeType::Q4K | NativeType::Q6K => &[256, 768],
        _ => &[32, 96, 416],
    };
    let mut out = Vec::new();
    for &k in cols {
        for &(rows, tokens) in &[(1, 1), (3, 5), (17, 3), (6, 70), (33, 1), (16, 2)] {
            out.push((rows, k, tokens));
        }
    }
    out
}

#[test]
fn repacking_reads_every_weight_as_ggml_does() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (ty, dtype) in TYPES {
        for (rows, cols, _) in shapes(ty) {
            let (bytes, reference) = ggml_weights(dtype, rows, cols, &mut rng);
            let packed = PackedMatrix::pack(ty, rows, cols, &bytes).unwrap();
            for r in 0..rows {
                assert_eq!(
                    packed.dequantize_row(r),
                    reference[r * cols..(r + 1) * cols],
                    "{ty:?} {rows}×{cols} row {r}"
                );
            }
        }
    }
}

/// `Σ |m · Σ a|` over the blocks of a row with a constant term (4-bit
/// types: `w = d·q + m`), which the kernels add apart from the quants'
/// sum: the two cancel where the weights are near zero, and each carries
/// its own rounding.
fn constant_terms(packed: &PackedMatrix, r: usize, a: &[f32]) -> f64 {
    a.chunks_exact(BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let sum: f64 = block.iter().map(|&v| f64::from(v)).sum();
            (f64::from(packed.block_constant(r, b)) * sum).abs()
        })
        .sum()
}

/// The largest error over the product, in units of its tolerance.
fn worst_error(
    packed: &PackedMatrix,
    x: &QuantizedActivations,
    weights: &[f32],
    out: &[f32],
) -> f64 {
    let (rows, cols) = (packed.rows, packed.cols);
    let mut worst = 0f64;
    for t in 0..x.tokens {
        let a = x.dequantize_token(t);
        for r in 0..rows {
            let w = &weights[r * cols..(r + 1) * cols];
            let exact: f64 = w
                .iter()
                .zip(&a)
                .map(|(&w, &a)| f64::from(w) * f64::from(a))
                .sum();
            let magnitude: f64 = w
                .iter()
                .zip(&a)
                .map(|(&w, &a)| (f64::from(w) * f64::from(a)).abs())
                .sum::<f64>()
                + constant_terms(packed, r, &a);
            let error = (f64::from(out[t * rows + r]) - exact).abs();
            let allowed = TOLERANCE * magnitude + f64::MIN_POSITIVE;
            worst = worst.max(error / allowed);
        }
    }
    worst
}

#[test]
fn every_type_and_variant_equals_the_scalar_reference_on_every_tail() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut untested = Vec::new();
    for (ty, dtype) in TYPES {
        for (rows, cols, tokens) in shapes(ty) {
            let (bytes, weights) = ggml_weights(dtype, rows, cols, &mut rng);
            let packed = PackedMatrix::pack(ty, rows, cols, &bytes).unwrap();
            let x = values(&mut rng, tokens * cols, 2.0);
            let x = QuantizedActivations::quantize(&x, tokens, cols);
            let mut portable = vec![0f32; tokens * rows];
            packed.matmul_with(Isa::Portable, &x, &mut portable);
            let e = worst_error(&packed, &x, &weights, &portable);
            assert!(
                e <= 1.0,
                "{ty:?} {rows}×{cols}×{tokens} portable: {e}× the tolerance"
            );
            for isa in Isa::ALL {
                if !isa.supported() {
                    untested.push(isa.name());
                    continue;
                }
                let mut out = vec![0f32; tokens * rows];
                packed.matmul_with(isa, &x, &mut out);
                let e = worst_error(&packed, &x, &weights, &out);
                assert!(
                    e <= 1.0,
                    "{ty:?} {rows}×{cols}×{tokens} {isa:?}: {e}× the tolerance"
                );
            }
        }
    }
    untested.sort_unstable();
    untested.dedup();
    if !untested.is_empty() {
        eprintln!("compiled but untested on this CPU: {}", untested.join(", "));
    }
}

#[test]
fn threads_split_rows_and_change_no_result() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (ty, dtype) in TYPES {
        let (rows, cols, tokens) = (257, 512, 9);
        let (bytes, _) = ggml_weights(dtype, rows, cols, &mut rng);
        let packed = PackedMatrix::pack(ty, rows, cols, &bytes).unwrap();
        let x = values(&mut rng, tokens * cols, 1.0);
        let x = QuantizedActivations::quantize(&x, tokens, cols);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0f32; tokens * rows];
            pool.install(|| packed.matmul(&x, &mut out));
            out
        };
        assert_eq!(run(1), run(3), "{ty:?}");
    }
}

#[test]
fn a_malformed_tensor_is_refused_with_its_shape() {
    let e = PackedMatrix::pack(NativeType::Q4K, 2, 96, &[0; 10]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "q4_K rows must be whole blocks of 256; a row here has 96 elements"
    );
    let e = PackedMatrix::pack(NativeType::Q8_0, 2, 64, &[0; 10]).unwrap_err();
    assert_eq!(e.to_string(), "q8_0 data of 2×64 needs 136 bytes; got 10");
}

/// q8_0 quants at both ends of an i8 (−128 never comes from GGML's own
/// quantizer, but a file may hold it): the offset layout stores −128 as
/// 0 and 127 as 255, and every variant must still sum them exactly.
#[test]
fn extreme_q8_quants_are_summed_exactly_by_every_variant() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (rows, cols, tokens) = (17, 96, 5);
    let mut bytes = Vec::new();
    let mut weights = Vec::new();
    for _ in 0..rows * cols / BLOCK {
        let d = half::f16::from_f32(rng.random_range(0.01..0.1));
        bytes.extend(d.to_le_bytes());
        for j in 0..BLOCK {
            let q: i8 = match j % 4 {
                0 => -128,
                1 => 127,
                2 => -127,
                _ => rng.random(),
            };
            bytes.push(q as u8);
            weights.push(d.to_f32() * f32::from(q));
        }
    }
    let packed = PackedMatrix::pack(NativeType::Q8_0, rows, cols, &bytes).unwrap();
    for r in 0..rows {
        assert_eq!(packed.dequantize_row(r), weights[r * cols..(r + 1) * cols]);
    }
    // Activations at both ends of their own scale too.
    let x: Vec<f32> = (0..tokens * cols)
        .map(|i| {
            if i % 3 == 0 {
                -2.0
            } else {
                rng.random_range(-2.0..2.0)
            }
        })
        .collect();
    let x = QuantizedActivations::quantize(&x, tokens, cols);
    for isa in Isa::ALL.into_iter().filter(|isa| isa.supported()) {
        let mut out = vec![0f32; tokens * rows];
        packed.matmul_with(isa, &x, &mut out);
        let e = worst_error(&packed, &x, &weights, &out);
        assert!(e <= 1.0, "{isa:?}: {e}× the tolerance");
    }
}

/// Several matrices in one region (past the parallel threshold: 1 150
/// rows of 256) give each matrix's own product, at any thread count, for
/// one token and for several.
#[test]
fn products_in_one_region_equal_each_alone() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let cols = 256;
    let matrices: Vec<PackedMatrix> = [
        (NativeType::Q4_0, GgmlDType::Q4_0, 17),
        (NativeType::Q8_0, GgmlDType::Q8_0, 1100),
        (NativeType::Q6K, GgmlDType::Q6K, 33),
    ]
    .into_iter()
    .map(|(ty, dtype, rows)| {
        let (bytes, _) = ggml_weights(dtype, rows, cols, &mut rng);
        PackedMatrix::pack(ty, rows, cols, &bytes).unwrap()
    })
    .collect();
    let refs: Vec<&PackedMatrix> = matrices.iter().collect();
    for tokens in [1, 3] {
        let x = values(&mut rng, tokens * cols, 1.0);
        let x = QuantizedActivations::quantize(&x, tokens, cols);
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let many = pool.install(|| matmul_many(&refs, &x));
            for (m, out) in matrices.iter().zip(&many) {
                let mut alone = vec![0f32; tokens * m.rows];
                m.matmul(&x, &mut alone);
                assert_eq!(
                    *out, alone,
                    "{:?}, {tokens} tokens, {threads} threads",
                    m.source
                );
            }
        }
    }
}

/// A prompt's tokens quantized on several threads give the values one
/// thread gives.
#[test]
fn quantizing_on_several_threads_changes_no_value() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (tokens, cols) = (70, 416);
    let x = values(&mut rng, tokens * cols, 3.0);
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| QuantizedActivations::quantize(&x, tokens, cols))
    };
    let (one, three) = (on(1), on(3));
    assert_eq!(one.qs, three.qs);
    assert_eq!(one.d, three.d);
    assert_eq!(one.s, three.s);
    assert_eq!(one.sum, three.sum);
    assert_eq!(one.half_sum, three.half_sum);
    assert_eq!((three.tokens, three.cols), (tokens, cols));
}
