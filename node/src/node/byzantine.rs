//! A test-only Byzantine mode: a validator that attacks the network it runs
//! in, so multi-process tests can check that honest validators keep one
//! history against it. Enabled only by `qward run --byzantine STRATEGY` with
//! `QWARD_BYZANTINE_TEST=1` in the environment; never in a real deployment.
//!
//! The driver hands every consensus message this node would send to
//! [`Byzantine::outgoing`], and every honest proposal it hears to
//! [`Byzantine::relay`]; what they return is published instead.

use qward_core::chain::{Block, Hash, build_block};
use qward_core::consensus::{ConsensusMessage, Proposal, Vote, VoteStep};
use qward_core::identity::Identity;

use super::view::ChainView;

/// The environment variable that must be `1` for the mode to start.
pub const ENABLE_ENV: &str = "QWARD_BYZANTINE_TEST";

/// How the validator misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Signs a second, conflicting vote for every vote and a second valid
    /// block for every proposal, and sends both.
    Equivocate,
    /// Sends every message with one byte of a signature flipped, and relays
    /// honest proposals with one transaction-signature byte flipped.
    Corrupt,
    /// Sends nothing at all.
    Withhold,
    /// Adds a burst of votes for random blocks in later rounds to each vote.
    Flood,
    /// Proposes blocks with a wrong state root (validly signed).
    InvalidProposals,
    /// Sends its proposals and votes only every other height (a selective
    /// sender, as seen from a gossip network).
    Selective,
    /// Each strategy in turn, eight heights each (see [`MIXED`]).
    Mixed,
}

/// The order of [`Strategy::Mixed`]: what honest nodes can only ignore
/// first; then equivocation, whose evidence costs the validator its power;
/// then corrupted signatures, which gossip scoring answers by cutting the
/// sender off (played earlier, they would hide the equivocation).
const MIXED: [Strategy; 6] = [
    Strategy::InvalidProposals,
    Strategy::Flood,
    Strategy::Withhold,
    Strategy::Selective,
    Strategy::Equivocate,
    Strategy::Corrupt,
];
/// Heights each strategy of [`Strategy::Mixed`] is played for.
const HEIGHTS_PER_STRATEGY: u64 = 8;
/// Votes added to each vote by [`Strategy::Flood`].
const FLOOD_VOTES: u32 = 40;

/// The Byzantine behaviour of one node.
#[derive(Debug)]
pub struct Byzantine {
    strategy: Strategy,
    identity: Identity,
    counter: u64,
}

impl Byzantine {
    pub fn new(strategy: Strategy, identity: Identity) -> Self {
        Byzantine {
            strategy,
            identity,
            counter: 0,
        }
    }

    /// The strategy played at `height`.
    pub fn strategy_at(&self, height: u64) -> Strategy {
        match self.strategy {
            Strategy::Mixed => {
                let i = (height / HEIGHTS_PER_STRATEGY) as usize % MIXED.len();
                MIXED[i]
            }
            s => s,
        }
    }

    fn random_hash(&mut self) -> Hash {
        self.counter += 1;
        let mut seed = self.identity.account().0.to_vec();
        seed.extend_from_slice(&self.counter.to_le_bytes());
        Hash::digest("qward/byzantine/random", &seed)
    }

    /// What to publish instead of `msg`, one of this node's own messages.
    pub fn outgoing(&mut self, msg: ConsensusMessage, view: &ChainView) -> Vec<ConsensusMessage> {
        let genesis = view.state.genesis_hash;
        let strategy = self.strategy_at(msg.height());
        match strategy {
            Strategy::Withhold => Vec::new(),
            Strategy::Selective => {
                if msg.height().is_multiple_of(2) {
                    vec![msg]
                } else {
                    Vec::new()
                }
            }
            Strategy::Corrupt => {
                let mut bad = msg.clone();
                match &mut bad {
                    ConsensusMessage::Vote(v) => v.sig.0[7] ^= 1,
                    ConsensusMessage::Proposal(p) => p.sig.0[7] ^= 1,
                }
                vec![bad, msg]
            }
            Strategy::Flood => {
                let mut out = vec![msg.clone()];
                if let ConsensusMessage::Vote(v) = &msg {
                    for r in 1..=FLOOD_VOTES {
                        let hash = self.random_hash();
                        let vote = Vote {
                            round: v.vote.round.saturating_add(r),
                            block_hash: Some(hash),
                            ..v.vote.clone()
                        };
                        out.push(ConsensusMessage::Vote(vote.sign(&genesis, &self.identity)));
                    }
                }
                out
            }
            Strategy::InvalidProposals => match msg {
                ConsensusMessage::Proposal(p) => {
                    let mut block = p.proposal.block.clone();
                    block.header.state_root = self.random_hash();
                    let bad = Proposal {
                        block,
                        ..p.proposal.clone()
                    }
                    .sign_with_polka(p.polka.clone(), &genesis, &self.identity);
                    vec![ConsensusMessage::Proposal(Box::new(bad))]
                }
                vote => vec![vote],
            },
            Strategy::Equivocate => {
                let twin = match &msg {
                    ConsensusMessage::Vote(v) => {
                        let other = match v.vote.block_hash {
                            Some(_) if v.vote.step == VoteStep::Prevote => None,
                            _ => Some(self.random_hash()),
                        };
                        ConsensusMessage::Vote(
                            Vote {
                                block_hash: other,
                                ..v.vote.clone()
                            }
                            .sign(&genesis, &self.identity),
                        )
                    }
                    ConsensusMessage::Proposal(p) => {
                        let block = second_block(view, &p.proposal.block);
                        ConsensusMessage::Proposal(Box::new(
                            Proposal {
                                block,
                                ..p.proposal.clone()
                            }
                            .sign(&genesis, &self.identity),
                        ))
                    }
                };
                vec![twin, msg]
            }
            Strategy::Mixed => vec![msg],
        }
    }

    /// What to publish on hearing `msg` from another validator: with
    /// [`Strategy::Corrupt`], an honest proposal copied with one byte of a
    /// transaction signature (or, with no transaction, of the state root)
    /// flipped, under the honest proposer's signature.
    pub fn relay(&mut self, msg: &ConsensusMessage) -> Option<ConsensusMessage> {
        let ConsensusMessage::Proposal(p) = msg else {
            return None;
        };
        if self.strategy_at(p.proposal.height) != Strategy::Corrupt
            || p.proposal.proposer == self.identity.account()
        {
            return None;
        }
        let mut copy = p.clone();
        match copy.proposal.block.txs.first_mut() {
            Some(tx) => tx.sig.0[33] ^= 1,
            None => copy.proposal.block.header.state_root.0[0] ^= 1,
        }
        Some(ConsensusMessage::Proposal(copy))
    }
}

/// A second valid block for the same height and round: the same parent, a
/// millisecond later, no transactions.
fn second_block(view: &ChainView, block: &Block) -> Block {
    let (second, _) = build_block(
        &view.state,
        &view.tip,
        block.header.round,
        block.header.time_ms + 1,
        std::iter::empty(),
        0,
    );
    second
}
