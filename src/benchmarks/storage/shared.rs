//! What the storage kinds share (`storage_write`, `storage_read`): values
//! that can be checked without keeping them, and error wording.

use crate::benchmarks::{BenchmarkError, ParamProblem};
use crate::campaign::bounds::Kib;
use crate::components::storage::StorageError;

/// The value stored under `key`: the key, then a pattern derived from it,
/// so that a read can be checked without keeping every value in memory.
pub(super) fn value_for(key: u64, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend(key.to_le_bytes().iter().copied().cycle().take(len.min(8)));
    out.extend((8..len).map(|i| (key.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8));
}

pub(super) fn store_error(e: StorageError) -> BenchmarkError {
    BenchmarkError::Component(e.to_string())
}

pub(super) fn default_value_kib() -> Vec<Kib> {
    [1, 16, 256].map(Kib::new_const).to_vec()
}

pub(super) fn check_sizes(value_kib: &[Kib]) -> Result<(), ParamProblem> {
    if value_kib.is_empty() {
        return Err(ParamProblem::at(
            "value_kib",
            "found an empty list; allowed: at least one value size",
            "e.g. value_kib = [1, 16, 256]",
        ));
    }
    Ok(())
}

/// The largest value size, in bytes.
pub(super) fn largest_value(value_kib: &[Kib]) -> u64 {
    value_kib.iter().map(|k| k.get() * 1024).max().unwrap_or(0)
}
