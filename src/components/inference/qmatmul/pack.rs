//! GGML block formats repacked once, at load, into the layouts the kernels
//! stream: [`INTERLEAVE`] rows side by side, 4 bytes of each at a time, so
//! that one 32-bit lane of a vector register sums one row's whole block
//! (GGML's repacked GEMMs do the same), and every block's scale already an
//! f32 (GGML keeps f16 scales, and K-quants 6-bit scales packed inside a
//! super-block, which the kernel would otherwise decode on every dot).
//!
//! Each repacking is exact: every weight the kernels see equals the weight
//! GGML's own dequantization gives (an f16 times a 6- or 8-bit integer fits
//! an f32's 24-bit mantissa).

use half::f16;

use super::arena::{Plain, Slab, WeightArena};

/// Elements per block of the formats the kernels use, and of activations.
pub const BLOCK: usize = 32;
/// Rows stored interleaved, 4 bytes at a time: one per 32-bit lane of a
/// 512-bit register, so a block's integer sums come out one row per lane,
/// and its scales, conversion and accumulation take one instruction for
/// all the rows (with 2 rows per register they took 8 per 16 rows).
pub const INTERLEAVE: usize = 16;
/// Bytes of a row side by side in the interleaved layout: what one lane
/// of `vpdpbusd` (or `vpmaddubsw` + `vpmaddwd`) sums.
pub const STEP: usize = 4;
/// What 8-bit quants are stored plus: unsigned, for `vpdpbusd`'s
/// unsigned × signed products, and taken back out of the integer sum as
/// `−128 · Σ a` (the activations' own block sum).
pub const Q8_OFFSET: i32 = 128;
/// Elements of a K-quant super-block.
const SUPER_BLOCK: usize = 256;

/// The GGML weight types this path runs natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeType {
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
}

impl NativeType {
    /// GGUF's name for it (as `general.file_type` tables spell it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q8_0 => "q8_0",
            Self::Q4K => "q4_K",
            Self::Q6K => "q6_K",
        }
    }

    /// Elements per GGML block and its size in bytes.
    fn ggml_block(self) -> (usize, usize) {
        match self {
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
            Self::Q4K => (256, 144),
            Self::Q6K => (256, 210),
        }
    }

    /// Bytes our layout holds for `ggml_bytes` of this type (f32 scales,
    /// K-quants' sub-block scales unpacked, q6_K's quants widened), not
    /// counting the at most 15 padding rows of a matrix.
    pub fn packed_bytes(self, ggml_bytes: u64) -> u64 {
        let (elements, block_bytes) = self.ggml_block();
        let per_32: u64 = match self {
            Self::Q8_0 => 32 + 4,
            Self::Q4_0 => 16 + 4,
            Self::Q4_1 | Self::Q4K => 16 + 8,
            Self::Q6K => 32 + 8,
        };
        (ggml_bytes / block_bytes as u64).saturating_mul(per_32 * (elements / BLOCK) as u64)
    }

    /// Whether a row of `cols` elements is whole blocks of this type.
    pub fn fits_row(self, cols: usize) -> bool {
        cols > 0 && cols.is_multiple_of(self.ggml_block().0)
    }
}

/// A weight matrix (rows × cols, GGML's `[out, in]`) in the kernels' layout.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    pub rows: usize,
    pub cols: usize,
    pub source: NativeType,
    pub body: PackedBody,
}

/// The three layouts the kernels stream. Rows come in groups of
/// [`INTERLEAVE`] (the last group padded with zero rows), and within a
/// group block `b` of every row lies side by side, [`STEP`] bytes at a
/// time: quants `[group][block][step][row][STEP bytes]`, scales
/// `[group][block][row]` (`[group][block][half][row]` for `Q8x16`). The
/// arrays lie in a [`WeightArena`].
#[derive(Debug, Clone)]
pub enum PackedBody {
    /// 8-bit quants plus [`Q8_OFFSET`] with one scale per block (q8_0).
    Q8 { qs: Slab<u8>, d: Slab<f32> },
    /// 4-bit quants, byte j of a block holding element j (low nibble) and
    /// j + 16 (high), with `w = d·q + m` per block; `m` is absent for q4_0,
    /// whose `m` is `−8·d`, so that its rows stream 20 bytes per block.
    Q4 {
        qs: Slab<u8>,
        d: Slab<f32>,
        m: Option<Slab<f32>>,
    },
    /// 8-bit quants plus [`Q8_OFFSET`] with one scale per 16 elements
    /// (q6_K, its 6-bit quants widened to bytes: 1.3× its bytes, for
    /// kernels with no bit shuffling).
    Q8x16 { qs: Slab<u8>, s: Slab<f32> },
}

