//! Activations quantized to signed 8 bits, one scale per block of 32 (as
//! GGML's q8_0 and q8_1), once per token per layer: the projections that
//! read one input (q, k and v; gate and up) share one quantization.

use rayon::prelude::*;

use super::pack::BLOCK;

/// Below this many values, one thread quantizes them all (a rayon
/// hand-off costs microseconds; 16 K values take about that).
const PARALLEL_MIN_VALUES: usize = 1 << 14;

/// `tokens` rows of `cols` activations, quantized.
#[derive(Debug, Clone)]
pub struct QuantizedActivations {
    pub tokens: usize,
    pub cols: usize,
    pub(super) qs: Vec<i8>,
    /// Scale of each block.
    pub(super) d: Vec<f32>,
    /// `d · Σ q` of each block: what a weight block's constant term (its
    /// `m`) multiplies.
    pub(super) s: Vec<f32>,
    /// `Σ q` of each block: q4_0's constant term (`m = −8·d`) folds into
    /// the integer sum as `−8 · Σ q`, and 8-bit weights' offset as
    /// `−128 · Σ q`.
    pub(super) sum: Vec<i32>,
    /// `Σ q` of each half (16 elements) of each block, for weights with a
    /// scale per 16.
    pub(super) half_sum: Vec<i32>,
}

impl QuantizedActivations {
    /// Quantizes `x`, `tokens` rows of `cols` values (`cols` a multiple of
    /// 32, which every weight type here requires of its rows). A prompt's
    /// tokens are split among the run's pool: quantizing them was 8 % of
    /// the calling thread's samples in a 2-thread prefill, while the other
    /// thread waited (`perf` by thread, the 135M shape at q4_0). Every
    /// block is quantized alone, so the split changes no value.
    pub fn quantize(x: &[f32], tokens: usize, cols: usize) -> Self {
        let threads = rayon::current_num_threads();
        if threads < 2 || tokens < 2 || x.len() < PARALLEL_MIN_VALUES {
            return Self::quantize_tokens(x, tokens, cols);
        }
        // A few tasks per thread: a pool thread woken late still finds some.
        let per_task = tokens.div_ceil(threads * 4);
        let parts: Vec<Self> = x
            .par_chunks(per_task * cols)
            .map(|part| Self::quantize_tokens(part, part.len() / cols, cols))
            .collect();
        let mut all = Self {
            tokens,
            cols,
            qs: Vec::with_capacity(tokens * cols),
            d: Vec::with_capacity(tokens * cols / BLOCK),
            s: Vec::with_capacity(tokens * cols / BLOCK),
            sum: Vec::with_capacity(tokens * cols / BLOCK),
            half_sum: Vec::with_capacity(2 * tokens * cols / BLOCK),
        };
        for part in parts {
            all.qs.extend(part.qs);
            all.d.extend(part.d);
            all.s.extend(part.s);
            all.sum.extend(part.sum);
            all.half_sum.extend(part.half_sum);
        }
        all
    }

    /// [`quantize`](Self::quantize) on the calling thread.
    fn quantize_tokens(x: &[f32], tokens: usize, cols: usize) -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA are present. The same code, compiled
            // with them: `round` becomes an exact vector sequence instead
            // of a libm call per value, with the same results.
            return unsafe { Self::quantize_avx2(x, tokens, cols) };
        }
        Self::quantize_portable(x, tokens, cols)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn quantize_avx2(x: &[f32], tokens: usize, cols: usize) -> Self {
        Self::quantize_portable(x, tokens, cols)
    }

    #[inline(always)]
    fn quantize_portable(x: &[f32], tokens: usize, cols: usize) -> Self {
        debug_assert_eq!(x.len(), tokens * cols);
        debug_assert!(cols.is_multiple_of(BLOCK));
        let blocks = tokens * cols / BLOCK;
        let mut qs = vec![0i8; tokens * cols];
        let mut d = Vec::with_capacity(blocks);
        let mut s = Vec::with_capacity(blocks);
        let mut sums = Vec::with_capacity(blocks);
        let mut half_sums = Vec::with_capacity(2 * blocks);
        for (values, quants) in x.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)) {
            // Selects and bit casts instead of `f32::max`, `round` and
            // `as i8`, whose NaN and saturation rules keep the compiler
            // from vectorising the block (GGML's AVX2 path rounds the same
            // way: to nearest, ties to even).
            let amax = values.iter().fold(0f32, |a, v| {
                let v = v.abs();
                if v > a { v } else { a }
            });
            let scale = amax / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            // Adding 1.5 · 2²³ rounds to an integer held in the low bits.
            const ROUND: f32 = 12_582_912.0;
            let mut sum = 0i32;
            for (q, v) in quants.iter_mut().zip(values) {
                // |v · inverse| ≤ 127 up to rounding; the clamp keeps a
                // non-finite input from wrapping (NaN becomes 0).
                let scaled = v * inverse;
                let clamped = if scaled > 127.0 {
                    127.0
                } else if scaled < -127.0 {
                    -127.0
                } else if !scaled.is_nan() {
                    scaled
                } else {
                    0.0
                };
                let r = (clamped + ROUND).to_bits().wrapping_sub(ROUND.to_bits()) as i8;
                *q = r;
                sum += i32::from(r);
            }
            d.push(scale);
            s.push(scale * sum as f32);
            let first: i32 = quants[..BLOCK / 2].iter().map(|&q| i32::from(q)).sum();
            half_sums.extend([first, sum - first]);
            sums.push(sum);
        }
        Self {
            tokens,
            cols,
            qs,
            d,
            s,
            sum: sums,
            half_sum: half_sums,
        }
    }

    /// Token `t`'s values as the kernels see them (quants × scales).
    pub fn dequantize_token(&self, t: usize) -> Vec<f32> {
        let row = &self.qs[t * self.cols..(t + 1) * self.cols];
        let scales = &self.d[t * self.cols / BLOCK..];
        row.iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * scales[i / BLOCK])
            .collect()
    }

    pub(super) fn token(&self, t: usize) -> TokenRef<'_> {
        let nb = self.cols / BLOCK;
        TokenRef {
            qs: &self.qs[t * self.cols..(t + 1) * self.cols],
            d: &self.d[t * nb..(t + 1) * nb],
            s: &self.s[t * nb..(t + 1) * nb],
            sum: &self.sum[t * nb..(t + 1) * nb],
            half_sum: &self.half_sum[2 * t * nb..2 * (t + 1) * nb],
        }
    }
}

/// One token's quantized activations.
#[derive(Clone, Copy)]
pub(super) struct TokenRef<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub sum: &'a [i32],
    pub half_sum: &'a [i32],
}
