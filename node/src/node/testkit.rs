//! An in-process node for the unit tests of the node's tasks: a real
//! RocksDB in a temporary folder initialised from a test chain's genesis,
//! the real pool task, and a fake network whose commands arrive on a
//! channel for the test to read (no swarm, no socket, no process).

use std::sync::Arc;

use qward_core::chain::ChainStore;
use qward_core::chain::testkit::TestChain;
use qward_core::identity::{Identity, Role};
use tokio::sync::{broadcast, mpsc, watch};

use super::context::Ctx;
use super::driver::DriverInput;
use super::keys;
use super::view::ChainView;
use crate::config::Config;
use crate::contacts::Contacts;
use crate::datadir::DataDir;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{Command, NetworkClient, PeerId, PeerInfo, RequestProtocol};

/// What the node asked of the fake network.
#[derive(Debug)]
pub enum Seen {
    Published(String, Vec<u8>),
    Verdict(crate::net::GossipValidation),
    Addresses(PeerId, Vec<crate::net::Multiaddr>),
    Other,
}

/// One node of a test chain, as the node's tasks see it.
pub struct TestNode {
    pub ctx: Ctx,
    /// The test chain the node's genesis comes from (this node holds one of its keys).
    pub chain: TestChain,
    /// What the node asked of the network.
    pub network: mpsc::Receiver<Command>,
    /// The view sender the driver would own.
    pub views: Option<watch::Sender<Arc<ChainView>>>,
    /// The consensus progress sender the driver would own.
    pub consensus: Option<watch::Sender<super::progress::ConsensusProgress>>,
    /// What was sent to the driver.
    pub driver: mpsc::Receiver<DriverInput>,
    pub driver_tx: mpsc::Sender<DriverInput>,
    /// The messaging index and its notes the delivery task would own.
    pub index: Option<super::messages::Index>,
    pub notes: Option<mpsc::UnboundedReceiver<super::messages::Note>>,
    /// Where the network would say this node listens.
    pub listen: watch::Sender<Vec<crate::net::Multiaddr>>,
    /// The node's data key (what wraps every key in its database).
    pub data_key: qward_core::vault::DataKey,
    dir: tempfile::TempDir,
}

fn copy_of(identity: &Identity) -> Identity {
    Identity::from_secret_bytes(identity.secret_bytes().as_slice())
        .unwrap_or_else(|e| unreachable!("a test key copies: {e}"))
}

/// Hospital `me` (a validator) of a test chain of `hospitals` hospitals.
pub fn hospital(hospitals: usize, me: usize) -> TestNode {
    let chain = TestChain::new(11, hospitals);
    let identity = copy_of(&chain.keys[me]);
    member(
        chain,
        identity,
        Role::Hospital,
        &format!("hospital-{}", me + 1),
    )
}

/// The patient of a test chain of `hospitals` hospitals.
pub fn patient(hospitals: usize) -> TestNode {
    let chain = TestChain::new(11, hospitals);
    let identity = copy_of(&chain.patient);
    member(chain, identity, Role::Patient, "patient-1")
}

