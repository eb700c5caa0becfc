//! The chain state as separate storage entries: how each member, proposal,
//! consent, evidence slot and anchor is keyed and encoded, the small
//! [`StateMeta`] record beside them, and the per-block list of touched keys
//! that tells the store what to write and the state root what to re-hash.
//!
//! Store keys in the `State` column: `S` the meta record; `m` + account a
//! [`Member`]; `p` + action an [`OpenProposal`]; `c` + patient + grantee +
//! scope the expiry; `x` + patient + declarer an [`EmergencyEntry`]; `e` +
//! (offender, height, round, step) and `a` + anchor key, both with an empty
//! value.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::identity::AccountId;

use super::hash::Hash;
use super::state::{ChainState, EmergencyEntry, GovernanceAction, Member, OpenProposal};
use super::tx::ConsentScope;
use super::validator_set::ValidatorSet;

/// The store key of the meta record.
pub const META_KEY: &[u8] = b"S";

/// One entry of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    Member(AccountId),
    Proposal(GovernanceAction),
    Consent(AccountId, AccountId, ConsentScope),
    Emergency(AccountId, AccountId),
    Evidence(AccountId, u64, u32, u8),
    Anchor(Hash),
}

impl StateKey {
    /// The key in the `State` column.
    pub fn store_key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(80);
        match self {
            StateKey::Member(a) => {
                k.push(b'm');
                k.extend_from_slice(&a.0);
            }
            StateKey::Proposal(action) => {
                k.push(b'p');
                k.extend_from_slice(&codec::encode_infallible(action));
            }
            StateKey::Consent(patient, grantee, scope) => {
                k.push(b'c');
                k.extend_from_slice(&patient.0);
                k.extend_from_slice(&grantee.0);
                k.push(*scope as u8);
            }
            StateKey::Emergency(patient, declarer) => {
                k.push(b'x');
                k.extend_from_slice(&patient.0);
                k.extend_from_slice(&declarer.0);
            }
            StateKey::Evidence(offender, height, round, step) => {
                k.push(b'e');
                k.extend_from_slice(&codec::encode_infallible(&(offender, height, round, step)));
            }
            StateKey::Anchor(key) => {
                k.push(b'a');
                k.extend_from_slice(&key.0);
            }
        }
        k
    }
}

/// The state's fields that are not collections of entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    pub chain_id: u64,
    pub genesis_hash: Hash,
    pub proposal_ttl_blocks: u64,
    pub block_timing: crate::consensus::BlockTiming,
    pub validators: ValidatorSet,
    pub anchors: u64,
    pub audits: u64,
    pub log_hash: Hash,
}

/// The largest encoded meta record (the validator set dominates it).
pub const MAX_META_BYTES: usize = 128 * 1024;
/// The largest encoded entry value.
pub const MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Keys changed since the start of the current block. Bookkeeping, not
/// state: two states are equal whatever their journals hold.
#[derive(Debug, Clone, Default)]
pub struct Touched(pub BTreeSet<StateKey>);

impl PartialEq for Touched {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Touched {}

/// A consent scope from its store byte.
pub fn scope_from_byte(b: u8) -> Option<ConsentScope> {
    [
        ConsentScope::Records,
        ConsentScope::Reports,
        ConsentScope::All,
    ]
    .into_iter()
    .find(|s| *s as u8 == b)
}

impl ChainState {
    /// The meta record.
    pub fn meta(&self) -> StateMeta {
        StateMeta {
            chain_id: self.chain_id,
            genesis_hash: self.genesis_hash,
            proposal_ttl_blocks: self.proposal_ttl_blocks,
            block_timing: self.block_timing,
            validators: self.validators.clone(),
            anchors: self.anchors,
            audits: self.audits,
            log_hash: self.log_hash,
        }
    }

    /// The encoded value of `key` in this state, `None` when absent.
    pub fn entry_value(&self, key: &StateKey) -> Option<Vec<u8>> {
        match key {
            StateKey::Member(a) => self.members.get(a).map(codec::encode_infallible),
            StateKey::Proposal(action) => self.proposals.get(action).map(codec::encode_infallible),
            StateKey::Consent(p, g, s) => self
                .consents
                .get(&(*p, *g, *s))
                .map(|exp| exp.to_le_bytes().to_vec()),
            StateKey::Emergency(p, d) => self
                .emergencies
                .get(&(*p, *d))
                .map(codec::encode_infallible),
            StateKey::Evidence(o, h, r, s) => {
                self.evidence.contains(&(*o, *h, *r, *s)).then(Vec::new)
            }
            StateKey::Anchor(k) => self.anchored.contains(k).then(Vec::new),
        }
    }

