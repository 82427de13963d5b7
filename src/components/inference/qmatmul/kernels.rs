//! Dot products of one packed weight row with up to [`TILE`] quantized
//! tokens, in three instruction sets chosen at run time. Every variant
//! computes each block's integer dot product exactly; they differ only in
//! the order their f32 sums are added in.
//!
//! Written by hand because no maintained crate offers int8 dot products over
//! GGML's block formats with run-time dispatch (candle's own kernels
//! re-quantize activations per call, and its repacked tiles need rows of
//! whole 256-element super-blocks).

// The kernels walk blocks, rows and tokens in lockstep over several
// arrays by index; iterators over one of them would hide the others.
#![allow(clippy::needless_range_loop)]

use super::activations::TokenRef;
use super::pack::{BLOCK, INTERLEAVE, PackedBody, Q8_OFFSET, STEP};

/// Tokens one call handles: each weight block is loaded once and used
/// this many times.
pub const TILE: usize = 4;

/// One group of [`INTERLEAVE`] rows of a packed matrix, `cols` wide.
#[derive(Clone, Copy)]
pub(super) struct RowGroup<'a> {
    pub body: &'a PackedBody,
    pub cols: usize,
    pub group: usize,
}

/// An instruction set the kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust: any CPU, and the reference every other variant is
    /// tested against.
    Portable,
    /// AVX2 + FMA: `vpmaddubsw` and `vpmaddwd`, 8 rows per register.
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`), 16 rows per register.
    Avx512Vnni,
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni];

    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512vnni",
        }
    }

    /// Whether this CPU can run it.
    pub fn supported(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => {
                Self::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest variant this CPU runs, detected once.
    pub fn best() -> Self {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            Self::ALL
                .into_iter()
                .rev()
                .find(|isa| isa.supported())
                .unwrap_or(Self::Portable)
        })
    }
}

/// `out[r · n + t] = row(16·group + r) · tokens[t]` for the group's
/// [`INTERLEAVE`] rows and `n = tokens.len() ≤ TILE` tokens. The caller
/// checked that `isa` is supported and that every slice holds whole rows.
pub(super) fn dot(isa: Isa, rows: RowGroup<'_>, tokens: &[TokenRef<'_>], out: &mut [f32]) {
    debug_assert!(tokens.len() <= TILE);
    debug_assert_eq!(out.len(), INTERLEAVE * tokens.len());
    match isa {
        Isa::Portable => portable::dot(rows, tokens, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supported()` was checked for this variant by the caller.
        Isa::Avx2 => unsafe { avx2::dot(rows, tokens, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512Vnni => unsafe { vnni::dot(rows, tokens, out) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => portable::dot(rows, tokens, out),
    }
}

mod portable {
    use super::*;

    /// `Σ (q − offset) · a` over one block's steps for each of the
    /// group's rows, with `quant(byte, k)` the k-th value a byte holds:
    /// the loops of the vector kernels, in a shape the compiler
    /// vectorises for any CPU.
    #[inline(always)]
    fn block_sums<const VALUES: usize>(
        w: &[u8],
        a: &[i8],
        first_element: impl Fn(usize) -> [usize; VALUES],
        quant: impl Fn(u8) -> [i32; VALUES],
    ) -> [i32; INTERLEAVE] {
        let mut sums = [0i32; INTERLEAVE];
        for (step, w) in w.chunks_exact(INTERLEAVE * STEP).enumerate() {
            let starts = first_element(step);
            for (r, bytes) in w.chunks_exact(STEP).enumerate() {
                for (k, &byte) in bytes.iter().enumerate() {
                    let q = quant(byte);
                    for v in 0..VALUES {
                        sums[r] += q[v] * i32::from(a[starts[v] + k]);
                    }
                }
            }
        }
        sums
    }

    pub(super) fn dot(rows: RowGroup<'_>, tokens: &[TokenRef<'_>], out: &mut [f32]) {
        let (nb, n, g) = (rows.cols / BLOCK, tokens.len(), rows.group);
        // The offset comes out of the sum as `−128 · Σ a`, as in the vector
        // kernels.
        let q8 = |byte: u8| [i32::from(byte)];
        for (t, token) in tokens.iter().enumerate() {
            let mut acc = [0f32; INTERLEAVE];
            for b in 0..nb {
                let a = &token.qs[b * BLOCK..][..BLOCK];
                let at = (g * nb + b) * INTERLEAVE;
                match rows.body {
                    PackedBody::Q8 { qs, d } => {
                        let w = &qs[at * BLOCK..][..INTERLEAVE * BLOCK];
                        let sums = block_sums(w, a, |step| [step * STEP], q8);
                        let offset = Q8_OFFSET * token.sum[b];
                        for r in 0..INTERLEAVE {
                            acc[r] += d[at + r] * token.d[b] * (sums[r] - offset) as f32;
                        }
                    }
                    PackedBody::Q8x16 { qs, s } => {
                        let w = &qs[at * BLOCK..][..INTERLEAVE * BLOCK];
                        // The steps of each half of the block's elements.
                        let half = INTERLEAVE * BLOCK / 2;
                        let lo = block_sums(&w[..half], a, |step| [step * STEP], q8);
                        let hi = block_sums(&w[half..], a, |step| [16 + step * STEP], q8);
                        let scales = &s[2 * at..][..2 * INTERLEAVE];
                        let offset = [0, 1].map(|k| Q8_OFFSET * token.half_sum[2 * b + k]);
                        for r in 0..INTERLEAVE {
                            let sum = (lo[r] - offset[0]) as f32 * scales[r]
                                + (hi[r] - offset[1]) as f32 * scales[INTERLEAVE + r];
                            acc[r] += token.d[b] * sum;
                        }
                    }
                    PackedBody::Q4 { qs, d, m } => {
                        let w = &qs[at * BLOCK / 2..][..INTERLEAVE * BLOCK / 2];
                        let sums = block_sums(
                            w,
                            a,
                            |step| [step * STEP, 16 + step * STEP],
                            |byte| [i32::from(byte & 0xF), i32::from(byte >> 4)],
                        );
                        for r in 0..INTERLEAVE {
                            let min = m.as_ref().map_or(-8.0 * d[at + r], |m| m[at + r]);
                            acc[r] += d[at + r] * token.d[b] * sums[r] as f32 + min * token.s[b];
                        }
                    }
                }
            }
            for (r, v) in acc.into_iter().enumerate() {
                out[r * n + t] = v;
            }
        }
    }
}

