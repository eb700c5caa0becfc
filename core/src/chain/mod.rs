//! The permissioned chain: transactions, blocks, certificates, validator set,
//! state transition, genesis, verification and storage. No health data ever
//! goes on the chain, only ids, hashes, roles, consent and audit facts.

#[cfg(test)]
mod attack_tests;
pub mod block;
pub mod certificate;
pub mod error;
pub mod genesis;
pub mod hash;
pub mod lthash;
pub mod state;
pub mod state_entries;
pub mod store;
#[cfg(any(test, feature = "test-utils"))]
pub mod testkit;
#[cfg(test)]
mod tests;
pub mod tx;
pub mod validator_set;
pub mod verify;

pub use block::{Block, BlockHeader, CommittedBlock, MAX_BLOCK_BYTES};
pub use certificate::{CommitCertificate, CommitSig, verify_vote_quorum};
pub use error::{BlockError, CertError, ChainStoreError, TxError};
pub use genesis::{Genesis, GenesisMember, GenesisRuleError};
pub use hash::{Hash, merkle_root};
pub use state::{ChainState, EmergencyEntry, GovernanceAction, Member, OpenProposal, VoteTally};
pub use store::{ChainStore, InitOutcome, TxLocation, VerifyReport};
pub use tx::{
    AccessLogAnchor, ConsentGrant, ConsentScope, EmergencyAccess, ErasureRequest, KeySessionAudit,
    MAX_EMERGENCY_MS, MAX_EMERGENCY_REASON_BYTES, MAX_TX_BYTES, RecordAnchor, RecordErasure,
    SessionOutcome, SignedTransaction, Transaction, TxKind,
};
pub use validator_set::{Validator, ValidatorSet, ValidatorSetError};
pub use verify::{ChainTip, build_block, validate_block, verify_committed};
