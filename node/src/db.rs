//! The RocksDB implementation of `qward_core::storage::Store`: one column family
//! per `Column`, atomic `WriteBatch`es, optional fsync, and a schema version.

use std::path::{Path, PathBuf};

use qward_core::storage::{BatchOp, Column, Entry, Store, StoreError, WriteBatch};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteOptions};

/// The schema this build reads and writes. Bumped when the layout changes.
pub const SCHEMA_VERSION: u32 = 4;

const SCHEMA_KEY: &[u8] = b"schema_version";

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no qward database at {0} (run `qward init` first)")]
    Missing(PathBuf),
    #[error(
        "the database at {path} has schema version {found}, newer than this qward supports ({supported}); upgrade qward"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the database at {path} has schema version {found}, from an older qward whose records this one cannot read (version 4: every stored key wrapped by a data key sealed under a passphrase, and the access log; version 3: a validator's signing record holds proposals with their polka; version 2: signatures over the genesis hash, the state stored entry by entry); start a new data directory with `qward init` (a devnet: `qward devnet down`, then delete its folder)"
    )]
    OlderSchema { path: PathBuf, found: u32 },
    #[error("the database at {path} has an unreadable schema version")]
    BadSchema { path: PathBuf },
    #[error("cannot open the database at {path}: {reason}")]
    Rocks { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A qward database on RocksDB.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.into_string())
}

impl RocksStore {
    /// Creates the database (if absent) with every column family and stamps the schema version.
    pub fn create(path: &Path) -> Result<Self, OpenError> {
        let store = Self::open_inner(path, true)?;
        match store.schema_version()? {
            None => {
                let mut batch = WriteBatch::new();
                batch.put(Column::Meta, SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes());
                batch.set_sync(true);
                store.write(batch)?;
            }
            Some(v) => check_schema(path, v)?,
        }
        Ok(store)
    }

    /// Opens an existing database; refuses a missing one and a newer schema.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        Self::require_existing(path)?;
        Self::open_inner(path, false)?.with_known_schema()
    }

    /// Opens an existing database for reading only. Works while the node
    /// that owns it is running (no lock is taken): what an auditor's
    /// `chain verify` and `chain show` use. Writes fail.
    pub fn open_read_only(path: &Path) -> Result<Self, OpenError> {
        Self::require_existing(path)?;
        let opts = Options::default();
        let cfs = Column::ALL
            .iter()
            .map(|c| ColumnFamilyDescriptor::new(c.name(), Options::default()));
        let db = DB::open_cf_descriptors_read_only(&opts, path, cfs, false).map_err(|e| {
            OpenError::Rocks {
                path: path.to_path_buf(),
                reason: e.into_string(),
            }
        })?;
        RocksStore {
            db,
            path: path.to_path_buf(),
        }
        .with_known_schema()
    }

    fn require_existing(path: &Path) -> Result<(), OpenError> {
        if path.join("CURRENT").exists() {
            Ok(())
        } else {
            Err(OpenError::Missing(path.to_path_buf()))
        }
    }

    /// Refuses a database without a schema stamp or from a newer qward.
    fn with_known_schema(self) -> Result<Self, OpenError> {
        match self.schema_version()? {
            Some(v) => check_schema(&self.path, v)?,
            None => {
                return Err(OpenError::BadSchema {
                    path: self.path.clone(),
                });
            }
        }
        Ok(self)
    }

    fn open_inner(path: &Path, create: bool) -> Result<Self, OpenError> {
        let mut opts = Options::default();
        opts.create_if_missing(create);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(4);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = Column::ALL
            .iter()
            .map(|c| ColumnFamilyDescriptor::new(c.name(), Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| OpenError::Rocks {
            path: path.to_path_buf(),
            reason: e.into_string(),
        })?;
        Ok(RocksStore {
            db,
            path: path.to_path_buf(),
        })
    }

    /// The stored schema version, if stamped.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        match self.get(Column::Meta, SCHEMA_KEY)? {
            None => Ok(None),
            Some(bytes) => {
                let arr: [u8; 4] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt {
                            column: Column::Meta,
                            reason: "schema version is not 4 bytes".into(),
                        })?;
                Ok(Some(u32::from_le_bytes(arr)))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forces deleted `keys` of `column` out of the database's files: every
    /// memtable is flushed (so the write-ahead log that held their values
    /// becomes obsolete and is removed), then the files holding each key are
    /// compacted down to the bottom level, where a deleted value and its
    /// tombstone are dropped. Call after the deletes are written.
    pub fn purge(&self, column: Column, keys: &[&[u8]]) -> Result<(), StoreError> {
        let cfs = Column::ALL
            .iter()
            .map(|c| self.cf(*c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut flush = rocksdb::FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &flush).map_err(backend)?;
        let mut compact = rocksdb::CompactOptions::default();
        compact.set_exclusive_manual_compaction(true);
        compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        let cf = self.cf(column)?;
        for key in keys {
            let mut end = key.to_vec();
            end.push(0);
            self.db
                .compact_range_cf_opt(cf, Some(key), Some(end.as_slice()), &compact);
        }
        Ok(())
    }

    fn cf(&self, column: Column) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(column.name())
            .ok_or_else(|| StoreError::Backend(format!("column family {} missing", column.name())))
    }
}

