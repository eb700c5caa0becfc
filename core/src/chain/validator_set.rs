//! The validator set: who signs blocks, with what voting power, who proposes
//! at a height and round, and the more-than-2/3 and more-than-1/3 thresholds.

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::identity::AccountId;

use super::hash::Hash;

/// The most voting power one validator may hold (keeps sums far from overflow).
pub const MAX_VALIDATOR_POWER: u64 = 1_000_000;
/// The most validators a set may hold.
pub const MAX_VALIDATORS: usize = 1024;

/// One validator and its voting power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    pub account: AccountId,
    pub power: u64,
}

/// Why a validator set cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("a validator set holds at most {MAX_VALIDATORS} validators")]
    TooMany,
    #[error("validator {0} appears twice")]
    Duplicate(AccountId),
    #[error("validator {0} has power 0 or above {MAX_VALIDATOR_POWER}")]
    BadPower(AccountId),
}

/// A non-empty set of validators, sorted by account, each with power > 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
}

impl ValidatorSet {
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany);
        }
        validators.sort_by_key(|v| v.account);
        for pair in validators.windows(2) {
            if let [a, b] = pair
                && a.account == b.account
            {
                return Err(ValidatorSetError::Duplicate(a.account));
            }
        }
        if let Some(v) = validators
            .iter()
            .find(|v| v.power == 0 || v.power > MAX_VALIDATOR_POWER)
        {
            return Err(ValidatorSetError::BadPower(v.account));
        }
        Ok(ValidatorSet { validators })
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.power).sum()
    }

    /// The voting power of `account`, if it is a validator.
    pub fn power_of(&self, account: &AccountId) -> Option<u64> {
        self.validators
            .binary_search_by_key(account, |v| v.account)
            .ok()
            .and_then(|i| self.validators.get(i))
            .map(|v| v.power)
    }

    pub fn contains(&self, account: &AccountId) -> bool {
        self.power_of(account).is_some()
    }

    /// More than 2/3 of the total power.
    pub fn is_quorum(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power()) * 2
    }

    /// More than 1/3 of the total power (at least one honest validator).
    pub fn is_one_third(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power())
    }

    /// The proposer of `round` at `height`: round robin over the sorted set.
    pub fn proposer(&self, height: u64, round: u32) -> AccountId {
        let n = self.validators.len() as u64;
        let i = height.wrapping_add(u64::from(round)) % n.max(1);
        self.validators
            .get(i as usize)
            .map(|v| v.account)
            .unwrap_or(AccountId([0; 32]))
    }

    /// The hash block headers commit to.
    pub fn hash(&self) -> Hash {
        Hash::digest(
            "qward/validator-set/v1",
            &codec::encode_infallible(&self.validators),
        )
    }

    /// A copy with `v` added (the caller has checked it is not present).
    pub fn with_added(&self, v: Validator) -> Result<Self, ValidatorSetError> {
        let mut all = self.validators.clone();
        all.push(v);
        ValidatorSet::new(all)
    }

    /// A copy without `account`.
    pub fn with_removed(&self, account: &AccountId) -> Result<Self, ValidatorSetError> {
        let all = self
            .validators
            .iter()
            .filter(|v| v.account != *account)
            .copied()
            .collect();
        ValidatorSet::new(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u8) -> ValidatorSet {
        ValidatorSet::new(
            (0..n)
                .map(|i| Validator {
                    account: AccountId([i; 32]),
                    power: 1,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn thresholds_for_four() {
        let s = set(4);
        assert!(!s.is_quorum(2));
        assert!(s.is_quorum(3));
        assert!(!s.is_one_third(1));
        assert!(s.is_one_third(2));
    }

    #[test]
    fn proposer_rotates_over_everyone() {
        let s = set(4);
        let mut seen: Vec<AccountId> = (0..4).map(|r| s.proposer(10, r)).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        assert_eq!(s.proposer(1, 1), s.proposer(2, 0));
    }

    #[test]
    fn rejects_bad_sets() {
        assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
        let v = Validator {
            account: AccountId([1; 32]),
            power: 1,
        };
        assert_eq!(
            ValidatorSet::new(vec![v, v]),
            Err(ValidatorSetError::Duplicate(v.account))
        );
        let zero = Validator { power: 0, ..v };
        assert_eq!(
            ValidatorSet::new(vec![zero]),
            Err(ValidatorSetError::BadPower(v.account))
        );
        assert_ne!(set(3).hash(), set(4).hash());
    }
}
