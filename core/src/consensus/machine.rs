//! The Tendermint-style consensus state machine (sans-IO): propose, prevote,
//! precommit with locking, round change with growing timeouts, immediate
//! finality. It takes messages and timeouts and returns what to persist,
//! broadcast, schedule and commit, and evidence of equivocation.
//!
//! Rules follow Buchman, Kwon and Milosevic, "The latest gossip on BFT
//! consensus" (2018), Algorithm 1; comments name the paper's line numbers.

use std::collections::{BTreeMap, BTreeSet};

use crate::chain::{Block, CommitCertificate, CommitSig, Hash, ValidatorSet};
use crate::identity::{AccountId, Identity};

use super::safety::SafetyState;
use super::timeouts::{ConsensusParams, Timeout, TimeoutStep};
use super::types::{
    ConsensusMessage, Evidence, PROPOSE_CODE, Proposal, SignedProposal, SignedVote, Vote, VoteStep,
};

/// Messages more than this many rounds ahead are dropped (bounds memory).
pub const MAX_ROUNDS_AHEAD: u32 = 64;
/// Messages buffered for future heights, at most.
pub const MAX_FUTURE_MESSAGES: usize = 4096;

/// What the driver provides: blocks to propose and block validation.
pub trait ConsensusApp {
    /// The block to propose at `height`, `round` (this validator is the proposer).
    fn build_block(&mut self, height: u64, round: u32) -> Block;
    /// Whether `block` is a valid next block for the driver's chain state.
    fn validate_block(&mut self, block: &Block) -> bool;
}

/// What the driver must do, in order. A `PersistSafety` must be durable
/// before any later `Broadcast` in the same batch is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    PersistSafety(SafetyState),
    Broadcast(ConsensusMessage),
    ScheduleTimeout {
        timeout: Timeout,
        after_ms: u64,
    },
    /// The block is final. Import it, then call `start_height(height + 1, ..)`.
    Commit {
        block: Block,
        cert: CommitCertificate,
    },
    /// A validator equivocated; the driver may submit this as a transaction.
    Evidence(Evidence),
}

/// The step within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// The votes of one round and step. An equivocating validator's votes count
/// once for each block they name: safe, because two quorums for different
/// blocks would need more than f validators voting for both; and needed, so
/// that a polka relayed to a node that first saw the conflicting vote counts.
#[derive(Debug, Default)]
struct VoteSet {
    votes: BTreeMap<(AccountId, Option<Hash>), SignedVote>,
    first: BTreeMap<AccountId, Option<Hash>>,
    power: BTreeMap<Option<Hash>, u64>,
    total: u64,
}

impl VoteSet {
    /// Adds a vote; returns the validator's earlier vote if this one conflicts with it.
    fn add(&mut self, vote: SignedVote, power: u64) -> Option<SignedVote> {
        let (validator, hash) = (vote.vote.validator, vote.vote.block_hash);
        if self.votes.contains_key(&(validator, hash)) {
            return None;
        }
        let conflict = match self.first.get(&validator) {
            Some(first) => self.votes.get(&(validator, *first)).cloned(),
            None => {
                self.first.insert(validator, hash);
                self.total += power;
                None
            }
        };
        *self.power.entry(hash).or_default() += power;
        self.votes.insert((validator, hash), vote);
        conflict
    }

