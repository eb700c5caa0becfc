//! The pool task in-process: a real task, a fake network (commands on a
//! channel), chain views from a test chain, no sockets.

use std::sync::Arc;

use qward_core::chain::testkit::TestChain;
use qward_core::chain::{ChainState, RecordAnchor, Transaction};
use qward_core::identity::{Identity, Role};
use tokio::sync::{broadcast, mpsc, watch};

use super::*;
use crate::net::{Command, NetworkClient};

struct Harness {
    chain: TestChain,
    pool: PoolHandle,
    views: watch::Sender<Arc<ChainView>>,
    /// What the pool gossiped: (topic, bytes).
    gossiped: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    metrics: Arc<Metrics>,
    twin: Arc<TwinAlarm>,
}

fn view_of(chain: &TestChain) -> ChainView {
    ChainView {
        genesis: chain.genesis.clone(),
        state: chain.state.clone(),
        tip: chain.tip,
    }
}

/// A pool for hospital 0 of a one-hospital test chain.
fn harness() -> Harness {
    let chain = TestChain::new(7, 1);
    let identity =
        Identity::from_secret_bytes(chain.keys[0].secret_bytes().as_slice()).expect("a test key");
    let (views, rx) = super::super::view::channel(view_of(&chain));
    let (net, mut commands) = NetworkClient::detached(crate::net::PeerId::random());
    let (gossip_tx, gossiped) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(c) = commands.recv().await {
            if let Command::Publish(topic, data, _reply) = c {
                let _ = gossip_tx.send((topic, data));
            }
        }
    });
    let metrics = Metrics::new();
    let (events, _) = broadcast::channel(16);
    let twin = Arc::new(TwinAlarm::default());
    let (pool, _task) = spawn(
        Mempool::new(),
        identity,
        twin.clone(),
        rx,
        super::PoolOutlets {
            net,
            events,
            metrics: metrics.clone(),
            tx_ready: Arc::new(tokio::sync::Notify::new()),
        },
    );
    Harness {
        chain,
        pool,
        views,
        gossiped,
        metrics,
        twin,
    }
}

fn anchor_kind(seed: u8, to: qward_core::identity::AccountId) -> TxKind {
    TxKind::AnchorRecord(RecordAnchor {
        record_id: Hash([seed; 32]),
        ciphertext_hash: Hash([seed; 32]),
        recipient: to,
    })
}

impl Harness {
    async fn next_gossiped(&mut self) -> SignedTransaction {
        let (topic, bytes) = self.gossiped.recv().await.expect("a gossiped transaction");
        assert_eq!(topic, view_of(&self.chain).tx_topic());
        SignedTransaction::decode(&bytes).expect("a transaction")
    }

    /// Commits `txs` on the test chain and publishes the new view, as the
    /// driver does after an import.
    fn import(&mut self, txs: Vec<SignedTransaction>) {
        self.chain.commit(txs);
        self.views.send_replace(Arc::new(view_of(&self.chain)));
    }

    fn state(&self) -> &ChainState {
        &self.chain.state
    }
}

#[tokio::test]
async fn own_transactions_take_consecutive_nonces_and_are_gossiped() {
    let mut h = harness();
    let patient = h.chain.patient.account();
    let first = h.pool.submit(anchor_kind(1, patient)).await.unwrap();
    let second = h.pool.submit(anchor_kind(2, patient)).await.unwrap();
    assert_eq!(second.nonce, first.nonce + 1);
    assert_eq!(h.next_gossiped().await.id(), first.id);
    assert_eq!(h.next_gossiped().await.id(), second.id);
    assert!(h.pool.contains(first.id).await);
    assert_eq!(h.pool.pending().await, 2);
    assert_eq!(h.metrics.mempool_size.get(), 2);
}

/// The race the old lock order guarded: a block lands between two
/// submissions. The second must see the block's nonces as used, and the
/// included transaction must be gone from the pool.
#[tokio::test]
async fn a_submission_after_an_import_never_reuses_a_nonce_the_block_used() {
    let mut h = harness();
    let patient = h.chain.patient.account();
    let first = h.pool.submit(anchor_kind(1, patient)).await.unwrap();
    let included = h.next_gossiped().await;
    h.import(vec![included]);
    // No wait: the view is published, and the next command sees it.
    let second = h.pool.submit(anchor_kind(2, patient)).await.unwrap();
    assert_eq!(second.nonce, first.nonce + 1);
    assert!(!h.pool.contains(first.id).await, "included, so pruned");
    assert_eq!(h.pool.pending().await, 1);
    let next = h.state().members[&h.chain.keys[0].account()].next_nonce;
    assert_eq!(second.nonce, next);
}

