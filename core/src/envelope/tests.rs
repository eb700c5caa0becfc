//! Tests of envelopes: round trips, tamper detection, receipts, replay rules.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;
use crate::hybrid::HybridKey;
use crate::identity::Identity;

struct Fixture {
    alice: Identity,
    bob: Identity,
    key: HybridKey,
    rng: ChaCha20Rng,
}

fn fixture(seed: u64) -> Fixture {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let key = HybridKey::from_secret(KeyId([7; 16]), [42; 32]);
    Fixture {
        alice,
        bob,
        key,
        rng,
    }
}

fn header(f: &Fixture, kind: RecordKind) -> EnvelopeHeader {
    EnvelopeHeader {
        kind,
        record_id: RecordId([0x11; 16]),
        created_at_ms: 1_700_000_000_000,
        sender: f.alice.account(),
        recipient: f.bob.account(),
        patient: f.alice.account(),
    }
}

fn sealed(f: &mut Fixture, plaintext: &[u8]) -> Envelope {
    let h = header(f, RecordKind::Phr);
    seal(&f.key, h, plaintext, &mut f.rng).unwrap()
}

#[test]
fn round_trip_small_and_8_mib() {
    let mut f = fixture(1);
    let env = sealed(&mut f, b"{\"resourceType\":\"Bundle\"}");
    assert_eq!(env.ciphertext.len(), 25 + TAG_BYTES);
    let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
    assert_eq!(back, env);
    let pt = open(&f.key, &back, &f.bob.account()).unwrap();
    assert_eq!(pt.as_slice(), b"{\"resourceType\":\"Bundle\"}");

    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let env = sealed(&mut f, &big);
    let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
    assert_eq!(
        open(&f.key, &back, &f.bob.account()).unwrap().as_slice(),
        &big[..]
    );
}

#[test]
fn the_largest_payload_fits_one_msg_request() {
    let mut f = fixture(3);
    let largest = vec![b' '; MAX_PAYLOAD_BYTES];
    let env = sealed(&mut f, &largest);
    let request = wire::MsgRequest::Deliver { envelope: env }.encode();
    assert!(
        request.len() <= wire::MAX_REQUEST_BYTES,
        "{} > {}",
        request.len(),
        wire::MAX_REQUEST_BYTES
    );
    assert!(wire::MsgRequest::decode(&request).is_ok());
}

#[test]
fn nonces_are_fresh_per_seal() {
    let mut f = fixture(2);
    let a = sealed(&mut f, b"same");
    let b = sealed(&mut f, b"same");
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
}

#[test]
fn oversized_payload_is_refused() {
    let mut f = fixture(3);
    let h = header(&f, RecordKind::Report);
    let big = vec![0u8; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        seal(&f.key, h, &big, &mut f.rng).unwrap_err(),
        EnvelopeError::TooLarge {
            len: MAX_PAYLOAD_BYTES + 1,
            limit: MAX_PAYLOAD_BYTES
        }
    );
}

#[test]
fn every_authenticated_field_is_covered() {
    let mut f = fixture(4);
    let env = sealed(&mut f, b"payload");
    let bob = f.bob.account();
    type Mutation = Box<dyn Fn(&mut Envelope)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("ciphertext", Box::new(|e| e.ciphertext[0] ^= 1)),
        ("tag", Box::new(|e| *e.ciphertext.last_mut().unwrap() ^= 1)),
        ("nonce", Box::new(|e| e.nonce[23] ^= 1)),
        ("kind", Box::new(|e| e.header.kind = RecordKind::Report)),
        ("record id", Box::new(|e| e.header.record_id.0[0] ^= 1)),
        ("created at", Box::new(|e| e.header.created_at_ms += 1)),
        ("header sender", Box::new(|e| e.header.sender.0[0] ^= 1)),
        (
            "header recipient",
            Box::new(|e| e.header.recipient.0[0] ^= 1),
        ),
        (
            "both senders",
            Box::new(|e| {
                e.sender.0[0] ^= 1;
                e.header.sender.0[0] ^= 1;
            }),
        ),
        (
            "truncated",
            Box::new(|e| {
                e.ciphertext.pop();
            }),
        ),
    ];
    for (what, mutate) in mutations {
        let mut bad = env.clone();
        mutate(&mut bad);
        assert_eq!(
            open(&f.key, &bad, &bob).unwrap_err(),
            EnvelopeError::Tampered,
            "changing the {what} must fail authentication"
        );
    }
}

#[test]
fn key_id_is_checked_and_authenticated() {
    let mut f = fixture(5);
    let env = sealed(&mut f, b"payload");
    let bob = f.bob.account();
    let mut bad = env.clone();
    bad.key_id.0[0] ^= 1;
    assert!(matches!(
        open(&f.key, &bad, &bob),
        Err(EnvelopeError::KeyMismatch { .. })
    ));
    // Same key bytes under the changed id: only the AAD can catch it.
    let relabelled = HybridKey::from_secret(bad.key_id, *f.key.secret_bytes());
    assert_eq!(
        open(&relabelled, &bad, &bob).unwrap_err(),
        EnvelopeError::Tampered
    );
}

