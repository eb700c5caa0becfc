//! What a validator last signed, and the rule that it never signs twice for
//! one height, round and step. The driver persists this (with sync) before it
//! sends what was signed, so the rule survives a crash and restart.

use serde::{Deserialize, Serialize};

use crate::chain::{Block, MAX_BLOCK_BYTES};
use crate::codec::{self, CodecError};
use crate::storage::{Column, Store, StoreError, WriteBatch};

use super::types::ConsensusMessage;

const SAFETY_KEY: &[u8] = b"consensus/safety";

/// A validator's signing record. `(height, round, step)` of everything signed
/// only ever increases; step codes are 1 propose, 2 prevote, 3 precommit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyState {
    pub height: u64,
    pub round: u32,
    pub step: u8,
    /// The messages signed at (height, round), to re-send after a restart.
    pub signed: Vec<ConsensusMessage>,
    /// The round and block this validator is locked on at `height`.
    pub locked: Option<(u32, Block)>,
}

impl SafetyState {
    /// Whether signing at (height, round, step) keeps the record increasing.
    pub fn may_sign(&self, height: u64, round: u32, step: u8) -> bool {
        (height, round, step) > (self.height, self.round, self.step)
    }

    /// The message already signed at exactly (height, round, step), if any.
    pub fn signed_at(&self, height: u64, round: u32, step: u8) -> Option<&ConsensusMessage> {
        if (height, round) != (self.height, self.round) {
            return None;
        }
        self.signed.iter().find(|m| match m {
            ConsensusMessage::Proposal(_) => step == super::types::PROPOSE_CODE,
            ConsensusMessage::Vote(v) => v.vote.step.code() == step,
        })
    }

    /// Records a signature at (height, round, step).
    pub fn record(&mut self, height: u64, round: u32, step: u8, msg: ConsensusMessage) {
        if (height, round) != (self.height, self.round) {
            self.signed.clear();
        }
        if height != self.height {
            self.locked = None;
        }
        self.height = height;
        self.round = round;
        self.step = step;
        self.signed.push(msg);
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, 4 * MAX_BLOCK_BYTES)
    }
}

/// Why the safety record could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum SafetyStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the validator's signing record is corrupt ({0}); refusing to sign rather than risk a double vote"
    )]
    Corrupt(CodecError),
}

/// Loads the signing record (empty if this validator never signed).
pub fn load_safety(store: &dyn Store) -> Result<SafetyState, SafetyStoreError> {
    match store.get(Column::Consensus, SAFETY_KEY)? {
        None => Ok(SafetyState::default()),
        Some(b) => SafetyState::decode(&b).map_err(SafetyStoreError::Corrupt),
    }
}

/// Saves the signing record durably (fsync) before anything it covers is sent.
pub fn save_safety(store: &dyn Store, safety: &SafetyState) -> Result<(), SafetyStoreError> {
    let mut batch = WriteBatch::new();
    batch.put(Column::Consensus, SAFETY_KEY, safety.encode());
    batch.set_sync(true);
    store.write(batch)?;
    Ok(())
}