    fn power_for(&self, hash: &Option<Hash>) -> u64 {
        self.power.get(hash).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct RoundState {
    proposal: Option<(SignedProposal, Hash)>,
    prevotes: VoteSet,
    precommits: VoteSet,
    senders: BTreeMap<AccountId, u64>,
    prevote_timeout_scheduled: bool,
    precommit_timeout_scheduled: bool,
    polka_handled: bool,
}

/// One validator's (or observer's) consensus instance.
#[derive(Debug)]
pub struct Consensus {
    chain_id: u64,
    genesis_hash: Hash,
    params: ConsensusParams,
    identity: Option<Identity>,
    validators: ValidatorSet,
    height: u64,
    round: u32,
    step: Step,
    locked: Option<(u32, Block)>,
    valid: Option<(u32, Block)>,
    rounds: BTreeMap<u32, RoundState>,
    decided: bool,
    safety: SafetyState,
    validity: BTreeMap<Hash, bool>,
    future: Vec<ConsensusMessage>,
    evidence_seen: BTreeSet<(AccountId, u32, u8)>,
    highest_seen_height: u64,
}

impl Consensus {
    /// A consensus instance for `chain_id`. `identity` is `None` for a node
    /// that follows without voting; `safety` is the persisted signing record.
    /// Call [`Consensus::start_height`] to begin.
    pub fn new(
        chain_id: u64,
        genesis_hash: Hash,
        params: ConsensusParams,
        validators: ValidatorSet,
        identity: Option<Identity>,
        safety: SafetyState,
    ) -> Self {
        Consensus {
            chain_id,
            genesis_hash,
            params,
            identity,
            validators,
            height: 0,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            rounds: BTreeMap::new(),
            decided: true,
            safety,
            validity: BTreeMap::new(),
            future: Vec::new(),
            evidence_seen: BTreeSet::new(),
            highest_seen_height: 0,
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn step(&self) -> Step {
        self.step
    }

    /// Whether this height is decided (waiting for `start_height`).
    pub fn is_decided(&self) -> bool {
        self.decided
    }

    /// The highest height seen in any message: above `height()` means this
    /// node is behind and should sync blocks.
    pub fn highest_seen_height(&self) -> u64 {
        self.highest_seen_height
    }

    pub fn safety(&self) -> &SafetyState {
        &self.safety
    }

    fn me(&self) -> Option<AccountId> {
        self.identity.as_ref().map(Identity::account)
    }

    /// Starts consensus on `height` with the validator set that certifies it
    /// (paper line 10). Resumes the round and lock of the persisted record.
    pub fn start_height(
        &mut self,
        height: u64,
        validators: ValidatorSet,
        app: &mut dyn ConsensusApp,
    ) -> Vec<Output> {
        self.height = height;
        self.validators = validators;
        self.rounds.clear();
        self.validity.clear();
        self.evidence_seen.clear();
        self.valid = None;
        self.decided = false;
        let mut round = 0;
        self.locked = None;
        if self.safety.height == height {
            round = self.safety.round;
            self.locked = self.safety.locked.clone();
        }
        let mut out = Vec::new();
        self.start_round(round, app, &mut out);
        let buffered = std::mem::take(&mut self.future);
        for msg in buffered {
            if msg.height() == height {
                self.accept(msg, &mut out);
            } else if msg.height() > height {
                self.future.push(msg);
            }
        }
        self.process(app, &mut out);
        out
    }

    /// Handles a message from the network (or this node's own, echoed back).
    pub fn on_message(&mut self, msg: ConsensusMessage, app: &mut dyn ConsensusApp) -> Vec<Output> {
        let mut out = Vec::new();
        if msg.chain_id() != self.chain_id {
            return out;
        }
        self.highest_seen_height = self.highest_seen_height.max(msg.height());
        if msg.height() > self.height {
            if self.future.len() < MAX_FUTURE_MESSAGES && msg.height() <= self.height + 2 {
                self.future.push(msg);
            }
            return out;
        }
        if msg.height() < self.height || self.decided {
            return out;
        }
        if self.accept(msg, &mut out) {
            self.process(app, &mut out);
        }
        out
    }

    /// Handles a timeout the driver scheduled (paper lines 57-65).
    pub fn on_timeout(&mut self, t: Timeout, app: &mut dyn ConsensusApp) -> Vec<Output> {
        let mut out = Vec::new();
        if t.height != self.height || self.decided || t.round != self.round {
            return out;
        }
        match t.step {
            TimeoutStep::Propose if self.step == Step::Propose => {
                self.sign_vote(VoteStep::Prevote, None, &mut out);
                self.step = Step::Prevote;
            }
            TimeoutStep::Prevote if self.step == Step::Prevote => {
                self.sign_vote(VoteStep::Precommit, None, &mut out);
                self.step = Step::Precommit;
            }
            TimeoutStep::Precommit => {
                self.start_round(self.round + 1, app, &mut out);
            }
            _ => return out,
        }
        self.process(app, &mut out);
        out
    }

    /// Checks and records a message for the current height; false if dropped.
    fn accept(&mut self, msg: ConsensusMessage, out: &mut Vec<Output>) -> bool {
        let round = msg.round();
        if round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return false;
        }
        let signer = msg.signer();
        let Some(power) = self.validators.power_of(&signer) else {
            return false;
        };
        if msg.verify(&self.genesis_hash).is_err() {
            return false;
        }
        self.record(msg, power, out)
    }

    /// Records a verified message (also used for this node's own).
    fn record(&mut self, msg: ConsensusMessage, power: u64, out: &mut Vec<Output>) -> bool {
        let round = msg.round();
        let signer = msg.signer();
        let expected_proposer = self.validators.proposer(self.height, round);
        let rs = self.rounds.entry(round).or_default();
        match msg {
            ConsensusMessage::Proposal(sp) => {
                if sp.proposal.proposer != expected_proposer || rs.proposal.is_some() {
                    return false;
                }
                let hash = sp.proposal.block.hash();
                rs.proposal = Some((sp, hash));
            }
            ConsensusMessage::Vote(sv) => {
                let step = sv.vote.step;
                let set = match step {
                    VoteStep::Prevote => &mut rs.prevotes,
                    VoteStep::Precommit => &mut rs.precommits,
                };
                if let Some(existing) = set.add(sv.clone(), power)
                    && self.evidence_seen.insert((signer, round, step.code()))
                {
                    out.push(Output::Evidence(Evidence::new(existing, sv)));
                }
            }
        }
        rs.senders.insert(signer, power);
        true
    }

    fn is_valid(&mut self, block: &Block, hash: Hash, app: &mut dyn ConsensusApp) -> bool {
        if let Some(&v) = self.validity.get(&hash) {
            return v;
        }
        let v = block.header.height == self.height && app.validate_block(block);
        self.validity.insert(hash, v);
        v
    }

    /// Paper lines 11-21.
    fn start_round(&mut self, round: u32, app: &mut dyn ConsensusApp, out: &mut Vec<Output>) {
        self.round = round;
        self.step = Step::Propose;
        let proposer = self.validators.proposer(self.height, round);
        if self.me() == Some(proposer) {
            if self.safety.may_sign(self.height, round, PROPOSE_CODE) {
                let (block, valid_round) = match &self.valid {
                    Some((vr, b)) => (b.clone(), Some(*vr)),
                    None => (app.build_block(self.height, round), None),
                };
                if let Some(identity) = &self.identity {
                    let sp = Proposal {
                        chain_id: self.chain_id,
                        height: self.height,
                        round,
                        valid_round,
                        proposer,
                        block,
                    }
                    .sign(&self.genesis_hash, identity);
                    let msg = ConsensusMessage::Proposal(sp);
                    self.safety
                        .record(self.height, round, PROPOSE_CODE, msg.clone());
                    self.safety.locked = self.locked.clone();
                    out.push(Output::PersistSafety(self.safety.clone()));
                    self.emit_own(msg, out);
                    if let Some(vr) = valid_round {
                        self.relay_polka(vr, out);
                    }
                }
            } else if let Some(msg) = self
                .safety
                .signed_at(self.height, round, PROPOSE_CODE)
                .cloned()
            {
                self.emit_own(msg, out);
            }
        }
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.height,
                round,
                step: TimeoutStep::Propose,
            },
            after_ms: self.params.timeout_ms(TimeoutStep::Propose, round),
        });
    }

