//! Facts about the machine that everything may read, and the memory a piece
//! of work will need, estimated before anything is allocated.

mod fingerprint;
pub mod rss;

pub use fingerprint::MachineFingerprint;

use serde::{Deserialize, Serialize};

/// Memory the kernel says can be allocated without swapping
/// (`MemAvailable`); `None` where it cannot be read.
pub fn available_memory_bytes() -> Option<u64> {
    let mut system = sysinfo::System::new().ok()?;
    system.refresh_memory();
    let available = system.available_memory();
    (available > 0).then_some(available)
}

/// User plus system CPU time of the whole process, in seconds; `None`
/// where it cannot be read.
pub fn process_cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }?;
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID);
/// `None` where it cannot be read. A CPU-time profiler samples this
/// clock, not the wall clock: the time a thread waits for a core counts
/// on the wall but is never sampled.
pub fn thread_cpu_time() -> Option<std::time::Duration> {
    // SAFETY: clock_gettime fills the timespec we pass; the clock id is a
    // constant the kernel knows.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        (libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) == 0).then_some(ts)
    }?;
    Some(std::time::Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

/// An estimate of the memory some work needs, with how it was computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryNeed {
    pub bytes: u64,
    /// The formula and its inputs, for the message that refuses it.
    pub formula: String,
}

impl MemoryNeed {
    pub fn new(bytes: u64, formula: impl Into<String>) -> Self {
        Self {
            bytes,
            formula: formula.into(),
        }
    }

    /// Nothing worth counting.
    pub fn small() -> Self {
        Self::new(0, "no large buffers")
    }
}

/// Multiplies sizes, or says which product does not fit in 64 bits.
pub fn checked_product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, f| acc.checked_mul(*f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_that_overflow_are_none() {
        assert_eq!(checked_product(&[2, 3, 4]), Some(24));
        assert_eq!(checked_product(&[1 << 40, 1 << 40]), None);
        assert!(available_memory_bytes().is_some_and(|b| b > 0));
    }
}
