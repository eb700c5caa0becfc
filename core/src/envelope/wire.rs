//! The `/qward/msg/1` wire: a sender delivers one envelope per request; the
//! recipient answers with its signed receipt or a refusal that says whether
//! to retry.

use serde::{Deserialize, Serialize};

use super::{Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, Receipt, RecordId};
use crate::chain::Hash;
use crate::codec;
use crate::identity::AccountId;

/// What the sender should do after a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retry {
    /// A passing condition (busy, not synced yet): send the same envelope later.
    Later,
    /// The recipient does not hold the envelope's key: agree a new key and
    /// seal again.
    Reseal,
    /// A rule refuses it (no consent, wrong recipient, invalid record): give up.
    Never,
}

/// A request on `/qward/msg/1`.
#[derive(Debug, Serialize, Deserialize)]
pub enum MsgRequest {
    Deliver { envelope: Envelope },
}

/// The recipient's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum MsgResponse {
    /// Stored (or stored before: a retry); the signed receipt.
    Receipt {
        receipt: Receipt,
    },
    Refused {
        reason: String,
        retry: Retry,
    },
}

/// The largest `/qward/msg/1` request: an envelope of the largest payload
/// the sender accepts ([`super::MAX_PAYLOAD_BYTES`], checked when a record
/// is queued) with its header and tag, and the request's own encoding. The
/// node's frame limit for the protocol is this, so every record accepted
/// for sending can be delivered.
pub const MAX_REQUEST_BYTES: usize = MAX_ENVELOPE_BYTES + 64;

impl MsgRequest {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(codec::decode(bytes, MAX_REQUEST_BYTES)?)
    }
}

impl MsgResponse {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(codec::decode(bytes, 64 * 1024)?)
    }
}

/// The id under which a delivered record is anchored on the chain:
/// `blake3 derive_key("qward anchor v1", sender || record id)`, so record ids
/// chosen by different senders never collide.
pub fn anchor_record_id(sender: &AccountId, record: &RecordId) -> Hash {
    let mut material = Vec::with_capacity(48);
    material.extend_from_slice(&sender.0);
    material.extend_from_slice(&record.0);
    Hash(blake3::derive_key("qward anchor v1", &material))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_without_panic_and_ids_differ_by_sender() {
        for n in 0..80usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let _ = MsgRequest::decode(&bytes);
            let _ = MsgResponse::decode(&bytes);
        }
        let r = RecordId([5; 16]);
        assert_ne!(
            anchor_record_id(&AccountId([1; 32]), &r),
            anchor_record_id(&AccountId([2; 32]), &r)
        );
        let refused = MsgResponse::Refused {
            reason: "no consent".into(),
            retry: Retry::Never,
        };
        let back = MsgResponse::decode(&refused.encode()).unwrap();
        assert!(matches!(
            back,
            MsgResponse::Refused {
                retry: Retry::Never,
                ..
            }
        ));
    }
}
