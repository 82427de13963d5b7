//! The identity of a KV block: a hash chain over its sequence's tokens.

use xxhash_rust::xxh3::Xxh3;

/// Identifies a block by the tokens from the start of its sequence to the
/// block's end (a hash chain, as in vLLM's prefix caching): sequences that
/// share a prefix share its blocks.
pub type BlockKey = u64;

pub fn block_key(parent: Option<BlockKey>, tokens: &[u32]) -> BlockKey {
    let mut hasher = Xxh3::new();
    hasher.update(&parent.unwrap_or(0).to_le_bytes());
    hasher.update(&[u8::from(parent.is_some())]);
    for token in tokens {
        hasher.update(&token.to_le_bytes());
    }
    hasher.digest()
}

/// The keys of a prompt's blocks that a prefix cache can hold: its full
/// blocks of `block_tokens`, short of the last token, which is always
/// computed (its logits give the first output token). A server and a
/// workload's analysis count reuse with the same rule.
pub fn cacheable_block_keys(prompt: &[u32], block_tokens: usize) -> Vec<BlockKey> {
    let block_tokens = block_tokens.max(1);
    let full = prompt.len().saturating_sub(1) / block_tokens;
    let mut parent = None;
    prompt
        .chunks_exact(block_tokens)
        .take(full)
        .map(|block| {
            let key = block_key(parent, block);
            parent = Some(key);
            key
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_chain_over_the_whole_prefix() {
        let a = block_key(None, &[1, 2, 3]);
        assert_eq!(a, block_key(None, &[1, 2, 3]));
        assert_ne!(a, block_key(None, &[1, 2, 4]));
        let child = block_key(Some(a), &[4, 5, 6]);
        assert_ne!(
            child,
            block_key(Some(block_key(None, &[9, 2, 3])), &[4, 5, 6])
        );
        assert_ne!(child, block_key(None, &[4, 5, 6]));
    }
}
