//! Chain transactions: the kinds (membership, validator votes, consent, record
//! anchors, key-session audits, evidence), their signatures and encoding.
//!
//! A transaction names its chain, its author and the author's next nonce, and
//! is signed by the author under [`TX_DOMAIN`] over the chain's genesis hash
//! and its canonical encoding, so a signature is valid on one chain only. Its
//! id is the hash of the whole signed encoding, signature included: a block's
//! transactions root, and so its hash, pins every byte of every transaction.
//! No health data ever goes in a transaction: only ids, hashes, roles,
//! consent and audit facts.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::consensus::{BlockTiming, Evidence};
use crate::identity::{self, AccountId, Identity, Role, Sig};

use super::hash::Hash;

/// The domain tag of transaction signatures.
pub const TX_DOMAIN: &str = "qward/tx/v1";
/// The domain tag of transaction ids (over the signed encoding).
pub const TX_ID_DOMAIN: &str = "qward/tx-id/v2";
/// The largest encoded signed transaction accepted (evidence is the largest kind).
pub const MAX_TX_BYTES: usize = 2048;

/// What a consent covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConsentScope {
    /// The patient's personal health records (a hospital may forward them to the grantee).
    Records,
    /// Medical reports about the patient.
    Reports,
    /// Records and reports.
    All,
}

impl ConsentScope {
    /// Whether a consent with this scope covers a use needing `needed`.
    pub fn covers(self, needed: ConsentScope) -> bool {
        self == ConsentScope::All || self == needed
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ConsentScope::Records => "records",
            ConsentScope::Reports => "reports",
            ConsentScope::All => "all",
        }
    }
}

/// A patient's consent for `grantee` to receive data within `scope` until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGrant {
    pub grantee: AccountId,
    pub scope: ConsentScope,
    /// Unix milliseconds; the consent stops counting at this block time.
    pub expires_at_ms: u64,
}

/// Proof that an encrypted record was delivered: hashes and ids only.
/// The anchor is bound to its author (the record's sender): its key on the
/// chain is [`RecordAnchor::key`] of (author, record id), anchored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAnchor {
    /// The record's id (chosen by the sender, e.g. a hash of the envelope id).
    pub record_id: Hash,
    /// blake3 of the ciphertext as delivered.
    pub ciphertext_hash: Hash,
    /// Who received it.
    pub recipient: AccountId,
}

impl RecordAnchor {
    /// The chain's key for `author`'s anchor of `record_id`: another member
    /// anchoring the same record id gets another key, so it can neither
    /// squat nor overwrite the sender's anchor.
    pub fn key(author: &AccountId, record_id: &Hash) -> Hash {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&author.0);
        buf[32..].copy_from_slice(&record_id.0);
        Hash::digest("qward/anchor-key/v1", &buf)
    }
}

/// The longest an emergency declaration may last: a day (declare again to
/// go on).
pub const MAX_EMERGENCY_MS: u64 = 24 * 3600 * 1000;
/// The longest reason an emergency declaration may give. The reason is
/// public on the chain: words such as "unconscious in A&E", never a
/// diagnosis.
pub const MAX_EMERGENCY_REASON_BYTES: usize = 280;

/// Break-glass: a doctor or hospital (the author) declares an emergency that
/// lets it receive `patient`'s records and reports without their consent
/// until `expires_at_ms`. It is on the chain before any access it allows,
/// so the patient and every auditor see who, why and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccess {
    pub patient: AccountId,
    pub reason: String,
    /// Unix milliseconds; at most [`MAX_EMERGENCY_MS`] after the block time.
    pub expires_at_ms: u64,
}

/// The fact that the author destroyed its copy of a record (crypto-shredding
/// its at-rest key): the record's network-wide id, the one its sender anchors
/// (`envelope::wire::anchor_record_id` of sender and record id). Who and
/// when are the transaction's author and block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordErasure {
    pub record_id: Hash,
}

