//! Belady's MIN: the best hit rate any policy could reach on a trace, known
//! only offline because it looks into the future. It is the yardstick for
//! the hot tier's policies: on a trace where LRU hits nothing, "0 %" says
//! little until it is set against what was possible.
//!
//! Written by hand: it is twenty lines over a B-tree, and no maintained
//! crate computes it for a trace we supply.

use std::collections::{BTreeSet, HashMap};

use super::BlockKey;

/// One use of a block, in trace order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceAccess {
    pub key: BlockKey,
    /// Counted in the hit rate (a decode-step read); uses that are not
    /// counted (stores, the prefill) still shape what the cache holds.
    pub counted: bool,
}

/// Hits and counted uses of the optimal policy with `capacity` slots.
///
/// MIN with bypass: on a miss, the block whose next use is farthest in the
/// future leaves, and that may be the incoming block itself (it is then
/// served without being cached), as the hot tier's own policies may do.
pub fn belady_hits(trace: &[TraceAccess], capacity: usize) -> (u64, u64) {
    const NEVER: usize = usize::MAX;
    let mut next_use = vec![NEVER; trace.len()];
    let mut seen: HashMap<BlockKey, usize> = HashMap::new();
    for (i, access) in trace.iter().enumerate().rev() {
        // A block whose next use is not counted is worth nothing until
        // then: dropping it costs no hit, and that use fetches it again
        // for free. So it ranks as never used again.
        if let Some(&later) = seen.get(&access.key) {
            next_use[i] = if trace[later].counted { later } else { NEVER };
        }
        seen.insert(access.key, i);
    }
    // Cached blocks, by the position of their next use.
    let mut cached: HashMap<BlockKey, usize> = HashMap::new();
    let mut by_next: BTreeSet<(usize, BlockKey)> = BTreeSet::new();
    let (mut hits, mut counted) = (0u64, 0u64);
    for (i, access) in trace.iter().enumerate() {
        counted += u64::from(access.counted);
        let next = next_use[i];
        if let Some(previous) = cached.get_mut(&access.key) {
            hits += u64::from(access.counted);
            by_next.remove(&(*previous, access.key));
            *previous = next;
            by_next.insert((next, access.key));
            continue;
        }
        if capacity == 0 || next == NEVER {
            continue;
        }
        if cached.len() == capacity {
            match by_next.last().copied() {
                Some((farthest, victim)) if farthest > next => {
                    by_next.remove(&(farthest, victim));
                    cached.remove(&victim);
                }
                _ => continue,
            }
        }
        cached.insert(access.key, next);
        by_next.insert((next, access.key));
    }
    (hits, counted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(keys: &[u64]) -> Vec<TraceAccess> {
        keys.iter()
            .map(|&key| TraceAccess { key, counted: true })
            .collect()
    }

    /// The most hits any sequence of choices gets: on each miss, bypass or
    /// evict any cached block, tried exhaustively.
    fn brute_force(trace: &[TraceAccess], capacity: usize, cached: &mut Vec<u64>) -> u64 {
        let Some((first, rest)) = trace.split_first() else {
            return 0;
        };
        if cached.contains(&first.key) {
            return u64::from(first.counted) + brute_force(rest, capacity, cached);
        }
        let mut best = brute_force(rest, capacity, cached);
        if cached.len() < capacity {
            cached.push(first.key);
            best = best.max(brute_force(rest, capacity, cached));
            cached.pop();
        } else {
            for slot in 0..cached.len() {
                let victim = std::mem::replace(&mut cached[slot], first.key);
                best = best.max(brute_force(rest, capacity, cached));
                cached[slot] = victim;
            }
        }
        best
    }

    #[test]
    fn matches_an_exhaustive_search_on_random_traces() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..300 {
            let len = 4 + next(9) as usize;
            let blocks = 2 + next(4);
            let capacity = 1 + next(3) as usize;
            let t: Vec<TraceAccess> = (0..len)
                .map(|_| TraceAccess {
                    key: next(blocks),
                    counted: next(4) != 0,
                })
                .collect();
            let counted = t.iter().filter(|a| a.counted).count() as u64;
            let expected = brute_force(&t, capacity, &mut Vec::new());
            assert_eq!(
                belady_hits(&t, capacity),
                (expected, counted),
                "{t:?} with {capacity} slots"
            );
        }
    }

    #[test]
    fn a_loop_that_fits_misses_only_its_first_round() {
        let keys: Vec<u64> = (0..3).flat_map(|_| 0..4).collect();
        assert_eq!(belady_hits(&trace(&keys), 4), (8, 12));
        assert_eq!(belady_hits(&trace(&keys), 0), (0, 12));
    }

    #[test]
    fn uncounted_uses_shape_the_cache_but_not_the_rate() {
        let mut t = trace(&[7, 7]);
        t[0].counted = false;
        assert_eq!(belady_hits(&t, 1), (1, 1));
    }
}
