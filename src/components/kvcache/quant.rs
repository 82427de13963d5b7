//! Symmetric int8 quantization with one scale per group of `group_len`
//! values (one head vector of one token): |x − x̂| ≤ scale / 2 per group,
//! plus the rounding of the block's own dtype when converting back.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use super::KvDType;

/// Which implementation of the int8 codec runs. Both write and read the
/// same bytes on disk ([`Int8Block::encode_into`]'s layout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Int8Codec {
    /// Value by value: one dtype conversion, one division and one
    /// rounding call per value, and an allocation per block.
    #[default]
    Scalar,
    /// A group at a time into reused buffers: slice conversions of f16
    /// and bf16 (F16C where the CPU has it), a multiply by the inverse
    /// scale and a rounding the compiler keeps in vector registers; for
    /// f16 on CPUs with AVX2 and F16C, kernels that do all of it eight
    /// values per instruction (`quant_avx2.rs`).
    Vectorised,
}

/// A quantized block: one f32 scale per group, one i8 per value.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Block {
    pub scales: Vec<f32>,
    pub values: Vec<i8>,
}

impl Int8Block {
    pub fn encoded_len(values: usize, groups: usize) -> usize {
        groups * 4 + values
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for scale in &self.scales {
            out.extend_from_slice(&scale.to_le_bytes());
        }
        out.extend(self.values.iter().map(|v| *v as u8));
    }

