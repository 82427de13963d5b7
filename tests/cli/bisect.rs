//! `campaign bisect` on real git histories the tests write: each commit's
//! campaign plants (or not) a slowdown, and `--build` makes each commit's
//! program by copying this build, so a commit builds in milliseconds; one
//! commit's build fails. The search, the sittings and the profiles are the
//! real ones.

use super::fixture::*;
use serial_test::{parallel, serial};

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn work_campaign(slowdown: f64) -> String {
    format!(
        r#"name = "bisect-planted"
[settings]
threads = 1
[[days]]
number = 1
title = "planted"
[[days.benchmarks]]
name = "planted"
kind = "planted_work"
warmup = 1
iterations = 5
[days.benchmarks.params]
work_units = 2000000
major_pct = 100
slowdown = {slowdown}
"#
    )
}

/// A repository of `commits` + 1 commits (0 the good end): from commit
/// `planted_at` on, the campaign's case is `slowdown` times slower; the
/// commit `broken` does not build. Returns the commit ids, oldest first.
fn history(
    f: &Fixture,
    commits: usize,
    planted_at: Option<usize>,
    slowdown: f64,
    broken: Option<usize>,
) -> (PathBuf, Vec<String>) {
    let repo = f.path("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["config", "user.email", "bisect@example.com"]);
    git(&repo, &["config", "user.name", "bisect"]);
    let mut ids = Vec::new();
    for i in 0..=commits {
        let s = if planted_at.is_some_and(|p| i >= p) {
            slowdown
        } else {
            1.0
        };
        fs::write(repo.join("work.toml"), work_campaign(s)).unwrap();
        fs::write(repo.join("n.txt"), i.to_string()).unwrap();
        if broken == Some(i) {
            fs::write(repo.join("BROKEN"), "").unwrap();
        } else {
            let _ = fs::remove_file(repo.join("BROKEN"));
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", &format!("commit {i}")]);
        ids.push(git(&repo, &["rev-parse", "HEAD"]));
    }
    (repo, ids)
}

/// `campaign bisect` over the repository, each commit's program a copy of
/// this build (a commit with a BROKEN file fails to build).
fn bisect(f: &Fixture, repo: &Path, good: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    cargo_bin_cmd!("campaign")
        .env("CAMPAIGN_TEST_BIN", env!("CARGO_BIN_EXE_campaign"))
        .args(["bisect", "--good", good, "--bad", "HEAD", "--repo"])
        .arg(repo)
        .arg("--campaign")
        .arg(repo.join("work.toml"))
        .arg("--out")
        .arg(f.out())
        .args([
            "--campaign-from-each-commit",
            "--build",
            // BROKEN: the build fails; REFUSE: the program refuses every day.
            "test ! -e BROKEN && if test -e REFUSE; then printf '#!/bin/sh\\nexit 2\\n' > campaign && chmod +x campaign; else cp \"$CAMPAIGN_TEST_BIN\" campaign; fi",
            "--binary",
            "campaign",
            "--json",
        ])
        .args(extra)
        .assert()
}

fn json_of(assert: &assert_cmd::assert::Assert) -> Value {
    serde_json::from_slice(&assert.get_output().stdout).expect("the bisect as JSON on stdout")
}

#[test]
#[serial]
fn bisect_names_the_planted_commit_skips_a_broken_one_and_profiles_the_culprit() {
    let f = Fixture::new();
    // 16 commits after the good one; ×2 from commit 10; commit 8, the
    // first midpoint, does not build.
    let (repo, ids) = history(&f, 16, Some(10), 2.0, Some(8));
    let run = bisect(&f, &repo, &ids[0], &[]).code(3);
    let report = json_of(&run);
    let search = &report["search"];
    assert_eq!(search["outcome"]["state"], "first_bad", "{search:#}");
    assert_eq!(search["outcome"]["commit"], 10);
    assert_eq!(search["outcome"]["last_good"], 9);
    assert_eq!(report["commits"][10]["sha"], ids[10].as_str());
    // The broken commit is skipped with its build's failure, never blamed.
    let skipped = search["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0][0], 8);
    assert!(skipped[0][1].as_str().unwrap().contains("not built"));
    // Within ⌈log₂ 16⌉ + 1 measured builds; every commit measured was
    // judged on the side of the planted truth.
    let steps = search["steps"].as_array().unwrap();
    let mut measured: Vec<u64> = steps
        .iter()
        .filter(|s| s["pairs"].as_u64().unwrap() > 0)
        .map(|s| s["commit"].as_u64().unwrap())
        .collect();
    measured.sort_unstable();
    measured.dedup();
    assert!(measured.len() <= 5, "{measured:?}");
    for s in steps {
        let commit = s["commit"].as_u64().unwrap();
        let expected = if commit >= 10 { "bad" } else { "good" };
        assert_eq!(s["verdict"], expected, "step {s:#}");
    }
    assert_eq!(search["followed"]["metric"], "iteration_ms");
    let size = search["followed"]["size"].as_f64().unwrap();
    assert!(size > 1.4, "the ends' slowdown {size}");
    // The culprit's profile against the last good build's.
    let svg = report["differential_flame_graph"].as_str().unwrap();
    assert!(fs::read_to_string(svg).unwrap().contains("<svg"));
    let grew = report["profile_difference"]["grew"].as_array().unwrap();
    assert!(!grew.is_empty());
    // Written where the report says, the text beside the JSON.
    let md = fs::read_to_string(Path::new(svg).with_file_name("bisect.md")).unwrap();
    assert!(md.contains("**First bad commit:"), "{md}");
    assert!(md.contains(&ids[10][..10]));
    // A second bisect builds nothing: every program comes from the cache.
    let again = json_of(&bisect(&f, &repo, &ids[0], &["--only", "planted"]).code(3));
    let cached = again["cached_builds"].as_array().unwrap();
    assert!(cached.len() >= 3, "{cached:?}");
}

#[test]
#[serial]
fn bisect_of_a_history_without_a_slowdown_names_no_culprit() {
    let f = Fixture::new();
    let (repo, ids) = history(&f, 4, None, 1.0, None);
    let run = bisect(&f, &repo, &ids[0], &[]).code(0);
    let report = json_of(&run);
    assert_eq!(report["search"]["outcome"]["state"], "no_regression");
    assert!(String::from_utf8_lossy(&run.get_output().stderr).contains("No regression between"),);
}

#[test]
#[parallel]
fn bisect_refuses_what_it_cannot_search() {
    let f = Fixture::new();
    let (repo, ids) = history(&f, 3, None, 1.0, Some(3));
    // An unknown revision, named.
    bisect(&f, &repo, "no-such-rev", &[])
        .code(2)
        .stderr(predicate::str::contains("\"no-such-rev\" is not a commit"));
    // Good after bad.
    cargo_bin_cmd!("campaign")
        .args(["bisect", "--good", "HEAD", "--bad"])
        .arg(&ids[0])
        .arg("--repo")
        .arg(&repo)
        .arg("--campaign")
        .arg(repo.join("work.toml"))
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not an ancestor"));
    // Not a repository.
    let elsewhere = f.path("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    cargo_bin_cmd!("campaign")
        .args(["bisect", "--good", "HEAD~1", "--repo"])
        .arg(&elsewhere)
        .arg("--campaign")
        .arg(repo.join("work.toml"))
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not inside a git checkout"));
    // The bad end does not build: nothing measured, said so.
    let run = bisect(&f, &repo, &ids[0], &[]).code(4);
    let report = json_of(&run);
    assert_eq!(report["search"]["outcome"]["state"], "not_measured");
    assert!(
        report["search"]["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("the bad revision cannot be built")
    );
    // The same commit at both ends.
    bisect(&f, &repo, "HEAD", &[])
        .code(2)
        .stderr(predicate::str::contains("the same commit"));
    // A bad end whose program refuses the day (exit 2, no report): the
    // first run says so and nothing more is run.
    let _ = fs::remove_file(repo.join("BROKEN"));
    fs::write(repo.join("REFUSE"), "").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "refuses"]);
    let run = bisect(&f, &repo, &ids[0], &[]).code(4);
    let report = json_of(&run);
    let reason = report["search"]["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("refused the day"), "{reason}");
    assert!(report["search"]["steps"].as_array().unwrap().is_empty());
}
