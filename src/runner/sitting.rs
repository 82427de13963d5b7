//! A sitting: the separate runs of a night, each a child process of the
//! same kind, so that no run keeps a warm process, caches or allocator
//! state from another and the noise between processes is inside the
//! samples. A night against a stored baseline runs one arm R times; an
//! interleaved night (this build against another, or an experiment's
//! toggle against the campaign as it is) runs two arms in pairs, ABBA or
//! BAAB per block of four from a seed drawn per sitting, so a slow drift
//! of a shared machine hits both sides alike and cancels in each pair.
//! Every timed run keeps its slot and its pair: a lost run costs only its
//! own pair, never the alignment of the others. An untimed warm-up run of
//! each arm goes first.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::CancelFlag;
use super::child::ChildCommand;
use crate::model::DailyReport;

/// The two sides of an interleaved sitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The side compared against (A): the `--against-bin` build, or an
    /// experiment's campaign as it is.
    Reference,
    /// The side judged (B): this build, or an experiment's toggled
    /// campaign, or the only arm of a night against a stored baseline.
    Candidate,
}

/// One child run of a sitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The timed run's place in the sitting, from 0; warm-up runs share
    /// the number of the first timed run and are never measured.
    pub index: u32,
    pub arm: Arm,
    /// The pair this run belongs to (an interleaved sitting), or its own
    /// run number (one arm).
    pub pair: u32,
    /// An untimed warm-up: its report is discarded.
    pub warmup: bool,
}

/// The order of a sitting's runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The seed the ABBA order was drawn from (`None` for one arm).
    pub seed: Option<u64>,
    pub slots: Vec<Slot>,
}

impl Schedule {
    /// `runs` timed runs of one arm after an untimed warm-up run.
    pub fn repeated(runs: usize) -> Self {
        let warmup = Slot {
            index: 0,
            arm: Arm::Candidate,
            pair: 0,
            warmup: true,
        };
        let timed = (0..runs as u32).map(|i| Slot {
            index: i,
            arm: Arm::Candidate,
            pair: i,
            warmup: false,
        });
        Self {
            seed: None,
            slots: std::iter::once(warmup).chain(timed).collect(),
        }
    }

    /// `pairs` pairs of runs, one of each arm, after an untimed warm-up
    /// run of each arm: blocks of four, each ABBA or BAAB by the seed, and
    /// a final AB or BA block for an odd number of pairs.
    pub fn interleaved(pairs: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut slots: Vec<Slot> = [Arm::Reference, Arm::Candidate]
            .into_iter()
            .map(|arm| Slot {
                index: 0,
                arm,
                pair: 0,
                warmup: true,
            })
            .collect();
        let push = |arm: Arm, pair: usize, slots: &mut Vec<Slot>| {
            let index = slots.iter().filter(|s| !s.warmup).count() as u32;
            slots.push(Slot {
                index,
                arm,
                pair: pair as u32,
                warmup: false,
            });
        };
        let mut pair = 0;
        while pair < pairs {
            let (first, second) = if rng.random_bool(0.5) {
                (Arm::Reference, Arm::Candidate)
            } else {
                (Arm::Candidate, Arm::Reference)
            };
            push(first, pair, &mut slots);
            push(second, pair, &mut slots);
            if pair + 1 < pairs {
                push(second, pair + 1, &mut slots);
                push(first, pair + 1, &mut slots);
            }
            pair += 2;
        }
        Self {
            seed: Some(seed),
            slots,
        }
    }

    /// A seed for a sitting's order, drawn afresh: two nights never share
    /// one, so a position effect cannot repeat night after night.
    pub fn fresh_seed() -> u64 {
        rand::rng().random()
    }

    pub fn timed(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| !s.warmup)
    }

    /// The timed runs' arms in order.
    pub fn arms(&self) -> Vec<Arm> {
        self.timed().map(|s| s.arm).collect()
    }
}

/// What one slot's run gave.
pub enum SlotRun {
    Report(Box<DailyReport>),
    /// The run left no report; why.
    Lost(String),
}

/// The timed runs of a sitting that gave a report, the ones that were
/// lost, and the warm-ups that failed (said, not counted).
#[derive(Default)]
pub struct SittingRuns {
    pub reports: Vec<(Slot, DailyReport)>,
    pub lost: Vec<(Slot, String)>,
    pub warnings: Vec<String>,
}

impl ChildError {
    /// The child refused the day (exit 2, no report): its campaign, flags
    /// or model are wrong for it, and every further run would be too.
    pub fn refused(&self) -> bool {
        matches!(self, Self::NoReport { exit: Some(2), .. })
    }
}

impl SittingRuns {
    /// One arm's reports with their slots, for pooling.
    pub fn arm(&self, arm: Arm) -> Vec<(u32, &DailyReport)> {
        self.reports
            .iter()
            .filter(|(s, _)| s.arm == arm)
            .map(|(s, r)| (s.index, r))
            .collect()
    }

    /// One arm's lost runs with their slots and reasons.
    pub fn lost(&self, arm: Arm) -> Vec<(u32, String)> {
        self.lost
            .iter()
            .filter(|(s, _)| s.arm == arm)
            .map(|(s, why)| (s.index, why.clone()))
            .collect()
    }

    /// The complete pairs: (pair, reference report, candidate report),
    /// by pair number. A pair missing either run is left out alone.
    pub fn pairs(&self) -> Vec<(u32, &DailyReport, &DailyReport)> {
        let of = |arm: Arm, pair: u32| {
            self.reports
                .iter()
                .find(|(s, _)| s.arm == arm && s.pair == pair)
                .map(|(_, r)| r)
        };
        let mut numbers: Vec<u32> = self.reports.iter().map(|(s, _)| s.pair).collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .into_iter()
            .filter_map(|p| Some((p, of(Arm::Reference, p)?, of(Arm::Candidate, p)?)))
            .collect()
    }
}