/// A variant's entry point: the tile of `tokens.len()` tokens, for the
/// layout of `rows`, calling the variant's own `q8` and `q4` (the same in
/// every variant but for its target features).
#[cfg(target_arch = "x86_64")]
macro_rules! shape_dispatch {
    ($features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn shaped<const N: usize>(
            rows: RowGroup<'_>,
            tokens: &[TokenRef<'_>],
            out: &mut [f32],
        ) {
            let (nb, g) = (rows.cols / BLOCK, rows.group);
            // SAFETY: same features; shapes checked by the callers.
            unsafe {
                match rows.body {
                    PackedBody::Q8 { qs, d } => q8::<N, false>(qs, d, nb, g, tokens, out),
                    PackedBody::Q8x16 { qs, s } => q8::<N, true>(qs, s, nb, g, tokens, out),
                    PackedBody::Q4 { qs, d, m } => q4::<N>(qs, d, m.as_deref(), nb, g, tokens, out),
                }
            }
        }

        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot(rows: RowGroup<'_>, tokens: &[TokenRef<'_>], out: &mut [f32]) {
            // SAFETY: same features, and the tile's width is the tokens'.
            unsafe {
                match tokens.len() {
                    1 => shaped::<1>(rows, tokens, out),
                    2 => shaped::<2>(rows, tokens, out),
                    3 => shaped::<3>(rows, tokens, out),
                    _ => shaped::<4>(rows, tokens, out),
                }
            }
        }
    };
}

