//! The Tendermint-style consensus state machine (sans-IO): propose, prevote,
//! precommit with locking, round change with growing timeouts, immediate
//! finality. It takes messages and timeouts and returns what to persist,
//! broadcast, schedule and commit, and evidence of equivocation.
//!
//! Rules follow Buchman, Kwon and Milosevic, "The latest gossip on BFT
//! consensus" (2018), Algorithm 1; comments name the paper's line numbers.

use std::collections::{BTreeMap, BTreeSet};

use crate::chain::{Block, CommitCertificate, CommitSig, Hash, ValidatorSet, verify_vote_quorum};
use crate::identity::{AccountId, Identity};

use super::safety::SafetyState;
use super::timeouts::{ConsensusParams, Timeout, TimeoutStep};
use super::types::{
    ConsensusMessage, Evidence, PROPOSE_CODE, Proposal, SignedProposal, SignedVote, Vote, VoteStep,
};

/// Messages more than this many rounds ahead are dropped (bounds memory).
pub const MAX_ROUNDS_AHEAD: u32 = 64;
/// Rounds above the current one in which one validator's messages are kept:
/// its highest ones. A validator flooding messages for many future rounds
/// only ever occupies this many (an honest one is in one round at a time).
pub const MAX_FUTURE_ROUNDS_PER_VALIDATOR: usize = 2;
/// Messages buffered for future heights, at most (all signers together).
pub const MAX_FUTURE_MESSAGES: usize = 4096;
/// Messages buffered for future heights per signer, at most (fewer when the
/// validator set is so large that all of them would exceed
/// [`MAX_FUTURE_MESSAGES`]): one validator cannot fill the buffer.
pub const MAX_FUTURE_MESSAGES_PER_SIGNER: usize = 64;
/// Proposals (which carry whole blocks) buffered for future heights per signer.
pub const MAX_FUTURE_PROPOSALS_PER_SIGNER: usize = 2;
/// Messages for heights more than this far above the current one are not
/// buffered (they still count towards [`Consensus::sync_target`]).
pub const MAX_HEIGHTS_AHEAD: u64 = 2;

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

/// One validator's votes in one round and step: the first, and at most one
/// that conflicts with it (kept to count and to prove the equivocation).
#[derive(Debug)]
struct ValidatorVotes {
    first: SignedVote,
    conflicting: Option<SignedVote>,
    power: u64,
}

/// The votes of one round and step, at most two per validator. An
/// equivocating validator's votes count once for each of the (at most two)
/// blocks they name: safe, because two quorums for different blocks would
/// need more than f validators voting for both; and needed, so that a polka
/// relayed to a node that first saw the conflicting vote counts. Any further
/// conflicting vote is dropped: a validator signing votes for millions of
/// random hashes costs this set two entries.
#[derive(Debug, Default)]
struct VoteSet {
    by_validator: BTreeMap<AccountId, ValidatorVotes>,
    power: BTreeMap<Option<Hash>, u64>,
    total: u64,
}

impl VoteSet {
    /// Adds a vote; returns the validator's first vote if this one is the
    /// first to conflict with it (the equivocation to report).
    fn add(&mut self, vote: SignedVote, power: u64) -> Option<SignedVote> {
        let (validator, hash) = (vote.vote.validator, vote.vote.block_hash);
        let Some(entry) = self.by_validator.get_mut(&validator) else {
            *self.power.entry(hash).or_default() += power;
            self.total += power;
            self.by_validator.insert(
                validator,
                ValidatorVotes {
                    first: vote,
                    conflicting: None,
                    power,
                },
            );
            return None;
        };
        if entry.first.vote.block_hash == hash || entry.conflicting.is_some() {
            return None;
        }
        *self.power.entry(hash).or_default() += entry.power;
        let first = entry.first.clone();
        entry.conflicting = Some(vote);
        Some(first)
    }

