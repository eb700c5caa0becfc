//! The responder's session: answers `Open` with its signed offer and the
//! effective link, runs Bob on the initiator's messages, and confirms the key.

use rand_core::{CryptoRng, Rng};

use super::{
    AgreeError, AgreeRequest, AgreeResponse, AgreementOutcome, ExternalKey, KeySource, LinkModel,
    Purpose, absorb_open, confirm_mac, transcript_entry,
};
use crate::hybrid::{
    Handshake, HandshakeOffer, HybridShared, SessionId, Transcript, derive_hybrid_key,
};
use crate::identity::{AccountId, Identity};
use crate::qkd::{AbortReason, Bob, Phase, QkdMessage, QkdReport, SecurityParams};

/// What this end accepts from an initiator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponderPolicy {
    /// The highest abort threshold an initiator may propose (a laxer one
    /// would let an eavesdropper through).
    pub max_qber: f64,
    /// The most qubits one session may send.
    pub max_qubits: u64,
    /// The weakest security parameters an initiator may propose: the key
    /// length comes from the bound, so an initiator choosing eps_pe = 0.99
    /// would shrink it to nothing and let a noisy link through.
    pub security: SecurityParams,
}

impl Default for ResponderPolicy {
    fn default() -> Self {
        ResponderPolicy {
            max_qber: 0.11,
            max_qubits: crate::qkd::protocol::MAX_QUBITS,
            security: SecurityParams::default(),
        }
    }
}

/// One key-agreement session, responder side.
pub struct Responder {
    session: SessionId,
    local: AccountId,
    initiator: AccountId,
    bob: Bob,
    my_offer: HandshakeOffer,
    peer_offer: HandshakeOffer,
    shared: HybridShared,
    transcript: Transcript,
    link: LinkModel,
    purpose: Purpose,
    source: KeySource,
    /// The KME key that replaces BB84, when the source is ETSI 014.
    external: Option<ExternalKey>,
    policy: ResponderPolicy,
    finished: bool,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("session", &self.session)
            .field("initiator", &self.initiator)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Answers an `Open` from `initiator` (the authenticated peer of the
    /// classical channel) on this end's `link` setting. For an `Open` whose
    /// source is ETSI 014, `external` is the key this node's KME gave for
    /// the id the `Open` names (the caller fetched it).
    pub fn open<R: Rng + CryptoRng + ?Sized>(
        identity: &Identity,
        initiator: AccountId,
        request: AgreeRequest,
        link: LinkModel,
        policy: ResponderPolicy,
        external: Option<ExternalKey>,
        rng: &mut R,
    ) -> Result<(Self, AgreeResponse), AgreeError> {
        let AgreeRequest::Open {
            session,
            offer,
            link: their_link,
            purpose,
            source,
        } = request
        else {
            return Err(AgreeError::Unexpected {
                got: request.name(),
                expected: "a session to open",
            });
        };
        their_link.validate()?;
        if let Purpose::Kme(grant) = &purpose {
            grant.check().map_err(|e| AgreeError::BadLink(e.message))?;
        }
        match (&source, &external) {
            (KeySource::Simulated, None) => {}
            (KeySource::Etsi014 { key_id }, Some(k)) if *key_id == k.id => {
                if matches!(purpose, Purpose::Kme(_)) {
                    return Err(AgreeError::BadLink(
                        "a KME session's keys come from the simulated link, not from a KME".into(),
                    ));
                }
                k.check()?;
            }
            (KeySource::Etsi014 { key_id }, _) => {
                return Err(AgreeError::Refused(format!(
                    "the session names KME key {key_id}, which this node has not got"
                )));
            }
            (KeySource::Simulated, Some(_)) => {
                return Err(AgreeError::Refused(
                    "this node takes the link's keys from its KME, the session asks for BB84"
                        .into(),
                ));
            }
        }
        link.validate()?;
        let effective = their_link.combine(&link);
        let local = identity.account();
        let (my_offer, shared) = Handshake::respond(identity, session, initiator, &offer, rng)?;
        let mut transcript = Transcript::new(session, initiator, local);
        absorb_open(&mut transcript, &purpose, &source);
        let responder = Responder {
            session,
            local,
            initiator,
            bob: Bob::new(),
            my_offer: my_offer.clone(),
            peer_offer: offer,
            shared,
            transcript,
            link: effective,
            purpose,
            source,
            external,
            policy,
            finished: false,
        };
        Ok((
            responder,
            AgreeResponse::Opened {
                offer: my_offer,
                link: effective,
            },
        ))
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn initiator(&self) -> AccountId {
        self.initiator
    }

    pub fn link(&self) -> &LinkModel {
        &self.link
    }

    pub fn phase(&self) -> Phase {
        match (&self.external, self.finished) {
            (Some(_), false) => Phase::Verifying,
            _ => self.bob.phase(),
        }
    }

    /// Bob's figures so far (for a KME key: its length).
    pub fn report(&self) -> QkdReport {
        match &self.external {
            Some(k) => k.report(),
            None => self.bob.report().clone(),
        }
    }

    /// What the session's key is for.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Answers one request. Returns the outcome too once the session is over
    /// (a key after confirmation, or none after an abort or a violation).
    pub fn on_request<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        request: AgreeRequest,
        rng: &mut R,
    ) -> (AgreeResponse, Option<AgreementOutcome>) {
        if self.finished {
            return (
                AgreeResponse::Refused {
                    reason: "the session is over".into(),
                },
                None,
            );
        }
        match self.step(request, rng) {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                (
                    AgreeResponse::Refused {
                        reason: reason.clone(),
                    },
                    Some(self.fail(reason)),
                )
            }
        }
    }

