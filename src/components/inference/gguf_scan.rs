//! A walk over a GGUF header that allocates nothing in proportion to what
//! the file declares, run before candle parses it. candle checks each
//! declared length against the bytes left in the file, but keeps every
//! metadata array element as a value of its own (tens of bytes for a
//! one-byte element), so a file of a few GiB made of one huge array would
//! still take tens of GiB. Real files hold a vocabulary and its merges
//! (hundreds of thousands of elements); the bounds below are far above
//! that and far below what would exhaust memory.
//!
//! Written here because no crate reads GGUF metadata without building it.

use std::io::{Read, Seek, SeekFrom};

/// Elements one metadata array may hold.
pub const MAX_GGUF_ARRAY_ELEMENTS: u64 = 1 << 22;
/// Elements all metadata arrays together may hold.
pub const MAX_GGUF_METADATA_ELEMENTS: u64 = 1 << 23;
/// Bytes one metadata string (a key, a value, a tensor name) may hold.
pub const MAX_GGUF_STRING_BYTES: u64 = 1 << 24;
/// Metadata entries and tensors a header may declare.
pub const MAX_GGUF_ENTRIES: u64 = 1 << 20;
/// How deep arrays of arrays may nest.
const MAX_DEPTH: usize = 8;

/// The first problem found, in words.
pub type ScanProblem = String;

/// Walks the magic, the counts, every metadata key and value and every
/// tensor's name and dimensions, checking each declared size against the
/// bounds above; the reader is left where it started.
pub fn scan_header<R: Read + Seek>(reader: &mut R) -> Result<(), ScanProblem> {
    let start = reader.stream_position().map_err(io)?;
    let result = scan(reader);
    reader.seek(SeekFrom::Start(start)).map_err(io)?;
    result
}

fn io(e: std::io::Error) -> ScanProblem {
    format!("could not be read: {e}")
}

struct Walk<'r, R> {
    reader: &'r mut R,
    /// Version 1 writes lengths and counts as u32, later versions as u64.
    wide: bool,
    elements: u64,
}

fn scan<R: Read + Seek>(reader: &mut R) -> Result<(), ScanProblem> {
    let mut magic = [0u8; 4];
    reader
        .read_exact(&mut magic)
        .map_err(|_| "is shorter than a GGUF header".to_string())?;
    if &magic != b"GGUF" {
        return Err("does not start with the GGUF magic".into());
    }
    let mut walk = Walk {
        reader,
        wide: true,
        elements: 0,
    };
    let version = walk.u32()?;
    walk.wide = match version {
        1 => false,
        2 | 3 => true,
        other => return Err(format!("has GGUF version {other}; readable: 1, 2, 3")),
    };
    let tensors = walk.length()?;
    let entries = walk.length()?;
    for (count, what) in [(tensors, "tensors"), (entries, "metadata entries")] {
        if count > MAX_GGUF_ENTRIES {
            return Err(format!(
                "declares {count} {what}; at most {MAX_GGUF_ENTRIES} are read"
            ));
        }
    }
    for _ in 0..entries {
        walk.string("a metadata key")?;
        let value_type = walk.u32()?;
        walk.value(value_type, 0)?;
    }
    for _ in 0..tensors {
        walk.string("a tensor name")?;
        let dimensions = walk.u32()?;
        if dimensions > 4 {
            return Err(format!(
                "has a tensor of {dimensions} dimensions; at most 4"
            ));
        }
        let width = if walk.wide { 8 } else { 4 };
        walk.skip(u64::from(dimensions) * width + 4 + 8)?;
    }
    Ok(())
}

