//! Tests of the hybrid key agreement: agreement, input sensitivity, forged offers.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

struct Session {
    alice: Identity,
    bob: Identity,
    session: SessionId,
}

fn session(seed: u64) -> (Session, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let alice = Identity::generate(&mut rng);
    let bob = Identity::generate(&mut rng);
    let session = SessionId::random(&mut rng);
    (
        Session {
            alice,
            bob,
            session,
        },
        rng,
    )
}

/// Runs a full exchange; returns (alice's key, bob's key).
fn run(
    s: &Session,
    rng: &mut ChaCha20Rng,
    qkd_alice: &[u8],
    qkd_bob: &[u8],
) -> (HybridKey, HybridKey) {
    let (a, b) = (s.alice.account(), s.bob.account());
    let mut ta = Transcript::new(s.session, a, b);
    let mut tb = Transcript::new(s.session, a, b);
    for msg in [&b"bases"[..], b"sift", b"sample", b"parities"] {
        ta.absorb("qkd", msg);
        tb.absorb("qkd", msg);
    }
    let ha = Handshake::new(&s.alice, s.session, b, rng);
    let hb = Handshake::new(&s.bob, s.session, a, rng);
    let (oa, ob) = (ha.offer().clone(), hb.offer().clone());
    let xa = ha.finish(&ob).unwrap();
    let xb = hb.finish(&oa).unwrap();
    ta.absorb_offers(&oa, &ob);
    tb.absorb_offers(&oa, &ob);
    (
        derive_hybrid_key(qkd_alice, &xa, &ta.hash()).unwrap(),
        derive_hybrid_key(qkd_bob, &xb, &tb.hash()).unwrap(),
    )
}

#[test]
fn both_sides_derive_the_same_key_and_id() {
    let (s, mut rng) = session(1);
    let (ka, kb) = run(&s, &mut rng, &[7; 32], &[7; 32]);
    assert_eq!(ka.secret_bytes(), kb.secret_bytes());
    assert_eq!(ka.id(), kb.id());
    assert_eq!(ka.id().to_hex().len(), 32);
}

#[test]
fn each_input_alone_changes_the_key() {
    let (_, mut rng) = session(2);
    let x1 = X25519Shared(Zeroizing::new([1; 32]));
    let x2 = X25519Shared(Zeroizing::new([2; 32]));
    let t1 = TranscriptHash([3; 32]);
    let t2 = TranscriptHash([4; 32]);
    let q1 = [5u8; 32];
    let mut q2 = q1;
    q2[31] ^= 1;
    let base = derive_hybrid_key(&q1, &x1, &t1).unwrap();
    // An attacker who knows the QKD key still faces the X25519 secret.
    let other_x = derive_hybrid_key(&q1, &x2, &t1).unwrap();
    assert_ne!(base.secret_bytes(), other_x.secret_bytes());
    // An attacker who breaks X25519 still faces the QKD key.
    let other_q = derive_hybrid_key(&q2, &x1, &t1).unwrap();
    assert_ne!(base.secret_bytes(), other_q.secret_bytes());
    let other_t = derive_hybrid_key(&q1, &x1, &t2).unwrap();
    assert_ne!(base.secret_bytes(), other_t.secret_bytes());
    assert_ne!(base.id(), other_t.id());
    // The derivation is the documented one.
    let mut material = q1.to_vec();
    material.extend_from_slice(&[1; 32]);
    material.extend_from_slice(&[3; 32]);
    assert_eq!(
        base.secret_bytes(),
        &blake3::derive_key(HYBRID_CONTEXT, &material)
    );
    // Fresh ephemeral keys give a different key even with equal QKD keys.
    let (s, _) = session(3);
    let (k1, _) = run(&s, &mut rng, &[9; 32], &[9; 32]);
    let (k2, _) = run(&s, &mut rng, &[9; 32], &[9; 32]);
    assert_ne!(k1.secret_bytes(), k2.secret_bytes());
}

#[test]
fn mismatched_qkd_keys_give_different_keys() {
    let (s, mut rng) = session(4);
    let (ka, kb) = run(&s, &mut rng, &[1; 32], &[2; 32]);
    assert_ne!(ka.secret_bytes(), kb.secret_bytes());
}

