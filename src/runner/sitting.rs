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
//!
//! [`Sitting`] runs such a sitting for `campaign run` (`--runs`,
//! `--against-bin`) and `campaign experiment`: they say only how to fill
//! each slot's child command. A bisection runs its sittings with
//! [`run_sitting_until`] instead, since its candidate build changes with
//! every step and its children write to a log, and judges its children by
//! the same [`slot_outcome`].

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
        matches!(
            self,
            Self::NoReport {
                exit: Some(REFUSED_EXIT),
                ..
            }
        )
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

/// The exit status with which `campaign` refuses what it was asked (its
/// usage status): a child that exits with it refused the day.
const REFUSED_EXIT: i32 = 2;

/// Why a sitting cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SittingError {
    /// The children are this program: without its path there are none.
    #[error("cannot find this program's own path: {0}")]
    OwnPath(std::io::Error),
    /// A child refused the day (exit 2): its campaign, flags or model are
    /// wrong for it, and every further run would be too, so the sitting
    /// stops instead of losing every slot one by one.
    #[error("{program} refused the day (exit 2; its message is above)")]
    Refused {
        program: PathBuf,
        arm: Arm,
        day: u32,
    },
}

/// What a child's run gives its slot: a refusal (exit 2, with or without a
/// report) stops the sitting; a run that left no report loses its slot,
/// with the reason. Every caller judges a child by this one rule.
pub fn slot_outcome(
    ran: Result<ChildRun, ChildError>,
    arm: Arm,
    program: &Path,
    day: u32,
) -> Result<SlotRun, SittingError> {
    let refused = match &ran {
        Ok(run) => run.exit_code == Some(REFUSED_EXIT),
        Err(e) => e.refused(),
    };
    match ran {
        _ if refused => Err(SittingError::Refused {
            program: program.to_path_buf(),
            arm,
            day,
        }),
        Ok(run) => Ok(SlotRun::Report(Box::new(run.report))),
        Err(e) => Ok(SlotRun::Lost(e.to_string())),
    }
}

/// What a lost run costs the caller's result, which its warning says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostRunCost {
    /// Each arm's runs are pooled on their own (a night's report): the
    /// lost run alone is left out.
    Alone,
    /// The result is read off the pairs (an experiment): the lost run
    /// takes its pair with it.
    Pair,
}

/// How an interleaved sitting names its arms in its progress lines and
/// warnings.
#[derive(Debug, Clone)]
pub struct ArmLabels {
    /// The arms' names, `[reference, candidate]`.
    pub names: [&'static str; 2],
    /// Each name is followed by its arm's program: the arms are two builds,
    /// and which file each is matters.
    pub programs_named: bool,
    /// Before every line: an experiment's lines sit under its heading.
    pub indent: &'static str,
    /// What a timed run is called ("interleaved run", "run").
    pub timed: &'static str,
    pub lost: LostRunCost,
}

impl ArmLabels {
    fn name(&self, arm: Arm) -> &'static str {
        match arm {
            Arm::Reference => self.names[0],
            Arm::Candidate => self.names[1],
        }
    }
}

/// How a sitting starts a child; [`run_child`] outside the unit tests,
/// which inject a child that needs no binary.
type Launch = fn(Arm, &Path, &ChildCommand, &CancelFlag) -> Result<ChildRun, ChildError>;

/// One sitting of separate runs, each a child process: its schedule and
/// seed, the program of each arm, a scratch root with a folder per slot
/// (both removed when done), a progress line per slot, the rule that turns
/// a child's exit into a report, a lost run or a refusal, and the warnings
/// for lost runs. Its caller says only how to fill each slot's
/// [`ChildCommand`] and what to make of the runs.
pub struct Sitting {
    schedule: Schedule,
    /// `[reference, candidate]`.
    programs: [PathBuf; 2],
    root: PathBuf,
    /// `None`: one arm, repeated.
    labels: Option<ArmLabels>,
    launch: Launch,
}

impl Sitting {
    /// `runs` timed runs of this program after an untimed warm-up run,
    /// each in a folder under `root`.
    pub fn repeated(runs: usize, root: PathBuf) -> Result<Self, SittingError> {
        Self::new(Schedule::repeated(runs), root, None)
    }

    /// `pairs` pairs of runs in an ABBA order from a seed drawn afresh,
    /// after an untimed warm-up of each arm; both arms run this program
    /// until [`Sitting::against`] gives the reference arm another.
    pub fn interleaved(
        pairs: usize,
        root: PathBuf,
        labels: ArmLabels,
    ) -> Result<Self, SittingError> {
        let schedule = Schedule::interleaved(pairs, Schedule::fresh_seed());
        Self::new(schedule, root, Some(labels))
    }

