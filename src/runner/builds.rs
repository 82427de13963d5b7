//! Builds of a git repository's commits, for bisect. Each commit is
//! checked out in a worktree of its own (the user's checkout is never
//! touched) and built by a command; its binary is kept in a cache by
//! commit and build command, so a second bisect over the same commits
//! builds nothing. The default build shares one cargo target folder
//! across commits, so each build recompiles what the commit changed, not
//! the dependencies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use xxhash_rust::xxh3::xxh3_64;

use super::CancelFlag;

/// The default build command (run in each commit's worktree, with
/// `CARGO_TARGET_DIR` set to the cache's shared target folder).
pub const DEFAULT_BUILD: &str = "cargo build --release --bin campaign";

/// What went wrong with git or a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{dir}: not inside a git checkout ({detail})\n  help: run bisect in the repository whose commits you want built, or pass --repo DIR"
    )]
    NotARepository { dir: PathBuf, detail: String },
    #[error("{rev:?} is not a commit of {repo}: {detail}")]
    UnknownRevision {
        rev: String,
        repo: PathBuf,
        detail: String,
    },
    #[error(
        "{good} is not an ancestor of {bad} on its first-parent line\n  help: --good must be an older commit that --bad descends from"
    )]
    NotAnAncestor { good: String, bad: String },
    #[error(
        "--good and --bad are the same commit, {commit}: there is nothing between them to search\n  help: --good names an older commit whose build is fast"
    )]
    SameCommit { commit: String },
    #[error("git {args}: {detail}")]
    Git { args: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("build of {commit} failed ({status}); its log: {log}\n{tail}")]
    Failed {
        commit: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "build of {commit} left no program at {binary}; its log: {log}\n  help: --binary names the program the build command leaves, relative to the checkout"
    )]
    NoBinary {
        commit: String,
        binary: PathBuf,
        log: PathBuf,
    },
    #[error("the campaign file {path} does not exist at {commit}")]
    NoCampaign { commit: String, path: PathBuf },
    #[error("interrupted")]
    Interrupted,
}

/// One commit of the range: its id and the first line of its message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.sha[..self.sha.len().min(10)]
    }
}

