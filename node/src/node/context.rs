//! What a running node's tasks take: the handles of the tasks that own
//! state (the chain view's receiver, the transaction pool, key agreement,
//! messaging, the network, where the node listens) and what is fixed at
//! start (identity, config, contacts), storage, events and metrics. No lock:
//! whatever changes has one owning task.

use std::sync::Arc;
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

/// The handles and settings the node's tasks take.
#[derive(Debug)]
pub struct NodeHandles {
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
    /// Notified by the pool when a transaction becomes a block candidate:
    /// wakes a driver that holds the next height back for want of work.
    pub tx_ready: Arc<tokio::sync::Notify>,
    pub shutdown: watch::Sender<bool>,
    /// Where this node listens, as the network reports it.
    pub listen: watch::Receiver<Vec<Multiaddr>>,
    /// Agreed keys (RocksDB-backed).
    pub keys: Arc<super::keys::KeyStore>,
    /// The key-agreement task.
    pub agree: super::agree::AgreeHandle,
    /// Sending and receiving records (the delivery task holds their index).
    pub messaging: Arc<super::messages::Messaging>,
    /// The access log's task: who read which health record.
    pub access: super::access::AccessLog,
    /// Another process running with this node's key, once seen.
    pub twin: Arc<super::twin::TwinAlarm>,
    /// The SAEs this node's ETSI GS QKD 014 KME serves (`[kme]`).
    pub kme: Option<Arc<crate::kme::KmeSettings>>,
    /// Where the driver's consensus machine is.
    pub consensus: watch::Receiver<super::progress::ConsensusProgress>,
    /// When this process started, in unix milliseconds.
    pub started_ms: u64,
}

impl NodeHandles {
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
pub type Ctx = Arc<NodeHandles>;
