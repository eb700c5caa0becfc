//! Consensus parameters and timeouts: each step's timeout grows linearly with
//! the round, so once the network is timely some round is long enough.

use serde::{Deserialize, Serialize};

/// The timing and size parameters every validator must share (part of genesis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusParams {
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    /// Added to every timeout per round (round r waits base + r * delta).
    pub timeout_delta_ms: u64,
    /// The most transactions a proposer puts in a block.
    pub max_block_txs: u32,
    /// Blocks a governance proposal stays open before it expires unpassed.
    #[serde(default = "default_proposal_ttl_blocks")]
    pub proposal_ttl_blocks: u64,
}

fn default_proposal_ttl_blocks() -> u64 {
    crate::chain::state::DEFAULT_PROPOSAL_TTL_BLOCKS
}

impl Default for ConsensusParams {
    fn default() -> Self {
        ConsensusParams {
            timeout_propose_ms: 3000,
            timeout_prevote_ms: 1000,
            timeout_precommit_ms: 1000,
            timeout_delta_ms: 500,
            max_block_txs: 2000,
            proposal_ttl_blocks: default_proposal_ttl_blocks(),
        }
    }
}

impl ConsensusParams {
    /// Checks that the parameters are usable.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            self.timeout_propose_ms,
            self.timeout_prevote_ms,
            self.timeout_precommit_ms,
        ];
        if all.iter().any(|&t| t == 0 || t > 600_000) {
            return Err("every timeout must be between 1 ms and 600000 ms".into());
        }
        if self.timeout_delta_ms > 600_000 {
            return Err("timeout_delta_ms must be at most 600000".into());
        }
        if self.proposal_ttl_blocks == 0 {
            return Err("proposal_ttl_blocks must be at least 1".into());
        }
        if self.max_block_txs == 0
            || self.max_block_txs as usize > crate::chain::verify::MAX_BLOCK_TXS
        {
            return Err(format!(
                "max_block_txs must be between 1 and {}",
                crate::chain::verify::MAX_BLOCK_TXS
            ));
        }
        Ok(())
    }

    /// How long to wait in `step` of `round`.
    pub fn timeout_ms(&self, step: TimeoutStep, round: u32) -> u64 {
        let base = match step {
            TimeoutStep::Propose => self.timeout_propose_ms,
            TimeoutStep::Prevote => self.timeout_prevote_ms,
            TimeoutStep::Precommit => self.timeout_precommit_ms,
        };
        base.saturating_add(self.timeout_delta_ms.saturating_mul(u64::from(round)))
    }
}

/// Which step a timeout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimeoutStep {
    Propose,
    Prevote,
    Precommit,
}

/// A timeout the driver schedules and hands back when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeout {
    pub height: u64,
    pub round: u32,
    pub step: TimeoutStep,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_grow_with_the_round() {
        let p = ConsensusParams::default();
        for step in [
            TimeoutStep::Propose,
            TimeoutStep::Prevote,
            TimeoutStep::Precommit,
        ] {
            assert!(p.timeout_ms(step, 1) > p.timeout_ms(step, 0));
            assert!(p.timeout_ms(step, 5) > p.timeout_ms(step, 4));
        }
        assert!(p.validate().is_ok());
        let bad = ConsensusParams {
            timeout_prevote_ms: 0,
            ..p
        };
        assert!(bad.validate().is_err());
    }
}
