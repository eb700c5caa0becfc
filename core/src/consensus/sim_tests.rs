//! Simulation tests of the consensus machine: honest liveness and agreement
//! under delay, reordering and loss; safety with one Byzantine validator over
//! many seeds; evidence that the chain accepts.

use proptest::prelude::*;

use super::sim::{self, Byzantine, SimConfig, SimResult};
use crate::chain::{Transaction, TxError, TxKind};

fn assert_agreement(r: &SimResult, target: u64) {
    assert!(r.violations.is_empty(), "violations: {:?}", r.violations);
    assert_eq!(r.conflicts(), Vec::<u64>::new(), "honest nodes disagree");
    assert!(
        r.min_honest_height() >= target,
        "an honest node only reached {} of {target} after {} ms",
        r.min_honest_height(),
        r.sim_time_ms
    );
    let reference = &r.commits[r.honest[0]][..target as usize];
    for &n in &r.honest {
        assert_eq!(&r.commits[n][..target as usize], reference, "node {n}");
    }
    assert!(
        r.verify_ok.iter().all(|&ok| ok),
        "a stored chain fails verify"
    );
}

#[test]
fn four_validators_reach_height_100_under_delay_reorder_and_loss() {
    for seed in [1u64, 2, 3] {
        let cfg = SimConfig {
            target_height: 100,
            loss_per_mille: 100,
            max_delay_ms: 60,
            ..SimConfig::new(seed)
        };
        let r = sim::run(&cfg);
        assert_agreement(&r, 100);
        // Transactions made it into the chain.
        assert!(
            r.final_state.anchors >= 100,
            "anchors {}",
            r.final_state.anchors
        );
    }
}

#[test]
fn equivocation_yields_evidence_the_chain_accepts_once() {
    let cfg = SimConfig {
        byzantine: vec![(0, Byzantine::Equivocate)],
        target_height: 10,
        ..SimConfig::new(7)
    };
    let r = sim::run(&cfg);
    assert_agreement(&r, 10);
    let ev = r
        .evidence
        .first()
        .expect("equivocation produced evidence")
        .clone();
    ev.verify(&r.genesis_hash, r.chain_id).unwrap();
    let reporter = sim::test_identity(7, 1);
    let mut state = r.final_state.clone();
    let nonce = state.members[&reporter.account()].next_nonce;
    let tx = Transaction {
        chain_id: r.chain_id,
        author: reporter.account(),
        nonce,
        kind: TxKind::SubmitEvidence(Box::new(ev.clone())),
    };
    let height = r.min_honest_height() + 1;
    state.apply(&tx, height, u64::MAX / 2).unwrap();
    let again = Transaction {
        nonce: nonce + 1,
        ..tx
    };
    assert_eq!(
        state.apply(&again, height, u64::MAX / 2),
        Err(TxError::DuplicateEvidence)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// One Byzantine validator of four: no two honest validators commit
    /// different blocks at one height, the honest ones still make progress,
    /// and equivocation produces verifiable evidence.
    #[test]
    fn one_byzantine_of_four_never_splits_honest_validators(seed: u64, equivocate: bool) {
        let cfg = SimConfig {
            byzantine: vec![(0, if equivocate { Byzantine::Equivocate } else { Byzantine::InvalidProposals })],
            target_height: 6,
            ..SimConfig::new(seed)
        };
        let r = sim::run(&cfg);
        prop_assert!(r.violations.is_empty(), "{:?}", r.violations);
        prop_assert_eq!(r.conflicts(), Vec::<u64>::new());
        prop_assert!(r.min_honest_height() >= 6);
        prop_assert!(r.verify_ok.iter().all(|&ok| ok));
        if equivocate {
            prop_assert!(!r.evidence.is_empty(), "no evidence from an equivocating validator");
            for ev in &r.evidence {
                prop_assert!(ev.verify(&r.genesis_hash, r.chain_id).is_ok());
                prop_assert_eq!(ev.offender(), sim::test_identity(seed, 0).account());
            }
        }
    }
}
