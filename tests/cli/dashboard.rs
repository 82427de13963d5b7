//! `campaign dashboard` on a seeded store of a year of nights × 100
//! series: what the front page lists, the charts in a real browser (drawn,
//! interactive within a second, a click reaching the night), and the
//! same pages served over HTTP.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::cargo::cargo_bin_cmd;
use campaign::analysis::{ChangeState, HistoryEntry};
use campaign::store::{self, StoreLocation, StoredNight, StoredSeries};
use chrono::Utc;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serial_test::serial;

use crate::fixture::*;

const NIGHTS: usize = 365;
const SERIES: usize = 100;
/// The night series 7 gets 25 % slower, with the commit that did it.
const STEP_NIGHT: usize = 340;
const STEP_SERIES: usize = 7;
const CULPRIT: &str = "bad0c0de11";
/// The series whose last two nights the gate confirmed regressed.
const REGRESSED_SERIES: usize = 42;
/// A second machine's nights: the last month.
const SECOND_MACHINE_NIGHTS: usize = 30;

fn series_name(k: usize) -> String {
    format!("decode[prompt_len={k}] tpot_ms")
}

fn run_id(machine: &str, night: usize) -> String {
    format!("{machine}-night{night:03}")
}

/// A year of nights on `m1` (and the last month on `m2`), 1 % noise
/// between runs, three runs a night; the planted step and open regression
/// above, nothing else.
fn seed_year(path: &Path) {
    let mut s = store::open(&StoreLocation::Sqlite(path.to_path_buf())).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2026);
    let noise = Normal::new(0.0, 0.01).unwrap();
    // A year up to yesterday, each night half a day off the hour the test
    // runs: a window of whole days from now never falls on a night.
    let start = Utc::now() - chrono::Duration::days(NIGHTS as i64) - chrono::Duration::hours(12);
    for (machine, first) in [("m1", 0), ("m2", NIGHTS - SECOND_MACHINE_NIGHTS)] {
        for night in first..NIGHTS {
            let commit = if night < STEP_NIGHT {
                format!("good{night:06}")
            } else if night == STEP_NIGHT {
                CULPRIT.to_string()
            } else {
                format!("after{night:05}")
            };
            let mut entry = HistoryEntry {
                recorded_at: start + chrono::Duration::days(night as i64),
                campaign: "nightly".into(),
                day: 1,
                git_commit: commit,
                quick: false,
                runs: 3,
                report: format!("/reports/{machine}/{night}.json"),
                values: BTreeMap::new(),
                baseline: None,
                states: BTreeMap::new(),
                log_runs: BTreeMap::new(),
                thresholds_pct: BTreeMap::new(),
            };
            let mut series = BTreeMap::new();
            for k in 0..SERIES {
                let mut level = 10.0 + k as f64 * 0.1;
                if machine == "m2" {
                    level *= 0.8;
                }
                if k == STEP_SERIES && night >= STEP_NIGHT {
                    level *= 1.25;
                }
                let runs: Vec<f64> = (0..3)
                    .map(|_| level * (1.0 + noise.sample(&mut rng)))
                    .collect();
                let mut sorted = runs.clone();
                sorted.sort_by(f64::total_cmp);
                let key = series_name(k);
                entry.values.insert(key.clone(), sorted[1]);
                if k == REGRESSED_SERIES && machine == "m1" && night >= NIGHTS - 2 {
                    entry.states.insert(key.clone(), ChangeState::Regressed);
                }
                series.insert(
                    key,
                    StoredSeries {
                        median: sorted[1],
                        unit: "ms".into(),
                        higher_is_better: false,
                        run_values: runs,
                    },
                );
            }
            let mut stored = StoredNight::from_history(
                machine,
                entry,
                Some(format!(
                    "{{\"cpu_model\":\"seeded {machine}\",\"kernel\":\"6.1\"}}"
                )),
            );
            stored.run_id = run_id(machine, night);
            stored.series = series;
            s.write_night(&stored).unwrap();
        }
    }
}