/// [`PackedBody`]'s arrays row by row, as decoded from GGML's blocks,
/// before the rows are interleaved into the arena.
enum RowMajor {
    Q8 {
        qs: Vec<i8>,
        d: Vec<f32>,
    },
    Q4 {
        qs: Vec<u8>,
        d: Vec<f32>,
        m: Option<Vec<f32>>,
    },
    Q8x16 {
        qs: Vec<i8>,
        s: Vec<f32>,
    },
}

/// Why a tensor cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("{ty} rows must be whole blocks of {block}; a row here has {cols} elements")]
    RowNotWholeBlocks {
        ty: &'static str,
        block: usize,
        cols: usize,
    },
    #[error("{ty} data of {rows}×{cols} needs {expected} bytes; got {got}")]
    WrongSize {
        ty: &'static str,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("cannot map memory for {bytes} bytes of packed weights: {reason}")]
    Memory { bytes: usize, reason: String },
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// GGML's packing of the 6-bit scale and min of sub-block `j` of a q4_K
/// super-block.
fn q4k_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Puts 32 4-bit values in the kernels' nibble order.
fn pack_nibbles(values: &[u8; BLOCK], out: &mut Vec<u8>) {
    for j in 0..BLOCK / 2 {
        out.push((values[j] & 0xF) | (values[j + BLOCK / 2] << 4));
    }
}

impl PackedMatrix {
    /// Repacks `data`, a GGML tensor of `rows` × `cols` of type `ty`, into
    /// memory of its own.
    pub fn pack(ty: NativeType, rows: usize, cols: usize, data: &[u8]) -> Result<Self, PackError> {
        // The layout's bytes with the padding rows, and each array's
        // alignment (a too-small guess only costs a second mapping).
        let padded = rows.max(1).next_multiple_of(INTERLEAVE) as u64;
        let per_row = data.len() as u64 / rows.max(1) as u64;
        let bytes = ty.packed_bytes(per_row * padded) as usize + 4 * 64;
        let mut arena = WeightArena::for_bytes(bytes);
        Self::pack_in(&mut arena, ty, rows, cols, data)
    }

    /// As [`pack`](Self::pack), into `arena` beside the model's other
    /// matrices.
    pub fn pack_in(
        arena: &mut WeightArena,
        ty: NativeType,
        rows: usize,
        cols: usize,
        data: &[u8],
    ) -> Result<Self, PackError> {
        let (block, block_bytes) = ty.ggml_block();
        if !ty.fits_row(cols) {
            return Err(PackError::RowNotWholeBlocks {
                ty: ty.name(),
                block,
                cols,
            });
        }
        let blocks = rows * (cols / block);
        let expected = blocks * block_bytes;
        if data.len() != expected {
            return Err(PackError::WrongSize {
                ty: ty.name(),
                rows,
                cols,
                expected,
                got: data.len(),
            });
        }
        let n32 = rows * cols / BLOCK;
        let chunks = data.chunks_exact(block_bytes);
        let body = match ty {
            NativeType::Q8_0 => {
                let mut qs = Vec::with_capacity(rows * cols);
                let mut d = Vec::with_capacity(n32);
                for b in chunks {
                    d.push(f16_at(b, 0));
                    qs.extend(b[2..34].iter().map(|&q| q as i8));
                }
                RowMajor::Q8 { qs, d }
            }
            NativeType::Q4_0 | NativeType::Q4_1 => {
                let mut qs = Vec::with_capacity(rows * cols / 2);
                let mut d = Vec::with_capacity(n32);
                let mut m = (ty == NativeType::Q4_1).then(|| Vec::with_capacity(n32));
                for b in chunks {
                    d.push(f16_at(b, 0));
                    let quants = match m.as_mut() {
                        Some(m) => {
                            m.push(f16_at(b, 2));
                            &b[4..20]
                        }
                        None => &b[2..18],
                    };
                    // GGML's own nibble order is the kernels' order.
                    qs.extend_from_slice(quants);
                }
                RowMajor::Q4 { qs, d, m }
            }
            NativeType::Q4K => {
                let mut qs = Vec::with_capacity(rows * cols / 2);
                let mut d = Vec::with_capacity(n32);
                let mut m = Vec::with_capacity(n32);
                for b in chunks {
                    let (sd, smin) = (f16_at(b, 0), f16_at(b, 2));
                    let scales = &b[4..16];
                    let q = &b[16..144];
                    // Each 64 elements are 32 bytes: low nibbles the first
                    // sub-block, high nibbles the second.
                    for pair in 0..SUPER_BLOCK / 64 {
                        let bytes = &q[pair * 32..pair * 32 + 32];
                        for half in 0..2 {
                            let (sc, mn) = q4k_scale_min(pair * 2 + half, scales);
                            d.push(sd * f32::from(sc));
                            m.push(-(smin * f32::from(mn)));
                            let mut values = [0u8; BLOCK];
                            for (v, byte) in values.iter_mut().zip(bytes) {
                                *v = if half == 0 { byte & 0xF } else { byte >> 4 };
                            }
                            pack_nibbles(&values, &mut qs);
                        }
                    }
                }
                RowMajor::Q4 { qs, d, m: Some(m) }
            }
            NativeType::Q6K => {
                let mut qs = vec![0i8; rows * cols];
                let mut s = Vec::with_capacity(rows * cols / 16);
                for (i, b) in chunks.enumerate() {
                    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
                    let d = f16_at(b, 208);
                    let out = &mut qs[i * SUPER_BLOCK..(i + 1) * SUPER_BLOCK];
                    // GGML's dequantize_row_q6_K, element by element.
                    for n in 0..2 {
                        let (ql, qh) = (&ql[n * 64..], &qh[n * 32..]);
                        let y = &mut out[n * 128..];
                        for l in 0..32 {
                            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                            y[l] = q1;
                            y[l + 32] = q2;
                            y[l + 64] = q3;
                            y[l + 96] = q4;
                        }
                    }
                    s.extend(scales.iter().map(|&sc| d * f32::from(sc as i8)));
                }
                RowMajor::Q8x16 { qs, s }
            }
        };
        Ok(Self {
            rows,
            cols,
            source: ty,
            body: interleave(arena, body, rows, cols / BLOCK)?,
        })
    }

    /// Groups of [`INTERLEAVE`] rows (the last one padded).
    pub fn groups(&self) -> usize {
        self.rows.div_ceil(INTERLEAVE)
    }

    /// Bytes the kernels read for one pass over the matrix.
    pub fn streamed_bytes(&self) -> usize {
        match &self.body {
            PackedBody::Q8 { qs, d } => qs.len() + 4 * d.len(),
            PackedBody::Q4 { qs, d, m } => {
                qs.len() + 4 * d.len() + m.as_ref().map_or(0, |m| 4 * m.len())
            }
            PackedBody::Q8x16 { qs, s } => qs.len() + 4 * s.len(),
        }
    }

    /// Index in `d` or `m` of block `b` of `row` (`half` 0 or 1 of the
    /// block in `Q8x16`'s `s`).
    pub(super) fn scale_index(&self, row: usize, b: usize, half: usize) -> usize {
        let nb = self.cols / BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        let halves = usize::from(matches!(self.body, PackedBody::Q8x16 { .. })) + 1;
        ((g * nb + b) * halves + half) * INTERLEAVE + r
    }

    /// Index in `qs` of byte `j` of block `b` of `row` (element `j` of an
    /// 8-bit block; elements `j` and `j + 16` of a 4-bit one).
    fn quant_index(&self, row: usize, b: usize, j: usize) -> usize {
        let nb = self.cols / BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        let block_bytes = match self.body {
            PackedBody::Q4 { .. } => BLOCK / 2,
            _ => BLOCK,
        };
        (g * nb + b) * INTERLEAVE * block_bytes + ((j / STEP) * INTERLEAVE + r) * STEP + j % STEP
    }

    /// Row `row` as the kernels see it, in f32 (for tests and references).
    pub fn dequantize_row(&self, row: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.cols];
        for (b, y) in out.chunks_exact_mut(BLOCK).enumerate() {
            let i = self.scale_index(row, b, 0);
            let q8 = |qs: &[u8], j: usize| {
                (i32::from(qs[self.quant_index(row, b, j)]) - Q8_OFFSET) as f32
            };
            match &self.body {
                PackedBody::Q8 { qs, d } => {
                    for (j, y) in y.iter_mut().enumerate() {
                        *y = q8(qs, j) * d[i];
                    }
                }
                PackedBody::Q4 { qs, d, m } => {
                    let min = m.as_ref().map_or(-8.0 * d[i], |m| m[i]);
                    for j in 0..BLOCK / 2 {
                        let byte = qs[self.quant_index(row, b, j)];
                        y[j] = f32::from(byte & 0xF) * d[i] + min;
                        y[j + 16] = f32::from(byte >> 4) * d[i] + min;
                    }
                }
                PackedBody::Q8x16 { qs, s } => {
                    for (j, y) in y.iter_mut().enumerate() {
                        *y = q8(qs, j) * s[self.scale_index(row, b, j / 16)];
                    }
                }
            }
        }
        out
    }

    /// The constant term `m` of block `b` of `row` (`w = d·q + m`): 0 for
    /// 8-bit types.
    pub fn block_constant(&self, row: usize, b: usize) -> f32 {
        let i = self.scale_index(row, b, 0);
        match &self.body {
            PackedBody::Q4 { d, m, .. } => m.as_ref().map_or(-8.0 * d[i], |m| m[i]),
            _ => 0.0,
        }
    }
}