/// The 4 activation bytes at `p` in every 32-bit lane.
#[cfg(target_arch = "x86_64")]
#[inline]
fn step_bytes(p: *const i8) -> i32 {
    // SAFETY: callers pass a pointer with 4 readable bytes.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// AVX2: the group's 16 rows as two registers of 8, each lane one row.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use core::arch::x86_64::*;

    /// Lanes of unsigned × signed 4-byte dot products (each pair sum
    /// stays inside i16: the callers keep `|u| ≤ 128` or `u ≤ 15`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn udot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: the caller passes 32 readable bytes.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    /// The group's rows × N tokens of q8_0 (or, with `HALVES`, q6_K's one
    /// scale per 16). `vpmaddubsw` would saturate on offset quants, so
    /// they go back to signed and the sign moves onto the activations.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q8<const N: usize, const HALVES: bool>(
        qs: &[u8],
        d: &[f32],
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let per_block = if HALVES { 2 } else { 1 };
        let flip = _mm256_set1_epi8(-128);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
        let d = d[group * nb * R * per_block..][..nb * R * per_block].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        for b in 0..nb {
            // Per token and half of the rows: the sums of the block's two
            // halves of elements.
            let mut sums = [[[_mm256_setzero_si256(); 2]; 2]; N];
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * BLOCK), R * BLOCK, d.add(b * R * per_block))
                };
            }
            for step in 0..BLOCK / STEP {
                for h in 0..2 {
                    // SAFETY: the group holds `nb` blocks of R × 32 bytes.
                    let raw = unsafe { load(w.add(((b * 8 + step) * R + 8 * h) * STEP)) };
                    let signed = _mm256_xor_si256(raw, flip);
                    let magnitude = _mm256_sign_epi8(signed, signed);
                    for t in 0..N {
                        // SAFETY: every token holds `nb` blocks of 32 bytes.
                        let a = _mm256_set1_epi32(step_bytes(unsafe {
                            a_at[t].add(b * BLOCK + step * STEP)
                        }));
                        let p = udot(magnitude, _mm256_sign_epi8(a, signed));
                        let k = step * STEP / 16;
                        sums[t][h][k] = _mm256_add_epi32(sums[t][h][k], p);
                    }
                }
            }
            for h in 0..2 {
                // SAFETY: `nb · R` scales (two per block with HALVES).
                let scale =
                    |k: usize| unsafe { _mm256_loadu_ps(d.add((b * per_block + k) * R + 8 * h)) };
                for t in 0..N {
                    let f = _mm256_set1_ps(ad[t][b]);
                    if HALVES {
                        for k in 0..2 {
                            let sk = _mm256_mul_ps(scale(k), f);
                            acc[t][h] =
                                _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][h][k]), sk, acc[t][h]);
                        }
                    } else {
                        let sum = _mm256_add_epi32(sums[t][h][0], sums[t][h][1]);
                        acc[t][h] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(sum),
                            _mm256_mul_ps(scale(0), f),
                            acc[t][h],
                        );
                    }
                }
            }
        }
        store(&acc, out);
    }

    /// The group's rows × N tokens of the 4-bit layout (`w = d·q + m`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q4<const N: usize>(
        qs: &[u8],
        d: &[f32],
        m: Option<&[f32]>,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let low = _mm256_set1_epi8(0xF);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let d = d[group * nb * R..][..nb * R].as_ptr();
        let m = m.map(|m| m[group * nb * R..][..nb * R].as_ptr());
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // q4_0 (`w = d·(q − 8)`): every lane's sum starts at −8·Σa.
            let start: [__m256i; N] = core::array::from_fn(|t| {
                _mm256_set1_epi32(if m.is_none() { -8 * isum[t][b] } else { 0 })
            });
            let mut sums = [[_mm256_setzero_si256(); 2]; N];
            for t in 0..N {
                sums[t] = [start[t]; 2];
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe { prefetch_ahead(w.add(b * R * 16), R * 16, d.add(b * R)) };
            }
            for step in 0..BLOCK / 2 / STEP {
                for h in 0..2 {
                    // SAFETY: the group holds `nb` blocks of R × 16 bytes.
                    let raw = unsafe { load(w.add(((b * 4 + step) * R + 8 * h) * STEP)) };
                    let lo = _mm256_and_si256(raw, low);
                    let hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
                    for t in 0..N {
                        // SAFETY: every token holds `nb` blocks of 32 bytes.
                        let (a_lo, a_hi) = unsafe {
                            let p = a_at[t].add(b * BLOCK + step * STEP);
                            (
                                _mm256_set1_epi32(step_bytes(p)),
                                _mm256_set1_epi32(step_bytes(p.add(16))),
                            )
                        };
                        let p = _mm256_add_epi32(udot(lo, a_lo), udot(hi, a_hi));
                        sums[t][h] = _mm256_add_epi32(sums[t][h], p);
                    }
                }
            }
            for h in 0..2 {
                // SAFETY: `nb · R` scales and constants.
                let scale = unsafe { _mm256_loadu_ps(d.add(b * R + 8 * h)) };
                let min = m.map(|m| unsafe { _mm256_loadu_ps(m.add(b * R + 8 * h)) });
                for t in 0..N {
                    let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                    acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][h]), f, acc[t][h]);
                    if let Some(min) = min {
                        acc[t][h] = _mm256_fmadd_ps(min, _mm256_set1_ps(asum[t][b]), acc[t][h]);
                    }
                }
            }
        }
        store(&acc, out);
    }

    /// Lane r of token t's registers into `out[r · N + t]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store<const N: usize>(acc: &[[__m256; 2]; N], out: &mut [f32]) {
        for (t, halves) in acc.iter().enumerate() {
            let mut lanes = [0f32; INTERLEAVE];
            // SAFETY: 16 floats of room.
            unsafe {
                _mm256_storeu_ps(lanes.as_mut_ptr(), halves[0]);
                _mm256_storeu_ps(lanes.as_mut_ptr().add(8), halves[1]);
            }
            for (r, v) in lanes.into_iter().enumerate() {
                out[r * N + t] = v;
            }
        }
    }

    shape_dispatch!("avx2,fma");
}