fn attribute(dom: &str, name: &str) -> Option<String> {
    dom.split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
}

/// The DOM of `url` in headless Chromium once the page has loaded (with a
/// virtual time budget, after the navigations it starts).
fn dump_dom(browser: &Path, url: &str, virtual_time: bool) -> String {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
    ]);
    if virtual_time {
        command.arg("--virtual-time-budget=5000");
    }
    let out = command.arg("--dump-dom").arg(url).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[serial]
fn a_year_of_a_hundred_series_renders_interactive_and_a_click_reaches_the_night() {
    let f = Fixture::new();
    let db = f.path("year.sqlite");
    seed_year(&db);
    let site = f.path("site");
    let out = cargo_bin_cmd!("campaign")
        .args(["dashboard", "--recent", "30", "--store"])
        .arg(&db)
        .arg("--export")
        .arg(&site)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains(&format!("{} nights", NIGHTS + SECOND_MACHINE_NIGHTS)),
        "{stdout}"
    );

    // A window of the last 30 days: the nights in it, no more (nights are
    // 1.5, 2.5, … days old: 29 of them on each machine).
    let windowed = cargo_bin_cmd!("campaign")
        .args(["dashboard", "--since-days", "30", "--store"])
        .arg(&db)
        .arg("--export")
        .arg(f.path("site30"))
        .assert()
        .success();
    let windowed = String::from_utf8_lossy(&windowed.get_output().stdout).into_owned();
    assert!(windowed.contains("\n58 nights,"), "{windowed}");

    // The front page: the planted step with its commit, the open
    // regression, and little else (100 A/A series on two machines).
    let index = fs::read_to_string(site.join("index.html")).unwrap();
    let alerts: Vec<&str> = index.split("<tr class=\"alert\">").skip(1).collect();
    let step: Vec<&&str> = alerts
        .iter()
        .filter(|row| row.contains(&format!("{}</a>", series_name(STEP_SERIES))))
        .collect();
    assert!(
        step.iter().any(|row| row.contains(">change point<")
            && row.contains(CULPRIT)
            && row.contains("class=\"n worse\">+2")
            && (STEP_NIGHT - 1..=STEP_NIGHT + 1)
                .any(|n| row.contains(&format!("nights/{}.html", run_id("m1", n))))),
        "{step:?}"
    );
    // The row links the series' chart, where its change is marked.
    let step_anchor = step[0]
        .split("days/nightly_day_1.html#")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    // The second machine saw it too, on its own line.
    assert!(
        step.iter().any(|row| row.contains("<td>m2</td>")),
        "{step:?}"
    );
    let open: Vec<&&str> = alerts
        .iter()
        .filter(|row| row.contains(">open regression<"))
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].contains(&series_name(REGRESSED_SERIES)));
    assert!(open[0].contains(&format!("nights/{}.html", run_id("m1", NIGHTS - 2))));
    assert!(alerts.len() <= 3 + 4, "{} alerts: {alerts:?}", alerts.len());

    // Every night has its page, chained to its neighbours.
    let night_page = fs::read_to_string(
        site.join("nights")
            .join(format!("{}.html", run_id("m1", STEP_NIGHT))),
    )
    .unwrap();
    assert!(night_page.contains(CULPRIT) && night_page.contains("previous night"));
    assert!(
        night_page.contains("no environment difference"),
        "{night_page}"
    );
    assert_eq!(
        fs::read_dir(site.join("nights")).unwrap().count(),
        NIGHTS + SECOND_MACHINE_NIGHTS
    );

    let day = site.join("days").join("nightly_day_1.html");
    let day_html = fs::read_to_string(&day).unwrap();
    assert_eq!(day_html.matches("<svg class=\"chart\"").count(), SERIES);

    if let Ok(dir) = std::env::var("CAMPAIGN_KEEP_SCREENSHOT") {
        let _ = Command::new("cp").arg("-r").arg(&site).arg(&dir).status();
        let _ = fs::copy(&db, Path::new(&dir).join("year.sqlite"));
    }
    let Some(browser) = chromium() else {
        eprintln!("skipped the browser check: Chromium is not installed (.ci/run installs it)");
        return;
    };
    let url = format!("file://{}", day.display());
    // Real time, not virtual: how long the page takes to be usable.
    let dom = dump_dom(&browser, &url, false);
    assert!(!dom.contains("data-script-errors"), "script errors");
    assert_eq!(
        attribute(&dom, "data-charts-rendered").as_deref(),
        Some(SERIES.to_string().as_str()),
        "every chart has a size and points"
    );
    assert_eq!(
        attribute(&dom, "data-points-rendered"),
        Some((SERIES * (NIGHTS + SECOND_MACHINE_NIGHTS)).to_string())
    );
    let interactive_ms: f64 = attribute(&dom, "data-interactive-ms")
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("interactive after {interactive_ms} ms");
    assert!(
        interactive_ms < 1000.0,
        "interactive after {interactive_ms} ms"
    );
    // A click on a point, and on a change point's marker, opens that night.
    for (hash, expected) in [
        ("click-a-point", Some(run_id("m2", NIGHTS - 1))),
        (&*format!("click-a-change-in-{step_anchor}"), None),
    ] {
        let dom = dump_dom(&browser, &format!("{url}#{hash}"), true);
        let reached = attribute(&dom, "data-run-id").unwrap_or_else(|| {
            panic!(
                "{hash} did not reach a night: {}",
                &dom[..dom.len().min(300)]
            )
        });
        match expected {
            Some(id) => assert_eq!(reached, id),
            None => assert!(
                (STEP_NIGHT - 1..=STEP_NIGHT + 1)
                    .any(|n| [run_id("m1", n), run_id("m2", n)].contains(&reached)),
                "{reached}"
            ),
        }
    }
    let front = dump_dom(
        &browser,
        &format!("file://{}", site.join("index.html").display()),
        false,
    );
    assert!(front.contains("data-interactive-ms") && !front.contains("data-script-errors"));
    if let Ok(dir) = std::env::var("CAMPAIGN_KEEP_SCREENSHOT") {
        let _ = fs::create_dir_all(&dir);
        let _ = fs::copy(&day, Path::new(&dir).join("dashboard_day.html"));
        let _ = fs::copy(
            site.join("index.html"),
            Path::new(&dir).join("dashboard_index.html"),
        );
        for (page, name) in [
            (&day, "dashboard_day.png"),
            (&site.join("index.html"), "dashboard_index.png"),
        ] {
            let _ = Command::new(&browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1500,1800",
                ])
                .arg(format!(
                    "--screenshot={}",
                    Path::new(&dir).join(name).display()
                ))
                .arg(format!("file://{}", page.display()))
                .status();
        }
    }
}

