//! Signed delivery receipts: the recipient's proof that it received and
//! authenticated one envelope. The sender's outbox retries until one arrives.

use serde::{Deserialize, Serialize};

use super::{Envelope, EnvelopeError, RecordId, anchor_hash};
use crate::codec;
use crate::identity::{AccountId, Identity, Sig, verify};

/// The signature domain of a receipt.
pub const RECEIPT_DOMAIN: &str = "qward/msg/receipt/v1";
/// The largest encoded receipt accepted from the network.
pub const MAX_RECEIPT_BYTES: usize = 512;

/// "`recipient` received the envelope from `sender` whose ciphertext hashes
/// to `envelope_hash`, at `received_at_ms`", signed by the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub record_id: RecordId,
    /// `blake3(ciphertext)`, the same value as [`anchor_hash`].
    pub envelope_hash: [u8; 32],
    pub sender: AccountId,
    pub recipient: AccountId,
    pub received_at_ms: u64,
    pub signature: Sig,
}

#[derive(Serialize)]
struct ReceiptBody<'a> {
    record_id: &'a RecordId,
    envelope_hash: &'a [u8; 32],
    sender: &'a AccountId,
    recipient: &'a AccountId,
    received_at_ms: u64,
}

impl Receipt {
    /// Acknowledges `envelope`. Call only after [`super::open`] succeeded, so
    /// that a receipt is never issued for a forged envelope.
    pub fn issue(
        identity: &Identity,
        envelope: &Envelope,
        received_at_ms: u64,
    ) -> Result<Receipt, EnvelopeError> {
        let recipient = identity.account();
        if recipient != envelope.recipient {
            return Err(EnvelopeError::NotTheRecipient {
                recipient: envelope.recipient,
            });
        }
        let mut receipt = Receipt {
            record_id: envelope.header.record_id,
            envelope_hash: anchor_hash(envelope),
            sender: envelope.sender,
            recipient,
            received_at_ms,
            signature: Sig([0; 64]),
        };
        receipt.signature = identity.sign(RECEIPT_DOMAIN, &receipt.body());
        Ok(receipt)
    }

    fn body(&self) -> Vec<u8> {
        codec::encode_infallible(&ReceiptBody {
            record_id: &self.record_id,
            envelope_hash: &self.envelope_hash,
            sender: &self.sender,
            recipient: &self.recipient,
            received_at_ms: self.received_at_ms,
        })
    }

    /// Checks the signature alone (the recipient signed these fields).
    pub fn verify_signature(&self) -> Result<(), EnvelopeError> {
        verify(
            &self.recipient,
            RECEIPT_DOMAIN,
            &self.body(),
            &self.signature,
        )
        .map_err(|_| EnvelopeError::BadReceiptSignature {
            recipient: self.recipient,
        })
    }

    /// Checks that this receipt acknowledges exactly `envelope` (what the
    /// sender's outbox holds) and is signed by its recipient.
    pub fn verify(&self, envelope: &Envelope) -> Result<(), EnvelopeError> {
        if self.recipient != envelope.recipient {
            return Err(EnvelopeError::ReceiptMismatch(
                "signed by someone other than the envelope's recipient",
            ));
        }
        if self.sender != envelope.sender {
            return Err(EnvelopeError::ReceiptMismatch(
                "acknowledges an envelope from another sender",
            ));
        }
        if self.record_id != envelope.header.record_id {
            return Err(EnvelopeError::ReceiptMismatch(
                "acknowledges another record id",
            ));
        }
        if self.envelope_hash != anchor_hash(envelope) {
            return Err(EnvelopeError::ReceiptMismatch(
                "acknowledges another ciphertext",
            ));
        }
        self.verify_signature()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(codec::decode(bytes, MAX_RECEIPT_BYTES)?)
    }
}
