//! The storage boundary: a key-value store with named columns and atomic batches.
//!
//! `core` defines the [`Store`] trait and an in-memory implementation,
//! [`MemStore`], for tests and simulations; the node implements it on RocksDB
//! with one column family per [`Column`]. Every multi-key change goes through a
//! [`WriteBatch`], which a store applies all-or-nothing.

use std::collections::BTreeMap;
use std::sync::RwLock;

/// The named columns (RocksDB column families) of a qward database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    /// Schema version, node metadata.
    Meta,
    /// Blocks by height (big-endian u64 key).
    Blocks,
    /// Block height by block hash.
    BlockIndex,
    /// Chain state: accounts, members, validators, consent, anchors.
    State,
    /// Consensus safety data: what this validator last signed.
    Consensus,
    /// The key store: agreed keys and their metadata.
    Keys,
    /// Messages waiting for a delivery receipt.
    Outbox,
    /// Received messages.
    Inbox,
    /// The access log: every read of health data, hash-chained.
    Access,
}

impl Column {
    /// Every column, in a fixed order.
    pub const ALL: [Column; 9] = [
        Column::Meta,
        Column::Blocks,
        Column::BlockIndex,
        Column::State,
        Column::Consensus,
        Column::Keys,
        Column::Outbox,
        Column::Inbox,
        Column::Access,
    ];

    /// The column-family name on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Column::Meta => "meta",
            Column::Blocks => "blocks",
            Column::BlockIndex => "block_index",
            Column::State => "state",
            Column::Consensus => "consensus",
            Column::Keys => "keys",
            Column::Outbox => "outbox",
            Column::Inbox => "inbox",
            Column::Access => "access",
        }
    }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One change inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        column: Column,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        column: Column,
        key: Vec<u8>,
    },
}

/// A set of changes applied atomically: all of them or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    sync: bool,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, column: Column, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            column,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, column: Column, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete {
            column,
            key: key.into(),
        });
    }

    /// Asks the store to make the batch durable (fsync the log) before
    /// `write` returns. Needed where safety depends on it, such as a
    /// validator's record of what it signed.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    pub fn is_sync(&self) -> bool {
        self.sync
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// A storage failure. Stores report I/O and corruption; callers decide.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("corrupt value in column {column:?}: {reason}")]
    Corrupt { column: Column, reason: String },
}

