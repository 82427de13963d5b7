//! Our own quantized matrix products for GGUF models: weights repacked once
//! at load (`pack`), activations quantized once per token per layer
//! (`activations`), int8 dot-product kernels chosen at run time for this CPU
//! (`kernels`), and threads over output rows on the run's rayon pool.

mod activations;
mod arena;
mod kernels;
mod pack;

pub use activations::QuantizedActivations;
pub use arena::{Slab, WeightArena};
pub use kernels::{Isa, TILE};
pub use pack::{BLOCK, INTERLEAVE, NativeType, PackError, PackedBody, PackedMatrix, Scales};

use kernels::RowGroup;
use rayon::prelude::*;

/// Tokens whose activations one pass over a chunk of rows reuses: with
/// rows of up to a few KiB, 64 tokens' activations stay in L2 while the
/// row streams from L1.
const TOKEN_TILE: usize = 64;

/// Below this many multiply-adds, one thread does the whole product (a
/// rayon hand-off costs microseconds).
const PARALLEL_MIN_MACS: usize = 1 << 18;

impl PackedMatrix {
    /// Every row for `tokens` into `out` (`tokens.len()` rows of
    /// `self.rows`): token tiles that stay in L2 while the groups stream,
    /// [`TILE`] tokens per kernel call.
    fn prefill_into(&self, isa: Isa, tokens: &[activations::TokenRef<'_>], out: &mut [f32]) {
        let mut values = [0f32; INTERLEAVE * TILE];
        for (tile_index, tile) in tokens.chunks(TOKEN_TILE).enumerate() {
            for g in 0..self.groups() {
                let group = RowGroup {
                    body: &self.body,
                    cols: self.cols,
                    group: g,
                };
                let rows = INTERLEAVE.min(self.rows - g * INTERLEAVE);
                for (j, chunk) in tile.chunks(TILE).enumerate() {
                    let width = chunk.len();
                    let values = &mut values[..INTERLEAVE * width];
                    kernels::dot(isa, group, chunk, values);
                    let first_token = tile_index * TOKEN_TILE + j * TILE;
                    for t in 0..width {
                        let at = (first_token + t) * self.rows + g * INTERLEAVE;
                        for r in 0..rows {
                            out[at + r] = values[r * width + t];
                        }
                    }
                }
            }
        }
    }

    /// `x · selfᵀ` into `out` (`x.tokens` rows of `self.rows`), with the
    /// fastest kernels this CPU has.
    pub fn matmul(&self, x: &QuantizedActivations, out: &mut [f32]) {
        self.matmul_with(Isa::best(), x, out);
    }

    /// As [`matmul`](Self::matmul) with the kernels of `isa`, which falls
    /// back to the portable ones where this CPU lacks it.
    pub fn matmul_with(&self, isa: Isa, x: &QuantizedActivations, out: &mut [f32]) {
        assert_eq!(out.len(), x.tokens * self.rows, "output of the wrong size");
        match x.tokens {
            0 => {}
            1 => {
                if let Some(padded) = decode_many(isa, &[self], x).first() {
                    out.copy_from_slice(&padded[..self.rows]);
                }
            }
            _ => self.prefill(isa, x, out),
        }
    }

    /// Prefill: tasks split the tokens, each streams every group and
    /// writes its tokens' rows of `out` in place.
    fn prefill(&self, isa: Isa, x: &QuantizedActivations, out: &mut [f32]) {
        assert_eq!(x.cols, self.cols, "activations and weights disagree on K");
        let isa = if isa.supported() { isa } else { Isa::Portable };
        let n = x.tokens;
        let tokens: Vec<_> = (0..n).map(|t| x.token(t)).collect();
        let threads = rayon::current_num_threads();
        let parallel = threads > 1 && self.rows * self.cols * n >= PARALLEL_MIN_MACS;
        let per_task = n.div_ceil(if parallel { threads } else { 1 });
        let task = |(c, out): (usize, &mut [f32])| {
            let first = c * per_task;
            let mine = &tokens[first..first + out.len() / self.rows];
            self.prefill_into(isa, mine, out);
        };
        if parallel {
            out.par_chunks_mut(per_task * self.rows)
                .enumerate()
                .for_each(task);
        } else {
            task((0, out));
        }
    }
}

/// `x · wᵀ` for each of `matrices`, which read the same activations (q,
/// k and v; gate and up): one output of `x.tokens · rows` each.
///
/// Decode runs all of them in one parallel region. Why: a decode step's
/// products take ~30 µs each, about what a pool thread takes to wake, and
/// with one region per product the calling thread did two thirds of the
/// kernels' work at 2 threads (`perf` by thread, the 135M shape at q4_0);
/// with one region per input it does 57 %. (That decode's tokens/s did
/// not change measurably: two cores share one memory bandwidth there.)
pub fn matmul_many(matrices: &[&PackedMatrix], x: &QuantizedActivations) -> Vec<Vec<f32>> {
    let isa = Isa::best();
    if x.tokens != 1 {
        return matrices
            .iter()
            .map(|m| {
                let mut out = vec![0f32; x.tokens * m.rows];
                m.prefill(isa, x, &mut out);
                out
            })
            .collect();
    }
    let mut outs = decode_many(isa, matrices, x);
    for (out, m) in outs.iter_mut().zip(matrices) {
        out.truncate(m.rows);
    }
    outs
}

/// One token through every matrix: each output padded to whole groups,
/// the groups of all the matrices split among the pool's threads, a few
/// chunks per thread so that one slow core does not hold the others
/// (groups are equal work within a matrix).
fn decode_many(isa: Isa, matrices: &[&PackedMatrix], x: &QuantizedActivations) -> Vec<Vec<f32>> {
    assert_eq!(x.tokens, 1, "decode is one token");
    let isa = if isa.supported() { isa } else { Isa::Portable };
    let token = [x.token(0)];
    let mut outs: Vec<Vec<f32>> = matrices
        .iter()
        .map(|m| {
            assert_eq!(x.cols, m.cols, "activations and weights disagree on K");
            vec![0f32; m.groups() * INTERLEAVE]
        })
        .collect();
    let by_group = |m: &PackedMatrix, rows: &mut [f32], first_group: usize| {
        for (g, group_out) in rows.chunks_exact_mut(INTERLEAVE).enumerate() {
            let group = RowGroup {
                body: &m.body,
                cols: m.cols,
                group: first_group + g,
            };
            kernels::dot(isa, group, &token, group_out);
        }
    };
    let threads = rayon::current_num_threads();
    let macs: usize = matrices.iter().map(|m| m.rows * m.cols).sum();
    if threads < 2 || macs < PARALLEL_MIN_MACS {
        for (m, out) in matrices.iter().zip(outs.iter_mut()) {
            by_group(m, out, 0);
        }
        return outs;
    }
    let groups: usize = matrices.iter().map(|m| m.groups()).sum();
    let chunk = groups.div_ceil(threads * 4).max(1);
    let mut tasks: Vec<(&PackedMatrix, usize, &mut [f32])> = Vec::new();
    for (m, out) in matrices.iter().zip(outs.iter_mut()) {
        for (c, rows) in out.chunks_mut(chunk * INTERLEAVE).enumerate() {
            tasks.push((m, c * chunk, rows));
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(m, first, rows)| by_group(m, rows, first));
    outs
}

#[cfg(test)]
mod tests;
