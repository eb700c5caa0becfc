//! What a validator last signed, and the rule that it never signs twice for
//! one height, round and step. The driver persists this (with sync) before it
//! sends what was signed, so the rule survives a crash and restart.

use serde::{Deserialize, Serialize};

use crate::chain::{Block, Hash, MAX_BLOCK_BYTES};
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

    /// Whether `msg`, which carries this validator's own signature, provably
    /// did not come from this signing record: it sits past everything the
    /// record holds, or where the record holds another message. Everything
    /// a validator sends is recorded (and persisted) first, so such a
    /// message was signed by another process holding the same key: a copy
    /// of this data directory running elsewhere. Messages before the
    /// record's position prove nothing (an old one relayed back) and are
    /// not flagged.
    pub fn is_foreign(&self, msg: &ConsensusMessage) -> bool {
        let step = match msg {
            ConsensusMessage::Proposal(_) => super::types::PROPOSE_CODE,
            ConsensusMessage::Vote(v) => v.vote.step.code(),
        };
        self.foreign_at((msg.height(), msg.round(), step), |mine| mine == msg)
    }

    /// [`Self::is_foreign`] for this validator's precommit for `block_hash`
    /// at (`height`, `round`), as a commit certificate carries it: a block
    /// imported with such a signature that this record never made proves
    /// another signer (a restored copy finds the original's this way).
    pub fn is_foreign_precommit(&self, height: u64, round: u32, block_hash: &Hash) -> bool {
        let precommit = super::types::VoteStep::Precommit.code();
        self.foreign_at((height, round, precommit), |mine| {
            matches!(mine, ConsensusMessage::Vote(v) if v.vote.block_hash.as_ref() == Some(block_hash))
        })
    }

    fn foreign_at(&self, at: (u64, u32, u8), is_mine: impl Fn(&ConsensusMessage) -> bool) -> bool {
        match at.cmp(&(self.height, self.round, self.step)) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => !self.signed_at(at.0, at.1, at.2).is_some_and(is_mine),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::types::{Vote, VoteStep};
    use crate::identity::Identity;

    const GENESIS: Hash = Hash([7; 32]);

    fn vote(
        key: &Identity,
        height: u64,
        round: u32,
        step: VoteStep,
        block: u8,
    ) -> ConsensusMessage {
        let v = Vote {
            chain_id: 1,
            height,
            round,
            step,
            block_hash: Some(Hash([block; 32])),
            validator: key.account(),
        };
        ConsensusMessage::Vote(v.sign(&GENESIS, key))
    }

    fn record_of(msgs: &[(u64, u32, ConsensusMessage)]) -> SafetyState {
        let mut s = SafetyState::default();
        for (h, r, m) in msgs {
            let step = match m {
                ConsensusMessage::Vote(v) => v.vote.step.code(),
                ConsensusMessage::Proposal(_) => super::super::types::PROPOSE_CODE,
            };
            s.record(*h, *r, step, m.clone());
        }
        s
    }

    #[test]
    fn what_this_record_signed_is_its_own_and_what_lies_past_it_is_foreign() {
        let key = Identity::from_secret_bytes(&[3; 32]).unwrap();
        let prevote = vote(&key, 5, 0, VoteStep::Prevote, 1);
        let precommit = vote(&key, 5, 0, VoteStep::Precommit, 1);
        let s = record_of(&[(5, 0, prevote.clone()), (5, 0, precommit.clone())]);
        // Its own messages, relayed back (after a restart too).
        assert!(!s.is_foreign(&prevote));
        assert!(!s.is_foreign(&precommit));
        // An older message proves nothing.
        assert!(!s.is_foreign(&vote(&key, 4, 3, VoteStep::Precommit, 9)));
        assert!(!s.is_foreign(&vote(&key, 5, 0, VoteStep::Prevote, 9)));
        // Another precommit at the record's own position: not this record's.
        assert!(s.is_foreign(&vote(&key, 5, 0, VoteStep::Precommit, 2)));
        // Anything past the record: never signed here.
        assert!(s.is_foreign(&vote(&key, 5, 1, VoteStep::Prevote, 1)));
        assert!(s.is_foreign(&vote(&key, 6, 0, VoteStep::Prevote, 1)));
    }

    #[test]
    fn a_certificate_precommit_this_record_never_made_is_foreign() {
        let key = Identity::from_secret_bytes(&[5; 32]).unwrap();
        let s = record_of(&[(8, 2, vote(&key, 8, 2, VoteStep::Precommit, 1))]);
        assert!(!s.is_foreign_precommit(8, 2, &Hash([1; 32])), "its own");
        assert!(
            s.is_foreign_precommit(8, 2, &Hash([2; 32])),
            "another block"
        );
        assert!(
            !s.is_foreign_precommit(7, 0, &Hash([9; 32])),
            "before the record"
        );
        assert!(
            !s.is_foreign_precommit(8, 1, &Hash([9; 32])),
            "an earlier round"
        );
        assert!(
            s.is_foreign_precommit(8, 3, &Hash([1; 32])),
            "a later round"
        );
        assert!(
            s.is_foreign_precommit(9, 0, &Hash([1; 32])),
            "a later height"
        );
        // A prevote at the position proves nothing about a precommit past it.
        let p = record_of(&[(8, 2, vote(&key, 8, 2, VoteStep::Prevote, 1))]);
        assert!(p.is_foreign_precommit(8, 2, &Hash([1; 32])));
    }

    #[test]
    fn an_empty_record_owns_nothing_it_could_be_shown() {
        let key = Identity::from_secret_bytes(&[4; 32]).unwrap();
        let s = SafetyState::default();
        assert!(s.is_foreign(&vote(&key, 1, 0, VoteStep::Prevote, 1)));
    }
}
