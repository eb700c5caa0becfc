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
    /// The chain's first block timing; validators change it by vote
    /// (`ChainState::block_timing`).
    #[serde(default)]
    pub block_timing: BlockTiming,
}

fn default_proposal_ttl_blocks() -> u64 {
    crate::chain::state::DEFAULT_PROPOSAL_TTL_BLOCKS
}

/// When validators start the next height: `block_time_ms` after the last
/// block when there are transactions to commit, and with nothing to commit,
/// only once `empty_block_interval_ms` has passed (the heartbeat that shows
/// the chain is alive). Equal values make a block every block time, empty
/// or not. On the chain: set in genesis, changed by a validators' vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockTiming {
    pub block_time_ms: u64,
    pub empty_block_interval_ms: u64,
}

/// The shortest block time.
pub const MIN_BLOCK_TIME_MS: u64 = 50;
/// The longest block time, and the longest empty-block interval.
pub const MAX_BLOCK_INTERVAL_MS: u64 = 3_600_000;

impl Default for BlockTiming {
    fn default() -> Self {
        BlockTiming {
            block_time_ms: 1_000,
            empty_block_interval_ms: 10_000,
        }
    }
}

impl BlockTiming {
    /// A block every `block_time_ms`, empty or not.
    pub fn every(block_time_ms: u64) -> Self {
        BlockTiming {
            block_time_ms,
            empty_block_interval_ms: block_time_ms,
        }
    }

    /// Checks the ranges: a block time of 50 ms to 1 h, and an empty-block
    /// interval from the block time to 1 h.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_BLOCK_TIME_MS..=MAX_BLOCK_INTERVAL_MS).contains(&self.block_time_ms) {
            return Err(format!(
                "block_time_ms must be between {MIN_BLOCK_TIME_MS} and {MAX_BLOCK_INTERVAL_MS}, not {}",
                self.block_time_ms
            ));
        }
        if !(self.block_time_ms..=MAX_BLOCK_INTERVAL_MS).contains(&self.empty_block_interval_ms) {
            return Err(format!(
                "empty_block_interval_ms must be between block_time_ms ({}) and {MAX_BLOCK_INTERVAL_MS}, not {}",
                self.block_time_ms, self.empty_block_interval_ms
            ));
        }
        Ok(())
    }

    /// Whether empty blocks wait for the heartbeat.
    pub fn skips_empty_blocks(&self) -> bool {
        self.empty_block_interval_ms > self.block_time_ms
    }
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
            block_timing: BlockTiming::default(),
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
        self.block_timing.validate()?;
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
