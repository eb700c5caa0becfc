//! The chain state and its transition function: members and nonces, the
//! validator set and pending validator votes, consents, the audit log, and
//! the rules every transaction must pass (typed [`TxError`] otherwise).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::identity::{AccountId, Role};

use super::error::TxError;
use super::hash::Hash;
use super::tx::{ConsentScope, Transaction, TxKind};
use super::validator_set::{MAX_VALIDATOR_POWER, Validator, ValidatorSet};

/// The largest encoded state accepted when reading it back from storage.
pub const MAX_STATE_BYTES: usize = 32 * 1024 * 1024;

/// A member of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub active: bool,
    /// The nonce the member's next transaction must carry.
    pub next_nonce: u64,
}

/// A change to the validator set that hospitals vote on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ValidatorChange {
    Add { account: AccountId, power: u64 },
    Remove { account: AccountId },
}

/// Everything the chain agrees on. Append-only facts (record anchors,
/// key-session audits, evidence) are folded into `log_hash` and counted; the
/// facts themselves stay in the blocks and the store's indexes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    pub chain_id: u64,
    /// The genesis hash; consensus signatures are bound to it.
    pub genesis_hash: Hash,
    pub members: BTreeMap<AccountId, Member>,
    pub validators: ValidatorSet,
    /// Open validator-change votes: the change and the hospitals that voted for it.
    pub validator_votes: BTreeMap<ValidatorChange, BTreeSet<AccountId>>,
    /// (patient, grantee, scope) to expiry in unix milliseconds.
    pub consents: BTreeMap<(AccountId, AccountId, ConsentScope), u64>,
    /// (offender, height, round, step) of evidence already recorded.
    pub evidence: BTreeSet<(AccountId, u64, u32, u8)>,
    pub anchors: u64,
    pub audits: u64,
    /// Running hash over every anchor, audit and evidence in chain order.
    pub log_hash: Hash,
}

impl ChainState {
    pub fn new(chain_id: u64, validators: ValidatorSet) -> Self {
        ChainState {
            chain_id,
            genesis_hash: Hash::ZERO,
            members: BTreeMap::new(),
            validators,
            validator_votes: BTreeMap::new(),
            consents: BTreeMap::new(),
            evidence: BTreeSet::new(),
            anchors: 0,
            audits: 0,
            log_hash: Hash::ZERO,
        }
    }

