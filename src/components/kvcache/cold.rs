//! The cold tier: fixed-size slots in one file, each a checksummed block.
//!
//! Layout: a 4 KiB file header (magic, block and slot sizes, encoding),
//! then slots of `slot_bytes` (a multiple of 4 KiB, so direct I/O works),
//! each a 32-byte slot header followed by the payload:
//!
//! | bytes  | field                                         |
//! |--------|-----------------------------------------------|
//! | 0..4   | magic `KVBK`                                  |
//! | 4      | encoding (0 raw, 1 int8)                      |
//! | 8..16  | block key, little endian                      |
//! | 16..20 | payload length                                |
//! | 20..24 | CRC-32C of bytes 4..20 and the payload        |
//!
//! The index is rebuilt from slot headers when a file is reopened, so a
//! clean close needs no separate index file and a crash loses no block.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::quant::{
    Int8Block, Int8Codec, Int8Scratch, dequantize_int8, dequantize_int8_from, quantize_int8,
    quantize_int8_into,
};
use super::{BlockKey, KvCacheError, KvGeometry};
use crate::components::blockio::{
    AlignedBuf, IO_ALIGN, IoMode, ReadPool, align_up, open_block_file,
};

const FILE_MAGIC: &[u8; 8] = b"CAMPKVC1";
const SLOT_MAGIC: &[u8; 4] = b"KVBK";
const SLOT_HEADER: usize = 32;

/// How blocks are stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ColdBlockEncoding {
    /// The block's bytes as they are: exact.
    #[default]
    Raw,
    /// int8 with one f32 scale per head vector: about 4× (f32) or 2× (f16)
    /// smaller, with a bounded reconstruction error.
    Int8,
}

impl ColdBlockEncoding {
    fn tag(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Int8 => 1,
        }
    }
}

thread_local! {
    /// The int8 codec's buffers for each thread that decodes cold blocks.
    static THREAD_SCRATCH: std::cell::RefCell<Int8Scratch> = std::cell::RefCell::default();
}

/// The tier's [`SlotFormat`], borrowing only the fields it names, so that
/// the tier's buffers stay free to borrow mutably beside it.
macro_rules! slot_format {
    ($tier:expr) => {
        SlotFormat {
            path: &$tier.path,
            geometry: $tier.geometry,
            encoding: $tier.encoding,
            slot_bytes: $tier.slot_bytes,
            int8_codec: $tier.int8_codec,
        }
    };
}

pub struct ColdTier {
    path: PathBuf,
    file: File,
    geometry: KvGeometry,
    encoding: ColdBlockEncoding,
    slot_bytes: usize,
    index: HashMap<BlockKey, u64>,
    next_slot: u64,
    buf: AlignedBuf,
    payload: Vec<u8>,
    int8_codec: Int8Codec,
    int8_scratch: Int8Scratch,
    /// Slot buffers of [`Self::read_many`], grown to the largest batch.
    batch: AlignedBuf,
    reader: ReadPool,
}

impl ColdTier {
    fn max_payload(geometry: &KvGeometry, encoding: ColdBlockEncoding) -> usize {
        match encoding {
            ColdBlockEncoding::Raw => geometry.block_bytes(),
            ColdBlockEncoding::Int8 => {
                let values = geometry.block_bytes() / geometry.dtype.bytes();
                Int8Block::encoded_len(values, values / geometry.group_len())
            }
        }
    }

    fn layout_description(
        geometry: &KvGeometry,
        encoding: ColdBlockEncoding,
        slot_bytes: usize,
    ) -> String {
        format!(
            "block {} B, slot {slot_bytes} B, {encoding:?}",
            geometry.block_bytes()
        )
    }

