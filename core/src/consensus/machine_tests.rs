//! Sans-IO tests of the consensus machine against hand-made messages: the
//! vote flood stays bounded, evidence once per slot, proposals whose header
//! round or height lie are refused, the sync signal, and `start_height`
//! after a sync import from any state.

use super::machine::{
    Consensus, ConsensusApp, MAX_FUTURE_MESSAGES_PER_SIGNER, MAX_FUTURE_ROUNDS_PER_VALIDATOR,
    MAX_ROUNDS_AHEAD, Output,
};
use super::safety::SafetyState;
use super::timeouts::{ConsensusParams, Timeout, TimeoutStep};
use super::types::{ConsensusMessage, MessageError, Proposal, SignedProposal, Vote, VoteStep};
use crate::chain::testkit::TestChain;
use crate::chain::{
    Block, ChainState, ChainTip, CommitSig, Hash, RecordAnchor, TxKind, build_block, validate_block,
};
use crate::identity::{AccountId, Identity};

const SEED: u64 = 11;

struct App {
    state: ChainState,
    tip: ChainTip,
}

impl ConsensusApp for App {
    fn build_block(&mut self, _height: u64, round: u32) -> Block {
        build_block(
            &self.state,
            &self.tip,
            round,
            self.tip.time_ms + 1000,
            [],
            0,
        )
        .0
    }

    fn validate_block(&mut self, block: &Block) -> bool {
        validate_block(&self.state, &self.tip, block).is_ok()
    }
}

/// Four validators; the machine under test runs as one that does not propose
/// in round 0 of height `chain.tip.height + 1`.
struct Harness {
    chain: TestChain,
    me: usize,
    machine: Consensus,
    app: App,
}

impl Harness {
    fn new() -> Self {
        let chain = TestChain::new(SEED, 4);
        let proposer = chain.state.validators.proposer(1, 0);
        let me = (0..4)
            .find(|&i| chain.keys[i].account() != proposer)
            .unwrap_or(0);
        let machine = Consensus::new(
            chain.genesis.chain_id,
            chain.genesis.hash(),
            ConsensusParams::default(),
            chain.state.validators.clone(),
            Some(clone_key(&chain.keys[me])),
            SafetyState::default(),
        );
        let app = App {
            state: chain.state.clone(),
            tip: chain.tip,
        };
        let mut h = Harness {
            chain,
            me,
            machine,
            app,
        };
        let validators = h.chain.state.validators.clone();
        h.machine.start_height(1, validators, &mut h.app);
        h
    }

    fn key(&self, account: &AccountId) -> &Identity {
        let found = self.chain.keys.iter().find(|k| k.account() == *account);
        found.expect("a validator key")
    }

    /// Indexes of the validators other than the machine's, proposer first.
    fn others(&self, height: u64, round: u32) -> Vec<usize> {
        let proposer = self.chain.state.validators.proposer(height, round);
        let mut v: Vec<usize> = (0..4).filter(|&i| i != self.me).collect();
        v.sort_by_key(|&i| self.chain.keys[i].account() != proposer);
        v
    }

    fn vote(
        &self,
        i: usize,
        height: u64,
        round: u32,
        step: VoteStep,
        hash: Option<Hash>,
    ) -> ConsensusMessage {
        ConsensusMessage::Vote(
            Vote {
                chain_id: self.chain.genesis.chain_id,
                height,
                round,
                step,
                block_hash: hash,
                validator: self.chain.keys[i].account(),
            }
            .sign(&self.chain.genesis.hash(), &self.chain.keys[i]),
        )
    }

    /// A proposal signed by the round's proposer.
    fn proposal(&self, round: u32, valid_round: Option<u32>, block: Block) -> ConsensusMessage {
        self.signed_proposal(round, valid_round, block, Vec::new())
    }