    /// The state root that block headers commit to.
    pub fn root(&self) -> Hash {
        Hash::digest("qward/state/v1", &codec::encode_infallible(self))
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_STATE_BYTES)
    }

    /// An active member's role.
    pub fn role_of(&self, account: &AccountId) -> Option<Role> {
        self.members
            .get(account)
            .filter(|m| m.active)
            .map(|m| m.role)
    }

    /// Whether `patient` has a consent for `grantee` covering `needed` at `now_ms`.
    pub fn consent_allows(
        &self,
        patient: &AccountId,
        grantee: &AccountId,
        needed: ConsentScope,
        now_ms: u64,
    ) -> bool {
        [needed, ConsentScope::All].iter().any(|scope| {
            self.consents
                .get(&(*patient, *grantee, *scope))
                .is_some_and(|&exp| exp > now_ms && scope.covers(needed))
        })
    }

    fn active_hospitals(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.active && m.role == Role::Hospital)
            .count()
    }

    fn author_role(&self, tx: &Transaction) -> Result<Role, TxError> {
        let member = self
            .members
            .get(&tx.author)
            .ok_or(TxError::UnknownAuthor(tx.author))?;
        if !member.active {
            return Err(TxError::AuthorRevoked(tx.author));
        }
        if tx.nonce != member.next_nonce {
            return Err(TxError::BadNonce {
                author: tx.author,
                expected: member.next_nonce,
                found: tx.nonce,
            });
        }
        Ok(member.role)
    }

    /// Applies one transaction whose signature the caller has checked. On
    /// error the state is unchanged.
    pub fn apply(
        &mut self,
        tx: &Transaction,
        block_height: u64,
        block_time_ms: u64,
    ) -> Result<(), TxError> {
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain {
                expected: self.chain_id,
                found: tx.chain_id,
            });
        }
        let role = self.author_role(tx)?;
        let need = |needed: Role, action: &'static str| -> Result<(), TxError> {
            if role == needed {
                Ok(())
            } else {
                Err(TxError::WrongRole {
                    action,
                    needed,
                    actual: role,
                    author: tx.author,
                })
            }
        };
        match &tx.kind {
            TxKind::RegisterMember {
                account,
                role: new_role,
            } => {
                need(Role::Hospital, "registering a member")?;
                if self.members.contains_key(account) {
                    return Err(TxError::AlreadyMember(*account));
                }
                self.members.insert(
                    *account,
                    Member {
                        role: *new_role,
                        active: true,
                        next_nonce: 0,
                    },
                );
            }
            TxKind::RevokeMember { account } => {
                need(Role::Hospital, "revoking a member")?;
                if self.role_of(account).is_none() {
                    return Err(TxError::NotMember(*account));
                }
                if self.validators.contains(account) {
                    return Err(TxError::RevokeValidator(*account));
                }
                if let Some(m) = self.members.get_mut(account) {
                    m.active = false;
                }
            }
            TxKind::AddValidator { account, power } => {
                need(Role::Hospital, "voting on a validator")?;
                if self.validators.contains(account) {
                    return Err(TxError::AlreadyValidator(*account));
                }
                if self.role_of(account) != Some(Role::Hospital) {
                    return Err(TxError::ValidatorNotHospital(*account));
                }
                if *power == 0 || *power > MAX_VALIDATOR_POWER {
                    return Err(TxError::BadPower {
                        found: *power,
                        max: MAX_VALIDATOR_POWER,
                    });
                }
                self.vote(
                    ValidatorChange::Add {
                        account: *account,
                        power: *power,
                    },
                    tx.author,
                )?;
            }
            TxKind::RemoveValidator { account } => {
                need(Role::Hospital, "voting on a validator")?;
                if !self.validators.contains(account) {
                    return Err(TxError::NotValidator(*account));
                }
                if self.validators.len() == 1 {
                    return Err(TxError::LastValidator(*account));
                }
                self.vote(ValidatorChange::Remove { account: *account }, tx.author)?;
            }
            TxKind::GrantConsent(grant) => {
                need(Role::Patient, "granting consent")?;
                if grant.grantee == tx.author {
                    return Err(TxError::SelfConsent);
                }
                if self.role_of(&grant.grantee).is_none() {
                    return Err(TxError::NotMember(grant.grantee));
                }
                if grant.expires_at_ms <= block_time_ms {
                    return Err(TxError::ConsentExpiryInPast {
                        expires_at_ms: grant.expires_at_ms,
                        block_time_ms,
                    });
                }
                self.consents
                    .insert((tx.author, grant.grantee, grant.scope), grant.expires_at_ms);
            }
            TxKind::RevokeConsent { grantee, scope } => {
                need(Role::Patient, "revoking consent")?;
                if self
                    .consents
                    .remove(&(tx.author, *grantee, *scope))
                    .is_none()
                {
                    return Err(TxError::NoSuchConsent {
                        grantee: *grantee,
                        scope: scope.as_str(),
                    });
                }
            }
            TxKind::AnchorRecord(anchor) => {
                if self.role_of(&anchor.recipient).is_none() {
                    return Err(TxError::NotMember(anchor.recipient));
                }
                self.anchors += 1;
                self.extend_log(tx);
            }
            TxKind::AuditKeySession(audit) => {
                if audit.peer_a == audit.peer_b
                    || (tx.author != audit.peer_a && tx.author != audit.peer_b)
                {
                    return Err(TxError::AuditAuthorNotPeer);
                }
                if audit.qber_ppm > 1_000_000 {
                    return Err(TxError::QberOutOfRange(audit.qber_ppm));
                }
                self.audits += 1;
                self.extend_log(tx);
            }
            TxKind::SubmitEvidence(evidence) => {
                evidence
                    .verify(&self.genesis_hash, self.chain_id)
                    .map_err(|e| TxError::BadEvidence(e.to_string()))?;
                let offender = evidence.offender();
                if self.members.get(&offender).map(|m| m.role) != Some(Role::Hospital) {
                    return Err(TxError::BadEvidence(format!(
                        "{offender} is not a hospital, so never a validator"
                    )));
                }
                if evidence.height() > block_height {
                    return Err(TxError::BadEvidence(
                        "evidence is from a height not reached yet".into(),
                    ));
                }
                if !self.evidence.insert(evidence.key()) {
                    return Err(TxError::DuplicateEvidence);
                }
                self.extend_log(tx);
            }
        }
        if let Some(m) = self.members.get_mut(&tx.author) {
            m.next_nonce += 1;
        }
        Ok(())
    }

    fn extend_log(&mut self, tx: &Transaction) {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&self.log_hash.0);
        buf[32..].copy_from_slice(&tx.id().0);
        self.log_hash = Hash::digest("qward/log/v1", &buf);
    }

    fn vote(&mut self, change: ValidatorChange, voter: AccountId) -> Result<(), TxError> {
        let mut voters = self
            .validator_votes
            .get(&change)
            .cloned()
            .unwrap_or_default();
        if !voters.insert(voter) {
            return Err(TxError::AlreadyVoted(voter));
        }
        let hospitals = self.active_hospitals();
        let active_votes = voters
            .iter()
            .filter(|v| {
                self.members
                    .get(v)
                    .is_some_and(|m| m.active && m.role == Role::Hospital)
            })
            .count();
        if active_votes * 3 <= hospitals * 2 {
            self.validator_votes.insert(change, voters);
            return Ok(());
        }
        let (account, next) = match change {
            ValidatorChange::Add { account, power } => (
                account,
                self.validators.with_added(Validator { account, power }),
            ),
            ValidatorChange::Remove { account } => {
                (account, self.validators.with_removed(&account))
            }
        };
        // Checked before the vote: the set cannot become empty or hold a duplicate.
        self.validators = next.map_err(|_| TxError::LastValidator(account))?;
        // Votes about this account are settled or stale now.
        self.validator_votes.retain(|c, _| match c {
            ValidatorChange::Add { account: a, .. } | ValidatorChange::Remove { account: a } => {
                *a != account
            }
        });
        Ok(())
    }
}
