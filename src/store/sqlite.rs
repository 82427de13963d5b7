//! The embedded back end: one SQLite file, WAL journal so that readers do
//! not block the nightly writer, and a busy timeout so that concurrent
//! runs on one machine queue rather than fail.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    MIGRATIONS, NightDocuments, NightFilter, NightRow, REPLACE_SHARD_NIGHT, ResultsStore,
    SCHEMA_VERSION, SELECT_SHARDS, SeriesRow, ShardMark, ShardState, StoreError, StoredNight,
    UPSERT_SHARD, WriteOutcome, assemble, refuse_newer, rfc3339, select_sql, series_inserts,
    shard_from_row,
};

/// Writes a shard's row inside `tx`.
fn upsert_shard(tx: &Connection, mark: &ShardMark) -> rusqlite::Result<usize> {
    tx.execute(
        UPSERT_SHARD,
        params![
            mark.campaign,
            mark.shard,
            mark.fleet_run,
            mark.machine_class,
            i64::from(mark.day),
            mark.state.name(),
            mark.run_id,
            rfc3339(&mark.updated_at),
        ],
    )
}

pub struct SqliteStore {
    connection: Connection,
    location: String,
    /// The schema version the file is at (a reader does not migrate).
    version: i64,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            location: location.clone(),
            source,
        };
        let mut connection = Connection::open(path).map_err(err)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        use_write_ahead_log(&connection).map_err(err)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        // Migrations run under the write lock: two runs opening a new
        // store at once apply each version once.
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(err)?;
        let found: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        refuse_newer(&location, found)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(migration).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                params![index as i64 + 1, chrono::Utc::now().to_rfc3339()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Self {
            connection,
            location,
            version: SCHEMA_VERSION,
        })
    }

    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let location = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            location: location.clone(),
            source,
        };
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        let has_versions: bool = connection
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        let version: i64 = if has_versions {
            connection
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?
        } else {
            0
        };
        refuse_newer(&location, version)?;
        Ok(Self {
            connection,
            location,
            version,
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            location: self.location.clone(),
            source,
        }
    }
}

