//! GGML block formats repacked once, at load, into the layouts the kernels
//! stream: quants of one row contiguous, and every block's scale already an
//! f32 (GGML keeps f16 scales, and K-quants 6-bit scales packed inside a
//! super-block, which the kernel would otherwise decode on every dot).
//!
//! Each repacking is exact: every weight the kernels see equals the weight
//! GGML's own dequantization gives (an f16 times a 6- or 8-bit integer fits
//! an f32's 24-bit mantissa).

use half::f16;

/// Elements per block of the formats the kernels use, and of activations.
pub const BLOCK: usize = 32;
/// Rows stored interleaved, block by block: a kernel computing this many
/// rows at once (their sums are independent chains, which hide each
/// other's latency) reads one contiguous stream.
pub const INTERLEAVE: usize = 4;
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
    /// counting the at most 3 padding rows of a matrix.
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
/// group block `b` of each row lies side by side: quants
/// `[group][block][row][bytes of a block]`, scales `[group][block][row]`
/// (two per row for `Q8x16`).
#[derive(Debug, Clone)]
pub enum PackedBody {
    /// Signed 8-bit quants with one scale per block (q8_0).
    Q8 { qs: Vec<i8>, d: Vec<f32> },
    /// 4-bit quants, byte j of a block holding element j (low nibble) and
    /// j + 16 (high), with `w = d·q + m` per block; `m` is absent for q4_0,
    /// whose `m` is `−8·d`, so that its rows stream 20 bytes per block.
    Q4 {
        qs: Vec<u8>,
        d: Vec<f32>,
        m: Option<Vec<f32>>,
    },
    /// Signed 8-bit quants with one scale per 16 elements (q6_K, its 6-bit
    /// quants widened to bytes: 1.3× its bytes, for kernels with no bit
    /// shuffling).
    Q8x16 { qs: Vec<i8>, s: Vec<f32> },
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
    /// Repacks `data`, a GGML tensor of `rows` × `cols` of type `ty`.
    pub fn pack(ty: NativeType, rows: usize, cols: usize, data: &[u8]) -> Result<Self, PackError> {
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
                PackedBody::Q8 { qs, d }
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
                PackedBody::Q4 { qs, d, m }
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
                PackedBody::Q4 { qs, d, m: Some(m) }
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
                PackedBody::Q8x16 { qs, s }
            }
        };
        Ok(Self {
            rows,
            cols,
            source: ty,
            body: interleave(body, rows, cols / BLOCK),
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

    /// Row `row` as the kernels see it, in f32 (for tests and references).
    pub fn dequantize_row(&self, row: usize) -> Vec<f32> {
        let nb = self.cols / BLOCK;
        let (g, r) = (row / INTERLEAVE, row % INTERLEAVE);
        // Index of (row, block b) among the blocks of the interleaved layout.
        let at = |b: usize| (g * nb + b) * INTERLEAVE + r;
        let mut out = vec![0f32; self.cols];
        for (b, y) in out.chunks_exact_mut(BLOCK).enumerate() {
            let i = at(b);
            match &self.body {
                PackedBody::Q8 { qs, d } => {
                    for (y, &q) in y.iter_mut().zip(&qs[i * BLOCK..][..BLOCK]) {
                        *y = f32::from(q) * d[i];
                    }
                }
                PackedBody::Q4 { qs, d, m } => {
                    let min = m.as_ref().map_or(-8.0 * d[i], |m| m[i]);
                    let bytes = &qs[i * 16..][..16];
                    for j in 0..16 {
                        y[j] = f32::from(bytes[j] & 0xF) * d[i] + min;
                        y[j + 16] = f32::from(bytes[j] >> 4) * d[i] + min;
                    }
                }
                PackedBody::Q8x16 { qs, s } => {
                    for (j, (y, &q)) in y.iter_mut().zip(&qs[i * BLOCK..][..BLOCK]).enumerate() {
                        *y = f32::from(q) * s[2 * i + j / 16];
                    }
                }
            }
        }
        out
    }
}

/// Reorders row-major blocks (`per_block` items each) into groups of
/// [`INTERLEAVE`] rows, block by block, padding the last group with
/// `zero`s.
fn interleave_items<T: Copy>(
    items: &[T],
    rows: usize,
    nb: usize,
    per_block: usize,
    zero: T,
) -> Vec<T> {
    let groups = rows.div_ceil(INTERLEAVE);
    let mut out = Vec::with_capacity(groups * INTERLEAVE * nb * per_block);
    for g in 0..groups {
        for b in 0..nb {
            for r in 0..INTERLEAVE {
                let row = g * INTERLEAVE + r;
                if row < rows {
                    out.extend_from_slice(&items[(row * nb + b) * per_block..][..per_block]);
                } else {
                    out.extend(std::iter::repeat_n(zero, per_block));
                }
            }
        }
    }
    out
}

fn interleave(body: PackedBody, rows: usize, nb: usize) -> PackedBody {
    match body {
        PackedBody::Q8 { qs, d } => PackedBody::Q8 {
            qs: interleave_items(&qs, rows, nb, BLOCK, 0),
            d: interleave_items(&d, rows, nb, 1, 0.0),
        },
        PackedBody::Q4 { qs, d, m } => PackedBody::Q4 {
            qs: interleave_items(&qs, rows, nb, BLOCK / 2, 0),
            d: interleave_items(&d, rows, nb, 1, 0.0),
            m: m.map(|m| interleave_items(&m, rows, nb, 1, 0.0)),
        },
        PackedBody::Q8x16 { qs, s } => PackedBody::Q8x16 {
            qs: interleave_items(&qs, rows, nb, BLOCK, 0),
            s: interleave_items(&s, rows, nb, 2, 0.0),
        },
    }
}