#[test]
fn wrong_recipient_wrong_key_and_version_are_refused() {
    let mut f = fixture(6);
    let env = sealed(&mut f, b"payload");
    let alice = f.alice.account();
    let bob = f.bob.account();
    assert_eq!(
        open(&f.key, &env, &alice).unwrap_err(),
        EnvelopeError::WrongRecipient {
            addressed_to: bob,
            expected: alice
        }
    );
    let other_key = HybridKey::from_secret(f.key.id(), [43; 32]);
    assert_eq!(
        open(&other_key, &env, &bob).unwrap_err(),
        EnvelopeError::Tampered
    );
    let mut v2 = env.clone();
    v2.version = 2;
    assert_eq!(
        open(&f.key, &v2, &bob).unwrap_err(),
        EnvelopeError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
}

#[test]
fn debug_does_not_dump_ciphertext() {
    let mut f = fixture(7);
    let env = sealed(&mut f, &[0x5a; 64]);
    let dbg = format!("{env:?}");
    assert!(dbg.contains("ciphertext_len: 80"));
    assert!(!dbg.contains(&hex::encode(&env.ciphertext[..8])));
}

#[test]
fn anchor_hash_is_blake3_of_ciphertext() {
    let mut f = fixture(8);
    let mut env = sealed(&mut f, b"payload");
    assert_eq!(anchor_hash(&env), *blake3::hash(&env.ciphertext).as_bytes());
    let before = anchor_hash(&env);
    env.ciphertext[0] ^= 1;
    assert_ne!(anchor_hash(&env), before);
}

#[test]
fn receipts_verify_and_forgeries_fail() {
    let mut f = fixture(9);
    let env = sealed(&mut f, b"payload");
    let receipt = Receipt::issue(&f.bob, &env, 1_700_000_001_000).unwrap();
    receipt.verify(&env).unwrap();
    assert_eq!(receipt.envelope_hash, anchor_hash(&env));
    let back = Receipt::from_bytes(&receipt.to_bytes()).unwrap();
    assert_eq!(back, receipt);

    // Only the recipient can acknowledge.
    assert_eq!(
        Receipt::issue(&f.alice, &env, 0).unwrap_err(),
        EnvelopeError::NotTheRecipient {
            recipient: f.bob.account()
        }
    );

    // Mallory signs a receipt in Bob's name.
    let mallory = Identity::generate(&mut f.rng);
    let mut forged = receipt.clone();
    forged.signature = mallory.sign(RECEIPT_DOMAIN, b"anything");
    assert_eq!(
        forged.verify(&env).unwrap_err(),
        EnvelopeError::BadReceiptSignature {
            recipient: f.bob.account()
        }
    );

    // A changed delivery time breaks the signature.
    let mut later = receipt.clone();
    later.received_at_ms += 1;
    assert!(matches!(
        later.verify(&env),
        Err(EnvelopeError::BadReceiptSignature { .. })
    ));

    // A valid receipt for another envelope does not acknowledge this one.
    let other = sealed(&mut f, b"payload");
    assert!(matches!(
        receipt.verify(&other),
        Err(EnvelopeError::ReceiptMismatch(_))
    ));
    let mut other_record = env.clone();
    other_record.header.record_id.0[0] ^= 1;
    assert!(matches!(
        receipt.verify(&other_record),
        Err(EnvelopeError::ReceiptMismatch(_))
    ));
}

#[test]
fn replay_rules() {
    let mut f = fixture(10);
    let env = sealed(&mut f, b"payload");
    let policy = ReplayPolicy::default();
    let created = env.header.created_at_ms;

    let ReplayCheck::Fresh {
        key,
        forget_after_ms,
    } = policy.check(&env, created + 10, |_| false)
    else {
        panic!("a new envelope is fresh");
    };
    assert_eq!(key, ReplayKey::of(&env));
    assert!(forget_after_ms > created + policy.max_age_ms);
    assert_eq!(
        policy.check(&env, created + 10, |k| *k == key),
        ReplayCheck::Duplicate { key }
    );
    assert!(matches!(
        policy.check(&env, created + policy.max_age_ms + 1, |_| false),
        ReplayCheck::TooOld { .. }
    ));
    assert!(matches!(
        policy.check(&env, created - policy.max_future_skew_ms - 1, |_| false),
        ReplayCheck::FromTheFuture { .. }
    ));
    assert!(matches!(
        policy.check(&env, created - policy.max_future_skew_ms, |_| false),
        ReplayCheck::Fresh { .. }
    ));

    // The same record re-sealed (new nonce) is another delivery.
    let again = sealed(&mut f, b"payload");
    assert_ne!(ReplayKey::of(&again), key);
    let mut other_sender = env.clone();
    other_sender.sender.0[0] ^= 1;
    assert_ne!(ReplayKey::of(&other_sender), key);
}

#[test]
fn record_id_hex_round_trip() {
    let id = RecordId([0xab; 16]);
    assert_eq!(RecordId::from_hex(&id.to_hex()), Some(id));
    assert_eq!(RecordId::from_hex("abcd"), None);
    assert_eq!(RecordId::from_hex("zz"), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_flipped_byte_of_the_encoding_is_refused(pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut f = fixture(11);
        let env = sealed(&mut f, &[0x33; 48]);
        let mut bytes = env.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        if let Ok(decoded) = Envelope::from_bytes(&bytes) {
            prop_assert!(open(&f.key, &decoded, &f.bob.account()).is_err(), "flip at byte {} accepted", i);
        }
    }

    #[test]
    fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Envelope::from_bytes(&bytes);
        let _ = Receipt::from_bytes(&bytes);
    }

    #[test]
    fn round_trip_any_payload(payload in proptest::collection::vec(any::<u8>(), 0..2048), created in any::<u64>()) {
        let mut f = fixture(12);
        let mut h = header(&f, RecordKind::Report);
        h.created_at_ms = created;
        let env = seal(&f.key, h, &payload, &mut f.rng).unwrap();
        let back = Envelope::from_bytes(&env.to_bytes()).unwrap();
        let opened = open(&f.key, &back, &f.bob.account()).unwrap();
        prop_assert_eq!(opened.as_slice(), &payload[..]);
    }
}