    /// A re-proposal of `block` in `round` with `valid_round` `vr`, carrying
    /// as its polka the round-`vr` prevotes for it of validators `signers`.
    fn reproposal(&self, round: u32, vr: u32, block: Block, signers: &[usize]) -> ConsensusMessage {
        let height = self.machine.height();
        let hash = Some(block.hash());
        let mut polka: Vec<CommitSig> = signers
            .iter()
            .map(
                |&i| match self.vote(i, height, vr, VoteStep::Prevote, hash) {
                    ConsensusMessage::Vote(v) => CommitSig {
                        validator: v.vote.validator,
                        sig: v.sig,
                    },
                    ConsensusMessage::Proposal(_) => unreachable!("vote() makes votes"),
                },
            )
            .collect();
        polka.sort_by_key(|cs| cs.validator);
        self.signed_proposal(round, Some(vr), block, polka)
    }

    /// `block` proposed in `round` by that round's proposer, with `polka`.
    fn signed_proposal(
        &self,
        round: u32,
        valid_round: Option<u32>,
        block: Block,
        polka: Vec<CommitSig>,
    ) -> ConsensusMessage {
        let height = self.machine.height();
        let proposer = self.chain.state.validators.proposer(height, round);
        ConsensusMessage::Proposal(Box::new(
            Proposal {
                chain_id: self.chain.genesis.chain_id,
                height,
                round,
                valid_round,
                proposer,
                block,
            }
            .sign_with_polka(polka, &self.chain.genesis.hash(), self.key(&proposer)),
        ))
    }

    /// Moves the machine to the first round after its current one whose
    /// proposer is another validator; returns that round.
    fn advance_to_a_round_proposed_by_another(&mut self) -> u32 {
        let me = self.chain.keys[self.me].account();
        loop {
            let round = self.machine.round();
            self.timeout(round, TimeoutStep::Precommit);
            let next = self.machine.round();
            assert_eq!(next, round + 1);
            if self
                .chain
                .state
                .validators
                .proposer(self.machine.height(), next)
                != me
            {
                return next;
            }
        }
    }

    /// The valid block the proposer of `round` builds.
    fn block(&self, round: u32) -> Block {
        build_block(
            &self.app.state,
            &self.app.tip,
            round,
            self.app.tip.time_ms + 1000,
            [],
            0,
        )
        .0
    }

    fn deliver(&mut self, msg: ConsensusMessage) -> Vec<Output> {
        self.machine.on_message(msg, &mut self.app)
    }

    fn timeout(&mut self, round: u32, step: TimeoutStep) -> Vec<Output> {
        let t = Timeout {
            height: self.machine.height(),
            round,
            step,
        };
        self.machine.on_timeout(t, &mut self.app)
    }

    /// Drives the current height to a commit with the three other
    /// validators' votes for the current round's proposal; returns the outputs.
    fn commit_current_height(&mut self) -> Vec<Output> {
        let (height, round) = (self.machine.height(), self.machine.round());
        let block = self.block(round);
        let hash = Some(block.hash());
        let mut out = self.deliver(self.proposal(round, None, block));
        for step in [VoteStep::Prevote, VoteStep::Precommit] {
            for i in self.others(height, round) {
                out.extend(self.deliver(self.vote(i, height, round, step, hash)));
            }
        }
        out
    }
}

fn clone_key(k: &Identity) -> Identity {
    Identity::from_secret_bytes(k.secret_bytes().as_slice()).expect("a valid key")
}

fn committed(out: &[Output]) -> Option<&Block> {
    out.iter().find_map(|o| match o {
        Output::Commit { block, .. } => Some(block),
        _ => None,
    })
}

fn own_prevote(out: &[Output]) -> Option<Option<Hash>> {
    out.iter().find_map(|o| match o {
        Output::Broadcast(ConsensusMessage::Vote(v)) if v.vote.step == VoteStep::Prevote => {
            Some(v.vote.block_hash)
        }
        _ => None,
    })
}

