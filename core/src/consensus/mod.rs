//! BFT proof-of-authority consensus with immediate finality (Tendermint
//! style), sans-IO: message types, the state machine, timeouts and the
//! validator's signing record.

pub mod machine;
pub mod safety;
pub mod timeouts;
pub mod types;

#[cfg(any(test, feature = "test-utils"))]
pub mod sim;

#[cfg(test)]
mod machine_tests;
#[cfg(test)]
mod sim_tests;

pub use machine::{Consensus, ConsensusApp, Output, Step};
pub use safety::{SafetyState, SafetyStoreError, load_safety, save_safety};
pub use timeouts::{BlockTiming, ConsensusParams, Timeout, TimeoutStep};
pub use types::{
    ConsensusMessage, Evidence, EvidenceError, MAX_MESSAGE_BYTES, MessageError, PROPOSAL_DOMAIN,
    Proposal, SignedProposal, SignedVote, VOTE_DOMAIN, Vote, VoteStep, polka_digest,
    proposal_signing_bytes, vote_signing_bytes,
};