    /// Forgets `validator`'s votes (and their power).
    fn remove(&mut self, validator: &AccountId) {
        let Some(entry) = self.by_validator.remove(validator) else {
            return;
        };
        self.total = self.total.saturating_sub(entry.power);
        let hashes = std::iter::once(entry.first.vote.block_hash)
            .chain(entry.conflicting.map(|v| v.vote.block_hash));
        for hash in hashes {
            if let Some(p) = self.power.get_mut(&hash) {
                *p = p.saturating_sub(entry.power);
                if *p == 0 {
                    self.power.remove(&hash);
                }
            }
        }
    }

    fn power_for(&self, hash: &Option<Hash>) -> u64 {
        self.power.get(hash).copied().unwrap_or(0)
    }

    /// The signatures of the votes for `hash`, sorted by validator (at most
    /// one per validator: its first and conflicting votes differ): what a
    /// commit certificate or a polka carries.
    fn sigs_for(&self, hash: &Option<Hash>) -> Vec<CommitSig> {
        self.votes()
            .filter(|v| v.vote.block_hash == *hash)
            .map(|v| CommitSig {
                validator: v.vote.validator,
                sig: v.sig,
            })
            .collect()
    }

    /// Every stored vote, by validator (each validator's first vote first).
    fn votes(&self) -> impl Iterator<Item = &SignedVote> {
        self.by_validator
            .values()
            .flat_map(|e| std::iter::once(&e.first).chain(e.conflicting.as_ref()))
    }

    fn len(&self) -> usize {
        self.by_validator
            .values()
            .map(|e| 1 + usize::from(e.conflicting.is_some()))
            .sum()
    }
}

#[derive(Debug, Default)]
struct RoundState {
    /// The proposal and its block hash (which pins every byte of the
    /// block: a proposal whose transactions are not the ones its header
    /// names does not verify).
    proposal: Option<(SignedProposal, Hash)>,
    prevotes: VoteSet,
    precommits: VoteSet,
    senders: BTreeMap<AccountId, u64>,
    prevote_timeout_scheduled: bool,
    precommit_timeout_scheduled: bool,
    polka_handled: bool,
    /// The round's proposer sent a proposal with a polka that does not
    /// prove itself; its further proposals in this round are not checked.
    proposal_refused: bool,
}

impl RoundState {
    /// Forgets everything `validator` sent in this round.
    fn remove(&mut self, validator: &AccountId) {
        self.prevotes.remove(validator);
        self.precommits.remove(validator);
        if self
            .proposal
            .as_ref()
            .is_some_and(|(sp, _)| sp.proposal.proposer == *validator)
        {
            self.proposal = None;
        }
        self.senders.remove(validator);
    }
}

/// What this node has seen of heights above its own: per validator of the
/// current set, the highest height it signed a message for (so bounded by
/// the set's size, whatever the message count).
#[derive(Debug, Default)]
struct LaterHeights {
    seen: BTreeMap<AccountId, u64>,
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
    /// Validity by block hash.
    validity: BTreeMap<Hash, bool>,
    /// Verified messages for later heights, per signer.
    future: BTreeMap<AccountId, Vec<ConsensusMessage>>,
    evidence_seen: BTreeSet<(AccountId, u32, u8)>,
    later: LaterHeights,
    /// The proposal and certificate of this node's last commit, re-sent to
    /// validators still at that height (once per round of ours): without
    /// them a validator that lost them could never finish that height.
    last_commit: Option<(SignedProposal, CommitCertificate)>,
    last_commit_sent_in: Option<(u64, u32)>,
}

impl Consensus {
    /// A consensus instance for the chain (`chain_id`, `genesis_hash`): only
    /// messages signed for both count. `identity` is `None` for a node that
    /// follows without voting; `safety` is the persisted signing record.
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
            future: BTreeMap::new(),
            evidence_seen: BTreeSet::new(),
            later: LaterHeights::default(),
            last_commit: None,
            last_commit_sent_in: None,
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

