//! Block compression over well-kept codecs: zstd (with levels and trained
//! dictionaries), LZ4 and Snappy. Every codec is used in its checksummed
//! frame format (LZ4 with an extra CRC-32C trailer, see `codec.rs`), or for
//! LZ4 optionally as a bare block with the same CRC-32C trailer, so a
//! corrupted or truncated block is an error, never garbage.

mod codec;

pub use codec::{BlockCodec, Codec, CodecKind, CompressionError, Lz4Format, train_dictionary};
