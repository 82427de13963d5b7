//! A description of the machine and build a report was measured on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sysinfo::System;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub hostname: Option<String>,
    pub cpu_model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub memory_total_bytes: u64,
    pub os: String,
    pub kernel: Option<String>,
    pub arch: String,
    pub rustc_version: String,
    pub candle_version: String,
    pub campaign_version: String,
    pub git_commit: String,
    pub build_profile: String,
    pub cargo_features: Vec<String>,
    pub device: String,
    pub threads: usize,
    pub dtype: String,
    /// The last `campaign calibrate` of this results folder, if any.
    #[serde(default)]
    pub calibration: Option<super::Calibration>,
    /// The environment variables that govern the compute pools (rayon's
    /// and candle's), as the run saw them: `campaign` sets some itself
    /// (`runner::configure_threads`), and each changes measured speed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub compute_variables: BTreeMap<String, String>,
    /// CPU flags and microcode, governor, THP, SMT, locked crates: what
    /// changes speed with no code changed (absent in older reports).
    #[serde(default)]
    pub fingerprint: crate::machine::MachineFingerprint,
    /// Model name → fingerprint of its weights files, for the models the
    /// run loaded (`weights_fingerprint` of the inference component): a
    /// night measured on other weights says so beside its change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub model_files: BTreeMap<String, String>,
    /// The fleet's class of machine this night ran on (`campaign fleet
    /// run`): it leads the machine key, so each class's nights form their
    /// own series even when two classes share hardware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_class: Option<String>,
}

/// Model name → weights fingerprint of the models the results loaded, as
/// their contexts record them (one model, or several under `models`).
pub fn model_files(results: &[super::BenchmarkResult]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in results {
        let mut note = |name: Option<&str>, context: &serde_json::Value| {
            if let (Some(name), Some(fingerprint)) = (name, context["weights_fingerprint"].as_str())
            {
                out.insert(name.to_string(), fingerprint.to_string());
            }
        };
        note(r.context["model"].as_str(), &r.context);
        if let Some(many) = r.context["models"].as_object() {
            for (name, context) in many {
                note(Some(name), context);
            }
        }
    }
    out
}

/// The variables of [`Environment::compute_variables`].
pub const COMPUTE_VARIABLES: [&str; 5] = [
    "RAYON_NUM_THREADS",
    "CANDLE_NUM_THREADS",
    "CANDLE_BARRIER_POOL_SPIN_LIMIT",
    "CANDLE_CPU_MASK",
    "OMP_NUM_THREADS",
];

impl Environment {
    pub fn capture(device: String, threads: usize, dtype: String) -> Self {
        // sysinfo reports what it could not read as errors; a report still
        // gets written, with "unknown" in place of a fact it could not read.
        let system = System::new().ok().map(|mut s| {
            s.refresh_memory();
            s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            s
        });
        let cpu_model = system
            .as_ref()
            .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let mut cargo_features = Vec::new();
        if cfg!(feature = "cuda") {
            cargo_features.push("cuda".to_string());
        }
        if cfg!(feature = "metal") {
            cargo_features.push("metal".to_string());
        }
        Self {
            hostname: System::host_name().ok(),
            cpu_model,
            physical_cores: System::physical_core_count().ok(),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_total_bytes: system.as_ref().map_or(0, System::total_memory),
            os: System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.to_string()),
            kernel: System::kernel_version().ok(),
            arch: std::env::consts::ARCH.to_string(),
            rustc_version: env!("CAMPAIGN_RUSTC_VERSION").to_string(),
            candle_version: env!("CAMPAIGN_CANDLE_VERSION").to_string(),
            campaign_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env!("CAMPAIGN_GIT_COMMIT").to_string(),
            build_profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_string(),
            cargo_features,
            device,
            threads,
            dtype,
            calibration: None,
            compute_variables: COMPUTE_VARIABLES
                .into_iter()
                .filter_map(|name| {
                    let value = std::env::var(name).ok()?;
                    Some((name.to_string(), value))
                })
                .collect(),
            fingerprint: crate::machine::MachineFingerprint::capture(),
            model_files: BTreeMap::new(),
            machine_class: None,
        }
    }
}

impl Environment {
    /// A stable, coarse name for this machine, so nights on the same
    /// hardware line up: CPU model, logical cores, memory class (GiB rounded
    /// up to a power of two) and device. Nothing that changes between boots.
    pub fn machine_key(&self) -> String {
        let gib = (self.memory_total_bytes as f64 / (1u64 << 30) as f64).ceil() as u64;
        let memory_class = gib.max(1).next_power_of_two();
        let raw = format!(
            "{}{}-{}c-{}g-{}",
            self.machine_class
                .as_deref()
                .map_or_else(String::new, |c| format!("{c}-")),
            self.cpu_model,
            self.logical_cores,
            memory_class,
            self.device
        );
        let mut key = String::with_capacity(raw.len());
        for ch in raw.chars() {
            let ch = if ch.is_ascii_alphanumeric() {
                ch.to_ascii_lowercase()
            } else {
                '-'
            };
            if !(ch == '-' && key.ends_with('-')) {
                key.push(ch);
            }
        }
        key.trim_matches('-').to_string()
    }
}

/// A JSON object as flat `field` → value pairs, nested objects dotted
/// (`fingerprint.microcode`), strings bare and anything else as JSON.
pub fn flatten_json(value: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

impl Environment {
    /// Every field as flat `field` → value pairs, for showing what
    /// differs between two runs.
    pub fn flat_fields(&self) -> BTreeMap<String, String> {
        serde_json::to_value(self)
            .map(|v| flatten_json(&v))
            .unwrap_or_default()
    }
}

/// Fields of two flat environments that differ, as (field, before,
/// after); a field one side lacks shows as "absent". The host name and the
/// calibration's own figures are left out: they differ without meaning.
pub fn environment_differences(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    let absent = || "absent".to_string();
    before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| *k != "hostname" && !k.starts_with("calibration."))
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            (b != a).then(|| {
                (
                    k.clone(),
                    b.cloned().unwrap_or_else(absent),
                    a.cloned().unwrap_or_else(absent),
                )
            })
        })
        .collect()
}
