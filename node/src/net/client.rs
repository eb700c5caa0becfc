//! `NetworkClient` (cloneable handle: commands with a oneshot reply) and the `NetworkEvent`s it pairs with.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use libp2p::gossipsub::MessageId;
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::metrics::Counters;
use super::{NetError, NetworkMetrics, RequestProtocol};

/// Identifies an inbound request until the node answers it with
/// [`NetworkClient::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundRequestId {
    pub(crate) protocol: RequestProtocol,
    pub(crate) inner: request_response::InboundRequestId,
}

impl InboundRequestId {
    pub fn protocol(&self) -> RequestProtocol {
        self.protocol
    }
}

/// The node's verdict on a gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipValidation {
    /// Valid: deliver and forward to the mesh.
    Accept,
    /// Invalid: drop, do not forward, and penalise the peer that sent it.
    Reject,
    /// Not useful (stale, duplicate at the application level): drop without penalty.
    Ignore,
}

/// What the network tells the node.
#[derive(Debug, Clone)]
pub enum NetworkEvent {
    /// A member connected (first connection to it).
    PeerConnected(PeerId),
    /// A member's last connection closed (or it was removed and disconnected).
    PeerDisconnected(PeerId),
    /// The swarm listens on a new address.
    ListenAddr(Multiaddr),
    /// A gossip message from a member, awaiting [`NetworkClient::report_validation`].
    /// It is forwarded to other peers only once accepted.
    Gossip {
        topic: String,
        /// The member that authored (and signed) the message.
        source: PeerId,
        /// The member that relayed it to us; pass it back in `report_validation`.
        propagation_source: PeerId,
        message_id: MessageId,
        data: Vec<u8>,
    },
    /// A request from a member, to be answered with [`NetworkClient::respond`]
    /// before the request timeout.
    InboundRequest {
        id: InboundRequestId,
        protocol: RequestProtocol,
        peer: PeerId,
        data: Vec<u8>,
    },
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// The addresses it is connected on and those it announced (identify).
    pub addrs: Vec<Multiaddr>,
    /// The last ping round trip, in milliseconds.
    pub rtt_ms: Option<u64>,
    /// Its gossipsub score as seen by this node (negative after rejected messages).
    pub gossip_score: Option<f64>,
}

/// Who is on a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPeers {
    /// Connected peers subscribed to the topic.
    pub subscribed: Vec<PeerId>,
    /// Of those, the ones in this node's mesh for the topic (forwarding targets).
    pub mesh: Vec<PeerId>,
}

type Reply<T> = oneshot::Sender<T>;

/// The commands the event loop executes; each carries its reply channel.
#[derive(Debug)]
pub(crate) enum Command {
    ListenOn(Multiaddr, Reply<Result<(), NetError>>),
    ListenAddrs(Reply<Vec<Multiaddr>>),
    Dial(Multiaddr, Reply<Result<(), NetError>>),
    Subscribe(String, Reply<Result<bool, NetError>>),
    Unsubscribe(String, Reply<bool>),
    Publish(String, Vec<u8>, Reply<Result<MessageId, NetError>>),
    ReportValidation(MessageId, PeerId, GossipValidation, Reply<bool>),
    Request(
        RequestProtocol,
        PeerId,
        Vec<u8>,
        Reply<Result<Vec<u8>, NetError>>,
    ),
    Respond(InboundRequestId, Vec<u8>, Reply<Result<(), NetError>>),
    Peers(Reply<Vec<PeerInfo>>),
    TopicPeers(String, Reply<TopicPeers>),
    SetMembers(HashSet<PeerId>, Reply<()>),
    AddPeerAddresses(PeerId, Vec<Multiaddr>, Reply<()>),
    Shutdown(Reply<()>),
}

/// The node's handle on the network task. Cheap to clone; every method waits
/// for the event loop's answer. After shutdown every method returns
/// [`NetError::Stopped`].
#[derive(Debug, Clone)]
pub struct NetworkClient {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) request_timeout: Duration,
}

impl NetworkClient {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// This node's peer id (its chain account's key).
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// A snapshot of the counters, read without asking the event loop.
    pub fn metrics(&self) -> NetworkMetrics {
        self.counters.snapshot()
    }

