//! The results store: every finished night, kept where a team can query
//! it. An embedded SQLite file in the output folder by default (nothing
//! to install), PostgreSQL when `--store postgres://…` names one, for
//! machines that share history. Both sit behind [`ResultsStore`], run the
//! same versioned schema, and are written once per night, after measuring,
//! in one transaction: a killed run leaves nothing half-written, and the
//! same night written twice is stored once (its run id is a hash of what
//! names it).
//!
//! Why by hand: the two back ends' crates (rusqlite, postgres) are well
//! kept; a query layer over both (sqlx, diesel) would bring an async
//! runtime or a code generator for two tables.

mod history_file;
mod nights;
mod postgres;
mod sqlite;

pub use history_file::{HistoryFile, HistoryFileError};
pub use nights::{
    NightsError, earlier_nights, jsonl_nights, machine_nights, store_location, store_night,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::analysis::{ChangeState, Comparison, HistoryEntry, SeriesNight, series_key};
use crate::model::DailyReport;

fn json_hash(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_default();
    Sha256::digest(text.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The schema, one batch per version, applied in order on open. A store
/// of a newer version than this binary knows is refused, not guessed at.
const MIGRATIONS: [&str; 4] = [
    r#"
CREATE TABLE nights (
    run_id        TEXT PRIMARY KEY,
    recorded_at   TEXT NOT NULL,
    machine_key   TEXT NOT NULL,
    campaign      TEXT NOT NULL,
    campaign_hash TEXT NOT NULL,
    day           INTEGER NOT NULL,
    git_commit    TEXT NOT NULL,
    quick         INTEGER NOT NULL,
    runs          INTEGER NOT NULL,
    report        TEXT NOT NULL,
    baseline      TEXT,
    environment   TEXT NOT NULL
);
CREATE INDEX nights_by_series ON nights (campaign, day, machine_key, recorded_at);
CREATE TABLE series_values (
    run_id           TEXT NOT NULL REFERENCES nights (run_id),
    series           TEXT NOT NULL,
    median           DOUBLE PRECISION,
    unit             TEXT NOT NULL,
    higher_is_better INTEGER NOT NULL,
    run_values       TEXT NOT NULL,
    mean_log         DOUBLE PRECISION,
    sd_log           DOUBLE PRECISION,
    log_runs         INTEGER,
    time_like        INTEGER,
    state            TEXT,
    PRIMARY KEY (run_id, series)
);
"#,
    // The night's whole report and comparison, so that a dashboard on any
    // machine can show a night that ran on another.
    r#"
ALTER TABLE nights ADD COLUMN report_json TEXT;
ALTER TABLE nights ADD COLUMN comparison_json TEXT;
CREATE INDEX nights_by_time ON nights (recorded_at);
"#,
    // Fleets: the shard a night ran as (a retried shard replaces its own
    // earlier night, never adds a second), and each shard's state.
    r#"
ALTER TABLE nights ADD COLUMN shard TEXT;
CREATE UNIQUE INDEX nights_by_shard ON nights (campaign, shard);
CREATE TABLE shards (
    campaign      TEXT NOT NULL,
    shard         TEXT NOT NULL,
    fleet_run     TEXT NOT NULL,
    machine_class TEXT NOT NULL,
    day           INTEGER NOT NULL,
    state         TEXT NOT NULL,
    run_id        TEXT,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (campaign, shard)
);
"#,
    // The threshold each series was judged by, so that a dashboard of many
    // campaigns calls a change minor by the series' own threshold.
    r#"
ALTER TABLE series_values ADD COLUMN threshold_pct DOUBLE PRECISION;
"#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {location}: {source}")]
    Sqlite {
        location: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store {location}: {source}")]
    Postgres {
        location: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error(
        "store {location} has schema version {found}, newer than this binary knows ({known})\n  help: run a newer `campaign`, or name another store with --store"
    )]
    NewerSchema {
        location: String,
        found: i64,
        known: i64,
    },
    #[error(
        "--store {0:?}: not a store\n  help: give a path to an SQLite file (e.g. results.sqlite) or a postgres://user@host:port/db URL"
    )]
    BadLocation(String),
    #[error("store {location}: {message}")]
    Corrupt { location: String, message: String },
}