impl<R: Read + Seek> Walk<'_, R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ScanProblem> {
        let mut b = [0u8; N];
        self.reader
            .read_exact(&mut b)
            .map_err(|_| "ends inside its header (truncated?)".to_string())?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, ScanProblem> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn length(&mut self) -> Result<u64, ScanProblem> {
        if self.wide {
            Ok(u64::from_le_bytes(self.bytes()?))
        } else {
            Ok(u64::from(self.u32()?))
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), ScanProblem> {
        let n = i64::try_from(n).map_err(|_| "declares a size past any file".to_string())?;
        self.reader.seek(SeekFrom::Current(n)).map_err(io)?;
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<(), ScanProblem> {
        let len = self.length()?;
        if len > MAX_GGUF_STRING_BYTES {
            return Err(format!(
                "declares {what} of {len} bytes; at most {MAX_GGUF_STRING_BYTES} are read"
            ));
        }
        self.skip(len)
    }

    /// The size on disk of a fixed-size value type, `None` for a string
    /// or an array.
    fn fixed_size(value_type: u32) -> Result<Option<u64>, ScanProblem> {
        Ok(match value_type {
            0 | 1 | 7 => Some(1), // u8, i8, bool
            2 | 3 => Some(2),     // u16, i16
            4..=6 => Some(4),     // u32, i32, f32
            10..=12 => Some(8),   // u64, i64, f64
            8 | 9 => None,        // string, array
            other => return Err(format!("has a metadata value of unknown type {other}")),
        })
    }

    fn value(&mut self, value_type: u32, depth: usize) -> Result<(), ScanProblem> {
        match (Self::fixed_size(value_type)?, value_type) {
            (Some(size), _) => self.skip(size),
            (None, 8) => self.string("a metadata string"),
            (None, _) => {
                if depth >= MAX_DEPTH {
                    return Err(format!("nests metadata arrays deeper than {MAX_DEPTH}"));
                }
                let element_type = self.u32()?;
                let len = self.length()?;
                if len > MAX_GGUF_ARRAY_ELEMENTS {
                    return Err(format!(
                        "declares a metadata array of {len} elements; at most {MAX_GGUF_ARRAY_ELEMENTS} are read"
                    ));
                }
                self.elements = self.elements.saturating_add(len);
                if self.elements > MAX_GGUF_METADATA_ELEMENTS {
                    return Err(format!(
                        "declares more than {MAX_GGUF_METADATA_ELEMENTS} metadata array elements in all"
                    ));
                }
                match Self::fixed_size(element_type)? {
                    Some(size) => self.skip(len * size),
                    None => {
                        for _ in 0..len {
                            self.value(element_type, depth + 1)?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(version: u32, tensors: u64, entries: u64, body: &[u8]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(entries.to_le_bytes());
        b.extend(body);
        b
    }

    fn string(s: &str) -> Vec<u8> {
        let mut b = (s.len() as u64).to_le_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    #[test]
    fn a_huge_array_is_refused_before_anything_is_built() {
        // One key whose value is an array of 2^40 u8: 9 bytes on disk
        // would claim a terabyte of elements.
        let mut body = string("x");
        body.extend(9u32.to_le_bytes());
        body.extend(0u32.to_le_bytes());
        body.extend((1u64 << 40).to_le_bytes());
        let e = scan_header(&mut Cursor::new(header(3, 0, 1, &body))).unwrap_err();
        assert!(
            e.contains("metadata array of 1099511627776 elements"),
            "{e}"
        );
        // A real vocabulary's size passes.
        let mut body = string("tokenizer.ggml.scores");
        body.extend(9u32.to_le_bytes());
        body.extend(6u32.to_le_bytes());
        body.extend(3u64.to_le_bytes());
        body.extend([0u8; 12]);
        assert_eq!(
            scan_header(&mut Cursor::new(header(3, 0, 1, &body))),
            Ok(())
        );
    }

    #[test]
    fn counts_strings_depth_and_versions_are_bounded() {
        let e = scan_header(&mut Cursor::new(header(3, u64::MAX, 0, &[]))).unwrap_err();
        assert!(e.contains("tensors; at most"), "{e}");
        let mut body = (u64::MAX).to_le_bytes().to_vec();
        body.extend([0u8; 8]);
        let e = scan_header(&mut Cursor::new(header(3, 0, 1, &body))).unwrap_err();
        assert!(e.contains("a metadata key of"), "{e}");
        let e = scan_header(&mut Cursor::new(header(9, 0, 0, &[]))).unwrap_err();
        assert!(e.contains("version 9"), "{e}");
        // Arrays of arrays nested past the bound.
        let mut body = string("deep");
        body.extend(9u32.to_le_bytes());
        for _ in 0..MAX_DEPTH + 1 {
            body.extend(9u32.to_le_bytes());
            body.extend(1u64.to_le_bytes());
        }
        let e = scan_header(&mut Cursor::new(header(3, 0, 1, &body))).unwrap_err();
        assert!(e.contains("deeper than"), "{e}");
        let e = scan_header(&mut Cursor::new(b"GGUF\x03".to_vec())).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }
}
