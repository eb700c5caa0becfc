//! The consensus driver in-process (testkit: a real store and pool, a fake
//! network): imports of synced blocks, and the key-twin alarm with what the
//! driver then withholds.

use qward_core::chain::testkit::certify;
use qward_core::chain::{CommittedBlock, build_block};
use qward_core::consensus::ConsensusMessage;
use qward_core::identity::Identity;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::node::testkit::{self, Seen, TestNode};

/// Hospital that proposes height 2 (round 0) but not height 1, of four.
fn proposer_of_height_2() -> TestNode {
    let probe = qward_core::chain::testkit::TestChain::new(11, 4);
    let v = &probe.state.validators;
    let me = (0..4)
        .find(|&i| {
            let a = probe.keys[i].account();
            v.proposer(2, 0) == a && v.proposer(1, 0) != a
        })
        .expect("a proposer of height 2 that does not propose height 1");
    testkit::hospital(4, me)
}

/// Block 1 of `node`'s chain, certified by `signers`.
fn block_1(node: &TestNode, signers: &[&Identity]) -> CommittedBlock {
    let c = &node.chain;
    let (block, _) = build_block(&c.state, &c.tip, 0, c.tip.time_ms + 1000, vec![], 100);
    let cert = certify(
        &c.state.genesis_hash,
        c.genesis.chain_id,
        &block,
        0,
        signers,
    );
    CommittedBlock { block, cert }
}

async fn start(node: &mut TestNode) {
    let views = node.views.take().expect("the view sender");
    let progress = node.consensus.take().expect("the progress sender");
    let (_, placeholder) = mpsc::channel(1);
    let inputs = std::mem::replace(&mut node.driver, placeholder);
    tokio::spawn(run(
        node.ctx.clone(),
        views,
        progress,
        inputs,
        node.driver_tx.clone(),
        None,
    ));
}

async fn sync(node: &TestNode, blocks: Vec<CommittedBlock>) -> Result<u64, String> {
    let (reply, answer) = oneshot::channel();
    node.driver_tx
        .send(DriverInput::Synced { blocks, reply })
        .await
        .expect("the driver runs");
    answer.await.expect("the driver answers")
}

/// Consensus messages published so far, by height.
fn consensus_heights(published: &mut mpsc::UnboundedReceiver<Seen>, topic: &str) -> Vec<u64> {
    let mut heights = Vec::new();
    while let Ok(seen) = published.try_recv() {
        if let Seen::Published(t, data) = seen
            && t == topic
        {
            heights.push(ConsensusMessage::decode(&data).expect("a message").height());
        }
    }
    heights
}

#[tokio::test]
async fn a_synced_block_is_imported_and_the_next_height_proposed() {
    let mut node = proposer_of_height_2();
    let mut published = node.capture_network();
    let topic = node.ctx.view().consensus_topic();
    start(&mut node).await;
    let me = node.ctx.account;
    let others: Vec<&Identity> = node
        .chain
        .keys
        .iter()
        .filter(|k| k.account() != me)
        .collect();
    let block = block_1(&node, &others);
    assert_eq!(sync(&node, vec![block]).await, Ok(1));
    assert_eq!(
        node.ctx.view().tip.height,
        1,
        "the view moved with the import"
    );
    assert!(!node.ctx.twin.is_raised());
    assert!(
        consensus_heights(&mut published, &topic).contains(&2),
        "the proposer of height 2 proposes it"
    );
}

/// A restored copy of a validator syncs a block the original precommitted:
/// its own signing record never made that precommit, so another process
/// holds its key. It raises the alarm, and signs nothing from then on, not
/// even the proposal it is due to make.
#[tokio::test]
async fn a_synced_precommit_of_this_key_it_never_signed_raises_the_alarm_and_silences_it() {
    let mut node = proposer_of_height_2();
    let mut published = node.capture_network();
    let topic = node.ctx.view().consensus_topic();
    start(&mut node).await;
    let all: Vec<&Identity> = node.chain.keys.iter().collect();
    let block = block_1(&node, &all);
    assert_eq!(sync(&node, vec![block]).await, Ok(1));
    assert!(node.ctx.twin.is_raised());
    assert!(
        node.ctx
            .twin
            .reason()
            .unwrap()
            .contains("block 1 carries a precommit"),
        "{:?}",
        node.ctx.twin.reason()
    );
    let heights = consensus_heights(&mut published, &topic);
    assert!(
        !heights.iter().any(|h| *h >= 2),
        "nothing signed after the alarm: {heights:?}"
    );
}

#[tokio::test]
async fn a_synced_block_that_does_not_extend_the_tip_is_refused() {
    let mut node = proposer_of_height_2();
    let _published = node.capture_network();
    start(&mut node).await;
    let all: Vec<&Identity> = node.chain.keys.iter().collect();
    let block = block_1(&node, &all);
    let mut later = block.clone();
    later.block.header.height = 3;
    let err = sync(&node, vec![later]).await.unwrap_err();
    assert!(
        err.contains("sync sent block 3 while the chain is at 0"),
        "{err}"
    );
    assert_eq!(node.ctx.view().tip.height, 0);
}
