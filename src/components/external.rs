//! A program outside this process (a peer engine's benchmark, a script):
//! started with an argument vector, its output captured, stopped when it
//! runs past its time limit. It measures nothing: the `command` benchmark
//! times each run and reads the metrics out of the output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use wait_timeout::ChildExt;

/// The end of stderr kept for an error message: enough for the program's
/// own last words, short enough for a report.
const STDERR_TAIL_BYTES: usize = 2048;

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
    #[error("{program} ran past its time limit of {limit_s} s and was killed")]
    TimedOut { program: String, limit_s: f64 },
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
    /// non-zero exit, a kill at the time limit or an unreadable output is
    /// an error that keeps the end of stderr.
    pub fn run(&self) -> Result<ProgramOutput, ExternalError> {
        if let Some(path) = &self.result_file {
            // A stale file from the last run must not pass for this one's.
            let _ = std::fs::remove_file(path);
        }
        let mut child = Command::new(&self.executable)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ExternalError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        // Both pipes are drained while the program runs: a program that
        // fills one pipe's buffer would otherwise block forever.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = self.wait(&mut child);
        let stdout = join(stdout);
        let stderr = join(stderr);
        let status = status?;
        let stderr = stderr.unwrap_or_default();
        if !status.success() {
            return Err(ExternalError::Exited {
                program: self.program.clone(),
                status,
                stderr_tail: tail(&stderr),
            });
        }
        let bytes = match &self.result_file {
            Some(path) => std::fs::read(path).map_err(|source| ExternalError::ResultFile {
                program: self.program.clone(),
                path: path.clone(),
                source,
            })?,
            None => stdout.map_err(|source| ExternalError::Output {
                program: self.program.clone(),
                source,
            })?,
        };
        Ok(ProgramOutput { bytes })
    }

    fn wait(&self, child: &mut Child) -> Result<ExitStatus, ExternalError> {
        let output_error = |source| ExternalError::Output {
            program: self.program.clone(),
            source,
        };
        match child.wait_timeout(self.time_limit).map_err(output_error)? {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ExternalError::TimedOut {
                    program: self.program.clone(),
                    limit_s: self.time_limit.as_secs_f64(),
                })
            }
        }
    }
}

type Drained = Option<JoinHandle<std::io::Result<Vec<u8>>>>;

fn drain(pipe: Option<impl Read + Send + 'static>) -> Drained {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).map(|_| bytes)
        })
    })
}

fn join(drained: Drained) -> std::io::Result<Vec<u8>> {
    match drained {
        Some(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked"))),
        None => Ok(Vec::new()),
    }
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
