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
pub const SUPER_BLOCK: usize = 256;
/// Our blocks per K-quant super-block.
pub const BLOCKS_PER_SUPER: usize = SUPER_BLOCK / BLOCK;
/// What q6_K's 6-bit quants are stored plus (GGML's own offset), taken
/// back out of each half-block's sum as `−32 · Σ a`.
pub const Q6_OFFSET: i32 = 32;

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

    /// Bytes our layout holds for `ggml_bytes` of this type, not counting
    /// the at most 15 padding rows of a matrix: f32 scales where GGML has
    /// f16 ones; for K-quants, each sub-block's scale (and min) a byte and
    /// the super-block's f32 factors, as in GGML but for the 6-bit packing.
    pub fn packed_bytes(self, ggml_bytes: u64) -> u64 {
        let (elements, block_bytes) = self.ggml_block();
        let per_super_block: u64 = match self {
            Self::Q8_0 => 8 * (32 + 4),
            Self::Q4_0 => 8 * (16 + 4),
            Self::Q4_1 => 8 * (16 + 8),
            Self::Q4K => 128 + 8 * 2 + 2 * 4,
            Self::Q6K => 128 + 64 + 16 + 4,
        };
        let elements = (ggml_bytes / block_bytes as u64).saturating_mul(elements as u64);
        elements.saturating_mul(per_super_block) / SUPER_BLOCK as u64
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
/// `[group][block][row]` (`[group][block][half][row]` for `Q6`). The
/// arrays lie in a [`WeightArena`].
///
/// Decode streams every byte once per token and is bound by memory, so
/// each layout holds about as many bytes as GGML's own (q4_K 1.06×, q6_K
/// 1.01×; when q6_K's quants were widened to bytes and its scales were
/// f32, it streamed 1.52× and decoded at 0.67× llama.cpp's speed).
#[derive(Debug, Clone)]
pub enum PackedBody {
    /// 8-bit quants plus [`Q8_OFFSET`] with one scale per block (q8_0).
    Q8 { qs: Slab<u8>, d: Slab<f32> },
    /// 4-bit quants, byte j of a block holding element j (low nibble) and
    /// j + 16 (high), with `w = d·q + m` per block; `m` is absent for q4_0,
    /// whose `m` is `−8·d`, so that its rows stream 20 bytes per block.
    Q4 {
        qs: Slab<u8>,
        d: Scales,
        m: Option<Scales>,
    },
    /// q6_K: the low 4 bits of each 6-bit quant as in `Q4`, the high 2 in
    /// `qh` (see [`pack_high_bits`]), one scale per half-block (16
    /// elements), `w = s·(q − 32)`.
    Q6 {
        ql: Slab<u8>,
        qh: Slab<u8>,
        s: Scales,
    },
}

/// A layout's scales (or constant terms), one per block of 32 elements
/// (per half-block for `Q6`) and row.
#[derive(Debug, Clone)]
pub enum Scales {
    /// `[group][block][row]`.
    F32(Slab<f32>),
    /// K-quants: the sub-block's integer scale `q` (`[group][block][row]`)
    /// times the super-block's factor `d` (`[group][super-block][row]`),
    /// each product exact in f32 (GGML's f16 times an integer of at most
    /// 8 bits), and 1 byte per block where an f32 took 4.
    Super { q: Slab<i8>, d: Slab<f32> },
}

impl Scales {
    /// The scale at index `i` of its layout, whose super-block factor (if
    /// any) is at `super_i` (see [`PackedMatrix::scale_index`] and
    /// [`PackedMatrix::super_index`]).
    pub(super) fn value(&self, i: usize, super_i: usize) -> f32 {
        match self {
            Self::F32(d) => d[i],
            Self::Super { q, d } => d[super_i] * f32::from(q[i]),
        }
    }

    /// Bytes of the arrays.
    fn bytes(&self) -> usize {
        match self {
            Self::F32(d) => 4 * d.len(),
            Self::Super { q, d } => q.len() + 4 * d.len(),
        }
    }
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
        d: RowScales,
        m: Option<RowScales>,
    },
    Q6 {
        ql: Vec<u8>,
        qh: Vec<u8>,
        s: RowScales,
    },
}