    pub fn decode(bytes: &[u8], groups: usize) -> Option<Self> {
        let (scale_bytes, values) = bytes.split_at_checked(groups * 4)?;
        Some(Self {
            scales: scale_bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            values: values.iter().map(|v| *v as i8).collect(),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantizationError {
    #[error("{len} bytes is not a whole number of {group_len}-value groups of {dtype:?}")]
    Shape {
        len: usize,
        group_len: usize,
        dtype: KvDType,
    },
}

fn to_f32(bytes: &[u8], dtype: KvDType) -> Vec<f32> {
    bytes
        .chunks_exact(dtype.bytes())
        .map(|c| dtype.decode(c))
        .collect()
}

pub fn quantize_int8(
    bytes: &[u8],
    dtype: KvDType,
    group_len: usize,
) -> Result<Int8Block, QuantizationError> {
    let values = to_f32(bytes, dtype);
    if group_len == 0
        || !bytes.len().is_multiple_of(dtype.bytes())
        || !values.len().is_multiple_of(group_len)
    {
        return Err(QuantizationError::Shape {
            len: bytes.len(),
            group_len,
            dtype,
        });
    }
    let mut scales = Vec::with_capacity(values.len() / group_len);
    let mut quantized = Vec::with_capacity(values.len());
    for group in values.chunks_exact(group_len) {
        let absmax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = absmax / 127.0;
        scales.push(scale);
        quantized.extend(group.iter().map(|v| {
            if scale == 0.0 {
                0
            } else {
                (v / scale).round().clamp(-127.0, 127.0) as i8
            }
        }));
    }
    Ok(Int8Block {
        scales,
        values: quantized,
    })
}

/// Writes the reconstruction in the block's dtype into `out`.
pub fn dequantize_int8(block: &Int8Block, dtype: KvDType, out: &mut [u8]) {
    let group_len = block.values.len() / block.scales.len().max(1);
    let width = dtype.bytes();
    for (i, (q, chunk)) in block
        .values
        .iter()
        .zip(out.chunks_exact_mut(width))
        .enumerate()
    {
        let value = f32::from(*q) * block.scales[i / group_len.max(1)];
        match dtype {
            KvDType::F32 => chunk.copy_from_slice(&value.to_le_bytes()),
            KvDType::F16 => chunk.copy_from_slice(&f16::from_f32(value).to_le_bytes()),
            KvDType::Bf16 => chunk.copy_from_slice(&bf16::from_f32(value).to_le_bytes()),
        }
    }
}

/// `x + ROUND − ROUND` rounds `x` to the nearest integer (ties to even)
/// for |x| < 2²², with adds the compiler vectorises, where `f32::round`
/// is a libm call per value.
const ROUND: f32 = 12_582_912.0;

/// Values converted per stack buffer of f16/bf16 bits.
const LANES: usize = 64;

/// The block's values as f32, into `out` (reused).
fn widen_into(bytes: &[u8], dtype: KvDType, out: &mut Vec<f32>) {
    let n = bytes.len() / dtype.bytes();
    out.clear();
    out.resize(n, 0.0);
    match dtype {
        KvDType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        KvDType::F16 | KvDType::Bf16 => {
            let mut bits = [0u16; LANES];
            for (dst, src) in out.chunks_mut(LANES).zip(bytes.chunks(2 * LANES)) {
                let bits = &mut bits[..dst.len()];
                for (b, c) in bits.iter_mut().zip(src.chunks_exact(2)) {
                    *b = u16::from_le_bytes([c[0], c[1]]);
                }
                if dtype == KvDType::F16 {
                    bits.reinterpret_cast::<f16>().convert_to_f32_slice(dst);
                } else {
                    bits.reinterpret_cast::<bf16>().convert_to_f32_slice(dst);
                }
            }
        }
    }
}

/// `values` in the block's dtype, into `out`.
fn narrow_into(values: &[f32], dtype: KvDType, out: &mut [u8]) {
    match dtype {
        KvDType::F32 => {
            for (c, v) in out.chunks_exact_mut(4).zip(values) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        KvDType::F16 | KvDType::Bf16 => {
            let mut halves = [f16::ZERO; LANES];
            let mut brains = [bf16::ZERO; LANES];
            for (src, dst) in values.chunks(LANES).zip(out.chunks_mut(2 * LANES)) {
                let bits: &[u16] = if dtype == KvDType::F16 {
                    let h = &mut halves[..src.len()];
                    h.convert_from_f32_slice(src);
                    h.reinterpret_cast()
                } else {
                    let h = &mut brains[..src.len()];
                    h.convert_from_f32_slice(src);
                    h.reinterpret_cast()
                };
                for (c, b) in dst.chunks_exact_mut(2).zip(bits) {
                    c.copy_from_slice(&b.to_le_bytes());
                }
            }
        }
    }
}

/// The largest magnitude of a group. Magnitude bits compare as unsigned
/// integers in the order of the values, and an integer max vectorises
/// where a float max reduction does not; a NaN falls back to the scalar
/// rule (NaNs ignored).
fn absmax(group: &[f32]) -> f32 {
    let bits = group
        .iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .fold(0u32, u32::max);
    let max = f32::from_bits(bits);
    if max.is_nan() {
        group.iter().fold(0f32, |m, v| m.max(v.abs()))
    } else {
        max
    }
}

/// Reused buffers of the vectorised codec, one per cold tier.
#[derive(Debug, Default)]
pub struct Int8Scratch {
    values: Vec<f32>,
}

/// [`quantize_int8`], vectorised, written straight into `out` in
/// [`Int8Block::encode_into`]'s layout (scales, then values).
pub fn quantize_int8_into(
    bytes: &[u8],
    dtype: KvDType,
    group_len: usize,
    scratch: &mut Int8Scratch,
    out: &mut Vec<u8>,
) -> Result<(), QuantizationError> {
    quantize_with(bytes, dtype, group_len, scratch, out, true)
}

/// [`quantize_int8_into`], with or without the x86 kernels (tests compare).
fn quantize_with(
    bytes: &[u8],
    dtype: KvDType,
    group_len: usize,
    scratch: &mut Int8Scratch,
    out: &mut Vec<u8>,
    kernels: bool,
) -> Result<(), QuantizationError> {
    if group_len == 0
        || !bytes.len().is_multiple_of(dtype.bytes())
        || !(bytes.len() / dtype.bytes()).is_multiple_of(group_len)
    {
        return Err(QuantizationError::Shape {
            len: bytes.len(),
            group_len,
            dtype,
        });
    }
    let count = bytes.len() / dtype.bytes();
    let groups = count / group_len;
    let start = out.len();
    out.resize(start + Int8Block::encoded_len(count, groups), 0);
    let (scales, quantized) = out[start..].split_at_mut(groups * 4);
    if kernels
        && dtype == KvDType::F16
        && super::quant_avx2::quantize_f16(bytes, group_len, scales, quantized)
    {
        return Ok(());
    }
    widen_into(bytes, dtype, &mut scratch.values);
    let values = &scratch.values;
    for ((group, scale), qs) in values
        .chunks_exact(group_len)
        .zip(scales.chunks_exact_mut(4))
        .zip(quantized.chunks_exact_mut(group_len))
    {
        let max = absmax(group);
        scale.copy_from_slice(&(max / 127.0).to_le_bytes());
        let inverse = if max > 0.0 && max.is_finite() {
            127.0 / max
        } else {
            0.0
        };
        for (q, v) in qs.iter_mut().zip(group) {
            let x = (v * inverse).clamp(-127.0, 127.0);
            *q = ((x + ROUND) - ROUND) as i8 as u8;
        }
    }
    Ok(())
}

/// [`dequantize_int8`], vectorised, from the encoded bytes of `groups`
/// groups; `None` if `encoded` is too short for them.
pub fn dequantize_int8_from(
    encoded: &[u8],
    groups: usize,
    dtype: KvDType,
    scratch: &mut Int8Scratch,
    out: &mut [u8],
) -> Option<()> {
    dequantize_with(encoded, groups, dtype, scratch, out, true)
}

/// [`dequantize_int8_from`], with or without the x86 kernels (tests compare).
fn dequantize_with(
    encoded: &[u8],
    groups: usize,
    dtype: KvDType,
    scratch: &mut Int8Scratch,
    out: &mut [u8],
    kernels: bool,
) -> Option<()> {
    let values = out.len() / dtype.bytes();
    let group_len = values.checked_div(groups)?;
    let (scales, quantized) = encoded.split_at_checked(groups * 4)?;
    let quantized = quantized.get(..values)?;
    if kernels
        && dtype == KvDType::F16
        && super::quant_avx2::dequantize_f16(scales, quantized, group_len, out)
    {
        return Some(());
    }
    scratch.values.clear();
    scratch.values.resize(values, 0.0);
    for ((dst, qs), scale) in scratch
        .values
        .chunks_exact_mut(group_len)
        .zip(quantized.chunks_exact(group_len))
        .zip(scales.chunks_exact(4))
    {
        let scale = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
        for (d, q) in dst.iter_mut().zip(qs) {
            *d = f32::from(*q as i8) * scale;
        }
    }
    narrow_into(&scratch.values, dtype, out);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip_stays_within_half_a_step_per_group() {
        let values: Vec<f32> = (0..256)
            .map(|i| ((i * 37) % 101) as f32 * 0.013 - 0.6)
            .collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let q = quantize_int8(&bytes, KvDType::F32, 64).unwrap();
        assert_eq!(q.scales.len(), 4);
        let mut out = vec![0u8; bytes.len()];
        dequantize_int8(&q, KvDType::F32, &mut out);
        let back = to_f32(&out, KvDType::F32);
        for (i, (a, b)) in values.iter().zip(&back).enumerate() {
            let bound = q.scales[i / 64] / 2.0 * (1.0 + 1e-6);
            assert!(
                (a - b).abs() <= bound,
                "value {i}: {a} vs {b}, bound {bound}"
            );
        }
    }

    #[test]
    fn encoding_round_trips_and_zero_groups_stay_zero() {
        let bytes = vec![0u8; 4 * 32];
        let q = quantize_int8(&bytes, KvDType::F32, 16).unwrap();
        assert_eq!(q.scales, vec![0.0, 0.0]);
        let mut encoded = Vec::new();
        q.encode_into(&mut encoded);
        assert_eq!(encoded.len(), Int8Block::encoded_len(32, 2));
        assert_eq!(Int8Block::decode(&encoded, 2).unwrap(), q);
    }

    #[test]
    fn the_vectorised_codec_writes_the_scalar_format_within_one_step() {
        let mut scratch = Int8Scratch::default();
        for dtype in [KvDType::F32, KvDType::F16, KvDType::Bf16] {
            // 5 groups of 40: 200 values, so the last chunk of LANES is short.
            let values: Vec<f32> = (0..200)
                .map(|i| ((i * 53) % 97) as f32 * 0.021 - 1.0)
                .collect();
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|v| match dtype {
                    KvDType::F32 => v.to_le_bytes().to_vec(),
                    KvDType::F16 => f16::from_f32(*v).to_le_bytes().to_vec(),
                    KvDType::Bf16 => bf16::from_f32(*v).to_le_bytes().to_vec(),
                })
                .collect();
            let scalar = quantize_int8(&bytes, dtype, 40).unwrap();
            let mut encoded = Vec::new();
            quantize_int8_into(&bytes, dtype, 40, &mut scratch, &mut encoded).unwrap();
            let vectorised = Int8Block::decode(&encoded, 5).unwrap();
            assert_eq!(vectorised.scales, scalar.scales, "{dtype:?}");
            for (a, b) in vectorised.values.iter().zip(&scalar.values) {
                // Rounding ties differ (to even, or away from zero).
                assert!((i16::from(*a) - i16::from(*b)).abs() <= 1, "{dtype:?}");
            }
            let mut from_scalar = vec![0u8; bytes.len()];
            dequantize_int8(&vectorised, dtype, &mut from_scalar);
            let mut from_vectorised = vec![0u8; bytes.len()];
            dequantize_int8_from(&encoded, 5, dtype, &mut scratch, &mut from_vectorised).unwrap();
            assert_eq!(
                from_vectorised, from_scalar,
                "{dtype:?}: the same reconstruction"
            );
            let back = to_f32(&from_vectorised, dtype);
            for (i, (a, b)) in values.iter().zip(&back).enumerate() {
                let original = to_f32(&bytes[i * dtype.bytes()..(i + 1) * dtype.bytes()], dtype)[0];
                let bound = scalar.scales[i / 40] / 2.0 * 1.01 + (a.abs() * 0.01);
                assert!((original - b).abs() <= bound, "{dtype:?} value {i}");
            }
        }
        assert!(
            dequantize_int8_from(&[0u8; 10], 3, KvDType::F32, &mut scratch, &mut [0u8; 768])
                .is_none()
        );
        let mut out = Vec::new();
        assert!(quantize_int8_into(&[0u8; 12], KvDType::F32, 2, &mut scratch, &mut out).is_err());
    }

    #[test]
    fn the_f16_kernels_write_the_portable_codecs_bytes() {
        let mut scratch = Int8Scratch::default();
        // Groups of 32, 64 and 128 (kept in registers), 8 and 72 (the
        // general path, with its short tail); zero groups, infinities, f16's largest values and
        // subnormals, and ties of the rounding (x.5 after scaling).
        let special = [
            0.0,
            -0.0,
            65504.0,
            -65504.0,
            6.0e-8,
            f32::INFINITY,
            0.5,
            -1.5,
        ];
        for group_len in [8usize, 32, 64, 72, 128] {
            let values: Vec<f32> = (0..group_len * 6)
                .map(|i| match (i / group_len, i % 11) {
                    (0, _) => 0.0,
                    (1, k) => special[k % special.len()],
                    (2, _) => (i % group_len) as f32 - 63.5,
                    _ => ((i * 7919) % 2003) as f32 / 311.0 - 3.2,
                })
                .collect();
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect();
            let (mut portable, mut kernels) = (Vec::new(), Vec::new());
            quantize_with(
                &bytes,
                KvDType::F16,
                group_len,
                &mut scratch,
                &mut portable,
                false,
            )
            .unwrap();
            quantize_with(
                &bytes,
                KvDType::F16,
                group_len,
                &mut scratch,
                &mut kernels,
                true,
            )
            .unwrap();
            assert_eq!(kernels, portable, "encode, groups of {group_len}");
            let groups = values.len() / group_len;
            let mut a = vec![0u8; bytes.len()];
            let mut b = vec![0u8; bytes.len()];
            dequantize_with(&portable, groups, KvDType::F16, &mut scratch, &mut a, false).unwrap();
            dequantize_with(&portable, groups, KvDType::F16, &mut scratch, &mut b, true).unwrap();
            assert_eq!(a, b, "decode, groups of {group_len}");
        }
        // A NaN in a group: the kernels decline and the portable rule
        // (NaNs ignored) applies to the whole block.
        let mut bytes: Vec<u8> = (0..16)
            .flat_map(|i| f16::from_f32(i as f32).to_le_bytes())
            .collect();
        bytes[6..8].copy_from_slice(&f16::NAN.to_le_bytes());
        let (mut portable, mut kernels) = (Vec::new(), Vec::new());
        quantize_with(&bytes, KvDType::F16, 8, &mut scratch, &mut portable, false).unwrap();
        quantize_with(&bytes, KvDType::F16, 8, &mut scratch, &mut kernels, true).unwrap();
        assert_eq!(kernels, portable);
    }

    #[test]
    fn rejects_blocks_that_are_not_whole_groups() {
        assert!(quantize_int8(&[0u8; 12], KvDType::F32, 2).is_err());
        assert!(quantize_int8(&[0u8; 3], KvDType::F16, 1).is_err());
    }
}