#[test]
fn transcript_order_and_framing_matter() {
    let (s, _) = session(5);
    let (a, b) = (s.alice.account(), s.bob.account());
    let hash_of = |entries: &[(&str, &[u8])]| {
        let mut t = Transcript::new(s.session, a, b);
        for (label, bytes) in entries {
            t.absorb(label, bytes);
        }
        t.hash()
    };
    let base = hash_of(&[("x", b"ab"), ("y", b"c")]);
    assert_ne!(base, hash_of(&[("y", b"c"), ("x", b"ab")]));
    assert_ne!(base, hash_of(&[("x", b"a"), ("y", b"bc")]));
    assert_ne!(base, hash_of(&[("x", b"ab"), ("z", b"c")]));
    // Swapping the roles is another session.
    let swapped = Transcript::new(s.session, b, a).hash();
    assert_ne!(Transcript::new(s.session, a, b).hash(), swapped);
}

#[test]
fn forged_or_misdirected_offers_are_rejected() {
    let (s, mut rng) = session(6);
    let (a, b) = (s.alice.account(), s.bob.account());
    let mallory = Identity::generate(&mut rng);

    // Mallory signs her own offer but claims to be Bob.
    let forged = Handshake::new(&mallory, s.session, a, &mut rng)
        .offer()
        .clone();
    let ha = Handshake::new(&s.alice, s.session, b, &mut rng);
    assert_eq!(
        ha.finish(&forged).unwrap_err(),
        HybridError::BadOfferSignature { peer: b }
    );

    // Bob's real offer with Mallory's ephemeral key swapped in.
    let mut tampered = Handshake::new(&s.bob, s.session, a, &mut rng)
        .offer()
        .clone();
    tampered.ephemeral_public = forged.ephemeral_public;
    let ha = Handshake::new(&s.alice, s.session, b, &mut rng);
    assert!(matches!(
        ha.finish(&tampered),
        Err(HybridError::BadOfferSignature { .. })
    ));

    // Bob's offer from another session is not accepted in this one.
    let other = SessionId::random(&mut rng);
    let stale = Handshake::new(&s.bob, other, a, &mut rng).offer().clone();
    let ha = Handshake::new(&s.alice, s.session, b, &mut rng);
    assert!(ha.finish(&stale).is_err());

    // Alice's own offer reflected back to her is not Bob's.
    let ha = Handshake::new(&s.alice, s.session, b, &mut rng);
    let reflected = ha.offer().clone();
    assert!(ha.finish(&reflected).is_err());
}

#[test]
fn low_order_peer_key_is_refused() {
    let (s, mut rng) = session(7);
    let (a, b) = (s.alice.account(), s.bob.account());
    // The identity point (all zeros) is low order; Bob signs it honestly,
    // but the exchange must still refuse it.
    let zero = [0u8; 32];
    let offer = HandshakeOffer {
        ephemeral_public: zero,
        signature: s
            .bob
            .sign(OFFER_DOMAIN, &offer_body(&s.session, &b, &a, &zero)),
    };
    let ha = Handshake::new(&s.alice, s.session, b, &mut rng);
    assert_eq!(
        ha.finish(&offer).unwrap_err(),
        HybridError::NonContributory { peer: b }
    );
}

#[test]
fn short_qkd_key_is_refused() {
    let x = X25519Shared(Zeroizing::new([1; 32]));
    let err = derive_hybrid_key(&[0; 15], &x, &TranscriptHash([0; 32])).unwrap_err();
    assert_eq!(err, HybridError::QkdKeyTooShort { len: 15, min: 16 });
}

#[test]
fn secrets_do_not_print() {
    let (s, mut rng) = session(8);
    let (ka, _) = run(&s, &mut rng, &[7; 32], &[7; 32]);
    let dbg = format!("{ka:?}");
    assert!(dbg.contains(&ka.id().to_hex()));
    assert!(!dbg.contains(&hex::encode(ka.secret_bytes())));
    let x = X25519Shared(Zeroizing::new([0xab; 32]));
    assert!(!format!("{x:?}").contains("abab"));
    let h = Handshake::new(&s.alice, s.session, s.bob.account(), &mut rng);
    assert!(!format!("{h:?}").contains("secret"));
}

#[test]
fn offer_bytes_round_trip_and_garbage_is_an_error() {
    let (s, mut rng) = session(9);
    let h = Handshake::new(&s.alice, s.session, s.bob.account(), &mut rng);
    let bytes = h.offer().to_bytes();
    assert_eq!(&HandshakeOffer::from_bytes(&bytes).unwrap(), h.offer());
    assert!(HandshakeOffer::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(HandshakeOffer::from_bytes(&[0; 300]).is_err());
}

#[test]
fn zeroize_clears_the_key() {
    let mut k = HybridKey::from_secret(KeyId([1; 16]), [0xcd; 32]);
    k.zeroize();
    assert_eq!(k.secret_bytes(), &[0; 32]);
}
