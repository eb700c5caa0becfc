//! The node's key store: the core `KeyRing` (current and previous key per
//! peer, rotation by uses and age) persisted in RocksDB's `keys` column, plus
//! the per-record at-rest keys of stored messages.
//!
//! Layout of `Column::Keys`: `r` + key id -> `KeyRecord`; `s` + key id -> the
//! key's secret; `a` + record slot -> the record's at-rest key. Secrets and
//! at-rest keys are stored wrapped by the node's data key
//! (`qward_core::vault`), labelled with their own store key, so the database
//! alone holds no key in the clear. A retired key's entries are deleted in
//! the same batch that installs its successor, and its bytes are zeroized in
//! memory. Key material never reaches a log line.

use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use qward_core::envelope::{AtRestKey, RecordId};
use qward_core::hybrid::{HybridKey, KeyId};
use qward_core::identity::AccountId;
use qward_core::keystore::{
    KeyRecord, KeyRing, KeyStoreError, RotationPolicy, SealingKey, decode_secret, encode_secret,
};
use qward_core::storage::{Column, Store, WriteBatch};
use qward_core::vault::DataKey;

use crate::db::RocksStore;

const RECORD: u8 = b'r';
const SECRET: u8 = b's';
const AT_REST: u8 = b'a';
const KME: u8 = b'k';

/// The store key of the KME keys kept for `slave` (an SAE of this node's
/// KME) from `master` (an SAE at another node's KME): the ids' prefix.
fn kme_prefix(slave: &str, master: &str) -> Vec<u8> {
    let mut k = vec![KME, slave.len() as u8];
    k.extend_from_slice(slave.as_bytes());
    k.push(master.len() as u8);
    k.extend_from_slice(master.as_bytes());
    k
}

/// How long a KME key waits for its slave SAE: a master that never passes
/// the ids on must not leave the pair's slots full for good.
pub const KME_KEY_TTL_MS: u64 = 60 * 60 * 1000;

/// One KME key as the API hands it out: its id and bytes.
pub type KmeKey = (qward_core::etsi014::KeyId, zeroize::Zeroizing<Vec<u8>>);

fn key(tag: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(tag);
    k.extend_from_slice(id);
    k
}

/// Deletes the stored entries of keys the ring has already zeroized.
fn delete_from_disk(store: &RocksStore, erased: &[KeyRecord]) -> anyhow::Result<usize> {
    if erased.is_empty() {
        return Ok(0);
    }
    let mut batch = WriteBatch::new();
    for r in erased {
        batch.delete(Column::Keys, key(RECORD, &r.key_id.0));
        batch.delete(Column::Keys, key(SECRET, &r.key_id.0));
    }
    batch.set_sync(true);
    store.write(batch)?;
    Ok(erased.len())
}

