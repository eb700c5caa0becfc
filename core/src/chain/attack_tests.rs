//! The attacks of one Byzantine hospital on the chain's rules, each written as
//! the attacker would try it: puppet hospitals voted into the validator set,
//! a lone revocation, a block copied with one flipped signature byte, a
//! squatted or overwritten record anchor, unbounded open proposals; and the
//! consequence of equivocation evidence.

use super::testkit::TestChain;
use super::validator_set::MAX_VALIDATOR_POWER;
use super::*;
use crate::consensus::{Evidence, Vote, VoteStep};
use crate::identity::{AccountId, Identity, Role};
use crate::storage::MemStore;

fn patient(chain: &TestChain) -> Identity {
    match Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()) {
        Ok(p) => p,
        Err(e) => unreachable!("{e}"),
    }
}

fn register(chain: &mut TestChain, by: usize, account: AccountId, role: Role) -> SignedTransaction {
    chain.sign_by(by, TxKind::RegisterMember { account, role })
}

#[test]
fn one_hospital_cannot_admit_puppet_hospitals_or_take_over_the_validator_set() {
    let mut chain = TestChain::new(21, 4);
    let validators_before = chain.state.validators.clone();
    // Hospital 0 registers six puppets as hospitals and votes them in.
    let puppets: Vec<usize> = (0..6).map(|i| chain.add_key(100 + i)).collect();
    for &p in &puppets {
        let account = chain.keys[p].account();
        let tx = register(&mut chain, 0, account, Role::Hospital);
        let tally = chain
            .apply_one(tx)
            .unwrap()
            .expect("admitting a hospital is a vote");
        assert!(!tally.passed, "one validator of four admitted a hospital");
        assert_eq!((tally.power, tally.total), (1, 4));
        assert_eq!(
            chain.state.role_of(&account),
            None,
            "a puppet became a member"
        );
        let tx = chain.sign_by(
            0,
            TxKind::AddValidator {
                account,
                power: MAX_VALIDATOR_POWER,
            },
        );
        assert_eq!(
            chain.apply_one(tx),
            Err(TxError::ValidatorNotHospital(account))
        );
    }
    // Puppet doctors, which a hospital may register alone, have no vote.
    let doctor = chain.add_key(200);
    let doctor_acc = chain.keys[doctor].account();
    let tx = register(&mut chain, 0, doctor_acc, Role::Doctor);
    assert_eq!(chain.apply_one(tx), Ok(None));
    let target = chain.keys[1].account();
    let tx = chain.sign_by(doctor, TxKind::RemoveValidator { account: target });
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongRole { .. })
    ));
    assert_eq!(chain.state.validators, validators_before);
    // Validators holding more than 2/3 of the power admit the first puppet.
    let first = chain.keys[puppets[0]].account();
    for i in [1usize, 2] {
        let tx = register(&mut chain, i, first, Role::Hospital);
        let tally = chain.apply_one(tx).unwrap().expect("a vote");
        assert_eq!(tally.passed, i == 2);
    }
    assert_eq!(chain.state.role_of(&first), Some(Role::Hospital));
    assert_eq!(chain.state.members[&first].registered_by, None);
}

