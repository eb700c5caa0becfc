//! Tests of the chain rules, the store and the auditor's verify: typed
//! rejections, governance by validator power (and the attacks of a single
//! Byzantine hospital it stops), blocks that pin every byte, tampering and
//! removal, and decoders that never panic on random or truncated bytes.

use proptest::prelude::*;

use super::testkit::TestChain;
use super::*;
use crate::consensus::ConsensusMessage;
use crate::identity::{AccountId, Role};
use crate::storage::{Column, MemStore, Store};

fn anchor(recipient: AccountId, i: u64) -> TxKind {
    TxKind::AnchorRecord(RecordAnchor {
        record_id: Hash::digest("test/record", &i.to_le_bytes()),
        ciphertext_hash: Hash::digest("test/ct", &i.to_le_bytes()),
        recipient,
    })
}

/// A chain of `blocks` blocks with a few transactions each, stored in a MemStore.
fn stored_chain(blocks: u64) -> (TestChain, MemStore) {
    let mut chain = TestChain::new(11, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    let recipient = chain.keys[0].account();
    for h in 0..blocks {
        let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
        let txs = (0..3)
            .map(|i| chain.sign(&patient, anchor(recipient, h * 3 + i)))
            .collect();
        let cb = chain.commit(txs).clone();
        cs.import(&cb).unwrap();
    }
    (chain, store)
}

use crate::identity::Identity;

#[test]
fn membership_rules_are_enforced_with_typed_errors() {
    let mut chain = TestChain::new(1, 4);
    let doctor = chain.add_key(1);
    let doctor_acc = chain.keys[doctor].account();
    // A patient cannot register members.
    let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
    let tx = chain.sign(
        &patient,
        TxKind::RegisterMember {
            account: doctor_acc,
            role: Role::Doctor,
        },
    );
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongRole {
            needed: Role::Hospital,
            ..
        })
    ));
    // A hospital can, once.
    let tx = chain.sign_by(
        0,
        TxKind::RegisterMember {
            account: doctor_acc,
            role: Role::Doctor,
        },
    );
    chain.apply_one(tx.clone()).unwrap();
    assert_eq!(chain.state.role_of(&doctor_acc), Some(Role::Doctor));
    // Replaying the same signed transaction fails on its nonce.
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::BadNonce {
            expected: 1,
            found: 0,
            ..
        })
    ));
    let tx = chain.sign_by(
        1,
        TxKind::RegisterMember {
            account: doctor_acc,
            role: Role::Doctor,
        },
    );
    assert_eq!(chain.apply_one(tx), Err(TxError::AlreadyMember(doctor_acc)));
    // A validator cannot be revoked; a doctor can, and then cannot act.
    let v = chain.keys[2].account();
    let tx = chain.sign_by(0, TxKind::RevokeMember { account: v });
    assert_eq!(chain.apply_one(tx), Err(TxError::RevokeValidator(v)));
    let tx = chain.sign_by(
        0,
        TxKind::RevokeMember {
            account: doctor_acc,
        },
    );
    chain.apply_one(tx).unwrap();
    let tx = chain.sign_by(doctor, anchor(v, 1));
    assert_eq!(chain.apply_one(tx), Err(TxError::AuthorRevoked(doctor_acc)));
    // An unknown author and a wrong chain are refused.
    let stranger = chain.add_key(2);
    let tx = chain.sign_by(stranger, anchor(v, 2));
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::UnknownAuthor(_))
    ));
    let mut tx = chain.sign_by(0, anchor(v, 3));
    tx.tx.chain_id += 1;
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongChain { .. })
    ));
}

