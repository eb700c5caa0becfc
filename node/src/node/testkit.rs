//! An in-process node for the unit tests of the node's tasks: a real
//! RocksDB in a temporary folder initialised from a test chain's genesis,
//! the real pool task, and a fake network whose commands arrive on a
//! channel for the test to read (no swarm, no socket, no process).

use std::sync::{Arc, RwLock};
use std::time::Instant;

use qward_core::chain::ChainStore;
use qward_core::chain::testkit::TestChain;
use qward_core::identity::{Identity, Role};
use tokio::sync::{broadcast, mpsc, watch};

use super::context::{Ctx, NodeContext};
use super::driver::DriverInput;
use super::view::ChainView;
use super::{keys, mempool, messages, pool, twin, view};
use crate::config::Config;
use crate::contacts::Contacts;
use crate::datadir::DataDir;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{Command, NetworkClient};

/// What the node asked of the fake network.
#[derive(Debug)]
pub enum Seen {
    Published(String, Vec<u8>),
    Verdict(crate::net::GossipValidation),
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
    /// What was sent to the driver.
    pub driver: mpsc::Receiver<DriverInput>,
    pub driver_tx: mpsc::Sender<DriverInput>,
    _dir: tempfile::TempDir,
}

fn copy_of(identity: &Identity) -> Identity {
    Identity::from_secret_bytes(identity.secret_bytes().as_slice())
        .unwrap_or_else(|e| unreachable!("a test key copies: {e}"))
}

/// Hospital `me` (a validator) of a test chain of `hospitals` hospitals.
pub fn hospital(hospitals: usize, me: usize) -> TestNode {
    let chain = TestChain::new(11, hospitals);
    let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("a temp dir: {e}"));
    let store = RocksStore::create(&dir.path().join("db"))
        .unwrap_or_else(|e| unreachable!("a test database: {e}"));
    ChainStore::new(&store)
        .init(&chain.genesis)
        .unwrap_or_else(|e| unreachable!("the test genesis: {e}"));
    let store = Arc::new(store);
    let identity = copy_of(&chain.keys[me]);
    let account = identity.account();
    let loaded = ChainView::load(&store).unwrap_or_else(|e| unreachable!("a view: {e}"));
    let (views_tx, views) = view::channel(loaded);
    let peer_id = crate::net::peer_id_from_account(&account)
        .unwrap_or_else(|e| unreachable!("a peer id: {e}"));
    let (net, network) = NetworkClient::detached(peer_id);
    let (events, _) = broadcast::channel(256);
    let metrics = Metrics::new();
    let twin = Arc::new(twin::TwinAlarm::default());
    let (pool, _task) = pool::spawn(
        mempool::Mempool::new(),
        copy_of(&identity),
        twin.clone(),
        views.clone(),
        net.clone(),
        events.clone(),
        metrics.clone(),
    );
    let config = Config::new("hospital-1", Role::Hospital);
    let keys = keys::KeyStore::load(&store, config.key_agreement.rotation())
        .unwrap_or_else(|e| unreachable!("a key store: {e}"));
    let messages =
        messages::Messages::load(&store).unwrap_or_else(|e| unreachable!("messages: {e}"));
    let (driver_tx, driver) = mpsc::channel(1024);
    let (shutdown, _) = watch::channel(false);
    let ctx = Arc::new(NodeContext {
        identity,
        account,
        peer_id,
        config,
        datadir: DataDir::new(dir.path()),
        store,
        views,
        pool,
        net,
        events,
        metrics,
        contacts: Contacts::default(),
        started: Instant::now(),
        driver: driver_tx.clone(),
        sync_wake: tokio::sync::Notify::new(),
        shutdown,
        listen: RwLock::new(Vec::new()),
        keys,
        agree: super::agree_state::Agreements::default(),
        messages,
        twin,
        started_ms: super::clock::now_ms(),
    });
    TestNode {
        ctx,
        chain,
        network,
        views: Some(views_tx),
        driver,
        driver_tx,
        _dir: dir,
    }
}

impl TestNode {
    /// Forwards what the node asks of the network to the returned channel,
    /// answering nothing (a dropped reply reads as a stopped network, which
    /// every task tolerates).
    pub fn capture_network(&mut self) -> mpsc::UnboundedReceiver<Seen> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (_, placeholder) = mpsc::channel(1);
        let mut network = std::mem::replace(&mut self.network, placeholder);
        tokio::spawn(async move {
            while let Some(c) = network.recv().await {
                let seen = match c {
                    Command::Publish(topic, data, _) => Seen::Published(topic, data),
                    Command::ReportValidation(_, _, verdict, _) => Seen::Verdict(verdict),
                    _ => Seen::Other,
                };
                let _ = tx.send(seen);
            }
        });
        rx
    }
}
