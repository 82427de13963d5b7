//! The results store on both back ends: SQLite always, PostgreSQL where
//! its binaries are installed (CI installs them). The same checks run on
//! each: schema, idempotent writes, round trips, a newer schema refused,
//! runs of the binary writing it, and concurrent runs some of which are
//! killed.

use std::collections::BTreeMap;
use std::time::Duration;

use campaign::analysis::{ChangeState, HistoryEntry, SeriesNight};
use campaign::store::{
    self, MachineMatch, NightDocuments, NightFilter, NightQuery, SCHEMA_VERSION, StoreError,
    StoreLocation, StoredNight, StoredSeries, WriteOutcome,
};
use chrono::{DateTime, Utc};
use serial_test::{parallel, serial};

use crate::fixture::*;
use crate::postgres::TestPostgres;

/// Every back end this machine can run: (name, location), and the
/// PostgreSQL server kept alive while they are used.
fn back_ends(f: &Fixture, db: &str) -> (Vec<(&'static str, StoreLocation)>, Option<TestPostgres>) {
    let mut all = vec![(
        "sqlite",
        StoreLocation::Sqlite(f.path(&format!("{db}.sqlite"))),
    )];
    let server = TestPostgres::start();
    if let Some(server) = &server {
        all.push(("postgres", StoreLocation::Postgres(server.database(db))));
    }
    (all, server)
}

fn night(day_offset: i64, machine: &str, value: f64) -> StoredNight {
    let time = "decode[prompt_len=128] tpot_ms".to_string();
    let rate = "decode[prompt_len=128] tokens_per_s".to_string();
    let log = |v: f64, higher_is_better: bool| SeriesNight {
        mean_log: v.ln(),
        sd_log: Some(0.02),
        runs: 5,
        time_like: true,
        higher_is_better,
    };
    let entry = HistoryEntry {
        recorded_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(day_offset),
        campaign: "c".into(),
        day: 1,
        git_commit: format!("commit{day_offset}"),
        quick: false,
        runs: 5,
        report: format!("/reports/{day_offset}.json"),
        values: BTreeMap::from([(time.clone(), value), (rate.clone(), 1000.0 / value)]),
        baseline: Some("nightly".into()),
        states: BTreeMap::from([(time.clone(), ChangeState::Regressed)]),
        thresholds_pct: BTreeMap::from([(time.clone(), 7.5)]),
        log_runs: BTreeMap::from([(time, log(value, false)), (rate, log(1000.0 / value, true))]),
    };
    StoredNight::from_history(machine, entry, Some("{\"cpu_model\":\"x\"}".into()))
}

fn query(machine: MachineMatch) -> NightQuery {
    NightQuery {
        campaign: "c".into(),
        day: 1,
        machine,
    }
}

fn target(location: &StoreLocation) -> String {
    match location {
        StoreLocation::Sqlite(p) => p.display().to_string(),
        StoreLocation::Postgres(url) => url.clone(),
    }
}

#[test]
#[parallel]
fn the_store_round_trips_nights_once_on_every_back_end() {
    let f = Fixture::new();
    let (ends, _server) = back_ends(&f, "round_trip");
    for (name, location) in ends {
        let mut s = store::open(&location).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION, "{name}");
        let (a, b) = (night(2, "m1-cpu", 10.0), night(1, "m1-cuda-1", 11.0));
        // Keys that share a prefix with m1's: another machine, another
        // device of m1, and one with LIKE's wildcard in it.
        let others = [
            night(3, "m10-cpu", 9.0),
            night(4, "m1-cuda-10", 9.0),
            night(5, "m_-cpu", 9.0),
        ];
        assert_eq!(s.write_night(&a).unwrap(), WriteOutcome::Stored, "{name}");
        assert_eq!(
            s.write_night(&a).unwrap(),
            WriteOutcome::AlreadyStored,
            "{name}"
        );
        s.write_night(&b).unwrap();
        for o in &others {
            s.write_night(o).unwrap();
        }
        // Opening again migrates nothing and keeps everything.
        drop(s);
        let mut s = store::open(&location).unwrap();
        assert_eq!(s.run_ids().unwrap().len(), 5, "{name}");
        // Oldest first, every field as written (a rate's direction too).
        let as_json = |e: &HistoryEntry| serde_json::to_value(e).unwrap();
        // m1 on every device (cuda-10 is m1 too), not m10.
        let read = s
            .nights(&query(MachineMatch::AnyDevice("m1".into())))
            .unwrap();
        assert_eq!(
            read.iter().map(as_json).collect::<Vec<_>>(),
            vec![
                as_json(&b.entry),
                as_json(&a.entry),
                as_json(&others[1].entry)
            ],
            "{name}"
        );
        let exact = s
            .nights(&query(MachineMatch::Exact("m1-cuda-1".into())))
            .unwrap();
        assert_eq!(exact.len(), 1, "{name}");
        let wild = s
            .nights(&query(MachineMatch::AnyDevice("m_".into())))
            .unwrap();
        assert_eq!(wild.len(), 1, "{name}: `_` is not a wildcard");
        assert_eq!(
            s.nights(&query(MachineMatch::Any)).unwrap().len(),
            5,
            "{name}"
        );
        let none = s
            .nights(&NightQuery {
                campaign: "other".into(),
                day: 1,
                machine: MachineMatch::Any,
            })
            .unwrap();
        assert!(none.is_empty(), "{name}");
    }
}