#[test]
fn consent_rules_and_lookup() {
    let mut chain = TestChain::new(2, 4);
    let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
    let grantee = chain.keys[1].account();
    let now = chain.tip.time_ms + 1;
    let grant = |exp| {
        TxKind::GrantConsent(ConsentGrant {
            grantee,
            scope: ConsentScope::Records,
            expires_at_ms: exp,
        })
    };
    let tx = chain.sign(&patient, grant(now));
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::ConsentExpiryInPast { .. })
    ));
    // A failed transaction does not consume the nonce; re-sign with the same one.
    let mut chain2 = TestChain::new(2, 4);
    let tx = chain2.sign(&patient, grant(now + 10_000));
    chain2.apply_one(tx).unwrap();
    let pa = patient.account();
    assert!(
        chain2
            .state
            .consent_allows(&pa, &grantee, ConsentScope::Records, now)
    );
    assert!(
        !chain2
            .state
            .consent_allows(&pa, &grantee, ConsentScope::Reports, now)
    );
    assert!(
        !chain2
            .state
            .consent_allows(&pa, &grantee, ConsentScope::Records, now + 10_000)
    );
    let tx = chain2.sign_by(0, grant(now + 10_000));
    assert!(matches!(
        chain2.apply_one(tx),
        Err(TxError::WrongRole {
            needed: Role::Patient,
            ..
        })
    ));
    let tx = chain2.sign(
        &patient,
        TxKind::RevokeConsent {
            grantee,
            scope: ConsentScope::Records,
        },
    );
    chain2.apply_one(tx).unwrap();
    assert!(
        !chain2
            .state
            .consent_allows(&pa, &grantee, ConsentScope::Records, now)
    );
    let tx = chain2.sign(
        &patient,
        TxKind::RevokeConsent {
            grantee,
            scope: ConsentScope::Records,
        },
    );
    assert!(matches!(
        chain2.apply_one(tx),
        Err(TxError::NoSuchConsent { .. })
    ));
}

#[test]
fn key_session_audit_rules() {
    let mut chain = TestChain::new(3, 4);
    let (a, b) = (chain.keys[0].account(), chain.keys[1].account());
    let audit = |author_is_peer: bool, qber_ppm| {
        TxKind::AuditKeySession(KeySessionAudit {
            session_id: Hash::digest("s", &[1]),
            peer_a: if author_is_peer { a } else { b },
            peer_b: chain_peer(b, author_is_peer),
            qber_ppm,
            key_length_bits: 256,
            outcome: SessionOutcome::Established,
        })
    };
    fn chain_peer(b: AccountId, ok: bool) -> AccountId {
        if ok { b } else { AccountId([9; 32]) }
    }
    let tx = chain.sign_by(2, audit(true, 10_000));
    assert_eq!(chain.apply_one(tx), Err(TxError::AuditAuthorNotPeer));
    let tx = chain.sign_by(0, audit(true, 1_000_001));
    assert_eq!(chain.apply_one(tx), Err(TxError::QberOutOfRange(1_000_001)));
    let before = chain.state.log_hash;
    let tx = chain.sign_by(0, audit(true, 30_000));
    chain.apply_one(tx).unwrap();
    assert_eq!(chain.state.audits, 1);
    assert_ne!(chain.state.log_hash, before);
}

