//! Key agreement between this node and a peer over `/qward/qkd/1`: runs the
//! core `Initiator` (when this node needs a key) or `Responder` (when a peer
//! asks), carries their messages as request-response pairs, installs
//! confirmed keys in the key store, records every session for the API and
//! puts an audit of it on the chain (the initiator does).
//!
//! The simulated channel of a link is this node's `[key_agreement]` setting,
//! or a per-peer override set at run time (`link_set`); the session runs on
//! the worse of both ends' settings, so an eavesdropper put on a link at
//! either end is there for every session on it.

use std::time::{Duration, Instant};

use qward_core::api::{Event, KeySessionInfo, LinkParams, SessionPhase};
use qward_core::chain::TxKind;
use qward_core::hybrid::SessionId;
use qward_core::identity::AccountId;
use qward_core::keyagree::{
    AgreeRequest, AgreeResponse, AgreementOutcome, Initiator, InitiatorStep, LinkModel, Responder,
    ResponderPolicy,
};
use qward_core::keystore::{KeyPurpose, KeyRecord};
use qward_core::qkd::{Phase, QkdReport};

pub use super::agree_state::Agreements;
use super::agree_state::{Serving, lock};
use super::clock::now_ms;
use super::context::Ctx;
use crate::net::{PeerId, RequestProtocol, account_from_peer_id, peer_id_from_account};

/// The longest one session may take, end to end.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);
/// A responder session silent for this long is dropped.
const RESPONDER_IDLE: Duration = Duration::from_secs(60);
/// Responder sessions open at once, over all peers.
const MAX_RESPONDERS: usize = 16;
/// The most qubits a peer may send this node in one session.
const MAX_QUBITS_SERVED: u64 = 4_000_000;

/// Why this node could not get a key with a peer.
#[derive(Debug, thiserror::Error)]
pub enum KeyUnavailable {
    #[error("key agreement with {peer} aborted: {reason}")]
    Aborted { peer: String, reason: String },
    #[error("key agreement with {peer} failed: {reason}")]
    Failed { peer: String, reason: String },
}

/// This node's link model toward `peer`.
pub fn link_for(ctx: &Ctx, peer: &AccountId) -> LinkModel {
    lock(&ctx.agree.links)
        .get(peer)
        .copied()
        .unwrap_or_else(|| ctx.config.key_agreement.link())
}

/// The API view of the link toward `peer`.
pub fn link_params(ctx: &Ctx, peer: &AccountId, shown: String) -> LinkParams {
    let l = link_for(ctx, peer);
    LinkParams {
        peer: shown,
        distance_km: l.channel.distance_km,
        loss_db_per_km: l.channel.loss_db_per_km,
        detector_efficiency: l.channel.detector_efficiency,
        dark_count_prob: l.channel.dark_count_prob,
        misalignment: l.channel.misalignment,
        eve_fraction: l.eve_fraction,
    }
}

/// Sets this node's link model toward `peer` (checked first).
pub fn set_link(ctx: &Ctx, peer: AccountId, p: &LinkParams) -> Result<LinkModel, String> {
    let mut l = link_for(ctx, &peer);
    l.channel.distance_km = p.distance_km;
    l.channel.loss_db_per_km = p.loss_db_per_km;
    l.channel.detector_efficiency = p.detector_efficiency;
    l.channel.dark_count_prob = p.dark_count_prob;
    l.channel.misalignment = p.misalignment;
    l.eve_fraction = p.eve_fraction;
    l.validate().map_err(|e| e.to_string())?;
    lock(&ctx.agree.links).insert(peer, l);
    tracing::info!(
        "link to {} set: {} km, eavesdropper on {:.0}% of qubits",
        ctx.contacts.label(&peer),
        l.channel.distance_km,
        l.eve_fraction * 100.0
    );
    Ok(l)
}

