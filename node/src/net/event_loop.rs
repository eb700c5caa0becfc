//! `Network`: the task that owns the libp2p swarm and turns swarm events into `NetworkEvent`s.
//!
//! Commands from clients are executed in `commands.rs`; this file builds the
//! swarm, runs the loop, and handles what the swarm reports. The loop never
//! blocks on the node: events go out with `try_send`, and when the queue is
//! full they are dropped and counted (gossip is then ignored, an inbound
//! request left unanswered) rather than stalling every connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, InboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};

use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

/// The system resolver's configuration, which DNS addresses need.
const RESOLV_CONF: &str = "/etc/resolv.conf";
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::behaviour::{IDENTIFY_PROTOCOL, QwardBehaviour, QwardBehaviourEvent};
use super::bootstrap::{Bootstrap, peer_of};
use super::client::{Command, InboundRequestId, NetworkClient, NetworkEvent};
use super::metrics::Counters;
use super::permission::MemberSet;
use super::{NetError, NetworkConfig, RequestProtocol};

/// Addresses kept per peer from identify (a peer cannot make us store more).
pub(crate) const MAX_ADDRS_PER_PEER: usize = 16;
/// Commands queued from clients before `send` waits.
const COMMAND_QUEUE_LEN: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct PeerState {
    pub(crate) connected_addrs: Vec<Multiaddr>,
    pub(crate) announced_addrs: Vec<Multiaddr>,
    pub(crate) rtt: Option<Duration>,
}

pub(crate) type RequestReply = oneshot::Sender<Result<Vec<u8>, NetError>>;