/// A git checkout, driven through the `git` program.
#[derive(Debug, Clone)]
pub struct GitRepo {
    pub root: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl GitRepo {
    /// The checkout `dir` belongs to.
    pub fn open(dir: &Path) -> Result<Self, BuildError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(|e| BuildError::NotARepository {
                dir: dir.to_path_buf(),
                detail: format!("cannot run git: {e}"),
            })?;
        if !out.status.success() {
            return Err(BuildError::NotARepository {
                dir: dir.to_path_buf(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(Self {
            root: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        })
    }

    fn git(&self, args: &[&str]) -> Result<String, BuildError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BuildError::Git {
                args: args.join(" "),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(BuildError::Git {
                args: args.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    }

    /// The commit a revision names (a branch, a tag, `HEAD~3`, an id).
    pub fn resolve(&self, rev: &str) -> Result<Commit, BuildError> {
        let sha = self
            .git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rev}^{{commit}}"),
            ])
            .map_err(|e| BuildError::UnknownRevision {
                rev: rev.to_string(),
                repo: self.root.clone(),
                detail: match e {
                    BuildError::Git { detail, .. } if !detail.is_empty() => detail,
                    _ => "no such revision".into(),
                },
            })?;
        let subject = self.git(&["log", "-1", "--format=%s", &sha])?;
        Ok(Commit { sha, subject })
    }

    /// The commits from `good` to `bad` on `bad`'s first-parent line, the
    /// good one first and the bad one last: the history bisect searches.
    pub fn range(&self, good: &Commit, bad: &Commit) -> Result<Vec<Commit>, BuildError> {
        if good.sha == bad.sha {
            return Err(BuildError::SameCommit {
                commit: format!("{} ({})", good.short(), good.subject),
            });
        }
        let listed = self.git(&[
            "log",
            "--first-parent",
            "--format=%H%x09%s",
            &format!("{}..{}", good.sha, bad.sha),
        ])?;
        let mut between: Vec<Commit> = listed
            .lines()
            .filter_map(|line| {
                let (sha, subject) = line.split_once('\t')?;
                Some(Commit {
                    sha: sha.to_string(),
                    subject: subject.to_string(),
                })
            })
            .collect();
        between.reverse();
        // The line must start right after `good`: the oldest listed
        // commit's first parent is `good` itself.
        let starts_at_good = match between.first() {
            Some(first) => {
                self.git(&["rev-parse", &format!("{}^1", first.sha)])
                    .ok()
                    .as_deref()
                    == Some(good.sha.as_str())
            }
            None => false,
        };
        if !starts_at_good || between.last().map(|c| &c.sha) != Some(&bad.sha) {
            return Err(BuildError::NotAnAncestor {
                good: format!("{} ({})", good.short(), good.subject),
                bad: format!("{} ({})", bad.short(), bad.subject),
            });
        }
        Ok(std::iter::once(good.clone()).chain(between).collect())
    }

    /// The file `path` (relative to the repository's root) as `commit`
    /// has it, if it does.
    pub fn file_at(&self, commit: &Commit, path: &Path) -> Option<Vec<u8>> {
        let spec = format!("{}:{}", commit.sha, path.to_string_lossy());
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["show", &spec])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }
}

/// How each commit is built.
#[derive(Debug, Clone)]
pub struct BuildRecipe {
    /// A shell command run in the commit's worktree; `None`: the default
    /// cargo build into the cache's shared target folder.
    pub command: Option<String>,
    /// The program the command leaves, relative to the worktree (an
    /// absolute path is taken as it is).
    pub binary: PathBuf,
}

/// What besides the source makes a build what it is: the compiler and
/// the flags cargo reads from the environment. A compiler update between
/// two bisects must not reuse builds of the old one (it would look like a
/// regression of the code).
fn toolchain() -> String {
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let flags: Vec<String> = ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"]
        .iter()
        .map(|v| format!("{v}={}", std::env::var(v).unwrap_or_default()))
        .collect();
    format!("{rustc}\u{0}{}", flags.join("\u{0}"))
}

impl BuildRecipe {
    fn key(&self) -> String {
        let text = format!(
            "{}\u{0}{}\u{0}{}",
            self.command.as_deref().unwrap_or(DEFAULT_BUILD),
            self.binary.display(),
            toolchain()
        );
        format!("{:016x}", xxh3_64(text.as_bytes()))
    }

    /// In words, for the report.
    pub fn describe(&self) -> String {
        match &self.command {
            Some(c) => format!(
                "`{c}` in each commit's worktree, program {}",
                self.binary.display()
            ),
            None => {
                format!("`{DEFAULT_BUILD}` in each commit's worktree, one shared target folder")
            }
        }
    }
}

/// A commit's build, ready to run.
#[derive(Debug, Clone)]
pub struct Build {
    pub commit: Commit,
    pub binary: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// Builds commits into `dir`: `builds/<commit>-<recipe>/` keeps each
/// program, `logs/` each build's output, `worktrees/` the checkouts of
/// the builds in progress, `target/` the default build's cargo folder.
pub struct BuildCache {
    pub repo: GitRepo,
    pub dir: PathBuf,
    pub recipe: BuildRecipe,
}

impl BuildCache {
    fn entry(&self, commit: &Commit) -> PathBuf {
        self.dir
            .join("builds")
            .join(format!("{}-{}", commit.sha, self.recipe.key()))
    }

    /// The build of `commit`: from the cache, else checked out in a
    /// worktree and built there (the worktree is removed afterwards).
    pub fn build(&self, commit: &Commit, interrupt: &CancelFlag) -> Result<Build, BuildError> {
        // One build at a time in a cache: two bisects share its target
        // folder and worktrees, and would take each other's programs.
        std::fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let lock_path = self.dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        let built = self.build_locked(commit, interrupt);
        let _ = lock.unlock();
        built
    }

    fn build_locked(&self, commit: &Commit, interrupt: &CancelFlag) -> Result<Build, BuildError> {
        let entry = self.entry(commit);
        let program = entry.join("campaign");
        if program.is_file() {
            return Ok(Build {
                commit: commit.clone(),
                binary: program,
                cached: true,
            });
        }
        let worktree = self.dir.join("worktrees").join(&commit.sha);
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(io_error(&logs))?;
        let log = logs.join(format!("{}-{}.log", commit.sha, self.recipe.key()));
        let checkout = Worktree::add(&self.repo, &worktree, commit)?;
        let built = self.run_build(commit, &checkout.path, &log, interrupt);
        let binary = match &self.recipe.command {
            None => self.dir.join("target").join("release").join("campaign"),
            Some(_) => checkout.path.join(&self.recipe.binary),
        };
        let result = built.and_then(|()| {
            if !binary.is_file() {
                return Err(BuildError::NoBinary {
                    commit: commit.sha.clone(),
                    binary: binary.clone(),
                    log: log.clone(),
                });
            }
            std::fs::create_dir_all(&entry).map_err(io_error(&entry))?;
            // Copied to a temporary name and renamed: a cache entry is
            // whole or absent, even if this process is killed mid-copy.
            let partial = entry.join("campaign.partial");
            std::fs::copy(&binary, &partial).map_err(io_error(&partial))?;
            std::fs::rename(&partial, &program).map_err(io_error(&program))?;
            Ok(Build {
                commit: commit.clone(),
                binary: program.clone(),
                cached: false,
            })
        });
        drop(checkout);
        result
    }

    fn run_build(
        &self,
        commit: &Commit,
        worktree: &Path,
        log: &Path,
        interrupt: &CancelFlag,
    ) -> Result<(), BuildError> {
        let log_file = std::fs::File::create(log).map_err(io_error(log))?;
        let err_file = log_file.try_clone().map_err(io_error(log))?;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(self.recipe.command.as_deref().unwrap_or(DEFAULT_BUILD))
            .current_dir(worktree)
            .env("CAMPAIGN_BISECT_COMMIT", &commit.sha)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file);
        if self.recipe.command.is_none() {
            command.env("CARGO_TARGET_DIR", self.dir.join("target"));
        }
        let status = command.status().map_err(io_error(worktree))?;
        if interrupt.is_cancelled() {
            return Err(BuildError::Interrupted);
        }
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..]
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        Err(BuildError::Failed {
            commit: commit.sha.clone(),
            status: status
                .code()
                .map_or_else(|| "killed by a signal".into(), |c| format!("exit {c}")),
            log: log.to_path_buf(),
            tail,
        })
    }

    /// The campaign file `path` (relative to the repository's root) as
    /// `commit` has it, written beside its build; a relative path inside
    /// the campaign then resolves against the cache, so campaigns that
    /// name local files should be used as one fixed file instead.
    pub fn campaign_at(&self, commit: &Commit, path: &Path) -> Result<PathBuf, BuildError> {
        let bytes = self
            .repo
            .file_at(commit, path)
            .ok_or_else(|| BuildError::NoCampaign {
                commit: commit.sha.clone(),
                path: path.to_path_buf(),
            })?;
        let entry = self.entry(commit);
        std::fs::create_dir_all(&entry).map_err(io_error(&entry))?;
        let name = path.file_name().map_or_else(
            || "campaign.toml".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let file = entry.join(name);
        crate::output::write_atomically(&file, &bytes).map_err(|e| BuildError::Io {
            path: file.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(file)
    }
}

/// A worktree removed when dropped, whatever happened to its build.
struct Worktree<'a> {
    repo: &'a GitRepo,
    path: PathBuf,
}

impl<'a> Worktree<'a> {
    fn add(repo: &'a GitRepo, path: &Path, commit: &Commit) -> Result<Self, BuildError> {
        // A worktree left by a killed bisect is removed first.
        if path.exists() {
            let _ = repo.git(&["worktree", "remove", "--force", &path.to_string_lossy()]);
            let _ = std::fs::remove_dir_all(path);
            let _ = repo.git(&["worktree", "prune"]);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        repo.git(&[
            "worktree",
            "add",
            "--detach",
            "--force",
            &path.to_string_lossy(),
            &commit.sha,
        ])?;
        Ok(Self {
            repo,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Worktree<'_> {
    fn drop(&mut self) {
        let _ = self.repo.git(&[
            "worktree",
            "remove",
            "--force",
            &self.path.to_string_lossy(),
        ]);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