/// Reorders row-major blocks (`per_block` items each) into groups of
/// [`INTERLEAVE`] rows, `chunk` items of each row at a time —
/// `[group][block][per_block / chunk][row][chunk]` — padding the last
/// group with `zero`, and stores them in `arena`. Quants go [`STEP`] bytes
/// at a time, scales one at a time.
fn interleave_items<T: Plain>(
    arena: &mut WeightArena,
    items: &[T],
    rows: usize,
    nb: usize,
    (per_block, chunk): (usize, usize),
    zero: T,
) -> Result<Slab<T>, PackError> {
    let groups = rows.div_ceil(INTERLEAVE);
    let mut out = Vec::with_capacity(groups * INTERLEAVE * nb * per_block);
    for g in 0..groups {
        for b in 0..nb {
            for k in 0..per_block / chunk {
                for r in 0..INTERLEAVE {
                    let row = g * INTERLEAVE + r;
                    if row < rows {
                        out.extend_from_slice(
                            &items[(row * nb + b) * per_block + k * chunk..][..chunk],
                        );
                    } else {
                        out.extend(std::iter::repeat_n(zero, chunk));
                    }
                }
            }
        }
    }
    store(arena, &out)
}

fn store<T: Plain>(arena: &mut WeightArena, items: &[T]) -> Result<Slab<T>, PackError> {
    arena.store(items).map_err(|e| PackError::Memory {
        bytes: std::mem::size_of_val(items),
        reason: e.to_string(),
    })
}

