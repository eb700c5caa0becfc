//! Consensus messages and what they sign: proposals, prevotes and precommits
//! over (genesis hash, chain id, height, round, step, block hash) under a
//! domain tag, and
//! the evidence of a validator that signed two votes for one height and round.

use serde::{Deserialize, Serialize};

use crate::chain::{Block, CommitSig, Hash, MAX_BLOCK_BYTES};
use crate::codec::{self, CodecError};
use crate::identity::{self, AccountId, Identity, IdentityError, Sig};

/// The domain tag of prevote and precommit signatures (and certificates).
pub const VOTE_DOMAIN: &str = "qward/vote/v1";
/// The domain tag of proposal signatures.
pub const PROPOSAL_DOMAIN: &str = "qward/proposal/v1";
/// The largest encoded consensus message accepted from the network.
pub const MAX_MESSAGE_BYTES: usize = MAX_BLOCK_BYTES + 4096;

/// The two voting steps of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VoteStep {
    Prevote,
    Precommit,
}

impl VoteStep {
    /// The step's number in signed bytes and safety records (propose is 1).
    pub const fn code(self) -> u8 {
        match self {
            VoteStep::Prevote => 2,
            VoteStep::Precommit => 3,
        }
    }
}

/// The signing step code of a proposal.
pub const PROPOSE_CODE: u8 = 1;

/// The bytes a vote signature covers. The genesis hash binds the vote to one
/// chain, so a key reused on another network with the same `chain_id` (a test
/// net, a fork from another genesis) cannot have its votes replayed here.
pub fn vote_signing_bytes(
    genesis: &Hash,
    chain_id: u64,
    height: u64,
    round: u32,
    step: VoteStep,
    block_hash: Option<&Hash>,
) -> Vec<u8> {
    codec::encode_infallible(&(genesis, chain_id, height, round, step.code(), block_hash))
}

/// The bytes a proposal signature covers (bound to the genesis like votes):
/// the proposal and the digest of the polka it carries ([`polka_digest`]),
/// so nobody but the proposer can strip or alter a re-proposal's polka.
pub fn proposal_signing_bytes(
    genesis: &Hash,
    chain_id: u64,
    height: u64,
    round: u32,
    block_hash: &Hash,
    valid_round: Option<u32>,
    polka: &Hash,
) -> Vec<u8> {
    codec::encode_infallible(&(
        genesis,
        chain_id,
        height,
        round,
        PROPOSE_CODE,
        block_hash,
        valid_round,
        polka,
    ))
}

/// The digest of a polka (prevote signatures), as a proposal signature covers it.
pub fn polka_digest(polka: &[CommitSig]) -> Hash {
    Hash::digest("qward/polka/v1", &codec::encode_infallible(&polka))
}

/// A prevote or precommit for a block (or for nil: no block this round).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub chain_id: u64,
    pub height: u64,
    pub round: u32,
    pub step: VoteStep,
    pub block_hash: Option<Hash>,
    pub validator: AccountId,
}

impl Vote {
    pub fn signing_bytes(&self, genesis: &Hash) -> Vec<u8> {
        vote_signing_bytes(
            genesis,
            self.chain_id,
            self.height,
            self.round,
            self.step,
            self.block_hash.as_ref(),
        )
    }

    /// Signs the vote for the chain of `genesis`; `identity` must be `validator`.
    pub fn sign(self, genesis: &Hash, identity: &Identity) -> SignedVote {
        let sig = identity.sign(VOTE_DOMAIN, &self.signing_bytes(genesis));
        SignedVote { vote: self, sig }
    }
}

/// A vote with the validator's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub sig: Sig,
}

impl SignedVote {
    /// Checks the signature for the chain of `genesis`.
    pub fn verify(&self, genesis: &Hash) -> Result<(), IdentityError> {
        identity::verify(
            &self.vote.validator,
            VOTE_DOMAIN,
            &self.vote.signing_bytes(genesis),
            &self.sig,
        )
    }
}

/// A proposer's block for a height and round, with the round in which it was
/// last seen valid (`valid_round`) when it is re-proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub chain_id: u64,
    pub height: u64,
    pub round: u32,
    pub valid_round: Option<u32>,
    pub proposer: AccountId,
    pub block: Block,
}

