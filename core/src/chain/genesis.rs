//! The canonical genesis: network name, chain id, start time, consensus
//! parameters, the hospitals that validate and the initial members. Its hash
//! is the parent of block 1 and names the chain.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::consensus::ConsensusParams;
use crate::identity::{AccountId, Role};

use super::hash::Hash;
use super::state::{ChainState, Member};
use super::validator_set::{Validator, ValidatorSet};
use super::verify::ChainTip;

/// The largest encoded genesis accepted.
pub const MAX_GENESIS_BYTES: usize = 4 * 1024 * 1024;
/// The longest network name.
pub const MAX_NETWORK_NAME: usize = 64;

/// A member present from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisMember {
    pub account: AccountId,
    pub role: Role,
}

/// The first state of a chain, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    pub network: String,
    pub chain_id: u64,
    pub genesis_time_ms: u64,
    pub params: ConsensusParams,
    /// Hospitals that validate from block 1 (each must also be a hospital member).
    pub validators: Vec<Validator>,
    /// Every initial member, hospitals included.
    pub members: Vec<GenesisMember>,
}

/// Why a genesis is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisRuleError {
    #[error("network name must be 1 to {MAX_NETWORK_NAME} characters of a-z, 0-9, '-' or '_'")]
    BadNetworkName,
    #[error("validator set: {0}")]
    Validators(#[from] super::validator_set::ValidatorSetError),
    #[error("member {0} is listed twice")]
    DuplicateMember(AccountId),
    #[error("validator {0} must be listed as a hospital member")]
    ValidatorNotHospital(AccountId),
    #[error("member {0} is not a valid ed25519 public key")]
    BadKey(AccountId),
    #[error("consensus parameters: {0}")]
    Params(String),
}

impl Genesis {
    /// The genesis hash: the chain's name and block 1's parent.
    pub fn hash(&self) -> Hash {
        Hash::digest("qward/genesis/v1", &self.encode())
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_GENESIS_BYTES)
    }

    /// Checks the rules a genesis must follow.
    pub fn validate(&self) -> Result<(), GenesisRuleError> {
        let name_ok = !self.network.is_empty()
            && self.network.len() <= MAX_NETWORK_NAME
            && self
                .network
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(GenesisRuleError::BadNetworkName);
        }
        self.params.validate().map_err(GenesisRuleError::Params)?;
        let set = ValidatorSet::new(self.validators.clone())?;
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.members {
            if !seen.insert(m.account) {
                return Err(GenesisRuleError::DuplicateMember(m.account));
            }
            if m.account.verifying_key().is_err() {
                return Err(GenesisRuleError::BadKey(m.account));
            }
        }
        for v in set.validators() {
            let is_hospital = self
                .members
                .iter()
                .any(|m| m.account == v.account && m.role == Role::Hospital);
            if !is_hospital {
                return Err(GenesisRuleError::ValidatorNotHospital(v.account));
            }
        }
        Ok(())
    }

    /// The state before block 1.
    pub fn initial_state(&self) -> Result<ChainState, GenesisRuleError> {
        self.validate()?;
        let set = ValidatorSet::new(self.validators.clone())?;
        let mut state = ChainState::new(self.chain_id, self.hash(), set);
        state.proposal_ttl_blocks = self.params.proposal_ttl_blocks;
        state.block_timing = self.params.block_timing;
        for m in &self.members {
            state.put_member(
                m.account,
                Member {
                    role: m.role,
                    active: true,
                    next_nonce: 0,
                    registered_by: None,
                },
            );
        }
        state.touched.0.clear();
        Ok(state)
    }

    /// The tip before block 1: height 0, the genesis hash and time.
    pub fn tip(&self) -> ChainTip {
        ChainTip {
            height: 0,
            hash: self.hash(),
            time_ms: self.genesis_time_ms,
        }
    }
}
