//! Key agreement between this node and a peer over `/qward/qkd/1`. One task
//! owns everything key agreement keeps between calls: this node's per-peer
//! link settings, the sessions it serves as responder, the sessions it runs
//! as initiator with who waits for each, and the recent sessions the API
//! shows. Everyone else holds an [`AgreeHandle`]: typed commands with
//! oneshot replies, no lock.
//!
//! The core `Initiator` of a session this node starts runs in a task of its
//! own (it waits on the network); each step of a core `Responder` runs on
//! the blocking pool (BB84 over millions of qubits is CPU work). Both report
//! back to the agreement task, which alone changes its state. Confirmed keys
//! go to the key store; the initiator puts an audit of every session it ran
//! on the chain.
//!
//! The simulated channel of a link is this node's `[key_agreement]` setting,
//! or a per-peer override set at run time (`link_set`); the session runs on
//! the worse of both ends' settings, so an eavesdropper put on a link at
//! either end is there for every session on it.

mod session;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qward_core::api::{Event, KeySessionInfo, LinkParams, SessionPhase};
use qward_core::etsi014::KeyId;
use qward_core::hybrid::SessionId;
use qward_core::identity::AccountId;
use qward_core::keyagree::{
    AgreeRequest, AgreeResponse, AgreementOutcome, ExternalKey, KeySource, KmeGrant, LinkModel,
    Purpose, Responder, ResponderPolicy,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::kme::KmeSource;
use crate::net::{PeerId, account_from_peer_id};
use crate::node::clock::now_ms;
use crate::node::keys::KmeKey;
pub use session::AgreeEnv;
use session::{Progress, api_phase};

/// The longest one session may take, end to end.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);
/// A responder session silent for this long is dropped.
const RESPONDER_IDLE: Duration = Duration::from_secs(60);
/// Responder sessions open at once, over all peers.
const MAX_RESPONDERS: usize = 16;
/// Responder sessions open at once with one peer (so one member cannot hold
/// every slot and keep the others from agreeing keys with this node).
const MAX_RESPONDERS_PER_PEER: usize = 2;
/// The most qubits a peer may send this node in one session.
const MAX_QUBITS_SERVED: u64 = 4_000_000;
/// Sessions kept for `key_sessions`.
const RECENT_SESSIONS: usize = 100;
/// Commands waiting for the task, at most.
const COMMAND_QUEUE: usize = 256;

/// Why this node could not get a key with a peer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyUnavailable {
    /// The session ran and ended without a key (an eavesdropper, noise).
    #[error("key agreement with {peer} aborted: {reason}")]
    Aborted { peer: String, reason: String },
    /// No session could run (the peer not reached, this node stopping).
    #[error("key agreement with {peer} failed: {reason}")]
    Failed { peer: String, reason: String },
}

/// The API view of a link model.
pub fn link_params(l: &LinkModel, shown: String) -> LinkParams {
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

enum Command {
    EnsureKey(AccountId, oneshot::Sender<Result<(), KeyUnavailable>>),
    Agree(
        AccountId,
        oneshot::Sender<Result<KeySessionInfo, KeyUnavailable>>,
    ),
    Serve(AccountId, Box<AgreeRequest>, oneshot::Sender<AgreeResponse>),
    Kme(
        AccountId,
        KmeGrant,
        oneshot::Sender<Result<Vec<KmeKey>, KeyUnavailable>>,
    ),
    Link(AccountId, oneshot::Sender<LinkModel>),
    SetLink(
        AccountId,
        LinkParams,
        oneshot::Sender<Result<LinkModel, String>>,
    ),
    Recent(oneshot::Sender<Vec<KeySessionInfo>>),
}

/// The handle on the key-agreement task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AgreeHandle {
    commands: mpsc::Sender<Command>,
}

impl AgreeHandle {
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    fn stopped(peer: &AccountId) -> KeyUnavailable {
        KeyUnavailable::Failed {
            peer: peer.short(),
            reason: "the node is stopping".into(),
        }
    }