#[tokio::test]
async fn what_the_chain_would_refuse_is_refused_at_submission_and_not_gossiped() {
    let mut h = harness();
    // Hospital 0 is a member already.
    let again = TxKind::RegisterMember {
        account: h.chain.keys[0].account(),
        role: Role::Doctor,
    };
    let err = h.pool.submit(again).await.unwrap_err();
    assert!(matches!(err, SubmitError::Refused(_)), "{err}");
    assert_eq!(h.pool.pending().await, 0);
    assert!(h.gossiped.try_recv().is_err());
}

#[tokio::test]
async fn gossiped_transactions_are_checked_and_forgeries_refused() {
    let mut h = harness();
    let patient = Identity::from_secret_bytes(h.chain.patient.secret_bytes().as_slice()).unwrap();
    let genuine = h
        .chain
        .sign(&patient, anchor_kind(3, h.chain.keys[0].account()));
    // Signed by someone else in the patient's name.
    let forged = Transaction {
        nonce: genuine.tx.nonce + 1,
        ..genuine.tx.clone()
    }
    .sign(&h.state().genesis_hash, &h.chain.keys[0]);
    let id = h.pool.offer(genuine.clone()).await.unwrap();
    assert_eq!(id, genuine.id());
    assert_eq!(
        h.pool.offer(forged).await.unwrap_err(),
        OfferError::Pool(MempoolError::BadSignature)
    );
    assert_eq!(
        h.pool.offer(genuine).await.unwrap_err(),
        OfferError::Pool(MempoolError::Duplicate(id.to_hex()))
    );
    assert_eq!(h.pool.pending().await, 1);
}

#[tokio::test]
async fn candidates_follow_nonces_and_an_import_prunes_them() {
    let mut h = harness();
    let patient = h.chain.patient.account();
    let mut ids = Vec::new();
    for seed in 1..=3 {
        ids.push(h.pool.submit(anchor_kind(seed, patient)).await.unwrap().id);
    }
    let candidates = h.pool.candidates(10).await;
    assert_eq!(
        candidates.iter().map(|t| t.id()).collect::<Vec<_>>(),
        ids,
        "in nonce order"
    );
    assert_eq!(h.pool.candidates(2).await.len(), 2);
    h.import(candidates[..2].to_vec());
    let left = h.pool.candidates(10).await;
    assert_eq!(left.iter().map(|t| t.id()).collect::<Vec<_>>(), ids[2..]);
}

#[tokio::test]
async fn a_stopped_pool_answers_stopped_not_a_hang() {
    let h = harness();
    let handle = h.pool.clone();
    // Every command goes to a task whose receiver is gone once the task is
    // aborted: the handle must answer, not wait.
    drop(h);
    let (commands, rx) = mpsc::channel(1);
    drop(rx);
    let dead = PoolHandle { commands, ..handle };
    let patient = Identity::from_secret_bytes(&[9; 32]).unwrap().account();
    assert_eq!(
        dead.submit(anchor_kind(1, patient)).await.unwrap_err(),
        SubmitError::Stopped
    );
    assert!(!dead.contains(Hash([0; 32])).await);
    assert!(dead.candidates(5).await.is_empty());
}

#[tokio::test]
async fn nothing_is_signed_once_the_key_runs_in_another_process() {
    let mut h = harness();
    let patient = h.chain.patient.account();
    assert!(h.pool.submit(anchor_kind(1, patient)).await.is_ok());
    let _ = h.next_gossiped().await;
    h.twin.raise("a test".into());
    let err = h.pool.submit(anchor_kind(2, patient)).await.unwrap_err();
    assert!(matches!(err, SubmitError::KeyTwin(_)), "{err}");
    assert_eq!(h.pool.pending().await, 1);
    assert!(h.gossiped.try_recv().is_err(), "nothing gossiped");
}

/// A block carrying a transaction of this key that the pool never held (sent
/// before a restart, say): the next submission, made right after the view
/// is published, must take the nonce after it, which only the new view shows.
#[tokio::test]
async fn the_next_submission_after_an_import_takes_the_nonce_the_view_shows() {
    let mut h = harness();
    let patient = h.chain.patient.account();
    let me = Identity::from_secret_bytes(h.chain.keys[0].secret_bytes().as_slice()).unwrap();
    let unseen = h.chain.sign(&me, anchor_kind(5, patient));
    h.import(vec![unseen.clone()]);
    let next = h.pool.submit(anchor_kind(6, patient)).await.unwrap();
    assert_eq!(next.nonce, unseen.tx.nonce + 1);
}