    /// Every key of this state, in order.
    pub fn all_keys(&self) -> impl Iterator<Item = StateKey> + '_ {
        let members = self.members.keys().map(|a| StateKey::Member(*a));
        let proposals = self.proposals.keys().map(|a| StateKey::Proposal(*a));
        let consents = self
            .consents
            .keys()
            .map(|(p, g, s)| StateKey::Consent(*p, *g, *s));
        let emergencies = self
            .emergencies
            .keys()
            .map(|(p, d)| StateKey::Emergency(*p, *d));
        let evidence = self
            .evidence
            .iter()
            .map(|(o, h, r, s)| StateKey::Evidence(*o, *h, *r, *s));
        let anchors = self.anchored.iter().map(|k| StateKey::Anchor(*k));
        members
            .chain(proposals)
            .chain(consents)
            .chain(emergencies)
            .chain(evidence)
            .chain(anchors)
    }

    /// The keys changed since the start of the current block.
    pub fn touched(&self) -> &BTreeSet<StateKey> {
        &self.touched.0
    }

    /// Records that `key` goes from `old` to its current value: the root's
    /// accumulator drops the old entry and takes the new one.
    pub(super) fn track(&mut self, key: StateKey, old: Option<Vec<u8>>) {
        let store_key = key.store_key();
        if let Some(old) = old {
            self.entries.remove(&[store_key.as_slice(), &old].concat());
        }
        if let Some(new) = self.entry_value(&key) {
            self.entries.add(&[store_key.as_slice(), &new].concat());
        }
        self.touched.0.insert(key);
    }

    /// Rebuilds the root's accumulator from every entry (after loading, and
    /// to check the incremental one in tests).
    pub fn rehash_entries(&mut self) {
        let mut acc = super::lthash::LtHash::default();
        let keys: Vec<StateKey> = self.all_keys().collect();
        for key in keys {
            if let Some(value) = self.entry_value(&key) {
                acc.add(&[key.store_key().as_slice(), &value].concat());
            }
        }
        self.entries = acc;
    }

    // Tracked mutations: every change of an entry goes through one of these.

    pub(super) fn put_member(&mut self, account: AccountId, member: Member) {
        let key = StateKey::Member(account);
        let old = self.entry_value(&key);
        self.members.insert(account, member);
        self.track(key, old);
    }

    pub(super) fn update_member(&mut self, account: &AccountId, f: impl FnOnce(&mut Member)) {
        let key = StateKey::Member(*account);
        let old = self.entry_value(&key);
        if let Some(m) = self.members.get_mut(account) {
            f(m);
            self.track(key, old);
        }
    }

    pub(super) fn put_proposal(&mut self, action: GovernanceAction, open: OpenProposal) {
        let key = StateKey::Proposal(action);
        let old = self.entry_value(&key);
        self.proposals.insert(action, open);
        self.track(key, old);
    }

    pub(super) fn remove_proposal(&mut self, action: &GovernanceAction) {
        let key = StateKey::Proposal(*action);
        let old = self.entry_value(&key);
        if self.proposals.remove(action).is_some() {
            self.track(key, old);
        }
    }

    pub(super) fn put_consent(&mut self, k: (AccountId, AccountId, ConsentScope), exp: u64) {
        let key = StateKey::Consent(k.0, k.1, k.2);
        let old = self.entry_value(&key);
        self.consents.insert(k, exp);
        self.track(key, old);
    }

    pub(super) fn remove_consent(&mut self, k: &(AccountId, AccountId, ConsentScope)) {
        let key = StateKey::Consent(k.0, k.1, k.2);
        let old = self.entry_value(&key);
        if self.consents.remove(k).is_some() {
            self.track(key, old);
        }
    }

    pub(super) fn put_emergency(&mut self, k: (AccountId, AccountId), e: EmergencyEntry) {
        let key = StateKey::Emergency(k.0, k.1);
        let old = self.entry_value(&key);
        self.emergencies.insert(k, e);
        self.track(key, old);
    }

    pub(super) fn insert_evidence(&mut self, k: (AccountId, u64, u32, u8)) {
        let key = StateKey::Evidence(k.0, k.1, k.2, k.3);
        let old = self.entry_value(&key);
        self.evidence.insert(k);
        self.track(key, old);
    }

    pub(super) fn remove_evidence(&mut self, k: &(AccountId, u64, u32, u8)) {
        let key = StateKey::Evidence(k.0, k.1, k.2, k.3);
        let old = self.entry_value(&key);
        if self.evidence.remove(k) {
            self.track(key, old);
        }
    }

    pub(super) fn insert_anchor(&mut self, k: Hash) {
        let key = StateKey::Anchor(k);
        let old = self.entry_value(&key);
        self.anchored.insert(k);
        self.track(key, old);
    }
}
