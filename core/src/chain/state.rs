//! The chain state and its transition function: members and nonces, the
//! validator set, governance proposals voted by validator power, consents,
//! anchored records, evidence, the audit log, and the rules every transaction
//! must pass (typed [`TxError`] otherwise).
//!
//! **Invariant:** no single member can change who validates or who belongs
//! to the network beyond what it registered itself. Admitting a hospital,
//! adding, removing or re-weighting a validator, and revoking a member that
//! the author did not register are [`GovernanceAction`]s: each takes effect
//! only once validators holding more than 2/3 of the total voting power have
//! voted for it. Every collection a transaction can grow is bounded per
//! author or expires: open proposals per validator and by age, consents per
//! patient, evidence by age.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::consensus::BlockTiming;
use crate::identity::{AccountId, Role};

use super::error::TxError;
use super::hash::Hash;
use super::lthash::LtHash;
use super::state_entries::Touched;
use super::tx::{
    ConsentScope, MAX_EMERGENCY_MS, MAX_EMERGENCY_REASON_BYTES, RecordAnchor, SignedTransaction,
    TxKind,
};
use super::validator_set::{MAX_VALIDATOR_POWER, Validator, ValidatorSet};

/// Governance proposals one validator may have opened and still open.
pub const MAX_OPEN_PROPOSALS_PER_VALIDATOR: usize = 16;
/// Consents one patient may hold at once (grantee and scope pairs).
pub const MAX_CONSENTS_PER_PATIENT: usize = 1024;
/// Evidence older than this many blocks is refused, and forgotten.
pub const EVIDENCE_MAX_AGE_BLOCKS: u64 = 10_000;
/// How long a governance proposal stays open when genesis does not say.
pub const DEFAULT_PROPOSAL_TTL_BLOCKS: u64 = 86_400;

/// A member of the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub role: Role,
    pub active: bool,
    /// The nonce the member's next transaction must carry.
    pub next_nonce: u64,
    /// The hospital that registered this member on its own (a doctor,
    /// patient or auditor); `None` for genesis members and admitted hospitals.
    pub registered_by: Option<AccountId>,
}

/// A change that validators vote on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GovernanceAction {
    /// Admit a new member with the Hospital role.
    AdmitHospital { account: AccountId },
    /// Revoke a member that the voter did not register.
    RevokeMember { account: AccountId },
    /// Make a hospital a validator with `power`, or change a validator's power.
    SetValidator { account: AccountId, power: u64 },
    /// Remove a validator.
    RemoveValidator { account: AccountId },
    /// Change the chain's block timing.
    SetBlockTiming(BlockTiming),
}

impl GovernanceAction {
    /// The account the action is about (none for the chain's parameters).
    pub fn account(&self) -> Option<AccountId> {
        match *self {
            GovernanceAction::AdmitHospital { account }
            | GovernanceAction::RevokeMember { account }
            | GovernanceAction::SetValidator { account, .. }
            | GovernanceAction::RemoveValidator { account } => Some(account),
            GovernanceAction::SetBlockTiming(_) => None,
        }
    }

    /// A short description, for people.
    pub fn describe(&self) -> String {
        match self {
            GovernanceAction::AdmitHospital { account } => {
                format!("admit {} as a hospital", account.short())
            }
            GovernanceAction::RevokeMember { account } => format!("revoke {}", account.short()),
            GovernanceAction::SetValidator { account, power } => {
                format!("make {} a validator with power {power}", account.short())
            }
            GovernanceAction::RemoveValidator { account } => {
                format!("remove validator {}", account.short())
            }
            GovernanceAction::SetBlockTiming(t) => format!(
                "set the block time to {} ms and the empty-block interval to {} ms",
                t.block_time_ms, t.empty_block_interval_ms
            ),
        }
    }
}

/// An open governance proposal: who opened it, when, and who voted for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenProposal {
    /// The validator whose vote opened it (counted against its quota).
    pub opener: AccountId,
    /// The height of the block that opened it; it expires `proposal_ttl_blocks` later.
    pub opened_at: u64,
    pub voters: BTreeSet<AccountId>,
}

/// Where a governance vote stands after it was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteTally {
    /// Voting power of the current validators that voted for it.
    pub power: u64,
    /// The validators' total power; the action passes above 2/3 of it.
    pub total: u64,
    /// Whether the action took effect.
    pub passed: bool,
}

