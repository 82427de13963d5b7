//! A program outside this process (a peer engine's benchmark, a script):
//! started with an argument vector, its output captured, stopped when it
//! runs past its time limit. It measures nothing: the `command` benchmark
//! times each run and reads the metrics out of the output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// The end of stderr kept for an error message: enough for the program's
/// own last words, short enough for a report.
const STDERR_TAIL_BYTES: usize = 2048;
/// The most output (stdout, or the result file) one run may leave: its
/// metrics are a few numbers, and its JSON is held whole to be queried, so
/// a program that writes more is failing, not reporting.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// After the program exits (or is killed), how long its output pipes may
/// stay open: longer means a process it started outlived it and holds
/// them, escaping its process group.
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// How often the wait looks at the output's size.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("{program} is not on PATH ({source})")]
    NotFound {
        program: String,
        source: which::Error,
    },
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error(
        "{program} ran past its time limit of {limit_s} s and was killed, with every process it started"
    )]
    TimedOut { program: String, limit_s: f64 },
    #[error(
        "{program} wrote more than {limit_mib} MiB of output (the limit for one run) and was killed, with every process it started; a program's output is its metrics, a few records"
    )]
    OutputTooLarge { program: String, limit_mib: usize },
    #[error(
        "{program} exited, but a process it started (outside its process group) kept its output open past {grace_s} s; that run's output is not read"
    )]
    OutputHeld { program: String, grace_s: f64 },
    #[error("{program} exited with {status}; the end of its stderr:\n{stderr_tail}")]
    Exited {
        program: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    #[error("cannot read the output of {program}: {source}")]
    Output {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot read {path}, the result file of {program}: {source}")]
    ResultFile {
        program: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A program and how to run it.
#[derive(Debug, Clone)]
pub struct ExternalProgram {
    /// The program as found on PATH (or as given, when it names a path).
    executable: PathBuf,
    /// The name the user wrote, for messages.
    program: String,
    args: Vec<String>,
    /// Read this file after each run instead of stdout.
    result_file: Option<PathBuf>,
    time_limit: Duration,
}

/// What one run left behind: its stdout, or its result file's bytes.
#[derive(Debug)]
pub struct ProgramOutput {
    pub bytes: Vec<u8>,
}

/// Where `program` would run from: a path as given, else the first match
/// on PATH.
pub fn locate(program: &str) -> Result<PathBuf, ExternalError> {
    which::which(program).map_err(|source| ExternalError::NotFound {
        program: program.to_string(),
        source,
    })
}

impl ExternalProgram {
    /// `argv[0]` is located now, so a missing program is known before any
    /// run; `argv` must not be empty (the campaign checks it).
    pub fn new(
        argv: &[String],
        result_file: Option<PathBuf>,
        time_limit: Duration,
    ) -> Result<Self, ExternalError> {
        let (program, args) = argv.split_first().ok_or_else(|| ExternalError::Spawn {
            program: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
        })?;
        Ok(Self {
            executable: locate(program)?,
            program: program.clone(),
            args: args.to_vec(),
            result_file,
            time_limit,
        })
    }

    pub fn executable(&self) -> &Path {
        &self.executable
    }

    /// Runs the program once to its end and returns what it wrote. A
    /// non-zero exit, a kill at the time limit, too much output or an
    /// unreadable output is an error that keeps the end of stderr. The
    /// program runs in a process group of its own, and whatever of the
    /// group is left when it ends (a child it left behind) is killed: no
    /// process of a run outlives it.
    pub fn run(&self) -> Result<ProgramOutput, ExternalError> {
        if let Some(path) = &self.result_file {
            // A stale file from the last run must not pass for this one's.
            let _ = std::fs::remove_file(path);
        }
        let mut command = Command::new(&self.executable);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|source| ExternalError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let group = ProcessGroup::of(&child);
        // Both pipes are drained while the program runs: a program that
        // fills one pipe's buffer would otherwise block forever. Neither
        // keeps more than its bound.
        let overflow = Arc::new(AtomicBool::new(false));
        let stdout = drain(child.stdout.take(), Keep::Head(MAX_OUTPUT_BYTES), &overflow);
        let stderr = drain(
            child.stderr.take(),
            Keep::Tail(STDERR_TAIL_BYTES),
            &overflow,
        );
        let status = self.wait(&mut child, &overflow);
        // Whatever the program left running would hold the pipes open.
        group.kill();
        let status = status?;
        let stdout = self.collect(stdout);
        let stderr = self.collect(stderr).unwrap_or_default();
        if !status.success() {
            return Err(ExternalError::Exited {
                program: self.program.clone(),
                status,
                stderr_tail: tail(&stderr),
            });
        }
        let bytes = match &self.result_file {
            Some(path) => self.read_result_file(path)?,
            None => stdout?,
        };
        Ok(ProgramOutput { bytes })
    }

    /// Waits for the program until its time limit, killing its group early
    /// when its output outgrows the bound.
    fn wait(&self, child: &mut Child, overflow: &AtomicBool) -> Result<ExitStatus, ExternalError> {
        let output_error = |source| ExternalError::Output {
            program: self.program.clone(),
            source,
        };
        let deadline = Instant::now() + self.time_limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(status) = child.wait_timeout(left.min(POLL)).map_err(output_error)? {
                return Ok(status);
            }
            let too_much = overflow.load(Ordering::Relaxed);
            if too_much || left.is_zero() {
                ProcessGroup::of(child).kill();
                let _ = child.kill();
                let _ = child.wait();
                return Err(if too_much {
                    ExternalError::OutputTooLarge {
                        program: self.program.clone(),
                        limit_mib: MAX_OUTPUT_BYTES >> 20,
                    }
                } else {
                    ExternalError::TimedOut {
                        program: self.program.clone(),
                        limit_s: self.time_limit.as_secs_f64(),
                    }
                });
            }
        }
    }

    /// A pipe's bytes, waiting at most [`PIPE_GRACE`] for it to close.
    fn collect(&self, drained: Drained) -> Result<Vec<u8>, ExternalError> {
        let Some(receiver) = drained else {
            return Ok(Vec::new());
        };
        match receiver.recv_timeout(PIPE_GRACE) {
            Ok(Ok(PipeBytes {
                bytes,
                overflowed: false,
            })) => Ok(bytes),
            Ok(Ok(PipeBytes {
                overflowed: true, ..
            })) => Err(ExternalError::OutputTooLarge {
                program: self.program.clone(),
                limit_mib: MAX_OUTPUT_BYTES >> 20,
            }),
            Ok(Err(source)) => Err(ExternalError::Output {
                program: self.program.clone(),
                source,
            }),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Err(ExternalError::OutputHeld {
                    program: self.program.clone(),
                    grace_s: PIPE_GRACE.as_secs_f64(),
                })
            }
        }
    }

    /// The result file, refused unread when larger than the bound.
    fn read_result_file(&self, path: &Path) -> Result<Vec<u8>, ExternalError> {
        let error = |source| ExternalError::ResultFile {
            program: self.program.clone(),
            path: path.to_path_buf(),
            source,
        };
        let length = std::fs::metadata(path).map_err(error)?.len();
        if length > MAX_OUTPUT_BYTES as u64 {
            return Err(ExternalError::OutputTooLarge {
                program: self.program.clone(),
                limit_mib: MAX_OUTPUT_BYTES >> 20,
            });
        }
        std::fs::read(path).map_err(error)
    }
}

/// The process group a program was started in (its own: pid = pgid).
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn of(child: &Child) -> Self {
        Self(i32::try_from(child.id()).ok().filter(|pid| *pid > 0))
    }

    /// SIGKILL to every process left in the group.
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the process group
            // this run created for the program (process_group(0) makes its
            // pgid the child's pid); nothing else is in that group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Which bytes of a pipe are kept.
#[derive(Clone, Copy)]
enum Keep {
    /// The first n; past them the run has overflowed.
    Head(usize),
    /// The last n, for an error message.
    Tail(usize),
}

/// What a drained pipe gave.
struct PipeBytes {
    bytes: Vec<u8>,
    overflowed: bool,
}

type Drained = Option<Receiver<std::io::Result<PipeBytes>>>;

/// Reads a pipe to its end on a thread of its own, keeping at most what
/// `keep` says, and raising `overflow` when a head bound is passed.
fn drain(
    pipe: Option<impl Read + Send + 'static>,
    keep: Keep,
    overflow: &Arc<AtomicBool>,
) -> Drained {
    let mut pipe = pipe?;
    let overflow = Arc::clone(overflow);
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 64 * 1024];
        let mut overflowed = false;
        let result = loop {
            match pipe.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => match keep {
                    Keep::Head(limit) => {
                        if bytes.len() + n > limit {
                            overflowed = true;
                            overflow.store(true, Ordering::Relaxed);
                            // Keep reading (and dropping) so the writer is
                            // not blocked before it is killed.
                        } else {
                            bytes.extend_from_slice(&buffer[..n]);
                        }
                    }
                    Keep::Tail(limit) => {
                        bytes.extend_from_slice(&buffer[..n]);
                        if bytes.len() > 2 * limit {
                            bytes.drain(..bytes.len() - limit);
                        }
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // The receiver may have given up waiting: nothing to tell then.
        let _ = sender.send(result.map(|()| PipeBytes { bytes, overflowed }));
    });
    Some(receiver)
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    match text.char_indices().rev().nth(STDERR_TAIL_BYTES) {
        Some((cut, _)) => format!("…{}", &text[cut..]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_run_returns_stdout_and_a_failure_keeps_stderr() {
        let ok = ExternalProgram::new(
            &argv(&["sh", "-c", "echo '{\"a\": 1}'; echo noise >&2"]),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(ok.run().unwrap().bytes, b"{\"a\": 1}\n");

        let failing = ExternalProgram::new(
            &argv(&[
                "sh",
                "-c",
                "echo partial; echo 'model not found' >&2; exit 3",
            ]),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        let message = failing.run().unwrap_err().to_string();
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("model not found"), "{message}");
    }

    #[test]
    fn a_program_past_its_limit_is_killed_and_a_missing_one_is_named() {
        let slow = ExternalProgram::new(&argv(&["sleep", "30"]), None, Duration::from_millis(200))
            .unwrap();
        let started = std::time::Instant::now();
        let e = slow.run().unwrap_err();
        assert!(matches!(e, ExternalError::TimedOut { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));

        let e = ExternalProgram::new(
            &argv(&["no-such-program-campaign-test"]),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no-such-program-campaign-test is not on PATH")
        );
    }

    /// Whether a process is still running (a zombie waiting for its reaper
    /// counts as gone).
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2).is_none_or(|s| s != "Z"))
    }

    fn gone_within(pid: i32, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_program_that_writes_without_end_is_stopped_at_the_bound() {
        // 300 MB of JSON lines: stopped once past the bound, not held.
        let flood = ExternalProgram::new(
            &argv(&["sh", "-c", "yes '{\"x\":1}' | head -c 300000000"]),
            None,
            Duration::from_secs(120),
        )
        .unwrap();
        let started = Instant::now();
        let e = flood.run().unwrap_err();
        assert!(
            matches!(e, ExternalError::OutputTooLarge { limit_mib: 16, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("more than 16 MiB"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(60));
        // A result file past the bound is refused unread.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big.json");
        let big = ExternalProgram::new(
            &argv(&[
                "sh",
                "-c",
                &format!(
                    "head -c {} /dev/zero > {}",
                    MAX_OUTPUT_BYTES + 1,
                    file.display()
                ),
            ]),
            Some(file),
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(
            big.run().unwrap_err(),
            ExternalError::OutputTooLarge { .. }
        ));
    }

    #[test]
    fn no_process_of_a_run_outlives_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A child that would outlive the program and hold its output pipe:
        // the run ends at its limit, and the child with it.
        let orphan = ExternalProgram::new(
            &argv(&[
                "sh",
                "-c",
                &format!(
                    "(sleep 1000 & echo $! > {}) ; sleep 1000",
                    pid_file.display()
                ),
            ]),
            None,
            Duration::from_secs(2),
        )
        .unwrap();
        let started = Instant::now();
        let e = orphan.run().unwrap_err();
        assert!(matches!(e, ExternalError::TimedOut { .. }), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "pid {pid} outlived its run"
        );

        // A program that succeeds and leaves a child behind: its output is
        // read, and the child is killed.
        let leaves = ExternalProgram::new(
            &argv(&[
                "sh",
                "-c",
                &format!("sleep 1000 & echo $! > {}; echo '{{}}'", pid_file.display()),
            ]),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        let started = Instant::now();
        assert_eq!(leaves.run().unwrap().bytes, b"{}\n");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "pid {pid} outlived its run"
        );
    }

    #[test]
    fn a_result_file_is_read_instead_of_stdout_and_must_be_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("result.json");
        std::fs::write(&file, "stale").unwrap();
        let writes = ExternalProgram::new(
            &argv(&["sh", "-c", &format!("echo fresh > {}", file.display())]),
            Some(file.clone()),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(writes.run().unwrap().bytes, b"fresh\n");
        let forgets = ExternalProgram::new(
            &argv(&["true"]),
            Some(file.clone()),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(matches!(
            forgets.run().unwrap_err(),
            ExternalError::ResultFile { .. }
        ));
    }
}
