//! The transaction pool task, the one owner of the [`Mempool`]: this node's
//! own transactions (signed here with the next free nonce), transactions
//! gossiped by peers, and queries arrive as typed commands on a cloneable
//! [`PoolHandle`], each answered on a oneshot. The chain view comes from the
//! chain task's `watch`: a new view prunes the pool before the next command
//! is answered, so a submitter never signs with a nonce that an imported
//! block has used, and no lock order exists to get wrong.

use std::sync::Arc;

use qward_core::api::Event;
use qward_core::chain::{Hash, SignedTransaction, Transaction, TxKind};
use qward_core::identity::Identity;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::clock::now_ms;
use super::mempool::{Mempool, MempoolError};
use super::twin::TwinAlarm;
use super::view::ChainView;
use crate::metrics::Metrics;
use crate::net::NetworkClient;

/// Commands queued for the pool task at most; senders wait beyond that.
const COMMAND_QUEUE: usize = 4096;

/// Why this node's own transaction was not submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the chain would refuse this transaction: {0}")]
    Refused(String),
    #[error(transparent)]
    Pool(#[from] MempoolError),
    #[error("the node is stopping")]
    Stopped,
    #[error(
        "this node's key runs in another process ({0}): it signs nothing until it is restarted"
    )]
    KeyTwin(String),
}

/// A submitted transaction of this node's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    pub id: Hash,
    pub nonce: u64,
}

enum Command {
    Submit {
        kind: TxKind,
        reply: oneshot::Sender<Result<(Submitted, SignedTransaction), SubmitError>>,
    },
    Offer {
        tx: Box<SignedTransaction>,
        reply: oneshot::Sender<Result<Hash, MempoolError>>,
    },
    Contains {
        id: Hash,
        reply: oneshot::Sender<bool>,
    },
    Candidates {
        max: usize,
        reply: oneshot::Sender<Vec<SignedTransaction>>,
    },
    Len {
        reply: oneshot::Sender<usize>,
    },
}

/// The node's handle on the pool task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PoolHandle {
    commands: mpsc::Sender<Command>,
    net: NetworkClient,
    tx_topic: String,
    events: broadcast::Sender<Event>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Submit { .. } => "Submit",
            Command::Offer { .. } => "Offer",
            Command::Contains { .. } => "Contains",
            Command::Candidates { .. } => "Candidates",
            Command::Len { .. } => "Len",
        })
    }
}

impl PoolHandle {
    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Signs a transaction of this node's own with its next free nonce, adds
    /// it to the pool (refusing at once what the chain's rules would refuse)
    /// and gossips it.
    pub async fn submit(&self, kind: TxKind) -> Result<Submitted, SubmitError> {
        let signed = self.prepare(kind).await?;
        self.publish(&signed).await;
        Ok(Submitted {
            id: signed.id(),
            nonce: signed.tx.nonce,
        })
    }

    /// [`Self::submit`] without the gossip: the signed transaction is in
    /// this node's pool only, for a caller that must persist it before it
    /// leaves the node, then calls [`Self::publish`].
    pub async fn prepare(&self, kind: TxKind) -> Result<SignedTransaction, SubmitError> {
        let (_, signed) = self
            .call(|reply| Command::Submit { kind, reply })
            .await
            .ok_or(SubmitError::Stopped)??;
        Ok(signed)
    }

    /// Gossips a transaction of this node's own (again, after a restart or
    /// when peers may have missed it; peers drop copies they hold).
    pub async fn publish(&self, signed: &SignedTransaction) {
        let id = signed.id();
        if let Err(e) = self.net.publish(&self.tx_topic, signed.encode()).await {
            tracing::debug!("transaction {} not gossiped yet: {e}", id.short());
        }
        let _ = self.events.send(Event::Transaction {
            id: id.to_hex(),
            kind: signed.tx.kind.name().to_string(),
            accepted: true,
            reason: None,
        });
    }

    /// Offers a transaction a peer gossiped.
    pub async fn offer(&self, tx: SignedTransaction) -> Result<Hash, OfferError> {
        match self
            .call(|reply| Command::Offer {
                tx: Box::new(tx),
                reply,
            })
            .await
        {
            Some(r) => r.map_err(OfferError::Pool),
            None => Err(OfferError::Stopped),
        }
    }

    /// Whether the transaction `id` is pending.
    pub async fn contains(&self, id: Hash) -> bool {
        self.call(|reply| Command::Contains { id, reply })
            .await
            .unwrap_or(false)
    }

    /// Up to `max` ready transactions for a block, in inclusion order.
    pub async fn candidates(&self, max: usize) -> Vec<SignedTransaction> {
        self.call(|reply| Command::Candidates { max, reply })
            .await
            .unwrap_or_default()
    }

    /// Transactions pending.
    pub async fn pending(&self) -> usize {
        self.call(|reply| Command::Len { reply }).await.unwrap_or(0)
    }
}

/// Why a gossiped transaction was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error(transparent)]
    Pool(MempoolError),
    #[error("the node is stopping")]
    Stopped,
}

