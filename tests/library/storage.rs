//! The blob store on real files.

use campaign::components::storage::{BlobStore, CommitMode, ReadSource};
use tempfile::TempDir;

use super::small_fs::SmallFs;

fn value(key: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (key as usize * 7 + i) as u8).collect()
}

#[test]
fn blobs_survive_closing_and_reopening() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let mut store = BlobStore::open(&path, 0).unwrap();
    for key in 0..3 {
        store
            .put(
                key,
                &value(key, 4096 * (key as usize + 1)),
                CommitMode::Durable,
            )
            .unwrap();
    }
    drop(store);

    let mut store = BlobStore::open(&path, 0).unwrap();
    let mut out = Vec::new();
    for key in 0..3 {
        assert_eq!(
            store.get(key, &mut out).unwrap(),
            Some(ReadSource::Database)
        );
        assert_eq!(out, value(key, 4096 * (key as usize + 1)));
    }
    assert_eq!(store.get(99, &mut out).unwrap(), None);
}

#[test]
fn the_cache_serves_repeats_and_never_a_stale_value() {
    let dir = TempDir::new().unwrap();
    let mut store = BlobStore::open(&dir.path().join("s.redb"), 2).unwrap();
    store.put(1, b"first", CommitMode::NonDurable).unwrap();
    let mut out = Vec::new();
    assert_eq!(store.get(1, &mut out).unwrap(), Some(ReadSource::Database));
    assert_eq!(store.get(1, &mut out).unwrap(), Some(ReadSource::Cache));
    store.put(1, b"second", CommitMode::NonDurable).unwrap();
    assert_eq!(store.get(1, &mut out).unwrap(), Some(ReadSource::Database));
    assert_eq!(out, b"second");
    assert_eq!(
        (store.stats().cache_hits, store.stats().cache_misses),
        (1, 2)
    );
}

#[test]
fn an_unusable_folder_is_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let err = BlobStore::open(&blocker.join("s.redb"), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("blocker") && err.contains("writable folder"),
        "{err}"
    );
}

#[test]
fn a_full_disk_is_an_error_and_durable_blobs_stay_readable() {
    let Some(fs) = SmallFs::mount() else {
        eprintln!(
            "skipped: cannot mount a small tmpfs here (needs root); the full-disk path is untested in this run"
        );
        return;
    };
    let path = fs.path.join("s.redb");
    let mut store = match BlobStore::open(&path, 0) {
        Ok(s) => s,
        Err(e) => panic!("a 1 MiB file system holds an empty store: {e}"),
    };
    let mut written = Vec::new();
    let failure = (0..64u64).find_map(|key| {
        match store.put(key, &value(key, 64 * 1024), CommitMode::Durable) {
            Ok(()) => {
                written.push(key);
                None
            }
            Err(e) => Some(e),
        }
    });
    let failure = failure.expect("a 1 MiB file system must fill up");
    assert!(!written.is_empty());
    let message = failure.to_string();
    assert!(message.contains("s.redb"), "{message}");
    drop(store);
    let mut store = BlobStore::open(&path, 0).unwrap();
    let mut out = Vec::new();
    for key in written {
        assert!(
            store.get(key, &mut out).unwrap().is_some(),
            "durable blob {key} lost"
        );
        assert_eq!(out, value(key, 64 * 1024));
    }
}
