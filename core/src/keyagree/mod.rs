//! Key agreement between two nodes (protocol `/qward/qkd/1`), sans-IO: the
//! wire messages, the simulated link both ends agree on, and the two session
//! machines ([`Initiator`], [`Responder`]) that wrap the BB84 Alice and Bob
//! machines with the signed X25519 + ML-KEM-768 exchange, the transcript,
//! the hybrid key derivation and key confirmation.
//!
//! Flow (I = initiator, runs Alice; R = responder, runs Bob). Every step is
//! one request from I and R's response, so the carrier is plain
//! request-response:
//! 1. I->R `Open` (session id, I's signed offer: an X25519 key and an
//!    ML-KEM-768 encapsulation key; I's link model); R->I `Opened` (R's
//!    signed offer: an X25519 key and the ML-KEM ciphertext encapsulated to
//!    I's key; the effective link: the worse of both ends' settings on every
//!    parameter, so an eavesdropper configured at either end is on the link).
//! 2. I->R `Qkd` with each Alice message in order (the `Qubits` batches pass
//!    through the channel model of the effective link, Eve included, before
//!    they leave I); R->I `Qkd` with Bob's replies (possibly none).
//! 3. When Alice is done: I->R `Confirm` (a MAC of the derived key); R checks
//!    it, answers `Confirmed` with its own MAC, and both install the key.
//!    A session that aborts ends with no key on either side.
//!
//! Both sides absorb every classical message, in the order sent, into the
//! transcript (the qubits are the quantum channel and are not), then both
//! offers (with their ML-KEM parts); the hybrid key is `derive_key("qward
//! hybrid v2", qkd || x25519 || mlkem768 || transcript)` (see
//! [`crate::hybrid`]), so a changed ML-KEM ciphertext fails confirmation.

mod initiator;
mod responder;

use serde::{Deserialize, Serialize};

use crate::chain::{Hash, KeySessionAudit, SessionOutcome};
use crate::codec;
use crate::etsi014::{self, KeyId};
use crate::hybrid::{HandshakeOffer, HybridError, HybridKey, SessionId};
use crate::identity::AccountId;
use crate::qkd::{AbortReason, ChannelParams, QkdError, QkdMessage, QkdReport, Source};

pub use initiator::{Initiator, InitiatorStep};
pub use responder::{Responder, ResponderPolicy};

/// What a session's key is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    /// The link's messaging key (it goes to the key ring).
    Messaging,
    /// The keys of one ETSI GS QKD 014 `enc_keys` request, which the
    /// initiator's KME serves to its master SAE and the responder's KME
    /// keeps for its slave SAE (see [`crate::etsi014`]).
    Kme(KmeGrant),
}

/// The ETSI GS QKD 014 request a KME session serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmeGrant {
    /// The SAE at the initiator's KME that asked for the keys.
    pub master_sae: String,
    /// The SAE at the responder's KME the keys are for.
    pub slave_sae: String,
    pub number: u32,
    pub size_bits: u32,
}

impl KmeGrant {
    /// Checks the SAE ids, the number of keys and their size.
    pub fn check(&self) -> Result<(), etsi014::EtsiError> {
        etsi014::check_sae_id(&self.master_sae)?;
        etsi014::check_sae_id(&self.slave_sae)?;
        etsi014::KeyRequest {
            number: Some(self.number),
            size: Some(self.size_bits),
            ..etsi014::KeyRequest::default()
        }
        .checked()
        .map(|_| ())
    }
}

/// Where the QKD part of a session's hybrid key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySource {
    /// The simulated BB84 protocol over the effective link.
    Simulated,
    /// A key from a pair of ETSI GS QKD 014 KMEs: the initiator got it from
    /// its KME with `enc_keys`; the responder fetches it from its own KME
    /// by this id with `dec_keys`. No BB84 runs in the session.
    Etsi014 { key_id: KeyId },
}

/// The smallest external (KME) key accepted as the QKD part (bytes).
pub const MIN_EXTERNAL_KEY_BYTES: usize = 16;
/// The largest external key accepted (bytes).
pub const MAX_EXTERNAL_KEY_BYTES: usize = 1024;

/// A key from a KME, for a session whose source is [`KeySource::Etsi014`].
pub struct ExternalKey {
    pub id: KeyId,
    pub bytes: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ExternalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalKey")
            .field("id", &self.id)
            .field("bits", &(self.bytes.len() * 8))
            .finish_non_exhaustive()
    }
}

