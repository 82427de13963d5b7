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
        assert_eq!(x.cols, self.cols, "activations and weights disagree on K");
        assert_eq!(out.len(), x.tokens * self.rows, "output of the wrong size");
        let isa = if isa.supported() { isa } else { Isa::Portable };
        let n = x.tokens;
        let tokens: Vec<_> = (0..n).map(|t| x.token(t)).collect();
        let macs = self.rows * self.cols * n;
        // Decode: each task computes whole groups of rows of the one token.
        let by_group = |rows: &mut [f32], first_group: usize| {
            for (g, group_out) in rows.chunks_exact_mut(INTERLEAVE).enumerate() {
                let group = RowGroup {
                    body: &self.body,
                    cols: self.cols,
                    group: first_group + g,
                };
                kernels::dot(isa, group, &tokens, group_out);
            }
        };
        let groups = self.groups();
        let threads = rayon::current_num_threads();
        let parallel = threads > 1 && macs >= PARALLEL_MIN_MACS;
        if n > 1 {
            // Prefill: tasks split the tokens, each streams every group
            // and writes its tokens' rows of `out` in place.
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
            return;
        }
        let run = |target: &mut [f32]| {
            if parallel {
                // A few chunks per thread, so one slow core does not hold
                // the others (groups are equal work).
                let chunk = groups.div_ceil(threads * 4).max(1);
                target
                    .par_chunks_mut(chunk * INTERLEAVE)
                    .enumerate()
                    .for_each(|(c, rows)| by_group(rows, c * chunk));
            } else {
                by_group(target, 0);
            }
        };
        if self.rows == groups * INTERLEAVE {
            // Whole groups: the buffer is the output.
            run(out);
            return;
        }
        let mut by_row = vec![0f32; groups * INTERLEAVE];
        run(&mut by_row);
        out.copy_from_slice(&by_row[..self.rows]);
    }
}

#[cfg(test)]
mod tests;
