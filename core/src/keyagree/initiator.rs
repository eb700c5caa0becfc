//! The initiator's session: runs Alice, applies the effective link's channel
//! model to the qubits it sends, and leads the X25519 exchange and key
//! confirmation.

use std::collections::VecDeque;

use rand_core::{CryptoRng, Rng};

use super::{
    AgreeError, AgreeRequest, AgreeResponse, AgreementOutcome, ExternalKey, KeySource, LinkModel,
    Purpose, absorb_open, confirm_mac, transcript_entry,
};
use crate::hybrid::{
    Handshake, HandshakeOffer, HybridKey, HybridShared, SessionId, Transcript, derive_hybrid_key,
};
use crate::identity::{AccountId, Identity};
use crate::qkd::{
    AbortReason, Alice, Channel, InterceptResend, Phase, ProtocolParams, QkdMessage, QkdReport,
};

/// What the carrier does next.
#[derive(Debug)]
pub enum InitiatorStep {
    /// Send this request and feed the response to [`Initiator::on_response`].
    Send(AgreeRequest),
    /// The session is over (with a key, or aborted).
    Finished(AgreementOutcome),
}

enum State {
    // Boxed: the handshake holds an ML-KEM-768 decapsulation key.
    AwaitOpened(Box<Handshake>),
    Running,
    AwaitConfirmed(HybridKey),
    Finished,
}

/// One key-agreement session, initiator side.
pub struct Initiator {
    session: SessionId,
    local: AccountId,
    peer: AccountId,
    alice: Alice,
    my_offer: HandshakeOffer,
    peer_offer: Option<HandshakeOffer>,
    shared: Option<HybridShared>,
    transcript: Transcript,
    link: LinkModel,
    purpose: Purpose,
    source: KeySource,
    /// The KME key that replaces BB84, when the source is ETSI 014.
    external: Option<ExternalKey>,
    channel: Option<Channel>,
    eve: Option<InterceptResend>,
    queue: VecDeque<QkdMessage>,
    state: State,
    failure: Option<String>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("session", &self.session)
            .field("peer", &self.peer)
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a session with `peer` on this end's `link` setting; returns the
    /// `Open` request to send. With an `external` key (from this node's
    /// ETSI GS QKD 014 KME) no BB84 runs: that key is the QKD part.
    pub fn new<R: Rng + CryptoRng + ?Sized>(
        identity: &Identity,
        peer: AccountId,
        params: ProtocolParams,
        link: LinkModel,
        purpose: Purpose,
        external: Option<ExternalKey>,
        rng: &mut R,
    ) -> Result<(Self, AgreeRequest), AgreeError> {
        link.validate()?;
        if let Purpose::Kme(grant) = &purpose {
            grant.check().map_err(|e| AgreeError::BadLink(e.message))?;
            if external.is_some() {
                return Err(AgreeError::BadLink(
                    "a KME session's keys come from the simulated link, not from a KME".into(),
                ));
            }
        }
        if let Some(k) = &external {
            k.check()?;
        }
        let source = match &external {
            Some(k) => KeySource::Etsi014 { key_id: k.id },
            None => KeySource::Simulated,
        };
        let alice = Alice::new(params)?;
        let session = SessionId::random(rng);
        let local = identity.account();
        let handshake = Handshake::initiate(identity, session, peer, rng);
        let my_offer = handshake.offer().clone();
        let open = AgreeRequest::Open {
            session,
            offer: my_offer.clone(),
            link,
            purpose: purpose.clone(),
            source: source.clone(),
        };
        let mut transcript = Transcript::new(session, local, peer);
        absorb_open(&mut transcript, &purpose, &source);
        Ok((
            Initiator {
                session,
                local,
                peer,
                alice,
                my_offer,
                peer_offer: None,
                shared: None,
                transcript,
                link,
                purpose,
                source,
                external,
                channel: None,
                eve: None,
                queue: VecDeque::new(),
                state: State::AwaitOpened(Box::new(handshake)),
                failure: None,
            },
            open,
        ))
    }

    pub fn session(&self) -> SessionId {
        self.session
    }

    pub fn peer(&self) -> AccountId {
        self.peer
    }

    /// The effective link (this end's setting until the responder answers).
    pub fn link(&self) -> &LinkModel {
        &self.link
    }

