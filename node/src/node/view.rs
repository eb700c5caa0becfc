//! The chain as of the last imported block: one immutable `ChainView`
//! snapshot per block, published by the consensus driver (the only task that
//! imports blocks) on a `watch` channel, and the typed event every import
//! sends. Readers hold an `Arc` of a snapshot, never a lock.

use std::sync::Arc;

use qward_core::chain::{ChainState, ChainStore, ChainTip, Genesis, Hash};
use tokio::sync::watch;

use crate::db::RocksStore;

/// The chain as of the last imported block.
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

    /// The gossip topic of consensus messages.
    pub fn consensus_topic(&self) -> String {
        format!("qward/{}/consensus", self.state.chain_id)
    }

    /// The gossip topic of transactions.
    pub fn tx_topic(&self) -> String {
        format!("qward/{}/tx", self.state.chain_id)
    }

    /// The gossip topic of members' address announcements.
    pub fn addrs_topic(&self) -> String {
        format!("qward/{}/addrs", self.state.chain_id)
    }
}

/// A block the driver imported (by consensus or by sync), sent after the
/// view that includes it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockImported {
    pub height: u64,
    pub hash: Hash,
    pub txs: usize,
}

/// The receiving side of the view channel, as every reader holds it.
pub type ViewReceiver = watch::Receiver<Arc<ChainView>>;

/// A new view channel starting at `view`.
pub fn channel(view: ChainView) -> (watch::Sender<Arc<ChainView>>, ViewReceiver) {
    watch::channel(Arc::new(view))
}