#[test]
fn a_flood_of_100k_votes_from_one_validator_stays_bounded_and_honest_progress_follows() {
    let mut h = Harness::new();
    let byz = *h.others(1, 0).last().expect("three others");
    let mut evidence = 0;
    for n in 0..100_000u32 {
        // Deterministic pseudo-random choices from a hash of the counter.
        let r = Hash::digest("test/flood", &n.to_le_bytes()).0;
        let word =
            |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let height = match n % 10 {
            0 => 2,
            1 => 3 + word(0) % 1_000_000,
            _ => 1,
        };
        let round = (word(1) % u64::from(MAX_ROUNDS_AHEAD + 20)) as u32;
        let step = if word(2) % 2 == 0 {
            VoteStep::Prevote
        } else {
            VoteStep::Precommit
        };
        let hash = Some(Hash::digest("test/flood-hash", &r));
        let out = h.deliver(h.vote(byz, height, round, step, hash));
        evidence += out
            .iter()
            .filter(|o| matches!(o, Output::Evidence(_)))
            .count();
        assert!(committed(&out).is_none());
    }
    // The current round plus the validator's highest future rounds, two
    // steps each, a first and one conflicting vote per step.
    let rounds = 1 + MAX_FUTURE_ROUNDS_PER_VALIDATOR;
    assert!(
        h.machine.stored_votes() <= rounds * 2 * 2,
        "{} votes stored",
        h.machine.stored_votes()
    );
    assert!(h.machine.stored_rounds() <= rounds);
    assert!(h.machine.buffered_messages() <= MAX_FUTURE_MESSAGES_PER_SIGNER);
    assert!(evidence > 0, "the equivocation was reported");
    // One validator (1/4 of the power) cannot make this node look behind.
    assert_eq!(h.machine.sync_target(), None);
    assert_eq!((h.machine.height(), h.machine.round()), (1, 0));
    let out = h.commit_current_height();
    assert_eq!(
        committed(&out).map(Block::height),
        Some(1),
        "honest progress"
    );
}