/// A night with its run values, report and comparison, as `campaign run`
/// writes it.
fn night_with_documents(day_offset: i64) -> StoredNight {
    let mut n = night(day_offset, "m1-cpu", 10.0);
    n.series.insert(
        "decode[prompt_len=128] tpot_ms".into(),
        StoredSeries {
            median: 10.0,
            unit: "ms".into(),
            higher_is_better: false,
            run_values: vec![9.5, 10.0, 10.5],
        },
    );
    n.documents = NightDocuments {
        report_json: Some("{\"day\":1}".into()),
        comparison_json: Some("{\"outcome\":\"pass\"}".into()),
    };
    n
}

#[test]
#[parallel]
fn a_night_is_read_back_with_its_run_values_report_and_comparison() {
    let f = Fixture::new();
    let (ends, _server) = back_ends(&f, "documents");
    for (name, location) in ends {
        let mut s = store::open(&location).unwrap();
        let (with, without) = (night_with_documents(1), night(2, "m2-cpu", 11.0));
        s.write_night(&with).unwrap();
        s.write_night(&without).unwrap();
        assert_eq!(
            s.night_documents(&with.run_id).unwrap(),
            Some(with.documents.clone()),
            "{name}"
        );
        assert_eq!(
            s.night_documents(&without.run_id).unwrap(),
            Some(NightDocuments::default()),
            "{name}"
        );
        assert_eq!(s.night_documents("no such night").unwrap(), None, "{name}");
        let all = s.select_nights(&NightFilter::all()).unwrap();
        assert_eq!(all.len(), 2, "{name}");
        assert_eq!(all[0].run_id, with.run_id, "{name}: oldest first");
        assert!(all[0].has_report && !all[1].has_report, "{name}");
        let key = "decode[prompt_len=128] tpot_ms";
        assert_eq!(
            all[0].series.get(key),
            with.series.get(key),
            "{name}: unit and run values kept"
        );
        assert_eq!(all[0].machine_key, "m1-cpu");
        assert_eq!(all[0].environment, with.environment, "{name}");
        let since = s
            .select_nights(&NightFilter {
                since: Some(without.entry.recorded_at),
                ..NightFilter::all()
            })
            .unwrap();
        assert_eq!(since.len(), 1, "{name}");
        assert_eq!(since[0].run_id, without.run_id, "{name}");
    }
}

/// A store the previous release wrote (schema version 1, without the
/// nights' documents) is migrated on open and keeps its nights.
#[test]
#[parallel]
fn a_version_1_store_is_migrated_and_keeps_its_nights() {
    let f = Fixture::new();
    let (ends, _server) = back_ends(&f, "migrate");
    let downgrade = "ALTER TABLE series_values DROP COLUMN threshold_pct; \
        DROP INDEX nights_by_shard; ALTER TABLE nights DROP COLUMN shard; \
        DROP TABLE shards; ALTER TABLE nights DROP COLUMN report_json; \
        ALTER TABLE nights DROP COLUMN comparison_json; \
        DROP INDEX nights_by_time; DELETE FROM schema_version WHERE version > 1";
    for (name, location) in ends {
        let old = night(1, "m1-cpu", 10.0);
        store::open(&location).unwrap().write_night(&old).unwrap();
        match &location {
            StoreLocation::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(downgrade)
                .unwrap(),
            StoreLocation::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                .unwrap()
                .batch_execute(downgrade)
                .unwrap(),
        }
        // A reader (the dashboard) reads the old schema as it is.
        let read = store::open_reader(&location)
            .unwrap()
            .select_nights(&NightFilter::all())
            .unwrap();
        assert_eq!(read.len(), 1, "{name}");
        assert_eq!(read[0].entry.values, old.entry.values, "{name}");
        assert!(read[0].entry.thresholds_pct.is_empty(), "{name}");
        let mut s = store::open(&location).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION, "{name}");
        let new = night_with_documents(2);
        s.write_night(&new).unwrap();
        let all = s.select_nights(&NightFilter::all()).unwrap();
        assert_eq!(all.len(), 2, "{name}");
        assert_eq!(all[0].entry.values, old.entry.values, "{name}");
        assert!(!all[0].has_report && all[1].has_report, "{name}");
        assert!(all[0].entry.thresholds_pct.is_empty(), "{name}");
        assert_eq!(
            all[1].entry.thresholds_pct, new.entry.thresholds_pct,
            "{name}: a threshold is stored from version 4"
        );
    }
}