/// How long a store waits for other writers, when opening it and for each
/// write.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Switches the file to WAL (persistent, so only its first opener does).
/// The switch needs the file to itself and SQLite does not call the busy
/// handler for it while another connection holds a shared lock, so a
/// fleet's first night (many runs opening a new file at once) got
/// "database is locked" at once; this waits for the others as a write
/// would.
fn use_write_ahead_log(connection: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let attempt = connection
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(())
                } else {
                    connection.pragma_update(None, "journal_mode", "WAL")
                }
            });
        match attempt {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl ResultsStore for SqliteStore {
    fn write_night(&mut self, night: &StoredNight) -> Result<WriteOutcome, StoreError> {
        let location = self.location.clone();
        let err = |source| StoreError::Sqlite {
            location: location.clone(),
            source,
        };
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let e = &night.entry;
        if let Some(mark) = &night.shard {
            for sql in REPLACE_SHARD_NIGHT {
                tx.execute(sql, params![e.campaign, mark.shard, night.run_id])
                    .map_err(err)?;
            }
        }
        let inserted = tx
            .execute(
                "INSERT INTO nights (run_id, recorded_at, machine_key, campaign, campaign_hash, day, \
                 git_commit, quick, runs, report, baseline, environment, report_json, \
                 comparison_json, shard) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT DO NOTHING",
                params![
                    night.run_id,
                    e.recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    night.machine_key,
                    e.campaign,
                    night.campaign_hash,
                    i64::from(e.day),
                    e.git_commit,
                    e.quick,
                    i64::from(e.runs),
                    e.report,
                    e.baseline,
                    night.environment,
                    night.documents.report_json,
                    night.documents.comparison_json,
                    night.shard.as_ref().map(|m| m.shard.clone()),
                ],
            )
            .map_err(err)?;
        if let Some(mark) = &night.shard {
            let done = ShardMark {
                state: ShardState::Done,
                run_id: Some(night.run_id.clone()),
                ..mark.clone()
            };
            upsert_shard(&tx, &done).map_err(err)?;
        }
        if inserted == 0 {
            tx.commit().map_err(err)?;
            return Ok(WriteOutcome::AlreadyStored);
        }
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO series_values (run_id, series, median, unit, higher_is_better, \
                     run_values, mean_log, sd_log, log_runs, time_like, state, threshold_pct) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(err)?;
            for row in series_inserts(night) {
                insert
                    .execute(params![
                        night.run_id,
                        row.0,
                        row.1,
                        row.2,
                        row.3,
                        row.4,
                        row.5,
                        row.6,
                        row.7,
                        row.8,
                        row.9,
                        row.10
                    ])
                    .map_err(err)?;
            }
        }
        super::pause_before_commit();
        tx.commit().map_err(err)?;
        Ok(WriteOutcome::Stored)
    }

    fn select_nights(&mut self, filter: &NightFilter) -> Result<Vec<StoredNight>, StoreError> {
        let err = self.err();
        let (exact, like) = filter.machine.sql();
        if self.version == 0 {
            return Ok(Vec::new());
        }
        let (nights_sql, series_sql) = select_sql(self.version, |n, _| format!("?{n}"));
        let day = filter.day.map(i64::from);
        let since = filter.since_text();
        let mut statement = self.connection.prepare(&nights_sql).map_err(&err)?;
        let nights = statement
            .query_map(params![filter.campaign, day, exact, like, since], |r| {
                Ok(NightRow {
                    run_id: r.get(0)?,
                    machine_key: r.get(1)?,
                    campaign_hash: r.get(2)?,
                    environment: r.get(3)?,
                    recorded_at: r.get(4)?,
                    campaign: r.get(5)?,
                    day: r.get(6)?,
                    git_commit: r.get(7)?,
                    quick: r.get(8)?,
                    runs: r.get(9)?,
                    report: r.get(10)?,
                    baseline: r.get(11)?,
                    has_report: r.get(12)?,
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        let mut statement = self.connection.prepare(&series_sql).map_err(&err)?;
        let series = statement
            .query_map(params![filter.campaign, day, exact, like, since], |r| {
                Ok(SeriesRow {
                    run_id: r.get(0)?,
                    series: r.get(1)?,
                    median: r.get(2)?,
                    unit: r.get(3)?,
                    higher_is_better: r.get(4)?,
                    run_values: r.get(5)?,
                    mean_log: r.get(6)?,
                    sd_log: r.get(7)?,
                    log_runs: r.get(8)?,
                    time_like: r.get(9)?,
                    state: r.get(10)?,
                    threshold_pct: r.get(11)?,
                })
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        assemble(&self.location, nights, series)
    }

    fn night_documents(&mut self, run_id: &str) -> Result<Option<NightDocuments>, StoreError> {
        let err = self.err();
        if self.version < 2 {
            let known = self.version > 0
                && self
                    .connection
                    .query_row(
                        "SELECT COUNT(*) > 0 FROM nights WHERE run_id = ?1",
                        params![run_id],
                        |r| r.get::<_, bool>(0),
                    )
                    .map_err(&err)?;
            return Ok(known.then(NightDocuments::default));
        }
        self.connection
            .query_row(
                "SELECT report_json, comparison_json FROM nights WHERE run_id = ?1",
                params![run_id],
                |r| {
                    Ok(NightDocuments {
                        report_json: r.get(0)?,
                        comparison_json: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(&err)
    }

    fn run_ids(&mut self) -> Result<Vec<String>, StoreError> {
        let err = self.err();
        let mut statement = self
            .connection
            .prepare("SELECT run_id FROM nights ORDER BY run_id")
            .map_err(&err)?;
        let ids = statement
            .query_map([], |r| r.get(0))
            .map_err(&err)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(&err)?;
        Ok(ids)
    }

    fn night_count(&mut self) -> Result<u64, StoreError> {
        if self.version == 0 {
            return Ok(0);
        }
        let err = self.err();
        let count: i64 = self
            .connection
            .query_row("SELECT COUNT(*) FROM nights", [], |r| r.get(0))
            .map_err(&err)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn mark_shard(&mut self, mark: &ShardMark) -> Result<(), StoreError> {
        let location = self.location.clone();
        upsert_shard(&self.connection, mark)
            .map(|_| ())
            .map_err(|source| StoreError::Sqlite { location, source })
    }

    fn shards(&mut self, campaign: &str, fleet_run: &str) -> Result<Vec<ShardMark>, StoreError> {
        if self.version < 3 {
            return Ok(Vec::new());
        }
        let err = self.err();
        let mut statement = self.connection.prepare(SELECT_SHARDS).map_err(&err)?;
        let rows = statement
            .query_map(params![campaign, fleet_run], |r| {
                Ok(shard_from_row((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                )))
            })
            .map_err(&err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&err)?;
        Ok(rows)
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        let err = self.err();
        let version: Option<i64> = self
            .connection
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(&err)?
            .flatten();
        Ok(version.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many processes open a store that does not exist yet at the same
    /// moment (a fleet's first night): every one of them gets it.
    #[test]
    fn many_openers_of_a_new_file_all_succeed() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("s{round}.sqlite"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }
}
