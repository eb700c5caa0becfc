//! Tests of key records, rotation by count and by age, and erasure on retire.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use proptest::prelude::*;

use super::*;

const T0: u64 = 1_700_000_000_000;

fn peer(n: u8) -> AccountId {
    AccountId([n; 32])
}

fn key(n: u8) -> (KeyRecord, HybridKey) {
    key_for(peer(1), n, T0 + u64::from(n))
}

fn key_for(peer: AccountId, n: u8, created_at_ms: u64) -> (KeyRecord, HybridKey) {
    let id = KeyId([n; 16]);
    (
        KeyRecord {
            key_id: id,
            peer,
            created_at_ms,
            qber: 0.021,
            key_bits: 4096,
            uses: 0,
            purpose: KeyPurpose::Messaging,
        },
        HybridKey::from_secret(id, [0xa0 | (n & 0x0f); 32]),
    )
}

fn ring(max_uses: u64, max_age_ms: u64) -> KeyRing {
    KeyRing::new(RotationPolicy {
        max_uses,
        max_age_ms,
    })
}

#[test]
fn default_policy_is_1000_uses_or_one_hour() {
    let p = RotationPolicy::default();
    let (mut r, _) = key(1);
    r.created_at_ms = T0;
    assert!(p.is_fresh(&r, T0 + 3_599_999));
    assert!(p.needs_rotation(&r, T0 + 3_600_000));
    r.uses = 999;
    assert!(p.is_fresh(&r, T0));
    r.uses = 1000;
    assert_eq!(
        p.rotation_reason(&r, T0),
        Some(RotationReason::UsesExhausted {
            uses: 1000,
            max_uses: 1000
        })
    );
}

#[test]
fn rotation_by_count() {
    let mut ring = ring(3, u64::MAX);
    let (r, k) = key(1);
    ring.install(r, k).unwrap();
    for n in 1..=3 {
        let sealing = ring.key_for_sealing(&peer(1), T0).unwrap();
        assert_eq!(sealing.record.uses, n);
        assert_eq!(sealing.key.id(), KeyId([1; 16]));
    }
    assert!(!ring.has_fresh_key(&peer(1), T0));
    assert!(matches!(
        ring.key_for_sealing(&peer(1), T0),
        Err(KeyStoreError::RotationRequired {
            reason: RotationReason::UsesExhausted { uses: 3, .. },
            ..
        })
    ));
    // A stale key still opens until a new one replaces it.
    assert!(ring.key_for_opening(&peer(1), &KeyId([1; 16])).is_ok());
    let (r2, k2) = key(2);
    assert_eq!(ring.install(r2, k2).unwrap(), None);
    assert_eq!(
        ring.key_for_sealing(&peer(1), T0).unwrap().key.id(),
        KeyId([2; 16])
    );
}

#[test]
fn rotation_by_age() {
    let mut ring = ring(u64::MAX, 1000);
    let (r, k) = key_for(peer(1), 1, T0);
    ring.install(r, k).unwrap();
    assert!(ring.key_for_sealing(&peer(1), T0 + 999).is_ok());
    assert!(matches!(
        ring.key_for_sealing(&peer(1), T0 + 1000),
        Err(KeyStoreError::RotationRequired {
            reason: RotationReason::Expired {
                age_ms: 1000,
                max_age_ms: 1000
            },
            ..
        })
    ));
}

#[test]
fn retired_keys_are_gone_from_the_ring() {
    let mut ring = ring(10, u64::MAX);
    let (r1, k1) = key(1);
    let (r2, k2) = key(2);
    let (r3, k3) = key(3);
    ring.install(r1.clone(), k1).unwrap();
    assert_eq!(ring.install(r2, k2).unwrap(), None);
    // Key 1 is previous now: opens, never seals.
    assert!(ring.key_for_opening(&peer(1), &KeyId([1; 16])).is_ok());
    assert_eq!(
        ring.key_for_sealing(&peer(1), T0).unwrap().key.id(),
        KeyId([2; 16])
    );
    // Installing key 3 erases key 1.
    let erased = ring.install(r3, k3).unwrap();
    assert_eq!(erased, Some(r1));
    assert_eq!(
        ring.key_for_opening(&peer(1), &KeyId([1; 16])).unwrap_err(),
        KeyStoreError::UnknownKey {
            peer: peer(1),
            key_id: KeyId([1; 16])
        }
    );
    let ids: Vec<KeyId> = ring.records().map(|r| r.key_id).collect();
    assert_eq!(ids, vec![KeyId([3; 16]), KeyId([2; 16])]);
}