#[test]
fn evidence_once_per_slot_and_further_conflicting_votes_are_dropped() {
    let mut h = Harness::new();
    let byz = h.others(1, 0)[1];
    let (a, b, c) = (Hash([1; 32]), Hash([2; 32]), Hash([3; 32]));
    assert!(
        h.deliver(h.vote(byz, 1, 0, VoteStep::Prevote, Some(a)))
            .is_empty()
    );
    assert_eq!(h.machine.stored_votes(), 1);
    let out = h.deliver(h.vote(byz, 1, 0, VoteStep::Prevote, Some(b)));
    let evidence: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Evidence(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    let ev = &evidence[0];
    assert_eq!(ev.offender(), h.chain.keys[byz].account());
    ev.verify(&h.chain.genesis.hash(), h.chain.genesis.chain_id)
        .expect("evidence verifies");
    assert_eq!(h.machine.stored_votes(), 2);
    for hash in [Some(c), None, Some(a), Some(b)] {
        let out = h.deliver(h.vote(byz, 1, 0, VoteStep::Prevote, hash));
        assert!(out.is_empty(), "no second evidence: {out:?}");
    }
    assert_eq!(h.machine.stored_votes(), 2);
}

#[test]
fn proposals_whose_header_round_or_height_lie_are_refused() {
    let mut h = Harness::new();
    let genuine = h.block(0);
    // Header round 1 in a round-0 proposal without valid_round.
    let mut wrong_round = genuine.clone();
    wrong_round.header.round = 1;
    assert_eq!(
        own_prevote(&h.deliver(h.proposal(0, None, wrong_round))),
        None
    );
    // A block of height 2 in a height-1 proposal.
    let mut wrong_height = genuine.clone();
    wrong_height.header.height = 2;
    assert_eq!(
        own_prevote(&h.deliver(h.proposal(0, None, wrong_height))),
        None
    );
    // Neither took the round's proposal slot: the genuine one is prevoted.
    let hash = genuine.hash();
    assert_eq!(
        own_prevote(&h.deliver(h.proposal(0, None, genuine.clone()))),
        Some(Some(hash))
    );

    // Round 1: a re-proposal (valid_round 0) must keep header.round <= 0.
    let mut h = Harness::new();
    h.timeout(0, TimeoutStep::Propose);
    h.timeout(0, TimeoutStep::Prevote);
    h.timeout(0, TimeoutStep::Precommit);
    assert_eq!(h.machine.round(), 1);
    let others = h.others(1, 0);
    let mut relabelled = genuine.clone();
    relabelled.header.round = 1;
    assert_eq!(
        own_prevote(&h.deliver(h.reproposal(1, 0, relabelled, &others))),
        None
    );
    assert_eq!(
        own_prevote(&h.deliver(h.reproposal(1, 0, genuine, &others))),
        Some(Some(hash)),
        "the re-proposed valid block of round 0 is accepted"
    );
}

#[test]
fn sync_target_needs_a_third_of_the_power_counted_once_per_signer() {
    let mut h = Harness::new();
    let [a, b, _] = h.others(1, 0)[..] else {
        unreachable!()
    };
    for height in 2..200 {
        h.deliver(h.vote(a, height, 0, VoteStep::Prevote, None));
    }
    assert_eq!(h.machine.sync_target(), None, "one validator of four");
    // A second signer's message signed for another genesis does not count.
    let forged = Vote {
        chain_id: h.chain.genesis.chain_id,
        height: 5,
        round: 0,
        step: VoteStep::Prevote,
        block_hash: None,
        validator: h.chain.keys[b].account(),
    }
    .sign(&Hash([9; 32]), &h.chain.keys[b]);
    h.deliver(ConsensusMessage::Vote(forged));
    assert_eq!(h.machine.sync_target(), None);
    h.deliver(h.vote(b, 5, 0, VoteStep::Prevote, None));
    assert_eq!(
        h.machine.sync_target(),
        Some(5),
        "two of four validators are at height 5"
    );
}

#[test]
fn start_height_after_a_sync_import_works_from_any_state() {
    // Decided at height 1, but the import failed: the driver fetched blocks
    // 1 and 2 from peers and starts height 3.
    let mut h = Harness::new();
    assert!(committed(&h.commit_current_height()).is_some());
    assert!(h.machine.is_decided());
    sync_two_blocks_and_commit_the_next(&mut h);

    // Mid-round and locked at height 1 (precommitted a block in round 0,
    // then moved to round 1).
    let mut h = Harness::new();
    let block = h.block(0);
    let hash = Some(block.hash());
    h.deliver(h.proposal(0, None, block));
    for i in h.others(1, 0).into_iter().take(2) {
        h.deliver(h.vote(i, 1, 0, VoteStep::Prevote, hash));
    }
    assert!(h.machine.safety().locked.is_some(), "locked in round 0");
    h.timeout(0, TimeoutStep::Precommit);
    assert_eq!(h.machine.round(), 1);
    sync_two_blocks_and_commit_the_next(&mut h);

    // Fresh at height 1, never saw a message.
    let mut h = Harness::new();
    sync_two_blocks_and_commit_the_next(&mut h);
}

fn sync_two_blocks_and_commit_the_next(h: &mut Harness) {
    h.chain.commit(Vec::new());
    h.chain.commit(Vec::new());
    h.app = App {
        state: h.chain.state.clone(),
        tip: h.chain.tip,
    };
    let validators = h.chain.state.validators.clone();
    h.machine.start_height(3, validators, &mut h.app);
    assert_eq!((h.machine.height(), h.machine.round()), (3, 0));
    assert!(!h.machine.is_decided());
    let out = h.commit_current_height();
    assert_eq!(committed(&out).map(Block::height), Some(3));
}

/// A block of one anchor transaction for height 1, and a copy of it with one
/// byte of that transaction's signature flipped (same header, so same hash).
fn block_and_altered_copy(h: &mut Harness, round: u32) -> (Block, Block) {
    let patient = clone_key(&h.chain.patient);
    let recipient = h.chain.keys[0].account();
    let tx = h.chain.sign(
        &patient,
        TxKind::AnchorRecord(RecordAnchor {
            record_id: Hash([4; 32]),
            ciphertext_hash: Hash([5; 32]),
            recipient,
        }),
    );
    let (genuine, _) = build_block(
        &h.app.state,
        &h.app.tip,
        round,
        h.app.tip.time_ms + 1000,
        [tx],
        10,
    );
    assert_eq!(genuine.txs.len(), 1);
    let mut copy = genuine.clone();
    copy.txs[0].sig.0[0] ^= 1;
    assert_eq!(copy.hash(), genuine.hash());
    (genuine, copy)
}

#[test]
fn a_relayed_copy_with_altered_transactions_does_not_verify_and_spoils_no_round() {
    let mut h = Harness::new();
    let (genuine, copy) = block_and_altered_copy(&mut h, 0);
    // The copy under the proposer's own signature of the (unchanged) hash:
    // what any relay can make of an honest proposal.
    let relayed = h.proposal(0, None, copy);
    assert_eq!(
        relayed.verify(&h.chain.genesis.hash()),
        Err(MessageError::BodyMismatch)
    );
    // It reaches this node first: dropped, so no nil prevote.
    let out = h.deliver(relayed);
    assert_eq!(
        own_prevote(&out),
        None,
        "no vote on a copy that does not verify"
    );
    // The genuine proposal still gets this node's prevote.
    let out = h.deliver(h.proposal(0, None, genuine.clone()));
    assert_eq!(own_prevote(&out), Some(Some(genuine.hash())));
}

#[test]
fn a_same_hash_copy_with_a_flipped_tx_signature_is_never_committed() {
    let mut h = Harness::new();
    let (genuine, copy) = block_and_altered_copy(&mut h, 0);
    let hash = genuine.hash();
    // Round 0: the genuine block is proposed and validated, gets a polka
    // from the others, but this node's precommit round times out.
    h.deliver(h.proposal(0, None, genuine.clone()));
    let others = h.others(1, 0);
    for &i in &others {
        h.deliver(h.vote(i, 1, 0, VoteStep::Prevote, Some(hash)));
    }
    let round = h.advance_to_a_round_proposed_by_another();
    // The re-proposal arrives first as the altered copy, then the genuine one.
    let mut outs = h.deliver(h.reproposal(round, 0, copy.clone(), &others));
    outs.extend(h.deliver(h.reproposal(round, 0, genuine.clone(), &others)));
    for i in h.others(1, round) {
        for step in [VoteStep::Prevote, VoteStep::Precommit] {
            outs.extend(h.deliver(h.vote(i, 1, round, step, Some(hash))));
        }
    }
    let block = committed(&outs).expect("the genuine block is committed");
    assert_eq!(block, &genuine, "never the copy with the bad signature");
    assert!(validate_block(&h.app.state, &h.app.tip, block).is_ok());
}

/// Round 0 at this node: it prevoted nil (the proposal came late), the two
/// honest others prevoted the block, and validator `x` (the last of the
/// others) sent it two conflicting prevotes, nil and a random hash, before
/// its prevote for the block, which the vote set (first and one conflicting
/// vote per validator) then drops. This node sees no polka in round 0.
/// Returns the block and the others (`x` last).
fn round_zero_with_an_equivocator(h: &mut Harness) -> (Block, Vec<usize>) {
    let block = h.block(0);
    let hash = Some(block.hash());
    let others = h.others(1, 0);
    let x = others[2];
    assert_eq!(own_prevote(&h.timeout(0, TimeoutStep::Propose)), Some(None));
    h.deliver(h.vote(x, 1, 0, VoteStep::Prevote, None));
    h.deliver(h.vote(x, 1, 0, VoteStep::Prevote, Some(Hash([9; 32]))));
    h.deliver(h.proposal(0, None, block.clone()));
    for &i in &others {
        h.deliver(h.vote(i, 1, 0, VoteStep::Prevote, hash));
    }
    (block, others)
}

#[test]
fn a_reproposal_proves_its_polka_even_where_an_equivocators_vote_was_dropped() {
    let mut h = Harness::new();
    let (block, others) = round_zero_with_an_equivocator(&mut h);
    let round = h.advance_to_a_round_proposed_by_another();
    // A validator locked on the block re-proposes it: the polka it carries
    // (including x's prevote for the block, which this node dropped) is
    // enough for this node's prevote, whatever else it holds.
    let out = h.deliver(h.reproposal(round, 0, block.clone(), &others));
    assert_eq!(own_prevote(&out), Some(Some(block.hash())));
}

#[test]
fn a_relayed_reproposal_with_its_polka_cut_or_altered_does_not_verify_and_spoils_no_round() {
    let mut h = Harness::new();
    let (block, others) = round_zero_with_an_equivocator(&mut h);
    let round = h.advance_to_a_round_proposed_by_another();
    let genuine = h.reproposal(round, 0, block.clone(), &others);
    let tamper = |f: &dyn Fn(&mut SignedProposal)| match genuine.clone() {
        ConsensusMessage::Proposal(mut sp) => {
            f(&mut sp);
            ConsensusMessage::Proposal(sp)
        }
        v => v,
    };
    // What any relay can make of the honest re-proposal, keeping the
    // proposer's signature: the polka cut short, emptied, or one of its
    // signatures altered. None verifies; none reaches the machine's checks.
    let copies = [
        tamper(&|sp| {
            sp.polka.pop();
        }),
        tamper(&|sp| sp.polka.clear()),
        tamper(&|sp| sp.polka[0].sig.0[0] ^= 1),
    ];
    for copy in copies {
        assert_eq!(
            copy.verify(&h.chain.genesis.hash()),
            Err(MessageError::BadSignature)
        );
        assert_eq!(own_prevote(&h.deliver(copy)), None);
    }
    // The genuine one, arriving after them, gets this node's prevote.
    assert_eq!(own_prevote(&h.deliver(genuine)), Some(Some(block.hash())));
}

#[test]
fn a_proposer_that_signs_a_short_polka_is_not_heard_again_that_round() {
    let mut h = Harness::new();
    let (block, others) = round_zero_with_an_equivocator(&mut h);
    let round = h.advance_to_a_round_proposed_by_another();
    // The proposer itself signs a polka of two of four: no polka.
    let short = h.reproposal(round, 0, block.clone(), &others[..2]);
    assert_eq!(short.verify(&h.chain.genesis.hash()), Ok(()));
    assert_eq!(own_prevote(&h.deliver(short)), None);
    // Only the proposer can make that, so its later proposals in the round
    // are not checked again.
    let good = h.reproposal(round, 0, block, &others);
    assert_eq!(own_prevote(&h.deliver(good)), None);
}

#[test]
fn messages_verified_by_the_caller_commit_like_any_other() {
    let mut h = Harness::new();
    let block = h.block(0);
    let hash = Some(block.hash());
    let mut out = h
        .machine
        .on_verified_message(h.proposal(0, None, block.clone()), &mut h.app);
    for step in [VoteStep::Prevote, VoteStep::Precommit] {
        for i in h.others(1, 0) {
            let vote = h.vote(i, 1, 0, step, hash);
            out.extend(h.machine.on_verified_message(vote, &mut h.app));
        }
    }
    assert_eq!(committed(&out), Some(&block));
}
