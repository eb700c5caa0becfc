//! FIPS 203 known-answer tests of the ML-KEM-768 implementation the hybrid
//! key uses (`fips203_ml_kem_768.txt` names the sources): key generation
//! from a seed, encapsulation from a message (a NIST ACVP vector), and
//! decapsulation with implicit rejection.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::HashMap;

#[allow(deprecated)] // the expanded form is what the vectors give
use ml_kem::ExpandedKeyEncoding;
use ml_kem::kem::{Decapsulate, KeyExport};
use ml_kem::{Seed, ml_kem_768};

const VECTORS: &str = include_str!("fips203_ml_kem_768.txt");

fn vectors() -> HashMap<&'static str, Vec<u8>> {
    VECTORS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k, hex::decode(v).unwrap())
        })
        .collect()
}

#[test]
fn key_generation_from_a_seed_gives_the_known_keys() {
    let v = vectors();
    let seed = Seed::try_from(v["keygen.seed"].as_slice()).unwrap();
    let dk = ml_kem_768::DecapsulationKey::from_seed(seed);
    assert_eq!(dk.encapsulation_key().to_bytes().as_slice(), v["keygen.ek"]);
    // The expanded form ends with ek, H(ek) and z (FIPS 203, algorithm 16).
    #[allow(deprecated)]
    let expanded = dk.to_expanded_bytes();
    let tail = [
        v["keygen.ek"].as_slice(),
        &v["keygen.h"],
        &v["keygen.seed"][32..],
    ]
    .concat();
    assert_eq!(expanded.len(), 2400);
    assert_eq!(&expanded[2400 - tail.len()..], tail.as_slice());
}

#[test]
fn encapsulation_matches_the_nist_vector() {
    let v = vectors();
    let ek =
        ml_kem_768::EncapsulationKey::new(v["encap.ek"].as_slice().try_into().unwrap()).unwrap();
    let m = v["encap.m"].as_slice().try_into().unwrap();
    let (c, k) = ek.encapsulate_deterministic(m);
    assert_eq!(c.as_slice(), v["encap.c"]);
    assert_eq!(k.as_slice(), v["encap.k"]);
}

#[test]
fn decapsulation_recovers_the_key_and_rejects_a_changed_ciphertext_implicitly() {
    let v = vectors();
    let seed = Seed::try_from(v["keygen.seed"].as_slice()).unwrap();
    let dk = ml_kem_768::DecapsulationKey::from_seed(seed);
    let m = [7u8; 32].into();
    let (c, k) = dk.encapsulation_key().encapsulate_deterministic(&m);
    assert_eq!(dk.decapsulate(&c), k);
    let mut changed = c;
    changed[0] ^= 1;
    let rejected = dk.decapsulate(&changed);
    // Implicit rejection: a key, but another one, the same every time.
    assert_ne!(rejected, k);
    assert_eq!(rejected, dk.decapsulate(&changed));
}