#[test]
#[parallel]
fn a_store_of_a_newer_schema_is_refused() {
    let f = Fixture::new();
    let (ends, _server) = back_ends(&f, "newer");
    for (name, location) in ends {
        drop(store::open(&location).unwrap());
        match &location {
            StoreLocation::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch("INSERT INTO schema_version VALUES (99, 'later')")
                    .unwrap();
            }
            StoreLocation::Postgres(url) => {
                postgres::Client::connect(url, postgres::NoTls)
                    .unwrap()
                    .batch_execute("INSERT INTO schema_version VALUES (99, 'later')")
                    .unwrap();
            }
        }
        match store::open(&location) {
            Err(StoreError::NewerSchema { found: 99, .. }) => {}
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: a newer schema was opened"),
        }
    }
}

#[test]
#[parallel]
fn a_store_that_cannot_be_reached_loses_no_result() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    // Nothing listens on port 1.
    gate(
        &f,
        &campaign,
        &["--store", "postgres://campaign@127.0.0.1:1/none"],
    )
    .code(2)
    .stderr(predicate::str::contains("the night was not stored"));
    assert!(
        fs::read_dir(f.out().join("t/daily_reports"))
            .unwrap()
            .count()
            == 1,
        "the report is written"
    );
    cargo_bin_cmd!("campaign")
        .args([
            "history",
            "iteration_ms",
            "--store",
            "ftp://x",
            "--campaign",
        ])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a store"));
}

