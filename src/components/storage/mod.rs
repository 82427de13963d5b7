//! Blobs by key in an embedded database (redb: pure Rust, ACID, one file),
//! with an optional in-memory LRU cache in front of it.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use lru::LruCache;
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

const BLOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("blobs");

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "cannot open the store {path}: {message}\n  help: point the store at a writable folder with free space"
    )]
    Open { path: PathBuf, message: String },
    #[error("store {path}: {message}")]
    Database { path: PathBuf, message: String },
}

/// How a write commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitMode {
    /// Durable when `put` returns (fsync per commit).
    Durable,
    /// Visible to readers, persisted by a later durable commit.
    NonDurable,
}

/// Where a read was served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadSource {
    Cache,
    Database,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub puts: u64,
}

pub struct BlobStore {
    path: PathBuf,
    db: Database,
    cache: Option<LruCache<u64, Vec<u8>>>,
    stats: StoreStats,
}

impl BlobStore {
    /// Opens (creating if needed) the database file; `cache_entries` = 0
    /// means no cache.
    pub fn open(path: &Path, cache_entries: usize) -> Result<Self, StorageError> {
        let open_err = |message: String| StorageError::Open {
            path: path.to_path_buf(),
            message,
        };
        let db = Database::create(path).map_err(|e| open_err(e.to_string()))?;
        let store = Self {
            path: path.to_path_buf(),
            db,
            cache: NonZeroUsize::new(cache_entries).map(LruCache::new),
            stats: StoreStats::default(),
        };
        // Create the table up front, so reads of an empty store find it.
        let txn = store
            .db
            .begin_write()
            .map_err(|e| open_err(e.to_string()))?;
        txn.open_table(BLOBS).map_err(|e| open_err(e.to_string()))?;
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(store)
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StorageError {
        StorageError::Database {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Writes one blob in its own transaction.
    pub fn put(&mut self, key: u64, value: &[u8], mode: CommitMode) -> Result<(), StorageError> {
        let mut txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        txn.set_durability(match mode {
            CommitMode::Durable => Durability::Immediate,
            CommitMode::NonDurable => Durability::None,
        })
        .map_err(|e| self.db_err(e))?;
        {
            let mut table = txn.open_table(BLOBS).map_err(|e| self.db_err(e))?;
            table.insert(key, value).map_err(|e| self.db_err(e))?;
        }
        txn.commit().map_err(|e| self.db_err(e))?;
        if let Some(cache) = &mut self.cache {
            // Write-through: a cached copy must never be stale.
            cache.pop(&key);
        }
        self.stats.puts += 1;
        Ok(())
    }

    /// Reads a blob into `out`; `None` when the key is absent.
    pub fn get(&mut self, key: u64, out: &mut Vec<u8>) -> Result<Option<ReadSource>, StorageError> {
        if let Some(value) = self.cache.as_mut().and_then(|c| c.get(&key)) {
            out.clear();
            out.extend_from_slice(value);
            self.stats.cache_hits += 1;
            return Ok(Some(ReadSource::Cache));
        }
        self.stats.cache_misses += 1;
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let table = txn.open_table(BLOBS).map_err(|e| self.db_err(e))?;
        let Some(value) = table.get(key).map_err(|e| self.db_err(e))? else {
            return Ok(None);
        };
        out.clear();
        out.extend_from_slice(value.value());
        if let Some(cache) = &mut self.cache {
            cache.put(key, out.clone());
        }
        Ok(Some(ReadSource::Database))
    }
}
