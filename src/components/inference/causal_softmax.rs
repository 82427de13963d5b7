//! The attention's scale, causal mask and softmax in one pass over the
//! scores, on the CPU.
//!
//! candle's path takes four passes over a prompt² score matrix (divide by
//! √d, build the mask's broadcast, `where_cond`, softmax) and evaluates
//! `exp` on the masked half too, one scalar libm call per element. Here a
//! row reads its scores once for the maximum and once for the
//! exponentials, only up to its causal limit, with an exponential that the
//! compiler vectorises; the masked tail is written as zeros. No crate does
//! this for candle's CPU tensors, hence the custom op.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, bail};
use rayon::prelude::*;

/// `softmax(scale · scores)` over each row's first `index_pos + i + 1`
/// keys, where `i` is the row's query position (rows are `seq_len` query
/// positions repeated over batch and heads); later keys get 0.
#[derive(Debug, Clone, Copy)]
pub struct CausalSoftmax {
    pub seq_len: usize,
    pub index_pos: usize,
    pub scale: f32,
}

/// Rows per rayon task: enough work per task that a decode step's few
/// short rows do not pay for splitting.
const MIN_ROWS_PER_TASK: usize = 16;

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!("causal softmax: f32 scores only, got {:?}", storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("causal softmax: the scores must be contiguous")
        };
        let kv_len = layout.dims().last().copied().unwrap_or(0);
        if kv_len == 0 || self.seq_len == 0 {
            bail!("causal softmax: empty rows")
        }
        let scores = &data[start..end];
        let mut out = vec![0f32; scores.len()];
        let row = row_kernel();
        out.par_chunks_mut(kv_len)
            .zip(scores.par_chunks(kv_len))
            .enumerate()
            .with_min_len(MIN_ROWS_PER_TASK)
            .for_each(|(r, (out, scores))| {
                let visible = (self.index_pos + r % self.seq_len + 1).min(kv_len);
                row(&scores[..visible], &mut out[..visible], self.scale);
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

type RowKernel = fn(&[f32], &mut [f32], f32);

/// The widest variant this CPU runs (the same arithmetic in each; only the
/// vector width the compiler may use differs).
fn row_kernel() -> RowKernel {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return |x, out, scale| {
            // SAFETY: the features were detected just above.
            unsafe { softmax_row_avx2(x, out, scale) }
        };
    }
    softmax_row
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_row_avx2(x: &[f32], out: &mut [f32], scale: f32) {
    softmax_row(x, out, scale);
}

/// Lanes of the reductions: independent accumulators (four vector
/// registers' worth), so that neither the maximum nor the sum waits on
/// one dependency chain.
const LANES: usize = 32;

/// `f` over `x` in [`LANES`] independent lanes, then over the lanes.
#[inline(always)]
fn reduce(x: &[f32], start: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [start; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = f(*lane, v);
        }
    }
    tail.iter().chain(&lanes).fold(start, |a, &v| f(a, v))
}

#[inline(always)]
fn softmax_row(x: &[f32], out: &mut [f32], scale: f32) {
    let max = reduce(x, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    // A plain map, which the compiler vectorises at full width; the sum
    // then reads the row back from L1.
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp((v - max) * scale);
    }
    let inverse = 1.0 / reduce(out, 0.0, |s, v| s + v);
    for o in out.iter_mut() {
        *o *= inverse;
    }
}

/// `eˣ` for x ≤ 0 without a branch, so that loops over it vectorise:
/// Cephes' `expf` (range reduction by ln 2 in two parts, a degree-6
/// polynomial on |r| ≤ ln 2 / 2), within 2 ulp of the true value; below
/// −87.3 (where f32 stops being normal) it is 0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // Selects and bit casts rather than `f32::max` and `as i32`, whose NaN
    // and saturation rules keep the compiler from vectorising the loop.
    let clamped = if x > -87.3 { x } else { -87.3 };
    let shifted = clamped * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The low bits of `shifted` hold n (two's complement), so 2ⁿ is an
    // integer add and shift of them.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p.mul_add(r, 1.398_2e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let y = p.mul_add(r * r, r) + 1.0;
    let pow2 = f32::from_bits(n_bits.wrapping_add(127) << 23);
    let e = y * pow2;
    if x < -87.3 { 0.0 } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn the_exponential_is_within_two_ulp_of_libm() {
        let mut x = 0.0f32;
        while x > -87.0 {
            let (ours, libm) = (exp(x), x.exp());
            let ulp = (libm.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}): {ours} against {libm}, {ulp} ulp");
            x -= 0.013_7;
        }
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    /// The op equals candle's four steps (scale, causal mask, softmax) on
    /// rows of every tail length, for a prompt and for a continuation.
    #[test]
    fn equals_scale_mask_and_softmax() {
        let device = Device::Cpu;
        for (seq_len, index_pos, kv_len) in [(5, 0, 5), (19, 0, 19), (3, 14, 17), (1, 30, 31)] {
            let (heads, scale) = (3usize, 0.125f32);
            let n = heads * seq_len * kv_len;
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let scores = Tensor::from_vec(values, (1, heads, seq_len, kv_len), &device).unwrap();
            let ours = scores
                .apply_op1_no_bwd(&CausalSoftmax {
                    seq_len,
                    index_pos,
                    scale,
                })
                .unwrap();
            let mask: Vec<u8> = (0..seq_len)
                .flat_map(|i| (0..kv_len).map(move |j| u8::from(j > index_pos + i)))
                .collect();
            let mask = Tensor::from_vec(mask, (seq_len, kv_len), &device)
                .unwrap()
                .broadcast_as(scores.shape())
                .unwrap();
            let neg_inf = Tensor::new(f32::NEG_INFINITY, &device)
                .unwrap()
                .broadcast_as(scores.shape())
                .unwrap();
            let scaled = (scores * f64::from(scale)).unwrap();
            let masked = mask.where_cond(&neg_inf, &scaled).unwrap();
            let theirs = candle_nn::ops::softmax_last_dim(&masked).unwrap();
            let difference = (ours - theirs)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                difference < 1e-6,
                "{seq_len} × {kv_len} at {index_pos}: {difference}"
            );
        }
    }

    #[test]
    fn the_portable_and_vector_rows_agree() {
        let x: Vec<f32> = (0..77).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let mut a = vec![0f32; x.len()];
        let mut b = vec![0f32; x.len()];
        softmax_row(&x, &mut a, 0.3);
        row_kernel()(&x, &mut b, 0.3);
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-7 * a.abs().max(1e-30), "{a} {b}");
        }
    }
}