/// The API phase of a session whose handshake is done (the initiator's
/// handshake is published before any of these).
fn api_phase(phase: Phase) -> SessionPhase {
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

fn info(
    ctx: &Ctx,
    session: &SessionId,
    peer: &AccountId,
    started_ms: u64,
    phase: SessionPhase,
    report: &QkdReport,
) -> KeySessionInfo {
    KeySessionInfo {
        session_id: hex::encode(session.0),
        peer: peer.to_hex(),
        peer_name: ctx.contacts.name_of(peer).map(str::to_string),
        started_ms,
        phase,
        qubits_sent: report.qubits_sent,
        sifted: report.sifted,
        qber: (report.sample_size > 0).then_some(report.qber),
        qber_upper_bound: (report.sample_size > 0).then_some(report.qber_upper_bound),
        abort_threshold: ctx.config.key_agreement.max_qber,
        final_key_bits: report.final_key_bits,
        eve_detected: report.eve_detected,
        abort_reason: report.abort_reason.as_ref().map(ToString::to_string),
    }
}

fn publish(ctx: &Ctx, info: &KeySessionInfo) {
    ctx.agree.note(info);
    ctx.emit(Event::KeySession(info.clone()));
}

/// Installs the key of a confirmed session, and logs and publishes its end;
/// answers the session as published.
fn finish(
    ctx: &Ctx,
    peer: &AccountId,
    outcome: AgreementOutcome,
    mut shown: KeySessionInfo,
) -> KeySessionInfo {
    let who = ctx.contacts.label(peer);
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
    crate::metrics::Metrics::inc(if outcome.key.is_some() {
        &ctx.metrics.key_sessions_completed
    } else {
        &ctx.metrics.key_sessions_aborted
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
        match ctx.keys.install(&ctx.store, record, key) {
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
    publish(ctx, &shown);
    shown
}

/// Makes sure a fresh key with `peer` exists, running a session if not.
pub async fn ensure_key(ctx: &Ctx, peer: AccountId) -> Result<(), KeyUnavailable> {
    if ctx.keys.has_fresh_key(&peer, now_ms()) {
        return Ok(());
    }
    let gate = {
        let mut starting = ctx.agree.starting.lock().await;
        starting.entry(peer).or_default().clone()
    };
    let _one_at_a_time = gate.lock().await;
    if ctx.keys.has_fresh_key(&peer, now_ms()) {
        return Ok(());
    }
    let info = agree(ctx, peer).await?;
    if info.phase == SessionPhase::Done {
        Ok(())
    } else {
        Err(KeyUnavailable::Aborted {
            peer: ctx.contacts.label(&peer),
            reason: info.abort_reason.unwrap_or_default(),
        })
    }
}

/// Runs one session as initiator with `peer`; answers how it ended. The
/// session's audit goes to the chain whatever the outcome.
pub async fn agree(ctx: &Ctx, peer: AccountId) -> Result<KeySessionInfo, KeyUnavailable> {
    let who = ctx.contacts.label(&peer);
    let failed = |reason: String| KeyUnavailable::Failed {
        peer: who.clone(),
        reason,
    };
    if peer == ctx.account {
        return Err(failed("a node does not agree keys with itself".into()));
    }
    let peer_id: PeerId = peer_id_from_account(&peer).map_err(|e| failed(e.to_string()))?;
    let started_ms = now_ms();
    let (mut init, open) = {
        let mut rng = rand::rng();
        Initiator::new(
            &ctx.identity,
            peer,
            ctx.config.key_agreement.protocol(),
            link_for(ctx, &peer),
            &mut rng,
        )
        .map_err(|e| failed(e.to_string()))?
    };
    let session = init.session();
    tracing::info!(
        "key agreement with {who} started (session {})",
        hex::encode(session.0)
    );
    let mut shown = info(
        ctx,
        &session,
        &peer,
        started_ms,
        SessionPhase::Handshake,
        init.report(),
    );
    publish(ctx, &shown);
    let deadline = Instant::now() + SESSION_TIMEOUT;
    let mut request = open;
    let outcome = loop {
        let answer = match request.encode() {
            Err(e) => Err(e.to_string()),
            Ok(bytes) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(
                    left,
                    ctx.net.request(RequestProtocol::Qkd, peer_id, bytes),
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
            Err(reason) => break init.abandon(reason),
        };
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
                    shown = info(ctx, &session, &peer, started_ms, phase, init.report());
                    publish(ctx, &shown);
                }
                request = next;
            }
        }
    };
    let audit = outcome.audit();
    let last = info(
        ctx,
        &session,
        &peer,
        started_ms,
        SessionPhase::Done,
        &outcome.report,
    );
    let shown = finish(ctx, &peer, outcome, last);
    if let Err(e) = ctx.pool.submit(TxKind::AuditKeySession(audit)).await {
        tracing::warn!("the audit of key session with {who} was not submitted: {e:#}");
    }
    Ok(shown)
}

/// Answers one `/qward/qkd/1` request from `peer`.
pub async fn serve(ctx: &Ctx, peer: PeerId, data: Vec<u8>) -> Vec<u8> {
    let refuse = |reason: String| {
        AgreeResponse::Refused { reason }
            .encode()
            .unwrap_or_default()
    };
    let Some(account) = account_from_peer_id(&peer) else {
        return refuse("peer id is not an ed25519 account".into());
    };
    let request = match AgreeRequest::decode(&data) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                "refused a key-agreement message from {}: {e}",
                ctx.contacts.label(&account)
            );
            return refuse(e.to_string());
        }
    };
    let response = respond(ctx, account, request).await;
    response.encode().unwrap_or_else(|e| refuse(e.to_string()))
}