/// A key-value store with columns and atomic batches.
pub trait Store: Send + Sync {
    /// Reads one value.
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Applies every operation of `batch`, or none of them.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Key-ordered entries with `start <= key` (and `key < end` when given),
    /// at most `limit` of them.
    fn range(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;

    /// The entry with the greatest key in `column`, if any.
    fn last(&self, column: Column) -> Result<Option<Entry>, StoreError>;

    /// Writes one value (a batch of one).
    fn put(&self, column: Column, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(column, key, value);
        self.write(batch)
    }

    /// Deletes one key (a batch of one).
    fn delete(&self, column: Column, key: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.delete(column, key);
        self.write(batch)
    }

    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    fn prefix(
        &self,
        column: Column,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let end = prefix_end(prefix);
        self.range(column, prefix, end.as_deref(), limit)
    }
}

/// The smallest key greater than every key starting with `prefix`
/// (`None` when the prefix is all 0xff bytes or empty: no upper bound).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory [`Store`] for tests and simulations. Batches are atomic
/// because they are applied under one write lock.
#[derive(Debug, Default)]
pub struct MemStore {
    columns: RwLock<BTreeMap<Column, Table>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<Column, Table>>, StoreError> {
        self.columns
            .read()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl Store for MemStore {
    fn get(&self, column: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()?.get(&column).and_then(|t| t.get(key).cloned()))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut columns = self
            .columns
            .write()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))?;
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { column, key, value } => {
                    columns.entry(column).or_default().insert(key, value);
                }
                BatchOp::Delete { column, key } => {
                    if let Some(table) = columns.get_mut(&column) {
                        table.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn range(
        &self,
        column: Column,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        use std::ops::Bound;
        let columns = self.read()?;
        let Some(table) = columns.get(&column) else {
            return Ok(Vec::new());
        };
        let upper = match end {
            Some(e) if e <= start => return Ok(Vec::new()),
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(table
            .range((Bound::Included(start.to_vec()), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, column: Column) -> Result<Option<Entry>, StoreError> {
        let columns = self.read()?;
        Ok(columns
            .get(&column)
            .and_then(|t| t.last_key_value())
            .map(|(k, v)| (k.clone(), v.clone())))
    }
}

/// The storage conformance suite: the same checks run against every
/// [`Store`] implementation (in-memory here, RocksDB in the node).
#[cfg(any(test, feature = "test-utils"))]
#[allow(clippy::unwrap_used)] // test support: a failed check is a panic by design
pub mod conformance {
    use super::*;

    /// Runs every check on an empty store; panics (test failure) on a violation.
    pub fn run_all(store: &dyn Store) {
        get_put_delete(store);
        columns_are_separate(store);
        batch_applies_every_op_in_order(store);
        range_and_prefix(store);
        last_entry(store);
    }

    fn get_put_delete(store: &dyn Store) {
        assert_eq!(store.get(Column::Meta, b"k").unwrap(), None);
        store.put(Column::Meta, b"k", b"v1").unwrap();
        assert_eq!(
            store.get(Column::Meta, b"k").unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        store.put(Column::Meta, b"k", b"v2").unwrap();
        assert_eq!(
            store.get(Column::Meta, b"k").unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        store.delete(Column::Meta, b"k").unwrap();
        assert_eq!(store.get(Column::Meta, b"k").unwrap(), None);
        store.delete(Column::Meta, b"never-there").unwrap();
    }

    fn columns_are_separate(store: &dyn Store) {
        store.put(Column::Blocks, b"same", b"block").unwrap();
        store.put(Column::State, b"same", b"state").unwrap();
        assert_eq!(
            store.get(Column::Blocks, b"same").unwrap().as_deref(),
            Some(&b"block"[..])
        );
        assert_eq!(
            store.get(Column::State, b"same").unwrap().as_deref(),
            Some(&b"state"[..])
        );
        assert_eq!(store.get(Column::Inbox, b"same").unwrap(), None);
    }

    fn batch_applies_every_op_in_order(store: &dyn Store) {
        store.put(Column::Keys, b"old", b"x").unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Column::Keys, b"a".to_vec(), b"1".to_vec());
        batch.put(Column::Outbox, b"b".to_vec(), b"2".to_vec());
        batch.delete(Column::Keys, b"old".to_vec());
        batch.put(Column::Keys, b"a".to_vec(), b"3".to_vec());
        batch.set_sync(true);
        assert_eq!(batch.len(), 4);
        store.write(batch).unwrap();
        assert_eq!(
            store.get(Column::Keys, b"a").unwrap().as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(
            store.get(Column::Outbox, b"b").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(store.get(Column::Keys, b"old").unwrap(), None);
        store.write(WriteBatch::new()).unwrap();
    }

    fn range_and_prefix(store: &dyn Store) {
        for h in [5u64, 1, 3, 2, 4, 256] {
            store
                .put(Column::BlockIndex, &h.to_be_bytes(), &h.to_le_bytes())
                .unwrap();
        }
        let all = store
            .range(Column::BlockIndex, &[], None, usize::MAX)
            .unwrap();
        let heights: Vec<u64> = all
            .iter()
            .map(|(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap()))
            .collect();
        assert_eq!(heights, vec![1, 2, 3, 4, 5, 256]);
        let mid = store
            .range(
                Column::BlockIndex,
                &2u64.to_be_bytes(),
                Some(&5u64.to_be_bytes()),
                10,
            )
            .unwrap();
        assert_eq!(mid.len(), 3);
        assert_eq!(mid[0].1, 2u64.to_le_bytes().to_vec());
        let limited = store.range(Column::BlockIndex, &[], None, 2).unwrap();
        assert_eq!(limited.len(), 2);
        let empty = store
            .range(
                Column::BlockIndex,
                &5u64.to_be_bytes(),
                Some(&2u64.to_be_bytes()),
                10,
            )
            .unwrap();
        assert!(empty.is_empty());

        for key in [&b"peer/a/1"[..], b"peer/a/2", b"peer/b/1", b"peer/a\xff"] {
            store.put(Column::Inbox, key, b"m").unwrap();
        }
        let a = store.prefix(Column::Inbox, b"peer/a/", 100).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|(k, _)| k.starts_with(b"peer/a/")));
        assert_eq!(store.prefix(Column::Inbox, b"", 100).unwrap().len(), 4);
    }

    fn last_entry(store: &dyn Store) {
        assert_eq!(store.last(Column::Consensus).unwrap(), None);
        store
            .put(Column::Consensus, &3u64.to_be_bytes(), b"c")
            .unwrap();
        store
            .put(Column::Consensus, &300u64.to_be_bytes(), b"z")
            .unwrap();
        store
            .put(Column::Consensus, &30u64.to_be_bytes(), b"b")
            .unwrap();
        let (k, v) = store.last(Column::Consensus).unwrap().unwrap();
        assert_eq!(k, 300u64.to_be_bytes().to_vec());
        assert_eq!(v, b"z".to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_store_passes_conformance_suite() {
        conformance::run_all(&MemStore::new());
    }

    #[test]
    fn prefix_end_handles_carry() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