fn history_json(f: &Fixture, campaign: &Path, store: &str, extra: &[&str]) -> (Value, String) {
    let out = cargo_bin_cmd!("campaign")
        .args([
            "history",
            "iteration_ms",
            "--format",
            "json",
            "--store",
            store,
        ])
        .args(extra)
        .arg("--campaign")
        .arg(campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .success();
    let output = out.get_output();
    (
        serde_json::from_slice(&output.stdout).unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
#[parallel]
fn runs_write_the_store_history_reads_it_and_old_history_imports_once() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    for _ in 0..3 {
        gate(&f, &campaign, &[]).success();
    }
    // The default store is the results folder's SQLite file.
    let default = f.out().join("results.sqlite");
    let mut s = store::open(&StoreLocation::Sqlite(default)).unwrap();
    assert_eq!(s.run_ids().unwrap().len(), 3);
    // Two stored nights compare by run id, as the dashboard names them,
    // with no report file at hand; an unknown id says where it looked.
    let nights = s.select_nights(&NightFilter::all()).unwrap();
    assert!(nights.iter().all(|n| n.has_report));
    for n in &nights {
        fs::remove_file(&n.entry.report).unwrap();
    }
    let compared = cargo_bin_cmd!("campaign")
        .args(["compare", &nights[0].run_id, &nights[2].run_id, "--out"])
        .arg(f.out())
        .assert()
        .success();
    let table = String::from_utf8_lossy(&compared.get_output().stdout).into_owned();
    assert!(table.contains("iteration_ms"), "{table}");
    let unknown = cargo_bin_cmd!("campaign")
        .args(["compare", &nights[0].run_id, "0123456789abcdef", "--out"])
        .arg(f.out())
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&unknown.get_output().stderr).into_owned();
    assert!(
        stderr.contains("0123456789abcdef") && stderr.contains("results.sqlite"),
        "{stderr}"
    );

    // On every back end: runs write it, history reads it, JSONL imports once.
    let (ends, _server) = back_ends(&f, "history");
    let mut nights = 3;
    for (name, location) in ends {
        let store = target(&location);
        for _ in 0..2 {
            gate(&f, &campaign, &["--store", &store]).success();
        }
        nights += 2;
        // history reads the store: the JSONL files may go.
        fs::rename(f.out().join("history"), f.path("history.jsonl")).unwrap();
        let (json, _) = history_json(&f, &campaign, &store, &[]);
        assert_eq!(
            json[0]["nights"].as_array().unwrap().len(),
            2,
            "{name}: {json}"
        );
        fs::rename(f.path("history.jsonl"), f.out().join("history")).unwrap();
        // The folder's JSONL history holds every night so far: imported once.
        let (json, stderr) = history_json(&f, &campaign, &store, &["--import"]);
        assert!(
            stderr.contains(&format!("imported {} nights", nights - 2))
                && stderr.contains("2 were already there"),
            "{name}: {stderr}"
        );
        assert_eq!(
            json[0]["nights"].as_array().unwrap().len(),
            nights,
            "{name}: {json}"
        );
        let (_, stderr) = history_json(&f, &campaign, &store, &["--import"]);
        assert!(stderr.contains("imported 0 nights"), "{name}: {stderr}");
    }
}

/// A judged night stores the threshold each series was judged by (the
/// benchmark's `regression_threshold_pct` here), which a dashboard of
/// many campaigns reads to call a change minor or not.
#[test]
#[parallel]
fn a_judged_night_stores_the_threshold_of_each_series() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0).replace(
        "iterations = 5\n",
        "iterations = 5\nregression_threshold_pct = 12.5\n",
    ));
    gate(&f, &campaign, &["--save-baseline", "b"]).success();
    // Its verdict is not what is checked here: any exit is fine.
    let _ = gate(&f, &campaign, &["--baseline", "b"]).get_output();
    let default = f.out().join("results.sqlite");
    let nights = store::open(&StoreLocation::Sqlite(default))
        .unwrap()
        .select_nights(&NightFilter::all())
        .unwrap();
    let judged: Vec<&HistoryEntry> = nights
        .iter()
        .map(|n| &n.entry)
        .filter(|e| e.baseline.is_some())
        .collect();
    assert_eq!(judged.len(), 1, "{nights:?}");
    let (states, thresholds) = (&judged[0].states, &judged[0].thresholds_pct);
    assert!(!states.is_empty());
    assert_eq!(
        thresholds.keys().collect::<Vec<_>>(),
        states.keys().collect::<Vec<_>>()
    );
    assert!(thresholds.values().all(|&t| t == 12.5), "{thresholds:?}");
}