/// Where the nights are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreLocation {
    /// A `postgres://` or `postgresql://` URL, or a path (optionally
    /// `sqlite:`-prefixed) to an SQLite file.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let trimmed = text.trim();
        if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
            return Ok(Self::Postgres(trimmed.to_string()));
        }
        let path = trimmed.strip_prefix("sqlite:").unwrap_or(trimmed);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::BadLocation(text.to_string()));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// The default: `results.sqlite` in the output folder.
    pub fn default_in(out_root: &Path) -> Self {
        Self::Sqlite(out_root.join("results.sqlite"))
    }

    /// Shown in messages, without a password a URL may carry.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => {
                // A password may sit in the user part or the query.
                let url = url.split('?').next().unwrap_or(url);
                match (url.find("://"), url.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        let user = &url[scheme + 3..at];
                        let user = user.split(':').next().unwrap_or(user);
                        format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                    }
                    _ => url.to_string(),
                }
            }
        }
    }
}

/// One series of one night as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSeries {
    pub median: f64,
    pub unit: String,
    pub higher_is_better: bool,
    pub run_values: Vec<f64>,
}

/// One finished night: its history line, the run-level values behind it,
/// and what names it.
#[derive(Debug, Clone)]
pub struct StoredNight {
    pub run_id: String,
    pub machine_key: String,
    pub campaign_hash: String,
    /// The report's environment, as JSON.
    pub environment: String,
    pub entry: HistoryEntry,
    /// `case metric` → its values.
    pub series: BTreeMap<String, StoredSeries>,
    /// The day report and the comparison it was judged by, as JSON. Written
    /// with the night; a read of many nights leaves them out
    /// ([`ResultsStore::night_documents`] reads one night's).
    pub documents: NightDocuments,
    /// A read of many nights: whether the night's report is stored.
    pub has_report: bool,
    /// The fleet shard this night ran as: written with it, it replaces
    /// the shard's earlier night and marks the shard done.
    pub shard: Option<ShardMark>,
}

/// Where a shard of a fleet run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    /// Started, its night not stored yet (or its process died).
    Running,
    /// Its night is stored.
    Done,
    /// It ended without storing a night.
    Failed,
}

impl ShardState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }
}

/// One shard's row in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardMark {
    pub campaign: String,
    /// `FLEET_RUN/CLASS/day-N`.
    pub shard: String,
    pub fleet_run: String,
    pub machine_class: String,
    pub day: u32,
    pub state: ShardState,
    /// The stored night, once done.
    pub run_id: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A night's whole report and its comparison, as JSON text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NightDocuments {
    pub report_json: Option<String>,
    pub comparison_json: Option<String>,
}

impl StoredNight {
    /// A night from its report, as `campaign run` writes it.
    pub fn from_report(
        report: &DailyReport,
        comparison: Option<&Comparison>,
        entry: HistoryEntry,
    ) -> Self {
        let machine_key = report.environment.machine_key();
        let medians = &entry.values;
        let series = report
            .results
            .iter()
            .flat_map(|r| {
                r.run_values.iter().filter_map(move |(metric, values)| {
                    let key = series_key(&r.case_id, metric);
                    let median = *medians.get(&key)?;
                    let m = r.metrics.get(metric);
                    Some((
                        key,
                        StoredSeries {
                            median,
                            unit: m.map_or_else(String::new, |m| m.unit.clone()),
                            higher_is_better: m.is_some_and(|m| m.higher_is_better),
                            run_values: values.clone(),
                        },
                    ))
                })
            })
            .collect();
        Self {
            run_id: Self::run_id_of(&machine_key, &entry),
            campaign_hash: json_hash(&report.campaign),
            environment: serde_json::to_string(&report.environment).unwrap_or_default(),
            machine_key,
            entry,
            series,
            documents: NightDocuments {
                report_json: serde_json::to_string(report).ok(),
                comparison_json: comparison.and_then(|c| serde_json::to_string(c).ok()),
            },
            has_report: true,
            shard: None,
        }
    }