    /// Where Alice is in the protocol.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::AwaitOpened(_) => Phase::Preparing,
            State::AwaitConfirmed(_) => Phase::Verifying,
            _ if self.failure.is_some() => Phase::Aborted,
            _ => self.alice.phase(),
        }
    }

    /// Alice's figures so far (for a KME key: its length).
    pub fn report(&self) -> QkdReport {
        match &self.external {
            Some(k) => k.report(),
            None => self.alice.report().clone(),
        }
    }

    /// What the session's key is for.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// Feeds the responder's answer; never fails: a violation ends the
    /// session without a key.
    pub fn on_response<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        response: AgreeResponse,
        rng: &mut R,
    ) -> InitiatorStep {
        match self.step(response, rng) {
            Ok(step) => step,
            Err(e) => InitiatorStep::Finished(self.fail(e.to_string())),
        }
    }

    /// Ends the session without a key (the peer went away, a timeout).
    pub fn abandon(mut self, reason: impl Into<String>) -> AgreementOutcome {
        self.fail(reason.into())
    }

    fn fail(&mut self, reason: String) -> AgreementOutcome {
        self.state = State::Finished;
        self.failure = Some(reason.clone());
        let mut report = self.report();
        if !report.aborted {
            report.aborted = true;
            report.final_key_bits = 0;
            report.abort_reason = Some(AbortReason::ProtocolViolation { detail: reason });
        }
        self.outcome(report, None)
    }

    fn outcome(&self, report: QkdReport, key: Option<HybridKey>) -> AgreementOutcome {
        AgreementOutcome {
            session: self.session,
            initiator: self.local,
            responder: self.peer,
            report,
            link: self.link,
            purpose: self.purpose.clone(),
            source: self.source.clone(),
            key,
        }
    }

    fn step<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        response: AgreeResponse,
        rng: &mut R,
    ) -> Result<InitiatorStep, AgreeError> {
        if let AgreeResponse::Refused { reason } = response {
            return Err(AgreeError::Refused(reason));
        }
        match (
            std::mem::replace(&mut self.state, State::Finished),
            response,
        ) {
            (State::AwaitOpened(handshake), AgreeResponse::Opened { offer, link }) => {
                link.validate()?;
                // The responder may only make the link worse, never better.
                if link != self.link.combine(&link) {
                    return Err(AgreeError::BadLink(
                        "the responder's effective link is better than this end's setting".into(),
                    ));
                }
                let shared = handshake.finish(&offer)?;
                if let Some(external) = &self.external {
                    // The QKD part is the KME's key: straight to confirmation.
                    self.transcript.absorb_offers(&self.my_offer, &offer);
                    let key = derive_hybrid_key(&external.bytes, &shared, &self.transcript.hash())?;
                    self.link = link;
                    let mac = confirm_mac(&key, &self.session, true);
                    self.state = State::AwaitConfirmed(key);
                    return Ok(InitiatorStep::Send(AgreeRequest::Confirm {
                        session: self.session,
                        mac,
                    }));
                }
                self.shared = Some(shared);
                self.peer_offer = Some(offer);
                self.link = link;
                self.channel = Some(Channel::new(link.channel)?);
                self.eve = if link.eve_fraction > 0.0 {
                    Some(InterceptResend::new(link.eve_fraction)?)
                } else {
                    None
                };
                // Alice's source is the effective link's: a weak-pulse
                // source at either end costs the key its multi-photon share.
                self.alice.set_source(link.channel.source);
                self.queue.extend(self.alice.start(rng)?);
                self.state = State::Running;
                self.next(rng)
            }
            (State::Running, AgreeResponse::Qkd { msgs }) => {
                for msg in msgs {
                    if let Some((label, bytes)) = transcript_entry(&msg, false) {
                        self.transcript.absorb(&label, &bytes);
                    }
                    let replies = self.alice.handle(msg, rng)?;
                    self.queue.extend(replies);
                }
                self.state = State::Running;
                self.next(rng)
            }
            (State::AwaitConfirmed(key), AgreeResponse::Confirmed { mac }) => {
                if mac != confirm_mac(&key, &self.session, false) {
                    return Err(AgreeError::ConfirmationFailed);
                }
                let report = self.report();
                Ok(InitiatorStep::Finished(self.outcome(report, Some(key))))
            }
            (state, other) => {
                let expected = match state {
                    State::AwaitOpened(_) => "waiting for Opened",
                    State::Running => "running BB84",
                    State::AwaitConfirmed(_) => "waiting for Confirmed",
                    State::Finished => "finished",
                };
                Err(AgreeError::Unexpected {
                    got: other.name(),
                    expected,
                })
            }
        }
    }

    /// The next request: Alice's next message, or confirmation once she is done.
    fn next<R: Rng + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
    ) -> Result<InitiatorStep, AgreeError> {
        if let Some(msg) = self.queue.pop_front() {
            let msg = match msg {
                QkdMessage::Qubits { batch } => {
                    let channel = self.channel.as_mut().ok_or(AgreeError::Unexpected {
                        got: "Qubits",
                        expected: "an open link",
                    })?;
                    QkdMessage::Qubits {
                        batch: channel.transmit(batch, self.eve.as_mut(), rng),
                    }
                }
                other => {
                    if let Some((label, bytes)) = transcript_entry(&other, true) {
                        self.transcript.absorb(&label, &bytes);
                    }
                    other
                }
            };
            return Ok(InitiatorStep::Send(AgreeRequest::Qkd {
                session: self.session,
                msg,
            }));
        }
        let Some(outcome) = self.alice.outcome() else {
            return Err(AgreeError::Unexpected {
                got: "no message to send",
                expected: "Alice waiting for Bob",
            });
        };
        let Some(qkd_key) = outcome.key else {
            return Ok(InitiatorStep::Finished(self.outcome(outcome.report, None)));
        };
        let (Some(shared), Some(peer_offer)) = (self.shared.as_ref(), self.peer_offer.as_ref())
        else {
            return Err(AgreeError::Unexpected {
                got: "a key",
                expected: "an X25519 exchange first",
            });
        };
        self.transcript.absorb_offers(&self.my_offer, peer_offer);
        let key = derive_hybrid_key(&qkd_key.to_bytes(), shared, &self.transcript.hash())?;
        let mac = confirm_mac(&key, &self.session, true);
        self.state = State::AwaitConfirmed(key);
        Ok(InitiatorStep::Send(AgreeRequest::Confirm {
            session: self.session,
            mac,
        }))
    }
}
