//! Records build facts that reports must carry: the git commit, the rustc
//! version and the candle version actually locked.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn locked_version(lock: &str, package: &str) -> Option<String> {
    let header = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&header)? + header.len();
    lock[start..].split('"').next().map(str::to_string)
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let commit = output("git", &["rev-parse", "--short=12", "HEAD"]).map(|c| {
        let dirty = output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some();
        if dirty { format!("{c}-dirty") } else { c }
    });
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    println!(
        "cargo:rustc-env=CAMPAIGN_GIT_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".to_string())
    );
    println!(
        "cargo:rustc-env=CAMPAIGN_RUSTC_VERSION={}",
        output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".to_string())
    );
    println!(
        "cargo:rustc-env=CAMPAIGN_CANDLE_VERSION={}",
        locked_version(&lock, "candle-core").unwrap_or_else(|| "unknown".to_string())
    );
    // FNV-1a of the lock file: a fingerprint of every crate version, for
    // the report's environment (the build script has no hashing crate).
    let lock_hash = lock.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    println!("cargo:rustc-env=CAMPAIGN_CARGO_LOCK_HASH={lock_hash:016x}");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