    /// Whether validators holding more than a third of the power have sent
    /// verified messages for `height` or later, so at least one correct
    /// validator has started it. A node holding `height` back for want of
    /// transactions starts it then; one faulty validator (a third of the
    /// power or less) cannot make the others start early.
    pub fn started_elsewhere(&self, height: u64) -> bool {
        let power = self
            .later
            .seen
            .iter()
            .filter(|(_, h)| **h >= height)
            .filter_map(|(a, _)| self.validators.power_of(a))
            .fold(0u64, u64::saturating_add);
        self.validators.is_one_third(power)
    }

    /// Whether this node is behind: `Some(h)` with `h > height()` means the
    /// blocks below `h` are final elsewhere, so the driver should fetch the
    /// blocks above its tip from peers, import them and call
    /// [`Consensus::start_height`]. `h` is the highest of:
    /// - the height at or above which validators holding more than 1/3 of
    ///   the power (so at least one honest one, and an honest validator only
    ///   moves past a final height) signed messages. This covers a commit
    ///   certificate's worth (more than 2/3) of precommits at a later height;
    /// - `height() + 1` when more than 2/3 of the power precommitted a block
    ///   at this height whose proposal this node lacks (or holds in an
    ///   invalid version), so it cannot commit that block itself.
    ///
    /// Only verified messages of validators of the current set count, once
    /// per signer: a flood from one validator, however long, moves nothing.
    /// A query, not an output: the driver polls it on its sync tick.
    pub fn sync_target(&self) -> Option<u64> {
        let mut seen: Vec<(u64, u64)> = self
            .later
            .seen
            .iter()
            .filter_map(|(a, &h)| self.validators.power_of(a).map(|p| (h, p)))
            .collect();
        seen.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        let mut power = 0u64;
        let mut moved_on = 0;
        for (h, p) in seen {
            power = power.saturating_add(p);
            if self.validators.is_one_third(power) {
                moved_on = h;
                break;
            }
        }
        // Precommits of more than 2/3 for a block at this height whose
        // proposal this node lacks (or holds in a different version): that
        // block is final elsewhere and only sync can bring it.
        let final_here = self.rounds.values().any(|rs| {
            rs.precommits.power.iter().any(|(hash, &power)| {
                hash.is_some()
                    && self.validators.is_quorum(power)
                    && rs.proposal.as_ref().is_none_or(|(_, h)| {
                        Some(*h) != *hash || self.validity.get(h) == Some(&false)
                    })
            })
        });
        let target = if final_here && !self.decided {
            moved_on.max(self.height + 1)
        } else {
            moved_on
        };
        (target > self.height).then_some(target)
    }

    /// Votes stored for the current height (all rounds): at most two per
    /// validator, step and kept round.
    pub fn stored_votes(&self) -> usize {
        self.rounds
            .values()
            .map(|rs| rs.prevotes.len() + rs.precommits.len())
            .sum()
    }

    /// Rounds of the current height with stored messages.
    pub fn stored_rounds(&self) -> usize {
        self.rounds.len()
    }

    /// Messages buffered for later heights.
    pub fn buffered_messages(&self) -> usize {
        self.future.values().map(Vec::len).sum()
    }

    pub fn safety(&self) -> &SafetyState {
        &self.safety
    }

    /// Stops signing for good: the machine goes on following the chain
    /// (counting others' votes, deciding, committing) but signs no proposal
    /// or vote again, not even the re-send of one already signed. For a node
    /// whose key is seen signing in another process.
    pub fn stop_signing(&mut self) {
        self.identity = None;
    }

    /// Whether the machine may still sign.
    pub fn is_signing(&self) -> bool {
        self.identity.is_some()
    }

    fn me(&self) -> Option<AccountId> {
        self.identity.as_ref().map(Identity::account)
    }