fn interleave(
    arena: &mut WeightArena,
    body: RowMajor,
    rows: usize,
    nb: usize,
) -> Result<PackedBody, PackError> {
    // 8-bit quants plus the offset: `q as u8 ^ 0x80` is `q + 128`.
    let offset = |qs: &[i8]| -> Vec<u8> { qs.iter().map(|&q| q as u8 ^ 0x80).collect() };
    let zero8 = Q8_OFFSET as u8;
    Ok(match body {
        RowMajor::Q8 { qs, d } => PackedBody::Q8 {
            d: interleave_items(arena, &d, rows, nb, (1, 1), 0.0)?,
            qs: interleave_items(arena, &offset(&qs), rows, nb, (BLOCK, STEP), zero8)?,
        },
        RowMajor::Q4 { qs, d, m } => PackedBody::Q4 {
            d: interleave_items(arena, &d, rows, nb, (1, 1), 0.0)?,
            m: m.map(|m| interleave_items(arena, &m, rows, nb, (1, 1), 0.0))
                .transpose()?,
            qs: interleave_items(arena, &qs, rows, nb, (BLOCK / 2, STEP), 0)?,
        },
        RowMajor::Q8x16 { qs, s } => PackedBody::Q8x16 {
            s: interleave_items(arena, &s, rows, nb, (2, 1), 0.0)?,
            qs: interleave_items(arena, &offset(&qs), rows, nb, (BLOCK, STEP), zero8)?,
        },
    })
}