    /// Makes sure a fresh key with `peer` exists, running a session if not
    /// (or waiting for the one already running).
    pub async fn ensure_key(&self, peer: AccountId) -> Result<(), KeyUnavailable> {
        self.call(|r| Command::EnsureKey(peer, r))
            .await
            .unwrap_or_else(|| Err(Self::stopped(&peer)))
    }

    /// Runs a session with `peer` (or joins the one running) and answers how
    /// it ended.
    pub async fn agree(&self, peer: AccountId) -> Result<KeySessionInfo, KeyUnavailable> {
        self.call(|r| Command::Agree(peer, r))
            .await
            .unwrap_or_else(|| Err(Self::stopped(&peer)))
    }

    /// Runs a KME session with `peer` for `grant` (an ETSI GS QKD 014
    /// `enc_keys` of this node's master SAE) and answers the keys.
    pub async fn kme_keys(
        &self,
        peer: AccountId,
        grant: KmeGrant,
    ) -> Result<Vec<KmeKey>, KeyUnavailable> {
        self.call(|r| Command::Kme(peer, grant, r))
            .await
            .unwrap_or_else(|| Err(Self::stopped(&peer)))
    }

    /// Answers one `/qward/qkd/1` request from `peer`.
    pub async fn serve(&self, peer: PeerId, data: Vec<u8>) -> Vec<u8> {
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
                tracing::warn!("refused a key-agreement message from {peer}: {e}");
                return refuse(e.to_string());
            }
        };
        match self
            .call(|r| Command::Serve(account, Box::new(request), r))
            .await
        {
            Some(response) => response.encode().unwrap_or_else(|e| refuse(e.to_string())),
            None => refuse("the node is stopping".into()),
        }
    }

    /// This node's link model toward `peer` (`None` once stopped).
    pub async fn link(&self, peer: AccountId) -> Option<LinkModel> {
        self.call(|r| Command::Link(peer, r)).await
    }

    /// Sets this node's link model toward `peer` (checked first).
    pub async fn set_link(&self, peer: AccountId, p: LinkParams) -> Result<LinkModel, String> {
        self.call(|r| Command::SetLink(peer, p, r))
            .await
            .unwrap_or_else(|| Err("the node is stopping".into()))
    }

    /// Recent sessions, both roles, oldest first.
    pub async fn recent(&self) -> Vec<KeySessionInfo> {
        self.call(Command::Recent).await.unwrap_or_default()
    }
}

/// Starts the key-agreement task; it ends when every handle is dropped.
pub fn spawn(env: AgreeEnv) -> (AgreeHandle, JoinHandle<()>) {
    let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
    let (progress_tx, progress) = mpsc::unbounded_channel();
    let (steps_tx, steps) = mpsc::unbounded_channel();
    let task = Agent {
        env: Arc::new(env),
        links: HashMap::new(),
        recent: VecDeque::new(),
        serving: HashMap::new(),
        stepping: HashSet::new(),
        starting: HashMap::new(),
        progress_tx,
        steps_tx,
    };
    let join = tokio::spawn(task.run(rx, progress, steps));
    (AgreeHandle { commands }, join)
}

/// Who waits for a session this node started.
enum Waiter {
    Key(oneshot::Sender<Result<(), KeyUnavailable>>),
    Session(oneshot::Sender<Result<KeySessionInfo, KeyUnavailable>>),
}

/// A responder session between two requests.
struct Serving {
    responder: Responder,
    last_seen: Instant,
    info: KeySessionInfo,
}

type ServingKey = (AccountId, SessionId);

/// A responder step done on the blocking pool.
enum Stepped {
    Opened {
        key: ServingKey,
        opened: Result<Box<(Responder, AgreeResponse)>, String>,
        reply: oneshot::Sender<AgreeResponse>,
    },
    Step {
        key: ServingKey,
        serving: Box<Serving>,
        response: AgreeResponse,
        outcome: Option<Box<AgreementOutcome>>,
        reply: oneshot::Sender<AgreeResponse>,
    },
    /// The blocking work panicked: the session is gone.
    Lost {
        key: ServingKey,
        reply: oneshot::Sender<AgreeResponse>,
    },
}

