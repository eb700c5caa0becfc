//! The key store's pure half: key records, the rotation policy, and the
//! in-memory [`KeyRing`] that hands out keys and erases retired ones. The
//! node persists records and secrets through the `Store` trait
//! (`Column::Keys`) with the encoders here.
//!
//! Rotation (DESIGN section 3.10): a key seals at most `max_uses` envelopes and
//! lives at most `max_age_ms`; after that the ring refuses to seal with it and
//! the node runs a new QKD session. When the new key is installed the old one
//! becomes the *previous* key (it may still open envelopes sealed just before
//! the switch, never seal new ones); the key before that is zeroized.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec::{self, CodecError};
use crate::hybrid::{HybridKey, KeyId};
use crate::identity::AccountId;

/// The largest encoded record or secret accepted from the store.
pub const MAX_KEY_RECORD_BYTES: usize = 512;

/// Key store failures.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyStoreError {
    #[error("no key agreed with {peer}: run a key agreement session first")]
    NoKey { peer: AccountId },
    #[error("key {key_id} with {peer} must be rotated ({reason}): run a new key agreement session")]
    RotationRequired {
        peer: AccountId,
        key_id: KeyId,
        reason: RotationReason,
    },
    #[error("no key {key_id} for {peer} (never agreed, or already rotated out and erased)")]
    UnknownKey { peer: AccountId, key_id: KeyId },
    #[error("record names key {record} but the secret is key {secret}")]
    IdMismatch { record: KeyId, secret: KeyId },
    #[error("key {key_id} is already in the ring")]
    DuplicateKey { key_id: KeyId },
    #[error("QBER {qber} is not a fraction between 0 and 1")]
    InvalidQber { qber: f64 },
    #[error("malformed key store entry: {0}")]
    Malformed(#[from] CodecError),
}

/// What a key is for. Keys are used for one purpose only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyPurpose {
    /// Sealing and opening record envelopes (`/qward/msg/1`).
    Messaging,
}

/// What the node knows about one agreed key. Holds no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub peer: AccountId,
    pub created_at_ms: u64,
    /// The estimated quantum bit error rate of the session (0.0 to 1.0).
    pub qber: f64,
    /// Length of the QKD key that went into the derivation.
    pub key_bits: u32,
    /// Envelopes sealed with this key so far.
    pub uses: u64,
    pub purpose: KeyPurpose,
}

impl KeyRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyStoreError> {
        let record: KeyRecord = codec::decode(bytes, MAX_KEY_RECORD_BYTES)?;
        record.check()?;
        Ok(record)
    }

    fn check(&self) -> Result<(), KeyStoreError> {
        if !(0.0..=1.0).contains(&self.qber) {
            return Err(KeyStoreError::InvalidQber { qber: self.qber });
        }
        Ok(())
    }
}

/// The secret half of a stored key, as written to the store.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct StoredSecret {
    key_id: [u8; 16],
    bytes: [u8; 32],
}

/// Encodes a key's secret for the store (zeroized when dropped).
pub fn encode_secret(key: &HybridKey) -> Zeroizing<Vec<u8>> {
    let stored = StoredSecret {
        key_id: key.id().0,
        bytes: *key.secret_bytes(),
    };
    Zeroizing::new(codec::encode_infallible(&stored))
}

/// Decodes a key's secret written by [`encode_secret`].
pub fn decode_secret(bytes: &[u8]) -> Result<HybridKey, KeyStoreError> {
    let stored: StoredSecret = codec::decode(bytes, MAX_KEY_RECORD_BYTES)?;
    Ok(HybridKey::from_secret(KeyId(stored.key_id), stored.bytes))
}

/// Why a key must be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationReason {
    UsesExhausted { uses: u64, max_uses: u64 },
    Expired { age_ms: u64, max_age_ms: u64 },
}

impl fmt::Display for RotationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RotationReason::UsesExhausted { uses, max_uses } => {
                write!(f, "used {uses} times, the limit is {max_uses}")
            }
            RotationReason::Expired { age_ms, max_age_ms } => {
                write!(f, "{age_ms} ms old, the limit is {max_age_ms} ms")
            }
        }
    }
}

/// When a key must be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// Envelopes a key may seal (default 1000).
    pub max_uses: u64,
    /// How long a key may seal, from its creation (default 1 hour).
    pub max_age_ms: u64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            max_uses: 1000,
            max_age_ms: 60 * 60 * 1000,
        }
    }
}

impl RotationPolicy {
    /// Why `record` may no longer seal at `now_ms`, if it may not.
    pub fn rotation_reason(&self, record: &KeyRecord, now_ms: u64) -> Option<RotationReason> {
        if record.uses >= self.max_uses {
            return Some(RotationReason::UsesExhausted {
                uses: record.uses,
                max_uses: self.max_uses,
            });
        }
        let age_ms = now_ms.saturating_sub(record.created_at_ms);
        if age_ms >= self.max_age_ms {
            return Some(RotationReason::Expired {
                age_ms,
                max_age_ms: self.max_age_ms,
            });
        }
        None
    }

    pub fn needs_rotation(&self, record: &KeyRecord, now_ms: u64) -> bool {
        self.rotation_reason(record, now_ms).is_some()
    }

    pub fn is_fresh(&self, record: &KeyRecord, now_ms: u64) -> bool {
        !self.needs_rotation(record, now_ms)
    }
}

/// A key and its record, as the ring holds them.
struct Slot {
    record: KeyRecord,
    key: HybridKey,
}

