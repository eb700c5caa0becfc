//! Block validation and execution: header rules, transaction signatures
//! (batch-verified), the state transition, roots, and commit certificates.
//! One function set serves consensus, import, sync and the auditor's verify.

use serde::{Deserialize, Serialize};

use crate::identity::{self, SignedItem};

use super::block::{Block, BlockHeader, CommittedBlock};
use super::error::{BlockError, TxError};
use super::hash::Hash;
use super::state::ChainState;
use super::tx::{SignedTransaction, TX_DOMAIN};

/// The most transactions one block may hold.
pub const MAX_BLOCK_TXS: usize = 10_000;

/// The last block of a chain: what the next block builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    pub height: u64,
    pub hash: Hash,
    pub time_ms: u64,
}

/// Checks every transaction signature in one batch; names the first bad one.
pub fn verify_tx_signatures(txs: &[SignedTransaction]) -> Result<(), BlockError> {
    let bodies: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
    let items: Vec<SignedItem<'_>> = txs
        .iter()
        .zip(&bodies)
        .map(|(t, body)| SignedItem {
            account: &t.tx.author,
            domain: TX_DOMAIN,
            message: body,
            sig: &t.sig,
        })
        .collect();
    identity::verify_batch(&items).map_err(|(index, _)| {
        let (id, author) = txs
            .get(index)
            .map(|t| (t.id(), t.tx.author))
            .unwrap_or((Hash::ZERO, identity::AccountId([0; 32])));
        BlockError::Tx {
            index,
            id,
            source: TxError::BadSignature(author),
        }
    })
}

/// Applies `txs` (signatures already checked) to a copy of `state`.
pub fn apply_txs(
    state: &ChainState,
    height: u64,
    time_ms: u64,
    txs: &[SignedTransaction],
) -> Result<ChainState, BlockError> {
    if txs.len() > MAX_BLOCK_TXS {
        return Err(BlockError::TooManyTxs {
            found: txs.len(),
            max: MAX_BLOCK_TXS,
        });
    }
    let mut next = state.clone();
    for (index, t) in txs.iter().enumerate() {
        next.apply(&t.tx, height, time_ms)
            .map_err(|source| BlockError::Tx {
                index,
                id: t.id(),
                source,
            })?;
    }
    Ok(next)
}

/// Checks that `block` is a valid successor of `tip` under `state` and returns
/// the state after it. Does not look at the commit certificate or local time.
pub fn validate_block(
    state: &ChainState,
    tip: &ChainTip,
    block: &Block,
) -> Result<ChainState, BlockError> {
    let h = &block.header;
    if h.height != tip.height + 1 {
        return Err(BlockError::WrongHeight {
            expected: tip.height + 1,
            found: h.height,
        });
    }
    if h.parent_hash != tip.hash {
        return Err(BlockError::WrongParent {
            expected: tip.hash,
            found: h.parent_hash,
        });
    }
    if h.time_ms <= tip.time_ms {
        return Err(BlockError::TimeNotIncreasing {
            parent: tip.time_ms,
            found: h.time_ms,
        });
    }
    if h.validator_set_hash != state.validators.hash() {
        return Err(BlockError::ValidatorSetHash);
    }
    let expected = state.validators.proposer(h.height, h.round);
    if h.proposer != expected {
        return Err(BlockError::WrongProposer {
            expected,
            found: h.proposer,
        });
    }
    if block.txs.len() > MAX_BLOCK_TXS {
        return Err(BlockError::TooManyTxs {
            found: block.txs.len(),
            max: MAX_BLOCK_TXS,
        });
    }
    if Block::compute_tx_root(&block.txs) != h.tx_root {
        return Err(BlockError::TxRoot);
    }
    verify_tx_signatures(&block.txs)?;
    let next = apply_txs(state, h.height, h.time_ms, &block.txs)?;
    if next.root() != h.state_root {
        return Err(BlockError::StateRoot);
    }
    Ok(next)
}

/// [`validate_block`] plus the commit certificate against the validator set
/// that certifies this height. What sync and the auditor use.
pub fn verify_committed(
    state: &ChainState,
    tip: &ChainTip,
    committed: &CommittedBlock,
) -> Result<ChainState, BlockError> {
    let block = &committed.block;
    committed.cert.verify(
        &state.genesis_hash,
        state.chain_id,
        block.header.height,
        &block.hash(),
        &state.validators,
    )?;
    validate_block(state, tip, block)
}

/// Builds the next block from candidate transactions: each is checked and
/// applied in order, and invalid ones are left out. Returns the block and the
/// state after it. `time_ms` is raised to parent time + 1 if needed.
pub fn build_block(
    state: &ChainState,
    tip: &ChainTip,
    round: u32,
    time_ms: u64,
    candidates: impl IntoIterator<Item = SignedTransaction>,
    max_txs: usize,
) -> (Block, ChainState) {
    let height = tip.height + 1;
    let time_ms = time_ms.max(tip.time_ms + 1);
    let mut next = state.clone();
    let mut txs = Vec::new();
    for t in candidates {
        if txs.len() >= max_txs.min(MAX_BLOCK_TXS) {
            break;
        }
        let nonce_fits = next
            .members
            .get(&t.tx.author)
            .is_some_and(|m| m.next_nonce == t.tx.nonce);
        if nonce_fits && t.verify_signature().is_ok() && next.apply(&t.tx, height, time_ms).is_ok()
        {
            txs.push(t);
        }
    }
    let header = BlockHeader {
        height,
        parent_hash: tip.hash,
        time_ms,
        proposer: state.validators.proposer(height, round),
        tx_root: Block::compute_tx_root(&txs),
        state_root: next.root(),
        validator_set_hash: state.validators.hash(),
        round,
    };
    (Block { header, txs }, next)
}

/// The tip after `block`.
pub fn tip_of(block: &Block) -> ChainTip {
    ChainTip {
        height: block.header.height,
        hash: block.hash(),
        time_ms: block.header.time_ms,
    }
}
