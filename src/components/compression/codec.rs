use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("unknown codec {0:?}: use zstd:LEVEL, zstd_dict:LEVEL, lz4 or snappy")]
    UnknownCodec(String),
    #[error("zstd level {0} is outside 1..=22")]
    Level(i32),
    #[error("codec {0} needs a trained dictionary")]
    MissingDictionary(Codec),
    #[error("{codec}: compression failed: {message}")]
    Compress { codec: Codec, message: String },
    #[error("{codec}: the block is corrupt or truncated: {message}")]
    Corrupt { codec: Codec, message: String },
    #[error("cannot train a zstd dictionary: {0}")]
    Dictionary(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecKind {
    Zstd,
    /// zstd with a dictionary trained on a sample of the same kind of data.
    ZstdDict,
    Lz4,
    Snappy,
}

/// A codec and its level, written `zstd:3`, `zstd_dict:3`, `lz4` or `snappy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Codec {
    pub kind: CodecKind,
    /// zstd's level; 0 for codecs without levels.
    pub level: i32,
}

impl FromStr for Codec {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (
                n,
                Some(
                    l.parse::<i32>()
                        .map_err(|_| CompressionError::UnknownCodec(s.to_string()))?,
                ),
            ),
            None => (s, None),
        };
        let kind = match name {
            "zstd" => CodecKind::Zstd,
            "zstd_dict" => CodecKind::ZstdDict,
            "lz4" => CodecKind::Lz4,
            "snappy" => CodecKind::Snappy,
            _ => return Err(CompressionError::UnknownCodec(s.to_string())),
        };
        let level = match (kind, level) {
            (CodecKind::Zstd | CodecKind::ZstdDict, Some(l)) if !(1..=22).contains(&l) => {
                return Err(CompressionError::Level(l));
            }
            (CodecKind::Zstd | CodecKind::ZstdDict, l) => l.unwrap_or(3),
            (_, None) => 0,
            (_, Some(_)) => return Err(CompressionError::UnknownCodec(s.to_string())),
        };
        Ok(Self { kind, level })
    }
}

impl TryFrom<String> for Codec {
    type Error = CompressionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Codec> for String {
    fn from(c: Codec) -> Self {
        c.to_string()
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            CodecKind::Zstd => write!(f, "zstd:{}", self.level),
            CodecKind::ZstdDict => write!(f, "zstd_dict:{}", self.level),
            CodecKind::Lz4 => write!(f, "lz4"),
            CodecKind::Snappy => write!(f, "snappy"),
        }
    }
}

/// Trains a zstd dictionary from samples (the "dictionary lookup" remedy
/// for small, similar blocks such as log lines).
pub fn train_dictionary(samples: &[&[u8]], max_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    zstd::dict::from_samples(samples, max_bytes)
        .map_err(|e| CompressionError::Dictionary(e.to_string()))
}

/// How an `lz4` block is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lz4Format {
    /// One LZ4 frame per block (header, content checksum, end mark),
    /// built by a new frame encoder each time, plus our CRC-32C.
    #[default]
    Frame,
    /// The raw LZ4 block API into a reused buffer with a reused hash
    /// table, plus our CRC-32C: no frame to set up per block.
    Block,
}

enum Engine {
    Zstd {
        compressor: zstd::bulk::Compressor<'static>,
        decompressor: zstd::bulk::Decompressor<'static>,
    },
    Lz4,
    Lz4Block {
        table: lz4_flex::block::CompressTable,
    },
    Snappy,
}

/// Length of the CRC-32C trailer our LZ4 blocks carry.
const CRC_BYTES: usize = 4;

/// Splits a block into its body and CRC-32C trailer, checking the CRC.
fn checked_body(codec: Codec, input: &[u8]) -> Result<&[u8], CompressionError> {
    let (body, trailer) = input
        .split_at_checked(input.len().saturating_sub(CRC_BYTES))
        .unwrap_or((input, &[]));
    let stored = trailer.try_into().map(u32::from_le_bytes).ok();
    if stored != Some(crc32c::crc32c(body)) {
        return Err(CompressionError::Corrupt {
            codec,
            message: "checksum mismatch (corrupt or truncated)".to_string(),
        });
    }
    Ok(body)
}

/// A codec ready to compress and decompress blocks, reusing its contexts.
pub struct BlockCodec {
    codec: Codec,
    engine: Engine,
}

