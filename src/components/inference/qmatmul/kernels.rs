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
use super::pack::{
    BLOCK, BLOCKS_PER_SUPER, INTERLEAVE, PackedBody, Q6_OFFSET, Q8_OFFSET, STEP, Scales,
};

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

/// A layout's scales for one group, as the vector kernels read them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum ScalePtr {
    /// One f32 per unit (block, or half-block) and row.
    F32(*const f32),
    /// An i8 per unit and row, times an f32 per super-block and row.
    Super(*const i8, *const f32),
}

#[cfg(target_arch = "x86_64")]
impl ScalePtr {
    /// Group `group`'s part of `s`, with `units` scales per row (bounds
    /// checked here, once per call).
    fn of(s: &Scales, group: usize, units: usize, nb: usize) -> Self {
        const R: usize = INTERLEAVE;
        match s {
            Scales::F32(d) => Self::F32(d[group * units * R..][..units * R].as_ptr()),
            Scales::Super { q, d } => {
                let supers = nb / BLOCKS_PER_SUPER;
                Self::Super(
                    q[group * units * R..][..units * R].as_ptr(),
                    d[group * supers * R..][..supers * R].as_ptr(),
                )
            }
        }
    }

    /// Asks for the scales of the blocks a prefetch of the quants reaches
    /// (`per_block` units of `R` scales per block, against `quant_bytes`
    /// of quants).
    #[inline(always)]
    unsafe fn prefetch(self, b: usize, per_block: usize, quant_bytes: usize) {
        const R: usize = INTERLEAVE;
        match self {
            Self::F32(d) => unsafe {
                prefetch_ahead(
                    d.add(b * per_block * R).cast(),
                    4 * per_block * R,
                    quant_bytes,
                )
            },
            Self::Super(q, _) => unsafe {
                prefetch_ahead(q.add(b * per_block * R).cast(), per_block * R, quant_bytes)
            },
        }
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

    /// q6_K's sums of the block's two halves for each row: the nibbles of
    /// `ql` with the high bits of `qh` (see `pack_high_bits`).
    fn q6_sums(ql: &[u8], qh: &[u8], a: &[i8]) -> [[i32; INTERLEAVE]; 2] {
        const R: usize = INTERLEAVE;
        let mut sums = [[0i32; R]; 2];
        for step in 0..BLOCK / 2 / STEP {
            let (pair, second) = (step / 2, step % 2);
            for r in 0..R {
                for k in 0..STEP {
                    let byte = ql[(step * R + r) * STEP + k];
                    let bits = qh[(pair * R + r) * STEP + k] >> (4 * second);
                    let lo = (byte & 0xF) | ((bits & 3) << 4);
                    let hi = (byte >> 4) | (((bits >> 2) & 3) << 4);
                    let e = step * STEP + k;
                    sums[0][r] += i32::from(lo) * i32::from(a[e]);
                    sums[1][r] += i32::from(hi) * i32::from(a[16 + e]);
                }
            }
        }
        sums
    }

    pub(super) fn dot(rows: RowGroup<'_>, tokens: &[TokenRef<'_>], out: &mut [f32]) {
        const R: usize = INTERLEAVE;
        let (nb, n, g) = (rows.cols / BLOCK, tokens.len(), rows.group);
        let supers = nb / BLOCKS_PER_SUPER;
        // The scale of unit `unit` (of `per_block` per block) of row `r`.
        let scale = |s: &Scales, per_block: usize, b: usize, k: usize, r: usize| {
            let i = ((g * nb + b) * per_block + k) * R + r;
            s.value(i, (g * supers + b / BLOCKS_PER_SUPER) * R + r)
        };
        // The offset comes out of the sum as `−128 · Σ a`, as in the vector
        // kernels.
        let q8 = |byte: u8| [i32::from(byte)];
        for (t, token) in tokens.iter().enumerate() {
            let mut acc = [0f32; R];
            for b in 0..nb {
                let a = &token.qs[b * BLOCK..][..BLOCK];
                let at = (g * nb + b) * R;
                match rows.body {
                    PackedBody::Q8 { qs, d } => {
                        let w = &qs[at * BLOCK..][..R * BLOCK];
                        let sums = block_sums(w, a, |step| [step * STEP], q8);
                        let offset = Q8_OFFSET * token.sum[b];
                        for r in 0..R {
                            acc[r] += d[at + r] * token.d[b] * (sums[r] - offset) as f32;
                        }
                    }
                    PackedBody::Q6 { ql, qh, s } => {
                        let sums = q6_sums(&ql[at * 16..][..R * 16], &qh[at * 8..][..R * 8], a);
                        let offset = [0, 1].map(|k| Q6_OFFSET * token.half_sum[2 * b + k]);
                        for r in 0..R {
                            let sum = (sums[0][r] - offset[0]) as f32 * scale(s, 2, b, 0, r)
                                + (sums[1][r] - offset[1]) as f32 * scale(s, 2, b, 1, r);
                            acc[r] += token.d[b] * sum;
                        }
                    }
                    PackedBody::Q4 { qs, d, m } => {
                        let w = &qs[at * BLOCK / 2..][..R * BLOCK / 2];
                        let sums = block_sums(
                            w,
                            a,
                            |step| [step * STEP, 16 + step * STEP],
                            |byte| [i32::from(byte & 0xF), i32::from(byte >> 4)],
                        );
                        for r in 0..R {
                            let d = scale(d, 1, b, 0, r);
                            let min = m.as_ref().map_or(-8.0 * d, |m| scale(m, 1, b, 0, r));
                            acc[r] += d * token.d[b] * sums[r] as f32 + min * token.s[b];
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
/// layout of `rows`, calling the variant's own `q8`, `q4` and `q6` (the
/// same in every variant but for its target features).
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
            // SAFETY: same features; shapes checked by the callers and by
            // `ScalePtr::of`.
            unsafe {
                match rows.body {
                    PackedBody::Q8 { qs, d } => q8::<N>(qs, d, nb, g, tokens, out),
                    PackedBody::Q4 { qs, d, m } => {
                        let d = ScalePtr::of(d, g, nb, nb);
                        let m = m.as_ref().map(|m| ScalePtr::of(m, g, nb, nb));
                        q4::<N>(qs, d, m, nb, g, tokens, out)
                    }
                    PackedBody::Q6 { ql, qh, s } => {
                        let s = ScalePtr::of(s, g, 2 * nb, nb);
                        q6::<N>(ql, qh, s, nb, g, tokens, out)
                    }
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

// In the kernels below, values computed once per block are written out
// rather than built by closures (`array::from_fn`, `Option::map`): a
// closure does not always inline into a `target_feature` function, and
// q6_K's prefill spent 11 % of its time calling one per block.

/// AVX2: the group's 16 rows as two registers of 8, each lane one row.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use core::arch::x86_64::*;

    /// Lanes of unsigned × signed 4-byte dot products (each pair sum
    /// stays inside i16: the callers keep `|u| ≤ 128` or `u ≤ 63`).
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

    /// Half `h` (8 rows) of the scales of unit `unit`, in super-block `sup`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn scales8(s: ScalePtr, unit: usize, sup: usize, h: usize) -> __m256 {
        const R: usize = INTERLEAVE;
        // SAFETY: `ScalePtr::of` checked the group's units and supers.
        unsafe {
            match s {
                ScalePtr::F32(d) => _mm256_loadu_ps(d.add(unit * R + 8 * h)),
                ScalePtr::Super(q, d) => {
                    let q = _mm_loadl_epi64(q.add(unit * R + 8 * h).cast());
                    let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                    _mm256_mul_ps(q, _mm256_loadu_ps(d.add(sup * R + 8 * h)))
                }
            }
        }
    }

    /// The group's rows × N tokens of q8_0. `vpmaddubsw` would saturate on
    /// offset quants, so they go back to signed and the sign moves onto
    /// the activations.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q8<const N: usize>(
        qs: &[u8],
        d: &[f32],
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let flip = _mm256_set1_epi8(-128);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
        let d = d[group * nb * R..][..nb * R].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        for b in 0..nb {
            let mut sums = [[_mm256_setzero_si256(); 2]; N];
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * BLOCK), R * BLOCK, R * BLOCK);
                    prefetch_ahead(d.add(b * R).cast(), 4 * R, R * BLOCK);
                }
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
                        sums[t][h] = _mm256_add_epi32(sums[t][h], p);
                    }
                }
            }
            for h in 0..2 {
                // SAFETY: `nb · R` scales.
                let scale = unsafe { _mm256_loadu_ps(d.add(b * R + 8 * h)) };
                for t in 0..N {
                    let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                    acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][h]), f, acc[t][h]);
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
        d: ScalePtr,
        m: Option<ScalePtr>,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let low = _mm256_set1_epi8(0xF);
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // q4_0 (`w = d·(q − 8)`): every lane's sum starts at −8·Σa.
            let mut sums = [[_mm256_setzero_si256(); 2]; N];
            if m.is_none() {
                for t in 0..N {
                    sums[t] = [_mm256_set1_epi32(-8 * isum[t][b]); 2];
                }
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * 16), R * 16, R * 16);
                    d.prefetch(b, 1, R * 16);
                    if let Some(m) = m {
                        m.prefetch(b, 1, R * 16);
                    }
                }
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
            let sup = b / BLOCKS_PER_SUPER;
            for h in 0..2 {
                // SAFETY: `ScalePtr::of` checked the group's scales.
                let scale = unsafe { scales8(d, b, sup, h) };
                for t in 0..N {
                    let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                    acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][h]), f, acc[t][h]);
                }
                if let Some(m) = m {
                    // SAFETY: as above.
                    let min = unsafe { scales8(m, b, sup, h) };
                    for t in 0..N {
                        acc[t][h] = _mm256_fmadd_ps(min, _mm256_set1_ps(asum[t][b]), acc[t][h]);
                    }
                }
            }
        }
        store(&acc, out);
    }

    /// The group's rows × N tokens of q6_K (`w = s·(q − 32)` per half of
    /// a block): the nibbles as in `q4`, each with its 2 high bits from
    /// `qh` (one 4-byte lane per row serves two steps).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q6<const N: usize>(
        ql: &[u8],
        qh: &[u8],
        s: ScalePtr,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let (low, high) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(0x30));
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let wl = ql[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let wh = qh[group * nb * R * 8..][..nb * R * 8].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let half: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].half_sum[..2 * nb]);
        for b in 0..nb {
            // Per token, half of the rows and half of the block.
            let mut sums = [[[_mm256_setzero_si256(); 2]; 2]; N];
            for t in 0..N {
                let start = [
                    _mm256_set1_epi32(-Q6_OFFSET * half[t][2 * b]),
                    _mm256_set1_epi32(-Q6_OFFSET * half[t][2 * b + 1]),
                ];
                sums[t] = [start; 2];
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(wl.add(b * R * 16), R * 16, R * 16);
                    prefetch_ahead(wh.add(b * R * 8), R * 8, R * 16);
                    s.prefetch(b, 2, R * 16);
                }
            }
            for pair in 0..2 {
                for h in 0..2 {
                    // SAFETY: the group holds `nb` blocks of R × 8 bytes.
                    let bits = unsafe { load(wh.add(((b * 2 + pair) * R + 8 * h) * STEP)) };
                    for second in 0..2 {
                        let step = 2 * pair + second;
                        let bits = if second == 0 {
                            bits
                        } else {
                            _mm256_srli_epi16(bits, 4)
                        };
                        // SAFETY: the group holds `nb` blocks of R × 16 bytes.
                        let raw = unsafe { load(wl.add(((b * 4 + step) * R + 8 * h) * STEP)) };
                        let lo = _mm256_or_si256(
                            _mm256_and_si256(raw, low),
                            _mm256_and_si256(_mm256_slli_epi16(bits, 4), high),
                        );
                        let hi = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(raw, 4), low),
                            _mm256_and_si256(_mm256_slli_epi16(bits, 2), high),
                        );
                        for t in 0..N {
                            // SAFETY: every token holds `nb` blocks of 32 bytes.
                            let (a_lo, a_hi) = unsafe {
                                let p = a_at[t].add(b * BLOCK + step * STEP);
                                (
                                    _mm256_set1_epi32(step_bytes(p)),
                                    _mm256_set1_epi32(step_bytes(p.add(16))),
                                )
                            };
                            sums[t][h][0] = _mm256_add_epi32(sums[t][h][0], udot(lo, a_lo));
                            sums[t][h][1] = _mm256_add_epi32(sums[t][h][1], udot(hi, a_hi));
                        }
                    }
                }
            }
            let sup = b / BLOCKS_PER_SUPER;
            for h in 0..2 {
                for k in 0..2 {
                    // SAFETY: `ScalePtr::of` checked the group's scales.
                    let scale = unsafe { scales8(s, 2 * b + k, sup, h) };
                    for t in 0..N {
                        let f = _mm256_mul_ps(scale, _mm256_set1_ps(ad[t][b]));
                        acc[t][h] =
                            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[t][h][k]), f, acc[t][h]);
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

/// Asks for the cache lines of one block's `block_bytes` of an array
/// as far ahead as [`PREFETCH_BYTES`] of the quants reach, when the
/// quants take `quant_bytes` per block (an array of scales streams at a
/// fraction of their pace).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_ahead(p: *const u8, block_bytes: usize, quant_bytes: usize) {
    use core::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    let ahead = p.wrapping_add(PREFETCH_BYTES * block_bytes / quant_bytes);
    for line in (0..block_bytes).step_by(64) {
        // SAFETY: a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(line).cast()) };
    }
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

    /// The scales of unit `unit`, in super-block `sup`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn scales16(s: ScalePtr, unit: usize, sup: usize) -> __m512 {
        const R: usize = INTERLEAVE;
        // SAFETY: `ScalePtr::of` checked the group's units and supers.
        unsafe {
            match s {
                ScalePtr::F32(d) => _mm512_loadu_ps(d.add(unit * R)),
                ScalePtr::Super(q, d) => {
                    let q = _mm_loadu_si128(q.add(unit * R).cast());
                    let q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
                    _mm512_mul_ps(q, _mm512_loadu_ps(d.add(sup * R)))
                }
            }
        }
    }

    /// The group's rows × N tokens of q8_0. The quants carry
    /// [`Q8_OFFSET`], taken back out by starting each sum at `−128 · Σ a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q8<const N: usize>(
        qs: &[u8],
        d: &[f32],
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let mut acc = [_mm512_setzero_ps(); N];
        let w = qs[group * nb * R * BLOCK..][..nb * R * BLOCK].as_ptr();
        let d = d[group * nb * R..][..nb * R].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // Two chains per token (the block's two halves of elements),
            // which also hide `vpdpbusd`'s latency when N is 1.
            let mut sums = [[_mm512_setzero_si512(); 2]; N];
            for t in 0..N {
                sums[t][0] = _mm512_set1_epi32(-Q8_OFFSET * isum[t][b]);
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * BLOCK), R * BLOCK, R * BLOCK);
                    prefetch_ahead(d.add(b * R).cast(), 4 * R, R * BLOCK);
                }
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
            // SAFETY: `nb · R` scales.
            let scale = unsafe { _mm512_loadu_ps(d.add(b * R)) };
            for t in 0..N {
                let sum = _mm512_add_epi32(sums[t][0], sums[t][1]);
                let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), f, acc[t]);
            }
        }
        store(&acc, out);
    }

    /// The group's rows × N tokens of the 4-bit layout (`w = d·q + m`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q4<const N: usize>(
        qs: &[u8],
        d: ScalePtr,
        m: Option<ScalePtr>,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let low = _mm512_set1_epi8(0xF);
        let mut acc = [_mm512_setzero_ps(); N];
        let w = qs[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let asum: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].s[..nb]);
        let isum: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].sum[..nb]);
        for b in 0..nb {
            // q4_0 (`w = d·(q − 8)`): every lane's sum starts at −8·Σa.
            let mut sums = [[_mm512_setzero_si512(); 2]; N];
            if m.is_none() {
                for t in 0..N {
                    sums[t][0] = _mm512_set1_epi32(-8 * isum[t][b]);
                }
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(w.add(b * R * 16), R * 16, R * 16);
                    d.prefetch(b, 1, R * 16);
                    if let Some(m) = m {
                        m.prefetch(b, 1, R * 16);
                    }
                }
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
            let sup = b / BLOCKS_PER_SUPER;
            // SAFETY: `ScalePtr::of` checked the group's scales.
            let scale = unsafe { scales16(d, b, sup) };
            for t in 0..N {
                let sum = _mm512_add_epi32(sums[t][0], sums[t][1]);
                let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), f, acc[t]);
            }
            if let Some(m) = m {
                // SAFETY: as above.
                let min = unsafe { scales16(m, b, sup) };
                for t in 0..N {
                    acc[t] = _mm512_fmadd_ps(min, _mm512_set1_ps(asum[t][b]), acc[t]);
                }
            }
        }
        store(&acc, out);
    }

    /// The group's rows × N tokens of q6_K (`w = s·(q − 32)` per half of
    /// a block): the nibbles as in `q4`, each with its 2 high bits from
    /// `qh` (one 4-byte lane per row serves two steps).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma")]
    unsafe fn q6<const N: usize>(
        ql: &[u8],
        qh: &[u8],
        s: ScalePtr,
        nb: usize,
        group: usize,
        tokens: &[TokenRef<'_>],
        out: &mut [f32],
    ) {
        const R: usize = INTERLEAVE;
        let (low, high) = (_mm512_set1_epi8(0xF), _mm512_set1_epi8(0x30));
        let mut acc = [_mm512_setzero_ps(); N];
        let wl = ql[group * nb * R * 16..][..nb * R * 16].as_ptr();
        let wh = qh[group * nb * R * 8..][..nb * R * 8].as_ptr();
        let a_at: [*const i8; N] = core::array::from_fn(|t| tokens[t].qs[..nb * BLOCK].as_ptr());
        let ad: [&[f32]; N] = core::array::from_fn(|t| &tokens[t].d[..nb]);
        let half: [&[i32]; N] = core::array::from_fn(|t| &tokens[t].half_sum[..2 * nb]);
        for b in 0..nb {
            // One chain per half of the block (its own scale), each
            // starting at `−32 · Σ a` over that half.
            let mut sums = [[_mm512_setzero_si512(); 2]; N];
            for t in 0..N {
                sums[t][0] = _mm512_set1_epi32(-Q6_OFFSET * half[t][2 * b]);
                sums[t][1] = _mm512_set1_epi32(-Q6_OFFSET * half[t][2 * b + 1]);
            }
            if N == 1 {
                // SAFETY: prefetches do not fault, wherever they point.
                unsafe {
                    prefetch_ahead(wl.add(b * R * 16), R * 16, R * 16);
                    prefetch_ahead(wh.add(b * R * 8), R * 8, R * 16);
                    s.prefetch(b, 2, R * 16);
                }
            }
            for pair in 0..2 {
                // SAFETY: the group holds `nb` blocks of R × 8 bytes.
                let bits = unsafe { load(wh.add((b * 2 + pair) * R * STEP)) };
                for second in 0..2 {
                    let step = 2 * pair + second;
                    let bits = if second == 0 {
                        bits
                    } else {
                        _mm512_srli_epi16(bits, 4)
                    };
                    // SAFETY: the group holds `nb` blocks of R × 16 bytes.
                    let raw = unsafe { load(wl.add((b * 4 + step) * R * STEP)) };
                    let lo = _mm512_or_si512(
                        _mm512_and_si512(raw, low),
                        _mm512_and_si512(_mm512_slli_epi16(bits, 4), high),
                    );
                    let hi = _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(raw, 4), low),
                        _mm512_and_si512(_mm512_slli_epi16(bits, 2), high),
                    );
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
            }
            let sup = b / BLOCKS_PER_SUPER;
            for k in 0..2 {
                // SAFETY: `ScalePtr::of` checked the group's scales.
                let scale = unsafe { scales16(s, 2 * b + k, sup) };
                for t in 0..N {
                    let f = _mm512_mul_ps(scale, _mm512_set1_ps(ad[t][b]));
                    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[t][k]), f, acc[t]);
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
