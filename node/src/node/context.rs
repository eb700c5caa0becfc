//! The state a running node shares between its tasks: identity, config,
//! storage, the cached chain view, the mempool, the network client, events and
//! metrics.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Instant;

use qward_core::api::Event;
use qward_core::chain::{ChainState, ChainStore, ChainTip, Genesis};
use qward_core::identity::{AccountId, Identity};
use tokio::sync::{broadcast, mpsc, watch};

use super::driver::DriverInput;
use super::mempool::Mempool;
use crate::config::Config;
use crate::contacts::Contacts;
use crate::datadir::DataDir;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{Multiaddr, NetworkClient, PeerId};

/// The chain as of the last imported block, cached for readers.
#[derive(Debug, Clone)]
pub struct ChainView {
    pub genesis: Genesis,
    pub state: ChainState,
    pub tip: ChainTip,
}

impl ChainView {
    /// Reads the view from the store.
    pub fn load(store: &RocksStore) -> anyhow::Result<Self> {
        let chain = ChainStore::new(store);
        Ok(ChainView {
            genesis: chain.genesis()?,
            state: chain.state()?,
            tip: chain.tip()?,
        })
    }
}

/// Everything the node's tasks share.
#[derive(Debug)]
pub struct NodeContext {
    pub identity: Identity,
    pub account: AccountId,
    pub peer_id: PeerId,
    pub config: Config,
    pub datadir: DataDir,
    pub store: Arc<RocksStore>,
    pub view: RwLock<ChainView>,
    pub mempool: Mutex<Mempool>,
    pub net: NetworkClient,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub contacts: Contacts,
    pub started: Instant,
    pub driver: mpsc::Sender<DriverInput>,
    /// Wakes the sync task at once: consensus saw the network ahead of this
    /// node, or a decided block failed to import.
    pub sync_wake: tokio::sync::Notify,
    pub shutdown: watch::Sender<bool>,
    pub listen: RwLock<Vec<Multiaddr>>,
    /// Agreed keys (RocksDB-backed).
    pub keys: super::keys::KeyStore,
    /// Key-agreement sessions and link settings.
    pub agree: super::agree::Agreements,
    /// The outbox and inbox index, and the delivery task's wake-up.
    pub messages: super::messages::Messages,
}

impl NodeContext {
    /// A read guard on the chain view (never held across an await).
    pub fn view(&self) -> RwLockReadGuard<'_, ChainView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the chain view after an import and prunes the mempool
    /// against it, as one step for every task that reads the view and then
    /// locks the mempool. Pruned first and swapped later, a submitter could
    /// read the old view's next nonce beside the pruned mempool, and sign a
    /// transaction with a nonce the new block had just used: accepted,
    /// answered with an id, then silently pruned.
    ///
    /// **Lock order:** the view, then the mempool; never the reverse.
    pub fn advance_view(&self, view: ChainView) {
        let mut current = self.view.write().unwrap_or_else(|p| p.into_inner());
        self.mempool()
            .prune(&view.state, view.tip.height + 1, view.tip.time_ms + 1);
        *current = view;
    }

    /// The mempool. Take the view first if both are needed (see [`Self::advance_view`]).
    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn chain_id(&self) -> u64 {
        self.view().state.chain_id
    }

    /// The gossip topic of consensus messages.
    pub fn consensus_topic(&self) -> String {
        format!("qward/{}/consensus", self.chain_id())
    }

    /// The gossip topic of transactions.
    pub fn tx_topic(&self) -> String {
        format!("qward/{}/tx", self.chain_id())
    }

    /// The gossip topic of members' address announcements.
    pub fn addrs_topic(&self) -> String {
        format!("qward/{}/addrs", self.chain_id())
    }

    /// Sends an event to API subscribers (none listening is fine).
    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Asks every task to stop.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared handle.
pub type Ctx = Arc<NodeContext>;