/// How far ahead of the quants a decode step asks for them: about 4 µs
/// of streaming, longer than a DRAM round trip.
///
/// Why: decode is one pass over every weight, and a core keeps only ~24
/// misses of its L1 in flight: at ~100 ns each that caps a stream at
/// ~15 GB/s, which is where the kernels stayed (the hardware prefetcher
/// does not run far enough ahead). Prefetching into L2 (`T1`), whose miss
/// queue is deeper, brought the 135M shape's q8_0 decode from 12–16 to
/// 17–19 GB/s (`examples/`-style probe, 1 thread, against 25–27 GB/s for
/// a plain read of the same buffers).
#[cfg(target_arch = "x86_64")]
const PREFETCH_BYTES: usize = 16 << 10;

/// Asks for the cache lines `PREFETCH_BYTES` past `quants` (one block of
/// `block_bytes`) and the scales as far past `scales`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_ahead(quants: *const u8, block_bytes: usize, scales: *const f32) {
    use core::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    let ahead = quants.wrapping_add(PREFETCH_BYTES);
    for line in (0..block_bytes).step_by(64) {
        // SAFETY: a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line).cast()) };
    }
    // The scales stream at 1/8 (q8) or 1/4 (q4) of the quants' pace: one
    // line per block reaches as far ahead.
    let scales_ahead = scales.cast::<u8>().wrapping_add(PREFETCH_BYTES / 4);
    // SAFETY: as above.
    unsafe { _mm_prefetch::<_MM_HINT_T1>(scales_ahead.cast()) };
}