    /// A night from an older JSONL history line, for `--import`: its
    /// report's environment where the report is still there.
    pub fn from_history(
        machine_key: &str,
        entry: HistoryEntry,
        environment: Option<String>,
    ) -> Self {
        Self {
            run_id: Self::run_id_of(machine_key, &entry),
            campaign_hash: String::new(),
            environment: environment.unwrap_or_else(|| "{}".into()),
            machine_key: machine_key.to_string(),
            series: BTreeMap::new(),
            entry,
            documents: NightDocuments::default(),
            has_report: false,
            shard: None,
        }
    }

    /// The run id: a hash of machine, campaign, day, the instant the run
    /// finished and its report's path, so a night written again (a retry,
    /// an import) is the same row.
    pub fn run_id_of(machine_key: &str, entry: &HistoryEntry) -> String {
        let mut hash = Sha256::new();
        for part in [
            machine_key,
            &entry.campaign,
            &entry.day.to_string(),
            &entry
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            &entry.report,
        ] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Stored,
    /// The run id was already there; nothing was written.
    AlreadyStored,
}

/// Which machines' nights to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineMatch {
    /// One machine key, device included (a night's own verdicts).
    Exact(String),
    /// One machine on every device: the key without its device part, so
    /// `key` itself or `key-<device>`.
    AnyDevice(String),
    /// Every machine.
    Any,
}

impl MachineMatch {
    /// (equal to, LIKE pattern) for `machine_key = ?1 OR machine_key LIKE
    /// ?2 ESCAPE '\'`; `%`, `_` and `\` in a key are escaped.
    fn sql(&self) -> (String, Option<String>) {
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        match self {
            Self::Exact(key) => (key.clone(), None),
            Self::AnyDevice(prefix) => (prefix.clone(), Some(format!("{}-%", escape(prefix)))),
            Self::Any => (String::new(), Some("%".into())),
        }
    }
}

/// Which nights to read: one campaign's day on the machines matched.
#[derive(Debug, Clone)]
pub struct NightQuery {
    pub campaign: String,
    pub day: u32,
    pub machine: MachineMatch,
}

/// Which nights a read of many selects; `None` matches any.
#[derive(Debug, Clone)]
pub struct NightFilter {
    pub campaign: Option<String>,
    pub day: Option<u32>,
    pub machine: MachineMatch,
    /// Nights recorded at or after this instant.
    pub since: Option<DateTime<Utc>>,
}

impl NightFilter {
    /// Every night of every campaign and machine.
    pub fn all() -> Self {
        Self {
            campaign: None,
            day: None,
            machine: MachineMatch::Any,
            since: None,
        }
    }

    /// The instant as the `recorded_at` column spells it, which sorts as
    /// text in time order.
    fn since_text(&self) -> Option<String> {
        self.since
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
    }
}

impl From<&NightQuery> for NightFilter {
    fn from(query: &NightQuery) -> Self {
        Self {
            campaign: Some(query.campaign.clone()),
            day: Some(query.day),
            machine: query.machine.clone(),
            since: None,
        }
    }
}

pub trait ResultsStore {
    /// Writes a night in one transaction; idempotent by run id.
    fn write_night(&mut self, night: &StoredNight) -> Result<WriteOutcome, StoreError>;
    /// The nights a filter selects, with their machine, environment and
    /// run-level values (not their documents), oldest first.
    fn select_nights(&mut self, filter: &NightFilter) -> Result<Vec<StoredNight>, StoreError>;
    /// One night's report and comparison, `None` when no such night is
    /// stored.
    fn night_documents(&mut self, run_id: &str) -> Result<Option<NightDocuments>, StoreError>;
    /// The history lines of one campaign's day, oldest first.
    fn nights(&mut self, query: &NightQuery) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .select_nights(&NightFilter::from(query))?
            .into_iter()
            .map(|n| n.entry)
            .collect())
    }
    /// Every run id stored, for checks and exports.
    fn run_ids(&mut self) -> Result<Vec<String>, StoreError>;
    /// How many nights are stored (a reader's cheap "anything new?").
    fn night_count(&mut self) -> Result<u64, StoreError>;
    /// The schema version the store is at.
    fn schema_version(&mut self) -> Result<i64, StoreError>;
    /// Records where a shard stands (started, failed); a night written
    /// with its shard marks it done.
    fn mark_shard(&mut self, mark: &ShardMark) -> Result<(), StoreError>;
    /// The shards of one fleet run of a campaign, by shard id (none from
    /// a store older than fleets).
    fn shards(&mut self, campaign: &str, fleet_run: &str) -> Result<Vec<ShardMark>, StoreError>;
}

