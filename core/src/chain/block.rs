//! Blocks: the header (height, parent, time, proposer, roots, validator-set
//! hash, round), the transactions, and a committed block with its certificate.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::identity::AccountId;

use super::certificate::CommitCertificate;
use super::hash::{Hash, merkle_root};
use super::tx::SignedTransaction;

/// The largest encoded block (with its certificate) accepted from storage or the network.
pub const MAX_BLOCK_BYTES: usize = 8 * 1024 * 1024;
/// The domain tag of block hashes.
pub const BLOCK_DOMAIN: &str = "qward/block/v1";

/// What a block commits to. The block hash is the hash of the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: u64,
    pub parent_hash: Hash,
    /// Unix milliseconds, strictly increasing along the chain.
    pub time_ms: u64,
    pub proposer: AccountId,
    /// Merkle root of the transaction ids.
    pub tx_root: Hash,
    /// Root of the state after this block's transactions.
    pub state_root: Hash,
    /// Hash of the validator set that certifies this block.
    pub validator_set_hash: Hash,
    /// The round in which `proposer` first proposed this block.
    pub round: u32,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Hash::digest(BLOCK_DOMAIN, &codec::encode_infallible(self))
    }
}

/// A header and its transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<SignedTransaction>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Whether the transactions are the ones the header's `tx_root` names.
    /// Only then does the block hash (of the header) pin every byte of the
    /// block: a transaction id covers its signature, and the root covers
    /// every id in order.
    pub fn body_matches_header(&self) -> bool {
        Block::compute_tx_root(&self.txs) == self.header.tx_root
    }

    /// The Merkle root of these transactions' ids.
    pub fn compute_tx_root(txs: &[SignedTransaction]) -> Hash {
        let ids: Vec<Hash> = txs.iter().map(SignedTransaction::id).collect();
        merkle_root(&ids)
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_BLOCK_BYTES)
    }
}

/// A final block: the block and the certificate that proves more than 2/3 of
/// the validators precommitted it. This is what the store keeps and sync sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBlock {
    pub block: Block,
    pub cert: CommitCertificate,
}

impl CommittedBlock {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_BLOCK_BYTES)
    }
}