/// What a checked transaction will change, computed without changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    Register {
        account: AccountId,
        role: Role,
        by: AccountId,
    },
    Revoke {
        account: AccountId,
    },
    Vote {
        action: GovernanceAction,
        voter: AccountId,
        tally: VoteTally,
    },
    GrantConsent {
        key: (AccountId, AccountId, ConsentScope),
        expires_at_ms: u64,
    },
    RevokeConsent {
        key: (AccountId, AccountId, ConsentScope),
    },
    Anchor {
        key: Hash,
    },
    Audit,
    Evidence {
        key: (AccountId, u64, u32, u8),
        offender: AccountId,
    },
    Emergency {
        key: (AccountId, AccountId),
        entry: EmergencyEntry,
    },
    /// A fact kept only in the log hash and the blocks (erasures, access-log
    /// anchors).
    Fact,
}

/// The latest emergency declaration of one declarer for one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyEntry {
    pub expires_at_ms: u64,
    /// The block holding the declaration (its reason is there).
    pub height: u64,
}

/// Everything the chain agrees on. Audits and evidence are folded into
/// `log_hash` and counted; the facts themselves stay in the blocks and the
/// store's indexes. The store keeps the state entry by entry
/// (`state_entries.rs`), and the root is kept up to date per changed entry.
///
/// The collections are public to read; every change goes through the
/// tracked mutations of `state_entries.rs`, which keep the root's
/// accumulator and the block's list of touched keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub chain_id: u64,
    /// The hash of the genesis this state descends from: every signature on
    /// the chain binds it.
    pub genesis_hash: Hash,
    /// Blocks a governance proposal stays open.
    pub proposal_ttl_blocks: u64,
    /// When validators start the next height (set in genesis, changed by vote).
    pub block_timing: BlockTiming,
    pub members: BTreeMap<AccountId, Member>,
    pub validators: ValidatorSet,
    /// Open governance proposals and their votes.
    pub proposals: BTreeMap<GovernanceAction, OpenProposal>,
    /// (patient, grantee, scope) to expiry in unix milliseconds.
    pub consents: BTreeMap<(AccountId, AccountId, ConsentScope), u64>,
    /// (patient, declarer) of the latest emergency declaration to its
    /// expiry and the height of the block that holds it.
    pub emergencies: BTreeMap<(AccountId, AccountId), EmergencyEntry>,
    /// (offender, height, round, step) of evidence recorded in the last
    /// [`EVIDENCE_MAX_AGE_BLOCKS`] blocks.
    pub evidence: BTreeSet<(AccountId, u64, u32, u8)>,
    /// Keys ([`RecordAnchor::key`]) of every anchored record.
    pub anchored: BTreeSet<Hash>,
    pub anchors: u64,
    pub audits: u64,
    /// Running hash over every anchor, audit and evidence in chain order.
    pub log_hash: Hash,
    /// The multiset hash of every entry (members, proposals, consents,
    /// evidence, anchors), updated per change.
    pub(super) entries: LtHash,
    /// Keys changed since the start of the current block.
    pub(super) touched: Touched,
}

impl ChainState {
    pub fn new(chain_id: u64, genesis_hash: Hash, validators: ValidatorSet) -> Self {
        ChainState {
            chain_id,
            genesis_hash,
            proposal_ttl_blocks: DEFAULT_PROPOSAL_TTL_BLOCKS,
            block_timing: BlockTiming::default(),
            members: BTreeMap::new(),
            validators,
            proposals: BTreeMap::new(),
            consents: BTreeMap::new(),
            emergencies: BTreeMap::new(),
            evidence: BTreeSet::new(),
            anchored: BTreeSet::new(),
            anchors: 0,
            audits: 0,
            log_hash: Hash::ZERO,
            entries: LtHash::default(),
            touched: Touched::default(),
        }
    }

