//! The TOML genesis spec and genesis file: hospitals (validators), initial
//! members, consensus parameters; conversion to the canonical [`Genesis`].
//!
//! The spec is what people write; the genesis file is the same format with
//! every field explicit plus `hash`, the canonical genesis hash, which
//! [`crate::load_genesis`] checks so an edited file is refused.

use serde::{Deserialize, Serialize};

use qward_core::chain::{Genesis, GenesisMember, Validator};
use qward_core::consensus::ConsensusParams;
use qward_core::identity::{AccountId, Role};

use crate::GenesisError;

/// Consensus parameters in TOML; missing fields take the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSpec {
    #[serde(default = "d_propose")]
    pub timeout_propose_ms: u64,
    #[serde(default = "d_prevote")]
    pub timeout_prevote_ms: u64,
    #[serde(default = "d_precommit")]
    pub timeout_precommit_ms: u64,
    #[serde(default = "d_delta")]
    pub timeout_delta_ms: u64,
    #[serde(default = "d_max_txs")]
    pub max_block_txs: u32,
    /// Blocks a governance proposal (admit a hospital, change a validator,
    /// revoke another hospital's member) stays open for votes.
    #[serde(default = "d_proposal_ttl")]
    pub proposal_ttl_blocks: u64,
    /// Time between blocks while there are transactions to commit.
    #[serde(default = "d_block_time")]
    pub block_time_ms: u64,
    /// With nothing to commit, the longest time without a block (the
    /// heartbeat); equal to `block_time_ms` for a block every block time.
    #[serde(default = "d_empty_interval")]
    pub empty_block_interval_ms: u64,
}

fn d_propose() -> u64 {
    ConsensusParams::default().timeout_propose_ms
}
fn d_prevote() -> u64 {
    ConsensusParams::default().timeout_prevote_ms
}
fn d_precommit() -> u64 {
    ConsensusParams::default().timeout_precommit_ms
}
fn d_delta() -> u64 {
    ConsensusParams::default().timeout_delta_ms
}
fn d_max_txs() -> u32 {
    ConsensusParams::default().max_block_txs
}
fn d_proposal_ttl() -> u64 {
    ConsensusParams::default().proposal_ttl_blocks
}
fn d_block_time() -> u64 {
    ConsensusParams::default().block_timing.block_time_ms
}
fn d_empty_interval() -> u64 {
    ConsensusParams::default()
        .block_timing
        .empty_block_interval_ms
}
fn d_power() -> u64 {
    1
}
fn d_true() -> bool {
    true
}

impl Default for ConsensusSpec {
    fn default() -> Self {
        ConsensusSpec::from(&ConsensusParams::default())
    }
}

impl From<&ConsensusParams> for ConsensusSpec {
    fn from(p: &ConsensusParams) -> Self {
        ConsensusSpec {
            timeout_propose_ms: p.timeout_propose_ms,
            timeout_prevote_ms: p.timeout_prevote_ms,
            timeout_precommit_ms: p.timeout_precommit_ms,
            timeout_delta_ms: p.timeout_delta_ms,
            max_block_txs: p.max_block_txs,
            proposal_ttl_blocks: p.proposal_ttl_blocks,
            block_time_ms: p.block_timing.block_time_ms,
            empty_block_interval_ms: p.block_timing.empty_block_interval_ms,
        }
    }
}

impl From<&ConsensusSpec> for ConsensusParams {
    fn from(s: &ConsensusSpec) -> Self {
        ConsensusParams {
            timeout_propose_ms: s.timeout_propose_ms,
            timeout_prevote_ms: s.timeout_prevote_ms,
            timeout_precommit_ms: s.timeout_precommit_ms,
            timeout_delta_ms: s.timeout_delta_ms,
            max_block_txs: s.max_block_txs,
            proposal_ttl_blocks: s.proposal_ttl_blocks,
            block_timing: qward_core::consensus::BlockTiming {
                block_time_ms: s.block_time_ms,
                empty_block_interval_ms: s.empty_block_interval_ms,
            },
        }
    }
}