/// A patient (the author) asks `holder` to erase its copy of a record about
/// them (GDPR Art. 17): the record's network-wide id, as its sender
/// anchored it. The holder's node erases it (unless its operator turned
/// that off) and answers with its own erasure fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRequest {
    pub holder: AccountId,
    pub record_id: Hash,
}

/// The head of the author's local access log (who read which health record)
/// after `entries` entries: once on the chain, no entry up to it can be
/// changed, removed or reordered unseen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogAnchor {
    pub entries: u64,
    pub head: Hash,
}

/// How a key-agreement session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionOutcome {
    /// A key was agreed.
    Established,
    /// Aborted: the QBER bound exceeded the threshold (possible eavesdropper).
    AbortedQber,
    /// Aborted: the error-corrected keys did not match.
    AbortedVerification,
    /// Failed for another reason (timeout, peer gone).
    Failed,
}

/// The audit record of one key-agreement session. Never key material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySessionAudit {
    pub session_id: Hash,
    pub peer_a: AccountId,
    pub peer_b: AccountId,
    /// Quantum bit error rate in parts per million (0..=1_000_000).
    pub qber_ppm: u32,
    /// Length of the final key in bits (0 when aborted).
    pub key_length_bits: u32,
    pub outcome: SessionOutcome,
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxKind {
    /// A hospital admits a doctor, patient or auditor on its own. With the
    /// Hospital role it is a validator's vote to admit a hospital instead,
    /// which takes effect once validators holding more than 2/3 of the voting
    /// power have voted for it.
    RegisterMember { account: AccountId, role: Role },
    /// Revokes a member (never a validator: remove it as validator first).
    /// The hospital that registered a doctor, patient or auditor revokes it
    /// on its own; any other revocation is a validator's vote (same threshold).
    RevokeMember { account: AccountId },
    /// A validator's vote to make a hospital a validator with `power`, or to
    /// change a validator's power (same threshold).
    AddValidator { account: AccountId, power: u64 },
    /// A validator's vote to remove a validator (same threshold).
    RemoveValidator { account: AccountId },
    /// A patient grants consent.
    GrantConsent(ConsentGrant),
    /// A patient revokes a consent.
    RevokeConsent {
        grantee: AccountId,
        scope: ConsentScope,
    },
    /// A member anchors a delivered record.
    AnchorRecord(RecordAnchor),
    /// A member (one of the two peers) records a key session's outcome.
    AuditKeySession(KeySessionAudit),
    /// Any member submits proof that a validator signed two votes for one height and round.
    SubmitEvidence(Box<Evidence>),
    /// A doctor or hospital declares an emergency (break-glass access).
    DeclareEmergency(EmergencyAccess),
    /// A member records that it erased its copy of a record.
    EraseRecord(RecordErasure),
    /// A patient asks a member to erase its copy of a record about them.
    RequestErasure(ErasureRequest),
    /// A member anchors the head of its access log.
    AnchorAccessLog(AccessLogAnchor),
    /// A validator's vote to change the chain's block timing (same
    /// threshold as the other votes).
    SetBlockTiming(BlockTiming),
}

impl TxKind {
    /// A short name, for people and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            TxKind::RegisterMember { .. } => "register-member",
            TxKind::RevokeMember { .. } => "revoke-member",
            TxKind::AddValidator { .. } => "add-validator",
            TxKind::RemoveValidator { .. } => "remove-validator",
            TxKind::GrantConsent(_) => "grant-consent",
            TxKind::RevokeConsent { .. } => "revoke-consent",
            TxKind::AnchorRecord(_) => "anchor-record",
            TxKind::AuditKeySession(_) => "audit-key-session",
            TxKind::SubmitEvidence(_) => "submit-evidence",
            TxKind::DeclareEmergency(_) => "declare-emergency",
            TxKind::EraseRecord(_) => "erase-record",
            TxKind::RequestErasure(_) => "request-erasure",
            TxKind::AnchorAccessLog(_) => "anchor-access-log",
            TxKind::SetBlockTiming(_) => "set-block-timing",
        }
    }
}

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The chain this is meant for (no replay across chains).
    pub chain_id: u64,
    pub author: AccountId,
    /// The author's next nonce: 0 for their first transaction, then +1 (no replay).
    pub nonce: u64,
    pub kind: TxKind,
}

