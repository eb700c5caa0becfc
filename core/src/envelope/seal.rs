//! Sealing and opening envelopes with XChaCha20-Poly1305 under a hybrid key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{
    ENVELOPE_VERSION, Envelope, EnvelopeError, EnvelopeHeader, MAX_PAYLOAD_BYTES, TAG_BYTES,
};
use crate::codec;
use crate::hybrid::{HybridKey, KeyId};
use crate::identity::AccountId;

/// What the cipher authenticates besides the ciphertext.
#[derive(Serialize)]
struct AssociatedData<'a> {
    context: &'static str,
    version: u16,
    sender: &'a AccountId,
    recipient: &'a AccountId,
    key_id: &'a KeyId,
    header: &'a EnvelopeHeader,
}

/// The associated data of an envelope: the canonical encoding of a context
/// string, the version, sender, recipient, key id and header.
pub fn associated_data(envelope: &Envelope) -> Vec<u8> {
    aad_bytes(
        envelope.version,
        &envelope.sender,
        &envelope.recipient,
        &envelope.key_id,
        &envelope.header,
    )
}

fn aad_bytes(
    version: u16,
    sender: &AccountId,
    recipient: &AccountId,
    key_id: &KeyId,
    header: &EnvelopeHeader,
) -> Vec<u8> {
    codec::encode_infallible(&AssociatedData {
        context: "qward envelope",
        version,
        sender,
        recipient,
        key_id,
        header,
    })
}

fn cipher(key: &HybridKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&Key::from(*key.secret_bytes()))
}

/// Encrypts `plaintext` for `header.recipient` under `key`, with a fresh
/// random 24-byte nonce from `rng`.
pub fn seal<R: CryptoRng + ?Sized>(
    key: &HybridKey,
    header: EnvelopeHeader,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Envelope, EnvelopeError> {
    if plaintext.len() > MAX_PAYLOAD_BYTES {
        return Err(EnvelopeError::TooLarge {
            len: plaintext.len(),
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let key_id = key.id();
    let aad = aad_bytes(
        ENVELOPE_VERSION,
        &header.sender,
        &header.recipient,
        &key_id,
        &header,
    );
    let ciphertext = cipher(key)
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Only a payload beyond 256 GiB can fail; the limit above excludes it.
        .map_err(|_| EnvelopeError::TooLarge {
            len: plaintext.len(),
            limit: MAX_PAYLOAD_BYTES,
        })?;
    Ok(Envelope {
        version: ENVELOPE_VERSION,
        sender: header.sender,
        recipient: header.recipient,
        key_id,
        nonce,
        header,
        ciphertext,
    })
}

/// Checks and decrypts `envelope` for `expected_recipient` (this node).
///
/// Checks, in order: version, recipient, key id, size, header consistency,
/// then authentication. The plaintext is zeroized when dropped.
pub fn open(
    key: &HybridKey,
    envelope: &Envelope,
    expected_recipient: &AccountId,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if envelope.version != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion {
            found: envelope.version,
            supported: ENVELOPE_VERSION,
        });
    }
    if envelope.recipient != *expected_recipient {
        return Err(EnvelopeError::WrongRecipient {
            addressed_to: envelope.recipient,
            expected: *expected_recipient,
        });
    }
    if envelope.key_id != key.id() {
        return Err(EnvelopeError::KeyMismatch {
            envelope: envelope.key_id,
            offered: key.id(),
        });
    }
    if envelope.ciphertext.len() > MAX_PAYLOAD_BYTES + TAG_BYTES {
        return Err(EnvelopeError::TooLarge {
            len: envelope.ciphertext.len(),
            limit: MAX_PAYLOAD_BYTES + TAG_BYTES,
        });
    }
    // The sealer copies sender and recipient into the header; a difference
    // can only come from tampering (and would fail authentication anyway).
    if envelope.header.sender != envelope.sender || envelope.header.recipient != envelope.recipient
    {
        return Err(EnvelopeError::Tampered);
    }
    let aad = associated_data(envelope);
    cipher(key)
        .decrypt(
            &XNonce::from(envelope.nonce),
            Payload {
                msg: &envelope.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Tampered)
}