impl Proposal {
    /// The signed bytes of this proposal carrying `polka`.
    pub fn signing_bytes(&self, genesis: &Hash, polka: &[CommitSig]) -> Vec<u8> {
        proposal_signing_bytes(
            genesis,
            self.chain_id,
            self.height,
            self.round,
            &self.block.hash(),
            self.valid_round,
            &polka_digest(polka),
        )
    }

    /// Signs the proposal (without a polka: a new block) for the chain of
    /// `genesis`; `identity` must be `proposer`.
    pub fn sign(self, genesis: &Hash, identity: &Identity) -> SignedProposal {
        self.sign_with_polka(Vec::new(), genesis, identity)
    }

    /// Signs a re-proposal together with the polka that justifies it.
    pub fn sign_with_polka(
        self,
        polka: Vec<CommitSig>,
        genesis: &Hash,
        identity: &Identity,
    ) -> SignedProposal {
        let sig = identity.sign(PROPOSAL_DOMAIN, &self.signing_bytes(genesis, &polka));
        SignedProposal {
            proposal: self,
            sig,
            polka,
        }
    }
}

/// A proposal with the proposer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub sig: Sig,
    /// For a re-proposal (`valid_round` set), the justification: prevotes of
    /// more than 2/3 of the power for this block in `valid_round`, sorted by
    /// validator; empty otherwise. The proposer's signature covers their
    /// digest: a relay that strips or alters them makes the copy fail to
    /// verify, so only a Byzantine proposer can send a bad polka (and is not
    /// heard again in that round). Carried in the proposal rather than
    /// relayed beside it because a node may hold two conflicting prevotes
    /// of an equivocating validator already and drop a third, the one the
    /// polka needs: without it, a validator locked on this block could
    /// never win the others over.
    pub polka: Vec<CommitSig>,
}

impl SignedProposal {
    /// Checks the signature for the chain of `genesis`, and that the block's
    /// transactions are the ones its header names. The signature covers the
    /// block hash (of the header) only, so without the second check anyone
    /// could relay an honest proposal with altered transaction bytes under
    /// the proposer's valid signature: a copy that races the genuine one
    /// and makes honest validators prevote nil.
    pub fn verify(&self, genesis: &Hash) -> Result<(), MessageError> {
        identity::verify(
            &self.proposal.proposer,
            PROPOSAL_DOMAIN,
            &self.proposal.signing_bytes(genesis, &self.polka),
            &self.sig,
        )
        .map_err(|_| MessageError::BadSignature)?;
        if !self.proposal.block.body_matches_header() {
            return Err(MessageError::BodyMismatch);
        }
        if self.proposal.valid_round.is_none() != self.polka.is_empty() {
            return Err(MessageError::PolkaMismatch);
        }
        Ok(())
    }
}

/// Why a consensus message does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the proposed block's transactions are not the ones its header names")]
    BodyMismatch,
    #[error("a re-proposal without its polka, or a polka without a valid round")]
    PolkaMismatch,
}

/// What validators gossip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsensusMessage {
    /// Boxed: a proposal carries a block, a vote is small.
    Proposal(Box<SignedProposal>),
    Vote(SignedVote),
}

impl ConsensusMessage {
    pub fn chain_id(&self) -> u64 {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.chain_id,
            ConsensusMessage::Vote(v) => v.vote.chain_id,
        }
    }

    pub fn height(&self) -> u64 {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.height,
            ConsensusMessage::Vote(v) => v.vote.height,
        }
    }

    pub fn round(&self) -> u32 {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.round,
            ConsensusMessage::Vote(v) => v.vote.round,
        }
    }

    /// The validator that signed it.
    pub fn signer(&self) -> AccountId {
        match self {
            ConsensusMessage::Proposal(p) => p.proposal.proposer,
            ConsensusMessage::Vote(v) => v.vote.validator,
        }
    }

    /// Checks the signer's signature for the chain of `genesis` (and a
    /// proposal's block body, see [`SignedProposal::verify`]).
    pub fn verify(&self, genesis: &Hash) -> Result<(), MessageError> {
        match self {
            ConsensusMessage::Proposal(p) => p.verify(genesis),
            ConsensusMessage::Vote(v) => v.verify(genesis).map_err(|_| MessageError::BadSignature),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    /// Decodes a message from the network, refusing more than [`MAX_MESSAGE_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_MESSAGE_BYTES)
    }
}