/// The same pages over HTTP, and nothing outside them.
#[test]
#[serial]
fn the_dashboard_serves_the_store_until_stopped() {
    let f = Fixture::new();
    let db = f.path("year.sqlite");
    seed_year(&db);
    let mut server = Server::start(&["--recent", "30", "--store", &db.display().to_string()]);
    let get = |path: &str| server.get(path);
    let (code, index) = get("");
    assert_eq!(code, "200");
    assert!(index.contains("open regression") && index.contains(CULPRIT));
    let (code, day) = get("days/nightly_day_1.html");
    assert_eq!(code, "200");
    assert_eq!(day.matches("<svg class=\"chart\"").count(), SERIES);
    let (code, night) = get(&format!("nights/{}.html", run_id("m1", 10)));
    assert_eq!(code, "200");
    assert!(night.contains(&format!("data-run-id=\"{}\"", run_id("m1", 10))));
    // A night seeded without its report has no report page; nothing
    // outside the pages is served.
    assert_eq!(
        get(&format!("nights/{}.report.html", run_id("m1", 10))).0,
        "404"
    );
    assert_eq!(get("../../etc/passwd").0, "404");
    assert_eq!(get("flame_graphs/..%2F..%2Fetc%2Fpasswd").0, "404");
    terminate(server.0.id());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `campaign dashboard` serving, killed if the test fails before it
/// stops it; the URL its first line printed.
struct Server(std::process::Child, String);

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin!("campaign"))
            .arg("dashboard")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let base = first
            .trim()
            .strip_prefix("dashboard: ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        Self(child, base)
    }

    /// (status, body) of a path, sent as written (`..` included).
    fn get(&self, path: &str) -> (String, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--path-as-is"])
            .arg(format!("{}{path}", self.1))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.to_string(), body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM, as a service manager stops the server.
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// A real night with its flame graph: its report and flame graph are
/// served from the store; a stored report that names another file gets
/// nothing; an unreadable stored report costs only its page in an export;
/// and viewing an older store neither migrates nor breaks it.
#[test]
#[serial]
fn stored_reports_and_flame_graphs_are_served_and_nothing_else() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    gate(&f, &campaign, &["--profile"]).success();
    let db = f.out().join("results.sqlite");
    let (run_id, report_json): (String, String) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT run_id, report_json FROM nights", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&report_json).unwrap();
    let flame = report["profiles"][0]["flamegraph_path"]
        .as_str()
        .unwrap()
        .to_string();
    let name = Path::new(&flame)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let out = f.out().display().to_string();
    let serve = || Server::start(&["--out", &out]);
    let server = serve();
    let get = |path: &str| server.get(path);
    let night = get(&format!("nights/{run_id}.html")).1;
    assert!(
        night.contains(&format!("nights/{run_id}.report.html")),
        "{night}"
    );
    let (code, page) = get(&format!("nights/{run_id}.report.html"));
    assert_eq!(code, "200");
    assert!(page.contains(&format!("../flame_graphs/{name}")), "{page}");
    let (code, svg) = get(&format!("flame_graphs/{name}"));
    assert_eq!(code, "200");
    assert!(svg.contains("<svg"));
    drop(server);

    // A report in the store naming a file that is no flame graph.
    let secret = f.path("secret.txt");
    fs::write(&secret, "not for the dashboard").unwrap();
    let tampered = report_json.replace(&flame, &secret.display().to_string());
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE nights SET report_json = ?1",
            rusqlite::params![tampered],
        )
        .unwrap();
    let server = serve();
    let get = |path: &str| server.get(path);
    assert_eq!(get(&format!("nights/{run_id}.report.html")).0, "200");
    let (code, body) = get("flame_graphs/secret.txt");
    assert_eq!(code, "404");
    assert!(!body.contains("not for the dashboard"));
    drop(server);

    // An unreadable stored report: the export goes on without that page,
    // and says so.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE nights SET report_json = '{\"day\":1}'", [])
        .unwrap();
    let site = f.path("site");
    let out = cargo_bin_cmd!("campaign")
        .args(["dashboard", "--out"])
        .arg(f.out())
        .arg("--export")
        .arg(&site)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&run_id) && stderr.contains("left out"),
        "{stderr}"
    );
    assert!(site.join("nights").join(format!("{run_id}.html")).exists());
    assert!(
        !site
            .join("nights")
            .join(format!("{run_id}.report.html"))
            .exists()
    );
    assert!(!site.join("flame_graphs").join("secret.txt").exists());

    // A store the previous release wrote (version 1): read as it is, not
    // migrated by looking at it.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "ALTER TABLE nights DROP COLUMN report_json; \
             ALTER TABLE nights DROP COLUMN comparison_json; \
             DROP INDEX nights_by_time; DELETE FROM schema_version WHERE version > 1",
        )
        .unwrap();
    let old_site = f.path("old_site");
    cargo_bin_cmd!("campaign")
        .args(["dashboard", "--out"])
        .arg(f.out())
        .arg("--export")
        .arg(&old_site)
        .assert()
        .success();
    let night = fs::read_to_string(old_site.join("nights").join(format!("{run_id}.html"))).unwrap();
    assert!(night.contains("not in the store"), "{night}");
    let version: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1, "the dashboard migrated the store it only reads");
}
