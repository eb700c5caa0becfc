//! What one key-agreement session needs and does outside the agreement
//! task's own state: the initiator's run over `/qward/qkd/1`, the API view
//! of a session, and the end of a session (its key installed in the key
//! store, logged, counted).

use std::sync::Arc;
use std::time::Instant;

use qward_core::api::{Event, KeySessionInfo, SessionPhase};
use qward_core::chain::{KeySessionAudit, TxKind};
use qward_core::hybrid::SessionId;
use qward_core::identity::{AccountId, Identity};
use qward_core::keyagree::{AgreeResponse, AgreementOutcome, Initiator, InitiatorStep, LinkModel};
use qward_core::keystore::{KeyPurpose, KeyRecord};
use qward_core::qkd::{Phase, QkdReport};
use tokio::sync::{broadcast, mpsc};

use super::{KeyUnavailable, SESSION_TIMEOUT};
use crate::config::KeyAgreementConfig;
use crate::contacts::Contacts;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{NetworkClient, RequestProtocol, peer_id_from_account};
use crate::node::clock::now_ms;
use crate::node::keys::KeyStore;
use crate::node::pool::PoolHandle;

/// What the agreement task and its sessions use, none of it theirs alone:
/// handles of other tasks and settings fixed at start.
pub struct AgreeEnv {
    pub identity: Identity,
    pub config: KeyAgreementConfig,
    pub keys: Arc<KeyStore>,
    pub store: Arc<RocksStore>,
    pub net: NetworkClient,
    pub pool: PoolHandle,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub contacts: Contacts,
}

impl std::fmt::Debug for AgreeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgreeEnv").finish_non_exhaustive()
    }
}

/// What a session running off the task tells it.
#[derive(Debug)]
pub(super) enum Progress {
    /// A session entered a new phase (shown to the API as it is).
    Phase(KeySessionInfo),
    /// The session this node started with `peer` ended.
    Ended {
        peer: AccountId,
        result: Result<KeySessionInfo, KeyUnavailable>,
    },
}

/// The API phase of a session whose handshake is done (the initiator's
/// handshake is published before any of these).
pub(super) fn api_phase(phase: Phase) -> SessionPhase {
    match phase {
        Phase::Preparing => SessionPhase::Transmitting,
        Phase::Sifting => SessionPhase::Sifting,
        Phase::Estimating => SessionPhase::Estimating,
        Phase::Correcting => SessionPhase::Correcting,
        Phase::Verifying => SessionPhase::Verifying,
        Phase::Amplifying => SessionPhase::Amplifying,
        Phase::Done => SessionPhase::Done,
        Phase::Aborted => SessionPhase::Aborted,
    }
}

impl AgreeEnv {
    pub(super) fn info(
        &self,
        session: &SessionId,
        peer: &AccountId,
        started_ms: u64,
        phase: SessionPhase,
        report: &QkdReport,
    ) -> KeySessionInfo {
        KeySessionInfo {
            session_id: hex::encode(session.0),
            peer: peer.to_hex(),
            peer_name: self.contacts.name_of(peer).map(str::to_string),
            started_ms,
            phase,
            qubits_sent: report.qubits_sent,
            sifted: report.sifted,
            qber: (report.sample_size > 0).then_some(report.qber),
            qber_upper_bound: (report.sample_size > 0).then_some(report.qber_upper_bound),
            abort_threshold: self.config.max_qber,
            final_key_bits: report.final_key_bits,
            eve_detected: report.eve_detected,
            abort_reason: report.abort_reason.as_ref().map(ToString::to_string),
        }
    }

    /// Installs the key of a confirmed session, logs and counts its end;
    /// answers the session as it is to be published.
    pub(super) fn finish(
        &self,
        peer: &AccountId,
        outcome: AgreementOutcome,
        mut shown: KeySessionInfo,
    ) -> KeySessionInfo {
        let who = self.contacts.label(peer);
        if outcome.key.is_none() && shown.abort_reason.is_none() {
            shown.abort_reason = outcome
                .report
                .abort_reason
                .as_ref()
                .map(ToString::to_string);
        }
        shown.phase = if outcome.key.is_some() {
            SessionPhase::Done
        } else {
            SessionPhase::Aborted
        };
        Metrics::inc(if outcome.key.is_some() {
            &self.metrics.key_sessions_completed
        } else {
            &self.metrics.key_sessions_aborted
        });
        if let Some(key) = outcome.key {
            let record = KeyRecord {
                key_id: key.id(),
                peer: *peer,
                created_at_ms: now_ms(),
                qber: outcome.report.qber.clamp(0.0, 1.0),
                key_bits: outcome.report.final_key_bits.min(u64::from(u32::MAX)) as u32,
                uses: 0,
                purpose: KeyPurpose::Messaging,
            };
            let id = record.key_id;
            match self.keys.install(&self.store, record, key) {
                Ok(()) => tracing::info!(
                    "key {id} agreed with {who}: QBER {:.2}%, {} QKD key bits",
                    outcome.report.qber * 100.0,
                    outcome.report.final_key_bits
                ),
                Err(e) => {
                    tracing::error!("key agreed with {who} could not be stored: {e:#}");
                    shown.phase = SessionPhase::Aborted;
                    shown.abort_reason = Some(format!("key not stored: {e}"));
                }
            }
        } else {
            let reason = shown
                .abort_reason
                .clone()
                .unwrap_or_else(|| "no reason given".into());
            if outcome.report.eve_detected {
                tracing::warn!("EAVESDROPPER DETECTED on the link to {who}: {reason}");
            } else {
                tracing::warn!("key agreement with {who} ended without a key: {reason}");
            }
        }
        shown
    }
}

