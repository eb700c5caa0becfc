//! Tests of Cascade: correction rate at 5% QBER, leak accounting, and that
//! verification catches what Cascade misses.

use super::*;
use crate::qkd::verify;
use proptest::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

fn noisy_pair(n: usize, qber: f64, rng: &mut ChaCha8Rng) -> (PackedBits, PackedBits) {
    let a = PackedBits::random(n, rng);
    let mut b = a.clone();
    let mut flips = crate::qkd::bits::BernoulliWords::new(qber).unwrap();
    for w in b.words_mut() {
        *w ^= flips.next_word(rng);
    }
    b.fix_tail();
    (a, b)
}

/// Issue 4: Cascade corrects every error in at least 999 of 1000 random blocks
/// of 10^4 bits at 5% QBER, and verification catches the rest.
#[test]
fn corrects_999_of_1000_blocks_at_5_percent_and_verification_catches_the_rest() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut failures = 0;
    for _ in 0..1000 {
        let (a, b) = noisy_pair(10_000, 0.05, &mut rng);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let r = reconcile(a.clone(), b, 0.05, seed, &CascadeConfig::default()).unwrap();
        if r.corrected != a {
            failures += 1;
            let vseed = verify::random_seed(a.len(), &mut rng);
            assert_ne!(
                verify::tag(&vseed, &a).unwrap(),
                verify::tag(&vseed, &r.corrected).unwrap(),
                "verification missed a residual error"
            );
        }
    }
    assert!(failures <= 1, "{failures} of 1000 blocks left uncorrected");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bob's count of leaked bits equals the parities Alice disclosed, and
    /// Cascade never increases the number of errors.
    #[test]
    fn leak_is_counted_and_errors_never_grow(n in 1usize..3000, q in 0.0f64..0.12, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (a, b) = noisy_pair(n, q, &mut rng);
        let before = a.hamming_distance(&b).unwrap();
        let cfg = CascadeConfig::default();
        let mut alice = CascadeAlice::new(a.clone(), [1; 32], &cfg);
        let (mut bob, mut query) = CascadeBob::start(b, q, [1; 32], &cfg).unwrap();
        let mut answered = 0u64;
        loop {
            let reply = alice.answer(&query).unwrap();
            answered += reply.len() as u64;
            match bob.on_reply(&reply).unwrap() {
                Some(next) => query = next,
                None => break,
            }
        }
        prop_assert_eq!(bob.leaked_bits(), answered);
        prop_assert_eq!(alice.disclosed_bits(), answered);
        let after = a.hamming_distance(&bob.into_key()).unwrap();
        prop_assert!(after <= before);
    }
}

#[test]
fn queries_outside_the_key_are_refused() {
    let mut alice = CascadeAlice::new(PackedBits::zeros(10), [0; 32], &CascadeConfig::default());
    for r in [
        ParityRange {
            pass: 0,
            start: 3,
            end: 3,
        },
        ParityRange {
            pass: 0,
            start: 0,
            end: 11,
        },
        ParityRange {
            pass: 99,
            start: 0,
            end: 1,
        },
    ] {
        assert!(alice.answer(&[r]).is_err());
    }
}

#[test]
fn error_free_keys_need_no_flips() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let a = PackedBits::random(5000, &mut rng);
    let r = reconcile(
        a.clone(),
        a.clone(),
        0.0,
        [2; 32],
        &CascadeConfig::default(),
    )
    .unwrap();
    assert_eq!(r.corrected, a);
}

#[test]
fn default_schedule_is_powers_of_two_then_half_the_key() {
    let cfg = CascadeConfig::default();
    // (Q, k1, k2): a = log2(1/Q) - 1/2, k1 = 2^ceil(a), k2 = the power of two
    // nearest to 3/Q, at least 2 k1.
    for (q, k1, k2) in [
        (0.01, 128, 256),
        (0.02, 64, 128),
        (0.05, 16, 64),
        (0.08, 16, 32),
        (0.11, 8, 32),
    ] {
        let sizes = cfg.block_sizes(100_000, q);
        assert_eq!(sizes.len(), 16);
        assert_eq!(&sizes[..2], &[k1, k2], "Q = {q}");
        assert!(sizes[2..].iter().all(|&k| k == 50_000));
    }
    // Short keys: no block beyond half the key; tiny keys: never 0 or past the key.
    assert!(cfg.block_sizes(5000, 0.0001).iter().all(|&k| k == 2500));
    for q in [0.0, 0.3, 0.9, f64::NAN] {
        assert!(cfg.block_sizes(3, q).iter().all(|&k| (1..=3).contains(&k)));
    }
    assert_eq!(
        cfg.block_sizes(10_000, f64::NAN),
        cfg.block_sizes(10_000, 0.0)
    );
}

#[test]
fn paper_opt8_schedule_is_powers_of_two_then_4096_then_half_the_key() {
    let cfg = CascadeConfig {
        passes: 14,
        schedule: BlockSchedule::PaperOpt8,
    };
    for (q, k1, k2) in [
        (0.01, 128, 1024),
        (0.05, 16, 256),
        (0.08, 16, 256),
        (0.11, 8, 256),
    ] {
        let sizes = cfg.block_sizes(100_000, q);
        assert_eq!(sizes.len(), 14);
        assert_eq!(&sizes[..3], &[k1, k2, 4096], "Q = {q}");
        assert!(sizes[3..].iter().all(|&k| k == 50_000));
    }
}

#[test]
fn proportional_schedule_is_k1_then_2k1_then_half_the_key() {
    let cfg = CascadeConfig {
        passes: 16,
        schedule: BlockSchedule::Proportional {
            first_block_factor: 0.73,
        },
    };
    let sizes = cfg.block_sizes(10_000, 0.01);
    assert_eq!(&sizes[..3], &[73, 146, 5000]);
    assert!(sizes[3..].iter().all(|&k| k == 5000));
    assert!(
        cfg.block_sizes(3, 0.3)
            .iter()
            .all(|&k| (1..=3).contains(&k))
    );
    for schedule in [
        BlockSchedule::Proportional {
            first_block_factor: 0.0,
        },
        BlockSchedule::PowersOfTwo {
            second_block_factor: f64::NAN,
        },
        BlockSchedule::PowersOfTwo {
            second_block_factor: 11.0,
        },
    ] {
        let bad = CascadeConfig {
            passes: 16,
            schedule,
        };
        assert!(bad.validate().is_err(), "{schedule:?}");
    }
}

#[test]
fn pass_orders_are_permutations_and_split_passes_have_two_sorted_parts() {
    for n in [1usize, 2, 63, 64, 65, 1000, 4097] {
        for pass in 0..5u16 {
            let (perm, split) = pass_order(&[4; 32], n, pass, 2);
            assert_eq!(perm, pass_order(&[4; 32], n, pass, 2).0, "deterministic");
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..n as u32).collect::<Vec<_>>(),
                "n={n} pass={pass}"
            );
            assert_eq!(split.is_some(), pass >= 2);
            if let Some(block) = split {
                // The larger part first, each part in increasing key order.
                assert!(2 * block >= n && block <= n);
                assert!(perm[..block].windows(2).all(|w| w[0] < w[1]));
                assert!(perm[block..].windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
    // Different passes split differently.
    assert_ne!(
        pass_order(&[4; 32], 1000, 2, 2).0,
        pass_order(&[4; 32], 1000, 3, 2).0
    );
}
