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
use super::pack::{BLOCK, INTERLEAVE, PackedBody};

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
    /// AVX2 + FMA: `vpmaddubsw` and `vpmaddwd`.
    Avx2,
    /// AVX-512 VNNI (`vpdpbusd`) on 512-bit registers, two rows each.
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

/// `out[r · n + t] = row(4·group + r) · tokens[t]` for the group's
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

    fn idot(a: &[i8], b: &[i8]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum()
    }

    pub(super) fn dot(rows: RowGroup<'_>, tokens: &[TokenRef<'_>], out: &mut [f32]) {
        let (nb, n) = (rows.cols / BLOCK, tokens.len());
        for r in 0..INTERLEAVE {
            // Index of (row r, block b) among the interleaved blocks.
            let at = |b: usize| (rows.group * nb + b) * INTERLEAVE + r;
            for (t, token) in tokens.iter().enumerate() {
                let mut acc = 0f32;
                let mut constant = 0f32;
                for b in 0..nb {
                    let (i, a) = (at(b), &token.qs[b * BLOCK..][..BLOCK]);
                    match rows.body {
                        PackedBody::Q8 { qs, d } => {
                            acc += d[i] * token.d[b] * idot(&qs[i * BLOCK..][..BLOCK], a) as f32;
                        }
                        PackedBody::Q4 { qs, d, m } => {
                            let bytes = &qs[i * 16..][..16];
                            let sum: i32 = (0..16)
                                .map(|j| {
                                    i32::from(bytes[j] & 0xF) * i32::from(a[j])
                                        + i32::from(bytes[j] >> 4) * i32::from(a[j + 16])
                                })
                                .sum();
                            acc += d[i] * token.d[b] * sum as f32;
                            let min = m.as_ref().map_or(-8.0 * d[i], |m| m[i]);
                            constant += min * token.s[b];
                        }
                        PackedBody::Q8x16 { qs, s } => {
                            let w = &qs[i * BLOCK..][..BLOCK];
                            let lo = idot(&w[..16], &a[..16]) as f32 * s[2 * i];
                            let hi = idot(&w[16..], &a[16..]) as f32 * s[2 * i + 1];
                            acc += token.d[b] * (lo + hi);
                        }
                    }
                }
                out[r * n + t] = acc + constant;
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

/// A 256-bit variant, written once for any 32-lane unsigned × signed byte
/// dot product into eight i32 lanes (`$udot`): AVX2's today, and an
/// AVX-VNNI one would be a second line.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_variant {
    ($name:ident, $features:literal, $udot:ident) => {
        mod $name {
            use super::*;
            use core::arch::x86_64::*;

            #[inline]
            #[target_feature(enable = $features)]
            fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                _mm_cvtss_f32(s)
            }

            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn load32(p: *const i8) -> __m256i {
                // SAFETY: the caller passes 32 readable bytes.
                unsafe { _mm256_loadu_si256(p.cast()) }
            }

            /// The group's 4 rows × N tokens of q8_0 (or, with `HALVES`,
            /// q6_K's one scale per 16: `d` then holds two per block).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn q8<const N: usize, const HALVES: bool>(
                qs: &[i8],
                d: &[f32],
                nb: usize,
                group: usize,
                tokens: &[TokenRef<'_>],
                out: &mut [f32],
            ) {
                const R: usize = INTERLEAVE;
                let per_block = if HALVES { 2 } else { 1 };
                let mut acc = [[_mm256_setzero_ps(); N]; R];
                let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
                let d = &d[group * nb * R * per_block..][..nb * R * per_block];
                let a_at: [*const i8; N] =
                    core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
                let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
                for b in 0..nb {
                    // SAFETY: every token holds `nb` blocks, the group
                    // `nb · R`.
                    let a: [__m256i; N] =
                        core::array::from_fn(|t| unsafe { load32(a_at[t].add(b * BLOCK)) });
                    for r in 0..R {
                        let i = b * R + r;
                        let w = unsafe { load32(w.add(i * BLOCK)) };
                        let magnitude = _mm256_sign_epi8(w, w);
                        // Lanes 0–3 sum elements 0–15, lanes 4–7 the rest.
                        let scale = if HALVES {
                            _mm256_set_m128(_mm_set1_ps(d[2 * i + 1]), _mm_set1_ps(d[2 * i]))
                        } else {
                            _mm256_set1_ps(d[i])
                        };
                        for t in 0..N {
                            let p = $udot(magnitude, _mm256_sign_epi8(a[t], w));
                            let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[r][t]);
                        }
                    }
                }
                for r in 0..R {
                    for t in 0..N {
                        out[r * N + t] = hsum(acc[r][t]);
                    }
                }
            }

            /// The group's 4 rows × N tokens of the 4-bit layout
            /// (`w = d·q + m`).
            #[inline]
            #[target_feature(enable = $features)]
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
                let low = _mm_set1_epi8(0xF);
                let mut acc = [[_mm256_setzero_ps(); N]; R];
                let mut constant = [[0f32; N]; R];
                let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
                let d = &d[group * nb * R..][..nb * R];
                let m = m.map(|m| &m[group * nb * R..][..nb * R]);
                let a_at: [*const i8; N] =
                    core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
                let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
                let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
                for b in 0..nb {
                    // SAFETY: every token holds `nb` blocks of 32 bytes,
                    // the group `nb · R` of 16.
                    let a: [__m256i; N] =
                        core::array::from_fn(|t| unsafe { load32(a_at[t].add(b * BLOCK)) });
                    for r in 0..R {
                        let i = b * R + r;
                        let raw = unsafe { _mm_loadu_si128(w.add(i * 16).cast()) };
                        let q = _mm256_set_m128i(
                            _mm_and_si128(_mm_srli_epi16(raw, 4), low),
                            _mm_and_si128(raw, low),
                        );
                        let min = m.map_or(-8.0 * d[i], |m| m[i]);
                        let scale = _mm256_set1_ps(d[i]);
                        for t in 0..N {
                            let p = $udot(q, a[t]);
                            let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), f, acc[r][t]);
                            constant[r][t] += min * asum[t][b];
                        }
                    }
                }
                for r in 0..R {
                    for t in 0..N {
                        out[r * N + t] = hsum(acc[r][t]) + constant[r][t];
                    }
                }
            }

            shape_dispatch!($features);
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
fn udot_avx2(
    u: core::arch::x86_64::__m256i,
    s: core::arch::x86_64::__m256i,
) -> core::arch::x86_64::__m256i {
    use core::arch::x86_64::*;
    // |u| ≤ 128 and |s| ≤ 127: a pair sums to at most 32 512, inside i16.
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// AVX-512 VNNI on 512-bit registers: the 4 rows of a group as two pairs,
/// each pair's blocks in one register (contiguous in the interleaved
/// layout), against the token's block broadcast to both halves.
#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::*;
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// The two rows' sums of a pair's register: row 2p in lanes 0–7.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    fn halves(v: __m512) -> (f32, f32) {
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        (hsum256(_mm512_castps512_ps256(v)), hsum256(high))
    }

    /// A pair's scales spread over its lanes: one per row (lanes 0–7 and
    /// 8–15), or with `HALVES` one per 16 elements (4 lanes each).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn pair_scales<const HALVES: bool>(d: *const f32) -> __m512 {
        // SAFETY: the caller passes 2 (4 with HALVES) readable floats.
        unsafe {
            if HALVES {
                let v = _mm512_castps128_ps512(_mm_loadu_ps(d));
                _mm512_permutexvar_ps(
                    _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                    v,
                )
            } else {
                let v = _mm512_castps128_ps512(_mm_castpd_ps(_mm_load_sd(d.cast())));
                _mm512_permutexvar_ps(
                    _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                    v,
                )
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn broadcast_block(p: *const i8) -> __m512i {
        // SAFETY: the caller passes 32 readable bytes.
        unsafe { _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast())) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q8<const N: usize, const HALVES: bool>(
        qs: &[i8],
        d: &[f32],
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let per_block = if HALVES { 2 } else { 1 };
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); N]; R / 2];
        let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
        let d = d[group * nb * R * per_block..][..nb * R * per_block].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        for b in 0..nb {
            // SAFETY: every token holds `nb` blocks of 32 bytes, the group
            // `nb · R` blocks and their scales.
            let a: [__m512i; N] =
                core::array::from_fn(|t| unsafe { broadcast_block(a_at[t].add(b * BLOCK)) });
            for (p, acc) in acc.iter_mut().enumerate() {
                let i = b * R + 2 * p;
                let w = unsafe { _mm512_loadu_si512(w.add(i * BLOCK).cast()) };
                let magnitude = _mm512_abs_epi8(w);
                let negative = _mm512_movepi8_mask(w);
                let scale = unsafe { pair_scales::<HALVES>(d.add(i * per_block)) };
                for t in 0..N {
                    let signed = _mm512_mask_sub_epi8(a[t], negative, zero, a[t]);
                    let sums = _mm512_dpbusd_epi32(zero, magnitude, signed);
                    let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), f, acc[t]);
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for t in 0..N {
                let (first, second) = halves(acc[t]);
                out[2 * p * N + t] = first;
                out[(2 * p + 1) * N + t] = second;
            }
        }
    }

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
        let zero = _mm512_setzero_si512();
        let low = _mm512_set1_epi8(0xF);
        // 64-bit lanes of (low nibbles, high nibbles) into each pair's
        // [row low, row high, next row low, next row high].
        let pair_lanes = [
            _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11),
            _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15),
        ];
        let mut acc = [[_mm512_setzero_ps(); N]; R / 2];
        let mut constant = [[0f32; N]; R];
        let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let d = &d[group * nb * R..][..nb * R];
        let m = m.map(|m| &m[group * nb * R..][..nb * R]);
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // SAFETY: every token holds `nb` blocks of 32 bytes, the group
            // `nb` steps of 4 rows × 16 bytes and their scales.
            let a: [__m512i; N] =
                core::array::from_fn(|t| unsafe { broadcast_block(a_at[t].add(b * BLOCK)) });
            let raw = unsafe { _mm512_loadu_si512(w.add(b * R * 16).cast()) };
            let lo = _mm512_and_si512(raw, low);
            let hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low);
            for (p, acc) in acc.iter_mut().enumerate() {
                let i = b * R + 2 * p;
                let q = _mm512_permutex2var_epi64(lo, pair_lanes[p], hi);
                let scale = unsafe { pair_scales::<false>(d.as_ptr().add(i)) };
                for t in 0..N {
                    // q4_0 (`w = d·(q − 8)`): the −8·Σa of each row starts
                    // its integer sum, in one lane of each half.
                    let start = if m.is_none() {
                        _mm512_maskz_set1_epi32(0x0101, -8 * isum[t][b])
                    } else {
                        zero
                    };
                    let sums = _mm512_dpbusd_epi32(start, q, a[t]);
                    let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), f, acc[t]);
                }
            }
            if let Some(m) = m {
                for r in 0..R {
                    let min = m[b * R + r];
                    for t in 0..N {
                        constant[r][t] += min * asum[t][b];
                    }
                }
            }
        }
        for (p, acc) in acc.iter().enumerate() {
            for t in 0..N {
                let (first, second) = halves(acc[t]);
                out[2 * p * N + t] = first + constant[2 * p][t];
                out[(2 * p + 1) * N + t] = second + constant[2 * p + 1][t];
            }
        }
    }

    shape_dispatch!("avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma");
}

#[cfg(target_arch = "x86_64")]
x86_variant!(avx2, "avx2,fma", udot_avx2);