    /// Ends the session without a key (the initiator went silent).
    pub fn abandon(mut self, reason: impl Into<String>) -> AgreementOutcome {
        self.fail(reason.into())
    }

    fn fail(&mut self, reason: String) -> AgreementOutcome {
        self.finished = true;
        let mut report = self.report();
        if !report.aborted {
            report.aborted = true;
            report.final_key_bits = 0;
            report.abort_reason = Some(AbortReason::ProtocolViolation { detail: reason });
        }
        self.outcome(report, None)
    }

    fn outcome(
        &self,
        report: QkdReport,
        key: Option<crate::hybrid::HybridKey>,
    ) -> AgreementOutcome {
        AgreementOutcome {
            session: self.session,
            initiator: self.initiator,
            responder: self.local,
            report,
            link: self.link,
            purpose: self.purpose.clone(),
            source: self.source.clone(),
            key,
        }
    }

    fn step<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        request: AgreeRequest,
        rng: &mut R,
    ) -> Result<(AgreeResponse, Option<AgreementOutcome>), AgreeError> {
        if request.session() != self.session {
            return Err(AgreeError::Unexpected {
                got: "another session's message",
                expected: "this session",
            });
        }
        match request {
            AgreeRequest::Qkd { .. } if self.external.is_some() => Err(AgreeError::Unexpected {
                got: "Qkd",
                expected: "confirmation of a session keyed by a KME",
            }),
            AgreeRequest::Qkd { msg, .. } => {
                if let QkdMessage::Start { params } = &msg {
                    if params.source != self.link.channel.source {
                        return Err(AgreeError::Refused(format!(
                            "the session names the source {:?}, the link has {:?}: its key \
                             length would not pay for the link's multi-photon pulses",
                            params.source, self.link.channel.source
                        )));
                    }
                    if params.max_qber > self.policy.max_qber {
                        return Err(AgreeError::Refused(format!(
                            "abort threshold {:.2}% is laxer than this node's {:.2}%",
                            params.max_qber * 100.0,
                            self.policy.max_qber * 100.0
                        )));
                    }
                    let (theirs, mine) = (&params.security, &self.policy.security);
                    if theirs.eps_pe > mine.eps_pe || theirs.eps_pa > mine.eps_pa {
                        return Err(AgreeError::Refused(format!(
                            "security parameters eps_pe {:e}, eps_pa {:e} are laxer than this \
                             node's {:e}, {:e}",
                            theirs.eps_pe, theirs.eps_pa, mine.eps_pe, mine.eps_pa
                        )));
                    }
                    if params.qubits > self.policy.max_qubits {
                        return Err(AgreeError::Refused(format!(
                            "{} qubits exceed this node's limit of {}",
                            params.qubits, self.policy.max_qubits
                        )));
                    }
                }
                if let Some((label, bytes)) = transcript_entry(&msg, true) {
                    self.transcript.absorb(&label, &bytes);
                }
                let replies = self.bob.handle(msg, rng)?;
                for reply in &replies {
                    if let Some((label, bytes)) = transcript_entry(reply, false) {
                        self.transcript.absorb(&label, &bytes);
                    }
                }
                let outcome = if self.bob.phase() == Phase::Aborted {
                    self.finished = true;
                    let report = self.bob.report().clone();
                    Some(self.outcome(report, None))
                } else {
                    None
                };
                Ok((AgreeResponse::Qkd { msgs: replies }, outcome))
            }
            AgreeRequest::Confirm { mac, .. } => {
                let qkd_key = match &self.external {
                    Some(k) => k.bytes.clone(),
                    None => {
                        if self.bob.phase() != Phase::Done {
                            return Err(AgreeError::Unexpected {
                                got: "Confirm",
                                expected: "BB84 to finish first",
                            });
                        }
                        self.bob
                            .outcome()
                            .and_then(|o| o.key)
                            .ok_or(AgreeError::Unexpected {
                                got: "Confirm",
                                expected: "a QKD key",
                            })?
                            .to_bytes()
                    }
                };
                self.transcript
                    .absorb_offers(&self.peer_offer, &self.my_offer);
                let key = derive_hybrid_key(&qkd_key, &self.shared, &self.transcript.hash())?;
                if mac != confirm_mac(&key, &self.session, true) {
                    return Err(AgreeError::ConfirmationFailed);
                }
                self.finished = true;
                let reply = confirm_mac(&key, &self.session, false);
                let report = self.report();
                Ok((
                    AgreeResponse::Confirmed { mac: reply },
                    Some(self.outcome(report, Some(key))),
                ))
            }
            AgreeRequest::Open { .. } => Err(AgreeError::Unexpected {
                got: "Open",
                expected: "the session's next message",
            }),
        }
    }
}