#[test]
fn retire_zeroizes_the_secret() {
    let (r, k) = key(5);
    let slot = Slot { record: r, key: k };
    let mut slot = slot;
    slot.key.zeroize();
    assert_eq!(slot.key.secret_bytes(), &[0; 32]);
    assert_eq!(slot.retire().key_id, KeyId([5; 16]));
}

#[test]
fn erase_peer_and_expire() {
    let mut ring = ring(10, 1000);
    let (r1, k1) = key_for(peer(1), 1, T0);
    let (r2, k2) = key_for(peer(1), 2, T0 + 500);
    let (r3, k3) = key_for(peer(2), 3, T0);
    ring.install(r1, k1).unwrap();
    ring.install(r2, k2).unwrap();
    ring.install(r3, k3).unwrap();
    assert!(ring.expire(T0 + 1999).is_empty());
    let expired = ring.expire(T0 + 2000);
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].key_id, KeyId([1; 16]));
    let erased = ring.erase_peer(&peer(2));
    assert_eq!(erased.len(), 1);
    assert!(matches!(
        ring.key_for_sealing(&peer(2), T0),
        Err(KeyStoreError::NoKey { .. })
    ));
    assert!(ring.erase_peer(&peer(9)).is_empty());
}

#[test]
fn install_checks_id_duplicates_and_qber() {
    let mut ring = ring(10, 1000);
    let (r1, _) = key(1);
    let (_, k2) = key(2);
    assert!(matches!(
        ring.install(r1, k2),
        Err(KeyStoreError::IdMismatch { .. })
    ));
    let (r1, k1) = key(1);
    ring.install(r1, k1).unwrap();
    let (r1, k1) = key(1);
    assert!(matches!(
        ring.install(r1, k1),
        Err(KeyStoreError::DuplicateKey { .. })
    ));
    let (mut bad, k) = key(4);
    bad.qber = f64::NAN;
    assert!(matches!(
        ring.install(bad, k),
        Err(KeyStoreError::InvalidQber { .. })
    ));
}

#[test]
fn debug_never_shows_secrets() {
    let mut ring = ring(10, 1000);
    let (r, k) = key(1);
    let secret_hex = hex::encode(k.secret_bytes());
    ring.install(r, k).unwrap();
    let dbg = format!("{ring:?}");
    assert!(dbg.contains(&KeyId([1; 16]).to_hex()));
    assert!(!dbg.contains(&secret_hex));
    assert!(!dbg.contains("161, 161"), "no raw byte arrays: {dbg}");
    let sealing = ring.key_for_sealing(&peer(1), T0).unwrap();
    assert!(!format!("{sealing:?}").contains(&secret_hex));
}

#[test]
fn persistence_round_trip_and_restore() {
    let (r1, k1) = key(1);
    let (r2, k2) = key(2);
    let rec = KeyRecord::from_bytes(&r1.to_bytes()).unwrap();
    assert_eq!(rec, r1);
    let back = decode_secret(&encode_secret(&k1)).unwrap();
    assert_eq!(back.id(), k1.id());
    assert_eq!(back.secret_bytes(), k1.secret_bytes());
    let (mut ring, erased) =
        KeyRing::restore(RotationPolicy::default(), vec![(r2, k2), (r1, k1)]).unwrap();
    assert!(erased.is_empty());
    // The newer key (created later) is current.
    assert_eq!(
        ring.key_for_sealing(&peer(1), T0).unwrap().key.id(),
        KeyId([2; 16])
    );
    let mut bad = rec.clone();
    bad.qber = 2.0;
    assert!(matches!(
        KeyRecord::from_bytes(&bad.to_bytes()),
        Err(KeyStoreError::InvalidQber { .. })
    ));
}

proptest! {
    #[test]
    fn decoding_store_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = KeyRecord::from_bytes(&bytes);
        let _ = decode_secret(&bytes);
    }

    #[test]
    fn record_round_trip(uses: u64, created: u64, qber in 0.0f64..=1.0, bits: u32) {
        let (mut r, _) = key(1);
        r.uses = uses;
        r.created_at_ms = created;
        r.qber = qber;
        r.key_bits = bits;
        prop_assert_eq!(KeyRecord::from_bytes(&r.to_bytes()).unwrap(), r);
    }
}
