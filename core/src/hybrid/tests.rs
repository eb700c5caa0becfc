//! Tests of the hybrid key agreement: agreement, input sensitivity, forged
//! offers, the ML-KEM-768 part (a changed ciphertext or key is refused or
//! gives another key).

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
    let ha = Handshake::initiate(&s.alice, s.session, b, rng);
    let oa = ha.offer().clone();
    let (ob, xb) = Handshake::respond(&s.bob, s.session, a, &oa, rng).unwrap();
    let xa = ha.finish(&ob).unwrap();
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
    let shared = |x: u8, m: u8| HybridShared {
        x25519: Zeroizing::new([x; 32]),
        mlkem: Zeroizing::new([m; 32]),
    };
    let (x1, x2, m2) = (shared(1, 6), shared(2, 6), shared(1, 7));
    let t1 = TranscriptHash([3; 32]);
    let t2 = TranscriptHash([4; 32]);
    let q1 = [5u8; 32];
    let mut q2 = q1;
    q2[31] ^= 1;
    let base = derive_hybrid_key(&q1, &x1, &t1).unwrap();
    // An attacker who knows the QKD key still faces the X25519 secret.
    let other_x = derive_hybrid_key(&q1, &x2, &t1).unwrap();
    assert_ne!(base.secret_bytes(), other_x.secret_bytes());
    // An attacker who breaks X25519 (a quantum computer, later) still faces
    // ML-KEM-768 ...
    let other_m = derive_hybrid_key(&q1, &m2, &t1).unwrap();
    assert_ne!(base.secret_bytes(), other_m.secret_bytes());
    // ... and the QKD key.
    let other_q = derive_hybrid_key(&q2, &x1, &t1).unwrap();
    assert_ne!(base.secret_bytes(), other_q.secret_bytes());
    let other_t = derive_hybrid_key(&q1, &x1, &t2).unwrap();
    assert_ne!(base.secret_bytes(), other_t.secret_bytes());
    assert_ne!(base.id(), other_t.id());
    // The derivation is the documented one.
    let mut material = q1.to_vec();
    material.extend_from_slice(&[1; 32]);
    material.extend_from_slice(&[6; 32]);
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
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let open = alice.offer().clone();

    // Mallory cannot answer an offer Alice made to Bob ...
    assert_eq!(
        Handshake::respond(&mallory, s.session, a, &open, &mut rng).unwrap_err(),
        HybridError::BadOfferSignature { peer: a }
    );
    // ... and her answer to an offer Alice made to her is not Bob's.
    let to_mallory = Handshake::initiate(&s.alice, s.session, mallory.account(), &mut rng);
    let (forged, _) =
        Handshake::respond(&mallory, s.session, a, to_mallory.offer(), &mut rng).unwrap();
    assert_eq!(
        Handshake::initiate(&s.alice, s.session, b, &mut rng)
            .finish(&forged)
            .unwrap_err(),
        HybridError::BadOfferSignature { peer: b }
    );

    // Bob's real answer with Mallory's X25519 key, or her ML-KEM
    // ciphertext, swapped in: the signature no longer covers it.
    let (real, _) = Handshake::respond(&s.bob, s.session, a, &open, &mut rng).unwrap();
    let mut tampered = real.clone();
    tampered.ephemeral_public = forged.ephemeral_public;
    assert!(matches!(
        alice.finish(&tampered),
        Err(HybridError::BadOfferSignature { .. })
    ));
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let (real, _) = Handshake::respond(&s.bob, s.session, a, alice.offer(), &mut rng).unwrap();
    let mut tampered = real.clone();
    tampered.kem = forged.kem.clone();
    assert!(matches!(
        alice.finish(&tampered),
        Err(HybridError::BadOfferSignature { .. })
    ));

    // Alice's offer with another encapsulation key: Bob refuses it.
    let mut other_key = Handshake::initiate(&s.alice, s.session, b, &mut rng)
        .offer()
        .clone();
    other_key.kem = Handshake::initiate(&s.alice, s.session, b, &mut rng)
        .offer()
        .kem
        .clone();
    assert!(matches!(
        Handshake::respond(&s.bob, s.session, a, &other_key, &mut rng),
        Err(HybridError::BadOfferSignature { .. })
    ));

    // Bob's offer from another session is not accepted in this one.
    let other = SessionId::random(&mut rng);
    let elsewhere = Handshake::initiate(&s.alice, other, b, &mut rng);
    let (stale, _) = Handshake::respond(&s.bob, other, a, elsewhere.offer(), &mut rng).unwrap();
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    assert!(alice.finish(&stale).is_err());

    // Alice's own offer reflected back to her is not Bob's.
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let reflected = alice.offer().clone();
    assert!(alice.finish(&reflected).is_err());
}

/// Signs `kem` (and `x25519`) as `signer`'s offer to `to`, whatever it holds.
fn signed(
    signer: &Identity,
    to: &AccountId,
    session: &SessionId,
    x25519: [u8; 32],
    kem: Vec<u8>,
) -> HandshakeOffer {
    sign_offer(signer, session, to, x25519, kem)
}