    /// Starts listening on another address (the actual one arrives as [`NetworkEvent::ListenAddr`]).
    pub async fn listen_on(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::ListenOn(addr, r)).await?
    }

    /// The addresses the swarm listens on now.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(Command::ListenAddrs).await
    }

    /// Dials an address (refused at once if it names a non-member peer). The
    /// connection outcome arrives as [`NetworkEvent::PeerConnected`].
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|r| Command::Dial(addr, r)).await?
    }

    /// Subscribes to a topic (any string, e.g. `qward/<chain-id>/consensus`).
    /// Returns false if already subscribed.
    pub async fn subscribe(&self, topic: &str) -> Result<bool, NetError> {
        let topic = topic.to_owned();
        self.call(|r| Command::Subscribe(topic, r)).await?
    }

    /// Leaves a topic. Returns false if not subscribed.
    pub async fn unsubscribe(&self, topic: &str) -> Result<bool, NetError> {
        let topic = topic.to_owned();
        self.call(|r| Command::Unsubscribe(topic, r)).await
    }

    /// Publishes `data` (signed by this node) on `topic`.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<MessageId, NetError> {
        let topic = topic.to_owned();
        self.call(|r| Command::Publish(topic, data, r)).await?
    }

    /// The node's verdict on a [`NetworkEvent::Gossip`]. Returns false if the
    /// message was no longer pending (already reported, or expired from the cache).
    pub async fn report_validation(
        &self,
        message_id: MessageId,
        propagation_source: PeerId,
        verdict: GossipValidation,
    ) -> Result<bool, NetError> {
        self.call(|r| Command::ReportValidation(message_id, propagation_source, verdict, r))
            .await
    }

    /// Sends a request to a member and waits for its response (dialling it if
    /// needed; fails after the request timeout).
    pub async fn request(
        &self,
        protocol: RequestProtocol,
        peer: PeerId,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request(protocol, peer, data, tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        // The event loop always answers (response, failure or timeout from
        // request-response); the outer bound only guards against a stalled loop.
        match tokio::time::timeout(self.request_timeout * 2, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::RequestFailed {
                protocol,
                peer,
                reason: "no answer from the network task".into(),
            }),
        }
    }

    /// Answers an inbound request.
    pub async fn respond(&self, id: InboundRequestId, data: Vec<u8>) -> Result<(), NetError> {
        self.call(|r| Command::Respond(id, data, r)).await?
    }

    /// The connected peers, with addresses, round-trip time and gossip score.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.call(Command::Peers).await
    }

    /// The peers subscribed to `topic`, and those in this node's mesh for it.
    pub async fn topic_peers(&self, topic: &str) -> Result<TopicPeers, NetError> {
        let topic = topic.to_owned();
        self.call(|r| Command::TopicPeers(topic, r)).await
    }

    /// Replaces the member set (call it whenever chain membership changes).
    /// New members may connect at once; removed ones are disconnected and blocked.
    pub async fn set_members(&self, members: HashSet<PeerId>) -> Result<(), NetError> {
        self.call(|r| Command::SetMembers(members, r)).await
    }

    /// Tells the swarm where a member listens (from its signed address
    /// announcement), so requests to it can dial it. Ignored for non-members.
    pub async fn add_peer_addresses(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    ) -> Result<(), NetError> {
        self.call(|r| Command::AddPeerAddresses(peer, addrs, r))
            .await
    }

    /// Stops the network task, closing every connection. Idempotent.
    pub async fn shutdown(&self) -> Result<(), NetError> {
        match self.call(Command::Shutdown).await {
            Ok(()) | Err(NetError::Stopped) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
impl NetworkClient {
    /// A client with no swarm behind it, for unit tests of the node's tasks:
    /// every command arrives on the returned receiver, for the test to
    /// answer or to drop (a dropped reply reads as [`NetError::Stopped`]).
    pub(crate) fn detached(local_peer_id: PeerId) -> (Self, mpsc::Receiver<Command>) {
        let (commands, rx) = mpsc::channel(1024);
        let client = NetworkClient {
            commands,
            counters: Arc::default(),
            local_peer_id,
            request_timeout: Duration::from_secs(1),
        };
        (client, rx)
    }
}