/// Agreed keys, in memory and on disk.
pub struct KeyStore {
    ring: Mutex<KeyRing>,
    data_key: DataKey,
    /// Held while KME keys are taken, so no key is handed out twice.
    kme: Mutex<()>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Loads every stored key into a ring with `policy`, deleting any that an
    /// interrupted rotation left behind.
    pub fn load(
        store: &RocksStore,
        policy: RotationPolicy,
        data_key: DataKey,
    ) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for (k, v) in store.prefix(Column::Keys, &[RECORD], usize::MAX)? {
            let record = KeyRecord::from_bytes(&v).context("a stored key record")?;
            let label = key(SECRET, &k[1..]);
            let wrapped = store
                .get(Column::Keys, &label)?
                .with_context(|| format!("key {} has a record but no secret", record.key_id))?;
            let secret = data_key
                .unwrap(&label, &wrapped)
                .with_context(|| format!("the secret of key {}", record.key_id))?;
            keys.push((
                record,
                decode_secret(&secret).context("a stored key secret")?,
            ));
        }
        let (ring, retired) = KeyRing::restore(policy, keys)?;
        delete_from_disk(store, &retired)?;
        Ok(KeyStore {
            ring: Mutex::new(ring),
            data_key,
            kme: Mutex::new(()),
        })
    }

    fn ring(&self) -> MutexGuard<'_, KeyRing> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `key` the current key for its peer, on disk (synced) and in the
    /// ring; the key before the previous one is deleted and zeroized.
    pub fn install(
        &self,
        store: &RocksStore,
        record: KeyRecord,
        secret: HybridKey,
    ) -> anyhow::Result<()> {
        let mut ring = self.ring();
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Keys,
            key(RECORD, &record.key_id.0),
            record.to_bytes(),
        );
        let label = key(SECRET, &record.key_id.0);
        let wrapped = self
            .data_key
            .wrap(&label, &encode_secret(&secret), &mut rand::rng());
        batch.put(Column::Keys, label, wrapped);
        let erased = ring.install(record, secret)?;
        if let Some(old) = erased {
            batch.delete(Column::Keys, key(RECORD, &old.key_id.0));
            batch.delete(Column::Keys, key(SECRET, &old.key_id.0));
        }
        batch.set_sync(true);
        store.write(batch)?;
        Ok(())
    }

    /// Whether `peer`'s current key may still seal at `now_ms`.
    pub fn has_fresh_key(&self, peer: &AccountId, now_ms: u64) -> bool {
        self.ring().has_fresh_key(peer, now_ms)
    }

    /// Runs `f` with the current key for `peer` and its record (use
    /// counted); `batch` receives the updated record, so the use is persisted
    /// with whatever `f`'s result is stored with.
    pub fn with_sealing_key<T>(
        &self,
        peer: &AccountId,
        now_ms: u64,
        batch: &mut WriteBatch,
        f: impl FnOnce(&HybridKey) -> T,
    ) -> Result<T, KeyStoreError> {
        let mut ring = self.ring();
        let SealingKey { key: k, record } = ring.key_for_sealing(peer, now_ms)?;
        batch.put(
            Column::Keys,
            key(RECORD, &record.key_id.0),
            record.to_bytes(),
        );
        Ok(f(k))
    }

    /// Runs `f` with the key `key_id` agreed with `peer` (current or previous).
    pub fn with_opening_key<T>(
        &self,
        peer: &AccountId,
        key_id: &KeyId,
        f: impl FnOnce(&HybridKey) -> T,
    ) -> Result<T, KeyStoreError> {
        let ring = self.ring();
        Ok(f(ring.key_for_opening(peer, key_id)?))
    }

    /// Every key still held (current and previous), without secrets.
    pub fn records(&self) -> Vec<KeyRecord> {
        self.ring().records().cloned().collect()
    }

    /// Erases every key of `peer` (on disk and in memory).
    pub fn erase_peer(&self, store: &RocksStore, peer: &AccountId) -> anyhow::Result<usize> {
        let erased = self.ring().erase_peer(peer);
        delete_from_disk(store, &erased)
    }

    /// Erases previous keys past any grace period (`KeyRing::expire`), on
    /// disk and in memory; returns how many.
    pub fn expire(&self, store: &RocksStore, now_ms: u64) -> anyhow::Result<usize> {
        let erased = self.ring().expire(now_ms);
        delete_from_disk(store, &erased)
    }

    /// Keeps the keys of a KME session for `slave` to fetch (synced; each
    /// wrapped by the data key under its own store key, after the time it
    /// was kept).
    pub fn kme_keep(
        &self,
        store: &RocksStore,
        slave: &str,
        master: &str,
        keys: &[KmeKey],
        now_ms: u64,
    ) -> anyhow::Result<()> {
        let mut batch = WriteBatch::new();
        for (id, bytes) in keys {
            let mut label = kme_prefix(slave, master);
            label.extend_from_slice(&id.0);
            let mut value = now_ms.to_be_bytes().to_vec();
            value.extend(
                self.data_key
                    .wrap(&label, bytes.as_slice(), &mut rand::rng()),
            );
            batch.put(Column::Keys, label, value);
        }
        batch.set_sync(true);
        store.write(batch)?;
        Ok(())
    }

    /// How many KME keys wait for `slave` from `master`; keys kept longer
    /// than [`KME_KEY_TTL_MS`] are deleted first.
    pub fn kme_count(
        &self,
        store: &RocksStore,
        slave: &str,
        master: &str,
        now_ms: u64,
    ) -> anyhow::Result<u32> {
        let _held = self.kme.lock().unwrap_or_else(|p| p.into_inner());
        let held = store.prefix(
            Column::Keys,
            &kme_prefix(slave, master),
            qward_core::etsi014::MAX_KEY_COUNT as usize * 2,
        )?;
        let mut batch = WriteBatch::new();
        let mut live = 0u32;
        for (k, v) in held {
            if kme_expired(&v, now_ms) {
                batch.delete(Column::Keys, k);
            } else {
                live += 1;
            }
        }
        if !batch.is_empty() {
            batch.set_sync(true);
            store.write(batch)?;
        }
        Ok(live)
    }

    /// Takes the KME keys `ids` kept for `slave` from `master`, all or
    /// none: they are deleted (synced) as they are handed out, so each is
    /// delivered once. `Ok(Err(id))` names an id not kept here (or kept
    /// past its time).
    pub fn kme_take(
        &self,
        store: &RocksStore,
        slave: &str,
        master: &str,
        ids: &[qward_core::etsi014::KeyId],
        now_ms: u64,
    ) -> anyhow::Result<Result<Vec<KmeKey>, qward_core::etsi014::KeyId>> {
        let _held = self.kme.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = Vec::with_capacity(ids.len());
        let mut batch = WriteBatch::new();
        for id in ids {
            let mut label = kme_prefix(slave, master);
            label.extend_from_slice(&id.0);
            let Some(value) = store.get(Column::Keys, &label)? else {
                return Ok(Err(*id));
            };
            if kme_expired(&value, now_ms) {
                return Ok(Err(*id));
            }
            let bytes = self
                .data_key
                .unwrap(&label, &value[8..])
                .with_context(|| format!("KME key {id}"))?;
            keys.push((*id, bytes));
            batch.delete(Column::Keys, label);
        }
        batch.set_sync(true);
        store.write(batch)?;
        Ok(Ok(keys))
    }

    /// Adds a record's at-rest key to `batch`, wrapped by the data key.
    pub fn put_at_rest(&self, batch: &mut WriteBatch, slot: RecordSlot<'_>, k: &AtRestKey) {
        let label = slot.key();
        let wrapped = self
            .data_key
            .wrap(&label, k.to_bytes().as_slice(), &mut rand::rng());
        batch.put(Column::Keys, label, wrapped);
    }

    /// A record's at-rest key, if it has not been erased.
    pub fn at_rest(
        &self,
        store: &RocksStore,
        slot: RecordSlot<'_>,
    ) -> anyhow::Result<Option<AtRestKey>> {
        let label = slot.key();
        let Some(wrapped) = store.get(Column::Keys, &label)? else {
            return Ok(None);
        };
        let bytes = self
            .data_key
            .unwrap(&label, &wrapped)
            .with_context(|| format!("the at-rest key of record {}", slot.record()))?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!("at-rest key of record {} is not 32 bytes", slot.record())
        })?;
        Ok(Some(AtRestKey::from_bytes(arr)))
    }
}

