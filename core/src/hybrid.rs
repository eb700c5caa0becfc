//! Hybrid key agreement: a signed X25519 exchange and an ML-KEM-768 (FIPS
//! 203) encapsulation, the session transcript, and the derivation that binds
//! the QKD key, both shared secrets and the transcript into one 32-byte
//! session key (DESIGN section 3.9).
//!
//! The derivation is `blake3::derive_key("qward hybrid v2", qkd_key ||
//! x25519_shared || mlkem768_shared || transcript_hash)`: the key is secret
//! while any one of its three inputs is. What that is worth differs:
//! - the BB84 share is simulated (its messages travel inside the classical,
//!   Noise-encrypted session), so it adds no secrecy against anyone who
//!   breaks or records that session; with a real QKD link (an ETSI GS QKD
//!   014 key source) it would be a real one;
//! - X25519 falls to a large quantum computer;
//! - ML-KEM-768 is what keeps a recording of today's traffic secret against
//!   a future quantum computer ("harvest now, decrypt later").
//!
//! The initiator's offer carries its X25519 ephemeral key and an ML-KEM-768
//! encapsulation key; the responder's carries its X25519 ephemeral key and the
//! ML-KEM ciphertext encapsulated to that key. Each offer is signed by its
//! node identity (domain `qward/hybrid/offer/v2`) over the session id, both
//! accounts and the offer's keys, so a man in the middle can substitute
//! neither; both offers enter the transcript, which the key confirmation
//! covers.
//!
//! Order of a session, as the node drives it:
//! 1. `Transcript::new(session, initiator, responder)`;
//! 2. the initiator makes a [`Handshake::initiate`] and sends its offer; the
//!    responder answers with [`Handshake::respond`] (verifies the offer,
//!    encapsulates, and has its shared secrets at once); the initiator
//!    calls [`Handshake::finish`] on the responder's offer;
//! 3. `transcript.absorb(label, bytes)` for every classical QKD message, in
//!    the order they were sent;
//! 4. `transcript.absorb_offers(initiator_offer, responder_offer)`;
//! 5. [`derive_hybrid_key`] with the QKD key, the [`HybridShared`] secrets and
//!    `transcript.hash()`.

use std::fmt;

use ml_kem::kem::{Decapsulate, Encapsulate, Kem, KeyExport};
use ml_kem::{MlKem768, ml_kem_768};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::codec;
use crate::identity::{AccountId, Identity, Sig, verify};

/// The blake3 context of the final key derivation (DESIGN section 3.9).
pub const HYBRID_CONTEXT: &str = "qward hybrid v2";
/// The signature domain of a handshake offer.
pub const OFFER_DOMAIN: &str = "qward/hybrid/offer/v2";
/// The blake3 context that keys the running transcript hash.
pub const TRANSCRIPT_CONTEXT: &str = "qward transcript v1";
/// The shortest QKD key accepted into a derivation (128 bits).
pub const MIN_QKD_KEY_BYTES: usize = 16;
/// The largest encoded offer accepted from the network (an ML-KEM-768
/// encapsulation key, an X25519 key, a signature and framing).
pub const MAX_OFFER_BYTES: usize = 2048;
/// Bytes of an ML-KEM-768 encapsulation key (FIPS 203, table 3).
pub const MLKEM768_EK_BYTES: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext (FIPS 203, table 3).
pub const MLKEM768_CT_BYTES: usize = 1088;

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
    /// The ML-KEM part of an offer is not an encapsulation key (from the
    /// initiator) or a ciphertext (from the responder) of ML-KEM-768, or the
    /// key fails FIPS 203's modulus check.
    #[error("peer {peer} sent an invalid ML-KEM-768 {what}: the exchange is refused")]
    BadKem { peer: AccountId, what: &'static str },
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

/// The classical shared secrets of one session: X25519 and ML-KEM-768.
/// Zeroized on drop, never printed.
pub struct HybridShared {
    x25519: Zeroizing<[u8; 32]>,
    mlkem: Zeroizing<[u8; 32]>,
}

impl HybridShared {
    pub fn x25519(&self) -> &[u8; 32] {
        &self.x25519
    }

    pub fn mlkem(&self) -> &[u8; 32] {
        &self.mlkem
    }
}

impl fmt::Debug for HybridShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HybridShared(<redacted>)")
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

/// One side's signed keys: its X25519 ephemeral public key and its ML-KEM
/// part (the initiator's encapsulation key, or the responder's ciphertext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeOffer {
    pub ephemeral_public: [u8; 32],
    pub kem: Vec<u8>,
    pub signature: Sig,
}