/// Why evidence does not prove an equivocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two votes are from different validators, heights, rounds, steps or chains")]
    NotSameSlot,
    #[error("the two votes are for the same block; that is no equivocation")]
    SameBlock,
    #[error("a vote signature does not verify")]
    BadSignature,
}

/// Proof that a validator signed two different votes for one height, round and step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The two votes, in canonical order (by encoding), so equal evidence is equal bytes.
    pub first: SignedVote,
    pub second: SignedVote,
}

impl Evidence {
    /// Builds evidence from two conflicting votes, in canonical order.
    pub fn new(a: SignedVote, b: SignedVote) -> Self {
        if codec::encode_infallible(&a) <= codec::encode_infallible(&b) {
            Evidence {
                first: a,
                second: b,
            }
        } else {
            Evidence {
                first: b,
                second: a,
            }
        }
    }

    pub fn offender(&self) -> AccountId {
        self.first.vote.validator
    }

    pub fn height(&self) -> u64 {
        self.first.vote.height
    }

    /// (offender, height, round, step): one piece of evidence per slot.
    pub fn key(&self) -> (AccountId, u64, u32, u8) {
        let v = &self.first.vote;
        (v.validator, v.height, v.round, v.step.code())
    }

    /// Checks that both votes are validly signed by one validator for one
    /// slot of the chain (`genesis`, `chain_id`) and name different blocks.
    pub fn verify(&self, genesis: &Hash, chain_id: u64) -> Result<(), EvidenceError> {
        let (a, b) = (&self.first.vote, &self.second.vote);
        if a.chain_id != chain_id
            || b.chain_id != chain_id
            || a.validator != b.validator
            || a.height != b.height
            || a.round != b.round
            || a.step != b.step
        {
            return Err(EvidenceError::NotSameSlot);
        }
        if a.block_hash == b.block_hash {
            return Err(EvidenceError::SameBlock);
        }
        self.first
            .verify(genesis)
            .and(self.second.verify(genesis))
            .map_err(|_| EvidenceError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::testkit::{TestChain, certify};

    #[test]
    fn signatures_for_one_genesis_do_not_verify_for_another_with_the_same_chain_id() {
        let mut chain = TestChain::new(3, 4);
        let (genesis_a, genesis_b) = (chain.genesis.hash(), Hash([7; 32]));
        let chain_id = chain.genesis.chain_id;
        let key = &chain.keys[0];
        let vote = |hash: Option<Hash>| Vote {
            chain_id,
            height: 1,
            round: 0,
            step: VoteStep::Precommit,
            block_hash: hash,
            validator: key.account(),
        };
        let signed = vote(None).sign(&genesis_a, key);
        assert!(signed.verify(&genesis_a).is_ok());
        assert!(signed.verify(&genesis_b).is_err());
        let msg = ConsensusMessage::Vote(signed.clone());
        assert!(msg.verify(&genesis_b).is_err());

        let other = vote(Some(Hash([1; 32]))).sign(&genesis_a, key);
        let evidence = Evidence::new(signed, other);
        assert_eq!(evidence.verify(&genesis_a, chain_id), Ok(()));
        assert_eq!(
            evidence.verify(&genesis_b, chain_id),
            Err(EvidenceError::BadSignature)
        );

        let block = chain.commit(Vec::new()).block.clone();
        let proposal = Proposal {
            chain_id,
            height: 1,
            round: 0,
            valid_round: None,
            proposer: block.header.proposer,
            block: block.clone(),
        };
        let proposer = chain
            .keys
            .iter()
            .find(|k| k.account() == block.header.proposer)
            .expect("the proposer's key");
        let sp = proposal.sign(&genesis_a, proposer);
        assert!(sp.verify(&genesis_a).is_ok());
        assert!(sp.verify(&genesis_b).is_err());

        let signers: Vec<&Identity> = chain.keys.iter().collect();
        let cert = certify(&genesis_a, chain_id, &block, 0, &signers);
        let set = &chain.state.validators;
        assert!(
            cert.verify(&genesis_a, chain_id, 1, &block.hash(), set)
                .is_ok()
        );
        assert!(
            cert.verify(&genesis_b, chain_id, 1, &block.hash(), set)
                .is_err()
        );
    }
}