/// A hospital: each brings its own public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalSpec {
    /// A label for people (not on the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The hospital's ed25519 public key, 64 hex digits.
    pub account: String,
    /// Voting power when it validates.
    #[serde(default = "d_power")]
    pub power: u64,
    /// Whether it validates from block 1.
    #[serde(default = "d_true")]
    pub validator: bool,
}

/// A non-hospital member present from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub account: String,
    /// doctor, patient or auditor (hospitals go under `[[hospitals]]`).
    pub role: String,
}

/// A genesis spec, or (with `hash`) a genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSpec {
    /// In a genesis file: the canonical genesis hash, checked on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    pub network: String,
    pub chain_id: u64,
    /// Unix milliseconds of the genesis (block 1 must be later).
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub consensus: ConsensusSpec,
    pub hospitals: Vec<HospitalSpec>,
    #[serde(default)]
    pub members: Vec<MemberSpec>,
}

fn account(s: &str, what: &str) -> Result<AccountId, GenesisError> {
    let a = AccountId::from_hex(s).map_err(|e| GenesisError::Spec(format!("{what}: {e}")))?;
    a.verifying_key().map_err(|_| {
        GenesisError::Spec(format!("{what}: {s} is not a valid ed25519 public key"))
    })?;
    Ok(a)
}

impl GenesisSpec {
    /// Parses a spec or genesis file.
    pub fn from_toml(text: &str) -> Result<Self, GenesisError> {
        toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))
    }

    pub fn to_toml(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self).map_err(|e| GenesisError::Toml(e.to_string()))
    }

    /// The canonical genesis (validated).
    pub fn to_genesis(&self) -> Result<Genesis, GenesisError> {
        let mut members = Vec::new();
        let mut validators = Vec::new();
        for (i, h) in self.hospitals.iter().enumerate() {
            let acc = account(&h.account, &format!("hospital {}", i + 1))?;
            members.push(GenesisMember {
                account: acc,
                role: Role::Hospital,
            });
            if h.validator {
                validators.push(Validator {
                    account: acc,
                    power: h.power,
                });
            }
        }
        for (i, m) in self.members.iter().enumerate() {
            let what = format!("member {}", i + 1);
            let acc = account(&m.account, &what)?;
            let role: Role = m
                .role
                .parse()
                .map_err(|e: String| GenesisError::Spec(format!("{what}: {e}")))?;
            if role == Role::Hospital {
                return Err(GenesisError::Spec(format!(
                    "{what}: list hospitals under [[hospitals]], not [[members]]"
                )));
            }
            members.push(GenesisMember { account: acc, role });
        }
        let genesis = Genesis {
            network: self.network.clone(),
            chain_id: self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            params: ConsensusParams::from(&self.consensus),
            validators,
            members,
        };
        genesis
            .validate()
            .map_err(|e| GenesisError::Spec(e.to_string()))?;
        Ok(genesis)
    }

    /// The genesis file for `genesis`: every field explicit, with its hash.
    /// Names from `names` (account to label) are kept for people.
    pub fn from_genesis(genesis: &Genesis, names: &dyn Fn(&AccountId) -> Option<String>) -> Self {
        let power = |a: &AccountId| {
            genesis
                .validators
                .iter()
                .find(|v| v.account == *a)
                .map(|v| v.power)
        };
        GenesisSpec {
            hash: Some(genesis.hash().to_hex()),
            network: genesis.network.clone(),
            chain_id: genesis.chain_id,
            genesis_time_ms: genesis.genesis_time_ms,
            consensus: ConsensusSpec::from(&genesis.params),
            hospitals: genesis
                .members
                .iter()
                .filter(|m| m.role == Role::Hospital)
                .map(|m| HospitalSpec {
                    name: names(&m.account),
                    account: m.account.to_hex(),
                    power: power(&m.account).unwrap_or(1),
                    validator: power(&m.account).is_some(),
                })
                .collect(),
            members: genesis
                .members
                .iter()
                .filter(|m| m.role != Role::Hospital)
                .map(|m| MemberSpec {
                    name: names(&m.account),
                    account: m.account.to_hex(),
                    role: m.role.as_str().to_string(),
                })
                .collect(),
        }
    }
}