fn check_schema(path: &Path, found: u32) -> Result<(), OpenError> {
    if found < SCHEMA_VERSION {
        return Err(OpenError::OlderSchema {
            path: path.to_path_buf(),
            found,
        });
    }
    if found > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

impl Store for RocksStore {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(column)?, key).map_err(backend)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let sync = batch.is_sync();
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { column, key, value } => rb.put_cf(self.cf(column)?, key, value),
                BatchOp::Delete { column, key } => rb.delete_cf(self.cf(column)?, key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(rb, &wo).map_err(backend)
    }

    fn range(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let iter = self.db.iterator_cf(
            self.cf(column)?,
            IteratorMode::From(start, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(backend)?;
            if end.is_some_and(|e| k.as_ref() >= e) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn last(&self, column: Column) -> Result<Option<Entry>, StoreError> {
        let mut iter = self.db.iterator_cf(self.cf(column)?, IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(backend)?;
                Ok(Some((k.into_vec(), v.into_vec())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocks_store_passes_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        qward_core::storage::conformance::run_all(&store);
    }

    #[test]
    fn data_survives_reopen_and_schema_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = RocksStore::create(&path).unwrap();
            store.put(Column::Blocks, b"k", b"v").unwrap();
        }
        let store = RocksStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), Some(SCHEMA_VERSION));
        assert_eq!(
            store.get(Column::Blocks, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = RocksStore::create(&path).unwrap();
            store
                .put(
                    Column::Meta,
                    SCHEMA_KEY,
                    &(SCHEMA_VERSION + 1).to_le_bytes(),
                )
                .unwrap();
        }
        let err = RocksStore::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade qward"));
    }

    #[test]
    fn older_schema_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = RocksStore::create(&path).unwrap();
            store
                .put(Column::Meta, SCHEMA_KEY, &1u32.to_le_bytes())
                .unwrap();
        }
        let err = RocksStore::open(&path).unwrap_err();
        assert!(
            matches!(err, OpenError::OlderSchema { found: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("qward init"));
    }

    #[test]
    fn read_only_open_works_beside_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let writer = RocksStore::create(&path).unwrap();
        writer.put(Column::Blocks, b"k", b"v").unwrap();
        writer.db.flush().unwrap();
        let reader = RocksStore::open_read_only(&path).unwrap();
        assert_eq!(
            reader.get(Column::Blocks, b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert!(
            reader.put(Column::Blocks, b"x", b"y").is_err(),
            "read-only store accepted a write"
        );
    }

    #[test]
    fn missing_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RocksStore::open(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("qward init"));
    }
}