/// The swarm owner. Build it with [`Network::new`], then `tokio::spawn(network.run())`.
pub struct Network {
    pub(crate) swarm: Swarm<QwardBehaviour>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<NetworkEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) members: MemberSet,
    pub(crate) peers: HashMap<PeerId, PeerState>,
    pub(crate) pending_out: HashMap<(RequestProtocol, OutboundRequestId), RequestReply>,
    pub(crate) pending_in: HashMap<InboundRequestId, ResponseChannel<Vec<u8>>>,
    pub(crate) bootstrap: Bootstrap,
    pub(crate) config: NetworkConfig,
    /// libp2p's own metrics (connections, identify, ping, gossipsub), when
    /// the node exports metrics.
    pub(crate) libp2p_metrics: Option<libp2p::metrics::Metrics>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("local_peer_id", self.swarm.local_peer_id())
            .field("members", &self.members.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Builds the swarm from the node key and starts listening on
    /// `config.listen_addrs`. Returns the loop (to spawn), a client, and the
    /// receiver of events for the node.
    pub fn new(
        keypair: Keypair,
        config: NetworkConfig,
    ) -> Result<(Network, NetworkClient, mpsc::Receiver<NetworkEvent>), NetError> {
        Self::new_with_metrics(keypair, config, None)
    }

    /// [`Network::new`], with the network's counters and libp2p's metrics
    /// registered in `registry` when given.
    pub fn new_with_metrics(
        keypair: Keypair,
        config: NetworkConfig,
        mut registry: Option<&mut prometheus_client::registry::Registry>,
    ) -> Result<(Network, NetworkClient, mpsc::Receiver<NetworkEvent>), NetError> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let behaviour = QwardBehaviour::new(&keypair, &config, &counters, registry.as_deref_mut())?;
        let libp2p_metrics = registry.map(|r| {
            r.sub_registry_with_prefix("qward_net")
                .register_collector(Box::new(super::metrics::CountersCollector(
                    counters.clone(),
                )));
            libp2p::metrics::Metrics::new(r)
        });
        let local_peer_id = keypair.public().to_peer_id();
        let idle = config.idle_connection_timeout;
        let transport_error = |e: &dyn std::fmt::Display| NetError::Transport(e.to_string());
        let tcp_phase = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_error(&e))?;
        // `/dns4/`, `/dns6/` and `/dns/` addresses resolve with the system's
        // resolver (and hosts file), so peers can be named by host; without
        // a resolver configuration the node still runs on IP addresses.
        let mut swarm = if Path::new(RESOLV_CONF).exists() {
            tcp_phase
                .with_dns()
                .map_err(|e| transport_error(&format!("DNS resolver ({RESOLV_CONF}): {e}")))?
                .with_behaviour(|_| behaviour)
                .map_err(|e| transport_error(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        } else {
            tracing::warn!("no {RESOLV_CONF}: peers can be dialled by IP address only");
            tcp_phase
                .with_behaviour(|_| behaviour)
                .map_err(|e| transport_error(&e))?
                .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
                .build()
        };
        for addr in &config.external_addrs {
            swarm.add_external_address(addr.clone());
        }
        for addr in &config.listen_addrs {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                })?;
        }

        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE_LEN);
        let (event_tx, event_rx) = mpsc::channel(config.event_queue_len);
        let client = NetworkClient {
            commands: command_tx,
            counters: counters.clone(),
            local_peer_id,
            request_timeout: config.request_timeout,
        };
        let network = Network {
            swarm,
            commands: command_rx,
            events: event_tx,
            counters,
            members: MemberSet::from(config.members.clone()),
            peers: HashMap::new(),
            pending_out: HashMap::new(),
            pending_in: HashMap::new(),
            bootstrap: Bootstrap::new(
                &config.bootstrap,
                config.redial_initial,
                config.redial_max,
                Instant::now(),
            ),
            config,
            libp2p_metrics,
        };
        Ok((network, client, event_rx))
    }

    /// [`Network::new`], then spawns the loop on the current tokio runtime.
    pub fn spawn(
        keypair: Keypair,
        config: NetworkConfig,
    ) -> Result<(NetworkClient, mpsc::Receiver<NetworkEvent>, JoinHandle<()>), NetError> {
        Self::spawn_with_metrics(keypair, config, None)
    }

    /// [`Network::new_with_metrics`], then spawns the loop.
    pub fn spawn_with_metrics(
        keypair: Keypair,
        config: NetworkConfig,
        registry: Option<&mut prometheus_client::registry::Registry>,
    ) -> Result<(NetworkClient, mpsc::Receiver<NetworkEvent>, JoinHandle<()>), NetError> {
        let (network, client, events) = Network::new_with_metrics(keypair, config, registry)?;
        Ok((client, events, tokio::spawn(network.run())))
    }

    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until [`NetworkClient::shutdown`] or until every client is dropped.
    /// Connections are closed when it returns.
    pub async fn run(mut self) {
        let mut redial =
            tokio::time::interval(self.config.redial_initial.min(Duration::from_secs(1)));
        redial.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::info!(peer_id = %self.local_peer_id(), members = self.members.len(), "network started");
        let shutdown_reply = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown(reply)) => break Some(reply),
                    Some(command) => self.on_command(command),
                    None => break None,
                },
                _ = redial.tick() => self.redial_bootstrap(),
            }
        };
        // Dropping the swarm closes every connection; pending requests fail
        // with `Stopped` as their reply channels drop.
        drop(self);
        tracing::info!("network stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    /// Hands an event to the node without waiting; false if it was dropped.
    pub(crate) fn emit(&self, event: NetworkEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(event)) => {
                Counters::inc(&self.counters.events_dropped);
                tracing::warn!(
                    event = event_kind(&event),
                    "event queue to the node is full; event dropped"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn redial_bootstrap(&mut self) {
        let swarm = &self.swarm;
        let due = self
            .bootstrap
            .due(Instant::now(), |p| swarm.is_connected(p));
        for addr in due {
            if peer_of(&addr).is_some_and(|peer| !self.members.contains(&peer)) {
                tracing::debug!(%addr, "bootstrap peer is not a member; not dialling");
                continue;
            }
            tracing::debug!(%addr, "dialling bootstrap peer");
            if let Err(e) = self.dial_addr(addr.clone()) {
                tracing::debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
    }

    /// Dials `addr`, naming the peer when the address carries `/p2p/<peer>`
    /// so a non-member is refused before any packet is sent.
    pub(crate) fn dial_addr(&mut self, addr: Multiaddr) -> Result<(), DialError> {
        let opts = match peer_of(&addr) {
            Some(peer) => libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .build(),
            None => addr.into(),
        };
        self.swarm.dial(opts)
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<QwardBehaviourEvent>) {
        if let Some(m) = &self.libp2p_metrics {
            record_libp2p(m, &event);
        }
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.emit(NetworkEvent::ListenAddr(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if !self.members.contains(&peer_id) {
                    // The allow-list refuses these first; this is defence in depth.
                    Counters::inc(&self.counters.connections_denied);
                    tracing::warn!(peer = %peer_id, "connection from a non-member; closing");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let addr = endpoint.get_remote_address().clone();
                if endpoint.is_dialer() {
                    self.bootstrap.learn(&addr, peer_id);
                }
                let state = self.peers.entry(peer_id).or_default();
                if !state.connected_addrs.contains(&addr) {
                    state.connected_addrs.push(addr);
                }
                if num_established.get() == 1 {
                    Counters::set(&self.counters.peers_connected, self.peers.len());
                    tracing::info!(peer = %peer_id, "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                if num_established == 0 {
                    if self.peers.remove(&peer_id).is_some() {
                        Counters::set(&self.counters.peers_connected, self.peers.len());
                        tracing::info!(peer = %peer_id, cause = ?cause, "peer disconnected");
                        self.emit(NetworkEvent::PeerDisconnected(peer_id));
                    }
                } else if let Some(state) = self.peers.get_mut(&peer_id) {
                    let addr = endpoint.get_remote_address();
                    state.connected_addrs.retain(|a| a != addr);
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => {
                if let ListenError::Denied { cause } = &error {
                    Counters::inc(&self.counters.connections_denied);
                    tracing::info!(peer = ?peer_id, from = %send_back_addr, %cause, "refused inbound connection");
                } else {
                    tracing::debug!(peer = ?peer_id, from = %send_back_addr, %error, "inbound connection failed");
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if let DialError::Denied { cause } = &error {
                    Counters::inc(&self.counters.connections_denied);
                    tracing::info!(peer = ?peer_id, %cause, "refused outbound connection");
                } else {
                    tracing::debug!(peer = ?peer_id, %error, "outbound connection failed");
                }
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: QwardBehaviourEvent) {
        match event {
            QwardBehaviourEvent::Allow(never) | QwardBehaviourEvent::Limits(never) => {
                match never {}
            }
            QwardBehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                if !self.members.contains(&peer_id) {
                    return;
                }
                if info.protocol_version != IDENTIFY_PROTOCOL {
                    tracing::warn!(peer = %peer_id, version = %info.protocol_version, "peer speaks another qward identify version");
                }
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .take(MAX_ADDRS_PER_PEER)
                    .collect();
                for addr in &addrs {
                    self.swarm.add_peer_address(peer_id, addr.clone());
                }
                if let Some(state) = self.peers.get_mut(&peer_id) {
                    state.announced_addrs = addrs;
                }
            }
            QwardBehaviourEvent::Identify(_) => {}
            QwardBehaviourEvent::Ping(ping::Event { peer, result, .. }) => match result {
                Ok(rtt) => {
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.rtt = Some(rtt);
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "ping failed"),
            },
            QwardBehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message);
            }
            QwardBehaviourEvent::Gossipsub(other) => tracing::trace!(event = ?other, "gossipsub"),
            QwardBehaviourEvent::Sync(e) => self.on_request_response(RequestProtocol::Sync, e),
            QwardBehaviourEvent::Qkd(e) => self.on_request_response(RequestProtocol::Qkd, e),
            QwardBehaviourEvent::Msg(e) => self.on_request_response(RequestProtocol::Msg, e),
        }
    }

    fn on_gossip(
        &mut self,
        propagation_source: PeerId,
        message_id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        Counters::add(&self.counters.bytes_in, message.data.len());
        let limit = self.config.limits.gossip_bytes;
        let refusal = match message.source {
            None => Some("unsigned message"),
            Some(author) if !self.members.contains(&author) => Some("author is not a member"),
            Some(_) if !self.members.contains(&propagation_source) => {
                Some("relayer is not a member")
            }
            Some(_) if message.data.len() > limit => Some("message exceeds the gossip size limit"),
            Some(_) => None,
        };
        let (Some(source), None) = (message.source, refusal) else {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Reject,
                );
            Counters::inc(&self.counters.gossip_rejected);
            if refusal.is_some_and(|r| r.contains("not a member")) {
                Counters::inc(&self.counters.gossip_rejected_non_member);
            }
            tracing::warn!(from = %propagation_source, author = ?message.source, topic = %message.topic,
                reason = refusal.unwrap_or("unsigned message"), "rejected gossip");
            return;
        };
        Counters::inc(&self.counters.gossip_received);
        let delivered = self.emit(NetworkEvent::Gossip {
            topic: message.topic.to_string(),
            source,
            propagation_source,
            message_id: message_id.clone(),
            data: message.data,
        });
        if !delivered {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Ignore,
                );
            Counters::inc(&self.counters.gossip_ignored);
        }
    }

    fn on_request_response(
        &mut self,
        protocol: RequestProtocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let id = InboundRequestId {
                    protocol,
                    inner: request_id,
                };
                if !self.members.contains(&peer) {
                    Counters::inc(&self.counters.requests_in_rejected);
                    tracing::warn!(%peer, %protocol, "request from a non-member dropped");
                    return;
                }
                if self.pending_in.len() >= self.config.max_pending_inbound_requests {
                    Counters::inc(&self.counters.requests_in_rejected);
                    tracing::warn!(%peer, %protocol, "too many unanswered inbound requests; request dropped");
                    return;
                }
                Counters::inc(&self.counters.requests_in);
                Counters::add(&self.counters.bytes_in, request.len());
                self.pending_in.insert(id, channel);
                if !self.emit(NetworkEvent::InboundRequest {
                    id,
                    protocol,
                    peer,
                    data: request,
                }) {
                    self.pending_in.remove(&id);
                }
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                Counters::add(&self.counters.bytes_in, response.len());
                if let Some(reply) = self.pending_out.remove(&(protocol, request_id)) {
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                Counters::inc(&self.counters.requests_out_failed);
                tracing::debug!(%peer, %protocol, %error, "outbound request failed");
                if let Some(reply) = self.pending_out.remove(&(protocol, request_id)) {
                    let _ = reply.send(Err(NetError::RequestFailed {
                        protocol,
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.pending_in.remove(&InboundRequestId {
                    protocol,
                    inner: request_id,
                });
                match error {
                    // Our own doing (we dropped the channel); already counted.
                    InboundFailure::ResponseOmission => {}
                    InboundFailure::ConnectionClosed => {
                        tracing::debug!(%peer, %protocol, "connection closed before the response was sent");
                    }
                    error => {
                        Counters::inc(&self.counters.requests_in_rejected);
                        tracing::warn!(%peer, %protocol, %error, "inbound request rejected");
                    }
                }
            }
            Event::ResponseSent { .. } => {}
        }
    }
}

fn event_kind(event: &NetworkEvent) -> &'static str {
    match event {
        NetworkEvent::PeerConnected(_) => "peer-connected",
        NetworkEvent::PeerDisconnected(_) => "peer-disconnected",
        NetworkEvent::ListenAddr(_) => "listen-addr",
        NetworkEvent::Gossip { .. } => "gossip",
        NetworkEvent::InboundRequest { .. } => "inbound-request",
    }
}

/// Hands a swarm event, and the behaviour events libp2p's metrics know, to
/// those metrics.
fn record_libp2p(m: &libp2p::metrics::Metrics, event: &SwarmEvent<QwardBehaviourEvent>) {
    use libp2p::metrics::Recorder;
    match event {
        SwarmEvent::Behaviour(QwardBehaviourEvent::Identify(e)) => m.record(e),
        SwarmEvent::Behaviour(QwardBehaviourEvent::Ping(e)) => m.record(e),
        SwarmEvent::Behaviour(QwardBehaviourEvent::Gossipsub(e)) => m.record(e),
        _ => {}
    }
    m.record(event);
}