    fn new(
        schedule: Schedule,
        root: PathBuf,
        labels: Option<ArmLabels>,
    ) -> Result<Self, SittingError> {
        let this = std::env::current_exe().map_err(SittingError::OwnPath)?;
        Ok(Self {
            schedule,
            programs: [this.clone(), this],
            root,
            labels,
            launch: run_child,
        })
    }

    /// A sitting whose children are started by `launch`, not as processes.
    #[cfg(test)]
    fn with_launch(mut self, launch: Launch) -> Self {
        self.launch = launch;
        self
    }

    /// The reference arm runs `program` (another build) instead.
    pub fn against(mut self, program: PathBuf) -> Self {
        self.programs[0] = program;
        self
    }

    pub fn program(&self, arm: Arm) -> &Path {
        match arm {
            Arm::Reference => &self.programs[0],
            Arm::Candidate => &self.programs[1],
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The seed of the ABBA order (`None` for one arm).
    pub fn seed(&self) -> Option<u64> {
        self.schedule.seed
    }

    /// Runs the slots in order until the schedule ends or Ctrl-C, each
    /// after its progress line, through `fill`, which runs the slot's
    /// child (or children) with [`SittingSlot::run`]. Each slot's folder
    /// is removed after it, and the root after the sitting, also when
    /// `fill` stops it with an `Err` (a refusal, mapped by the caller).
    pub fn run<E>(
        &self,
        interrupt: &CancelFlag,
        mut fill: impl FnMut(&SittingSlot<'_>) -> Result<SlotRun, E>,
    ) -> Result<SittingRuns, E> {
        let runs = run_sitting(&self.schedule, interrupt, |slot| {
            eprintln!("{}", self.progress_line(slot));
            let turn = SittingSlot {
                sitting: self,
                slot: *slot,
                folder: self.root.join(self.folder_name(slot)),
                interrupt,
            };
            let ran = fill(&turn);
            let _ = std::fs::remove_dir_all(&turn.folder);
            ran
        });
        let _ = std::fs::remove_dir_all(&self.root);
        runs
    }

    /// A slot's folder under the root: its own for every slot, so no run
    /// reads what another left.
    fn folder_name(&self, slot: &Slot) -> String {
        match (slot.warmup, &self.labels, slot.arm) {
            (true, None, _) => "warmup".into(),
            (true, Some(_), Arm::Reference) => "warmup_reference".into(),
            (true, Some(_), Arm::Candidate) => "warmup_candidate".into(),
            (false, _, _) => format!("run_{}", slot.index),
        }
    }

    /// The line printed before a slot's run.
    fn progress_line(&self, slot: &Slot) -> String {
        let total = self.schedule.timed().count();
        let Some(labels) = &self.labels else {
            return if slot.warmup {
                "separate run: an untimed warm-up".into()
            } else {
                format!("separate run {} of {total}", slot.index + 1)
            };
        };
        let mut side = labels.name(slot.arm).to_string();
        if labels.programs_named {
            side = format!("{side} ({})", self.program(slot.arm).display());
        }
        if slot.warmup {
            format!("{}untimed warm-up run: {side}", labels.indent)
        } else {
            format!(
                "{}{} {} of {total} (pair {}): {side}",
                labels.indent,
                labels.timed,
                slot.index + 1,
                slot.pair + 1
            )
        }
    }

    /// The sitting's warnings: failed warm-ups, then each lost run by its
    /// slot, with what it cost.
    pub fn warnings(&self, runs: &SittingRuns) -> Vec<String> {
        let lost = self.labels.as_ref().map_or(LostRunCost::Alone, |l| l.lost);
        runs.warnings
            .iter()
            .cloned()
            .chain(
                runs.lost
                    .iter()
                    .map(|(slot, why)| match (lost, &self.labels) {
                        (LostRunCost::Pair, Some(labels)) => format!(
                            "run {} ({}, pair {}) left no report, so its pair is left out: {why}",
                            slot.index + 1,
                            labels.name(slot.arm),
                            slot.pair + 1
                        ),
                        _ => format!(
                            "run {} left no report, so it (and only it) is left out: {why}",
                            slot.index + 1
                        ),
                    }),
            )
            .collect()
    }

    /// Records in a report pooled from this sitting how it was measured:
    /// the runs of each arm, in separate processes, in the seed's order.
    pub fn mark(&self, report: &mut DailyReport) {
        let per_arm = self
            .schedule
            .timed()
            .filter(|s| s.arm == Arm::Candidate)
            .count();
        report.settings.runs = u32::try_from(per_arm).unwrap_or(u32::MAX);
        report.settings.separate_processes = true;
        if let Some(seed) = self.schedule.seed {
            report.settings.run_order_seed = seed;
        }
    }
}

/// One slot of a running [`Sitting`], handed to its caller to fill.
pub struct SittingSlot<'s> {
    sitting: &'s Sitting,
    slot: Slot,
    folder: PathBuf,
    interrupt: &'s CancelFlag,
}

impl SittingSlot<'_> {
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The slot's own output folder (not created here; removed after the
    /// slot): a child's `--out`, or the parent of several.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Runs the slot's arm's program with `child` and removes the child's
    /// folder. Every child measures only (its night is one run of this
    /// one, never a night of its own in the campaign's store), and a
    /// warm-up runs quick: it only wakes caches up.
    pub fn run(&self, mut child: ChildCommand) -> Result<SlotRun, SittingError> {
        child.measure_only = true;
        child.quick |= self.slot.warmup;
        let arm = self.slot.arm;
        let program = self.sitting.program(arm);
        let ran = (self.sitting.launch)(arm, program, &child, self.interrupt);
        let _ = std::fs::remove_dir_all(&child.out);
        slot_outcome(ran, arm, program, child.day)
    }
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

    /// Every child the fake launcher below was asked to run, by any test.
    static LAUNCHED: std::sync::Mutex<Vec<ChildCommand>> = std::sync::Mutex::new(Vec::new());

    fn fixture_report() -> DailyReport {
        serde_json::from_str(include_str!("../../tests/fixtures/day_report.json"))
            .expect("the fixture is a day report")
    }

    /// A child without a process: it writes into its folder, as a real
    /// one would, and answers by the folder's name: `run_2` dies without a
    /// report, `run_1` of a folder under `refuses` refuses the day, and
    /// every other run reports, its run id naming its folder.
    fn fake_launch(
        arm: Arm,
        program: &Path,
        child: &ChildCommand,
        _: &CancelFlag,
    ) -> Result<ChildRun, ChildError> {
        if let Ok(mut launched) = LAUNCHED.lock() {
            launched.push(child.clone());
        }
        std::fs::create_dir_all(&child.out).expect("the child's folder");
        std::fs::write(child.out.join("left_behind"), "x").expect("a file in it");
        let name = child
            .out
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        let refuses = child.out.to_string_lossy().contains("refuses");
        let no_report = |exit: i32| ChildError::NoReport {
            program: program.to_path_buf(),
            code: exit.to_string(),
            exit: Some(exit),
            detail: String::new(),
        };
        match name.as_str() {
            "run_2" => Err(no_report(1)),
            "run_1" if refuses => Err(no_report(REFUSED_EXIT)),
            _ => {
                let mut report = fixture_report();
                report.run_id = name;
                Ok(ChildRun {
                    arm,
                    report,
                    exit_code: Some(0),
                })
            }
        }
    }

    fn launched_under(root: &Path) -> Vec<ChildCommand> {
        LAUNCHED
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|c| c.out.starts_with(root))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn labels(lost: LostRunCost) -> ArmLabels {
        ArmLabels {
            names: ["baseline", "toggled"],
            programs_named: false,
            indent: "  ",
            timed: "run",
            lost,
        }
    }

    #[test]
    fn a_sitting_loses_only_a_lost_runs_pair_and_removes_its_folders() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().join("sitting");
        let sitting = Sitting::interleaved(4, root.clone(), labels(LostRunCost::Pair))
            .expect("this program's path")
            .against(PathBuf::from("/other/campaign"))
            .with_launch(fake_launch);
        let mut folders = Vec::new();
        let runs = sitting
            .run(&CancelFlag::new(), |turn| {
                folders.push(turn.folder().to_path_buf());
                turn.run(ChildCommand::new(1, "campaign.toml", turn.folder()))
            })
            .expect("no child refused");
        // Two warm-ups, then 8 timed runs, each in its own folder; nothing
        // of any of them is left.
        assert_eq!(folders.len(), 10);
        let mut distinct = folders.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10, "{folders:?}");
        assert!(
            !root.exists(),
            "the root and every slot's folder are removed"
        );
        // Each arm ran its own program; every child measured only, and the
        // warm-ups alone ran quick.
        let launched = launched_under(&root);
        assert_eq!(launched.len(), 10);
        assert!(launched.iter().all(|c| c.measure_only));
        let quick: Vec<bool> = launched.iter().map(|c| c.quick).collect();
        assert_eq!(quick[..2], [true, true]);
        assert!(quick[2..].iter().all(|q| !q));
        assert_eq!(
            sitting.program(Arm::Reference),
            Path::new("/other/campaign")
        );
        // Run 3 (slot 2, pair 2) was lost: only its pair is left out.
        assert_eq!(runs.lost.len(), 1);
        assert_eq!(runs.lost[0].0.index, 2);
        let pairs: Vec<u32> = runs.pairs().iter().map(|p| p.0).collect();
        assert_eq!(pairs, [0, 2, 3]);
        let lost = runs.lost[0].0;
        assert_eq!(
            sitting.warnings(&runs),
            [format!(
                "run 3 ({}, pair 2) left no report, so its pair is left out: {} exited with status 1 without a day report",
                labels(LostRunCost::Pair).name(lost.arm),
                sitting.program(lost.arm).display()
            )]
        );
        // The progress lines name each arm and count the timed runs.
        let slots = &sitting.schedule().slots;
        assert_eq!(
            sitting.progress_line(&slots[0]),
            "  untimed warm-up run: baseline"
        );
        assert_eq!(
            sitting.progress_line(&slots[2]),
            format!(
                "  run 1 of 8 (pair 1): {}",
                labels(LostRunCost::Pair).name(slots[2].arm)
            )
        );
        // A report pooled from it records how it was measured.
        let mut report = fixture_report();
        sitting.mark(&mut report);
        assert_eq!(report.settings.runs, 4);
        assert!(report.settings.separate_processes);
        assert_eq!(Some(report.settings.run_order_seed), sitting.seed());
    }

    #[test]
    fn a_refusal_stops_the_sitting_and_its_folders_are_removed_all_the_same() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().join("refuses");
        let sitting = Sitting::repeated(5, root.clone())
            .expect("this program's path")
            .with_launch(fake_launch);
        let stopped = sitting.run(&CancelFlag::new(), |turn| {
            turn.run(ChildCommand::new(3, "campaign.toml", turn.folder()))
        });
        match stopped {
            Err(SittingError::Refused { arm, day, .. }) => {
                assert_eq!((arm, day), (Arm::Candidate, 3));
            }
            Err(e) => panic!("not a refusal: {e}"),
            Ok(_) => panic!("a refused day must stop the sitting"),
        }
        // The warm-up, run 1, and run 2 that refused: nothing after it.
        assert_eq!(launched_under(&root).len(), 3);
        assert!(!root.exists());
        // One arm: its own lines and the night's wording of a lost run.
        let slots = &sitting.schedule().slots;
        assert_eq!(
            sitting.progress_line(&slots[0]),
            "separate run: an untimed warm-up"
        );
        assert_eq!(sitting.progress_line(&slots[1]), "separate run 1 of 5");
        let runs = SittingRuns {
            lost: vec![(slots[3], "it died".into())],
            ..SittingRuns::default()
        };
        assert_eq!(
            sitting.warnings(&runs),
            ["run 3 left no report, so it (and only it) is left out: it died"]
        );
    }

    /// The one rule for a child's exit, on real processes: a report is a
    /// report (exit 3 too), exit 2 is a refusal with or without a report,
    /// and anything else without a report is a lost run.
    #[cfg(unix)]
    #[test]
    fn a_childs_exit_is_a_report_a_refusal_or_a_lost_run() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/day_report.json");
        let outcome = |name: &str, body: &str| {
            let program = dir.path().join(name);
            std::fs::write(&program, format!("#!/bin/sh\n{body}\n")).expect("the script");
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
                .expect("executable");
            let child = ChildCommand::new(1, "campaign.toml", dir.path().join("out"));
            let ran = run_child(Arm::Candidate, &program, &child, &CancelFlag::new());
            slot_outcome(ran, Arm::Candidate, &program, 1)
        };
        let cat = format!("cat '{}'", fixture.display());
        assert!(matches!(
            outcome("reports", &format!("{cat}; exit 3")),
            Ok(SlotRun::Report(_))
        ));
        assert!(matches!(
            outcome("refuses_loudly", &format!("{cat}; exit 2")),
            Err(SittingError::Refused { .. })
        ));
        assert!(matches!(
            outcome("refuses", "exit 2"),
            Err(SittingError::Refused { .. })
        ));
        match outcome("dies", "echo garbage; exit 1") {
            Ok(SlotRun::Lost(why)) => assert!(why.contains("not a day report"), "{why}"),
            _ => panic!("a child without a report is a lost run"),
        }
    }
}