    fn io_error(&self, source: std::io::Error) -> KvCacheError {
        KvCacheError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Opens the cold file, creating it if needed; an existing file is
    /// scanned and its blocks are found again.
    pub fn open(
        path: &Path,
        geometry: KvGeometry,
        encoding: ColdBlockEncoding,
        mode: IoMode,
    ) -> Result<Self, KvCacheError> {
        geometry.check()?;
        let io = |source| KvCacheError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_block_file(path, mode, true).map_err(io)?;
        let slot_bytes = align_up(SLOT_HEADER + Self::max_payload(&geometry, encoding));
        let mut tier = Self {
            path: path.to_path_buf(),
            file,
            geometry,
            encoding,
            slot_bytes,
            index: HashMap::new(),
            next_slot: 0,
            buf: AlignedBuf::zeroed(slot_bytes),
            payload: Vec::new(),
            int8_codec: Int8Codec::default(),
            int8_scratch: Int8Scratch::default(),
            batch: AlignedBuf::zeroed(0),
            reader: ReadPool::new(1).map_err(io)?,
        };
        let len = tier.file.metadata().map_err(io)?.len();
        if len == 0 {
            tier.write_file_header()?;
        } else {
            tier.check_file_header()?;
            tier.rebuild_index(len)?;
        }
        Ok(tier)
    }

    fn write_file_header(&mut self) -> Result<(), KvCacheError> {
        let mut header = AlignedBuf::zeroed(IO_ALIGN);
        header[..8].copy_from_slice(FILE_MAGIC);
        header[8..16].copy_from_slice(&(self.geometry.block_bytes() as u64).to_le_bytes());
        header[16..24].copy_from_slice(&(self.slot_bytes as u64).to_le_bytes());
        header[24] = self.encoding.tag();
        self.file
            .write_all_at(&header, 0)
            .map_err(|e| self.io_error(e))
    }

    fn check_file_header(&mut self) -> Result<(), KvCacheError> {
        let mut header = AlignedBuf::zeroed(IO_ALIGN);
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(|e| self.io_error(e))?;
        let read_u64 =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
        let expected = Self::layout_description(&self.geometry, self.encoding, self.slot_bytes);
        let matches = &header[..8] == FILE_MAGIC
            && read_u64(8) == self.geometry.block_bytes() as u64
            && read_u64(16) == self.slot_bytes as u64
            && header[24] == self.encoding.tag();
        if matches {
            Ok(())
        } else {
            Err(KvCacheError::LayoutMismatch {
                path: self.path.clone(),
                found: if &header[..8] == FILE_MAGIC {
                    format!(
                        "block {} B, slot {} B, encoding tag {}",
                        read_u64(8),
                        read_u64(16),
                        header[24]
                    )
                } else {
                    "not a cold-tier file".to_string()
                },
                expected,
            })
        }
    }

    /// Byte offset of a slot in the file.
    pub fn slot_offset(&self, slot: u64) -> u64 {
        IO_ALIGN as u64 + slot * self.slot_bytes as u64
    }

    fn rebuild_index(&mut self, file_len: u64) -> Result<(), KvCacheError> {
        let slots = file_len.saturating_sub(IO_ALIGN as u64) / self.slot_bytes as u64;
        let mut header = AlignedBuf::zeroed(IO_ALIGN);
        for slot in 0..slots {
            self.file
                .read_exact_at(&mut header, self.slot_offset(slot))
                .map_err(|e| self.io_error(e))?;
            if &header[..4] == SLOT_MAGIC {
                let key = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
                self.index.insert(key, slot);
            }
        }
        self.next_slot = slots;
        Ok(())
    }

    /// The slot holding a block, if it is on disk.
    pub fn slot_of(&self, key: BlockKey) -> Option<u64> {
        self.index.get(&key).copied()
    }

    pub fn contains(&self, key: BlockKey) -> bool {
        self.index.contains_key(&key)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the file occupies: header plus every slot ever written.
    pub fn disk_bytes(&self) -> u64 {
        self.slot_offset(self.next_slot)
    }

    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a block to a new slot; returns the bytes written (0 when the
    /// block is already on disk: full blocks never change).
    pub fn write(&mut self, key: BlockKey, block: &[u8]) -> Result<usize, KvCacheError> {
        if self.index.contains_key(&key) {
            return Ok(0);
        }
        if block.len() != self.geometry.block_bytes() {
            return Err(KvCacheError::BlockSize {
                got: block.len(),
                expected: self.geometry.block_bytes(),
            });
        }
        self.payload.clear();
        let (dtype, group_len) = (self.geometry.dtype, self.geometry.group_len());
        match (self.encoding, self.int8_codec) {
            (ColdBlockEncoding::Raw, _) => self.payload.extend_from_slice(block),
            (ColdBlockEncoding::Int8, Int8Codec::Scalar) => quantize_int8(block, dtype, group_len)
                .map_err(|e| KvCacheError::Geometry(e.to_string()))?
                .encode_into(&mut self.payload),
            (ColdBlockEncoding::Int8, Int8Codec::Vectorised) => quantize_int8_into(
                block,
                dtype,
                group_len,
                &mut self.int8_scratch,
                &mut self.payload,
            )
            .map_err(|e| KvCacheError::Geometry(e.to_string()))?,
        }
        let payload_len = self.payload.len();
        let buf = &mut self.buf;
        buf.fill(0);
        buf[..4].copy_from_slice(SLOT_MAGIC);
        buf[4] = self.encoding.tag();
        buf[8..16].copy_from_slice(&key.to_le_bytes());
        buf[16..20].copy_from_slice(&(payload_len as u32).to_le_bytes());
        buf[SLOT_HEADER..SLOT_HEADER + payload_len].copy_from_slice(&self.payload);
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&buf[4..20]),
            &buf[SLOT_HEADER..SLOT_HEADER + payload_len],
        );
        buf[20..24].copy_from_slice(&crc.to_le_bytes());
        let slot = self.next_slot;
        self.file
            .write_all_at(&self.buf, self.slot_offset(slot))
            .map_err(|e| self.io_error(e))?;
        self.next_slot += 1;
        self.index.insert(key, slot);
        Ok(self.slot_bytes)
    }

    /// Reads a block into `out`; `None` if it is not on disk. A block whose
    /// checksum fails is an error, never returned.
    pub fn read(&mut self, key: BlockKey, out: &mut [u8]) -> Result<Option<usize>, KvCacheError> {
        let Some(&slot) = self.index.get(&key) else {
            return Ok(None);
        };
        let offset = self.slot_offset(slot);
        if let Err(e) = self.file.read_exact_at(&mut self.buf, offset) {
            return Err(self.io_error(e));
        }
        let format = slot_format!(self);
        let verified = format.verify(&self.buf, key, slot)?;
        format.decode(verified, key, slot, &mut self.int8_scratch, out)?;
        Ok(Some(self.slot_bytes))
    }

    /// Reads several blocks at the queue depth set by
    /// [`Self::set_queue_depth`]: block `i` goes to the `i`-th block-sized
    /// chunk of `out`. Each reading thread verifies and decodes the block it
    /// read, so that this work overlaps the other reads. Returns the bytes
    /// read per block, `None` for a block not on disk (its chunk is left as
    /// it was).
    pub fn read_many(
        &mut self,
        keys: &[BlockKey],
        out: &mut [u8],
    ) -> Result<Vec<Option<usize>>, KvCacheError> {
        let block = self.geometry.block_bytes();
        if out.len() < keys.len() * block {
            return Err(KvCacheError::BlockSize {
                got: out.len(),
                expected: keys.len() * block,
            });
        }
        let slots: Vec<Option<u64>> = keys.iter().map(|k| self.index.get(k).copied()).collect();
        let offsets: Vec<Option<u64>> = slots
            .iter()
            .map(|s| s.map(|s| self.slot_offset(s)))
            .collect();
        if self.batch.len() < keys.len() * self.slot_bytes {
            self.batch = AlignedBuf::zeroed(keys.len() * self.slot_bytes);
        }
        let format = slot_format!(self);
        self.reader.read_each(
            &self.file,
            &offsets,
            &mut self.batch,
            self.slot_bytes,
            &mut out[..keys.len() * block],
            block,
            |i, buf, target| {
                let (Some(&key), Some(slot)) = (keys.get(i), slots.get(i).copied().flatten())
                else {
                    return Ok(());
                };
                let verified = format.verify(buf, key, slot)?;
                THREAD_SCRATCH.with(|scratch| {
                    format.decode(verified, key, slot, &mut scratch.borrow_mut(), target)
                })
            },
            |source| KvCacheError::Io {
                path: self.path.clone(),
                source,
            },
        )?;
        Ok(slots.iter().map(|s| s.map(|_| self.slot_bytes)).collect())
    }

    /// Reads of [`Self::read_many`] kept in flight at once (1 by default).
    pub fn set_queue_depth(&mut self, depth: usize) -> Result<(), KvCacheError> {
        if depth != self.reader.depth() {
            self.reader = ReadPool::new(depth).map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    pub fn queue_depth(&self) -> usize {
        self.reader.depth()
    }

    /// Chooses the int8 codec's implementation (the bytes on disk are the same).
    pub fn set_int8_codec(&mut self, codec: Int8Codec) {
        self.int8_codec = codec;
    }

    pub fn sync(&self) -> Result<(), KvCacheError> {
        self.file.sync_data().map_err(|e| self.io_error(e))
    }

    /// Drops the file's pages from the page cache, so buffered reads that
    /// follow come from the device. Used to measure cold reads honestly.
    pub fn drop_page_cache(&self) -> Result<(), KvCacheError> {
        crate::components::blockio::drop_page_cache(&self.file).map_err(|e| self.io_error(e))
    }
}

/// What reading a slot needs to know, borrowed from the tier so that the
/// reading threads can verify slots while the tier's buffers are in use.
#[derive(Clone, Copy)]
struct SlotFormat<'a> {
    path: &'a Path,
    geometry: KvGeometry,
    encoding: ColdBlockEncoding,
    slot_bytes: usize,
    int8_codec: Int8Codec,
}

impl SlotFormat<'_> {
    /// The slot's payload and stored checksum, unchecked.
    fn payload<'b>(&self, buf: &'b [u8]) -> (&'b [u8], u32) {
        let field = |at: usize| -> [u8; 4] { buf[at..at + 4].try_into().unwrap_or([0; 4]) };
        let payload_len = u32::from_le_bytes(field(16)) as usize;
        let end = SLOT_HEADER + payload_len.min(self.slot_bytes - SLOT_HEADER);
        (&buf[SLOT_HEADER..end], u32::from_le_bytes(field(20)))
    }