#[test]
fn validator_set_changes_by_vote_of_more_than_two_thirds_of_the_power_and_verifies() {
    let mut chain = TestChain::new(4, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    // Block 1: three of the four validators (3/4 of the power) admit a fifth hospital.
    let new = chain.add_key(4);
    let new_acc = chain.keys[new].account();
    let admit = |chain: &mut TestChain, i| {
        chain.sign_by(
            i,
            TxKind::RegisterMember {
                account: new_acc,
                role: Role::Hospital,
            },
        )
    };
    let votes: Vec<_> = (0..3).map(|i| admit(&mut chain, i)).collect();
    let cb = chain.commit(votes).clone();
    cs.import(&cb).unwrap();
    assert_eq!(chain.state.role_of(&new_acc), Some(Role::Hospital));
    // Block 2: two of four vote to make it a validator: 2/4 is not more than 2/3.
    let votes: Vec<_> = (0..2)
        .map(|i| {
            chain.sign_by(
                i,
                TxKind::AddValidator {
                    account: new_acc,
                    power: 1,
                },
            )
        })
        .collect();
    let cb = chain.commit(votes).clone();
    cs.import(&cb).unwrap();
    assert!(!chain.state.validators.contains(&new_acc));
    let dup = chain.sign_by(
        0,
        TxKind::AddValidator {
            account: new_acc,
            power: 1,
        },
    );
    assert_eq!(
        chain.apply_one(dup),
        Err(TxError::AlreadyVoted(chain.keys[0].account()))
    );
    // A hospital that is not a validator has no vote.
    let not_validator = chain.sign_by(
        new,
        TxKind::AddValidator {
            account: new_acc,
            power: 1,
        },
    );
    assert_eq!(
        chain.apply_one(not_validator),
        Err(TxError::VoterNotValidator(new_acc))
    );
    // Block 3: the third vote (3/4 > 2/3) adds it.
    let vote = chain.sign_by(
        3,
        TxKind::AddValidator {
            account: new_acc,
            power: 1,
        },
    );
    let cb = chain.commit(vec![vote]).clone();
    cs.import(&cb).unwrap();
    assert!(chain.state.validators.contains(&new_acc));
    assert_eq!(chain.state.validators.len(), 5);
    assert!(
        chain.state.proposals.is_empty(),
        "a passed proposal stayed open"
    );
    // Block 4 is certified by the new set of five (the builder signs with all five).
    let cb = chain.commit(vec![]).clone();
    assert_eq!(cb.cert.sigs.len(), 5);
    cs.import(&cb).unwrap();
    // Block 5: four of five vote to remove hospital 2; it takes effect.
    let gone = chain.keys[2].account();
    let votes: Vec<_> = [0usize, 1, 3, new]
        .iter()
        .map(|&i| chain.sign_by(i, TxKind::RemoveValidator { account: gone }))
        .collect();
    let cb = chain.commit(votes).clone();
    cs.import(&cb).unwrap();
    assert!(!chain.state.validators.contains(&gone));
    let cb = chain.commit(vec![]).clone();
    cs.import(&cb).unwrap();
    let report = cs.verify_chain();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.blocks_verified, 6);
    // A block certified by the old set after the change is refused.
    let mut stale = chain.blocks[5].clone();
    let old_signers: Vec<&Identity> = chain.keys[..4].iter().collect();
    stale.cert = testkit::certify(
        &chain.state.genesis_hash,
        chain.genesis.chain_id,
        &stale.block,
        0,
        &old_signers,
    );
    let err = verify::verify_committed(
        &store_state_before(&chain, 5),
        &tip_before(&chain, 5),
        &stale,
    )
    .unwrap_err();
    assert!(
        matches!(err, BlockError::Certificate(CertError::UnknownValidator(_))),
        "{err}"
    );
}

