use std::path::PathBuf;

use super::BlockKey;

#[derive(Debug, thiserror::Error)]
pub enum KvCacheError {
    #[error("invalid KV cache geometry: {0}")]
    Geometry(String),

    #[error(
        "cold-tier file {path}: {source}\n  help: point the cold tier at a writable folder with free space"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "cold-tier file {path} was written with another layout ({found}); expected {expected}: delete it or use another path"
    )]
    LayoutMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error(
        "corrupt block {key:#018x} in {path} at slot {slot}: checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Corruption {
        path: PathBuf,
        key: BlockKey,
        slot: u64,
        stored: u32,
        computed: u32,
    },

    #[error("block of {got} bytes does not match the geometry's {expected}-byte blocks")]
    BlockSize { got: usize, expected: usize },

    #[error("the hot tier holds {capacity} blocks and all are pinned; raise hot_blocks")]
    HotTierFull { capacity: usize },
}
