//! Hybrid key agreement: a signed X25519 exchange, the session transcript, and
//! the derivation that binds the QKD key, the X25519 secret and the transcript
//! into one 32-byte session key (DESIGN section 3.9).
//!
//! An attacker must break both the QKD key and X25519 to learn the key: the
//! derivation is `blake3::derive_key("qward hybrid v1", qkd_key ||
//! x25519_shared || transcript_hash)`. The X25519 offers are signed by the node
//! identities (domain `qward/hybrid/offer/v1`) over the session id, both
//! accounts and the ephemeral public key, so a man in the middle cannot
//! substitute his own ephemeral key.
//!
//! Order of a session, as the node drives it (both sides do the same):
//! 1. `Transcript::new(session, initiator, responder)`;
//! 2. `transcript.absorb(label, bytes)` for every classical QKD message, in
//!    the order they were sent;
//! 3. each side makes a [`Handshake`], sends its [`HandshakeOffer`], and on
//!    receiving the peer's calls [`Handshake::finish`];
//! 4. `transcript.absorb_offers(initiator_offer, responder_offer)`;
//! 5. [`derive_hybrid_key`] with the QKD key, the X25519 secret and
//!    `transcript.hash()`.

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec;
use crate::identity::{AccountId, Identity, Sig, verify};

/// The blake3 context of the final key derivation (DESIGN section 3.9).
pub const HYBRID_CONTEXT: &str = "qward hybrid v1";
/// The signature domain of a handshake offer.
pub const OFFER_DOMAIN: &str = "qward/hybrid/offer/v1";
/// The blake3 context that keys the running transcript hash.
pub const TRANSCRIPT_CONTEXT: &str = "qward transcript v1";
/// The shortest QKD key accepted into a derivation (128 bits).
pub const MIN_QKD_KEY_BYTES: usize = 16;
/// The largest encoded offer accepted from the network.
pub const MAX_OFFER_BYTES: usize = 256;

/// Why a key agreement step failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HybridError {
    /// The offer's signature is not the peer's over this session: wrong
    /// signer, another session, or a modified ephemeral key.
    #[error(
        "handshake offer from {peer} does not verify for this session: drop the session and start a new one"
    )]
    BadOfferSignature { peer: AccountId },
    /// The peer's ephemeral key is a low-order point: the shared secret
    /// would be predictable.
    #[error("peer {peer} sent a low-order X25519 key: the exchange is refused")]
    NonContributory { peer: AccountId },
    /// The QKD stage produced too short a key (or aborted).
    #[error(
        "QKD key of {len} bytes is shorter than the {min}-byte minimum: run the QKD session again"
    )]
    QkdKeyTooShort { len: usize, min: usize },
    /// Bytes from the network are not a valid offer.
    #[error("malformed handshake offer: {0}")]
    Malformed(#[from] codec::CodecError),
}

/// A 16-byte key-agreement session id, chosen by the initiator.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        SessionId(bytes)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex::encode(self.0))
    }
}

/// The public id of a hybrid key: blake3(transcript hash || "key-id"),
/// truncated to 16 bytes. Both sides compute the same id; it reveals nothing
/// about the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub fn from_transcript(transcript: &TranscriptHash) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&transcript.0);
        hasher.update(b"key-id");
        let mut id = [0u8; 16];
        id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        KeyId(id)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// The final session key. Zeroized on drop; `Debug` shows only its id.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct HybridKey {
    #[zeroize(skip)]
    id: KeyId,
    bytes: [u8; 32],
}

impl HybridKey {
    /// Restores a key from storage (the node persists the id and the bytes).
    pub fn from_secret(id: KeyId, bytes: [u8; 32]) -> Self {
        HybridKey { id, bytes }
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The secret bytes, for the cipher and for storage only.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

impl fmt::Debug for HybridKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HybridKey({}, <redacted>)", self.id)
    }
}

/// The X25519 shared secret of one session. Zeroized on drop, never printed.
pub struct X25519Shared(Zeroizing<[u8; 32]>);

impl X25519Shared {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for X25519Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Shared(<redacted>)")
    }
}

/// The hash of everything said in the clear during a session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TranscriptHash(pub [u8; 32]);

impl fmt::Debug for TranscriptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TranscriptHash({}..)", hex::encode(&self.0[..8]))
    }
}

/// A running blake3 hash over the canonical encodings of a session's
/// classical messages. Every entry is framed (label length, label, byte
/// length, bytes), so two different sequences never hash alike.
#[derive(Clone)]
pub struct Transcript {
    hasher: blake3::Hasher,
    entries: u64,
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcript")
            .field("entries", &self.entries)
            .field("hash", &self.hash())
            .finish()
    }
}

impl Transcript {
    /// Starts the transcript of `session` between `initiator` and `responder`.
    pub fn new(session: SessionId, initiator: AccountId, responder: AccountId) -> Self {
        let mut t = Transcript {
            hasher: blake3::Hasher::new_derive_key(TRANSCRIPT_CONTEXT),
            entries: 0,
        };
        t.absorb(
            "session",
            &codec::encode_infallible(&(session, initiator, responder)),
        );
        t
    }