impl Slot {
    /// Erases the secret; returns the record for the audit trail.
    fn retire(mut self) -> KeyRecord {
        self.key.zeroize();
        self.record
    }
}

#[derive(Default)]
struct PeerKeys {
    current: Option<Slot>,
    previous: Option<Slot>,
}

/// A key handed out for sealing: the key and its record with the use counted
/// (persist the record before sending).
#[derive(Debug)]
pub struct SealingKey<'a> {
    pub key: &'a HybridKey,
    pub record: KeyRecord,
}

/// The keys agreed with each peer: a current one (seals and opens) and a
/// previous one (opens only). Everything else has been zeroized.
pub struct KeyRing {
    policy: RotationPolicy,
    peers: BTreeMap<AccountId, PeerKeys>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("policy", &self.policy)
            .field("records", &self.records().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    pub fn new(policy: RotationPolicy) -> Self {
        KeyRing {
            policy,
            peers: BTreeMap::new(),
        }
    }

    /// Rebuilds a ring from stored keys (installed oldest first).
    pub fn restore(
        policy: RotationPolicy,
        mut keys: Vec<(KeyRecord, HybridKey)>,
    ) -> Result<(Self, Vec<KeyRecord>), KeyStoreError> {
        keys.sort_by_key(|(r, _)| r.created_at_ms);
        let mut ring = KeyRing::new(policy);
        let mut retired = Vec::new();
        for (record, key) in keys {
            retired.extend(ring.install(record, key)?);
        }
        Ok((ring, retired))
    }

    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    /// Makes `key` the current key for `record.peer`. The old current key
    /// becomes the previous one; the old previous key is zeroized and its
    /// record returned (delete it from the store).
    pub fn install(
        &mut self,
        record: KeyRecord,
        key: HybridKey,
    ) -> Result<Option<KeyRecord>, KeyStoreError> {
        record.check()?;
        if record.key_id != key.id() {
            return Err(KeyStoreError::IdMismatch {
                record: record.key_id,
                secret: key.id(),
            });
        }
        if self.records().any(|r| r.key_id == record.key_id) {
            return Err(KeyStoreError::DuplicateKey {
                key_id: record.key_id,
            });
        }
        let peer = self.peers.entry(record.peer).or_default();
        let demoted = peer.current.replace(Slot { record, key });
        let erased = std::mem::replace(&mut peer.previous, demoted);
        Ok(erased.map(Slot::retire))
    }

    /// The current key for `peer`, if it is fresh at `now_ms`; counts the use.
    pub fn key_for_sealing(
        &mut self,
        peer: &AccountId,
        now_ms: u64,
    ) -> Result<SealingKey<'_>, KeyStoreError> {
        let policy = self.policy;
        let slot = self
            .peers
            .get_mut(peer)
            .and_then(|p| p.current.as_mut())
            .ok_or(KeyStoreError::NoKey { peer: *peer })?;
        if let Some(reason) = policy.rotation_reason(&slot.record, now_ms) {
            return Err(KeyStoreError::RotationRequired {
                peer: *peer,
                key_id: slot.record.key_id,
                reason,
            });
        }
        slot.record.uses += 1;
        Ok(SealingKey {
            key: &slot.key,
            record: slot.record.clone(),
        })
    }

    /// The key with `key_id` agreed with `peer` (current or previous), to
    /// open an envelope.
    pub fn key_for_opening(
        &self,
        peer: &AccountId,
        key_id: &KeyId,
    ) -> Result<&HybridKey, KeyStoreError> {
        self.peers
            .get(peer)
            .into_iter()
            .flat_map(|p| [p.current.as_ref(), p.previous.as_ref()])
            .flatten()
            .find(|s| s.record.key_id == *key_id)
            .map(|s| &s.key)
            .ok_or(KeyStoreError::UnknownKey {
                peer: *peer,
                key_id: *key_id,
            })
    }

    /// Whether `peer`'s current key can seal at `now_ms` (false if none).
    pub fn has_fresh_key(&self, peer: &AccountId, now_ms: u64) -> bool {
        self.peers
            .get(peer)
            .and_then(|p| p.current.as_ref())
            .is_some_and(|s| self.policy.is_fresh(&s.record, now_ms))
    }

    /// Zeroizes every key of `peer` (membership revoked, or crypto-shredding);
    /// returns their records.
    pub fn erase_peer(&mut self, peer: &AccountId) -> Vec<KeyRecord> {
        let Some(keys) = self.peers.remove(peer) else {
            return Vec::new();
        };
        [keys.current, keys.previous]
            .into_iter()
            .flatten()
            .map(Slot::retire)
            .collect()
    }

    /// Zeroizes previous keys whose sealing life ended more than one
    /// `max_age_ms` ago: envelopes sealed under them are outside any grace.
    pub fn expire(&mut self, now_ms: u64) -> Vec<KeyRecord> {
        let limit = self.policy.max_age_ms.saturating_mul(2);
        let mut erased = Vec::new();
        for keys in self.peers.values_mut() {
            let stale = keys
                .previous
                .as_ref()
                .is_some_and(|s| now_ms.saturating_sub(s.record.created_at_ms) >= limit);
            if stale {
                erased.extend(keys.previous.take().map(Slot::retire));
            }
        }
        erased
    }

    /// Every record still holding a secret (current and previous keys).
    pub fn records(&self) -> impl Iterator<Item = &KeyRecord> {
        self.peers
            .values()
            .flat_map(|p| [p.current.as_ref(), p.previous.as_ref()])
            .flatten()
            .map(|s| &s.record)
    }
}

#[cfg(test)]
mod tests;
