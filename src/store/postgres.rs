//! The shared back end: a PostgreSQL database several machines write.
//! The schema is the SQLite one; integers are 32-bit there, so flags and
//! counts go through `i32`.

use std::time::Duration;

use postgres::{Client, NoTls};

use super::{
    MIGRATIONS, NightDocuments, NightFilter, NightRow, REPLACE_SHARD_NIGHT, ResultsStore,
    SCHEMA_VERSION, SELECT_SHARDS, SeriesRow, ShardMark, ShardState, StoreError, StoredNight,
    UPSERT_SHARD, WriteOutcome, assemble, dollar_placeholders, int32, refuse_newer, rfc3339,
    select_sql, series_inserts, shard_from_row,
};

/// Writes a shard's row through `client` (a connection or a transaction).
fn upsert_shard(
    client: &mut impl postgres::GenericClient,
    location: &str,
    mark: &ShardMark,
) -> Result<(), StoreError> {
    client
        .execute(
            &dollar_placeholders(UPSERT_SHARD),
            &[
                &mark.campaign,
                &mark.shard,
                &mark.fleet_run,
                &mark.machine_class,
                &int32(location, "day", i64::from(mark.day))?,
                &mark.state.name(),
                &mark.run_id,
                &rfc3339(&mark.updated_at),
            ],
        )
        .map(|_| ())
        .map_err(|source| StoreError::Postgres {
            location: location.to_string(),
            source,
        })
}

/// Key of the advisory lock under which migrations run, so that runs
/// opening a new database at once apply each version once.
const MIGRATION_LOCK: i64 = 0x6361_6d70_6169_676e;

pub struct PostgresStore {
    client: Client,
    location: String,
    /// The schema version the database is at (a reader does not migrate).
    version: i64,
}

fn flag(value: bool) -> i32 {
    i32::from(value)
}

/// A connection that fails in seconds on a dead or black-holed host, and
/// whose statements a stalled server cannot hold forever.
fn connect(url: &str, location: &str) -> Result<Client, StoreError> {
    let err = |source| StoreError::Postgres {
        location: location.to_string(),
        source,
    };
    let mut config: postgres::Config = url.parse().map_err(err)?;
    config
        .connect_timeout(Duration::from_secs(10))
        .keepalives(true)
        .options("-c statement_timeout=60000");
    config.connect(NoTls).map_err(err)
}

impl PostgresStore {
    pub fn open_reader(url: &str, location: String) -> Result<Self, StoreError> {
        let mut client = connect(url, &location)?;
        let err = |source| StoreError::Postgres {
            location: location.clone(),
            source,
        };
        let has_versions: bool = client
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(err)?;
        let version = if has_versions {
            let v: i32 = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .and_then(|row| row.try_get(0))
                .map_err(err)?;
            i64::from(v)
        } else {
            0
        };
        refuse_newer(&location, version)?;
        Ok(Self {
            client,
            location,
            version,
        })
    }

    pub fn open(url: &str, location: String) -> Result<Self, StoreError> {
        let err = |source| StoreError::Postgres {
            location: location.clone(),
            source,
        };
        let mut client = connect(url, &location)?;
        let mut tx = client.transaction().map_err(err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(err)?;
        let found: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .and_then(|row| row.try_get(0))
            .map_err(err)?;
        let found = i64::from(found);
        refuse_newer(&location, found)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(migration).map_err(err)?;
            let version = index as i32 + 1;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                &[&version, &chrono::Utc::now().to_rfc3339()],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Self {
            client,
            location,
            version: SCHEMA_VERSION,
        })
    }
}

