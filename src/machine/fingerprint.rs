//! What about the machine and the build can change a measurement without
//! any code changing: CPU flags and microcode, frequency governor,
//! transparent huge pages, SMT, and the locked crate versions. Each night
//! records them, so that a change point can be shown beside what changed
//! around it. A fact that cannot be read (another OS, a container without
//! /sys) is `None`, never a guess.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineFingerprint {
    /// SHA-256 (first 16 hex digits) of the sorted CPU flags of
    /// /proc/cpuinfo: a flag gained or lost (a hypervisor hiding AVX-512)
    /// changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_flags_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microcode: Option<String>,
    /// cpufreq's scaling governor of CPU 0 (`performance`, `powersave`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_governor: Option<String>,
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent_hugepages: Option<String>,
    /// Whether simultaneous multithreading is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smt_active: Option<String>,
    /// FNV-1a hash of the Cargo.lock the binary was built from: any crate
    /// version changed changes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cargo_lock_hash: String,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The first value of `key` in /proc/cpuinfo's text.
fn cpuinfo_value<'a>(cpuinfo: &'a str, key: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The bracketed choice of a sysfs mode file: `always [madvise] never`.
fn selected(mode: &str) -> String {
    mode.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or(mode)
        .to_string()
}

impl MachineFingerprint {
    pub fn capture() -> Self {
        use sha2::{Digest, Sha256};
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_flags_sha256 = cpuinfo_value(&cpuinfo, "flags").map(|flags| {
            let mut flags: Vec<&str> = flags.split_whitespace().collect();
            flags.sort_unstable();
            Sha256::digest(flags.join(" ").as_bytes())[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        Self {
            cpu_flags_sha256,
            microcode: cpuinfo_value(&cpuinfo, "microcode").map(str::to_string),
            scaling_governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            transparent_hugepages: read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled")
                .map(|m| selected(&m)),
            smt_active: read_trimmed("/sys/devices/system/cpu/smt/active"),
            cargo_lock_hash: env!("CAMPAIGN_CARGO_LOCK_HASH").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_and_sysfs_modes_are_read_as_the_kernel_writes_them() {
        let cpuinfo = "processor\t: 0\nmicrocode\t: 0xffffffff\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\nflags\t\t: other\n";
        assert_eq!(cpuinfo_value(cpuinfo, "microcode"), Some("0xffffffff"));
        assert_eq!(cpuinfo_value(cpuinfo, "flags"), Some("fpu sse2 avx2"));
        assert_eq!(cpuinfo_value(cpuinfo, "missing"), None);
        assert_eq!(selected("always [madvise] never"), "madvise");
        assert_eq!(selected("odd"), "odd");
    }
}
