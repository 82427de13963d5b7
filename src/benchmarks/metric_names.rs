//! Interned metric names, units and descriptions given by a campaign.
//!
//! Every metric the runner records is keyed by a `&'static str`: the kinds
//! declare theirs as constants. A `command` benchmark's metrics are named
//! by its params instead. Interning gives those names the same type, so
//! the runner, the statistics and the writers need no second path for
//! them; each distinct string is leaked once per process, and a campaign
//! names a handful, so the memory is bounded by the campaign's size.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock, PoisonError};

static INTERNED: OnceLock<Mutex<BTreeSet<&'static str>>> = OnceLock::new();

/// The process-wide copy of `text`, the same pointer for equal strings.
pub fn intern(text: &str) -> &'static str {
    let set = INTERNED.get_or_init(|| Mutex::new(BTreeSet::new()));
    // A panic while holding the lock leaves the set consistent (inserts are
    // atomic), so a poisoned lock is safe to keep using.
    let mut set = set.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = set.get(text) {
        return existing;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::intern;

    #[test]
    fn equal_strings_share_one_copy() {
        let a = intern(&format!("tg_{}_per_s", "tokens"));
        let b = intern("tg_tokens_per_s");
        assert_eq!(a, "tg_tokens_per_s");
        assert!(std::ptr::eq(a, b));
        assert!(!std::ptr::eq(a, intern("pp_tokens_per_s")));
    }
}