    /// The state root that block headers commit to: the meta record and the
    /// multiset hash of the entries. Never re-encodes the entries.
    pub fn root(&self) -> Hash {
        let mut bytes = codec::encode_infallible(&self.meta());
        bytes.extend_from_slice(&self.entries.digest().0);
        Hash::digest("qward/state/v3", &bytes)
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

    /// Whether `author` anchored `record_id`.
    pub fn is_anchored(&self, author: &AccountId, record_id: &Hash) -> bool {
        self.anchored
            .contains(&RecordAnchor::key(author, record_id))
    }

    /// The open proposal for `action`, if any.
    pub fn proposal(&self, action: &GovernanceAction) -> Option<&OpenProposal> {
        self.proposals.get(action)
    }

    /// Voting power of the current validators among `voters`.
    pub fn tally_power(&self, voters: &BTreeSet<AccountId>) -> u64 {
        voters
            .iter()
            .filter_map(|v| self.validators.power_of(v))
            .sum()
    }

    /// The governance action a final transaction voted for, if it was a vote.
    /// Read on a later state, so a member registered or revoked by its own
    /// hospital (not a vote) is told apart by who registered it.
    pub fn governance_action(&self, tx: &super::tx::Transaction) -> Option<GovernanceAction> {
        match tx.kind {
            TxKind::RegisterMember {
                account,
                role: Role::Hospital,
            } => Some(GovernanceAction::AdmitHospital { account }),
            TxKind::RevokeMember { account } => {
                let own = self.members.get(&account).is_some_and(|m| {
                    m.role != Role::Hospital && m.registered_by == Some(tx.author)
                });
                (!own).then_some(GovernanceAction::RevokeMember { account })
            }
            TxKind::AddValidator { account, power } => {
                Some(GovernanceAction::SetValidator { account, power })
            }
            TxKind::RemoveValidator { account } => {
                Some(GovernanceAction::RemoveValidator { account })
            }
            TxKind::SetBlockTiming(timing) => Some(GovernanceAction::SetBlockTiming(timing)),
            _ => None,
        }
    }

    /// Where `action` stands: open (with its tally), or whether its effect
    /// holds now (passed) or not (expired unpassed, or undone since).
    pub fn proposal_status(&self, action: &GovernanceAction) -> crate::api::ProposalStatus {
        let total = self.validators.total_power();
        let (state, power, until) = match self.proposals.get(action) {
            Some(open) => (
                "pending",
                self.tally_power(&open.voters),
                Some(
                    open.opened_at
                        .saturating_add(self.proposal_ttl_blocks)
                        .saturating_sub(1),
                ),
            ),
            None => {
                let holds = match *action {
                    GovernanceAction::AdmitHospital { account } => {
                        self.role_of(&account) == Some(Role::Hospital)
                    }
                    GovernanceAction::RevokeMember { account } => {
                        self.members.get(&account).is_some_and(|m| !m.active)
                    }
                    GovernanceAction::SetValidator { account, power } => {
                        self.validators.power_of(&account) == Some(power)
                    }
                    GovernanceAction::RemoveValidator { account } => {
                        !self.validators.contains(&account)
                    }
                    GovernanceAction::SetBlockTiming(timing) => self.block_timing == timing,
                };
                (if holds { "passed" } else { "expired" }, 0, None)
            }
        };
        crate::api::ProposalStatus {
            action: action.describe(),
            state: state.into(),
            voting_power: power,
            total_power: total,
            open_until_height: until,
        }
    }

    /// What happens at the start of block `height`, before its transactions:
    /// expired proposals and evidence older than the window are forgotten.
    /// Starts the block's list of touched keys afresh.
    pub fn begin_block(&mut self, height: u64) {
        self.touched.0.clear();
        let ttl = self.proposal_ttl_blocks;
        let expired: Vec<GovernanceAction> = self
            .proposals
            .iter()
            .filter(|(_, p)| p.opened_at.saturating_add(ttl) <= height)
            .map(|(a, _)| *a)
            .collect();
        for action in expired {
            self.remove_proposal(&action);
        }
        if height > EVIDENCE_MAX_AGE_BLOCKS {
            let oldest = height - EVIDENCE_MAX_AGE_BLOCKS;
            let old: Vec<_> = self
                .evidence
                .iter()
                .filter(|&&(_, h, _, _)| h < oldest)
                .copied()
                .collect();
            for key in old {
                self.remove_evidence(&key);
            }
        }
    }

    fn author_role(&self, stx: &SignedTransaction) -> Result<Role, TxError> {
        let tx = &stx.tx;
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

    /// Checks one transaction (signature checked by the caller) against this
    /// state without changing it: `Ok` exactly when [`ChainState::apply`]
    /// would succeed.
    pub fn check(
        &self,
        stx: &SignedTransaction,
        block_height: u64,
        block_time_ms: u64,
    ) -> Result<(), TxError> {
        self.effect(stx, block_height, block_time_ms).map(|_| ())
    }

    /// Applies one transaction whose signature the caller has checked. On
    /// error the state is unchanged. Returns the tally when it was a vote.
    pub fn apply(
        &mut self,
        stx: &SignedTransaction,
        block_height: u64,
        block_time_ms: u64,
    ) -> Result<Option<VoteTally>, TxError> {
        let effect = self.effect(stx, block_height, block_time_ms)?;
        let mut tally = None;
        match effect {
            Effect::Register { account, role, by } => {
                self.put_member(
                    account,
                    Member {
                        role,
                        active: true,
                        next_nonce: 0,
                        registered_by: Some(by),
                    },
                );
            }
            Effect::Revoke { account } => self.deactivate(&account),
            Effect::Vote {
                action,
                voter,
                tally: t,
            } => {
                tally = Some(t);
                if t.passed {
                    self.remove_proposal(&action);
                    self.enact(action);
                } else {
                    let mut open = self
                        .proposals
                        .get(&action)
                        .cloned()
                        .unwrap_or(OpenProposal {
                            opener: voter,
                            opened_at: block_height,
                            voters: BTreeSet::new(),
                        });
                    open.voters.insert(voter);
                    self.put_proposal(action, open);
                }
            }
            Effect::GrantConsent { key, expires_at_ms } => {
                self.put_consent(key, expires_at_ms);
            }
            Effect::RevokeConsent { key } => {
                self.remove_consent(&key);
            }
            Effect::Anchor { key } => {
                self.insert_anchor(key);
                self.anchors += 1;
                self.extend_log(stx);
            }
            Effect::Audit => {
                self.audits += 1;
                self.extend_log(stx);
            }
            Effect::Emergency { key, entry } => {
                self.put_emergency(key, entry);
                self.extend_log(stx);
            }
            Effect::Fact => {
                self.extend_log(stx);
            }
            Effect::Evidence { key, offender } => {
                self.insert_evidence(key);
                self.extend_log(stx);
                // The consequence: the offender loses its power from the next
                // height on, until validators vote it back in. The last
                // validator stays (a chain with none could not go on).
                if let Ok(next) = self.validators.with_removed(&offender) {
                    self.validators = next;
                }
            }
        }
        self.update_member(&stx.tx.author, |m| m.next_nonce += 1);
        Ok(tally)
    }

    fn deactivate(&mut self, account: &AccountId) {
        self.update_member(account, |m| m.active = false);
    }

    /// Carries out a governance action that has passed. Its preconditions
    /// were checked in the same transaction.
    fn enact(&mut self, action: GovernanceAction) {
        match action {
            GovernanceAction::AdmitHospital { account } => {
                self.put_member(
                    account,
                    Member {
                        role: Role::Hospital,
                        active: true,
                        next_nonce: 0,
                        registered_by: None,
                    },
                );
            }
            GovernanceAction::RevokeMember { account } => self.deactivate(&account),
            GovernanceAction::SetValidator { account, power } => {
                let next = self
                    .validators
                    .with_removed(&account)
                    .ok()
                    .unwrap_or_else(|| self.validators.clone());
                let updated = if next.contains(&account) {
                    // The only validator changing its own power: replace in place.
                    ValidatorSet::new(vec![Validator { account, power }]).ok()
                } else {
                    next.with_added(Validator { account, power }).ok()
                };
                if let Some(set) = updated {
                    self.validators = set;
                }
            }
            GovernanceAction::RemoveValidator { account } => {
                if let Ok(next) = self.validators.with_removed(&account) {
                    self.validators = next;
                }
            }
            GovernanceAction::SetBlockTiming(timing) => self.block_timing = timing,
        }
    }

    /// The effect of one transaction, or why the rules refuse it.
    fn effect(
        &self,
        stx: &SignedTransaction,
        block_height: u64,
        block_time_ms: u64,
    ) -> Result<Effect, TxError> {
        let tx = &stx.tx;
        if tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain {
                expected: self.chain_id,
                found: tx.chain_id,
            });
        }
        let role = self.author_role(stx)?;
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
                if account.verifying_key().is_err() {
                    return Err(TxError::BadKey(*account));
                }
                if *new_role == Role::Hospital {
                    return self.vote(
                        GovernanceAction::AdmitHospital { account: *account },
                        tx.author,
                    );
                }
                Ok(Effect::Register {
                    account: *account,
                    role: *new_role,
                    by: tx.author,
                })
            }
            TxKind::RevokeMember { account } => {
                need(Role::Hospital, "revoking a member")?;
                let Some(target) = self.members.get(account).filter(|m| m.active) else {
                    return Err(TxError::NotMember(*account));
                };
                if self.validators.contains(account) {
                    return Err(TxError::RevokeValidator(*account));
                }
                if target.role != Role::Hospital && target.registered_by == Some(tx.author) {
                    return Ok(Effect::Revoke { account: *account });
                }
                self.vote(
                    GovernanceAction::RevokeMember { account: *account },
                    tx.author,
                )
            }
            TxKind::AddValidator { account, power } => {
                need(Role::Hospital, "voting on a validator")?;
                if self.role_of(account) != Some(Role::Hospital) {
                    return Err(TxError::ValidatorNotHospital(*account));
                }
                if *power == 0 || *power > MAX_VALIDATOR_POWER {
                    return Err(TxError::BadPower {
                        found: *power,
                        max: MAX_VALIDATOR_POWER,
                    });
                }
                if self.validators.power_of(account) == Some(*power) {
                    return Err(TxError::AlreadyValidator(*account));
                }
                self.vote(
                    GovernanceAction::SetValidator {
                        account: *account,
                        power: *power,
                    },
                    tx.author,
                )
            }
            TxKind::RemoveValidator { account } => {
                need(Role::Hospital, "voting on a validator")?;
                if !self.validators.contains(account) {
                    return Err(TxError::NotValidator(*account));
                }
                if self.validators.len() == 1 {
                    return Err(TxError::LastValidator(*account));
                }
                self.vote(
                    GovernanceAction::RemoveValidator { account: *account },
                    tx.author,
                )
            }
            TxKind::SetBlockTiming(timing) => {
                need(Role::Hospital, "voting on the block timing")?;
                timing.validate().map_err(TxError::BadBlockTiming)?;
                if self.block_timing == *timing {
                    return Err(TxError::BlockTimingUnchanged);
                }
                self.vote(GovernanceAction::SetBlockTiming(*timing), tx.author)
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
                let key = (tx.author, grant.grantee, grant.scope);
                if !self.consents.contains_key(&key)
                    && self.consents_of(&tx.author) >= MAX_CONSENTS_PER_PATIENT
                {
                    return Err(TxError::TooManyConsents {
                        max: MAX_CONSENTS_PER_PATIENT,
                    });
                }
                Ok(Effect::GrantConsent {
                    key,
                    expires_at_ms: grant.expires_at_ms,
                })
            }
            TxKind::RevokeConsent { grantee, scope } => {
                need(Role::Patient, "revoking consent")?;
                let key = (tx.author, *grantee, *scope);
                if !self.consents.contains_key(&key) {
                    return Err(TxError::NoSuchConsent {
                        grantee: *grantee,
                        scope: scope.as_str(),
                    });
                }
                Ok(Effect::RevokeConsent { key })
            }
            TxKind::AnchorRecord(anchor) => {
                if self.role_of(&anchor.recipient).is_none() {
                    return Err(TxError::NotMember(anchor.recipient));
                }
                let key = RecordAnchor::key(&tx.author, &anchor.record_id);
                if self.anchored.contains(&key) {
                    return Err(TxError::DuplicateAnchor(anchor.record_id));
                }
                Ok(Effect::Anchor { key })
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
                Ok(Effect::Audit)
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
                if evidence.height().saturating_add(EVIDENCE_MAX_AGE_BLOCKS) < block_height {
                    return Err(TxError::BadEvidence(format!(
                        "evidence is more than {EVIDENCE_MAX_AGE_BLOCKS} blocks old"
                    )));
                }
                let key = evidence.key();
                if self.evidence.contains(&key) {
                    return Err(TxError::DuplicateEvidence);
                }
                Ok(Effect::Evidence { key, offender })
            }
            TxKind::DeclareEmergency(e) => {
                if !matches!(role, Role::Doctor | Role::Hospital) {
                    return Err(TxError::WrongRole {
                        action: "declaring an emergency",
                        needed: Role::Doctor,
                        actual: role,
                        author: tx.author,
                    });
                }
                if self.role_of(&e.patient) != Some(Role::Patient) {
                    return Err(TxError::NotPatient(e.patient));
                }
                let reason = e.reason.trim();
                // Control characters would reach people's terminals raw.
                if reason.is_empty()
                    || e.reason.len() > MAX_EMERGENCY_REASON_BYTES
                    || e.reason.chars().any(char::is_control)
                {
                    return Err(TxError::BadEmergencyReason {
                        max: MAX_EMERGENCY_REASON_BYTES,
                    });
                }
                if e.expires_at_ms <= block_time_ms
                    || e.expires_at_ms > block_time_ms.saturating_add(MAX_EMERGENCY_MS)
                {
                    return Err(TxError::BadEmergencyExpiry {
                        expires_at_ms: e.expires_at_ms,
                        block_time_ms,
                        max_ms: MAX_EMERGENCY_MS,
                    });
                }
                Ok(Effect::Emergency {
                    key: (e.patient, tx.author),
                    entry: EmergencyEntry {
                        expires_at_ms: e.expires_at_ms,
                        height: block_height,
                    },
                })
            }
            TxKind::EraseRecord(_) => {
                // Auditors hold no records, so they have none to erase.
                if role == Role::Auditor {
                    return Err(TxError::WrongRole {
                        action: "recording an erasure",
                        needed: Role::Patient,
                        actual: role,
                        author: tx.author,
                    });
                }
                Ok(Effect::Fact)
            }
            TxKind::RequestErasure(r) => {
                need(Role::Patient, "requesting an erasure")?;
                if r.holder == tx.author {
                    return Err(TxError::SelfErasureRequest);
                }
                if self.role_of(&r.holder).is_none() {
                    return Err(TxError::NotMember(r.holder));
                }
                Ok(Effect::Fact)
            }
            TxKind::AnchorAccessLog(a) => {
                if a.entries == 0 {
                    return Err(TxError::EmptyAccessLog);
                }
                Ok(Effect::Fact)
            }
        }
    }

    /// Whether `declarer` has declared an emergency for `patient` that has
    /// not expired at `now_ms`.
    pub fn emergency_allows(&self, patient: &AccountId, declarer: &AccountId, now_ms: u64) -> bool {
        self.emergencies
            .get(&(*patient, *declarer))
            .is_some_and(|e| e.expires_at_ms > now_ms)
    }

    fn consents_of(&self, patient: &AccountId) -> usize {
        let lo = (*patient, AccountId([0; 32]), ConsentScope::Records);
        let hi = (*patient, AccountId([0xff; 32]), ConsentScope::All);
        self.consents.range(lo..=hi).count()
    }

    /// A validator's vote for `action`: opens the proposal or adds to it, and
    /// says whether it passes now.
    fn vote(&self, action: GovernanceAction, voter: AccountId) -> Result<Effect, TxError> {
        let Some(power) = self.validators.power_of(&voter) else {
            return Err(TxError::VoterNotValidator(voter));
        };
        let earlier = match self.proposals.get(&action) {
            Some(open) => {
                if open.voters.contains(&voter) {
                    return Err(TxError::AlreadyVoted(voter));
                }
                self.tally_power(&open.voters)
            }
            None => {
                let opened = self
                    .proposals
                    .values()
                    .filter(|p| p.opener == voter)
                    .count();
                if opened >= MAX_OPEN_PROPOSALS_PER_VALIDATOR {
                    return Err(TxError::TooManyProposals {
                        max: MAX_OPEN_PROPOSALS_PER_VALIDATOR,
                    });
                }
                0
            }
        };
        let tally_power = earlier + power;
        let tally = VoteTally {
            power: tally_power,
            total: self.validators.total_power(),
            passed: self.validators.is_quorum(tally_power),
        };
        if tally.passed
            && let GovernanceAction::RemoveValidator { account } = action
            && self.validators.with_removed(&account).is_err()
        {
            return Err(TxError::LastValidator(account));
        }
        Ok(Effect::Vote {
            action,
            voter,
            tally,
        })
    }

    fn extend_log(&mut self, stx: &SignedTransaction) {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&self.log_hash.0);
        buf[32..].copy_from_slice(&stx.id().0);
        self.log_hash = Hash::digest("qward/log/v1", &buf);
    }
}