#[test]
fn one_hospital_revokes_only_the_members_it_registered() {
    let mut chain = TestChain::new(22, 4);
    let doctor = chain.add_key(1);
    let doctor_acc = chain.keys[doctor].account();
    let tx = register(&mut chain, 0, doctor_acc, Role::Doctor);
    chain.apply_one(tx).unwrap();
    // Another hospital alone cannot cut the doctor off: its revocation is a vote.
    let tx = chain.sign_by(
        1,
        TxKind::RevokeMember {
            account: doctor_acc,
        },
    );
    let tally = chain.apply_one(tx).unwrap().expect("a vote");
    assert!(!tally.passed);
    assert_eq!(chain.state.role_of(&doctor_acc), Some(Role::Doctor));
    // Nor can it revoke a genesis patient alone.
    let patient_acc = chain.patient.account();
    let tx = chain.sign_by(
        1,
        TxKind::RevokeMember {
            account: patient_acc,
        },
    );
    assert!(!chain.apply_one(tx).unwrap().expect("a vote").passed);
    assert_eq!(chain.state.role_of(&patient_acc), Some(Role::Patient));
    // The registering hospital revokes its own doctor at once.
    let tx = chain.sign_by(
        0,
        TxKind::RevokeMember {
            account: doctor_acc,
        },
    );
    assert_eq!(chain.apply_one(tx), Ok(None));
    assert_eq!(chain.state.role_of(&doctor_acc), None);
    // The patient goes only when more than 2/3 of the power agrees.
    for i in [2usize, 3] {
        let tx = chain.sign_by(
            i,
            TxKind::RevokeMember {
                account: patient_acc,
            },
        );
        let tally = chain.apply_one(tx).unwrap().expect("a vote");
        assert_eq!(tally.passed, i == 3);
    }
    assert_eq!(chain.state.role_of(&patient_acc), None);
}

#[test]
fn voting_power_decides_not_the_head_count() {
    let mut chain = TestChain::new(23, 4);
    let heavy = chain.keys[0].account();
    // Three of four make hospital 0 a validator of power 10 (total 13).
    for i in 1..4 {
        let tx = chain.sign_by(
            i,
            TxKind::AddValidator {
                account: heavy,
                power: 10,
            },
        );
        chain.apply_one(tx).unwrap();
    }
    assert_eq!(chain.state.validators.power_of(&heavy), Some(10));
    assert_eq!(chain.state.validators.total_power(), 13);
    // Now the other three together (3 of 13) cannot remove anyone...
    let target = chain.keys[0].account();
    for i in 1..4 {
        let tx = chain.sign_by(i, TxKind::RemoveValidator { account: target });
        assert!(!chain.apply_one(tx).unwrap().expect("a vote").passed);
    }
    assert!(chain.state.validators.contains(&target));
    // ...while hospital 0's 10 of 13 passes on its own.
    let other = chain.keys[3].account();
    let tx = chain.sign_by(0, TxKind::RemoveValidator { account: other });
    assert!(chain.apply_one(tx).unwrap().expect("a vote").passed);
    assert!(!chain.state.validators.contains(&other));
}

#[test]
fn open_proposals_expire_are_pruned_and_are_bounded_per_validator() {
    let mut chain = TestChain::new(24, 4);
    chain.state.proposal_ttl_blocks = 3;
    // A proposal opened in block 1 by hospital 0...
    let newcomer = chain.add_key(5);
    let acc = chain.keys[newcomer].account();
    let tx = register(&mut chain, 0, acc, Role::Hospital);
    chain.commit(vec![tx]);
    assert_eq!(chain.state.proposals.len(), 1);
    // ...is gone by block 4 (opened at 1, open for 3 blocks).
    for _ in 0..3 {
        chain.commit(vec![]);
    }
    assert!(
        chain.state.proposals.is_empty(),
        "an expired proposal stayed"
    );
    // Votes cast before the expiry no longer count: two fresh votes of four do not pass.
    for i in [1usize, 2] {
        let tx = register(&mut chain, i, acc, Role::Hospital);
        chain.apply_one(tx).unwrap();
    }
    assert_eq!(chain.state.role_of(&acc), None);
    // One validator can keep only a bounded number of proposals open.
    let mut chain = TestChain::new(25, 4);
    for i in 0..state::MAX_OPEN_PROPOSALS_PER_VALIDATOR as u64 {
        let k = chain.add_key(1000 + i);
        let acc = chain.keys[k].account();
        let tx = register(&mut chain, 0, acc, Role::Hospital);
        chain.apply_one(tx).unwrap();
    }
    let k = chain.add_key(2000);
    let acc = chain.keys[k].account();
    let tx = register(&mut chain, 0, acc, Role::Hospital);
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::TooManyProposals { .. })
    ));
    // Another validator still opens its own.
    let tx = register(&mut chain, 1, acc, Role::Hospital);
    assert!(chain.apply_one(tx).is_ok());
}