/// The pool task's state.
struct Pool {
    mempool: Mempool,
    identity: Identity,
    /// Up once another process signs with this key: nothing is signed then.
    twin: Arc<TwinAlarm>,
    view: Arc<ChainView>,
    metrics: Arc<Metrics>,
    /// Notified when a transaction is admitted (the driver may be waiting
    /// for one to start the next height).
    tx_ready: Arc<tokio::sync::Notify>,
}

/// Where the pool's news goes: transactions gossiped on the network,
/// events for the API, counts and timings for metrics, and the driver's
/// wake-up when a transaction becomes a block candidate.
#[derive(Debug)]
pub struct PoolOutlets {
    pub net: NetworkClient,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    pub tx_ready: Arc<tokio::sync::Notify>,
}

/// Starts the pool task for `identity` (this node's key, which signs its own
/// transactions, unless `twin` is raised) over the chain views of `views`. The task ends when every
/// handle is dropped.
pub fn spawn(
    mempool: Mempool,
    identity: Identity,
    twin: Arc<TwinAlarm>,
    views: watch::Receiver<Arc<ChainView>>,
    outlets: PoolOutlets,
) -> (PoolHandle, tokio::task::JoinHandle<()>) {
    let PoolOutlets {
        net,
        events,
        metrics,
        tx_ready,
    } = outlets;
    let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
    let tx_topic = views.borrow().tx_topic();
    let pool = Pool {
        mempool,
        identity,
        twin,
        view: views.borrow().clone(),
        metrics,
        tx_ready,
    };
    let task = tokio::spawn(pool.run(rx, views));
    let handle = PoolHandle {
        commands,
        net,
        tx_topic,
        events,
    };
    (handle, task)
}

impl Pool {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut views: watch::Receiver<Arc<ChainView>>,
    ) {
        let mut views_open = true;
        loop {
            tokio::select! {
                biased;
                changed = views.changed(), if views_open => {
                    if changed.is_err() {
                        // The chain task stopped: keep answering with the last view.
                        views_open = false;
                        continue;
                    }
                    let view = views.borrow_and_update().clone();
                    self.advance(view);
                }
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    // A view published between two polls is applied before
                    // the command is answered.
                    if views_open && views.has_changed().unwrap_or(false) {
                        let view = views.borrow_and_update().clone();
                        self.advance(view);
                    }
                    self.handle(command);
                }
            }
        }
    }

    /// Prunes against a newly imported view.
    fn advance(&mut self, view: Arc<ChainView>) {
        let settled = self
            .mempool
            .prune(&view.state, view.tip.height + 1, view.tip.time_ms + 1);
        let now = now_ms();
        for arrival in settled {
            Metrics::observe_ms(&self.metrics.finality_seconds, now.saturating_sub(arrival));
        }
        self.view = view;
        self.gauge();
    }

    fn gauge(&self) {
        Metrics::set(&self.metrics.mempool_size, self.mempool.len() as u64);
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Submit { kind, reply } => {
                let result = self.submit(kind);
                if result.is_ok() {
                    Metrics::inc(&self.metrics.txs_submitted);
                    self.gauge();
                    self.tx_ready.notify_one();
                }
                let _ = reply.send(result);
            }
            Command::Offer { tx, reply } => {
                let result = self.mempool.insert(*tx, &self.view.state, now_ms());
                if result.is_ok() {
                    self.gauge();
                    self.tx_ready.notify_one();
                }
                let _ = reply.send(result);
            }
            Command::Contains { id, reply } => {
                let _ = reply.send(self.mempool.contains(&id));
            }
            Command::Candidates { max, reply } => {
                let _ = reply.send(self.mempool.candidates(max));
            }
            Command::Len { reply } => {
                let _ = reply.send(self.mempool.len());
            }
        }
    }

    fn submit(&mut self, kind: TxKind) -> Result<(Submitted, SignedTransaction), SubmitError> {
        if let Some(why) = self.twin.reason() {
            return Err(SubmitError::KeyTwin(why));
        }
        let view = &self.view;
        let account = self.identity.account();
        let nonce = self.mempool.next_nonce(&account, &view.state);
        let tx = Transaction {
            chain_id: view.state.chain_id,
            author: account,
            nonce,
            kind,
        };
        let signed = tx.sign(&view.state.genesis_hash, &self.identity);
        // Refuse at once what the chain's rules would refuse, rather than
        // leave it in the pool (checkable when no earlier one of ours is
        // pending: later ones depend on those).
        let next = view.state.members.get(&account).map(|m| m.next_nonce);
        if next == Some(nonce) {
            view.state
                .check(
                    &signed,
                    view.tip.height + 1,
                    now_ms().max(view.tip.time_ms + 1),
                )
                .map_err(|e| SubmitError::Refused(e.to_string()))?;
        }
        let id = self.mempool.insert(signed.clone(), &view.state, now_ms())?;
        Ok((Submitted { id, nonce }, signed))
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