impl Transaction {
    /// The canonical bytes that are signed: the genesis hash of the chain the
    /// transaction is for, then its encoding.
    pub fn signing_bytes(&self, genesis: &Hash) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(160);
        bytes.extend_from_slice(&genesis.0);
        bytes.extend_from_slice(&codec::encode_infallible(self));
        bytes
    }

    /// Signs the transaction for the chain named by `genesis`. The identity
    /// must be the author.
    pub fn sign(self, genesis: &Hash, identity: &Identity) -> SignedTransaction {
        let sig = identity.sign(TX_DOMAIN, &self.signing_bytes(genesis));
        SignedTransaction { tx: self, sig }
    }
}

/// A transaction with its author's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub sig: Sig,
}

impl SignedTransaction {
    /// The transaction id: the hash of the whole signed encoding, so two
    /// encodings that differ in any byte (a signature byte included) are
    /// different transactions.
    pub fn id(&self) -> Hash {
        Hash::digest(TX_ID_DOMAIN, &self.encode())
    }

    /// Checks the author's signature (strict) for the chain named by `genesis`.
    pub fn verify_signature(&self, genesis: &Hash) -> Result<(), identity::IdentityError> {
        identity::verify(
            &self.tx.author,
            TX_DOMAIN,
            &self.tx.signing_bytes(genesis),
            &self.sig,
        )
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    /// Decodes a signed transaction, refusing more than [`MAX_TX_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_TX_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const GENESIS: Hash = Hash([9; 32]);

    fn sample(id: &Identity) -> SignedTransaction {
        Transaction {
            chain_id: 7,
            author: id.account(),
            nonce: 3,
            kind: TxKind::GrantConsent(ConsentGrant {
                grantee: AccountId([4; 32]),
                scope: ConsentScope::Records,
                expires_at_ms: 99,
            }),
        }
        .sign(&GENESIS, id)
    }

    #[test]
    fn signature_covers_every_field_and_the_genesis() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let id = Identity::generate(&mut rng);
        let stx = sample(&id);
        stx.verify_signature(&GENESIS).unwrap();
        let mut other = stx.clone();
        other.tx.nonce = 4;
        assert!(other.verify_signature(&GENESIS).is_err());
        let mut other = stx.clone();
        other.tx.chain_id = 8;
        assert!(other.verify_signature(&GENESIS).is_err());
        assert_ne!(other.id(), stx.id());
        // The same chain id with another genesis is another chain.
        assert!(stx.verify_signature(&Hash([8; 32])).is_err());
    }

    #[test]
    fn the_id_covers_the_signature() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let id = Identity::generate(&mut rng);
        let stx = sample(&id);
        for byte in [0, 31, 32, 63] {
            let mut flipped = stx.clone();
            flipped.sig.0[byte] ^= 1;
            assert_ne!(flipped.id(), stx.id(), "signature byte {byte}");
            assert!(flipped.verify_signature(&GENESIS).is_err());
        }
        assert_eq!(stx.clone().id(), stx.id());
    }

    #[test]
    fn anchor_keys_are_bound_to_their_author() {
        let record = Hash([1; 32]);
        let (a, b) = (AccountId([2; 32]), AccountId([3; 32]));
        assert_ne!(
            RecordAnchor::key(&a, &record),
            RecordAnchor::key(&b, &record)
        );
        assert_ne!(
            RecordAnchor::key(&a, &record),
            RecordAnchor::key(&a, &Hash([4; 32]))
        );
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = Identity::generate(&mut rng);
        let stx = sample(&id);
        let bytes = stx.encode();
        assert_eq!(SignedTransaction::decode(&bytes).unwrap(), stx);
        assert!(SignedTransaction::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn consent_scope_coverage() {
        assert!(ConsentScope::All.covers(ConsentScope::Records));
        assert!(ConsentScope::Records.covers(ConsentScope::Records));
        assert!(!ConsentScope::Reports.covers(ConsentScope::Records));
    }
}