#[test]
fn a_block_copied_with_one_flipped_signature_byte_is_another_block() {
    let mut chain = TestChain::new(26, 4);
    let p = patient(&chain);
    let recipient = chain.keys[0].account();
    let tx = chain.sign(
        &p,
        TxKind::AnchorRecord(RecordAnchor {
            record_id: Hash([1; 32]),
            ciphertext_hash: Hash([2; 32]),
            recipient,
        }),
    );
    let state = chain.state.clone();
    let tip = chain.tip;
    let committed = chain.commit(vec![tx]).clone();
    let mut flipped = committed.block.clone();
    flipped.txs[0].sig.0[10] ^= 1;
    // The copy has its own transaction id, root and block hash...
    assert_ne!(flipped.txs[0].id(), committed.block.txs[0].id());
    assert_ne!(Block::compute_tx_root(&flipped.txs), flipped.header.tx_root);
    // ...so with the original header it fails validation on its root, and it
    // can never ride on the original's certificate or validity.
    assert_eq!(
        validate_block(&state, &tip, &flipped),
        Err(BlockError::TxRoot)
    );
    flipped.header.tx_root = Block::compute_tx_root(&flipped.txs);
    assert_ne!(flipped.hash(), committed.block.hash());
    assert!(matches!(
        validate_block(&state, &tip, &flipped),
        Err(BlockError::Tx {
            source: TxError::BadSignature(_),
            ..
        }) | Err(BlockError::StateRoot)
    ));
    let forged = CommittedBlock {
        block: flipped,
        cert: committed.cert.clone(),
    };
    assert!(matches!(
        verify_committed(&state, &tip, &forged),
        Err(BlockError::Certificate(CertError::WrongBlock { .. }))
    ));
    verify_committed(&state, &tip, &committed).unwrap();
}

#[test]
fn a_certificate_from_a_round_before_the_blocks_round_is_refused() {
    let mut chain = TestChain::new(27, 4);
    let state = chain.state.clone();
    let tip = chain.tip;
    let mut committed = chain.commit(vec![]).clone();
    // Rebuild the block as if proposed in round 2, certified in round 1.
    let (block, _) = build_block(&state, &tip, 2, tip.time_ms + 1000, vec![], 10);
    let signers: Vec<&Identity> = chain.keys[..4].iter().collect();
    committed.cert = testkit::certify(&state.genesis_hash, state.chain_id, &block, 1, &signers);
    committed.block = block;
    assert!(matches!(
        verify_committed(&state, &tip, &committed),
        Err(BlockError::CertBeforeProposal {
            cert_round: 1,
            block_round: 2
        })
    ));
}

