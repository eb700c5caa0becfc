//! What a running node's tasks share: identity, config, storage, the chain
//! view's receiver, the transaction pool's handle, the network client,
//! events and metrics.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use qward_core::api::Event;
use qward_core::identity::{AccountId, Identity};
use tokio::sync::{broadcast, mpsc, watch};

use super::driver_input::DriverInput;
use super::pool::PoolHandle;
use super::view::{ChainView, ViewReceiver};
use crate::config::Config;
use crate::contacts::Contacts;
use crate::datadir::DataDir;
use crate::db::RocksStore;
use crate::metrics::Metrics;
use crate::net::{Multiaddr, NetworkClient, PeerId};

/// Everything the node's tasks share.
#[derive(Debug)]
pub struct NodeContext {
    pub identity: Identity,
    pub account: AccountId,
    pub peer_id: PeerId,
    pub config: Config,
    pub datadir: DataDir,
    pub store: Arc<RocksStore>,
    /// The chain view, published by the driver after every import.
    pub views: ViewReceiver,
    /// The transaction pool task.
    pub pool: PoolHandle,
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
    pub agree: super::agree_state::Agreements,
    /// The outbox and inbox index, and the delivery task's wake-up.
    pub messages: super::messages::Messages,
    /// Another process running with this node's key, once seen.
    pub twin: Arc<super::twin::TwinAlarm>,
    /// When this process started, in unix milliseconds.
    pub started_ms: u64,
}

impl NodeContext {
    /// The chain as of the last import: a snapshot, never a lock.
    pub fn view(&self) -> Arc<ChainView> {
        self.views.borrow().clone()
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

/// Shared handle.
pub type Ctx = Arc<NodeContext>;