/// Runs a sitting's slots in order through `run_slot` until the schedule
/// ends or Ctrl-C; an `Err` from `run_slot` (a child that refused the
/// day) stops the sitting at once.
pub fn run_sitting<E>(
    schedule: &Schedule,
    interrupt: &CancelFlag,
    run_slot: impl FnMut(&Slot) -> Result<SlotRun, E>,
) -> Result<SittingRuns, E> {
    run_sitting_until(schedule, interrupt, run_slot, |_| false)
}

/// [`run_sitting`] that can stop early: before each block of four timed
/// runs after the first, `settled` sees the runs so far and ends the
/// sitting when it returns true. Only whole blocks are run, so no ABBA
/// block is cut in half and its drift stays cancelled.
pub fn run_sitting_until<E>(
    schedule: &Schedule,
    interrupt: &CancelFlag,
    mut run_slot: impl FnMut(&Slot) -> Result<SlotRun, E>,
    mut settled: impl FnMut(&SittingRuns) -> bool,
) -> Result<SittingRuns, E> {
    let mut runs = SittingRuns::default();
    let mut timed = 0usize;
    for slot in &schedule.slots {
        if interrupt.is_cancelled() {
            break;
        }
        if !slot.warmup && timed > 0 && timed.is_multiple_of(4) && settled(&runs) {
            break;
        }
        timed += usize::from(!slot.warmup);
        match (run_slot(slot)?, slot.warmup) {
            (SlotRun::Report(_), true) => {}
            (SlotRun::Lost(why), true) => runs
                .warnings
                .push(format!("the untimed warm-up run left no report: {why}")),
            (SlotRun::Report(report), false) => runs.reports.push((*slot, *report)),
            (SlotRun::Lost(why), false) => runs.lost.push((*slot, why)),
        }
    }
    Ok(runs)
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
        /// The exit status, when the child exited (2: it refused the day).
        exit: Option<i32>,
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

/// Runs `program` with the command line of `child` and reads the day
/// report it prints (`--json`). Ctrl-C in the parent is forwarded to the
/// child once, so it stops at its next safe point and still prints what it
/// measured.
pub fn run_child(
    arm: Arm,
    program: &Path,
    child: &ChildCommand,
    interrupt: &CancelFlag,
) -> Result<ChildRun, ChildError> {
    run_child_to(arm, program, child, interrupt, Stdio::inherit())
}

/// [`run_child`] with the child's messages sent to `stderr` (a log file,
/// when a parent runs so many children that their tables would bury its
/// own progress).
pub fn run_child_to(
    arm: Arm,
    program: &Path,
    child: &ChildCommand,
    interrupt: &CancelFlag,
    stderr: Stdio,
) -> Result<ChildRun, ChildError> {
    let mut command = Command::new(program);
    command
        .args(child.argv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
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
            exit: code,
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
    fn schedule_alternates_in_balanced_blocks_after_a_warmup_of_each_arm() {
        let schedule = Schedule::interleaved(11, 7);
        let warmups: Vec<Arm> = schedule
            .slots
            .iter()
            .filter(|s| s.warmup)
            .map(|s| s.arm)
            .collect();
        assert_eq!(warmups, [Arm::Reference, Arm::Candidate]);
        assert!(schedule.slots[..2].iter().all(|s| s.warmup));
        let order = schedule.arms();
        assert_eq!(order.len(), 22);
        let count = |b| order.iter().filter(|x| **x == b).count();
        assert_eq!((count(Arm::Reference), count(Arm::Candidate)), (11, 11));
        for block in order.chunks(4).filter(|b| b.len() == 4) {
            assert_eq!(block[0], block[3]);
            assert_eq!(block[1], block[2]);
            assert_ne!(block[0], block[1]);
        }
        // Each pair is one run of each arm, side by side; slots count the
        // timed runs from 0.
        let timed: Vec<&Slot> = schedule.timed().collect();
        for (i, s) in timed.iter().enumerate() {
            assert_eq!(s.index as usize, i);
            assert_eq!(s.pair as usize, i / 2);
        }
        // Seeded: the same seed, the same order; both block shapes occur.
        assert_eq!(schedule, Schedule::interleaved(11, 7));
        let firsts: Vec<Arm> = Schedule::interleaved(40, 7)
            .arms()
            .chunks(4)
            .map(|b| b[0])
            .collect();
        assert!(firsts.contains(&Arm::Reference) && firsts.contains(&Arm::Candidate));
    }

    #[test]
    fn a_lost_run_drops_only_its_own_pair() {
        let schedule = Schedule::interleaved(4, 3);
        let report: DailyReport =
            serde_json::from_str(include_str!("../../tests/fixtures/day_report.json"))
                .expect("the fixture is a day report");
        let mut runs = SittingRuns::default();
        for slot in schedule.timed() {
            if slot.index == 2 {
                runs.lost.push((*slot, "crashed".into()));
            } else {
                let mut r = report.clone();
                r.run_id = format!("slot {}", slot.index);
                runs.reports.push((*slot, r));
            }
        }
        let pairs = runs.pairs();
        assert_eq!(
            pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
            [0, 2, 3],
            "pair 1 lost its run at slot 2; the others keep theirs"
        );
        for (pair, a, b) in pairs {
            let slot_of =
                |r: &DailyReport| r.run_id.trim_start_matches("slot ").parse::<u32>().unwrap();
            assert_eq!(slot_of(a) / 2, pair);
            assert_eq!(slot_of(b) / 2, pair);
            assert_ne!(slot_of(a), slot_of(b));
        }
    }
}