impl ExternalKey {
    fn check(&self) -> Result<(), AgreeError> {
        let n = self.bytes.len();
        if !(MIN_EXTERNAL_KEY_BYTES..=MAX_EXTERNAL_KEY_BYTES).contains(&n) {
            return Err(AgreeError::BadLink(format!(
                "the KME key {} has {} bits; a session takes {} to {} bits",
                self.id,
                n * 8,
                MIN_EXTERNAL_KEY_BYTES * 8,
                MAX_EXTERNAL_KEY_BYTES * 8
            )));
        }
        Ok(())
    }

    /// The report of a session whose QKD part is this key.
    fn report(&self) -> QkdReport {
        QkdReport {
            final_key_bits: (self.bytes.len() * 8) as u64,
            ..QkdReport::default()
        }
    }
}

/// Absorbs what an `Open` says the session is for and where its QKD key
/// comes from, so both ends' keys differ if either was changed.
fn absorb_open(transcript: &mut crate::hybrid::Transcript, purpose: &Purpose, source: &KeySource) {
    transcript.absorb("open/purpose", &codec::encode_infallible(purpose));
    transcript.absorb("open/source", &codec::encode_infallible(source));
}

/// The largest encoded request or response accepted (the qubit batches of
/// one message are the largest part).
pub const MAX_WIRE_BYTES: usize = 8 * 1024 * 1024;
/// The blake3 context of the key-confirmation MACs.
pub const CONFIRM_CONTEXT: &str = "qward key confirm v1";

/// Why a key-agreement session failed (besides a BB84 abort, which is an
/// outcome, not an error).
#[derive(Debug, thiserror::Error)]
pub enum AgreeError {
    #[error("key agreement: {0}")]
    Qkd(#[from] QkdError),
    #[error("key agreement: {0}")]
    Hybrid(#[from] HybridError),
    #[error("key agreement: malformed message: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("key agreement: the peer refused: {0}")]
    Refused(String),
    #[error("key agreement: unexpected {got} while {expected}")]
    Unexpected {
        got: &'static str,
        expected: &'static str,
    },
    #[error("key agreement: key confirmation failed: the two sides derived different keys")]
    ConfirmationFailed,
    #[error("key agreement: link parameters refused: {0}")]
    BadLink(String),
}

/// The simulated quantum channel of one link, as one end sets it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkModel {
    pub channel: ChannelParams,
    /// Fraction of qubits an intercept-resend eavesdropper attacks (0 = none).
    pub eve_fraction: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            channel: ChannelParams::default(),
            eve_fraction: 0.0,
        }
    }
}

impl LinkModel {
    /// Checks every parameter and names the first one out of range.
    pub fn validate(&self) -> Result<(), AgreeError> {
        self.channel
            .validate()
            .map_err(|e| AgreeError::BadLink(e.to_string()))?;
        if !(0.0..=1.0).contains(&self.eve_fraction) {
            return Err(AgreeError::BadLink(format!(
                "eve_fraction must be in [0, 1], not {}",
                self.eve_fraction
            )));
        }
        Ok(())
    }

    /// The link both ends run: on every parameter the worse of the two
    /// settings (longer fibre, higher loss, weaker detector, more dark counts,
    /// more misalignment, more eavesdropping). The source is a laser if
    /// either end has one (the brighter, if both: more multi-photon pulses).
    pub fn combine(&self, other: &LinkModel) -> LinkModel {
        let (a, b) = (&self.channel, &other.channel);
        LinkModel {
            channel: ChannelParams {
                source: match (a.source, b.source) {
                    (
                        Source::WeakCoherent {
                            mean_photon_number: x,
                        },
                        Source::WeakCoherent {
                            mean_photon_number: y,
                        },
                    ) => Source::WeakCoherent {
                        mean_photon_number: x.max(y),
                    },
                    (s @ Source::WeakCoherent { .. }, _) | (_, s @ Source::WeakCoherent { .. }) => {
                        s
                    }
                    _ => Source::SinglePhoton,
                },
                distance_km: a.distance_km.max(b.distance_km),
                loss_db_per_km: a.loss_db_per_km.max(b.loss_db_per_km),
                detector_efficiency: a.detector_efficiency.min(b.detector_efficiency),
                dark_count_prob: a.dark_count_prob.max(b.dark_count_prob),
                misalignment: a.misalignment.max(b.misalignment),
            },
            eve_fraction: self.eve_fraction.max(other.eve_fraction),
        }
    }
}