/// AVX-512 VNNI: the group's 16 rows in one register, each lane one row.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::*;
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: the caller passes 64 readable bytes.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    /// The group's rows × N tokens of q8_0 (or, with `HALVES`, q6_K's one
    /// scale per 16). The quants carry [`Q8_OFFSET`], taken back out by
    /// starting each sum at `−128 · Σ a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q8<const N: usize, const HALVES: bool>(
        qs: &[u8],
        d: &[f32],
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let per_block = if HALVES { 2 } else { 1 };
        let mut acc = [_mm512_setzero_ps(); N];
        let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
        let d = d[group * nb * R * per_block..][..nb * R * per_block].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        let half: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].half_sum[..2 * nb]);
        for b in 0..nb {
            // Two chains per token (the block's two halves of elements),
            // which also hide `vpdpbusd`'s latency when N is 1.
            let mut sums: [[__m512i; 2]; N] = core::array::from_fn(|t| {
                if HALVES {
                    [0, 1].map(|k| _mm512_set1_epi32(-Q8_OFFSET * half[t][2 * b + k]))
                } else {
                    [
                        _mm512_set1_epi32(-Q8_OFFSET * isum[t][b]),
                        _mm512_setzero_si512(),
                    ]
                }
            });
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * BLOCK), R * BLOCK, d.add(b * R * per_block))
                };
            }
            for step in 0..BLOCK / STEP {
                // SAFETY: the group holds `nb` blocks of R × 32 bytes, every
                // token `nb` blocks of 32.
                let wv = unsafe { load(w.add((b * 8 + step) * R * STEP)) };
                for t in 0..N {
                    let a = _mm512_set1_epi32(step_bytes(unsafe {
                        a_at[t].add(b * BLOCK + step * STEP)
                    }));
                    let k = step * STEP / 16;
                    sums[t][k] = _mm512_dpbusd_epi32(sums[t][k], wv, a);
                }
            }
            // SAFETY: `nb · R` scales (two per block with HALVES).
            let scale = |k: usize| unsafe { _mm512_loadu_ps(d.add((b * per_block + k) * R)) };
            for t in 0..N {
                let f = _mm512_set1_ps(ad[t][b]);
                if HALVES {
                    for k in 0..2 {
                        let sk = _mm512_mul_ps(scale(k), f);
                        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[t][k]), sk, acc[t]);
                    }
                } else {
                    let sum = _mm512_add_epi32(sums[t][0], sums[t][1]);
                    acc[t] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(sum),
                        _mm512_mul_ps(scale(0), f),
                        acc[t],
                    );
                }
            }
        }
        store(&acc, out);
    }

    /// The group's rows × N tokens of the 4-bit layout (`w = d·q + m`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q4<const N: usize>(
        qs: &[u8],
        d: &[f32],
        m: Option<&[f32]>,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let low = _mm512_set1_epi8(0xF);
        let mut acc = [_mm512_setzero_ps(); N];
        let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let d = d[group * nb * R..][..nb * R].as_ptr();
        let m = m.map(|m| m[group * nb * R..][..nb * R].as_ptr());
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // q4_0 (`w = d·(q − 8)`): every lane's sum starts at −8·Σa.
            let mut sums: [[__m512i; 2]; N] = core::array::from_fn(|t| {
                let start = if m.is_none() { -8 * isum[t][b] } else { 0 };
                [_mm512_set1_epi32(start), _mm512_setzero_si512()]
            });
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe { prefetch_ahead(w.add(b * R * 16), R * 16, d.add(b * R)) };
            }
            for step in 0..BLOCK / 2 / STEP {
                // SAFETY: the group holds `nb` blocks of R × 16 bytes.
                let raw = unsafe { load(w.add((b * 4 + step) * R * STEP)) };
                let lo = _mm512_and_si512(raw, low);
                let hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
                for t in 0..N {
                    // SAFETY: every token holds `nb` blocks of 32 bytes.
                    let (a_lo, a_hi) = unsafe {
                        let p = a_at[t].add(b * BLOCK + step * STEP);
                        (
                            _mm512_set1_epi32(step_bytes(p)),
                            _mm512_set1_epi32(step_bytes(p.add(16))),
                        )
                    };
                    sums[t][0] = _mm512_dpbusd_epi32(sums[t][0], lo, a_lo);
                    sums[t][1] = _mm512_dpbusd_epi32(sums[t][1], hi, a_hi);
                }
            }
            // SAFETY: `nb · R` scales and constants.
            let scale = unsafe { _mm512_loadu_ps(d.add(b * R)) };
            let min = m.map(|m| unsafe { _mm512_loadu_ps(m.add(b * R)) });
            for t in 0..N {
                let sum = _mm512_add_epi32(sums[t][0], sums[t][1]);
                let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), f, acc[t]);
                if let Some(min) = min {
                    acc[t] = _mm512_fmadd_ps(min, _mm512_set1_ps(asum[t][b]), acc[t]);
                }
            }
        }
        store(&acc, out);
    }

    /// Lane r of token t's register into `out[r · N + t]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    fn store<const N: usize>(acc: &[__m512; N], out: &mut [f32]) {
        for (t, v) in acc.iter().enumerate() {
            let mut lanes = [0f32; INTERLEAVE];
            // SAFETY: 16 floats of room.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *v) };
            for (r, v) in lanes.into_iter().enumerate() {
                out[r * N + t] = v;
            }
        }
    }

    shape_dispatch!("avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma");
}
