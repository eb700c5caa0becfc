//! The message envelope (protocol `/qward/msg/1`): an XChaCha20-Poly1305
//! ciphertext of a FHIR payload, its authenticated header, delivery receipts
//! and replay checks (DESIGN section 4).
//!
//! The associated data of the cipher is the canonical encoding of everything
//! in the envelope except the nonce and the ciphertext (version, sender,
//! recipient, key id, header), so changing any of it fails decryption.

mod at_rest;
pub mod lifecycle;
pub mod policy;
mod receipt;
mod replay;
mod seal;
pub mod wire;

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::hybrid::KeyId;
use crate::identity::AccountId;

pub use at_rest::{AtRestKey, open_at_rest, seal_at_rest};
pub use receipt::{MAX_RECEIPT_BYTES, RECEIPT_DOMAIN, Receipt};
pub use replay::{ReplayCheck, ReplayKey, ReplayPolicy};
pub use seal::{associated_data, open, seal};

/// The envelope format this code writes and reads.
pub const ENVELOPE_VERSION: u16 = 1;
/// The largest plaintext payload (12 MiB; records up to 8 MiB are expected).
pub const MAX_PAYLOAD_BYTES: usize = 12 * 1024 * 1024;
/// The Poly1305 tag appended to every ciphertext.
pub const TAG_BYTES: usize = 16;
/// The largest encoded envelope accepted from the network or the store.
pub const MAX_ENVELOPE_BYTES: usize = MAX_PAYLOAD_BYTES + TAG_BYTES + 4096;

/// Why an envelope could not be sealed, opened, decoded or acknowledged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error(
        "envelope version {found} is not supported (this node reads version {supported}): upgrade the node"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error(
        "envelope is addressed to {addressed_to}, not to this node ({expected}): it was misrouted"
    )]
    WrongRecipient {
        addressed_to: AccountId,
        expected: AccountId,
    },
    #[error(
        "envelope was sealed under key {envelope} but key {offered} was offered: look the key up by the envelope's key id"
    )]
    KeyMismatch { envelope: KeyId, offered: KeyId },
    #[error(
        "envelope failed authentication (modified in transit, or sealed under another key): discard it"
    )]
    Tampered,
    #[error(
        "payload of {len} bytes exceeds the {limit}-byte limit: split the record or attach less"
    )]
    TooLarge { len: usize, limit: usize },
    #[error("malformed envelope: {0}")]
    Malformed(#[from] CodecError),
    #[error("receipt does not match the envelope: {0}")]
    ReceiptMismatch(&'static str),
    #[error(
        "receipt signature does not verify for recipient {recipient}: it is forged or was modified"
    )]
    BadReceiptSignature { recipient: AccountId },
    #[error("only the recipient {recipient} can acknowledge this envelope")]
    NotTheRecipient { recipient: AccountId },
}

/// What a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    /// A personal health record: a FHIR R4 `Bundle`.
    Phr,
    /// A medical report: a FHIR R4 `DiagnosticReport`.
    Report,
}

impl RecordKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordKind::Phr => "phr",
            RecordKind::Report => "report",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record's 16-byte id, chosen by its author; stable across retries.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordId(pub [u8; 16]);

impl RecordId {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        RecordId(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits; `None` otherwise.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s.trim()).ok()?;
        Some(RecordId(bytes.try_into().ok()?))
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordId({})", self.to_hex())
    }
}

/// The authenticated, unencrypted description of a payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeHeader {
    pub kind: RecordKind,
    pub record_id: RecordId,
    pub created_at_ms: u64,
    pub sender: AccountId,
    pub recipient: AccountId,
    /// The patient the record is about: the sender of their own PHR, the
    /// original patient of a forwarded one, the subject of a report. Consent
    /// is checked against this account.
    pub patient: AccountId,
}

/// A sealed record as it travels and as the outbox and inbox store it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub sender: AccountId,
    pub recipient: AccountId,
    pub key_id: KeyId,
    pub nonce: [u8; 24],
    pub header: EnvelopeHeader,
    /// XChaCha20-Poly1305 ciphertext with its 16-byte tag at the end.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("version", &self.version)
            .field("key_id", &self.key_id)
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The canonical bytes for the wire and the store.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    /// Decodes an envelope, refusing more than [`MAX_ENVELOPE_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(codec::decode(bytes, MAX_ENVELOPE_BYTES)?)
    }
}

/// The hash that goes on the chain once a record is delivered:
/// `blake3(ciphertext)`. It reveals nothing about the payload.
pub fn anchor_hash(envelope: &Envelope) -> [u8; 32] {
    *blake3::hash(&envelope.ciphertext).as_bytes()
}

#[cfg(test)]
mod tests;