/// A run killed while its night's rows are inserted and not committed
/// leaves nothing in the store.
#[test]
#[serial]
fn a_run_killed_inside_its_store_write_leaves_nothing() {
    let f = Fixture::new();
    let campaign = f.campaign(&planted_day("work", 1.0));
    let (ends, _server) = back_ends(&f, "killed");
    for (name, location) in ends {
        let mut child = Command::new(env!("CARGO_BIN_EXE_campaign"))
            .args(["run", "--day", "1", "--campaign"])
            .arg(&campaign)
            .arg("--out")
            .arg(f.path(&format!("out_{name}")))
            .args(["--store", &target(&location)])
            .env("CAMPAIGN_STORE_PAUSE_BEFORE_COMMIT_MS", "60000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let paused = BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("store: paused before commit"));
        assert!(paused, "{name}: the run never reached its store write");
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        let mut s = store::open(&location).unwrap();
        assert!(
            s.run_ids().unwrap().is_empty(),
            "{name}: a killed write left rows"
        );
        assert!(
            s.nights(&query(MachineMatch::Any)).unwrap().is_empty(),
            "{name}"
        );
    }
}

/// Eight runs at once write one store; two are killed with SIGKILL while
/// they measure. Every run that finished is stored exactly once, with all
/// its series; nothing of the killed ones is.
#[test]
#[serial]
fn concurrent_runs_some_killed_store_every_finished_night_once() {
    let f = Fixture::new();
    // Long enough (several seconds with eight side by side) to be killed mid-run.
    let campaign =
        f.campaign(&planted_day("work", 1.0).replace("iterations = 5", "iterations = 40"));
    let (ends, _server) = back_ends(&f, "concurrent");
    for (name, location) in ends {
        let target = target(&location);
        let out = f.path(&format!("out_{name}"));
        let logs: Vec<_> = (0..8)
            .map(|i| f.path(&format!("{name}_{i}.stderr")))
            .collect();
        let mut children: Vec<std::process::Child> = logs
            .iter()
            .map(|log| {
                Command::new(env!("CARGO_BIN_EXE_campaign"))
                    .args(["run", "--day", "1", "--campaign"])
                    .arg(&campaign)
                    .arg("--out")
                    .arg(&out)
                    .args(["--store", &target])
                    .stdout(Stdio::null())
                    .stderr(fs::File::create(log).unwrap())
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        for child in &mut children[..2] {
            child.kill().unwrap();
        }
        let statuses: Vec<_> = children.iter_mut().map(|c| c.wait().unwrap()).collect();
        let finished = statuses.iter().filter(|s| s.success()).count();
        assert!(
            statuses[..2].iter().all(|s| !s.success()),
            "{name}: a killed run finished first: {statuses:?}"
        );
        let why: Vec<String> = logs[2..]
            .iter()
            .zip(&statuses[2..])
            .filter(|(_, s)| !s.success())
            .map(|(log, _)| fs::read_to_string(log).unwrap_or_default())
            .collect();
        assert_eq!(finished, 6, "{name}: {statuses:?}\n{}", why.join("\n---\n"));
        let mut s = store::open(&location).unwrap();
        assert_eq!(s.run_ids().unwrap().len(), finished, "{name}");
        let nights = s
            .nights(&NightQuery {
                campaign: "t".into(),
                day: 1,
                machine: MachineMatch::Any,
            })
            .unwrap();
        assert_eq!(nights.len(), finished, "{name}");
        // Whole nights: every one holds the day's two series.
        for n in &nights {
            assert_eq!(n.values.len(), 2, "{name}: {:?}", n.values);
            assert_eq!(n.log_runs.len(), 2, "{name}: {:?}", n.log_runs);
        }
    }
}

/// The campaign's `[store]` names the store (a URL or the variable that
/// holds it); mistakes are refused with their line, and a variable that
/// is not set stops the run before it measures.
#[test]
#[parallel]
fn the_campaign_names_its_store_and_a_missing_variable_stops_the_run_before_measuring() {
    let f = Fixture::new();
    let with_store =
        |store: &str| f.campaign(&format!("{}\n[store]\n{store}\n", planted_day("work", 1.0)));
    let c = with_store("url = \"mysql://db/x\"");
    expect_usage_error(
        &f,
        &c,
        &[
            &position_of(&c, "url = "),
            "store, field `url`",
            "postgres://",
        ],
    );
    let c = with_store("url = \"a.sqlite\"\nurl_env = \"X\"");
    expect_usage_error(&f, &c, &["store", "one of url and url_env"]);
    let c = with_store("url_env = \"1X\"");
    expect_usage_error(
        &f,
        &c,
        &[&position_of(&c, "url_env"), "not an environment variable"],
    );

    let var = "CAMPAIGN_TEST_STORE_URL";
    let c = with_store(&format!("url_env = \"{var}\""));
    let refused = cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(&c)
        .arg("--out")
        .arg(f.out())
        .env_remove(var)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    let line = position_of(&c, "url_env");
    let line = line.rsplitn(3, ':').nth(2).unwrap();
    assert!(
        stderr.contains(&format!("{line}: store, field `url_env`")) && stderr.contains(var),
        "{stderr}"
    );
    let reports = f.out().join("t").join("daily_reports");
    assert_eq!(fs::read_dir(&reports).map_or(0, |d| d.count()), 0);

    let (ends, _server) = back_ends(&f, "from_campaign");
    for (name, location) in ends {
        cargo_bin_cmd!("campaign")
            .args(["run", "--day", "1", "--campaign"])
            .arg(&c)
            .arg("--out")
            .arg(f.out())
            .env(var, target(&location))
            .assert()
            .success();
        let mut s = store::open(&location).unwrap();
        assert_eq!(s.run_ids().unwrap().len(), 1, "{name}");
    }
    assert!(!f.out().join("results.sqlite").exists());

    // An interleaved night is one night in the store: its child runs
    // measure only and store nothing of their own.
    let location = StoreLocation::Sqlite(f.path("interleaved.sqlite"));
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--quick", "--campaign"])
        .arg(&c)
        .arg("--out")
        .arg(f.out())
        .arg("--against-bin")
        .arg(env!("CARGO_BIN_EXE_campaign"))
        .env(var, target(&location))
        .assert()
        .success();
    let mut s = store::open(&location).unwrap();
    assert_eq!(s.run_ids().unwrap().len(), 1);
}