/// Whether a kept KME key (its stored value: the time it was kept, then
/// the wrapped key) is past [`KME_KEY_TTL_MS`]; a value too short to hold
/// the time counts as expired.
fn kme_expired(value: &[u8], now_ms: u64) -> bool {
    match value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(t) => now_ms.saturating_sub(u64::from_be_bytes(t)) > KME_KEY_TTL_MS,
        None => true,
    }
}

/// Which copy of a record an at-rest key seals: this node's sent copy, or
/// the copy received from one sender. The slots are apart, so a peer that
/// sends back a record under the id of one this node sent cannot replace
/// the key of this node's own copy (and make it unreadable).
#[derive(Debug, Clone, Copy)]
pub enum RecordSlot<'a> {
    Sent(&'a RecordId),
    Received {
        sender: &'a AccountId,
        record: &'a RecordId,
    },
}

impl RecordSlot<'_> {
    /// The slot's key in `Column::Keys`.
    pub(crate) fn key(&self) -> Vec<u8> {
        match self {
            RecordSlot::Sent(record) => [&[AT_REST, b's'][..], &record.0].concat(),
            RecordSlot::Received { sender, record } => {
                [&[AT_REST, b'r'][..], &sender.0, &record.0].concat()
            }
        }
    }

    fn record(&self) -> &RecordId {
        match self {
            RecordSlot::Sent(record) | RecordSlot::Received { record, .. } => record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qward_core::hybrid::HybridKey;
    use qward_core::keystore::KeyPurpose;

    fn record(id: u8, peer: AccountId, created_at_ms: u64) -> (KeyRecord, HybridKey) {
        let key = HybridKey::from_secret(KeyId([id; 16]), [id; 32]);
        let record = KeyRecord {
            key_id: key.id(),
            peer,
            created_at_ms,
            qber: 0.01,
            key_bits: 1000,
            uses: 0,
            purpose: KeyPurpose::Messaging,
        };
        (record, key)
    }

    fn stored_ids(store: &RocksStore) -> Vec<Vec<u8>> {
        store
            .prefix(Column::Keys, &[RECORD], 100)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn keys_persist_rotate_and_retired_ones_leave_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        let policy = RotationPolicy {
            max_uses: 2,
            max_age_ms: 60_000,
        };
        let peer = AccountId([7; 32]);
        let data_key = DataKey::random(&mut rand::rng());
        let ks = KeyStore::load(&store, policy, data_key.clone()).unwrap();
        for (i, t) in [(1u8, 1_000u64), (2, 2_000), (3, 3_000)] {
            let (r, k) = record(i, peer, t);
            ks.install(&store, r, k).unwrap();
        }
        // Current (3) and previous (2) remain; key 1 is gone from disk.
        assert_eq!(stored_ids(&store).len(), 2);
        assert!(
            store
                .get(Column::Keys, &key(SECRET, &[1; 16]))
                .unwrap()
                .is_none()
        );

        // Uses are counted and persisted with the caller's batch.
        for _ in 0..2 {
            let mut batch = WriteBatch::new();
            let id = ks
                .with_sealing_key(&peer, 3_500, &mut batch, |k| k.id())
                .unwrap();
            assert_eq!(id, KeyId([3; 16]));
            store.write(batch).unwrap();
        }
        let mut batch = WriteBatch::new();
        let err = ks
            .with_sealing_key(&peer, 3_500, &mut batch, |k| k.id())
            .unwrap_err();
        assert!(
            matches!(err, KeyStoreError::RotationRequired { .. }),
            "{err}"
        );
        assert!(!ks.has_fresh_key(&peer, 3_500));

        // A restart sees the same keys and the same counts.
        drop(ks);
        // Another data key opens none of them: the store holds them wrapped.
        let err = KeyStore::load(&store, policy, DataKey::random(&mut rand::rng())).unwrap_err();
        assert!(format!("{err:#}").contains("data key"), "{err:#}");
        let again = KeyStore::load(&store, policy, data_key).unwrap();
        let mut recs = again.records();
        recs.sort_by_key(|r| r.created_at_ms);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].uses, 2);
        // The previous key still opens what it sealed.
        let opened = again
            .with_opening_key(&peer, &KeyId([2; 16]), |k| *k.secret_bytes())
            .unwrap();
        assert_eq!(opened, [2; 32]);

        // Past twice the age limit the previous key is erased too.
        assert_eq!(again.expire(&store, 2_000 + 2 * 60_000).unwrap(), 1);
        assert_eq!(stored_ids(&store).len(), 1);
        assert!(
            again
                .with_opening_key(&peer, &KeyId([2; 16]), |_| ())
                .is_err()
        );

        // Erasing a peer takes every key off the disk.
        assert_eq!(again.erase_peer(&store, &peer).unwrap(), 1);
        assert!(stored_ids(&store).is_empty());
        assert!(again.records().is_empty());
    }

    #[test]
    fn a_received_record_with_the_id_of_a_sent_one_has_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        let ks = KeyStore::load(
            &store,
            RotationPolicy::default(),
            DataKey::random(&mut rand::rng()),
        )
        .unwrap();
        let record = RecordId([7; 16]);
        let peer = AccountId([9; 32]);
        let (mine, theirs) = (
            AtRestKey::from_bytes([1; 32]),
            AtRestKey::from_bytes([2; 32]),
        );
        let mut batch = WriteBatch::new();
        ks.put_at_rest(&mut batch, RecordSlot::Sent(&record), &mine);
        store.write(batch).unwrap();
        // The peer sends back a record under the same id.
        let mut batch = WriteBatch::new();
        let received = RecordSlot::Received {
            sender: &peer,
            record: &record,
        };
        ks.put_at_rest(&mut batch, received, &theirs);
        store.write(batch).unwrap();
        let sent = ks.at_rest(&store, RecordSlot::Sent(&record)).unwrap();
        assert_eq!(
            sent.map(|k| *k.to_bytes()),
            Some([1; 32]),
            "own copy still readable"
        );
        let got = ks.at_rest(&store, received).unwrap();
        assert_eq!(got.map(|k| *k.to_bytes()), Some([2; 32]));
    }

    #[test]
    fn kme_keys_are_taken_once_all_or_none_and_expire() {
        use qward_core::etsi014::KeyId as KmeId;
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        let keys = KeyStore::load(
            &store,
            RotationPolicy::default(),
            DataKey::random(&mut rand::rng()),
        )
        .unwrap();
        let key = |i: u8| (KmeId([i; 16]), zeroize::Zeroizing::new(vec![0x40 + i; 32]));
        keys.kme_keep(&store, "b", "a", &[key(1), key(2)], 1_000)
            .unwrap();
        keys.kme_keep(&store, "c", "a", &[key(3)], 1_000).unwrap();
        assert_eq!(keys.kme_count(&store, "b", "a", 1_000).unwrap(), 2);
        // The stored values hold no key in the clear.
        for (_, v) in store.prefix(Column::Keys, &[KME], 10).unwrap() {
            for i in 1..=3u8 {
                assert!(!v.windows(8).any(|w| w == [0x40 + i; 8]));
            }
        }
        // One id another slave's (or unknown): nothing is taken.
        let mixed = keys
            .kme_take(&store, "b", "a", &[KmeId([1; 16]), KmeId([3; 16])], 1_000)
            .unwrap();
        assert_eq!(mixed.unwrap_err(), KmeId([3; 16]));
        assert_eq!(keys.kme_count(&store, "b", "a", 1_000).unwrap(), 2);
        let got = keys
            .kme_take(&store, "b", "a", &[KmeId([2; 16])], 1_000)
            .unwrap()
            .unwrap();
        assert_eq!(got[0].1.as_slice(), &[0x42; 32]);
        let again = keys
            .kme_take(&store, "b", "a", &[KmeId([2; 16])], 1_000)
            .unwrap();
        assert!(again.is_err(), "delivered once");
        // Past its time a key is gone, and its slot is free.
        let later = 1_000 + KME_KEY_TTL_MS + 1;
        let late = keys
            .kme_take(&store, "b", "a", &[KmeId([1; 16])], later)
            .unwrap();
        assert!(late.is_err());
        assert_eq!(keys.kme_count(&store, "b", "a", later).unwrap(), 0);
        let left = store
            .prefix(Column::Keys, &kme_prefix("b", "a"), 10)
            .unwrap();
        assert!(left.is_empty());
        assert_eq!(keys.kme_count(&store, "c", "a", 1_000).unwrap(), 1);
    }

    #[test]
    fn debug_never_shows_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::create(&dir.path().join("db")).unwrap();
        let ks = KeyStore::load(
            &store,
            RotationPolicy::default(),
            DataKey::random(&mut rand::rng()),
        )
        .unwrap();
        let key = HybridKey::from_secret(KeyId([1; 16]), [0xab; 32]);
        let (mut r, _) = record(1, AccountId([1; 32]), 1);
        r.key_id = key.id();
        ks.install(&store, r, key).unwrap();
        let shown = format!("{ks:?} {:?}", ks.records());
        assert!(shown.contains("0101"), "the key id is shown: {shown}");
        for secret in ["abababab", "ABABABAB", "171, 171"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