    /// Adds one classical message (its canonical bytes) under `label`.
    pub fn absorb(&mut self, label: &str, bytes: &[u8]) {
        self.hasher.update(&(label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        self.entries += 1;
    }

    /// Adds both handshake offers, initiator's first.
    pub fn absorb_offers(&mut self, initiator: &HandshakeOffer, responder: &HandshakeOffer) {
        self.absorb("offer/initiator", &initiator.to_bytes());
        self.absorb("offer/responder", &responder.to_bytes());
    }

    /// The number of entries absorbed (the session header counts as one).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    pub fn hash(&self) -> TranscriptHash {
        TranscriptHash(*self.hasher.finalize().as_bytes())
    }
}

/// One side's signed X25519 ephemeral public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeOffer {
    pub ephemeral_public: [u8; 32],
    pub signature: Sig,
}

/// What an offer's signature covers.
#[derive(Serialize)]
struct OfferBody<'a> {
    session: &'a SessionId,
    signer: &'a AccountId,
    recipient: &'a AccountId,
    ephemeral_public: &'a [u8; 32],
}

fn offer_body(
    session: &SessionId,
    signer: &AccountId,
    recipient: &AccountId,
    ephemeral_public: &[u8; 32],
) -> Vec<u8> {
    codec::encode_infallible(&OfferBody {
        session,
        signer,
        recipient,
        ephemeral_public,
    })
}

impl HandshakeOffer {
    /// Checks that `signer` made this offer for `recipient` in `session`.
    pub fn verify(
        &self,
        session: &SessionId,
        signer: &AccountId,
        recipient: &AccountId,
    ) -> Result<(), HybridError> {
        let body = offer_body(session, signer, recipient, &self.ephemeral_public);
        verify(signer, OFFER_DOMAIN, &body, &self.signature)
            .map_err(|_| HybridError::BadOfferSignature { peer: *signer })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_infallible(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HybridError> {
        Ok(codec::decode(bytes, MAX_OFFER_BYTES)?)
    }
}

/// One side of the X25519 exchange: the ephemeral secret and the signed offer.
pub struct Handshake {
    session: SessionId,
    local: AccountId,
    peer: AccountId,
    secret: EphemeralSecret,
    offer: HandshakeOffer,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("session", &self.session)
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Draws an ephemeral secret from `rng` and signs its public key.
    pub fn new<R: CryptoRng + ?Sized>(
        identity: &Identity,
        session: SessionId,
        peer: AccountId,
        rng: &mut R,
    ) -> Self {
        let secret = EphemeralSecret::random_from_rng(rng);
        let ephemeral_public = PublicKey::from(&secret).to_bytes();
        let local = identity.account();
        let signature = identity.sign(
            OFFER_DOMAIN,
            &offer_body(&session, &local, &peer, &ephemeral_public),
        );
        Handshake {
            session,
            local,
            peer,
            secret,
            offer: HandshakeOffer {
                ephemeral_public,
                signature,
            },
        }
    }

    /// The offer to send to the peer.
    pub fn offer(&self) -> &HandshakeOffer {
        &self.offer
    }

    /// Verifies the peer's offer and computes the shared secret. Consumes the
    /// ephemeral secret: one handshake, one exchange.
    pub fn finish(self, peer_offer: &HandshakeOffer) -> Result<X25519Shared, HybridError> {
        peer_offer.verify(&self.session, &self.peer, &self.local)?;
        let shared = self
            .secret
            .diffie_hellman(&PublicKey::from(peer_offer.ephemeral_public));
        if !shared.was_contributory() {
            return Err(HybridError::NonContributory { peer: self.peer });
        }
        Ok(X25519Shared(Zeroizing::new(shared.to_bytes())))
    }
}

/// The final key: `blake3::derive_key("qward hybrid v1", qkd_key ||
/// x25519_shared || transcript_hash)`, with its id from the transcript.
pub fn derive_hybrid_key(
    qkd_key: &[u8],
    x25519: &X25519Shared,
    transcript: &TranscriptHash,
) -> Result<HybridKey, HybridError> {
    if qkd_key.len() < MIN_QKD_KEY_BYTES {
        return Err(HybridError::QkdKeyTooShort {
            len: qkd_key.len(),
            min: MIN_QKD_KEY_BYTES,
        });
    }
    let mut material = Zeroizing::new(Vec::with_capacity(qkd_key.len() + 64));
    material.extend_from_slice(qkd_key);
    material.extend_from_slice(x25519.as_bytes());
    material.extend_from_slice(&transcript.0);
    Ok(HybridKey {
        id: KeyId::from_transcript(transcript),
        bytes: blake3::derive_key(HYBRID_CONTEXT, &material),
    })
}

#[cfg(test)]
mod tests;