fn member(chain: TestChain, identity: Identity, role: Role, name: &str) -> TestNode {
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("a temp dir: {e}"));
    let store = RocksStore::create(&dir.path().join("db"))
        .unwrap_or_else(|e| unreachable!("a test database: {e}"));
    ChainStore::new(&store)
        .init(&chain.genesis)
        .unwrap_or_else(|e| unreachable!("the test genesis: {e}"));
    let store = Arc::new(store);
    let account = identity.account();
    let loaded = ChainView::load(&store).unwrap_or_else(|e| unreachable!("a view: {e}"));
    let peer_id = crate::net::peer_id_from_account(&account)
        .unwrap_or_else(|e| unreachable!("a peer id: {e}"));
    let (net, network) = NetworkClient::detached(peer_id);
    let (events, _) = broadcast::channel(256);
    let mut config = Config::new(name, role);
    // Enough for a key on the default link, and quick in a debug build.
    config.key_agreement.qubits = 100_000;
    let data_key = qward_core::vault::DataKey::random(&mut rand::rng());
    let keys = keys::KeyStore::load(&store, config.key_agreement.rotation(), data_key.clone())
        .unwrap_or_else(|e| unreachable!("a key store: {e}"));
    let (driver_tx, driver) = mpsc::channel(1024);
    let (shutdown, _) = watch::channel(false);
    let wired = super::wire(super::Parts {
        identity,
        config,
        datadir: DataDir::new(dir.path()),
        store,
        view: loaded,
        keys,
        net,
        contacts: Contacts::default(),
        events,
        metrics: Metrics::new(),
        driver: driver_tx.clone(),
        shutdown,
    })
    .unwrap_or_else(|e| unreachable!("a wired node: {e}"));
    TestNode {
        ctx: wired.ctx,
        chain,
        network,
        views: Some(wired.view_tx),
        consensus: Some(wired.consensus_tx),
        index: Some(wired.index),
        notes: Some(wired.notes),
        listen: wired.listen_tx,
        driver,
        driver_tx,
        data_key,
        dir,
    }
}

impl TestNode {
    /// The node's data directory (its database is `db/` inside).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl TestNode {
    /// Reports what the node asks of the network, with no peer to reach (a
    /// request fails as an unreachable peer's would).
    pub fn capture_network(&mut self) -> mpsc::UnboundedReceiver<Seen> {
        self.connect(Vec::new())
    }
}

impl TestNode {
    /// This node as another test node's requests reach it: its key
    /// agreement, its inbox and its sync server.
    pub fn reachable(&self) -> Ctx {
        self.ctx.clone()
    }

    /// Carries this node's requests to `peers` (answering from their tasks,
    /// as `/qward/qkd/1`, `/qward/msg/1` and `/qward/sync/1` would), lists
    /// them as its connected peers, and reports everything else it asks of
    /// the network. A request to a peer not listed fails as an unreachable
    /// peer's would.
    pub fn connect(&mut self, peers: Vec<Ctx>) -> mpsc::UnboundedReceiver<Seen> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (_, placeholder) = mpsc::channel(1);
        let mut network = std::mem::replace(&mut self.network, placeholder);
        let me = self.ctx.peer_id;
        tokio::spawn(async move {
            while let Some(c) = network.recv().await {
                let seen = match c {
                    Command::Request(protocol, to, data, reply) => {
                        let Some(peer) = peers.iter().find(|p| p.peer_id == to).cloned() else {
                            drop(reply);
                            continue;
                        };
                        tokio::spawn(async move {
                            let _ = reply.send(Ok(answer(&peer, protocol, me, data).await));
                        });
                        continue;
                    }
                    Command::Peers(reply) => {
                        let _ = reply.send(
                            peers
                                .iter()
                                .map(|p| PeerInfo {
                                    peer_id: p.peer_id,
                                    addrs: Vec::new(),
                                    rtt_ms: None,
                                    gossip_score: None,
                                })
                                .collect(),
                        );
                        continue;
                    }
                    Command::Publish(topic, data, _) => Seen::Published(topic, data),
                    Command::ReportValidation(_, _, verdict, _) => Seen::Verdict(verdict),
                    Command::AddPeerAddresses(peer, addrs, _) => Seen::Addresses(peer, addrs),
                    _ => Seen::Other,
                };
                let _ = tx.send(seen);
            }
        });
        rx
    }
}

/// What `node` answers a request from `from`.
async fn answer(node: &Ctx, protocol: RequestProtocol, from: PeerId, data: Vec<u8>) -> Vec<u8> {
    match protocol {
        RequestProtocol::Sync => super::sync::serve(node, &data),
        _ => super::peer_protocols::serve(node, protocol, from, data).await,
    }
}