/// [`Scales`] row by row.
enum RowScales {
    F32(Vec<f32>),
    Super { q: Vec<i8>, d: Vec<f32> },
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

/// Puts the low 4 bits of 32 values in the kernels' nibble order.
fn pack_nibbles(values: &[u8; BLOCK], out: &mut Vec<u8>) {
    for j in 0..BLOCK / 2 {
        out.push((values[j] & 0xF) | ((values[j + BLOCK / 2] & 0xF) << 4));
    }
}

/// The high 2 bits of 32 six-bit values, 8 bytes in the order the kernels
/// unpack them: byte `4p + k` serves the nibble steps `2p` and `2p + 1`
/// (elements `8p + k`, `16 + 8p + k`, `8p + 4 + k`, `20 + 8p + k`, two
/// bits each from the lowest), so one 4-byte lane per row covers two
/// steps and each value's bits come out with one shift and one mask.
pub fn pack_high_bits(values: &[u8; BLOCK], out: &mut Vec<u8>) {
    let high = |e: usize| values[e] >> 4;
    for p in 0..2 {
        for k in 0..STEP {
            let lo = 8 * p + k;
            out.push(high(lo) | high(16 + lo) << 2 | high(lo + 4) << 4 | high(20 + lo) << 6);
        }
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
                RowMajor::Q4 {
                    qs,
                    d: RowScales::F32(d),
                    m: m.map(RowScales::F32),
                }
            }
            NativeType::Q4K => {
                let mut qs = Vec::with_capacity(rows * cols / 2);
                let supers = rows * cols / SUPER_BLOCK;
                let (mut dq, mut d) = (Vec::with_capacity(n32), Vec::with_capacity(supers));
                let (mut mq, mut m) = (Vec::with_capacity(n32), Vec::with_capacity(supers));
                for b in chunks {
                    // `w = d·sc·q − dmin·mn`: the sub-block's integers
                    // times the super-block's factors.
                    d.push(f16_at(b, 0));
                    m.push(-f16_at(b, 2));
                    let scales = &b[4..16];
                    let q = &b[16..144];
                    // Each 64 elements are 32 bytes: low nibbles the first
                    // sub-block, high nibbles the second.
                    for pair in 0..SUPER_BLOCK / 64 {
                        let bytes = &q[pair * 32..pair * 32 + 32];
                        for half in 0..2 {
                            let (sc, mn) = q4k_scale_min(pair * 2 + half, scales);
                            // 6-bit values: both fit an i8.
                            dq.push(sc as i8);
                            mq.push(mn as i8);
                            let mut values = [0u8; BLOCK];
                            for (v, byte) in values.iter_mut().zip(bytes) {
                                *v = if half == 0 { byte & 0xF } else { byte >> 4 };
                            }
                            pack_nibbles(&values, &mut qs);
                        }
                    }
                }
                RowMajor::Q4 {
                    qs,
                    d: RowScales::Super { q: dq, d },
                    m: Some(RowScales::Super { q: mq, d: m }),
                }
            }
            NativeType::Q6K => {
                let mut ql = Vec::with_capacity(rows * cols / 2);
                let mut qh = Vec::with_capacity(rows * cols / 4);
                let mut sq = Vec::with_capacity(rows * cols / 16);
                let mut d = Vec::with_capacity(rows * cols / SUPER_BLOCK);
                for b in chunks {
                    let (low, high, scales) = (&b[0..128], &b[128..192], &b[192..208]);
                    d.push(f16_at(b, 208));
                    sq.extend(scales.iter().map(|&sc| sc as i8));
                    // GGML's dequantize_row_q6_K, element by element, the
                    // values kept as 0..63 (GGML subtracts 32 here).
                    let mut values = [0u8; SUPER_BLOCK];
                    for n in 0..2 {
                        let (low, high) = (&low[n * 64..], &high[n * 32..]);
                        let y = &mut values[n * 128..];
                        for l in 0..32 {
                            y[l] = (low[l] & 0xF) | ((high[l] & 3) << 4);
                            y[l + 32] = (low[l + 32] & 0xF) | (((high[l] >> 2) & 3) << 4);
                            y[l + 64] = (low[l] >> 4) | (((high[l] >> 4) & 3) << 4);
                            y[l + 96] = (low[l + 32] >> 4) | (((high[l] >> 6) & 3) << 4);
                        }
                    }
                    for block in values.chunks_exact(BLOCK) {
                        let mut v = [0u8; BLOCK];
                        v.copy_from_slice(block);
                        pack_nibbles(&v, &mut ql);
                        pack_high_bits(&v, &mut qh);
                    }
                }
                RowMajor::Q6 {
                    ql,
                    qh,
                    s: RowScales::Super { q: sq, d },
                }
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
                qs.len() + d.bytes() + m.as_ref().map_or(0, Scales::bytes)
            }
            PackedBody::Q6 { ql, qh, s } => ql.len() + qh.len() + s.bytes(),
        }
    }

    /// Scales per block: two for `Q6` (one per half), else one.
    fn scales_per_block(&self) -> usize {
        usize::from(matches!(self.body, PackedBody::Q6 { .. })) + 1
    }

    /// Index in `d`, `m` or `s` of block `b` of `row` (`half` 0 or 1 of
    /// the block in `Q6`'s `s`).
    pub(super) fn scale_index(&self, row: usize, b: usize, half: usize) -> usize {
        let nb = self.cols / BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        ((g * nb + b) * self.scales_per_block() + half) * INTERLEAVE + r
    }

    /// Index of the super-block factor of block `b` of `row`, in a
    /// [`Scales::Super`].
    pub(super) fn super_index(&self, row: usize, b: usize) -> usize {
        let supers = self.cols / SUPER_BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        (g * supers + b / BLOCKS_PER_SUPER) * INTERLEAVE + r
    }

    /// The value of `scales` at block `b` (half `half` for `Q6`) of `row`.
    fn scale(&self, scales: &Scales, row: usize, b: usize, half: usize) -> f32 {
        scales.value(self.scale_index(row, b, half), self.super_index(row, b))
    }

    /// Index in `qs` (or `ql`) of byte `j` of block `b` of `row` (element
    /// `j` of an 8-bit block; elements `j` and `j + 16` of a 4-bit one).
    fn quant_index(&self, row: usize, b: usize, j: usize) -> usize {
        let nb = self.cols / BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        let block_bytes = match self.body {
            PackedBody::Q8 { .. } => BLOCK,
            _ => BLOCK / 2,
        };
        (g * nb + b) * INTERLEAVE * block_bytes + ((j / STEP) * INTERLEAVE + r) * STEP + j % STEP
    }

    /// Row `row` as the kernels see it, in f32 (for tests and references).
    pub fn dequantize_row(&self, row: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.cols];
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        let nb = self.cols / BLOCK;
        for (b, y) in out.chunks_exact_mut(BLOCK).enumerate() {
            match &self.body {
                PackedBody::Q8 { qs, d } => {
                    let scale = d[self.scale_index(row, b, 0)];
                    for (j, y) in y.iter_mut().enumerate() {
                        let q = i32::from(qs[self.quant_index(row, b, j)]) - Q8_OFFSET;
                        *y = q as f32 * scale;
                    }
                }
                PackedBody::Q4 { qs, d, .. } => {
                    let scale = self.scale(d, row, b, 0);
                    let min = self.block_constant(row, b);
                    for j in 0..BLOCK / 2 {
                        let byte = qs[self.quant_index(row, b, j)];
                        y[j] = f32::from(byte & 0xF) * scale + min;
                        y[j + 16] = f32::from(byte >> 4) * scale + min;
                    }
                }
                PackedBody::Q6 { ql, qh, s } => {
                    // The block's 8 high-bit bytes of this row, in
                    // `pack_high_bits`' order.
                    let high = |p: usize, k: usize| {
                        qh[((g * nb + b) * 2 + p) * INTERLEAVE * STEP + r * STEP + k]
                    };
                    for j in 0..BLOCK / 2 {
                        let byte = ql[self.quant_index(row, b, j)];
                        let (p, k, second) = (j / 8, j % STEP, (j / STEP) % 2);
                        let bits = high(p, k) >> (4 * second);
                        for (e, nibble, h) in [
                            (j, byte & 0xF, bits & 3),
                            (j + 16, byte >> 4, bits >> 2 & 3),
                        ] {
                            let q = i32::from(nibble | h << 4) - Q6_OFFSET;
                            y[e] = q as f32 * self.scale(s, row, b, e / 16);
                        }
                    }
                }
            }
        }
        out
    }

    /// The constant term `m` of block `b` of `row` (`w = d·q + m`): 0 for
    /// 8-bit types, and for `Q6`, whose offset is in its quants.
    pub fn block_constant(&self, row: usize, b: usize) -> f32 {
        match &self.body {
            PackedBody::Q4 { d, m, .. } => match m {
                Some(m) => self.scale(m, row, b, 0),
                None => -8.0 * self.scale(d, row, b, 0),
            },
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
    let scales = |arena: &mut WeightArena, s: RowScales, per_block: usize| {
        Ok::<_, PackError>(match s {
            RowScales::F32(d) => {
                Scales::F32(interleave_items(arena, &d, rows, nb, (per_block, 1), 0.0)?)
            }
            RowScales::Super { q, d } => Scales::Super {
                q: interleave_items(arena, &q, rows, nb, (per_block, 1), 0)?,
                d: interleave_items(arena, &d, rows, nb / BLOCKS_PER_SUPER, (1, 1), 0.0)?,
            },
        })
    };
    Ok(match body {
        RowMajor::Q8 { qs, d } => PackedBody::Q8 {
            d: interleave_items(arena, &d, rows, nb, (1, 1), 0.0)?,
            qs: interleave_items(arena, &offset(&qs), rows, nb, (BLOCK, STEP), zero8)?,
        },
        RowMajor::Q4 { qs, d, m } => PackedBody::Q4 {
            d: scales(arena, d, 1)?,
            m: m.map(|m| scales(arena, m, 1)).transpose()?,
            qs: interleave_items(arena, &qs, rows, nb, (BLOCK / 2, STEP), 0)?,
        },
        RowMajor::Q6 { ql, qh, s } => PackedBody::Q6 {
            s: scales(arena, s, 2)?,
            ql: interleave_items(arena, &ql, rows, nb, (BLOCK / 2, STEP), 0)?,
            qh: interleave_items(arena, &qh, rows, nb, (BLOCK / 4, STEP), 0)?,
        },
    })
}