    /// Starts consensus on `height` with the validator set that certifies it
    /// (paper line 10). Resumes the round and lock of the persisted record.
    /// Valid in any state: after this node's own commit, or after the driver
    /// imported blocks from peers (the machine may then still be mid-round,
    /// or decided on a block whose import failed, at a lower height).
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
        let set = &self.validators;
        self.later.seen.retain(|a, _| set.contains(a));
        let mut now = Vec::new();
        for list in self.future.values_mut() {
            let (current, rest): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .filter(|m| m.height() >= height)
                .partition(|m| m.height() == height);
            now.extend(current);
            *list = rest;
        }
        self.future.retain(|_, list| !list.is_empty());
        let mut out = Vec::new();
        self.start_round(round, app, &mut out);
        for msg in now {
            self.accept_verified(msg, &mut out);
        }
        self.process(app, &mut out);
        out
    }

    /// Handles a message from the network (or this node's own, echoed back).
    pub fn on_message(&mut self, msg: ConsensusMessage, app: &mut dyn ConsensusApp) -> Vec<Output> {
        self.on_any_message(msg, false, app)
    }

    /// [`Consensus::on_message`] for a message whose
    /// [`ConsensusMessage::verify`] against this machine's genesis hash the
    /// caller already checked (a gossip validator), so each signature is
    /// verified once. Everything else is checked as usual.
    pub fn on_verified_message(
        &mut self,
        msg: ConsensusMessage,
        app: &mut dyn ConsensusApp,
    ) -> Vec<Output> {
        self.on_any_message(msg, true, app)
    }

    fn on_any_message(
        &mut self,
        msg: ConsensusMessage,
        verified: bool,
        app: &mut dyn ConsensusApp,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if msg.chain_id() != self.chain_id {
            return out;
        }
        if msg.height() > self.height {
            self.on_later_height(msg, verified);
            return out;
        }
        if msg.height() < self.height {
            self.resend_last_commit(&msg, &mut out);
            return out;
        }
        if self.decided {
            return out;
        }
        let accepted = if verified {
            self.validators.contains(&msg.signer()) && self.accept_verified(msg, &mut out)
        } else {
            self.accept(msg, &mut out)
        };
        if accepted {
            self.process(app, &mut out);
        }
        out
    }

    /// Re-sends the last commit's proposal and precommits when a validator
    /// is heard at that height (the one below ours), at most once per round
    /// of ours: the Tendermint gossip of the last commit to peers behind.
    fn resend_last_commit(&mut self, msg: &ConsensusMessage, out: &mut Vec<Output>) {
        let Some((sp, cert)) = &self.last_commit else {
            return;
        };
        let now = (self.height, self.round);
        if cert.height != msg.height()
            || self.last_commit_sent_in == Some(now)
            || !self.validators.contains(&msg.signer())
        {
            return;
        }
        self.last_commit_sent_in = Some(now);
        out.push(Output::Broadcast(ConsensusMessage::Proposal(Box::new(
            sp.clone(),
        ))));
        for cs in &cert.sigs {
            let vote = Vote {
                chain_id: self.chain_id,
                height: cert.height,
                round: cert.round,
                step: VoteStep::Precommit,
                block_hash: Some(cert.block_hash),
                validator: cs.validator,
            };
            out.push(Output::Broadcast(ConsensusMessage::Vote(SignedVote {
                vote,
                sig: cs.sig,
            })));
        }
    }

    /// A message for a later height: counts towards [`Consensus::sync_target`]
    /// (once per signer) and is buffered, a bounded number per signer, for
    /// when this node gets there. Signatures are checked only when the
    /// message can change something, so a repeated flood costs no crypto.
    fn on_later_height(&mut self, msg: ConsensusMessage, verified: bool) {
        let signer = msg.signer();
        if !self.validators.contains(&signer) {
            return;
        }
        let height = msg.height();
        let raises_seen = self.later.seen.get(&signer).is_none_or(|&h| h < height);
        let bufferable = height <= self.height.saturating_add(MAX_HEIGHTS_AHEAD)
            && !self
                .future
                .get(&signer)
                .is_some_and(|list| list.contains(&msg));
        if !(raises_seen || bufferable) {
            return;
        }
        if !verified && msg.verify(&self.genesis_hash).is_err() {
            return;
        }
        if raises_seen {
            self.later.seen.insert(signer, height);
        }
        if bufferable {
            self.buffer(signer, msg);
        }
    }

    /// Buffers a verified later-height message, evicting the signer's lowest
    /// (height, round) messages beyond its share.
    fn buffer(&mut self, signer: AccountId, msg: ConsensusMessage) {
        let cap = (MAX_FUTURE_MESSAGES / self.validators.len().max(1))
            .clamp(1, MAX_FUTURE_MESSAGES_PER_SIGNER);
        let list = self.future.entry(signer).or_default();
        list.push(msg);
        let is_proposal = |m: &ConsensusMessage| matches!(m, ConsensusMessage::Proposal(_));
        while list.iter().filter(|m| is_proposal(m)).count() > MAX_FUTURE_PROPOSALS_PER_SIGNER {
            let lowest = list
                .iter()
                .enumerate()
                .filter(|(_, m)| is_proposal(m))
                .min_by_key(|(_, m)| (m.height(), m.round()))
                .map(|(i, _)| i);
            if let Some(i) = lowest {
                list.remove(i);
            }
        }
        while list.len() > cap {
            let lowest = list
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| (m.height(), m.round()))
                .map(|(i, _)| i);
            if let Some(i) = lowest {
                list.remove(i);
            }
        }
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
        if msg.round() > self.round.saturating_add(MAX_ROUNDS_AHEAD)
            || !self.validators.contains(&msg.signer())
            || msg.verify(&self.genesis_hash).is_err()
        {
            return false;
        }
        self.accept_verified(msg, out)
    }

    /// [`Consensus::accept`] for a message whose signature was checked.
    fn accept_verified(&mut self, msg: ConsensusMessage, out: &mut Vec<Output>) -> bool {
        let round = msg.round();
        if round > self.round.saturating_add(MAX_ROUNDS_AHEAD) {
            return false;
        }
        let signer = msg.signer();
        let Some(power) = self.validators.power_of(&signer) else {
            return false;
        };
        if let ConsensusMessage::Proposal(sp) = &msg
            && !self.proposal_acceptable(sp)
        {
            return false;
        }
        if !self.make_room(signer, round) {
            return false;
        }
        self.record(msg, power, out)
    }

    /// Whether a proposal may be recorded at all: from the round's proposer,
    /// for this height, with a block of this height whose `header.round` is
    /// the round it was first proposed in: the proposal's round, or for a
    /// re-proposed valid block at most its `valid_round`.
    fn proposal_fits(&self, sp: &SignedProposal) -> bool {
        let p = &sp.proposal;
        let header = &p.block.header;
        let round_ok = match p.valid_round {
            None => header.round == p.round,
            Some(vr) => vr < p.round && header.round <= vr,
        };
        p.proposer == self.validators.proposer(self.height, p.round)
            && p.height == self.height
            && header.height == self.height
            && round_ok
    }

    /// Whether a verified proposal from the network may be recorded: it
    /// fits ([`Consensus::proposal_fits`]), its round holds no proposal yet
    /// (and refused none), and a re-proposal's polka proves more than 2/3
    /// of the prevote power for its block in its `valid_round`. A proposer
    /// that sent a bad polka is not heard again in that round, so its
    /// proposals cost at most one polka check per round.
    fn proposal_acceptable(&mut self, sp: &SignedProposal) -> bool {
        let p = &sp.proposal;
        if !self.proposal_fits(sp)
            || self
                .rounds
                .get(&p.round)
                .is_some_and(|rs| rs.proposal.is_some() || rs.proposal_refused)
        {
            return false;
        }
        let Some(vr) = p.valid_round else {
            return true;
        };
        let proven = verify_vote_quorum(
            &sp.polka,
            VoteStep::Prevote,
            &self.genesis_hash,
            self.chain_id,
            (self.height, vr),
            &p.block.hash(),
            &self.validators,
        )
        .is_ok();
        if !proven {
            self.rounds.entry(p.round).or_default().proposal_refused = true;
        }
        proven
    }

    /// Keeps each validator's messages to [`MAX_FUTURE_ROUNDS_PER_VALIDATOR`]
    /// rounds above the current one: a message for another future round
    /// evicts the validator's lowest one if it is higher, else is dropped.
    /// Rounds up to the current one are always open.
    fn make_room(&mut self, signer: AccountId, round: u32) -> bool {
        if round <= self.round {
            return true;
        }
        let held: Vec<u32> = self
            .rounds
            .range(self.round + 1..)
            .filter(|(_, rs)| rs.senders.contains_key(&signer))
            .map(|(&r, _)| r)
            .collect();
        if held.contains(&round) || held.len() < MAX_FUTURE_ROUNDS_PER_VALIDATOR {
            return true;
        }
        let Some(&lowest) = held.first() else {
            return true;
        };
        if round < lowest {
            return false;
        }
        if let Some(rs) = self.rounds.get_mut(&lowest) {
            rs.remove(&signer);
            if rs.senders.is_empty() && rs.proposal.is_none() {
                self.rounds.remove(&lowest);
            }
        }
        true
    }

    /// Records a verified message (also used for this node's own).
    fn record(&mut self, msg: ConsensusMessage, power: u64, out: &mut Vec<Output>) -> bool {
        let round = msg.round();
        let signer = msg.signer();
        if let ConsensusMessage::Proposal(sp) = &msg
            && (!self.proposal_fits(sp)
                || self
                    .rounds
                    .get(&round)
                    .is_some_and(|rs| rs.proposal.is_some()))
        {
            return false;
        }
        let rs = self.rounds.entry(round).or_default();
        match msg {
            ConsensusMessage::Proposal(sp) => {
                let hash = sp.proposal.block.hash();
                rs.proposal = Some((*sp, hash));
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
                let (block, valid_round, polka) = match self.valid_with_polka() {
                    Some((vr, b, polka)) => (b, Some(vr), polka),
                    None => (app.build_block(self.height, round), None, Vec::new()),
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
                    .sign_with_polka(polka, &self.genesis_hash, identity);
                    let msg = ConsensusMessage::Proposal(Box::new(sp));
                    self.safety
                        .record(self.height, round, PROPOSE_CODE, msg.clone());
                    self.safety.locked = self.locked.clone();
                    out.push(Output::PersistSafety(self.safety.clone()));
                    self.emit_own(msg, out);
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

    /// The valid block (paper: validValue, validRound) with the prevotes
    /// for it in its round, which a re-proposal carries as its polka; `None`
    /// if there is no valid block, or (never expected) its round no longer
    /// holds more than 2/3 of the prevote power for it.
    fn valid_with_polka(&self) -> Option<(u32, Block, Vec<CommitSig>)> {
        let (vr, block) = self.valid.as_ref()?;
        let prevotes = &self.rounds.get(vr)?.prevotes;
        let hash = Some(block.hash());
        self.validators
            .is_quorum(prevotes.power_for(&hash))
            .then(|| (*vr, block.clone(), prevotes.sigs_for(&hash)))
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
                found = Some((r, sp.clone(), *hash));
                break;
            }
        }
        let Some((r, sp, hash)) = found else {
            return false;
        };
        let block = sp.proposal.block.clone();
        if !self.is_valid(&block, hash, app) {
            return false;
        }
        let sigs = self
            .rounds
            .get(&r)
            .map(|rs| rs.precommits.sigs_for(&Some(hash)))
            .unwrap_or_default();
        let cert = CommitCertificate {
            height: self.height,
            round: r,
            block_hash: hash,
            sigs,
        };
        self.decided = true;
        self.last_commit = Some((sp, cert.clone()));
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
            // A recorded re-proposal's polka (prevotes of more than 2/3 for
            // its block in round vr < this round) was checked on receipt
            // (or is this node's own).
            Some(vr) => {
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
