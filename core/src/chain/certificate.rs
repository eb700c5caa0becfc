//! The commit certificate: precommit signatures from more than 2/3 of the
//! validators' power for one block, checkable by anyone holding the set.

use serde::{Deserialize, Serialize};

use crate::consensus::{VoteStep, vote_signing_bytes};
use crate::identity::{self, AccountId, Sig, SignedItem};

use super::error::CertError;
use super::hash::Hash;
use super::validator_set::ValidatorSet;

/// One validator's precommit signature inside a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSig {
    pub validator: AccountId,
    pub sig: Sig,
}

/// Proof that a block is final: the precommits of one round for its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    /// Sorted by validator account, no duplicates.
    pub sigs: Vec<CommitSig>,
}

impl CommitCertificate {
    /// Checks that the certificate proves `block_hash` final at `height` for
    /// `validators`. Every signature present must verify (a certificate with
    /// one bad signature is rejected even if the rest reach the quorum), and
    /// the signers must hold more than 2/3 of the power. Signatures are
    /// checked for the chain of `genesis` and `chain_id`.
    pub fn verify(
        &self,
        genesis: &Hash,
        chain_id: u64,
        height: u64,
        block_hash: &Hash,
        validators: &ValidatorSet,
    ) -> Result<(), CertError> {
        if self.height != height {
            return Err(CertError::WrongHeight {
                expected: height,
                found: self.height,
            });
        }
        if self.block_hash != *block_hash {
            return Err(CertError::WrongBlock {
                expected: *block_hash,
                found: self.block_hash,
            });
        }
        verify_vote_quorum(
            &self.sigs,
            VoteStep::Precommit,
            genesis,
            chain_id,
            (self.height, self.round),
            &self.block_hash,
            validators,
        )
    }
}

/// Checks that `sigs` are `step` votes of more than 2/3 of `validators`'
/// power for `block_hash` at (`height`, `round`): sorted by validator with
/// no duplicates, every signer a validator, every signature valid (one bad
/// signature rejects the lot even if the rest reach the quorum).
pub fn verify_vote_quorum(
    sigs: &[CommitSig],
    step: VoteStep,
    genesis: &Hash,
    chain_id: u64,
    (height, round): (u64, u32),
    block_hash: &Hash,
    validators: &ValidatorSet,
) -> Result<(), CertError> {
    let mut power = 0u64;
    let mut previous: Option<AccountId> = None;
    for cs in sigs {
        if previous.is_some_and(|p| p >= cs.validator) {
            return Err(CertError::UnsortedOrDuplicate(cs.validator));
        }
        previous = Some(cs.validator);
        power = power.saturating_add(
            validators
                .power_of(&cs.validator)
                .ok_or(CertError::UnknownValidator(cs.validator))?,
        );
    }
    if !validators.is_quorum(power) {
        return Err(CertError::NoQuorum {
            have: power,
            total: validators.total_power(),
        });
    }
    let message = vote_signing_bytes(genesis, chain_id, height, round, step, Some(block_hash));
    let items: Vec<SignedItem<'_>> = sigs
        .iter()
        .map(|cs| SignedItem {
            account: &cs.validator,
            domain: crate::consensus::VOTE_DOMAIN,
            message: &message,
            sig: &cs.sig,
        })
        .collect();
    identity::verify_batch(&items).map_err(|(i, _)| {
        CertError::BadSignature(
            sigs.get(i)
                .map(|cs| cs.validator)
                .unwrap_or(AccountId([0; 32])),
        )
    })
}