/// What an offer's signature covers.
#[derive(Serialize)]
struct OfferBody<'a> {
    session: &'a SessionId,
    signer: &'a AccountId,
    recipient: &'a AccountId,
    ephemeral_public: &'a [u8; 32],
    kem: &'a [u8],
}

fn offer_body(
    session: &SessionId,
    signer: &AccountId,
    recipient: &AccountId,
    ephemeral_public: &[u8; 32],
    kem: &[u8],
) -> Vec<u8> {
    codec::encode_infallible(&OfferBody {
        session,
        signer,
        recipient,
        ephemeral_public,
        kem,
    })
}

fn sign_offer(
    identity: &Identity,
    session: &SessionId,
    peer: &AccountId,
    ephemeral_public: [u8; 32],
    kem: Vec<u8>,
) -> HandshakeOffer {
    let body = offer_body(session, &identity.account(), peer, &ephemeral_public, &kem);
    HandshakeOffer {
        ephemeral_public,
        signature: identity.sign(OFFER_DOMAIN, &body),
        kem,
    }
}

/// The X25519 secret with the peer's offered key, refused when not
/// contributory (a low-order point would make it predictable).
fn x25519(
    secret: EphemeralSecret,
    peer: &AccountId,
    offer: &HandshakeOffer,
) -> Result<Zeroizing<[u8; 32]>, HybridError> {
    let shared = secret.diffie_hellman(&PublicKey::from(offer.ephemeral_public));
    if !shared.was_contributory() {
        return Err(HybridError::NonContributory { peer: *peer });
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

impl HandshakeOffer {
    /// Checks that `signer` made this offer for `recipient` in `session`.
    pub fn verify(
        &self,
        session: &SessionId,
        signer: &AccountId,
        recipient: &AccountId,
    ) -> Result<(), HybridError> {
        let body = offer_body(
            session,
            signer,
            recipient,
            &self.ephemeral_public,
            &self.kem,
        );
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

/// The initiator's side of the exchange: its X25519 ephemeral secret, its
/// ML-KEM-768 decapsulation key, and the signed offer carrying both public
/// halves. (The responder needs no state: [`Handshake::respond`].)
pub struct Handshake {
    session: SessionId,
    local: AccountId,
    peer: AccountId,
    secret: EphemeralSecret,
    kem: ml_kem_768::DecapsulationKey,
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
    /// Draws an X25519 ephemeral secret and an ML-KEM-768 key pair from
    /// `rng`, and signs the public halves for `peer`.
    pub fn initiate<R: CryptoRng + ?Sized>(
        identity: &Identity,
        session: SessionId,
        peer: AccountId,
        rng: &mut R,
    ) -> Self {
        let secret = EphemeralSecret::random_from_rng(&mut *rng);
        let ephemeral_public = PublicKey::from(&secret).to_bytes();
        let (kem, ek) = MlKem768::generate_keypair_from_rng(&mut &mut *rng);
        let offer = sign_offer(
            identity,
            &session,
            &peer,
            ephemeral_public,
            ek.to_bytes().to_vec(),
        );
        Handshake {
            session,
            local: identity.account(),
            peer,
            secret,
            kem,
            offer,
        }
    }

    /// The offer to send to the peer.
    pub fn offer(&self) -> &HandshakeOffer {
        &self.offer
    }

    /// The responder's side, in one step: verifies the initiator's offer,
    /// encapsulates to its ML-KEM key, and answers the signed offer to send
    /// back with the shared secrets.
    pub fn respond<R: CryptoRng + ?Sized>(
        identity: &Identity,
        session: SessionId,
        initiator: AccountId,
        initiator_offer: &HandshakeOffer,
        rng: &mut R,
    ) -> Result<(HandshakeOffer, HybridShared), HybridError> {
        let local = identity.account();
        initiator_offer.verify(&session, &initiator, &local)?;
        let bad_key = || HybridError::BadKem {
            peer: initiator,
            what: "encapsulation key",
        };
        let ek_bytes = initiator_offer
            .kem
            .as_slice()
            .try_into()
            .map_err(|_| bad_key())?;
        let ek = ml_kem_768::EncapsulationKey::new(ek_bytes).map_err(|_| bad_key())?;
        let (ct, mut mlkem) = ek.encapsulate_with_rng(&mut *rng);
        let secret = EphemeralSecret::random_from_rng(&mut *rng);
        let ephemeral_public = PublicKey::from(&secret).to_bytes();
        let x25519 = x25519(secret, &initiator, initiator_offer)?;
        let offer = sign_offer(
            identity,
            &session,
            &initiator,
            ephemeral_public,
            ct.to_vec(),
        );
        let shared = HybridShared {
            x25519,
            mlkem: take_secret(&mut mlkem),
        };
        Ok((offer, shared))
    }

    /// The initiator's end: verifies the responder's offer and computes both
    /// shared secrets. Consumes the secrets: one handshake, one exchange. A
    /// ciphertext that is not the responder's encapsulation decapsulates to
    /// an unrelated secret (FIPS 203's implicit rejection), which key
    /// confirmation then refuses.
    pub fn finish(self, peer_offer: &HandshakeOffer) -> Result<HybridShared, HybridError> {
        peer_offer.verify(&self.session, &self.peer, &self.local)?;
        let ct: &[u8; MLKEM768_CT_BYTES] =
            peer_offer
                .kem
                .as_slice()
                .try_into()
                .map_err(|_| HybridError::BadKem {
                    peer: self.peer,
                    what: "ciphertext",
                })?;
        let mut mlkem = self.kem.decapsulate(&(*ct).into());
        let x25519 = x25519(self.secret, &self.peer, peer_offer)?;
        Ok(HybridShared {
            x25519,
            mlkem: take_secret(&mut mlkem),
        })
    }
}

/// Moves an ML-KEM shared key into a zeroizing array and clears the source
/// (the crate's key type is a plain array, copied on every move).
fn take_secret(k: &mut [u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(k);
    k.zeroize();
    out
}

/// The final key: `blake3::derive_key("qward hybrid v2", qkd_key ||
/// x25519_shared || mlkem768_shared || transcript_hash)`, with its id from
/// the transcript.
pub fn derive_hybrid_key(
    qkd_key: &[u8],
    shared: &HybridShared,
    transcript: &TranscriptHash,
) -> Result<HybridKey, HybridError> {
    if qkd_key.len() < MIN_QKD_KEY_BYTES {
        return Err(HybridError::QkdKeyTooShort {
            len: qkd_key.len(),
            min: MIN_QKD_KEY_BYTES,
        });
    }
    let mut material = Zeroizing::new(Vec::with_capacity(qkd_key.len() + 96));
    material.extend_from_slice(qkd_key);
    material.extend_from_slice(shared.x25519());
    material.extend_from_slice(shared.mlkem());
    material.extend_from_slice(&transcript.0);
    Ok(HybridKey {
        id: KeyId::from_transcript(transcript),
        bytes: blake3::derive_key(HYBRID_CONTEXT, &material),
    })
}

#[cfg(test)]
mod fips203_tests;
#[cfg(test)]
mod tests;