impl BlockCodec {
    pub fn new(codec: Codec, dictionary: Option<&[u8]>) -> Result<Self, CompressionError> {
        let compress_err = |e: std::io::Error| CompressionError::Compress {
            codec,
            message: e.to_string(),
        };
        let engine = match codec.kind {
            CodecKind::Zstd | CodecKind::ZstdDict => {
                let dict = match (codec.kind, dictionary) {
                    (CodecKind::ZstdDict, Some(d)) => d,
                    (CodecKind::ZstdDict, None) => {
                        return Err(CompressionError::MissingDictionary(codec));
                    }
                    _ => &[][..],
                };
                let mut compressor = zstd::bulk::Compressor::with_dictionary(codec.level, dict)
                    .map_err(compress_err)?;
                // The frame checksum makes corruption an error on decompression.
                compressor
                    .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                    .map_err(compress_err)?;
                let decompressor =
                    zstd::bulk::Decompressor::with_dictionary(dict).map_err(compress_err)?;
                Engine::Zstd {
                    compressor,
                    decompressor,
                }
            }
            CodecKind::Lz4 => Engine::Lz4,
            CodecKind::Snappy => Engine::Snappy,
        };
        Ok(Self { codec, engine })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Chooses how `lz4` blocks are laid out (other codecs ignore it).
    pub fn with_lz4_format(mut self, format: Lz4Format) -> Self {
        if self.codec.kind == CodecKind::Lz4 {
            self.engine = match format {
                Lz4Format::Frame => Engine::Lz4,
                Lz4Format::Block => Engine::Lz4Block {
                    table: lz4_flex::block::CompressTable::default(),
                },
            };
        }
        self
    }

    pub fn lz4_format(&self) -> Option<Lz4Format> {
        match self.engine {
            Engine::Lz4 => Some(Lz4Format::Frame),
            Engine::Lz4Block { .. } => Some(Lz4Format::Block),
            _ => None,
        }
    }

    /// Compresses `input` into `out` (cleared first).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CompressionError> {
        out.clear();
        let codec = self.codec;
        let err = |e: std::io::Error| CompressionError::Compress {
            codec,
            message: e.to_string(),
        };
        match &mut self.engine {
            Engine::Zstd { compressor, .. } => {
                out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                compressor.compress_to_buffer(input, out).map_err(err)?;
            }
            Engine::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new().content_checksum(true);
                let mut encoder =
                    lz4_flex::frame::FrameEncoder::with_frame_info(info, std::mem::take(out));
                encoder.write_all(input).map_err(err)?;
                *out = encoder.finish().map_err(|e| CompressionError::Compress {
                    codec,
                    message: e.to_string(),
                })?;
                // lz4_flex accepts a frame cut before its end mark (and so
                // before its content checksum): a CRC-32C of the whole frame
                // makes truncation an error too.
                let crc = crc32c::crc32c(out);
                out.extend_from_slice(&crc.to_le_bytes());
            }
            Engine::Lz4Block { table } => {
                out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
                let written = lz4_flex::block::compress_into_with_table(input, out, table)
                    .map_err(|e| CompressionError::Compress {
                        codec,
                        message: e.to_string(),
                    })?;
                out.truncate(written);
                // The block API has no checksum of its own.
                let crc = crc32c::crc32c(out);
                out.extend_from_slice(&crc.to_le_bytes());
            }
            Engine::Snappy => {
                let mut encoder = snap::write::FrameEncoder::new(std::mem::take(out));
                encoder.write_all(input).map_err(err)?;
                *out = encoder
                    .into_inner()
                    .map_err(|e| CompressionError::Compress {
                        codec,
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(())
    }

    /// Decompresses a block of `original_len` bytes into `out` (cleared
    /// first). A checksum failure or a truncated block is an error.
    pub fn decompress(
        &mut self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CompressionError> {
        out.clear();
        let codec = self.codec;
        let corrupt = |e: std::io::Error| CompressionError::Corrupt {
            codec,
            message: e.to_string(),
        };
        match &mut self.engine {
            Engine::Zstd { decompressor, .. } => {
                out.reserve(original_len);
                decompressor
                    .decompress_to_buffer(input, out)
                    .map_err(corrupt)?;
            }
            Engine::Lz4 => {
                let frame = checked_body(codec, input)?;
                out.reserve(original_len);
                lz4_flex::frame::FrameDecoder::new(frame)
                    .read_to_end(out)
                    .map_err(corrupt)?;
            }
            Engine::Lz4Block { .. } => {
                let body = checked_body(codec, input)?;
                out.resize(original_len, 0);
                let written = lz4_flex::block::decompress_into(body, out).map_err(|e| {
                    CompressionError::Corrupt {
                        codec,
                        message: e.to_string(),
                    }
                })?;
                out.truncate(written);
            }
            Engine::Snappy => {
                out.reserve(original_len);
                snap::read::FrameDecoder::new(input)
                    .read_to_end(out)
                    .map_err(corrupt)?;
            }
        }
        if out.len() != original_len {
            return Err(CompressionError::Corrupt {
                codec,
                message: format!("decoded {} bytes, expected {original_len}", out.len()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_round_trip_and_bad_ones_are_explained() {
        for text in ["zstd:1", "zstd:19", "zstd_dict:3", "lz4", "snappy"] {
            assert_eq!(text.parse::<Codec>().unwrap().to_string(), text);
        }
        assert_eq!("zstd".parse::<Codec>().unwrap().level, 3);
        assert!(matches!(
            "zstd:23".parse::<Codec>(),
            Err(CompressionError::Level(23))
        ));
        assert!("lz4:3".parse::<Codec>().is_err());
        assert!(
            "brotli"
                .parse::<Codec>()
                .unwrap_err()
                .to_string()
                .contains("zstd:LEVEL")
        );
    }
}
