//! Interleaved A/B nights: this build and another build of `campaign` run
//! the same day alternately, each run a child process of the same kind,
//! so neither side keeps a warm process, caches or allocator state. The
//! order is ABBA or BAAB per block of four, drawn from a seed, so a slow
//! drift of a shared machine hits both sides alike and cancels in the
//! pairs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::CancelFlag;
use crate::model::DailyReport;

/// The two sides of an interleaved sitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The side compared against (A): the `--against-bin` build, or an
    /// experiment's campaign as it is.
    Reference,
    /// The side judged (B): this build, or an experiment's toggled campaign.
    Candidate,
}

/// The order of `2 × pairs` runs: blocks of four, each ABBA or BAAB by the
/// seed, and a final AB or BA block for an odd number of pairs.
pub fn abba_schedule(pairs: usize, seed: u64) -> Vec<Arm> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order = Vec::with_capacity(pairs * 2);
    let mut left = pairs;
    while left > 0 {
        let (first, second) = if rng.random_bool(0.5) {
            (Arm::Reference, Arm::Candidate)
        } else {
            (Arm::Candidate, Arm::Reference)
        };
        if left >= 2 {
            order.extend([first, second, second, first]);
            left -= 2;
        } else {
            order.extend([first, second]);
            left -= 1;
        }
    }
    order
}

/// How a child run went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited with status {code} without a day report{detail}")]
    NoReport {
        program: PathBuf,
        code: String,
        detail: String,
    },
}

/// One child run's outcome.
pub struct ChildRun {
    pub arm: Arm,
    pub report: DailyReport,
    /// The child's exit status (3 and 4 still come with a report).
    pub exit_code: Option<i32>,
}

/// Runs `program run …args` as a child and reads the day report it prints
/// (`--json`). Ctrl-C in the parent is forwarded to the child once, so it
/// stops at its next safe point and still prints what it measured.
pub fn run_child(
    arm: Arm,
    program: &Path,
    args: &[String],
    interrupt: &CancelFlag,
) -> Result<ChildRun, ChildError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The child's own process group: a terminal's Ctrl-C reaches only the
    // parent, which forwards it exactly once.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().map_err(|source| ChildError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let stdout = child.stdout.take();
    // Read stdout on its own thread: a large report would fill the pipe
    // and block the child while the parent waits for it to exit.
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut out) = stdout {
            let _ = out.read_to_end(&mut bytes);
        }
        bytes
    });
    let status = wait_forwarding_interrupt(&mut child, interrupt);
    let bytes = reader.join().unwrap_or_default();
    let code = status.as_ref().ok().and_then(|s| s.code());
    match serde_json::from_slice::<DailyReport>(&bytes) {
        Ok(report) => Ok(ChildRun {
            arm,
            report,
            exit_code: code,
        }),
        Err(e) => Err(ChildError::NoReport {
            program: program.to_path_buf(),
            code: code.map_or_else(|| "unknown (killed by a signal)".into(), |c| c.to_string()),
            detail: if bytes.is_empty() {
                String::new()
            } else {
                format!(" (its output is not a day report: {e})")
            },
        }),
    }
}

fn wait_forwarding_interrupt(
    child: &mut Child,
    interrupt: &CancelFlag,
) -> std::io::Result<std::process::ExitStatus> {
    let mut forwarded = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if interrupt.is_cancelled() && !forwarded {
            forwarded = true;
            #[cfg(unix)]
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the pid of a child we have not reaped
                // yet, so the pid cannot have been reused.
                unsafe {
                    libc::kill(pid, libc::SIGINT);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_alternates_in_balanced_blocks() {
        let order = abba_schedule(11, 7);
        assert_eq!(order.len(), 22);
        let count = |b| order.iter().filter(|x| **x == b).count();
        assert_eq!((count(Arm::Reference), count(Arm::Candidate)), (11, 11));
        for block in order.chunks(4).filter(|b| b.len() == 4) {
            assert_eq!(block[0], block[3]);
            assert_eq!(block[1], block[2]);
            assert_ne!(block[0], block[1]);
        }
        // Seeded: the same seed, the same order; both block shapes occur.
        assert_eq!(order, abba_schedule(11, 7));
        let firsts: Vec<Arm> = abba_schedule(40, 7).chunks(4).map(|b| b[0]).collect();
        assert!(firsts.contains(&Arm::Reference) && firsts.contains(&Arm::Candidate));
    }
}