    /// Re-sends the prevotes that justify re-proposing the valid value of
    /// round `vr`: validators that lost them could otherwise never accept it
    /// (Tendermint assumes gossip eventually delivers every vote).
    fn relay_polka(&self, vr: u32, out: &mut Vec<Output>) {
        let Some(hash) = self.valid.as_ref().map(|(_, b)| b.hash()) else {
            return;
        };
        if let Some(rs) = self.rounds.get(&vr) {
            for v in rs.prevotes.votes.values() {
                if v.vote.block_hash == Some(hash) {
                    out.push(Output::Broadcast(ConsensusMessage::Vote(v.clone())));
                }
            }
        }
    }

    fn emit_own(&mut self, msg: ConsensusMessage, out: &mut Vec<Output>) {
        out.push(Output::Broadcast(msg.clone()));
        let power = self.validators.power_of(&msg.signer()).unwrap_or(0);
        if power > 0 {
            self.record(msg, power, out);
        }
    }

    /// Signs and sends a vote unless the signing record forbids it; after a
    /// restart, re-sends the identical vote signed before instead.
    fn sign_vote(&mut self, step: VoteStep, block_hash: Option<Hash>, out: &mut Vec<Output>) {
        let Some(identity) = &self.identity else {
            return;
        };
        if !self.validators.contains(&identity.account()) {
            return;
        }
        let (h, r, code) = (self.height, self.round, step.code());
        if !self.safety.may_sign(h, r, code) {
            if let Some(msg) = self.safety.signed_at(h, r, code).cloned() {
                self.emit_own(msg, out);
            }
            return;
        }
        let sv = Vote {
            chain_id: self.chain_id,
            height: h,
            round: r,
            step,
            block_hash,
            validator: identity.account(),
        }
        .sign(&self.genesis_hash, identity);
        let msg = ConsensusMessage::Vote(sv);
        self.safety.record(h, r, code, msg.clone());
        self.safety.locked = self.locked.clone();
        out.push(Output::PersistSafety(self.safety.clone()));
        self.emit_own(msg, out);
    }