#[test]
fn block_timing_changes_only_by_a_vote_of_more_than_two_thirds_and_is_in_the_state_root() {
    use crate::consensus::BlockTiming;
    let mut chain = TestChain::new(5, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    assert_eq!(chain.state.block_timing, BlockTiming::default());
    let slower = BlockTiming {
        block_time_ms: 2_000,
        empty_block_interval_ms: 60_000,
    };
    // Out of range, or what the chain already has: refused, whoever votes.
    for (bad, why) in [
        (
            BlockTiming {
                block_time_ms: 10,
                empty_block_interval_ms: 60_000,
            },
            "block_time_ms",
        ),
        (
            BlockTiming {
                block_time_ms: 2_000,
                empty_block_interval_ms: 1_000,
            },
            "empty_block_interval_ms",
        ),
        (
            BlockTiming {
                block_time_ms: 2_000,
                empty_block_interval_ms: 7_200_000,
            },
            "empty_block_interval_ms",
        ),
    ] {
        let tx = chain.sign_by(0, TxKind::SetBlockTiming(bad));
        match chain.apply_one(tx) {
            Err(TxError::BadBlockTiming(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    let same = chain.sign_by(0, TxKind::SetBlockTiming(BlockTiming::default()));
    assert_eq!(chain.apply_one(same), Err(TxError::BlockTimingUnchanged));
    // A patient has no vote.
    let patient = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
    let tx = chain.sign(&patient, TxKind::SetBlockTiming(slower));
    assert!(matches!(
        chain.apply_one(tx),
        Err(TxError::WrongRole { .. })
    ));
    // Two of four validators (1/2 of the power): open, not in effect.
    let root_before = chain.state.root();
    let votes: Vec<_> = (0..2)
        .map(|i| chain.sign_by(i, TxKind::SetBlockTiming(slower)))
        .collect();
    let cb = chain.commit(votes).clone();
    cs.import(&cb).unwrap();
    assert_eq!(chain.state.block_timing, BlockTiming::default());
    let action = GovernanceAction::SetBlockTiming(slower);
    assert_eq!(chain.state.proposal_status(&action).state, "pending");
    // The third (3/4 > 2/3) puts it in effect, in the state and its root.
    let vote = chain.sign_by(2, TxKind::SetBlockTiming(slower));
    let cb = chain.commit(vec![vote]).clone();
    cs.import(&cb).unwrap();
    assert_eq!(chain.state.block_timing, slower);
    assert_eq!(chain.state.proposal_status(&action).state, "passed");
    assert_ne!(chain.state.root(), root_before);
    // The stored state reads back with it, and an auditor's verify agrees.
    assert_eq!(cs.state().unwrap().block_timing, slower);
    assert_eq!(cs.state().unwrap().root(), chain.state.root());
    let report = cs.verify_chain();
    assert!(report.ok, "{report:?}");
}

fn store_state_before(chain: &TestChain, index: usize) -> ChainState {
    let mut state = chain.genesis.initial_state().unwrap();
    let mut tip = chain.genesis.tip();
    for cb in &chain.blocks[..index] {
        state = verify::verify_committed(&state, &tip, cb).unwrap();
        tip = verify::tip_of(&cb.block);
    }
    state
}

fn tip_before(chain: &TestChain, index: usize) -> ChainTip {
    if index == 0 {
        chain.genesis.tip()
    } else {
        verify::tip_of(&chain.blocks[index - 1].block)
    }
}

#[test]
fn certificate_needs_more_than_two_thirds_and_every_signature_valid() {
    let mut chain = TestChain::new(5, 4);
    let cb = chain.commit(vec![]).clone();
    let state = chain.genesis.initial_state().unwrap();
    let tip = chain.genesis.tip();
    verify::verify_committed(&state, &tip, &cb).unwrap();
    let mut two = cb.clone();
    two.cert.sigs.truncate(2);
    assert!(matches!(
        verify::verify_committed(&state, &tip, &two),
        Err(BlockError::Certificate(CertError::NoQuorum {
            have: 2,
            total: 4
        }))
    ));
    let mut bad = cb.clone();
    bad.cert.sigs[3].sig.0[5] ^= 1;
    assert!(matches!(
        verify::verify_committed(&state, &tip, &bad),
        Err(BlockError::Certificate(CertError::BadSignature(_)))
    ));
    let mut dup = cb.clone();
    dup.cert.sigs[1] = dup.cert.sigs[0];
    assert!(matches!(
        verify::verify_committed(&state, &tip, &dup),
        Err(BlockError::Certificate(CertError::UnsortedOrDuplicate(_)))
    ));
}

#[test]
fn init_is_idempotent_and_refuses_another_genesis() {
    let chain = TestChain::new(6, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    assert_eq!(cs.init(&chain.genesis).unwrap(), InitOutcome::Initialised);
    assert_eq!(
        cs.init(&chain.genesis).unwrap(),
        InitOutcome::AlreadyInitialised
    );
    let other = TestChain::new(7, 4);
    assert!(matches!(
        cs.init(&other.genesis),
        Err(ChainStoreError::GenesisMismatch { .. })
    ));
    let report = cs.verify_chain();
    assert!(report.ok && report.height == 0 && report.blocks_verified == 0);
}

#[test]
fn store_reads_blocks_transactions_and_anchors() {
    let (chain, store) = stored_chain(3);
    let cs = ChainStore::new(&store);
    assert_eq!(cs.tip().unwrap(), chain.tip);
    let b2 = cs.block(2).unwrap().unwrap();
    assert_eq!(b2, chain.blocks[1]);
    assert_eq!(cs.height_of(&b2.block.hash()).unwrap(), Some(2));
    let tx = &b2.block.txs[1];
    let (loc, found) = cs.transaction(&tx.id()).unwrap().unwrap();
    assert_eq!((loc.height, loc.index, &found), (2, 1, tx));
    let TxKind::AnchorRecord(a) = &tx.tx.kind else {
        panic!("anchor expected")
    };
    assert_eq!(
        cs.anchor_tx(&tx.tx.author, &a.record_id).unwrap(),
        Some(tx.id())
    );
    assert_eq!(cs.state().unwrap(), chain.state);
}

#[test]
fn flipping_any_byte_of_a_stored_block_fails_verify_at_that_height() {
    let (_chain, store) = stored_chain(4);
    let cs = ChainStore::new(&store);
    assert!(cs.verify_chain().ok);
    for height in 1..=4u64 {
        let key = height.to_be_bytes();
        let original = store.get(Column::Blocks, &key).unwrap().unwrap();
        for pos in 0..original.len() {
            let mut bytes = original.clone();
            bytes[pos] ^= 0x01;
            store.put(Column::Blocks, &key, &bytes).unwrap();
            let report = cs.verify_chain();
            assert!(
                !report.ok,
                "flip at byte {pos} of block {height} went unnoticed"
            );
            assert_eq!(
                report.failed_height,
                Some(height),
                "byte {pos}: {:?}",
                report.reason
            );
        }
        store.put(Column::Blocks, &key, &original).unwrap();
    }
    assert!(cs.verify_chain().ok);
}

#[test]
fn removing_a_block_fails_verify_at_that_height() {
    for height in 1..=4u64 {
        let (_chain, store) = stored_chain(4);
        let cs = ChainStore::new(&store);
        store.delete(Column::Blocks, &height.to_be_bytes()).unwrap();
        let report = cs.verify_chain();
        assert!(!report.ok);
        assert_eq!(report.failed_height, Some(height));
        assert!(report.reason.unwrap().contains("missing"));
    }
}

#[test]
fn torn_import_is_detected_and_atomic_import_is_not_torn() {
    let (mut chain, store) = stored_chain(2);
    let cb = chain.commit(vec![]).clone();
    // Apply only part of the import batch, as a non-atomic store might after a crash.
    let batch = ChainStore::import_batch(&cb, &chain.state);
    let mut partial = crate::storage::WriteBatch::new();
    if let Some(crate::storage::BatchOp::Put { column, key, value }) = batch.ops().first() {
        partial.put(*column, key.clone(), value.clone());
    }
    store.write(partial).unwrap();
    let report = ChainStore::new(&store).verify_chain();
    assert!(!report.ok);
    assert_eq!(report.failed_height, Some(3));
}

proptest! {
    #[test]
    fn random_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedTransaction::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = CommittedBlock::decode(&bytes);
        let _ = ConsensusMessage::decode(&bytes);
        let _ = Genesis::decode(&bytes);
    }

    #[test]
    fn truncated_or_mutated_encodings_never_panic(cut in 0usize..4000, pos in 0usize..4000, byte: u8) {
        let mut chain = TestChain::new(8, 4);
        let r = chain.keys[1].account();
        let txs: Vec<_> = (0..2).map(|i| chain.sign_by(0, anchor(r, i))).collect();
        let cb = chain.commit(txs).clone();
        // A truncated encoding never decodes as its own type. (A prefix of
        // one type's encoding may be a whole encoding of another: the block
        // part of a committed block is a block. Those must only not panic.)
        let encodings = [cb.encode(), cb.block.encode(), cb.block.txs[0].encode()];
        for (kind, full) in encodings.iter().enumerate() {
            let cut = cut % full.len();
            let own_type_fails = match kind {
                0 => CommittedBlock::decode(&full[..cut]).is_err(),
                1 => Block::decode(&full[..cut]).is_err(),
                _ => SignedTransaction::decode(&full[..cut]).is_err(),
            };
            prop_assert!(own_type_fails, "a truncated encoding of kind {} decoded", kind);
            let _ = CommittedBlock::decode(&full[..cut]);
            let _ = Block::decode(&full[..cut]);
            let _ = SignedTransaction::decode(&full[..cut]);
            let mut mutated = full.clone();
            let p = pos % mutated.len();
            mutated[p] = byte;
            let _ = CommittedBlock::decode(&mutated);
            let _ = Block::decode(&mutated);
            let _ = SignedTransaction::decode(&mutated);
        }
    }

    /// A rejected transaction leaves the state exactly as it was; an accepted
    /// one advances the author's nonce by one.
    #[test]
    fn transactions_apply_atomically(ops in proptest::collection::vec((0usize..5, 0u8..8, 0usize..6), 1..40)) {
        let mut chain = TestChain::new(9, 4);
        let extra = chain.add_key(9);
        let accounts: Vec<AccountId> = chain.keys.iter().map(|k| k.account()).chain([chain.patient.account()]).collect();
        for (author, kind, target) in ops {
            let target = accounts[target % accounts.len()];
            let kind = match kind {
                0 => TxKind::RegisterMember { account: target, role: Role::Doctor },
                1 => TxKind::RevokeMember { account: target },
                2 => TxKind::AddValidator { account: target, power: 1 },
                3 => TxKind::RemoveValidator { account: target },
                4 => TxKind::GrantConsent(ConsentGrant { grantee: target, scope: ConsentScope::All, expires_at_ms: u64::MAX }),
                5 => TxKind::RevokeConsent { grantee: target, scope: ConsentScope::All },
                6 => anchor(target, 0),
                _ => TxKind::RegisterMember { account: target, role: Role::Hospital },
            };
            let tx = if author == 4 {
                let p = Identity::from_secret_bytes(chain.patient.secret_bytes().as_slice()).unwrap();
                chain.sign(&p, kind)
            } else {
                chain.sign_by(author.min(extra), kind)
            };
            let before = chain.state.clone();
            let nonce_before = before.members.get(&tx.tx.author).map(|m| m.next_nonce);
            match chain.state.apply(&tx, 1, chain.tip.time_ms + 1) {
                Ok(_) => prop_assert_eq!(chain.state.members[&tx.tx.author].next_nonce, nonce_before.unwrap() + 1),
                Err(_) => {
                    prop_assert_eq!(&chain.state, &before);
                    chain.forget_pending();
                }
            }
            prop_assert!(!chain.state.validators.is_empty());
            // The root kept per changed entry equals the root rebuilt from every entry.
            let mut fresh = chain.state.clone();
            fresh.rehash_entries();
            prop_assert_eq!(fresh.root(), chain.state.root());
        }
    }
}

/// The state is stored entry by entry: 100,000 members reopen exactly (root
/// included), and a block that changes two entries writes those two and the
/// small meta record, not the whole state.
#[test]
fn a_state_of_100000_members_reopens_and_a_block_writes_only_its_entries() {
    let mut chain = TestChain::new(31, 4);
    let store = MemStore::new();
    let cs = ChainStore::new(&store);
    cs.init(&chain.genesis).unwrap();
    let mut next = 0u64;
    for _ in 0..10 {
        let txs: Vec<SignedTransaction> = (0..10_000)
            .map(|_| {
                next += 1;
                let account = crate::consensus::sim::test_identity(31, 10_000 + next).account();
                chain.sign_by(
                    (next % 4) as usize,
                    TxKind::RegisterMember {
                        account,
                        role: Role::Doctor,
                    },
                )
            })
            .collect();
        let cb = chain.commit(txs).clone();
        // The builder checked every transaction; the store test need not again.
        cs.import_verified(&cb, &chain.state).unwrap();
    }
    assert!(chain.state.members.len() > 100_000);
    let reopened = cs.state().unwrap();
    assert_eq!(reopened, chain.state);
    assert_eq!(reopened.root(), chain.state.root());
    // One more block with one registration: its import writes a handful of
    // small entries (block, indexes, tip, meta, the author and the new member).
    let account = crate::consensus::sim::test_identity(31, 999_999).account();
    let tx = chain.sign_by(
        0,
        TxKind::RegisterMember {
            account,
            role: Role::Patient,
        },
    );
    let cb = chain.commit(vec![tx]).clone();
    let batch = ChainStore::import_batch(&cb, &chain.state);
    let state_bytes: usize = batch
        .ops()
        .iter()
        .filter_map(|op| match op {
            crate::storage::BatchOp::Put {
                column: Column::State,
                key,
                value,
            } => Some(key.len() + value.len()),
            _ => None,
        })
        .sum();
    assert!(
        state_bytes < 4096,
        "one registration wrote {state_bytes} bytes of state"
    );
    cs.import(&cb).unwrap();
    assert_eq!(cs.state().unwrap(), chain.state);
}