/// Runs one session as initiator with `peer` on `link`, reporting each new
/// phase and the end to the agreement task. The session's audit goes to
/// the chain whatever the outcome.
pub(super) async fn initiate(
    env: Arc<AgreeEnv>,
    peer: AccountId,
    link: LinkModel,
    progress: mpsc::UnboundedSender<Progress>,
) {
    // Whatever ends this task (a panic included), its waiters get an answer.
    let mut end = EndGuard {
        peer,
        progress: progress.clone(),
        sent: false,
    };
    let result = run_initiator(&env, peer, link, &progress).await;
    let audit = match result {
        Ok((info, audit)) => {
            end.send(Ok(info));
            Some(audit)
        }
        Err(e) => {
            end.send(Err(e));
            None
        }
    };
    // The waiters have their answer; the audit goes to the chain after.
    if let Some(audit) = audit
        && let Err(e) = env.pool.submit(TxKind::AuditKeySession(audit)).await
    {
        let who = env.contacts.label(&peer);
        tracing::warn!("the audit of key session with {who} was not submitted: {e:#}");
    }
}

/// Sends a session's end to the agreement task exactly once: by hand, or on
/// drop if the session task ends without (a panic), so no waiter is left.
struct EndGuard {
    peer: AccountId,
    progress: mpsc::UnboundedSender<Progress>,
    sent: bool,
}

impl EndGuard {
    fn send(&mut self, result: Result<KeySessionInfo, KeyUnavailable>) {
        if !std::mem::replace(&mut self.sent, true) {
            let _ = self.progress.send(Progress::Ended {
                peer: self.peer,
                result,
            });
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.send(Err(KeyUnavailable::Failed {
            peer: self.peer.short(),
            reason: "the session task ended unexpectedly".into(),
        }));
    }
}

async fn run_initiator(
    env: &Arc<AgreeEnv>,
    peer: AccountId,
    link: LinkModel,
    progress: &mpsc::UnboundedSender<Progress>,
) -> Result<(KeySessionInfo, KeySessionAudit), KeyUnavailable> {
    let who = env.contacts.label(&peer);
    let failed = |reason: String| KeyUnavailable::Failed {
        peer: who.clone(),
        reason,
    };
    if peer == env.identity.account() {
        return Err(failed("a node does not agree keys with itself".into()));
    }
    let peer_id = peer_id_from_account(&peer).map_err(|e| failed(e.to_string()))?;
    let started_ms = now_ms();
    let (mut init, open) = {
        let mut rng = rand::rng();
        Initiator::new(&env.identity, peer, env.config.protocol(), link, &mut rng)
            .map_err(|e| failed(e.to_string()))?
    };
    let session = init.session();
    tracing::info!(
        "key agreement with {who} started (session {})",
        hex::encode(session.0)
    );
    let publish = |info: &KeySessionInfo| {
        let _ = progress.send(Progress::Phase(info.clone()));
    };
    let mut shown = env.info(
        &session,
        &peer,
        started_ms,
        SessionPhase::Handshake,
        init.report(),
    );
    publish(&shown);
    let deadline = Instant::now() + SESSION_TIMEOUT;
    let mut request = open;
    let mut reached = false;
    let outcome = loop {
        let answer = match request.encode() {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(
                    left,
                    env.net.request(RequestProtocol::Qkd, peer_id, bytes),
                )
                .await
                {
                    Err(_) => Err("the session timed out".to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(bytes)) => AgreeResponse::decode(&bytes).map_err(|e| e.to_string()),
                }
            }
        };
        let response = match answer {
            Ok(r) => r,
            // The peer never answered the opening: nothing was measured, so
            // this is a failure to reach it, not an aborted session.
            Err(reason) if !reached => {
                shown.phase = SessionPhase::Aborted;
                shown.abort_reason = Some(format!("peer not reached: {reason}"));
                publish(&shown);
                return Err(failed(format!("peer not reached: {reason}")));
            }
            Err(reason) => break init.abandon(reason),
        };
        reached = true;
        let moved = tokio::task::spawn_blocking(move || {
            let step = init.on_response(response, &mut rand::rng());
            (init, step)
        })
        .await;
        let (back, step) = match moved {
            Ok(pair) => pair,
            Err(e) => return Err(failed(format!("session task failed: {e}"))),
        };
        init = back;
        match step {
            InitiatorStep::Finished(outcome) => break outcome,
            InitiatorStep::Send(next) => {
                let phase = api_phase(init.phase());
                if phase != shown.phase {
                    shown = env.info(&session, &peer, started_ms, phase, init.report());
                    publish(&shown);
                }
                request = next;
            }
        }
    };
    let audit = outcome.audit();
    let last = env.info(
        &session,
        &peer,
        started_ms,
        SessionPhase::Done,
        &outcome.report,
    );
    let shown = env.finish(&peer, outcome, last);
    publish(&shown);
    Ok((shown, audit))
}
