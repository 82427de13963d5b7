//! The int8 codec's f16 kernels for x86-64 with AVX2 and F16C, chosen at
//! run time. The build targets baseline x86-64 (one binary for every
//! machine), so the portable path cannot use these instructions, and
//! `half`'s slice conversions detect F16C again for every call. These
//! kernels convert, scale, round and pack eight values per instruction,
//! and write the same bytes as the portable codec: the same scale
//! (`absmax / 127`), the same inverse, and the same rounding (to nearest,
//! ties to even: `cvtps2dq` under the default rounding mode, which is what
//! the portable path's `+ 1.5 × 2²³` trick computes).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether this CPU runs the kernels (checked once; the result is cached
/// by the standard library).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Quantizes little-endian f16 `bytes` in groups of `group_len` values:
/// one f32 scale per group into `scales` (4 bytes each), one i8 per value
/// into `quantized`. `false`, with the outputs partly written, when the
/// kernels do not apply (no AVX2/F16C, `group_len` not a multiple of 8, a
/// NaN in a group): the caller then runs the portable path.
pub fn quantize_f16(
    bytes: &[u8],
    group_len: usize,
    scales: &mut [u8],
    quantized: &mut [u8],
) -> bool {
    let values = bytes.len() / 2;
    if !available()
        || group_len == 0
        || !group_len.is_multiple_of(8)
        || !values.is_multiple_of(group_len)
        || scales.len() != values / group_len * 4
        || quantized.len() != values
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX2 and F16C were detected above; every access below
        // stays within the slices, whose lengths were checked.
        unsafe { quantize_f16_avx2(bytes, group_len, scales, quantized) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Writes `quantized × scale` per group as little-endian f16 into `out`.
/// `false` when the kernels do not apply (see [`quantize_f16`]).
pub fn dequantize_f16(scales: &[u8], quantized: &[u8], group_len: usize, out: &mut [u8]) -> bool {
    let values = quantized.len();
    if !available()
        || group_len == 0
        || !group_len.is_multiple_of(8)
        || !values.is_multiple_of(group_len)
        || scales.len() != values / group_len * 4
        || out.len() != values * 2
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as in `quantize_f16`.
        unsafe { dequantize_f16_avx2(scales, quantized, group_len, out) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn quantize_f16_avx2(
    bytes: &[u8],
    group_len: usize,
    scales: &mut [u8],
    quantized: &mut [u8],
) -> bool {
    let groups = scales.chunks_exact_mut(4).zip(
        bytes
            .chunks_exact(2 * group_len)
            .zip(quantized.chunks_exact_mut(group_len)),
    );
    for (scale, (src, dst)) in groups {
        // Common head sizes keep the whole group in registers (one
        // conversion per value); others convert twice.
        let ok = match group_len {
            32 => quantize_group::<4>(src, scale, dst),
            64 => quantize_group::<8>(src, scale, dst),
            128 => quantize_group::<16>(src, scale, dst),
            _ => quantize_group_any(src, scale, dst),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The largest magnitude bits of eight lanes, as an f32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn horizontal_max(max_bits: __m256i) -> f32 {
    let folded = _mm_max_epu32(
        _mm256_castsi256_si128(max_bits),
        _mm256_extracti128_si256::<1>(max_bits),
    );
    let folded = _mm_max_epu32(folded, _mm_shuffle_epi32::<0b01_00_11_10>(folded));
    let folded = _mm_max_epu32(folded, _mm_shuffle_epi32::<0b10_11_00_01>(folded));
    f32::from_bits(_mm_cvtsi128_si32(folded) as u32)
}

/// Writes the group's scale, and returns the inverse scale, or `None`
/// after writing a group of zeros (an all-zero or infinite group: the
/// portable rule scales by 0 there, and turns ∞ × 0 into 0 as well).
/// `Err` on a NaN: the caller falls back to the portable path.
fn scale_of(max: f32, scale: &mut [u8], dst: &mut [u8]) -> Result<Option<f32>, ()> {
    if max.is_nan() {
        return Err(());
    }
    scale.copy_from_slice(&(max / 127.0).to_le_bytes());
    if max > 0.0 && max.is_finite() {
        Ok(Some(127.0 / max))
    } else {
        dst.fill(0);
        Ok(None)
    }
}

/// Eight lanes of f32 scaled and rounded to nearest-even i32. No clamp
/// is needed: |v| ≤ max, so |v × 127 / max| rounds to at most 127.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn round_scaled(x: __m256, inverse: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_mul_ps(x, inverse))
}

/// Packs 32 i32 lanes (in order) to 32 i8 and stores them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn store_32(dst: &mut [u8], q: [__m256i; 4]) {
    let ab = _mm256_packs_epi32(q[0], q[1]);
    let cd = _mm256_packs_epi32(q[2], q[3]);
    // Packing interleaves the 128-bit lanes; one permute restores the order.
    let abcd = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(ab, cd),
        _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
    );
    let dst = &mut dst[..32];
    // SAFETY: `dst` holds 32 bytes; the store is unaligned.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, abcd) };
}

/// Eight f16 values from 16 bytes, as f32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn load_8(src: &[u8]) -> __m256 {
    let src = &src[..16];
    // SAFETY: `src` holds 16 bytes; the load is unaligned.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(src.as_ptr() as *const __m128i) })
}

/// A group of `8 × N` values (N a multiple of 4), converted once and kept
/// in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn quantize_group<const N: usize>(src: &[u8], scale: &mut [u8], dst: &mut [u8]) -> bool {
    let abs_mask = _mm256_set1_epi32(0x7fff_ffff);
    let values: [__m256; N] = std::array::from_fn(|i| load_8(&src[16 * i..]));
    let max_bits = values.iter().fold(_mm256_setzero_si256(), |m, v| {
        _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(*v), abs_mask))
    });
    let inverse = match scale_of(horizontal_max(max_bits), scale, dst) {
        Err(()) => return false,
        Ok(None) => return true,
        Ok(Some(inverse)) => _mm256_set1_ps(inverse),
    };
    for (i, four) in values.chunks_exact(4).enumerate() {
        let q = [0, 1, 2, 3].map(|k| round_scaled(four[k], inverse));
        store_32(&mut dst[32 * i..], q);
    }
    true
}

