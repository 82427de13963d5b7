use serde::{Deserialize, Serialize};

use super::KvCacheError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDType {
    F32,
    F16,
    Bf16,
}

impl KvDType {
    /// One value from its little-endian bytes (`bytes.len() == self.bytes()`).
    pub fn decode(self, bytes: &[u8]) -> f32 {
        match self {
            Self::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            Self::F16 => half::f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            Self::Bf16 => half::bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }
}

/// The shape of a model's KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvGeometry {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub dtype: KvDType,
    /// Tokens per block (e.g. 16, as in vLLM's paged attention).
    pub block_tokens: usize,
}

impl KvGeometry {
    /// K and V of one token for every layer: 2 × layers × kv_heads × head_dim × bytes.
    /// Call on a geometry that passed [`Self::check`].
    pub fn bytes_per_token(&self) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim * self.dtype.bytes()
    }

    pub fn block_bytes(&self) -> usize {
        self.bytes_per_token() * self.block_tokens
    }

    /// Values per quantization group: one head's vector for one token.
    pub fn group_len(&self) -> usize {
        self.head_dim
    }

    /// Every size at least 1, and a block's bytes countable: the sizes
    /// come from a user's file, and the products of `bytes_per_token` and
    /// `block_bytes` must not overflow.
    pub fn check(&self) -> Result<(), KvCacheError> {
        if [self.layers, self.kv_heads, self.head_dim, self.block_tokens].contains(&0) {
            return Err(KvCacheError::Geometry(
                "layers, kv_heads, head_dim and block_tokens must all be at least 1".into(),
            ));
        }
        let block = [
            self.layers,
            self.kv_heads,
            self.head_dim,
            self.dtype.bytes(),
            self.block_tokens,
        ]
        .iter()
        .try_fold(2usize, |acc, n| acc.checked_mul(*n));
        if block.is_none_or(|b| b > isize::MAX as usize) {
            return Err(KvCacheError::Geometry(format!(
                "a block of 2 × {} layers × {} kv_heads × {} head_dim × {} bytes × {} tokens is too large to address",
                self.layers,
                self.kv_heads,
                self.head_dim,
                self.dtype.bytes(),
                self.block_tokens
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_token_follows_the_formula() {
        let g = KvGeometry {
            layers: 32,
            kv_heads: 32,
            head_dim: 128,
            dtype: KvDType::F16,
            block_tokens: 16,
        };
        assert_eq!(g.bytes_per_token(), 2 * 32 * 32 * 128 * 2);
        assert_eq!(g.block_bytes(), 16 * 524_288);
    }
}