#[test]
fn a_bad_ml_kem_part_is_refused_and_a_foreign_ciphertext_gives_another_key() {
    let (s, mut rng) = session(10);
    let (a, b) = (s.alice.account(), s.bob.account());
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let x = alice.offer().ephemeral_public;
    // Signed by Alice, but not a valid encapsulation key: too short, or
    // failing FIPS 203's modulus check (a coefficient of 4095 >= q).
    let short = signed(&s.alice, &b, &s.session, x, vec![0; 100]);
    let unreduced = signed(&s.alice, &b, &s.session, x, vec![0xff; MLKEM768_EK_BYTES]);
    for offer in [short, unreduced] {
        assert_eq!(
            Handshake::respond(&s.bob, s.session, a, &offer, &mut rng).unwrap_err(),
            HybridError::BadKem {
                peer: a,
                what: "encapsulation key"
            }
        );
    }
    // Signed by Bob, a ciphertext of the wrong length.
    let (bob_offer, _) = Handshake::respond(&s.bob, s.session, a, alice.offer(), &mut rng).unwrap();
    let wrong = signed(
        &s.bob,
        &a,
        &s.session,
        bob_offer.ephemeral_public,
        vec![1; 1000],
    );
    assert_eq!(
        Handshake::initiate(&s.alice, s.session, b, &mut rng)
            .finish(&wrong)
            .unwrap_err(),
        HybridError::BadKem {
            peer: b,
            what: "ciphertext"
        }
    );
    // Signed by Bob, a ciphertext encapsulated to another key: it
    // decapsulates (implicit rejection) to a secret unlike Bob's, so the
    // keys differ and key confirmation fails.
    let other = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let (for_other, bob_shared) =
        Handshake::respond(&s.bob, s.session, a, other.offer(), &mut rng).unwrap();
    let misdirected = signed(
        &s.bob,
        &a,
        &s.session,
        for_other.ephemeral_public,
        for_other.kem.clone(),
    );
    let alice_shared = alice.finish(&misdirected).unwrap();
    assert_ne!(alice_shared.mlkem(), bob_shared.mlkem());
}

#[test]
fn offers_carry_ml_kem_768_of_the_standard_sizes() {
    let (s, mut rng) = session(11);
    let (a, b) = (s.alice.account(), s.bob.account());
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    assert_eq!(alice.offer().kem.len(), MLKEM768_EK_BYTES);
    let (bob, shared) = Handshake::respond(&s.bob, s.session, a, alice.offer(), &mut rng).unwrap();
    assert_eq!(bob.kem.len(), MLKEM768_CT_BYTES);
    assert!(alice.offer().to_bytes().len() <= MAX_OFFER_BYTES);
    let mine = alice.finish(&bob).unwrap();
    assert_eq!(mine.mlkem(), shared.mlkem());
    assert_eq!(mine.x25519(), shared.x25519());
    assert_ne!(mine.mlkem(), mine.x25519());
}

#[test]
fn low_order_peer_key_is_refused() {
    let (s, mut rng) = session(7);
    let (a, b) = (s.alice.account(), s.bob.account());
    // The identity point (all zeros) is low order; Bob signs it honestly,
    // but the exchange must still refuse it.
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let (honest, _) = Handshake::respond(&s.bob, s.session, a, alice.offer(), &mut rng).unwrap();
    let offer = signed(&s.bob, &a, &s.session, [0; 32], honest.kem);
    assert_eq!(
        alice.finish(&offer).unwrap_err(),
        HybridError::NonContributory { peer: b }
    );
    // And the same from the initiator's side.
    let zero = signed(
        &s.alice,
        &b,
        &s.session,
        [0; 32],
        Handshake::initiate(&s.alice, s.session, b, &mut rng)
            .offer()
            .kem
            .clone(),
    );
    assert_eq!(
        Handshake::respond(&s.bob, s.session, a, &zero, &mut rng).unwrap_err(),
        HybridError::NonContributory { peer: a }
    );
}

#[test]
fn short_qkd_key_is_refused() {
    let x = HybridShared {
        x25519: Zeroizing::new([1; 32]),
        mlkem: Zeroizing::new([2; 32]),
    };
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
    let x = HybridShared {
        x25519: Zeroizing::new([0xab; 32]),
        mlkem: Zeroizing::new([0xab; 32]),
    };
    assert!(!format!("{x:?}").contains("abab"));
    let h = Handshake::initiate(&s.alice, s.session, s.bob.account(), &mut rng);
    assert!(!format!("{h:?}").contains("secret"));
}

#[test]
fn offer_bytes_round_trip_and_garbage_is_an_error() {
    let (s, mut rng) = session(9);
    let h = Handshake::initiate(&s.alice, s.session, s.bob.account(), &mut rng);
    let bytes = h.offer().to_bytes();
    assert_eq!(&HandshakeOffer::from_bytes(&bytes).unwrap(), h.offer());
    assert!(HandshakeOffer::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(HandshakeOffer::from_bytes(&[0; 300]).is_err());
    assert!(HandshakeOffer::from_bytes(&vec![0xff; MAX_OFFER_BYTES + 1]).is_err());
}

#[test]
fn zeroize_clears_the_key() {
    let mut k = HybridKey::from_secret(KeyId([1; 16]), [0xcd; 32]);
    k.zeroize();
    assert_eq!(k.secret_bytes(), &[0; 32]);
}

#[test]
fn the_transcript_covers_the_ml_kem_exchange() {
    let (s, mut rng) = session(12);
    let (a, b) = (s.alice.account(), s.bob.account());
    let alice = Handshake::initiate(&s.alice, s.session, b, &mut rng);
    let (bob, _) = Handshake::respond(&s.bob, s.session, a, alice.offer(), &mut rng).unwrap();
    let hash = |i: &HandshakeOffer, r: &HandshakeOffer| {
        let mut t = Transcript::new(s.session, a, b);
        t.absorb_offers(i, r);
        t.hash()
    };
    let base = hash(alice.offer(), &bob);
    let mut other_ct = bob.clone();
    other_ct.kem[0] ^= 1;
    let mut other_ek = alice.offer().clone();
    other_ek.kem[0] ^= 1;
    assert_ne!(base, hash(alice.offer(), &other_ct));
    assert_ne!(base, hash(&other_ek, &bob));
}
