//! Multi-swarm tests of the network layer: real swarms on 127.0.0.1 with ephemeral ports.
//!
//! Every wait is bounded by [`WAIT`]; a test that times out fails with the
//! thing it was waiting for. Nodes are stopped (shutdown, task joined) at the end.

mod gossip;
mod permission;
mod request;

use std::collections::HashSet;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol as AddrPart;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    Multiaddr, Network, NetworkClient, NetworkConfig, NetworkEvent, NetworkMetrics, PeerId,
    PeerInfo, keypair_from_seed,
};

/// The bound on any single wait in these tests.
pub(super) const WAIT: Duration = Duration::from_secs(20);

pub(super) fn keypair(i: u8) -> Keypair {
    keypair_from_seed(&[i; 32]).expect("any 32 bytes are an ed25519 seed")
}

pub(super) fn peer(i: u8) -> PeerId {
    keypair(i).public().to_peer_id()
}

pub(super) fn members(ids: &[u8]) -> HashSet<PeerId> {
    ids.iter().map(|i| peer(*i)).collect()
}

/// Fast timers, ephemeral port, the given members.
pub(super) fn test_config(member_ids: &[u8]) -> NetworkConfig {
    NetworkConfig {
        listen_addrs: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
        external_addrs: Vec::new(),
        members: members(member_ids),
        gossip_heartbeat: Duration::from_millis(100),
        ping_interval: Duration::from_millis(500),
        redial_initial: Duration::from_millis(200),
        redial_max: Duration::from_secs(1),
        request_timeout: Duration::from_secs(5),
        ..NetworkConfig::default()
    }
}

/// A running network task with its client and event receiver.
pub(super) struct TestNode {
    pub(super) client: NetworkClient,
    pub(super) events: mpsc::Receiver<NetworkEvent>,
    /// Listen address including `/p2p/<peer id>`.
    pub(super) addr: Multiaddr,
    task: JoinHandle<()>,
}

impl TestNode {
    pub(super) async fn start(id: u8, config: NetworkConfig) -> TestNode {
        let (client, mut events, task) =
            Network::spawn(keypair(id), config).expect("network starts");
        let deadline = Instant::now() + WAIT;
        let addr = loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(NetworkEvent::ListenAddr(addr))) => break addr,
                Ok(Some(_)) => continue,
                other => panic!("node {id} reported no listen address: {other:?}"),
            }
        };
        TestNode {
            client,
            events,
            addr: addr.with(AddrPart::P2p(peer(id))),
            task,
        }
    }

    /// The first event for which `pick` returns `Some`, skipping others; `None`
    /// if there is none within [`WAIT`].
    pub(super) async fn wait_for<T>(
        &mut self,
        mut pick: impl FnMut(&NetworkEvent) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(t) = pick(&event) {
                        return Some(t);
                    }
                }
                _ => return None,
            }
        }
    }

    /// The next gossip message: (topic, source, propagation source, message id, data).
    pub(super) async fn next_gossip(&mut self) -> Option<Gossip> {
        self.wait_for(|e| match e {
            NetworkEvent::Gossip {
                topic,
                source,
                propagation_source,
                message_id,
                data,
            } => Some(Gossip {
                topic: topic.clone(),
                source: *source,
                propagation_source: *propagation_source,
                message_id: message_id.clone(),
                data: data.clone(),
            }),
            _ => None,
        })
        .await
    }

    /// Events already queued, without waiting.
    pub(super) fn queued_events(&mut self) -> Vec<NetworkEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    pub(super) async fn stop(self) {
        self.client.shutdown().await.expect("shutdown");
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("network task stops")
            .expect("network task did not panic");
    }
}

#[derive(Debug, Clone)]
pub(super) struct Gossip {
    pub(super) topic: String,
    pub(super) source: PeerId,
    pub(super) propagation_source: PeerId,
    pub(super) message_id: super::MessageId,
    pub(super) data: Vec<u8>,
}

/// Polls the counters every 50 ms until `cond` holds; false if it never does within [`WAIT`].
pub(super) async fn metrics_eventually(
    client: &NetworkClient,
    cond: impl Fn(&NetworkMetrics) -> bool,
) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond(&client.metrics()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Polls the peer list every 50 ms until `cond` holds; false if it never does within [`WAIT`].
pub(super) async fn peers_eventually(
    client: &NetworkClient,
    cond: impl Fn(&[PeerInfo]) -> bool,
) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if client.peers().await.is_ok_and(|p| cond(&p)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// `a` dials `b`; returns once both report the connection.
pub(super) async fn connect(a: &mut TestNode, b: &mut TestNode) {
    let (pa, pb) = (a.client.local_peer_id(), b.client.local_peer_id());
    a.client.dial(b.addr.clone()).await.expect("dial starts");
    assert!(
        a.wait_for(|e| matches!(e, NetworkEvent::PeerConnected(p) if *p == pb).then_some(()))
            .await
            .is_some(),
        "dialer saw the connection"
    );
    assert!(
        b.wait_for(|e| matches!(e, NetworkEvent::PeerConnected(p) if *p == pa).then_some(()))
            .await
            .is_some(),
        "listener saw the connection"
    );
}

/// Waits until `node` sees every peer of `expected` subscribed to `topic`
/// (and, if `in_mesh`, in its mesh for it).
pub(super) async fn wait_topic(node: &TestNode, topic: &str, expected: &[PeerId], in_mesh: bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(t) = node.client.topic_peers(topic).await {
            let set = if in_mesh { &t.mesh } else { &t.subscribed };
            if expected.iter().all(|p| set.contains(p)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("peers {expected:?} never joined topic {topic} (mesh: {in_mesh})");
}