/// The SQL that writes a shard's row, `?N` placeholders (SQLite) turned
/// into `$N` for PostgreSQL by [`dollar_placeholders`].
const UPSERT_SHARD: &str = "INSERT INTO shards (campaign, shard, fleet_run, machine_class, day, state, run_id, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (campaign, shard) DO UPDATE SET fleet_run = excluded.fleet_run, \
     machine_class = excluded.machine_class, day = excluded.day, state = excluded.state, \
     run_id = excluded.run_id, updated_at = excluded.updated_at";

/// The SQL that removes a shard's earlier night (not `run_id` ?3) before
/// its new one is written: its series, then the night.
const REPLACE_SHARD_NIGHT: [&str; 2] = [
    "DELETE FROM series_values WHERE run_id IN \
     (SELECT run_id FROM nights WHERE campaign = ?1 AND shard = ?2 AND run_id <> ?3)",
    "DELETE FROM nights WHERE campaign = ?1 AND shard = ?2 AND run_id <> ?3",
];

const SELECT_SHARDS: &str = "SELECT campaign, shard, fleet_run, machine_class, day, state, run_id, updated_at \
     FROM shards WHERE campaign = ?1 AND fleet_run = ?2 ORDER BY shard";

/// `?N` → `$N`, for PostgreSQL's placeholders.
fn dollar_placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

/// A shard row read back from its text columns.
fn shard_from_row(
    columns: (
        String,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        String,
    ),
) -> ShardMark {
    let (campaign, shard, fleet_run, machine_class, day, state, run_id, updated_at) = columns;
    ShardMark {
        campaign,
        shard,
        fleet_run,
        machine_class,
        day: u32::try_from(day).unwrap_or(0),
        state: ShardState::parse(&state),
        run_id,
        updated_at: DateTime::parse_from_rfc3339(&updated_at)
            .map_or_else(|_| DateTime::<Utc>::UNIX_EPOCH, |t| t.with_timezone(&Utc)),
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Opens (creating and migrating when needed) the store at `location`.
/// Opens the store at `location` to read it only: nothing is created or
/// migrated, so that a dashboard or a comparison works on a read-only
/// file and never moves a shared store to a schema its writers do not
/// know yet. A store of an older version is read as that version holds
/// it; a missing SQLite file is an error.
pub fn open_reader(location: &StoreLocation) -> Result<Box<dyn ResultsStore>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open_reader(path)?)),
        StoreLocation::Postgres(url) => Ok(Box::new(postgres::PostgresStore::open_reader(
            url,
            location.describe(),
        )?)),
    }
}

pub fn open(location: &StoreLocation) -> Result<Box<dyn ResultsStore>, StoreError> {
    match location {
        StoreLocation::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
        StoreLocation::Postgres(url) => Ok(Box::new(postgres::PostgresStore::open(
            url,
            location.describe(),
        )?)),
    }
}

