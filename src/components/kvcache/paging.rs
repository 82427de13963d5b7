//! Cutting one sequence's KV into the cache's fixed-size blocks.

use super::{BlockKey, KvCacheError, KvGeometry, block_key};

/// A block of a sequence's KV and the key it is cached under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvBlock {
    pub key: BlockKey,
    pub bytes: Vec<u8>,
}

/// The full blocks of a one-layer KV laid out as every token's K row, then
/// every token's V row (as `Layer0KvProjector` gives it). Block i holds
/// its tokens' K rows then their V rows; keys chain over the tokens so far
/// (prefix caching). A partial last block stays out, as in paged KV caches.
pub fn paged_blocks(
    kv: &[u8],
    tokens: &[u32],
    geometry: &KvGeometry,
) -> Result<Vec<KvBlock>, KvCacheError> {
    let row = geometry.kv_heads * geometry.head_dim * geometry.dtype.bytes();
    let expected = 2 * tokens.len() * row;
    if geometry.layers != 1 || kv.len() != expected {
        return Err(KvCacheError::Geometry(format!(
            "a one-layer KV of {} tokens is {expected} bytes; found {} bytes for {} layers",
            tokens.len(),
            kv.len(),
            geometry.layers
        )));
    }
    let v_offset = tokens.len() * row;
    let mut parent = None;
    Ok(tokens
        .chunks_exact(geometry.block_tokens)
        .enumerate()
        .map(|(i, block_tokens)| {
            let rows = i * geometry.block_tokens * row..(i + 1) * geometry.block_tokens * row;
            let mut bytes = Vec::with_capacity(geometry.block_bytes());
            bytes.extend_from_slice(&kv[rows.clone()]);
            bytes.extend_from_slice(&kv[v_offset + rows.start..v_offset + rows.end]);
            let key = block_key(parent, block_tokens);
            parent = Some(key);
            KvBlock { key, bytes }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::kvcache::KvDType;

    fn geometry(block_tokens: usize) -> KvGeometry {
        KvGeometry {
            layers: 1,
            kv_heads: 1,
            head_dim: 1,
            dtype: KvDType::F16,
            block_tokens,
        }
    }

    #[test]
    fn blocks_hold_their_tokens_k_then_v_and_drop_the_partial_tail() {
        // 5 tokens of 2-byte rows: K rows are 10..=14, V rows 20..=24.
        let kv: Vec<u8> = (10..15u8)
            .flat_map(|k| [k, 0])
            .chain((20..25u8).flat_map(|v| [v, 0]))
            .collect();
        let tokens = [7, 8, 9, 10, 11];
        let blocks = paged_blocks(&kv, &tokens, &geometry(2)).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].bytes, [10, 0, 11, 0, 20, 0, 21, 0]);
        assert_eq!(blocks[1].bytes, [12, 0, 13, 0, 22, 0, 23, 0]);
        assert_eq!(blocks[0].key, block_key(None, &[7, 8]));
        assert_eq!(blocks[1].key, block_key(Some(blocks[0].key), &[9, 10]));
    }

    #[test]
    fn a_kv_of_the_wrong_size_is_refused() {
        let error = paged_blocks(&[0; 6], &[1, 2], &geometry(2)).unwrap_err();
        assert!(error.to_string().contains("8 bytes"), "{error}");
    }
}
