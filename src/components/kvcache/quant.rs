//! Symmetric int8 quantization with one scale per group of `group_len`
//! values (one head vector of one token): |x − x̂| ≤ scale / 2 per group,
//! plus the rounding of the block's own dtype when converting back.

use half::{bf16, f16};

use super::KvDType;

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
    fn rejects_blocks_that_are_not_whole_groups() {
        assert!(quantize_int8(&[0u8; 12], KvDType::F32, 2).is_err());
        assert!(quantize_int8(&[0u8; 3], KvDType::F16, 1).is_err());
    }
}