#[test]
fn a_record_anchor_cannot_be_squatted_overwritten_or_repeated() {
    let mut chain = TestChain::new(28, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    let p = patient(&chain);
    let record_id = Hash([7; 32]);
    let anchor = |ct: u8, recipient| {
        TxKind::AnchorRecord(RecordAnchor {
            record_id,
            ciphertext_hash: Hash([ct; 32]),
            recipient,
        })
    };
    let hospital = chain.keys[0].account();
    let honest = chain.sign(&p, anchor(1, hospital));
    let honest_id = honest.id();
    let cb = chain.commit(vec![honest]).clone();
    cs.import(&cb).unwrap();
    // A malicious hospital anchors the same record id with other content.
    let spoof = chain.sign_by(1, anchor(9, hospital));
    let spoof_id = spoof.id();
    let cb = chain.commit(vec![spoof]).clone();
    cs.import(&cb).unwrap();
    // The patient's anchor is still the one found for the patient's record.
    assert_eq!(
        cs.anchor_tx(&p.account(), &record_id).unwrap(),
        Some(honest_id)
    );
    assert_eq!(
        cs.anchor_tx(&chain.keys[1].account(), &record_id).unwrap(),
        Some(spoof_id)
    );
    assert!(chain.state.is_anchored(&p.account(), &record_id));
    // Anchoring the same record twice is refused.
    let again = chain.sign(&p, anchor(1, hospital));
    assert_eq!(
        chain.apply_one(again),
        Err(TxError::DuplicateAnchor(record_id))
    );
    assert!(cs.verify_chain().ok);
}

#[test]
fn equivocation_evidence_removes_the_offenders_power_until_voted_back() {
    let mut chain = TestChain::new(29, 4);
    let genesis = chain.state.genesis_hash;
    let offender_key = match Identity::from_secret_bytes(chain.keys[3].secret_bytes().as_slice()) {
        Ok(k) => k,
        Err(e) => unreachable!("{e}"),
    };
    let offender = offender_key.account();
    chain.commit(vec![]);
    let vote = |hash: u8| {
        Vote {
            chain_id: chain.genesis.chain_id,
            height: 1,
            round: 0,
            step: VoteStep::Prevote,
            block_hash: Some(Hash([hash; 32])),
            validator: offender,
        }
        .sign(&genesis, &offender_key)
    };
    let evidence = Evidence::new(vote(1), vote(2));
    let tx = chain.sign_by(0, TxKind::SubmitEvidence(Box::new(evidence)));
    chain.commit(vec![tx]);
    assert!(!chain.state.validators.contains(&offender));
    assert_eq!(chain.state.validators.len(), 3);
    // The next block is certified by the three others alone.
    let cb = chain.commit(vec![]).clone();
    assert_eq!(cb.cert.sigs.len(), 3);
    // Validators holding more than 2/3 of the remaining power vote it back.
    let votes: Vec<_> = (0..3)
        .map(|i| {
            chain.sign_by(
                i,
                TxKind::AddValidator {
                    account: offender,
                    power: 1,
                },
            )
        })
        .collect();
    chain.commit(votes);
    assert!(chain.state.validators.contains(&offender));
}

fn emergency(patient: AccountId, reason: &str, expires_at_ms: u64) -> TxKind {
    TxKind::DeclareEmergency(EmergencyAccess {
        patient,
        reason: reason.into(),
        expires_at_ms,
    })
}

#[test]
fn break_glass_is_bounded_in_who_why_and_how_long_and_lands_in_state_and_log() {
    let mut chain = TestChain::new(31, 4);
    let patient = patient(&chain);
    let p = patient.account();
    let doctor = chain.add_key(300);
    let doctor_acc = chain.keys[doctor].account();
    let tx = register(&mut chain, 0, doctor_acc, Role::Doctor);
    chain.apply_one(tx).unwrap();
    let now = chain.tip.time_ms + 1;

    // A patient cannot break the glass (on anyone), nor can anyone on a
    // non-patient.
    let tx = chain.sign(&patient, emergency(p, "testing", now + 1000));
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongRole { .. })
    ));
    let tx = chain.sign_by(doctor, emergency(doctor_acc, "testing", now + 1000));
    assert_eq!(chain.apply_one(tx), Err(TxError::NotPatient(doctor_acc)));
    // No reason, or an essay, is refused.
    for reason in [
        "",
        "   ",
        &"x".repeat(MAX_EMERGENCY_REASON_BYTES + 1),
        "fell\u{1b}[2J\u{1b}[31m",
        "line\nbreak",
    ] {
        let tx = chain.sign_by(doctor, emergency(p, reason, now + 1000));
        assert!(
            matches!(chain.apply_one(tx), Err(TxError::BadEmergencyReason { .. })),
            "reason {reason:?}"
        );
    }
    // It must end, and within a day: a Byzantine doctor cannot hold the
    // glass open for ever.
    for expiry in [now - 1, now, now + MAX_EMERGENCY_MS + 1, u64::MAX] {
        let tx = chain.sign_by(doctor, emergency(p, "unconscious in A&E", expiry));
        assert!(
            matches!(chain.apply_one(tx), Err(TxError::BadEmergencyExpiry { .. })),
            "expiry {expiry}"
        );
    }
    assert!(chain.state.emergencies.is_empty());

    let log_before = chain.state.log_hash;
    let root_before = chain.state.root();
    let expires = now + MAX_EMERGENCY_MS;
    let tx = chain.sign_by(doctor, emergency(p, "unconscious in A&E", expires));
    chain.apply_one(tx).unwrap();
    assert_eq!(
        chain
            .state
            .emergencies
            .get(&(p, doctor_acc))
            .map(|e| e.expires_at_ms),
        Some(expires)
    );
    assert_ne!(
        chain.state.log_hash, log_before,
        "the declaration is in the log"
    );
    assert_ne!(chain.state.root(), root_before);
    assert!(chain.state.emergency_allows(&p, &doctor_acc, expires - 1));
    assert!(!chain.state.emergency_allows(&p, &doctor_acc, expires));
    // It is the declarer's alone: another member gains nothing from it.
    let other = chain.keys[1].account();
    assert!(!chain.state.emergency_allows(&p, &other, now));
}