    fn schedule(&self, step: TimeoutStep, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            timeout: Timeout {
                height: self.height,
                round: self.round,
                step,
            },
            after_ms: self.params.timeout_ms(step, self.round),
        });
    }

    /// Applies every rule until none fires.
    fn process(&mut self, app: &mut dyn ConsensusApp, out: &mut Vec<Output>) {
        loop {
            if self.decided {
                return;
            }
            let fired = self.rule_commit(app, out)
                || self.rule_round_skip(app, out)
                || self.rule_prevote_on_proposal(app, out)
                || self.rule_polka(app, out)
                || self.rule_polka_nil(out)
                || self.rule_schedule_timeouts(out);
            if !fired {
                return;
            }
        }
    }

    /// Lines 49-54: a proposal and precommits of more than 2/3 for it, any round.
    fn rule_commit(&mut self, app: &mut dyn ConsensusApp, out: &mut Vec<Output>) -> bool {
        let mut found = None;
        for (&r, rs) in &self.rounds {
            if let Some((sp, hash)) = &rs.proposal
                && self
                    .validators
                    .is_quorum(rs.precommits.power_for(&Some(*hash)))
            {
                found = Some((r, sp.proposal.block.clone(), *hash));
                break;
            }
        }
        let Some((r, block, hash)) = found else {
            return false;
        };
        if !self.is_valid(&block, hash, app) {
            return false;
        }
        let sigs = self
            .rounds
            .get(&r)
            .map(|rs| {
                rs.precommits
                    .votes
                    .values()
                    .filter(|v| v.vote.block_hash == Some(hash))
                    .map(|v| CommitSig {
                        validator: v.vote.validator,
                        sig: v.sig,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let cert = CommitCertificate {
            height: self.height,
            round: r,
            block_hash: hash,
            sigs,
        };
        self.decided = true;
        out.push(Output::Commit { block, cert });
        true
    }

    /// Lines 55-56: more than 1/3 of the power is in a later round.
    fn rule_round_skip(&mut self, app: &mut dyn ConsensusApp, out: &mut Vec<Output>) -> bool {
        let target = self
            .rounds
            .range(self.round + 1..)
            .filter(|(_, rs)| self.validators.is_one_third(rs.senders.values().sum()))
            .map(|(&r, _)| r)
            .next_back();
        match target {
            Some(r) => {
                self.start_round(r, app, out);
                true
            }
            None => false,
        }
    }

    /// Lines 22-33: prevote on the current round's proposal.
    fn rule_prevote_on_proposal(
        &mut self,
        app: &mut dyn ConsensusApp,
        out: &mut Vec<Output>,
    ) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some((sp, hash)) = self
            .rounds
            .get(&self.round)
            .and_then(|rs| rs.proposal.clone())
        else {
            return false;
        };
        let locked_hash = self.locked.as_ref().map(|(_, b)| b.hash());
        let vote = match sp.proposal.valid_round {
            None => {
                let ok = self.is_valid(&sp.proposal.block, hash, app)
                    && (locked_hash.is_none() || locked_hash == Some(hash));
                ok.then_some(hash)
            }
            Some(vr) => {
                let polka = vr < self.round
                    && self.rounds.get(&vr).is_some_and(|rs| {
                        self.validators
                            .is_quorum(rs.prevotes.power_for(&Some(hash)))
                    });
                if !polka {
                    return false;
                }
                let locked_round = self.locked.as_ref().map(|(r, _)| *r);
                let ok = self.is_valid(&sp.proposal.block, hash, app)
                    && (locked_round.is_none_or(|lr| lr <= vr) || locked_hash == Some(hash));
                ok.then_some(hash)
            }
        };
        self.sign_vote(VoteStep::Prevote, vote, out);
        self.step = Step::Prevote;
        true
    }

    /// Lines 36-43: a proposal and prevotes of more than 2/3 for it: lock and precommit.
    fn rule_polka(&mut self, app: &mut dyn ConsensusApp, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote {
            return false;
        }
        let round = self.round;
        let Some(rs) = self.rounds.get(&round) else {
            return false;
        };
        if rs.polka_handled {
            return false;
        }
        let Some((sp, hash)) = rs.proposal.clone() else {
            return false;
        };
        if !self
            .validators
            .is_quorum(rs.prevotes.power_for(&Some(hash)))
        {
            return false;
        }
        if !self.is_valid(&sp.proposal.block, hash, app) {
            return false;
        }
        if let Some(rs) = self.rounds.get_mut(&round) {
            rs.polka_handled = true;
        }
        let block = sp.proposal.block;
        if self.step == Step::Prevote {
            self.locked = Some((round, block.clone()));
            self.sign_vote(VoteStep::Precommit, Some(hash), out);
            self.step = Step::Precommit;
        }
        self.valid = Some((round, block));
        true
    }

    /// Lines 44-46: prevotes of more than 2/3 for nil: precommit nil.
    fn rule_polka_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote {
            return false;
        }
        let nil = self
            .rounds
            .get(&self.round)
            .is_some_and(|rs| self.validators.is_quorum(rs.prevotes.power_for(&None)));
        if !nil {
            return false;
        }
        self.sign_vote(VoteStep::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// Lines 34-35 and 47-48: schedule the prevote and precommit timeouts once per round.
    fn rule_schedule_timeouts(&mut self, out: &mut Vec<Output>) -> bool {
        let quorum_prevotes;
        let quorum_precommits;
        {
            let Some(rs) = self.rounds.get(&self.round) else {
                return false;
            };
            // The paper waits for 2f+1 votes of the step before scheduling;
            // with lossy links (no gossip retransmission) those may never
            // arrive, so the timeout is also armed on entering the step.
            // Leaving a round is always safe; this only helps liveness.
            quorum_prevotes = self.step == Step::Prevote && !rs.prevote_timeout_scheduled;
            quorum_precommits = !rs.precommit_timeout_scheduled
                && (self.step == Step::Precommit || self.validators.is_quorum(rs.precommits.total));
        }
        if quorum_prevotes {
            self.schedule(TimeoutStep::Prevote, out);
        }
        if quorum_precommits {
            self.schedule(TimeoutStep::Precommit, out);
        }
        if let Some(rs) = self.rounds.get_mut(&self.round) {
            rs.prevote_timeout_scheduled |= quorum_prevotes;
            rs.precommit_timeout_scheduled |= quorum_precommits;
        }
        quorum_prevotes || quorum_precommits
    }
}