/// A group of any multiple of 8 values: converted twice (once for the
/// maximum, once to scale), packed 32 and then 8 at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
fn quantize_group_any(src: &[u8], scale: &mut [u8], dst: &mut [u8]) -> bool {
    let abs_mask = _mm256_set1_epi32(0x7fff_ffff);
    let len = dst.len();
    let max_bits = (0..len).step_by(8).fold(_mm256_setzero_si256(), |m, j| {
        _mm256_max_epu32(
            m,
            _mm256_and_si256(_mm256_castps_si256(load_8(&src[2 * j..])), abs_mask),
        )
    });
    let inverse = match scale_of(horizontal_max(max_bits), scale, dst) {
        Err(()) => return false,
        Ok(None) => return true,
        Ok(Some(inverse)) => _mm256_set1_ps(inverse),
    };
    let mut j = 0;
    while j + 32 <= len {
        let q = [0, 8, 16, 24].map(|k| round_scaled(load_8(&src[2 * (j + k)..]), inverse));
        store_32(&mut dst[j..], q);
        j += 32;
    }
    while j < len {
        let q = round_scaled(load_8(&src[2 * j..]), inverse);
        let words = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
        let packed = _mm_packs_epi16(words, words);
        let out = &mut dst[j..j + 8];
        // SAFETY: `out` holds 8 bytes; the store is unaligned.
        unsafe { _mm_storel_epi64(out.as_mut_ptr() as *mut __m128i, packed) };
        j += 8;
    }
    true
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn dequantize_f16_avx2(scales: &[u8], quantized: &[u8], group_len: usize, out: &mut [u8]) {
    let src = quantized.as_ptr();
    let dst = out.as_mut_ptr();
    for (g, scale) in scales.chunks_exact(4).enumerate() {
        let scale = _mm256_set1_ps(f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]));
        let base = g * group_len;
        for j in (base..base + group_len).step_by(8) {
            // SAFETY: `j + 8 <= values`, and `out` holds 2 bytes per value.
            unsafe {
                let q = _mm_loadl_epi64(src.add(j) as *const __m128i);
                let x = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), scale);
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm_storeu_si128(dst.add(2 * j) as *mut __m128i, h);
            }
        }
    }
}