#[test]
fn emergencies_survive_the_store_and_match_the_root() {
    let mut chain = TestChain::new(32, 1);
    let p = chain.patient.account();
    let h = chain.keys[0].account();
    let expires = chain.tip.time_ms + 60_000;
    let tx = chain.sign_by(0, emergency(p, "cardiac arrest on arrival", expires));
    let block = chain.commit(vec![tx]).clone();
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    cs.import(&block).unwrap();
    let loaded = cs.state().unwrap();
    assert_eq!(
        loaded
            .emergencies
            .get(&(p, h))
            .map(|e| (e.expires_at_ms, e.height)),
        Some((expires, block.block.header.height))
    );
    assert_eq!(loaded.root(), chain.state.root());
}

#[test]
fn erasure_and_access_log_facts_go_in_the_log_and_grow_no_state() {
    let mut chain = TestChain::new(33, 4);
    let patient = patient(&chain);
    let log = chain.state.log_hash;
    let tx = chain.sign(
        &patient,
        TxKind::EraseRecord(RecordErasure {
            record_id: Hash([7; 32]),
        }),
    );
    chain.apply_one(tx).unwrap();
    assert_ne!(chain.state.log_hash, log);
    let log = chain.state.log_hash;
    let tx = chain.sign_by(
        2,
        TxKind::AnchorAccessLog(AccessLogAnchor {
            entries: 3,
            head: Hash([9; 32]),
        }),
    );
    chain.apply_one(tx).unwrap();
    assert_ne!(chain.state.log_hash, log);
    let tx = chain.sign_by(
        2,
        TxKind::AnchorAccessLog(AccessLogAnchor {
            entries: 0,
            head: Hash([9; 32]),
        }),
    );
    assert_eq!(chain.apply_one(tx), Err(TxError::EmptyAccessLog));
    // Facts are in the blocks and the log hash, not the state's entries:
    // a member repeating them grows the chain by its transactions only.
    let keys_before: Vec<_> = chain.state.all_keys().collect();
    for i in 0..20u8 {
        let tx = chain.sign(
            &patient,
            TxKind::EraseRecord(RecordErasure {
                record_id: Hash([i; 32]),
            }),
        );
        chain.apply_one(tx).unwrap();
    }
    assert_eq!(chain.state.all_keys().collect::<Vec<_>>(), keys_before);

    // Only a patient asks for an erasure, of another member's copy.
    let holder = chain.keys[1].account();
    let ask = |holder| {
        TxKind::RequestErasure(ErasureRequest {
            holder,
            record_id: Hash([3; 32]),
        })
    };
    let tx = chain.sign_by(2, ask(holder));
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongRole { .. })
    ));
    let tx = chain.sign(&patient, ask(patient.account()));
    assert_eq!(chain.apply_one(tx), Err(TxError::SelfErasureRequest));
    let tx = chain.sign(&patient, ask(AccountId([0x44; 32])));
    assert_eq!(
        chain.apply_one(tx),
        Err(TxError::NotMember(AccountId([0x44; 32])))
    );
    let log = chain.state.log_hash;
    let tx = chain.sign(&patient, ask(holder));
    chain.apply_one(tx).unwrap();
    assert_ne!(chain.state.log_hash, log);
}