async fn respond(ctx: &Ctx, peer: AccountId, request: AgreeRequest) -> AgreeResponse {
    let session = request.session();
    let refused = |reason: String| AgreeResponse::Refused { reason };
    // Drop sessions whose initiator went silent.
    let stale: Vec<Serving> = {
        let mut serving = lock(&ctx.agree.serving);
        let keys: Vec<_> = serving
            .iter()
            .filter(|(_, s)| s.last_seen.elapsed() > RESPONDER_IDLE)
            .map(|(k, _)| *k)
            .collect();
        keys.iter().filter_map(|k| serving.remove(k)).collect()
    };
    for s in stale {
        let peer = s.responder.initiator();
        let outcome = s.responder.abandon("the initiator went silent");
        finish(ctx, &peer, outcome, s.info);
    }
    if let AgreeRequest::Open { .. } = request {
        if lock(&ctx.agree.serving).len() >= MAX_RESPONDERS {
            return refused("too many key-agreement sessions at once: try again shortly".into());
        }
        let policy = ResponderPolicy {
            max_qber: ctx.config.key_agreement.max_qber,
            max_qubits: MAX_QUBITS_SERVED,
        };
        let link = link_for(ctx, &peer);
        let opened = {
            let mut rng = rand::rng();
            Responder::open(&ctx.identity, peer, request, link, policy, &mut rng)
        };
        return match opened {
            Err(e) => {
                tracing::warn!(
                    "refused a key agreement from {}: {e}",
                    ctx.contacts.label(&peer)
                );
                refused(e.to_string())
            }
            Ok((responder, response)) => {
                let shown = info(
                    ctx,
                    &session,
                    &peer,
                    now_ms(),
                    SessionPhase::Transmitting,
                    responder.report(),
                );
                publish(ctx, &shown);
                lock(&ctx.agree.serving).insert(
                    (peer, session),
                    Serving {
                        responder,
                        last_seen: Instant::now(),
                        info: shown,
                    },
                );
                response
            }
        };
    }
    let Some(mut serving) = lock(&ctx.agree.serving).remove(&(peer, session)) else {
        return refused("no such key-agreement session (it ended or timed out)".into());
    };
    let moved = tokio::task::spawn_blocking(move || {
        let (response, outcome) = serving.responder.on_request(request, &mut rand::rng());
        (serving, response, outcome)
    })
    .await;
    let Ok((mut serving, response, outcome)) = moved else {
        return refused("the session task failed".into());
    };
    let phase = api_phase(serving.responder.phase());
    let changed = phase != serving.info.phase;
    serving.info = info(
        ctx,
        &session,
        &peer,
        serving.info.started_ms,
        phase,
        serving.responder.report(),
    );
    match outcome {
        Some(outcome) => {
            finish(ctx, &peer, outcome, serving.info);
        }
        None => {
            if changed && phase != SessionPhase::Done {
                publish(ctx, &serving.info);
            }
            serving.last_seen = Instant::now();
            lock(&ctx.agree.serving).insert((peer, session), serving);
        }
    }
    response
}