    /// The slot's payload and checksum, once its magic, key and CRC-32C
    /// are checked.
    fn verify<'b>(
        &self,
        buf: &'b [u8],
        key: BlockKey,
        slot: u64,
    ) -> Result<(&'b [u8], u32), KvCacheError> {
        let (payload, stored) = self.payload(buf);
        let stored_key = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
        let computed = crc32c::crc32c_append(crc32c::crc32c(&buf[4..20]), payload);
        if &buf[..4] != SLOT_MAGIC || stored_key != key || computed != stored {
            return Err(self.corrupt(key, slot, stored, computed));
        }
        Ok((payload, stored))
    }

    fn corrupt(&self, key: BlockKey, slot: u64, stored: u32, computed: u32) -> KvCacheError {
        KvCacheError::Corruption {
            path: self.path.to_path_buf(),
            key,
            slot,
            stored,
            computed,
        }
    }

    /// Decodes a verified payload into `out`.
    fn decode(
        &self,
        (payload, crc): (&[u8], u32),
        key: BlockKey,
        slot: u64,
        scratch: &mut Int8Scratch,
        out: &mut [u8],
    ) -> Result<(), KvCacheError> {
        match self.encoding {
            ColdBlockEncoding::Raw => out.copy_from_slice(payload),
            ColdBlockEncoding::Int8 => {
                let values = self.geometry.block_bytes() / self.geometry.dtype.bytes();
                let groups = values / self.geometry.group_len();
                // The checksum matched, so a payload that does not parse
                // was written wrong: still corruption, reported as such.
                let corrupt = || self.corrupt(key, slot, crc, crc);
                match self.int8_codec {
                    Int8Codec::Scalar => {
                        let block = Int8Block::decode(payload, groups).ok_or_else(corrupt)?;
                        dequantize_int8(&block, self.geometry.dtype, out);
                    }
                    Int8Codec::Vectorised => {
                        dequantize_int8_from(payload, groups, self.geometry.dtype, scratch, out)
                            .ok_or_else(corrupt)?
                    }
                }
            }
        }
        Ok(())
    }
}