/// Fault injection for the atomicity test: with
/// `CAMPAIGN_STORE_PAUSE_BEFORE_COMMIT_MS` set, a write says so on stderr
/// and waits that long with its rows inserted and not committed, so a
/// test can kill the process inside the window.
fn pause_before_commit() {
    if let Some(ms) = std::env::var("CAMPAIGN_STORE_PAUSE_BEFORE_COMMIT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!("store: paused before commit");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A store of a newer schema than this binary knows is refused, not
/// guessed at.
fn refuse_newer(location: &str, found: i64) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            location: location.to_string(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// A count for a 32-bit column; larger is refused rather than wrapped.
fn int32(location: &str, field: &str, value: i64) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::Corrupt {
        location: location.to_string(),
        message: format!("{field} {value} does not fit the store's integer column"),
    })
}

/// One row of `series_values`, as both back ends read it.
struct SeriesRow {
    run_id: String,
    series: String,
    median: Option<f64>,
    unit: String,
    higher_is_better: bool,
    run_values: String,
    mean_log: Option<f64>,
    sd_log: Option<f64>,
    log_runs: Option<i64>,
    time_like: Option<bool>,
    state: Option<String>,
    threshold_pct: Option<f64>,
}

/// One row of `nights`.
struct NightRow {
    run_id: String,
    machine_key: String,
    campaign_hash: String,
    environment: String,
    recorded_at: String,
    campaign: String,
    day: i64,
    git_commit: String,
    quick: bool,
    runs: i64,
    report: String,
    baseline: Option<String>,
    has_report: bool,
}

fn state_name(state: ChangeState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The columns and condition every read of many nights uses, with the
/// parameter markers a back end spells (`?N` or `$N`, with PostgreSQL's
/// casts): (nights query, series query). Parameters: campaign, day, exact
/// machine key, machine LIKE pattern, earliest `recorded_at`.
/// `version` is the store's schema version: before version 2 nights kept
/// no documents, before version 4 series no threshold.
fn select_sql(version: i64, marker: impl Fn(usize, &str) -> String) -> (String, String) {
    let condition = |prefix: &str| {
        format!(
            "({m1} IS NULL OR {p}campaign = {m1}) AND ({m2} IS NULL OR {p}day = {m2}) \
             AND ({p}machine_key = {m3} OR ({m4} IS NOT NULL AND {p}machine_key LIKE {m4} ESCAPE '\\')) \
             AND ({m5} IS NULL OR {p}recorded_at >= {m5})",
            p = prefix,
            m1 = marker(1, "TEXT"),
            m2 = marker(2, "INTEGER"),
            m3 = marker(3, "TEXT"),
            m4 = marker(4, "TEXT"),
            m5 = marker(5, "TEXT"),
        )
    };
    (
        format!(
            "SELECT run_id, machine_key, campaign_hash, environment, recorded_at, campaign, day, \
             git_commit, quick, runs, report, baseline, {} FROM nights WHERE {}",
            if version >= 2 {
                "report_json IS NOT NULL"
            } else {
                "1 = 0"
            },
            condition("")
        ),
        format!(
            "SELECT s.run_id, s.series, s.median, s.unit, s.higher_is_better, s.run_values, \
             s.mean_log, s.sd_log, s.log_runs, s.time_like, s.state, {} \
             FROM series_values s JOIN nights n ON n.run_id = s.run_id WHERE {}",
            // Typed, because PostgreSQL reads a bare NULL as text.
            if version >= 4 {
                "s.threshold_pct"
            } else {
                "CAST(NULL AS DOUBLE PRECISION)"
            },
            condition("n.")
        ),
    )
}

/// Stored nights from rows, oldest first.
fn assemble(
    location: &str,
    nights: Vec<NightRow>,
    series: Vec<SeriesRow>,
) -> Result<Vec<StoredNight>, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        location: location.to_string(),
        message,
    };
    let mut by_run: BTreeMap<String, StoredNight> = BTreeMap::new();
    let mut order = Vec::new();
    for n in nights {
        let recorded_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&n.recorded_at)
            .map_err(|e| corrupt(format!("night {}: recorded_at: {e}", n.run_id)))?
            .with_timezone(&Utc);
        order.push((recorded_at, n.run_id.clone()));
        let entry = HistoryEntry {
            recorded_at,
            campaign: n.campaign,
            day: u32::try_from(n.day).map_err(|e| corrupt(format!("day: {e}")))?,
            git_commit: n.git_commit,
            quick: n.quick,
            runs: u32::try_from(n.runs).map_err(|e| corrupt(format!("runs: {e}")))?,
            report: n.report,
            values: BTreeMap::new(),
            baseline: n.baseline,
            states: BTreeMap::new(),
            log_runs: BTreeMap::new(),
            thresholds_pct: BTreeMap::new(),
        };
        by_run.insert(
            n.run_id.clone(),
            StoredNight {
                run_id: n.run_id,
                machine_key: n.machine_key,
                campaign_hash: n.campaign_hash,
                environment: n.environment,
                entry,
                series: BTreeMap::new(),
                documents: NightDocuments::default(),
                has_report: n.has_report,
                shard: None,
            },
        );
    }
    for s in series {
        let Some(night) = by_run.get_mut(&s.run_id) else {
            continue;
        };
        let entry = &mut night.entry;
        if let Some(median) = s.median {
            entry.values.insert(s.series.clone(), median);
        }
        if let (Some(mean_log), Some(runs), Some(time_like)) = (s.mean_log, s.log_runs, s.time_like)
        {
            entry.log_runs.insert(
                s.series.clone(),
                SeriesNight {
                    mean_log,
                    sd_log: s.sd_log,
                    runs: u32::try_from(runs).map_err(|e| corrupt(format!("log_runs: {e}")))?,
                    time_like,
                    higher_is_better: s.higher_is_better,
                },
            );
        }
        if let Some(state) = &s.state {
            let state: ChangeState =
                serde_json::from_value(serde_json::Value::String(state.clone()))
                    .map_err(|e| corrupt(format!("state of {}: {e}", s.series)))?;
            entry.states.insert(s.series.clone(), state);
        }
        if let Some(threshold) = s.threshold_pct {
            entry.thresholds_pct.insert(s.series.clone(), threshold);
        }
        // Values the writer could not store as numbers (NaN, ∞) are NULL.
        let run_values: Vec<Option<f64>> = serde_json::from_str(&s.run_values)
            .map_err(|e| corrupt(format!("run values of {}: {e}", s.series)))?;
        if let Some(median) = s.median {
            night.series.insert(
                s.series,
                StoredSeries {
                    median,
                    unit: s.unit,
                    higher_is_better: s.higher_is_better,
                    run_values: run_values.into_iter().flatten().collect(),
                },
            );
        }
    }
    order.sort();
    Ok(order
        .into_iter()
        .filter_map(|(_, id)| by_run.remove(&id))
        .collect())
}