impl ResultsStore for PostgresStore {
    fn write_night(&mut self, night: &StoredNight) -> Result<WriteOutcome, StoreError> {
        let location = self.location.clone();
        let err = |source| StoreError::Postgres {
            location: location.clone(),
            source,
        };
        let mut tx = self.client.transaction().map_err(err)?;
        let e = &night.entry;
        if let Some(mark) = &night.shard {
            for sql in REPLACE_SHARD_NIGHT {
                tx.execute(
                    &dollar_placeholders(sql),
                    &[&e.campaign, &mark.shard, &night.run_id],
                )
                .map_err(err)?;
            }
        }
        let shard = night.shard.as_ref().map(|m| m.shard.clone());
        let inserted = tx
            .execute(
                "INSERT INTO nights (run_id, recorded_at, machine_key, campaign, campaign_hash, day, \
                 git_commit, quick, runs, report, baseline, environment, report_json, \
                 comparison_json, shard) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT DO NOTHING",
                &[
                    &night.run_id,
                    &e.recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    &night.machine_key,
                    &e.campaign,
                    &night.campaign_hash,
                    &int32(&location, "day", i64::from(e.day))?,
                    &e.git_commit,
                    &flag(e.quick),
                    &int32(&location, "runs", i64::from(e.runs))?,
                    &e.report,
                    &e.baseline,
                    &night.environment,
                    &night.documents.report_json,
                    &night.documents.comparison_json,
                    &shard,
                ],
            )
            .map_err(err)?;
        if let Some(mark) = &night.shard {
            let done = ShardMark {
                state: ShardState::Done,
                run_id: Some(night.run_id.clone()),
                ..mark.clone()
            };
            upsert_shard(&mut tx, &location, &done)?;
        }
        if inserted == 0 {
            tx.commit().map_err(err)?;
            return Ok(WriteOutcome::AlreadyStored);
        }
        let insert = tx
            .prepare(
                "INSERT INTO series_values (run_id, series, median, unit, higher_is_better, \
                 run_values, mean_log, sd_log, log_runs, time_like, state, threshold_pct) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .map_err(err)?;
        for row in series_inserts(night) {
            let log_runs = row.7.map(|r| int32(&location, "runs", r)).transpose()?;
            let time_like = row.8.map(flag);
            tx.execute(
                &insert,
                &[
                    &night.run_id,
                    &row.0,
                    &row.1,
                    &row.2,
                    &flag(row.3),
                    &row.4,
                    &row.5,
                    &row.6,
                    &log_runs,
                    &time_like,
                    &row.9,
                    &row.10,
                ],
            )
            .map_err(err)?;
        }
        super::pause_before_commit();
        tx.commit().map_err(err)?;
        Ok(WriteOutcome::Stored)
    }

    fn select_nights(&mut self, filter: &NightFilter) -> Result<Vec<StoredNight>, StoreError> {
        let location = self.location.clone();
        let err = |source| StoreError::Postgres {
            location: location.clone(),
            source,
        };
        let (exact, like) = filter.machine.sql();
        let day = filter
            .day
            .map(|d| int32(&self.location, "day", i64::from(d)))
            .transpose()?;
        let since = filter.since_text();
        if self.version == 0 {
            return Ok(Vec::new());
        }
        let (nights_sql, series_sql) = select_sql(self.version, |n, ty| format!("${n}::{ty}"));
        let params: [&(dyn postgres::types::ToSql + Sync); 5] =
            [&filter.campaign, &day, &exact, &like, &since];
        let nights = self
            .client
            .query(&nights_sql, &params)
            .map_err(err)?
            .into_iter()
            .map(|r| {
                Ok(NightRow {
                    run_id: r.try_get(0)?,
                    machine_key: r.try_get(1)?,
                    campaign_hash: r.try_get(2)?,
                    environment: r.try_get(3)?,
                    recorded_at: r.try_get(4)?,
                    campaign: r.try_get(5)?,
                    day: i64::from(r.try_get::<_, i32>(6)?),
                    git_commit: r.try_get(7)?,
                    quick: r.try_get::<_, i32>(8)? != 0,
                    runs: i64::from(r.try_get::<_, i32>(9)?),
                    report: r.try_get(10)?,
                    baseline: r.try_get(11)?,
                    has_report: r.try_get(12)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(err)?;
        let series = self
            .client
            .query(&series_sql, &params)
            .map_err(err)?
            .into_iter()
            .map(|r| {
                Ok(SeriesRow {
                    run_id: r.try_get(0)?,
                    series: r.try_get(1)?,
                    median: r.try_get(2)?,
                    unit: r.try_get(3)?,
                    higher_is_better: r.try_get::<_, i32>(4)? != 0,
                    run_values: r.try_get(5)?,
                    mean_log: r.try_get(6)?,
                    sd_log: r.try_get(7)?,
                    log_runs: r.try_get::<_, Option<i32>>(8)?.map(i64::from),
                    time_like: r.try_get::<_, Option<i32>>(9)?.map(|v| v != 0),
                    state: r.try_get(10)?,
                    threshold_pct: r.try_get(11)?,
                })
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(err)?;
        assemble(&self.location, nights, series)
    }

    fn night_documents(&mut self, run_id: &str) -> Result<Option<NightDocuments>, StoreError> {
        let location = self.location.clone();
        if self.version < 2 {
            if self.version == 0 {
                return Ok(None);
            }
            let row = self
                .client
                .query_opt("SELECT 1 FROM nights WHERE run_id = $1", &[&run_id])
                .map_err(|source| StoreError::Postgres {
                    location: location.clone(),
                    source,
                })?;
            return Ok(row.map(|_| NightDocuments::default()));
        }
        let row = self
            .client
            .query_opt(
                "SELECT report_json, comparison_json FROM nights WHERE run_id = $1",
                &[&run_id],
            )
            .map_err(|source| StoreError::Postgres {
                location: location.clone(),
                source,
            })?;
        row.map(|r| {
            Ok(NightDocuments {
                report_json: r.try_get(0)?,
                comparison_json: r.try_get(1)?,
            })
        })
        .transpose()
        .map_err(|source| StoreError::Postgres { location, source })
    }

    fn run_ids(&mut self) -> Result<Vec<String>, StoreError> {
        let location = self.location.clone();
        self.client
            .query("SELECT run_id FROM nights ORDER BY run_id", &[])
            .and_then(|rows| rows.iter().map(|r| r.try_get(0)).collect())
            .map_err(|source| StoreError::Postgres { location, source })
    }

    fn night_count(&mut self) -> Result<u64, StoreError> {
        if self.version == 0 {
            return Ok(0);
        }
        let location = self.location.clone();
        let count: i64 = self
            .client
            .query_one("SELECT COUNT(*) FROM nights", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|source| StoreError::Postgres { location, source })?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn mark_shard(&mut self, mark: &ShardMark) -> Result<(), StoreError> {
        let location = self.location.clone();
        upsert_shard(&mut self.client, &location, mark)
    }

    fn shards(&mut self, campaign: &str, fleet_run: &str) -> Result<Vec<ShardMark>, StoreError> {
        if self.version < 3 {
            return Ok(Vec::new());
        }
        let location = self.location.clone();
        let rows = self
            .client
            .query(
                &dollar_placeholders(SELECT_SHARDS),
                &[&campaign, &fleet_run],
            )
            .map_err(|source| StoreError::Postgres {
                location: location.clone(),
                source,
            })?;
        rows.iter()
            .map(|r| -> Result<ShardMark, postgres::Error> {
                let day: i32 = r.try_get(4)?;
                Ok(shard_from_row((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    i64::from(day),
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                )))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| StoreError::Postgres { location, source })
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        let location = self.location.clone();
        let version: i32 = self
            .client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|source| StoreError::Postgres { location, source })?;
        Ok(i64::from(version))
    }
}