/// A request from the initiator.
#[derive(Debug, Serialize, Deserialize)]
pub enum AgreeRequest {
    Open {
        session: SessionId,
        offer: HandshakeOffer,
        link: LinkModel,
        purpose: Purpose,
        source: KeySource,
    },
    Qkd {
        session: SessionId,
        msg: QkdMessage,
    },
    Confirm {
        session: SessionId,
        mac: [u8; 32],
    },
}

impl AgreeRequest {
    pub fn session(&self) -> SessionId {
        match self {
            AgreeRequest::Open { session, .. }
            | AgreeRequest::Qkd { session, .. }
            | AgreeRequest::Confirm { session, .. } => *session,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AgreeRequest::Open { .. } => "Open",
            AgreeRequest::Qkd { .. } => "Qkd",
            AgreeRequest::Confirm { .. } => "Confirm",
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, AgreeError> {
        Ok(codec::encode(self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, AgreeError> {
        Ok(codec::decode(bytes, MAX_WIRE_BYTES)?)
    }
}

/// The responder's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum AgreeResponse {
    Opened {
        offer: HandshakeOffer,
        link: LinkModel,
    },
    Qkd {
        msgs: Vec<QkdMessage>,
    },
    Confirmed {
        mac: [u8; 32],
    },
    /// The responder will not go on (unknown session, policy, bad message).
    Refused {
        reason: String,
    },
}

impl AgreeResponse {
    pub fn name(&self) -> &'static str {
        match self {
            AgreeResponse::Opened { .. } => "Opened",
            AgreeResponse::Qkd { .. } => "Qkd",
            AgreeResponse::Confirmed { .. } => "Confirmed",
            AgreeResponse::Refused { .. } => "Refused",
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, AgreeError> {
        Ok(codec::encode(self)?)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, AgreeError> {
        Ok(codec::decode(bytes, MAX_WIRE_BYTES)?)
    }
}

/// How a session ended, for either side.
#[derive(Debug)]
pub struct AgreementOutcome {
    pub session: SessionId,
    pub initiator: AccountId,
    pub responder: AccountId,
    /// The BB84 figures as this side saw them.
    pub report: QkdReport,
    /// The link the session ran on.
    pub link: LinkModel,
    /// What the key is for.
    pub purpose: Purpose,
    /// Where the QKD part of the key came from.
    pub source: KeySource,
    /// The confirmed hybrid key; `None` when the session aborted.
    pub key: Option<HybridKey>,
}

impl AgreementOutcome {
    /// The on-chain audit of this session: peers, QBER, key length and
    /// outcome; never key material.
    pub fn audit(&self) -> KeySessionAudit {
        let outcome = match (&self.key, &self.report.abort_reason) {
            (Some(_), _) => SessionOutcome::Established,
            (None, Some(AbortReason::QberTooHigh { .. })) => SessionOutcome::AbortedQber,
            (None, Some(AbortReason::VerificationFailed)) => SessionOutcome::AbortedVerification,
            (None, _) => SessionOutcome::Failed,
        };
        KeySessionAudit {
            session_id: audit_session_id(&self.session),
            peer_a: self.initiator,
            peer_b: self.responder,
            qber_ppm: (self.report.qber.clamp(0.0, 1.0) * 1_000_000.0).round() as u32,
            key_length_bits: if self.key.is_some() {
                self.report.final_key_bits.min(u64::from(u32::MAX)) as u32
            } else {
                0
            },
            outcome,
        }
    }
}

/// The chain's 32-byte id of a session: blake3 derive_key of its 16-byte id.
pub fn audit_session_id(session: &SessionId) -> Hash {
    Hash(blake3::derive_key("qward session audit v1", &session.0))
}

/// The MAC one side sends to prove it holds `key`.
fn confirm_mac(key: &HybridKey, session: &SessionId, from_initiator: bool) -> [u8; 32] {
    let mac_key = blake3::derive_key(CONFIRM_CONTEXT, key.secret_bytes());
    let mut h = blake3::Hasher::new_keyed(&mac_key);
    h.update(&session.0);
    h.update(if from_initiator {
        b"initiator"
    } else {
        b"responder"
    });
    *h.finalize().as_bytes()
}

/// Transcript label and bytes of a classical QKD message (the qubits are the
/// quantum channel: `None`).
fn transcript_entry(msg: &QkdMessage, from_initiator: bool) -> Option<(String, Vec<u8>)> {
    if matches!(msg, QkdMessage::Qubits { .. }) {
        return None;
    }
    let side = if from_initiator { "alice" } else { "bob" };
    Some((
        format!("qkd/{side}/{}", msg.name()),
        codec::encode_infallible(msg),
    ))
}

#[cfg(test)]
mod tests;