/// The `series_values` rows of a night, in the order the tables' columns
/// are written: (series, median, unit, higher_is_better, run_values JSON,
/// mean_log, sd_log, log_runs, time_like, state, threshold_pct).
type SeriesInsert = (
    String,
    Option<f64>,
    String,
    bool,
    String,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<bool>,
    Option<String>,
    Option<f64>,
);

fn series_inserts(night: &StoredNight) -> Vec<SeriesInsert> {
    let e = &night.entry;
    // Every series the night names, in any of its maps: none is dropped.
    let keys: std::collections::BTreeSet<&String> = e
        .values
        .keys()
        .chain(e.log_runs.keys())
        .chain(e.states.keys())
        .chain(night.series.keys())
        .collect();
    keys.into_iter()
        .map(|key| {
            let stored = night.series.get(key);
            let log = e.log_runs.get(key);
            let finite = |v: f64| v.is_finite().then_some(v);
            (
                key.clone(),
                e.values.get(key).copied().and_then(finite),
                stored.map_or_else(String::new, |s| s.unit.clone()),
                stored
                    .map(|s| s.higher_is_better)
                    .or(log.map(|l| l.higher_is_better))
                    .unwrap_or(false),
                serde_json::to_string(&stored.map_or(Vec::new(), |s| {
                    s.run_values.iter().map(|v| finite(*v)).collect::<Vec<_>>()
                }))
                .unwrap_or_else(|_| "[]".into()),
                log.map(|l| l.mean_log).and_then(finite),
                log.and_then(|l| l.sd_log).and_then(finite),
                log.map(|l| i64::from(l.runs)),
                log.map(|l| l.time_like),
                e.states.get(key).map(|s| state_name(*s)),
                e.thresholds_pct.get(key).copied().and_then(finite),
            )
        })
        .collect()
}
