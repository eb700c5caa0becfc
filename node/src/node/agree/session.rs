//! What one key-agreement session needs and does outside the agreement
//! task's own state: the initiator's run over `/qward/qkd/1`, the API view
//! of a session, and the end of a session (its key installed in the key
//! store, logged, counted).

use std::sync::Arc;
use std::time::Instant;

use qward_core::api::{Event, KeySessionInfo, SessionPhase};
use qward_core::chain::{KeySessionAudit, TxKind};
use qward_core::etsi014::{self, MAX_KEY_COUNT};
use qward_core::hybrid::SessionId;
use qward_core::identity::{AccountId, Identity};
use qward_core::keyagree::{
    AgreeResponse, AgreementOutcome, Initiator, InitiatorStep, KmeGrant, LinkModel, Purpose,
};
use qward_core::keystore::{KeyPurpose, KeyRecord};
use qward_core::qkd::{Phase, QkdReport};
use tokio::sync::{broadcast, mpsc};

use super::{KeyUnavailable, SESSION_TIMEOUT};
use crate::config::KeyAgreementConfig;
use crate::contacts::Contacts;
use crate::db::RocksStore;
use crate::kme::{KmeSettings, KmeSource};
use crate::metrics::Metrics;
use crate::net::{NetworkClient, RequestProtocol, peer_id_from_account};
use crate::node::clock::now_ms;
use crate::node::keys::{KeyStore, KmeKey};
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
    /// The SAEs this node's KME serves (`[kme]`), if it is one.
    pub kme: Option<Arc<KmeSettings>>,
    /// Links whose QKD key comes from a KME (`[[kme_source]]`), by peer.
    pub kme_sources: std::collections::HashMap<AccountId, Arc<KmeSource>>,
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

    /// Whether this node (as responder) takes a session for `purpose` from
    /// `peer`: a KME session must name a slave SAE of this node's KME, a
    /// master SAE at `peer`'s, and leave room for its keys.
    pub(super) fn check_purpose(&self, peer: &AccountId, purpose: &Purpose) -> Result<(), String> {
        let Purpose::Kme(grant) = purpose else {
            return Ok(());
        };
        let Some(kme) = &self.kme else {
            return Err("this node serves no KME ([kme] in its config.toml)".into());
        };
        if !kme.local.contains(&grant.slave_sae) {
            return Err(format!(
                "SAE {} is not attached to this node's KME",
                grant.slave_sae
            ));
        }
        if kme.remote.get(&grant.master_sae) != Some(peer) {
            return Err(format!(
                "SAE {} is not attached to the KME of the node asking",
                grant.master_sae
            ));
        }
        let held = self
            .keys
            .kme_count(&self.store, &grant.slave_sae, &grant.master_sae, now_ms())
            .map_err(|e| format!("counting KME keys: {e:#}"))?;
        if held + grant.number > MAX_KEY_COUNT {
            return Err(format!(
                "this node keeps {held} keys for SAE {} from {} already (at most \
                 {MAX_KEY_COUNT}): the slave must fetch some first",
                grant.slave_sae, grant.master_sae
            ));
        }
        Ok(())
    }

    /// Installs the key of a confirmed session, logs and counts its end;
    /// answers the session as it is to be published, and for a KME session
    /// this node started, the keys for its master SAE (the responder keeps
    /// them for its slave SAE instead).
    pub(super) fn finish(
        &self,
        peer: &AccountId,
        outcome: AgreementOutcome,
        mut shown: KeySessionInfo,
    ) -> (KeySessionInfo, Option<Vec<KmeKey>>) {
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
        if outcome.key.is_some() {
            Metrics::observe_ms(
                &self.metrics.key_agreement_seconds,
                now_ms().saturating_sub(shown.started_ms),
            );
        }
        if outcome.report.qber.is_finite() {
            self.metrics.key_agreement_qber.observe(outcome.report.qber);
        }
        let mut for_master = None;
        if let (Some(key), Purpose::Kme(grant)) = (&outcome.key, &outcome.purpose) {
            let keys: Vec<KmeKey> = etsi014::derive_keys(
                key.secret_bytes(),
                &outcome.session.0,
                grant.number,
                grant.size_bits,
            )
            .into_iter()
            .map(|(id, k)| (id, zeroize::Zeroizing::new(k)))
            .collect();
            if outcome.responder == self.identity.account() {
                match self.keys.kme_keep(
                    &self.store,
                    &grant.slave_sae,
                    &grant.master_sae,
                    &keys,
                    now_ms(),
                ) {
                    Ok(()) => tracing::info!(
                        "KME: {} keys of {} bits from {} ({who}) kept for SAE {}",
                        grant.number,
                        grant.size_bits,
                        grant.master_sae,
                        grant.slave_sae
                    ),
                    Err(e) => {
                        tracing::error!("KME keys agreed with {who} could not be stored: {e:#}");
                        shown.phase = SessionPhase::Aborted;
                        shown.abort_reason = Some(format!("keys not stored: {e}"));
                    }
                }
            } else {
                for_master = Some(keys);
            }
        } else if let Some(key) = outcome.key {
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
        (shown, for_master)
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
    let result = run_initiator(&env, peer, link, Purpose::Messaging, &progress).await;
    let audit = match result {
        Ok((info, audit, _)) => {
            end.send(Ok(info));
            Some(audit)
        }
        Err(e) => {
            end.send(Err(e));
            None
        }
    };
    // The waiters have their answer; the audit goes to the chain after.
    if let Some(audit) = audit {
        submit_audit(&env, &peer, audit).await;
    }
}

async fn submit_audit(env: &AgreeEnv, peer: &AccountId, audit: KeySessionAudit) {
    if let Err(e) = env.pool.submit(TxKind::AuditKeySession(audit)).await {
        let who = env.contacts.label(peer);
        tracing::warn!("the audit of key session with {who} was not submitted: {e:#}");
    }
}

/// Runs one KME session as initiator with `peer` for `grant` and answers
/// its keys (for this node's master SAE) on `reply`; the audit goes to the
/// chain after.
pub(super) async fn initiate_kme(
    env: Arc<AgreeEnv>,
    peer: AccountId,
    link: LinkModel,
    grant: KmeGrant,
    progress: mpsc::UnboundedSender<Progress>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<KmeKey>, KeyUnavailable>>,
) {
    let who = env.contacts.label(&peer);
    match run_initiator(&env, peer, link, Purpose::Kme(grant), &progress).await {
        Err(e) => {
            let _ = reply.send(Err(e));
        }
        Ok((info, audit, keys)) => {
            let _ = reply.send(keys.ok_or_else(|| {
                KeyUnavailable::Aborted {
                    peer: who,
                    reason: info
                        .abort_reason
                        .unwrap_or_else(|| "the session gave no key".into()),
                }
            }));
            submit_audit(&env, &peer, audit).await;
        }
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
    purpose: Purpose,
    progress: &mpsc::UnboundedSender<Progress>,
) -> Result<(KeySessionInfo, KeySessionAudit, Option<Vec<KmeKey>>), KeyUnavailable> {
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
    // A link keyed by a KME takes its QKD key from there (KME sessions
    // themselves always run BB84: they make the KME's keys).
    let external = match (&purpose, env.kme_sources.get(&peer)) {
        (Purpose::Messaging, Some(source)) => Some(
            source
                .new_key()
                .await
                .map_err(|e| failed(format!("KME: {e}")))?,
        ),
        _ => None,
    };
    let (mut init, open) = {
        let mut rng = rand::rng();
        Initiator::new(
            &env.identity,
            peer,
            env.config.protocol(),
            link,
            purpose,
            external,
            &mut rng,
        )
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
        &init.report(),
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
                    shown = env.info(&session, &peer, started_ms, phase, &init.report());
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
    let (shown, keys) = env.finish(&peer, outcome, last);
    publish(&shown);
    Ok((shown, audit, keys))
}
