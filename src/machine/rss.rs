//! Resident memory of this process (and of another one on this machine,
//! such as a server under test).

/// Current resident set size in bytes, if the platform reports it.
pub fn resident_set_bytes() -> Option<u64> {
    proc_status_kib("self", "VmRSS:")
        .map(|kib| kib * 1024)
        .or_else(|| sysinfo_rss(sysinfo::get_current_pid().ok()?))
}

/// Current resident set size of process `pid`, if it runs on this machine
/// and its memory is visible to us.
pub fn resident_set_bytes_of(pid: u32) -> Option<u64> {
    proc_status_kib(&pid.to_string(), "VmRSS:")
        .map(|kib| kib * 1024)
        .or_else(|| sysinfo_rss(sysinfo::Pid::from_u32(pid)))
}

/// Peak resident set size in bytes (Linux `VmHWM`).
pub fn peak_resident_bytes() -> Option<u64> {
    proc_status_kib("self", "VmHWM:").map(|kib| kib * 1024)
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS, so the
/// next [`peak_resident_bytes`] is the peak since now. Linux only; returns
/// false where the reset is not available.
pub fn reset_peak_resident() -> bool {
    // Writing 5 to clear_refs resets the peak RSS (Linux ≥ 4.0, see proc(5)).
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Returns freed heap memory to the OS where the allocator can (glibc's
/// `malloc_trim`), so that RSS measures live allocations rather than what
/// the allocator kept from earlier work. Returns false where unsupported.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only inspects and shrinks the allocator's own
        // free lists; it has no preconditions.
        unsafe { libc::malloc_trim(0) };
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

fn proc_status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn sysinfo_rss(pid: sysinfo::Pid) -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let mut system = System::new().ok()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_memory_raises_resident_size() {
        let before = resident_set_bytes().unwrap();
        let block = vec![1u8; 64 << 20];
        let after = resident_set_bytes().unwrap();
        assert!(after >= before + (32 << 20), "{before} → {after}");
        assert!(peak_resident_bytes().unwrap_or(after) >= after);
        let by_pid = resident_set_bytes_of(std::process::id()).unwrap();
        assert!(by_pid >= before + (32 << 20), "{before} → {by_pid}");
        drop(std::hint::black_box(block));
    }
}