struct Agent {
    env: Arc<AgreeEnv>,
    links: HashMap<AccountId, LinkModel>,
    recent: VecDeque<KeySessionInfo>,
    /// Responder sessions waiting for their initiator's next request.
    serving: HashMap<ServingKey, Serving>,
    /// Responder sessions with a step running on the blocking pool.
    stepping: HashSet<ServingKey>,
    /// Sessions this node runs as initiator, one per peer, and who waits.
    starting: HashMap<AccountId, Vec<Waiter>>,
    progress_tx: mpsc::UnboundedSender<Progress>,
    steps_tx: mpsc::UnboundedSender<Stepped>,
}

fn refused(reason: impl Into<String>) -> AgreeResponse {
    AgreeResponse::Refused {
        reason: reason.into(),
    }
}

impl Agent {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut progress: mpsc::UnboundedReceiver<Progress>,
        mut steps: mpsc::UnboundedReceiver<Stepped>,
    ) {
        let mut idle_check = tokio::time::interval(RESPONDER_IDLE / 4);
        idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                Some(p) = progress.recv() => self.on_progress(p),
                Some(s) = steps.recv() => self.on_stepped(s),
                _ = idle_check.tick() => self.drop_idle(),
            }
        }
    }

    fn link(&self, peer: &AccountId) -> LinkModel {
        self.links
            .get(peer)
            .copied()
            .unwrap_or_else(|| self.env.config.link())
    }

    fn publish(&mut self, info: KeySessionInfo) {
        if let Some(s) = self
            .recent
            .iter_mut()
            .find(|s| s.session_id == info.session_id)
        {
            *s = info.clone();
        } else {
            self.recent.push_back(info.clone());
            while self.recent.len() > RECENT_SESSIONS {
                self.recent.pop_front();
            }
        }
        let _ = self.env.events.send(Event::KeySession(info));
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::EnsureKey(peer, reply) => {
                if self.env.keys.has_fresh_key(&peer, now_ms()) {
                    let _ = reply.send(Ok(()));
                } else {
                    self.join_session(peer, Waiter::Key(reply));
                }
            }
            Command::Agree(peer, reply) => self.join_session(peer, Waiter::Session(reply)),
            Command::Kme(peer, grant, reply) => {
                // Apart from the link's messaging session: each request
                // runs its own, and the caller alone waits for it.
                tokio::spawn(session::initiate_kme(
                    self.env.clone(),
                    peer,
                    self.link(&peer),
                    grant,
                    self.progress_tx.clone(),
                    reply,
                ));
            }
            Command::Serve(peer, request, reply) => self.serve(peer, *request, reply),
            Command::Link(peer, reply) => {
                let _ = reply.send(self.link(&peer));
            }
            Command::SetLink(peer, p, reply) => {
                let _ = reply.send(self.set_link(peer, &p));
            }
            Command::Recent(reply) => {
                let _ = reply.send(self.recent.iter().cloned().collect());
            }
        }
    }

    fn set_link(&mut self, peer: AccountId, p: &LinkParams) -> Result<LinkModel, String> {
        let mut l = self.link(&peer);
        l.channel.distance_km = p.distance_km;
        l.channel.loss_db_per_km = p.loss_db_per_km;
        l.channel.detector_efficiency = p.detector_efficiency;
        l.channel.dark_count_prob = p.dark_count_prob;
        l.channel.misalignment = p.misalignment;
        l.eve_fraction = p.eve_fraction;
        l.validate().map_err(|e| e.to_string())?;
        self.links.insert(peer, l);
        tracing::info!(
            "link to {} set: {} km, eavesdropper on {:.0}% of qubits",
            self.env.contacts.label(&peer),
            l.channel.distance_km,
            l.eve_fraction * 100.0
        );
        Ok(l)
    }

    /// Adds `waiter` to the session running with `peer`, starting one if
    /// none runs: this node runs one session per peer at a time.
    fn join_session(&mut self, peer: AccountId, waiter: Waiter) {
        if let Some(waiting) = self.starting.get_mut(&peer) {
            waiting.push(waiter);
            return;
        }
        self.starting.insert(peer, vec![waiter]);
        tokio::spawn(session::initiate(
            self.env.clone(),
            peer,
            self.link(&peer),
            self.progress_tx.clone(),
        ));
    }

    fn on_progress(&mut self, progress: Progress) {
        match progress {
            Progress::Phase(info) => self.publish(info),
            Progress::Ended { peer, result } => {
                let who = self.env.contacts.label(&peer);
                for waiter in self.starting.remove(&peer).unwrap_or_default() {
                    match waiter {
                        Waiter::Session(reply) => {
                            let _ = reply.send(result.clone());
                        }
                        Waiter::Key(reply) => {
                            let _ = reply.send(match &result {
                                Ok(info) if info.phase == SessionPhase::Done => Ok(()),
                                Ok(info) => Err(KeyUnavailable::Aborted {
                                    peer: who.clone(),
                                    reason: info.abort_reason.clone().unwrap_or_default(),
                                }),
                                Err(e) => Err(e.clone()),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Ends responder sessions whose initiator went silent.
    fn drop_idle(&mut self) {
        let idle: Vec<ServingKey> = self
            .serving
            .iter()
            .filter(|(_, s)| s.last_seen.elapsed() > RESPONDER_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for key in idle {
            if let Some(s) = self.serving.remove(&key) {
                let outcome = s.responder.abandon("the initiator went silent");
                let (shown, _) = self.env.finish(&key.0, outcome, s.info);
                self.publish(shown);
            }
        }
    }

    fn serve(
        &mut self,
        peer: AccountId,
        request: AgreeRequest,
        reply: oneshot::Sender<AgreeResponse>,
    ) {
        self.drop_idle();
        let key = (peer, request.session());
        if let AgreeRequest::Open {
            purpose, source, ..
        } = &request
        {
            if self.serving.contains_key(&key) || self.stepping.contains(&key) {
                let _ = reply.send(refused("that session is already open"));
                return;
            }
            let of_peer = self.serving.keys().chain(self.stepping.iter());
            if of_peer.filter(|(p, _)| *p == peer).count() >= MAX_RESPONDERS_PER_PEER {
                let _ = reply.send(refused(
                    "too many key-agreement sessions with this node at once: finish one first",
                ));
                return;
            }
            if self.serving.len() + self.stepping.len() >= MAX_RESPONDERS {
                let _ = reply.send(refused(
                    "too many key-agreement sessions at once: try again shortly",
                ));
                return;
            }
            if let Err(why) = self.env.check_purpose(&peer, purpose) {
                tracing::warn!(
                    "refused a KME session from {}: {why}",
                    self.env.contacts.label(&peer)
                );
                let _ = reply.send(refused(why));
                return;
            }
            // A link in [[kme_source]] takes its messaging keys from the
            // KME; a KME session itself (which makes a KME's keys) always
            // runs BB84.
            let kme_link = match purpose {
                Purpose::Messaging => self.env.kme_sources.get(&peer),
                Purpose::Kme(_) => None,
            };
            let fetch = match (source, kme_link) {
                (KeySource::Simulated, None) => None,
                (KeySource::Etsi014 { key_id }, Some(kme)) => Some((kme.clone(), *key_id)),
                (KeySource::Simulated, Some(_)) => {
                    let _ = reply.send(refused(
                        "this node takes this link's QKD keys from its KME (kme_source), \
                         not from simulated BB84",
                    ));
                    return;
                }
                (KeySource::Etsi014 { .. }, None) => {
                    let _ = reply.send(refused(
                        "this node has no KME for this link (kme_source in its config.toml)",
                    ));
                    return;
                }
            };
            let policy = ResponderPolicy {
                max_qber: self.env.config.max_qber,
                max_qubits: MAX_QUBITS_SERVED,
                ..ResponderPolicy::default()
            };
            let link = self.link(&peer);
            let env = self.env.clone();
            self.stepping.insert(key);
            self.off_task(key, reply, fetch, move |external, reply| {
                let opened = Responder::open(
                    &env.identity,
                    peer,
                    request,
                    link,
                    policy,
                    external,
                    &mut rand::rng(),
                )
                .map(Box::new)
                .map_err(|e| e.to_string());
                Stepped::Opened { key, opened, reply }
            });
            return;
        }
        let Some(mut serving) = self.serving.remove(&key) else {
            let why = if self.stepping.contains(&key) {
                "that session is still working on the last message"
            } else {
                "no such key-agreement session (it ended or timed out)"
            };
            let _ = reply.send(refused(why));
            return;
        };
        self.stepping.insert(key);
        self.off_task(key, reply, None, move |_, reply| {
            let (response, outcome) = serving.responder.on_request(request, &mut rand::rng());
            Stepped::Step {
                key,
                serving: Box::new(serving),
                response,
                outcome: outcome.map(Box::new),
                reply,
            }
        });
    }

    /// Runs `work` on the blocking pool and hands its result to this task;
    /// first, for a session keyed by a KME, fetches the key the `Open`
    /// names from this node's KME (`dec_keys`).
    fn off_task(
        &self,
        key: ServingKey,
        reply: oneshot::Sender<AgreeResponse>,
        fetch: Option<(Arc<KmeSource>, KeyId)>,
        work: impl FnOnce(Option<ExternalKey>, oneshot::Sender<AgreeResponse>) -> Stepped
        + Send
        + 'static,
    ) {
        let steps = self.steps_tx.clone();
        tokio::spawn(async move {
            let external = match fetch {
                None => None,
                Some((kme, id)) => match kme.key(id).await {
                    Ok(k) => Some(k),
                    Err(e) => {
                        let opened = Err(format!("KME: {e}"));
                        let _ = steps.send(Stepped::Opened { key, opened, reply });
                        return;
                    }
                },
            };
            // The work answers on a channel of its own, which the task fills
            // once it has recorded the session's new state; the peer's reply
            // stays here, so a panic in the work still gets an answer.
            let (inner_tx, inner_rx) = oneshot::channel();
            match tokio::task::spawn_blocking(move || work(external, inner_tx)).await {
                Err(_) => {
                    let _ = steps.send(Stepped::Lost { key, reply });
                }
                Ok(stepped) => {
                    let _ = steps.send(stepped);
                    if let Ok(response) = inner_rx.await {
                        let _ = reply.send(response);
                    }
                }
            }
        });
    }

    fn on_stepped(&mut self, stepped: Stepped) {
        match stepped {
            Stepped::Lost { key, reply } => {
                self.stepping.remove(&key);
                tracing::error!("a key-agreement step with {} failed", key.0.short());
                let _ = reply.send(refused("the session task failed"));
            }
            Stepped::Opened { key, opened, reply } => {
                self.stepping.remove(&key);
                let (peer, session) = key;
                match opened {
                    Err(e) => {
                        tracing::warn!(
                            "refused a key agreement from {}: {e}",
                            self.env.contacts.label(&peer)
                        );
                        let _ = reply.send(refused(e));
                    }
                    Ok(opened) => {
                        let (responder, response) = *opened;
                        let shown = self.env.info(
                            &session,
                            &peer,
                            now_ms(),
                            SessionPhase::Transmitting,
                            &responder.report(),
                        );
                        self.publish(shown.clone());
                        self.serving.insert(
                            key,
                            Serving {
                                responder,
                                last_seen: Instant::now(),
                                info: shown,
                            },
                        );
                        let _ = reply.send(response);
                    }
                }
            }
            Stepped::Step {
                key,
                serving,
                response,
                outcome,
                reply,
            } => {
                self.stepping.remove(&key);
                let mut serving = *serving;
                let (peer, session) = key;
                let phase = api_phase(serving.responder.phase());
                let changed = phase != serving.info.phase;
                serving.info = self.env.info(
                    &session,
                    &peer,
                    serving.info.started_ms,
                    phase,
                    &serving.responder.report(),
                );
                match outcome {
                    Some(outcome) => {
                        let (shown, _) = self.env.finish(&peer, *outcome, serving.info);
                        self.publish(shown);
                    }
                    None => {
                        if changed && phase != SessionPhase::Done {
                            self.publish(serving.info.clone());
                        }
                        serving.last_seen = Instant::now();
                        self.serving.insert(key, serving);
                    }
                }
                let _ = reply.send(response);
            }
        }
    }
}
